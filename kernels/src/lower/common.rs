//! Helpers shared by the templates: launch grids for flat index spaces, index arithmetic
//! (unravelling a flat index into coordinates, broadcast offsets from coordinates or straight
//! from a flat index) and the conversions between a tensor's device storage and the type kernels
//! compute in.

use super::{compute_scalar, storage_scalar};
use crate::builder::{KernelBuilder, i, select, u};
use crate::ir::{BinOp, Builtin, Expr, Scalar, Type};
use optc_ir::dtype::DType;
use optc_ir::lowp::{E8m0Round, is_lowp_int};

/// Largest number of workgroups along one grid axis that every device accepts.
pub const MAX_GRID: u32 = 65535;

/// How many workgroups a launch should have at least, where its threads allow it (down to one
/// 8-thread subgroup per workgroup). lavapipe runs each workgroup as one task on one core, so
/// a launch of few workgroups leaves cores idle: 3 equal workgroups on 2 cores take as long as
/// 4 (mobilenet_v2's 3-workgroup GEMM got 20% faster as 21 workgroups).
pub const MIN_WORKGROUPS: usize = 16;

/// The workgroup size for `threads` independent threads: `max`, or less (a multiple of 8, at
/// least 8) where `max` would make fewer than [`MIN_WORKGROUPS`] workgroups.
pub fn spread_workgroup(threads: usize, max: u32) -> u32 {
    let want = threads.div_ceil(MIN_WORKGROUPS).next_multiple_of(8).max(8);
    (want as u32).min(max)
}

/// The grid that covers `threads` invocations with workgroups of `wg` threads: x up to
/// [`MAX_GRID`], the rest along y.
pub fn grid_1d(threads: usize, wg: u32) -> [u32; 3] {
    let groups = threads.div_ceil(wg as usize).max(1);
    if groups <= MAX_GRID as usize {
        [groups as u32, 1, 1]
    } else {
        [MAX_GRID, groups.div_ceil(MAX_GRID as usize) as u32, 1]
    }
}

/// The flat invocation index of a 1-D launch made with [`grid_1d`] (as i32), declared as a local.
pub fn flat_index(b: &mut KernelBuilder, grid: [u32; 3], wg: u32) -> Expr {
    let wid = if grid[1] > 1 {
        Expr::Builtin(Builtin::WorkgroupId(1)) * u(grid[0]) + Expr::Builtin(Builtin::WorkgroupId(0))
    } else {
        Expr::Builtin(Builtin::WorkgroupId(0))
    };
    let flat = wid * u(wg) + Expr::Builtin(Builtin::LocalIndex);
    b.let_(Type::I32, flat.cast(Scalar::I32))
}

/// Returns early from invocations whose flat index is `>= n`.
pub fn guard(b: &mut KernelBuilder, idx: &Expr, n: usize) {
    b.if_(idx.clone().ge(i(n as i32)), |b| b.ret());
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The coordinates of flat index `idx` in `shape` (row-major), as i32 locals. Dims of size 1
/// give the literal 0.
pub fn unravel(b: &mut KernelBuilder, idx: &Expr, shape: &[usize]) -> Vec<Expr> {
    let st = strides(shape);
    let mut out = Vec::with_capacity(shape.len());
    for (d, &n) in shape.iter().enumerate() {
        if n == 1 {
            out.push(i(0));
            continue;
        }
        let mut e = idx.clone();
        if st[d] != 1 {
            e = e / i(st[d] as i32);
        }
        if d > 0 {
            e = e % i(n as i32);
        }
        out.push(b.let_(Type::I32, e));
    }
    out
}

/// `sum(coord[d] * stride[d])`, skipping zero terms.
pub fn dot_strides(coords: &[Expr], strides: &[usize]) -> Expr {
    let mut acc: Option<Expr> = None;
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

/// The flat offset into an input of shape `in_shape` broadcast (numpy rules) to the output
/// coordinates `coords` of shape `out_shape`.
pub fn broadcast_offset(coords: &[Expr], out_shape: &[usize], in_shape: &[usize]) -> Expr {
    let r = out_shape.len();
    let k = in_shape.len();
    let st = strides(in_shape);
    let mut cs = Vec::new();
    let mut ss = Vec::new();
    for j in 0..k {
        let d = r - k + j;
        if in_shape[j] != 1 {
            cs.push(coords[d].clone());
            ss.push(st[j]);
        }
    }
    dot_strides(&cs, &ss)
}

/// True when `in_shape` broadcasts (numpy rules) to `out_shape` without enlarging it: no more
/// dims, and each dim equal to the output's or 1.
pub fn broadcasts_to(in_shape: &[usize], out_shape: &[usize]) -> bool {
    in_shape.len() <= out_shape.len()
        && in_shape
            .iter()
            .rev()
            .zip(out_shape.iter().rev())
            .all(|(&a, &o)| a == o || a == 1)
}

/// The runs of an input of `in_shape` broadcast to `out_shape` (which it must
/// [broadcast to](broadcasts_to)): maximal groups of consecutive output dims of size > 1 along
/// which the input is not broadcast, as `(output stride of the run's last dim, product of the
/// output dims before the run, product of the run's dims, input stride of the run's last dim)`.
/// Dims of output size 1 belong to no run and split none.
fn runs(out_shape: &[usize], in_shape: &[usize]) -> Vec<(usize, usize, usize, usize)> {
    let r = out_shape.len();
    let mut aligned = vec![1; r - in_shape.len().min(r)];
    aligned.extend(in_shape.iter().copied());
    let ost = strides(out_shape);
    let ist = strides(&aligned);
    let mut out = Vec::new();
    // (first dim, last dim) of the open run.
    let mut open: Option<(usize, usize)> = None;
    let close = |run: (usize, usize), out: &mut Vec<(usize, usize, usize, usize)>| {
        let (d0, d1) = run;
        let before: usize = out_shape[..d0].iter().product();
        let span: usize = out_shape[d0..=d1].iter().product();
        out.push((ost[d1], before, span, ist[d1]));
    };
    for d in 0..r {
        if out_shape[d] == 1 {
            continue;
        }
        if aligned[d] == out_shape[d] {
            open = Some(match open {
                Some((d0, _)) => (d0, d),
                None => (d, d),
            });
        } else if let Some(run) = open.take() {
            close(run, &mut out);
        }
    }
    if let Some(run) = open {
        close(run, &mut out);
    }
    out
}

/// The flat offset into an input of shape `in_shape` broadcast (numpy rules) to the element of
/// flat index `flat` of an output of shape `out_shape`, computed from the flat index with one
/// division and one remainder per run of non-broadcast dims (see [`broadcasts_to`], which the
/// shapes must satisfy): the same shape gives `flat` itself, a per-channel `[C, 1, 1]` operand
/// of an `[N, C, H, W]` output `(flat / (H·W)) % C`, a scalar 0.
pub fn broadcast_flat_offset(flat: &Expr, out_shape: &[usize], in_shape: &[usize]) -> Expr {
    let mut acc: Option<Expr> = None;
    for (ostride, before, span, istride) in runs(out_shape, in_shape) {
        let mut e = flat.clone();
        if ostride != 1 {
            e = e / i(ostride as i32);
        }
        if before != 1 {
            e = e % i(span as i32);
        }
        if istride != 1 {
            e = e * i(istride as i32);
        }
        acc = Some(match acc {
            None => e,
            Some(a) => a + e,
        });
    }
    acc.unwrap_or(i(0))
}

/// True when the broadcast offset ([`broadcast_flat_offset`]) is the same for the `w` flat
/// indices `w·q .. w·q + w` (the lanes of an aligned vector store).
pub fn lane_invariant(out_shape: &[usize], in_shape: &[usize], w: usize) -> bool {
    runs(out_shape, in_shape)
        .iter()
        .all(|&(ostride, _, _, _)| ostride % w == 0)
}

/// Converts a value loaded from a buffer of `dtype` to the scalar kernels compute in.
pub fn from_storage(e: Expr, dtype: DType) -> Expr {
    match dtype {
        DType::F16 => e.cast(Scalar::F32),
        DType::Bool => e.ne_(u(0)),
        d if d.is_lowp() => super::lowp::decode(e, d),
        _ => e,
    }
}

/// A quiet NaN (WGSL has no NaN literal; a bitcast at run time).
pub fn f32_nan() -> Expr {
    Expr::Bitcast(Scalar::F32, Box::new(u(0x7fc0_0000)))
}

/// +infinity (WGSL has no infinity literal; a bitcast at run time).
pub fn f32_inf() -> Expr {
    Expr::Bitcast(Scalar::F32, Box::new(u(0x7f80_0000)))
}

/// Loads element `offset` of buffer `buf` holding `dtype`, converted to the compute scalar.
pub fn load(buf: u32, offset: Expr, dtype: DType) -> Expr {
    from_storage(Expr::load(buf, offset), dtype)
}

/// Wraps an integer computed in 32 bits to the range of a narrower dtype (two's complement).
pub fn wrap_int(e: Expr, dtype: DType) -> Expr {
    match dtype {
        DType::U8 => e.and(u(0xff)),
        DType::U16 => e.and(u(0xffff)),
        DType::I8 => e.bin(BinOp::Shl, u(24)).bin(BinOp::Shr, u(24)),
        DType::I16 => e.bin(BinOp::Shl, u(16)).bin(BinOp::Shr, u(16)),
        DType::U4 => e.and(u(0xf)),
        DType::U2 => e.and(u(0x3)),
        DType::I4 => e.bin(BinOp::Shl, u(28)).bin(BinOp::Shr, u(28)),
        DType::I2 => e.bin(BinOp::Shl, u(30)).bin(BinOp::Shr, u(30)),
        _ => e,
    }
}

/// Converts a computed value of `dtype` to its storage form (f16 narrowing, bool as 0/1, narrow
/// integers wrapped).
pub fn to_storage(e: Expr, dtype: DType) -> Expr {
    match dtype {
        DType::F16 => e.cast(Scalar::F16),
        DType::Bool => select(e, u(1), u(0)),
        DType::U8 | DType::U16 | DType::I8 | DType::I16 => wrap_int(e, dtype),
        d if d.is_lowp() => super::lowp::encode(e, d),
        _ => e,
    }
}

/// Converts a computed value of dtype `from` to dtype `to` (ONNX Cast semantics: float → int
/// truncates toward zero, out-of-range saturates on WGSL; int → narrower int wraps; number →
/// bool is `!= 0`; into a float8 format, saturating).
pub fn convert(e: Expr, from: DType, to: DType) -> Expr {
    convert_ext(e, from, to, true, E8m0Round::Up)
}

/// [`convert`] with Cast's `saturate` and `round_mode` (float8 and FLOAT8E8M0 targets).
pub fn convert_ext(e: Expr, from: DType, to: DType, saturate: bool, mode: E8m0Round) -> Expr {
    let (Some(fs), Some(ts)) = (compute_scalar(from), compute_scalar(to)) else {
        return e;
    };
    if from == to {
        return e;
    }
    let e = match (fs, ts) {
        (a, b) if a == b => e,
        (_, Scalar::Bool) => match fs {
            Scalar::F32 => e.ne_(Expr::F32(0.0)),
            Scalar::I32 => e.ne_(i(0)),
            _ => e.ne_(u(0)),
        },
        (Scalar::Bool, s) => select(e, crate::builder::lit(s, 1.0), crate::builder::lit(s, 0.0)),
        (Scalar::F32, Scalar::U32)
            if matches!(to, DType::U8 | DType::U16 | DType::U4 | DType::U2) =>
        {
            // Through i32 so that negative floats wrap like numpy's casts instead of clamping.
            e.cast(Scalar::I32).cast(Scalar::U32)
        }
        (_, s) => e.cast(s),
    };
    let e = if to == DType::F16 && from != DType::F16 {
        // Round through f16 so that the computed value equals the stored one.
        e.cast(Scalar::F16).cast(Scalar::F32)
    } else {
        e
    };
    if to.is_int() || is_lowp_int(to) {
        wrap_int(e, to)
    } else if to.is_lowp() {
        super::lowp::round(e, to, saturate, mode)
    } else {
        e
    }
}

/// True when `dtype` is stored on the device in a type that can hold every value exactly.
pub fn exact_storage(dtype: DType) -> bool {
    storage_scalar(dtype).is_some() && !matches!(dtype, DType::I64)
}
