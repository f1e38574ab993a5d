//! GEMMs on tensor cores (targets with [`super::Features::tensor_cores`]: PTX `mma.sync`), with
//! f32 accumulation: f16 and bf16 operands with `m16n8k16` (bf16 tensors are stored as f32 on
//! the device: each pair is rounded to nearest-even bf16 and packed by [`pack_bf16x2`], exact
//! for values that are already bf16), and — only when the user allows it
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
//! element is a scalar global load here), a multi-stage pipeline, int8 `mma`, implicit-GEMM
//! convs. Correctness is checked by executing the
//! printed PTX in the test-only interpreter (`tests/mma_ptx.rs`); its speed has not been
//! measured on a GPU.

use super::common::{self, to_storage, unravel};
use super::gemm::{Operand, Problem, Source};
use super::{KernelLaunch, LowerCtx, LowerError, storage_scalar};
use crate::builder::{KernelBuilder, f, i, select, u};
use crate::ir::{Access, BinOp, Builtin, Expr, MmaElem, MmaShape, Scalar, Stmt, Type, Var};
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
    let elem = match p.a.dtype {
        DType::F16 => MmaElem::F16,
        DType::BF16 => MmaElem::Bf16,
        DType::F32 if ctx.features.allow_tf32 => MmaElem::Tf32,
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
    let (kernel, args) = kernel(ctx, p, elem)?;
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

/// Two f32 values as the `u32` of a bf16 pair (`lo` in bits 0..16), each rounded to nearest
/// even (NaN stays a quiet NaN; overflow rounds to ±infinity). The kernel IR has no bf16 scalar;
/// this is the integer form of PTX's `cvt.rn.bf16x2.f32`. `lo` and `hi` should be locals: each
/// is used three times.
pub(crate) fn pack_bf16x2(lo: Expr, hi: Expr) -> Expr {
    let rne = |x: Expr| {
        let bits = Expr::Bitcast(Scalar::U32, Box::new(x.clone()));
        let odd = bits.clone().bin(BinOp::Shr, u(16)).and(u(1));
        let rounded = (bits + u(0x7fff) + odd).bin(BinOp::Shr, u(16));
        select(x.clone().ne_(x), u(0x7fc0), rounded)
    };
    rne(lo).or(rne(hi).bin(BinOp::Shl, u(16)))
}

fn kernel(
    ctx: &LowerCtx<'_>,
    p: &Problem,
    elem: MmaElem,
) -> Result<(crate::ir::Kernel, Vec<super::Arg>), LowerError> {
    let tf32 = elem == MmaElem::Tf32;
    let mut kb = KernelBuilder::new(
        ctx.kname(match elem {
            MmaElem::F16 => "mma",
            MmaElem::Bf16 => "mma_bf16",
            MmaElem::Tf32 => "mma_tf32",
        }),
        [32 * WARPS, 1, 1],
    );
    // bf16 tensors are stored as f32.
    let stored = Type::scalar(if elem == MmaElem::F16 {
        Scalar::F16
    } else {
        Scalar::F32
    });
    let mut args = vec![p.a.arg, p.b.arg];
    let a_buf = kb.buffer("a", stored, Access::Read);
    let b_buf = kb.buffer("b", stored, Access::Read);
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
    // f16: two halves per fragment register; bf16: two packed in a u32; tf32: one f32.
    let (frag_ty, frag_zero, zero) = match elem {
        MmaElem::Tf32 => (Type::F32, f(0.0), f(0.0)),
        MmaElem::Bf16 => (Type::U32, u(0), f(0.0)),
        MmaElem::F16 => (
            Type::vec(Scalar::F16, 2),
            Expr::Splat(2, Box::new(Expr::F16(0.0))),
            Expr::F16(0.0),
        ),
    };
    // A fragment register from the two elements it holds.
    let pair = |kb: &mut KernelBuilder, lo: Expr, hi: Expr| -> Expr {
        if elem == MmaElem::Bf16 {
            let lo = kb.let_(Type::F32, lo);
            let hi = kb.let_(Type::F32, hi);
            pack_bf16x2(lo, hi)
        } else {
            Expr::Vector(vec![lo, hi])
        }
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
    let (kstep, shape) = match elem {
        MmaElem::Tf32 => (8, MmaShape::M16N8K8_TF32),
        MmaElem::Bf16 => (16, MmaShape::M16N8K16_BF16),
        MmaElem::F16 => (16, MmaShape::M16N8K16_F16),
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
                let v2 = pair(kb, lo, hi);
                kb.assign(*v, v2);
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
                    let v2 = pair(kb, lo, hi);
                    kb.assign(frag, v2);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::sim::{self, S};

    /// `pack_bf16x2` rounds as `half::bf16::from_f32` (nearest even; NaN quiet, overflow to
    /// infinity) and puts `lo` in the low half.
    #[test]
    fn pack_bf16x2_rounds_to_nearest_even() {
        let vals: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            1.0 + 2f32.powi(-8),                  // tie, even below: 1.0
            1.0 + 3.0 * 2f32.powi(-8),            // tie, even above
            1.0 + 2f32.powi(-8) + 2f32.powi(-20), // just above a tie
            -1.234_567_9,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0xffff_ffff),
            1e-40, // subnormal
            65504.0,
        ];
        let n = vals.len();
        let mut b = KernelBuilder::new("pack", [1, 1, 1]);
        let x = b.buffer("x", Type::F32, Access::Read);
        let y = b.buffer("y", Type::U32, Access::ReadWrite);
        for j in 0..n {
            let lo = b.let_(Type::F32, Expr::load(x, i(j as i32)));
            let hi = b.let_(Type::F32, Expr::load(x, i(((j + 1) % n) as i32)));
            b.store(y, i(j as i32), pack_bf16x2(lo, hi));
        }
        let k = b.finish();
        sim::typecheck(&k);
        let out = sim::run(
            &k,
            [1, 1, 1],
            vec![vals.iter().map(|v| S::F(*v)).collect(), vec![S::U(0); n]],
        );
        let bf = |v: f32| u32::from(half::bf16::from_f32(v).to_bits());
        for j in 0..n {
            let (lo, hi) = (vals[j], vals[(j + 1) % n]);
            let S::U(got) = out[1][j] else {
                panic!("not a u32")
            };
            if lo.is_nan() || hi.is_nan() {
                // Any quiet NaN will do; the other half must still be exact.
                let (gl, gh) = (got & 0xffff, got >> 16);
                let nan = |h: u32| h & 0x7f80 == 0x7f80 && h & 0x7f != 0;
                assert!(if lo.is_nan() { nan(gl) } else { gl == bf(lo) }, "{j}");
                assert!(if hi.is_nan() { nan(gh) } else { gh == bf(hi) }, "{j}");
            } else {
                assert_eq!(got, bf(lo) | bf(hi) << 16, "{lo} {hi}");
            }
        }
    }
}
