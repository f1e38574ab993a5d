//! Dtype-agnostic element movement: tensors viewed as words of their element's width, and the
//! strided-view kernel behind Transpose, Slice, Expand, Tile and DepthToSpace.

use crate::dtype::DType;
use crate::interp::EvalError;
use crate::tensor::{Tensor, checked_numel};
use bytemuck::Pod;
use std::borrow::Cow;

/// Runs `$body` with `$W` bound to the unsigned integer type as wide as an element of
/// `$dtype` (u8, u16, u32 or u64).
macro_rules! by_width {
    ($dtype:expr, $W:ident => $body:expr) => {
        match $dtype.size() {
            1 => {
                type $W = u8;
                $body
            }
            2 => {
                type $W = u16;
                $body
            }
            4 => {
                type $W = u32;
                $body
            }
            _ => {
                type $W = u64;
                $body
            }
        }
    };
}
pub(super) use by_width;

/// The elements of `t` as words of type `W` (which must be as wide as its dtype); borrowed
/// when the storage is aligned for `W`, which typed and mapped storage always are.
pub(super) fn words<W: Pod>(t: &Tensor) -> Cow<'_, [W]> {
    match bytemuck::try_cast_slice(t.bytes()) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(t.bytes())),
    }
}

/// A tensor of `dtype` and `shape` from words of its width.
pub(super) fn from_words<W: Pod>(
    dtype: DType,
    shape: Vec<usize>,
    v: Vec<W>,
) -> Result<Tensor, EvalError> {
    crate::dispatch!(dtype, T => {
        let v: Vec<T> = match bytemuck::allocation::try_cast_vec::<W, T>(v) {
            Ok(v) => v,
            Err((_, v)) => bytemuck::allocation::pod_collect_to_vec(&v),
        };
        Ok(Tensor::from_vec(shape, v)?)
    })
}

/// The bytes of one element of `t` as a word (the first element; `t` must not be empty).
pub(super) fn first_word<W: Pod>(t: &Tensor) -> W {
    words::<W>(t)[0]
}

/// Appends the elements of a strided view of `src` to `out`: the view has dims `shape`,
/// steps `strides` (in elements; zero repeats, negative walks backwards) and starts at
/// `base`. Every addressed element must lie in `src`.
///
/// Dims of size 1 are dropped and dims that are contiguous with their inner neighbour are
/// merged, so the innermost loop copies whole runs with a slice copy whenever the view's
/// last dim is contiguous.
pub(super) fn strided_copy<W: Copy>(
    src: &[W],
    shape: &[usize],
    strides: &[isize],
    base: usize,
    out: &mut Vec<W>,
) {
    if shape.contains(&0) {
        return;
    }
    // Coalesce: drop size-1 dims, merge an outer dim into its inner neighbour when the outer
    // stride is exactly the inner extent.
    let mut dims: Vec<(usize, isize)> = Vec::with_capacity(shape.len());
    for (&d, &s) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(last) if last.1 == s * d as isize => {
                last.0 *= d;
                last.1 = s;
            }
            _ => dims.push((d, s)),
        }
    }
    let Some(&(n, s)) = dims.last() else {
        out.push(src[base]);
        return;
    };
    let outer = &dims[..dims.len() - 1];
    let mut idx = vec![0usize; outer.len()];
    let mut off = base as isize;
    loop {
        let o = off as usize;
        if s == 1 {
            out.extend_from_slice(&src[o..o + n]);
        } else if s == 0 {
            out.extend(std::iter::repeat_n(src[o], n));
        } else {
            out.extend((0..n).map(|i| src[(off + i as isize * s) as usize]));
        }
        // Advance the outer multi-index.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            off += outer[d].1;
            if idx[d] < outer[d].0 {
                break;
            }
            off -= outer[d].1 * outer[d].0 as isize;
            idx[d] = 0;
        }
    }
}

/// Materialises a strided view of `t` (see [`strided_copy`]) as a tensor of shape `shape`,
/// which must have as many elements as `view_shape`.
pub(super) fn materialize(
    t: &Tensor,
    shape: Vec<usize>,
    view_shape: &[usize],
    strides: &[isize],
    base: usize,
) -> Result<Tensor, EvalError> {
    let n = checked_numel(view_shape)?;
    by_width!(t.dtype(), W => {
        let src = words::<W>(t);
        let mut out: Vec<W> = Vec::with_capacity(n);
        strided_copy(&src, view_shape, strides, base, &mut out);
        from_words(t.dtype(), shape, out)
    })
}

/// Row-major strides of `shape` as `isize`.
pub(super) fn istrides(shape: &[usize]) -> Vec<isize> {
    crate::opset::util::strides(shape)
        .into_iter()
        .map(|s| s as isize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_copy_handles_runs_repeats_and_reversal() {
        let src: Vec<u32> = (0..12).collect();
        // Transpose of a 3x4 matrix.
        let mut out = vec![];
        strided_copy(&src, &[4, 3], &[1, 4], 0, &mut out);
        assert_eq!(out, vec![0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
        // Contiguous view: one run.
        out.clear();
        strided_copy(&src, &[2, 1, 6], &[6, 99, 1], 0, &mut out);
        assert_eq!(out, src);
        // Broadcast rows.
        out.clear();
        strided_copy(&src, &[2, 3], &[0, 1], 1, &mut out);
        assert_eq!(out, vec![1, 2, 3, 1, 2, 3]);
        // Reversed rows, every other column.
        out.clear();
        strided_copy(&src, &[3, 2], &[-4, 2], 8, &mut out);
        assert_eq!(out, vec![8, 10, 4, 6, 0, 2]);
        // Scalar view and empty view.
        out.clear();
        strided_copy(&src, &[], &[], 5, &mut out);
        strided_copy(&src, &[0, 3], &[1, 1], 0, &mut out);
        assert_eq!(out, vec![5]);
    }

    #[test]
    fn words_round_trip_every_width() {
        let t = Tensor::from_vec(vec![2], vec![1.5f64, -2.0]).unwrap();
        let w = words::<u64>(&t).into_owned();
        let back = from_words(DType::F64, vec![2], w).unwrap();
        assert_eq!(back, t);
        let b = Tensor::from_vec(vec![2], vec![crate::Bool8(1), crate::Bool8(0)]).unwrap();
        let w = words::<u8>(&b).into_owned();
        assert_eq!(from_words(DType::Bool, vec![2], w).unwrap(), b);
    }
}
