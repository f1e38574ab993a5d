//! Resize: nearest (every `nearest_mode`), n-linear and n-cubic interpolation with every
//! `coordinate_transformation_mode`, `exclude_outside` and tf_crop_and_resize extrapolation, for
//! constant `scales`/`sizes` (and `roi`), with antialiasing (the filter widened by `1 / scale`
//! when downscaling, its taps a compile-time count).
//!
//! One invocation per output element. For every resized axis the kernel maps the output
//! coordinate to the source coordinate (in f32; the reference uses f64, so a nearest pick that
//! lands exactly on a rounding boundary in one precision and not the other can differ), derives
//! the window start and per-tap weights exactly as the reference's tap builder does, and sums
//! the separable product over the `taps^axes` neighbours (nearest: a single load).
//!
//! Tuning space: workgroup size (64, 128, 256; default 256).

use super::common::from_storage;
use super::movement::{DEFAULT, Tuning, affine, map_kernel, st};
use super::{Arg, LowerCtx, LowerError, Lowered, TensorDesc};
use crate::builder::{KernelBuilder, f, i, select};
use crate::ir::{Expr, Scalar, Type, UnOp};
use optc_ir::dtype::DType;
use optc_ir::ops::{AspectPolicy, CoordTransform, NearestMode, Op, ResizeAttrs, ResizeMode};

/// One resized axis as the kernel sees it.
#[derive(Clone, Copy, Debug)]
struct Axis {
    axis: usize,
    in_w: usize,
    out_w: usize,
    scale: f64,
    roi: (f64, f64),
}

/// Lowers Resize.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_tuned(ctx, DEFAULT)
}

fn present<'a>(ctx: &LowerCtx<'a>, k: usize) -> Option<&'a TensorDesc> {
    ctx.opt_input(k).filter(|d| d.numel() > 0)
}

/// [`lower`] with explicit tuning.
pub fn lower_tuned(ctx: &LowerCtx<'_>, tune: Tuning) -> Result<Lowered, LowerError> {
    let Op::Resize(attrs) = ctx.op else {
        return Err(ctx.invalid("not a Resize"));
    };
    let attrs: &ResizeAttrs = attrs;
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let r = x.shape.len();
    if out.shape.len() != r {
        return Err(ctx.invalid("rank mismatch"));
    }
    if x.numel() > i32::MAX as usize / 2 || out.numel() > i32::MAX as usize / 2 {
        return Err(ctx.unsupported("with more than 2^30 elements"));
    }
    let axes: Vec<usize> = if attrs.axes.is_empty() {
        (0..r).collect()
    } else {
        attrs
            .axes
            .iter()
            .map(|&a| super::movement::norm_axis(ctx, a, r))
            .collect::<Result<_, _>>()?
    };
    let mut scale = vec![1.0f64; r];
    if present(ctx, 2).is_some() {
        let s = ctx
            .value(2)
            .ok_or_else(|| ctx.unsupported("with runtime scales"))?
            .to_f64_vec();
        if s.len() != axes.len() {
            return Err(ctx.invalid("scales length"));
        }
        for (&a, &v) in axes.iter().zip(&s) {
            scale[a] = v;
        }
    } else if present(ctx, 3).is_some() {
        let s = ctx.const_ints(3, "sizes")?;
        if s.len() != axes.len() {
            return Err(ctx.invalid("sizes length"));
        }
        for (&a, &v) in axes.iter().zip(&s) {
            scale[a] = v as f64 / x.shape[a] as f64;
        }
        if attrs.aspect != AspectPolicy::Stretch {
            let live = axes.iter().filter(|&&a| x.shape[a] > 0).map(|&a| scale[a]);
            let s = if attrs.aspect == AspectPolicy::NotLarger {
                live.fold(f64::INFINITY, f64::min)
            } else {
                live.fold(f64::NEG_INFINITY, f64::max)
            };
            let s = if s.is_finite() { s } else { 1.0 };
            for &a in &axes {
                scale[a] = s;
            }
        }
    } else {
        return Err(ctx.invalid("neither scales nor sizes"));
    }
    let roi: Option<Vec<f64>> = match present(ctx, 1) {
        Some(d) if d.dtype.is_float() && d.numel() == 2 * axes.len() => Some(
            ctx.value(1)
                .ok_or_else(|| ctx.unsupported("with a runtime roi"))?
                .to_f64_vec(),
        ),
        _ => None,
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    let mut active = Vec::new();
    for (k, &a) in axes.iter().enumerate() {
        let roi_a = roi.as_ref().map(|v| (v[k], v[axes.len() + k]));
        let identity = close(scale[a], 1.0)
            && x.shape[a] == out.shape[a]
            && roi_a.is_none_or(|(s, e)| s == 0.0 && close(e, 1.0));
        if !identity {
            if x.shape[a] == 0 {
                return Err(ctx.invalid("cannot resize an empty dim"));
            }
            active.push(Axis {
                axis: a,
                in_w: x.shape[a],
                out_w: out.shape[a],
                scale: scale[a],
                roi: roi_a.unwrap_or((0.0, 1.0)),
            });
        }
    }
    let xs = super::movement::View::contiguous(&x.shape).strides;
    let dt = x.dtype;
    let sc = st(dt);
    let attrs = attrs.clone();
    let launch = map_kernel(
        ctx.kname(""),
        out,
        Arg::Output(0),
        &[(Arg::Input(0), sc)],
        tune,
        |b, bufs, c| {
            // Per active axis: (window start, per-tap weights, extrapolated flag).
            let mut windows = Vec::new();
            let mut ext: Option<Expr> = None;
            for ax in &active {
                let (start, w, e) = window(b, &attrs, ax, c[ax.axis].clone());
                if let Some(e) = e {
                    ext = Some(match ext {
                        None => e,
                        Some(p) => p.or(e),
                    });
                }
                windows.push((start, w));
            }
            let base: Vec<Expr> = c.to_vec();
            let value = if attrs.mode == ResizeMode::Nearest {
                let mut cs = base;
                for (ax, (start, _)) in active.iter().zip(&windows) {
                    cs[ax.axis] = start.clone();
                }
                Expr::load(bufs[0], affine(&cs, 0, &xs))
            } else {
                let acc = b.var(Type::F32, f(0.0));
                let combos: usize = windows.iter().map(|w| w.1.len()).product();
                for combo in 0..combos {
                    let mut cs = base.clone();
                    let mut weight: Option<Expr> = None;
                    let mut rest = combo;
                    for (ax, (start, w)) in active.iter().zip(&windows) {
                        let taps = w.len();
                        let k = rest % taps;
                        rest /= taps;
                        let idx = (start.clone() + i(k as i32))
                            .max(i(0))
                            .min(i(ax.in_w as i32 - 1));
                        cs[ax.axis] = idx;
                        weight = Some(match weight {
                            None => w[k].clone(),
                            Some(p) => p * w[k].clone(),
                        });
                    }
                    let v = from_storage(Expr::load(bufs[0], affine(&cs, 0, &xs)), dt);
                    let v = if dt.is_float() {
                        v
                    } else {
                        v.cast(Scalar::F32)
                    };
                    let term = weight.unwrap_or(f(1.0)) * v;
                    b.assign(acc, Expr::Var(acc) + term);
                }
                let v = Expr::Var(acc);
                match dt {
                    DType::F16 => v.cast(Scalar::F16),
                    d if d.is_float() => v,
                    _ => super::common::wrap_int(v.un(UnOp::Round).cast(sc), dt),
                }
            };
            match ext {
                Some(e) => {
                    let fill = crate::builder::lit(sc, attrs.extrapolation_value as f64);
                    select(e, fill, value)
                }
                None => value,
            }
        },
    );
    Ok(Lowered {
        launches: launch.into_iter().collect(),
        ..Lowered::default()
    })
}

/// The source window of output coordinate `y` along one axis: for nearest, the chosen source
/// index (already clamped) and no weights; otherwise the first tap and the tap weights. Also
/// whether the coordinate extrapolates (tf_crop_and_resize only).
fn window(
    b: &mut KernelBuilder,
    attrs: &ResizeAttrs,
    ax: &Axis,
    y: Expr,
) -> (Expr, Vec<Expr>, Option<Expr>) {
    let y = b.let_(Type::F32, y.cast(Scalar::F32));
    let inw = ax.in_w as f64;
    let out_w = ax.scale * inw;
    let s = ax.scale as f32;
    let mut extrap = None;
    let x = match attrs.coord {
        CoordTransform::AlignCorners if out_w == 1.0 => f(0.0),
        CoordTransform::AlignCorners => y * f(((inw - 1.0) / (out_w - 1.0)) as f32),
        CoordTransform::Asymmetric => y / f(s),
        CoordTransform::TfCropAndResize => {
            let (r0, r1) = ax.roi;
            let x = if out_w == 1.0 {
                f(((r1 - r0) * (inw - 1.0) / 2.0) as f32)
            } else {
                y * f(((r1 - r0) * (inw - 1.0) / (out_w - 1.0)) as f32)
            };
            let x = b.let_(Type::F32, x + f((r0 * (inw - 1.0)) as f32));
            extrap = Some(x.clone().lt(f(0.0)).or(x.clone().gt(f((inw - 1.0) as f32))));
            x
        }
        CoordTransform::PytorchHalfPixel if out_w == 1.0 => f(-0.5),
        CoordTransform::PytorchHalfPixel | CoordTransform::HalfPixel => {
            (y + f(0.5)) / f(s) - f(0.5)
        }
        CoordTransform::HalfPixelSymmetric => {
            let adjustment = ax.out_w as f64 / out_w;
            let offset = inw / 2.0 * (1.0 - adjustment);
            f(offset as f32) + ((y + f(0.5)) / f(s) - f(0.5))
        }
    };
    let x = b.let_(Type::F32, x);
    let xi = b.let_(Type::F32, x.clone().un(UnOp::Floor));
    let exact = b.let_(Type::BOOL, x.clone().eq_(xi.clone()));
    let ratio = b.let_(
        Type::F32,
        select(exact.clone(), f(1.0), x.clone() - xi.clone()),
    );
    // Antialiasing stretches the filter by 1 / scale when downscaling: taps at `lo..lo + n`
    // relative to the source coordinate.
    let aa = attrs.antialias && attrs.mode != ResizeMode::Nearest;
    let sa = ax.scale.min(1.0);
    let (lo, n): (i64, i64) = match attrs.mode {
        ResizeMode::Linear if aa => {
            let lo = (-1.0 / sa).floor() as i64 + 1;
            (lo, 2 - 2 * lo)
        }
        ResizeMode::Cubic if aa => {
            let lo = (-2.0 / sa).floor() as i64 + 1;
            (lo, 2 - 2 * lo)
        }
        ResizeMode::Cubic => (-1, 4),
        _ => (0, 2),
    };
    let n = n.clamp(1, 64) as i32;
    let half = n / 2;
    // Window start (the reference's rule): for an even count floor(x) - half when x is
    // integral, floor(x) - half + 1 otherwise; for an odd count floor(x) - (n-1)/2, plus one
    // when frac(x) > 0.5.
    let off = if n % 2 == 0 {
        select(exact.clone(), i(-half), i(-half + 1))
    } else {
        let base = -(n - 1) / 2;
        select((x.clone() - xi.clone()).le(f(0.5)), i(base), i(base + 1))
    };
    let start = b.let_(Type::I32, xi.cast(Scalar::I32) + off);
    match attrs.mode {
        ResizeMode::Nearest => {
            let right = match attrs.nearest {
                NearestMode::RoundPreferFloor => ratio.clone().gt(f(0.5)),
                NearestMode::RoundPreferCeil => ratio.clone().ge(f(0.5)),
                NearestMode::Floor => Expr::Bool(false),
                NearestMode::Ceil => Expr::Bool(true),
            };
            let pick = right.or(ratio.eq_(f(1.0)));
            let idx = start + select(pick, i(1), i(0));
            let idx = idx.max(i(0)).min(i(ax.in_w as i32 - 1));
            (b.let_(Type::I32, idx), Vec::new(), extrap)
        }
        ResizeMode::Linear | ResizeMode::Cubic => {
            let r = ratio;
            let mut w: Vec<Expr> = if aa {
                let a = attrs.cubic_coeff_a;
                let mut ws = Vec::new();
                for k in 0..n as i64 {
                    let t = b.let_(Type::F32, (f((lo + k) as f32) - r.clone()) * f(sa as f32));
                    let v = if attrs.mode == ResizeMode::Linear {
                        (f(1.0) - t.un(UnOp::Abs)).max(f(0.0)).min(f(1.0))
                    } else {
                        let t = b.let_(Type::F32, t.un(UnOp::Abs));
                        let (t2, t3) = (t.clone() * t.clone(), t.clone() * t.clone() * t.clone());
                        let inner = f(a + 2.0) * t3.clone() - f(a + 3.0) * t2.clone() + f(1.0);
                        let outer =
                            f(a) * t3 - f(5.0 * a) * t2 + f(8.0 * a) * t.clone() - f(4.0 * a);
                        select(
                            t.clone().le(f(1.0)),
                            inner,
                            select(t.lt(f(2.0)), outer, f(0.0)),
                        )
                    };
                    ws.push(b.let_(Type::F32, v));
                }
                let sum = ws
                    .iter()
                    .skip(1)
                    .fold(ws[0].clone(), |acc, w| acc + w.clone());
                let sum = b.let_(Type::F32, sum);
                ws.into_iter().map(|w| w / sum.clone()).collect()
            } else if attrs.mode == ResizeMode::Linear {
                vec![f(1.0) - r.clone(), r]
            } else {
                let a = f(attrs.cubic_coeff_a);
                let a3 = f(attrs.cubic_coeff_a + 3.0);
                let a2 = f(attrs.cubic_coeff_a + 2.0);
                let r1 = b.let_(Type::F32, r.clone() + f(1.0));
                let q = b.let_(Type::F32, f(1.0) - r.clone());
                let q1 = b.let_(Type::F32, q.clone() + f(1.0));
                let far = |t: Expr| {
                    ((a.clone() * t.clone() - f(5.0) * a.clone()) * t.clone() + f(8.0) * a.clone())
                        * t
                        - f(4.0) * a.clone()
                };
                let near = |t: Expr| (a2.clone() * t.clone() - a3.clone()) * t.clone() * t + f(1.0);
                vec![far(r1), near(r), near(q), far(q1)]
            };
            w = w.into_iter().map(|e| b.let_(Type::F32, e)).collect();
            if attrs.exclude_outside {
                let mut sum = f(0.0);
                for (k, wk) in w.iter_mut().enumerate() {
                    let nb = start.clone() + i(k as i32);
                    let inside = nb.clone().ge(i(0)).and(nb.lt(i(ax.in_w as i32)));
                    *wk = b.let_(Type::F32, select(inside, wk.clone(), f(0.0)));
                    sum = sum + wk.clone();
                }
                let sum = b.let_(Type::F32, sum);
                let sum = b.let_(Type::F32, select(sum.clone().eq_(f(0.0)), f(1.0), sum));
                w = w
                    .into_iter()
                    .map(|e| b.let_(Type::F32, e / sum.clone()))
                    .collect();
            }
            (start, w, extrap)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::movement::tests::{check, iota};
    use optc_ir::ops::{AspectPolicy, CoordTransform, NearestMode, Op, ResizeAttrs, ResizeMode};
    use optc_ir::tensor::Tensor;

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

    fn scales(v: &[f32]) -> Option<Tensor> {
        Some(Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap())
    }

    #[test]
    fn nearest_every_mode_and_transform() {
        let x = iota(&[1, 1, 4, 4]);
        for coord in [
            CoordTransform::HalfPixel,
            CoordTransform::Asymmetric,
            CoordTransform::AlignCorners,
            CoordTransform::PytorchHalfPixel,
            CoordTransform::HalfPixelSymmetric,
        ] {
            for nearest in [
                NearestMode::RoundPreferFloor,
                NearestMode::RoundPreferCeil,
                NearestMode::Floor,
                NearestMode::Ceil,
            ] {
                for s in [[1.0, 1.0, 2.0, 3.0], [1.0, 1.0, 0.5, 0.75]] {
                    let mut a = attrs(ResizeMode::Nearest, coord);
                    a.nearest = nearest;
                    let op = Op::Resize(Box::new(a));
                    check(&op, &[Some(x.clone()), None, scales(&s)], &[2], 1);
                }
            }
        }
    }

    #[test]
    fn linear_and_cubic_with_exclude_outside_and_crop() {
        let x = iota(&[1, 2, 4, 4]);
        for mode in [ResizeMode::Linear, ResizeMode::Cubic] {
            for coord in [
                CoordTransform::HalfPixel,
                CoordTransform::AlignCorners,
                CoordTransform::Asymmetric,
            ] {
                for exclude in [false, true] {
                    let mut a = attrs(mode, coord);
                    a.exclude_outside = exclude;
                    let op = Op::Resize(Box::new(a));
                    for s in [[1.0, 1.0, 2.0, 1.5], [1.0, 1.0, 0.6, 0.8]] {
                        check(&op, &[Some(x.clone()), None, scales(&s)], &[2], 1);
                    }
                }
            }
        }
        for mode in [ResizeMode::Linear, ResizeMode::Cubic] {
            let mut a = attrs(mode, CoordTransform::HalfPixel);
            a.antialias = true;
            let op = Op::Resize(Box::new(a));
            for s in [[1.0, 1.0, 0.6, 0.8], [1.0, 1.0, 0.3, 1.5]] {
                check(&op, &[Some(iota(&[1, 1, 8, 8])), None, scales(&s)], &[2], 1);
            }
        }
        let mut a = attrs(ResizeMode::Linear, CoordTransform::TfCropAndResize);
        a.extrapolation_value = 10.0;
        let roi = Tensor::from_vec(vec![8], vec![0f32, 0., 0.4, 0.6, 1., 1., 1.2, 1.7]).unwrap();
        let sizes = Tensor::from_vec(vec![4], vec![1i64, 2, 3, 3]).unwrap();
        check(
            &Op::Resize(Box::new(a)),
            &[Some(x), Some(roi), None, Some(sizes)],
            &[1, 3],
            1,
        );
    }
}
