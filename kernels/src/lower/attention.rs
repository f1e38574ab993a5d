//! Fused attention ([`Op::FusedAttention`]): `MatMul(Softmax(score(Q·Kt)), V)` in one launch,
//! with an online softmax, so neither the scores nor the probabilities go through memory.
//!
//! Layout: Q `[.., S, D]`, Kt `[.., D, T]` (K already transposed), V `[.., T, Dv]`, output
//! `[.., S, Dv]`; batch dims broadcast numpy-style to the output's (which must be the scores'
//! batch). With an [`optc_ir::ops::AttentionLayout`] these are views of the stored tensors
//! (torch's head split `[b, s, h, d]`, K stored `[b, t, h, d]`, the merged output
//! `[b, s, h, dv]`): every operand is addressed through the strides of its canonical view
//! (`View`), so no transpose is copied. Two kernels, both with an online softmax per query row
//! (running maximum `m`, sum `l`, accumulator `acc`; per block of keys: rescale by
//! `exp(m_old - m_new)`, then add `p = exp(s - m_new)` and `p·v`):
//!
//! - **Register-tiled** (D and Dv multiples of 4, Q, V and output rows contiguous, and the keys
//!   either Kt columns with T a multiple of 4 or K rows — D contiguous, any T; see lavapipe.md
//!   for why): each invocation
//!   owns [`TILED_ROWS`] query rows (1 where [`super::Features::small_register_file`]), their
//!   Q rows and accumulators in vec4 registers; a workgroup (8–64 invocations) covers
//!   `rows × invocations` rows of one batch entry, grid `[⌈S/rows⌉, batch, 1]`. Keys go by
//!   blocks of 8 and every K/V value is loaded once per group of 8 lanes, then shared with
//!   `subgroupBroadcast` from a constant lane (cheap on lavapipe, a shuffle on GPUs): lane
//!   `j = lane % 8` loads the two vec4 of keys `j0..j0+8` of Kt rows `j + 8i`, every lane takes
//!   row `dd` from lane `dd % 8` and updates its rows' scores (vec4 FMAs) — or, for K rows, lane
//!   `j` loads key `j0 + j`'s row and every lane takes key `e`'s chunks from lane `e` into vec4
//!   partial dot products, summed per key at the end of the block; then lane `j` loads V
//!   row `j0 + j` and every lane takes row `j` from lane `j`. Needs subgroups of at least 8
//!   lanes, as the GEMM template. On lavapipe (`benches/fusion.rs`, 4 heads, head dim 64):
//!   S = 128 in 465 µs on the device against 770 µs for the decomposed MatMul, Softmax,
//!   MatMul; S = 512 in 5.1 ms against 10.5 ms (`cargo bench --bench fusion -- attention_s`,
//!   -O2 against -O0 in one run).
//! - **Workgroup memory** (otherwise): one invocation per query row, `R` rows per workgroup
//!   (grid `[⌈S/R⌉, batch, 1]`); each keeps its query row and accumulator in registers. Keys go
//!   by tiles of [`TILE`]: the workgroup loads the tile's Kt columns and V rows cooperatively
//!   into workgroup memory, meets at a barrier, and every row computes the tile's scores (one
//!   FMA chain per key) into workgroup memory with the tile maximum, then rescales and
//!   accumulates. ~1.2 GFLOP/s on lavapipe.
//!
//! In both, the score program (the mask: its extra operands are read with broadcasting
//! through [`super::epilogue`], at the score's flat index) applies to each score, and a NaN or
//! `+inf` score flags the row.
//!
//! At the end the row is `acc / sum`. Rows whose reference softmax is NaN — every score `-inf`
//! (a fully masked row: the sum stays 0), or a NaN or `+inf` score — are written as 0 when the
//! op has the `Where(IsNaN(p), 0, p)` step (`nan_fill_zero`), NaN otherwise. (The reference then
//! multiplies the zero row by V, which gives NaN instead of 0 only where V itself holds NaN or
//! infinity.)
//!
//! Precision: the online softmax rounds differently from the decomposed ops (scores in f32
//! registers, `p` never rounded to memory, the sum in f32); results agree to ~1e-6 relative.
//!
//! Limits (checked up front by [`check_attention`], so the optimizer keeps the decomposed ops
//! otherwise): f32 only, `D, Dv ≤` [`MAX_HEAD_DIM`], at most 65535 batch entries, at most 8
//! bindings. Tuning space: register-tiled — rows per invocation (4, or 1) and invocations per
//! workgroup (8…64, enough for S); workgroup memory — rows per workgroup `R` (8…64, the next
//! power of two ≥ S, capped at 64) and the key tile (16); workgroup memory
//! `4·(TILE·(D + Dv) + R·TILE)` ≤ 12 KiB.

use super::common::{broadcasts_to, dot_strides, load, strides, unravel};
use super::epilogue::{Bound, Epilogue, finish_launch};
use super::{Arg, LowerCtx, LowerError, Lowered, TensorDesc, check_storage};
use crate::builder::{KernelBuilder, builtin_i32, f, i, select, u};
use crate::ir::{Access, Barrier, Builtin, Expr, Scalar, Type, UnOp, Var};
use optc_ir::dtype::DType;
use optc_ir::ops::{Fused, FusedAttention, Op, inverse_permutation, permute};
use optc_ir::tensor::Tensor;

/// Largest head dim (`D` and `Dv`) the template accepts.
pub const MAX_HEAD_DIM: usize = 64;
/// Keys per workgroup-memory tile.
pub const TILE: usize = 16;
/// Most workgroups along y (one per batch entry).
const MAX_BATCH: usize = 65535;

/// An operand (or the output) in its canonical layout: element strides of the output batch
/// dims (0 where broadcast) and of its two matrix dims, whatever layout it is stored in.
#[derive(Clone, Debug)]
struct View {
    batch: Vec<usize>,
    rows: usize,
    cols: usize,
}

impl View {
    /// The canonical view of a tensor stored with dims `stored`, whose canonical dims are
    /// `stored` permuted by `perm` (`None`: stored canonically), within output batch `batch`.
    fn new(stored: &[usize], perm: Option<&[usize]>, batch: &[usize]) -> Option<View> {
        let st = strides(stored);
        let (dims, st) = match perm {
            None => (stored.to_vec(), st),
            Some(p) => (permute(stored, p)?, permute(&st, p)?),
        };
        let r = dims.len();
        let off = batch.len().checked_sub(r - 2)?;
        let bst = (0..batch.len())
            .map(|j| {
                if j < off || dims[j - off] == 1 {
                    0
                } else {
                    st[j - off]
                }
            })
            .collect();
        Some(View {
            batch: bst,
            rows: st[r - 2],
            cols: st[r - 1],
        })
    }

    /// Every stride but the columns' a multiple of 4 and the columns contiguous: rows can be
    /// read and written as vec4.
    fn vec4_rows(&self) -> bool {
        self.cols == 1 && self.rows % 4 == 0 && self.batch.iter().all(|s| s % 4 == 0)
    }

    /// Every stride but the rows' a multiple of 4 and the rows contiguous (a transposed view).
    fn vec4_cols(&self) -> bool {
        self.rows == 1 && self.cols % 4 == 0 && self.batch.iter().all(|s| s % 4 == 0)
    }
}

/// What the analysis found.
struct Plan {
    /// Output batch dims and their product.
    batch: Vec<usize>,
    nb: usize,
    /// Canonical views of Q `[S, D]`, Kt `[D, T]`, V `[T, Dv]` and the output `[S, Dv]`.
    views: [View; 4],
    s: usize,
    t: usize,
    d: usize,
    dv: usize,
    /// Rows per workgroup.
    r: usize,
    ep: Option<Epilogue>,
}

fn analyse(ctx: &LowerCtx<'_>, a: &FusedAttention) -> Result<Plan, LowerError> {
    check_storage(ctx)?;
    let n_extra = optc_ir::opset::attention::num_extras(a);
    if ctx.inputs.len() != 3 + n_extra {
        return Err(ctx.invalid(format!(
            "{} inputs, expected Q, Kt, V and {n_extra} score operands",
            ctx.inputs.len()
        )));
    }
    let (q, k, v, out) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?, ctx.output(0)?);
    for x in [q, k, v, out] {
        if x.dtype != DType::F32 {
            return Err(ctx.unsupported(format!("needs {}", x.dtype.name())));
        }
        if x.shape.len() < 2 {
            return Err(ctx.unsupported("with an operand of rank < 2"));
        }
    }
    // Canonical dims: the layout's permutations applied to Q, Kt and V, and inverted for the
    // output (which is stored as `Transpose(y, out)`).
    let out_perm = a.layout.as_ref().map(|l| inverse_permutation(&l.out));
    let perm_of = |j: usize| a.layout.as_ref().and_then(|l| l.input(j));
    let (Some(qdims), Some(kdims), Some(vdims), Some(odims)) = (
        a.input_dims(0, &q.shape),
        a.input_dims(1, &k.shape),
        a.input_dims(2, &v.shape),
        match &out_perm {
            None => Some(out.shape.clone()),
            Some(inv) => inv.as_ref().and_then(|inv| permute(&out.shape, inv)),
        },
    ) else {
        return Err(ctx.invalid("a layout permutation does not fit its operand"));
    };
    let last2 = |x: &[usize]| {
        let r = x.len();
        (x[r - 2], x[r - 1], x[..r - 2].to_vec())
    };
    let (s, d, qb) = last2(&qdims);
    let (kd, t, kb) = last2(&kdims);
    let (vt, dv, vb) = last2(&vdims);
    let (os, odv, batch) = last2(&odims);
    if kd != d || vt != t || os != s || odv != dv {
        return Err(ctx.invalid(format!(
            "shapes Q {:?}, Kt {:?}, V {:?}, output {:?} do not chain (layout {:?})",
            q.shape, k.shape, v.shape, out.shape, a.layout
        )));
    }
    if [s, t, d, dv].contains(&0) {
        return Err(ctx.unsupported("with an empty dimension"));
    }
    if d > MAX_HEAD_DIM || dv > MAX_HEAD_DIM {
        return Err(ctx.unsupported(format!(
            "with head dims {d}/{dv} (the attention kernel takes at most {MAX_HEAD_DIM})"
        )));
    }
    for x in [&qb, &kb, &vb] {
        if !broadcasts_to(x, &batch) {
            return Err(ctx.invalid(format!("batch {x:?} does not broadcast to {batch:?}")));
        }
    }
    // The scores' batch (Q and Kt broadcast together) must be the output's: the score program's
    // operands are addressed in it.
    let rank = batch.len();
    let dim = |x: &[usize], j: usize| {
        let off = rank - x.len();
        if j < off { 1 } else { x[j - off] }
    };
    if (0..rank).any(|j| dim(&qb, j).max(dim(&kb, j)) != batch[j]) {
        return Err(ctx.unsupported("with V broadcast over more batch entries than the scores"));
    }
    let nb: usize = batch.iter().product();
    if nb > MAX_BATCH {
        return Err(ctx.unsupported(format!("with {nb} batch entries (at most {MAX_BATCH})")));
    }
    if nb
        .checked_mul(s)
        .and_then(|x| x.checked_mul(t.max(dv)))
        .is_none_or(|x| x > i32::MAX as usize)
    {
        return Err(ctx.unsupported("with more than 2^31 scores"));
    }
    let ep = match &a.score {
        None => None,
        Some(p) => {
            // The score program as the epilogue of `MatMul(Q, Kt)`, on a context whose inputs
            // are Q, Kt and the extras and whose output is the scores.
            let f = Fused {
                anchor: Some(Op::MatMul),
                anchor_inputs: 2,
                program: p.clone(),
            };
            let sop = Op::Fused(Box::new(f.clone()));
            let mut inputs: Vec<Option<TensorDesc>> = vec![
                Some(TensorDesc::new(DType::F32, qdims.clone())),
                Some(TensorDesc::new(DType::F32, kdims.clone())),
            ];
            inputs.extend(ctx.inputs[3..].iter().cloned());
            let values: Vec<Option<&Tensor>> = [0, 1]
                .into_iter()
                .chain(3..ctx.inputs.len())
                .map(|j| ctx.value(j))
                .collect();
            let mut sshape = batch.clone();
            sshape.extend([s, t]);
            let outputs = [Some(TensorDesc::new(DType::F32, sshape))];
            let sctx = LowerCtx {
                op: &sop,
                name: ctx.name,
                inputs: &inputs,
                values: &values,
                outputs: &outputs,
                features: ctx.features,
            };
            let mut ep = Epilogue::new(&sctx, &f, DType::F32)?;
            for (k, e) in ep.extras.iter_mut().enumerate() {
                e.arg = Arg::Input(3 + k);
            }
            Some(ep)
        }
    };
    if let Some(ep) = &ep {
        ep.check_bindings(ctx, 4)?;
    }
    let r = s.next_power_of_two().clamp(8, 64);
    let view = |x: &TensorDesc, perm: Option<&[usize]>| {
        View::new(&x.shape, perm, &batch).ok_or_else(|| ctx.invalid("operand layout"))
    };
    let views = [
        view(q, perm_of(0))?,
        view(k, perm_of(1))?,
        view(v, perm_of(2))?,
        view(out, out_perm.flatten().as_deref())?,
    ];
    Ok(Plan {
        batch,
        nb,
        views,
        s,
        t,
        d,
        dv,
        r,
        ep,
    })
}

fn attention_of<'a>(ctx: &LowerCtx<'a>) -> Result<&'a FusedAttention, LowerError> {
    match ctx.op {
        Op::FusedAttention(a) => Ok(a),
        _ => Err(ctx.invalid("not a fused attention op")),
    }
}

/// `Ok` exactly when [`lower_attention`] accepts this op; builds nothing.
pub fn check_attention(ctx: &LowerCtx<'_>) -> Result<(), LowerError> {
    analyse(ctx, attention_of(ctx)?).map(|_| ())
}

/// Whether the templates lower fused attention op `a` with these input descriptors, known
/// input contents (`&[]` when none are known) and output descriptor: [`check_attention`] on the
/// corresponding context.
pub fn supports_attention(
    a: &FusedAttention,
    inputs: &[Option<TensorDesc>],
    values: &[Option<&Tensor>],
    output: &TensorDesc,
) -> bool {
    let op = Op::FusedAttention(Box::new(a.clone()));
    super::fused::supports_fused_op(&op, inputs, values, output)
}

/// The element offsets of batch entry `bi` (of the output batch) in Q, Kt, V and the output.
fn batch_offsets(b: &mut KernelBuilder, bi: &Expr, p: &Plan) -> [Expr; 4] {
    let coords = unravel(b, bi, &p.batch);
    let off = |b: &mut KernelBuilder, v: &View| b.let_(Type::I32, dot_strides(&coords, &v.batch));
    [
        off(b, &p.views[0]),
        off(b, &p.views[1]),
        off(b, &p.views[2]),
        off(b, &p.views[3]),
    ]
}

/// Lowers a fused attention op to one kernel launch (see the module docs): the register-tiled
/// kernel where head dims and key count are multiples of 4, the workgroup-memory one otherwise.
pub fn lower_attention(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    let a = attention_of(ctx)?;
    let p = analyse(ctx, a)?;
    match tiled_keys(&p) {
        Some(keys) => lower_tiled(ctx, a, &p, keys),
        None => lower_shared(ctx, a, &p),
    }
}

/// Query rows per invocation of the register-tiled kernel (each holds `D + Dv` floats of query
/// and accumulator): 4 on CPU-like devices (lavapipe, `benches/fusion.rs`: 4 rows run S = 128
/// in 475 µs, 2 rows in 630, 8 rows in 452 but with 1024 floats per invocation), 1 where the
/// register file is small ([`super::Features::small_register_file`]).
pub const TILED_ROWS: usize = 4;
/// Keys per block of the register-tiled kernel: one per lane of a group of 8.
const KEYS: usize = 8;

/// How the register-tiled kernel reads the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keys {
    /// Kt `[D, T]` with the keys contiguous: lane `j` loads Kt rows `j + 8i`, 8 keys each.
    Columns,
    /// K stored `[T, D]` (Kt a transposed view; torch's head split): lane `j` loads key
    /// `j0 + j`'s row, and each score is a dot product of vec4s.
    Rows,
}

/// The key form of the register-tiled kernel when it applies: head dims multiples of 4, Q, V
/// and the output rows contiguous and vec4-aligned, and K's rows (any key count) or Kt's (a
/// key count that is a multiple of 4).
fn tiled_keys(p: &Plan) -> Option<Keys> {
    if p.d % 4 != 0 || p.dv % 4 != 0 {
        return None;
    }
    let [q, k, v, o] = &p.views;
    if !(q.vec4_rows() && v.vec4_rows() && o.vec4_rows()) {
        return None;
    }
    if k.vec4_rows() && p.t % 4 == 0 {
        Some(Keys::Columns)
    } else if k.vec4_cols() {
        Some(Keys::Rows)
    } else {
        None
    }
}

/// The register-tiled kernel (see the module docs).
fn lower_tiled(
    ctx: &LowerCtx<'_>,
    a: &FusedAttention,
    p: &Plan,
    keys: Keys,
) -> Result<Lowered, LowerError> {
    let [qv, kv, vv, ov] = &p.views;
    let (s, t, d, dv) = (p.s, p.t, p.d, p.dv);
    let per_lane = if ctx.features.small_register_file {
        1
    } else {
        TILED_ROWS
    };
    let wg = s.div_ceil(per_lane).next_power_of_two().clamp(8, 64);
    let rows = wg * per_lane;
    let v4 = Type::vec(Scalar::F32, 4);
    let splat = |e: Expr| Expr::Splat(4, Box::new(e));
    let neg_inf = || f(f32::NEG_INFINITY);
    let mut b = KernelBuilder::new(ctx.kname("attention"), [wg as u32, 1, 1]);
    let qb = b.buffer("q", v4, Access::Read);
    let kb = b.buffer("kt", v4, Access::Read);
    let vb = b.buffer("v", v4, Access::Read);
    let mut args = vec![Arg::Input(0), Arg::Input(1), Arg::Input(2)];
    let bound = p.ep.as_ref().map(|e| e.bind(&mut b, &mut args));
    let ob = b.buffer("y", v4, Access::ReadWrite);
    args.push(Arg::Output(0));

    let lid = b.let_(Type::I32, builtin_i32(Builtin::LocalId(0)));
    // This lane's part of every shared load: Kt rows jl + 8i, V row j0 + jl.
    let jl = b.let_(
        Type::I32,
        (Expr::Builtin(Builtin::SubgroupLane) % u(KEYS as u32)).cast(Scalar::I32),
    );
    let bi = b.let_(Type::I32, builtin_i32(Builtin::WorkgroupId(1)));
    let row0 = b.let_(
        Type::I32,
        builtin_i32(Builtin::WorkgroupId(0)) * i(rows as i32) + lid,
    );
    let [qoff, koff, voff, ooff] = batch_offsets(&mut b, &bi, p);
    // Per row r of the lane: rows row0 + r·wg; past S, row S - 1 is read and nothing stored.
    struct Row {
        row: Expr,
        valid: Expr,
        q: Vec<Expr>,
        m: Var,
        l: Var,
        bad: Var,
        acc: Vec<Var>,
        sflat: Expr,
    }
    let mut rs: Vec<Row> = Vec::new();
    for r in 0..per_lane {
        let row = b.let_(Type::I32, row0.clone() + i((r * wg) as i32));
        let valid = b.let_(Type::BOOL, row.clone().lt(i(s as i32)));
        let rowc = b.let_(Type::I32, row.clone().min(i(s as i32 - 1)));
        let qrow = b.let_(
            Type::I32,
            (qoff.clone() + rowc.clone() * i(qv.rows as i32)) / i(4),
        );
        let q = (0..d / 4)
            .map(|c| b.let_(v4, Expr::load(qb, qrow.clone() + i(c as i32))))
            .collect();
        let sflat = b.let_(Type::I32, (bi.clone() * i(s as i32) + rowc) * i(t as i32));
        rs.push(Row {
            row,
            valid,
            q,
            m: b.var(Type::F32, neg_inf()),
            l: b.var(Type::F32, f(0.0)),
            bad: b.var(Type::BOOL, Expr::Bool(false)),
            acc: (0..dv / 4).map(|_| b.var(v4, splat(f(0.0)))).collect(),
            sflat,
        });
    }

    // The lane's query rows (vec4 chunks), for the key loads.
    let qs: Vec<Vec<Expr>> = rs.iter().map(|r| r.q.clone()).collect();
    b.for_(i(0), i(t as i32), KEYS as i32, false, |b, j0| {
        let j0 = b.let_(Type::I32, j0);
        // Scores of keys j0..j0+8: sc[r][h] holds keys j0 + 4h..+4. Lane jl loads Kt rows
        // jl + 8i (two vec4 of keys each); every lane gets row dd from lane dd % 8.
        let sc: Vec<Vec<Var>> = (0..per_lane)
            .map(|_| (0..2).map(|_| b.var(v4, splat(f(0.0)))).collect())
            .collect();
        let blk = KeyBlock {
            sc: &sc,
            q: &qs,
            kb,
            koff: &koff,
            jl: &jl,
            j0: &j0,
            d,
            t,
        };
        match keys {
            Keys::Columns => key_columns(b, &blk, kv.rows),
            Keys::Rows => key_rows(b, &blk, kv.cols),
        }
        // The block's keys, whether each is inside T (always, when T is a multiple of the
        // block), and the clamped key the score program reads past T (the score is dropped).
        let block_keys: Vec<(Option<Expr>, Expr)> = (0..KEYS as i32)
            .map(|e| {
                let key = j0.clone() + i(e);
                if t % KEYS == 0 {
                    return (None, key);
                }
                let inside = b.let_(Type::BOOL, key.clone().lt(i(t as i32)));
                let clamped = b.let_(Type::I32, key.min(i(t as i32 - 1)));
                (Some(inside), clamped)
            })
            .collect();
        // Score program, out-of-range keys and the online softmax, per row.
        let mut probs: Vec<Vec<Expr>> = Vec::new();
        for (row, acc) in rs.iter().zip(&sc) {
            let mut s2 = Vec::new();
            for (h, &half) in acc.iter().enumerate() {
                let mut lanes = Vec::new();
                for e in 0..4 {
                    let (inside, key) = block_keys[4 * h + e].clone();
                    let flat = row.sflat.clone() + key;
                    let v = Expr::Var(half).lane(e as u8);
                    lanes.push(filter_score(b, bound.as_ref(), v, flat, inside, row.bad));
                }
                s2.push(b.let_(v4, Expr::Vector(lanes)));
            }
            let tmax = b.let_(
                Type::F32,
                (0..4)
                    .map(|e| s2[0].clone().lane(e).max(s2[1].clone().lane(e)))
                    .reduce(|x, y| x.max(y))
                    .unwrap_or(neg_inf()),
            );
            let Rescale { mnew, dead, alpha } = rescale(b, row.m, tmax);
            let pr: Vec<Expr> = s2
                .iter()
                .map(|x| {
                    b.let_(
                        v4,
                        select(
                            dead.clone(),
                            splat(f(0.0)),
                            (x.clone() - splat(mnew.clone())).un(UnOp::Exp),
                        ),
                    )
                })
                .collect();
            let psum = (0..4)
                .map(|e| pr[0].clone().lane(e) + pr[1].clone().lane(e))
                .reduce(|x, y| x + y)
                .unwrap_or(f(0.0));
            b.assign(row.l, Expr::Var(row.l) * alpha.clone() + psum);
            for &c in &row.acc {
                b.assign(c, Expr::Var(c) * splat(alpha.clone()));
            }
            b.assign(row.m, mnew);
            probs.push(pr);
        }
        // acc += p · V: lane jl loads V row j0 + jl; every lane gets row j from lane j.
        let vrow = b.let_(Type::I32, j0.clone() + jl.clone());
        let v_in = b.let_(Type::BOOL, vrow.clone().lt(i(t as i32)));
        let vbase = b.let_(
            Type::I32,
            (voff.clone() + vrow.min(i(t as i32 - 1)) * i(vv.rows as i32)) / i(4),
        );
        for c in 0..dv / 4 {
            let own = b.let_(
                v4,
                select(
                    v_in.clone(),
                    Expr::load(vb, vbase.clone() + i(c as i32)),
                    splat(f(0.0)),
                ),
            );
            for e in 0..KEYS {
                let vv = b.let_(v4, own.clone().broadcast(e as u32));
                for (row, pr) in rs.iter().zip(&probs) {
                    let pe = splat(pr[e / 4].clone().lane((e % 4) as u8));
                    b.assign(row.acc[c], pe.fma(vv.clone(), Expr::Var(row.acc[c])));
                }
            }
        }
    });

    let fill = if a.nan_fill_zero { f(0.0) } else { f(f32::NAN) };
    for row in &rs {
        b.if_(row.valid.clone(), |b| {
            let (fail, inv) = row_result(b, row.bad, row.l);
            let obase = b.let_(
                Type::I32,
                (ooff.clone() + row.row.clone() * i(ov.rows as i32)) / i(4),
            );
            for (c, &acc) in row.acc.iter().enumerate() {
                let v = select(
                    fail.clone(),
                    splat(fill.clone()),
                    Expr::Var(acc) * splat(inv.clone()),
                );
                b.store(ob, obase.clone() + i(c as i32), v);
            }
        });
    }
    one_launch(b, args, bound, [s.div_ceil(rows) as u32, p.nb as u32, 1])
}

/// One block of keys `j0..j0+8` of the register-tiled kernel: where its scores go (`sc[r][h]`
/// holds keys `j0 + 4h..+4` of the lane's row `r`), the lane's query rows (vec4 chunks), the
/// key buffer and its batch offset, this lane's key slot `jl`, and the head dim and key count.
struct KeyBlock<'a> {
    sc: &'a [Vec<Var>],
    q: &'a [Vec<Expr>],
    kb: u32,
    koff: &'a Expr,
    jl: &'a Expr,
    j0: &'a Expr,
    d: usize,
    t: usize,
}

/// The block's scores from Kt `[D, T]` with the keys contiguous (`dstride` between Kt rows):
/// lane `jl` loads Kt rows `jl + 8i` (two vec4 of keys each); every lane takes row `dd` from
/// lane `dd % 8`.
fn key_columns(b: &mut KernelBuilder, blk: &KeyBlock, dstride: usize) {
    let KeyBlock {
        sc,
        q,
        kb,
        koff,
        jl,
        j0,
        d,
        t,
    } = *blk;
    let v4 = Type::vec(Scalar::F32, 4);
    let splat = |e: Expr| Expr::Splat(4, Box::new(e));
    // The second half of the block may lie past T (T % 8 == 4): clamped and zeroed.
    let hi_in = b.let_(Type::BOOL, (j0.clone() + i(4)).lt(i(t as i32)));
    let hi_key = b.let_(Type::I32, (j0.clone() + i(4)).min(i(t as i32 - 4)));
    for kblk in 0..d.div_ceil(KEYS) {
        let dd = b.let_(Type::I32, jl.clone() + i((KEYS * kblk) as i32));
        let dd_in = b.let_(Type::BOOL, dd.clone().lt(i(d as i32)));
        let ddc = b.let_(Type::I32, dd.min(i(d as i32 - 1)));
        let rowk = b.let_(Type::I32, koff.clone() + ddc * i(dstride as i32));
        let lo = b.let_(
            v4,
            select(
                dd_in.clone(),
                Expr::load(kb, (rowk.clone() + j0.clone()) / i(4)),
                splat(f(0.0)),
            ),
        );
        let hi = b.let_(
            v4,
            select(
                dd_in.and(hi_in.clone()),
                Expr::load(kb, (rowk + hi_key.clone()) / i(4)),
                splat(f(0.0)),
            ),
        );
        for e in 0..KEYS.min(d - KEYS * kblk) {
            let dk = KEYS * kblk + e;
            for (h, part) in [&lo, &hi].into_iter().enumerate() {
                let kd = b.let_(v4, part.clone().broadcast(e as u32));
                for (qr, acc) in q.iter().zip(sc) {
                    let qd = splat(qr[dk / 4].clone().lane((dk % 4) as u8));
                    b.assign(acc[h], qd.fma(kd.clone(), Expr::Var(acc[h])));
                }
            }
        }
    }
}

/// The block's scores from K stored `[T, D]` (`tstride` between keys, D contiguous): lane
/// `jl` loads key `j0 + jl`'s row as vec4s (zero past T); every lane takes key `e`'s chunks
/// from lane `e` and accumulates vec4 partial products, summed into `sc` at the end.
fn key_rows(b: &mut KernelBuilder, blk: &KeyBlock, tstride: usize) {
    let KeyBlock {
        sc,
        q,
        kb,
        koff,
        jl,
        j0,
        d,
        t,
    } = *blk;
    let v4 = Type::vec(Scalar::F32, 4);
    let splat = |e: Expr| Expr::Splat(4, Box::new(e));
    let key = b.let_(Type::I32, j0.clone() + jl.clone());
    let k_in = b.let_(Type::BOOL, key.clone().lt(i(t as i32)));
    let kbase = b.let_(
        Type::I32,
        (koff.clone() + key.min(i(t as i32 - 1)) * i(tstride as i32)) / i(4),
    );
    let own: Vec<Expr> = (0..d / 4)
        .map(|c| {
            b.let_(
                v4,
                select(
                    k_in.clone(),
                    Expr::load(kb, kbase.clone() + i(c as i32)),
                    splat(f(0.0)),
                ),
            )
        })
        .collect();
    // part[r][e]: row r's lane-wise partial products with key j0 + e.
    let part: Vec<Vec<Var>> = q
        .iter()
        .map(|_| (0..KEYS).map(|_| b.var(v4, splat(f(0.0)))).collect())
        .collect();
    for (c, chunk) in own.iter().enumerate() {
        for e in 0..KEYS {
            let kc = b.let_(v4, chunk.clone().broadcast(e as u32));
            for (qr, pr) in q.iter().zip(&part) {
                b.assign(pr[e], qr[c].clone().fma(kc.clone(), Expr::Var(pr[e])));
            }
        }
    }
    for (pr, acc) in part.iter().zip(sc) {
        for (h, &half) in acc.iter().enumerate() {
            let lanes = (0..4)
                .map(|e| {
                    let x = Expr::Var(pr[4 * h + e]);
                    (x.clone().lane(0) + x.clone().lane(1)) + (x.clone().lane(2) + x.lane(3))
                })
                .collect();
            b.assign(half, Expr::Vector(lanes));
        }
    }
}

/// The workgroup-memory kernel (see the module docs).
fn lower_shared(ctx: &LowerCtx<'_>, a: &FusedAttention, p: &Plan) -> Result<Lowered, LowerError> {
    let (s, t, d, dv, r) = (p.s, p.t, p.d, p.dv, p.r);
    let [qv, kv, vv, ov] = &p.views;
    let neg_inf = || f(f32::NEG_INFINITY);
    let mut b = KernelBuilder::new(ctx.kname("attention"), [r as u32, 1, 1]);
    let qb = b.buffer("q", Type::F32, Access::Read);
    let kb = b.buffer("kt", Type::F32, Access::Read);
    let vb = b.buffer("v", Type::F32, Access::Read);
    let mut args = vec![Arg::Input(0), Arg::Input(1), Arg::Input(2)];
    let bound = p.ep.as_ref().map(|e| e.bind(&mut b, &mut args));
    let ob = b.buffer("y", Type::F32, Access::ReadWrite);
    args.push(Arg::Output(0));
    let ks = b.shared("ks", Type::F32, (TILE * d) as u32);
    let vs = b.shared("vs", Type::F32, (TILE * dv) as u32);
    let ss = b.shared("ss", Type::F32, (TILE * r) as u32);

    let lid = b.let_(Type::I32, builtin_i32(Builtin::LocalId(0)));
    let row = b.let_(
        Type::I32,
        builtin_i32(Builtin::WorkgroupId(0)) * i(r as i32) + lid.clone(),
    );
    let bi = b.let_(Type::I32, builtin_i32(Builtin::WorkgroupId(1)));
    let valid = b.let_(Type::BOOL, row.clone().lt(i(s as i32)));
    // Rows past the end load row S-1 (in range) and store nothing.
    let rowc = b.let_(Type::I32, row.clone().min(i(s as i32 - 1)));
    let [qoff, koff, voff, ooff] = batch_offsets(&mut b, &bi, p);
    let qrow = b.let_(Type::I32, qoff + rowc.clone() * i(qv.rows as i32));
    let qvals: Vec<Expr> = (0..d)
        .map(|k| {
            let idx = qrow.clone() + i((k * qv.cols) as i32);
            b.let_(Type::F32, load(qb, idx, DType::F32))
        })
        .collect();
    let m = b.var(Type::F32, neg_inf());
    let l = b.var(Type::F32, f(0.0));
    let bad = b.var(Type::BOOL, Expr::Bool(false));
    let acc: Vec<_> = (0..dv).map(|_| b.var(Type::F32, f(0.0))).collect();
    // Flat index of score (bi, row, 0).
    let sflat = b.let_(
        Type::I32,
        (bi.clone() * i(s as i32) + rowc.clone()) * i(t as i32),
    );

    b.for_(i(0), i(t as i32), TILE as i32, false, |b, t0| {
        let t0 = b.let_(Type::I32, t0);
        // Kt tile: element e = dd·TILE + j is Kt[dd, t0 + j] (runs of TILE consecutive keys).
        b.for_(
            lid.clone(),
            i((TILE * d) as i32),
            r as i32,
            false,
            |b, e| {
                let dd = b.let_(Type::I32, e.clone() / i(TILE as i32));
                let j = b.let_(Type::I32, e % i(TILE as i32));
                let tk = b.let_(Type::I32, t0.clone() + j.clone());
                let idx = koff.clone()
                    + dd.clone() * i(kv.rows as i32)
                    + tk.clone().min(i(t as i32 - 1)) * i(kv.cols as i32);
                let val = select(tk.lt(i(t as i32)), load(kb, idx, DType::F32), f(0.0));
                b.store_shared(ks, j * i(d as i32) + dd, val);
            },
        );
        // V tile: element e = j·Dv + dd is V[t0 + j, dd].
        b.for_(
            lid.clone(),
            i((TILE * dv) as i32),
            r as i32,
            false,
            |b, e| {
                let e = b.let_(Type::I32, e);
                let tv = b.let_(Type::I32, t0.clone() + e.clone() / i(dv as i32));
                let dd = e.clone() % i(dv as i32);
                let idx = voff.clone()
                    + tv.clone().min(i(t as i32 - 1)) * i(vv.rows as i32)
                    + dd * i(vv.cols as i32);
                let val = select(tv.lt(i(t as i32)), load(vb, idx, DType::F32), f(0.0));
                b.store_shared(vs, e, val);
            },
        );
        b.barrier(Barrier::Workgroup);
        let n = b.let_(Type::I32, (i(t as i32) - t0.clone()).min(i(TILE as i32)));
        b.if_(valid.clone(), |b| {
            let tmax = b.var(Type::F32, neg_inf());
            b.for_(i(0), n.clone(), 1, false, |b, j| {
                let j = b.let_(Type::I32, j);
                let sv = b.var(Type::F32, f(0.0));
                let kbase = b.let_(Type::I32, j.clone() * i(d as i32));
                for (k, qk) in qvals.iter().enumerate() {
                    let kk = Expr::load_shared(ks, kbase.clone() + i(k as i32));
                    b.assign(sv, qk.clone().fma(kk, Expr::Var(sv)));
                }
                let flat = sflat.clone() + t0.clone() + j.clone();
                let s2 = filter_score(b, bound.as_ref(), Expr::Var(sv), flat, None, bad);
                let s2 = b.let_(Type::F32, s2);
                b.store_shared(ss, j * i(r as i32) + lid.clone(), s2.clone());
                b.assign(tmax, Expr::Var(tmax).max(s2));
            });
            let Rescale { mnew, dead, alpha } = rescale(b, m, Expr::Var(tmax));
            b.assign(l, Expr::Var(l) * alpha.clone());
            for &c in &acc {
                b.assign(c, Expr::Var(c) * alpha.clone());
            }
            b.for_(i(0), n.clone(), 1, false, |b, j| {
                let j = b.let_(Type::I32, j);
                let sj = Expr::load_shared(ss, j.clone() * i(r as i32) + lid.clone());
                let pj = b.let_(
                    Type::F32,
                    select(dead.clone(), f(0.0), (sj - mnew.clone()).un(UnOp::Exp)),
                );
                b.assign(l, Expr::Var(l) + pj.clone());
                let vbase = b.let_(Type::I32, j * i(dv as i32));
                for (k, &c) in acc.iter().enumerate() {
                    let vv = Expr::load_shared(vs, vbase.clone() + i(k as i32));
                    b.assign(c, pj.clone().fma(vv, Expr::Var(c)));
                }
            });
            b.assign(m, mnew);
        });
        b.barrier(Barrier::Workgroup);
    });

    let fill = if a.nan_fill_zero { f(0.0) } else { f(f32::NAN) };
    b.if_(valid, |b| {
        let (fail, inv) = row_result(b, bad, l);
        let obase = b.let_(Type::I32, ooff + row * i(ov.rows as i32));
        for (k, &c) in acc.iter().enumerate() {
            let v = select(fail.clone(), fill.clone(), Expr::Var(c) * inv.clone());
            b.store(ob, obase.clone() + i((k * ov.cols) as i32), v);
        }
    });
    one_launch(b, args, bound, [s.div_ceil(r) as u32, p.nb as u32, 1])
}

/// A score after the score program (its extras read at flat score index `flat`): the value
/// the softmax takes — `-inf` for a NaN or `+inf` score, or for a key outside the row
/// (`inside` false) — with `bad` set when an in-row score makes the reference softmax NaN.
fn filter_score(
    b: &mut KernelBuilder,
    bound: Option<&Bound<'_>>,
    v: Expr,
    flat: Expr,
    inside: Option<Expr>,
    bad: Var,
) -> Expr {
    let v = match bound {
        Some(bound) => {
            let flat = b.let_(Type::I32, flat);
            bound.apply(b, v, &flat)
        }
        None => v,
    };
    let v = b.let_(Type::F32, v);
    let nonfinite = v
        .clone()
        .un(UnOp::IsNan)
        .or(v.clone().un(UnOp::IsInf).and(v.clone().gt(f(0.0))));
    let isbad = b.let_(
        Type::BOOL,
        match &inside {
            Some(ok) => ok.clone().and(nonfinite),
            None => nonfinite,
        },
    );
    b.assign(bad, Expr::Var(bad).or(isbad.clone()));
    let keep = match inside {
        Some(ok) => ok.and(isbad.un(UnOp::Not)),
        None => isbad.un(UnOp::Not),
    };
    select(keep, v, f(f32::NEG_INFINITY))
}

/// The online softmax's step to a block whose maximum is `tmax`.
struct Rescale {
    /// The new running maximum.
    mnew: Expr,
    /// Whether it is `-inf`: scores are finite or `-inf` here, so every score so far is.
    dead: Expr,
    /// `exp(m_old − mnew)` (1 when dead), for the running sum and accumulator.
    alpha: Expr,
}

fn rescale(b: &mut KernelBuilder, m: Var, tmax: Expr) -> Rescale {
    let mnew = b.let_(Type::F32, Expr::Var(m).max(tmax));
    let dead = b.let_(Type::BOOL, mnew.clone().un(UnOp::IsInf));
    let alpha = b.let_(
        Type::F32,
        select(
            dead.clone(),
            f(1.0),
            (Expr::Var(m) - mnew.clone()).un(UnOp::Exp),
        ),
    );
    Rescale { mnew, dead, alpha }
}

/// A finished row: whether its reference softmax is NaN (a flagged score, or every score
/// `-inf`: the sum is 0), and `1 / sum`.
fn row_result(b: &mut KernelBuilder, bad: Var, l: Var) -> (Expr, Expr) {
    let fail = b.let_(Type::BOOL, Expr::Var(bad).or(Expr::Var(l).eq_(f(0.0))));
    let inv = b.let_(Type::F32, f(1.0) / Expr::Var(l));
    (fail, inv)
}

/// The kernel as the op's one launch, after the score program reports its errors.
fn one_launch(
    b: KernelBuilder,
    args: Vec<Arg>,
    bound: Option<Bound<'_>>,
    grid: [u32; 3],
) -> Result<Lowered, LowerError> {
    Ok(Lowered {
        launches: vec![finish_launch(b, args, bound, grid)?],
        ..Lowered::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::Features;
    use crate::lower::sim::{assert_close, rand_t, run_op, run_op_for};
    use optc_ir::ops::{BinaryOp, Program, Step};

    fn op(score: Option<Program>, nan_fill_zero: bool) -> Op {
        Op::FusedAttention(Box::new(FusedAttention {
            score,
            nan_fill_zero,
            layout: None,
        }))
    }

    /// The register-tiled key form `o` lowers to on these inputs (`None`: the workgroup-memory
    /// kernel), so each case checks the kernel it means to.
    fn keys_for(o: &Op, ins: &[Option<Tensor>], features: Features) -> Option<Keys> {
        let want = optc_ir::interp::eval_op(o, ins, 1).expect("reference eval");
        let desc = |t: &Tensor| TensorDesc::new(t.dtype(), t.shape().to_vec());
        let descs: Vec<Option<TensorDesc>> = ins.iter().map(|t| t.as_ref().map(desc)).collect();
        let outs = [Some(desc(&want[0]))];
        let values = vec![None; ins.len()];
        let ctx = LowerCtx {
            op: o,
            name: "n0",
            inputs: &descs,
            values: &values,
            outputs: &outs,
            features,
        };
        let a = attention_of(&ctx).expect("fused attention");
        tiled_keys(&analyse(&ctx, a).expect("analysis"))
    }

    fn add_mask() -> Program {
        Program {
            inputs: 2,
            steps: vec![Step {
                op: Op::Binary(BinaryOp::Add),
                args: vec![Some(0), Some(1)],
            }],
        }
    }

    #[test]
    fn plain_attention_matches_reference() {
        for (batch, s, t, d, dv) in [
            (vec![2usize, 3], 5usize, 7usize, 4usize, 3usize),
            (vec![], 40, 33, 16, 8),
            (vec![1], 70, 18, 64, 64),
            // Register-tiled: T % 8 == 0 and == 4 (a half block), D not a multiple of 8,
            // several workgroups, rows past S.
            (vec![2], 70, 20, 64, 64),
            (vec![], 9, 16, 12, 8),
            (vec![3], 130, 24, 8, 4),
            (vec![1], 1, 4, 4, 4),
        ] {
            let sh = |a: usize, b: usize| {
                let mut x = batch.clone();
                x.extend([a, b]);
                x
            };
            let q = rand_t(&sh(s, d), 1);
            let k = rand_t(&sh(d, t), 2);
            let v = rand_t(&sh(t, dv), 3);
            let o = op(None, false);
            // 4 rows per invocation (CPU-like devices) and 1 (a GPU's register file).
            for small in [false, true] {
                let features = Features {
                    small_register_file: small,
                    ..Features::default()
                };
                let ins = [Some(q.clone()), Some(k.clone()), Some(v.clone())];
                let tiled = d % 4 == 0 && dv % 4 == 0 && t % 4 == 0;
                let keys = keys_for(&o, &ins, features);
                assert_eq!(keys, tiled.then_some(Keys::Columns), "{s} {t} {d} {dv}");
                let (got, want) = run_op_for(&o, &ins, &[], 3, features);
                assert_close(
                    &got[0],
                    &want[0],
                    &format!("{batch:?} {s} {t} {d} {dv} {small}"),
                );
            }
        }
    }

    #[test]
    fn masked_rows_and_nan_fill_match_reference() {
        // [2, 3, S, T] scores; the mask [2, 1, S, T] holds -inf at some keys and whole rows.
        // T = 21: the workgroup-memory kernel; T = 20: the register-tiled one.
        for t in [21usize, 20] {
            masked(t);
        }
    }

    fn masked(t: usize) {
        let (s, d) = (9usize, 8usize);
        let q = rand_t(&[2, 3, s, d], 4);
        let k = rand_t(&[2, 3, d, t], 5);
        let v = rand_t(&[2, 3, t, d], 6);
        let mut mask = vec![0f32; 2 * s * t];
        for (n, m) in mask.iter_mut().enumerate() {
            let (row, col) = ((n / t) % s, n % t);
            if row == 2 || (row + col) % 3 == 0 {
                *m = f32::NEG_INFINITY;
            }
        }
        let mask = Tensor::from_vec(vec![2, 1, s, t], mask).unwrap();
        for fill in [true, false] {
            let o = op(Some(add_mask()), fill);
            let ins = [
                Some(q.clone()),
                Some(k.clone()),
                Some(v.clone()),
                Some(mask.clone()),
            ];
            let keys = keys_for(&o, &ins, Features::default());
            assert_eq!(keys, (t % 4 == 0).then_some(Keys::Columns), "T = {t}");
            let (got, want) = run_op(&o, &ins, &[]);
            assert_close(&got[0], &want[0], &format!("fill {fill}"));
            let w = want[0].to_f64_vec();
            // Row 2 of every head is fully masked.
            assert_eq!(w[2 * d..3 * d].iter().all(|x| *x == 0.0), fill);
        }
    }

    #[test]
    fn head_split_layouts_match_reference() {
        // torch's SDPA export: Q', K', V' stored [b, s, h, d] (the head split without its
        // transpose), Kt = K' permuted [0, 2, 3, 1], the output stored [b, s, h, dv]; and the
        // same with K already transposed ([b, h, d, t]: Kt's keys contiguous).
        use optc_ir::ops::AttentionLayout;
        for (s, t, d, dv, k_rows) in [
            // Register-tiled, keys as K rows (any T) / as Kt columns.
            (9usize, 20usize, 8usize, 8usize, true),
            (13, 17, 8, 4, true),
            (33, 16, 64, 64, true),
            (9, 20, 8, 8, false),
            // Workgroup memory (odd head dims).
            (5, 7, 6, 3, true),
            (5, 7, 6, 3, false),
        ] {
            let (b, h) = (2usize, 3usize);
            let q = rand_t(&[b, s, h, d], 11);
            let (k, kperm) = if k_rows {
                (rand_t(&[b, t, h, d], 12), vec![0, 2, 3, 1])
            } else {
                (rand_t(&[b, h, d, t], 12), vec![0, 1, 2, 3])
            };
            let v = rand_t(&[b, t, h, dv], 13);
            let mask = rand_t(&[1, 1, s, t], 14);
            let layout = AttentionLayout {
                q: vec![0, 2, 1, 3],
                k: kperm,
                v: vec![0, 2, 1, 3],
                out: vec![0, 2, 1, 3],
            };
            let o = Op::FusedAttention(Box::new(FusedAttention {
                score: Some(add_mask()),
                nan_fill_zero: true,
                layout: Some(layout),
            }));
            for small in [false, true] {
                let features = Features {
                    small_register_file: small,
                    ..Features::default()
                };
                let ins = [
                    Some(q.clone()),
                    Some(k.clone()),
                    Some(v.clone()),
                    Some(mask.clone()),
                ];
                let want_keys = match (d % 4 == 0 && dv % 4 == 0, k_rows) {
                    (false, _) => None,
                    (true, true) => Some(Keys::Rows),
                    (true, false) => (t % 4 == 0).then_some(Keys::Columns),
                };
                assert_eq!(keys_for(&o, &ins, features), want_keys, "{s} {t} {d} {dv}");
                let (got, want) = run_op_for(&o, &ins, &[], 3, features);
                assert_eq!(got[0].shape(), &[b, s, h, dv]);
                assert_close(
                    &got[0],
                    &want[0],
                    &format!("{s} {t} {d} {dv} rows {k_rows}"),
                );
            }
        }
    }

    #[test]
    fn rejects_large_head_dims_and_other_dtypes() {
        let a = FusedAttention {
            score: None,
            nan_fill_zero: false,
            layout: None,
        };
        let dsc = |s: &[usize]| Some(TensorDesc::new(DType::F32, s.to_vec()));
        let ok = supports_attention(
            &a,
            &[dsc(&[2, 4, 64]), dsc(&[2, 64, 5]), dsc(&[2, 5, 64])],
            &[],
            &TensorDesc::new(DType::F32, vec![2, 4, 64]),
        );
        assert!(ok);
        let big = supports_attention(
            &a,
            &[dsc(&[2, 4, 128]), dsc(&[2, 128, 5]), dsc(&[2, 5, 8])],
            &[],
            &TensorDesc::new(DType::F32, vec![2, 4, 8]),
        );
        assert!(!big);
        let f16 = |s: &[usize]| Some(TensorDesc::new(DType::F16, s.to_vec()));
        let half = supports_attention(
            &a,
            &[f16(&[4, 8]), f16(&[8, 5]), f16(&[5, 8])],
            &[],
            &TensorDesc::new(DType::F16, vec![4, 8]),
        );
        assert!(!half);
    }
}
