//! GEMMs on tensor cores (targets with [`super::Features::tensor_cores`]: PTX `mma.sync`), with
//! f32 accumulation: f16 operands with `m16n8k16`, and — only when the user allows it
//! ([`super::Features::allow_tf32`], `--allow-tf32`) — f32 operands with `m16n8k8` on tf32
//! (operands rounded to 10 mantissa bits, ~1e-3 relative error).
//!
//! [`lower_problem`] takes a [`Problem`] of the GEMM core, so everything built on it — MatMul,
//! Gemm, the strided Einsum and their fused epilogues — runs here when both operands are
//! strided (not a conv's im2col) and of one dtype the target's tensor cores take; it returns
//! `None` otherwise and the portable template ([`super::gemm`]) runs instead. The epilogue is the
//! portable one's: `alpha`, the addend (Gemm's `beta · C`, a bias), then the fused program, then
//! one conversion to the output dtype.
//!
//! Tiling: a block of 4 warps computes a 32 × 64 output tile of one batch entry; warp `w` owns
//! rows `16·(w / 2)..+16` and columns `32·(w % 2)..+32` as four m16n8 accumulators (16 f32
//! registers per lane). The K loop steps by 16 (f16) or 8 (tf32); each step loads the lane's A
//! fragment and the four B fragments straight from global memory through the operands' strides,
//! in the PTX ISA's fragment layout (lane `4g + q`; f16: A rows `g`, `g + 8` × columns `2q`,
//! `2q + 1` (+8), B columns `g` × rows `2q`, `2q + 1` (+8); tf32: A rows `g`, `g + 8` × columns
//! `q` (+4), B columns `g` × rows `q` (+4); C rows `g`, `g + 8` × columns `2q`, `2q + 1`),
//! reading 0 outside the matrix, then issues four `mma.sync`.
//!
//! Not yet: staging tiles through shared memory with `cp.async` and `ldmatrix` (each fragment
//! element is a scalar global load here), a multi-stage pipeline, bf16 (stored as f32 on the
//! device today), int8 `mma`, implicit-GEMM convs. Correctness is checked by executing the
//! printed PTX in the test-only interpreter (`tests/mma_ptx.rs`); its speed has not been
//! measured on a GPU.

use super::common::{self, to_storage, unravel};
use super::gemm::{Operand, Problem, Source};
use super::{KernelLaunch, LowerCtx, LowerError, storage_scalar};
use crate::builder::{KernelBuilder, f, i, select};
use crate::ir::{Access, Builtin, Expr, MmaShape, Scalar, Stmt, Type, Var};
use optc_ir::dtype::DType;

/// Warps per block (2 × 2).
const WARPS: u32 = 4;
/// Output rows per block.
const BM: usize = 32;
/// Output columns per block.
const BN: usize = 64;
/// Most blocks along z (CUDA's grid limit), one per batch entry.
const MAX_GRID_Z: usize = 65535;

/// The tensor-core kernel for `p`, or `None` when the target has no tensor cores or `p` is not
/// a form they take (the caller then builds the portable kernel).
pub(crate) fn lower_problem(
    ctx: &LowerCtx<'_>,
    p: &Problem,
) -> Result<Option<KernelLaunch>, LowerError> {
    if !ctx.features.tensor_cores || p.a.dtype != p.b.dtype {
        return Ok(None);
    }
    let tf32 = match p.a.dtype {
        DType::F16 => false,
        DType::F32 if ctx.features.allow_tf32 => true,
        _ => return Ok(None),
    };
    let (Source::Strided { .. }, Source::Strided { .. }) = (&p.a.source, &p.b.source) else {
        return Ok(None);
    };
    let nb: usize = p.batch.iter().product();
    if p.m == 0 || p.n == 0 || p.k == 0 || nb == 0 || nb > MAX_GRID_Z {
        return Ok(None);
    }
    // Every element offset must fit in i32.
    let out_numel = nb * p.m * p.n;
    let fits = |n: usize| n < i32::MAX as usize;
    if !fits(p.a.numel) || !fits(p.b.numel) || !fits(out_numel) {
        return Ok(None);
    }
    let grid = [p.n.div_ceil(BN) as u32, p.m.div_ceil(BM) as u32, nb as u32];
    let (kernel, args) = kernel(ctx, p, tf32)?;
    Ok(Some(KernelLaunch { kernel, args, grid }))
}

/// `(row, k)` of a strided operand at `base`: its element offset.
fn offset(op: &Operand, base: &Expr, row: Expr, k: Expr) -> Expr {
    let Source::Strided {
        row_stride,
        k_stride,
    } = op.source
    else {
        unreachable!("lower_problem takes strided operands only")
    };
    base.clone() + common::dot_strides(&[row, k], &[row_stride, k_stride])
}

fn kernel(
    ctx: &LowerCtx<'_>,
    p: &Problem,
    tf32: bool,
) -> Result<(crate::ir::Kernel, Vec<super::Arg>), LowerError> {
    let mut kb = KernelBuilder::new(
        ctx.kname(if tf32 { "mma_tf32" } else { "mma" }),
        [32 * WARPS, 1, 1],
    );
    let elem = Type::scalar(if tf32 { Scalar::F32 } else { Scalar::F16 });
    let mut args = vec![p.a.arg, p.b.arg];
    let a_buf = kb.buffer("a", elem, Access::Read);
    let b_buf = kb.buffer("b", elem, Access::Read);
    let c_buf = p.addend.as_ref().map(|c| {
        args.push(c.arg);
        let s = storage_scalar(c.dtype).unwrap_or(Scalar::F32);
        kb.buffer("c", Type::scalar(s), Access::Read)
    });
    let ep = p.epilogue.as_ref().map(|e| e.bind(&mut kb, &mut args));
    let out_dt = p.out.1;
    let o_buf = kb.buffer(
        "out",
        Type::scalar(storage_scalar(out_dt).unwrap_or(Scalar::F32)),
        Access::ReadWrite,
    );
    args.push(p.out.0);
    let (mi, ni, ki) = (p.m as i32, p.n as i32, p.k as i32);

    let lane = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::SubgroupLane).cast(Scalar::I32),
    );
    let warp = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::LocalIndex).cast(Scalar::I32) / i(32),
    );
    let g = kb.let_(Type::I32, lane.clone() / i(4));
    let q = kb.let_(Type::I32, lane % i(4));
    let q2 = kb.let_(Type::I32, q.clone() * i(2));
    let wg = |a: u8| Expr::Builtin(Builtin::WorkgroupId(a)).cast(Scalar::I32);
    let row0 = kb.let_(
        Type::I32,
        wg(1) * i(BM as i32) + (warp.clone() / i(2)) * i(16),
    );
    let col0 = kb.let_(Type::I32, wg(0) * i(BN as i32) + (warp % i(2)) * i(32));
    let batch_index = kb.let_(Type::I32, wg(2));
    let bcoords = unravel(&mut kb, &batch_index, &p.batch);
    let a_base = kb.let_(Type::I32, common::dot_strides(&bcoords, &p.a.batch_strides));
    let b_base = kb.let_(Type::I32, common::dot_strides(&bcoords, &p.b.batch_strides));
    let o_base = kb.let_(
        Type::I32,
        common::dot_strides(&bcoords, &p.out_batch_strides),
    );

    let acc: Vec<Var> = (0..16).map(|_| kb.var(Type::F32, f(0.0))).collect();
    // f16: two halves per fragment register; tf32: one f32.
    let (frag_ty, frag_zero, zero) = if tf32 {
        (Type::F32, f(0.0), f(0.0))
    } else {
        (
            Type::vec(Scalar::F16, 2),
            Expr::Splat(2, Box::new(Expr::F16(0.0))),
            Expr::F16(0.0),
        )
    };
    let a_frag: Vec<Var> = (0..4).map(|_| kb.var(frag_ty, frag_zero.clone())).collect();
    let b_frag: Vec<Var> = (0..8).map(|_| kb.var(frag_ty, frag_zero.clone())).collect();

    // Element (row, k) of an operand with `rows` rows, or 0 outside the matrix (the offset is
    // clamped too: PTX has no robust buffer access).
    let load = |buf: u32, op: &Operand, base: &Expr, row: Expr, k: Expr, rows: i32| {
        let inside = row.clone().lt(i(rows)).and(k.clone().lt(i(ki)));
        let idx = select(inside.clone(), offset(op, base, row, k), i(0));
        select(inside, Expr::load(buf, idx), zero.clone())
    };
    let (kstep, shape) = if tf32 {
        (8, MmaShape::M16N8K8_TF32)
    } else {
        (16, MmaShape::M16N8K16_F16)
    };
    kb.for_(i(0), i(ki), kstep, false, |kb, k0| {
        for (r, v) in a_frag.iter().enumerate() {
            let row = row0.clone() + g.clone() + i(8 * (r as i32 % 2));
            if tf32 {
                let k = k0.clone() + q.clone() + i(4 * (r as i32 / 2));
                kb.assign(*v, load(a_buf, &p.a, &a_base, row, k, mi));
            } else {
                let k = k0.clone() + q2.clone() + i(8 * (r as i32 / 2));
                let lo = load(a_buf, &p.a, &a_base, row.clone(), k.clone(), mi);
                let hi = load(a_buf, &p.a, &a_base, row, k + i(1), mi);
                kb.assign(*v, Expr::Vector(vec![lo, hi]));
            }
        }
        for t in 0..4 {
            for r in 0..2 {
                let col = col0.clone() + i(8 * t) + g.clone();
                let frag = b_frag[(2 * t + r) as usize];
                if tf32 {
                    let k = k0.clone() + q.clone() + i(4 * r);
                    kb.assign(frag, load(b_buf, &p.b, &b_base, col, k, ni));
                } else {
                    let k = k0.clone() + q2.clone() + i(8 * r);
                    let lo = load(b_buf, &p.b, &b_base, col.clone(), k.clone(), ni);
                    let hi = load(b_buf, &p.b, &b_base, col, k + i(1), ni);
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

    // Epilogue, as the portable template's: alpha, the addend, the fused program, the output
    // conversion.
    for t in 0..4 {
        for r in 0..4 {
            let row = kb.let_(Type::I32, row0.clone() + g.clone() + i(8 * (r as i32 / 2)));
            let col = kb.let_(
                Type::I32,
                col0.clone() + i(8 * t as i32) + q2.clone() + i(r as i32 % 2),
            );
            let inside = row.clone().lt(i(mi)).and(col.clone().lt(i(ni)));
            let acc_v = Expr::Var(acc[4 * t + r]);
            kb.if_(inside, |kb| {
                let mut v = acc_v;
                if p.alpha != 1.0 {
                    v = v * f(p.alpha);
                }
                if let (Some(c), Some(cb)) = (&p.addend, c_buf) {
                    let idx =
                        common::dot_strides(&[row.clone(), col.clone()], &[c.m_stride, c.n_stride])
                            + common::dot_strides(&bcoords, &c.batch_strides);
                    let cv = common::load(cb, idx, c.dtype);
                    v = v + if c.scale == 1.0 { cv } else { cv * f(c.scale) };
                }
                let off = kb.let_(
                    Type::I32,
                    o_base.clone()
                        + common::dot_strides(
                            &[row.clone(), col.clone()],
                            &[p.out_m_stride, p.out_n_stride],
                        ),
                );
                let v = match &ep {
                    Some(e) => e.apply(kb, v, &off),
                    None => v,
                };
                kb.store(o_buf, off, to_storage(v, out_dt));
            });
        }
    }
    if let Some(e) = ep {
        e.finish()?;
    }
    Ok((kb.finish(), args))
}
