//! Tidy checks over the source tree (rust-analyzer style): every Rust module starts with a
//! `//!` doc comment, and no test is marked ignored.

mod common;

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if p.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | ".venv" | ".cache") {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_has_a_doc_comment_and_no_test_is_ignored() {
    let root = common::root();
    let mut files = Vec::new();
    for d in [
        "src", "ir", "passes", "kernels", "codegen", "runtime", "ptxsim", "tools", "tests",
        "benches",
    ] {
        rust_files(&root.join(d), &mut files);
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if !text.trim_start().starts_with("//!") {
            bad.push(format!(
                "{}: does not start with a //! module doc",
                f.display()
            ));
        }
        let needle = concat!("#[", "ignore");
        if text.contains(needle) {
            bad.push(format!("{}: has an ignored test", f.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
