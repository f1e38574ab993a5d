//! Indexing templates: Gather, GatherElements, GatherND, ScatterElements, ScatterND and OneHot.
//!
//! All are gathers with one invocation per output element: the index is loaded from its buffer,
//! negative indices wrap (`i + dim`), and the result is clamped into the dim so that a bad index
//! never reads or writes out of bounds (the reference interpreter rejects such indices).
//!
//! Scatters are written *atomic-free and deterministic*: each output element starts from `data`
//! and scans the updates that can hit it, applying them in index order, so duplicate indices
//! combine exactly as the sequential reference does for every reduction (none/add/mul/max/min).
//! ScatterElements only scans the `indices.shape[axis]` candidates that share its other
//! coordinates; ScatterND scans every index tuple (`O(numel(data) · tuples)`), cheap for the
//! small index sets models use.
//!
//! Tuning space: workgroup size (64, 128, 256; default 256); Gather copies vec4 rows when the
//! slice behind the gathered axis is a multiple of 4 elements (default on).

use super::common::{flat_index, grid_1d, guard, strides, unravel};
use super::movement::{DEFAULT, Tuning, affine, map_kernel, norm_axis, st};
use super::{Arg, KernelLaunch, LowerCtx, LowerError, Lowered, TensorDesc, storage_scalar};
use crate::builder::{KernelBuilder, i, select};
use crate::ir::{Access, Expr, Scalar, Type};
use optc_ir::dtype::DType;
use optc_ir::ops::{Op, ScatterReduction};

/// The storage scalar of an index tensor and the expression converting a loaded index to i32.
fn index_scalar(dtype: DType) -> Scalar {
    storage_scalar(dtype).unwrap_or(Scalar::I32)
}

/// Loads index `off` of buffer `buf` (stored as `s`) as an i32 wrapped into `[0, dim)`.
fn load_index(b: &mut KernelBuilder, buf: u32, off: Expr, s: Scalar, dim: usize) -> Expr {
    let raw = Expr::load(buf, off);
    let v = if s == Scalar::I32 {
        raw
    } else {
        raw.cast(Scalar::I32)
    };
    let v = b.let_(Type::I32, v);
    let w = select(v.clone().lt(i(0)), v.clone() + i(dim as i32), v);
    w.max(i(0)).min(i(dim.max(1) as i32 - 1))
}

fn lowered(launches: impl IntoIterator<Item = KernelLaunch>) -> Lowered {
    Lowered {
        launches: launches.into_iter().collect(),
        ..Lowered::default()
    }
}

fn istrides(shape: &[usize]) -> Vec<i64> {
    strides(shape).into_iter().map(|s| s as i64).collect()
}

/// Lowers an indexing op.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_tuned(ctx, DEFAULT)
}

/// [`lower`] with explicit tuning.
pub fn lower_tuned(ctx: &LowerCtx<'_>, tune: Tuning) -> Result<Lowered, LowerError> {
    lower_with(ctx, tune, SCAN_LIMIT)
}

/// Above this many `(data row, index tuple)` pairs, ScatterND without a reduction copies and
/// then scatters instead of letting every output element scan every tuple.
pub const SCAN_LIMIT: usize = 1 << 20;

fn lower_with(ctx: &LowerCtx<'_>, tune: Tuning, scan_limit: usize) -> Result<Lowered, LowerError> {
    for d in ctx.inputs.iter().chain(ctx.outputs.iter()).flatten() {
        if d.numel() > i32::MAX as usize / 2 {
            return Err(ctx.unsupported("with more than 2^30 elements"));
        }
    }
    let name = ctx.kname("");
    match ctx.op {
        Op::Gather { axis } => {
            let data = ctx.input(0)?;
            let idx = ctx.input(1)?;
            let out = ctx.output(0)?;
            let a = norm_axis(ctx, *axis, data.shape.len())?;
            let pre: usize = data.shape[..a].iter().product();
            let d = data.shape[a];
            let post: usize = data.shape[a + 1..].iter().product();
            let q = idx.numel();
            if pre * q * post != out.numel() {
                return Err(ctx.invalid("output size mismatch"));
            }
            Ok(lowered(gather_rows(
                name,
                data.dtype,
                index_scalar(idx.dtype),
                [pre, q, post],
                d,
                tune,
            )))
        }
        Op::GatherElements { axis } => {
            let data = ctx.input(0)?;
            let idx = ctx.input(1)?;
            let out = ctx.output(0)?;
            let r = data.shape.len();
            let a = norm_axis(ctx, *axis, r)?;
            if idx.shape.len() != r {
                return Err(ctx.invalid("rank mismatch"));
            }
            let (ds, d) = (istrides(&data.shape), data.shape[a]);
            let is = index_scalar(idx.dtype);
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &[(Arg::Input(0), st(data.dtype)), (Arg::Input(1), is)],
                tune,
                |b, bufs, c| {
                    let flat = affine(c, 0, &istrides(&out.shape));
                    let j = load_index(b, bufs[1], flat, is, d);
                    let mut cs = c.to_vec();
                    cs[a] = b.let_(Type::I32, j);
                    Expr::load(bufs[0], affine(&cs, 0, &ds))
                },
            )))
        }
        Op::GatherNd { batch_dims } => {
            let data = ctx.input(0)?;
            let idx = ctx.input(1)?;
            let out = ctx.output(0)?;
            let (ds, is) = (&data.shape, &idx.shape);
            let bd = *batch_dims;
            let q = is.len();
            let m = is.last().copied().unwrap_or(0);
            if q == 0 || m == 0 || bd + m > ds.len() || ds[..bd] != is[..bd] {
                return Err(ctx.invalid("bad GatherND shapes"));
            }
            let batches: usize = ds[..bd].iter().product();
            let block: usize = ds[bd..].iter().product();
            let slice: usize = ds[bd + m..].iter().product();
            let tuples: usize = is[..q - 1].iter().product();
            let per_batch = tuples.checked_div(batches).unwrap_or(0).max(1);
            let dims = ds[bd..bd + m].to_vec();
            let dst = istrides(&ds[bd..]);
            let isc = index_scalar(idx.dtype);
            let flat = TensorDesc::new(out.dtype, vec![tuples, slice]);
            Ok(lowered(map_kernel(
                name,
                &flat,
                Arg::Output(0),
                &[(Arg::Input(0), st(data.dtype)), (Arg::Input(1), isc)],
                tune,
                |b, bufs, c| {
                    let t = c[0].clone();
                    let mut off = if batches > 1 {
                        (t.clone() / i(per_batch as i32)) * i(block as i32)
                    } else {
                        i(0)
                    };
                    for (j, &dim) in dims.iter().enumerate() {
                        let k =
                            load_index(b, bufs[1], t.clone() * i(m as i32) + i(j as i32), isc, dim);
                        off = off + k * i(dst[j] as i32);
                    }
                    Expr::load(bufs[0], off + c[1].clone())
                },
            )))
        }
        Op::ScatterElements { axis, reduction } => {
            let data = ctx.input(0)?;
            let idx = ctx.input(1)?;
            let upd = ctx.input(2)?;
            let out = ctx.output(0)?;
            let r = data.shape.len();
            let a = norm_axis(ctx, *axis, r)?;
            if idx.shape.len() != r || upd.shape != idx.shape {
                return Err(ctx.invalid("bad ScatterElements shapes"));
            }
            reduction_ok(ctx, *reduction, data.dtype)?;
            let (d, ish) = (data.shape[a], idx.shape.clone());
            let ist = istrides(&ish);
            let isc = index_scalar(idx.dtype);
            let s = st(data.dtype);
            let dt = data.dtype;
            let red = *reduction;
            let dshape = data.shape.clone();
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &[(Arg::Input(0), s), (Arg::Input(1), isc), (Arg::Input(2), s)],
                tune,
                |b, bufs, c| {
                    let flat = affine(c, 0, &istrides(&dshape));
                    let val = b.var(Type::scalar(s), Expr::load(bufs[0], flat));
                    // Updates sharing this element's other coordinates.
                    let mut inside: Option<Expr> = None;
                    for (k, (&n, &di)) in ish.iter().zip(&dshape).enumerate() {
                        if k != a && n < di {
                            let ok = c[k].clone().lt(i(n as i32));
                            inside = Some(match inside {
                                None => ok,
                                Some(p) => p.and(ok),
                            });
                        }
                    }
                    let body = |b: &mut KernelBuilder| {
                        b.for_(i(0), i(ish[a] as i32), 1, false, |b, k| {
                            let mut cs = c.to_vec();
                            cs[a] = k;
                            let uo = b.let_(Type::I32, affine(&cs, 0, &ist));
                            let j = load_index(b, bufs[1], uo.clone(), isc, d);
                            b.if_(j.eq_(c[a].clone()), |b| {
                                let u = Expr::load(bufs[2], uo);
                                let v = combine(red, Expr::Var(val), u, dt);
                                b.assign(val, v);
                            });
                        });
                    };
                    match inside {
                        Some(ok) => b.if_(ok, body),
                        None => body(b),
                    }
                    Expr::Var(val)
                },
            )))
        }
        Op::ScatterNd { reduction } => {
            let data = ctx.input(0)?;
            let idx = ctx.input(1)?;
            let out = ctx.output(0)?;
            let (ds, is) = (&data.shape, &idx.shape);
            let k = is.last().copied().unwrap_or(0);
            if is.is_empty() || k > ds.len() {
                return Err(ctx.invalid("bad ScatterND shapes"));
            }
            reduction_ok(ctx, *reduction, data.dtype)?;
            let slice: usize = ds[k..].iter().product();
            let rows: usize = ds[..k].iter().product();
            let tuples: usize = is[..is.len() - 1].iter().product();
            let dims = ds[..k].to_vec();
            let rst = istrides(&dims);
            let isc = index_scalar(idx.dtype);
            let s = st(data.dtype);
            let dt = data.dtype;
            let red = *reduction;
            let flat = TensorDesc::new(out.dtype, vec![rows, slice]);
            if red == ScatterReduction::None && rows.saturating_mul(tuples) > scan_limit {
                // Copy, then one invocation per update element writes its target (duplicate
                // indices are undefined for `none` in the spec; the last writer is arbitrary).
                let n = data.numel();
                let copy = super::movement::copy_kernel(
                    ctx.kname("copy"),
                    dt,
                    &[n],
                    (Arg::Input(0), super::movement::View::contiguous(&[n])),
                    (Arg::Output(0), super::movement::View::contiguous(&[n])),
                    tune,
                );
                let scatter = scatter_rows(
                    ctx.kname("scatter"),
                    s,
                    isc,
                    &dims,
                    &rst,
                    tuples,
                    slice,
                    tune,
                );
                return Ok(lowered(copy.into_iter().chain(scatter)));
            }
            Ok(lowered(map_kernel(
                name,
                &flat,
                Arg::Output(0),
                &[(Arg::Input(0), s), (Arg::Input(1), isc), (Arg::Input(2), s)],
                tune,
                |b, bufs, c| {
                    let (row, col) = (c[0].clone(), c[1].clone());
                    let e = affine(&[row.clone(), col.clone()], 0, &[slice as i64, 1]);
                    let val = b.var(Type::scalar(s), Expr::load(bufs[0], e));
                    b.for_(i(0), i(tuples as i32), 1, false, |b, t| {
                        let mut target = i(0);
                        for (j, &dim) in dims.iter().enumerate() {
                            let x = load_index(
                                b,
                                bufs[1],
                                t.clone() * i(k as i32) + i(j as i32),
                                isc,
                                dim,
                            );
                            target = if j == 0 && rst[j] == 1 {
                                x
                            } else {
                                target + x * i(rst[j] as i32)
                            };
                        }
                        let hit = b.let_(Type::I32, target);
                        b.if_(hit.eq_(row.clone()), |b| {
                            let u = Expr::load(bufs[2], t * i(slice as i32) + col.clone());
                            let v = combine(red, Expr::Var(val), u, dt);
                            b.assign(val, v);
                        });
                    });
                    Expr::Var(val)
                },
            )))
        }
        Op::OneHot { axis } => {
            let idx = ctx.input(0)?;
            let vals = ctx.input(2)?;
            let out = ctx.output(0)?;
            let r = out.shape.len();
            let a = norm_axis(ctx, *axis, r)?;
            if vals.numel() != 2 || idx.shape.len() + 1 != r {
                return Err(ctx.invalid("bad OneHot shapes"));
            }
            let depth = out.shape[a];
            let isc = index_scalar(idx.dtype);
            let ist = istrides(&idx.shape);
            let float_idx = idx.dtype.is_float();
            let ldt = if float_idx { Scalar::F32 } else { isc };
            let f16 = idx.dtype == DType::F16;
            let _ = f16;
            Ok(lowered(map_kernel(
                name,
                out,
                Arg::Output(0),
                &[
                    (Arg::Input(0), st(idx.dtype)),
                    (Arg::Input(2), st(vals.dtype)),
                ],
                tune,
                |b, bufs, c| {
                    let mut ic = c.to_vec();
                    let j = ic.remove(a);
                    let raw = Expr::load(bufs[0], affine(&ic, 0, &ist));
                    let v = if ldt == Scalar::I32 && !float_idx {
                        raw
                    } else {
                        // Floats truncate toward zero; f16 is widened by the cast.
                        raw.cast(Scalar::I32)
                    };
                    let v = b.let_(Type::I32, v);
                    let w = select(v.clone().lt(i(0)), v.clone() + i(depth as i32), v);
                    let hit = w.eq_(j);
                    select(hit, Expr::load(bufs[1], i(1)), Expr::load(bufs[1], i(0)))
                },
            )))
        }
        _ => Err(ctx.invalid("not an indexing op")),
    }
}

fn reduction_ok(ctx: &LowerCtx<'_>, r: ScatterReduction, dtype: DType) -> Result<(), LowerError> {
    if r != ScatterReduction::None && dtype == DType::I64 {
        return Err(ctx.unsupported("needs int64 arithmetic"));
    }
    if r != ScatterReduction::None && dtype == DType::Bool {
        return Err(ctx.unsupported("with a reduction on bool"));
    }
    Ok(())
}

/// One invocation per update element of a ScatterND: stores `updates[t, s]` at
/// `out[row(t), s]`.
#[allow(clippy::too_many_arguments)]
fn scatter_rows(
    name: String,
    s: Scalar,
    isc: Scalar,
    dims: &[usize],
    rst: &[i64],
    tuples: usize,
    slice: usize,
    tune: Tuning,
) -> Option<KernelLaunch> {
    let n = tuples * slice;
    if n == 0 {
        return None;
    }
    let k = dims.len();
    let wg = tune.workgroup;
    let grid = grid_1d(n, wg);
    let mut b = KernelBuilder::new(name, [wg, 1, 1]);
    let ib = b.buffer("indices", Type::scalar(isc), Access::Read);
    let ub = b.buffer("updates", Type::scalar(s), Access::Read);
    let ob = b.buffer("out", Type::scalar(s), Access::ReadWrite);
    let idx = flat_index(&mut b, grid, wg);
    guard(&mut b, &idx, n);
    let c = unravel(&mut b, &idx, &[tuples, slice]);
    let mut row = i(0);
    for (j, &dim) in dims.iter().enumerate() {
        let x = load_index(
            &mut b,
            ib,
            c[0].clone() * i(k as i32) + i(j as i32),
            isc,
            dim,
        );
        row = row + x * i(rst[j] as i32);
    }
    let row = b.let_(Type::I32, row);
    b.store(
        ob,
        row * i(slice as i32) + c[1].clone(),
        Expr::load(ub, idx.clone()),
    );
    Some(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(1), Arg::Input(2), Arg::Output(0)],
        grid,
    })
}

/// `old ⊕ new` under a scatter reduction, on storage values of `dtype`.
fn combine(r: ScatterReduction, old: Expr, new: Expr, dtype: DType) -> Expr {
    let f16 = dtype == DType::F16;
    let (o, n) = if f16 {
        (old.clone().cast(Scalar::F32), new.clone().cast(Scalar::F32))
    } else {
        (old.clone(), new.clone())
    };
    let v = match r {
        ScatterReduction::None => return new,
        ScatterReduction::Add => o + n,
        ScatterReduction::Mul => o * n,
        ScatterReduction::Max => return select(new.clone().gt(old.clone()), new, old),
        ScatterReduction::Min => return select(new.clone().lt(old.clone()), new, old),
    };
    let v = if f16 { v.cast(Scalar::F16) } else { v };
    super::common::wrap_int(v, dtype)
}

/// Gather over `[pre, d, post]` data with `q` indices into `[pre, q, post]`: vec4 rows when
/// `post` is a multiple of 4.
fn gather_rows(
    name: String,
    dtype: DType,
    isc: Scalar,
    [pre, q, post]: [usize; 3],
    d: usize,
    tune: Tuning,
) -> Option<KernelLaunch> {
    let lanes = if tune.vector && post % 4 == 0 { 4 } else { 1 };
    let post = post / lanes;
    let n = pre * q * post;
    if n == 0 {
        return None;
    }
    let wg = tune.workgroup;
    let grid = grid_1d(n, wg);
    let mut b = KernelBuilder::new(name, [wg, 1, 1]);
    let ty = Type::vec(st(dtype), lanes as u8);
    let db = b.buffer("data", ty, Access::Read);
    let ib = b.buffer("indices", Type::scalar(isc), Access::Read);
    let ob = b.buffer("out", ty, Access::ReadWrite);
    let idx = flat_index(&mut b, grid, wg);
    guard(&mut b, &idx, n);
    let c = unravel(&mut b, &idx, &[pre, q, post]);
    let j = load_index(&mut b, ib, c[1].clone(), isc, d);
    let j = b.let_(Type::I32, j);
    let src = affine(
        &[c[0].clone(), j, c[2].clone()],
        0,
        &[(d * post) as i64, post as i64, 1],
    );
    b.store(ob, idx, Expr::load(db, src));
    Some(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Input(1), Arg::Output(0)],
        grid,
    })
}

#[cfg(test)]
mod tests {
    use super::super::movement::tests::{check, iota};
    use optc_ir::ops::{Op, ScatterReduction};
    use optc_ir::tensor::Tensor;

    fn t64(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    #[test]
    fn gather_any_axis_negative_indices_and_vec4_rows() {
        let x = iota(&[3, 4, 8]);
        let idx = t64(&[2, 2], &[0, -1, 2, 1]);
        for axis in [0, 1, -1] {
            check(
                &Op::Gather { axis },
                &[Some(x.clone()), Some(idx.clone())],
                &[],
                1,
            );
        }
        check(
            &Op::Gather { axis: 0 },
            &[Some(x), Some(Tensor::scalar(-2i64))],
            &[],
            1,
        );
    }

    #[test]
    fn gather_elements_and_nd() {
        let x = iota(&[3, 4]);
        let idx = t64(&[2, 4], &[0, 2, -1, 1, 2, 0, 0, 1]);
        check(
            &Op::GatherElements { axis: 0 },
            &[Some(x.clone()), Some(idx)],
            &[],
            1,
        );
        let idx = t64(&[3, 2], &[3, -1, 0, 2, 1, 1]);
        check(
            &Op::GatherElements { axis: 1 },
            &[Some(x), Some(idx)],
            &[],
            1,
        );
        let x = iota(&[2, 3, 4]);
        let idx = t64(&[2, 1], &[1, 0]);
        check(
            &Op::GatherNd { batch_dims: 0 },
            &[Some(x.clone()), Some(idx)],
            &[],
            1,
        );
        let idx = t64(&[2, 2, 2], &[0, 1, 2, 3, 1, -1, 0, 0]);
        check(
            &Op::GatherNd { batch_dims: 1 },
            &[Some(x.clone()), Some(idx)],
            &[],
            1,
        );
        let idx = t64(&[2, 3], &[1, 2, 3, 0, 0, 0]);
        check(
            &Op::GatherNd { batch_dims: 0 },
            &[Some(x), Some(idx)],
            &[],
            1,
        );
    }

    #[test]
    fn scatters_with_duplicates_under_every_reduction() {
        let data = iota(&[3, 4]);
        let idx = t64(&[2, 3], &[1, 0, 2, 1, 2, -1]);
        let upd = Tensor::from_vec(vec![2, 3], vec![10f32, 20., 30., 40., 50., 60.]).unwrap();
        for reduction in [
            ScatterReduction::Add,
            ScatterReduction::Mul,
            ScatterReduction::Max,
            ScatterReduction::Min,
        ] {
            let op = Op::ScatterElements { axis: 0, reduction };
            let ins = [Some(data.clone()), Some(idx.clone()), Some(upd.clone())];
            check(&op, &ins, &[], 1);
            let op = Op::ScatterElements { axis: 1, reduction };
            check(&op, &ins, &[], 1);
        }
        let none = Op::ScatterElements {
            axis: 1,
            reduction: ScatterReduction::None,
        };
        let idx1 = t64(&[2, 3], &[3, 0, 1, 1, 2, -1]);
        check(&none, &[Some(data.clone()), Some(idx1), Some(upd)], &[], 1);
        let data = iota(&[4, 2, 3]);
        let idx = t64(&[3, 1], &[1, 3, 1]);
        let upd = iota(&[3, 2, 3]);
        for reduction in [
            ScatterReduction::None,
            ScatterReduction::Add,
            ScatterReduction::Max,
        ] {
            let op = Op::ScatterNd { reduction };
            check(
                &op,
                &[Some(data.clone()), Some(idx.clone()), Some(upd.clone())],
                &[],
                1,
            );
        }
        let idx = t64(&[2, 2], &[0, 1, -1, 0]);
        let upd = iota(&[2, 3]);
        let op = Op::ScatterNd {
            reduction: ScatterReduction::Mul,
        };
        check(&op, &[Some(data), Some(idx), Some(upd)], &[], 1);
    }

    #[test]
    fn scatter_nd_copy_then_scatter_path() {
        use super::super::sim::run_op_n as run_op;
        use super::super::{LowerCtx, TensorDesc};
        let data = iota(&[4, 2, 3]);
        let idx = t64(&[2, 1], &[3, -4]);
        let upd = iota(&[2, 2, 3]);
        let op = Op::ScatterNd {
            reduction: ScatterReduction::None,
        };
        let ins = [Some(data), Some(idx), Some(upd)];
        // The default lowering scans; the forced direct path must agree with it.
        let (scan, want) = run_op(&op, &ins, &[], 1);
        super::super::sim::assert_close(&scan[0], &want[0], "scan");
        let descs = super::super::sim::descs(&ins);
        let outs = [Some(TensorDesc::new(
            want[0].dtype(),
            want[0].shape().to_vec(),
        ))];
        let ctx = LowerCtx {
            op: &op,
            name: "n0",
            inputs: &descs,
            values: &[None, None, None],
            outputs: &outs,
            features: Default::default(),
        };
        let l = super::lower_with(&ctx, super::DEFAULT, 0).unwrap();
        assert_eq!(l.launches.len(), 2);
        let mut out = vec![super::super::sim::S::F(f32::NAN); 24];
        let lanes = |t: &Tensor| -> Vec<super::super::sim::S> {
            t.to_f64_vec()
                .into_iter()
                .map(|v| super::super::sim::S::F(v as f32))
                .collect()
        };
        let ilanes: Vec<_> = ins[1]
            .as_ref()
            .unwrap()
            .to_i64_vec()
            .into_iter()
            .map(|v| super::super::sim::S::I(v as i32))
            .collect();
        for k in &l.launches {
            super::super::sim::typecheck(&k.kernel);
        }
        let r = super::super::sim::run(
            &l.launches[0].kernel,
            l.launches[0].grid,
            vec![lanes(ins[0].as_ref().unwrap()), out.clone()],
        );
        out = r[1].clone();
        let r = super::super::sim::run(
            &l.launches[1].kernel,
            l.launches[1].grid,
            vec![ilanes, lanes(ins[2].as_ref().unwrap()), out],
        );
        let got: Vec<f64> = r[2]
            .iter()
            .map(|v| match v {
                super::super::sim::S::F(x) => *x as f64,
                _ => f64::NAN,
            })
            .collect();
        assert_eq!(got, want[0].to_f64_vec());
    }

    #[test]
    fn one_hot_axes_and_out_of_range() {
        let idx = t64(&[2, 2], &[0, 3, -1, 5]);
        let vals = Tensor::from_vec(vec![2], vec![-1f32, 2.0]).unwrap();
        for axis in [-1, 0, 1] {
            check(
                &Op::OneHot { axis },
                &[
                    Some(idx.clone()),
                    Some(Tensor::scalar(4i64)),
                    Some(vals.clone()),
                ],
                &[1],
                1,
            );
        }
        let fidx = Tensor::from_vec(vec![3], vec![1.7f32, -1.2, 0.0]).unwrap();
        check(
            &Op::OneHot { axis: -1 },
            &[Some(fidx), Some(Tensor::scalar(3.0f32)), Some(vals)],
            &[1],
            1,
        );
    }
}
