//! CumSum: running sums along an axis (given by input 1), optionally exclusive (each output
//! excludes its own element) and reversed (summing from the end).
//!
//! Floats accumulate in f64 and round each output once; integers wrap like their type.

use super::{eval_max_inputs, for_each_block, infer_max_inputs, split_at_axis};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, input, norm_axis};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::opset::util::{axis as eval_axis, req};
use crate::tensor::Tensor;
use crate::types::TensorType;

/// Checks the dtype of `x` (numeric) and of the axis input (integer, one element).
fn check(op: &Op, x: DType, axis: DType) -> Result<(), String> {
    if !(x.is_float() || x.is_int()) {
        return Err(format!("{} needs a numeric input, got {x}", op.name()));
    }
    if !axis.is_int() {
        return Err(format!(
            "{} axis must be int32 or int64, got {axis}",
            op.name()
        ));
    }
    Ok(())
}

/// Output type: the input's.
pub(super) fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    infer_max_inputs(op, inputs, 2)?;
    let x = input(op, inputs, 0)?;
    let axis = input(op, inputs, 1)?;
    check(op, x.ty.dtype, axis.ty.dtype).map_err(InferError::Dtype)?;
    if let Some(s) = axis.ty.shape.as_static()
        && s.iter().product::<usize>() != 1
    {
        return Err(InferError::Shape(format!(
            "{} axis must be a scalar, got shape {s:?}",
            op.name()
        )));
    }
    if let Some(r) = x.ty.shape.rank() {
        if r == 0 {
            return Err(InferError::Shape(format!(
                "{} needs an input of rank at least 1",
                op.name()
            )));
        }
        if let Some(a) = axis.value.and_then(Tensor::scalar_i64) {
            norm_axis(a, r)?;
        }
    }
    Ok(vec![x.ty.clone()])
}

/// Evaluates CumSum.
pub(super) fn eval(
    op: &Op,
    exclusive: bool,
    reverse: bool,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    eval_max_inputs(op, inputs, 2)?;
    let x = req(op, inputs, 0)?;
    let axis = req(op, inputs, 1)?;
    check(op, x.dtype(), axis.dtype()).map_err(EvalError::Invalid)?;
    let a = axis.scalar_i64().ok_or_else(|| {
        EvalError::Invalid(format!(
            "{} axis must be a scalar, got shape {:?}",
            op.name(),
            axis.shape()
        ))
    })?;
    if x.rank() == 0 {
        return Err(EvalError::Invalid(format!(
            "{} needs an input of rank at least 1",
            op.name()
        )));
    }
    let a = eval_axis(a, x.rank())?;
    let (_, n, inner) = split_at_axis(x.shape(), a);
    let shape = x.shape().to_vec();
    let block = n * inner;
    let out = crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        let mut y = vec![T::zero(); v.len()];
        if T::DTYPE.is_float() {
            for_each_block(v, &mut y, block, block, |xb, yb| {
                scan(xb, yb, n, inner, exclusive, reverse, 0f64, |s, x: T| s + x.to_f64(), T::round_from_f64)
            });
        } else {
            for_each_block(v, &mut y, block, block, |xb, yb| {
                scan(xb, yb, n, inner, exclusive, reverse, 0i64, |s, x: T| s.wrapping_add(x.to_i64()), T::from_i64)
            });
        }
        Tensor::from_vec(shape, y)?
    });
    Ok(vec![out])
}

/// Running sums of one `[n, inner]` block along `n`, vectorised over `inner`.
#[allow(clippy::too_many_arguments)]
fn scan<T: Copy, A: Copy>(
    x: &[T],
    y: &mut [T],
    n: usize,
    inner: usize,
    exclusive: bool,
    reverse: bool,
    zero: A,
    add: impl Fn(A, T) -> A,
    out: impl Fn(A) -> T,
) {
    let mut acc = vec![zero; inner];
    for k in 0..n {
        let j = if reverse { n - 1 - k } else { k };
        let row = j * inner..(j + 1) * inner;
        for ((s, &xv), yv) in acc.iter_mut().zip(&x[row.clone()]).zip(&mut y[row]) {
            if exclusive {
                *yv = out(*s);
                *s = add(*s, xv);
            } else {
                *s = add(*s, xv);
                *yv = out(*s);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests.
mod tests {
    use super::super::test_util::{close, infer, run, run1, t};
    use super::*;
    use crate::types::Shape;

    fn cs(exclusive: bool, reverse: bool) -> Op {
        Op::CumSum { exclusive, reverse }
    }

    #[test]
    fn one_d_modes() {
        let x = t(&[5], vec![1f64, 2.0, 3.0, 4.0, 5.0]);
        let ax = Tensor::scalar(0i32);
        close(
            &run1(&cs(false, false), &[x.clone(), ax.clone()]),
            &[5],
            &[1.0, 3.0, 6.0, 10.0, 15.0],
            0.0,
        );
        close(
            &run1(&cs(true, false), &[x.clone(), ax.clone()]),
            &[5],
            &[0.0, 1.0, 3.0, 6.0, 10.0],
            0.0,
        );
        close(
            &run1(&cs(false, true), &[x.clone(), ax.clone()]),
            &[5],
            &[15.0, 14.0, 12.0, 9.0, 5.0],
            0.0,
        );
        close(
            &run1(&cs(true, true), &[x, ax]),
            &[5],
            &[14.0, 12.0, 9.0, 5.0, 0.0],
            0.0,
        );
    }

    #[test]
    fn two_d_axes_and_ints() {
        let x = t(&[2, 3], vec![1i32, 2, 3, 4, 5, 6]);
        let y = run1(&cs(false, false), &[x.clone(), Tensor::scalar(0i64)]);
        assert_eq!(y.view::<i32>(), &[1, 2, 3, 5, 7, 9]);
        let y = run1(&cs(false, false), &[x.clone(), Tensor::scalar(-1i64)]);
        assert_eq!(y.view::<i32>(), &[1, 3, 6, 4, 9, 15]);
        let y = run1(&cs(true, true), &[x, t(&[1], vec![1i64])]);
        assert_eq!(y.view::<i32>(), &[5, 3, 0, 11, 6, 0]);
        let x = t(&[3], vec![200u8, 100, 1]);
        let y = run1(&cs(false, false), &[x, Tensor::scalar(0i64)]);
        assert_eq!(y.view::<u8>(), &[200, 44, 45]);
        let x = t(
            &[3],
            vec![
                half::f16::from_f32(0.5),
                half::f16::from_f32(0.25),
                half::f16::from_f32(1.0),
            ],
        );
        let y = run1(&cs(false, false), &[x, Tensor::scalar(0i64)]);
        assert_eq!(y.dtype(), DType::F16);
        close(&y, &[3], &[0.5, 0.75, 1.75], 0.0);
    }

    #[test]
    fn errors_and_inference() {
        let x = t(&[2], vec![1f32, 2.0]);
        assert!(run(&cs(false, false), &[x.clone(), Tensor::scalar(1i64)]).is_err());
        assert!(run(&cs(false, false), &[x.clone(), Tensor::scalar(0f32)]).is_err());
        assert!(run(&cs(false, false), &[x.clone(), t(&[2], vec![0i64, 0])]).is_err());
        assert!(
            run(
                &cs(false, false),
                &[Tensor::scalar(1f32), Tensor::scalar(0i64)]
            )
            .is_err()
        );
        assert!(run(&cs(false, false), &[x]).is_err());
        let xt = TensorType::fixed(DType::F32, &[2, 3]);
        let at = TensorType::fixed(DType::I64, &[]);
        assert_eq!(
            infer(&cs(false, false), &[(xt.clone(), None), (at.clone(), None)]).unwrap(),
            vec![xt.clone()]
        );
        let bad = Tensor::scalar(2i64);
        assert!(infer(&cs(false, false), &[(xt.clone(), None), (at, Some(&bad))]).is_err());
        let u = TensorType {
            dtype: DType::I32,
            shape: Shape::Unranked,
        };
        assert!(
            infer(
                &cs(false, false),
                &[(u, None), (TensorType::fixed(DType::F32, &[]), None)]
            )
            .is_err()
        );
    }
}
