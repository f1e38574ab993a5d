//! ArgMax, ArgMin and TopK: ops that select elements of lines by value and report their
//! indices (i64).
//!
//! NaN follows numpy: ArgMax and ArgMin return the first NaN of a line (the last one with
//! `select_last_index`); TopK orders NaN above every number (as `np.lexsort` does), so it comes
//! first with `largest` and last otherwise. Ties in TopK put the smaller index first.

use super::{eval_max_inputs, infer_max_inputs, is_nan, map_outputs, split_at_axis, total_cmp};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, input, norm_axis};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::opset::util::{axis as eval_axis, req};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};

/// The index (within the line) of the best element of the line of `n` elements at
/// `x[start + j * stride]`: the first NaN, else the first maximum (`max`) or minimum; with
/// `last`, the last NaN, else the last maximum or minimum. `n` must be at least 1.
pub(super) fn arg_best<T: PartialOrd + Copy>(
    x: &[T],
    start: usize,
    stride: usize,
    n: usize,
    max: bool,
    last: bool,
) -> usize {
    let pos = |k: usize| if last { n - 1 - k } else { k };
    let mut best_j = pos(0);
    let mut best = x[start + best_j * stride];
    if is_nan(best) {
        return best_j;
    }
    for k in 1..n {
        let j = pos(k);
        let v = x[start + j * stride];
        if is_nan(v) {
            return j;
        }
        if (max && v > best) || (!max && v < best) {
            best = v;
            best_j = j;
        }
    }
    best_j
}

/// Rejects dtypes the selection ops do not take (bool).
fn numeric(op: &Op, d: DType) -> Result<(), String> {
    if d.is_float() || d.is_int() {
        Ok(())
    } else {
        Err(format!("{} needs a numeric input, got {d}", op.name()))
    }
}

/// Output type of ArgMax/ArgMin: i64, the axis kept as 1 or removed.
pub(super) fn infer_arg(
    op: &Op,
    axis: i64,
    keepdims: bool,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    infer_max_inputs(op, inputs, 1)?;
    let x = input(op, inputs, 0)?;
    numeric(op, x.ty.dtype).map_err(InferError::Dtype)?;
    let shape = match x.ty.shape.dims() {
        None => Shape::Unranked,
        Some(d) => {
            if d.is_empty() {
                return Err(InferError::Shape(format!(
                    "{} needs an input of rank at least 1",
                    op.name()
                )));
            }
            let a = norm_axis(axis, d.len())?;
            if d[a] == Dim::Static(0) {
                return Err(InferError::Shape(format!(
                    "{} over an empty axis",
                    op.name()
                )));
            }
            let mut out = d.to_vec();
            if keepdims {
                out[a] = Dim::Static(1);
            } else {
                out.remove(a);
            }
            Shape::Ranked(out)
        }
    };
    Ok(vec![TensorType {
        dtype: DType::I64,
        shape,
    }])
}

/// Evaluates ArgMax (`max`) or ArgMin.
pub(super) fn eval_arg(
    op: &Op,
    max: bool,
    axis: i64,
    keepdims: bool,
    last: bool,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    eval_max_inputs(op, inputs, 1)?;
    let x = req(op, inputs, 0)?;
    numeric(op, x.dtype()).map_err(EvalError::Invalid)?;
    if x.rank() == 0 {
        return Err(EvalError::Invalid(format!(
            "{} needs an input of rank at least 1",
            op.name()
        )));
    }
    let a = eval_axis(axis, x.rank())?;
    let (outer, n, inner) = split_at_axis(x.shape(), a);
    let mut shape = x.shape().to_vec();
    if keepdims {
        shape[a] = 1;
    } else {
        shape.remove(a);
    }
    let count = outer * inner;
    if n == 0 && count > 0 {
        return Err(EvalError::Invalid(format!(
            "{} over an empty axis",
            op.name()
        )));
    }
    let out: Vec<i64> = crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        map_outputs(count, n, |o| {
            let start = (o / inner) * n * inner + o % inner;
            arg_best(v, start, inner, n, max, last) as i64
        })
    });
    Ok(vec![Tensor::from_vec(shape, out)?])
}

/// The K of TopK from a known or concrete tensor.
fn k_value(op: &Op, k: &Tensor) -> Result<usize, String> {
    if !k.dtype().is_int() {
        return Err(format!("{} K must be int64, got {}", op.name(), k.dtype()));
    }
    let v = k.scalar_i64().ok_or_else(|| {
        format!(
            "{} K must have one element, got shape {:?}",
            op.name(),
            k.shape()
        )
    })?;
    usize::try_from(v).map_err(|_| format!("{} K must not be negative, got {v}", op.name()))
}

/// Output types of TopK: Values (the input dtype) and Indices (i64), with the axis of size K.
pub(super) fn infer_topk(
    op: &Op,
    axis: i64,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    infer_max_inputs(op, inputs, 2)?;
    let x = input(op, inputs, 0)?;
    let k = input(op, inputs, 1)?;
    numeric(op, x.ty.dtype).map_err(InferError::Dtype)?;
    if !k.ty.dtype.is_int() {
        return Err(InferError::Dtype(format!(
            "{} K must be int64, got {}",
            op.name(),
            k.ty.dtype
        )));
    }
    if let Some(s) = k.ty.shape.as_static()
        && s.iter().product::<usize>() != 1
    {
        return Err(InferError::Shape(format!(
            "{} K must have one element, got shape {:?}",
            op.name(),
            s
        )));
    }
    let kv = k
        .value
        .map(|t| k_value(op, t))
        .transpose()
        .map_err(InferError::Attribute)?;
    let shape = match x.ty.shape.dims() {
        None => Shape::Unranked,
        Some(d) => {
            if d.is_empty() {
                return Err(InferError::Shape(format!(
                    "{} needs an input of rank at least 1",
                    op.name()
                )));
            }
            let a = norm_axis(axis, d.len())?;
            let mut out = d.to_vec();
            out[a] = match kv {
                Some(kv) => {
                    if let Dim::Static(n) = d[a]
                        && kv > n
                    {
                        return Err(InferError::Attribute(format!(
                            "{} K = {kv} exceeds the axis size {n}",
                            op.name()
                        )));
                    }
                    Dim::Static(kv)
                }
                None => Dim::Unknown,
            };
            Shape::Ranked(out)
        }
    };
    Ok(vec![
        TensorType {
            dtype: x.ty.dtype,
            shape: shape.clone(),
        },
        TensorType {
            dtype: DType::I64,
            shape,
        },
    ])
}

/// Evaluates TopK (always sorted, which `sorted = 0` allows).
pub(super) fn eval_topk(
    op: &Op,
    axis: i64,
    largest: bool,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    eval_max_inputs(op, inputs, 2)?;
    let x = req(op, inputs, 0)?;
    let k = k_value(op, req(op, inputs, 1)?).map_err(EvalError::Invalid)?;
    numeric(op, x.dtype()).map_err(EvalError::Invalid)?;
    if x.rank() == 0 {
        return Err(EvalError::Invalid(format!(
            "{} needs an input of rank at least 1",
            op.name()
        )));
    }
    let a = eval_axis(axis, x.rank())?;
    let (outer, n, inner) = split_at_axis(x.shape(), a);
    if k > n {
        return Err(EvalError::Invalid(format!(
            "{} K = {k} exceeds the axis size {n}",
            op.name()
        )));
    }
    let mut shape = x.shape().to_vec();
    shape[a] = k;
    let total = checked_numel(&shape)?;
    let lines = outer * inner;
    let mut indices = vec![0i64; total];
    let values = crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        let picks = map_outputs(lines, n, |o| {
            let start = (o / inner) * n * inner + o % inner;
            top_k(v, start, inner, n, k, largest)
        });
        let mut vals = vec![T::zero(); total];
        for (o, pick) in picks.iter().enumerate() {
            let base = (o / inner) * k * inner + o % inner;
            for (r, &j) in pick.iter().enumerate() {
                vals[base + r * inner] = v[(o / inner) * n * inner + o % inner + j * inner];
                indices[base + r * inner] = j as i64;
            }
        }
        Tensor::from_vec(shape.clone(), vals)?
    });
    Ok(vec![values, Tensor::from_vec(shape, indices)?])
}

/// The line indices of the top `k` of the line of `n` elements at `x[start + j * stride]`, in
/// output order.
fn top_k<T: Elem>(
    x: &[T],
    start: usize,
    stride: usize,
    n: usize,
    k: usize,
    largest: bool,
) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    let at = |j: usize| x[start + j * stride];
    let cmp = |p: &usize, q: &usize| {
        let by_value = if largest {
            total_cmp(at(*q), at(*p))
        } else {
            total_cmp(at(*p), at(*q))
        };
        by_value.then(p.cmp(q))
    };
    let mut idx: Vec<usize> = (0..n).collect();
    if k < n {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_unstable_by(cmp);
    idx
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests.
mod tests {
    use super::super::test_util::{close, infer, run, run1, t};
    use super::*;

    fn argmax(axis: i64, keepdims: bool, last: bool) -> Op {
        Op::ArgMax {
            axis,
            keepdims,
            select_last_index: last,
        }
    }

    fn argmin(axis: i64, keepdims: bool, last: bool) -> Op {
        Op::ArgMin {
            axis,
            keepdims,
            select_last_index: last,
        }
    }

    fn topk(axis: i64, largest: bool) -> Op {
        Op::TopK {
            axis,
            largest,
            sorted: true,
        }
    }

    #[test]
    fn argmax_axes_keepdims_and_last_index() {
        let x = t(&[2, 3], vec![2f32, 7.0, 7.0, 9.0, 1.0, 9.0]);
        let y = run1(&argmax(1, true, false), &[x.clone()]);
        assert_eq!(y.shape(), &[2, 1]);
        assert_eq!(y.view::<i64>(), &[1, 0]);
        let y = run1(&argmax(-1, false, true), &[x.clone()]);
        assert_eq!(y.shape(), &[2]);
        assert_eq!(y.view::<i64>(), &[2, 2]);
        let y = run1(&argmax(0, true, false), &[x.clone()]);
        assert_eq!(y.shape(), &[1, 3]);
        assert_eq!(y.view::<i64>(), &[1, 0, 1]);
        let y = run1(&argmin(0, false, false), &[x.clone()]);
        assert_eq!(y.view::<i64>(), &[0, 1, 0]);
        let y = run1(&argmin(1, false, true), &[x]);
        assert_eq!(y.view::<i64>(), &[0, 1]);
    }

    #[test]
    fn argmax_integers_and_nan() {
        let x = t(&[4], vec![u64::MAX, 3, u64::MAX, 0]);
        assert_eq!(
            run1(&argmax(0, false, false), &[x.clone()]).view::<i64>(),
            &[0]
        );
        assert_eq!(
            run1(&argmax(0, false, true), &[x.clone()]).view::<i64>(),
            &[2]
        );
        assert_eq!(run1(&argmin(0, false, false), &[x]).view::<i64>(), &[3]);
        let x = t(&[5], vec![1f64, f64::NAN, 9.0, f64::NAN, -1.0]);
        assert_eq!(
            run1(&argmax(0, false, false), &[x.clone()]).view::<i64>(),
            &[1]
        );
        assert_eq!(
            run1(&argmin(0, false, false), &[x.clone()]).view::<i64>(),
            &[1]
        );
        assert_eq!(run1(&argmax(0, false, true), &[x]).view::<i64>(), &[3]);
        let x = t(&[3], vec![-5i8, -128, 7]);
        assert_eq!(run1(&argmin(0, true, false), &[x]).view::<i64>(), &[1]);
    }

    #[test]
    fn arg_errors() {
        assert!(run(&argmax(2, true, false), &[t(&[2, 3], vec![0f32; 6])]).is_err());
        assert!(run(&argmax(1, true, false), &[t(&[2, 0], Vec::<f32>::new())]).is_err());
        assert!(run(&argmax(0, true, false), &[Tensor::scalar(1f32)]).is_err());
        assert!(
            run(
                &argmax(0, true, false),
                &[t(&[1], vec![crate::dtype::Bool8(1)])]
            )
            .is_err()
        );
        // An empty non-reduced dim is fine: the output is empty.
        let y = run1(&argmax(1, true, false), &[t(&[0, 3], Vec::<f32>::new())]);
        assert_eq!(y.shape(), &[0, 1]);
    }

    #[test]
    fn topk_largest_smallest_ties() {
        let x = t(&[2, 4], vec![1f32, 3.0, 3.0, 2.0, 0.0, -1.0, 5.0, 0.0]);
        let k = t(&[1], vec![2i64]);
        let out = run(&topk(1, true), &[x.clone(), k.clone()]).unwrap();
        close(&out[0], &[2, 2], &[3.0, 3.0, 5.0, 0.0], 0.0);
        assert_eq!(out[1].view::<i64>(), &[1, 2, 2, 0]);
        let out = run(&topk(-1, false), &[x.clone(), k]).unwrap();
        close(&out[0], &[2, 2], &[1.0, 2.0, -1.0, 0.0], 0.0);
        assert_eq!(out[1].view::<i64>(), &[0, 3, 1, 0]);
        // Along axis 0 (strided): K = 1 picks the larger of each column, ties to row 0.
        let out = run(&topk(0, true), &[x, t(&[1], vec![1i64])]).unwrap();
        close(&out[0], &[1, 4], &[1.0, 3.0, 5.0, 2.0], 0.0);
        assert_eq!(out[1].view::<i64>(), &[0, 0, 1, 0]);
    }

    #[test]
    fn topk_full_sort_ints_and_nan() {
        let x = t(&[5], vec![4i32, -2, 9, 4, 0]);
        let out = run(&topk(0, true), &[x.clone(), t(&[1], vec![5i64])]).unwrap();
        assert_eq!(out[0].view::<i32>(), &[9, 4, 4, 0, -2]);
        assert_eq!(out[1].view::<i64>(), &[2, 0, 3, 4, 1]);
        let out = run(&topk(0, false), &[x, t(&[1], vec![0i64])]).unwrap();
        assert_eq!(out[0].shape(), &[0]);
        let x = t(&[3], vec![1f32, f32::NAN, 2.0]);
        let out = run(&topk(0, true), &[x.clone(), t(&[1], vec![1i64])]).unwrap();
        assert_eq!(out[1].view::<i64>(), &[1]);
        let out = run(&topk(0, false), &[x, t(&[1], vec![2i64])]).unwrap();
        assert_eq!(out[1].view::<i64>(), &[0, 2]);
    }

    #[test]
    fn topk_errors() {
        let x = t(&[3], vec![1f32, 2.0, 3.0]);
        assert!(run(&topk(0, true), &[x.clone(), t(&[1], vec![4i64])]).is_err());
        assert!(run(&topk(0, true), &[x.clone(), t(&[1], vec![-1i64])]).is_err());
        assert!(run(&topk(0, true), &[x.clone(), t(&[2], vec![1i64, 1])]).is_err());
        assert!(run(&topk(0, true), &[x.clone(), t(&[1], vec![1f32])]).is_err());
        assert!(run(&topk(1, true), &[x.clone(), t(&[1], vec![1i64])]).is_err());
        assert!(super::super::eval(&topk(0, true), &[Some(x), None], 2).is_err());
    }

    #[test]
    fn inference() {
        let x = TensorType {
            dtype: DType::F32,
            shape: Shape::Ranked(vec![Dim::Sym("n".into()), Dim::Static(5)]),
        };
        let out = infer(&argmax(-1, false, false), &[(x.clone(), None)]).unwrap();
        assert_eq!(
            out[0],
            TensorType {
                dtype: DType::I64,
                shape: Shape::Ranked(vec![Dim::Sym("n".into())])
            }
        );
        let out = infer(&argmin(0, true, false), &[(x.clone(), None)]).unwrap();
        assert_eq!(
            out[0].shape,
            Shape::Ranked(vec![Dim::Static(1), Dim::Static(5)])
        );
        let kty = TensorType::fixed(DType::I64, &[1]);
        let k3 = t(&[1], vec![3i64]);
        let out = infer(
            &topk(1, true),
            &[(x.clone(), None), (kty.clone(), Some(&k3))],
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].dtype, DType::F32);
        assert_eq!(out[1].dtype, DType::I64);
        assert_eq!(
            out[1].shape,
            Shape::Ranked(vec![Dim::Sym("n".into()), Dim::Static(3)])
        );
        let out = infer(&topk(1, true), &[(x.clone(), None), (kty.clone(), None)]).unwrap();
        assert_eq!(
            out[0].shape,
            Shape::Ranked(vec![Dim::Sym("n".into()), Dim::Unknown])
        );
        let k9 = t(&[1], vec![9i64]);
        assert!(infer(&topk(1, true), &[(x.clone(), None), (kty, Some(&k9))]).is_err());
        assert!(infer(&argmax(2, true, false), &[(x, None)]).is_err());
    }
}
