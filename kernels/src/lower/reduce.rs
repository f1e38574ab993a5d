//! The row-reduction template and the ops built directly on it: ReduceSum/Mean/Max/Min/Prod/
//! L1/L2/SumSquare/LogSum/LogSumExp over any set of axes, ArgMax/ArgMin, CumSum and CumProd.
//!
//! The building block is [`RowGeom`] + [`RowKernel`]: a tensor is viewed as `rows` independent
//! rows of `len` elements each (the reduced coordinates, any set of axes), with every stride a
//! compile-time literal (adjacent axes that are contiguous in memory are merged, so a reduction
//! over the trailing axes is one loop with stride 1). A kernel folds one or more accumulators
//! over a row ([`RowKernel::fold`]) and may then revisit the row to write results
//! ([`RowKernel::each`]); softmax and the normalisations chain several folds and a write pass in
//! ONE kernel (fused passes over the row), so no statistics go through global memory.
//!
//! Tuning space ([`Strategy`]):
//! - `Thread { wg }`: one invocation per row, nested loops over the reduced axes (no division in
//!   the loop); best when rows are short or many (GlobalAveragePool 7×7, ArgMax, CumSum).
//!   Workgroup size 64/128/256, default 64.
//! - `Group { wg }`: one workgroup per row; invocation `t` folds elements `t, t + wg, …` and a
//!   workgroup-memory tree (log2(wg) steps, one barrier each) combines the partial results and
//!   broadcasts them; best when rows are long and few (LayerNorm over 768, softmax over 1000).
//!   Workgroup size a power of two 32…256.
//! - Vector width: 1 (scalar loads). Subgroup trees are not used yet: the workgroup-memory tree
//!   is portable (no subgroup feature needed) and costs log2(wg) barriers per fold.
//!
//! Default ([`choose`]): `Group` when a row has at least 256 elements and there are at most
//! 4096 rows (wg 64 for rows < 1024, 128 below 4096, 256 above), else `Thread { wg: 64 }`.

use super::common::{grid_1d, strides, to_storage};
use super::{Arg, KernelLaunch, LowerCtx, LowerError, Lowered, compute_scalar, storage_scalar};
use crate::builder::{KernelBuilder, i, lit, select, u};
use crate::ir::{Access, Barrier, Builtin, Expr, Scalar, SubgroupOp, Type, UnOp};
use optc_ir::dtype::DType;
use optc_ir::ops::{Op, ReduceOp};

/// How a row kernel maps rows to invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One invocation per row; `wg` invocations per workgroup.
    Thread {
        /// Workgroup size.
        wg: u32,
    },
    /// One workgroup of `wg` (a power of two) invocations per row.
    Group {
        /// Workgroup size.
        wg: u32,
    },
}

/// The default strategy for `rows` rows of `len` elements.
pub fn choose(rows: usize, len: usize) -> Strategy {
    if len >= 256 && rows <= 4096 {
        let wg = if len >= 4096 {
            256
        } else if len >= 1024 {
            128
        } else {
            64
        };
        Strategy::Group { wg }
    } else {
        Strategy::Thread { wg: 64 }
    }
}

/// A tensor viewed as rows: for each row, the elements of the reduced axes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowGeom {
    /// Number of rows (product of the kept axes).
    pub rows: usize,
    /// Elements per row (product of the reduced axes).
    pub len: usize,
    /// Kept axes, merged where contiguous: `(size, stride)`, row-major order.
    keep: Vec<(usize, usize)>,
    /// Reduced axes, merged where contiguous: `(size, stride)`.
    red: Vec<(usize, usize)>,
}

fn merge(dims: impl Iterator<Item = (usize, usize)>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (n, s) in dims {
        if n == 1 {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == n * s => *last = (last.0 * n, s),
            _ => out.push((n, s)),
        }
    }
    out
}

impl RowGeom {
    /// The rows of a tensor of `shape` reducing the axes where `mask` is true. Row `r` is the
    /// `r`-th combination of kept coordinates in row-major order (so it is the flat index of
    /// the reduced output, with or without keepdims).
    pub fn new(shape: &[usize], mask: &[bool]) -> RowGeom {
        let st = strides(shape);
        let pick = |want: bool| {
            merge(
                shape
                    .iter()
                    .zip(&st)
                    .zip(mask)
                    .filter(move |(_, m)| **m == want)
                    .map(|((&n, &s), _)| (n, s)),
            )
        };
        let keep = pick(false);
        let red = pick(true);
        RowGeom {
            rows: keep.iter().map(|d| d.0).product(),
            len: shape
                .iter()
                .zip(mask)
                .filter(|p| *p.1)
                .map(|p| *p.0)
                .product(),
            keep,
            red,
        }
    }

    /// `rows` contiguous rows of `len` elements.
    pub fn contiguous(rows: usize, len: usize) -> RowGeom {
        RowGeom::new(&[rows, len], &[false, true])
    }

    /// The rows of `shape` reducing only `axis` (ArgMax, CumSum, LpNormalization).
    pub fn axis(shape: &[usize], axis: usize) -> RowGeom {
        let mask: Vec<bool> = (0..shape.len()).map(|d| d == axis).collect();
        RowGeom::new(shape, &mask)
    }

    /// Input offset of the first element of row `row`.
    fn base(&self, b: &mut KernelBuilder, row: &Expr) -> Expr {
        offset_of(b, row, &self.keep)
    }
}

/// The offset of flat index `idx` over merged dims `(size, stride)` (row-major).
fn offset_of(b: &mut KernelBuilder, idx: &Expr, dims: &[(usize, usize)]) -> Expr {
    let mut acc: Option<Expr> = None;
    let mut inner = 1usize;
    for (k, &(n, s)) in dims.iter().enumerate().rev() {
        let mut c = idx.clone();
        if inner != 1 {
            c = c / i(inner as i32);
        }
        if k > 0 {
            c = c % i(n as i32);
        }
        let term = if s == 1 { c } else { c * i(s as i32) };
        acc = Some(match acc {
            None => term,
            Some(a) => term + a,
        });
        inner *= n;
    }
    match acc {
        Some(e) => b.let_(Type::I32, e),
        None => i(0),
    }
}

/// One accumulator of a fold: its type, initial value and how two partial values combine.
pub struct Acc {
    /// Scalar type.
    pub ty: Type,
    /// Initial value (the identity of `combine`).
    pub init: Expr,
    /// Combines two partial values.
    pub combine: fn(Expr, Expr) -> Expr,
}

impl Acc {
    /// A float sum.
    pub fn sum() -> Acc {
        Acc {
            ty: Type::F32,
            init: Expr::F32(0.0),
            combine: |a, b| a + b,
        }
    }
    /// A float maximum that propagates NaN.
    pub fn max_nan() -> Acc {
        Acc {
            ty: Type::F32,
            init: Expr::F32(f32::NEG_INFINITY),
            combine: max_nan,
        }
    }
}

/// `max(a, b)`, NaN if `b` is NaN, else keeps `a` when it is NaN (fold order: `a` accumulates).
pub fn max_nan(a: Expr, b: Expr) -> Expr {
    select(b.clone().gt(a.clone()).or(b.clone().un(UnOp::IsNan)), b, a)
}

/// `min(a, b)` with NaN propagation like [`max_nan`].
pub fn min_nan(a: Expr, b: Expr) -> Expr {
    select(b.clone().lt(a.clone()).or(b.clone().un(UnOp::IsNan)), b, a)
}

/// A kernel being built over the rows of a [`RowGeom`]: the current row, its input offset and
/// the strategy's invocation layout.
pub struct RowKernel {
    /// The geometry.
    pub geom: RowGeom,
    /// The strategy.
    pub strategy: Strategy,
    /// The row index (i32).
    pub row: Expr,
    /// Input offset of the row's first element (i32).
    pub base: Expr,
    lid: Expr,
    nshared: std::cell::Cell<u32>,
}

impl RowKernel {
    /// A builder for a kernel `name` over `geom` with `strategy`, and its launch grid. Declare
    /// buffers on the returned builder, then call [`RowKernel::start`].
    pub fn builder(name: String, geom: &RowGeom, strategy: Strategy) -> (KernelBuilder, [u32; 3]) {
        let (wg, threads) = match strategy {
            Strategy::Thread { wg } => (wg, geom.rows),
            Strategy::Group { wg } => (wg, geom.rows * wg as usize),
        };
        (KernelBuilder::new(name, [wg, 1, 1]), grid_1d(threads, wg))
    }

    /// Emits the row index, the guard and the row's base offset.
    pub fn start(
        b: &mut KernelBuilder,
        geom: &RowGeom,
        strategy: Strategy,
        grid: [u32; 3],
    ) -> RowKernel {
        let wid = if grid[1] > 1 {
            Expr::Builtin(Builtin::WorkgroupId(1)) * u(grid[0])
                + Expr::Builtin(Builtin::WorkgroupId(0))
        } else {
            Expr::Builtin(Builtin::WorkgroupId(0))
        };
        let (row, lid) = match strategy {
            Strategy::Thread { wg } => {
                let flat = wid * u(wg) + Expr::Builtin(Builtin::LocalIndex);
                (b.let_(Type::I32, flat.cast(Scalar::I32)), i(0))
            }
            Strategy::Group { .. } => (
                b.let_(Type::I32, wid.cast(Scalar::I32)),
                b.let_(
                    Type::I32,
                    Expr::Builtin(Builtin::LocalIndex).cast(Scalar::I32),
                ),
            ),
        };
        // Uniform per workgroup in the `Group` strategy (the row is the workgroup's).
        b.if_(row.clone().ge(i(geom.rows as i32)), |b| b.ret());
        let base = geom.base(b, &row);
        RowKernel {
            geom: geom.clone(),
            strategy,
            row,
            base,
            lid,
            nshared: std::cell::Cell::new(0),
        }
    }

    /// Visits the row's elements owned by this invocation: `visit(b, offset, r)` with the input
    /// offset and the flat index `r` of the element within the row (both i32).
    pub fn each(
        &self,
        b: &mut KernelBuilder,
        mut visit: impl FnMut(&mut KernelBuilder, Expr, Expr),
    ) {
        match self.strategy {
            Strategy::Thread { .. } => {
                let red = self.geom.red.clone();
                nested(b, &red, self.base.clone(), i(0), &mut visit);
            }
            Strategy::Group { wg } => {
                let red = self.geom.red.clone();
                let base = self.base.clone();
                b.for_(
                    self.lid.clone(),
                    i(self.geom.len as i32),
                    wg as i32,
                    false,
                    |b, r| {
                        let off = offset_of(b, &r, &red);
                        let off = if base == i(0) { off } else { base + off };
                        visit(b, off, r);
                    },
                );
            }
        }
    }

    /// Folds `accs` over the row: `visit(b, offset, r)` returns one contribution per
    /// accumulator. Returns the combined values (locals), the same in every invocation of the
    /// row.
    pub fn fold(
        &self,
        b: &mut KernelBuilder,
        accs: &[Acc],
        mut visit: impl FnMut(&mut KernelBuilder, Expr, Expr) -> Vec<Expr>,
    ) -> Vec<Expr> {
        let vars: Vec<_> = accs.iter().map(|a| b.var(a.ty, a.init.clone())).collect();
        self.each(b, |b, off, r| {
            let cs = visit(b, off, r);
            for ((a, v), c) in accs.iter().zip(&vars).zip(cs) {
                let c = b.let_(a.ty, c);
                b.assign(*v, (a.combine)(Expr::Var(*v), c));
            }
        });
        match self.strategy {
            Strategy::Thread { .. } => vars.into_iter().map(Expr::Var).collect(),
            Strategy::Group { wg } => {
                let mut out = Vec::new();
                let arrs: Vec<u32> = accs
                    .iter()
                    .map(|a| {
                        let n = self.nshared.get();
                        self.nshared.set(n + 1);
                        b.shared(format!("red{n}"), a.ty, wg)
                    })
                    .collect();
                for (&arr, v) in arrs.iter().zip(&vars) {
                    b.store_shared(arr, self.lid.clone(), Expr::Var(*v));
                }
                b.barrier(Barrier::Workgroup);
                let mut s = wg / 2;
                while s >= 1 {
                    let lid = self.lid.clone();
                    b.if_(lid.clone().lt(i(s as i32)), |b| {
                        for (a, &arr) in accs.iter().zip(&arrs) {
                            let x = Expr::load_shared(arr, lid.clone());
                            let y = Expr::load_shared(arr, lid.clone() + i(s as i32));
                            b.store_shared(arr, lid.clone(), (a.combine)(x, y));
                        }
                    });
                    b.barrier(Barrier::Workgroup);
                    s /= 2;
                }
                for (a, &arr) in accs.iter().zip(&arrs) {
                    out.push(b.let_(a.ty, Expr::load_shared(arr, i(0))));
                }
                out
            }
        }
    }

    /// Runs `f` in one invocation of the row (for per-row outputs).
    pub fn leader(&self, b: &mut KernelBuilder, f: impl FnOnce(&mut KernelBuilder)) {
        match self.strategy {
            Strategy::Thread { .. } => f(b),
            Strategy::Group { .. } => b.if_(self.lid.clone().eq_(i(0)), f),
        }
    }
}

/// Invocations per row of the vec4 row form ([`VecRow`]).
pub const VEC_LANES: usize = 8;
/// Longest row the vec4 row form keeps in registers (64 vec4 per invocation).
pub const VEC_MAX_LEN: usize = 2048;

/// Whether the rows of `geom` can take the vec4 row form: contiguous f32 rows whose length is
/// a multiple of 32 and at most [`VEC_MAX_LEN`], row starts 16-byte aligned, on a device whose
/// register file holds `len / 32` vec4 per invocation (not
/// [`super::Features::small_register_file`]: the sm targets, whose printer also cannot reduce
/// floats across the partial warp a workgroup of 8 is).
pub fn vec_rows(geom: &RowGeom, dt: DType, features: super::Features) -> bool {
    dt == DType::F32
        && !features.small_register_file
        && geom.len > 0
        && geom.len % (4 * VEC_LANES) == 0
        && geom.len <= VEC_MAX_LEN
        && geom.red == [(geom.len, 1)]
        && geom.keep.iter().all(|&(_, s)| s % 4 == 0)
}

/// The vec4 row form (lavapipe: a storage load costs the same for a scalar and a vec4, a
/// subgroup reduction far less than a workgroup-memory tree): one row per workgroup of
/// [`VEC_LANES`] invocations (one subgroup on lavapipe; at least 8 lanes needed, as the GEMM
/// template), each loading its `len / 32` vec4 of the row once into registers — vec4 `k` of
/// invocation `j` is the row's vec4 `j + 8k` — and reducing with subgroup operations. Buffers
/// of row data are `vec4<f32>`.
pub struct VecRow {
    /// The row (i32).
    pub row: Expr,
    lane: Expr,
    base4: Expr,
    /// vec4 per invocation.
    pub n: usize,
}

impl VecRow {
    /// A builder for a kernel `name` over `geom` (see [`vec_rows`]) and its launch grid.
    pub fn builder(name: String, geom: &RowGeom) -> (KernelBuilder, [u32; 3]) {
        RowKernel::builder(
            name,
            geom,
            Strategy::Group {
                wg: VEC_LANES as u32,
            },
        )
    }

    /// Emits the row index, the guard and the row's base.
    pub fn start(b: &mut KernelBuilder, geom: &RowGeom, grid: [u32; 3]) -> VecRow {
        let rk = RowKernel::start(
            b,
            geom,
            Strategy::Group {
                wg: VEC_LANES as u32,
            },
            grid,
        );
        let base4 = b.let_(Type::I32, rk.base.clone() / i(4));
        VecRow {
            row: rk.row,
            lane: rk.lid,
            base4,
            n: geom.len / (4 * VEC_LANES),
        }
    }

    /// The row-relative vec4 index of this invocation's vec4 `k`.
    pub fn index(&self, k: usize) -> Expr {
        self.lane.clone() + i((VEC_LANES * k) as i32)
    }

    /// This invocation's vec4s of the row in `buf` (a `vec4<f32>` buffer), as locals.
    pub fn load(&self, b: &mut KernelBuilder, buf: u32) -> Vec<Expr> {
        let v4 = Type::vec(Scalar::F32, 4);
        (0..self.n)
            .map(|k| b.let_(v4, Expr::load(buf, self.base4.clone() + self.index(k))))
            .collect()
    }

    /// Stores `v` as this invocation's vec4 `k` of the row in `buf`.
    pub fn store(&self, b: &mut KernelBuilder, buf: u32, k: usize, v: Expr) {
        b.store(buf, self.base4.clone() + self.index(k), v);
    }

    /// The sum of all lanes of `vals` over the row (every invocation gets it).
    pub fn sum(&self, b: &mut KernelBuilder, vals: &[Expr]) -> Expr {
        self.reduce(b, vals, SubgroupOp::Add, |x, y| x + y)
    }

    /// The maximum of all lanes of `vals` over the row.
    pub fn max(&self, b: &mut KernelBuilder, vals: &[Expr]) -> Expr {
        self.reduce(b, vals, SubgroupOp::Max, |x, y| x.max(y))
    }

    fn reduce(
        &self,
        b: &mut KernelBuilder,
        vals: &[Expr],
        op: SubgroupOp,
        f: fn(Expr, Expr) -> Expr,
    ) -> Expr {
        let v4 = Type::vec(Scalar::F32, 4);
        let mut acc = vals[0].clone();
        for v in &vals[1..] {
            acc = b.let_(v4, f(acc, v.clone()));
        }
        let h = f(
            f(acc.clone().lane(0), acc.clone().lane(1)),
            f(acc.clone().lane(2), acc.lane(3)),
        );
        let h = b.let_(Type::F32, h);
        b.let_(
            Type::F32,
            Expr::Subgroup {
                op,
                value: Box::new(h),
                lane: None,
            },
        )
    }
}

/// Nested loops over merged reduced dims `dims` (outermost first).
fn nested(
    b: &mut KernelBuilder,
    dims: &[(usize, usize)],
    off: Expr,
    r: Expr,
    visit: &mut dyn FnMut(&mut KernelBuilder, Expr, Expr),
) {
    let Some((&(n, s), rest)) = dims.split_first() else {
        visit(b, off, r);
        return;
    };
    let inner: usize = rest.iter().map(|d| d.0).product();
    b.for_(i(0), i(n as i32), 1, false, |b, k| {
        let o = if s == 1 {
            k.clone()
        } else {
            k.clone() * i(s as i32)
        };
        let o = if off == i(0) { o } else { off + o };
        let rr = if inner == 1 { k } else { k * i(inner as i32) };
        let rr = if r == i(0) { rr } else { r + rr };
        nested(b, rest, o, rr, visit)
    });
}

/// The axis set of a Reduce node as a mask, or `None` for the no-op form.
fn reduce_mask(
    ctx: &LowerCtx<'_>,
    rank: usize,
    noop: bool,
) -> Result<Option<Vec<bool>>, LowerError> {
    let axes = match ctx.opt_input(1) {
        None => Vec::new(),
        Some(_) => ctx.const_ints(1, "axes")?,
    };
    if axes.is_empty() {
        return Ok(if noop { None } else { Some(vec![true; rank]) });
    }
    let mut mask = vec![false; rank];
    for a in axes {
        let n = if a < 0 { a + rank as i64 } else { a };
        if n < 0 || n >= rank as i64 {
            return Err(ctx.invalid(format!("axis {a} out of range for rank {rank}")));
        }
        mask[n as usize] = true;
    }
    Ok(Some(mask))
}

/// Normalises an axis attribute against `rank`.
pub fn norm_axis(ctx: &LowerCtx<'_>, axis: i64, rank: usize) -> Result<usize, LowerError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(ctx.invalid(format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// The storage scalar of a dtype (checked by `lower` before templates run).
pub fn st(d: DType) -> Scalar {
    storage_scalar(d).unwrap_or(Scalar::F32)
}

/// Lowers the ops of this module.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    match ctx.op {
        Op::Reduce {
            op,
            keepdims: _,
            noop_with_empty_axes,
        } => reduce(ctx, *op, *noop_with_empty_axes),
        Op::ArgMax {
            axis,
            select_last_index,
            ..
        } => arg(ctx, true, *axis, *select_last_index),
        Op::ArgMin {
            axis,
            select_last_index,
            ..
        } => arg(ctx, false, *axis, *select_last_index),
        Op::CumSum { exclusive, reverse } => cum(ctx, false, *exclusive, *reverse),
        Op::CumProd { exclusive, reverse } => cum(ctx, true, *exclusive, *reverse),
        Op::TopK { axis, largest, .. } => topk(ctx, *axis, *largest),
        _ => Err(ctx.invalid("not a reduction op")),
    }
}

fn one(launch: KernelLaunch) -> Lowered {
    Lowered {
        launches: vec![launch],
        ..Lowered::default()
    }
}

fn reduce(ctx: &LowerCtx<'_>, rop: ReduceOp, noop: bool) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let Some(mask) = reduce_mask(ctx, x.shape.len(), noop)? else {
        return Ok(Lowered {
            aliases: vec![(0, 0)],
            ..Lowered::default()
        });
    };
    if out.numel() == 0 {
        return Ok(Lowered::default());
    }
    let dt = x.dtype;
    let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
    let float_math =
        dt.is_float() || matches!(rop, ReduceOp::L2 | ReduceOp::LogSum | ReduceOp::LogSumExp);
    if dt == DType::I64 && !matches!(rop, ReduceOp::Max | ReduceOp::Min) {
        return Err(ctx.unsupported("needs int64 arithmetic"));
    }
    if dt == DType::Bool && !matches!(rop, ReduceOp::Max | ReduceOp::Min) {
        return Err(ctx.invalid(format!("{} of bool", ctx.op.name())));
    }
    let geom = RowGeom::new(&x.shape, &mask);
    let n = geom.len;
    let strategy = if float_math {
        choose(geom.rows, n)
    } else {
        Strategy::Thread { wg: 64 }
    };
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    let ld = move |off: Expr| super::common::load(xb, off, dt);
    let value = if float_math {
        let fx = move |off: Expr| {
            let v = ld(off);
            if dt.is_float() {
                v
            } else {
                v.cast(Scalar::F32)
            }
        };
        let r = match rop {
            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::LogSum => {
                rk.fold(&mut b, &[Acc::sum()], |_, o, _| vec![fx(o)])[0].clone()
            }
            ReduceOp::SumSquare | ReduceOp::L2 => rk.fold(&mut b, &[Acc::sum()], |b, o, _| {
                let v = b.let_(Type::F32, fx(o));
                vec![v.clone() * v]
            })[0]
                .clone(),
            ReduceOp::L1 => {
                rk.fold(&mut b, &[Acc::sum()], |_, o, _| vec![fx(o).un(UnOp::Abs)])[0].clone()
            }
            ReduceOp::Max => rk.fold(&mut b, &[Acc::max_nan()], |_, o, _| vec![fx(o)])[0].clone(),
            ReduceOp::Min => rk.fold(
                &mut b,
                &[Acc {
                    ty: Type::F32,
                    init: Expr::F32(f32::INFINITY),
                    combine: min_nan,
                }],
                |_, o, _| vec![fx(o)],
            )[0]
            .clone(),
            ReduceOp::Prod => rk.fold(
                &mut b,
                &[Acc {
                    ty: Type::F32,
                    init: Expr::F32(1.0),
                    combine: |a, b| a * b,
                }],
                |_, o, _| vec![fx(o)],
            )[0]
            .clone(),
            ReduceOp::LogSumExp => {
                let m = rk.fold(&mut b, &[Acc::max_nan()], |_, o, _| vec![fx(o)])[0].clone();
                let s = rk.fold(&mut b, &[Acc::sum()], |_, o, _| {
                    vec![(fx(o) - m.clone()).un(UnOp::Exp)]
                })[0]
                    .clone();
                let finite = m
                    .clone()
                    .un(UnOp::IsNan)
                    .or(m.clone().un(UnOp::IsInf))
                    .un(UnOp::Not);
                select(finite, m.clone() + s.un(UnOp::Log), m)
            }
        };
        let r = match rop {
            ReduceOp::Mean => r / Expr::F32(n as f32),
            ReduceOp::L2 => r.un(UnOp::Sqrt),
            ReduceOp::LogSum => r.un(UnOp::Log),
            _ => r,
        };
        if dt.is_float() {
            r
        } else {
            // Float results of integer inputs truncate toward zero (saturating).
            r.cast(cs)
        }
    } else {
        int_reduce(&mut b, &rk, rop, dt, cs, n, ld)
    };
    rk.leader(&mut b, |b| {
        b.store(yb, rk.row.clone(), to_storage(value, out.dtype));
    });
    Ok(one(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Output(0)],
        grid,
    }))
}

fn int_reduce(
    b: &mut KernelBuilder,
    rk: &RowKernel,
    rop: ReduceOp,
    dt: DType,
    cs: Scalar,
    n: usize,
    ld: impl Fn(Expr) -> Expr,
) -> Expr {
    let ty = Type::scalar(cs);
    let zero = lit(cs, 0.0);
    let acc = |init: Expr, combine: fn(Expr, Expr) -> Expr| Acc { ty, init, combine };
    let (lo, hi) = match cs {
        Scalar::I32 => (Expr::I32(i32::MIN), Expr::I32(i32::MAX)),
        Scalar::Bool => (Expr::Bool(false), Expr::Bool(true)),
        _ => (Expr::U32(0), Expr::U32(u32::MAX)),
    };
    let signed = cs == Scalar::I32;
    match rop {
        ReduceOp::Max if cs == Scalar::Bool => {
            rk.fold(b, &[acc(lo, |a, b| a.or(b))], |_, o, _| vec![ld(o)])[0].clone()
        }
        ReduceOp::Min if cs == Scalar::Bool => {
            rk.fold(b, &[acc(hi, |a, b| a.and(b))], |_, o, _| vec![ld(o)])[0].clone()
        }
        ReduceOp::Max => rk.fold(b, &[acc(lo, |a, b| a.max(b))], |_, o, _| vec![ld(o)])[0].clone(),
        ReduceOp::Min => rk.fold(b, &[acc(hi, |a, b| a.min(b))], |_, o, _| vec![ld(o)])[0].clone(),
        ReduceOp::Prod => {
            rk.fold(b, &[acc(lit(cs, 1.0), |a, b| a * b)], |_, o, _| vec![ld(o)])[0].clone()
        }
        ReduceOp::SumSquare => rk.fold(b, &[acc(zero, |a, b| a + b)], |b, o, _| {
            let v = b.let_(ty, ld(o));
            vec![v.clone() * v]
        })[0]
            .clone(),
        ReduceOp::L1 => rk.fold(b, &[acc(zero, |a, b| a + b)], |_, o, _| {
            let v = ld(o);
            vec![if signed { v.un(UnOp::Abs) } else { v }]
        })[0]
            .clone(),
        _ => {
            // Sum and Mean.
            let s = rk.fold(b, &[acc(zero, |a, b| a + b)], |_, o, _| vec![ld(o)])[0].clone();
            if rop == ReduceOp::Mean {
                if n == 0 {
                    lit(cs, 0.0)
                } else {
                    let _ = dt;
                    s / lit(cs, n as f64)
                }
            } else {
                s
            }
        }
    }
}

fn arg(ctx: &LowerCtx<'_>, max: bool, axis: i64, last: bool) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    if x.shape.is_empty() {
        return Err(ctx.invalid("needs an input of rank at least 1"));
    }
    let a = norm_axis(ctx, axis, x.shape.len())?;
    if out.numel() == 0 {
        return Ok(Lowered::default());
    }
    let n = x.shape[a];
    let dt = x.dtype;
    let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
    if cs == Scalar::Bool {
        return Err(ctx.invalid("needs a numeric input"));
    }
    let geom = RowGeom::axis(&x.shape, a);
    let stride: usize = x.shape[a + 1..].iter().product();
    let strategy = Strategy::Thread { wg: 64 };
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    let best_j = arg_best(&mut b, &rk, xb, dt, n, stride, max, last);
    b.store(yb, rk.row.clone(), to_storage(best_j, out.dtype));
    Ok(one(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Output(0)],
        grid,
    }))
}

/// The index along a row of `n` elements at `stride` of its best element (first, or last, max
/// or min; the first NaN met in scan order wins), as an i32 local. `Thread` strategy only.
#[allow(clippy::too_many_arguments)]
pub fn arg_best(
    b: &mut KernelBuilder,
    rk: &RowKernel,
    xb: u32,
    dt: DType,
    n: usize,
    stride: usize,
    max: bool,
    last: bool,
) -> Expr {
    let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
    let float = cs == Scalar::F32;
    let pos = |k: Expr| if last { i(n as i32 - 1) - k } else { k };
    let at = |j: Expr| {
        let off = if stride == 1 { j } else { j * i(stride as i32) };
        let off = if rk.base == i(0) {
            off
        } else {
            rk.base.clone() + off
        };
        super::common::load(xb, off, dt)
    };
    let j0 = pos(i(0));
    let best_j = b.var(Type::I32, j0.clone());
    let best = b.var(Type::scalar(cs), at(j0));
    let done = if float {
        Some(b.var(Type::BOOL, Expr::Var(best).un(UnOp::IsNan)))
    } else {
        None
    };
    b.for_(i(1), i(n as i32), 1, false, |b, k| {
        let j = b.let_(Type::I32, pos(k));
        let v = b.let_(Type::scalar(cs), at(j.clone()));
        let better = if max {
            v.clone().gt(Expr::Var(best))
        } else {
            v.clone().lt(Expr::Var(best))
        };
        let cond = match done {
            Some(d) => Expr::Var(d)
                .un(UnOp::Not)
                .and(better.or(v.clone().un(UnOp::IsNan))),
            None => better,
        };
        b.if_(cond, |b| {
            b.assign(best, v.clone());
            b.assign(best_j, j);
            if let Some(d) = done {
                b.assign(d, v.un(UnOp::IsNan));
            }
        });
    });
    Expr::Var(best_j)
}

/// TopK: one invocation per row makes `k` passes over the row, each picking the best element
/// that comes after the previous pick in the total order (value, then index; NaN greatest), so
/// the output is sorted and ties keep the lower index, like the reference.
fn topk(ctx: &LowerCtx<'_>, axis: i64, largest: bool) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    let vals = ctx.output(0)?;
    if x.shape.is_empty() {
        return Err(ctx.invalid("needs an input of rank at least 1"));
    }
    let a = norm_axis(ctx, axis, x.shape.len())?;
    let k = ctx.const_ints(1, "K")?;
    let &[k] = k.as_slice() else {
        return Err(ctx.invalid("K must have one element"));
    };
    let n = x.shape[a];
    if k < 0 || k as usize > n {
        return Err(ctx.invalid(format!("K = {k} is out of range for axis size {n}")));
    }
    if vals.numel() == 0 {
        return Ok(Lowered::default());
    }
    let dt = x.dtype;
    let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
    if cs == Scalar::Bool {
        return Err(ctx.invalid("needs a numeric input"));
    }
    let float = cs == Scalar::F32;
    let inner: usize = x.shape[a + 1..].iter().product();
    let geom = RowGeom::axis(&x.shape, a);
    let ogeom = RowGeom::axis(&vals.shape, a);
    let strategy = Strategy::Thread { wg: 64 };
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let vb = b.buffer("values", Type::scalar(st(vals.dtype)), Access::ReadWrite);
    let mut args = vec![Arg::Input(0), Arg::Output(0)];
    let idx_out = ctx.outputs.get(1).and_then(|o| o.as_ref());
    let ib = idx_out.map(|d| {
        args.push(Arg::Output(1));
        b.buffer("indices", Type::scalar(st(d.dtype)), Access::ReadWrite)
    });
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    let obase = ogeom.base(&mut b, &rk.row);
    let ty = Type::scalar(cs);
    // `(va, ia)` comes before `(vb, ib)`.
    let before = move |va: Expr, ia: Expr, vb: Expr, ib: Expr| -> Expr {
        let (strict, eq) = if float {
            let (na, nb) = (va.clone().un(UnOp::IsNan), vb.clone().un(UnOp::IsNan));
            let both = na.clone().un(UnOp::Not).and(nb.clone().un(UnOp::Not));
            let strict = if largest {
                na.clone()
                    .and(nb.clone().un(UnOp::Not))
                    .or(both.and(va.clone().gt(vb.clone())))
            } else {
                nb.clone()
                    .and(na.clone().un(UnOp::Not))
                    .or(both.and(va.clone().lt(vb.clone())))
            };
            (strict, na.and(nb).or(va.eq_(vb)))
        } else if largest {
            (va.clone().gt(vb.clone()), va.eq_(vb))
        } else {
            (va.clone().lt(vb.clone()), va.eq_(vb))
        };
        strict.or(eq.and(ia.lt(ib)))
    };
    let at = |j: Expr| {
        let off = if inner == 1 { j } else { j * i(inner as i32) };
        let off = if rk.base == i(0) {
            off
        } else {
            rk.base.clone() + off
        };
        super::common::load(xb, off, dt)
    };
    let prev_v = b.var(ty, lit(cs, 0.0));
    let prev_i = b.var(Type::I32, i(-1));
    let (od, id) = (vals.dtype, idx_out.map(|d| d.dtype));
    b.for_(i(0), i(k as i32), 1, false, |b, r| {
        let best_v = b.var(ty, lit(cs, 0.0));
        let best_i = b.var(Type::I32, i(-1));
        b.for_(i(0), i(n as i32), 1, false, |b, j| {
            let v = b.let_(ty, at(j.clone()));
            let after_prev = Expr::Var(prev_i).lt(i(0)).or(before(
                Expr::Var(prev_v),
                Expr::Var(prev_i),
                v.clone(),
                j.clone(),
            ));
            let better = Expr::Var(best_i).lt(i(0)).or(before(
                v.clone(),
                j.clone(),
                Expr::Var(best_v),
                Expr::Var(best_i),
            ));
            b.if_(after_prev.and(better), |b| {
                b.assign(best_v, v);
                b.assign(best_i, j);
            });
        });
        let o = if inner == 1 { r } else { r * i(inner as i32) };
        let o = b.let_(Type::I32, if obase == i(0) { o } else { obase.clone() + o });
        b.store(vb, o.clone(), to_storage(Expr::Var(best_v), od));
        if let (Some(ib), Some(id)) = (ib, id) {
            b.store(ib, o, to_storage(Expr::Var(best_i), id));
        }
        b.assign(prev_v, Expr::Var(best_v));
        b.assign(prev_i, Expr::Var(best_i));
    });
    Ok(one(KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    }))
}

fn cum(
    ctx: &LowerCtx<'_>,
    prod: bool,
    exclusive: bool,
    reverse: bool,
) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    if x.shape.is_empty() {
        return Err(ctx.invalid("needs an input of rank at least 1"));
    }
    let axis = ctx.const_ints(1, "axis")?;
    let &[axis] = axis.as_slice() else {
        return Err(ctx.invalid("axis must be a scalar"));
    };
    let a = norm_axis(ctx, axis, x.shape.len())?;
    if out.numel() == 0 {
        return Ok(Lowered::default());
    }
    let dt = x.dtype;
    if dt == DType::I64 {
        return Err(ctx.unsupported("needs int64 arithmetic"));
    }
    let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
    if cs == Scalar::Bool {
        return Err(ctx.invalid("needs a numeric input"));
    }
    let n = x.shape[a];
    let stride: usize = x.shape[a + 1..].iter().product();
    let geom = RowGeom::axis(&x.shape, a);
    let strategy = Strategy::Thread { wg: 64 };
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    let ty = Type::scalar(cs);
    let acc = b.var(ty, lit(cs, if prod { 1.0 } else { 0.0 }));
    b.for_(i(0), i(n as i32), 1, false, |b, k| {
        let j = if reverse { i(n as i32 - 1) - k } else { k };
        let off = if stride == 1 { j } else { j * i(stride as i32) };
        let off = if rk.base == i(0) {
            off
        } else {
            rk.base.clone() + off
        };
        let off = b.let_(Type::I32, off);
        let v = super::common::load(xb, off.clone(), dt);
        let next = if prod {
            Expr::Var(acc) * v
        } else {
            Expr::Var(acc) + v
        };
        if exclusive {
            b.store(yb, off.clone(), to_storage(Expr::Var(acc), dt));
            b.assign(acc, next);
        } else {
            b.assign(acc, next);
            b.store(yb, off, to_storage(Expr::Var(acc), dt));
        }
    });
    Ok(one(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Output(0)],
        grid,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::sim::{assert_close, rand_t, rand_vec, run_op};
    use super::*;
    use optc_ir::tensor::Tensor;

    const OPS: [ReduceOp; 10] = [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Prod,
        ReduceOp::L1,
        ReduceOp::L2,
        ReduceOp::SumSquare,
        ReduceOp::LogSum,
        ReduceOp::LogSumExp,
    ];

    fn axes(v: &[i64]) -> Tensor {
        Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap()
    }

    #[test]
    fn geometry_merges_contiguous_axes() {
        let g = RowGeom::new(&[2, 3, 4, 5], &[false, true, true, false]);
        assert_eq!((g.rows, g.len), (10, 12));
        assert_eq!(g.red, vec![(12, 5)]);
        assert_eq!(g.keep, vec![(2, 60), (5, 1)]);
        let g = RowGeom::new(&[2, 3, 4], &[true, false, true]);
        assert_eq!(g.red, vec![(2, 12), (4, 1)]);
        assert_eq!(choose(1, 1000), Strategy::Group { wg: 64 });
        assert_eq!(choose(4096, 49), Strategy::Thread { wg: 64 });
    }

    #[test]
    fn float_reductions_match_reference() {
        let x = Tensor::from_vec(
            vec![3, 4, 5],
            rand_vec(60, 1)
                .iter()
                .map(|v| v.abs() + 0.1)
                .collect::<Vec<f32>>(),
        )
        .unwrap();
        for op in OPS {
            for ax in [vec![], vec![1], vec![0, 2], vec![-1], vec![0, 1, 2]] {
                for keepdims in [false, true] {
                    let o = Op::Reduce {
                        op,
                        keepdims,
                        noop_with_empty_axes: false,
                    };
                    let ins = if ax.is_empty() {
                        vec![Some(x.clone())]
                    } else {
                        vec![Some(x.clone()), Some(axes(&ax))]
                    };
                    let (got, want) = run_op(&o, &ins, &[1]);
                    assert_close(&got[0], &want[0], &format!("{op:?} {ax:?}"));
                }
            }
        }
    }

    #[test]
    fn long_rows_use_a_workgroup_tree() {
        let x = rand_t(&[3, 1000], 5);
        for op in [
            ReduceOp::Sum,
            ReduceOp::Max,
            ReduceOp::LogSumExp,
            ReduceOp::L2,
        ] {
            let o = Op::Reduce {
                op,
                keepdims: false,
                noop_with_empty_axes: false,
            };
            let (got, want) = run_op(&o, &[Some(x.clone()), Some(axes(&[1]))], &[1]);
            assert_close(&got[0], &want[0], &format!("{op:?}"));
        }
        // The kernel really is the workgroup variant (all 3000 elements as one row: one
        // workgroup of 128) with a workgroup-memory tree.
        let descs = [
            Some(super::super::TensorDesc::new(DType::F32, vec![3, 1000])),
            None,
        ];
        let outs = [Some(super::super::TensorDesc::new(DType::F32, vec![]))];
        let op = Op::Reduce {
            op: ReduceOp::Sum,
            keepdims: false,
            noop_with_empty_axes: false,
        };
        let ctx = LowerCtx {
            op: &op,
            name: "n",
            inputs: &descs,
            values: &[None, None],
            outputs: &outs,
            features: Default::default(),
        };
        let l = lower(&ctx).unwrap();
        assert_eq!(l.launches[0].grid, [1, 1, 1]);
        assert_eq!(l.launches[0].kernel.workgroup, [128, 1, 1]);
        assert_eq!(l.launches[0].kernel.shared.len(), 1);
    }

    #[test]
    fn int_and_bool_reductions() {
        let xi = Tensor::from_vec(vec![2, 3], vec![3i32, -7, 2, 5, 0, -1]).unwrap();
        let xb = Tensor::from_vec(vec![2, 2], vec![1i32, 0, 1, 1])
            .unwrap()
            .cast(DType::Bool);
        for op in [
            ReduceOp::Sum,
            ReduceOp::Mean,
            ReduceOp::Max,
            ReduceOp::Min,
            ReduceOp::Prod,
            ReduceOp::L1,
            ReduceOp::SumSquare,
        ] {
            let o = Op::Reduce {
                op,
                keepdims: true,
                noop_with_empty_axes: false,
            };
            let (got, want) = run_op(&o, &[Some(xi.clone()), Some(axes(&[1]))], &[1]);
            assert_eq!(got[0].to_i64_vec(), want[0].to_i64_vec(), "{op:?}");
        }
        for op in [ReduceOp::Max, ReduceOp::Min] {
            let o = Op::Reduce {
                op,
                keepdims: false,
                noop_with_empty_axes: false,
            };
            let (got, want) = run_op(&o, &[Some(xb.clone()), Some(axes(&[1]))], &[1]);
            assert_eq!(got[0].to_i64_vec(), want[0].to_i64_vec(), "{op:?}");
        }
        // noop_with_empty_axes: an alias.
        let o = Op::Reduce {
            op: ReduceOp::Sum,
            keepdims: true,
            noop_with_empty_axes: true,
        };
        let (got, want) = run_op(&o, &[Some(xi.clone())], &[]);
        assert_eq!(got[0].to_i64_vec(), want[0].to_i64_vec());
    }

    #[test]
    fn argmax_argmin_with_ties_and_nan() {
        let x = Tensor::from_vec(
            vec![2, 3, 4],
            vec![
                1.0f32,
                3.0,
                3.0,
                0.0,
                2.0,
                2.0,
                2.0,
                2.0,
                -1.0,
                5.0,
                5.0,
                -1.0, //
                f32::NAN,
                1.0,
                0.0,
                9.0,
                4.0,
                f32::NAN,
                4.0,
                1.0,
                0.0,
                0.0,
                7.0,
                7.0,
            ],
        )
        .unwrap();
        for axis in [0, 1, 2, -1] {
            for last in [false, true] {
                for keepdims in [false, true] {
                    for max in [true, false] {
                        let op = if max {
                            Op::ArgMax {
                                axis,
                                keepdims,
                                select_last_index: last,
                            }
                        } else {
                            Op::ArgMin {
                                axis,
                                keepdims,
                                select_last_index: last,
                            }
                        };
                        let (got, want) = run_op(&op, &[Some(x.clone())], &[]);
                        assert_eq!(got[0].shape(), want[0].shape());
                        assert_eq!(got[0].to_i64_vec(), want[0].to_i64_vec(), "{op:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn topk_sorted_with_ties_and_nan() {
        let x = Tensor::from_vec(
            vec![2, 5],
            vec![3.0f32, 1.0, 3.0, f32::NAN, -2.0, 0.0, 4.0, 4.0, 4.0, -1.0],
        )
        .unwrap();
        let xi = Tensor::from_vec(vec![3, 2], vec![5i32, 1, 5, 7, -3, 5]).unwrap();
        for largest in [true, false] {
            for (t, axis, k) in [(&x, 1i64, 3i64), (&x, 0, 2), (&xi, 0, 2), (&x, -1, 5)] {
                let op = Op::TopK {
                    axis,
                    largest,
                    sorted: true,
                };
                let kt = Tensor::from_vec(vec![1], vec![k]).unwrap();
                let (got, want) = run_op(&op, &[Some(t.clone()), Some(kt)], &[1]);
                assert_close(&got[0], &want[0], &format!("{op:?} values"));
                assert_eq!(got[1].to_i64_vec(), want[1].to_i64_vec(), "{op:?} indices");
            }
        }
    }

    #[test]
    fn cumsum_cumprod_forms() {
        let x = rand_t(&[2, 3, 4], 9);
        let xi = Tensor::from_vec(vec![2, 3], vec![1i32, 2, 3, 4, 5, 6]).unwrap();
        for axis in [0i64, 1, -1] {
            for exclusive in [false, true] {
                for reverse in [false, true] {
                    let ax = Tensor::from_vec(vec![], vec![axis]).unwrap();
                    for op in [
                        Op::CumSum { exclusive, reverse },
                        Op::CumProd { exclusive, reverse },
                    ] {
                        let (got, want) = run_op(&op, &[Some(x.clone()), Some(ax.clone())], &[1]);
                        assert_close(&got[0], &want[0], &format!("{op:?} {axis}"));
                        if axis != 2 {
                            let (got, want) =
                                run_op(&op, &[Some(xi.clone()), Some(ax.clone())], &[1]);
                            assert_eq!(got[0].to_i64_vec(), want[0].to_i64_vec());
                        }
                    }
                }
            }
        }
    }
}
