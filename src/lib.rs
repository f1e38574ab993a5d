//! The optc compiler driver: loads a model and ties the stages together.

pub use optc_ir as ir;
