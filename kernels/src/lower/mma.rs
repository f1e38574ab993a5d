//! MatMul on tensor cores (PTX targets): f16 with `mma.sync.aligned.m16n8k16`, and — only when
//! the user allows it (`--allow-tf32`) — f32 with `mma.sync.aligned.m16n8k8` on tf32 (operands
//! rounded to 10 mantissa bits, ~1e-3 relative error), both accumulating in f32.
//!
//! Chosen by the compile driver for PTX targets only ([`lower_matmul`] returns `None` where the
//! form does not fit, and the portable GEMM template runs instead): `A [.., M, K]` ×
//! `B [.., K, N]`, all three f16 (or all f32 with tf32 allowed), A's batch dims equal to the
//! output's, B either 2-D (a weight) or with the output's batch dims, no fused epilogue.
//!
//! Tiling: a block of 4 warps computes a 32 × 64 output tile; warp `w` owns rows
//! `16·(w / 2)..+16` and columns `32·(w % 2)..+32` as four m16n8 accumulators (16 f32 registers
//! per lane). The K loop steps by 16 (f16) or 8 (tf32); each step loads the lane's A fragment
//! and the four B fragments straight from global memory in the PTX ISA's fragment layout
//! (lane `4g + q`; f16: A rows `g`, `g + 8` × columns `2q`, `2q + 1` (+8), B columns `g` × rows
//! `2q`, `2q + 1` (+8); tf32: A rows `g`, `g + 8` × columns `q` (+4), B columns `g` × rows `q`
//! (+4); C rows `g`, `g + 8` × columns `2q`, `2q + 1`), reading 0 outside the matrix, then issues
//! four `mma.sync`. f16 results are rounded once, at the store.
//!
//! Not yet: staging tiles through shared memory with `cp.async` and `ldmatrix` (each fragment
//! element is a scalar global load here), a multi-stage pipeline, bf16 (stored as f32 on the
//! device today), tf32 and int8 `mma`. Correctness is checked by executing the printed PTX in the
//! test-only interpreter (`tests/mma_ptx.rs`); its speed has not been measured on a GPU.

use super::{Arg, KernelLaunch, LowerCtx, LowerError, Lowered};
use crate::builder::{KernelBuilder, f, i, select};
use crate::ir::{Access, Builtin, Expr, MmaShape, Scalar, Stmt, Type, Var};
use optc_ir::dtype::DType;
use optc_ir::ops::Op;

/// Warps per block (2 × 2).
const WARPS: u32 = 4;
/// Output rows per block.
const BM: usize = 32;
/// Output columns per block.
const BN: usize = 64;

const M16N8K16: MmaShape = MmaShape {
    m: 16,
    n: 8,
    k: 16,
    ab: Scalar::F16,
    acc: Scalar::F32,
};

const M16N8K8_TF32: MmaShape = MmaShape {
    m: 16,
    n: 8,
    k: 8,
    ab: Scalar::F32,
    acc: Scalar::F32,
};

/// The tensor-core lowering of a MatMul (f16; f32 on tf32 when `allow_tf32`), or `None` when
/// the op or its form is not one it handles (the caller then uses the portable templates).
pub fn lower_matmul(ctx: &LowerCtx<'_>, allow_tf32: bool) -> Result<Option<Lowered>, LowerError> {
    if *ctx.op != Op::MatMul {
        return Ok(None);
    }
    let (a, b, out) = (ctx.input(0)?, ctx.input(1)?, ctx.output(0)?);
    let all = |d: DType| a.dtype == d && b.dtype == d && out.dtype == d;
    let tf32 = if all(DType::F16) {
        false
    } else if all(DType::F32) && allow_tf32 {
        true
    } else {
        return Ok(None);
    };
    let (ra, rb, ro) = (a.shape.len(), b.shape.len(), out.shape.len());
    if ra < 2 || rb < 2 || ro < 2 {
        return Ok(None);
    }
    let (m, k) = (a.shape[ra - 2], a.shape[ra - 1]);
    let n = b.shape[rb - 1];
    if b.shape[rb - 2] != k || out.shape[ro - 2..] != [m, n] {
        return Err(ctx.invalid("operand shapes do not multiply"));
    }
    let batch_dims = &out.shape[..ro - 2];
    if a.shape[..ra - 2] != *batch_dims || (rb != 2 && b.shape[..rb - 2] != *batch_dims) {
        return Ok(None);
    }
    let batch: usize = batch_dims.iter().product();
    if m == 0 || n == 0 || k == 0 || batch == 0 {
        return Ok(None);
    }
    // Every flat index must fit in i32.
    let largest = [a.numel(), b.numel(), out.numel()]
        .into_iter()
        .max()
        .unwrap_or(0);
    if largest >= i32::MAX as usize {
        return Ok(None);
    }
    let b_batched = rb != 2;
    let kernel = kernel(ctx.name, m, n, k, b_batched, tf32);
    let grid = [n.div_ceil(BN) as u32, m.div_ceil(BM) as u32, batch as u32];
    Ok(Some(Lowered {
        launches: vec![KernelLaunch {
            kernel,
            args: vec![Arg::Input(0), Arg::Input(1), Arg::Output(0)],
            grid,
        }],
        ..Lowered::default()
    }))
}

fn kernel(
    name: &str,
    m: usize,
    n: usize,
    k: usize,
    b_batched: bool,
    tf32: bool,
) -> crate::ir::Kernel {
    let suffix = if tf32 { "mma_tf32" } else { "mma" };
    let mut kb = KernelBuilder::new(format!("{name}_{suffix}"), [32 * WARPS, 1, 1]);
    let elem = if tf32 { Scalar::F32 } else { Scalar::F16 };
    let h = Type::scalar(elem);
    let a_buf = kb.buffer("a", h, Access::Read);
    let b_buf = kb.buffer("b", h, Access::Read);
    let o_buf = kb.buffer("out", h, Access::ReadWrite);
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);

    let lane = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::SubgroupLane).cast(Scalar::I32),
    );
    let warp = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::LocalIndex).cast(Scalar::I32) / i(32),
    );
    let g = kb.let_(Type::I32, lane.clone() / i(4));
    let q2 = kb.let_(Type::I32, (lane % i(4)) * i(2));
    let wg = |a: u8| Expr::Builtin(Builtin::WorkgroupId(a)).cast(Scalar::I32);
    let row0 = kb.let_(
        Type::I32,
        wg(1) * i(BM as i32) + (warp.clone() / i(2)) * i(16),
    );
    let col0 = kb.let_(Type::I32, wg(0) * i(BN as i32) + (warp % i(2)) * i(32));
    let batch = kb.let_(Type::I32, wg(2));
    let a_base = kb.let_(Type::I32, batch.clone() * i(mi * ki));
    let b_base = if b_batched {
        kb.let_(Type::I32, batch.clone() * i(ki * ni))
    } else {
        i(0)
    };
    let o_base = kb.let_(Type::I32, batch * i(mi * ni));

    let acc: Vec<Var> = (0..16).map(|_| kb.var(Type::F32, f(0.0))).collect();
    // f16: two halves per fragment register; tf32: one f32.
    let (frag_ty, frag_zero) = if tf32 {
        (Type::F32, f(0.0))
    } else {
        (
            Type::vec(Scalar::F16, 2),
            Expr::Splat(2, Box::new(Expr::F16(0.0))),
        )
    };
    let zero = if tf32 { f(0.0) } else { Expr::F16(0.0) };
    let a_frag: Vec<Var> = (0..4).map(|_| kb.var(frag_ty, frag_zero.clone())).collect();
    let b_frag: Vec<Var> = (0..8).map(|_| kb.var(frag_ty, frag_zero.clone())).collect();

    // `buf[base + r·stride + c]`, or 0 where (r, c) falls outside rows × cols (the index is
    // clamped too: PTX has no robust buffer access).
    let load = |buf: u32, base: &Expr, r: Expr, c: Expr, rows: i32, cols: i32, stride: i32| {
        let inside = r.clone().lt(i(rows)).and(c.clone().lt(i(cols)));
        let idx = select(inside.clone(), base.clone() + r * i(stride) + c, i(0));
        select(inside, Expr::load(buf, idx), zero.clone())
    };
    let q = kb.let_(Type::I32, q2.clone() / i(2));

    let (kstep, shape) = if tf32 {
        (8, M16N8K8_TF32)
    } else {
        (16, M16N8K16)
    };
    kb.for_(i(0), i(ki), kstep, false, |kb, k0| {
        for (r, v) in a_frag.iter().enumerate() {
            let row = row0.clone() + g.clone() + i(8 * (r as i32 % 2));
            if tf32 {
                let col = k0.clone() + q.clone() + i(4 * (r as i32 / 2));
                kb.assign(*v, load(a_buf, &a_base, row, col, mi, ki, ki));
            } else {
                let col = k0.clone() + q2.clone() + i(8 * (r as i32 / 2));
                let lo = load(a_buf, &a_base, row.clone(), col.clone(), mi, ki, ki);
                let hi = load(a_buf, &a_base, row, col + i(1), mi, ki, ki);
                kb.assign(*v, Expr::Vector(vec![lo, hi]));
            }
        }
        for t in 0..4 {
            for r in 0..2 {
                let col = col0.clone() + i(8 * t) + g.clone();
                let frag = b_frag[(2 * t + r) as usize];
                if tf32 {
                    let kk = k0.clone() + q.clone() + i(4 * r);
                    kb.assign(frag, load(b_buf, &b_base, kk, col, ki, ni, ni));
                } else {
                    let kk = k0.clone() + q2.clone() + i(8 * r);
                    let lo = load(b_buf, &b_base, kk.clone(), col.clone(), ki, ni, ni);
                    let hi = load(b_buf, &b_base, kk + i(1), col, ki, ni, ni);
                    kb.assign(frag, Expr::Vector(vec![lo, hi]));
                }
            }
        }
        for t in 0..4 {
            kb.stmt(Stmt::Mma {
                shape,
                a: a_frag.clone(),
                b: b_frag[2 * t..2 * t + 2].to_vec(),
                c: acc[4 * t..4 * t + 4].to_vec(),
            });
        }
    });

    for t in 0..4 {
        for r in 0..4 {
            let row = row0.clone() + g.clone() + i(8 * (r as i32 / 2));
            let col = col0.clone() + i(8 * t as i32) + q2.clone() + i(r as i32 % 2);
            let inside = row.clone().lt(i(mi)).and(col.clone().lt(i(ni)));
            let v = Expr::Var(acc[4 * t + r]);
            let v = if tf32 { v } else { v.cast(Scalar::F16) };
            kb.if_(inside, |kb| {
                kb.store(o_buf, o_base.clone() + row * i(ni) + col, v);
            });
        }
    }
    kb.finish()
}
