//! Normalisations: BatchNormalization (inference), InstanceNormalization, LayerNormalization,
//! GroupNormalization, RMSNormalization, LpNormalization and LRN.
//!
//! Statistics (means, variances, norms, window sums) accumulate in f64; the result is rounded
//! once to the output dtype.

use super::{Real, fmt_dims, infer_same_dtype, load, same_dtype, store, with_real};
use crate::dtype::DType;
use crate::infer::{InferError, InferInput, input, norm_axis, opt_input, require_float};
use crate::interp::EvalError;
use crate::ops::{NormOp, Op};
use crate::opset::util::{axis, broadcast_offsets, opt, req};
use crate::tensor::Tensor;
use crate::types::{Dim, Shape, TensorType};
use rayon::prelude::*;

/// Output types of the normalisation ops.
pub(super) fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    _num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    let x = input(op, inputs, 0)?;
    let dtype = x.ty.dtype;
    require_float(op, dtype)?;
    let rank = x.ty.shape.rank();
    let dims = x.ty.shape.dims();
    let need_rank = |min: usize| -> Result<(), InferError> {
        match rank {
            Some(r) if r < min => Err(InferError::Shape(format!(
                "{} needs an input of rank ≥ {min}, got {}",
                op.name(),
                x.ty.shape
            ))),
            _ => Ok(()),
        }
    };
    // A float input whose dtype may differ from X (`T1`/`T2`/`V` in the spec).
    let float_input = |i: usize| -> Result<InferInput<'_>, InferError> {
        let t = input(op, inputs, i)?;
        require_float(op, t.ty.dtype)?;
        Ok(t)
    };
    // A per-channel input: 1-D with C (or `alt`) elements when both are static.
    let per_channel = |t: &InferInput<'_>, what: &str, alt: Option<usize>| {
        let c = dims.and_then(|d| d.get(1)).and_then(Dim::as_static);
        match t.ty.shape.dims() {
            Some(d) if d.len() != 1 => Err(InferError::Shape(format!(
                "{} {what} must be 1-D, got {}",
                op.name(),
                t.ty.shape
            ))),
            Some([Dim::Static(n)]) if c.is_some_and(|c| c != *n) && alt != Some(*n) => {
                Err(InferError::Shape(format!(
                    "{} {what} {} does not match the {} channels of X {}",
                    op.name(),
                    t.ty.shape,
                    c.unwrap_or(0),
                    x.ty.shape
                )))
            }
            _ => Ok(()),
        }
    };
    let same = TensorType {
        dtype,
        shape: x.ty.shape.clone(),
    };
    match op {
        Op::LpNormalization { axis, p } => {
            if !matches!(p, 1 | 2) {
                return Err(InferError::Attribute(format!(
                    "LpNormalization p must be 1 or 2, got {p}"
                )));
            }
            if let Some(r) = rank {
                norm_axis(*axis, r)?;
            }
            Ok(vec![same])
        }
        Op::Lrn { size, .. } => {
            if *size == 0 {
                return Err(InferError::Attribute("LRN size must be positive".into()));
            }
            need_rank(3)?;
            Ok(vec![same])
        }
        Op::Norm { op: nop, .. } => match nop {
            NormOp::BatchNormalization => {
                need_rank(2)?;
                for (i, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
                    per_channel(&float_input(i)?, what, None)?;
                }
                Ok(vec![same])
            }
            NormOp::InstanceNormalization => {
                need_rank(2)?;
                for (i, what) in [(1, "scale"), (2, "B")] {
                    let t = input(op, inputs, i)?;
                    infer_same_dtype(op, what, t.ty.dtype, dtype)?;
                    per_channel(&t, what, None)?;
                }
                Ok(vec![same])
            }
            NormOp::GroupNormalization { num_groups } => {
                need_rank(2)?;
                let g = *num_groups;
                if g == 0 {
                    return Err(InferError::Attribute(
                        "GroupNormalization num_groups must be positive".into(),
                    ));
                }
                if let Some(Dim::Static(c)) = dims.and_then(|d| d.get(1))
                    && c % g != 0
                {
                    return Err(InferError::Shape(format!(
                        "GroupNormalization channels {c} of X {} are not a multiple of \
                         num_groups {g}",
                        x.ty.shape
                    )));
                }
                for (i, what) in [(1, "scale"), (2, "bias")] {
                    let t = input(op, inputs, i)?;
                    infer_same_dtype(op, what, t.ty.dtype, dtype)?;
                    per_channel(&t, what, Some(g))?;
                }
                Ok(vec![same])
            }
            NormOp::LayerNormalization { axis } => {
                let scale = input(op, inputs, 1)?;
                infer_same_dtype(op, "Scale", scale.ty.dtype, dtype)?;
                let mut params = vec![scale];
                if let Some(b) = opt_input(inputs, 2) {
                    infer_same_dtype(op, "B", b.ty.dtype, dtype)?;
                    params.push(b);
                }
                let stat = match dims {
                    Some(d) => {
                        let a = norm_axis(*axis, d.len())?;
                        for p in &params {
                            check_unidirectional(op, &p.ty.shape, d)?;
                        }
                        let mut s = d[..a].to_vec();
                        s.resize(d.len(), Dim::Static(1));
                        Shape::Ranked(s)
                    }
                    None => Shape::Unranked,
                };
                let st = TensorType {
                    dtype: DType::F32,
                    shape: stat,
                };
                Ok(vec![same, st.clone(), st])
            }
            NormOp::RmsNormalization { axis } => {
                let scale = float_input(1)?;
                if let Some(d) = dims {
                    norm_axis(*axis, d.len())?;
                    check_unidirectional(op, &scale.ty.shape, d)?;
                }
                Ok(vec![TensorType {
                    dtype: scale.ty.dtype,
                    shape: x.ty.shape.clone(),
                }])
            }
        },
        _ => Err(InferError::Unsupported(op.name().to_string())),
    }
}

/// Checks that `p` broadcasts unidirectionally to `x` (static dims only).
fn check_unidirectional(op: &Op, p: &Shape, x: &[Dim]) -> Result<(), InferError> {
    let Some(pd) = p.dims() else { return Ok(()) };
    let bad = pd.len() > x.len()
        || pd
            .iter()
            .rev()
            .zip(x.iter().rev())
            .any(|(a, b)| match (a, b) {
                (Dim::Static(1), _) => false,
                (Dim::Static(a), Dim::Static(b)) => a != b,
                _ => false,
            });
    if bad {
        return Err(InferError::Shape(format!(
            "{} parameter {} does not broadcast to X {}",
            op.name(),
            p,
            fmt_dims(x)
        )));
    }
    Ok(())
}

/// How a parameter broadcast to X is indexed for element `i` of a row `r` of `cols`.
enum ParamIndex {
    /// The parameter spans exactly the normalised trailing dims: index = column.
    Column,
    /// General unidirectional broadcast: an offset per element of X.
    Offsets(Vec<usize>),
}

impl ParamIndex {
    fn new(
        op: &Op,
        p: &Tensor,
        x: &[usize],
        norm_rank: usize,
        cols: usize,
    ) -> Result<ParamIndex, EvalError> {
        let ps = p.shape();
        let ok = ps.len() <= x.len()
            && ps
                .iter()
                .rev()
                .zip(x.iter().rev())
                .all(|(&a, &b)| a == 1 || a == b);
        if !ok {
            return Err(EvalError::Invalid(format!(
                "{} parameter {ps:?} does not broadcast to X {x:?}",
                op.name()
            )));
        }
        // Spanning only the normalised (trailing `norm_rank`) dims with all of their
        // elements means the parameter index is the column index.
        let lead = ps.len().saturating_sub(norm_rank);
        if p.numel() == cols && ps[..lead].iter().all(|&d| d == 1) {
            return Ok(ParamIndex::Column);
        }
        Ok(ParamIndex::Offsets(broadcast_offsets(ps, x)))
    }

    fn get(&self, row: usize, col: usize, cols: usize) -> usize {
        match self {
            ParamIndex::Column => col,
            ParamIndex::Offsets(o) => o[row * cols + col],
        }
    }
}

/// Checks a per-channel parameter: 1-D of `c` elements (or `alt`).
fn channel_param<'a>(
    op: &Op,
    inputs: &'a [Option<Tensor>],
    i: usize,
    what: &str,
    c: usize,
    alt: Option<usize>,
) -> Result<&'a Tensor, EvalError> {
    let t = req(op, inputs, i)?;
    if !t.dtype().is_float() {
        return Err(super::bad_dtype(op, t.dtype()));
    }
    if t.rank() != 1 || (t.shape()[0] != c && Some(t.shape()[0]) != alt) {
        return Err(EvalError::Invalid(format!(
            "{} {what} {:?} does not match {c} channels",
            op.name(),
            t.shape()
        )));
    }
    Ok(t)
}

/// The elements of a float parameter as f64.
fn wide(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec()
}

/// Mean and (biased) variance of a slice, in f64.
fn moments<F: Real>(v: &[F]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|x| x.wide()).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|x| {
            let d = x.wide() - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, var)
}

/// Evaluates the normalisation ops.
pub(super) fn eval(
    op: &Op,
    inputs: &[Option<Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let x = req(op, inputs, 0)?;
    let dtype = x.dtype();
    if !dtype.is_float() {
        return Err(super::bad_dtype(op, dtype));
    }
    let shape = x.shape().to_vec();
    let need_rank = |min: usize| -> Result<(), EvalError> {
        if shape.len() < min {
            return Err(EvalError::Invalid(format!(
                "{} needs an input of rank ≥ {min}, got {shape:?}",
                op.name()
            )));
        }
        Ok(())
    };
    with_real!(dtype, F => {
        let xv = load::<F>(x);
        match op {
            Op::LpNormalization { axis: ax, p } => {
                let a = axis(*ax, shape.len())?;
                if !matches!(p, 1 | 2) {
                    return Err(EvalError::Invalid(format!("LpNormalization p must be 1 or 2, got {p}")));
                }
                let len = shape.get(a).copied().unwrap_or(1);
                let inner: usize = shape.get(a + 1..).map_or(1, |s| s.iter().product());
                let block = len * inner;
                let mut y = vec![F::ZERO; xv.len()];
                if block > 0 {
                    y.par_chunks_mut(block).zip(xv.par_chunks(block)).for_each(|(yb, xb)| {
                        for i in 0..inner {
                            let norm = if *p == 1 {
                                (0..len).map(|k| xb[k * inner + i].wide().abs()).sum::<f64>()
                            } else {
                                (0..len).map(|k| xb[k * inner + i].wide().powi(2)).sum::<f64>().sqrt()
                            };
                            for k in 0..len {
                                let v = xb[k * inner + i].wide();
                                yb[k * inner + i] = F::narrow(if norm == 0.0 { 0.0 } else { v / norm });
                            }
                        }
                    });
                }
                Ok(vec![store(dtype, shape, y)?])
            }
            Op::Lrn { alpha, beta, bias, size } => {
                need_rank(3)?;
                if *size == 0 {
                    return Err(EvalError::Invalid("LRN size must be positive".into()));
                }
                let c = shape[1];
                let s: usize = shape[2..].iter().product();
                let (before, after) = ((size - 1) / 2, size / 2);
                let k = *alpha as f64 / *size as f64;
                let (bias, beta) = (*bias as f64, *beta as f64);
                let mut y = vec![F::ZERO; xv.len()];
                if s > 0 {
                    y.par_chunks_mut(s).enumerate().for_each(|(plane, yp)| {
                        let (n, ci) = (plane / c, plane % c);
                        let lo = ci.saturating_sub(before);
                        let hi = (ci + after).min(c - 1);
                        let mut sq = vec![0f64; s];
                        for cc in lo..=hi {
                            let src = &xv[(n * c + cc) * s..][..s];
                            for (q, v) in sq.iter_mut().zip(src) {
                                *q += v.wide() * v.wide();
                            }
                        }
                        let src = &xv[plane * s..][..s];
                        for ((o, v), q) in yp.iter_mut().zip(src).zip(&sq) {
                            *o = F::narrow(v.wide() / (bias + k * q).powf(beta));
                        }
                    });
                }
                Ok(vec![store(dtype, shape, y)?])
            }
            Op::Norm { op: nop, epsilon } => {
                let eps = *epsilon as f64;
                match nop {
                    NormOp::BatchNormalization => {
                        need_rank(2)?;
                        let c = shape[1];
                        let p: Vec<Vec<f64>> = [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")]
                            .iter()
                            .map(|&(i, w)| channel_param(op, inputs, i, w, c, None).map(wide))
                            .collect::<Result<_, _>>()?;
                        let s: usize = shape[2..].iter().product();
                        let mut y = vec![F::ZERO; xv.len()];
                        if s > 0 {
                            y.par_chunks_mut(s).zip(xv.par_chunks(s)).enumerate().for_each(|(plane, (yp, xp))| {
                                let ci = plane % c;
                                let a = p[0][ci] / (p[3][ci] + eps).sqrt();
                                let (m, b) = (p[2][ci], p[1][ci]);
                                for (o, v) in yp.iter_mut().zip(xp) {
                                    *o = F::narrow((v.wide() - m) * a + b);
                                }
                            });
                        }
                        Ok(vec![store(dtype, shape, y)?])
                    }
                    NormOp::InstanceNormalization | NormOp::GroupNormalization { .. } => {
                        need_rank(2)?;
                        let c = shape[1];
                        let groups = match nop {
                            NormOp::GroupNormalization { num_groups } => *num_groups,
                            _ => c,
                        };
                        if groups == 0 || c % groups != 0 {
                            return Err(EvalError::Invalid(format!(
                                "{} channels {c} are not a multiple of {groups} groups",
                                op.name()
                            )));
                        }
                        let alt = matches!(nop, NormOp::GroupNormalization { .. }).then_some(groups);
                        let names = if alt.is_some() { ["scale", "bias"] } else { ["scale", "B"] };
                        let scale = channel_param(op, inputs, 1, names[0], c, alt)?;
                        let bias = channel_param(op, inputs, 2, names[1], c, alt)?;
                        same_dtype(op, names[0], scale, dtype)?;
                        same_dtype(op, names[1], bias, dtype)?;
                        let per_group = scale.numel() != c;
                        let bias_per_group = bias.numel() != c;
                        let (sv, bv) = (wide(scale), wide(bias));
                        let s: usize = shape[2..].iter().product();
                        let cg = c / groups;
                        let block = cg * s;
                        let mut y = vec![F::ZERO; xv.len()];
                        if block > 0 {
                            y.par_chunks_mut(block).zip(xv.par_chunks(block)).enumerate().for_each(|(bi, (yb, xb))| {
                                let gi = bi % groups;
                                let (mean, var) = moments(xb);
                                let inv = 1.0 / (var + eps).sqrt();
                                for (j, (o, v)) in yb.iter_mut().zip(xb).enumerate() {
                                    let ch = gi * cg + j / s;
                                    let sc = if per_group { sv[gi] } else { sv[ch] };
                                    let b = if bias_per_group { bv[gi] } else { bv[ch] };
                                    *o = F::narrow((v.wide() - mean) * inv * sc + b);
                                }
                            });
                        }
                        Ok(vec![store(dtype, shape, y)?])
                    }
                    NormOp::LayerNormalization { axis: ax } => {
                        let a = axis(*ax, shape.len())?;
                        let scale = req(op, inputs, 1)?;
                        same_dtype(op, "Scale", scale, dtype)?;
                        let bias = opt(inputs, 2);
                        if let Some(b) = bias {
                            same_dtype(op, "B", b, dtype)?;
                        }
                        let rows: usize = shape[..a].iter().product();
                        let cols: usize = shape[a..].iter().product();
                        let si = ParamIndex::new(op, scale, &shape, shape.len() - a, cols)?;
                        let bi = bias.map(|b| ParamIndex::new(op, b, &shape, shape.len() - a, cols)).transpose()?;
                        let sv = wide(scale);
                        let bv = bias.map(wide);
                        let mut y = vec![F::ZERO; xv.len()];
                        let mut mean = vec![0f32; rows];
                        let mut inv = vec![0f32; rows];
                        if cols > 0 {
                            y.par_chunks_mut(cols)
                                .zip(mean.par_iter_mut().zip(inv.par_iter_mut()))
                                .enumerate()
                                .for_each(|(r, (yr, (mo, io)))| {
                                    let xr = &xv[r * cols..][..cols];
                                    let (m, var) = moments(xr);
                                    let is = 1.0 / (var + eps).sqrt();
                                    *mo = m as f32;
                                    *io = is as f32;
                                    for (j, (o, v)) in yr.iter_mut().zip(xr).enumerate() {
                                        let mut t = (v.wide() - m) * is * sv[si.get(r, j, cols)];
                                        if let (Some(bi), Some(bv)) = (&bi, &bv) {
                                            t += bv[bi.get(r, j, cols)];
                                        }
                                        *o = F::narrow(t);
                                    }
                                });
                        }
                        let mut stat_shape = shape[..a].to_vec();
                        stat_shape.resize(shape.len(), 1);
                        Ok(vec![
                            store(dtype, shape, y)?,
                            Tensor::from_vec(stat_shape.clone(), mean)?,
                            Tensor::from_vec(stat_shape, inv)?,
                        ])
                    }
                    NormOp::RmsNormalization { axis: ax } => {
                        let a = axis(*ax, shape.len())?;
                        let scale = req(op, inputs, 1)?;
                        if !scale.dtype().is_float() {
                            return Err(super::bad_dtype(op, scale.dtype()));
                        }
                        let rows: usize = shape[..a].iter().product();
                        let cols: usize = shape[a..].iter().product();
                        let si = ParamIndex::new(op, scale, &shape, shape.len() - a, cols)?;
                        let sv = wide(scale);
                        let mut y = vec![0f64; xv.len()];
                        if cols > 0 {
                            y.par_chunks_mut(cols).enumerate().for_each(|(r, yr)| {
                                let xr = &xv[r * cols..][..cols];
                                let ms = xr.iter().map(|v| v.wide() * v.wide()).sum::<f64>() / cols as f64;
                                let inv = 1.0 / (ms + eps).sqrt();
                                for (j, (o, v)) in yr.iter_mut().zip(xr).enumerate() {
                                    *o = v.wide() * inv * sv[si.get(r, j, cols)];
                                }
                            });
                        }
                        let _ = rows;
                        Ok(vec![store(scale.dtype(), shape, y)?])
                    }
                }
            }
            _ => Err(EvalError::Unsupported(op.name().to_string())),
        }
    }, else Err(super::bad_dtype(op, dtype)))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn norm(op: NormOp, epsilon: f32) -> Op {
        Op::Norm { op, epsilon }
    }

    #[test]
    fn batchnorm_inference() {
        // ONNX example: x [1,2,1,3], scale [1, 1.5], bias [0, 1], mean [0, 3], var [1, 1.5].
        let x = f(&[1, 2, 1, 3], &[-1., 0., 1., 2., 3., 4.]);
        let y = run1(
            &norm(NormOp::BatchNormalization, 0.0),
            &[
                x,
                f(&[2], &[1., 1.5]),
                f(&[2], &[0., 1.]),
                f(&[2], &[0., 3.]),
                f(&[2], &[1., 1.5]),
            ],
        );
        let a = 1.5 / 1.5f64.sqrt();
        close(&y, &[1, 2, 1, 3], &[-1., 0., 1., 1. - a, 1., 1. + a]);
        let e = eval_op(
            &norm(NormOp::BatchNormalization, 0.0),
            &[
                Some(iota(&[1, 3])),
                Some(iota(&[2])),
                Some(iota(&[3])),
                Some(iota(&[3])),
                Some(iota(&[3])),
            ],
            1,
        );
        assert!(e.is_err());
    }

    #[test]
    fn instance_and_group_norm() {
        // Each plane [0, 2] normalises to [-1, 1] (eps 0).
        let x = f(&[1, 2, 2], &[0., 2., 5., 7.]);
        let y = run1(
            &norm(NormOp::InstanceNormalization, 0.0),
            &[x.clone(), f(&[2], &[1., 2.]), f(&[2], &[0., 10.])],
        );
        close(&y, &[1, 2, 2], &[-1., 1., 8., 12.]);
        // One group over both channels: mean 3.5, var 8.25.
        let y = run1(
            &norm(NormOp::GroupNormalization { num_groups: 1 }, 0.0),
            &[x.clone(), f(&[2], &[1., 1.]), f(&[2], &[0., 0.])],
        );
        let sd = 7.25f64.sqrt();
        close(&y, &[1, 2, 2], &[-3.5 / sd, -1.5 / sd, 1.5 / sd, 3.5 / sd]);
        // Two groups = instance norm; per-channel scale/bias.
        let y = run1(
            &norm(NormOp::GroupNormalization { num_groups: 2 }, 0.0),
            &[x.clone(), f(&[2], &[1., 2.]), f(&[2], &[0., 10.])],
        );
        close(&y, &[1, 2, 2], &[-1., 1., 8., 12.]);
        let e = eval_op(
            &norm(NormOp::GroupNormalization { num_groups: 3 }, 0.0),
            &[Some(x), Some(iota(&[2])), Some(iota(&[2]))],
            1,
        );
        assert!(e.is_err());
    }

    #[test]
    fn layer_norm_outputs() {
        let x = f(&[2, 2], &[1., 3., 2., 2.]);
        let op = norm(NormOp::LayerNormalization { axis: -1 }, 0.0);
        let out = run(
            &op,
            &[
                Some(x.clone()),
                Some(f(&[2], &[2., 1.])),
                Some(f(&[2], &[0., 1.])),
            ],
            3,
        );
        close(&out[0], &[2, 2], &[-2., 2., f64::NAN, f64::NAN]);
        close(&out[1], &[2, 1], &[2., 2.]);
        assert_eq!(out[2].dtype(), DType::F32);
        assert_eq!(out[2].to_f64_vec()[0], 1.0);
        // axis 0 normalises everything; no bias; eps keeps the constant row finite.
        let op = norm(NormOp::LayerNormalization { axis: 0 }, 1.0);
        let out = run(&op, &[Some(x), Some(f(&[1], &[1.]))], 3);
        // mean 2, var 0.5 -> inv 1/sqrt(1.5)
        let i = 1.0 / 1.5f64.sqrt();
        close(&out[0], &[2, 2], &[-i, i, 0., 0.]);
        close(&out[2], &[1, 1], &[i]);
        let t = infer_types(
            &norm(NormOp::LayerNormalization { axis: 1 }, 1e-5),
            &[
                Some(sty(DType::F16, &["B", "S", "8"])),
                Some(ty(DType::F16, &[8])),
            ],
            3,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F16, &["B", "S", "8"]));
        assert_eq!(t[1], sty(DType::F32, &["B", "1", "1"]));
        let e = infer_types(
            &norm(NormOp::LayerNormalization { axis: 1 }, 1e-5),
            &[Some(ty(DType::F32, &[2, 3, 8])), Some(ty(DType::F32, &[7]))],
            1,
        );
        assert!(matches!(e, Err(InferError::Shape(_))));
    }

    #[test]
    fn rms_norm() {
        let x = f(&[1, 2], &[3., 4.]);
        let op = norm(NormOp::RmsNormalization { axis: -1 }, 0.0);
        // rms = sqrt(12.5)
        let r = 12.5f64.sqrt();
        close(
            &run1(&op, &[x.clone(), f(&[2], &[1., 2.])]),
            &[1, 2],
            &[3. / r, 8. / r],
        );
        let y = run1(&op, &[x.cast(DType::F64), f(&[1], &[1.]).cast(DType::F16)]);
        assert_eq!(y.dtype(), DType::F16);
    }

    #[test]
    fn lp_norm_and_lrn() {
        let x = f(&[2, 2], &[3., -4., 0., 0.]);
        close(
            &run1(
                &Op::LpNormalization { axis: 1, p: 2 },
                std::slice::from_ref(&x),
            ),
            &[2, 2],
            &[0.6, -0.8, 0., 0.],
        );
        close(
            &run1(
                &Op::LpNormalization { axis: -1, p: 1 },
                std::slice::from_ref(&x),
            ),
            &[2, 2],
            &[3. / 7., -4. / 7., 0., 0.],
        );
        close(
            &run1(
                &Op::LpNormalization { axis: 0, p: 1 },
                std::slice::from_ref(&x),
            ),
            &[2, 2],
            &[1., -1., 0., 0.],
        );
        assert!(
            eval_op(
                &Op::LpNormalization { axis: 2, p: 2 },
                &[Some(x.clone())],
                1
            )
            .is_err()
        );
        assert!(eval_op(&Op::LpNormalization { axis: 0, p: 3 }, &[Some(x)], 1).is_err());
        // LRN, size 2: channel c sums c-0 .. c+1.
        let x = f(&[1, 3, 1, 1], &[1., 2., 3.]);
        let op = Op::Lrn {
            alpha: 2.0,
            beta: 1.0,
            bias: 1.0,
            size: 2,
        };
        close(
            &run1(&op, &[x]),
            &[1, 3, 1, 1],
            &[1. / 6., 2. / 14., 3. / 10.],
        );
    }
}
