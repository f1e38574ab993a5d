//! Helpers shared by the op families: strides, broadcasting, axis normalisation, input access.

use crate::dtype::Elem;
use crate::infer::{InferError, InferInput};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::tensor::Tensor;
use crate::types::TensorType;

/// `ty` transposed by `perm` (Transpose's inference): the stored ↔ canonical views of the ops
/// with a layout (Conv's [`crate::ops::ConvLayout`], fused attention's).
pub fn transposed_type(perm: &[usize], ty: &TensorType) -> Result<TensorType, InferError> {
    let op = Op::Transpose {
        perm: Some(perm.to_vec()),
    };
    crate::infer::infer(&op, &[Some(InferInput { ty, value: None })], 1)?
        .into_iter()
        .next()
        .ok_or_else(|| InferError::Arity("Transpose has no output".into()))
}

/// `t` transposed by `perm` (Transpose's evaluation); see [`transposed_type`].
pub fn transposed(perm: &[usize], t: Tensor) -> Result<Tensor, EvalError> {
    let op = Op::Transpose {
        perm: Some(perm.to_vec()),
    };
    crate::interp::eval_op(&op, &[Some(t)], 1)?
        .into_iter()
        .next()
        .ok_or_else(|| EvalError::Invalid("Transpose has no output".into()))
}

/// Row-major strides of `shape` (in elements).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Normalises a possibly negative axis against `rank`.
pub fn axis(axis: i64, rank: usize) -> Result<usize, EvalError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(EvalError::Invalid(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// Multidirectional broadcast of two concrete shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, EvalError> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(EvalError::Invalid(format!(
                "shapes {a:?} and {b:?} do not broadcast"
            )));
        };
    }
    Ok(out)
}

/// Strides of `shape` as seen from a broadcast `out` shape: 0 on broadcast dims, and leading
/// dims missing from `shape` get 0.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                s[i - off]
            }
        })
        .collect()
}

/// For each element of the broadcast `out` shape (row-major), the offset into an input of
/// `shape`. Cheap when `shape == out` (identity).
pub fn broadcast_offsets(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    if shape == out {
        return (0..n).collect();
    }
    let bs = broadcast_strides(shape, out);
    let mut offs = Vec::with_capacity(n);
    let mut idx = vec![0usize; out.len()];
    let mut cur = 0usize;
    for _ in 0..n {
        offs.push(cur);
        // Increment the multi-index.
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            cur += bs[d];
            if idx[d] < out[d] {
                break;
            }
            cur -= bs[d] * idx[d];
            idx[d] = 0;
        }
    }
    offs
}

/// Applies `f` elementwise over two broadcast inputs.
pub fn broadcast_map2<A: Elem, B: Elem, O: Elem>(
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(A, B) -> O + Sync,
) -> Result<Tensor, EvalError> {
    let out = broadcast(a.shape(), b.shape())?;
    let (av, bv) = (a.view::<A>(), b.view::<B>());
    let data: Vec<O> = if a.shape() == out.as_slice() && b.shape() == out.as_slice() {
        av.iter().zip(bv).map(|(&x, &y)| f(x, y)).collect()
    } else if b.numel() == 1 && a.shape() == out.as_slice() {
        let y = bv[0];
        av.iter().map(|&x| f(x, y)).collect()
    } else {
        let oa = broadcast_offsets(a.shape(), &out);
        let ob = broadcast_offsets(b.shape(), &out);
        oa.iter().zip(&ob).map(|(&i, &j)| f(av[i], bv[j])).collect()
    };
    Ok(Tensor::from_vec(out, data)?)
}

/// The required input at `i`.
pub fn req<'a>(op: &Op, inputs: &'a [Option<Tensor>], i: usize) -> Result<&'a Tensor, EvalError> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| EvalError::Invalid(format!("{} needs input {i}", op.name())))
}

/// The optional input at `i`.
pub fn opt(inputs: &[Option<Tensor>], i: usize) -> Option<&Tensor> {
    inputs.get(i).and_then(Option::as_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_offsets_repeat_broadcast_dims() {
        assert_eq!(broadcast_offsets(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_offsets(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(broadcast_offsets(&[], &[2]), vec![0, 0]);
        assert_eq!(broadcast(&[2, 1, 4], &[3, 1]).unwrap(), vec![2, 3, 4]);
        assert!(broadcast(&[2], &[3]).is_err());
    }
}
