//! Shape ops: Reshape, Flatten, Squeeze, Unsqueeze, Expand, Tile, Shape, ConstantOfShape,
//! Range and EyeLike.

use super::copy::{by_width, first_word, from_words, istrides, materialize};
use super::{
    attr_err, axis_mask, dim_mul, dim_product, input, invalid, known_ints, norm_axes, ranked,
    require_int, shape_err, static_len, to_usize,
};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, broadcast_shapes, opt_input};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::opset::util::{broadcast, opt, req};
use crate::tensor::{MAX_ELEMENTS, Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};

// ---------------------------------------------------------------------------------------------
// Reshape

/// Checks a Reshape target: at most one -1, nothing below -1, no 0 beside -1 with allowzero.
fn check_target(target: &[i64], allowzero: bool) -> Result<(), String> {
    if target.iter().filter(|&&t| t == -1).count() > 1 {
        return Err(format!("shape {target:?} has more than one -1"));
    }
    if let Some(t) = target.iter().find(|&&t| t < -1) {
        return Err(format!("shape {target:?} has the invalid dim {t}"));
    }
    if allowzero && target.contains(&0) && target.contains(&-1) {
        return Err(format!(
            "shape {target:?} has both 0 and -1 with allowzero set"
        ));
    }
    Ok(())
}

/// A product of static sizes and symbols, for cancelling symbols across a reshape.
#[derive(Default)]
struct Factors {
    stat: u128,
    syms: Vec<String>,
    unknown: bool,
}

impl Factors {
    fn of<'a>(dims: impl IntoIterator<Item = &'a Dim>) -> Factors {
        let mut f = Factors {
            stat: 1,
            ..Factors::default()
        };
        for d in dims {
            match d {
                Dim::Static(n) => match f.stat.checked_mul(*n as u128) {
                    Some(m) => f.stat = m,
                    None => f.unknown = true,
                },
                Dim::Sym(s) => f.syms.push(s.clone()),
                Dim::Unknown => f.unknown = true,
            }
        }
        f
    }

    /// Removes the symbols both sides share.
    fn cancel(&mut self, other: &mut Factors) {
        let mut i = 0;
        while i < self.syms.len() {
            if let Some(j) = other.syms.iter().position(|s| *s == self.syms[i]) {
                other.syms.swap_remove(j);
                self.syms.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

/// Reshape's output dims at inference time.
fn reshape_dims(
    op: &Op,
    in_dims: Option<&[Dim]>,
    target: &[i64],
    allowzero: bool,
) -> Result<Shape, InferError> {
    check_target(target, allowzero).map_err(|e| attr_err(op, e))?;
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            0 if !allowzero => match in_dims {
                Some(d) => d.get(i).cloned().ok_or_else(|| {
                    shape_err(
                        op,
                        format!(
                            "shape {target:?} copies dim {i} of a rank-{} input",
                            d.len()
                        ),
                    )
                })?,
                None => Dim::Unknown,
            },
            -1 => {
                infer_at = Some(i);
                Dim::Unknown
            }
            t => Dim::Static(t as usize),
        });
    }
    let Some(in_dims) = in_dims else {
        return Ok(Shape::Ranked(out));
    };
    let mut fin = Factors::of(in_dims);
    let mut fout = Factors::of(
        out.iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != infer_at)
            .map(|(_, d)| d),
    );
    fin.cancel(&mut fout);
    let exact = !fin.unknown && !fout.unknown && fin.syms.is_empty() && fout.syms.is_empty();
    match infer_at {
        Some(i) => {
            if fin.unknown || fout.unknown || !fout.syms.is_empty() {
                return Ok(Shape::Ranked(out));
            }
            if fout.stat == 0 {
                return Err(shape_err(
                    op,
                    format!("cannot infer the -1 of {target:?}: the other dims have a 0"),
                ));
            }
            if fin.stat % fout.stat != 0 {
                if fin.syms.is_empty() {
                    return Err(shape_err(
                        op,
                        format!(
                            "cannot reshape {} to {target:?}",
                            Shape::Ranked(in_dims.to_vec())
                        ),
                    ));
                }
                return Ok(Shape::Ranked(out));
            }
            let q = fin.stat / fout.stat;
            out[i] = match fin.syms.as_slice() {
                [] => Dim::Static(q as usize),
                [s] if q == 1 => Dim::Sym(s.clone()),
                _ => Dim::Unknown,
            };
        }
        None => {
            if exact && fin.stat != fout.stat {
                return Err(shape_err(
                    op,
                    format!(
                        "cannot reshape {} ({} elements) to {target:?}",
                        Shape::Ranked(in_dims.to_vec()),
                        fin.stat
                    ),
                ));
            }
        }
    }
    Ok(Shape::Ranked(out))
}

/// Reshape inference.
pub(super) fn infer_reshape(
    op: &Op,
    allowzero: bool,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let data = input(op, inputs, 0)?;
    let shape = input(op, inputs, 1)?;
    require_int(op, shape.ty.dtype, "shape")?;
    let out = match known_ints(&shape) {
        Some(target) => reshape_dims(op, data.ty.shape.dims(), &target, allowzero)?,
        None => match static_len(&shape) {
            Some(n) => Shape::unknown_dims(n),
            None => Shape::Unranked,
        },
    };
    Ok(TensorType {
        dtype: data.ty.dtype,
        shape: out,
    })
}

/// Reshape's concrete output shape.
fn reshape_target(
    op: &Op,
    in_shape: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, EvalError> {
    check_target(target, allowzero).map_err(|e| invalid(op, e))?;
    let numel: usize = in_shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            0 if !allowzero => *in_shape.get(i).ok_or_else(|| {
                invalid(
                    op,
                    format!(
                        "shape {target:?} copies dim {i} of a rank-{} input",
                        in_shape.len()
                    ),
                )
            })?,
            -1 => {
                infer_at = Some(i);
                1
            }
            t => t as usize,
        });
    }
    if let Some(i) = infer_at {
        let known = checked_numel(&out)?;
        if known == 0 || numel % known != 0 {
            return Err(invalid(
                op,
                format!("cannot reshape {in_shape:?} to {target:?}"),
            ));
        }
        out[i] = numel / known;
    }
    if checked_numel(&out)? != numel {
        return Err(invalid(
            op,
            format!("cannot reshape {in_shape:?} ({numel} elements) to {out:?}"),
        ));
    }
    Ok(out)
}

/// Reshape evaluation (no copy).
pub(super) fn eval_reshape(
    op: &Op,
    allowzero: bool,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let data = req(op, inputs, 0)?;
    let target = super::int_values(op, req(op, inputs, 1)?, "shape")?;
    let out = reshape_target(op, data.shape(), &target, allowzero)?;
    Ok(data.reshape(out)?)
}

// ---------------------------------------------------------------------------------------------
// Flatten

/// Normalises Flatten's axis in `[-rank, rank]`.
fn flatten_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a > rank as i64 {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Flatten inference.
pub(super) fn infer_flatten(
    op: &Op,
    axis: i64,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let dims = match x.ty.shape.dims() {
        Some(d) => {
            let a = flatten_axis(axis, d.len()).map_err(|e| attr_err(op, e))?;
            vec![dim_product(&d[..a]), dim_product(&d[a..])]
        }
        None => vec![Dim::Unknown, Dim::Unknown],
    };
    Ok(ranked(x.ty.dtype, dims))
}

/// Flatten evaluation (no copy).
pub(super) fn eval_flatten(
    op: &Op,
    axis: i64,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let a = flatten_axis(axis, x.rank()).map_err(|e| invalid(op, e))?;
    let outer = x.shape()[..a].iter().product();
    let inner = x.shape()[a..].iter().product();
    Ok(x.reshape(vec![outer, inner])?)
}

// ---------------------------------------------------------------------------------------------
// Squeeze / Unsqueeze

/// Squeeze inference.
pub(super) fn infer_squeeze(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let dtype = x.ty.dtype;
    let axes_in = opt_input(inputs, 1).filter(|a| static_len(a) != Some(0));
    if let Some(a) = axes_in {
        require_int(op, a.ty.dtype, "axes")?;
    }
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(TensorType::unranked(dtype));
    };
    let Some(a) = axes_in else {
        // Remove every size-1 dim; a non-static dim may or may not be 1.
        if dims.iter().any(|d| d.as_static().is_none()) {
            return Ok(TensorType::unranked(dtype));
        }
        let out = dims.iter().filter(|d| **d != Dim::Static(1)).cloned();
        return Ok(ranked(dtype, out.collect()));
    };
    let Some(axes) = known_ints(&a) else {
        return Ok(match static_len(&a) {
            Some(k) if k <= dims.len() => TensorType {
                dtype,
                shape: Shape::unknown_dims(dims.len() - k),
            },
            Some(k) => {
                return Err(shape_err(
                    op,
                    format!("{k} axes for a rank-{} input", dims.len()),
                ));
            }
            None => TensorType::unranked(dtype),
        });
    };
    let axes = norm_axes(&axes, dims.len()).map_err(|e| attr_err(op, e))?;
    for &a in &axes {
        if let Dim::Static(n) = dims[a]
            && n != 1
        {
            return Err(shape_err(op, format!("dim {a} has size {n}, not 1")));
        }
    }
    let out = dims
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, d)| d.clone());
    Ok(ranked(dtype, out.collect()))
}

/// Squeeze evaluation (no copy).
pub(super) fn eval_squeeze(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let axes = match opt(inputs, 1) {
        Some(a) => super::int_values(op, a, "axes")?,
        None => vec![],
    };
    let out: Vec<usize> = if axes.is_empty() {
        x.shape().iter().copied().filter(|&d| d != 1).collect()
    } else {
        let axes = norm_axes(&axes, x.rank()).map_err(|e| invalid(op, e))?;
        for &a in &axes {
            if x.shape()[a] != 1 {
                return Err(invalid(op, format!("dim {a} of {:?} is not 1", x.shape())));
            }
        }
        let keep = |(i, _): &(usize, &usize)| !axes.contains(i);
        x.shape()
            .iter()
            .enumerate()
            .filter(keep)
            .map(|(_, &d)| d)
            .collect()
    };
    Ok(x.reshape(out)?)
}

/// Unsqueeze inference.
pub(super) fn infer_unsqueeze(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let a = input(op, inputs, 1)?;
    require_int(op, a.ty.dtype, "axes")?;
    let dtype = x.ty.dtype;
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(TensorType::unranked(dtype));
    };
    let Some(axes) = known_ints(&a) else {
        return Ok(match static_len(&a) {
            Some(k) => TensorType {
                dtype,
                shape: Shape::unknown_dims(dims.len() + k),
            },
            None => TensorType::unranked(dtype),
        });
    };
    let r = dims.len() + axes.len();
    let mask = axis_mask(&norm_axes(&axes, r).map_err(|e| attr_err(op, e))?, r);
    let mut rest = dims.iter();
    let out = (0..r)
        .map(|i| {
            if mask[i] {
                Dim::Static(1)
            } else {
                rest.next().cloned().unwrap_or(Dim::Unknown)
            }
        })
        .collect();
    Ok(ranked(dtype, out))
}

/// Unsqueeze evaluation (no copy).
pub(super) fn eval_unsqueeze(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let axes = super::int_values(op, req(op, inputs, 1)?, "axes")?;
    let r = x.rank() + axes.len();
    let mask = axis_mask(&norm_axes(&axes, r).map_err(|e| invalid(op, e))?, r);
    let mut rest = x.shape().iter();
    let out = (0..r)
        .map(|i| {
            if mask[i] {
                1
            } else {
                rest.next().copied().unwrap_or(1)
            }
        })
        .collect();
    Ok(x.reshape(out)?)
}

// ---------------------------------------------------------------------------------------------
// Expand / Tile

/// Non-negative dims from a shape-like input.
fn dims_of(op: &Op, v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&d| {
            to_usize(d, || {
                format!("{}: {what} {v:?} has a negative value", op.name())
            })
        })
        .collect()
}

/// Expand inference.
pub(super) fn infer_expand(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let s = input(op, inputs, 1)?;
    require_int(op, s.ty.dtype, "shape")?;
    let dtype = x.ty.dtype;
    if let Some(v) = known_ints(&s) {
        let target = dims_of(op, &v, "shape").map_err(InferError::Attribute)?;
        let shape =
            broadcast_shapes(&x.ty.shape, &Shape::fixed(&target)).map_err(|e| shape_err(op, e))?;
        return Ok(TensorType { dtype, shape });
    }
    let (Some(dims), Some(n)) = (x.ty.shape.dims(), static_len(&s)) else {
        return Ok(TensorType::unranked(dtype));
    };
    let r = dims.len().max(n);
    let out = (0..r)
        .map(
            |i| match (i + dims.len()).checked_sub(r).map(|j| &dims[j]) {
                Some(Dim::Static(d)) if *d != 1 => Dim::Static(*d),
                _ => Dim::Unknown,
            },
        )
        .collect();
    Ok(ranked(dtype, out))
}

/// Expand evaluation.
pub(super) fn eval_expand(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let v = super::int_values(op, req(op, inputs, 1)?, "shape")?;
    let target = dims_of(op, &v, "shape").map_err(EvalError::Invalid)?;
    let out = broadcast(x.shape(), &target).map_err(|e| invalid(op, e))?;
    checked_numel(&out)?;
    if out == x.shape() {
        return Ok(x.clone());
    }
    let strides: Vec<isize> = crate::opset::util::broadcast_strides(x.shape(), &out)
        .into_iter()
        .map(|s| s as isize)
        .collect();
    materialize(x, out.clone(), &out, &strides, 0)
}

/// Tile inference.
pub(super) fn infer_tile(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let rep = input(op, inputs, 1)?;
    require_int(op, rep.ty.dtype, "repeats")?;
    let dtype = x.ty.dtype;
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(TensorType::unranked(dtype));
    };
    let Some(v) = known_ints(&rep) else {
        return Ok(TensorType {
            dtype,
            shape: Shape::unknown_dims(dims.len()),
        });
    };
    if v.len() != dims.len() {
        return Err(shape_err(
            op,
            format!("{} repeats for a rank-{} input", v.len(), dims.len()),
        ));
    }
    let reps = dims_of(op, &v, "repeats").map_err(InferError::Attribute)?;
    let out = dims
        .iter()
        .zip(&reps)
        .map(|(d, &r)| dim_mul(d, r))
        .collect();
    Ok(ranked(dtype, out))
}

/// Tile evaluation: a strided view of shape `[r0, d0, r1, d1, ...]` with zero strides on
/// the repeat dims, whose row-major order is exactly the tiled output's.
pub(super) fn eval_tile(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let v = super::int_values(op, req(op, inputs, 1)?, "repeats")?;
    if v.len() != x.rank() {
        return Err(invalid(
            op,
            format!("{} repeats for a rank-{} input", v.len(), x.rank()),
        ));
    }
    let reps = dims_of(op, &v, "repeats").map_err(EvalError::Invalid)?;
    let mut out = Vec::with_capacity(x.rank());
    for (&d, &r) in x.shape().iter().zip(&reps) {
        out.push(
            d.checked_mul(r)
                .ok_or_else(|| invalid(op, format!("{d} x {r} repeats overflows")))?,
        );
    }
    checked_numel(&out)?;
    let s = istrides(x.shape());
    let mut view = Vec::with_capacity(2 * x.rank());
    let mut strides = Vec::with_capacity(2 * x.rank());
    for i in 0..x.rank() {
        view.extend([reps[i], x.shape()[i]]);
        strides.extend([0, s[i]]);
    }
    materialize(x, out, &view, &strides, 0)
}

// ---------------------------------------------------------------------------------------------
// Shape / ConstantOfShape / Range / EyeLike

/// Shape's `[start, end)` range clamped to `[0, rank]`.
fn shape_range(start: i64, end: Option<i64>, rank: usize) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clamp(start);
    let e = clamp(end.unwrap_or(r));
    (s, e.max(s))
}

/// Shape inference.
pub(super) fn infer_shape(
    op: &Op,
    start: i64,
    end: Option<i64>,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let n = match x.ty.shape.rank() {
        Some(r) => {
            let (s, e) = shape_range(start, end, r);
            Dim::Static(e - s)
        }
        None => Dim::Unknown,
    };
    Ok(ranked(DType::I64, vec![n]))
}

/// Shape evaluation.
pub(super) fn eval_shape(
    op: &Op,
    start: i64,
    end: Option<i64>,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let (s, e) = shape_range(start, end, x.rank());
    let v: Vec<i64> = x.shape()[s..e].iter().map(|&d| d as i64).collect();
    Ok(Tensor::from_vec(vec![v.len()], v)?)
}

/// ConstantOfShape inference.
pub(super) fn infer_constant_of_shape(
    op: &Op,
    value: &Tensor,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let s = input(op, inputs, 0)?;
    require_int(op, s.ty.dtype, "shape")?;
    if value.numel() != 1 {
        return Err(attr_err(
            op,
            format!("value must have one element, it has {}", value.numel()),
        ));
    }
    let dtype = value.dtype();
    if let Some(v) = known_ints(&s) {
        let dims = dims_of(op, &v, "shape").map_err(InferError::Attribute)?;
        checked_numel(&dims).map_err(|e| shape_err(op, e))?;
        return Ok(TensorType::fixed(dtype, &dims));
    }
    Ok(match static_len(&s) {
        Some(n) => TensorType {
            dtype,
            shape: Shape::unknown_dims(n),
        },
        None => TensorType::unranked(dtype),
    })
}

/// ConstantOfShape evaluation.
pub(super) fn eval_constant_of_shape(
    op: &Op,
    value: &Tensor,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let v = super::int_values(op, req(op, inputs, 0)?, "shape")?;
    let dims = dims_of(op, &v, "shape").map_err(EvalError::Invalid)?;
    if value.numel() != 1 {
        return Err(invalid(
            op,
            format!("value must have one element, it has {}", value.numel()),
        ));
    }
    let n = checked_numel(&dims)?;
    by_width!(value.dtype(), W => {
        let w: W = first_word(value);
        from_words(value.dtype(), dims, vec![w; n])
    })
}

/// The element count of a Range, exactly for integers and through f64 for floats.
fn range_count(
    dtype: DType,
    start: &Tensor,
    limit: &Tensor,
    delta: &Tensor,
) -> Result<usize, String> {
    let count = if dtype.is_float() {
        let (s, l, d) = (
            start.to_f64_vec()[0],
            limit.to_f64_vec()[0],
            delta.to_f64_vec()[0],
        );
        if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
            return Err(format!(
                "start {s}, limit {l}, delta {d} give no finite range"
            ));
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if n > MAX_ELEMENTS as f64 {
            return Err(format!("{n} elements is too many"));
        }
        n as usize
    } else {
        let (s, l, d) = (
            start.to_i64_vec()[0] as i128,
            limit.to_i64_vec()[0] as i128,
            delta.to_i64_vec()[0] as i128,
        );
        if d == 0 {
            return Err("delta is 0".into());
        }
        let diff = l - s;
        let n = if (diff > 0) == (d > 0) && diff != 0 {
            (diff.abs() + d.abs() - 1) / d.abs()
        } else {
            0
        };
        if n > MAX_ELEMENTS as i128 {
            return Err(format!("{n} elements is too many"));
        }
        n as usize
    };
    Ok(count)
}

/// Checks Range's inputs: one element each, one numeric dtype.
fn range_dtype(dts: [DType; 3]) -> Result<DType, String> {
    if dts[1] != dts[0] || dts[2] != dts[0] {
        return Err(format!(
            "start, limit and delta must have one dtype, got {}, {}, {}",
            dts[0], dts[1], dts[2]
        ));
    }
    if dts[0] == DType::Bool {
        return Err("bool ranges are not defined".into());
    }
    Ok(dts[0])
}

/// Range inference.
pub(super) fn infer_range(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let s = input(op, inputs, 0)?;
    let l = input(op, inputs, 1)?;
    let d = input(op, inputs, 2)?;
    let dtype = range_dtype([s.ty.dtype, l.ty.dtype, d.ty.dtype])
        .map_err(|e| InferError::Dtype(format!("{}: {e}", op.name())))?;
    if let (Some(s), Some(l), Some(d)) = (s.value, l.value, d.value)
        && s.numel() == 1
        && l.numel() == 1
        && d.numel() == 1
    {
        let n = range_count(dtype, s, l, d).map_err(|e| attr_err(op, e))?;
        return Ok(TensorType::fixed(dtype, &[n]));
    }
    Ok(ranked(dtype, vec![Dim::Unknown]))
}

/// Range evaluation: `start + i * delta` for `i < max(ceil((limit - start) / delta), 0)`.
pub(super) fn eval_range(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
    let s = req(op, inputs, 0)?;
    let l = req(op, inputs, 1)?;
    let d = req(op, inputs, 2)?;
    let dtype = range_dtype([s.dtype(), l.dtype(), d.dtype()]).map_err(|e| invalid(op, e))?;
    for (t, what) in [(s, "start"), (l, "limit"), (d, "delta")] {
        if t.numel() != 1 {
            return Err(invalid(
                op,
                format!("{what} must be a scalar, got {:?}", t.shape()),
            ));
        }
    }
    let n = range_count(dtype, s, l, d).map_err(|e| invalid(op, e))?;
    crate::dispatch!(dtype, T => {
        let v: Vec<T> = if dtype.is_float() {
            let (s0, d0) = (s.to_f64_vec()[0], d.to_f64_vec()[0]);
            (0..n).map(|i| T::round_from_f64(s0 + i as f64 * d0)).collect()
        } else {
            let (s0, d0) = (s.to_i64_vec()[0], d.to_i64_vec()[0]);
            (0..n)
                .map(|i| T::from_i64(s0.wrapping_add((i as i64).wrapping_mul(d0))))
                .collect()
        };
        Ok(Tensor::from_vec(vec![n], v)?)
    })
}

/// EyeLike inference.
pub(super) fn infer_eye_like(
    op: &Op,
    dtype: Option<DType>,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let dtype = dtype.unwrap_or(x.ty.dtype);
    match x.ty.shape.dims() {
        Some(d) if d.len() == 2 => Ok(ranked(dtype, d.to_vec())),
        Some(d) => Err(shape_err(
            op,
            format!("the input must be 2-D, got rank {}", d.len()),
        )),
        None => Ok(ranked(dtype, vec![Dim::Unknown, Dim::Unknown])),
    }
}

/// EyeLike evaluation: ones at `(i, i + k)`.
pub(super) fn eval_eye_like(
    op: &Op,
    dtype: Option<DType>,
    k: i64,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let &[n, m] = x.shape() else {
        return Err(invalid(
            op,
            format!("the input must be 2-D, got {:?}", x.shape()),
        ));
    };
    let dtype = dtype.unwrap_or(x.dtype());
    crate::dispatch!(dtype, T => {
        let mut v = vec![T::zero(); n * m];
        for i in 0..n {
            let j = i as i128 + k as i128;
            if (0..m as i128).contains(&j) {
                v[i * m + j as usize] = T::from_i64(1);
            }
        }
        Ok(Tensor::from_vec(vec![n, m], v)?)
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn reshape_copies_zero_and_infers_minus_one() {
        let x = t(&[2, 3, 4], (0..24).collect::<Vec<i32>>());
        let op = Op::Reshape { allowzero: false };
        let y = run1(&op, &[x.clone(), i64s(&[0, -1])]);
        assert_eq!(y.shape(), &[2, 12]);
        assert_eq!(y.view::<i32>(), x.view::<i32>());
        assert_eq!(run1(&op, &[x.clone(), i64s(&[-1])]).shape(), &[24]);
        let err = |s: &[i64]| run(&op, &[Some(x.clone()), Some(i64s(s))]).is_err();
        assert!(err(&[-1, -1]), "two -1");
        assert!(err(&[5, -1]), "24 is not a multiple of 5");
        assert!(err(&[2, 3, 5]), "element count");
        assert!(err(&[0, 0, 0, 0]), "copies a dim the input lacks");
        assert!(err(&[-2, 12]));
        // allowzero: 0 is a real 0.
        let z = t::<f32>(&[0, 3], vec![]);
        let y = run1(
            &Op::Reshape { allowzero: true },
            &[z.clone(), i64s(&[3, 0])],
        );
        assert_eq!(y.shape(), &[3, 0]);
        assert!(
            run(
                &Op::Reshape { allowzero: true },
                &[Some(z), Some(i64s(&[0, -1]))]
            )
            .is_err()
        );
    }

    #[test]
    fn reshape_infers_static_and_symbolic_shapes() {
        let op = Op::Reshape { allowzero: false };
        let b = Dim::Sym("b".into());
        let x = TensorType {
            dtype: DType::F32,
            shape: Shape::Ranked(vec![b.clone(), Dim::Static(197), Dim::Static(768)]),
        };
        let target = i64s(&[0, -1, 12, 64]);
        let st = ty_of(&target);
        let s = infer_out(&op, &[Some((&x, None)), Some((&st, Some(&target)))]).unwrap();
        assert_eq!(
            s,
            Shape::Ranked(vec![
                b.clone(),
                Dim::Static(197),
                Dim::Static(12),
                Dim::Static(64)
            ])
        );
        // -1 absorbing the symbol.
        let target = i64s(&[-1, 768]);
        let s = infer_out(&op, &[Some((&x, None)), Some((&st, Some(&target)))]).unwrap();
        assert_eq!(s, Shape::Ranked(vec![Dim::Unknown, Dim::Static(768)]));
        let x2 = TensorType {
            dtype: DType::F32,
            shape: Shape::Ranked(vec![b.clone(), Dim::Static(12), Dim::Static(64)]),
        };
        let target = i64s(&[-1, 768]);
        let s = infer_out(&op, &[Some((&x2, None)), Some((&st, Some(&target)))]).unwrap();
        assert_eq!(s, Shape::Ranked(vec![b.clone(), Dim::Static(768)]));
        // Unknown target of static length 3: rank 3.
        let st3 = TensorType::fixed(DType::I64, &[3]);
        let s = infer_out(&op, &[Some((&x, None)), Some((&st3, None))]).unwrap();
        assert_eq!(s, Shape::unknown_dims(3));
        // Static mismatch is an error.
        let xs = TensorType::fixed(DType::F32, &[2, 3]);
        let target = i64s(&[4, 2]);
        assert!(infer_out(&op, &[Some((&xs, None)), Some((&st, Some(&target)))]).is_err());
        let target = i64s(&[-1, 4]);
        assert!(infer_out(&op, &[Some((&xs, None)), Some((&st, Some(&target)))]).is_err());
    }

    #[test]
    fn flatten_handles_negative_and_zero_axes() {
        let x = t(&[2, 3, 4], vec![0u8; 24]);
        assert_eq!(
            run1(&Op::Flatten { axis: 0 }, std::slice::from_ref(&x)).shape(),
            &[1, 24]
        );
        assert_eq!(
            run1(&Op::Flatten { axis: -1 }, std::slice::from_ref(&x)).shape(),
            &[6, 4]
        );
        assert_eq!(
            run1(&Op::Flatten { axis: 3 }, std::slice::from_ref(&x)).shape(),
            &[24, 1]
        );
        assert!(run(&Op::Flatten { axis: 4 }, &[Some(x.clone())]).is_err());
        let b = Dim::Sym("b".into());
        let ty = TensorType {
            dtype: DType::U8,
            shape: Shape::Ranked(vec![b.clone(), Dim::Static(3), Dim::Static(4)]),
        };
        let s = infer_out(&Op::Flatten { axis: 1 }, &[Some((&ty, None))]).unwrap();
        assert_eq!(s, Shape::Ranked(vec![b, Dim::Static(12)]));
    }

    #[test]
    fn squeeze_and_unsqueeze() {
        let x = t(&[1, 3, 1], vec![1i64, 2, 3]);
        assert_eq!(run1(&Op::Squeeze, std::slice::from_ref(&x)).shape(), &[3]);
        assert_eq!(
            run1(&Op::Squeeze, &[x.clone(), i64s(&[-1])]).shape(),
            &[1, 3]
        );
        assert!(run(&Op::Squeeze, &[Some(x.clone()), Some(i64s(&[1]))]).is_err());
        assert!(run(&Op::Squeeze, &[Some(x.clone()), Some(i64s(&[3]))]).is_err());
        let y = run1(&Op::Unsqueeze, &[t(&[3], vec![1i64, 2, 3]), i64s(&[0, -1])]);
        assert_eq!(y.shape(), &[1, 3, 1]);
        assert_eq!(y.view::<i64>(), &[1, 2, 3]);
        let y = run1(&Op::Unsqueeze, &[Tensor::scalar(5i64), i64s(&[0])]);
        assert_eq!(y.shape(), &[1]);
        assert!(run(&Op::Unsqueeze, &[Some(x.clone()), Some(i64s(&[0, 0]))]).is_err());
        assert!(run(&Op::Unsqueeze, &[Some(x.clone()), Some(i64s(&[4]))]).is_err());
        // Inference with known axes.
        let tx = ty_of(&x);
        let a = i64s(&[0, 2]);
        let ta = ty_of(&a);
        let s = infer_out(&Op::Squeeze, &[Some((&tx, None)), Some((&ta, Some(&a)))]).unwrap();
        assert_eq!(s, Shape::fixed(&[3]));
        let s = infer_out(&Op::Unsqueeze, &[Some((&tx, None)), Some((&ta, Some(&a)))]).unwrap();
        assert_eq!(s, Shape::fixed(&[1, 1, 1, 3, 1]));
        let s = infer_out(&Op::Unsqueeze, &[Some((&tx, None)), Some((&ta, None))]).unwrap();
        assert_eq!(s, Shape::unknown_dims(5));
    }

    #[test]
    fn expand_broadcasts_both_ways() {
        let x = t(&[3, 1], vec![1.0f32, 2.0, 3.0]);
        let y = run1(&Op::Expand, &[x.clone(), i64s(&[2, 1, 2])]);
        assert_eq!(y.shape(), &[2, 3, 2]);
        assert_eq!(
            y.view::<f32>(),
            &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]
        );
        // A target dim of 1 keeps the input's.
        assert_eq!(
            run1(&Op::Expand, &[x.clone(), i64s(&[1, 1])]).shape(),
            &[3, 1]
        );
        assert!(run(&Op::Expand, &[Some(x.clone()), Some(i64s(&[2, 2]))]).is_err());
        assert!(run(&Op::Expand, &[Some(x.clone()), Some(i64s(&[-1, 1]))]).is_err());
        let huge = run(
            &Op::Expand,
            &[Some(x.clone()), Some(i64s(&[1 << 40, 1 << 20]))],
        );
        assert!(huge.is_err(), "must not allocate");
        let tx = ty_of(&x);
        let s = i64s(&[4, 1, 5]);
        let ts = ty_of(&s);
        let sh = infer_out(&Op::Expand, &[Some((&tx, None)), Some((&ts, Some(&s)))]).unwrap();
        assert_eq!(sh, Shape::fixed(&[4, 3, 5]));
        let sh = infer_out(&Op::Expand, &[Some((&tx, None)), Some((&ts, None))]).unwrap();
        assert_eq!(
            sh,
            Shape::Ranked(vec![Dim::Unknown, Dim::Static(3), Dim::Unknown])
        );
    }

    #[test]
    fn tile_repeats_each_axis() {
        let x = t(&[2, 2], vec![1i32, 2, 3, 4]);
        let y = run1(&Op::Tile, &[x.clone(), i64s(&[2, 3])]);
        assert_eq!(y.shape(), &[4, 6]);
        assert_eq!(
            &y.view::<i32>()[..12],
            &[1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]
        );
        assert_eq!(&y.view::<i32>()[12..18], &[1, 2, 1, 2, 1, 2]);
        assert_eq!(
            run1(&Op::Tile, &[x.clone(), i64s(&[0, 1])]).shape(),
            &[0, 2]
        );
        assert!(run(&Op::Tile, &[Some(x.clone()), Some(i64s(&[2]))]).is_err());
        assert!(run(&Op::Tile, &[Some(x.clone()), Some(i64s(&[-1, 1]))]).is_err());
        assert!(
            run(
                &Op::Tile,
                &[Some(x.clone()), Some(i64s(&[1 << 40, 1 << 40]))]
            )
            .is_err()
        );
    }

    #[test]
    fn shape_size_and_constant_of_shape() {
        let x = t(&[2, 3, 4], vec![0u8; 24]);
        let sh = |start, end| {
            run1(&Op::Shape { start, end }, std::slice::from_ref(&x))
                .view::<i64>()
                .to_vec()
        };
        assert_eq!(sh(0, None), vec![2, 3, 4]);
        assert_eq!(sh(-1, None), vec![4]);
        assert_eq!(sh(1, Some(-1)), vec![3]);
        assert_eq!(sh(-10, Some(10)), vec![2, 3, 4]);
        assert_eq!(sh(2, Some(1)), Vec::<i64>::new());
        assert_eq!(
            run1(&Op::Size, std::slice::from_ref(&x)).view::<i64>(),
            &[24]
        );
        let op = Op::ConstantOfShape {
            value: Tensor::from_vec(vec![1], vec![7i32]).unwrap(),
        };
        let y = run1(&op, &[i64s(&[2, 2])]);
        assert_eq!(y.view::<i32>(), &[7, 7, 7, 7]);
        let y = run1(&op, &[i64s(&[])]);
        assert_eq!((y.shape(), y.view::<i32>()), (&[][..], &[7][..]));
        assert!(run(&op, &[Some(i64s(&[-1]))]).is_err());
        assert!(run(&op, &[Some(i64s(&[1 << 40, 1 << 40]))]).is_err());
        let s = i64s(&[3, 0]);
        let ts = ty_of(&s);
        assert_eq!(
            infer_out(&op, &[Some((&ts, Some(&s)))]).unwrap(),
            Shape::fixed(&[3, 0])
        );
        assert_eq!(
            infer_out(&op, &[Some((&ts, None))]).unwrap(),
            Shape::unknown_dims(2)
        );
    }

    #[test]
    fn range_counts_like_onnx() {
        let r = |s: Tensor, l: Tensor, d: Tensor| run(&Op::Range, &[Some(s), Some(l), Some(d)]);
        let y = r(
            Tensor::scalar(10i32),
            Tensor::scalar(4i32),
            Tensor::scalar(-3i32),
        )
        .unwrap();
        assert_eq!(y.view::<i32>(), &[10, 7]);
        let y = r(
            Tensor::scalar(1.0f32),
            Tensor::scalar(2.0f32),
            Tensor::scalar(0.3f32),
        )
        .unwrap();
        assert_eq!(y.shape(), &[4]);
        assert!((y.view::<f32>()[3] - 1.9).abs() < 1e-6);
        let y = r(
            Tensor::scalar(5i64),
            Tensor::scalar(1i64),
            Tensor::scalar(1i64),
        )
        .unwrap();
        assert_eq!(y.shape(), &[0]);
        assert!(
            r(
                Tensor::scalar(0i64),
                Tensor::scalar(1i64),
                Tensor::scalar(0i64)
            )
            .is_err()
        );
        assert!(
            r(
                Tensor::scalar(0i64),
                Tensor::scalar(i64::MAX),
                Tensor::scalar(1i64)
            )
            .is_err()
        );
        assert!(
            r(
                Tensor::scalar(0i64),
                Tensor::scalar(3i32),
                Tensor::scalar(1i64)
            )
            .is_err()
        );
        let (s, l, d) = (
            Tensor::scalar(0i64),
            Tensor::scalar(10i64),
            Tensor::scalar(3i64),
        );
        let ts = ty_of(&s);
        let sh = infer_out(
            &Op::Range,
            &[
                Some((&ts, Some(&s))),
                Some((&ts, Some(&l))),
                Some((&ts, Some(&d))),
            ],
        )
        .unwrap();
        assert_eq!(sh, Shape::fixed(&[4]));
    }

    #[test]
    fn eye_like_offsets_the_diagonal() {
        let x = t(&[2, 3], vec![0i32; 6]);
        let y = run1(
            &Op::EyeLike {
                dtype: Some(DType::F64),
                k: 1,
            },
            std::slice::from_ref(&x),
        );
        assert_eq!(y.view::<f64>(), &[0., 1., 0., 0., 0., 1.]);
        let y = run1(
            &Op::EyeLike { dtype: None, k: -1 },
            std::slice::from_ref(&x),
        );
        assert_eq!(y.view::<i32>(), &[0, 0, 0, 1, 0, 0]);
        assert!(
            run(
                &Op::EyeLike { dtype: None, k: 0 },
                &[Some(t(&[2], vec![0i32; 2]))]
            )
            .is_err()
        );
    }
}
