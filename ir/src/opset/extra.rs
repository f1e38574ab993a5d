//! Smaller ops that fit no other family: the Bitwise ops, CumProd, LpPool, Swish, Compress,
//! CenterCropPad, ReverseSequence, Shrink, MeanVarianceNormalization and the signal windows
//! (HannWindow, HammingWindow, BlackmanWindow).
//!
//! Float results are computed in f64 and rounded once (f16/bf16 through f64 too); integers are
//! exact and wrap like their type.

use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, broadcast_shapes, input, norm_axis};
use crate::interp::EvalError;
use crate::ops::{BitwiseOp, GridPadding, GridSampleMode, Op, WindowKind};
use crate::opset::util::{axis as eval_axis, broadcast_map2, req, strides};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};

fn inv(msg: String) -> EvalError {
    EvalError::Invalid(msg)
}

fn arity_infer(op: &Op, n: usize, lo: usize, hi: usize) -> Result<(), InferError> {
    if n < lo || n > hi {
        return Err(InferError::Arity(format!(
            "{} takes {lo}..={hi} inputs, the node has {n}",
            op.name()
        )));
    }
    Ok(())
}

fn arity_eval(op: &Op, n: usize, lo: usize, hi: usize) -> Result<(), EvalError> {
    if n < lo || n > hi {
        return Err(inv(format!(
            "{} takes {lo}..={hi} inputs, the node has {n}",
            op.name()
        )));
    }
    Ok(())
}

/// Output types of the ops of this module.
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    _num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    let dt_err = |d: DType, what: &str| {
        InferError::Dtype(format!("{} needs {what} input, got {d}", op.name()))
    };
    match op {
        Op::Bitwise(b) => {
            let n = if *b == BitwiseOp::Not { 1 } else { 2 };
            arity_infer(op, inputs.len(), n, n)?;
            let a = input(op, inputs, 0)?;
            if !a.ty.dtype.is_int() {
                return Err(dt_err(a.ty.dtype, "an integer"));
            }
            if n == 1 {
                return Ok(vec![a.ty.clone()]);
            }
            let c = input(op, inputs, 1)?;
            if c.ty.dtype != a.ty.dtype {
                return Err(InferError::Dtype(format!(
                    "{} inputs differ in dtype: {} and {}",
                    op.name(),
                    a.ty.dtype,
                    c.ty.dtype
                )));
            }
            Ok(vec![TensorType {
                dtype: a.ty.dtype,
                shape: broadcast_shapes(&a.ty.shape, &c.ty.shape)?,
            }])
        }
        Op::CumProd { .. } => {
            arity_infer(op, inputs.len(), 2, 2)?;
            let x = input(op, inputs, 0)?;
            let ax = input(op, inputs, 1)?;
            if !(x.ty.dtype.is_float() || x.ty.dtype.is_int()) {
                return Err(dt_err(x.ty.dtype, "a numeric"));
            }
            if !ax.ty.dtype.is_int() {
                return Err(InferError::Dtype(format!(
                    "CumProd axis must be int32 or int64, got {}",
                    ax.ty.dtype
                )));
            }
            if let Some(s) = ax.ty.shape.as_static()
                && s.iter().product::<usize>() != 1
            {
                return Err(InferError::Shape(format!(
                    "CumProd axis must be a scalar, got shape {s:?}"
                )));
            }
            if let Some(r) = x.ty.shape.rank() {
                if r == 0 {
                    return Err(InferError::Shape(
                        "CumProd needs an input of rank at least 1".into(),
                    ));
                }
                if let Some(a) = ax.value.and_then(Tensor::scalar_i64) {
                    norm_axis(a, r)?;
                }
            }
            Ok(vec![x.ty.clone()])
        }
        Op::LpPool {
            window, ceil_mode, ..
        } => {
            arity_infer(op, inputs.len(), 1, 1)?;
            let avg = Op::AveragePool {
                window: window.clone(),
                ceil_mode: *ceil_mode,
                count_include_pad: false,
            };
            crate::infer::infer(&avg, inputs, 1)
        }
        Op::Swish { .. } | Op::MeanVarianceNormalization { .. } => {
            arity_infer(op, inputs.len(), 1, 1)?;
            let x = input(op, inputs, 0)?;
            if !x.ty.dtype.is_float() {
                return Err(dt_err(x.ty.dtype, "a float"));
            }
            if let (Op::MeanVarianceNormalization { axes }, Some(r)) = (op, x.ty.shape.rank()) {
                for &a in axes {
                    norm_axis(a, r)?;
                }
            }
            Ok(vec![x.ty.clone()])
        }
        Op::Shrink { .. } => {
            arity_infer(op, inputs.len(), 1, 1)?;
            let x = input(op, inputs, 0)?;
            if !(x.ty.dtype.is_float() || x.ty.dtype.is_int()) {
                return Err(dt_err(x.ty.dtype, "a numeric"));
            }
            Ok(vec![x.ty.clone()])
        }
        Op::Compress { axis } => {
            arity_infer(op, inputs.len(), 2, 2)?;
            let x = input(op, inputs, 0)?;
            let c = input(op, inputs, 1)?;
            if c.ty.dtype != DType::Bool {
                return Err(InferError::Dtype(format!(
                    "Compress condition must be bool, got {}",
                    c.ty.dtype
                )));
            }
            if let Some(r) = c.ty.shape.rank()
                && r != 1
            {
                return Err(InferError::Shape(format!(
                    "Compress condition must be 1-D, got {}",
                    c.ty.shape
                )));
            }
            let kept = c.value.map(|t| {
                t.view::<crate::dtype::Bool8>()
                    .iter()
                    .filter(|b| b.get())
                    .count()
            });
            let kd = kept.map_or(Dim::Unknown, Dim::Static);
            match axis {
                None => Ok(vec![TensorType {
                    dtype: x.ty.dtype,
                    shape: Shape::Ranked(vec![kd]),
                }]),
                Some(a) => {
                    let Some(d) = x.ty.shape.dims() else {
                        return Ok(vec![TensorType::unranked(x.ty.dtype)]);
                    };
                    let a = norm_axis(*a, d.len())?;
                    if d.is_empty() {
                        return Err(InferError::Shape(
                            "Compress with an axis needs an input of rank ≥ 1".into(),
                        ));
                    }
                    let mut out = d.to_vec();
                    out[a] = kd;
                    Ok(vec![TensorType {
                        dtype: x.ty.dtype,
                        shape: Shape::Ranked(out),
                    }])
                }
            }
        }
        Op::CenterCropPad { axes } => {
            arity_infer(op, inputs.len(), 2, 2)?;
            let x = input(op, inputs, 0)?;
            let s = input(op, inputs, 1)?;
            if !s.ty.dtype.is_int() {
                return Err(InferError::Dtype(format!(
                    "CenterCropPad shape must be int32 or int64, got {}",
                    s.ty.dtype
                )));
            }
            let Some(d) = x.ty.shape.dims() else {
                return Ok(vec![TensorType::unranked(x.ty.dtype)]);
            };
            let r = d.len();
            let ax = crop_axes(axes, r).map_err(InferError::Attribute)?;
            let mut out = d.to_vec();
            match s.value {
                Some(v) => {
                    let v = v.to_i64_vec();
                    if v.len() != ax.len() {
                        return Err(InferError::Shape(format!(
                            "CenterCropPad shape has {} values for {} axes",
                            v.len(),
                            ax.len()
                        )));
                    }
                    for (&a, &n) in ax.iter().zip(&v) {
                        out[a] = Dim::Static(usize::try_from(n).map_err(|_| {
                            InferError::Shape(format!("CenterCropPad shape has negative {n}"))
                        })?);
                    }
                }
                None => {
                    for &a in &ax {
                        out[a] = Dim::Unknown;
                    }
                }
            }
            Ok(vec![TensorType {
                dtype: x.ty.dtype,
                shape: Shape::Ranked(out),
            }])
        }
        Op::ReverseSequence {
            batch_axis,
            time_axis,
        } => {
            arity_infer(op, inputs.len(), 2, 2)?;
            let x = input(op, inputs, 0)?;
            let l = input(op, inputs, 1)?;
            if l.ty.dtype != DType::I64 {
                return Err(InferError::Dtype(format!(
                    "ReverseSequence sequence_lens must be int64, got {}",
                    l.ty.dtype
                )));
            }
            rs_axes(*batch_axis, *time_axis).map_err(InferError::Attribute)?;
            if let Some(r) = x.ty.shape.rank()
                && r < 2
            {
                return Err(InferError::Shape(format!(
                    "ReverseSequence needs an input of rank ≥ 2, got {}",
                    x.ty.shape
                )));
            }
            Ok(vec![x.ty.clone()])
        }
        Op::SignalWindow {
            output_datatype, ..
        } => {
            arity_infer(op, inputs.len(), 1, 1)?;
            let s = input(op, inputs, 0)?;
            if !s.ty.dtype.is_int() {
                return Err(InferError::Dtype(format!(
                    "{} size must be int32 or int64, got {}",
                    op.name(),
                    s.ty.dtype
                )));
            }
            if *output_datatype == DType::Bool {
                return Err(InferError::Attribute(format!(
                    "{} output_datatype must be numeric",
                    op.name()
                )));
            }
            let d = match s.value.and_then(Tensor::scalar_i64) {
                Some(n) if n >= 0 => Dim::Static(n as usize),
                Some(n) => {
                    return Err(InferError::Shape(format!(
                        "{} size must be non-negative, got {n}",
                        op.name()
                    )));
                }
                None => Dim::Unknown,
            };
            Ok(vec![TensorType {
                dtype: *output_datatype,
                shape: Shape::Ranked(vec![d]),
            }])
        }
        Op::AffineGrid { .. } => {
            arity_infer(op, inputs.len(), 2, 2)?;
            let th = input(op, inputs, 0)?;
            let sz = input(op, inputs, 1)?;
            if !th.ty.dtype.is_float() {
                return Err(dt_err(th.ty.dtype, "a float theta"));
            }
            if sz.ty.dtype != DType::I64 {
                return Err(InferError::Dtype(format!(
                    "AffineGrid size must be int64, got {}",
                    sz.ty.dtype
                )));
            }
            let Some(v) = sz.value.map(Tensor::to_i64_vec) else {
                let rank = match sz.ty.shape.as_static().as_deref() {
                    Some([4]) => 4,
                    Some([5]) => 5,
                    _ => return Ok(vec![TensorType::unranked(th.ty.dtype)]),
                };
                let mut d = vec![Dim::Unknown; rank];
                d[rank - 1] = Dim::Static(rank - 2);
                if let Some(td) = th.ty.shape.dims()
                    && !td.is_empty()
                {
                    d[0] = td[0].clone();
                }
                return Ok(vec![TensorType {
                    dtype: th.ty.dtype,
                    shape: Shape::Ranked(d),
                }]);
            };
            let out = affine_shape(&v).map_err(InferError::Shape)?;
            Ok(vec![TensorType::fixed(th.ty.dtype, &out)])
        }
        Op::Col2Im { .. } => {
            arity_infer(op, inputs.len(), 3, 3)?;
            let x = input(op, inputs, 0)?;
            let img = input(op, inputs, 1)?;
            let blk = input(op, inputs, 2)?;
            if img.ty.dtype != DType::I64 || blk.ty.dtype != DType::I64 {
                return Err(InferError::Dtype(
                    "Col2Im image_shape and block_shape must be int64".into(),
                ));
            }
            let Some(d) = x.ty.shape.dims() else {
                return Ok(vec![TensorType::unranked(x.ty.dtype)]);
            };
            if d.len() != 3 {
                return Err(InferError::Shape(format!(
                    "Col2Im needs a 3-D input, got {}",
                    x.ty.shape
                )));
            }
            let Some(iv) = img.value.map(Tensor::to_i64_vec) else {
                return Ok(vec![TensorType::unranked(x.ty.dtype)]);
            };
            let mut out = vec![d[0].clone()];
            let c = match (&d[1], blk.value.map(Tensor::to_i64_vec)) {
                (Dim::Static(ck), Some(b)) => {
                    let k: i64 = b.iter().product();
                    if k <= 0 || *ck as i64 % k != 0 {
                        return Err(InferError::Shape(format!(
                            "Col2Im input dim 1 ({ck}) is not divisible by the block size {k}"
                        )));
                    }
                    Dim::Static(*ck / k as usize)
                }
                _ => Dim::Unknown,
            };
            out.push(c);
            for v in iv {
                out.push(Dim::Static(usize::try_from(v).map_err(|_| {
                    InferError::Shape(format!("Col2Im image_shape has negative {v}"))
                })?));
            }
            Ok(vec![TensorType {
                dtype: x.ty.dtype,
                shape: Shape::Ranked(out),
            }])
        }
        Op::GridSample { .. } => {
            arity_infer(op, inputs.len(), 2, 2)?;
            let x = input(op, inputs, 0)?;
            let g = input(op, inputs, 1)?;
            if !x.ty.dtype.is_float() || !g.ty.dtype.is_float() {
                return Err(InferError::Dtype(format!(
                    "GridSample needs float X and grid, got {} and {}",
                    x.ty.dtype, g.ty.dtype
                )));
            }
            let (Some(xd), Some(gd)) = (x.ty.shape.dims(), g.ty.shape.dims()) else {
                return Ok(vec![TensorType::unranked(x.ty.dtype)]);
            };
            if xd.len() < 3 || gd.len() != xd.len() {
                return Err(InferError::Shape(format!(
                    "GridSample needs X of rank ≥ 3 and a grid of the same rank, got {} and {}",
                    x.ty.shape, g.ty.shape
                )));
            }
            if let Some(r) = gd[gd.len() - 1].as_static()
                && r != xd.len() - 2
            {
                return Err(InferError::Shape(format!(
                    "GridSample grid's last dim must be {}, got {r}",
                    xd.len() - 2
                )));
            }
            let mut out = vec![xd[0].clone(), xd[1].clone()];
            out.extend_from_slice(&gd[1..gd.len() - 1]);
            Ok(vec![TensorType {
                dtype: x.ty.dtype,
                shape: Shape::Ranked(out),
            }])
        }
        _ => Err(InferError::Unsupported(op.name().to_string())),
    }
}

/// Normalised, distinct CenterCropPad axes (empty = all axes).
fn crop_axes(axes: &[i64], r: usize) -> Result<Vec<usize>, String> {
    if axes.is_empty() {
        return Ok((0..r).collect());
    }
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = if a < 0 { a + r as i64 } else { a };
        if n < 0 || n >= r as i64 {
            return Err(format!(
                "CenterCropPad axis {a} is out of range for rank {r}"
            ));
        }
        if out.contains(&(n as usize)) {
            return Err(format!("CenterCropPad axes {axes:?} repeat an axis"));
        }
        out.push(n as usize);
    }
    Ok(out)
}

/// Checks ReverseSequence's axes.
fn rs_axes(b: i64, t: i64) -> Result<(usize, usize), String> {
    if !matches!((b, t), (0, 1) | (1, 0)) {
        return Err(format!(
            "ReverseSequence batch_axis/time_axis must be 0/1 or 1/0, got {b}/{t}"
        ));
    }
    Ok((b as usize, t as usize))
}

/// Evaluates the ops of this module.
pub fn eval(
    op: &Op,
    inputs: &[Option<Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let dt_err = |d: DType, what: &str| inv(format!("{} needs {what} input, got {d}", op.name()));
    let out = match op {
        Op::Bitwise(b) => {
            let n = if *b == BitwiseOp::Not { 1 } else { 2 };
            arity_eval(op, inputs.len(), n, n)?;
            let a = req(op, inputs, 0)?;
            if !a.dtype().is_int() {
                return Err(dt_err(a.dtype(), "an integer"));
            }
            if n == 1 {
                let v: Vec<u64> = a.to_i64_vec().into_iter().map(|x| !x as u64).collect();
                return Ok(vec![from_i64_bits(a.dtype(), a.shape().to_vec(), &v)?]);
            }
            let c = req(op, inputs, 1)?;
            if c.dtype() != a.dtype() {
                return Err(inv(format!(
                    "{} inputs differ in dtype: {} and {}",
                    op.name(),
                    a.dtype(),
                    c.dtype()
                )));
            }
            let b = *b;
            crate::dispatch!(a.dtype(), T => {
                broadcast_map2::<T, T, T>(a, c, |x, y| {
                    let (x, y) = (x.to_i64(), y.to_i64());
                    T::from_i64(match b {
                        BitwiseOp::And => x & y,
                        BitwiseOp::Or => x | y,
                        _ => x ^ y,
                    })
                })?
            })
        }
        Op::CumProd { exclusive, reverse } => cumprod(op, *exclusive, *reverse, inputs)?,
        Op::LpPool {
            window,
            ceil_mode,
            p,
        } => {
            arity_eval(op, inputs.len(), 1, 1)?;
            let x = req(op, inputs, 0)?;
            if !x.dtype().is_float() {
                return Err(dt_err(x.dtype(), "a float"));
            }
            let p = *p;
            if p <= 0 {
                return Err(inv(format!("LpPool p must be positive, got {p}")));
            }
            // Padding counts as zeros in the window sum: average over the full kernel.
            let pf = p as f64;
            let powed = map_float(x, |v| v.abs().powf(pf))?;
            let avg = Op::AveragePool {
                window: window.clone(),
                ceil_mode: *ceil_mode,
                count_include_pad: true,
            };
            let y = crate::interp::eval_op(&avg, &[Some(powed)], 1)?;
            let kn: usize = window.kernel_shape.iter().product();
            let kn = kn as f64;
            map_float(&y[0], |v| (kn * v).powf(1.0 / pf))?
        }
        Op::Swish { alpha } => {
            arity_eval(op, inputs.len(), 1, 1)?;
            let x = req(op, inputs, 0)?;
            if !x.dtype().is_float() {
                return Err(dt_err(x.dtype(), "a float"));
            }
            let a = *alpha as f64;
            map_float(x, |v| v / (1.0 + (-a * v).exp()))?
        }
        Op::Shrink { bias, lambd } => {
            arity_eval(op, inputs.len(), 1, 1)?;
            let x = req(op, inputs, 0)?;
            if !(x.dtype().is_float() || x.dtype().is_int()) {
                return Err(dt_err(x.dtype(), "a numeric"));
            }
            let (b, l) = (*bias as f64, *lambd as f64);
            crate::dispatch!(x.dtype(), T => {
                let y: Vec<T> = x.view::<T>().iter().map(|&v| {
                    let f = v.to_f64();
                    if f < -l {
                        T::round_from_f64(f + b)
                    } else if f > l {
                        T::round_from_f64(f - b)
                    } else {
                        T::zero()
                    }
                }).collect();
                Tensor::from_vec(x.shape().to_vec(), y)?
            })
        }
        Op::MeanVarianceNormalization { axes } => {
            arity_eval(op, inputs.len(), 1, 1)?;
            let x = req(op, inputs, 0)?;
            if !x.dtype().is_float() {
                return Err(dt_err(x.dtype(), "a float"));
            }
            mvn(x, axes)?
        }
        Op::Compress { axis } => {
            arity_eval(op, inputs.len(), 2, 2)?;
            compress(req(op, inputs, 0)?, req(op, inputs, 1)?, *axis)?
        }
        Op::CenterCropPad { axes } => {
            arity_eval(op, inputs.len(), 2, 2)?;
            center_crop_pad(req(op, inputs, 0)?, req(op, inputs, 1)?, axes)?
        }
        Op::ReverseSequence {
            batch_axis,
            time_axis,
        } => {
            arity_eval(op, inputs.len(), 2, 2)?;
            let (b, t) = rs_axes(*batch_axis, *time_axis).map_err(inv)?;
            reverse_sequence(req(op, inputs, 0)?, req(op, inputs, 1)?, b, t)?
        }
        Op::SignalWindow {
            kind,
            periodic,
            output_datatype,
        } => {
            arity_eval(op, inputs.len(), 1, 1)?;
            let s = req(op, inputs, 0)?;
            if !s.dtype().is_int() {
                return Err(dt_err(s.dtype(), "an integer size"));
            }
            let n = s
                .scalar_i64()
                .ok_or_else(|| inv(format!("{} size must be a scalar", op.name())))?;
            if n < 0 {
                return Err(inv(format!(
                    "{} size must be non-negative, got {n}",
                    op.name()
                )));
            }
            if *output_datatype == DType::Bool {
                return Err(inv(format!(
                    "{} output_datatype must be numeric",
                    op.name()
                )));
            }
            let n = n as usize;
            checked_numel(&[n])?;
            let v = signal_window(*kind, *periodic, n);
            Tensor::from_vec(vec![n], v)?.cast(*output_datatype)
        }
        Op::AffineGrid { align_corners } => {
            arity_eval(op, inputs.len(), 2, 2)?;
            affine_grid(req(op, inputs, 0)?, req(op, inputs, 1)?, *align_corners)?
        }
        Op::Col2Im {
            dilations,
            pads,
            strides,
        } => {
            arity_eval(op, inputs.len(), 3, 3)?;
            col2im(
                req(op, inputs, 0)?,
                req(op, inputs, 1)?,
                req(op, inputs, 2)?,
                dilations,
                pads,
                strides,
            )?
        }
        Op::GridSample {
            mode,
            padding_mode,
            align_corners,
        } => {
            arity_eval(op, inputs.len(), 2, 2)?;
            grid_sample(
                req(op, inputs, 0)?,
                req(op, inputs, 1)?,
                *mode,
                *padding_mode,
                *align_corners,
            )?
        }
        _ => return Err(EvalError::Unsupported(op.name().to_string())),
    };
    Ok(vec![out])
}

/// AffineGrid's output shape for `size` = (N, C, [D,] H, W).
fn affine_shape(size: &[i64]) -> Result<Vec<usize>, String> {
    if size.len() != 4 && size.len() != 5 {
        return Err(format!(
            "AffineGrid size must have 4 or 5 values, got {size:?}"
        ));
    }
    let mut out = Vec::with_capacity(size.len());
    out.push(
        usize::try_from(size[0]).map_err(|_| format!("AffineGrid size {size:?} is negative"))?,
    );
    for &v in &size[2..] {
        out.push(usize::try_from(v).map_err(|_| format!("AffineGrid size {size:?} is negative"))?);
    }
    out.push(size.len() - 2);
    Ok(out)
}

/// AffineGrid: `grid[n, ..., i] = theta[n, i, :] · (x, y, [z,] 1)`.
fn affine_grid(theta: &Tensor, size: &Tensor, align: bool) -> Result<Tensor, EvalError> {
    if !theta.dtype().is_float() {
        return Err(inv(format!(
            "AffineGrid theta must be float, got {}",
            theta.dtype()
        )));
    }
    if size.dtype() != DType::I64 || size.rank() != 1 {
        return Err(inv(format!(
            "AffineGrid size must be a 1-D int64 tensor, got {} {:?}",
            size.dtype(),
            size.shape()
        )));
    }
    let sv = size.to_i64_vec();
    let out = affine_shape(&sv).map_err(inv)?;
    let nd = sv.len() - 2;
    let n = out[0];
    if theta.shape() != [n, nd, nd + 1] {
        return Err(inv(format!(
            "AffineGrid theta must have shape [{n}, {nd}, {}], got {:?}",
            nd + 1,
            theta.shape()
        )));
    }
    let total = checked_numel(&out)?;
    let sp = &out[1..=nd];
    let coord = |i: usize, s: usize| -> f64 {
        if align {
            if s <= 1 {
                -1.0
            } else {
                -1.0 + 2.0 * i as f64 / (s - 1) as f64
            }
        } else {
            -1.0 + (2 * i + 1) as f64 / s as f64
        }
    };
    let th = theta.to_f64_vec();
    let pts: usize = sp.iter().product();
    let mut y = vec![0f64; total];
    let mut k = 0;
    for b in 0..n {
        let t = &th[b * nd * (nd + 1)..][..nd * (nd + 1)];
        for p in 0..pts {
            // Homogeneous point: (x = last axis, y, [z = first axis], 1).
            let mut h = vec![1f64; nd + 1];
            let mut rem = p;
            for ax in (0..nd).rev() {
                h[nd - 1 - ax] = coord(rem % sp[ax], sp[ax]);
                rem /= sp[ax];
            }
            for i in 0..nd {
                y[k] = (0..=nd).map(|j| t[i * (nd + 1) + j] * h[j]).sum();
                k += 1;
            }
        }
    }
    Ok(Tensor::from_vec(out, y)?.cast(theta.dtype()))
}

/// Col2Im over any number of spatial axes.
fn col2im(
    x: &Tensor,
    img: &Tensor,
    blk: &Tensor,
    dil: &[usize],
    pads: &[usize],
    strides_a: &[usize],
) -> Result<Tensor, EvalError> {
    if !x.dtype().is_float() && !x.dtype().is_int() {
        return Err(inv(format!(
            "Col2Im needs a numeric input, got {}",
            x.dtype()
        )));
    }
    if x.rank() != 3 || img.rank() != 1 || blk.rank() != 1 {
        return Err(inv(format!(
            "Col2Im needs a 3-D input and 1-D image_shape/block_shape, got {:?}, {:?}, {:?}",
            x.shape(),
            img.shape(),
            blk.shape()
        )));
    }
    let to_us = |t: &Tensor, what: &str| -> Result<Vec<usize>, EvalError> {
        t.to_i64_vec()
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| inv(format!("Col2Im {what} has negative {v}"))))
            .collect()
    };
    let im = to_us(img, "image_shape")?;
    let k = to_us(blk, "block_shape")?;
    let nd = im.len();
    if k.len() != nd || nd == 0 {
        return Err(inv(format!(
            "Col2Im image_shape {im:?} and block_shape {k:?} differ in length"
        )));
    }
    let list = |v: &[usize], n: usize, def: usize, what: &str| -> Result<Vec<usize>, EvalError> {
        if v.is_empty() {
            Ok(vec![def; n])
        } else if v.len() == n {
            Ok(v.to_vec())
        } else {
            Err(inv(format!("Col2Im {what} {v:?} needs {n} values")))
        }
    };
    let d = list(dil, nd, 1, "dilations")?;
    let s = list(strides_a, nd, 1, "strides")?;
    let p = list(pads, 2 * nd, 0, "pads")?;
    if d.contains(&0) || s.contains(&0) || k.contains(&0) {
        return Err(inv(
            "Col2Im dilations, strides and block_shape must be positive".into(),
        ));
    }
    let ksz = checked_numel(&k)?;
    let (n, ck, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    if ck % ksz != 0 {
        return Err(inv(format!(
            "Col2Im input dim 1 ({ck}) is not divisible by the block size {ksz}"
        )));
    }
    let c = ck / ksz;
    let mut nb = Vec::with_capacity(nd);
    for i in 0..nd {
        let span = (im[i] + p[i] + p[nd + i]) as i64 - (d[i] * (k[i] - 1) + 1) as i64;
        if span < 0 {
            return Err(inv(format!("Col2Im block {k:?} does not fit image {im:?}")));
        }
        nb.push(span as usize / s[i] + 1);
    }
    let nbt: usize = nb.iter().product();
    if nbt != l {
        return Err(inv(format!(
            "Col2Im input has {l} blocks, image/block shapes give {nbt}"
        )));
    }
    let mut out_shape = vec![n, c];
    out_shape.extend_from_slice(&im);
    let total = checked_numel(&out_shape)?;
    let ist = strides(&im);
    let isz: usize = im.iter().product();
    let xv = x.to_f64_vec();
    let mut y = vec![0f64; total];
    for b in 0..n {
        for ch in 0..c {
            for kf in 0..ksz {
                let row = &xv[((b * c + ch) * ksz + kf) * l..][..l];
                let base = (b * c + ch) * isz;
                'blk: for (bf, &v) in row.iter().enumerate() {
                    let (mut kr, mut br) = (kf, bf);
                    let mut off = 0usize;
                    for i in (0..nd).rev() {
                        let (ki, bi) = (kr % k[i], br % nb[i]);
                        kr /= k[i];
                        br /= nb[i];
                        let pos = (bi * s[i] + ki * d[i]) as i64 - p[i] as i64;
                        if pos < 0 || pos >= im[i] as i64 {
                            continue 'blk;
                        }
                        off += pos as usize * ist[i];
                    }
                    y[base + off] += v;
                }
            }
        }
    }
    Ok(Tensor::from_vec(out_shape, y)?.cast(x.dtype()))
}

/// Reflects `x` into `[lo, hi]` by the nearest border, repeatedly (GridSample).
fn gs_reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let rng = hi - lo;
    if rng <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n % 2.0 == 0.0 { lo + r } else { hi - r }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n % 2.0 == 0.0 { hi - r } else { lo + r }
    } else {
        x
    }
}

/// Keys cubic coefficients (a = -0.75) for a fractional offset `t`.
fn cubic_coeffs(t: f64) -> [f64; 4] {
    let a = -0.75;
    let x = t.abs();
    [
        ((a * (x + 1.0) - 5.0 * a) * (x + 1.0) + 8.0 * a) * (x + 1.0) - 4.0 * a,
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        ((a + 2.0) * (1.0 - x) - (a + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0,
        ((a * (2.0 - x) - 5.0 * a) * (2.0 - x) + 8.0 * a) * (2.0 - x) - 4.0 * a,
    ]
}

/// GridSample over any number of spatial axes (separable taps, like the ONNX reference).
fn grid_sample(
    x: &Tensor,
    grid: &Tensor,
    mode: GridSampleMode,
    pad: GridPadding,
    align: bool,
) -> Result<Tensor, EvalError> {
    if !x.dtype().is_float() || !grid.dtype().is_float() {
        return Err(inv(format!(
            "GridSample needs float X and grid, got {} and {}",
            x.dtype(),
            grid.dtype()
        )));
    }
    let (xs, gs) = (x.shape(), grid.shape());
    let nd = xs.len().saturating_sub(2);
    if xs.len() < 3 || gs.len() != xs.len() || gs[gs.len() - 1] != nd || gs[0] != xs[0] {
        return Err(inv(format!(
            "GridSample needs X (N, C, spatial...) and grid (N, ..., {nd}), got {xs:?} and {gs:?}"
        )));
    }
    let (n, c) = (xs[0], xs[1]);
    let dims = &xs[2..];
    let mut out_shape = vec![n, c];
    out_shape.extend_from_slice(&gs[1..gs.len() - 1]);
    let total = checked_numel(&out_shape)?;
    let pts: usize = gs[1..gs.len() - 1].iter().product();
    let isz: usize = dims.iter().product();
    let ist = strides(dims);
    let xv = x.to_f64_vec();
    let gv = grid.to_f64_vec();
    let (lo, hi): (Vec<f64>, Vec<f64>) = dims
        .iter()
        .map(|&d| {
            if align {
                (0.0, d as f64 - 1.0)
            } else {
                (-0.5, d as f64 - 0.5)
            }
        })
        .unzip();
    // Index along axis `i` after padding, or None (zeros).
    let fetch = |i: usize, k: i64| -> Option<usize> {
        let d = dims[i] as i64;
        match pad {
            GridPadding::Zeros => (0..d).contains(&k).then_some(k as usize),
            GridPadding::Border => Some(k.clamp(0, d - 1) as usize),
            GridPadding::Reflection => {
                let r = gs_reflect(k as f64, lo[i], hi[i]) as i64;
                (0..d).contains(&r).then_some(r as usize)
            }
        }
    };
    let mut y = vec![0f64; total];
    for b in 0..n {
        for p in 0..pts {
            let g = &gv[(b * pts + p) * nd..][..nd];
            // Per axis (X order): taps (index, weight).
            let mut taps: Vec<Vec<(Option<usize>, f64)>> = Vec::with_capacity(nd);
            for i in 0..nd {
                let nx = g[nd - 1 - i];
                let d = dims[i] as f64;
                let mut v = if align {
                    (nx + 1.0) / 2.0 * (d - 1.0)
                } else {
                    ((nx + 1.0) * d - 1.0) / 2.0
                };
                // The reference denormalises into f32.
                v = v as f32 as f64;
                if mode == GridSampleMode::Nearest {
                    v = v.round_ties_even();
                }
                if v < lo[i] || v > hi[i] {
                    match pad {
                        GridPadding::Border => v = v.clamp(0.0, d - 1.0),
                        GridPadding::Reflection => v = gs_reflect(v, lo[i], hi[i]),
                        GridPadding::Zeros => {}
                    }
                }
                let t = match mode {
                    GridSampleMode::Nearest => {
                        let k = if v.is_finite() {
                            v.trunc() as i64
                        } else {
                            i64::MIN / 2
                        };
                        vec![(fetch(i, k), 1.0)]
                    }
                    GridSampleMode::Linear => {
                        let f = v.floor();
                        let k = if f.is_finite() {
                            f as i64
                        } else {
                            i64::MIN / 2
                        };
                        let w = v - f;
                        vec![(fetch(i, k), 1.0 - w), (fetch(i, k + 1), w)]
                    }
                    GridSampleMode::Cubic => {
                        let f = v.floor();
                        let k = if f.is_finite() {
                            f as i64
                        } else {
                            i64::MIN / 2
                        };
                        let cf = cubic_coeffs(v - f);
                        (0..4)
                            .map(|j| (fetch(i, k - 1 + j as i64), cf[j]))
                            .collect()
                    }
                };
                taps.push(t);
            }
            // Sum over the tensor product of taps.
            let ntaps: usize = taps.iter().map(Vec::len).product();
            for ch in 0..c {
                let plane = &xv[(b * c + ch) * isz..][..isz];
                let mut acc = 0f64;
                for tf in 0..ntaps {
                    let mut r = tf;
                    let mut w = 1f64;
                    let mut off = Some(0usize);
                    for i in (0..nd).rev() {
                        let (idx, wt) = taps[i][r % taps[i].len()];
                        r /= taps[i].len();
                        w *= wt;
                        off = match (off, idx) {
                            (Some(o), Some(k)) => Some(o + k * ist[i]),
                            _ => None,
                        };
                    }
                    if let Some(o) = off {
                        acc += w * plane[o];
                    }
                }
                y[(b * c + ch) * pts + p] = acc;
            }
        }
    }
    Ok(Tensor::from_vec(out_shape, y)?.cast(x.dtype()))
}

/// Builds a tensor of integer dtype `dtype` from i64 bit patterns (truncated to the width).
fn from_i64_bits(dtype: DType, shape: Vec<usize>, v: &[u64]) -> Result<Tensor, EvalError> {
    Ok(crate::dispatch!(dtype, T => {
        Tensor::from_vec(shape, v.iter().map(|&b| T::from_i64(b as i64)).collect::<Vec<T>>())?
    }))
}

/// Applies `f` to every element of a float tensor in f64, rounding once to its dtype.
fn map_float(x: &Tensor, f: impl Fn(f64) -> f64) -> Result<Tensor, EvalError> {
    crate::dispatch_float!(x.dtype(), T => {
        let y: Vec<T> = x.view::<T>().iter().map(|&v| T::round_from_f64(f(v.to_f64()))).collect();
        Ok(Tensor::from_vec(x.shape().to_vec(), y)?)
    }, else Err(inv(format!("expected a float tensor, got {}", x.dtype()))))
}

/// The window values in f64.
fn signal_window(kind: WindowKind, periodic: bool, n: usize) -> Vec<f64> {
    let big_n = if periodic { n as f64 } else { n as f64 - 1.0 };
    let pi = std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let i = i as f64;
            match kind {
                WindowKind::Hann => (i * pi / big_n).sin().powi(2),
                WindowKind::Hamming => {
                    let a = 25.0 / 46.0;
                    a - (i * pi * 2.0 / big_n).cos() * (1.0 - a)
                }
                WindowKind::Blackman => {
                    0.42 - 0.5 * (i * pi * 2.0 / big_n).cos() + 0.08 * (i * pi * 4.0 / big_n).cos()
                }
            }
        })
        .collect()
}

/// CumProd: running products along the axis.
fn cumprod(
    op: &Op,
    exclusive: bool,
    reverse: bool,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    arity_eval(op, inputs.len(), 2, 2)?;
    let x = req(op, inputs, 0)?;
    let ax = req(op, inputs, 1)?;
    if !(x.dtype().is_float() || x.dtype().is_int()) {
        return Err(inv(format!(
            "CumProd needs a numeric input, got {}",
            x.dtype()
        )));
    }
    if !ax.dtype().is_int() {
        return Err(inv(format!(
            "CumProd axis must be int32 or int64, got {}",
            ax.dtype()
        )));
    }
    let a = ax.scalar_i64().ok_or_else(|| {
        inv(format!(
            "CumProd axis must be a scalar, got shape {:?}",
            ax.shape()
        ))
    })?;
    if x.rank() == 0 {
        return Err(inv("CumProd needs an input of rank at least 1".into()));
    }
    let a = eval_axis(a, x.rank())?;
    let sh = x.shape();
    let outer: usize = sh[..a].iter().product();
    let n = sh[a];
    let inner: usize = sh[a + 1..].iter().product();
    Ok(crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        let mut y = vec![T::zero(); v.len()];
        let float = T::DTYPE.is_float();
        for o in 0..outer {
            for i in 0..inner {
                let mut pf = 1f64;
                let mut pi = 1i64;
                for k in 0..n {
                    let j = if reverse { n - 1 - k } else { k };
                    let idx = (o * n + j) * inner + i;
                    let xv = v[idx];
                    if exclusive {
                        y[idx] = if float { T::round_from_f64(pf) } else { T::from_i64(pi) };
                    }
                    pf *= xv.to_f64();
                    pi = pi.wrapping_mul(xv.to_i64());
                    if !exclusive {
                        y[idx] = if float { T::round_from_f64(pf) } else { T::from_i64(pi) };
                    }
                }
            }
        }
        Tensor::from_vec(sh.to_vec(), y)?
    }))
}

/// MeanVarianceNormalization: `(x - mean) / (sqrt(E[x²] - mean²) + 1e-9)` over `axes`.
fn mvn(x: &Tensor, axes: &[i64]) -> Result<Tensor, EvalError> {
    let sh = x.shape();
    let r = sh.len();
    let mut red = vec![false; r];
    for &a in axes {
        red[eval_axis(a, r)?] = true;
    }
    let st = strides(sh);
    // Group index of each element: its coordinates on the non-reduced axes.
    let kept: Vec<usize> = (0..r).filter(|&i| !red[i]).collect();
    let groups: usize = kept.iter().map(|&i| sh[i]).product();
    let gst = strides(&kept.iter().map(|&i| sh[i]).collect::<Vec<_>>());
    let n = x.numel();
    let group_of = |e: usize| -> usize {
        kept.iter()
            .zip(&gst)
            .map(|(&ax, &gs)| (e / st[ax]) % sh[ax] * gs)
            .sum()
    };
    let xv = x.to_f64_vec();
    let mut s = vec![0f64; groups];
    let mut s2 = vec![0f64; groups];
    let mut cnt = vec![0usize; groups];
    for (e, &v) in xv.iter().enumerate().take(n) {
        let g = group_of(e);
        s[g] += v;
        s2[g] += v * v;
        cnt[g] += 1;
    }
    let y: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(e, &v)| {
            let g = group_of(e);
            let c = cnt[g] as f64;
            let m = s[g] / c;
            let var = s2[g] / c - m * m;
            (v - m) / (var.sqrt() + 1e-9)
        })
        .collect();
    Ok(Tensor::from_vec(sh.to_vec(), y)?.cast(x.dtype()))
}

/// Compress along `axis` (or the flattened input).
fn compress(x: &Tensor, c: &Tensor, axis: Option<i64>) -> Result<Tensor, EvalError> {
    if c.dtype() != DType::Bool || c.rank() != 1 {
        return Err(inv(format!(
            "Compress condition must be a 1-D bool tensor, got {} {:?}",
            c.dtype(),
            c.shape()
        )));
    }
    let (outer, n, inner, mut shape) = match axis {
        None => (1, x.numel(), 1, vec![0]),
        Some(a) => {
            if x.rank() == 0 {
                return Err(inv(
                    "Compress with an axis needs an input of rank ≥ 1".into()
                ));
            }
            let a = eval_axis(a, x.rank())?;
            let sh = x.shape();
            (
                sh[..a].iter().product::<usize>(),
                sh[a],
                sh[a + 1..].iter().product::<usize>(),
                sh.to_vec(),
            )
        }
    };
    let cv = c.view::<crate::dtype::Bool8>();
    let mut sel = Vec::new();
    for (i, b) in cv.iter().enumerate() {
        if b.get() {
            if i >= n {
                return Err(inv(format!(
                    "Compress condition selects index {i}, the axis has {n} entries"
                )));
            }
            sel.push(i);
        }
    }
    let ax = axis.map_or(0, |a| eval_axis(a, x.rank()).unwrap_or(0));
    shape[ax] = sel.len();
    Ok(crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        let mut y = Vec::with_capacity(outer * sel.len() * inner);
        for o in 0..outer {
            for &s in &sel {
                y.extend_from_slice(&v[(o * n + s) * inner..][..inner]);
            }
        }
        Tensor::from_vec(shape, y)?
    }))
}

/// CenterCropPad.
fn center_crop_pad(x: &Tensor, s: &Tensor, axes: &[i64]) -> Result<Tensor, EvalError> {
    if !s.dtype().is_int() || s.rank() != 1 {
        return Err(inv(format!(
            "CenterCropPad shape must be a 1-D integer tensor, got {} {:?}",
            s.dtype(),
            s.shape()
        )));
    }
    let sh = x.shape();
    let r = sh.len();
    let ax = crop_axes(axes, r).map_err(inv)?;
    let want = s.to_i64_vec();
    if want.len() != ax.len() {
        return Err(inv(format!(
            "CenterCropPad shape has {} values for {} axes",
            want.len(),
            ax.len()
        )));
    }
    let mut out = sh.to_vec();
    // Per axis: offset of the output origin in input coordinates (may be negative: padding).
    let mut off = vec![0i64; r];
    for (&a, &w) in ax.iter().zip(&want) {
        if w < 0 {
            return Err(inv(format!("CenterCropPad shape has negative {w}")));
        }
        let dim = sh[a] as i64;
        out[a] = w as usize;
        off[a] = if w <= dim {
            (dim - w) / 2
        } else {
            -((w - dim) / 2)
        };
    }
    let n = checked_numel(&out)?;
    let ost = strides(&out);
    let ist = strides(sh);
    Ok(crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        let mut y = vec![T::zero(); n];
        'e: for (e, yv) in y.iter_mut().enumerate() {
            let mut src = 0usize;
            for d in 0..r {
                let i = ((e / ost[d]) % out[d]) as i64 + off[d];
                if i < 0 || i >= sh[d] as i64 {
                    continue 'e;
                }
                src += i as usize * ist[d];
            }
            *yv = v[src];
        }
        Tensor::from_vec(out, y)?
    }))
}

/// ReverseSequence with batch axis `b` and time axis `t` (0/1).
fn reverse_sequence(x: &Tensor, l: &Tensor, b: usize, t: usize) -> Result<Tensor, EvalError> {
    if l.dtype() != DType::I64 || l.rank() != 1 {
        return Err(inv(format!(
            "ReverseSequence sequence_lens must be a 1-D int64 tensor, got {} {:?}",
            l.dtype(),
            l.shape()
        )));
    }
    let sh = x.shape();
    if sh.len() < 2 {
        return Err(inv(format!(
            "ReverseSequence needs an input of rank ≥ 2, got {sh:?}"
        )));
    }
    let lens = l.view::<i64>();
    if lens.len() != sh[b] {
        return Err(inv(format!(
            "ReverseSequence sequence_lens has {} entries, the batch axis has {}",
            lens.len(),
            sh[b]
        )));
    }
    for &n in lens {
        if n < 0 || n as usize > sh[t] {
            return Err(inv(format!(
                "ReverseSequence length {n} is out of range for a time axis of {}",
                sh[t]
            )));
        }
    }
    let st = strides(sh);
    Ok(crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        let y: Vec<T> = (0..v.len())
            .map(|e| {
                let bi = (e / st[b]) % sh[b];
                let ti = (e / st[t]) % sh[t];
                let n = lens[bi] as usize;
                if ti < n {
                    let src_t = n - 1 - ti;
                    v[e - ti * st[t] + src_t * st[t]]
                } else {
                    v[e]
                }
            })
            .collect();
        Tensor::from_vec(sh.to_vec(), y)?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Bool8;
    use crate::ops::Window;

    fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    fn run(op: &Op, ins: &[Tensor]) -> Result<Tensor, EvalError> {
        let ins: Vec<Option<Tensor>> = ins.iter().cloned().map(Some).collect();
        crate::interp::eval_op(op, &ins, 1).map(|mut v| v.remove(0))
    }

    fn run1(op: &Op, ins: &[Tensor]) -> Tensor {
        run(op, ins).unwrap()
    }

    fn close(t: &Tensor, shape: &[usize], want: &[f64], tol: f64) {
        assert_eq!(t.shape(), shape);
        let got = t.to_f64_vec();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "got {got:?}, want {want:?}");
        }
    }

    fn infer1(op: &Op, ins: &[(TensorType, Option<&Tensor>)]) -> Result<TensorType, InferError> {
        let ins: Vec<Option<InferInput<'_>>> = ins
            .iter()
            .map(|(ty, value)| Some(InferInput { ty, value: *value }))
            .collect();
        crate::infer::infer(op, &ins, 1).map(|mut v| v.remove(0))
    }

    #[test]
    fn bitwise() {
        let a = t(&[2, 2], vec![0b1100i32, -1, 7, 0]);
        let b = t(&[2], vec![0b1010i32, 3]);
        let y = run1(&Op::Bitwise(BitwiseOp::And), &[a.clone(), b.clone()]);
        assert_eq!(y.view::<i32>(), &[0b1000, 3, 2, 0]);
        let y = run1(&Op::Bitwise(BitwiseOp::Or), &[a.clone(), b.clone()]);
        assert_eq!(y.view::<i32>(), &[0b1110, -1, 15, 3]);
        let y = run1(&Op::Bitwise(BitwiseOp::Xor), &[a.clone(), b]);
        assert_eq!(y.view::<i32>(), &[0b0110, -4, 13, 3]);
        let y = run1(&Op::Bitwise(BitwiseOp::Not), &[a]);
        assert_eq!(y.view::<i32>(), &[!0b1100, 0, -8, -1]);
        let y = run1(&Op::Bitwise(BitwiseOp::Not), &[t(&[2], vec![0u8, 200])]);
        assert_eq!(y.view::<u8>(), &[255, 55]);
        let y = run1(&Op::Bitwise(BitwiseOp::Not), &[t(&[1], vec![1u64])]);
        assert_eq!(y.view::<u64>(), &[u64::MAX - 1]);
        assert!(run(&Op::Bitwise(BitwiseOp::Not), &[t(&[1], vec![1f32])]).is_err());
        assert!(
            run(
                &Op::Bitwise(BitwiseOp::And),
                &[t(&[1], vec![1i32]), t(&[1], vec![1i64])]
            )
            .is_err()
        );
        let ty = infer1(
            &Op::Bitwise(BitwiseOp::Xor),
            &[
                (TensorType::fixed(DType::U16, &[3, 1]), None),
                (TensorType::fixed(DType::U16, &[4]), None),
            ],
        )
        .unwrap();
        assert_eq!(ty, TensorType::fixed(DType::U16, &[3, 4]));
    }

    #[test]
    fn cumprod() {
        let cp = |e, r| Op::CumProd {
            exclusive: e,
            reverse: r,
        };
        let x = t(&[4], vec![1f32, 2.0, 3.0, 4.0]);
        let ax = Tensor::scalar(0i64);
        close(
            &run1(&cp(false, false), &[x.clone(), ax.clone()]),
            &[4],
            &[1.0, 2.0, 6.0, 24.0],
            0.0,
        );
        close(
            &run1(&cp(true, false), &[x.clone(), ax.clone()]),
            &[4],
            &[1.0, 1.0, 2.0, 6.0],
            0.0,
        );
        close(
            &run1(&cp(false, true), &[x.clone(), ax.clone()]),
            &[4],
            &[24.0, 24.0, 12.0, 4.0],
            0.0,
        );
        close(
            &run1(&cp(true, true), &[x, ax]),
            &[4],
            &[24.0, 12.0, 4.0, 1.0],
            0.0,
        );
        let x = t(&[2, 3], vec![1i32, 2, 3, 4, 5, 6]);
        let y = run1(&cp(false, false), &[x.clone(), Tensor::scalar(-1i32)]);
        assert_eq!(y.view::<i32>(), &[1, 2, 6, 4, 20, 120]);
        let y = run1(&cp(false, false), &[x.clone(), Tensor::scalar(0i32)]);
        assert_eq!(y.view::<i32>(), &[1, 2, 3, 4, 10, 18]);
        assert!(run(&cp(false, false), &[x.clone(), Tensor::scalar(2i64)]).is_err());
        assert!(run(&cp(false, false), &[x, Tensor::scalar(0f32)]).is_err());
    }

    #[test]
    fn lppool() {
        let w = Window {
            kernel_shape: vec![2],
            ..Default::default()
        };
        let op = Op::LpPool {
            window: w,
            ceil_mode: false,
            p: 2,
        };
        let x = t(&[1, 1, 3], vec![3f32, -4.0, 0.0]);
        close(&run1(&op, &[x]), &[1, 1, 2], &[5.0, 4.0], 1e-6);
        let ty = infer1(&op, &[(TensorType::fixed(DType::F32, &[1, 2, 5]), None)]).unwrap();
        assert_eq!(ty, TensorType::fixed(DType::F32, &[1, 2, 4]));
        assert!(run(&op, &[t(&[1, 1, 3], vec![1i32, 2, 3])]).is_err());
    }

    #[test]
    fn swish_shrink() {
        let x = t(&[3], vec![0f32, 1.0, -2.0]);
        let s = |v: f64| v / (1.0 + (-v).exp());
        close(
            &run1(&Op::Swish { alpha: 1.0 }, std::slice::from_ref(&x)),
            &[3],
            &[0.0, s(1.0), s(-2.0)],
            1e-6,
        );
        let op = Op::Shrink {
            bias: 0.5,
            lambd: 1.0,
        };
        close(
            &run1(&op, &[t(&[4], vec![-2f64, -1.0, 0.5, 3.0])]),
            &[4],
            &[-1.5, 0.0, 0.0, 2.5],
            0.0,
        );
        let y = run1(&op, &[t(&[3], vec![-5i8, 1, 5])]);
        assert_eq!(y.view::<i8>(), &[-4, 0, 4]);
        assert!(run(&Op::Swish { alpha: 1.0 }, &[t(&[1], vec![1i32])]).is_err());
    }

    #[test]
    fn compress() {
        let x = t(&[3, 2], vec![1i64, 2, 3, 4, 5, 6]);
        let c = t(&[3], vec![Bool8(0), Bool8(1), Bool8(1)]);
        let y = run1(&Op::Compress { axis: Some(0) }, &[x.clone(), c.clone()]);
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.view::<i64>(), &[3, 4, 5, 6]);
        let c2 = t(&[2], vec![Bool8(0), Bool8(1)]);
        let y = run1(&Op::Compress { axis: Some(-1) }, &[x.clone(), c2.clone()]);
        assert_eq!(y.view::<i64>(), &[2, 4, 6]);
        let y = run1(&Op::Compress { axis: None }, &[x.clone(), c.clone()]);
        assert_eq!(y.view::<i64>(), &[2, 3]);
        let c3 = t(&[3], vec![Bool8(0), Bool8(0), Bool8(1)]);
        assert!(run(&Op::Compress { axis: Some(1) }, &[x.clone(), c3]).is_err());
        let ty = infer1(
            &Op::Compress { axis: Some(0) },
            &[
                (TensorType::fixed(DType::I64, &[3, 2]), None),
                (TensorType::fixed(DType::Bool, &[3]), Some(&c)),
            ],
        )
        .unwrap();
        assert_eq!(ty, TensorType::fixed(DType::I64, &[2, 2]));
    }

    #[test]
    fn center_crop_pad() {
        let x = t(&[3, 2], vec![1f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let s = t(&[2], vec![1i64, 4]);
        let op = Op::CenterCropPad { axes: vec![] };
        let y = run1(&op, &[x.clone(), s.clone()]);
        close(&y, &[1, 4], &[0.0, 3.0, 4.0, 0.0], 0.0);
        let op1 = Op::CenterCropPad { axes: vec![-1] };
        let y = run1(&op1, &[x.clone(), t(&[1], vec![3i64])]);
        close(
            &y,
            &[3, 3],
            // Padding goes to the end first (odd amount), as the ONNX reference does.
            &[1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 5.0, 6.0, 0.0],
            0.0,
        );
        assert!(run(&op, &[x.clone(), t(&[1], vec![3i64])]).is_err());
        let ty = infer1(
            &op,
            &[
                (TensorType::fixed(DType::F32, &[3, 2]), None),
                (TensorType::fixed(DType::I64, &[2]), Some(&s)),
            ],
        )
        .unwrap();
        assert_eq!(ty, TensorType::fixed(DType::F32, &[1, 4]));
    }

    #[test]
    fn reverse_sequence() {
        let x = t(&[3, 2], vec![1i32, 2, 3, 4, 5, 6]);
        let op = Op::ReverseSequence {
            batch_axis: 1,
            time_axis: 0,
        };
        let y = run1(&op, &[x.clone(), t(&[2], vec![3i64, 2])]);
        assert_eq!(y.view::<i32>(), &[5, 4, 3, 2, 1, 6]);
        let op = Op::ReverseSequence {
            batch_axis: 0,
            time_axis: 1,
        };
        let y = run1(&op, &[x.clone(), t(&[3], vec![1i64, 2, 0])]);
        assert_eq!(y.view::<i32>(), &[1, 2, 4, 3, 5, 6]);
        assert!(run(&op, &[x.clone(), t(&[3], vec![1i64, 3, 0])]).is_err());
        assert!(run(&op, &[x, t(&[2], vec![1i64, 1])]).is_err());
    }

    #[test]
    fn mvn() {
        let op = Op::MeanVarianceNormalization { axes: vec![1] };
        let x = t(&[2, 2], vec![1f32, 3.0, 2.0, 2.0]);
        close(&run1(&op, &[x]), &[2, 2], &[-1.0, 1.0, 0.0, 0.0], 1e-6);
        let bad = Op::MeanVarianceNormalization { axes: vec![2] };
        assert!(run(&bad, &[t(&[2, 2], vec![1f32; 4])]).is_err());
    }

    #[test]
    fn windows() {
        let op = |k, p| Op::SignalWindow {
            kind: k,
            periodic: p,
            output_datatype: DType::F64,
        };
        let n = Tensor::scalar(4i64);
        close(
            &run1(&op(WindowKind::Hann, true), std::slice::from_ref(&n)),
            &[4],
            &[0.0, 0.5, 1.0, 0.5],
            1e-12,
        );
        close(
            &run1(&op(WindowKind::Hann, false), &[t(&[], vec![3i32])]),
            &[3],
            &[0.0, 1.0, 0.0],
            1e-12,
        );
        let a = 25.0 / 46.0;
        close(
            &run1(&op(WindowKind::Hamming, true), std::slice::from_ref(&n)),
            &[4],
            &[2.0 * a - 1.0, a, 1.0, a],
            1e-12,
        );
        close(
            &run1(&op(WindowKind::Blackman, true), std::slice::from_ref(&n)),
            &[4],
            &[0.0, 0.34, 1.0, 0.34],
            1e-12,
        );
        assert!(run(&op(WindowKind::Hann, true), &[Tensor::scalar(-1i64)]).is_err());
        let ty = infer1(
            &op(WindowKind::Hann, true),
            &[(TensorType::fixed(DType::I64, &[]), Some(&n))],
        )
        .unwrap();
        assert_eq!(ty, TensorType::fixed(DType::F64, &[4]));
    }
    #[test]
    fn affine_grid() {
        let th = t(&[1, 2, 3], vec![1f32, 0.0, 0.0, 0.0, 1.0, 0.5]);
        let size = t(&[4], vec![1i64, 1, 2, 2]);
        let y = run1(
            &Op::AffineGrid {
                align_corners: true,
            },
            &[th.clone(), size.clone()],
        );
        close(
            &y,
            &[1, 2, 2, 2],
            &[-1.0, -0.5, 1.0, -0.5, -1.0, 1.5, 1.0, 1.5],
            1e-6,
        );
        let y = run1(
            &Op::AffineGrid {
                align_corners: false,
            },
            &[th.clone(), size.clone()],
        );
        close(
            &y,
            &[1, 2, 2, 2],
            &[-0.5, 0.0, 0.5, 0.0, -0.5, 1.0, 0.5, 1.0],
            1e-6,
        );
        assert!(
            run(
                &Op::AffineGrid {
                    align_corners: false
                },
                &[th.clone(), t(&[5], vec![1i64, 1, 2, 2, 2])]
            )
            .is_err()
        );
        let ty = infer1(
            &Op::AffineGrid {
                align_corners: false,
            },
            &[
                (TensorType::fixed(DType::F32, &[1, 2, 3]), None),
                (TensorType::fixed(DType::I64, &[4]), Some(&size)),
            ],
        )
        .unwrap();
        assert_eq!(ty, TensorType::fixed(DType::F32, &[1, 2, 2, 2]));
    }
    #[test]
    fn col2im() {
        let op = Op::Col2Im {
            dilations: vec![],
            pads: vec![],
            strides: vec![],
        };
        // 1×(1·2)×2 blocks of size [1, 2] over a 1×3 image: overlapping middle pixel.
        let x = t(&[1, 2, 2], vec![1f32, 10.0, 2.0, 20.0]);
        let img = t(&[2], vec![1i64, 3]);
        let blk = t(&[2], vec![1i64, 2]);
        let y = run1(&op, &[x.clone(), img.clone(), blk.clone()]);
        close(&y, &[1, 1, 1, 3], &[1.0, 12.0, 20.0], 0.0);
        assert!(run(&op, &[x, t(&[2], vec![1i64, 4]), blk]).is_err());
    }
    #[test]
    fn grid_sample() {
        let op = |m, p, a| Op::GridSample {
            mode: m,
            padding_mode: p,
            align_corners: a,
        };
        // X: 1×1×1×2 = [10, 20]; grid points at x = -1, 0, 1, 2 (y = 0).
        let x = t(&[1, 1, 1, 2], vec![10f32, 20.0]);
        let g = t(
            &[1, 1, 4, 2],
            vec![-1f32, 0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0],
        );
        let y = run1(
            &op(GridSampleMode::Linear, GridPadding::Zeros, true),
            &[x.clone(), g.clone()],
        );
        // x = 2 lands at pixel 1.5: half of pixel 1, half of the zero padding.
        close(&y, &[1, 1, 1, 4], &[10.0, 15.0, 20.0, 10.0], 1e-6);
        let y = run1(
            &op(GridSampleMode::Linear, GridPadding::Border, true),
            &[x.clone(), g.clone()],
        );
        close(&y, &[1, 1, 1, 4], &[10.0, 15.0, 20.0, 20.0], 1e-6);
        let y = run1(
            &op(GridSampleMode::Nearest, GridPadding::Zeros, false),
            &[x.clone(), g.clone()],
        );
        // Unaligned: x = -1 → -0.5 → 0 (ties to even); 0 → 0.5 → 0; 1 → 1.5 → 2 (out).
        close(&y, &[1, 1, 1, 4], &[10.0, 10.0, 0.0, 0.0], 1e-6);
        // Reflection on a 2×2 input (values from onnx.reference): (x, y) = (-1, -1), (0, 0),
        // (2, -1) reflects to (0.5, 0), (-2, 1) reflects to (0.5, 1).
        let x2 = t(&[1, 1, 2, 2], vec![10f32, 20.0, 30.0, 40.0]);
        let g2 = t(
            &[1, 1, 4, 2],
            vec![-1f32, -1.0, 0.0, 0.0, 2.0, -1.0, -2.0, 1.0],
        );
        let y = run1(
            &op(GridSampleMode::Linear, GridPadding::Reflection, true),
            &[x2, g2],
        );
        close(&y, &[1, 1, 1, 4], &[10.0, 25.0, 15.0, 35.0], 1e-6);
        assert!(
            run(
                &op(GridSampleMode::Linear, GridPadding::Zeros, true),
                &[x, t(&[1, 1, 1, 3], vec![0f32; 3])]
            )
            .is_err()
        );
    }
}
