//! GEMMs on tensor cores (targets with [`super::Features::tensor_cores`]: PTX `mma.sync`), with
//! f32 accumulation: f16 and bf16 operands with `m16n8k16` (bf16 tensors are stored as 16 bits
//! on sm targets, [`super::Features::bf16_storage`], and move like f16; where they are not, or
//! a gathered value has been widened, each pair is rounded to nearest-even bf16 and packed by
//! `pack_bf16x2`, exact for values that are already bf16), and — only when the user allows it
//! ([`super::Features::allow_tf32`], `--allow-tf32`) — f32 operands with `m16n8k8` on tf32
//! (operands rounded to 10 mantissa bits, ~1e-3 relative error); two s8 or two u8 operands
//! (MatMulInteger, QLinearMatMul's product: [`super::gemm::lower_quant_matmul`]) with
//! `m16n8k32` into exact s32 accumulators, four bytes packed per fragment register, zero points
//! subtracted after the K loop (`lower_problem_zp`).
//!
//! `lower_problem` takes a [`Problem`] of the GEMM core, so everything built on it — MatMul,
//! Gemm, the strided Einsum, dense and grouped Conv (the implicit GEMM over the im2col matrix;
//! depthwise convs keep their direct kernel) and their fused epilogues — runs here when B is
//! strided, A strided or im2col, and both of one dtype the target's tensor cores take; it returns
//! `None` otherwise and the portable template ([`super::gemm`]) runs instead. The epilogue is the
//! portable one's: `alpha`, the addend (Gemm's `beta · C`, a bias), then the fused program, then
//! one conversion to the output dtype.
//!
//! Two kernel bodies:
//!
//! - **Shared-memory pipeline** (f16 and bf16, any strides, and convs: the implicit GEMM). A
//!   block of 4 warps owns a 64 × 64 output tile; K advances in slices of 32 through a 3-stage
//!   ring of shared tiles, one commit group per slice; `cp.async.wait_group 1` plus a barrier
//!   make slice `kt` visible while `kt + 1` is still in flight, and the refill of slice `kt + 2`
//!   reuses the stage every thread left before that barrier. Each operand is fed one of two
//!   ways (`Feed`):
//!   - *copied* — f16 (and 16-bit bf16) operands that move in aligned 16-byte chunks (one of
//!     their strides is 1;
//!     the other stride, the batch strides and the contiguous extent are multiples of 8): each
//!     slice by `cp.async` (16 bytes per copy, 2 per thread; chunks outside the matrix are
//!     zero-filled by a plain store);
//!   - *gathered* — everything else: unaligned strides, bf16 stored as f32 (rounded while
//!     packing) and a conv's im2col matrix. Each thread loads its 16 elements of slice
//!     `kt + 2` into registers before the `mma`s of slice `kt` and stores them as two packed
//!     16-byte chunks after, so the loads' latency hides behind the math. For the im2col
//!     matrix the chunks run along the output pixels (contiguous in NCHW); a thread's 8 pixels
//!     are decomposed once, and each slice decomposes only its two K indices (channel, tap).
//!
//!   Tiles keep their global orientation (K-major `[rows][32]` or row-major `[32][64]`, rows
//!   padded by one chunk so the 8 rows an `ldmatrix` reads hit distinct banks); `ldmatrix.x4`
//!   (`.trans` for row-major tiles) loads the fragments: per 16 of K, two for A (two m16 tiles)
//!   and two for B (four n8 tiles), then 2 × 4 `mma.sync` into 32 f32 accumulators per lane.
//! - **Global fragments** (tf32 and int8). A block of 4 warps owns a 32 × 64 tile; warp `w` has
//!   rows `16·(w / 2)..+16` and columns `32·(w % 2)..+32` as four m16n8 accumulators. The K loop
//!   steps by 8 (tf32) or 32 (int8); each step loads the lane's fragments straight from global
//!   memory through the operands' strides in the ISA's layout (lane `4g + q`; tf32: A rows
//!   `g`, `g + 8` × columns `q` (+4), B columns `g` × rows `q` (+4); int8: four bytes per
//!   register), reading 0 outside the matrix. For a conv's im2col A, the lane's two output
//!   pixels are decomposed once before the K loop and each of its K indices once per step.
//!
//! Both end in the same epilogue (C rows `g`, `g + 8` × columns `2q`, `2q + 1` per m16n8 tile).
//! Correctness is checked by executing the printed PTX in the test-only interpreter, which
//! lands each `cp.async` only at the wait that covers it (`tests/mma_ptx.rs`), and by ptxas; the
//! speed of neither body has been measured on a GPU. Not yet: a swizzled (unpadded) layout, tf32
//! and int8 through shared memory.

use super::common::{self, to_storage, unravel};
use super::conv::Geom;
use super::gemm::{Operand, ParamIndex, Problem, Source};
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
    lower_problem_zp(ctx, p, &ZeroPoints::default())
}

/// The zero points of an int8 GEMM (`Σ (a − za)(b − zb)`): A's per row or scalar, B's per
/// column or scalar, each as (binding argument, dtype, indexing).
#[derive(Clone, Copy, Default)]
pub(crate) struct ZeroPoints {
    pub a: Option<(super::Arg, DType, ParamIndex)>,
    pub b: Option<(super::Arg, DType, ParamIndex)>,
}

/// [`lower_problem`] for an int8 problem with zero points (MatMulInteger, the product of
/// QLinearMatMul): the tensor cores sum `a·b`, and the kernel subtracts
/// `zb·Σ_k a + za·Σ_k b − K·za·zb` per element, from row and column sums it gathers while
/// loading the fragments.
pub(crate) fn lower_problem_zp(
    ctx: &LowerCtx<'_>,
    p: &Problem,
    zp: &ZeroPoints,
) -> Result<Option<KernelLaunch>, LowerError> {
    if !ctx.features.tensor_cores || p.a.dtype != p.b.dtype {
        return Ok(None);
    }
    let elem = match p.a.dtype {
        DType::F16 => MmaElem::F16,
        DType::BF16 => MmaElem::Bf16,
        DType::F32 if ctx.features.allow_tf32 => MmaElem::Tf32,
        // MatMulInteger, QLinearMatMul (`gemm::lower_quant_matmul` builds the problem).
        DType::I8 => MmaElem::S8,
        DType::U8 => MmaElem::U8,
        _ => return Ok(None),
    };
    // B strided; A strided or a conv's im2col matrix.
    if !matches!(p.b.source, Source::Strided { .. }) {
        return Ok(None);
    }
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
    if (zp.a.is_some() || zp.b.is_some()) && !matches!(elem, MmaElem::S8 | MmaElem::U8) {
        return Ok(None);
    }
    let (kernel, args, [bm, bn]) = kernel(ctx, p, elem, zp)?;
    let grid = [p.n.div_ceil(bn) as u32, p.m.div_ceil(bm) as u32, nb as u32];
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

/// Which dimension of a strided operand is contiguous, for the shared-memory pipeline: its
/// 16-byte chunks (8 halves) run along K (`K`, A row-major / B column-major) or along the rows
/// (`Row`: A column-major, or B as a plain row-major `[K, N]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Major {
    K,
    Row,
}

/// How an operand of the shared-memory pipeline reaches its tiles, laid out by [`Major`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    /// 16-byte `cp.async` copies (f16 moved in aligned chunks: [`staged_major`]).
    Async(Major),
    /// Register-staged: each thread loads its 16 elements of a slice one by one (any strides,
    /// a conv's im2col gather, bf16 rounded from its f32 storage), packs them in pairs and
    /// stores them as two 16-byte chunks once the slice in shared memory is consumed.
    Gather(Major),
}

impl Feed {
    fn major(self) -> Major {
        match self {
            Feed::Async(m) | Feed::Gather(m) => m,
        }
    }

    /// The feed of `op` (`rows` × `k`): chunked copies where its elements are 16-bit in
    /// memory (`raw16`: f16, or bf16 with [`super::Features::bf16_storage`]) and the layout
    /// allows them, else a gather laid out along the operand's contiguous dimension (an im2col
    /// matrix's pixels).
    fn of(op: &Operand, rows: usize, k: usize, raw16: bool) -> Feed {
        if raw16 && let Some(m) = staged_major(op, rows, k) {
            return Feed::Async(m);
        }
        Feed::Gather(match op.source {
            Source::Strided {
                row_stride,
                k_stride,
            } if k_stride == 1 || (row_stride != 1 && k_stride <= row_stride) => Major::K,
            _ => Major::Row,
        })
    }
}

/// Shared-memory pipeline: block tile 64 × 64, K step 32, 3 stages, 4 warps of 32 × 32.
const SBM: usize = 64;
const SBN: usize = 64;
const SBK: usize = 32;
const STAGES: usize = 3;
/// Row pitch in 16-byte chunks of a K-major tile (`SBK / 8` plus one of padding, so the 8 rows
/// one `ldmatrix` reads fall in distinct banks).
const KPITCH: usize = SBK / 8 + 1;
/// Row pitch in chunks of a row-major tile of `SBM` (= `SBN`) rows, padded likewise.
const RPITCH: usize = SBM / 8 + 1;

/// How `op` (`rows` × `k`) can be staged in 16-byte chunks, if it can: every chunk must start
/// 16-byte aligned and lie wholly inside or outside the matrix.
fn staged_major(op: &Operand, rows: usize, k: usize) -> Option<Major> {
    let Source::Strided {
        row_stride,
        k_stride,
    } = op.source
    else {
        return None;
    };
    let a8 = |x: usize| x % 8 == 0;
    if !op.batch_strides.iter().all(|&s| a8(s)) {
        return None;
    }
    if k_stride == 1 && a8(row_stride) && a8(k) {
        Some(Major::K)
    } else if row_stride == 1 && a8(k_stride) && a8(rows) {
        Some(Major::Row)
    } else {
        None
    }
}

/// What both kernel bodies share: the epilogue's buffers and the lane's coordinates.
struct Common<'e> {
    c_buf: Option<u32>,
    ep: Option<super::epilogue::Bound<'e>>,
    o_buf: u32,
    g: Expr,
    q2: Expr,
    bcoords: Vec<Expr>,
    o_base: Expr,
}

/// The kernel, its arguments and its block tile (rows, columns).
fn kernel(
    ctx: &LowerCtx<'_>,
    p: &Problem,
    elem: MmaElem,
    zp: &ZeroPoints,
) -> Result<(crate::ir::Kernel, Vec<super::Arg>, [usize; 2]), LowerError> {
    // f16 and bf16 take the shared-memory pipeline.
    let raw16 = elem == MmaElem::F16 || (elem == MmaElem::Bf16 && ctx.features.bf16_storage);
    let staged = match elem {
        MmaElem::F16 | MmaElem::Bf16 => Some((
            Feed::of(&p.a, p.m, p.k, raw16),
            Feed::of(&p.b, p.n, p.k, raw16),
        )),
        _ => None,
    };
    let name = match elem {
        MmaElem::F16 => "mma",
        MmaElem::Bf16 => "mma_bf16",
        MmaElem::Tf32 => "mma_tf32",
        MmaElem::S8 => "mma_s8",
        MmaElem::U8 => "mma_u8",
    };
    let mut kb = KernelBuilder::new(ctx.kname(name), [32 * WARPS, 1, 1]);
    // Chunked operands are read as 16-byte chunks; gathered bf16 is declared f32 (widened on
    // load where it is stored as 16 bits), bytes as
    // i32/u32.
    let elem_ty = Type::scalar(match elem {
        MmaElem::F16 => Scalar::F16,
        MmaElem::S8 => Scalar::I32,
        MmaElem::U8 => Scalar::U32,
        MmaElem::Bf16 | MmaElem::Tf32 => Scalar::F32,
    });
    let stored = |feed: Option<Feed>| match feed {
        Some(Feed::Async(_)) => Type::vec(Scalar::U32, 4),
        _ => elem_ty,
    };
    let (a_ty, b_ty) = (stored(staged.map(|s| s.0)), stored(staged.map(|s| s.1)));
    let mut args = vec![p.a.arg, p.b.arg];
    let a_buf = kb.buffer("a", a_ty, Access::Read);
    let b_buf = kb.buffer("b", b_ty, Access::Read);
    let mut bind_zp = |name: &str, z: Option<(super::Arg, DType, ParamIndex)>| {
        z.map(|(arg, dt, ix)| {
            args.push(arg);
            let s = storage_scalar(dt).unwrap_or(Scalar::I32);
            (kb.buffer(name, Type::scalar(s), Access::Read), dt, ix)
        })
    };
    let zps = BoundZp {
        a: bind_zp("a_zp", zp.a),
        b: bind_zp("b_zp", zp.b),
    };
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

    let lane = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::SubgroupLane).cast(Scalar::I32),
    );
    let warp = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::LocalIndex).cast(Scalar::I32) / i(32),
    );
    let g = kb.let_(Type::I32, lane.clone() / i(4));
    let q = kb.let_(Type::I32, lane.clone() % i(4));
    let q2 = kb.let_(Type::I32, q.clone() * i(2));
    let batch_index = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::WorkgroupId(2)).cast(Scalar::I32),
    );
    let bcoords = unravel(&mut kb, &batch_index, &p.batch);
    let a_base = kb.let_(Type::I32, common::dot_strides(&bcoords, &p.a.batch_strides));
    let b_base = kb.let_(Type::I32, common::dot_strides(&bcoords, &p.b.batch_strides));
    let o_base = kb.let_(
        Type::I32,
        common::dot_strides(&bcoords, &p.out_batch_strides),
    );
    let cm = Common {
        c_buf,
        ep,
        o_buf,
        g,
        q2,
        bcoords,
        o_base,
    };
    let ops = Operands {
        a_buf,
        b_buf,
        a_base,
        b_base,
    };
    let (tiles, block) = match staged {
        Some((fa, fb)) => (
            staged_body(&mut kb, p, &ops, &lane, &warp, elem, [fa, fb]),
            [SBM, SBN],
        ),
        None => (
            global_body(&mut kb, p, &ops, &cm, &q, &warp, elem, &zps),
            [BM, BN],
        ),
    };
    epilogue(&mut kb, p, &cm, &tiles);
    if let Some(e) = cm.ep {
        e.finish()?;
    }
    Ok((kb.finish(), args, block))
}

/// The operand buffers and their batch offsets.
struct Operands {
    a_buf: u32,
    b_buf: u32,
    a_base: Expr,
    b_base: Expr,
}

/// Bound zero-point buffers: (binding, dtype, indexing).
struct BoundZp {
    a: Option<(u32, DType, ParamIndex)>,
    b: Option<(u32, DType, ParamIndex)>,
}

/// One m16n8 accumulator tile of a warp: its first row and column and its 4 f32 registers.
type Tile = (Expr, Expr, [Var; 4]);

/// Some rows of a conv's im2col matrix (output pixels) that a lane reads at every K step:
/// whether each is an output pixel, and its window start `o · stride − pad` per spatial axis.
struct PixelRows {
    geo: Geom,
    ok: Vec<Expr>,
    start: Vec<[Expr; 3]>,
}

impl PixelRows {
    fn new(kb: &mut KernelBuilder, geo: &Geom, rows: &[Expr], m: usize) -> PixelRows {
        let mut ok = Vec::new();
        let mut start = Vec::new();
        for row in rows {
            let row = kb.let_(Type::I32, row.clone());
            let inside = kb.let_(Type::BOOL, row.clone().lt(i(m as i32)));
            let row = kb.let_(Type::I32, select(inside.clone(), row, i(0)));
            let coords = unravel(kb, &row, &geo.output);
            let st: Vec<Expr> = (0..3)
                .map(|a| {
                    if geo.trivial(a) {
                        return i(0);
                    }
                    kb.let_(
                        Type::I32,
                        coords[a].clone() * i(geo.stride[a] as i32) - i(geo.pad[a] as i32),
                    )
                })
                .collect();
            ok.push(inside);
            start.push([st[0].clone(), st[1].clone(), st[2].clone()]);
        }
        PixelRows {
            geo: geo.clone(),
            ok,
            start,
        }
    }

    /// Element (row `r` of these, `tap`) of the im2col matrix, 0 in the padding or outside.
    fn load(
        &self,
        kb: &mut KernelBuilder,
        buf: u32,
        base: &Expr,
        r: usize,
        tap: &KTap,
        zero: &Expr,
    ) -> Expr {
        let geo = &self.geo;
        let st = common::strides(&geo.input);
        let mut inside = self.ok[r].clone().and(tap.ok.clone());
        let mut idx = base.clone() + tap.chan_off.clone();
        for (a, &stride) in st.iter().enumerate() {
            if geo.trivial(a) {
                continue;
            }
            let pa = kb.let_(Type::I32, self.start[r][a].clone() + tap.tap[a].clone());
            inside = inside.and(pa.clone().cast(Scalar::U32).lt(u(geo.input[a] as u32)));
            idx = idx + pa * i((stride * geo.pixel_stride) as i32);
        }
        let inside = kb.let_(Type::BOOL, inside);
        select(
            inside.clone(),
            Expr::load(buf, select(inside, idx, i(0))),
            zero.clone(),
        )
    }
}

/// One K index of a conv's im2col matrix: input channel offset and kernel tap (times the
/// dilation) per axis, and whether it is inside K.
struct KTap {
    ok: Expr,
    chan_off: Expr,
    tap: [Expr; 3],
}

impl KTap {
    fn new(kb: &mut KernelBuilder, geo: &Geom, k: Expr, kdim: usize) -> KTap {
        let k = kb.let_(Type::I32, k);
        let ok = kb.let_(Type::BOOL, k.clone().lt(i(kdim as i32)));
        let (c, rem) = geo.split_k(kb, k, kdim);
        let t = unravel(kb, &rem, &geo.kernel);
        let tap: Vec<Expr> = (0..3)
            .map(|a| {
                if geo.dilation[a] == 1 {
                    t[a].clone()
                } else {
                    t[a].clone() * i(geo.dilation[a] as i32)
                }
            })
            .collect();
        KTap {
            ok,
            chan_off: kb.let_(Type::I32, c * i(geo.chan_stride as i32)),
            tap: [tap[0].clone(), tap[1].clone(), tap[2].clone()],
        }
    }
}

/// The global-fragment body (tf32, int8): a block of 4 warps owns a 32 × 64 tile; every
/// fragment element is loaded from global memory (any strides).
#[allow(clippy::too_many_arguments)]
fn global_body(
    kb: &mut KernelBuilder,
    p: &Problem,
    ops: &Operands,
    cm: &Common,
    q: &Expr,
    warp: &Expr,
    elem: MmaElem,
    zps: &BoundZp,
) -> Vec<Tile> {
    let (mi, ni, ki) = (p.m as i32, p.n as i32, p.k as i32);
    let g = &cm.g;
    let wg = |a: u8| Expr::Builtin(Builtin::WorkgroupId(a)).cast(Scalar::I32);
    let row0 = kb.let_(
        Type::I32,
        wg(1) * i(BM as i32) + (warp.clone() / i(2)) * i(16),
    );
    let col0 = kb.let_(
        Type::I32,
        wg(0) * i(BN as i32) + (warp.clone() % i(2)) * i(32),
    );
    let int8 = matches!(elem, MmaElem::S8 | MmaElem::U8);
    let acc: Vec<Var> = (0..16)
        .map(|_| {
            if int8 {
                kb.var(Type::I32, i(0))
            } else {
                kb.var(Type::F32, f(0.0))
            }
        })
        .collect();
    // With zero points: the lane's partial sums over K of A rows g, g + 8 and of B column g of
    // each n8 tile (completed across the lane's quad after the loop).
    let with_zp = int8 && (zps.a.is_some() || zps.b.is_some());
    let row_sums: Vec<Var> = (0..if with_zp { 2 } else { 0 })
        .map(|_| kb.var(Type::I32, i(0)))
        .collect();
    let col_sums: Vec<Var> = (0..if with_zp { 4 } else { 0 })
        .map(|_| kb.var(Type::I32, i(0)))
        .collect();
    let stored_ty = if elem == MmaElem::U8 {
        Type::U32
    } else {
        Type::I32
    };
    // tf32: one f32 per fragment register; bytes: four packed in a u32.
    let (frag_ty, frag_zero, zero) = match elem {
        MmaElem::Tf32 => (Type::F32, f(0.0), f(0.0)),
        MmaElem::S8 => (Type::U32, u(0), i(0)),
        MmaElem::U8 => (Type::U32, u(0), u(0)),
        MmaElem::F16 | MmaElem::Bf16 => unreachable!("f16 and bf16 take the pipeline"),
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
        MmaElem::S8 => (32, MmaShape::M16N8K32_S8),
        MmaElem::U8 => (32, MmaShape::M16N8K32_U8),
        _ => (8, MmaShape::M16N8K8_TF32),
    };
    // Four bytes (i32/u32 storage, low byte first) as one fragment register.
    let quad = |kb: &mut KernelBuilder, vals: Vec<Expr>| -> Expr {
        let mut packed: Option<Expr> = None;
        for (j, v) in vals.into_iter().enumerate() {
            let v = if elem == MmaElem::S8 {
                Expr::Bitcast(Scalar::U32, Box::new(v))
            } else {
                v
            };
            let byte = kb.let_(Type::U32, v.and(u(0xff)));
            let byte = if j == 0 {
                byte
            } else {
                byte.bin(BinOp::Shl, u(8 * j as u32))
            };
            packed = Some(match packed {
                None => byte,
                Some(p) => p.or(byte),
            });
        }
        packed.unwrap_or(u(0))
    };
    let (a_buf, b_buf, a_base, b_base) = (ops.a_buf, ops.b_buf, &ops.a_base, &ops.b_base);
    // A conv's im2col A: the lane's two output pixels, decomposed once.
    let pixels = match &p.a.source {
        Source::Im2col(geo) => {
            let first = kb.let_(Type::I32, row0.clone() + g.clone());
            Some(PixelRows::new(kb, geo, &[first.clone(), first + i(8)], p.m))
        }
        Source::Strided { .. } => None,
    };
    kb.for_(i(0), i(ki), kstep, false, |kb, k0| {
        if let Some(px) = &pixels {
            // The lane's K values (tf32: q, q + 4), each decomposed once for both of its rows.
            let taps: Vec<KTap> = [0, 4]
                .iter()
                .map(|&o| KTap::new(kb, &px.geo, k0.clone() + q.clone() + i(o), p.k))
                .collect();
            for (r, v) in a_frag.iter().enumerate() {
                let v2 = px.load(kb, a_buf, a_base, r % 2, &taps[r / 2], &zero);
                kb.assign(*v, v2);
            }
        } else if int8 {
            // A register r: row g (+8 for odd r) × columns 4q..4q+4 (+16 for r ≥ 2).
            for (r, v) in a_frag.iter().enumerate() {
                let row = row0.clone() + g.clone() + i(8 * (r as i32 % 2));
                let k = kb.let_(
                    Type::I32,
                    k0.clone() + q.clone() * i(4) + i(16 * (r as i32 / 2)),
                );
                let vals: Vec<Expr> = (0..4)
                    .map(|j| {
                        let e = load(a_buf, &p.a, a_base, row.clone(), k.clone() + i(j), mi);
                        kb.let_(stored_ty, e)
                    })
                    .collect();
                if with_zp {
                    add_bytes(kb, row_sums[r % 2], &vals);
                }
                let v4 = quad(kb, vals);
                kb.assign(*v, v4);
            }
        } else {
            for (r, v) in a_frag.iter().enumerate() {
                let row = row0.clone() + g.clone() + i(8 * (r as i32 % 2));
                let k = k0.clone() + q.clone() + i(4 * (r as i32 / 2));
                kb.assign(*v, load(a_buf, &p.a, a_base, row, k, mi));
            }
        }
        for t in 0..4 {
            for r in 0..2 {
                let col = col0.clone() + i(8 * t) + g.clone();
                let frag = b_frag[(2 * t + r) as usize];
                if int8 {
                    // B register r: column g × rows 4q..4q+4 (+16 for r = 1).
                    let k = kb.let_(Type::I32, k0.clone() + q.clone() * i(4) + i(16 * r));
                    let vals: Vec<Expr> = (0..4)
                        .map(|j| {
                            let e = load(b_buf, &p.b, b_base, col.clone(), k.clone() + i(j), ni);
                            kb.let_(stored_ty, e)
                        })
                        .collect();
                    if with_zp {
                        add_bytes(kb, col_sums[t as usize], &vals);
                    }
                    let v4 = quad(kb, vals);
                    kb.assign(frag, v4);
                } else {
                    let k = k0.clone() + q.clone() + i(4 * r);
                    kb.assign(frag, load(b_buf, &p.b, b_base, col, k, ni));
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
    if with_zp {
        zero_point_correction(kb, p, zps, cm, &row0, &col0, &acc, &row_sums, &col_sums);
    }
    (0..4)
        .map(|t| {
            (
                row0.clone(),
                col0.clone() + i(8 * t as i32),
                [acc[4 * t], acc[4 * t + 1], acc[4 * t + 2], acc[4 * t + 3]],
            )
        })
        .collect()
}

/// `sum += Σ vals` over the (i32/u32-stored) bytes of one fragment register.
fn add_bytes(kb: &mut KernelBuilder, sum: Var, vals: &[Expr]) {
    let add = vals
        .iter()
        .map(|v| v.clone().cast(Scalar::I32))
        .reduce(|x, y| x + y)
        .unwrap_or(i(0));
    kb.assign(sum, Expr::Var(sum) + add);
}

/// `acc −= zb·Σ_k a[row] + za·Σ_k b[col] − K·za·zb` for every accumulator of the lane: the
/// partial sums are completed across the lane's quad (lanes `4g..4g+4` hold the four K
/// quarters), a column's sum is fetched from a lane of group `g = col % 8`.
#[allow(clippy::too_many_arguments)]
fn zero_point_correction(
    kb: &mut KernelBuilder,
    p: &Problem,
    zps: &BoundZp,
    cm: &Common,
    row0: &Expr,
    col0: &Expr,
    acc: &[Var],
    row_sums: &[Var],
    col_sums: &[Var],
) {
    let lane = Expr::Builtin(Builtin::SubgroupLane);
    for &s in row_sums.iter().chain(col_sums) {
        for x in [1u32, 2] {
            let other = kb.let_(
                Type::I32,
                Expr::Var(s).shuffle(lane.clone().bin(BinOp::Xor, u(x))),
            );
            kb.assign(s, Expr::Var(s) + other);
        }
    }
    let (mi, ni, ki) = (p.m as i32, p.n as i32, p.k as i32);
    for t in 0..4 {
        for r in 0..4 {
            let row = kb.let_(
                Type::I32,
                (row0.clone() + cm.g.clone() + i(8 * (r as i32 / 2))).min(i(mi - 1)),
            );
            let col = kb.let_(
                Type::I32,
                (col0.clone() + i(8 * t) + cm.q2.clone() + i(r as i32 % 2)).min(i(ni - 1)),
            );
            // Column 8t + 2q + r%2 of the tile is column g' = 2q + r%2 of lanes 4g'..4g'+4.
            let src = (cm.q2.clone() + i(r as i32 % 2)) * i(4);
            let csum = kb.let_(
                Type::I32,
                Expr::Var(col_sums[t as usize]).shuffle(src.cast(Scalar::U32)),
            );
            let za = zps
                .a
                .map(|(buf, dt, ix)| super::gemm::param_load(buf, dt, ix, &row, &col, false));
            let zb = zps
                .b
                .map(|(buf, dt, ix)| super::gemm::param_load(buf, dt, ix, &row, &col, false));
            let a = acc[4 * t as usize + r];
            let mut corr: Option<Expr> = None;
            let mut add = |e: Expr| {
                corr = Some(match corr.take() {
                    None => e,
                    Some(c) => c + e,
                })
            };
            if let Some(zb) = &zb {
                add(zb.clone() * Expr::Var(row_sums[r / 2]));
            }
            if let Some(za) = &za {
                add(za.clone() * csum);
            }
            if let (Some(za), Some(zb)) = (&za, &zb) {
                add(i(0) - i(ki) * za.clone() * zb.clone());
            }
            if let Some(c) = corr {
                kb.assign(a, Expr::Var(a) - c);
            }
        }
    }
}

/// The shared-memory pipeline (f16, bf16): a block of 4 warps owns a 64 × 64 tile; `STAGES`
/// K-slices of 32 are in flight in padded shared tiles, from which `ldmatrix` (`.trans` for
/// row-major tiles) loads the fragments; each warp then issues 2 × 4 `mma.sync` per 16 of K.
/// An operand is fed ([`Feed`]) by `cp.async` 16-byte copies (zeros stored for chunks outside
/// the matrix), or gathered: the loads of slice `kt + 2` are issued into registers before the
/// `mma`s of slice `kt` and stored after them, so their latency hides behind the math.
#[allow(clippy::too_many_arguments)]
fn staged_body(
    kb: &mut KernelBuilder,
    p: &Problem,
    ops: &Operands,
    lane: &Expr,
    warp: &Expr,
    elem: MmaElem,
    feeds: [Feed; 2],
) -> Vec<Tile> {
    let (ma, mb) = (feeds[0].major(), feeds[1].major());
    let chunk = Type::vec(Scalar::U32, 4);
    let tile_chunks = |m: Major| match m {
        Major::K => SBM * KPITCH,
        Major::Row => SBK * RPITCH,
    };
    let (ta, tb) = (tile_chunks(ma), tile_chunks(mb));
    let sa = kb.shared("a_tiles", chunk, (STAGES * ta) as u32);
    let sb = kb.shared("b_tiles", chunk, (STAGES * tb) as u32);
    let tid = kb.let_(
        Type::I32,
        Expr::Builtin(Builtin::LocalIndex).cast(Scalar::I32),
    );
    let wg = |a: u8| Expr::Builtin(Builtin::WorkgroupId(a)).cast(Scalar::I32);
    let m0 = kb.let_(Type::I32, wg(1) * i(SBM as i32));
    let n0 = kb.let_(Type::I32, wg(0) * i(SBN as i32));
    let ktiles = p.k.div_ceil(SBK);
    let shape = if elem == MmaElem::Bf16 {
        MmaShape::M16N8K16_BF16
    } else {
        MmaShape::M16N8K16_F16
    };
    let zero = if elem == MmaElem::Bf16 {
        f(0.0)
    } else {
        Expr::F16(0.0)
    };

    // Chunk `j` of a thread's share of a slice (2 per thread per operand): its (row, k) offset
    // from the slice's first row and K, along which of the two its 8 elements run, and its
    // shared slot within a stage.
    let chunk_at = |major: Major, j: usize| -> (Expr, Expr, Expr) {
        let c = tid.clone() + i((j * 32 * WARPS as usize) as i32);
        match major {
            Major::K => {
                let r = c.clone() / i((SBK / 8) as i32);
                let kc = c % i((SBK / 8) as i32);
                (r.clone(), kc.clone() * i(8), r * i(KPITCH as i32) + kc)
            }
            Major::Row => {
                let kr = c.clone() / i((SBM / 8) as i32);
                let rc = c % i((SBM / 8) as i32);
                (rc.clone() * i(8), kr.clone(), kr * i(RPITCH as i32) + rc)
            }
        }
    };
    const CHUNKS: usize = (SBM * SBK / 8) / (32 * WARPS as usize);

    struct Side<'a> {
        op: &'a Operand,
        buf: u32,
        base: &'a Expr,
        arr: u32,
        tile: usize,
        feed: Feed,
        first_row: &'a Expr,
        rows: usize,
        /// A gathered im2col operand: the thread's 8 pixels (the same in every slice and
        /// chunk: its chunks differ in K only).
        pixels: Option<PixelRows>,
        /// A gathered operand: the thread's 2 chunks of the next slice, as 4 packed pairs each.
        regs: Vec<Var>,
    }
    // Copies K-slice `kt` of an operand into stage `stage` with `cp.async`.
    let copy_slice = |kb: &mut KernelBuilder, s: &Side, kt: Expr, stage: Expr| {
        for j in 0..CHUNKS {
            let (r, kk, slot) = chunk_at(s.feed.major(), j);
            let row = kb.let_(Type::I32, s.first_row.clone() + r);
            let k = kb.let_(Type::I32, kt.clone() * i(SBK as i32) + kk);
            let dst = kb.let_(Type::I32, stage.clone() * i(s.tile as i32) + slot);
            let inside = row
                .clone()
                .lt(i(s.rows as i32))
                .and(k.clone().lt(i(p.k as i32)));
            let src = offset(s.op, s.base, row, k) / i(8);
            let (arr, buf) = (s.arr, s.buf);
            kb.if_else(
                inside,
                |kb| {
                    kb.stmt(Stmt::AsyncCopy {
                        arr,
                        dst: dst.clone(),
                        buf,
                        src,
                    })
                },
                |kb| kb.store_shared(arr, dst.clone(), Expr::Splat(4, Box::new(u(0)))),
            );
        }
    };
    // Loads K-slice `kt` of a gathered operand into its registers.
    let gather_slice = |kb: &mut KernelBuilder, s: &Side, kt: Expr| {
        let major = s.feed.major();
        for j in 0..CHUNKS {
            let (r, kk, _) = chunk_at(major, j);
            let row = kb.let_(Type::I32, s.first_row.clone() + r);
            let k = kb.let_(Type::I32, kt.clone() * i(SBK as i32) + kk);
            let tap = s
                .pixels
                .as_ref()
                .map(|px| KTap::new(kb, &px.geo, k.clone(), p.k));
            let mut vals = Vec::new();
            for e in 0..8 {
                let v = match (&s.pixels, &tap) {
                    (Some(px), Some(tap)) => px.load(kb, s.buf, s.base, e, tap, &zero),
                    _ => {
                        let (row, k) = match major {
                            Major::K => (row.clone(), k.clone() + i(e as i32)),
                            Major::Row => (row.clone() + i(e as i32), k.clone()),
                        };
                        let inside = row
                            .clone()
                            .lt(i(s.rows as i32))
                            .and(k.clone().lt(i(p.k as i32)));
                        let idx = select(inside.clone(), offset(s.op, s.base, row, k), i(0));
                        select(inside, Expr::load(s.buf, idx), zero.clone())
                    }
                };
                vals.push(v);
            }
            for (h, pair) in vals.chunks(2).enumerate() {
                let packed = if elem == MmaElem::Bf16 {
                    let lo = kb.let_(Type::F32, pair[0].clone());
                    let hi = kb.let_(Type::F32, pair[1].clone());
                    pack_bf16x2(lo, hi)
                } else {
                    Expr::Bitcast(
                        Scalar::U32,
                        Box::new(Expr::Vector(vec![pair[0].clone(), pair[1].clone()])),
                    )
                };
                kb.assign(s.regs[4 * j + h], packed);
            }
        }
    };
    // Stores a gathered operand's registers into stage `stage`.
    let put_slice = |kb: &mut KernelBuilder, s: &Side, stage: Expr| {
        for j in 0..CHUNKS {
            let (_, _, slot) = chunk_at(s.feed.major(), j);
            let v = Expr::Vector((0..4).map(|h| Expr::Var(s.regs[4 * j + h])).collect());
            kb.store_shared(s.arr, stage.clone() * i(s.tile as i32) + slot, v);
        }
    };
    // A gathered operand's pixels (for an im2col matrix) and registers.
    let gather_state = |kb: &mut KernelBuilder, op: &Operand, feed: Feed, first_row: &Expr| {
        let pixels = match (&op.source, feed) {
            (Source::Im2col(geo), Feed::Gather(Major::Row)) => {
                // Chunk j is (K row tid / 8 + 16 j, rows 8 · (tid % 8) ..+ 8).
                let first = kb.let_(
                    Type::I32,
                    first_row.clone() + (tid.clone() % i((SBM / 8) as i32)) * i(8),
                );
                let rows: Vec<Expr> = (0..8).map(|e| first.clone() + i(e)).collect();
                Some(PixelRows::new(kb, geo, &rows, p.m))
            }
            (Source::Im2col(_), _) => unreachable!("an im2col operand is gathered along its rows"),
            _ => None,
        };
        let n = if matches!(feed, Feed::Gather(_)) {
            4 * CHUNKS
        } else {
            0
        };
        let regs: Vec<Var> = (0..n).map(|_| kb.var(Type::U32, u(0))).collect();
        (pixels, regs)
    };
    let (pixels, regs) = gather_state(kb, &p.a, feeds[0], &m0);
    let a_side = Side {
        op: &p.a,
        buf: ops.a_buf,
        base: &ops.a_base,
        arr: sa,
        tile: ta,
        feed: feeds[0],
        first_row: &m0,
        rows: p.m,
        pixels,
        regs,
    };
    let (pixels, regs) = gather_state(kb, &p.b, feeds[1], &n0);
    let b_side = Side {
        op: &p.b,
        buf: ops.b_buf,
        base: &ops.b_base,
        arr: sb,
        tile: tb,
        feed: feeds[1],
        first_row: &n0,
        rows: p.n,
        pixels,
        regs,
    };
    let sides = [&a_side, &b_side];

    // Prologue: the first STAGES - 1 slices, one commit group each.
    for st in 0..STAGES - 1 {
        if st < ktiles {
            for s in sides {
                match s.feed {
                    Feed::Async(_) => copy_slice(kb, s, i(st as i32), i(st as i32)),
                    Feed::Gather(_) => {
                        gather_slice(kb, s, i(st as i32));
                        put_slice(kb, s, i(st as i32));
                    }
                }
            }
        }
        kb.stmt(Stmt::AsyncCommit);
    }

    // The lane's ldmatrix row: lane 8·mat + r addresses row r of matrix `mat`; matrix `mat`
    // covers (rows + 8·dr, k + 8·dk). A's x4 is (a0, a1, a2, a3): dr = mat % 2, dk = mat / 2;
    // B's x4 is (b0, b1) of two n8 tiles: dr = mat / 2, dk = mat % 2.
    let mat = kb.let_(Type::I32, lane.clone() / i(8));
    let r8 = kb.let_(Type::I32, lane.clone() % i(8));
    let lane_chunk = |kb: &mut KernelBuilder, major: Major, dr: Expr, dk: Expr| match major {
        // Row r + 8·dr, chunk dk along K.
        Major::K => kb.let_(Type::I32, (r8.clone() + dr * i(8)) * i(KPITCH as i32) + dk),
        // K row r + 8·dk, chunk dr along the rows.
        Major::Row => kb.let_(Type::I32, (r8.clone() + dk * i(8)) * i(RPITCH as i32) + dr),
    };
    let la = lane_chunk(kb, ma, mat.clone() % i(2), mat.clone() / i(2));
    let lb = lane_chunk(kb, mb, mat.clone() / i(2), mat.clone() % i(2));
    // The chunk offset of (row0, k0) within a tile; row0 a multiple of 8, k0 of 16.
    let at = |major: Major, row0: Expr, k0: usize| match major {
        Major::K => row0 * i(KPITCH as i32) + i((k0 / 8) as i32),
        Major::Row => i((k0 * RPITCH) as i32) + row0 / i(8),
    };
    let wrow = kb.let_(Type::I32, (warp.clone() / i(2)) * i(32));
    let wcol = kb.let_(Type::I32, (warp.clone() % i(2)) * i(32));
    let acc: Vec<Var> = (0..32).map(|_| kb.var(Type::F32, f(0.0))).collect();
    let a_frag: Vec<Var> = (0..8).map(|_| kb.var(Type::U32, u(0))).collect();
    let b_frag: Vec<Var> = (0..8).map(|_| kb.var(Type::U32, u(0))).collect();

    kb.for_(i(0), i(ktiles as i32), 1, false, |kb, kt| {
        // Slice kt has landed (only the newest group may still be in flight) for every thread.
        kb.stmt(Stmt::AsyncWait {
            pending: (STAGES - 2) as u32,
        });
        kb.barrier(crate::ir::Barrier::Workgroup);
        let next = kb.let_(Type::I32, kt.clone() + i((STAGES - 1) as i32));
        let refill = kb.let_(Type::BOOL, next.clone().lt(i(ktiles as i32)));
        // Gathered operands: issue the loads of slice kt + 2 now, store them after the math.
        if sides.iter().any(|s| matches!(s.feed, Feed::Gather(_))) {
            kb.if_(refill.clone(), |kb| {
                for s in sides {
                    if let Feed::Gather(_) = s.feed {
                        gather_slice(kb, s, next.clone());
                    }
                }
            });
        }
        let stage = kb.let_(Type::I32, kt.clone() % i(STAGES as i32));
        let a_stage = kb.let_(Type::I32, stage.clone() * i(ta as i32) + la.clone());
        let b_stage = kb.let_(Type::I32, stage.clone() * i(tb as i32) + lb.clone());
        for k16 in 0..SBK / 16 {
            // Two x4 loads per operand: A's two m16 tiles, B's two pairs of n8 tiles.
            for (arr, stage, major, first, frag) in [
                (sa, &a_stage, ma, &wrow, &a_frag),
                (sb, &b_stage, mb, &wcol, &b_frag),
            ] {
                for h in 0..2 {
                    let row0 = first.clone() + i(16 * h as i32);
                    kb.stmt(Stmt::LoadMatrix {
                        arr,
                        index: stage.clone() + at(major, row0, 16 * k16),
                        trans: major == Major::Row,
                        dst: frag[4 * h..4 * h + 4].to_vec(),
                    });
                }
            }
            for mt in 0..2 {
                for nt in 0..4 {
                    let t = 4 * mt + nt;
                    kb.stmt(Stmt::Mma {
                        shape,
                        a: a_frag[4 * mt..4 * mt + 4].to_vec(),
                        b: b_frag[2 * nt..2 * nt + 2].to_vec(),
                        c: acc[4 * t..4 * t + 4].to_vec(),
                    });
                }
            }
        }
        // Refill the stage slice kt - 1 used: every thread is past it (the barrier above).
        kb.if_(refill, |kb| {
            let stage = kb.let_(Type::I32, next.clone() % i(STAGES as i32));
            for s in sides {
                match s.feed {
                    Feed::Async(_) => copy_slice(kb, s, next.clone(), stage.clone()),
                    Feed::Gather(_) => put_slice(kb, s, stage.clone()),
                }
            }
        });
        kb.stmt(Stmt::AsyncCommit);
    });
    let mut tiles = Vec::new();
    for mt in 0..2 {
        for nt in 0..4 {
            let t = 4 * (4 * mt + nt);
            tiles.push((
                m0.clone() + wrow.clone() + i(16 * mt as i32),
                n0.clone() + wcol.clone() + i(8 * nt as i32),
                [acc[t], acc[t + 1], acc[t + 2], acc[t + 3]],
            ));
        }
    }
    tiles
}

/// Stores the accumulator tiles through the portable template's epilogue: alpha, the addend,
/// the fused program, the output conversion. Lane `4g + q` holds rows `g`, `g + 8` × columns
/// `2q`, `2q + 1` of each m16n8 tile.
fn epilogue(kb: &mut KernelBuilder, p: &Problem, cm: &Common, tiles: &[Tile]) {
    let (mi, ni) = (p.m as i32, p.n as i32);
    let out_dt = p.out.1;
    for (row0, col0, acc) in tiles {
        for (r, a) in acc.iter().enumerate() {
            let row = kb.let_(
                Type::I32,
                row0.clone() + cm.g.clone() + i(8 * (r as i32 / 2)),
            );
            let col = kb.let_(Type::I32, col0.clone() + cm.q2.clone() + i(r as i32 % 2));
            let inside = row.clone().lt(i(mi)).and(col.clone().lt(i(ni)));
            let acc_v = Expr::Var(*a);
            kb.if_(inside, |kb| {
                let mut v = acc_v;
                if p.alpha != 1.0 {
                    v = v * f(p.alpha);
                }
                if let (Some(c), Some(cb)) = (&p.addend, cm.c_buf) {
                    let idx =
                        common::dot_strides(&[row.clone(), col.clone()], &[c.m_stride, c.n_stride])
                            + common::dot_strides(&cm.bcoords, &c.batch_strides);
                    let cv = common::load(cb, idx, c.dtype);
                    v = v + if c.scale == 1.0 { cv } else { cv * f(c.scale) };
                }
                let off = kb.let_(
                    Type::I32,
                    cm.o_base.clone()
                        + common::dot_strides(
                            &[row.clone(), col.clone()],
                            &[p.out_m_stride, p.out_n_stride],
                        ),
                );
                let v = match &cm.ep {
                    Some(e) => e.apply(kb, v, &off),
                    None => v,
                };
                kb.store(cm.o_buf, off, to_storage(v, out_dt));
            });
        }
    }
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
