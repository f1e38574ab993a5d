//! Conv and ConvTranspose, and the window geometry they share with pooling.
//!
//! Conv lowers to im2col + GEMM per (image, group), with a pointwise fast path (1×1 kernel,
//! stride 1, no padding: the input already is the column matrix) and a direct depthwise path
//! (one input channel per group). ConvTranspose is GEMM + col2im. Up to 3 spatial axes; 1-D
//! and 2-D problems are run as 3-D ones with leading unit axes.

use super::gemm::{Mat, gemm};
use super::{PAR_GRAIN, Real, fmt_dims, infer_same_dtype, load, same_dtype, store, with_real};
use crate::infer::{InferError, InferInput, input, opt_input, require_float};
use crate::interp::EvalError;
use crate::ops::{AutoPad, ConvAttrs, ConvLayout, Op, Window};
use crate::opset::util::{opt, req, transposed, transposed_type};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};
use rayon::prelude::*;

/// Strides, dilations and explicit pads of a window over `nsp` spatial axes, with defaults
/// resolved and values validated.
pub(super) struct AxisAttrs {
    /// Strides (≥ 1).
    pub strides: Vec<usize>,
    /// Dilations (≥ 1).
    pub dilations: Vec<usize>,
    /// `[begin..., end...]`.
    pub pads: Vec<usize>,
}

/// Resolves the defaults of `w` for `nsp` spatial axes.
pub(super) fn axis_attrs(w: &Window, nsp: usize) -> Result<AxisAttrs, String> {
    let list = |v: &[usize], what: &str| -> Result<Vec<usize>, String> {
        if v.is_empty() {
            return Ok(vec![1; nsp]);
        }
        if v.len() != nsp {
            return Err(format!(
                "{what} {v:?} has {} values for {nsp} spatial axes",
                v.len()
            ));
        }
        if v.contains(&0) {
            return Err(format!("{what} {v:?} must be positive"));
        }
        Ok(v.to_vec())
    };
    let strides = list(&w.strides, "strides")?;
    let dilations = list(&w.dilations, "dilations")?;
    let pads = if w.pads.is_empty() {
        vec![0; 2 * nsp]
    } else if w.pads.len() == 2 * nsp {
        w.pads.clone()
    } else {
        return Err(format!(
            "pads {:?} has {} values for {nsp} spatial axes",
            w.pads,
            w.pads.len()
        ));
    };
    if let Some(k) = w.kernel_shape.iter().find(|&&k| k == 0) {
        return Err(format!("kernel_shape {:?} has a {k}", w.kernel_shape));
    }
    Ok(AxisAttrs {
        strides,
        dilations,
        pads,
    })
}

/// `(k - 1) * d + 1`, checked.
fn effective_kernel(k: usize, d: usize) -> Result<usize, String> {
    k.checked_sub(1)
        .and_then(|k| k.checked_mul(d))
        .and_then(|k| k.checked_add(1))
        .ok_or_else(|| format!("kernel {k} with dilation {d} is out of range"))
}

/// `(pad_begin, pad_end, output)` of one axis of a Conv or pooling window.
#[allow(clippy::too_many_arguments)]
pub(super) fn axis_output(
    auto_pad: AutoPad,
    ceil_mode: bool,
    input: usize,
    k: usize,
    s: usize,
    d: usize,
    pb: usize,
    pe: usize,
) -> Result<(usize, usize, usize), String> {
    let ek = effective_kernel(k, d)?;
    let big = || format!("padding of input {input} is out of range");
    let explicit = |pb: usize, pe: usize| -> Result<(usize, usize, usize), String> {
        let padded = input
            .checked_add(pb)
            .and_then(|x| x.checked_add(pe))
            .ok_or_else(big)?;
        if padded < ek {
            return Err(format!(
                "window {ek} (kernel {k}, dilation {d}) is larger than the padded input \
                 {padded} (input {input}, pads {pb}+{pe})"
            ));
        }
        let span = padded - ek;
        let mut out = if ceil_mode {
            span.div_ceil(s)
        } else {
            span / s
        } + 1;
        // The last window must start inside the input or the left padding.
        if ceil_mode && (out - 1) * s >= input + pb {
            out -= 1;
        }
        Ok((pb, pe, out))
    };
    match auto_pad {
        AutoPad::NotSet => explicit(pb, pe),
        AutoPad::Valid => explicit(0, 0),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let out = input.div_ceil(s);
            let need = (out.saturating_sub(1))
                .checked_mul(s)
                .and_then(|x| x.checked_add(ek))
                .ok_or_else(big)?
                .saturating_sub(input);
            let small = need / 2;
            let (pb, pe) = if auto_pad == AutoPad::SameUpper {
                (small, need - small)
            } else {
                (need - small, small)
            };
            Ok((pb, pe, out))
        }
    }
}

/// Inferred output dim of one axis: static when everything is known, the input dim itself
/// when the window preserves sizes (stride 1, "same" padding), unknown otherwise.
#[allow(clippy::too_many_arguments)]
pub(super) fn infer_axis(
    auto_pad: AutoPad,
    ceil_mode: bool,
    input: &Dim,
    k: Option<usize>,
    s: usize,
    d: usize,
    pb: usize,
    pe: usize,
) -> Result<Dim, InferError> {
    let Some(k) = k else {
        return Ok(Dim::Unknown);
    };
    match input {
        Dim::Static(i) => axis_output(auto_pad, ceil_mode, *i, k, s, d, pb, pe)
            .map(|(_, _, o)| Dim::Static(o))
            .map_err(InferError::Shape),
        other => {
            let ek = effective_kernel(k, d).map_err(InferError::Attribute)?;
            let same = s == 1
                && match auto_pad {
                    AutoPad::SameUpper | AutoPad::SameLower => true,
                    AutoPad::Valid => ek == 1,
                    AutoPad::NotSet => pb.checked_add(pe) == Some(ek - 1),
                };
            Ok(if same { other.clone() } else { Dim::Unknown })
        }
    }
}

/// Geometry of a windowed op over up to 3 spatial axes; fewer axes are padded at the front
/// with unit axes (size 1, kernel 1, stride 1, no padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Geom {
    /// Input spatial sizes.
    pub input: [usize; 3],
    /// Kernel sizes.
    pub kernel: [usize; 3],
    /// Strides.
    pub stride: [usize; 3],
    /// Dilations.
    pub dilation: [usize; 3],
    /// Padding before each axis (negative only for ConvTranspose with an `output_shape`).
    pub pad_begin: [i64; 3],
    /// Padding after each axis.
    pub pad_end: [i64; 3],
    /// Output spatial sizes.
    pub output: [usize; 3],
}

impl Geom {
    /// The unit geometry.
    fn unit() -> Geom {
        Geom {
            input: [1; 3],
            kernel: [1; 3],
            stride: [1; 3],
            dilation: [1; 3],
            pad_begin: [0; 3],
            pad_end: [0; 3],
            output: [1; 3],
        }
    }

    /// Elements of one input plane.
    pub fn in_size(&self) -> usize {
        self.input.iter().product()
    }

    /// Elements of one output plane.
    pub fn out_size(&self) -> usize {
        self.output.iter().product()
    }

    /// Elements of the kernel window.
    pub fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Offset of kernel tap `k` on axis `a` relative to `o * stride`.
    pub fn tap(&self, a: usize, k: usize) -> i64 {
        (k * self.dilation[a]) as i64 - self.pad_begin[a]
    }
}

/// The geometry of a Conv or pooling window over concrete `spatial` input dims.
pub(super) fn window_geom(
    w: &Window,
    ceil_mode: bool,
    spatial: &[usize],
    kernel: &[usize],
) -> Result<Geom, String> {
    let nsp = spatial.len();
    if nsp > 3 {
        return Err(format!("{nsp} spatial axes are not supported (at most 3)"));
    }
    let a = axis_attrs(w, nsp)?;
    let mut g = Geom::unit();
    let off = 3 - nsp;
    for i in 0..nsp {
        let (pb, pe, out) = axis_output(
            w.auto_pad,
            ceil_mode,
            spatial[i],
            kernel[i],
            a.strides[i],
            a.dilations[i],
            a.pads[i],
            a.pads[nsp + i],
        )?;
        let j = off + i;
        g.input[j] = spatial[i];
        g.kernel[j] = kernel[i];
        g.stride[j] = a.strides[i];
        g.dilation[j] = a.dilations[i];
        g.pad_begin[j] = i64::try_from(pb).map_err(|_| "pads out of range".to_string())?;
        g.pad_end[j] = i64::try_from(pe).map_err(|_| "pads out of range".to_string())?;
        g.output[j] = out;
    }
    // Each tap offset must fit i64 arithmetic.
    for j in 0..3 {
        if g.input[j] > i64::MAX as usize / 4
            || g.output[j]
                .checked_mul(g.stride[j])
                .is_none_or(|x| x > i64::MAX as usize / 4)
            || g.kernel[j]
                .checked_mul(g.dilation[j])
                .is_none_or(|x| x > i64::MAX as usize / 4)
        {
            return Err("window geometry is out of range".into());
        }
    }
    Ok(g)
}

/// The `o` in `[0, count)` for which `o * stride + offset` lies in `[0, limit)`.
pub(super) fn valid_range(
    count: usize,
    stride: usize,
    offset: i64,
    limit: usize,
) -> (usize, usize) {
    let s = stride as i64;
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    let hi = if offset >= limit as i64 {
        0
    } else {
        (limit as i64 - 1 - offset) / s + 1
    };
    let hi = hi.clamp(0, count as i64);
    (lo.clamp(0, hi) as usize, hi as usize)
}

fn shape_err(msg: String) -> InferError {
    InferError::Shape(msg)
}

/// Kernel dims of a Conv-like op at inference: the `kernel_shape` attribute, checked
/// against the weight's static spatial dims, or those dims.
fn infer_kernel(
    op: &Op,
    w: &Window,
    wd: Option<&[Dim]>,
    nsp: usize,
) -> Result<Vec<Option<usize>>, InferError> {
    let from_w: Vec<Option<usize>> = match wd {
        Some(d) => d[2..].iter().map(Dim::as_static).collect(),
        None => vec![None; nsp],
    };
    if w.kernel_shape.is_empty() {
        return Ok(from_w);
    }
    if w.kernel_shape.len() != nsp {
        return Err(InferError::Attribute(format!(
            "{} kernel_shape {:?} has {} values for {nsp} spatial axes",
            op.name(),
            w.kernel_shape,
            w.kernel_shape.len()
        )));
    }
    for (k, fw) in w.kernel_shape.iter().zip(&from_w) {
        if fw.is_some_and(|fw| fw != *k) {
            return Err(InferError::Shape(format!(
                "{} kernel_shape {:?} does not match the weight {}",
                op.name(),
                w.kernel_shape,
                fmt_dims(wd.unwrap_or_default())
            )));
        }
    }
    Ok(w.kernel_shape.iter().map(|&k| Some(k)).collect())
}

/// The X dims, W dims (each if ranked) and rank of a Conv-like op at inference.
type ConvDims<'a> = (Option<&'a [Dim]>, Option<&'a [Dim]>, usize);

/// Common checks of Conv and ConvTranspose at inference: dtypes, ranks, group and bias.
/// Returns (x dims, w dims, rank) or `None` when neither rank is known.
fn infer_conv_common<'a>(
    op: &Op,
    attrs: &ConvAttrs,
    inputs: &[Option<InferInput<'a>>],
) -> Result<Option<ConvDims<'a>>, InferError> {
    let x = input(op, inputs, 0)?;
    let w = input(op, inputs, 1)?;
    require_float(op, x.ty.dtype)?;
    infer_same_dtype(op, "W", w.ty.dtype, x.ty.dtype)?;
    if let Some(b) = opt_input(inputs, 2) {
        infer_same_dtype(op, "B", b.ty.dtype, x.ty.dtype)?;
        if let Some(r) = b.ty.shape.rank().filter(|&r| r != 1) {
            return Err(shape_err(format!(
                "{} bias must be 1-D, got rank {r}",
                op.name()
            )));
        }
    }
    if attrs.group == 0 {
        return Err(InferError::Attribute(format!(
            "{} group must be positive",
            op.name()
        )));
    }
    let xd = x.ty.shape.dims();
    let wd = w.ty.shape.dims();
    let Some(rank) = xd.map(<[Dim]>::len).or(wd.map(<[Dim]>::len)) else {
        return Ok(None);
    };
    if rank < 3 {
        return Err(shape_err(format!(
            "{} needs an input of rank ≥ 3 (N, C, spatial...), got {}",
            op.name(),
            x.ty.shape
        )));
    }
    if let (Some(a), Some(b)) = (xd, wd)
        && a.len() != b.len()
    {
        return Err(shape_err(format!(
            "{} input {} and weight {} have different ranks",
            op.name(),
            x.ty.shape,
            w.ty.shape
        )));
    }
    if rank - 2 > 3 {
        return Err(InferError::Unsupported(format!(
            "{} with {} spatial axes (at most 3)",
            op.name(),
            rank - 2
        )));
    }
    Ok(Some((xd, wd, rank)))
}

/// Checks a 1-D bias against the output channel count.
fn infer_bias(op: &Op, inputs: &[Option<InferInput<'_>>], m: &Dim) -> Result<(), InferError> {
    if let Some(b) = opt_input(inputs, 2)
        && let Some(bd) = b.ty.shape.dims()
        && let (Dim::Static(bn), Dim::Static(m)) = (&bd[0], m)
        && bn != m
    {
        return Err(shape_err(format!(
            "{} bias {} does not match {m} output channels",
            op.name(),
            b.ty.shape
        )));
    }
    Ok(())
}

/// A channels-last Conv ([`ConvLayout`]) as its channels-first form: the same attributes with
/// ONNX's layout.
fn channels_first(attrs: &ConvAttrs) -> (Op, ConvAttrs) {
    let first = ConvAttrs {
        layout: ConvLayout::default(),
        ..attrs.clone()
    };
    (Op::Conv(first.clone()), first)
}

/// [`infer_conv`] for a Conv with a channels-last side: X transposed to channels-first, the
/// channels-first Conv, Y transposed to the stored layout.
pub(super) fn infer_conv_layout(
    op: &Op,
    attrs: &ConvAttrs,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let x = input(op, inputs, 0)?;
    let Some(rank) = x.ty.shape.rank() else {
        return Err(shape_err(format!(
            "a channels-last {} needs an input of known rank",
            op.name()
        )));
    };
    if rank < 3 {
        return Err(shape_err(format!(
            "{} needs an input of rank ≥ 3, got {}",
            op.name(),
            x.ty.shape
        )));
    }
    let to_first = ConvLayout::to_first(rank);
    let xt = if attrs.layout.input_last {
        transposed_type(&to_first, x.ty)?
    } else {
        x.ty.clone()
    };
    let wt = match input(op, inputs, 1)? {
        w if attrs.layout.weight_last => transposed_type(&to_first, w.ty)?,
        w => w.ty.clone(),
    };
    let mut ins = inputs.to_vec();
    ins[0] = Some(InferInput {
        ty: &xt,
        value: None,
    });
    ins[1] = Some(InferInput {
        ty: &wt,
        value: None,
    });
    let (op1, first) = channels_first(attrs);
    let y = infer_conv(&op1, &first, &ins)?;
    if !attrs.layout.output_last {
        return Ok(y);
    }
    Ok(vec![transposed_type(&ConvLayout::to_last(rank), &y[0])?])
}

/// [`eval_conv`] for a Conv with a channels-last side (see [`infer_conv_layout`]).
pub(super) fn eval_conv_layout(
    op: &Op,
    attrs: &ConvAttrs,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    let x = req(op, inputs, 0)?;
    let rank = x.rank();
    if rank < 3 {
        return Err(EvalError::Invalid(format!(
            "{} needs an input of rank ≥ 3, got {:?}",
            op.name(),
            x.shape()
        )));
    }
    let mut ins = inputs.to_vec();
    if attrs.layout.input_last {
        ins[0] = Some(transposed(&ConvLayout::to_first(rank), x.clone())?);
    }
    if attrs.layout.weight_last {
        let w = req(op, inputs, 1)?;
        ins[1] = Some(transposed(&ConvLayout::to_first(rank), w.clone())?);
    }
    let (op1, first) = channels_first(attrs);
    let y = eval_conv(&op1, &first, &ins)?;
    if !attrs.layout.output_last {
        return Ok(y);
    }
    let y = y
        .into_iter()
        .next()
        .ok_or_else(|| EvalError::Invalid("Conv has no output".into()))?;
    Ok(vec![transposed(&ConvLayout::to_last(rank), y)?])
}

/// Output types of Conv.
pub(super) fn infer_conv(
    op: &Op,
    attrs: &ConvAttrs,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let dtype = input(op, inputs, 0)?.ty.dtype;
    let Some((xd, wd, rank)) = infer_conv_common(op, attrs, inputs)? else {
        return Ok(vec![TensorType::unranked(dtype)]);
    };
    let nsp = rank - 2;
    let group = attrs.group;
    if let (Some(x), Some(w)) = (xd, wd)
        && let (Dim::Static(c), Dim::Static(wc)) = (&x[1], &w[1])
        && Some(*c) != wc.checked_mul(group)
    {
        return Err(shape_err(format!(
            "Conv input channels {c} of X {} != weight channels {wc} × group {group} of W {}",
            fmt_dims(x),
            fmt_dims(w)
        )));
    }
    let m = wd.map_or(Dim::Unknown, |w| w[0].clone());
    if let Dim::Static(mv) = m
        && mv % group != 0
    {
        return Err(shape_err(format!(
            "Conv output channels {mv} of W {} are not a multiple of group {group}",
            fmt_dims(wd.unwrap_or_default())
        )));
    }
    infer_bias(op, inputs, &m)?;
    let kernel = infer_kernel(op, &attrs.window, wd, nsp)?;
    let a = axis_attrs(&attrs.window, nsp).map_err(InferError::Attribute)?;
    let mut out = vec![xd.map_or(Dim::Unknown, |x| x[0].clone()), m];
    for i in 0..nsp {
        let input = xd.map_or(Dim::Unknown, |x| x[2 + i].clone());
        out.push(infer_axis(
            attrs.window.auto_pad,
            false,
            &input,
            kernel[i],
            a.strides[i],
            a.dilations[i],
            a.pads[i],
            a.pads[nsp + i],
        )?);
    }
    Ok(vec![TensorType {
        dtype,
        shape: Shape::Ranked(out),
    }])
}

/// Checks Conv/ConvTranspose runtime inputs; returns (x, w, bias).
fn conv_inputs<'a>(
    op: &Op,
    attrs: &ConvAttrs,
    inputs: &'a [Option<Tensor>],
) -> Result<(&'a Tensor, &'a Tensor, Option<&'a Tensor>), EvalError> {
    let x = req(op, inputs, 0)?;
    let w = req(op, inputs, 1)?;
    let b = opt(inputs, 2);
    if !x.dtype().is_float() {
        return Err(super::bad_dtype(op, x.dtype()));
    }
    same_dtype(op, "W", w, x.dtype())?;
    if let Some(b) = b {
        same_dtype(op, "B", b, x.dtype())?;
    }
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err(EvalError::Invalid(format!(
            "{} needs X of rank ≥ 3 and W of the same rank, got {:?} and {:?}",
            op.name(),
            x.shape(),
            w.shape()
        )));
    }
    if attrs.group == 0 {
        return Err(EvalError::Invalid(format!(
            "{} group must be positive",
            op.name()
        )));
    }
    if !attrs.window.kernel_shape.is_empty() && attrs.window.kernel_shape != w.shape()[2..] {
        return Err(EvalError::Invalid(format!(
            "{} kernel_shape {:?} does not match the weight {:?}",
            op.name(),
            attrs.window.kernel_shape,
            w.shape()
        )));
    }
    Ok((x, w, b))
}

fn check_bias(op: &Op, b: Option<&Tensor>, m: usize) -> Result<(), EvalError> {
    if let Some(b) = b
        && b.shape() != [m]
    {
        return Err(EvalError::Invalid(format!(
            "{} bias {:?} does not match {m} output channels",
            op.name(),
            b.shape()
        )));
    }
    Ok(())
}

/// Evaluates Conv.
pub(super) fn eval_conv(
    op: &Op,
    attrs: &ConvAttrs,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    let (x, w, b) = conv_inputs(op, attrs, inputs)?;
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let m = w.shape()[0];
    let group = attrs.group;
    if Some(c) != w.shape()[1].checked_mul(group) || m % group != 0 {
        return Err(EvalError::Invalid(format!(
            "Conv input channels of X {:?} != weight channels × group {group} of W {:?} \
             (or output channels not a multiple of group)",
            x.shape(),
            w.shape()
        )));
    }
    check_bias(op, b, m)?;
    let g = window_geom(&attrs.window, false, &x.shape()[2..], &w.shape()[2..])
        .map_err(|e| EvalError::Invalid(format!("Conv: {e}")))?;
    let mut out_shape = vec![n, m];
    let nsp = x.rank() - 2;
    out_shape.extend_from_slice(&g.output[3 - nsp..]);
    checked_numel(&out_shape)?;
    let dtype = x.dtype();
    with_real!(dtype, F => {
        let xv = load::<F>(x);
        let wv = load::<F>(w);
        let bv = b.map(load::<F>);
        let y = conv_forward::<F>(&xv, &wv, bv.as_deref(), n, c, m, group, &g)?;
        Ok(vec![store(dtype, out_shape, y)?])
    }, else Err(super::bad_dtype(op, dtype)))
}

/// Conv forward over validated shapes: X [n, c, in], W [m, c/group, kernel] → Y [n, m, out].
#[allow(clippy::too_many_arguments)]
fn conv_forward<F: Real>(
    x: &[F],
    w: &[F],
    b: Option<&[F]>,
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    g: &Geom,
) -> Result<Vec<F>, EvalError> {
    let (cg, mg) = (c / group, m / group);
    let (kk, pin, pout) = (g.kernel_size(), g.in_size(), g.out_size());
    let mut y = vec![F::ZERO; n * m * pout];
    if pout == 0 || m == 0 {
        return Ok(y);
    }
    let pointwise = kk == 1 && g.stride == [1; 3] && g.pad_begin == [0; 3] && g.pad_end == [0; 3];
    if cg == 1 && !pointwise {
        depthwise(x, w, &mut y, c, m, group, g);
    } else if pointwise {
        for ni in 0..n {
            for gi in 0..group {
                let xs = &x[(ni * c + gi * cg) * pin..][..cg * pin];
                let ws = &w[gi * mg * cg..][..mg * cg];
                let ys = &mut y[(ni * m + gi * mg) * pout..][..mg * pout];
                gemm(
                    mg,
                    cg,
                    pout,
                    F::ONE,
                    Mat::rows(ws, cg),
                    Mat::rows(xs, pout),
                    F::ZERO,
                    ys,
                );
            }
        }
    } else {
        let rows = cg * kk;
        let mut col = vec![F::ZERO; checked_numel(&[rows, pout])?];
        for ni in 0..n {
            for gi in 0..group {
                let xs = &x[(ni * c + gi * cg) * pin..][..cg * pin];
                im2col(xs, g, &mut col);
                let ws = &w[gi * mg * rows..][..mg * rows];
                let ys = &mut y[(ni * m + gi * mg) * pout..][..mg * pout];
                gemm(
                    mg,
                    rows,
                    pout,
                    F::ONE,
                    Mat::rows(ws, rows),
                    Mat::rows(&col, pout),
                    F::ZERO,
                    ys,
                );
            }
        }
    }
    if let Some(b) = b {
        y.par_chunks_mut(pout)
            .with_min_len((PAR_GRAIN / pout).max(1))
            .enumerate()
            .for_each(|(i, plane)| {
                let bias = b[i % m];
                plane.iter_mut().for_each(|v| *v += bias);
            });
    }
    Ok(y)
}

/// Fills the `[cg·kernel, out]` column matrix of one image and group. Positions that read
/// padding are never written, so `col` must start zeroed and keep the same geometry.
fn im2col<F: Real>(x: &[F], g: &Geom, col: &mut [F]) {
    let pout = g.out_size();
    let pin = g.in_size();
    let kk = g.kernel_size();
    let [_, kh, kw] = g.kernel;
    let [_, oh, ow] = g.output;
    let [_, ih, iw] = g.input;
    col.par_chunks_mut(pout)
        .with_min_len((PAR_GRAIN / pout).max(1))
        .enumerate()
        .for_each(|(row, dst)| {
            let (ci, kr) = (row / kk, row % kk);
            let (k0, k1, k2) = (kr / (kh * kw), (kr / kw) % kh, kr % kw);
            let src = &x[ci * pin..(ci + 1) * pin];
            let (t0, t1, t2) = (g.tap(0, k0), g.tap(1, k1), g.tap(2, k2));
            let (d_lo, d_hi) = valid_range(g.output[0], g.stride[0], t0, g.input[0]);
            let (h_lo, h_hi) = valid_range(oh, g.stride[1], t1, ih);
            let (w_lo, w_hi) = valid_range(ow, g.stride[2], t2, iw);
            if w_lo >= w_hi {
                return;
            }
            let s2 = g.stride[2];
            for od in d_lo..d_hi {
                let id = (od * g.stride[0]) as i64 + t0;
                for o1 in h_lo..h_hi {
                    let i1 = (o1 * g.stride[1]) as i64 + t1;
                    let srow = &src[(id as usize * ih + i1 as usize) * iw..][..iw];
                    let drow = &mut dst[(od * oh + o1) * ow..][..ow];
                    let start = ((w_lo * s2) as i64 + t2) as usize;
                    if s2 == 1 {
                        drow[w_lo..w_hi].copy_from_slice(&srow[start..start + (w_hi - w_lo)]);
                    } else {
                        for (d, s) in drow[w_lo..w_hi]
                            .iter_mut()
                            .zip(srow[start..].iter().step_by(s2))
                        {
                            *d = *s;
                        }
                    }
                }
            }
        });
}

/// Direct convolution for one input channel per group (depthwise, any channel multiplier).
fn depthwise<F: Real>(x: &[F], w: &[F], y: &mut [F], c: usize, m: usize, group: usize, g: &Geom) {
    let mg = m / group;
    let (kk, pin, pout) = (g.kernel_size(), g.in_size(), g.out_size());
    let [kd, kh, kw] = g.kernel;
    let [_, oh, ow] = g.output;
    let [_, ih, iw] = g.input;
    let s2 = g.stride[2];
    y.par_chunks_mut(pout)
        .with_min_len((PAR_GRAIN / (pout * kk).max(1)).max(1))
        .enumerate()
        .for_each(|(plane, out)| {
            let (ni, mo) = (plane / m, plane % m);
            let ci = mo / mg;
            let src = &x[(ni * c + ci) * pin..][..pin];
            let ker = &w[mo * kk..][..kk];
            for k0 in 0..kd {
                let t0 = g.tap(0, k0);
                let (d_lo, d_hi) = valid_range(g.output[0], g.stride[0], t0, g.input[0]);
                for k1 in 0..kh {
                    let t1 = g.tap(1, k1);
                    let (h_lo, h_hi) = valid_range(oh, g.stride[1], t1, ih);
                    for k2 in 0..kw {
                        let wv = ker[(k0 * kh + k1) * kw + k2];
                        let t2 = g.tap(2, k2);
                        let (w_lo, w_hi) = valid_range(ow, s2, t2, iw);
                        if w_lo >= w_hi {
                            continue;
                        }
                        let start = ((w_lo * s2) as i64 + t2) as usize;
                        for od in d_lo..d_hi {
                            let id = (od * g.stride[0]) as i64 + t0;
                            for o1 in h_lo..h_hi {
                                let i1 = (o1 * g.stride[1]) as i64 + t1;
                                let srow = &src[(id as usize * ih + i1 as usize) * iw..][..iw];
                                let drow = &mut out[(od * oh + o1) * ow..][w_lo..w_hi];
                                if s2 == 1 {
                                    for (d, &s) in drow.iter_mut().zip(&srow[start..]) {
                                        *d += wv * s;
                                    }
                                } else {
                                    for (d, &s) in
                                        drow.iter_mut().zip(srow[start..].iter().step_by(s2))
                                    {
                                        *d += wv * s;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// Resolved ConvTranspose parameters per spatial axis: `(pad_begin, pad_end, output)`.
#[allow(clippy::too_many_arguments)]
fn transpose_axis(
    auto_pad: AutoPad,
    input: usize,
    k: usize,
    s: usize,
    d: usize,
    out_pad: usize,
    pads: (usize, usize),
    output_shape: Option<usize>,
) -> Result<(i64, i64, usize), String> {
    let ek = effective_kernel(k, d)?;
    let to_i = |v: usize| i64::try_from(v).map_err(|_| format!("value {v} is out of range"));
    // The full (unpadded) output extent.
    let full = (to_i(input)? - 1)
        .checked_mul(to_i(s)?)
        .and_then(|v| v.checked_add(to_i(out_pad).ok()?))
        .and_then(|v| v.checked_add(to_i(ek).ok()?))
        .ok_or_else(|| "ConvTranspose geometry is out of range".to_string())?;
    let target = match (output_shape, auto_pad) {
        (Some(o), _) => Some(o),
        (None, AutoPad::SameUpper | AutoPad::SameLower) => Some(
            input
                .checked_mul(s)
                .ok_or_else(|| "ConvTranspose output is out of range".to_string())?,
        ),
        _ => None,
    };
    if let Some(out) = target {
        let total = full - to_i(out)?;
        let half = total.div_euclid(2);
        let (pb, pe) = if auto_pad == AutoPad::SameUpper {
            (half, total - half)
        } else {
            (total - half, half)
        };
        return Ok((pb, pe, out));
    }
    let (pb, pe) = if auto_pad == AutoPad::Valid {
        (0, 0)
    } else {
        (to_i(pads.0)?, to_i(pads.1)?)
    };
    let out = full - pb - pe;
    if out < 0 {
        return Err(format!(
            "pads {pb}+{pe} exceed the output extent {full} (input {input}, kernel {k}, \
             stride {s}, dilation {d})"
        ));
    }
    Ok((pb, pe, out as usize))
}

/// `output_padding` and `output_shape` for `nsp` axes (`output_shape` may also list N, C).
fn transpose_lists(
    output_padding: &[usize],
    output_shape: &[usize],
    nsp: usize,
) -> Result<(Vec<usize>, Option<Vec<usize>>), String> {
    let op = if output_padding.is_empty() {
        vec![0; nsp]
    } else if output_padding.len() == nsp {
        output_padding.to_vec()
    } else {
        return Err(format!(
            "output_padding {output_padding:?} has {} values for {nsp} spatial axes",
            output_padding.len()
        ));
    };
    let os = match output_shape.len() {
        0 => None,
        l if l == nsp => Some(output_shape.to_vec()),
        l if l == nsp + 2 => Some(output_shape[2..].to_vec()),
        l => {
            return Err(format!(
                "output_shape {output_shape:?} has {l} values for {nsp} spatial axes"
            ));
        }
    };
    Ok((op, os))
}

/// Output types of ConvTranspose.
pub(super) fn infer_conv_transpose(
    op: &Op,
    attrs: &ConvAttrs,
    output_padding: &[usize],
    output_shape: &[usize],
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let dtype = input(op, inputs, 0)?.ty.dtype;
    let Some((xd, wd, rank)) = infer_conv_common(op, attrs, inputs)? else {
        return Ok(vec![TensorType::unranked(dtype)]);
    };
    let nsp = rank - 2;
    let group = attrs.group;
    if let (Some(x), Some(w)) = (xd, wd)
        && let (Dim::Static(c), Dim::Static(wc)) = (&x[1], &w[0])
        && c != wc
    {
        return Err(shape_err(format!(
            "ConvTranspose input channels {c} of X {} != W {} dim 0",
            fmt_dims(x),
            fmt_dims(w)
        )));
    }
    if let Some(Dim::Static(c)) = xd.map(|x| &x[1])
        && c % group != 0
    {
        return Err(shape_err(format!(
            "ConvTranspose input channels {c} are not a multiple of group {group}"
        )));
    }
    let m =
        match wd.map(|w| &w[1]) {
            Some(Dim::Static(mg)) => Dim::Static(mg.checked_mul(group).ok_or_else(|| {
                InferError::Attribute("ConvTranspose group is out of range".into())
            })?),
            _ => Dim::Unknown,
        };
    infer_bias(op, inputs, &m)?;
    let kernel = infer_kernel(op, &attrs.window, wd, nsp)?;
    let a = axis_attrs(&attrs.window, nsp).map_err(InferError::Attribute)?;
    let (opad, oshape) =
        transpose_lists(output_padding, output_shape, nsp).map_err(InferError::Attribute)?;
    let mut out = vec![xd.map_or(Dim::Unknown, |x| x[0].clone()), m];
    for i in 0..nsp {
        if let Some(os) = &oshape {
            out.push(Dim::Static(os[i]));
            continue;
        }
        let input = xd.and_then(|x| x[2 + i].as_static());
        let d = match (input, kernel[i]) {
            (Some(inp), Some(k)) => {
                let (_, _, o) = transpose_axis(
                    attrs.window.auto_pad,
                    inp,
                    k,
                    a.strides[i],
                    a.dilations[i],
                    opad[i],
                    (a.pads[i], a.pads[nsp + i]),
                    None,
                )
                .map_err(InferError::Shape)?;
                Dim::Static(o)
            }
            _ => Dim::Unknown,
        };
        out.push(d);
    }
    Ok(vec![TensorType {
        dtype,
        shape: Shape::Ranked(out),
    }])
}

/// Evaluates ConvTranspose.
pub(super) fn eval_conv_transpose(
    op: &Op,
    attrs: &ConvAttrs,
    output_padding: &[usize],
    output_shape: &[usize],
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    let (x, w, b) = conv_inputs(op, attrs, inputs)?;
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let group = attrs.group;
    let nsp = x.rank() - 2;
    if nsp > 3 {
        return Err(EvalError::Unsupported(format!(
            "ConvTranspose with {nsp} spatial axes (at most 3)"
        )));
    }
    if w.shape()[0] != c || c % group != 0 {
        return Err(EvalError::Invalid(format!(
            "ConvTranspose W {:?} dim 0 must equal the input channels of X {:?}, a multiple \
             of group {group}",
            w.shape(),
            x.shape()
        )));
    }
    let mg = w.shape()[1];
    let m = mg
        .checked_mul(group)
        .ok_or_else(|| EvalError::Invalid("ConvTranspose group is out of range".into()))?;
    check_bias(op, b, m)?;
    let err = |e: String| EvalError::Invalid(format!("ConvTranspose: {e}"));
    let a = axis_attrs(&attrs.window, nsp).map_err(err)?;
    let (opad, oshape) = transpose_lists(output_padding, output_shape, nsp).map_err(err)?;
    let mut g = Geom::unit();
    for i in 0..nsp {
        let j = 3 - nsp + i;
        let (pb, pe, o) = transpose_axis(
            attrs.window.auto_pad,
            x.shape()[2 + i],
            w.shape()[2 + i],
            a.strides[i],
            a.dilations[i],
            opad[i],
            (a.pads[i], a.pads[nsp + i]),
            oshape.as_ref().map(|o| o[i]),
        )
        .map_err(err)?;
        g.input[j] = x.shape()[2 + i];
        g.kernel[j] = w.shape()[2 + i];
        g.stride[j] = a.strides[i];
        g.dilation[j] = a.dilations[i];
        g.pad_begin[j] = pb;
        g.pad_end[j] = pe;
        g.output[j] = o;
    }
    let mut out_shape = vec![n, m];
    out_shape.extend_from_slice(&g.output[3 - nsp..]);
    checked_numel(&out_shape)?;
    let dtype = x.dtype();
    with_real!(dtype, F => {
        let xv = load::<F>(x);
        let wv = load::<F>(w);
        let bv = b.map(load::<F>);
        let y = conv_transpose_forward::<F>(&xv, &wv, bv.as_deref(), n, c, mg, group, &g)?;
        Ok(vec![store(dtype, out_shape, y)?])
    }, else Err(super::bad_dtype(op, dtype)))
}

/// ConvTranspose over validated shapes: X [n, c, in], W [c, mg, kernel] → Y [n, mg·group, out].
#[allow(clippy::too_many_arguments)]
fn conv_transpose_forward<F: Real>(
    x: &[F],
    w: &[F],
    b: Option<&[F]>,
    n: usize,
    c: usize,
    mg: usize,
    group: usize,
    g: &Geom,
) -> Result<Vec<F>, EvalError> {
    let cg = c / group;
    let m = mg * group;
    let (kk, pin, pout) = (g.kernel_size(), g.in_size(), g.out_size());
    let mut y = vec![F::ZERO; n * m * pout];
    if pout == 0 || m == 0 {
        return Ok(y);
    }
    let rows = mg * kk;
    let mut col = vec![F::ZERO; checked_numel(&[rows, pin])?];
    let [kd, kh, kw] = g.kernel;
    let [_, oh, ow] = g.output;
    let [_, ih, iw] = g.input;
    for ni in 0..n {
        for gi in 0..group {
            let xs = &x[(ni * c + gi * cg) * pin..][..cg * pin];
            let ws = &w[gi * cg * rows..][..cg * rows];
            // col [mg·kk, pin] = W_g^T [mg·kk, cg] × X_g [cg, pin]
            gemm(
                rows,
                cg,
                pin,
                F::ONE,
                Mat::cols(ws, rows),
                Mat::rows(xs, pin),
                F::ZERO,
                &mut col,
            );
            let ys = &mut y[(ni * m + gi * mg) * pout..][..mg * pout];
            let col = &col;
            ys.par_chunks_mut(pout).enumerate().for_each(|(mo, out)| {
                for k0 in 0..kd {
                    let t0 = g.tap(0, k0);
                    let (d_lo, d_hi) = valid_range(g.input[0], g.stride[0], t0, g.output[0]);
                    for k1 in 0..kh {
                        let t1 = g.tap(1, k1);
                        let (h_lo, h_hi) = valid_range(ih, g.stride[1], t1, oh);
                        for k2 in 0..kw {
                            let t2 = g.tap(2, k2);
                            let (w_lo, w_hi) = valid_range(iw, g.stride[2], t2, ow);
                            if w_lo >= w_hi {
                                continue;
                            }
                            let src = &col[(mo * kk + (k0 * kh + k1) * kw + k2) * pin..][..pin];
                            for id in d_lo..d_hi {
                                let od = (id * g.stride[0]) as i64 + t0;
                                for i1 in h_lo..h_hi {
                                    let o1 = (i1 * g.stride[1]) as i64 + t1;
                                    let srow = &src[(id * ih + i1) * iw..][w_lo..w_hi];
                                    let drow =
                                        &mut out[(od as usize * oh + o1 as usize) * ow..][..ow];
                                    let start = ((w_lo * g.stride[2]) as i64 + t2) as usize;
                                    for (s, d) in srow
                                        .iter()
                                        .zip(drow[start..].iter_mut().step_by(g.stride[2]))
                                    {
                                        *d += *s;
                                    }
                                }
                            }
                        }
                    }
                }
                if let Some(b) = b {
                    let bias = b[gi * mg + mo];
                    out.iter_mut().for_each(|v| *v += bias);
                }
            });
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::dtype::DType;

    fn conv(group: usize, w: Window) -> Op {
        Op::Conv(ConvAttrs {
            window: w,
            group,
            layout: Default::default(),
        })
    }

    fn win(strides: &[usize], pads: &[usize], dilations: &[usize], auto_pad: AutoPad) -> Window {
        Window {
            kernel_shape: vec![],
            strides: strides.to_vec(),
            dilations: dilations.to_vec(),
            pads: pads.to_vec(),
            auto_pad,
        }
    }

    /// Direct nested-loop Conv for cross-checking the fast paths (2-D only).
    #[allow(clippy::too_many_arguments)]
    fn naive_conv2d(
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        group: usize,
        s: [usize; 2],
        p: [usize; 4],
        d: [usize; 2],
    ) -> (Vec<f32>, [usize; 4]) {
        let [n, c, h, wd] = xs;
        let [m, cg, kh, kw] = ws;
        let oh = (h + p[0] + p[2] - (d[0] * (kh - 1) + 1)) / s[0] + 1;
        let ow = (wd + p[1] + p[3] - (d[1] * (kw - 1) + 1)) / s[1] + 1;
        let mg = m / group;
        let mut y = vec![0f32; n * m * oh * ow];
        for ni in 0..n {
            for mo in 0..m {
                let gi = mo / mg;
                for yo in 0..oh {
                    for xo in 0..ow {
                        let mut acc = 0f32;
                        for ci in 0..cg {
                            for a in 0..kh {
                                for bb in 0..kw {
                                    let iy = (yo * s[0] + a * d[0]) as i64 - p[0] as i64;
                                    let ix = (xo * s[1] + bb * d[1]) as i64 - p[1] as i64;
                                    if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                        continue;
                                    }
                                    let xi = ((ni * c + gi * cg + ci) * h + iy as usize) * wd
                                        + ix as usize;
                                    acc += x[xi] * w[((mo * cg + ci) * kh + a) * kw + bb];
                                }
                            }
                        }
                        y[((ni * m + mo) * oh + yo) * ow + xo] = acc;
                    }
                }
            }
        }
        (y, [n, m, oh, ow])
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16;
                (v % 17) as f32 / 8.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn conv_basic_with_and_without_padding() {
        // ONNX test_basic_conv_*: 5x5 input 0..24, 3x3 ones kernel.
        let x = iota(&[1, 1, 5, 5]);
        let w = f(&[1, 1, 3, 3], &[1.0; 9]);
        let y = run1(
            &conv(1, win(&[], &[1, 1, 1, 1], &[], AutoPad::NotSet)),
            &[x.clone(), w.clone()],
        );
        assert_eq!(y.shape(), &[1, 1, 5, 5]);
        assert_eq!(&y.to_f64_vec()[..5], &[12., 21., 27., 33., 24.]);
        let y = run1(
            &conv(1, win(&[], &[], &[], AutoPad::NotSet)),
            &[x.clone(), w.clone()],
        );
        close(
            &y,
            &[1, 1, 3, 3],
            &[54., 63., 72., 99., 108., 117., 144., 153., 162.],
        );
        // Strides 2 with asymmetric padding (test_conv_with_strides_and_asymmetric_padding).
        let y = run1(
            &conv(1, win(&[2, 2], &[1, 0, 1, 0], &[], AutoPad::NotSet)),
            &[iota(&[1, 1, 7, 5]), w.clone()],
        );
        close(
            &y,
            &[1, 1, 4, 2],
            &[21., 33., 99., 117., 189., 207., 171., 183.],
        );
        // SAME_LOWER with stride 2 (test_conv_with_autopad_same).
        let y = run1(
            &conv(1, win(&[2, 2], &[], &[], AutoPad::SameLower)),
            &[x, w],
        );
        close(
            &y,
            &[1, 1, 3, 3],
            &[12., 27., 24., 63., 108., 81., 72., 117., 84.],
        );
    }

    #[test]
    fn conv_bias_1d_and_3d() {
        // 1-D: x = [1,2,3,4], w = [1,-1], bias 10.
        let y = run1(
            &conv(1, Window::default()),
            &[
                f(&[1, 1, 4], &[1., 2., 3., 4.]),
                f(&[1, 1, 2], &[1., -1.]),
                f(&[1], &[10.]),
            ],
        );
        close(&y, &[1, 1, 3], &[9., 9., 9.]);
        // 3-D: 2x2x2 input, 2x2x2 kernel of ones = sum 0..7.
        let y = run1(
            &conv(1, Window::default()),
            &[iota(&[1, 1, 2, 2, 2]), f(&[1, 1, 2, 2, 2], &[1.0; 8])],
        );
        close(&y, &[1, 1, 1, 1, 1], &[28.]);
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn conv_fast_paths_match_naive() {
        let cases: &[(
            [usize; 4],
            [usize; 4],
            usize,
            [usize; 2],
            [usize; 4],
            [usize; 2],
        )] = &[
            ([2, 4, 7, 6], [6, 4, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1]),
            ([1, 4, 9, 8], [6, 2, 3, 2], 2, [2, 1], [0, 1, 2, 0], [2, 1]),
            ([2, 3, 6, 6], [6, 1, 3, 3], 3, [2, 2], [1, 1, 1, 1], [1, 1]), // depthwise ×2
            ([1, 4, 5, 5], [4, 1, 3, 3], 4, [1, 1], [1, 1, 1, 1], [1, 1]), // depthwise
            ([2, 6, 4, 5], [4, 3, 1, 1], 2, [1, 1], [0, 0, 0, 0], [1, 1]), // pointwise grouped
            ([1, 3, 6, 7], [5, 3, 1, 1], 1, [2, 2], [0, 0, 0, 0], [1, 1]), // strided 1x1
        ];
        for &(xs, ws, group, s, p, d) in cases {
            let x = pseudo(xs.iter().product(), 1);
            let w = pseudo(ws.iter().product(), 7);
            let (want, ys) = naive_conv2d(&x, xs, &w, ws, group, s, p, d);
            let op = conv(group, win(&s, &p, &d, AutoPad::NotSet));
            let y = run1(&op, &[f(&xs, &x), f(&ws, &w)]);
            let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
            close(&y, &ys, &want);
        }
    }

    /// `v` (a dense `[n, c, h, w]`) stored as `[n, h, w, c]`.
    fn nhwc(v: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
        let mut out = vec![0.0; v.len()];
        for ni in 0..n {
            for ci in 0..c {
                for p in 0..h * w {
                    out[(ni * h * w + p) * c + ci] = v[(ni * c + ci) * h * w + p];
                }
            }
        }
        out
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn channels_last_layouts_match_naive() {
        // Pointwise, 3×3 strided with padding, depthwise, grouped: every layout against the
        // channels-first nested loops, with the stored side transposed by hand.
        let cases: &[([usize; 4], [usize; 4], usize, [usize; 2], [usize; 4])] = &[
            ([2, 4, 5, 3], [6, 4, 1, 1], 1, [1, 1], [0, 0, 0, 0]),
            ([1, 3, 7, 6], [5, 3, 3, 3], 1, [2, 2], [1, 1, 1, 1]),
            ([1, 4, 5, 5], [4, 1, 3, 3], 4, [1, 1], [1, 1, 1, 1]),
            ([1, 6, 4, 5], [4, 3, 3, 1], 2, [1, 1], [1, 0, 1, 0]),
        ];
        for &(xs, ws, group, st, p) in cases {
            let x = pseudo(xs.iter().product(), 3);
            let w = pseudo(ws.iter().product(), 11);
            let (want, ys) = naive_conv2d(&x, xs, &w, ws, group, st, p, [1, 1]);
            for (input_last, output_last, weight_last) in [
                (true, false, false),
                (false, true, false),
                (true, true, false),
                (true, true, true),
                (false, false, true),
            ] {
                let op = Op::Conv(ConvAttrs {
                    window: win(&st, &p, &[], AutoPad::NotSet),
                    group,
                    layout: ConvLayout {
                        input_last,
                        output_last,
                        weight_last,
                    },
                });
                let (xv, xshape) = if input_last {
                    (nhwc(&x, xs), vec![xs[0], xs[2], xs[3], xs[1]])
                } else {
                    (x.clone(), xs.to_vec())
                };
                let (wantv, yshape) = if output_last {
                    (nhwc(&want, ys), vec![ys[0], ys[2], ys[3], ys[1]])
                } else {
                    (want.clone(), ys.to_vec())
                };
                let (wv, wshape) = if weight_last {
                    (nhwc(&w, ws), vec![ws[0], ws[2], ws[3], ws[1]])
                } else {
                    (w.clone(), ws.to_vec())
                };
                let xt = f(&xshape, &xv);
                let wt = f(&wshape, &wv);
                let y = run1(&op, &[xt.clone(), wt.clone()]);
                let wantv: Vec<f64> = wantv.iter().map(|&v| v as f64).collect();
                close(&y, &yshape, &wantv);
                let tys = [
                    TensorType::fixed(DType::F32, &xshape),
                    TensorType::fixed(DType::F32, &wshape),
                ];
                let ins: Vec<Option<InferInput<'_>>> = tys
                    .iter()
                    .map(|ty| Some(InferInput { ty, value: None }))
                    .collect();
                let inferred = super::super::infer(&op, &ins, 1).unwrap();
                assert_eq!(inferred[0], TensorType::fixed(DType::F32, &yshape));
            }
        }
        // The other conv-like ops refuse a channels-last layout.
        let convt = Op::ConvTranspose {
            conv: ConvAttrs {
                window: Window::default(),
                group: 1,
                layout: ConvLayout {
                    input_last: true,
                    output_last: false,
                    weight_last: false,
                },
            },
            output_padding: vec![],
            output_shape: vec![],
        };
        let xt = TensorType::fixed(DType::F32, &[1, 2, 2, 1]);
        let wt = TensorType::fixed(DType::F32, &[1, 1, 1, 1]);
        let ins = [
            Some(InferInput {
                ty: &xt,
                value: None,
            }),
            Some(InferInput {
                ty: &wt,
                value: None,
            }),
        ];
        assert!(super::super::infer(&convt, &ins, 1).is_err());
    }

    #[test]
    fn conv_half_and_double() {
        let x = iota(&[1, 1, 3, 3]);
        let w = f(&[1, 1, 2, 2], &[1., 0., 0., 1.]);
        let want = [4., 6., 10., 12.];
        for dt in [DType::F16, DType::BF16, DType::F64] {
            let y = run1(&conv(1, Window::default()), &[x.cast(dt), w.cast(dt)]);
            assert_eq!(y.dtype(), dt);
            close(&y, &[1, 1, 2, 2], &want);
        }
    }

    #[test]
    fn conv_errors() {
        let op = conv(1, Window::default());
        let x = iota(&[1, 2, 4, 4]);
        let e = eval_op(&op, &[Some(x.clone()), Some(iota(&[1, 3, 2, 2]))], 1);
        assert!(e.is_err());
        let e = eval_op(&op, &[Some(x.clone()), Some(iota(&[1, 2, 5, 5]))], 1);
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("larger than the padded input")
        );
        let e = eval_op(
            &op,
            &[Some(x.clone()), Some(iota(&[1, 2, 2, 2])), Some(iota(&[2]))],
            1,
        );
        assert!(e.is_err());
        let bad = conv(1, win(&[0, 1], &[], &[], AutoPad::NotSet));
        assert!(eval_op(&bad, &[Some(x.clone()), Some(iota(&[1, 2, 2, 2]))], 1).is_err());
        let ints = Tensor::from_vec(vec![1, 1, 1], vec![1i32]).unwrap();
        assert!(eval_op(&op, &[Some(ints.clone()), Some(ints)], 1).is_err());
        let huge = conv(1, win(&[], &[usize::MAX, 0, 0, 0], &[], AutoPad::NotSet));
        assert!(eval_op(&huge, &[Some(x), Some(iota(&[1, 2, 2, 2]))], 1).is_err());
    }

    #[test]
    fn conv_infer() {
        let op = conv(2, win(&[2, 2], &[1, 1, 1, 1], &[], AutoPad::NotSet));
        let t = infer_types(
            &op,
            &[
                Some(sty(DType::F32, &["N", "4", "9", "8"])),
                Some(ty(DType::F32, &[6, 2, 3, 3])),
                Some(ty(DType::F32, &[6])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["N", "6", "5", "4"]));
        // Symbolic spatial dims pass through stride-1 "same" convs.
        let same = conv(1, win(&[], &[1, 1, 1, 1], &[], AutoPad::NotSet));
        let t = infer_types(
            &same,
            &[
                Some(sty(DType::F32, &["N", "4", "H", "W"])),
                Some(ty(DType::F32, &[8, 4, 3, 3])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["N", "8", "H", "W"]));
        let e = infer_types(
            &op,
            &[
                Some(ty(DType::F32, &[1, 5, 9, 8])),
                Some(ty(DType::F32, &[6, 2, 3, 3])),
            ],
            1,
        )
        .unwrap_err();
        assert!(
            matches!(&e, InferError::Shape(m) if m.contains("[1x5x9x8]") && m.contains("[6x2x3x3]")),
            "{e}"
        );
        let e = infer_types(
            &op,
            &[
                Some(ty(DType::F32, &[1, 4, 9, 8])),
                Some(ty(DType::F32, &[6, 2, 3, 3])),
                Some(ty(DType::F32, &[5])),
            ],
            1,
        );
        assert!(matches!(e, Err(InferError::Shape(_))));
        let e = infer_types(
            &op,
            &[
                Some(ty(DType::I32, &[1, 4, 9, 8])),
                Some(ty(DType::I32, &[6, 2, 3, 3])),
            ],
            1,
        );
        assert!(matches!(e, Err(InferError::Dtype(_))));
        // Auto-pad SAME_UPPER: ceil(in / stride).
        let op = conv(1, win(&[2, 3], &[], &[], AutoPad::SameUpper));
        let t = infer_types(
            &op,
            &[
                Some(ty(DType::F32, &[1, 1, 7, 7])),
                Some(ty(DType::F32, &[1, 1, 3, 3])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], ty(DType::F32, &[1, 1, 4, 3]));
    }

    fn convt(group: usize, w: Window, output_padding: &[usize], output_shape: &[usize]) -> Op {
        Op::ConvTranspose {
            conv: ConvAttrs {
                window: w,
                group,
                layout: Default::default(),
            },
            output_padding: output_padding.to_vec(),
            output_shape: output_shape.to_vec(),
        }
    }

    #[test]
    fn conv_transpose_values() {
        // 1-D: x = [1, 2, 3], w = [1, 1, 1] -> full correlation [1, 3, 6, 5, 3].
        let op = convt(1, Window::default(), &[], &[]);
        let y = run1(
            &op,
            &[f(&[1, 1, 3], &[1., 2., 3.]), f(&[1, 1, 3], &[1., 1., 1.])],
        );
        close(&y, &[1, 1, 5], &[1., 3., 6., 5., 3.]);
        // Stride 2 with bias, two output channels.
        let op = convt(1, win(&[2], &[], &[], AutoPad::NotSet), &[], &[]);
        let y = run1(
            &op,
            &[
                f(&[1, 1, 2], &[1., 2.]),
                f(&[1, 2, 2], &[1., 10., -1., 0.]),
                f(&[2], &[0.5, 0.]),
            ],
        );
        close(&y, &[1, 2, 4], &[1.5, 10.5, 2.5, 20.5, -1., 0., -2., 0.]);
        // Pads crop and output_padding extends.
        let op = convt(1, win(&[2], &[1, 0], &[], AutoPad::NotSet), &[1], &[]);
        let y = run1(&op, &[f(&[1, 1, 2], &[1., 2.]), f(&[1, 1, 2], &[1., 10.])]);
        close(&y, &[1, 1, 4], &[10., 2., 20., 0.]);
        // output_shape computes the pads (SAME_UPPER: extra at the end).
        let op = convt(1, win(&[2], &[], &[], AutoPad::SameUpper), &[], &[]);
        let y = run1(
            &op,
            &[f(&[1, 1, 2], &[1., 2.]), f(&[1, 1, 3], &[1., 1., 1.])],
        );
        // full = [1, 1, 3, 2, 2]; total pad 1 -> begin 0, end 1.
        close(&y, &[1, 1, 4], &[1., 1., 3., 2.]);
        let op = convt(1, win(&[2], &[], &[], AutoPad::NotSet), &[], &[4]);
        let y = run1(
            &op,
            &[f(&[1, 1, 2], &[1., 2.]), f(&[1, 1, 3], &[1., 1., 1.])],
        );
        close(&y, &[1, 1, 4], &[1., 3., 2., 2.]);
    }

    #[test]
    fn conv_transpose_groups_2d() {
        // Two groups, each a 1x1 channel with a 2x2 kernel of its own value.
        let op = convt(2, Window::default(), &[], &[]);
        let x = f(&[1, 2, 1, 1], &[1., 2.]);
        let w = f(&[2, 1, 2, 2], &[1., 1., 1., 1., 3., 3., 3., 3.]);
        let y = run1(&op, &[x, w]);
        close(&y, &[1, 2, 2, 2], &[1., 1., 1., 1., 6., 6., 6., 6.]);
        // test_convtranspose: 3x3 iota input, ones kernel, two output channels.
        let op = convt(1, Window::default(), &[], &[]);
        let y = run1(&op, &[iota(&[1, 1, 3, 3]), f(&[1, 2, 3, 3], &[1.0; 18])]);
        assert_eq!(y.shape(), &[1, 2, 5, 5]);
        assert_eq!(
            &y.to_f64_vec()[..10],
            &[0., 1., 3., 3., 2., 3., 8., 15., 12., 7.]
        );
    }

    #[test]
    fn conv_transpose_infer() {
        let op = convt(2, win(&[3, 2], &[], &[], AutoPad::NotSet), &[1, 1], &[]);
        let t = infer_types(
            &op,
            &[
                Some(sty(DType::F32, &["N", "4", "3", "3"])),
                Some(ty(DType::F32, &[4, 3, 3, 3])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["N", "6", "10", "8"]));
        let op = convt(1, Window::default(), &[], &[10, 8]);
        let t = infer_types(
            &op,
            &[
                Some(sty(DType::F32, &["N", "1", "H", "W"])),
                Some(ty(DType::F32, &[1, 2, 3, 3])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["N", "2", "10", "8"]));
        let e = infer_types(
            &op,
            &[
                Some(ty(DType::F32, &[1, 3, 3, 3])),
                Some(ty(DType::F32, &[1, 2, 3, 3])),
            ],
            1,
        );
        assert!(matches!(e, Err(InferError::Shape(_))));
    }

    #[test]
    fn valid_range_cases() {
        assert_eq!(valid_range(5, 1, -1, 5), (1, 5));
        assert_eq!(valid_range(5, 2, -1, 5), (1, 3));
        assert_eq!(valid_range(3, 1, 7, 5), (0, 0));
        assert_eq!(valid_range(4, 3, 0, 10), (0, 4));
        assert_eq!(valid_range(4, 3, -10, 2), (4, 4));
    }
}
