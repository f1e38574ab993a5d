//! Normalisations over an axis (Softmax, LogSoftmax, Hardmax), reductions (`Reduce*`),
//! arg-reductions (ArgMax, ArgMin), cumulative sums (CumSum) and TopK: shape inference and
//! reference semantics.
//!
//! Every op here walks "lines" of a tensor along one axis (or a set of axes). A tensor of shape
//! `[d0, .., d(a-1), n, d(a+1), ..]` split at axis `a` is seen as `[outer, n, inner]`; the line
//! of outer index `o` and inner index `i` holds the `n` elements at
//! `o * n * inner + j * inner + i`. Large inputs are processed in parallel (rayon) over outer
//! blocks or output elements.

mod cumsum;
mod index;
mod reduction;
mod softmax;

use crate::infer::{InferError, InferInput};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::tensor::Tensor;
use crate::types::TensorType;
use rayon::prelude::*;
use std::cmp::Ordering;

/// Output types of the ops of this family.
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    _num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    match *op {
        Op::Softmax { axis, legacy }
        | Op::LogSoftmax { axis, legacy }
        | Op::Hardmax { axis, legacy } => softmax::infer(op, axis, legacy, inputs),
        Op::Reduce {
            op: rop,
            keepdims,
            noop_with_empty_axes,
        } => reduction::infer(op, rop, keepdims, noop_with_empty_axes, inputs),
        Op::ArgMax { axis, keepdims, .. } | Op::ArgMin { axis, keepdims, .. } => {
            index::infer_arg(op, axis, keepdims, inputs)
        }
        Op::TopK { axis, .. } => index::infer_topk(op, axis, inputs),
        Op::CumSum { .. } => cumsum::infer(op, inputs),
        _ => Err(InferError::Unsupported(format!(
            "{} is not a reduction-family op",
            op.name()
        ))),
    }
}

/// Reference semantics of the ops of this family.
pub fn eval(
    op: &Op,
    inputs: &[Option<Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    match *op {
        Op::Softmax { axis, legacy } => {
            softmax::eval(op, softmax::Kind::Softmax, axis, legacy, inputs)
        }
        Op::LogSoftmax { axis, legacy } => {
            softmax::eval(op, softmax::Kind::LogSoftmax, axis, legacy, inputs)
        }
        Op::Hardmax { axis, legacy } => {
            softmax::eval(op, softmax::Kind::Hardmax, axis, legacy, inputs)
        }
        Op::Reduce {
            op: rop,
            keepdims,
            noop_with_empty_axes,
        } => reduction::eval(op, rop, keepdims, noop_with_empty_axes, inputs),
        Op::ArgMax {
            axis,
            keepdims,
            select_last_index,
        } => index::eval_arg(op, true, axis, keepdims, select_last_index, inputs),
        Op::ArgMin {
            axis,
            keepdims,
            select_last_index,
        } => index::eval_arg(op, false, axis, keepdims, select_last_index, inputs),
        Op::TopK {
            axis,
            largest,
            sorted: _,
        } => index::eval_topk(op, axis, largest, inputs),
        Op::CumSum { exclusive, reverse } => cumsum::eval(op, exclusive, reverse, inputs),
        _ => Err(EvalError::Unsupported(format!(
            "{} is not a reduction-family op",
            op.name()
        ))),
    }
}

/// Work (in elements touched) below which loops stay sequential.
const PAR_MIN_WORK: usize = 1 << 15;

/// Rejects a node with more than `max` inputs (at inference).
fn infer_max_inputs(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    max: usize,
) -> Result<(), InferError> {
    if inputs.len() > max {
        return Err(InferError::Arity(format!(
            "{} takes at most {max} inputs, the node has {}",
            op.name(),
            inputs.len()
        )));
    }
    Ok(())
}

/// Rejects a node with more than `max` inputs (at evaluation).
fn eval_max_inputs(op: &Op, inputs: &[Option<Tensor>], max: usize) -> Result<(), EvalError> {
    if inputs.len() > max {
        return Err(EvalError::Invalid(format!(
            "{} takes at most {max} inputs, the node has {}",
            op.name(),
            inputs.len()
        )));
    }
    Ok(())
}

/// `[outer, n, inner]` of `shape` split at axis `a` (a rank-0 shape is one line of one element).
fn split_at_axis(shape: &[usize], a: usize) -> (usize, usize, usize) {
    if shape.is_empty() {
        return (1, 1, 1);
    }
    let outer = shape[..a].iter().product();
    let inner = shape[a + 1..].iter().product();
    (outer, shape[a], inner)
}

/// True for NaN (the only value not ordered against itself).
fn is_nan<T: PartialOrd>(v: T) -> bool {
    v.partial_cmp(&v).is_none()
}

/// A total order on a partially ordered scalar: NaN is greater than every number (numpy's sort
/// order) and equal to another NaN.
fn total_cmp<T: PartialOrd + Copy>(a: T, b: T) -> Ordering {
    a.partial_cmp(&b)
        .unwrap_or_else(|| is_nan(a).cmp(&is_nan(b)))
}

/// `(0..n).map(f)`, in parallel when `n * work_each` is large.
fn map_outputs<A: Send>(n: usize, work_each: usize, f: impl Fn(usize) -> A + Sync) -> Vec<A> {
    let work_each = work_each.max(1);
    if n < 2 || n.saturating_mul(work_each) < PAR_MIN_WORK {
        (0..n).map(f).collect()
    } else {
        let min_len = (PAR_MIN_WORK / work_each).max(1);
        (0..n)
            .into_par_iter()
            .with_min_len(min_len)
            .map(&f)
            .collect()
    }
}

/// Calls `f` on matching blocks of `x` (`xb` elements each) and `y` (`yb` elements each), in
/// parallel when the input is large and has several blocks.
fn for_each_block<T: Sync, U: Send>(
    x: &[T],
    y: &mut [U],
    xb: usize,
    yb: usize,
    f: impl Fn(&[T], &mut [U]) + Sync + Send,
) {
    if xb == 0 || yb == 0 {
        return;
    }
    let blocks = x.len() / xb;
    if blocks >= 2 && x.len().max(y.len()) >= PAR_MIN_WORK {
        let min_len = (PAR_MIN_WORK / xb.max(yb)).max(1);
        x.par_chunks(xb)
            .zip(y.par_chunks_mut(yb))
            .with_min_len(min_len)
            .for_each(|(a, b)| f(a, b));
    } else {
        x.chunks(xb)
            .zip(y.chunks_mut(yb))
            .for_each(|(a, b)| f(a, b));
    }
}

#[cfg(test)]
mod test_util {
    //! Helpers shared by the unit tests of this family.

    use crate::dtype::Elem;
    use crate::infer::InferInput;
    use crate::interp::EvalError;
    use crate::ops::Op;
    use crate::tensor::Tensor;
    use crate::types::TensorType;

    /// A tensor from a shape and values.
    pub fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    /// Evaluates `op` on present inputs.
    pub fn run(op: &Op, inputs: &[Tensor]) -> Result<Vec<Tensor>, EvalError> {
        let args: Vec<Option<Tensor>> = inputs.iter().cloned().map(Some).collect();
        super::eval(op, &args, 1)
    }

    /// Evaluates `op` and returns its first output.
    pub fn run1(op: &Op, inputs: &[Tensor]) -> Tensor {
        run(op, inputs).unwrap().remove(0)
    }

    /// Asserts that `got` has `shape` and is within `tol` of `want` elementwise.
    pub fn close(got: &Tensor, shape: &[usize], want: &[f64], tol: f64) {
        assert_eq!(got.shape(), shape, "shape");
        let g = got.to_f64_vec();
        assert_eq!(g.len(), want.len(), "element count");
        for (i, (a, b)) in g.iter().zip(want).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol;
            assert!(ok, "element {i}: got {a}, want {b} (all: {g:?})");
        }
    }

    /// Infers `op` over types with optional known contents.
    pub fn infer(
        op: &Op,
        tys: &[(TensorType, Option<&Tensor>)],
    ) -> Result<Vec<TensorType>, crate::infer::InferError> {
        let ins: Vec<Option<InferInput<'_>>> = tys
            .iter()
            .map(|(ty, value)| Some(InferInput { ty, value: *value }))
            .collect();
        super::infer(op, &ins, 1)
    }
}
