//! Normalisations: BatchNormalization (inference), InstanceNormalization, GroupNormalization,
//! LayerNormalization (with the optional Mean and InvStdDev outputs), RMSNormalization,
//! LpNormalization, MeanVarianceNormalization and LRN.
//!
//! The statistics-based ones are one kernel each on [`super::reduce::RowKernel`]: a row is one
//! normalisation group (a LayerNorm row, an (n, group) block of GroupNorm, the reduced axes of
//! MVN…); the kernel folds the mean, then the variance as the mean of `(x - mean)²` (two passes,
//! accurate in f32), then revisits the row and writes `(x - mean) · invstd · scale + bias`. All
//! sums accumulate in f32. BatchNormalization and LRN are elementwise (one invocation per
//! element; LRN loops over its channel window).
//!
//! Tuning space: the row strategy of [`super::reduce::Strategy`] (invocation per row, or a
//! workgroup per row with a workgroup-memory tree; workgroup 32…256), vector width 1; the
//! elementwise kernels use workgroups of 256. Default: [`super::reduce::choose`].

use super::common::{broadcast_offset, flat_index, grid_1d, guard, load, to_storage, unravel};
use super::reduce::{Acc, RowGeom, RowKernel, VecRow, choose, norm_axis, st, vec_rows};
use super::{Arg, KernelLaunch, LowerCtx, LowerError, Lowered};
use crate::builder::{KernelBuilder, f, i, select};
use crate::ir::{Access, BinOp, Expr, Scalar, Type, UnOp};
use optc_ir::dtype::DType;
use optc_ir::ops::{NormOp, Op};

const EW_WG: u32 = 256;

/// Lowers the normalisation ops.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    if !x.dtype.is_float() {
        return Err(ctx.unsupported(format!("needs {}", x.dtype.name())));
    }
    if ctx.output(0)?.numel() == 0 {
        return Ok(Lowered::default());
    }
    let launch = match ctx.op {
        Op::Norm { op, epsilon } => match op {
            NormOp::BatchNormalization => batch_norm(ctx, *epsilon)?,
            NormOp::InstanceNormalization => group_norm(ctx, None, *epsilon)?,
            NormOp::GroupNormalization { num_groups } => {
                group_norm(ctx, Some(*num_groups), *epsilon)?
            }
            NormOp::LayerNormalization { axis } => layer_norm(ctx, *axis, *epsilon, false)?,
            NormOp::RmsNormalization { axis } => layer_norm(ctx, *axis, *epsilon, true)?,
        },
        Op::LpNormalization { axis, p } => lp_norm(ctx, *axis, *p)?,
        Op::MeanVarianceNormalization { axes } => mvn(ctx, axes)?,
        Op::Lrn {
            alpha,
            beta,
            bias,
            size,
        } => lrn(ctx, *alpha, *beta, *bias, *size)?,
        _ => return Err(ctx.invalid("not a normalisation op")),
    };
    Ok(Lowered {
        launches: vec![launch],
        ..Lowered::default()
    })
}

fn need_rank(ctx: &LowerCtx<'_>, min: usize) -> Result<(), LowerError> {
    if ctx.input(0)?.shape.len() < min {
        return Err(ctx.invalid(format!("needs an input of rank ≥ {min}")));
    }
    Ok(())
}

fn batch_norm(ctx: &LowerCtx<'_>, eps: f32) -> Result<KernelLaunch, LowerError> {
    if ctx.outputs.iter().skip(1).any(Option::is_some) {
        return Err(ctx.unsupported("in training mode (running statistics outputs)"));
    }
    need_rank(ctx, 2)?;
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let c = x.shape[1];
    let s: usize = x.shape[2..].iter().product();
    let mut p = Vec::new();
    for k in 1..5 {
        let d = ctx.input(k)?;
        if d.numel() != c {
            return Err(ctx.invalid(format!("input {k} does not have {c} channels")));
        }
        p.push(d.dtype);
    }
    let n = x.numel();
    let grid = grid_1d(n, EW_WG);
    let mut b = KernelBuilder::new(ctx.kname(""), [EW_WG, 1, 1]);
    let xb = b.buffer("x", Type::scalar(st(x.dtype)), Access::Read);
    let pb: Vec<u32> = ["bn_scale", "bn_bias", "bn_mean", "bn_var"]
        .iter()
        .zip(&p)
        .map(|(nm, d)| b.buffer(*nm, Type::scalar(st(*d)), Access::Read))
        .collect();
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let idx = flat_index(&mut b, grid, EW_WG);
    guard(&mut b, &idx, n);
    let ch = if c == 1 {
        i(0)
    } else {
        let q = if s == 1 {
            idx.clone()
        } else {
            idx.clone() / i(s as i32)
        };
        b.let_(Type::I32, q % i(c as i32))
    };
    let lp = |k: usize| load(pb[k], ch.clone(), p[k]);
    let a = b.let_(Type::F32, lp(0) * (lp(3) + f(eps)).un(UnOp::InverseSqrt));
    let v = (load(xb, idx.clone(), x.dtype) - lp(2)) * a + lp(1);
    b.store(yb, idx, to_storage(v, out.dtype));
    Ok(KernelLaunch {
        kernel: b.finish(),
        args: vec![
            Arg::Input(0),
            Arg::Input(1),
            Arg::Input(2),
            Arg::Input(3),
            Arg::Input(4),
            Arg::Output(0),
        ],
        grid,
    })
}

/// Folds mean and invstd (`1/sqrt(var + eps)`, var the mean of `(x - mean)²`) over the row.
fn moments(
    b: &mut KernelBuilder,
    rk: &RowKernel,
    xb: u32,
    dt: DType,
    n: usize,
    eps: f32,
) -> (Expr, Expr) {
    let s = rk.fold(b, &[Acc::sum()], |_, o, _| vec![load(xb, o, dt)])[0].clone();
    let mean = b.let_(Type::F32, s / f(n as f32));
    let ss = rk.fold(b, &[Acc::sum()], |b, o, _| {
        let d = b.let_(Type::F32, load(xb, o, dt) - mean.clone());
        vec![d.clone() * d]
    })[0]
        .clone();
    let inv = b.let_(
        Type::F32,
        f(1.0) / (ss / f(n as f32) + f(eps)).un(UnOp::Sqrt),
    );
    (mean, inv)
}

fn group_norm(
    ctx: &LowerCtx<'_>,
    groups: Option<usize>,
    eps: f32,
) -> Result<KernelLaunch, LowerError> {
    need_rank(ctx, 2)?;
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let (nb, c) = (x.shape[0], x.shape[1]);
    let g = groups.unwrap_or(c);
    if g == 0 || c % g != 0 {
        return Err(ctx.invalid(format!("{c} channels are not a multiple of {g} groups")));
    }
    let s: usize = x.shape[2..].iter().product();
    let cg = c / g;
    let (sc, bi) = (ctx.input(1)?, ctx.input(2)?);
    let per_group = |d: &super::TensorDesc| d.numel() != c;
    for d in [sc, bi] {
        if d.numel() != c && d.numel() != g {
            return Err(ctx.invalid("scale/bias do not match the channels"));
        }
    }
    let (sc_pg, bi_pg) = (per_group(sc), per_group(bi));
    let len = cg * s;
    let geom = RowGeom::contiguous(nb * g, len);
    let strategy = choose(geom.rows, geom.len);
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let dt = x.dtype;
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let sb = b.buffer("scale", Type::scalar(st(sc.dtype)), Access::Read);
    let bb = b.buffer("bias", Type::scalar(st(bi.dtype)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    let (mean, inv) = moments(&mut b, &rk, xb, dt, len, eps);
    let gi = if g == 1 {
        i(0)
    } else {
        b.let_(Type::I32, rk.row.clone() % i(g as i32))
    };
    let (sdt, bdt, od) = (sc.dtype, bi.dtype, out.dtype);
    rk.each(&mut b, |b, off, r| {
        let ch = b.let_(
            Type::I32,
            gi.clone() * i(cg as i32) + if s == 1 { r } else { r / i(s as i32) },
        );
        let sv = load(sb, if sc_pg { gi.clone() } else { ch.clone() }, sdt);
        let bv = load(bb, if bi_pg { gi.clone() } else { ch }, bdt);
        let v = (load(xb, off.clone(), dt) - mean.clone()) * inv.clone() * sv + bv;
        b.store(yb, off, to_storage(v, od));
    });
    Ok(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Input(1), Arg::Input(2), Arg::Output(0)],
        grid,
    })
}

/// Whether a LayerNorm/RMSNorm parameter of shape `p` holds one value per normalized element
/// (its shape X's trailing `norm_rank` dims, leading 1s aside): indexed by the column.
fn per_column(p: &[usize], norm_rank: usize, cols: usize) -> bool {
    let lead = p.len().saturating_sub(norm_rank);
    p.iter().product::<usize>() == cols && p[..lead].iter().all(|&d| d == 1)
}

/// How a LayerNorm/RMSNorm parameter is indexed: by the column, or by broadcasting.
fn param_offset(
    b: &mut KernelBuilder,
    p: &[usize],
    x: &[usize],
    norm_rank: usize,
    cols: usize,
    row: &Expr,
    r: &Expr,
) -> Expr {
    if per_column(p, norm_rank, cols) {
        return r.clone();
    }
    if p.iter().product::<usize>() == 1 {
        return i(0);
    }
    let flat = b.let_(Type::I32, row.clone() * i(cols as i32) + r.clone());
    let coords = unravel(b, &flat, x);
    broadcast_offset(&coords, x, p)
}

fn layer_norm(
    ctx: &LowerCtx<'_>,
    axis: i64,
    eps: f32,
    rms: bool,
) -> Result<KernelLaunch, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let a = norm_axis(ctx, axis, x.shape.len())?;
    let rows: usize = x.shape[..a].iter().product();
    let cols: usize = x.shape[a..].iter().product();
    let norm_rank = x.shape.len() - a;
    let sc = ctx.input(1)?;
    let bias = if rms { None } else { ctx.opt_input(2) };
    for p in std::iter::once(sc).chain(bias) {
        let ok = p.shape.len() <= x.shape.len()
            && p.shape
                .iter()
                .rev()
                .zip(x.shape.iter().rev())
                .all(|(&q, &d)| q == 1 || q == d);
        if !ok {
            return Err(ctx.invalid("parameter does not broadcast to X"));
        }
    }
    let stats = if rms {
        [None, None]
    } else {
        [
            ctx.outputs.get(1).and_then(|o| o.as_ref()),
            ctx.outputs.get(2).and_then(|o| o.as_ref()),
        ]
    };
    let geom = RowGeom::contiguous(rows, cols);
    let dense =
        |p: &super::TensorDesc| per_column(&p.shape, norm_rank, cols) && p.dtype == DType::F32;
    if stats.iter().all(Option::is_none)
        && out.dtype == x.dtype
        && dense(sc)
        && bias.is_none_or(dense)
        && vec_rows(&geom, x.dtype, ctx.features)
    {
        return Ok(vec_layer_norm(ctx, &geom, eps, rms, bias.is_some()));
    }
    let strategy = choose(geom.rows, geom.len);
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let dt = x.dtype;
    let mut args = vec![Arg::Input(0), Arg::Input(1)];
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let sb = b.buffer("scale", Type::scalar(st(sc.dtype)), Access::Read);
    let bb = bias.map(|d| {
        args.push(Arg::Input(2));
        b.buffer("bias", Type::scalar(st(d.dtype)), Access::Read)
    });
    args.push(Arg::Output(0));
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let mut stat_bufs = Vec::new();
    for (k, s) in stats.iter().enumerate() {
        if let Some(d) = s {
            args.push(Arg::Output(k + 1));
            let nm = if k == 0 { "mean" } else { "invstd" };
            stat_bufs.push((
                k,
                b.buffer(nm, Type::scalar(st(d.dtype)), Access::ReadWrite),
                d.dtype,
            ));
        }
    }
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    let (mean, inv) = if rms {
        let ss = rk.fold(&mut b, &[Acc::sum()], |b, o, _| {
            let v = b.let_(Type::F32, load(xb, o, dt));
            vec![v.clone() * v]
        })[0]
            .clone();
        let inv = b.let_(
            Type::F32,
            f(1.0) / (ss / f(cols as f32) + f(eps)).un(UnOp::Sqrt),
        );
        (f(0.0), inv)
    } else {
        moments(&mut b, &rk, xb, dt, cols, eps)
    };
    if !stat_bufs.is_empty() {
        let row = rk.row.clone();
        let (m, iv) = (mean.clone(), inv.clone());
        rk.leader(&mut b, |b| {
            for (k, buf, d) in &stat_bufs {
                let v = if *k == 0 { m.clone() } else { iv.clone() };
                b.store(*buf, row.clone(), to_storage(v, *d));
            }
        });
    }
    let (xs, ss) = (x.shape.clone(), sc.shape.clone());
    let bs = bias.map(|d| (d.shape.clone(), d.dtype));
    let (sdt, od) = (sc.dtype, out.dtype);
    let row = rk.row.clone();
    rk.each(&mut b, |b, off, r| {
        let so = param_offset(b, &ss, &xs, norm_rank, cols, &row, &r);
        let xv = load(xb, off.clone(), dt);
        let xv = if rms { xv } else { xv - mean.clone() };
        let mut v = xv * inv.clone() * load(sb, so, sdt);
        if let (Some(bb), Some((bsh, bdt))) = (bb, &bs) {
            let bo = param_offset(b, bsh, &xs, norm_rank, cols, &row, &r);
            v = v + load(bb, bo, *bdt);
        }
        b.store(yb, off, to_storage(v, od));
    });
    Ok(KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    })
}

/// LayerNormalization / RMSNormalization in the vec4 row form ([`VecRow`]): the row is loaded
/// once; scale and bias (one per normalized element) are read as vec4 at the same indices.
fn vec_layer_norm(
    ctx: &LowerCtx<'_>,
    geom: &RowGeom,
    eps: f32,
    rms: bool,
    has_bias: bool,
) -> KernelLaunch {
    let v4 = Type::vec(Scalar::F32, 4);
    let splat = |e: Expr| Expr::Splat(4, Box::new(e));
    let (mut b, grid) = VecRow::builder(ctx.kname(""), geom);
    let mut args = vec![Arg::Input(0), Arg::Input(1)];
    let xb = b.buffer("x", v4, Access::Read);
    let sb = b.buffer("scale", v4, Access::Read);
    let bb = has_bias.then(|| {
        args.push(Arg::Input(2));
        b.buffer("bias", v4, Access::Read)
    });
    args.push(Arg::Output(0));
    let yb = b.buffer("y", v4, Access::ReadWrite);
    let vr = VecRow::start(&mut b, geom, grid);
    let n = f(geom.len as f32);
    let xs = vr.load(&mut b, xb);
    let ds: Vec<Expr> = if rms {
        xs
    } else {
        let mean = vr.sum(&mut b, &xs);
        let mean = b.let_(Type::F32, mean / n.clone());
        xs.iter()
            .map(|x| b.let_(v4, x.clone() - splat(mean.clone())))
            .collect()
    };
    let sq: Vec<Expr> = ds
        .iter()
        .map(|d| b.let_(v4, d.clone() * d.clone()))
        .collect();
    let ss = vr.sum(&mut b, &sq);
    let inv = b.let_(Type::F32, f(1.0) / (ss / n + f(eps)).un(UnOp::Sqrt));
    for (k, d) in ds.iter().enumerate() {
        let mut v = d.clone() * splat(inv.clone()) * Expr::load(sb, vr.index(k));
        if let Some(bb) = bb {
            v = v + Expr::load(bb, vr.index(k));
        }
        vr.store(&mut b, yb, k, v);
    }
    KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    }
}

fn row_kernel_over(
    ctx: &LowerCtx<'_>,
    geom: &RowGeom,
    body: impl FnOnce(&mut KernelBuilder, &RowKernel, u32, u32),
) -> Result<KernelLaunch, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let strategy = choose(geom.rows, geom.len);
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), geom, strategy);
    let xb = b.buffer("x", Type::scalar(st(x.dtype)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let rk = RowKernel::start(&mut b, geom, strategy, grid);
    body(&mut b, &rk, xb, yb);
    Ok(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Output(0)],
        grid,
    })
}

fn lp_norm(ctx: &LowerCtx<'_>, axis: i64, p: u8) -> Result<KernelLaunch, LowerError> {
    let x = ctx.input(0)?;
    if !matches!(p, 1 | 2) {
        return Err(ctx.invalid(format!("p must be 1 or 2, got {p}")));
    }
    let (shape, a) = if x.shape.is_empty() {
        (vec![1], 0)
    } else {
        (x.shape.clone(), norm_axis(ctx, axis, x.shape.len())?)
    };
    let geom = RowGeom::axis(&shape, a);
    let (dt, od) = (x.dtype, ctx.output(0)?.dtype);
    row_kernel_over(ctx, &geom, |b, rk, xb, yb| {
        let s = rk.fold(b, &[Acc::sum()], |b, o, _| {
            let v = b.let_(Type::F32, load(xb, o, dt));
            vec![if p == 1 {
                v.un(UnOp::Abs)
            } else {
                v.clone() * v
            }]
        })[0]
            .clone();
        let norm = if p == 1 { s } else { s.un(UnOp::Sqrt) };
        let norm = b.let_(Type::F32, norm);
        rk.each(b, |b, off, _| {
            let v = load(xb, off.clone(), dt) / norm.clone();
            let v = select(norm.clone().eq_(f(0.0)), f(0.0), v);
            b.store(yb, off, to_storage(v, od));
        });
    })
}

fn mvn(ctx: &LowerCtx<'_>, axes: &[i64]) -> Result<KernelLaunch, LowerError> {
    let x = ctx.input(0)?;
    let rank = x.shape.len();
    let mut mask = vec![false; rank];
    for &a in axes {
        mask[norm_axis(ctx, a, rank)?] = true;
    }
    let geom = RowGeom::new(&x.shape, &mask);
    let n = geom.len;
    let (dt, od) = (x.dtype, ctx.output(0)?.dtype);
    row_kernel_over(ctx, &geom, |b, rk, xb, yb| {
        let (mean, inv) = moments(b, rk, xb, dt, n, 0.0);
        // sqrt(var) = 1 / invstd (0 when the variance is 0).
        let den = b.let_(Type::F32, f(1.0) / (f(1.0) / inv + f(1e-9)));
        rk.each(b, |b, off, _| {
            let v = (load(xb, off.clone(), dt) - mean.clone()) * den.clone();
            b.store(yb, off, to_storage(v, od));
        });
    })
}

fn lrn(
    ctx: &LowerCtx<'_>,
    alpha: f32,
    beta: f32,
    bias: f32,
    size: usize,
) -> Result<KernelLaunch, LowerError> {
    need_rank(ctx, 3)?;
    if size == 0 {
        return Err(ctx.invalid("size must be positive"));
    }
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let c = x.shape[1];
    let s: usize = x.shape[2..].iter().product();
    let before = (size - 1) / 2;
    let n = x.numel();
    let grid = grid_1d(n, EW_WG);
    let mut b = KernelBuilder::new(ctx.kname(""), [EW_WG, 1, 1]);
    let dt = x.dtype;
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let idx = flat_index(&mut b, grid, EW_WG);
    guard(&mut b, &idx, n);
    let ch = b.let_(Type::I32, (idx.clone() / i(s as i32)) % i(c as i32));
    let sq = b.var(Type::F32, f(0.0));
    b.for_(i(0), i(size as i32), 1, false, |b, t| {
        let cc = b.let_(Type::I32, ch.clone() - i(before as i32) + t);
        let inside = cc.clone().ge(i(0)).and(cc.clone().lt(i(c as i32)));
        b.if_(inside, |b| {
            let off = idx.clone() + (cc - ch.clone()) * i(s as i32);
            let v = b.let_(Type::F32, load(xb, off, dt));
            b.assign(sq, Expr::Var(sq) + v.clone() * v);
        });
    });
    let den = (f(bias) + f(alpha / size as f32) * Expr::Var(sq)).bin(BinOp::Pow, f(beta));
    let v = load(xb, idx.clone(), dt) / den;
    b.store(yb, idx, to_storage(v, out.dtype));
    Ok(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Output(0)],
        grid,
    })
}

#[cfg(test)]
mod tests {
    use super::super::sim::{assert_close, rand_t, run_op, run_op_n};
    use optc_ir::ops::{NormOp, Op};
    use optc_ir::tensor::Tensor;

    fn check(op: Op, inputs: Vec<Tensor>, n_out: usize) {
        let ins: Vec<Option<Tensor>> = inputs.into_iter().map(Some).collect();
        let (got, want) = run_op(&op, &ins, &[]);
        for k in 0..n_out {
            assert_close(&got[k], &want[k], &format!("{op:?} output {k}"));
        }
    }

    fn pos(shape: &[usize], seed: u64) -> Tensor {
        let t = rand_t(shape, seed);
        let v: Vec<f32> = t
            .to_f64_vec()
            .iter()
            .map(|v| v.abs() as f32 + 0.5)
            .collect();
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn batch_and_instance_and_group_norm() {
        let x = rand_t(&[2, 4, 3, 5], 1);
        let bn = Op::Norm {
            op: NormOp::BatchNormalization,
            epsilon: 1e-5,
        };
        check(
            bn,
            vec![
                x.clone(),
                rand_t(&[4], 2),
                rand_t(&[4], 3),
                rand_t(&[4], 4),
                pos(&[4], 5),
            ],
            1,
        );
        let inorm = Op::Norm {
            op: NormOp::InstanceNormalization,
            epsilon: 1e-5,
        };
        check(inorm, vec![x.clone(), rand_t(&[4], 2), rand_t(&[4], 3)], 1);
        let gn = Op::Norm {
            op: NormOp::GroupNormalization { num_groups: 2 },
            epsilon: 1e-5,
        };
        check(
            gn.clone(),
            vec![x.clone(), rand_t(&[4], 2), rand_t(&[4], 3)],
            1,
        );
        // A long row: one workgroup per group.
        let big = rand_t(&[1, 2, 20, 20], 9);
        check(gn, vec![big, rand_t(&[2], 2), rand_t(&[2], 3)], 1);
    }

    #[test]
    fn layer_and_rms_norm() {
        for (shape, axis) in [
            (vec![3usize, 4, 5], -1i64),
            (vec![2, 3, 300], 1),
            (vec![4, 768], 1),
            // The vec4 row form: rows of 64 and 2048 (2 × 1024) elements.
            (vec![5, 64], -1),
            (vec![3, 2, 1024], 1),
        ] {
            let x = rand_t(&shape, 11);
            let a = (axis + shape.len() as i64) as usize % shape.len();
            let ps = shape[a..].to_vec();
            let ln = Op::Norm {
                op: NormOp::LayerNormalization { axis },
                epsilon: 1e-5,
            };
            let ins = vec![x.clone(), rand_t(&ps, 12), rand_t(&ps, 13)];
            check(ln.clone(), ins.clone(), 3);
            // Y alone (no statistics outputs), with and without the bias: the vec4 row form
            // where the rows allow it.
            for nb in [3, 2] {
                let ins: Vec<Option<Tensor>> = ins[..nb].iter().cloned().map(Some).collect();
                let (got, want) = run_op_n(&ln, &ins, &[], 1);
                assert_close(&got[0], &want[0], &format!("{ln:?} {shape:?} y only"));
            }
            let rms = Op::Norm {
                op: NormOp::RmsNormalization { axis },
                epsilon: 1e-5,
            };
            check(rms, vec![x, rand_t(&ps, 12)], 1);
        }
        // A broadcast parameter that is not one per column.
        let ln = Op::Norm {
            op: NormOp::LayerNormalization { axis: 1 },
            epsilon: 1e-5,
        };
        check(
            ln.clone(),
            vec![rand_t(&[2, 3, 4], 1), rand_t(&[3, 1], 2), rand_t(&[4], 3)],
            3,
        );
        // Rows the vec4 form takes, with a scale that holds one value per *row* ([32, 1] over
        // [32, 32], axis -1): as many values as columns, but not indexed by the column.
        let ln = Op::Norm {
            op: NormOp::LayerNormalization { axis: -1 },
            epsilon: 1e-5,
        };
        let ins = [Some(rand_t(&[32, 32], 4)), Some(rand_t(&[32, 1], 5))];
        let (got, want) = run_op_n(&ln, &ins, &[], 1);
        assert_close(&got[0], &want[0], "per-row scale, y only");
    }

    #[test]
    fn lp_mvn_lrn() {
        let x = rand_t(&[2, 5, 3, 4], 21);
        for (axis, p) in [(1, 1), (-1, 2), (0, 2)] {
            check(Op::LpNormalization { axis, p }, vec![x.clone()], 1);
        }
        check(
            Op::MeanVarianceNormalization {
                axes: vec![0, 2, 3],
            },
            vec![x.clone()],
            1,
        );
        check(
            Op::Lrn {
                alpha: 1e-2,
                beta: 0.75,
                bias: 1.0,
                size: 3,
            },
            vec![x],
            1,
        );
    }
}
