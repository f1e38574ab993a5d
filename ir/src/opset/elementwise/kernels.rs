//! Elementwise loops: parallel maps and multidirectional broadcasting of up to three inputs.
//!
//! Broadcasting collapses the output into as few dims as possible (dropping size-1 dims and
//! merging adjacent dims that every input walks contiguously or not at all), then walks it in
//! contiguous segments of the innermost dim, so the inner loops are plain slice loops. Outputs
//! with more than [`PAR_MIN`] elements are split across rayon threads.

use crate::dtype::Elem;
use crate::interp::EvalError;
use crate::opset::util::{broadcast, broadcast_strides};
use crate::tensor::{Tensor, checked_numel};
use rayon::prelude::*;

/// Element count above which loops run in parallel.
pub const PAR_MIN: usize = 1 << 16;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `f` over every element of `src`, in parallel when large.
pub fn map1<A: Copy + Sync, O: Send>(src: &[A], f: impl Fn(A) -> O + Sync + Send) -> Vec<O> {
    if src.len() > PAR_MIN {
        src.par_iter().with_min_len(CHUNK).map(|&x| f(x)).collect()
    } else {
        src.iter().map(|&x| f(x)).collect()
    }
}

/// `f` over every element of a tensor viewed as `A`, producing a tensor of the same shape.
pub fn map_tensor<A: Elem, O: Elem>(
    x: &Tensor,
    f: impl Fn(A) -> O + Sync + Send,
) -> Result<Tensor, EvalError> {
    Ok(Tensor::from_vec(
        x.shape().to_vec(),
        map1(x.view::<A>(), f),
    )?)
}

/// A broadcast walk of an output shape over `N` inputs.
pub struct Plan<const N: usize> {
    /// Collapsed output dims (at least one).
    dims: Vec<usize>,
    /// Per input, its element stride along each collapsed dim (0 where broadcast).
    strides: [Vec<usize>; N],
}

impl<const N: usize> Plan<N> {
    /// The walk of `out` (a broadcast of every one of `shapes`) over the inputs of `shapes`.
    pub fn new(shapes: [&[usize]; N], out: &[usize]) -> Plan<N> {
        let full: [Vec<usize>; N] = shapes.map(|s| broadcast_strides(s, out));
        let mut dims: Vec<usize> = Vec::with_capacity(out.len());
        let mut strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::new());
        for (i, &d) in out.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let mergeable = !dims.is_empty()
                && (0..N).all(|k| strides[k].last().copied() == Some(full[k][i] * d));
            if mergeable {
                if let Some(last) = dims.last_mut() {
                    *last *= d;
                }
                for k in 0..N {
                    if let Some(s) = strides[k].last_mut() {
                        *s = full[k][i];
                    }
                }
            } else {
                dims.push(d);
                for k in 0..N {
                    strides[k].push(full[k][i]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in &mut strides {
                s.push(0);
            }
        }
        Plan { dims, strides }
    }

    /// Each input's stride along the innermost collapsed dim (0 or 1).
    pub fn inner_strides(&self) -> [usize; N] {
        std::array::from_fn(|k| self.strides[k].last().copied().unwrap_or(0))
    }

    /// Input offsets of flat output position `pos`.
    fn offsets(&self, mut pos: usize) -> [usize; N] {
        let mut off = [0usize; N];
        for d in (0..self.dims.len()).rev() {
            let n = self.dims[d];
            let i = pos % n;
            pos /= n;
            for (k, o) in off.iter_mut().enumerate() {
                *o += i * self.strides[k][d];
            }
        }
        off
    }

    /// Calls `f(offsets, segment)` for contiguous segments of `out` (the whole output, row
    /// major) that stay within one innermost row; `offsets` are the inputs' offsets of the
    /// segment's first element and each input advances by its inner stride per element.
    pub fn for_segments<O: Send>(&self, out: &mut [O], f: impl Fn([usize; N], &mut [O]) + Sync) {
        let inner = self.dims.last().copied().unwrap_or(1).max(1);
        let walk = |start: usize, chunk: &mut [O]| {
            let mut pos = 0;
            while pos < chunk.len() {
                let g = start + pos;
                let len = (inner - g % inner).min(chunk.len() - pos);
                f(self.offsets(g), &mut chunk[pos..pos + len]);
                pos += len;
            }
        };
        if out.len() > PAR_MIN {
            out.par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(c, chunk)| walk(c * CHUNK, chunk));
        } else {
            walk(0, out);
        }
    }
}

/// `f(a, b)` over the multidirectional broadcast of `a` and `b`.
pub fn map2<A: Elem, B: Elem, O: Elem>(
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(A, B) -> O + Sync + Send,
) -> Result<Tensor, EvalError> {
    let shape = broadcast(a.shape(), b.shape())?;
    let n = checked_numel(&shape)?;
    let (av, bv) = (a.view::<A>(), b.view::<B>());
    if a.shape() == b.shape() {
        let out = if n > PAR_MIN {
            av.par_iter()
                .zip(bv.par_iter())
                .with_min_len(CHUNK)
                .map(|(&x, &y)| f(x, y))
                .collect()
        } else {
            av.iter().zip(bv).map(|(&x, &y)| f(x, y)).collect()
        };
        return Ok(Tensor::from_vec(shape, out)?);
    }
    let plan = Plan::new([a.shape(), b.shape()], &shape);
    let [sa, sb] = plan.inner_strides();
    let mut out = vec![O::zero(); n];
    plan.for_segments(&mut out, |[oa, ob], seg| {
        let len = seg.len();
        match (sa, sb) {
            (1, 1) => {
                for ((o, &x), &y) in seg.iter_mut().zip(&av[oa..oa + len]).zip(&bv[ob..ob + len]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = bv[ob];
                for (o, &x) in seg.iter_mut().zip(&av[oa..oa + len]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = av[oa];
                for (o, &y) in seg.iter_mut().zip(&bv[ob..ob + len]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in seg.iter_mut().enumerate() {
                    *o = f(av[oa + j * sa], bv[ob + j * sb]);
                }
            }
        }
    });
    Ok(Tensor::from_vec(shape, out)?)
}

/// `f(a, b, c)` over the multidirectional broadcast of three inputs.
pub fn map3<A: Elem, B: Elem, C: Elem, O: Elem>(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    f: impl Fn(A, B, C) -> O + Sync + Send,
) -> Result<Tensor, EvalError> {
    let shape = broadcast(&broadcast(a.shape(), b.shape())?, c.shape())?;
    let n = checked_numel(&shape)?;
    let (av, bv, cv) = (a.view::<A>(), b.view::<B>(), c.view::<C>());
    let plan = Plan::new([a.shape(), b.shape(), c.shape()], &shape);
    let [sa, sb, sc] = plan.inner_strides();
    let mut out = vec![O::zero(); n];
    plan.for_segments(&mut out, |[oa, ob, oc], seg| {
        if (sa, sb, sc) == (1, 1, 1) {
            let len = seg.len();
            let it = av[oa..oa + len]
                .iter()
                .zip(&bv[ob..ob + len])
                .zip(&cv[oc..oc + len]);
            for (o, ((&x, &y), &z)) in seg.iter_mut().zip(it) {
                *o = f(x, y, z);
            }
        } else {
            for (j, o) in seg.iter_mut().enumerate() {
                *o = f(av[oa + j * sa], bv[ob + j * sb], cv[oc + j * sc]);
            }
        }
    });
    Ok(Tensor::from_vec(shape, out)?)
}

/// `f(acc, x)` for every element of `acc` (of shape `out`) and the element of `x` broadcast
/// to it; `x`'s shape must broadcast to `out`.
pub fn fold_into<A: Send, T: Elem>(
    acc: &mut [A],
    out: &[usize],
    x: &Tensor,
    f: impl Fn(&mut A, T) + Sync,
) {
    let xv = x.view::<T>();
    let plan = Plan::new([x.shape()], out);
    let [sx] = plan.inner_strides();
    plan.for_segments(acc, |[ox], seg| {
        if sx == 1 {
            let len = seg.len();
            for (a, &v) in seg.iter_mut().zip(&xv[ox..ox + len]) {
                f(a, v);
            }
        } else {
            let v = xv[ox];
            for a in seg.iter_mut() {
                f(a, v);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: Vec<i32>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn plans_collapse_and_drop_unit_dims() {
        let p = Plan::new([&[2, 3, 4][..], &[4][..]], &[2, 3, 4]);
        assert_eq!(p.dims, vec![6, 4]);
        assert_eq!(p.strides, [vec![4, 1], vec![0, 1]]);
        let p = Plan::new([&[1, 1][..]], &[1, 1]);
        assert_eq!(p.dims, vec![1]);
        let p = Plan::new([&[3, 1][..], &[1, 4][..]], &[3, 4]);
        assert_eq!(p.dims, vec![3, 4]);
        assert_eq!(p.strides, [vec![1, 0], vec![0, 1]]);
    }

    #[test]
    fn map2_broadcasts_both_ways() {
        let a = t(&[2, 1], vec![10, 20]);
        let b = t(&[3], vec![1, 2, 3]);
        let c = map2(&a, &b, |x: i32, y: i32| x + y).unwrap();
        assert_eq!(c.shape(), &[2, 3]);
        assert_eq!(c.view::<i32>(), &[11, 12, 13, 21, 22, 23]);
        let s = t(&[], vec![5]);
        let d = map2(&s, &a, |x: i32, y: i32| x - y).unwrap();
        assert_eq!(d.view::<i32>(), &[-5, -15]);
        assert!(map2(&t(&[2], vec![1, 2]), &b, |x: i32, y: i32| x + y).is_err());
    }

    #[test]
    fn large_broadcasts_match_the_naive_walk() {
        // Big enough to take the parallel path with segments that split rows.
        let (r, c) = (300, 301);
        let a = t(&[r, 1], (0..r as i32).collect());
        let b = t(&[1, c], (0..c as i32).collect());
        let out = map2(&a, &b, |x: i32, y: i32| x * 1000 + y).unwrap();
        let v = out.view::<i32>();
        for i in 0..r {
            for j in 0..c {
                assert_eq!(v[i * c + j], (i * 1000 + j) as i32);
            }
        }
        let z = t(&[c], vec![1; c]);
        let out3 = map3(&a, &b, &z, |x: i32, y: i32, w: i32| x + y + w).unwrap();
        assert_eq!(out3.view::<i32>()[c + 2], 1 + 2 + 1);
    }

    #[test]
    fn fold_into_accumulates_broadcast_inputs() {
        let mut acc = vec![0i32; 6];
        fold_into(
            &mut acc,
            &[2, 3],
            &t(&[3], vec![1, 2, 3]),
            |a: &mut i32, v: i32| *a += v,
        );
        fold_into(
            &mut acc,
            &[2, 3],
            &t(&[2, 1], vec![10, 20]),
            |a: &mut i32, v: i32| *a += v,
        );
        assert_eq!(acc, vec![11, 12, 13, 21, 22, 23]);
    }

    #[test]
    fn empty_outputs_are_fine() {
        let a = t(&[0, 3], vec![]);
        let b = t(&[3], vec![1, 2, 3]);
        let c = map2(&a, &b, |x: i32, y: i32| x + y).unwrap();
        assert_eq!(c.shape(), &[0, 3]);
    }
}
