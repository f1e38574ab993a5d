//! Convolutions: Conv (1-D/2-D/3-D, pads, strides, dilations, auto_pad, group, bias),
//! ConvTranspose, ConvInteger and QLinearConv.
//!
//! - Float Conv with more than one input channel per group is an implicit GEMM on the
//!   [`super::gemm`] core: rows M = output pixels (the im2col matrix is read in the kernel, with
//!   bounds checks for padding), columns N = output channels of the group (the weight is
//!   K-contiguous: vec4 loads along K), K = input channels × taps, batch = images × groups.
//!   A pointwise conv (1×1, stride 1, no padding) swaps the roles: rows = output channels
//!   (weights shared across lanes), columns = pixels read straight from the input (vec4 when
//!   the plane is a multiple of 4), vec4 stores. The bias is added in the epilogue.
//! - A channels-first Conv with at most [`DIRECT_K`] weights per output channel and a window
//!   of several taps (an RGB stem: 3 channels, 3 × 3) is a direct kernel instead: each thread
//!   computes up to 32 output channels × 4–8 outputs of a row from vec4 row chunks loaded
//!   once per input row, the weights shared across lanes by subgroup broadcasts (`direct_vec4`).
//! - Depthwise Conv (one input channel per group) is a direct kernel: each thread computes
//!   `DW_TILE` consecutive outputs along the last axis, loading each input value of the shared
//!   window once and each weight once (where rows are a multiple of 4 wide: vec4 row segments,
//!   `DW_ROWS` output rows × 4–8 outputs per thread).
//! - Either side of a Conv may be stored channels-last ([`ConvLayout`], chosen by the
//!   optimizer's layout stage): the GEMM-based convs only change strides (a 1×1 conv over a
//!   channels-last input keeps rows = pixels, both operands vec4 along K; the im2col source
//!   addresses through [`Geom::chan_stride`] and [`Geom::pixel_stride`], and with a
//!   `[M, kernel..., C/g]` weight its K runs tap-major ([`Geom::tap_major`]), so that a
//!   channels-last input is loaded as vec4s of 4 channels of one tap), the scalar depthwise
//!   kernel takes any layout, and channels-last on both sides with channels a multiple of 4
//!   gets its own depthwise kernel, vec4 along the channels.
//! - ConvTranspose, ConvInteger and QLinearConv are direct kernels (one output per thread;
//!   QLinearConv adds a requantizing pass over the i32 result).
//!
//! - A fused epilogue ([`super::epilogue`]) runs at the stores of every float template (through
//!   the GEMM core for implicit-GEMM and pointwise convs); the integer ones refuse it.
//!
//! Tuning space: the GEMM's ([`super::gemm::GemmConfig`]); for depthwise the outputs per thread
//! along the last axis (1–8, default 4) and the workgroup size (64, less for small launches:
//! `common::spread_workgroup`); direct kernels use workgroups of 256.

use super::common::{self, flat_index, grid_1d, guard, load, to_storage, unravel};
use super::epilogue::{Epilogue, finish_launch};
use super::gemm::{self, Addend, Operand, Problem, Source};
use super::{
    Arg, BuildMode, KernelLaunch, LowerCtx, LowerError, Lowered, TensorDesc, compute_scalar,
    storage_scalar,
};
use crate::builder::{KernelBuilder, f, i, select, u};
use crate::ir::{Access, Builtin, Expr, Scalar, Type};
use optc_ir::dtype::DType;
use optc_ir::ops::{AutoPad, ConvAttrs, ConvLayout, Op};

/// Outputs per thread of the depthwise kernel along the last spatial axis.
pub const DW_TILE: usize = 4;

/// Resolved geometry over 3 spatial axes (leading unit axes for 1-D/2-D).
#[derive(Clone, Debug, PartialEq)]
pub struct Geom {
    /// Input spatial sizes.
    pub input: [usize; 3],
    /// Output spatial sizes.
    pub output: [usize; 3],
    /// Kernel sizes.
    pub kernel: [usize; 3],
    /// Strides.
    pub stride: [usize; 3],
    /// Dilations.
    pub dilation: [usize; 3],
    /// Padding before each axis (may be negative for ConvTranspose with output_shape).
    pub pad: [i64; 3],
    /// Element stride of one input channel: the input's spatial size channels-first, 1
    /// channels-last ([`ConvLayout`]).
    pub chan_stride: usize,
    /// Element stride of one input pixel: 1 channels-first, the channel count channels-last.
    pub pixel_stride: usize,
    /// The im2col matrix's K runs tap-major (`k = tap · C/group + channel`: the weight is
    /// `[M, kernel..., C/group]`) instead of channel-major (`k = channel · taps + tap`).
    pub tap_major: bool,
}

impl Geom {
    fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }
    /// Splits an im2col K index `k` (of `kdim` = C/group · taps) into (input channel within
    /// the group, tap index): `k = channel · taps + tap`, or `k = tap · C/group + channel`
    /// where K runs [`Geom::tap_major`].
    pub(crate) fn split_k(&self, b: &mut KernelBuilder, k: Expr, kdim: usize) -> (Expr, Expr) {
        let taps = self.kernel_size().max(1);
        if self.tap_major {
            let cg = i((kdim / taps).max(1) as i32);
            (
                b.let_(Type::I32, k.clone() % cg.clone()),
                b.let_(Type::I32, k / cg),
            )
        } else {
            let t = i(taps as i32);
            (
                b.let_(Type::I32, k.clone() / t.clone()),
                b.let_(Type::I32, k % t),
            )
        }
    }
    fn in_size(&self) -> usize {
        self.input.iter().product()
    }
    /// Stores the input channels-last (`c` channels).
    fn channels_last(mut self, c: usize) -> Geom {
        self.chan_stride = 1;
        self.pixel_stride = c;
        self
    }
    /// Orders K tap-major (a `[M, kernel..., C/group]` weight) when `yes`.
    fn with_tap_major(mut self, yes: bool) -> Geom {
        self.tap_major = yes;
        self
    }
    fn out_size(&self) -> usize {
        self.output.iter().product()
    }
    /// True when the axis is a padding unit axis (nothing to check).
    pub(crate) fn trivial(&self, a: usize) -> bool {
        self.input[a] == 1 && self.kernel[a] == 1 && self.pad[a] == 0 && self.output[a] == 1
    }
}

fn list(v: &[usize], n: usize, def: usize) -> Option<Vec<usize>> {
    if v.is_empty() {
        Some(vec![def; n])
    } else if v.len() == n && !v.contains(&0) {
        Some(v.to_vec())
    } else {
        None
    }
}

/// Conv geometry from attributes, input/weight shapes and the (inferred) output shape.
fn conv_geom(
    ctx: &LowerCtx<'_>,
    attrs: &ConvAttrs,
    x: &[usize],
    w: &[usize],
    y: &[usize],
    transpose: bool,
) -> Result<Geom, LowerError> {
    let bad = || ctx.invalid("inconsistent window attributes");
    if x.len() < 3 || x.len() != w.len() || y.len() != x.len() {
        return Err(ctx.invalid("conv needs inputs of rank ≥ 3 and matching ranks"));
    }
    let nsp = x.len() - 2;
    if nsp > 3 {
        return Err(ctx.unsupported(format!("with {nsp} spatial axes")));
    }
    let wd = &attrs.window;
    let kernel = &w[2..];
    if !wd.kernel_shape.is_empty() && wd.kernel_shape != kernel {
        return Err(bad());
    }
    let strides_ = list(&wd.strides, nsp, 1).ok_or_else(bad)?;
    let dil = list(&wd.dilations, nsp, 1).ok_or_else(bad)?;
    let pads = if wd.pads.is_empty() {
        vec![0; 2 * nsp]
    } else if wd.pads.len() == 2 * nsp {
        wd.pads.clone()
    } else {
        return Err(bad());
    };
    let mut g = Geom {
        input: [1; 3],
        output: [1; 3],
        kernel: [1; 3],
        stride: [1; 3],
        dilation: [1; 3],
        pad: [0; 3],
        chan_stride: x[2..].iter().product(),
        pixel_stride: 1,
        tap_major: false,
    };
    let off = 3 - nsp;
    for a in 0..nsp {
        let j = off + a;
        g.input[j] = x[2 + a];
        g.output[j] = y[2 + a];
        g.kernel[j] = kernel[a];
        g.stride[j] = strides_[a];
        g.dilation[j] = dil[a];
        let ek = (kernel[a].max(1) - 1) * dil[a] + 1;
        let (inp, out, s) = (x[2 + a] as i64, y[2 + a] as i64, strides_[a] as i64);
        g.pad[j] = if transpose {
            // full extent minus the output, split like the reference.
            let full = (inp - 1) * s + ek as i64;
            let explicit_shape = match ctx.op {
                Op::ConvTranspose {
                    output_padding,
                    output_shape,
                    ..
                } => {
                    let op_ = output_padding.get(a).copied().unwrap_or(0) as i64;
                    (!output_shape.is_empty(), op_)
                }
                _ => (false, 0),
            };
            let full = full + explicit_shape.1;
            match (explicit_shape.0, wd.auto_pad) {
                (true, ap) | (false, ap @ (AutoPad::SameUpper | AutoPad::SameLower)) => {
                    let total = full - out;
                    let half = total.div_euclid(2);
                    if ap == AutoPad::SameUpper {
                        half
                    } else {
                        total - half
                    }
                }
                (false, AutoPad::Valid) => 0,
                (false, AutoPad::NotSet) => pads[a] as i64,
            }
        } else {
            match wd.auto_pad {
                AutoPad::NotSet => pads[a] as i64,
                AutoPad::Valid => 0,
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let need = ((out - 1) * s + ek as i64 - inp).max(0);
                    let small = need / 2;
                    if wd.auto_pad == AutoPad::SameUpper {
                        small
                    } else {
                        need - small
                    }
                }
            }
        };
    }
    Ok(g)
}

/// Lowers Conv, ConvTranspose, ConvInteger and QLinearConv.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_with(ctx, None, BuildMode::Build)
}

/// [`lower`] with an optional fused epilogue (applied at every store of the float templates;
/// ConvInteger and QLinearConv refuse one).
pub(crate) fn lower_with(
    ctx: &LowerCtx<'_>,
    ep: Option<Epilogue>,
    mode: BuildMode,
) -> Result<Lowered, LowerError> {
    let quant = matches!(ctx.op, Op::ConvInteger(_) | Op::QLinearConv(_));
    if quant && ep.is_some() {
        return Err(ctx.unsupported("with a fused epilogue"));
    }
    match ctx.op {
        Op::Conv(attrs) => lower_conv(ctx, attrs, ep, mode),
        Op::ConvTranspose { conv, .. } => lower_conv_transpose(ctx, conv, ep.as_ref()),
        Op::ConvInteger(attrs) => lower_quant_conv(ctx, attrs, false),
        Op::QLinearConv(attrs) => lower_quant_conv(ctx, attrs, true),
        _ => Err(ctx.invalid("not a convolution")),
    }
}

fn lower_conv(
    ctx: &LowerCtx<'_>,
    attrs: &ConvAttrs,
    ep: Option<Epilogue>,
    mode: BuildMode,
) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    let y = ctx.output(0)?;
    if compute_scalar(y.dtype) != Some(Scalar::F32) {
        return Err(ctx.unsupported(format!("needs {}", y.dtype.name())));
    }
    let layout = attrs.layout;
    // Shapes in the channels-first order the geometry is computed in.
    let first = ConvLayout::first_dims;
    let (xs, ys, ws) = (
        first(&x.shape, layout.input_last),
        first(&y.shape, layout.output_last),
        first(&w.shape, layout.weight_last),
    );
    let g = conv_geom(ctx, attrs, &xs, &ws, &ys, false)?;
    let group = attrs.group.max(1);
    let (n, c, m) = (xs[0], xs[1], ws[0]);
    if c % group != 0 || m % group != 0 || ws[1] * group != c || ys[1] != m {
        return Err(ctx.invalid("channels do not match the group"));
    }
    if y.numel() == 0 {
        return Ok(Lowered::default());
    }
    let bias = ctx.opt_input(2);
    let (cg, mg) = (c / group, m / group);
    if cg == 1 && group > 1 {
        if let Some(e) = &ep {
            e.check_bindings(ctx, 3 + bias.is_some() as usize)?;
        }
        let dims = DwDims { n, m, mg };
        let dts = [x.dtype, w.dtype, y.dtype];
        let launch = if layout.is_first() && dw_vec4_ok(&g, dts, ep.as_ref()) {
            depthwise_vec4(ctx, &g, dims, bias, ep.as_ref())?
        } else if dw_last_vec4_ok(&g, layout, dims, dts, ep.as_ref()) {
            depthwise_last_vec4(ctx, &g, dims, bias, ep.as_ref())?
        } else {
            depthwise(ctx, &g, dims, layout, bias, ep.as_ref())?
        };
        return Ok(Lowered {
            launches: vec![launch],
            ..Lowered::default()
        });
    }
    let dts = [x.dtype, w.dtype, y.dtype];
    if let Some(plan) = direct_plan(ctx, &g, layout, [group, c, m], dts, bias, ep.as_ref()) {
        if let Some(e) = &ep {
            e.check_bindings(ctx, 3 + bias.is_some() as usize)?;
        }
        let launch = direct_vec4(ctx, &g, [n, c, m], plan, bias.is_some(), ep.as_ref())?;
        return Ok(Lowered {
            launches: vec![launch],
            ..Lowered::default()
        });
    }
    let kk = g.kernel_size();
    let (pin, pout) = (g.in_size(), g.out_size());
    let pointwise = kk == 1 && g.stride == [1; 3] && g.pad == [0; 3];
    let (source, a_group_stride) = match (pointwise, layout.input_last) {
        (true, false) => (
            Source::Strided {
                row_stride: 1,
                k_stride: pin,
            },
            cg * pin,
        ),
        (true, true) => (
            Source::Strided {
                row_stride: c,
                k_stride: 1,
            },
            cg,
        ),
        (false, false) => (
            Source::Im2col(g.clone().with_tap_major(layout.weight_last)),
            cg * pin,
        ),
        (false, true) => (
            Source::Im2col(
                g.clone()
                    .channels_last(c)
                    .with_tap_major(layout.weight_last),
            ),
            cg,
        ),
    };
    // Output strides per pixel and per channel.
    let (y_pixel, y_chan) = if layout.output_last {
        (m, 1)
    } else {
        (1, pout)
    };
    let kdim = cg * kk;
    let mut p = Problem {
        batch: vec![n, group],
        m: pout,
        n: mg,
        k: kdim,
        a: Operand {
            arg: Arg::Input(0),
            dtype: x.dtype,
            numel: x.numel(),
            batch_strides: vec![c * pin, a_group_stride],
            source,
        },
        b: Operand {
            arg: Arg::Input(1),
            dtype: w.dtype,
            numel: w.numel(),
            batch_strides: vec![0, mg * kdim],
            source: Source::Strided {
                row_stride: kdim,
                k_stride: 1,
            },
        },
        out: (Arg::Output(0), ep.as_ref().map_or(y.dtype, |e| e.out.dtype)),
        out_batch_strides: vec![m * pout, mg * y_chan],
        out_m_stride: y_pixel,
        out_n_stride: y_chan,
        alpha: 1.0,
        addend: bias.map(|b| Addend {
            arg: Arg::Input(2),
            dtype: b.dtype,
            m_stride: 0,
            n_stride: 1,
            batch_strides: vec![0, mg],
            scale: 1.0,
        }),
        epilogue: ep,
    };
    if pointwise && rows_are_channels(ctx.features, n * group, [mg, pout, kdim], layout) {
        // 1×1: rows = output channels (weights, vec4 along K, shared across lanes), columns =
        // pixels — always over a channels-first input (vec4 along the plane when it is a
        // multiple of 4); over a channels-last one (both operands vec4 along K either way)
        // where that pads less with the tiles each orientation gets (16 channels of a
        // 112×112 plane pay 2× the work as columns). Ties keep rows = pixels: 160 channels of
        // a 7×7 plane pay 10240 outputs either way with 32 × 4 tiles, and on lavapipe
        // (mobilenet_v2, k 960) rows = pixels took 1086 µs, rows = channels 1250.
        let (a, b) = (p.b.clone(), p.a.clone());
        p.m = mg;
        p.n = pout;
        p.a = a;
        p.b = b;
        p.out_m_stride = y_chan;
        p.out_n_stride = y_pixel;
        if let Some(ad) = p.addend.as_mut() {
            ad.m_stride = 1;
            ad.n_stride = 0;
        }
    }
    gemm::problem_launches(ctx, &p, mode)
}

/// Whether a pointwise conv's GEMM takes rows = output channels (else rows = pixels), for
/// `batch` GEMMs of `mg` output channels × `pout` pixels × `kdim`: always over a channels-first
/// input; over a channels-last one where that pays for less padding with the tiles each
/// orientation gets ([`gemm::GemmConfig::paid_work`]), ties to rows = pixels.
fn rows_are_channels(
    features: super::Features,
    batch: usize,
    [mg, pout, kdim]: [usize; 3],
    layout: ConvLayout,
) -> bool {
    let paid = |rows: usize, cols: usize| {
        gemm::GemmConfig::heuristic_for(features, batch, rows, cols, kdim).paid_work(rows, cols)
    };
    !layout.input_last || paid(mg, pout) < paid(pout, mg)
}

/// How a Conv's kernel departs from the roofline the optimizer's cost model prices, for the
/// conv `a` over stored shapes `xs`, `ws`, `ys` on a target with default [`super::Features`]
/// (the wgsl one): `(arithmetic, time)` factors ≥ 1. `arithmetic` is the work the GEMM tile of
/// an implicit-GEMM or 1×1 conv computes over the work itself (rows and columns padded to
/// whole tiles, columns to whole subgroups of tiles: 196 pixels cost 224 as 4-column tiles in
/// 8-lane groups, 200 as 40-row tiles); `time` a measured slowdown of the kernel as a whole
/// (channels-first depthwise at stride 1 with 4-wide thread tiles). `(1, 1)` for shapes it
/// does not understand; a conv that takes the direct kernel is priced as its GEMM.
pub fn conv_cost_factors(a: &ConvAttrs, xs: &[usize], ws: &[usize], ys: &[usize]) -> (f64, f64) {
    if xs.len() < 3 || xs.len() != ws.len() || xs.len() != ys.len() {
        return (1.0, 1.0);
    }
    let lay = a.layout;
    let x = ConvLayout::first_dims(xs, lay.input_last);
    let w = ConvLayout::first_dims(ws, lay.weight_last);
    let y = ConvLayout::first_dims(ys, lay.output_last);
    let group = a.group.max(1);
    let (n, c, m) = (x[0], x[1], w[0]);
    if c % group != 0 || m % group != 0 || c == 0 || m == 0 {
        return (1.0, 1.0);
    }
    let (cg, mg) = (c / group, m / group);
    let taps: usize = w[2..].iter().product();
    let pout: usize = y[2..].iter().product();
    let ones = |v: &[usize], want: usize| v.iter().all(|&s| s == want);
    if cg == 1 && group > 1 {
        // The channels-first vec4 kernel (rows a multiple of 4 wide) at stride 1 with 4
        // outputs of a row per thread instead of 8 ([`dw_vec4_cols`]); measured on lavapipe
        // (mobilenet_v2, per-kernel best medians over outputs): 2.1 ns per output with 8
        // (112², 56²), 3.0 with 4 (28²), 2.3 channels-last (28², 7 × 14 tiles).
        let ow = y.last().copied().unwrap_or(0);
        let first_s1 = lay.is_first() && ones(&a.window.strides, 1);
        let time = if first_s1 && ow % 4 == 0 && dw_vec4_cols(1, ow) == 4 {
            1.4
        } else {
            1.0
        };
        return (1.0, time);
    }
    let pointwise = taps == 1 && ones(&a.window.strides, 1) && ones(&a.window.pads, 0);
    let kdim = cg * taps;
    let features = super::Features::default();
    let (rows, cols) = if pointwise && rows_are_channels(features, n * group, [mg, pout, kdim], lay)
    {
        (mg, pout)
    } else {
        (pout, mg)
    };
    if rows * cols == 0 {
        return (1.0, 1.0);
    }
    let cfg = gemm::GemmConfig::heuristic_for(features, n * group, rows, cols, kdim);
    (cfg.paid_work(rows, cols) as f64 / (rows * cols) as f64, 1.0)
}

/// Output channels per thread of [`direct_vec4`] at most.
const DIRECT_CO: usize = 32;
/// Weights per output channel (C · kh · kw) `direct_vec4` takes at most: its loops over
/// them are unrolled, and the im2col GEMM it replaces is at its worst there (K not a multiple
/// of 4: one scalar load per element).
pub const DIRECT_K: usize = 32;

/// How [`direct_vec4`] runs a conv: output channels per thread, outputs per thread along the
/// row, workgroup size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DirectPlan {
    ct: usize,
    tw: usize,
    wg: u32,
}

/// Whether a conv takes [`direct_vec4`], and how: 2-D, channels-first throughout, one group,
/// f32, a window of more than one tap over at most [`DIRECT_K`] weights per output channel,
/// input and output rows a multiple of 4 wide, stride 1 or 2 along the rows, no negative
/// padding, output channels a multiple of 4 and a target whose register file takes CPU-sized
/// tiles. The workgroup (8–64 threads) must divide a plane's row segments, so that all its
/// threads share one output-channel tile (the weights are shared across lanes).
fn direct_plan(
    ctx: &LowerCtx<'_>,
    g: &Geom,
    layout: ConvLayout,
    [group, c, m]: [usize; 3],
    [x, w, y]: [DType; 3],
    bias: Option<&TensorDesc>,
    ep: Option<&Epilogue>,
) -> Option<DirectPlan> {
    let ydt = ep.map_or(y, |e| e.out.dtype);
    let k = c * g.kernel[1] * g.kernel[2];
    let f32s =
        [x, w, ydt].iter().all(|&d| d == DType::F32) && bias.is_none_or(|b| b.dtype == DType::F32);
    if !layout.is_first()
        || group != 1
        || ctx.features.small_register_file
        || !g.trivial(0)
        || !f32s
        || g.kernel[1] * g.kernel[2] == 1
        || k > DIRECT_K
        || g.input[2] % 4 != 0
        || g.output[2] % 4 != 0
        || !(1..=2).contains(&g.stride[2])
        || g.pad[1] < 0
        || g.pad[2] < 0
    {
        return None;
    }
    let ct = [DIRECT_CO, 24, 16, 8, 4].into_iter().find(|t| m % t == 0)?;
    let tw = if g.output[2] % 8 == 0 { 8 } else { 4 };
    let segments = g.output[1] * g.output[2] / tw;
    let wg = (1..=8).rev().map(|j| 8 * j).find(|w| segments % w == 0)?;
    Some(DirectPlan {
        ct,
        tw,
        wg: wg as u32,
    })
}

/// Direct conv for few weights per output channel (mobilenet_v2's stem: 3 channels, 3 × 3,
/// stride 2), where the im2col GEMM loads every (pixel, tap) element on its own. Each thread
/// computes `ct` output channels × `tw` outputs of one output row (vec4 accumulators along the
/// row). For each input row of the window it loads the aligned vec4 chunks covering the span
/// once (as [`depthwise_vec4`] does) and takes every tap of every output from their lanes. The
/// tile's `ct · C · kh · kw` weights are contiguous: lane `j` of a workgroup's subgroups
/// loads chunks `j, j + 8, …` and every lane gets the rest by `subgroupBroadcast` from a
/// constant lane (as the GEMM shares A). Bias and stores are vec4.
fn direct_vec4(
    ctx: &LowerCtx<'_>,
    g: &Geom,
    [n, c, m]: [usize; 3],
    DirectPlan { ct, tw, wg }: DirectPlan,
    has_bias: bool,
    ep: Option<&Epilogue>,
) -> Result<KernelLaunch, LowerError> {
    let v4 = Type::vec(Scalar::F32, 4);
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let (kh, kw) = (g.kernel[1], g.kernel[2]);
    let (sh, s) = (g.stride[1], g.stride[2]);
    let (dh, d) = (g.dilation[1], g.dilation[2]);
    let kk = c * kh * kw;
    let segs = ow / tw;
    let space = [n, m / ct, oh * segs];
    let total: usize = space.iter().product();
    let grid = grid_1d(total, wg);
    let mut b = KernelBuilder::new(ctx.kname("conv"), [wg, 1, 1]);
    let xb = b.buffer("x", v4, Access::Read);
    let wb = b.buffer("w", v4, Access::Read);
    let mut args = vec![Arg::Input(0), Arg::Input(1)];
    let bb = has_bias.then(|| {
        args.push(Arg::Input(2));
        b.buffer("bias", v4, Access::Read)
    });
    let ep = ep.map(|e| e.bind(&mut b, &mut args));
    let ob = b.buffer("y", v4, Access::ReadWrite);
    args.push(Arg::Output(0));
    let t = flat_index(&mut b, grid, wg);
    guard(&mut b, &t, total);
    let co = unravel(&mut b, &t, &space);
    let (ni, mt, seg) = (co[0].clone(), co[1].clone(), co[2].clone());
    let oy = b.let_(Type::I32, seg.clone() / i(segs as i32));
    let ow0 = b.let_(Type::I32, (seg % i(segs as i32)) * i(tw as i32));
    let lane = b.let_(
        Type::I32,
        (Expr::Builtin(Builtin::SubgroupLane) % u(8)).cast(Scalar::I32),
    );
    // Lane j's share of the tile's weights and bias, in vec4 chunks.
    let share = |b: &mut KernelBuilder, buf: u32, base: Expr, chunks: usize| -> Vec<Expr> {
        (0..chunks.div_ceil(8))
            .map(|sl| {
                let idx = (lane.clone() + i((8 * sl) as i32)).min(i((chunks - 1) as i32));
                b.let_(v4, Expr::load(buf, base.clone() + idx))
            })
            .collect()
    };
    let wchunks = ct * kk / 4;
    let wbase = b.let_(Type::I32, mt.clone() * i(wchunks as i32));
    let wslots = share(&mut b, wb, wbase, wchunks);
    let init: Vec<Expr> = match bb {
        Some(bb) => {
            let slot = share(&mut b, bb, mt.clone() * i((ct / 4) as i32), ct / 4);
            (0..ct / 4)
                .map(|q| b.let_(v4, slot[0].clone().broadcast(q as u32)))
                .flat_map(|v| (0..4).map(move |l| Expr::Splat(4, Box::new(v.clone().lane(l)))))
                .collect()
        }
        None => vec![Expr::Splat(4, Box::new(f(0.0))); ct],
    };
    let acc: Vec<Vec<_>> = init
        .iter()
        .map(|v| (0..tw / 4).map(|_| b.var(v4, v.clone())).collect())
        .collect();
    // Broadcast weight chunks, each once, when first used.
    let mut chunk: Vec<Option<Expr>> = vec![None; wchunks];
    let rel0 = -g.pad[2];
    let rel1 = rel0 + ((tw - 1) * s + (kw - 1) * d) as i64;
    let (j0, j1) = (rel0.div_euclid(4), rel1.div_euclid(4));
    let col0 = b.let_(Type::I32, ow0.clone() * i(s as i32));
    let row0 = b.let_(Type::I32, oy.clone() * i(sh as i32) - i(g.pad[1] as i32));
    for ci in 0..c {
        let plane = b.let_(
            Type::I32,
            (ni.clone() * i(c as i32) + i(ci as i32)) * i((ih * iw / 4) as i32),
        );
        // The channel's window rows, as the tap vectors of every output quad: xs[tap][q].
        let mut xs: Vec<Vec<Expr>> = Vec::with_capacity(kh * kw);
        for ky in 0..kh {
            let ry = b.let_(Type::I32, row0.clone() + i((ky * dh) as i32));
            let vals = row_chunks(&mut b, xb, &plane, ry, &col0, [ih, iw], (j0, j1));
            let at = |rel: i64| {
                let k = (rel - 4 * j0) as usize;
                vals[k / 4].clone().lane((k % 4) as u8)
            };
            for kx in 0..kw {
                xs.push(
                    (0..tw / 4)
                        .map(|q| {
                            let lanes = (0..4)
                                .map(|l| at(rel0 + ((4 * q + l) * s + kx * d) as i64))
                                .collect();
                            b.let_(v4, Expr::Vector(lanes))
                        })
                        .collect(),
                );
            }
        }
        // Each output channel's taps in a row, so that its accumulators stay in registers.
        for (o, row) in acc.iter().enumerate() {
            for (tap, xq) in xs.iter().enumerate() {
                let flat = o * kk + ci * kh * kw + tap;
                let ch = flat / 4;
                let wv = match &chunk[ch] {
                    Some(v) => v.clone(),
                    None => {
                        let v = b.let_(v4, wslots[ch / 8].clone().broadcast((ch % 8) as u32));
                        chunk[ch] = Some(v.clone());
                        v
                    }
                };
                let wk = Expr::Splat(4, Box::new(wv.lane((flat % 4) as u8)));
                for (q, a) in row.iter().enumerate() {
                    b.assign(*a, xq[q].clone().fma(wk.clone(), Expr::Var(*a)));
                }
            }
        }
    }
    let pout = oh * ow;
    let obase = b.let_(
        Type::I32,
        (ni * i(m as i32) + mt * i(ct as i32)) * i(pout as i32) + oy * i(ow as i32) + ow0,
    );
    for (o, row) in acc.iter().enumerate() {
        for (q, a) in row.iter().enumerate() {
            let flat0 = b.let_(Type::I32, obase.clone() + i((o * pout + 4 * q) as i32));
            let v = match &ep {
                Some(e) => {
                    let lanes = (0..4).map(|l| Expr::Var(*a).lane(l)).collect();
                    Expr::Vector(e.apply_lanes(&mut b, lanes, &flat0))
                }
                None => Expr::Var(*a),
            };
            b.store(ob, flat0 / i(4), v);
        }
    }
    finish_launch(b, args, ep, grid)
}

/// Images, output channels and output channels per group of a depthwise conv.
#[derive(Clone, Copy)]
struct DwDims {
    n: usize,
    m: usize,
    mg: usize,
}

/// Depthwise conv: output channel `o` reads input channel `o / mg`; each thread computes
/// [`DW_TILE`] consecutive outputs along the last axis, then applies the epilogue (if any) to
/// each before storing it.
fn depthwise(
    ctx: &LowerCtx<'_>,
    g: &Geom,
    dims: DwDims,
    layout: ConvLayout,
    bias: Option<&TensorDesc>,
    ep: Option<&Epilogue>,
) -> Result<KernelLaunch, LowerError> {
    let DwDims { n, m, mg } = dims;
    let x = &ctx.inputs[0]
        .as_ref()
        .map(|d| d.dtype)
        .unwrap_or(DType::F32);
    let wdt = ctx.inputs[1]
        .as_ref()
        .map(|d| d.dtype)
        .unwrap_or(DType::F32);
    let ydt = ep.map_or_else(
        || {
            ctx.outputs[0]
                .as_ref()
                .map(|d| d.dtype)
                .unwrap_or(DType::F32)
        },
        |e| e.out.dtype,
    );
    let tile = DW_TILE.min(g.output[2]);
    let tiles_w = g.output[2].div_ceil(tile);
    // Thread space: (n, m, od, oh, w tile).
    let st = |d: DType| Type::scalar(storage_scalar(d).unwrap_or(Scalar::F32));
    let (
        DwBind {
            mut b,
            args,
            xb,
            wb,
            ob,
            ep,
            c,
            grid,
            ..
        },
        ci,
        init,
    ) = dw_start(
        ctx,
        &[n, m, g.output[0], g.output[1], tiles_w],
        [st(*x), st(wdt), st(ydt)],
        dims,
        bias,
        ep,
    );
    let (ni, mi) = (c[0].clone(), c[1].clone());
    let ow0 = b.let_(Type::I32, c[4].clone() * i(tile as i32));
    let cin = m / mg;
    let pin = g.in_size();
    // Strides of an input pixel and an output pixel (1 channels-first, the channel count
    // channels-last).
    let (xps, yps) = (
        if layout.input_last { cin } else { 1 },
        if layout.output_last { m } else { 1 },
    );
    let xbase = if layout.input_last {
        b.let_(Type::I32, ni.clone() * i((pin * cin) as i32) + ci)
    } else {
        b.let_(Type::I32, (ni.clone() * i(cin as i32) + ci) * i(pin as i32))
    };
    let scaled = |e: Expr, s: usize| if s == 1 { e } else { e * i(s as i32) };
    let kk = g.kernel_size();
    let wbase = b.let_(Type::I32, mi.clone() * i(kk as i32));
    let acc: Vec<_> = (0..tile).map(|_| b.var(Type::F32, init.clone())).collect();
    let [_, ih, iw] = g.input;
    // Start positions of axes 0 and 1 (od*s - p), and of the tile along axis 2.
    let start = |b: &mut KernelBuilder, a: usize, o: Expr| -> Expr {
        b.let_(Type::I32, o * i(g.stride[a] as i32) - i(g.pad[a] as i32))
    };
    let s0 = start(&mut b, 0, c[2].clone());
    let s1 = start(&mut b, 1, c[3].clone());
    let s2 = start(&mut b, 2, ow0.clone());
    // Distinct input offsets along the last axis: t*stride + kw*dilation.
    let mut offs: Vec<usize> = Vec::new();
    for t in 0..tile {
        for kw in 0..g.kernel[2] {
            let o = t * g.stride[2] + kw * g.dilation[2];
            if !offs.contains(&o) {
                offs.push(o);
            }
        }
    }
    offs.sort_unstable();
    for kd in 0..g.kernel[0] {
        for kh in 0..g.kernel[1] {
            let p0 = b.let_(Type::I32, s0.clone() + i((kd * g.dilation[0]) as i32));
            let p1 = b.let_(Type::I32, s1.clone() + i((kh * g.dilation[1]) as i32));
            let mut row_ok = Vec::new();
            if !g.trivial(0) {
                row_ok.push(p0.clone().cast(Scalar::U32).lt(u(g.input[0] as u32)));
            }
            if !g.trivial(1) {
                row_ok.push(p1.clone().cast(Scalar::U32).lt(u(ih as u32)));
            }
            let row_ok = row_ok.into_iter().reduce(|a, b| a.and(b));
            let row_ok = row_ok.map(|e| b.let_(Type::BOOL, e));
            let row = b.let_(
                Type::I32,
                xbase.clone() + scaled((p0 * i(ih as i32) + p1) * i(iw as i32), xps),
            );
            // Input values of this window row.
            let vals: Vec<Expr> = offs
                .iter()
                .map(|&o| {
                    let p2 = b.let_(Type::I32, s2.clone() + i(o as i32));
                    let mut ok = if g.trivial(2) {
                        None
                    } else {
                        Some(p2.clone().cast(Scalar::U32).lt(u(iw as u32)))
                    };
                    if let Some(r) = &row_ok {
                        ok = Some(match ok {
                            None => r.clone(),
                            Some(o) => o.and(r.clone()),
                        });
                    }
                    let idx = row.clone() + scaled(p2, xps);
                    let v = match ok {
                        None => common::load(xb, idx, *x),
                        Some(ok) => {
                            let ok = b.let_(Type::BOOL, ok);
                            let v = common::load(xb, select(ok.clone(), idx, i(0)), *x);
                            select(ok, v, f(0.0))
                        }
                    };
                    b.let_(Type::F32, v)
                })
                .collect();
            for kw in 0..g.kernel[2] {
                let tap = (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
                let wv = b.let_(
                    Type::F32,
                    common::load(wb, wbase.clone() + i(tap as i32), wdt),
                );
                for (t, a) in acc.iter().enumerate() {
                    let o = t * g.stride[2] + kw * g.dilation[2];
                    let vi = offs.iter().position(|&x| x == o).unwrap_or(0);
                    b.assign(*a, vals[vi].clone().fma(wv.clone(), Expr::Var(*a)));
                }
            }
        }
    }
    let pout = g.out_size();
    let pixel =
        (c[2].clone() * i(g.output[1] as i32) + c[3].clone()) * i(g.output[2] as i32) + ow0.clone();
    let obase = if layout.output_last {
        b.let_(Type::I32, (ni * i(pout as i32) + pixel) * i(m as i32) + mi)
    } else {
        b.let_(Type::I32, (ni * i(m as i32) + mi) * i(pout as i32) + pixel)
    };
    for (t, a) in acc.iter().enumerate() {
        let store = |b: &mut KernelBuilder| {
            let off = if t == 0 {
                obase.clone()
            } else {
                b.let_(Type::I32, obase.clone() + i((t * yps) as i32))
            };
            let v = match &ep {
                Some(e) => e.apply(b, Expr::Var(*a), &off),
                None => Expr::Var(*a),
            };
            b.store(ob, off, to_storage(v, ydt))
        };
        if g.output[2] % tile == 0 {
            store(&mut b);
        } else {
            b.if_((ow0.clone() + i(t as i32)).lt(i(g.output[2] as i32)), store);
        }
    }
    finish_launch(b, args, ep, grid)
}

/// The bindings and thread coordinates every depthwise kernel starts with.
struct DwBind<'e> {
    b: KernelBuilder,
    args: Vec<Arg>,
    xb: u32,
    wb: u32,
    bb: Option<u32>,
    ob: u32,
    ep: Option<super::epilogue::Bound<'e>>,
    /// The thread's coordinates over the kernel's thread space.
    c: Vec<Expr>,
    grid: [u32; 3],
}

/// The kernel over thread `space` (64 threads a workgroup) with buffers x, w, the bias (of
/// element type `bias`, when there is one), the epilogue's and y of element types
/// `[x, w, y]`, one thread per point (the rest return at once).
fn dw_bind<'e>(
    ctx: &LowerCtx<'_>,
    space: &[usize],
    [xt, wt, yt]: [Type; 3],
    bias: Option<Type>,
    ep: Option<&'e Epilogue>,
) -> DwBind<'e> {
    let total: usize = space.iter().product();
    let wg = common::spread_workgroup(total, 64);
    let grid = grid_1d(total, wg);
    let mut b = KernelBuilder::new(ctx.kname("dwconv"), [wg, 1, 1]);
    let xb = b.buffer("x", xt, Access::Read);
    let wb = b.buffer("w", wt, Access::Read);
    let mut args = vec![Arg::Input(0), Arg::Input(1)];
    let bb = bias.map(|ty| {
        args.push(Arg::Input(2));
        b.buffer("bias", ty, Access::Read)
    });
    let ep = ep.map(|e| e.bind(&mut b, &mut args));
    let ob = b.buffer("y", yt, Access::ReadWrite);
    args.push(Arg::Output(0));
    let t = flat_index(&mut b, grid, wg);
    guard(&mut b, &t, total);
    let c = unravel(&mut b, &t, space);
    DwBind {
        b,
        args,
        xb,
        wb,
        bb,
        ob,
        ep,
        c,
        grid,
    }
}

/// [`dw_bind`] over thread `space` `[n, m, ..]` with a scalar bias, plus the input channel of
/// the thread's output channel `c[1]` and the accumulators' initial value (the channel's bias,
/// or 0).
fn dw_start<'e>(
    ctx: &LowerCtx<'_>,
    space: &[usize],
    types: [Type; 3],
    dims: DwDims,
    bias: Option<&TensorDesc>,
    ep: Option<&'e Epilogue>,
) -> (DwBind<'e>, Expr, Expr) {
    let bias_ty = bias.map(|bd| Type::scalar(storage_scalar(bd.dtype).unwrap_or(Scalar::F32)));
    let mut d = dw_bind(ctx, space, types, bias_ty, ep);
    let mi = d.c[1].clone();
    let ci = if dims.mg == 1 {
        mi.clone()
    } else {
        d.b.let_(Type::I32, mi.clone() / i(dims.mg as i32))
    };
    let init = match (d.bb, bias) {
        (Some(bb), Some(bd)) => d.b.let_(Type::F32, common::load(bb, mi, bd.dtype)),
        _ => f(0.0),
    };
    (d, ci, init)
}

/// Whether a depthwise conv takes [`depthwise_vec4`]: 2-D (axis 0 trivial), f32 in and out,
/// input and output rows a multiple of 4 wide, stride 1 or 2 along the rows.
fn dw_vec4_ok(g: &Geom, [x, w, y]: [DType; 3], ep: Option<&Epilogue>) -> bool {
    let ydt = ep.map_or(y, |e| e.out.dtype);
    g.trivial(0)
        && [x, w, ydt].iter().all(|&d| d == DType::F32)
        && g.input[2] % 4 == 0
        && g.output[2] % 4 == 0
        && (1..=2).contains(&g.stride[2])
        && g.pad[2] >= 0
}

/// The aligned vec4 chunks `j0..=j1` of input row `ry` of the channels-first plane starting at
/// vec4 `plane` (rows `iw` wide, a multiple of 4, `ih` of them): chunk `j` covers columns
/// `col0 + 4j .. + 4`, and is wholly inside the row or zeros (padding, or a row outside the
/// plane). Shared by [`depthwise_vec4`] and [`direct_vec4`].
fn row_chunks(
    b: &mut KernelBuilder,
    xb: u32,
    plane: &Expr,
    ry: Expr,
    col0: &Expr,
    [ih, iw]: [usize; 2],
    (j0, j1): (i64, i64),
) -> Vec<Expr> {
    let row_ok = b.let_(Type::BOOL, ry.clone().cast(Scalar::U32).lt(u(ih as u32)));
    let rbase = b.let_(Type::I32, plane.clone() + ry * i((iw / 4) as i32));
    (j0..=j1)
        .map(|j| {
            let cj = col0.clone() + i((4 * j) as i32);
            let ok = b.let_(
                Type::BOOL,
                row_ok
                    .clone()
                    .and(cj.clone().cast(Scalar::U32).lt(u(iw as u32))),
            );
            let idx = select(ok.clone(), rbase.clone() + cj / i(4), i(0));
            b.let_(
                Type::vec(Scalar::F32, 4),
                select(ok, Expr::load(xb, idx), Expr::Splat(4, Box::new(f(0.0)))),
            )
        })
        .collect()
}

/// Output rows per thread of [`depthwise_vec4`]. Measured on lavapipe (mobilenet_v2, A/B over
/// 3–6 rounds): 4 rows made the 112²/56² stride-1 kernels 14–23% and the stride-2 ones 7–10%
/// faster than 2; 6 or 8 rows were slower again (8 × 8 accumulators per thread), as were 3–4
/// rows with 8 columns at stride 2.
const DW_ROWS: usize = 4;

/// Outputs of a row per thread of [`depthwise_vec4`] at stride `s` over rows `ow` wide (a
/// multiple of 4): 8 at stride 1 where they fit, else 4.
fn dw_vec4_cols(s: usize, ow: usize) -> usize {
    if s == 1 && ow % 8 == 0 { 8 } else { 4 }
}

/// Depthwise conv with vec4 row segments (lavapipe charges a storage load the same for a scalar
/// and a vec4): each thread computes `DW_ROWS` output rows × `tw` (8 at stride 1, else 4)
/// consecutive outputs of one channel. For each input row it needs, it loads the aligned vec4
/// chunks covering the window span `[ow0·s − p, ow0·s − p + (tw − 1)·s + (kw − 1)·d]` — the
/// rows are a multiple of 4 wide, so a chunk is wholly inside or outside the row (zero) — and
/// takes the taps from their lanes; weights are loaded once per thread, stores are vec4 (the
/// epilogue on 4 lanes at a time).
fn depthwise_vec4(
    ctx: &LowerCtx<'_>,
    g: &Geom,
    dims: DwDims,
    bias: Option<&TensorDesc>,
    ep: Option<&Epilogue>,
) -> Result<KernelLaunch, LowerError> {
    let DwDims { n, m, mg } = dims;
    let v4 = Type::vec(Scalar::F32, 4);
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let (s, d) = (g.stride[2], g.dilation[2]);
    let (pw, kh, kw) = (g.pad[2], g.kernel[1], g.kernel[2]);
    let tw = dw_vec4_cols(s, ow);
    let th = DW_ROWS.min(oh);
    let (tiles_w, tiles_h) = (ow / tw, oh.div_ceil(th));
    let (
        DwBind {
            mut b,
            args,
            xb,
            wb,
            ob,
            ep,
            c,
            grid,
            ..
        },
        ci,
        init,
    ) = dw_start(
        ctx,
        &[n, m, tiles_h, tiles_w],
        [v4, Type::F32, v4],
        dims,
        bias,
        ep,
    );
    let (ni, mi) = (c[0].clone(), c[1].clone());
    let oh0 = b.let_(Type::I32, c[2].clone() * i(th as i32));
    let ow0 = b.let_(Type::I32, c[3].clone() * i(tw as i32));
    let cin = m / mg;
    // The input plane's first row, in vec4 units (rows are a multiple of 4 wide).
    let xplane = b.let_(
        Type::I32,
        (ni.clone() * i(cin as i32) + ci) * i((ih * iw / 4) as i32),
    );
    let ws: Vec<Expr> = (0..kh * kw)
        .map(|tap| {
            b.let_(
                Type::F32,
                load(
                    wb,
                    mi.clone() * i((kh * kw) as i32) + i(tap as i32),
                    DType::F32,
                ),
            )
        })
        .collect();
    let acc: Vec<Vec<_>> = (0..th)
        .map(|_| (0..tw).map(|_| b.var(Type::F32, init.clone())).collect())
        .collect();
    // Window span relative to ow0·s (a multiple of 4), and the chunks covering it.
    let rel0 = -pw;
    let rel1 = rel0 + ((tw - 1) * s + (kw - 1) * d) as i64;
    let (j0, j1) = (rel0.div_euclid(4), rel1.div_euclid(4));
    let col0 = b.let_(Type::I32, ow0.clone() * i(s as i32));
    // Input rows r = oh0·s − p + y, y = 0 .. (th − 1)·s + (kh − 1)·dh.
    let sh = g.stride[1];
    let dh = g.dilation[1];
    let rows_needed = (th - 1) * sh + (kh - 1) * dh + 1;
    let row0 = b.let_(Type::I32, oh0.clone() * i(sh as i32) - i(g.pad[1] as i32));
    for y in 0..rows_needed {
        // Which (output row, kernel row) pairs read input row y.
        let users: Vec<(usize, usize)> = (0..th)
            .flat_map(|r| (0..kh).map(move |k| (r, k)))
            .filter(|&(r, k)| r * sh + k * dh == y)
            .collect();
        if users.is_empty() {
            continue;
        }
        let ry = b.let_(Type::I32, row0.clone() + i(y as i32));
        let chunks = row_chunks(&mut b, xb, &xplane, ry, &col0, [ih, iw], (j0, j1));
        // Column col0 + rel (rel in rel0..=rel1) is lane (rel − 4·j0) of the chunks.
        let at = |rel: i64| {
            let k = (rel - 4 * j0) as usize;
            chunks[k / 4].clone().lane((k % 4) as u8)
        };
        for &(r, k) in &users {
            for kx in 0..kw {
                let wv = &ws[k * kw + kx];
                for (o, a) in acc[r].iter().enumerate() {
                    let rel = rel0 + (o * s + kx * d) as i64;
                    b.assign(*a, at(rel).fma(wv.clone(), Expr::Var(*a)));
                }
            }
        }
    }
    let pout = oh * ow;
    for (r, row_acc) in acc.iter().enumerate() {
        let orow = b.let_(Type::I32, oh0.clone() + i(r as i32));
        let store = |b: &mut KernelBuilder| {
            let obase = b.let_(
                Type::I32,
                (ni.clone() * i(m as i32) + mi.clone()) * i(pout as i32)
                    + orow.clone() * i(ow as i32)
                    + ow0.clone(),
            );
            for q in 0..tw / 4 {
                let flat0 = b.let_(Type::I32, obase.clone() + i((4 * q) as i32));
                let lanes: Vec<Expr> = (0..4).map(|l| Expr::Var(row_acc[4 * q + l])).collect();
                let lanes = match &ep {
                    Some(e) => e.apply_lanes(b, lanes, &flat0),
                    None => lanes,
                };
                b.store(ob, flat0 / i(4), Expr::Vector(lanes));
            }
        };
        if oh % th == 0 {
            store(&mut b);
        } else {
            b.if_(orow.clone().lt(i(oh as i32)), store);
        }
    }
    finish_launch(b, args, ep, grid)
}

/// Whether a depthwise conv takes [`depthwise_last_vec4`]: channels-last in and out, 2-D, one
/// output channel per input channel, f32 throughout, channels a multiple of 4.
fn dw_last_vec4_ok(
    g: &Geom,
    layout: ConvLayout,
    dims: DwDims,
    [x, w, y]: [DType; 3],
    ep: Option<&Epilogue>,
) -> bool {
    let ydt = ep.map_or(y, |e| e.out.dtype);
    layout.input_last
        && layout.output_last
        && g.trivial(0)
        && dims.mg == 1
        && dims.m % 4 == 0
        && [x, w, ydt].iter().all(|&d| d == DType::F32)
}

/// The tile in `lo..=hi` (at most `extent`) that pads `extent` least, the largest of equals.
fn fit_tile(extent: usize, lo: usize, hi: usize) -> usize {
    (lo.min(extent)..=hi.min(extent))
        .min_by_key(|&t| (extent.div_ceil(t) * t, std::cmp::Reverse(t)))
        .unwrap_or(1)
}

/// Depthwise conv over channels-last tensors, vec4 along the channels: each thread computes 4
/// channels × `th` output rows × `tw` output columns, each the tile of 2–7 rows and 4–14
/// columns at stride 1 (2–7 at stride 2) that pads the plane least, the largest of equals:
/// 7 × 14 on mobilenet_v2's 14² planes, 7 × 7 on 7² and at stride 2. Measured on lavapipe
/// (A/B over 3–6 rounds): 7 × 7 tiles made the stride-1 kernels 27–36% and the 14² → 7²
/// stride-2 one 18% faster than the former fixed 2 × 4 (2 × 2 at stride 2), the 28² → 14²
/// stride-2 one 9% slower; 7 × 7 beat 4 × 7 and 2 × 7, and 1 × 7 was slower. At stride 1,
/// 7 × 14 then beat 7 × 7 by 7–10% (fewer window overlaps reloaded); 14 × 14 gained another
/// 5–10% but made each such kernel twice as long (4500 WGSL lines), which took mobilenet_v2's
/// pipeline creation from 1.5 to 2.4 s (naga and lavapipe compile every load) — not worth
/// 0.16 ms a run. 14-wide tiles at stride 2 were 5–18% slower.
/// Every input vec4 of the window span is loaded once and feeds all the outputs that use it;
/// the quad's weights (`[M, 1, kh, kw]`: 4·kh·kw consecutive floats) are kh·kw vec4 loads
/// regrouped by tap; the bias and the stores are vec4. Neighbouring threads take neighbouring
/// channel quads, so a subgroup reads one contiguous run of each input pixel's channels.
fn depthwise_last_vec4(
    ctx: &LowerCtx<'_>,
    g: &Geom,
    dims: DwDims,
    bias: Option<&TensorDesc>,
    ep: Option<&Epilogue>,
) -> Result<KernelLaunch, LowerError> {
    let DwDims { n, m, .. } = dims;
    let v4 = Type::vec(Scalar::F32, 4);
    let zero = || Expr::Splat(4, Box::new(f(0.0)));
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let (sh, sw) = (g.stride[1], g.stride[2]);
    let (dh, dw) = (g.dilation[1], g.dilation[2]);
    let (kh, kw) = (g.kernel[1], g.kernel[2]);
    let th = fit_tile(oh, 2, 7);
    let tw = fit_tile(
        ow,
        if sw == 1 { 4 } else { 2 },
        if sw == 1 { 14 } else { 7 },
    );
    let (tiles_h, tiles_w, m4) = (oh.div_ceil(th), ow.div_ceil(tw), m / 4);
    let DwBind {
        mut b,
        args,
        xb,
        wb,
        bb,
        ob,
        ep,
        c,
        grid,
    } = dw_bind(
        ctx,
        &[n, tiles_h, tiles_w, m4],
        [v4, v4, v4],
        bias.map(|_| v4),
        ep,
    );
    let (ni, q) = (c[0].clone(), c[3].clone());
    let oh0 = b.let_(Type::I32, c[1].clone() * i(th as i32));
    let ow0 = b.let_(Type::I32, c[2].clone() * i(tw as i32));
    let init = match bb {
        Some(bb) => b.let_(v4, Expr::load(bb, q.clone())),
        None => zero(),
    };
    // The quad's weights are 4·kk consecutive floats (channel-major): kk vec4 loads, then
    // each tap's vec4 gathers its 4 channels' lanes.
    let kk = kh * kw;
    let wq: Vec<Expr> = (0..kk)
        .map(|j| b.let_(v4, Expr::load(wb, q.clone() * i(kk as i32) + i(j as i32))))
        .collect();
    let ws: Vec<Expr> = (0..kk)
        .map(|tap| {
            let lanes: Vec<Expr> = (0..4)
                .map(|l| {
                    let e = l * kk + tap;
                    wq[e / 4].clone().lane((e % 4) as u8)
                })
                .collect();
            b.let_(v4, Expr::Vector(lanes))
        })
        .collect();
    let acc: Vec<Vec<_>> = (0..th)
        .map(|_| (0..tw).map(|_| b.var(v4, init.clone())).collect())
        .collect();
    let row0 = b.let_(Type::I32, oh0.clone() * i(sh as i32) - i(g.pad[1] as i32));
    let col0 = b.let_(Type::I32, ow0.clone() * i(sw as i32) - i(g.pad[2] as i32));
    let rows_needed = (th - 1) * sh + (kh - 1) * dh + 1;
    let cols_needed = (tw - 1) * sw + (kw - 1) * dw + 1;
    // (output index, kernel index) pairs that read input offset `y` along an axis.
    let users = |tiles: usize, taps: usize, s: usize, d: usize, y: usize| -> Vec<(usize, usize)> {
        (0..tiles)
            .flat_map(|o| (0..taps).map(move |k| (o, k)))
            .filter(|&(o, k)| o * s + k * d == y)
            .collect()
    };
    for y in 0..rows_needed {
        let ry_users = users(th, kh, sh, dh, y);
        if ry_users.is_empty() {
            continue;
        }
        let ry = b.let_(Type::I32, row0.clone() + i(y as i32));
        let row_ok = b.let_(Type::BOOL, ry.clone().cast(Scalar::U32).lt(u(ih as u32)));
        let rbase = b.let_(Type::I32, (ni.clone() * i(ih as i32) + ry) * i(iw as i32));
        for x in 0..cols_needed {
            let cx_users = users(tw, kw, sw, dw, x);
            if cx_users.is_empty() {
                continue;
            }
            let cx = col0.clone() + i(x as i32);
            let ok = b.let_(
                Type::BOOL,
                row_ok
                    .clone()
                    .and(cx.clone().cast(Scalar::U32).lt(u(iw as u32))),
            );
            let idx = select(
                ok.clone(),
                (rbase.clone() + cx) * i(m4 as i32) + q.clone(),
                i(0),
            );
            let v = b.let_(v4, select(ok, Expr::load(xb, idx), zero()));
            for &(r, ky) in &ry_users {
                for &(o, kx) in &cx_users {
                    let a = acc[r][o];
                    b.assign(a, v.clone().fma(ws[ky * kw + kx].clone(), Expr::Var(a)));
                }
            }
        }
    }
    for (r, row_acc) in acc.iter().enumerate() {
        for (o, a) in row_acc.iter().enumerate() {
            let orow = oh0.clone() + i(r as i32);
            let ocol = ow0.clone() + i(o as i32);
            let mut cond: Option<Expr> = None;
            if oh % th != 0 {
                cond = Some(orow.clone().lt(i(oh as i32)));
            }
            if ow % tw != 0 {
                let c2 = ocol.clone().lt(i(ow as i32));
                cond = Some(match cond {
                    None => c2,
                    Some(c1) => c1.and(c2),
                });
            }
            let store = |b: &mut KernelBuilder| {
                let flat0 = b.let_(
                    Type::I32,
                    ((ni.clone() * i(oh as i32) + orow.clone()) * i(ow as i32) + ocol.clone())
                        * i(m as i32)
                        + q.clone() * i(4),
                );
                let val = match &ep {
                    Some(e) => {
                        let lanes: Vec<Expr> =
                            (0..4).map(|l| Expr::Var(*a).lane(l as u8)).collect();
                        Expr::Vector(e.apply_lanes(b, lanes, &flat0))
                    }
                    None => Expr::Var(*a),
                };
                b.store(ob, flat0 / i(4), val);
            };
            match cond {
                None => store(&mut b),
                Some(cnd) => b.if_(cnd, store),
            }
        }
    }
    finish_launch(b, args, ep, grid)
}

/// Window loops of a direct conv: calls `body(b, input_flat_offset_within_plane, tap_index)`
/// for every in-range tap of output position `o` (3 coords). For ConvTranspose, input positions
/// are `(o + pad - k*d) / s` when divisible.
fn taps(
    b: &mut KernelBuilder,
    g: &Geom,
    o: &[Expr],
    transpose: bool,
    body: &mut dyn FnMut(&mut KernelBuilder, Expr, Expr),
) {
    #[allow(clippy::too_many_arguments)]
    fn rec(
        b: &mut KernelBuilder,
        g: &Geom,
        o: &[Expr],
        transpose: bool,
        a: usize,
        pos: Expr,
        tap: Expr,
        body: &mut dyn FnMut(&mut KernelBuilder, Expr, Expr),
    ) {
        if a == 3 {
            body(b, pos, tap);
            return;
        }
        let k = g.kernel[a];
        let pos_c = pos.clone();
        let tap_c = tap.clone();
        let inner = |b: &mut KernelBuilder, kv: Expr| {
            let p = if transpose {
                o[a].clone() + i(g.pad[a] as i32) - kv.clone() * i(g.dilation[a] as i32)
            } else {
                o[a].clone() * i(g.stride[a] as i32) - i(g.pad[a] as i32)
                    + kv.clone() * i(g.dilation[a] as i32)
            };
            let p = b.let_(Type::I32, p);
            let (ok, q) = if transpose {
                let s = g.stride[a] as i32;
                let q = b.let_(Type::I32, p.clone() / i(s));
                let ok = p
                    .clone()
                    .ge(i(0))
                    .and((p % i(s)).eq_(i(0)))
                    .and(q.clone().lt(i(g.input[a] as i32)));
                (ok, q)
            } else {
                (p.clone().cast(Scalar::U32).lt(u(g.input[a] as u32)), p)
            };
            let npos = pos_c.clone() * i(g.input[a] as i32) + q;
            let ntap = tap_c.clone() * i(k as i32) + kv;
            b.if_(ok, |b| {
                let npos = b.let_(Type::I32, npos);
                let ntap = b.let_(Type::I32, ntap);
                rec(b, g, o, transpose, a + 1, npos, ntap, body);
            });
        };
        if g.trivial(a) {
            rec(b, g, o, transpose, a + 1, pos, tap, body);
        } else {
            b.for_(i(0), i(k as i32), 1, false, inner);
        }
    }
    rec(b, g, o, transpose, 0, i(0), i(0), body);
}

fn lower_conv_transpose(
    ctx: &LowerCtx<'_>,
    attrs: &ConvAttrs,
    ep: Option<&Epilogue>,
) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    let y = ctx.output(0)?;
    if compute_scalar(y.dtype) != Some(Scalar::F32) {
        return Err(ctx.unsupported(format!("needs {}", y.dtype.name())));
    }
    let g = conv_geom(ctx, attrs, &x.shape, &w.shape, &y.shape, true)?;
    let group = attrs.group.max(1);
    let (n, c) = (x.shape[0], x.shape[1]);
    let mg = w.shape[1];
    let m = mg * group;
    if w.shape[0] != c || c % group != 0 || y.shape[1] != m {
        return Err(ctx.invalid("channels do not match the group"));
    }
    if y.numel() == 0 {
        return Ok(Lowered::default());
    }
    let cg = c / group;
    let bias = ctx.opt_input(2);
    if let Some(e) = ep {
        e.check_bindings(ctx, 3 + bias.is_some() as usize)?;
    }
    let ydt = ep.map_or(y.dtype, |e| e.out.dtype);
    let total = y.numel();
    let wg = 256;
    let grid = grid_1d(total, wg);
    let mut b = KernelBuilder::new(ctx.kname("convt"), [wg, 1, 1]);
    let st = |d: DType| Type::scalar(storage_scalar(d).unwrap_or(Scalar::F32));
    let xb = b.buffer("x", st(x.dtype), Access::Read);
    let wb = b.buffer("w", st(w.dtype), Access::Read);
    let mut args = vec![Arg::Input(0), Arg::Input(1)];
    let bb = bias.map(|bd| {
        args.push(Arg::Input(2));
        b.buffer("bias", st(bd.dtype), Access::Read)
    });
    let ep = ep.map(|e| e.bind(&mut b, &mut args));
    let ob = b.buffer("y", st(ydt), Access::ReadWrite);
    args.push(Arg::Output(0));
    let t = flat_index(&mut b, grid, wg);
    guard(&mut b, &t, total);
    let space = [n, m, g.output[0], g.output[1], g.output[2]];
    let co = unravel(&mut b, &t, &space);
    let (ni, mi) = (co[0].clone(), co[1].clone());
    let gi = b.let_(Type::I32, mi.clone() / i(mg as i32));
    let mo = b.let_(Type::I32, mi.clone() % i(mg as i32));
    let init = match (bb, bias) {
        (Some(bb), Some(bd)) => common::load(bb, mi.clone(), bd.dtype),
        _ => f(0.0),
    };
    let acc = b.var(Type::F32, init);
    let kk = g.kernel_size();
    let pin = g.in_size();
    let (xdt, wdt) = (x.dtype, w.dtype);
    b.for_(i(0), i(cg as i32), 1, false, |b, ci| {
        let ch = b.let_(Type::I32, gi.clone() * i(cg as i32) + ci);
        let xbase = b.let_(
            Type::I32,
            (ni.clone() * i(c as i32) + ch.clone()) * i(pin as i32),
        );
        let wbase = b.let_(Type::I32, (ch * i(mg as i32) + mo.clone()) * i(kk as i32));
        taps(b, &g, &co[2..], true, &mut |b, pos, tap| {
            let xv = common::load(xb, xbase.clone() + pos, xdt);
            let wv = common::load(wb, wbase.clone() + tap, wdt);
            b.assign(acc, xv.fma(wv, Expr::Var(acc)));
        });
    });
    let v = match &ep {
        Some(e) => e.apply(&mut b, Expr::Var(acc), &t),
        None => Expr::Var(acc),
    };
    b.store(ob, t, to_storage(v, ydt));
    Ok(Lowered {
        launches: vec![finish_launch(b, args, ep, grid)?],
        ..Lowered::default()
    })
}

/// ConvInteger / QLinearConv: direct i32 conv of the centred inputs (+ i32 bias), then (for
/// QLinearConv) requantization by `x_scale · w_scale / y_scale` per output channel.
fn lower_quant_conv(
    ctx: &LowerCtx<'_>,
    attrs: &ConvAttrs,
    qlinear: bool,
) -> Result<Lowered, LowerError> {
    let (xi, wi) = if qlinear { (0, 3) } else { (0, 1) };
    let (xzi, wzi) = if qlinear { (2, 5) } else { (2, 3) };
    let x = ctx.input(xi)?;
    let w = ctx.input(wi)?;
    let y = ctx.output(0)?;
    let g = conv_geom(ctx, attrs, &x.shape, &w.shape, &y.shape, false)?;
    let group = attrs.group.max(1);
    let (n, c, m) = (x.shape[0], x.shape[1], w.shape[0]);
    if c % group != 0 || m % group != 0 || w.shape[1] * group != c || y.shape[1] != m {
        return Err(ctx.invalid("channels do not match the group"));
    }
    let total = y.numel();
    if total == 0 {
        return Ok(Lowered::default());
    }
    let (cg, mg) = (c / group, m / group);
    let wg = 256;
    let grid = grid_1d(total, wg);
    let st = |d: DType| Type::scalar(storage_scalar(d).unwrap_or(Scalar::I32));
    let mut b = KernelBuilder::new(ctx.kname("qconv"), [wg, 1, 1]);
    let xb = b.buffer("x", st(x.dtype), Access::Read);
    let wb = b.buffer("w", st(w.dtype), Access::Read);
    let mut args = vec![Arg::Input(xi), Arg::Input(wi)];
    let mut opt = |b: &mut KernelBuilder, idx: usize, name: &str| {
        ctx.opt_input(idx).filter(|d| d.numel() > 0).map(|d| {
            args.push(Arg::Input(idx));
            (b.buffer(name, st(d.dtype), Access::Read), d.clone())
        })
    };
    let xz = opt(&mut b, xzi, "xzp");
    let wz = opt(&mut b, wzi, "wzp");
    let bias = if qlinear {
        opt(&mut b, 8, "bias")
    } else {
        None
    };
    let ob = b.buffer("y", Type::I32, Access::ReadWrite);
    args.push(if qlinear {
        Arg::Temp(0)
    } else {
        Arg::Output(0)
    });
    let t = flat_index(&mut b, grid, wg);
    guard(&mut b, &t, total);
    let space = [n, m, g.output[0], g.output[1], g.output[2]];
    let co = unravel(&mut b, &t, &space);
    let (ni, mi) = (co[0].clone(), co[1].clone());
    let gi = b.let_(Type::I32, mi.clone() / i(mg as i32));
    let xzv = xz.map(|(buf, _)| b.let_(Type::I32, Expr::load(buf, i(0)).cast(Scalar::I32)));
    let wzv = match wz {
        Some((buf, d)) if d.numel() == 1 => {
            Some(b.let_(Type::I32, Expr::load(buf, i(0)).cast(Scalar::I32)))
        }
        Some((buf, d)) if d.numel() == m => {
            Some(b.let_(Type::I32, Expr::load(buf, mi.clone()).cast(Scalar::I32)))
        }
        Some(_) => return Err(ctx.unsupported("with this weight zero point shape")),
        None => None,
    };
    let init = match bias {
        Some((buf, _)) => Expr::load(buf, mi.clone()).cast(Scalar::I32),
        None => i(0),
    };
    let acc = b.var(Type::I32, init);
    let kk = g.kernel_size();
    let pin = g.in_size();
    b.for_(i(0), i(cg as i32), 1, false, |b, ci| {
        let ch = b.let_(Type::I32, gi.clone() * i(cg as i32) + ci.clone());
        let xbase = b.let_(Type::I32, (ni.clone() * i(c as i32) + ch) * i(pin as i32));
        let wbase = b.let_(Type::I32, (mi.clone() * i(cg as i32) + ci) * i(kk as i32));
        taps(b, &g, &co[2..], false, &mut |b, pos, tap| {
            let mut xv = Expr::load(xb, xbase.clone() + pos).cast(Scalar::I32);
            if let Some(z) = &xzv {
                xv = xv - z.clone();
            }
            let mut wv = Expr::load(wb, wbase.clone() + tap).cast(Scalar::I32);
            if let Some(z) = &wzv {
                wv = wv - z.clone();
            }
            b.assign(acc, Expr::Var(acc) + xv * wv);
        });
    });
    b.store(ob, t, Expr::Var(acc));
    let mut launches = vec![KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    }];
    let mut temps = Vec::new();
    if qlinear {
        temps.push(TensorDesc::new(DType::I32, y.shape.clone()));
        let mut b = KernelBuilder::new(ctx.kname("requant"), [wg, 1, 1]);
        let mut args = vec![Arg::Temp(0)];
        let accb = b.buffer("acc", Type::I32, Access::Read);
        let mut param = |b: &mut KernelBuilder, idx: usize| {
            ctx.opt_input(idx).filter(|d| d.numel() > 0).map(|d| {
                args.push(Arg::Input(idx));
                let s = storage_scalar(d.dtype).unwrap_or(Scalar::F32);
                (
                    b.buffer(format!("p{idx}"), Type::scalar(s), Access::Read),
                    d.clone(),
                )
            })
        };
        let xs = param(&mut b, 1);
        let ws = param(&mut b, 4);
        let ys = param(&mut b, 6);
        let yz = param(&mut b, 7);
        let ob = b.buffer("y", st(y.dtype), Access::ReadWrite);
        args.push(Arg::Output(0));
        let t = flat_index(&mut b, grid, wg);
        guard(&mut b, &t, total);
        let pout = g.out_size();
        let mi = b.let_(Type::I32, (t.clone() / i(pout as i32)) % i(m as i32));
        let ld = |p: &Option<(u32, TensorDesc)>, float: bool| -> Expr {
            match p {
                Some((buf, d)) => {
                    let idx = if d.numel() == 1 { i(0) } else { mi.clone() };
                    let v = common::load(*buf, idx, d.dtype);
                    if float { v } else { v.cast(Scalar::I32) }
                }
                None if float => f(1.0),
                None => i(0),
            }
        };
        if let Some((_, d)) = &ws
            && d.numel() != 1
            && d.numel() != m
        {
            return Err(ctx.unsupported("with this w_scale shape"));
        }
        let sdt = ctx.opt_input(1).map(|d| d.dtype).unwrap_or(DType::F32);
        let mult = common::convert(ld(&xs, true) * ld(&ws, true), DType::F32, sdt);
        let mult = common::convert(mult / ld(&ys, true), DType::F32, sdt);
        let v = Expr::load(accb, t.clone()).cast(Scalar::F32) * mult;
        b.store(ob, t, gemm::requantize(v, ld(&yz, false), y.dtype));
        launches.push(KernelLaunch {
            kernel: b.finish(),
            args,
            grid,
        });
    }
    Ok(Lowered {
        launches,
        temps,
        ..Lowered::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::lower;
    use optc_ir::ops::Window;

    fn conv(k: &[usize], s: &[usize], p: &[usize], group: usize) -> Op {
        Op::Conv(ConvAttrs {
            window: Window {
                kernel_shape: k.to_vec(),
                strides: s.to_vec(),
                dilations: vec![],
                pads: p.to_vec(),
                auto_pad: AutoPad::NotSet,
            },
            group,
            layout: Default::default(),
        })
    }

    fn lower_op(op: Op, ins: &[&[usize]], out: &[usize]) -> Lowered {
        let ins: Vec<Option<TensorDesc>> = ins
            .iter()
            .map(|s| Some(TensorDesc::new(DType::F32, s.to_vec())))
            .collect();
        let values = vec![None; ins.len()];
        let outs = vec![Some(TensorDesc::new(DType::F32, out.to_vec()))];
        let ctx = LowerCtx {
            op: &op,
            name: "n0",
            inputs: &ins,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        lower(&ctx).expect("lowers")
    }

    #[test]
    fn dense_conv_is_an_implicit_gemm_with_fused_bias() {
        let l = lower_op(
            conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 1),
            &[&[1, 64, 56, 56], &[64, 64, 3, 3], &[64]],
            &[1, 64, 56, 56],
        );
        assert_eq!(l.launches.len(), 1);
        let k = &l.launches[0].kernel;
        assert!(k.name.ends_with("gemm"));
        assert_eq!(
            l.launches[0].args,
            vec![Arg::Input(0), Arg::Input(1), Arg::Input(2), Arg::Output(0)]
        );
        // Weights are K-contiguous (K = 576): vec4 loads; the im2col side is scalar.
        assert_eq!(k.buffers[0].elem, Type::F32);
        assert_eq!(k.buffers[1].elem, Type::vec(Scalar::F32, 4));
        assert!(k.uses_subgroups());
        // The NCHW output is column-major for the GEMM (rows = pixels): 3136 rows store vec4
        // runs of four pixels.
        assert_eq!(k.buffers[3].elem, Type::vec(Scalar::F32, 4));
        // 7×7 = 49 pixels: not a multiple of 4, scalar stores.
        let l = lower_op(
            conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 1),
            &[&[1, 8, 7, 7], &[16, 8, 3, 3], &[16]],
            &[1, 16, 7, 7],
        );
        assert_eq!(l.launches[0].kernel.buffers[3].elem, Type::F32);
    }

    #[test]
    fn channels_last_depthwise_tiles_pad_least() {
        // mobilenet_v2's planes: whole 14-wide rows at stride 1, 7 otherwise.
        assert_eq!(fit_tile(14, 4, 14), 14);
        assert_eq!(fit_tile(14, 2, 7), 7);
        assert_eq!(fit_tile(7, 2, 7), 7);
        // The stride-1 tails in the reference test: 17 rows → 6 (18), 19 columns → 10 (20).
        assert_eq!(fit_tile(17, 2, 7), 6);
        assert_eq!(fit_tile(19, 4, 14), 10);
        // Several tiles pad equally little: the largest.
        assert_eq!(fit_tile(56, 4, 7), 7);
        assert_eq!(fit_tile(12, 2, 7), 6);
        // None fits: 6 pads 11 to 12, 7 would pad it to 14.
        assert_eq!(fit_tile(11, 2, 7), 6);
        // Smaller than the smallest tile: the extent itself.
        assert_eq!(fit_tile(1, 2, 7), 1);
        assert_eq!(fit_tile(3, 4, 7), 3);
    }

    #[test]
    fn depthwise_conv_gets_the_direct_kernel() {
        // Rows a multiple of 4 wide: the vec4 kernel, DW_ROWS rows × 4 outputs per thread
        // (stride 2).
        let l = lower_op(
            conv(&[3, 3], &[2, 2], &[1, 1, 1, 1], 32),
            &[&[1, 32, 112, 112], &[32, 1, 3, 3]],
            &[1, 32, 56, 56],
        );
        let lk = &l.launches[0];
        assert!(lk.kernel.name.ends_with("dwconv"));
        assert_eq!(lk.kernel.buffers[0].elem, Type::vec(Scalar::F32, 4));
        let threads = 32 * (56 / DW_ROWS) * (56 / 4);
        assert_eq!(lk.grid[0] as usize, threads.div_ceil(64));
        // 7 wide: the scalar kernel, DW_TILE outputs per thread.
        let l = lower_op(
            conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 32),
            &[&[1, 32, 7, 7], &[32, 1, 3, 3]],
            &[1, 32, 7, 7],
        );
        let lk = &l.launches[0];
        assert_eq!(lk.kernel.buffers[0].elem, Type::F32);
        // 32 channels · 7 rows · 2 tiles of DW_TILE = 448 threads: 14 workgroups of 32 rather
        // than 7 of 64 (a small launch is spread over at least MIN_WORKGROUPS where its threads
        // allow).
        assert_eq!((lk.grid[0], lk.kernel.workgroup[0]), (14, 32));
        assert!(!lk.kernel.uses_subgroups());
    }

    #[test]
    fn gemm_padding_prices_conv_layouts() {
        let lay = |input_last, output_last| ConvLayout {
            input_last,
            output_last,
            weight_last: false,
        };
        let pw = |layout| {
            let mut op = conv(&[1, 1], &[1, 1], &[0, 0, 0, 0], 1);
            if let Op::Conv(a) = &mut op {
                a.layout = layout;
            }
            match op {
                Op::Conv(a) => a,
                _ => unreachable!(),
            }
        };
        // mobilenet_v2's 96 → 576 1×1 conv at 14²: over a channels-first input rows are the
        // 576 channels and 49 column tiles of 4 fill 56 lanes (224 of 196 columns paid); over
        // a channels-last one rows are the 196 pixels in 40-row tiles (200 paid).
        let a = pw(lay(false, true));
        let (f, t) = conv_cost_factors(&a, &[1, 96, 14, 14], &[576, 96, 1, 1], &[1, 14, 14, 576]);
        assert!((f - 224.0 / 196.0).abs() < 1e-9 && t == 1.0, "{f} {t}");
        let a = pw(lay(true, true));
        let (f, t) = conv_cost_factors(&a, &[1, 14, 14, 96], &[576, 96, 1, 1], &[1, 14, 14, 576]);
        assert!((f - 200.0 / 196.0).abs() < 1e-9 && t == 1.0, "{f} {t}");
        // Depthwise channels-first at stride 1: 4-wide thread tiles where rows are not a
        // multiple of 8 (28) cost 1.4; 56 wide, and channels-last, 1.
        let dw = |layout, x: [usize; 4]| {
            let mut op = conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 8);
            if let Op::Conv(a) = &mut op {
                a.layout = layout;
            }
            let Op::Conv(a) = op else { unreachable!() };
            conv_cost_factors(&a, &x, &[8, 1, 3, 3], &x)
        };
        assert_eq!(dw(lay(false, false), [1, 8, 28, 28]), (1.0, 1.4));
        assert_eq!(dw(lay(false, false), [1, 8, 56, 56]), (1.0, 1.0));
        assert_eq!(dw(lay(true, true), [1, 28, 28, 8]), (1.0, 1.0));
    }

    #[test]
    fn few_weights_per_channel_take_the_direct_kernel() {
        use crate::lower::sim::{assert_close, rand_t, run_op};
        // (x, weight, stride, pad, dilation, bias, direct kernel?, ct, tw): mobilenet_v2's
        // stem (3 channels, 3 × 3, stride 2); 8-wide rows of 12 → 4 outputs per thread and 2
        // images; 25 weights per channel (24 channels a tile); dilation with 4 output channels;
        // no bias; and planes it does not take: 5 row segments (no workgroup of 8–64 shares one
        // channel tile), 33 weights per channel, 1×1.
        #[allow(clippy::type_complexity)]
        let cases: [(
            [usize; 4],
            [usize; 4],
            usize,
            usize,
            usize,
            bool,
            Option<(usize, usize)>,
        ); 8] = [
            ([1, 3, 16, 16], [32, 3, 3, 3], 2, 1, 1, true, Some((32, 8))),
            ([2, 3, 8, 12], [8, 3, 3, 3], 1, 1, 1, true, Some((8, 4))),
            ([1, 1, 12, 16], [24, 1, 5, 5], 1, 2, 1, true, Some((24, 8))),
            ([1, 3, 8, 16], [4, 3, 3, 3], 1, 2, 2, true, Some((4, 8))),
            ([1, 3, 16, 16], [64, 3, 3, 3], 2, 1, 1, false, Some((32, 8))),
            ([1, 2, 9, 8], [16, 2, 3, 3], 2, 1, 1, true, None),
            ([1, 11, 8, 8], [8, 11, 1, 3], 1, 0, 1, true, None),
            ([1, 4, 8, 8], [8, 4, 1, 1], 1, 0, 1, true, None),
        ];
        for (xs, ws, st, p, d, bias, want_direct) in cases {
            let op = Op::Conv(ConvAttrs {
                window: Window {
                    kernel_shape: ws[2..].to_vec(),
                    strides: vec![st, st],
                    dilations: vec![d, d],
                    pads: vec![p; 4],
                    auto_pad: AutoPad::NotSet,
                },
                group: 1,
                layout: Default::default(),
            });
            let mut ins = vec![Some(rand_t(&xs, 1)), Some(rand_t(&ws, 2))];
            if bias {
                ins.push(Some(rand_t(&[ws[0]], 3)));
            }
            let (got, want) = run_op(&op, &ins, &[]);
            let what = format!("{xs:?} {ws:?} s{st} p{p} d{d} bias {bias}");
            assert_close(&got[0], &want[0], &what);
            let shapes: Vec<&[usize]> = ins
                .iter()
                .map(|t| t.as_ref().map(|t| t.shape()).unwrap_or(&[]))
                .collect();
            let l = lower_op(op.clone(), &shapes, want[0].shape());
            let k = &l.launches[0].kernel;
            match want_direct {
                Some((ct, tw)) => {
                    assert!(k.name.ends_with("_conv"), "{what}: {}", k.name);
                    assert!(k.uses_subgroups(), "{what}");
                    let [n, m, oh, ow] = [xs[0], ws[0], want[0].shape()[2], want[0].shape()[3]];
                    let threads = n * (m / ct) * oh * (ow / tw);
                    let wg = k.workgroup[0] as usize;
                    assert_eq!(l.launches[0].grid[0] as usize * wg, threads, "{what}");
                    assert_eq!((oh * ow / tw) % wg, 0, "{what}: a workgroup shares a tile");
                }
                None => assert!(k.name.ends_with("gemm"), "{what}: {}", k.name),
            }
        }
    }

    #[test]
    fn depthwise_kernels_match_the_reference() {
        use crate::lower::sim::{assert_close, rand_t, run_op};
        let dw = |k: usize, s: usize, p: usize, d: usize, group: usize| {
            Op::Conv(ConvAttrs {
                window: Window {
                    kernel_shape: vec![k, k],
                    strides: vec![s, s],
                    dilations: vec![d, d],
                    pads: vec![p; 4],
                    auto_pad: AutoPad::NotSet,
                },
                group,
                layout: Default::default(),
            })
        };
        // (x, channel multiplier, k, stride, pad, dilation): vec4 rows at stride 1 (8-wide
        // tiles) and 2, 5×5, dilation, odd output heights, a channel multiplier; and the
        // scalar kernel for rows not a multiple of 4.
        for (x, mult, k, st, p, d) in [
            ([1usize, 3, 8, 8], 1usize, 3usize, 1usize, 1usize, 1usize),
            ([2, 4, 9, 16], 1, 3, 2, 1, 1),
            ([1, 2, 7, 12], 2, 5, 1, 2, 1),
            ([1, 3, 10, 12], 1, 3, 1, 2, 2),
            ([1, 2, 5, 4], 1, 3, 1, 1, 1),
            ([1, 3, 7, 7], 1, 3, 1, 1, 1),
        ] {
            let c = x[1];
            let w = rand_t(&[c * mult, 1, k, k], 2);
            let bias = rand_t(&[c * mult], 3);
            let op = dw(k, st, p, d, c);
            let (got, want) = run_op(&op, &[Some(rand_t(&x, 1)), Some(w), Some(bias)], &[]);
            assert_close(
                &got[0],
                &want[0],
                &format!("{x:?} k{k} s{st} p{p} d{d} ×{mult}"),
            );
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn channels_last_convs_match_the_reference() {
        use crate::lower::sim::{assert_close, rand_t, run_op};
        let lay = |input_last, output_last| ConvLayout {
            input_last,
            output_last,
            weight_last: false,
        };
        let all = |input_last, output_last| ConvLayout {
            input_last,
            output_last,
            weight_last: true,
        };
        // (channels-first x, weight, group, stride, pad): pointwise (rows = channels or
        // pixels), implicit GEMM (3×3 stride 2, 3 input channels), grouped, depthwise with 8
        // channels (the vec4 channels-last kernel: stride 1 and 2; planes its tiles fit exactly
        // and, 17 × 19 at stride 1 and 21 × 19 at stride 2, planes they do not: 6 × 10 and
        // 6 × 5 tiles with tails) and with 6 (the scalar one).
        let cases: [([usize; 4], [usize; 4], usize, usize, usize); 12] = [
            ([1, 8, 7, 7], [12, 8, 1, 1], 1, 1, 0),
            ([2, 3, 9, 8], [8, 3, 3, 3], 1, 2, 1),
            // Tap-major K over 8 channels: the vec4 im2col loads (stride 1 and 2; a strided
            // 1×1 conv, whose one tap makes any K order tap-major).
            ([1, 8, 6, 7], [12, 8, 3, 3], 1, 1, 1),
            ([1, 8, 9, 8], [12, 8, 1, 1], 1, 2, 0),
            ([2, 16, 9, 8], [8, 8, 3, 3], 2, 2, 1),
            ([1, 8, 5, 6], [4, 4, 3, 3], 2, 1, 1),
            ([1, 8, 7, 7], [8, 1, 3, 3], 8, 1, 1),
            ([2, 8, 9, 10], [8, 1, 3, 3], 8, 2, 1),
            ([1, 8, 6, 5], [8, 1, 5, 5], 8, 1, 2),
            ([1, 8, 17, 19], [8, 1, 3, 3], 8, 1, 1),
            ([1, 8, 21, 19], [8, 1, 3, 3], 8, 2, 1),
            ([1, 6, 7, 5], [6, 1, 3, 3], 6, 1, 1),
        ];
        for (xs, ws, group, st, p) in cases {
            for layout in [
                lay(true, false),
                lay(false, true),
                lay(true, true),
                all(true, true),
                all(false, false),
                all(true, false),
            ] {
                let op = Op::Conv(ConvAttrs {
                    window: Window {
                        kernel_shape: ws[2..].to_vec(),
                        strides: vec![st, st],
                        dilations: vec![],
                        pads: vec![p; 4],
                        auto_pad: AutoPad::NotSet,
                    },
                    group,
                    layout,
                });
                let xshape = if layout.input_last {
                    vec![xs[0], xs[2], xs[3], xs[1]]
                } else {
                    xs.to_vec()
                };
                let wshape = if layout.weight_last {
                    vec![ws[0], ws[2], ws[3], ws[1]]
                } else {
                    ws.to_vec()
                };
                let ins = [
                    Some(rand_t(&xshape, 1)),
                    Some(rand_t(&wshape, 2)),
                    Some(rand_t(&[ws[0]], 3)),
                ];
                let (got, want) = run_op(&op, &ins, &[]);
                assert_close(&got[0], &want[0], &format!("{xs:?} {ws:?} {layout:?}"));
            }
        }
        // The channels-last depthwise kernel: vec4 input, weights loaded per tap.
        let mut op = conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 16);
        if let Op::Conv(a) = &mut op {
            a.layout = lay(true, true);
        }
        let l = lower_op(op, &[&[1, 14, 14, 16], &[16, 1, 3, 3]], &[1, 14, 14, 16]);
        let k = &l.launches[0].kernel;
        assert!(k.name.ends_with("dwconv"));
        assert_eq!(k.buffers[0].elem, Type::vec(Scalar::F32, 4));
        // 7 × 14 output tiles: 2 per 14² plane (stride 1), times 4 channel quads: 8 threads,
        // one workgroup of 8.
        assert_eq!((l.launches[0].grid[0], k.workgroup[0]), (1, 8));
        // Channels-last input, tap-major weight, 8 channels: the im2col side loads vec4s.
        let mut op = conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 1);
        if let Op::Conv(a) = &mut op {
            a.layout = all(true, true);
        }
        let l = lower_op(op, &[&[1, 6, 6, 8], &[16, 3, 3, 8]], &[1, 6, 6, 16]);
        let k = &l.launches[0].kernel;
        assert!(k.name.ends_with("gemm"));
        assert_eq!(k.buffers[0].elem, Type::vec(Scalar::F32, 4));
    }

    #[test]
    fn same_padding_and_transpose_geometry() {
        let op = Op::Conv(ConvAttrs {
            window: Window {
                auto_pad: AutoPad::SameLower,
                strides: vec![2],
                ..Window::default()
            },
            group: 1,
            layout: Default::default(),
        });
        let ins = vec![
            Some(TensorDesc::new(DType::F32, vec![1, 2, 7])),
            Some(TensorDesc::new(DType::F32, vec![3, 2, 4])),
        ];
        let outs = vec![Some(TensorDesc::new(DType::F32, vec![1, 3, 4]))];
        let values = vec![None; 2];
        let ctx = LowerCtx {
            op: &op,
            name: "n0",
            inputs: &ins,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        let Op::Conv(a) = &op else { unreachable!() };
        let g = conv_geom(&ctx, a, &[1, 2, 7], &[3, 2, 4], &[1, 3, 4], false).unwrap();
        // need = (4-1)*2 + 4 - 7 = 3; SAME_LOWER puts the extra one at the beginning.
        assert_eq!(g.pad, [0, 0, 2]);
        assert_eq!(g.output, [1, 1, 4]);
    }
}
