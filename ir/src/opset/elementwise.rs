//! TODO(elementwise): shape inference and reference semantics.

use crate::infer::{InferError, InferInput};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::tensor::Tensor;
use crate::types::TensorType;

/// Output types of the ops of this family.
pub fn infer(
    op: &Op,
    _inputs: &[Option<InferInput<'_>>],
    _num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    Err(InferError::Unsupported(format!(
        "{} is not implemented yet",
        op.name()
    )))
}

/// Reference semantics of the ops of this family.
pub fn eval(
    op: &Op,
    _inputs: &[Option<Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    Err(EvalError::Unsupported(op.name().to_string()))
}
