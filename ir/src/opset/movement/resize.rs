//! Resize: nearest, linear and cubic interpolation over any number of axes, following the
//! ONNX reference implementation (`onnx/reference/ops/op_resize.py`) step for step.
//!
//! Interpolation is separable, so the output is computed one axis at a time (in the order
//! of the `axes` attribute). For each resized axis and output coordinate, the source
//! coordinate, the window of neighbours and their weights are computed once ("taps"), with
//! the reference's edge clamping, `exclude_outside` renormalisation, antialiasing (a filter
//! widened by `1 / scale` when downscaling) and tf_crop_and_resize extrapolation. Nearest
//! resizing selects elements (exact for every dtype); linear and cubic accumulate in f64 and
//! round back like the reference's saturating cast.

use super::copy::{by_width, first_word, from_words, words};
use super::layout::pad_fill;
use super::{input, invalid, known_ints, norm_axes, ranked, shape_err};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, opt_input};
use crate::interp::EvalError;
use crate::ops::{AspectPolicy, CoordTransform, NearestMode, Op, ResizeAttrs, ResizeMode};
use crate::opset::util::{opt, req};
use crate::tensor::{MAX_ELEMENTS, Tensor, checked_numel};
use crate::types::{Dim, TensorType};

/// Output sizes and scales of every axis.
struct Plan {
    /// The resized axes, in attribute order.
    axes: Vec<usize>,
    /// Output dims.
    out: Vec<usize>,
    /// Scale per dim (1 for axes not resized).
    scale: Vec<f64>,
}

/// Computes output sizes from `scales` or `sizes` (one value per resized axis).
fn plan(
    attrs: &ResizeAttrs,
    in_shape: &[usize],
    scales: Option<&[f64]>,
    sizes: Option<&[i64]>,
) -> Result<Plan, String> {
    let r = in_shape.len();
    let axes = if attrs.axes.is_empty() {
        (0..r).collect()
    } else {
        norm_axes(&attrs.axes, r)?
    };
    let mut out = in_shape.to_vec();
    let mut scale = vec![1.0f64; r];
    match (scales, sizes) {
        (Some(_), Some(_)) => return Err("only one of scales and sizes may be given".into()),
        (None, None) => return Err("one of scales and sizes must be given".into()),
        (Some(s), None) => {
            if s.len() != axes.len() {
                return Err(format!("{} scales for {} axes", s.len(), axes.len()));
            }
            for (&a, &v) in axes.iter().zip(s) {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(format!("scale {v} must be positive and finite"));
                }
                let n = (v * in_shape[a] as f64).trunc();
                if n > MAX_ELEMENTS as f64 {
                    return Err(format!("scale {v} gives an output dim of {n}"));
                }
                scale[a] = v;
                out[a] = n as usize;
            }
        }
        (None, Some(s)) => {
            if s.len() != axes.len() {
                return Err(format!("{} sizes for {} axes", s.len(), axes.len()));
            }
            for (&a, &v) in axes.iter().zip(s) {
                out[a] = usize::try_from(v).map_err(|_| format!("size {v} is negative"))?;
                scale[a] = out[a] as f64 / in_shape[a] as f64;
            }
            if attrs.aspect != AspectPolicy::Stretch {
                let live = axes.iter().filter(|&&a| in_shape[a] > 0).map(|&a| scale[a]);
                let s = if attrs.aspect == AspectPolicy::NotLarger {
                    live.fold(f64::INFINITY, f64::min)
                } else {
                    live.fold(f64::NEG_INFINITY, f64::max)
                };
                let s = if s.is_finite() { s } else { 1.0 };
                for &a in &axes {
                    scale[a] = s;
                    out[a] = (s * in_shape[a] as f64 + 0.5) as usize;
                }
            }
        }
    }
    for &a in &axes {
        if in_shape[a] == 0 && out[a] > 0 {
            return Err(format!("cannot resize an empty dim {a} to {}", out[a]));
        }
    }
    Ok(Plan { axes, out, scale })
}

/// Resize inference.
pub(super) fn infer(
    op: &Op,
    attrs: &ResizeAttrs,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let dtype = x.ty.dtype;
    let present = |i| opt_input(inputs, i).filter(|t| super::static_len(t) != Some(0));
    let (scales, sizes) = (present(2), present(3));
    if let Some(s) = scales
        && !s.ty.dtype.is_float()
    {
        return Err(InferError::Dtype(format!(
            "Resize scales must be float, got {}",
            s.ty.dtype
        )));
    }
    if let Some(s) = sizes {
        super::require_int(op, s.ty.dtype, "sizes")?;
    }
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(TensorType::unranked(dtype));
    };
    let r = dims.len();
    let axes = if attrs.axes.is_empty() {
        (0..r).collect()
    } else {
        norm_axes(&attrs.axes, r).map_err(|e| super::attr_err(op, e))?
    };
    let mut out = dims.to_vec();
    let known_scales = scales.and_then(|s| s.value).map(Tensor::to_f64_vec);
    let known_sizes = sizes.and_then(|s| known_ints(&s));
    let static_in: Option<Vec<usize>> = dims.iter().map(Dim::as_static).collect();
    match (scales.is_some(), known_scales, known_sizes) {
        (true, Some(s), _) => {
            if s.len() != axes.len() {
                return Err(shape_err(
                    op,
                    format!("{} scales for {} axes", s.len(), axes.len()),
                ));
            }
            for (&a, &v) in axes.iter().zip(&s) {
                out[a] = match &dims[a] {
                    Dim::Static(d) => {
                        let shape: Vec<usize> = vec![*d];
                        let p = plan(&single_axis(attrs), &shape, Some(&[v]), None)
                            .map_err(|e| super::attr_err(op, e))?;
                        Dim::Static(p.out[0])
                    }
                    d if v == 1.0 => d.clone(),
                    _ => Dim::Unknown,
                };
            }
        }
        (false, _, Some(s)) => {
            if s.len() != axes.len() {
                return Err(shape_err(
                    op,
                    format!("{} sizes for {} axes", s.len(), axes.len()),
                ));
            }
            match (&static_in, attrs.aspect) {
                (_, AspectPolicy::Stretch) => {
                    for (&a, &v) in axes.iter().zip(&s) {
                        let v = usize::try_from(v)
                            .map_err(|_| super::attr_err(op, format!("size {v} is negative")))?;
                        out[a] = Dim::Static(v);
                    }
                }
                (Some(in_shape), _) => {
                    let p = plan(attrs, in_shape, None, Some(&s))
                        .map_err(|e| super::attr_err(op, e))?;
                    out = p.out.into_iter().map(Dim::Static).collect();
                }
                (None, _) => {
                    for &a in &axes {
                        out[a] = Dim::Unknown;
                    }
                }
            }
        }
        _ => {
            for &a in &axes {
                out[a] = Dim::Unknown;
            }
        }
    }
    Ok(ranked(dtype, out))
}

/// The attributes with `axes` cleared (for planning one axis at a time).
fn single_axis(attrs: &ResizeAttrs) -> ResizeAttrs {
    ResizeAttrs {
        axes: vec![],
        ..attrs.clone()
    }
}

/// The region of interest of one axis, in the precision of the roi input.
#[derive(Clone, Copy)]
struct Roi {
    start: f64,
    end: f64,
    /// Arithmetic on the roi values happens in f32 (f16/f32 roi) like numpy's.
    f32: bool,
}

impl Roi {
    const FULL: Roi = Roi {
        start: 0.0,
        end: 1.0,
        f32: false,
    };

    /// `(end - start)` in the roi's precision.
    fn extent(self) -> f64 {
        if self.f32 {
            (self.end as f32 - self.start as f32) as f64
        } else {
            self.end - self.start
        }
    }

    /// `v * k` in the roi's precision.
    fn mul(self, v: f64, k: f64) -> f64 {
        if self.f32 {
            (v as f32 * k as f32) as f64
        } else {
            v * k
        }
    }
}

/// The source coordinate of output coordinate `y` and whether it extrapolates.
fn source_coord(
    coord: CoordTransform,
    y: f64,
    scale: f64,
    in_w: usize,
    out_int: usize,
    roi: Roi,
) -> (f64, bool) {
    let inw = in_w as f64;
    let out_w = scale * inw;
    let x = match coord {
        CoordTransform::AlignCorners if out_w == 1.0 => 0.0,
        CoordTransform::AlignCorners => y * (inw - 1.0) / (out_w - 1.0),
        CoordTransform::Asymmetric => y / scale,
        CoordTransform::TfCropAndResize => {
            let x = if out_w == 1.0 {
                let v = roi.mul(roi.extent(), inw - 1.0);
                if roi.f32 {
                    (v as f32 / 2.0) as f64
                } else {
                    v / 2.0
                }
            } else {
                y * roi.extent() * (inw - 1.0) / (out_w - 1.0)
            };
            let x = x + roi.mul(roi.start, inw - 1.0);
            return (x, x < 0.0 || x > inw - 1.0);
        }
        CoordTransform::PytorchHalfPixel if out_w == 1.0 => -0.5,
        CoordTransform::PytorchHalfPixel | CoordTransform::HalfPixel => (y + 0.5) / scale - 0.5,
        CoordTransform::HalfPixelSymmetric => {
            let adjustment = out_int as f64 / out_w;
            let center = inw / 2.0;
            let offset = center * (1.0 - adjustment);
            offset + (y + 0.5) / scale - 0.5
        }
    };
    (x, false)
}

/// Cubic convolution weights of the 4 neighbours at `ratio` in (0, 1].
fn cubic_coeffs(ratio: f64, a: f64) -> Vec<f64> {
    let r = ratio;
    vec![
        ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
        ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
        ((a + 2.0) * (1.0 - r) - (a + 3.0)) * (1.0 - r) * (1.0 - r) + 1.0,
        ((a * ((1.0 - r) + 1.0) - 5.0 * a) * ((1.0 - r) + 1.0) + 8.0 * a) * ((1.0 - r) + 1.0)
            - 4.0 * a,
    ]
}

/// Antialiased cubic weights: the cubic kernel stretched by `1 / scale` when downscaling.
fn cubic_coeffs_antialias(ratio: f64, scale: f64, a: f64) -> Vec<f64> {
    let scale = scale.min(1.0);
    let kernel = |x: f64| {
        let x = x.abs();
        let (x2, x3) = (x * x, x * x * x);
        if x <= 1.0 {
            (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
        } else if x < 2.0 {
            a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
        } else {
            0.0
        }
    };
    let i_start = (-2.0 / scale).floor() as i64 + 1;
    let i_end = 2 - i_start;
    let c: Vec<f64> = (i_start..i_end)
        .map(|i| kernel(scale * (i as f64 - ratio)))
        .collect();
    let sum: f64 = c.iter().sum();
    c.into_iter().map(|v| v / sum).collect()
}

/// Antialiased linear weights: the triangle kernel stretched by `1 / scale`.
fn linear_coeffs_antialias(ratio: f64, scale: f64) -> Vec<f64> {
    let scale = scale.min(1.0);
    let start = (-1.0 / scale).floor() as i64 + 1;
    let footprint = 2 - 2 * start;
    let c: Vec<f64> = (start..start + footprint)
        .map(|i| (1.0 - ((i as f64 - ratio) * scale).abs()).clamp(0.0, 1.0))
        .collect();
    let sum: f64 = c.iter().sum();
    c.into_iter().map(|v| v / sum).collect()
}

/// Nearest "weights": 1 on the chosen one of the two neighbours.
fn nearest_coeffs(ratio: f64, mode: NearestMode) -> Vec<f64> {
    let pick_right = if ratio == 1.0 {
        true
    } else {
        match mode {
            NearestMode::RoundPreferFloor => ratio > 0.5,
            NearestMode::RoundPreferCeil => ratio >= 0.5,
            NearestMode::Floor => false,
            NearestMode::Ceil => true,
        }
    };
    if pick_right {
        vec![0.0, 1.0]
    } else {
        vec![1.0, 0.0]
    }
}

/// Neighbours and weights of every output coordinate along one axis.
struct Taps {
    /// Neighbours per output coordinate.
    n: usize,
    /// `out_w * n` clamped source indices.
    idx: Vec<usize>,
    /// `out_w * n` weights.
    w: Vec<f64>,
    /// Output coordinates that take the extrapolation value.
    extrapolated: Vec<bool>,
}

/// Computes the taps of one axis, replicating the reference's neighbour window.
fn taps(attrs: &ResizeAttrs, in_w: usize, out_w: usize, scale: f64, roi: Roi) -> Taps {
    let mut t = Taps {
        n: 0,
        idx: vec![],
        w: vec![],
        extrapolated: Vec::with_capacity(out_w),
    };
    let a = attrs.cubic_coeff_a as f64;
    for y in 0..out_w {
        let (x, ext) = source_coord(attrs.coord, y as f64, scale, in_w, out_w, roi);
        let xi = x.floor();
        let ratio = if x == xi { 1.0 } else { x - xi };
        let mut c = match (attrs.mode, attrs.antialias) {
            (ResizeMode::Nearest, _) => nearest_coeffs(ratio, attrs.nearest),
            (ResizeMode::Linear, false) => vec![1.0 - ratio, ratio],
            (ResizeMode::Linear, true) => linear_coeffs_antialias(ratio, scale),
            (ResizeMode::Cubic, false) => cubic_coeffs(ratio, a),
            (ResizeMode::Cubic, true) => cubic_coeffs_antialias(ratio, scale, a),
        };
        let n = c.len();
        t.n = n;
        let pad = n.div_ceil(2) as i64;
        let xp = x + pad as f64;
        let p = xp.floor();
        let frac = xp - p;
        let half = (n / 2) as i64;
        let off = if n % 2 == 0 {
            if frac == 0.0 { -half } else { -half + 1 }
        } else {
            let base = -(((n - 1) / 2) as i64);
            if frac <= 0.5 { base } else { base + 1 }
        };
        let start = p as i64 + off - pad;
        if attrs.exclude_outside && attrs.mode != ResizeMode::Nearest {
            for (k, ck) in c.iter_mut().enumerate() {
                let nb = start + k as i64;
                if nb < 0 || nb >= in_w as i64 {
                    *ck = 0.0;
                }
            }
            let sum: f64 = c.iter().sum();
            let sum = if sum == 0.0 { 1.0 } else { sum };
            c.iter_mut().for_each(|v| *v /= sum);
        }
        for k in 0..n as i64 {
            t.idx.push((start + k).clamp(0, in_w as i64 - 1) as usize);
        }
        t.w.extend(c);
        t.extrapolated.push(ext);
    }
    t
}

/// Interpolates `src` (of `shape`) along `axis` to `out_w` with `taps`.
fn apply(src: &[f64], shape: &[usize], axis: usize, out_w: usize, t: &Taps, ext: f64) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let in_w = shape[axis];
    let mut dst = vec![0.0f64; outer * out_w * inner];
    if inner == 1 {
        for (o, out_row) in dst.chunks_exact_mut(out_w).enumerate() {
            let src_row = &src[o * in_w..(o + 1) * in_w];
            for (y, d) in out_row.iter_mut().enumerate() {
                *d = if t.extrapolated[y] {
                    ext
                } else {
                    let (w, idx) = (&t.w[y * t.n..(y + 1) * t.n], &t.idx[y * t.n..(y + 1) * t.n]);
                    w.iter().zip(idx).map(|(&w, &i)| w * src_row[i]).sum()
                };
            }
        }
        return dst;
    }
    for o in 0..outer {
        for y in 0..out_w {
            let row = &mut dst[(o * out_w + y) * inner..(o * out_w + y + 1) * inner];
            if t.extrapolated[y] {
                row.fill(ext);
                continue;
            }
            for k in 0..t.n {
                let w = t.w[y * t.n + k];
                let s = (o * in_w + t.idx[y * t.n + k]) * inner;
                for (d, &v) in row.iter_mut().zip(&src[s..s + inner]) {
                    *d += w * v;
                }
            }
        }
    }
    dst
}

/// Whether the reference skips an axis as the identity.
fn is_identity(scale: f64, in_w: usize, out_w: usize, roi: Option<Roi>) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    close(scale, 1.0) && in_w == out_w && roi.is_none_or(|r| r.start == 0.0 && close(r.end, 1.0))
}

/// Resize evaluation.
pub(super) fn eval(
    op: &Op,
    attrs: &ResizeAttrs,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let present = |i| opt(inputs, i).filter(|t: &&Tensor| t.numel() > 0);
    let scales = match present(2) {
        Some(s) if !s.dtype().is_float() => {
            return Err(invalid(
                op,
                format!("scales must be float, got {}", s.dtype()),
            ));
        }
        Some(s) => Some(s.to_f64_vec()),
        None => None,
    };
    let sizes = present(3)
        .map(|s| super::int_values(op, s, "sizes"))
        .transpose()?;
    let p =
        plan(attrs, x.shape(), scales.as_deref(), sizes.as_deref()).map_err(|e| invalid(op, e))?;
    let r = x.rank();
    // Per-axis roi in full rank, when given with one (start, end) pair per resized axis.
    let rois: Option<Vec<Roi>> = match present(1) {
        Some(t) if t.dtype().is_float() && t.numel() == 2 * p.axes.len() => {
            let v = t.to_f64_vec();
            let f32 = t.dtype() != DType::F64;
            let mut full = vec![Roi { f32, ..Roi::FULL }; r];
            for (i, &a) in p.axes.iter().enumerate() {
                full[a] = Roi {
                    start: v[i],
                    end: v[p.axes.len() + i],
                    f32,
                };
            }
            Some(full)
        }
        Some(t) if attrs.coord == CoordTransform::TfCropAndResize => {
            return Err(invalid(
                op,
                format!(
                    "roi must hold {} floats, got {:?}",
                    2 * p.axes.len(),
                    t.shape()
                ),
            ));
        }
        _ => None,
    };
    let n = checked_numel(&p.out)?;
    if n == 0 {
        return Ok(Tensor::zeros(x.dtype(), p.out)?);
    }
    let roi_of = |a: usize| rois.as_ref().map_or(Roi::FULL, |v| v[a]);
    let active: Vec<usize> = p
        .axes
        .iter()
        .copied()
        .filter(|&a| {
            !is_identity(
                p.scale[a],
                x.shape()[a],
                p.out[a],
                rois.as_ref().map(|v| v[a]),
            )
        })
        .collect();
    if active.is_empty() {
        return Ok(x.clone());
    }
    let ext = attrs.extrapolation_value as f64;
    if attrs.mode == ResizeMode::Nearest {
        // Selection: one source index per output coordinate and axis (-1: extrapolate).
        let maps: Vec<Vec<isize>> = (0..r)
            .map(|a| {
                if !active.contains(&a) {
                    return (0..x.shape()[a] as isize).collect();
                }
                let t = taps(attrs, x.shape()[a], p.out[a], p.scale[a], roi_of(a));
                (0..p.out[a])
                    .map(|y| {
                        if t.extrapolated[y] {
                            return -1;
                        }
                        let k = if t.w[y * t.n] == 1.0 { 0 } else { 1 };
                        t.idx[y * t.n + k] as isize
                    })
                    .collect()
            })
            .collect();
        let fill = crate::dispatch!(x.dtype(), T => Tensor::scalar(T::round_from_f64(ext)));
        return by_width!(x.dtype(), W => {
            let c: W = first_word(&fill);
            let v = pad_fill(&words::<W>(x), x.shape(), &maps, &p.out, c, n);
            from_words(x.dtype(), p.out, v)
        });
    }
    let mut cur = x.to_f64_vec();
    let mut shape = x.shape().to_vec();
    for &a in &active {
        let t = taps(attrs, shape[a], p.out[a], p.scale[a], roi_of(a));
        cur = apply(&cur, &shape, a, p.out[a], &t, ext);
        shape[a] = p.out[a];
    }
    let dtype = x.dtype();
    let limit = match dtype {
        DType::F32 => f32::MAX as f64,
        DType::F16 => crate::half::f16::MAX.to_f64(),
        DType::BF16 => crate::half::bf16::MAX.to_f64(),
        _ => f64::MAX,
    };
    crate::dispatch!(dtype, T => {
        let v: Vec<T> = if dtype.is_float() {
            cur.iter().map(|&v| T::round_from_f64(v.clamp(-limit, limit))).collect()
        } else {
            cur.iter().map(|&v| T::round_from_f64(v.round_ties_even())).collect()
        };
        Ok(Tensor::from_vec(p.out, v)?)
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::types::Shape;

    fn attrs(mode: ResizeMode, coord: CoordTransform) -> ResizeAttrs {
        ResizeAttrs {
            mode,
            coord,
            nearest: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: vec![],
            aspect: AspectPolicy::Stretch,
        }
    }

    fn resize(
        a: ResizeAttrs,
        x: &Tensor,
        scales: Option<&[f32]>,
        sizes: Option<&[i64]>,
    ) -> Result<Tensor, EvalError> {
        let s = scales.map(|s| t(&[s.len()], s.to_vec()));
        let z = sizes.map(i64s);
        run(&Op::Resize(Box::new(a)), &[Some(x.clone()), None, s, z])
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn nearest_upsample_doubles_pixels() {
        let x = t(&[1, 1, 2, 2], vec![1.0f32, 2., 3., 4.]);
        let a = attrs(ResizeMode::Nearest, CoordTransform::Asymmetric);
        let y = resize(a.clone(), &x, Some(&[1., 1., 2., 3.]), None).unwrap();
        assert_eq!(y.shape(), &[1, 1, 4, 6]);
        // Columns sample x = y / 3 rounded (ties down): 0, 0, 1, 1, 1, 2 -> clamped to 1.
        assert_eq!(&y.view::<f32>()[..6], &[1., 1., 2., 2., 2., 2.]);
        assert_eq!(&y.view::<f32>()[12..18], &[3., 3., 4., 4., 4., 4.]);
        // Integer dtypes select exactly.
        let xi = t(&[2, 2], vec![1i64 << 60, 2, 3, 4]);
        let y = resize(a, &xi, Some(&[2., 1.]), None).unwrap();
        assert_eq!(y.view::<i64>(), &[1 << 60, 2, 1 << 60, 2, 3, 4, 3, 4]);
    }

    #[test]
    fn nearest_downsample_matches_onnx_example() {
        // test_resize_downsample_scales_nearest: [[1,2,3,4],[5,6,7,8]] * (0.6, 0.6) -> [[1, 3]]
        let x = t(&[1, 1, 2, 4], (1..=8).map(|v| v as f32).collect());
        let a = attrs(ResizeMode::Nearest, CoordTransform::HalfPixel);
        let y = resize(a, &x, Some(&[1., 1., 0.6, 0.6]), None).unwrap();
        assert_eq!(
            (y.shape(), y.view::<f32>()),
            (&[1, 1, 1, 2][..], &[1., 3.][..])
        );
    }

    #[test]
    fn linear_half_pixel_and_align_corners() {
        let x = t(&[1, 1, 2, 2], vec![1.0f32, 2., 3., 4.]);
        let a = attrs(ResizeMode::Linear, CoordTransform::HalfPixel);
        let y = resize(a, &x, Some(&[1., 1., 2., 2.]), None).unwrap();
        // test_resize_upsample_scales_linear expected output.
        close(
            y.view::<f32>(),
            &[
                1., 1.25, 1.75, 2., 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3., 3.25, 3.75, 4.,
            ],
        );
        let a = attrs(ResizeMode::Linear, CoordTransform::AlignCorners);
        let y = resize(a, &t(&[3], vec![0.0f32, 3., 6.]), None, Some(&[5])).unwrap();
        close(y.view::<f32>(), &[0., 1.5, 3., 4.5, 6.]);
    }

    #[test]
    fn cubic_matches_onnx_example() {
        // test_resize_upsample_scales_cubic_asymmetric, first row.
        let x = t(&[1, 1, 4, 4], (1..=16).map(|v| v as f32).collect());
        let a = attrs(ResizeMode::Cubic, CoordTransform::Asymmetric);
        let y = resize(a, &x, Some(&[1., 1., 2., 2.]), None).unwrap();
        close(
            &y.view::<f32>()[..8],
            &[1., 1.40625, 2., 2.5, 3., 3.59375, 4., 4.09375],
        );
    }

    #[test]
    fn tf_crop_and_resize_extrapolates() {
        let x = t(&[1, 1, 2, 2], vec![1.0f32, 2., 3., 4.]);
        let mut a = attrs(ResizeMode::Linear, CoordTransform::TfCropAndResize);
        a.extrapolation_value = 10.0;
        let roi = t(&[8], vec![0.0f32, 0., 0., 0., 1., 1., 1., 2.]);
        let y = run(
            &Op::Resize(Box::new(a)),
            &[Some(x), Some(roi), None, Some(i64s(&[1, 1, 2, 3]))],
        )
        .unwrap();
        // Columns sample x = 0, 1, 2 (2 is outside [0, 1]).
        close(y.view::<f32>(), &[1., 2., 10., 3., 4., 10.]);
    }

    #[test]
    fn sizes_with_aspect_policy_and_axes() {
        let x = t(&[2, 4], vec![0u8; 8]);
        let mut a = attrs(ResizeMode::Nearest, CoordTransform::HalfPixel);
        a.aspect = AspectPolicy::NotLarger;
        let y = resize(a.clone(), &x, None, Some(&[4, 4])).unwrap();
        assert_eq!(y.shape(), &[2, 4]);
        a.aspect = AspectPolicy::NotSmaller;
        let y = resize(a.clone(), &x, None, Some(&[4, 4])).unwrap();
        assert_eq!(y.shape(), &[4, 8]);
        a.aspect = AspectPolicy::Stretch;
        a.axes = vec![-1];
        let y = resize(a.clone(), &x, None, Some(&[2])).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert!(resize(a.clone(), &x, None, Some(&[2, 2])).is_err());
        assert!(resize(a.clone(), &x, None, None).is_err());
        assert!(resize(a.clone(), &x, Some(&[0.0]), None).is_err());
        assert!(resize(a.clone(), &x, Some(&[1e30]), None).is_err());
        // Inference with known sizes, and with unknown ones.
        let tx = ty_of(&x);
        let s = i64s(&[6]);
        let ts = ty_of(&s);
        let op = Op::Resize(Box::new(a));
        let sh = infer_out(&op, &[Some((&tx, None)), None, None, Some((&ts, Some(&s)))]);
        assert_eq!(sh.unwrap(), Shape::fixed(&[2, 6]));
        let sh = infer_out(&op, &[Some((&tx, None)), None, None, Some((&ts, None))]);
        assert_eq!(
            sh.unwrap(),
            Shape::Ranked(vec![Dim::Static(2), Dim::Unknown])
        );
    }

    #[test]
    fn antialias_widens_the_filter() {
        // Downscale by 2 with antialiasing: a box-like average over 4 taps.
        let x = t(&[4], vec![0.0f32, 4., 8., 12.]);
        let mut a = attrs(ResizeMode::Linear, CoordTransform::HalfPixel);
        a.antialias = true;
        let y = resize(a, &x, Some(&[0.5]), None).unwrap();
        // x = 0.5 and 2.5: weights (1/8, 3/8, 3/8, 1/8) over clamped neighbours.
        close(y.view::<f32>(), &[2.5, 9.5]);
    }
}
