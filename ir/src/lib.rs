//! The optc graph IR: tensors and dtypes, the closed [`Op`] set, the [`Graph`] of operator
//! nodes, shape and dtype inference, the verifier, a deterministic text printer, the CPU
//! reference interpreter (the oracle for everything downstream) and the ONNX importer.
//!
//! See `ARCHITECTURE.md` at the repository root for the invariants and crate boundaries.

#![warn(missing_docs)]

pub use half;

pub mod dtype;
#[cfg(feature = "onnx")]
pub mod front;
pub mod graph;
pub mod infer;
pub mod interp;
pub mod lowp;
pub mod ops;
pub mod opset;
pub mod print;
pub mod tensor;
pub mod types;
pub mod verify;

pub use dtype::{Bool8, DType, Elem};
pub use graph::{Graph, GraphError, Node, NodeId, ValueId};
pub use interp::{EvalError, run};
pub use ops::Op;
pub use tensor::Tensor;
pub use types::{Dim, Shape, TensorType};
