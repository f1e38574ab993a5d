//! Control flow: `If`. Evaluation lives in the interpreter ([`crate::interp`]), which runs the
//! taken branch as a subgraph.

use crate::dtype::DType;
use crate::graph::Graph;
use crate::infer::{InferError, InferInput};
use crate::types::{Dim, Shape, TensorType};

/// Output types of `If`: each output's dtype must agree between the branches; dims that differ
/// become unknown.
pub fn infer_if(
    then_branch: &Graph,
    else_branch: &Graph,
    inputs: &[Option<InferInput<'_>>],
    num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    let cond = inputs
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| InferError::Arity("If needs a condition".into()))?;
    if cond.ty.dtype != DType::Bool {
        return Err(InferError::Dtype(format!(
            "If condition must be bool, got {}",
            cond.ty.dtype
        )));
    }
    let (t, e) = (then_branch.outputs(), else_branch.outputs());
    if t.len() != e.len() || t.len() != num_outputs {
        return Err(InferError::Arity(format!(
            "If branches have {} and {} outputs, the node has {num_outputs}",
            t.len(),
            e.len()
        )));
    }
    t.iter()
        .zip(e)
        .map(|(&a, &b)| {
            let (ta, tb) = (then_branch.ty(a), else_branch.ty(b));
            if ta.dtype != tb.dtype {
                return Err(InferError::Dtype(format!(
                    "If branches produce {} and {} for the same output",
                    ta.dtype, tb.dtype
                )));
            }
            let shape = match (ta.shape.dims(), tb.shape.dims()) {
                (Some(x), Some(y)) if x.len() == y.len() => Shape::Ranked(
                    x.iter()
                        .zip(y)
                        .map(|(p, q)| if p == q { p.clone() } else { Dim::Unknown })
                        .collect(),
                ),
                _ => Shape::Unranked,
            };
            Ok(TensorType {
                dtype: ta.dtype,
                shape,
            })
        })
        .collect()
}
