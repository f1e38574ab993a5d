//! MaxPool (with the optional Indices output), AveragePool, GlobalAveragePool and
//! GlobalMaxPool over 1 to 3 spatial axes.
//!
//! Padding never contributes to a max. AveragePool divides by the number of window positions
//! inside the input, or with `count_include_pad` inside the explicitly padded input — window
//! positions past the padded end (possible with `ceil_mode`) are never counted.

use super::conv::{Geom, window_geom};
use super::{Real, load, store, with_real};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, input};
use crate::interp::EvalError;
use crate::ops::{Op, Window};
use crate::opset::util::req;
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};
use rayon::prelude::*;

/// The window and ceil mode of a windowed pool.
fn window_of(op: &Op) -> Option<(&Window, bool)> {
    match op {
        Op::MaxPool {
            window, ceil_mode, ..
        }
        | Op::AveragePool {
            window, ceil_mode, ..
        } => Some((window, *ceil_mode)),
        _ => None,
    }
}

/// True when `op` accepts `dtype`.
fn dtype_ok(op: &Op, dtype: DType) -> bool {
    dtype.is_float() || (matches!(op, Op::MaxPool { .. }) && matches!(dtype, DType::I8 | DType::U8))
}

/// Output types of the pooling ops.
pub(super) fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let x = input(op, inputs, 0)?;
    let dtype = x.ty.dtype;
    if !dtype_ok(op, dtype) {
        return Err(InferError::Dtype(format!(
            "{} does not accept {dtype} inputs",
            op.name()
        )));
    }
    let with_indices = |shape: Shape| {
        let mut v = vec![TensorType {
            dtype,
            shape: shape.clone(),
        }];
        if matches!(op, Op::MaxPool { .. }) {
            v.push(TensorType {
                dtype: DType::I64,
                shape,
            });
        }
        v
    };
    let Some((w, ceil_mode)) = window_of(op) else {
        // Global pools.
        let Some(d) = x.ty.shape.dims() else {
            return Ok(vec![TensorType::unranked(dtype)]);
        };
        if d.len() < 2 {
            return Err(InferError::Shape(format!(
                "{} needs an input of rank ≥ 2 (N, C, spatial...), got {}",
                op.name(),
                x.ty.shape
            )));
        }
        let mut out = d[..2].to_vec();
        out.resize(d.len(), Dim::Static(1));
        return Ok(vec![TensorType {
            dtype,
            shape: Shape::Ranked(out),
        }]);
    };
    let nsp = w.kernel_shape.len();
    if nsp == 0 {
        return Err(InferError::Attribute(format!(
            "{} needs kernel_shape",
            op.name()
        )));
    }
    if nsp > 3 {
        return Err(InferError::Unsupported(format!(
            "{} with {nsp} spatial axes (at most 3)",
            op.name()
        )));
    }
    let a = super::conv::axis_attrs(w, nsp).map_err(InferError::Attribute)?;
    let Some(d) = x.ty.shape.dims() else {
        return Ok(with_indices(Shape::Ranked(vec![Dim::Unknown; nsp + 2])));
    };
    if d.len() != nsp + 2 {
        return Err(InferError::Shape(format!(
            "{} kernel_shape {:?} needs an input of rank {}, got {}",
            op.name(),
            w.kernel_shape,
            nsp + 2,
            x.ty.shape
        )));
    }
    let mut out = d[..2].to_vec();
    for i in 0..nsp {
        out.push(super::conv::infer_axis(
            w.auto_pad,
            ceil_mode,
            &d[2 + i],
            Some(w.kernel_shape[i]),
            a.strides[i],
            a.dilations[i],
            a.pads[i],
            a.pads[nsp + i],
        )?);
    }
    Ok(with_indices(Shape::Ranked(out)))
}

/// Evaluates the pooling ops.
pub(super) fn eval(op: &Op, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>, EvalError> {
    let x = req(op, inputs, 0)?;
    let dtype = x.dtype();
    if !dtype_ok(op, dtype) {
        return Err(super::bad_dtype(op, dtype));
    }
    if x.rank() < 2 {
        return Err(EvalError::Invalid(format!(
            "{} needs an input of rank ≥ 2, got {:?}",
            op.name(),
            x.shape()
        )));
    }
    let planes = x.shape()[0] * x.shape()[1];
    let Some((w, ceil_mode)) = window_of(op) else {
        let mut out_shape = x.shape()[..2].to_vec();
        out_shape.resize(x.rank(), 1);
        let size: usize = x.shape()[2..].iter().product();
        return with_real!(dtype, F => {
            let xv = load::<F>(x);
            let y: Vec<F> = (0..planes)
                .into_par_iter()
                .map(|p| {
                    let plane = &xv[p * size..(p + 1) * size];
                    if matches!(op, Op::GlobalMaxPool) {
                        max_of(plane).map_or(F::ZERO, |(v, _)| v)
                    } else {
                        let s: f64 = plane.iter().map(|v| v.wide()).sum();
                        F::narrow(s / size as f64)
                    }
                })
                .collect();
            Ok(vec![store(dtype, out_shape, y)?])
        }, else Err(super::bad_dtype(op, dtype)));
    };
    let nsp = w.kernel_shape.len();
    if nsp == 0 || x.rank() != nsp + 2 {
        return Err(EvalError::Invalid(format!(
            "{} kernel_shape {:?} needs an input of rank {}, got {:?}",
            op.name(),
            w.kernel_shape,
            nsp + 2,
            x.shape()
        )));
    }
    let g = window_geom(w, ceil_mode, &x.shape()[2..], &w.kernel_shape)
        .map_err(|e| EvalError::Invalid(format!("{}: {e}", op.name())))?;
    let mut out_shape = x.shape()[..2].to_vec();
    out_shape.extend_from_slice(&g.output[3 - nsp..]);
    checked_numel(&out_shape)?;
    let taps = Taps::new(&g);
    match op {
        Op::MaxPool { storage_order, .. } => {
            let col_major = *storage_order != 0;
            let (y, idx) = crate::dispatch!(dtype, T => {
                let (y, idx) = max_pool::<T>(x.view::<T>(), planes, &g, &taps, col_major);
                (Tensor::from_vec(out_shape.clone(), y)?, idx)
            });
            Ok(vec![y, Tensor::from_vec(out_shape, idx)?])
        }
        Op::AveragePool {
            count_include_pad, ..
        } => with_real!(dtype, F => {
            let xv = load::<F>(x);
            let y = avg_pool::<F>(&xv, planes, &g, &taps, *count_include_pad);
            Ok(vec![store(dtype, out_shape, y)?])
        }, else Err(super::bad_dtype(op, dtype))),
        _ => Err(EvalError::Unsupported(op.name().to_string())),
    }
}

/// The max of a slice and its position (NaN only wins when first, like the ONNX reference).
fn max_of<T: PartialOrd + Copy>(v: &[T]) -> Option<(T, usize)> {
    let mut it = v.iter().copied().enumerate();
    let (mut bi, mut best) = it.next()?;
    for (i, x) in it {
        if x > best {
            best = x;
            bi = i;
        }
    }
    Some((best, bi))
}

/// For each axis and output index: the kernel taps that land inside the input, and the
/// number of taps inside the explicitly padded input.
struct Taps {
    inside: [Vec<(usize, usize)>; 3],
    padded: [Vec<usize>; 3],
}

impl Taps {
    fn new(g: &Geom) -> Taps {
        let axis = |a: usize| {
            let (k, s, d) = (g.kernel[a] as i64, g.stride[a] as i64, g.dilation[a] as i64);
            let (pb, n) = (g.pad_begin[a], g.input[a] as i64);
            let pe = g.pad_end[a];
            let mut inside = Vec::with_capacity(g.output[a]);
            let mut padded = Vec::with_capacity(g.output[a]);
            for o in 0..g.output[a] as i64 {
                let start = o * s - pb;
                // Taps t with lo_pos <= start + t*d < hi_pos.
                let count = |lo_pos: i64, hi_pos: i64| -> (i64, i64) {
                    let lo = if start >= lo_pos {
                        0
                    } else {
                        (lo_pos - start + d - 1) / d
                    };
                    let hi = if start >= hi_pos {
                        0
                    } else {
                        ((hi_pos - 1 - start) / d + 1).min(k)
                    };
                    (lo.min(hi), hi)
                };
                let (lo, hi) = count(0, n);
                inside.push((lo as usize, hi as usize));
                let (plo, phi) = count(-pb, n + pe);
                padded.push((phi - plo) as usize);
            }
            (inside, padded)
        };
        let (i0, p0) = axis(0);
        let (i1, p1) = axis(1);
        let (i2, p2) = axis(2);
        Taps {
            inside: [i0, i1, i2],
            padded: [p0, p1, p2],
        }
    }
}

/// MaxPool over `planes` planes; returns the values and the flat indices into X.
fn max_pool<T: Elem + PartialOrd + Copy>(
    x: &[T],
    planes: usize,
    g: &Geom,
    taps: &Taps,
    col_major: bool,
) -> (Vec<T>, Vec<i64>) {
    let (pin, pout) = (g.in_size(), g.out_size());
    let mut y = vec![T::zero(); planes * pout];
    let mut idx = vec![-1i64; planes * pout];
    if pout == 0 {
        return (y, idx);
    }
    let [n0, n1, n2] = g.input;
    let [_, o1n, o2n] = g.output;
    y.par_chunks_mut(pout)
        .zip(idx.par_chunks_mut(pout))
        .enumerate()
        .for_each(|(p, (yp, ip))| {
            let src = &x[p * pin..(p + 1) * pin];
            for (o, (yv, iv)) in yp.iter_mut().zip(ip.iter_mut()).enumerate() {
                let (o0, o1, o2) = (o / (o1n * o2n), (o / o2n) % o1n, o % o2n);
                let (a0, b0) = taps.inside[0][o0];
                let (a1, b1) = taps.inside[1][o1];
                let (a2, b2) = taps.inside[2][o2];
                let s0 = (o0 * g.stride[0]) as i64 - g.pad_begin[0];
                let s1 = (o1 * g.stride[1]) as i64 - g.pad_begin[1];
                let s2 = (o2 * g.stride[2]) as i64 - g.pad_begin[2];
                let mut best: Option<(T, [usize; 3])> = None;
                for t0 in a0..b0 {
                    let i0 = (s0 + (t0 * g.dilation[0]) as i64) as usize;
                    for t1 in a1..b1 {
                        let i1 = (s1 + (t1 * g.dilation[1]) as i64) as usize;
                        let row = &src[(i0 * n1 + i1) * n2..][..n2];
                        for t2 in a2..b2 {
                            let i2 = (s2 + (t2 * g.dilation[2]) as i64) as usize;
                            let v = row[i2];
                            if best.is_none_or(|(b, _)| v > b) {
                                best = Some((v, [i0, i1, i2]));
                            }
                        }
                    }
                }
                if let Some((v, [i0, i1, i2])) = best {
                    *yv = v;
                    let local = if col_major {
                        i0 + i1 * n0 + i2 * n0 * n1
                    } else {
                        (i0 * n1 + i1) * n2 + i2
                    };
                    *iv = (p * pin + local) as i64;
                }
            }
        });
    (y, idx)
}

/// AveragePool over `planes` planes.
fn avg_pool<F: Real>(x: &[F], planes: usize, g: &Geom, taps: &Taps, include_pad: bool) -> Vec<F> {
    let (pin, pout) = (g.in_size(), g.out_size());
    let mut y = vec![F::ZERO; planes * pout];
    if pout == 0 {
        return y;
    }
    let [_, n1, n2] = g.input;
    let [_, o1n, o2n] = g.output;
    y.par_chunks_mut(pout).enumerate().for_each(|(p, yp)| {
        let src = &x[p * pin..(p + 1) * pin];
        for (o, yv) in yp.iter_mut().enumerate() {
            let (o0, o1, o2) = (o / (o1n * o2n), (o / o2n) % o1n, o % o2n);
            let (a0, b0) = taps.inside[0][o0];
            let (a1, b1) = taps.inside[1][o1];
            let (a2, b2) = taps.inside[2][o2];
            let s0 = (o0 * g.stride[0]) as i64 - g.pad_begin[0];
            let s1 = (o1 * g.stride[1]) as i64 - g.pad_begin[1];
            let s2 = (o2 * g.stride[2]) as i64 - g.pad_begin[2];
            let mut sum = F::ZERO;
            for t0 in a0..b0 {
                let i0 = (s0 + (t0 * g.dilation[0]) as i64) as usize;
                for t1 in a1..b1 {
                    let i1 = (s1 + (t1 * g.dilation[1]) as i64) as usize;
                    let row = &src[(i0 * n1 + i1) * n2..][..n2];
                    for t2 in a2..b2 {
                        sum += row[(s2 + (t2 * g.dilation[2]) as i64) as usize];
                    }
                }
            }
            let count = if include_pad {
                taps.padded[0][o0] * taps.padded[1][o1] * taps.padded[2][o2]
            } else {
                (b0 - a0) * (b1 - a1) * (b2 - a2)
            };
            *yv = sum / F::narrow(count as f64);
        }
    });
    y
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::ops::AutoPad;

    fn win(k: &[usize], s: &[usize], p: &[usize], d: &[usize], auto_pad: AutoPad) -> Window {
        Window {
            kernel_shape: k.to_vec(),
            strides: s.to_vec(),
            dilations: d.to_vec(),
            pads: p.to_vec(),
            auto_pad,
        }
    }

    fn maxp(w: Window, ceil_mode: bool, storage_order: u8) -> Op {
        Op::MaxPool {
            window: w,
            ceil_mode,
            storage_order,
        }
    }

    fn avgp(w: Window, ceil_mode: bool, count_include_pad: bool) -> Op {
        Op::AveragePool {
            window: w,
            ceil_mode,
            count_include_pad,
        }
    }

    #[test]
    fn maxpool_values_and_indices() {
        // 4x4 iota, 2x2 kernel, stride 2.
        let op = maxp(win(&[2, 2], &[2, 2], &[], &[], AutoPad::NotSet), false, 0);
        let out = run(&op, &[Some(iota(&[1, 1, 4, 4]))], 2);
        close(&out[0], &[1, 1, 2, 2], &[5., 7., 13., 15.]);
        assert_eq!(out[1].view::<i64>(), &[5, 7, 13, 15]);
        // Column-major indices: h + w * H.
        let op = maxp(win(&[2, 2], &[2, 2], &[], &[], AutoPad::NotSet), false, 1);
        let out = run(&op, &[Some(iota(&[1, 2, 4, 4]))], 2);
        assert_eq!(out[1].view::<i64>(), &[5, 13, 7, 15, 21, 29, 23, 31]);
        // Padding never wins, even over negative values.
        let x = f(&[1, 1, 3], &[-3., -1., -2.]);
        let op = maxp(win(&[2], &[], &[1, 1], &[], AutoPad::NotSet), false, 0);
        let out = run(&op, &[Some(x)], 2);
        close(&out[0], &[1, 1, 4], &[-3., -1., -1., -2.]);
        assert_eq!(out[1].view::<i64>(), &[0, 1, 1, 2]);
    }

    #[test]
    fn maxpool_ceil_dilation_and_ints() {
        // test_maxpool_2d_ceil: 4x4 1..16, 3x3 kernel, stride 2, ceil -> 2x2.
        let x = f(
            &[1, 1, 4, 4],
            &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let op = maxp(win(&[3, 3], &[2, 2], &[], &[], AutoPad::NotSet), true, 0);
        close(
            &run(&op, &[Some(x.clone())], 1)[0],
            &[1, 1, 2, 2],
            &[11., 12., 15., 16.],
        );
        // test_maxpool_2d_dilations: 2x2 kernel, dilation 2.
        let op = maxp(
            win(&[2, 2], &[1, 1], &[], &[2, 2], AutoPad::NotSet),
            false,
            0,
        );
        close(
            &run(&op, &[Some(x.clone())], 1)[0],
            &[1, 1, 2, 2],
            &[11., 12., 15., 16.],
        );
        // ceil mode drops a window that would start in the right padding.
        let op = maxp(win(&[1, 1], &[2, 2], &[], &[], AutoPad::NotSet), true, 0);
        close(
            &run(&op, &[Some(f(&[1, 1, 2, 2], &[1., 2., 3., 4.]))], 1)[0],
            &[1, 1, 1, 1],
            &[1.],
        );
        let u = Tensor::from_vec(vec![1, 1, 4], vec![3u8, 200, 7, 9]).unwrap();
        let op = maxp(win(&[2], &[2], &[], &[], AutoPad::NotSet), false, 0);
        assert_eq!(run(&op, &[Some(u)], 1)[0].view::<u8>(), &[200, 9]);
        let i = Tensor::from_vec(vec![1, 1, 3], vec![-3i8, -5, -4]).unwrap();
        let op = maxp(win(&[2], &[1], &[], &[], AutoPad::NotSet), false, 0);
        assert_eq!(run(&op, &[Some(i)], 1)[0].view::<i8>(), &[-3, -4]);
    }

    #[test]
    fn maxpool_same_upper_3d() {
        let op = maxp(win(&[2, 2, 2], &[], &[], &[], AutoPad::SameUpper), false, 0);
        let out = run(&op, &[Some(iota(&[1, 1, 2, 2, 2]))], 2);
        close(&out[0], &[1, 1, 2, 2, 2], &[7., 7., 7., 7., 7., 7., 7., 7.]);
        assert_eq!(out[1].view::<i64>()[0], 7);
    }

    #[test]
    fn avgpool_pads_and_ceil() {
        // 3x3 iota, 3x3 kernel, pads 1: corner averages.
        let x = iota(&[1, 1, 3, 3]);
        let op = avgp(
            win(&[3, 3], &[], &[1, 1, 1, 1], &[], AutoPad::NotSet),
            false,
            false,
        );
        let y = run1(&op, std::slice::from_ref(&x));
        close(&y, &[1, 1, 3, 3], &[2., 2.5, 3., 3.5, 4., 4.5, 5., 5.5, 6.]);
        let op = avgp(
            win(&[3, 3], &[], &[1, 1, 1, 1], &[], AutoPad::NotSet),
            false,
            true,
        );
        let y = run1(&op, &[x]);
        close(
            &y,
            &[1, 1, 3, 3],
            &[
                8. / 9.,
                15. / 9.,
                12. / 9.,
                21. / 9.,
                4.,
                27. / 9.,
                20. / 9.,
                33. / 9.,
                24. / 9.,
            ],
        );
        // test_averagepool_2d_ceil_last_window_starts_on_pad.
        let x = f(&[1, 1, 2, 2], &[0.858, 0.0786, 0.2692, 0.1537]);
        let op = avgp(
            win(&[3, 3], &[3, 3], &[1, 1, 1, 1], &[], AutoPad::NotSet),
            true,
            true,
        );
        close(
            &run1(&op, &[x]),
            &[1, 1, 1, 1],
            &[(0.858 + 0.0786 + 0.2692 + 0.1537) / 9.0],
        );
        // Ceil mode: the last window is cut at the input end and not counted past it.
        let x = f(&[1, 1, 5], &[1., 2., 3., 4., 5.]);
        let op = avgp(win(&[2], &[2], &[], &[], AutoPad::NotSet), true, true);
        close(&run1(&op, &[x]), &[1, 1, 3], &[1.5, 3.5, 5.]);
    }

    #[test]
    fn avgpool_same_and_dtypes() {
        let x = f(&[1, 1, 4], &[1., 2., 3., 4.]);
        let op = avgp(win(&[3], &[], &[], &[], AutoPad::SameLower), false, false);
        close(
            &run1(&op, std::slice::from_ref(&x)),
            &[1, 1, 4],
            &[1.5, 2., 3., 3.5],
        );
        let op = avgp(win(&[2], &[], &[], &[], AutoPad::SameUpper), false, false);
        let y = run1(&op, &[x.cast(DType::F16)]);
        assert_eq!(y.dtype(), DType::F16);
        close(&y, &[1, 1, 4], &[1.5, 2.5, 3.5, 4.]);
        let i = Tensor::from_vec(vec![1, 1, 2], vec![1u8, 2]).unwrap();
        assert!(eval_op(&op, &[Some(i)], 1).is_err());
    }

    #[test]
    fn global_pools() {
        let x = iota(&[2, 2, 2, 2]);
        close(
            &run1(&Op::GlobalAveragePool, std::slice::from_ref(&x)),
            &[2, 2, 1, 1],
            &[1.5, 5.5, 9.5, 13.5],
        );
        close(
            &run1(&Op::GlobalMaxPool, &[x.cast(DType::F64)]),
            &[2, 2, 1, 1],
            &[3., 7., 11., 15.],
        );
        let t = infer_types(
            &Op::GlobalAveragePool,
            &[Some(sty(DType::F32, &["N", "C", "H", "W"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["N", "C", "1", "1"]));
    }

    #[test]
    fn pool_infer_and_errors() {
        let op = maxp(
            win(&[3, 3], &[2, 2], &[1, 1, 1, 1], &[], AutoPad::NotSet),
            false,
            0,
        );
        let t = infer_types(&op, &[Some(sty(DType::F32, &["N", "64", "112", "112"]))], 2).unwrap();
        assert_eq!(t[0], sty(DType::F32, &["N", "64", "56", "56"]));
        assert_eq!(t[1], sty(DType::I64, &["N", "64", "56", "56"]));
        let op = avgp(
            win(&[3, 3], &[2, 2], &[], &[], AutoPad::NotSet),
            true,
            false,
        );
        let t = infer_types(&op, &[Some(ty(DType::F32, &[1, 1, 6, 6]))], 1).unwrap();
        assert_eq!(t[0], ty(DType::F32, &[1, 1, 3, 3]));
        assert!(infer_types(&op, &[Some(ty(DType::F32, &[1, 1, 6]))], 1).is_err());
        assert!(infer_types(&op, &[Some(ty(DType::I8, &[1, 1, 6, 6]))], 1).is_err());
        assert!(infer_types(&op, &[Some(ty(DType::F32, &[1, 1, 2, 2]))], 1).is_err());
        let none = avgp(Window::default(), false, false);
        assert!(matches!(
            infer_types(&none, &[Some(ty(DType::F32, &[1, 1, 2, 2]))], 1),
            Err(InferError::Attribute(_))
        ));
        assert!(eval_op(&none, &[Some(iota(&[1, 1, 2, 2]))], 1).is_err());
        let big = maxp(win(&[5], &[], &[], &[], AutoPad::NotSet), false, 0);
        assert!(eval_op(&big, &[Some(iota(&[1, 1, 3]))], 1).is_err());
    }
}
