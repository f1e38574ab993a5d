//! Softmax, LogSoftmax and Hardmax (opset ≥ 13 over one axis; `legacy` opset < 13 semantics
//! coerce the input to 2-D at `axis`, i.e. normalise over all axes from `axis` on).
//!
//! One kernel per op: each row (the normalised elements) is folded for its NaN-propagating
//! maximum, then for the sum of `exp(x - max)`, then revisited to write the outputs — three
//! passes over the row inside one kernel ([`super::reduce::RowKernel`]), no statistics in
//! global memory. Hardmax finds the first maximal index (NaN wins, like the reference) and
//! writes the one-hot row.
//!
//! Tuning space: the row strategy of [`super::reduce::Strategy`] (one invocation per row, or a
//! workgroup per row with a workgroup-memory tree; workgroup size 32…256), vector width 1.
//! Default: [`super::reduce::choose`] (a workgroup per row once rows reach 256 elements and
//! there are at most 4096 of them); Hardmax always uses one invocation per row.

use super::common::{load, to_storage};
use super::reduce::{Acc, RowGeom, RowKernel, Strategy, VecRow, arg_best, choose, st, vec_rows};
use super::{Arg, KernelLaunch, LowerCtx, LowerError, Lowered};
use crate::builder::{f, select};
use crate::ir::{Access, Expr, Scalar, Type, UnOp};
use optc_ir::ops::Op;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// Lowers Softmax, LogSoftmax and Hardmax.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    let (kind, axis, legacy) = match ctx.op {
        Op::Softmax { axis, legacy } => (Kind::Softmax, *axis, *legacy),
        Op::LogSoftmax { axis, legacy } => (Kind::LogSoftmax, *axis, *legacy),
        Op::Hardmax { axis, legacy } => (Kind::Hardmax, *axis, *legacy),
        _ => return Err(ctx.invalid("not a softmax op")),
    };
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    if !x.dtype.is_float() {
        return Err(ctx.unsupported(format!("needs {}", x.dtype.name())));
    }
    let rank = x.shape.len();
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    let hi = if legacy { r } else { (r - 1).max(0) };
    if a < 0 || a > hi {
        return Err(ctx.invalid(format!("axis {axis} out of range for rank {rank}")));
    }
    let a = a as usize;
    if out.numel() == 0 {
        return Ok(Lowered::default());
    }
    // A rank-0 input is one row of one element.
    let (shape, mask): (Vec<usize>, Vec<bool>) = if rank == 0 {
        (vec![1], vec![true])
    } else {
        let mask = (0..rank)
            .map(|d| if legacy { d >= a } else { d == a })
            .collect();
        (x.shape.clone(), mask)
    };
    let geom = RowGeom::new(&shape, &mask);
    if kind != Kind::Hardmax && out.dtype == x.dtype && vec_rows(&geom, x.dtype, ctx.features) {
        return Ok(vec_softmax(ctx, &geom, kind == Kind::LogSoftmax));
    }
    let strategy = if kind == Kind::Hardmax {
        Strategy::Thread { wg: 64 }
    } else {
        choose(geom.rows, geom.len)
    };
    let dt = x.dtype;
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    match kind {
        Kind::Hardmax => {
            // Every normalised axis but possibly the first has a merged stride of 1 (legacy),
            // or it is the single axis `a` whose stride is the product of the later dims.
            let stride = if legacy || rank == 0 {
                1
            } else {
                shape[a + 1..].iter().product()
            };
            let best = arg_best(&mut b, &rk, xb, dt, geom.len, stride, true, false);
            let od = out.dtype;
            rk.each(&mut b, |b, off, r| {
                let v = select(r.eq_(best.clone()), f(1.0), f(0.0));
                b.store(yb, off, to_storage(v, od));
            });
        }
        _ => {
            let m = rk.fold(&mut b, &[Acc::max_nan()], |_, o, _| vec![load(xb, o, dt)])[0].clone();
            let s = rk.fold(&mut b, &[Acc::sum()], |_, o, _| {
                vec![(load(xb, o, dt) - m.clone()).un(UnOp::Exp)]
            })[0]
                .clone();
            let post = if kind == Kind::LogSoftmax {
                b.let_(Type::F32, s.un(UnOp::Log))
            } else {
                b.let_(Type::F32, f(1.0) / s)
            };
            let od = out.dtype;
            rk.each(&mut b, |b, off, _| {
                let d = load(xb, off.clone(), dt) - m.clone();
                let v = if kind == Kind::LogSoftmax {
                    d - post.clone()
                } else {
                    d.un(UnOp::Exp) * post.clone()
                };
                b.store(yb, off, to_storage(v, od));
            });
        }
    }
    Ok(Lowered {
        launches: vec![KernelLaunch {
            kernel: b.finish(),
            args: vec![Arg::Input(0), Arg::Output(0)],
            grid,
        }],
        ..Lowered::default()
    })
}

/// Softmax / LogSoftmax in the vec4 row form ([`VecRow`]): the row is loaded once.
fn vec_softmax(ctx: &LowerCtx<'_>, geom: &RowGeom, log: bool) -> Lowered {
    let v4 = Type::vec(Scalar::F32, 4);
    let splat = |e: Expr| Expr::Splat(4, Box::new(e));
    let (mut b, grid) = VecRow::builder(ctx.kname(""), geom);
    let xb = b.buffer("x", v4, Access::Read);
    let yb = b.buffer("y", v4, Access::ReadWrite);
    let vr = VecRow::start(&mut b, geom, grid);
    let xs = vr.load(&mut b, xb);
    // A NaN anywhere makes the sum, hence every output, NaN, whatever the maximum does with it.
    let m = vr.max(&mut b, &xs);
    let ds: Vec<Expr> = xs
        .iter()
        .map(|x| b.let_(v4, x.clone() - splat(m.clone())))
        .collect();
    let es: Vec<Expr> = ds
        .iter()
        .map(|d| b.let_(v4, d.clone().un(UnOp::Exp)))
        .collect();
    let s = vr.sum(&mut b, &es);
    if log {
        let ls = b.let_(Type::F32, s.un(UnOp::Log));
        for (k, d) in ds.iter().enumerate() {
            vr.store(&mut b, yb, k, d.clone() - splat(ls.clone()));
        }
    } else {
        let inv = b.let_(Type::F32, f(1.0) / s);
        for (k, e) in es.iter().enumerate() {
            vr.store(&mut b, yb, k, e.clone() * splat(inv.clone()));
        }
    }
    Lowered {
        launches: vec![KernelLaunch {
            kernel: b.finish(),
            args: vec![Arg::Input(0), Arg::Output(0)],
            grid,
        }],
        ..Lowered::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::{assert_close, rand_t, run_op};
    use optc_ir::ops::Op;

    fn check(op: Op, shape: &[usize]) {
        let x = rand_t(shape, 7);
        let (got, want) = run_op(&op, &[Some(x)], &[]);
        assert_close(&got[0], &want[0], &format!("{op:?} {shape:?}"));
    }

    #[test]
    fn softmax_forms_match_reference() {
        for (axis, legacy) in [(-1, false), (1, false), (0, false), (1, true), (2, true)] {
            // [2, 3, 64] and [4, 2, 1024] over the last axis: the vec4 row form.
            for shape in [
                [3usize, 4, 5],
                [2, 300, 3],
                [2, 3, 700],
                [2, 3, 64],
                [4, 2, 1024],
            ] {
                check(Op::Softmax { axis, legacy }, &shape);
                check(Op::LogSoftmax { axis, legacy }, &shape);
                check(Op::Hardmax { axis, legacy }, &shape);
            }
        }
    }
}
