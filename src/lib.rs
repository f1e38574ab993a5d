//! The optc compiler driver: loads models, runs them on the reference interpreter, and hosts the
//! conformance harness. Later stages (optimisation, code generation, artifacts) plug in here.

pub mod compare;
pub mod conformance;
pub mod error;
pub mod io;
pub mod model;
pub mod stats;

pub use error::{Error, Result};
pub use optc_ir as ir;
