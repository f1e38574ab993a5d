//! The `optc` command-line tool.

fn main() {}
