//! Data-movement templates: Transpose, Slice, Expand, Tile, DepthToSpace, SpaceToDepth (strided
//! copies), Concat and Split (segmented copies), Pad, Trilu, ReverseSequence, CenterCropPad,
//! Compress (per-output gathers), and the fills ConstantOfShape, EyeLike and Range.
//!
//! Three kernel shapes cover them, all with one invocation per output element (or per vector of
//! four elements):
//! - [`copy_kernel`]: an *affine* copy over a domain, where the source and destination offsets
//!   are `base + Σ coord·stride` (strides may be 0 for broadcasts or negative for reversed
//!   slices). Domain dims that are contiguous in both views are merged first, so a Transpose of
//!   the two inner dims of a 4-D tensor runs as a 3-D copy, and a Slice of the outer dim as a
//!   flat 2-D copy.
//! - [`segmented_kernel`]: Concat/Split, a `[outer, columns]` copy where column ranges belong to
//!   different buffers (≤ [`MAX_SEGMENTS`] per kernel, more kernels beyond).
//! - [`map_kernel`]: anything else — the body gets the output coordinates and returns the value.
//!
//! Values are copied in their storage form (no conversion), so every dtype moves the same way.
//!
//! Tuning space ([`Tuning`]): workgroup size (64, 128, 256; default 256), items per invocation of
//! an affine copy (1, 2, 4, 8; default 4: 10–30% faster than 1 on lavapipe) and vector width of the
//! innermost contiguous copy (1 or 4; default 4 when the inner size, bases and strides are
//! multiples of 4 — each vec4 copy is one load instead of four, which is what lavapipe counts).

use super::common::{flat_index, grid_1d, guard, strides, unravel};
use super::{Arg, KernelLaunch, LowerCtx, LowerError, Lowered, TensorDesc, storage_scalar};
use crate::builder::{KernelBuilder, i, lit, select};
use crate::ir::{Access, Expr, Scalar, Type};
use optc_ir::dtype::DType;
use optc_ir::ops::{Op, PadMode};

/// Most buffers of one segment (Concat inputs / Split outputs) per kernel; with the single
/// other buffer that keeps kernels within WebGPU's portable 8 storage bindings.
pub const MAX_SEGMENTS: usize = 7;

/// The tuning knobs of the movement kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Threads per workgroup.
    pub workgroup: u32,
    /// Copy four contiguous elements per invocation where the layout allows.
    pub vector: bool,
    /// Items (scalars or vec4s) each invocation of an affine copy moves (1, 2, 4, 8).
    pub per_thread: u32,
}

/// The default tuning.
pub const DEFAULT: Tuning = Tuning {
    workgroup: 256,
    vector: true,
    per_thread: 4,
};

/// The storage scalar of `dtype` (callers have checked that it has one).
pub fn st(dtype: DType) -> Scalar {
    storage_scalar(dtype).unwrap_or(Scalar::F32)
}

/// An affine view of a buffer over a copy domain: element `coords` is at
/// `base + Σ coords[d]·strides[d]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Offset of the origin.
    pub base: i64,
    /// Stride per domain dim (may be 0 or negative).
    pub strides: Vec<i64>,
}

impl View {
    /// The row-major contiguous view of `shape`.
    pub fn contiguous(shape: &[usize]) -> View {
        View {
            base: 0,
            strides: strides(shape).into_iter().map(|s| s as i64).collect(),
        }
    }
}

/// `base + Σ c·s` as an i32 expression (zero terms skipped).
pub fn affine(coords: &[Expr], base: i64, strides: &[i64]) -> Expr {
    let mut acc: Option<Expr> = if base != 0 {
        Some(i(base as i32))
    } else {
        None
    };
    for (c, &s) in coords.iter().zip(strides) {
        if s == 0 || *c == i(0) {
            continue;
        }
        let term = if s == 1 {
            c.clone()
        } else {
            c.clone() * i(s as i32)
        };
        acc = Some(match acc {
            None => term,
            Some(a) => a + term,
        });
    }
    acc.unwrap_or(i(0))
}

/// Drops size-1 dims and merges neighbours that are contiguous in every view; returns the new
/// domain (the views are rewritten in place).
pub fn simplify(domain: &[usize], views: &mut [&mut View]) -> Vec<usize> {
    let mut dom: Vec<usize> = Vec::new();
    let mut keep: Vec<Vec<i64>> = vec![Vec::new(); views.len()];
    for (d, &n) in domain.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let mergeable = !dom.is_empty()
            && views.iter().enumerate().all(|(k, v)| {
                let last = *keep[k].last().unwrap_or(&0);
                last == v.strides[d] * n as i64
            });
        if mergeable {
            let l = dom.len() - 1;
            dom[l] *= n;
            for (k, v) in views.iter().enumerate() {
                let kl = keep[k].len() - 1;
                keep[k][kl] = v.strides[d];
            }
        } else {
            dom.push(n);
            for (k, v) in views.iter().enumerate() {
                keep[k].push(v.strides[d]);
            }
        }
    }
    for (v, s) in views.iter_mut().zip(keep) {
        v.strides = s;
    }
    dom
}

fn is_contiguous(dom: &[usize], v: &View) -> bool {
    v.base == 0 && View::contiguous(dom).strides == v.strides
}

/// The copy of input 0, read through `src`, into output 0 laid out contiguously over `domain`
/// (Transpose, Slice, Expand, DepthToSpace, SpaceToDepth).
fn read_into_output(
    name: String,
    dtype: DType,
    domain: &[usize],
    src: View,
    tune: Tuning,
) -> Lowered {
    lowered(copy_kernel(
        name,
        dtype,
        domain,
        (Arg::Input(0), src),
        (Arg::Output(0), View::contiguous(domain)),
        tune,
    ))
}

/// An affine copy `dst[dst_view(c)] = src[src_view(c)]` for every `c` in `domain`; `None` when
/// the domain is empty.
pub fn copy_kernel(
    name: String,
    dtype: DType,
    domain: &[usize],
    src: (Arg, View),
    dst: (Arg, View),
    tune: Tuning,
) -> Option<KernelLaunch> {
    if domain.contains(&0) {
        return None;
    }
    let (src_arg, mut sv) = src;
    let (dst_arg, mut dv) = dst;
    let mut dom = simplify(domain, &mut [&mut sv, &mut dv]);
    let r = dom.len();
    let lanes: u8 = if tune.vector
        && r > 0
        && dom[r - 1] % 4 == 0
        && sv.strides[r - 1] == 1
        && dv.strides[r - 1] == 1
        && sv.base % 4 == 0
        && dv.base % 4 == 0
        && sv.strides[..r - 1].iter().all(|s| s % 4 == 0)
        && dv.strides[..r - 1].iter().all(|s| s % 4 == 0)
    {
        4
    } else {
        1
    };
    if lanes == 4 {
        dom[r - 1] /= 4;
        for v in [&mut sv, &mut dv] {
            v.base /= 4;
            for s in &mut v.strides[..r - 1] {
                *s /= 4;
            }
        }
    }
    let n: usize = dom.iter().product();
    let wg = tune.workgroup;
    // Each invocation copies `per` items, `threads` apart (neighbouring lanes stay contiguous).
    let per = (tune.per_thread.max(1) as usize).min(n);
    let threads = n.div_ceil(per);
    let grid = grid_1d(threads, wg);
    let mut b = KernelBuilder::new(name, [wg, 1, 1]);
    let ty = Type::vec(st(dtype), lanes);
    let sb = b.buffer("src", ty, Access::Read);
    let db = b.buffer("dst", ty, Access::ReadWrite);
    let tid = flat_index(&mut b, grid, wg);
    guard(&mut b, &tid, threads);
    let (s_con, d_con) = (is_contiguous(&dom, &sv), is_contiguous(&dom, &dv));
    for e in 0..per {
        let item = if e == 0 {
            tid.clone()
        } else {
            b.let_(Type::I32, tid.clone() + i((e * threads) as i32))
        };
        let copy = |b: &mut KernelBuilder| {
            let coords = if s_con && d_con {
                Vec::new()
            } else {
                unravel(b, &item, &dom)
            };
            let so = if s_con {
                item.clone()
            } else {
                affine(&coords, sv.base, &sv.strides)
            };
            let d_off = if d_con {
                item.clone()
            } else {
                affine(&coords, dv.base, &dv.strides)
            };
            b.store(db, d_off, Expr::load(sb, so));
        };
        if (e + 1) * threads > n {
            b.if_(item.clone().lt(i(n as i32)), copy);
        } else {
            copy(&mut b);
        }
    }
    Some(KernelLaunch {
        kernel: b.finish(),
        args: vec![src_arg, dst_arg],
        grid,
    })
}

/// One column range of a segmented copy.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// The buffer of this segment (a Concat input or a Split output).
    pub arg: Arg,
    /// First column in the whole `[outer, total]` tensor.
    pub start: usize,
    /// Columns.
    pub width: usize,
}

/// Concat (`gather` true: segments are read, the whole is written) or Split (segments are
/// written) over a `[outer, total]` view: one kernel per chunk of ≤ [`MAX_SEGMENTS`] segments.
#[allow(clippy::too_many_arguments)]
pub fn segmented_kernel(
    name: &str,
    dtype: DType,
    outer: usize,
    total: usize,
    whole: Arg,
    segs: &[Segment],
    gather: bool,
    tune: Tuning,
) -> Vec<KernelLaunch> {
    let segs: Vec<Segment> = segs.iter().copied().filter(|s| s.width > 0).collect();
    let lanes: usize = if tune.vector && total % 4 == 0 && segs.iter().all(|s| s.width % 4 == 0) {
        4
    } else {
        1
    };
    let total = total / lanes;
    let chunks: Vec<&[Segment]> = segs.chunks(MAX_SEGMENTS).collect();
    let mut out = Vec::new();
    for (ci, chunk) in chunks.iter().enumerate() {
        let c0 = chunk[0].start / lanes;
        let cols: usize = chunk.iter().map(|s| s.width / lanes).sum();
        let n = outer * cols;
        if n == 0 {
            continue;
        }
        let wg = tune.workgroup;
        let grid = grid_1d(n, wg);
        let kname = if chunks.len() > 1 {
            format!("{name}_{ci}")
        } else {
            name.to_string()
        };
        let mut b = KernelBuilder::new(kname, [wg, 1, 1]);
        let ty = Type::vec(st(dtype), lanes as u8);
        let mut args = Vec::new();
        let wb = b.buffer(
            "whole",
            ty,
            if gather {
                Access::ReadWrite
            } else {
                Access::Read
            },
        );
        args.push(whole);
        let mut bufs = Vec::new();
        for (k, s) in chunk.iter().enumerate() {
            let acc = if gather {
                Access::Read
            } else {
                Access::ReadWrite
            };
            bufs.push(b.buffer(format!("seg{k}"), ty, acc));
            args.push(s.arg);
        }
        let idx = flat_index(&mut b, grid, wg);
        guard(&mut b, &idx, n);
        let (o, j) = if outer == 1 {
            (i(0), idx.clone())
        } else {
            (
                b.let_(Type::I32, idx.clone() / i(cols as i32)),
                b.let_(Type::I32, idx.clone() % i(cols as i32)),
            )
        };
        let whole_off = b.let_(
            Type::I32,
            affine(&[o.clone(), j.clone()], c0 as i64, &[total as i64, 1]),
        );
        // Column offsets of each segment relative to the chunk.
        let mut local = Vec::new();
        let mut at = 0usize;
        for s in chunk.iter() {
            local.push((at, s.width / lanes));
            at += s.width / lanes;
        }
        #[allow(clippy::too_many_arguments)]
        fn emit(
            b: &mut KernelBuilder,
            k: usize,
            local: &[(usize, usize)],
            bufs: &[u32],
            wb: u32,
            o: &Expr,
            j: &Expr,
            whole_off: &Expr,
            gather: bool,
        ) {
            let (start, width) = local[k];
            let seg_off = affine(&[o.clone(), j.clone()], -(start as i64), &[width as i64, 1]);
            let copy = |b: &mut KernelBuilder| {
                if gather {
                    b.store(wb, whole_off.clone(), Expr::load(bufs[k], seg_off.clone()));
                } else {
                    b.store(bufs[k], seg_off.clone(), Expr::load(wb, whole_off.clone()));
                }
            };
            if k + 1 == local.len() {
                copy(b);
            } else {
                b.if_else(j.clone().lt(i((start + width) as i32)), copy, |b| {
                    emit(b, k + 1, local, bufs, wb, o, j, whole_off, gather)
                });
            }
        }
        emit(&mut b, 0, &local, &bufs, wb, &o, &j, &whole_off, gather);
        out.push(KernelLaunch {
            kernel: b.finish(),
            args,
            grid,
        });
    }
    out
}

/// A per-output-element kernel: binds `inputs` (as scalars of the given types) then the output,
/// and stores `body(b, input buffers, output coords)` (a storage-typed value) at each element.
pub fn map_kernel(
    name: String,
    out: &TensorDesc,
    out_arg: Arg,
    inputs: &[(Arg, Scalar)],
    tune: Tuning,
    body: impl FnOnce(&mut KernelBuilder, &[u32], &[Expr]) -> Expr,
) -> Option<KernelLaunch> {
    let n = out.numel();
    if n == 0 {
        return None;
    }
    let wg = tune.workgroup;
    let grid = grid_1d(n, wg);
    let mut b = KernelBuilder::new(name, [wg, 1, 1]);
    let mut args = Vec::new();
    let mut bufs = Vec::new();
    for (k, (arg, s)) in inputs.iter().enumerate() {
        bufs.push(b.buffer(format!("in{k}"), Type::scalar(*s), Access::Read));
        args.push(*arg);
    }
    let ob = b.buffer("out", Type::scalar(st(out.dtype)), Access::ReadWrite);
    args.push(out_arg);
    let idx = flat_index(&mut b, grid, wg);
    guard(&mut b, &idx, n);
    let coords = unravel(&mut b, &idx, &out.shape);
    let v = body(&mut b, &bufs, &coords);
    b.store(ob, idx, v);
    Some(KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    })
}

fn lowered(launches: impl IntoIterator<Item = KernelLaunch>) -> Lowered {
    Lowered {
        launches: launches.into_iter().collect(),
        ..Lowered::default()
    }
}

/// Normalises an axis in `[-rank, rank)`.
pub fn norm_axis(ctx: &LowerCtx<'_>, axis: i64, rank: usize) -> Result<usize, LowerError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank.max(1) {
        return Err(ctx.invalid(format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

fn istrides(shape: &[usize]) -> Vec<i64> {
    View::contiguous(shape).strides
}

/// `(start, len)` of a clamped slice of a dim (the ONNX rules, as the reference interpreter).
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> (i64, usize) {
    let d = dim as i128;
    let (mut s, mut e, st) = (start as i128, end as i128, step as i128);
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    let len = if st > 0 {
        s = s.clamp(0, d);
        e = e.clamp(0, d);
        if e > s { (e - s + st - 1) / st } else { 0 }
    } else {
        s = s.max(0).min(d - 1);
        e = e.max(-1).min(d - 1);
        if s > e { (s - e - st - 1) / -st } else { 0 }
    };
    (s as i64, len as usize)
}

/// Checks that a tensor's offsets fit the i32 index arithmetic of kernels.
fn check_size(ctx: &LowerCtx<'_>, d: &TensorDesc) -> Result<(), LowerError> {
    if d.numel() > i32::MAX as usize / 2 {
        return Err(ctx.unsupported("with more than 2^30 elements"));
    }
    Ok(())
}

/// Lowers a data-movement op of this module.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_tuned(ctx, DEFAULT)
}

/// [`lower`] with explicit tuning.
pub fn lower_tuned(ctx: &LowerCtx<'_>, tune: Tuning) -> Result<Lowered, LowerError> {
    for d in ctx.inputs.iter().chain(ctx.outputs.iter()).flatten() {
        check_size(ctx, d)?;
    }
    let name = ctx.kname("");
    match ctx.op {
        Op::Transpose { perm } => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let r = x.shape.len();
            let perm: Vec<usize> = perm.clone().unwrap_or_else(|| (0..r).rev().collect());
            if perm.len() != r || perm.iter().any(|&p| p >= r) {
                return Err(ctx.invalid(format!("bad perm {perm:?} for rank {r}")));
            }
            let s = istrides(&x.shape);
            let sv = View {
                base: 0,
                strides: perm.iter().map(|&p| s[p]).collect(),
            };
            Ok(read_into_output(name, x.dtype, &out.shape, sv, tune))
        }
        Op::Slice => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let r = x.shape.len();
            let starts = ctx.const_ints(1, "starts")?;
            let ends = ctx.const_ints(2, "ends")?;
            let axes: Vec<i64> = match ctx.opt_input(3) {
                Some(_) => ctx.const_ints(3, "axes")?,
                None => (0..starts.len() as i64).collect(),
            };
            let steps: Vec<i64> = match ctx.opt_input(4) {
                Some(_) => ctx.const_ints(4, "steps")?,
                None => vec![1; starts.len()],
            };
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
                || steps.contains(&0)
            {
                return Err(ctx.invalid("inconsistent starts/ends/axes/steps"));
            }
            let s = istrides(&x.shape);
            let mut sv = View {
                base: 0,
                strides: s.clone(),
            };
            let mut shape = x.shape.clone();
            for k in 0..starts.len() {
                let a = norm_axis(ctx, axes[k], r)?;
                let (start, len) = slice_axis(x.shape[a], starts[k], ends[k], steps[k]);
                shape[a] = len;
                if len > 0 {
                    sv.base += start * s[a];
                }
                sv.strides[a] = if len > 1 { s[a] * steps[k] } else { 0 };
            }
            if shape != out.shape {
                return Err(ctx.invalid(format!(
                    "slice shape {shape:?} differs from the output {:?}",
                    out.shape
                )));
            }
            Ok(read_into_output(name, x.dtype, &out.shape, sv, tune))
        }
        Op::Expand => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let (r, k) = (out.shape.len(), x.shape.len());
            if k > r {
                return Err(ctx.invalid("input rank exceeds the output's"));
            }
            let s = istrides(&x.shape);
            let mut strides = vec![0i64; r];
            for j in 0..k {
                if x.shape[j] != 1 {
                    strides[r - k + j] = s[j];
                }
            }
            Ok(read_into_output(
                name,
                x.dtype,
                &out.shape,
                View { base: 0, strides },
                tune,
            ))
        }
        Op::Tile => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let r = x.shape.len();
            if out.shape.len() != r {
                return Err(ctx.invalid("rank mismatch"));
            }
            // Domain [reps_0, d_0, reps_1, d_1, ...]: the output is (rep * d + c) per axis.
            let (si, so) = (istrides(&x.shape), istrides(&out.shape));
            let mut dom = Vec::new();
            let mut sv = View {
                base: 0,
                strides: Vec::new(),
            };
            let mut dv = sv.clone();
            for a in 0..r {
                let d = x.shape[a];
                if d == 0 || out.shape[a] % d != 0 {
                    return Ok(lowered(None));
                }
                dom.extend([out.shape[a] / d, d]);
                sv.strides.extend([0, si[a]]);
                dv.strides.extend([d as i64 * so[a], so[a]]);
            }
            Ok(lowered(copy_kernel(
                name,
                x.dtype,
                &dom,
                (Arg::Input(0), sv),
                (Arg::Output(0), dv),
                tune,
            )))
        }
        Op::DepthToSpace { blocksize, crd } => {
            let x = ctx.input(0)?;
            ctx.output(0)?;
            let &[n, c, h, w] = x.shape.as_slice() else {
                return Err(ctx.invalid("input must be 4-D"));
            };
            let b = *blocksize;
            if b == 0 || c % (b * b) != 0 {
                return Err(ctx.invalid("channels not a multiple of blocksize²"));
            }
            let c2 = c / (b * b);
            let dom = [n, c2, h, b, w, b];
            let strides = if *crd {
                let s = istrides(&[n, c2, b, b, h, w]);
                vec![s[0], s[1], s[4], s[2], s[5], s[3]]
            } else {
                let s = istrides(&[n, b, b, c2, h, w]);
                vec![s[0], s[3], s[4], s[1], s[5], s[2]]
            };
            Ok(read_into_output(
                name,
                x.dtype,
                &dom,
                View { base: 0, strides },
                tune,
            ))
        }
        Op::SpaceToDepth { blocksize } => {
            let x = ctx.input(0)?;
            let &[n, c, h, w] = x.shape.as_slice() else {
                return Err(ctx.invalid("input must be 4-D"));
            };
            let b = *blocksize;
            if b == 0 || h % b != 0 || w % b != 0 {
                return Err(ctx.invalid("spatial dims not multiples of blocksize"));
            }
            let (h2, w2) = (h / b, w / b);
            let dom = [n, b, b, c, h2, w2];
            let s = istrides(&[n, c, h2, b, w2, b]);
            let strides = vec![s[0], s[3], s[5], s[1], s[2], s[4]];
            Ok(read_into_output(
                name,
                x.dtype,
                &dom,
                View { base: 0, strides },
                tune,
            ))
        }
        Op::Concat { axis } => {
            let out = ctx.output(0)?;
            let r = out.shape.len();
            let a = norm_axis(ctx, *axis, r)?;
            let outer: usize = out.shape[..a].iter().product();
            let inner: usize = out.shape[a + 1..].iter().product();
            let total = out.shape[a] * inner;
            let mut segs = Vec::new();
            let mut at = 0;
            for k in 0..ctx.inputs.len() {
                let x = ctx.input(k)?;
                if x.shape.len() != r {
                    // Concat of a 1-D empty tensor is legal in old models; it has no elements.
                    if x.numel() == 0 {
                        continue;
                    }
                    return Err(ctx.invalid("rank mismatch"));
                }
                let w = x.shape[a] * inner;
                segs.push(Segment {
                    arg: Arg::Input(k),
                    start: at,
                    width: w,
                });
                at += w;
            }
            if at != total {
                return Err(ctx.invalid("input sizes do not add up to the output"));
            }
            Ok(lowered(segmented_kernel(
                &name,
                out.dtype,
                outer,
                total,
                Arg::Output(0),
                &segs,
                true,
                tune,
            )))
        }
        Op::Split { axis, num_outputs } => {
            let x = ctx.input(0)?;
            let r = x.shape.len();
            let a = norm_axis(ctx, *axis, r)?;
            let outer: usize = x.shape[..a].iter().product();
            let inner: usize = x.shape[a + 1..].iter().product();
            let total = x.shape[a] * inner;
            // Chunk sizes: the `split` input, else equal chunks (a smaller last one) as in
            // opset 18; outputs that are present must agree with them.
            let dim = x.shape[a];
            let sizes: Vec<usize> = match ctx.value(1).filter(|t| t.numel() > 0) {
                Some(t) => t.to_i64_vec().iter().map(|&v| v.max(0) as usize).collect(),
                None => {
                    let n = num_outputs.unwrap_or(ctx.outputs.len()).max(1);
                    let c = dim.div_ceil(n);
                    (0..n).map(|k| c.min(dim.saturating_sub(k * c))).collect()
                }
            };
            let mut segs = Vec::new();
            let mut at = 0;
            for (k, &sz) in sizes.iter().enumerate() {
                let w = sz * inner;
                match ctx.outputs.get(k) {
                    Some(Some(o)) if o.shape.len() == r && o.shape[a] == sz => segs.push(Segment {
                        arg: Arg::Output(k),
                        start: at,
                        width: w,
                    }),
                    Some(Some(_)) => return Err(ctx.invalid("output shape differs from the split")),
                    _ => {}
                }
                at += w;
            }
            if segs.iter().any(|s| s.start + s.width > total) {
                return Err(ctx.invalid("output sizes exceed the input"));
            }
            Ok(lowered(segmented_kernel(
                &name,
                x.dtype,
                outer,
                total,
                Arg::Input(0),
                &segs,
                false,
                tune,
            )))
        }
        Op::Pad { mode } => lower_pad(ctx, *mode, tune),
        Op::Trilu { upper } => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let r = x.shape.len();
            if r < 2 {
                return Err(ctx.invalid("rank < 2"));
            }
            let s = st(x.dtype);
            let k_const = match ctx.opt_input(1) {
                None => Some(0),
                Some(_) => ctx
                    .value(1)
                    .map(|t| t.to_i64_vec().first().copied().unwrap_or(0)),
            };
            let upper = *upper;
            let mut inputs = vec![(Arg::Input(0), s)];
            if k_const.is_none() {
                inputs.push((Arg::Input(1), Scalar::I32));
            }
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &inputs,
                tune,
                |b, bufs, c| {
                    let k = match k_const {
                        Some(k) => i(k.clamp(-(1 << 30), 1 << 30) as i32),
                        None => b.let_(Type::I32, Expr::load(bufs[1], i(0))),
                    };
                    let diff = c[r - 1].clone() - c[r - 2].clone();
                    let keep = if upper { diff.ge(k) } else { diff.le(k) };
                    let off = affine(c, 0, &istrides(&out.shape));
                    select(keep, Expr::load(bufs[0], off), lit(s, 0.0))
                },
            )))
        }
        Op::ReverseSequence {
            batch_axis,
            time_axis,
        } => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let r = x.shape.len();
            let (ba, ta) = (
                norm_axis(ctx, *batch_axis, r)?,
                norm_axis(ctx, *time_axis, r)?,
            );
            if r < 2 || ba == ta {
                return Err(ctx.invalid("bad batch/time axes"));
            }
            let s = istrides(&x.shape);
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &[(Arg::Input(0), st(x.dtype)), (Arg::Input(1), Scalar::I32)],
                tune,
                |b, bufs, c| {
                    let len = b.let_(Type::I32, Expr::load(bufs[1], c[ba].clone()));
                    let t = c[ta].clone();
                    let src_t = select(t.clone().lt(len.clone()), len - i(1) - t.clone(), t);
                    let mut cs = c.to_vec();
                    cs[ta] = b.let_(Type::I32, src_t);
                    Expr::load(bufs[0], affine(&cs, 0, &s))
                },
            )))
        }
        Op::CenterCropPad { axes } => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let r = x.shape.len();
            if out.shape.len() != r {
                return Err(ctx.invalid("rank mismatch"));
            }
            let _ = axes;
            // The output shape already says which axes changed; the offsets follow from it.
            let offs: Vec<i64> = (0..r)
                .map(|a| {
                    let (d, w) = (x.shape[a] as i64, out.shape[a] as i64);
                    if w <= d { (d - w) / 2 } else { -((w - d) / 2) }
                })
                .collect();
            let s = istrides(&x.shape);
            let sc = st(x.dtype);
            let shape = x.shape.clone();
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &[(Arg::Input(0), sc)],
                tune,
                |b, bufs, c| {
                    let mut inside: Option<Expr> = None;
                    let mut cs = Vec::new();
                    for a in 0..r {
                        let ci = if offs[a] == 0 {
                            c[a].clone()
                        } else {
                            b.let_(Type::I32, c[a].clone() + i(offs[a] as i32))
                        };
                        if out.shape[a] > shape[a] {
                            let ok = ci.clone().ge(i(0)).and(ci.clone().lt(i(shape[a] as i32)));
                            inside = Some(match inside {
                                None => ok,
                                Some(p) => p.and(ok),
                            });
                        }
                        cs.push(ci);
                    }
                    finish_guarded(b, inside, &cs, &s, &shape, bufs[0], lit(sc, 0.0))
                },
            )))
        }
        Op::Compress { axis } => {
            let x = ctx.input(0)?;
            let out = ctx.output(0)?;
            let cond = ctx.input(1)?;
            let (outer, n, inner) = match axis {
                None => (1, x.numel(), 1),
                Some(a) => {
                    let a = norm_axis(ctx, *a, x.shape.len())?;
                    (
                        x.shape[..a].iter().product::<usize>(),
                        x.shape[a],
                        x.shape[a + 1..].iter().product::<usize>(),
                    )
                }
            };
            let m = cond.numel().min(n);
            let sel = out.numel().checked_div(outer * inner).unwrap_or(0);
            let flat = TensorDesc::new(out.dtype, vec![outer, sel, inner]);
            // Each output position `j` along the axis scans the condition for its j-th true
            // entry (the condition is usually short; its contents may also arrive at run time).
            Ok(lowered(map_kernel(
                name,
                &flat,
                Arg::Output(0),
                &[(Arg::Input(0), st(x.dtype)), (Arg::Input(1), Scalar::U32)],
                tune,
                |b, bufs, c| {
                    let cnt = b.var(Type::I32, i(0));
                    let src = b.var(Type::I32, i(0));
                    let j = c[1].clone();
                    b.for_(i(0), i(m as i32), 1, false, |b, k| {
                        b.if_(
                            Expr::load(bufs[1], k.clone()).ne_(crate::builder::u(0)),
                            |b| {
                                b.if_(Expr::Var(cnt).eq_(j.clone()), |b| {
                                    b.assign(src, k.clone());
                                    b.brk();
                                });
                                b.assign(cnt, Expr::Var(cnt) + i(1));
                            },
                        );
                    });
                    let off = affine(
                        &[c[0].clone(), Expr::Var(src), c[2].clone()],
                        0,
                        &[(n * inner) as i64, inner as i64, 1],
                    );
                    Expr::load(bufs[0], off)
                },
            )))
        }
        Op::ConstantOfShape { value } => {
            let out = ctx.output(0)?;
            let v = value.to_f64_vec().first().copied().unwrap_or(0.0);
            if value.dtype() == DType::I64 {
                let w = value.to_i64_vec().first().copied().unwrap_or(0);
                if i32::try_from(w).is_err() {
                    return Err(ctx.unsupported("with an int64 value outside the i32 range"));
                }
            }
            let s = st(out.dtype);
            let c = if out.dtype == DType::Bool {
                lit(s, if v != 0.0 { 1.0 } else { 0.0 })
            } else if s == Scalar::U32 || s == Scalar::I32 {
                lit(s, value.to_i64_vec().first().copied().unwrap_or(0) as f64)
            } else {
                lit(s, v)
            };
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &[],
                tune,
                |_, _, _| c,
            )))
        }
        Op::EyeLike { k, .. } => {
            let out = ctx.output(0)?;
            if out.shape.len() != 2 {
                return Err(ctx.invalid("EyeLike needs a 2-D output"));
            }
            let s = st(out.dtype);
            let k = (*k).clamp(-(1 << 30), 1 << 30) as i32;
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &[],
                tune,
                |_, _, c| {
                    let on = (c[1].clone() - c[0].clone()).eq_(i(k));
                    select(on, lit(s, 1.0), lit(s, 0.0))
                },
            )))
        }
        Op::Range => {
            let out = ctx.output(0)?;
            let s = st(out.dtype);
            let float = out.dtype.is_float();
            let known = (ctx.value(0), ctx.value(2));
            let mut inputs = Vec::new();
            if !matches!(known, (Some(_), Some(_))) {
                inputs = vec![(Arg::Input(0), s), (Arg::Input(2), s)];
            }
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &inputs,
                tune,
                |b, bufs, c| {
                    let idx = c.first().cloned().unwrap_or(i(0));
                    let (start, delta) = match known {
                        (Some(s0), Some(d0)) if float => (
                            Expr::F32(s0.to_f64_vec()[0] as f32),
                            Expr::F32(d0.to_f64_vec()[0] as f32),
                        ),
                        (Some(s0), Some(d0)) => (
                            lit(s, s0.to_i64_vec()[0] as f64),
                            lit(s, d0.to_i64_vec()[0] as f64),
                        ),
                        _ => {
                            let cs = if float { Scalar::F32 } else { s };
                            let mut ld = |k: usize| {
                                let e = Expr::load(bufs[k], i(0));
                                let e = if s == Scalar::F16 {
                                    e.cast(Scalar::F32)
                                } else {
                                    e
                                };
                                b.let_(Type::scalar(cs), e)
                            };
                            (ld(0), ld(1))
                        }
                    };
                    if float {
                        // start + i * delta
                        let v = idx.cast(Scalar::F32).fma(delta, start);
                        if s == Scalar::F16 {
                            v.cast(Scalar::F16)
                        } else {
                            v
                        }
                    } else {
                        start + idx.cast(s) * delta
                    }
                },
            )))
        }
        _ => Err(ctx.invalid("not a movement op")),
    }
}

/// Loads `buf[Σ cs·s]` where `inside` holds, `fallback` elsewhere (coordinates clamped so that
/// the load stays in bounds either way).
fn finish_guarded(
    _b: &mut KernelBuilder,
    inside: Option<Expr>,
    cs: &[Expr],
    s: &[i64],
    shape: &[usize],
    buf: u32,
    fallback: Expr,
) -> Expr {
    if shape.contains(&0) {
        return fallback;
    }
    match inside {
        None => Expr::load(buf, affine(cs, 0, s)),
        Some(ok) => {
            let clamped: Vec<Expr> = cs
                .iter()
                .zip(shape)
                .map(|(c, &d)| c.clone().max(i(0)).min(i(d as i32 - 1)))
                .collect();
            select(ok, Expr::load(buf, affine(&clamped, 0, s)), fallback)
        }
    }
}

fn lower_pad(ctx: &LowerCtx<'_>, mode: PadMode, tune: Tuning) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let r = x.shape.len();
    let pads = ctx.const_ints(1, "pads")?;
    let axes: Vec<usize> = match ctx.opt_input(3) {
        Some(_) => ctx
            .const_ints(3, "axes")?
            .iter()
            .map(|&a| norm_axis(ctx, a, r))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(ctx.invalid("pads length does not match the axes"));
    }
    let mut begin = vec![0i64; r];
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = pads[k];
    }
    if out.shape.len() != r {
        return Err(ctx.invalid("rank mismatch"));
    }
    if x.numel() == 0 && out.numel() > 0 && mode != PadMode::Constant {
        return Err(ctx.invalid("cannot pad an empty tensor in this mode"));
    }
    let sc = st(x.dtype);
    let has_const = mode == PadMode::Constant && ctx.opt_input(2).is_some_and(|c| c.numel() > 0);
    let mut inputs = vec![(Arg::Input(0), sc)];
    if has_const {
        inputs.push((Arg::Input(2), sc));
    }
    // Interior-only copies (no padding, only cropping) are affine: use the copy kernel.
    let crop_only = begin.iter().all(|&b| b <= 0)
        && (0..r).all(|a| out.shape[a] as i64 - begin[a] <= x.shape[a] as i64);
    let s = istrides(&x.shape);
    if crop_only {
        let base = (0..r).map(|a| -begin[a] * s[a]).sum();
        return Ok(lowered(copy_kernel(
            ctx.kname(""),
            x.dtype,
            &out.shape,
            (
                Arg::Input(0),
                View {
                    base,
                    strides: s.clone(),
                },
            ),
            (Arg::Output(0), View::contiguous(&out.shape)),
            tune,
        )));
    }
    let shape = x.shape.clone();
    Ok(lowered(map_kernel(
        ctx.kname(""),
        out,
        Arg::Output(0),
        &inputs,
        tune,
        |b, bufs, c| {
            let mut inside: Option<Expr> = None;
            let mut cs = Vec::new();
            for a in 0..r {
                let d = shape[a] as i32;
                let needs = begin[a] > 0 || out.shape[a] as i64 - begin[a] > shape[a] as i64;
                let ci = if begin[a] == 0 {
                    c[a].clone()
                } else {
                    b.let_(Type::I32, c[a].clone() - i(begin[a] as i32))
                };
                if !needs {
                    cs.push(ci);
                    continue;
                }
                let src = match mode {
                    PadMode::Constant => {
                        let ok = ci.clone().ge(i(0)).and(ci.clone().lt(i(d)));
                        inside = Some(match inside {
                            None => ok,
                            Some(p) => p.and(ok),
                        });
                        ci
                    }
                    PadMode::Edge => ci.max(i(0)).min(i(d - 1)),
                    PadMode::Wrap => {
                        let m = ci % i(d);
                        b.let_(Type::I32, select(m.clone().lt(i(0)), m.clone() + i(d), m))
                    }
                    PadMode::Reflect if d == 1 => i(0),
                    PadMode::Reflect => {
                        let p = 2 * (d - 1);
                        let m = b.let_(Type::I32, ci % i(p));
                        let m = b.let_(Type::I32, select(m.clone().lt(i(0)), m.clone() + i(p), m));
                        select(m.clone().ge(i(d)), i(p) - m.clone(), m)
                    }
                };
                cs.push(b.let_(Type::I32, src));
            }
            let fallback = if has_const {
                Expr::load(bufs[1], i(0))
            } else {
                lit(sc, 0.0)
            };
            finish_guarded(b, inside, &cs, &s, &shape, bufs[0], fallback)
        },
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::sim::{assert_close, run_op_n as run_op};
    use super::*;
    use optc_ir::dtype::Bool8;
    use optc_ir::tensor::Tensor;

    /// `0, 1, 2, ...` as an f32 tensor.
    pub fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape.to_vec(), (0..n).map(|v| v as f32).collect()).unwrap()
    }
    pub fn ints(v: &[i64]) -> Tensor {
        Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap()
    }
    /// Runs `op` on the sim and the reference; asserts every output matches.
    pub fn check(op: &Op, inputs: &[Option<Tensor>], consts: &[usize], outs: usize) {
        let (got, want) = run_op(op, inputs, consts, outs);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(g, w, &format!("{op:?} output {k}"));
        }
    }
    fn launches(op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Vec<KernelLaunch> {
        let ins: Vec<Option<TensorDesc>> = inputs.iter().cloned().map(Some).collect();
        let outs: Vec<Option<TensorDesc>> = outputs.iter().cloned().map(Some).collect();
        let ctx = LowerCtx {
            op,
            name: "n0",
            inputs: &ins,
            values: &vec![None; ins.len()],
            outputs: &outs,
            features: Default::default(),
        };
        super::super::lower(&ctx).unwrap().launches
    }

    #[test]
    fn transpose_matches_reference_and_vectorises_when_inner_dim_stays() {
        let x = iota(&[2, 3, 4, 8]);
        for perm in [vec![0, 2, 1, 3], vec![3, 1, 0, 2], vec![0, 1, 3, 2]] {
            check(
                &Op::Transpose { perm: Some(perm) },
                &[Some(x.clone())],
                &[],
                1,
            );
        }
        check(
            &Op::Transpose { perm: None },
            &[Some(iota(&[3, 5]))],
            &[],
            1,
        );
        // [B, S, H, D] -> [B, H, S, D] with D = 8: vec4 copies over 3 merged dims.
        let op = Op::Transpose {
            perm: Some(vec![0, 2, 1, 3]),
        };
        let l = launches(
            &op,
            &[TensorDesc::new(DType::F32, vec![2, 3, 4, 8])],
            &[TensorDesc::new(DType::F32, vec![2, 4, 3, 8])],
        );
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].kernel.buffers[0].elem, Type::vec(Scalar::F32, 4));
        assert_eq!(l[0].grid, [1, 1, 1]); // 48 vec4 per 256-thread group
        // Swapping the two inner dims cannot vectorise.
        let l = launches(
            &Op::Transpose {
                perm: Some(vec![0, 1, 3, 2]),
            },
            &[TensorDesc::new(DType::F16, vec![2, 3, 4, 8])],
            &[TensorDesc::new(DType::F16, vec![2, 3, 8, 4])],
        );
        assert_eq!(l[0].kernel.buffers[1].elem, Type::F16);
    }

    #[test]
    fn simplify_merges_contiguous_dims() {
        let mut a = View::contiguous(&[2, 3, 4]);
        let mut b = View {
            base: 0,
            strides: vec![12, 4, 1],
        };
        assert_eq!(simplify(&[2, 3, 4], &mut [&mut a, &mut b]), vec![24]);
        assert_eq!(a.strides, vec![1]);
        let mut t = View {
            base: 0,
            strides: vec![4, 8, 1],
        };
        let mut c = View::contiguous(&[2, 3, 1, 4]);
        let mut t4 = View {
            base: 0,
            strides: vec![t.strides[0], t.strides[1], 99, 1],
        };
        assert_eq!(
            simplify(&[2, 3, 1, 4], &mut [&mut t4, &mut c]),
            vec![2, 3, 4]
        );
        t.base = 1;
        assert_eq!(t4.strides, vec![4, 8, 1]);
    }

    /// Slice inputs: starts, ends, axes, steps.
    type SliceCase = (Vec<i64>, Vec<i64>, Option<Vec<i64>>, Option<Vec<i64>>);

    #[test]
    fn slice_with_negative_steps_clamping_and_axes() {
        let x = iota(&[4, 5, 6]);
        let cases: Vec<SliceCase> = vec![
            (vec![1, 0], vec![3, 1000], None, None),
            (vec![-1], vec![-1000], Some(vec![2]), Some(vec![-1])),
            (vec![4, 1], vec![0, 5], Some(vec![1, 0]), Some(vec![-2, 2])),
            (vec![0], vec![8], Some(vec![-1]), Some(vec![4])),
            (vec![2], vec![2], Some(vec![0]), None),
        ];
        for (s, e, a, st) in cases {
            let mut ins = vec![Some(x.clone()), Some(ints(&s)), Some(ints(&e))];
            ins.push(a.as_deref().map(ints));
            ins.push(st.as_deref().map(ints));
            check(&Op::Slice, &ins, &[1, 2, 3, 4], 1);
        }
    }

    #[test]
    fn expand_tile_and_depth_space() {
        let x = iota(&[3, 1]);
        check(
            &Op::Expand,
            &[Some(x.clone()), Some(ints(&[2, 3, 4]))],
            &[1],
            1,
        );
        check(
            &Op::Tile,
            &[Some(iota(&[2, 3])), Some(ints(&[2, 2]))],
            &[1],
            1,
        );
        let x = iota(&[1, 8, 2, 3]);
        for crd in [false, true] {
            check(
                &Op::DepthToSpace { blocksize: 2, crd },
                &[Some(x.clone())],
                &[],
                1,
            );
        }
        check(
            &Op::SpaceToDepth { blocksize: 2 },
            &[Some(iota(&[2, 2, 4, 6]))],
            &[],
            1,
        );
    }

    #[test]
    fn concat_many_inputs_splits_kernels_and_split_writes_all_outputs() {
        let xs: Vec<Option<Tensor>> = (0..9).map(|k| Some(iota(&[2, 1 + k % 3, 4]))).collect();
        check(&Op::Concat { axis: 1 }, &xs, &[], 1);
        check(
            &Op::Concat { axis: -1 },
            &[Some(iota(&[2, 3])), Some(iota(&[2, 1]))],
            &[],
            1,
        );
        let descs: Vec<TensorDesc> = (0..9)
            .map(|k| TensorDesc::new(DType::F32, vec![2, 1 + k % 3, 4]))
            .collect();
        let l = launches(
            &Op::Concat { axis: 1 },
            &descs,
            &[TensorDesc::new(DType::F32, vec![2, 18, 4])],
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].args.len(), 8);
        assert_eq!(
            l[1].args,
            vec![Arg::Output(0), Arg::Input(7), Arg::Input(8)]
        );
        assert_eq!(l[0].kernel.buffers[0].elem.lanes, 4);
        let split = Op::Split {
            axis: 1,
            num_outputs: None,
        };
        check(
            &split,
            &[Some(iota(&[2, 6, 3])), Some(ints(&[1, 3, 2]))],
            &[1],
            3,
        );
        check(&split, &[Some(iota(&[2, 6, 3])), None], &[], 2);
    }

    #[test]
    fn pad_every_mode_with_crops_and_axes() {
        let x = iota(&[3, 4]);
        for mode in [
            PadMode::Constant,
            PadMode::Reflect,
            PadMode::Edge,
            PadMode::Wrap,
        ] {
            check(
                &Op::Pad { mode },
                &[Some(x.clone()), Some(ints(&[2, 3, 1, 2]))],
                &[1],
                1,
            );
            check(
                &Op::Pad { mode },
                &[Some(x.clone()), Some(ints(&[-1, 2, 1, -2]))],
                &[1],
                1,
            );
        }
        let c = Tensor::from_vec(vec![], vec![1.5f32]).unwrap();
        check(
            &Op::Pad {
                mode: PadMode::Constant,
            },
            &[
                Some(x.clone()),
                Some(ints(&[1, 2])),
                Some(c),
                Some(ints(&[-1])),
            ],
            &[1, 3],
            1,
        );
        check(
            &Op::Pad {
                mode: PadMode::Constant,
            },
            &[Some(x), Some(ints(&[-1, 0, 0, -1]))],
            &[1],
            1,
        );
    }

    #[test]
    fn trilu_reverse_sequence_center_crop_pad_compress() {
        let x = iota(&[2, 3, 4]);
        for upper in [true, false] {
            for k in [-1i64, 0, 2] {
                let kt = Tensor::scalar(k);
                check(
                    &Op::Trilu { upper },
                    &[Some(x.clone()), Some(kt.clone())],
                    &[1],
                    1,
                );
                check(&Op::Trilu { upper }, &[Some(x.clone()), Some(kt)], &[], 1);
            }
        }
        let rs = Op::ReverseSequence {
            batch_axis: 1,
            time_axis: 0,
        };
        check(
            &rs,
            &[Some(iota(&[4, 3, 2])), Some(ints(&[4, 2, 1]))],
            &[],
            1,
        );
        let ccp = Op::CenterCropPad { axes: vec![] };
        check(&ccp, &[Some(iota(&[5, 4])), Some(ints(&[2, 7]))], &[1], 1);
        let cond = Tensor::from_vec(vec![4], vec![Bool8(0), Bool8(1), Bool8(1), Bool8(0)]).unwrap();
        check(
            &Op::Compress { axis: Some(1) },
            &[Some(iota(&[2, 5])), Some(cond.clone())],
            &[1],
            1,
        );
        check(
            &Op::Compress { axis: None },
            &[Some(iota(&[2, 5])), Some(cond)],
            &[1],
            1,
        );
    }

    #[test]
    fn fills() {
        let op = Op::ConstantOfShape {
            value: Tensor::from_vec(vec![1], vec![7i64]).unwrap(),
        };
        check(&op, &[Some(ints(&[2, 3]))], &[0], 1);
        check(
            &Op::EyeLike {
                dtype: Some(DType::F32),
                k: 1,
            },
            &[Some(iota(&[3, 4]))],
            &[],
            1,
        );
        let s = |v: f32| Some(Tensor::scalar(v));
        check(&Op::Range, &[s(1.0), s(3.0), s(0.25)], &[0, 1, 2], 1);
        check(&Op::Range, &[s(1.0), s(3.0), s(0.25)], &[], 1);
        let si = |v: i32| Some(Tensor::scalar(v));
        check(&Op::Range, &[si(10), si(1), si(-3)], &[], 1);
    }
}
