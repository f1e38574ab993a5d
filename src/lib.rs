//! The optc compiler driver: loads models, runs them on the reference interpreter, compiles them
//! to artifacts (kernels + weights) and runs those through the runtime, and hosts the conformance
//! harness.

pub mod compare;
pub mod compile;
pub mod conformance;
pub mod error;
pub mod exec;
pub mod io;
pub mod model;
pub mod stats;

pub use error::{Error, Result};
pub use optc_ir as ir;
pub use optc_passes as passes;
