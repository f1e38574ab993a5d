//! Pooling: MaxPool (with the optional Indices output, dilations, ceil_mode, storage_order),
//! AveragePool (count_include_pad, ceil_mode, dilations), LpPool, GlobalAveragePool and
//! GlobalMaxPool.
//!
//! Windowed pools run one invocation per output element, looping over the window taps with
//! compile-time sizes, strides, dilations and pads (1 to 3 spatial axes); taps outside the input
//! are skipped, and the divisor of AveragePool counts either the taps inside the input or, with
//! `count_include_pad`, those inside the padded input (the ceil_mode overhang beyond the end
//! padding never counts, like the reference). MaxPool keeps the first maximum (`>`), writes 0
//! and index -1 for a window with no tap inside the input. f32 MaxPool without Indices and
//! AveragePool whose last spatial axis is a multiple of 4 long in the input and the output take
//! a vec4 form instead (`windowed_vec4`): 4 outputs per invocation from aligned vec4 loads of
//! each window row's span. Global pools are row reductions over the spatial axes
//! ([`super::reduce::RowKernel`]).
//!
//! Tuning space: windowed pools — workgroup size (64…256, default 128), taps unrolled or not
//! (default: loops), scalar or vec4 form (vec4 wherever it applies); global pools — the row
//! strategy of [`super::reduce::Strategy`], default [`super::reduce::choose`].

use super::common::{flat_index, grid_1d, guard, load, strides, to_storage, unravel};
use super::reduce::{Acc, RowGeom, RowKernel, choose, st};
use super::{Arg, KernelLaunch, LowerCtx, LowerError, Lowered, compute_scalar};
use crate::builder::{KernelBuilder, f, i, lit, select, u};
use crate::ir::{Access, BinOp, Expr, Scalar, Type, UnOp};
use optc_ir::dtype::DType;
use optc_ir::ops::{AutoPad, Op, Window};

/// The callback run at each window position: (builder, input coordinates, inside the input,
/// inside the padded input).
type WindowLeaf<'a> = dyn FnMut(&mut KernelBuilder, &[Expr], Expr, Expr) + 'a;

const WG: u32 = 128;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Max,
    Avg { include_pad: bool },
    Lp { p: i64 },
}

/// Lowers the pooling ops.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    let x = ctx.input(0)?;
    if x.shape.len() < 2 {
        return Err(ctx.invalid("needs an input of rank ≥ 2"));
    }
    if ctx.output(0)?.numel() == 0 {
        return Ok(Lowered::default());
    }
    let launch = match ctx.op {
        Op::GlobalAveragePool | Op::GlobalMaxPool => global(ctx)?,
        Op::MaxPool {
            window,
            storage_order,
            ..
        } => windowed(ctx, window, Kind::Max, *storage_order != 0)?,
        Op::AveragePool {
            window,
            count_include_pad,
            ..
        } => windowed(
            ctx,
            window,
            Kind::Avg {
                include_pad: *count_include_pad,
            },
            false,
        )?,
        Op::LpPool { window, p, .. } => {
            if *p <= 0 {
                return Err(ctx.invalid("p must be positive"));
            }
            windowed(ctx, window, Kind::Lp { p: *p }, false)?
        }
        _ => return Err(ctx.invalid("not a pooling op")),
    };
    Ok(Lowered {
        launches: vec![launch],
        ..Lowered::default()
    })
}

fn global(ctx: &LowerCtx<'_>) -> Result<KernelLaunch, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    if !x.dtype.is_float() {
        return Err(ctx.unsupported(format!("needs {}", x.dtype.name())));
    }
    let s: usize = x.shape[2..].iter().product();
    let geom = RowGeom::contiguous(x.shape[0] * x.shape[1], s);
    let strategy = choose(geom.rows, geom.len);
    let (mut b, grid) = RowKernel::builder(ctx.kname(""), &geom, strategy);
    let dt = x.dtype;
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let rk = RowKernel::start(&mut b, &geom, strategy, grid);
    let v = if matches!(ctx.op, Op::GlobalMaxPool) {
        let acc = Acc {
            ty: Type::F32,
            init: f(f32::NEG_INFINITY),
            combine: |a, b| select(b.clone().gt(a.clone()), b, a),
        };
        let m = rk.fold(&mut b, &[acc], |_, o, _| vec![load(xb, o, dt)])[0].clone();
        if s == 0 { f(0.0) } else { m }
    } else {
        let sum = rk.fold(&mut b, &[Acc::sum()], |_, o, _| vec![load(xb, o, dt)])[0].clone();
        sum / f(s as f32)
    };
    let row = rk.row.clone();
    let od = out.dtype;
    rk.leader(&mut b, |b| b.store(yb, row, to_storage(v, od)));
    Ok(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Output(0)],
        grid,
    })
}

/// Per spatial axis: kernel, stride, dilation, pad begin, pad end.
struct Axis {
    k: usize,
    s: usize,
    d: usize,
    pb: usize,
    pe: usize,
}

fn axes(ctx: &LowerCtx<'_>, w: &Window, input: &[usize]) -> Result<Vec<Axis>, LowerError> {
    let nsp = w.kernel_shape.len();
    if nsp == 0 || nsp > 3 || input.len() != nsp {
        return Err(ctx.unsupported(format!("with {nsp} spatial axes")));
    }
    let list = |v: &[usize], what: &str| -> Result<Vec<usize>, LowerError> {
        if v.is_empty() {
            Ok(vec![1; nsp])
        } else if v.len() != nsp || v.contains(&0) {
            Err(ctx.invalid(format!("bad {what} {v:?}")))
        } else {
            Ok(v.to_vec())
        }
    };
    let strides = list(&w.strides, "strides")?;
    let dil = list(&w.dilations, "dilations")?;
    let pads = if w.pads.is_empty() {
        vec![0; 2 * nsp]
    } else if w.pads.len() == 2 * nsp {
        w.pads.clone()
    } else {
        return Err(ctx.invalid(format!("bad pads {:?}", w.pads)));
    };
    let mut out = Vec::new();
    for a in 0..nsp {
        let (k, s, d) = (w.kernel_shape[a], strides[a], dil[a]);
        if k == 0 {
            return Err(ctx.invalid("kernel_shape has a 0"));
        }
        let ek = (k - 1) * d + 1;
        let (pb, pe) = match w.auto_pad {
            AutoPad::NotSet => (pads[a], pads[nsp + a]),
            AutoPad::Valid => (0, 0),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = input[a].div_ceil(s);
                let need = (o.saturating_sub(1) * s + ek).saturating_sub(input[a]);
                let small = need / 2;
                if w.auto_pad == AutoPad::SameUpper {
                    (small, need - small)
                } else {
                    (need - small, small)
                }
            }
        };
        out.push(Axis { k, s, d, pb, pe });
    }
    Ok(out)
}

fn windowed(
    ctx: &LowerCtx<'_>,
    w: &Window,
    kind: Kind,
    col_major: bool,
) -> Result<KernelLaunch, LowerError> {
    let x = ctx.input(0)?;
    let out = ctx.output(0)?;
    let dt = x.dtype;
    let float = dt.is_float();
    if !(float || kind == Kind::Max && matches!(dt, DType::I8 | DType::U8)) {
        return Err(ctx.unsupported(format!("needs {}", dt.name())));
    }
    let insp = &x.shape[2..];
    let outsp = &out.shape[2..];
    let ax = axes(ctx, w, insp)?;
    if outsp.len() != ax.len() {
        return Err(ctx.invalid("output rank does not match the window"));
    }
    let indices = if kind == Kind::Max {
        ctx.outputs.get(1).and_then(|o| o.as_ref())
    } else {
        None
    };
    let n = out.numel();
    if dt == DType::F32
        && indices.is_none()
        && let Some(l) = windowed_vec4(ctx, &ax, insp, outsp, n, kind)
    {
        return Ok(l);
    }
    let grid = grid_1d(n, WG);
    let mut b = KernelBuilder::new(ctx.kname(""), [WG, 1, 1]);
    let xb = b.buffer("x", Type::scalar(st(dt)), Access::Read);
    let yb = b.buffer("y", Type::scalar(st(out.dtype)), Access::ReadWrite);
    let mut args = vec![Arg::Input(0), Arg::Output(0)];
    let ib = indices.map(|d| {
        args.push(Arg::Output(1));
        b.buffer("indices", Type::scalar(st(d.dtype)), Access::ReadWrite)
    });
    let idx = flat_index(&mut b, grid, WG);
    guard(&mut b, &idx, n);
    let pout: usize = outsp.iter().product();
    let pin: usize = insp.iter().product();
    let plane = b.let_(Type::I32, idx.clone() / i(pout as i32));
    let oc = unravel(&mut b, &(idx.clone() % i(pout as i32)), outsp);
    let ist = strides(insp);
    let in_base = b.let_(Type::I32, plane * i(pin as i32));
    let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
    let vty = Type::scalar(cs);
    // Accumulators.
    let acc = match kind {
        Kind::Max => b.var(vty, lit(cs, 0.0)),
        _ => b.var(Type::F32, f(0.0)),
    };
    let found = b.var(Type::BOOL, Expr::Bool(false));
    let best_i = b.var(Type::I32, i(-1));
    let cnt = b.var(Type::I32, i(0));
    let cntp = b.var(Type::I32, i(0));
    let mut pos = Vec::new();
    let in_base2 = in_base.clone();
    taps(
        &mut b,
        &ax,
        insp,
        &oc,
        0,
        &mut pos,
        Expr::Bool(true),
        Expr::Bool(true),
        &mut |b, pos, inside, padded| {
            b.if_(padded, |b| b.assign(cntp, Expr::Var(cntp) + i(1)));
            let local: Expr = pos
                .iter()
                .zip(&ist)
                .fold(None, |acc: Option<Expr>, (p, &s)| {
                    let t = if s == 1 {
                        p.clone()
                    } else {
                        p.clone() * i(s as i32)
                    };
                    Some(match acc {
                        None => t,
                        Some(a) => a + t,
                    })
                })
                .unwrap_or(i(0));
            let in_base = in_base2.clone();
            b.if_(inside, |b| {
                let off = b.let_(Type::I32, in_base.clone() + local);
                let v = b.let_(vty, load(xb, off.clone(), dt));
                match kind {
                    Kind::Max => {
                        let better = Expr::Var(found)
                            .un(UnOp::Not)
                            .or(v.clone().gt(Expr::Var(acc)));
                        b.if_(better, |b| {
                            b.assign(acc, v.clone());
                            b.assign(found, Expr::Bool(true));
                            let id = if col_major {
                                let mut e = in_base.clone();
                                let mut m = 1usize;
                                for (p, &nn) in pos.iter().zip(insp) {
                                    e = e + p.clone() * i(m as i32);
                                    m *= nn;
                                }
                                e
                            } else {
                                off.clone()
                            };
                            b.assign(best_i, id);
                        });
                    }
                    Kind::Avg { .. } => b.assign(acc, Expr::Var(acc) + v),
                    Kind::Lp { p } => {
                        let t = match p {
                            1 => v.un(UnOp::Abs),
                            2 => v.clone() * v,
                            _ => v.un(UnOp::Abs).bin(BinOp::Pow, f(p as f32)),
                        };
                        b.assign(acc, Expr::Var(acc) + t);
                    }
                }
                b.assign(cnt, Expr::Var(cnt) + i(1));
            });
        },
    );
    let od = out.dtype;
    let y = match kind {
        Kind::Max => select(Expr::Var(found), Expr::Var(acc), lit(cs, 0.0)),
        Kind::Avg { include_pad } => {
            let c = if include_pad { cntp } else { cnt };
            Expr::Var(acc) / Expr::Var(c).cast(Scalar::F32)
        }
        Kind::Lp { p } => {
            let kn: usize = ax.iter().map(|a| a.k).product();
            let v = f(kn as f32) * (Expr::Var(acc) / Expr::Var(cntp).cast(Scalar::F32));
            match p {
                1 => v,
                2 => v.un(UnOp::Sqrt),
                _ => v.bin(BinOp::Pow, f(1.0 / p as f32)),
            }
        }
    };
    b.store(yb, idx.clone(), to_storage(y, od));
    if let (Some(ib), Some(d)) = (ib, indices) {
        b.store(ib, idx, to_storage(Expr::Var(best_i), d.dtype));
    }
    Ok(KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    })
}

/// Nested tap loops over the window's axes; `pos[a]` is the input coordinate of the tap on axis
/// `a`, `inside` whether the tap is inside the input, `padded` inside the padded input.
#[allow(clippy::too_many_arguments)]
fn taps(
    b: &mut KernelBuilder,
    ax: &[Axis],
    insp: &[usize],
    oc: &[Expr],
    a: usize,
    pos: &mut Vec<Expr>,
    inside: Expr,
    padded: Expr,
    leaf: &mut WindowLeaf<'_>,
) {
    if a == ax.len() {
        leaf(b, pos, inside, padded);
        return;
    }
    let (k, s, d, pb, pe) = (ax[a].k, ax[a].s, ax[a].d, ax[a].pb, ax[a].pe);
    let n = insp[a];
    let start = oc[a].clone() * i(s as i32) - i(pb as i32);
    let start = b.let_(Type::I32, start);
    b.for_(i(0), i(k as i32), 1, false, |b, t| {
        let p = b.let_(
            Type::I32,
            start.clone() + if d == 1 { t } else { t * i(d as i32) },
        );
        let ins = p.clone().ge(i(0)).and(p.clone().lt(i(n as i32)));
        let pad = p
            .clone()
            .ge(i(-(pb as i32)))
            .and(p.clone().lt(i((n + pe) as i32)));
        let ins = if inside == Expr::Bool(true) {
            ins
        } else {
            inside.clone().and(ins)
        };
        let pad = if padded == Expr::Bool(true) {
            pad
        } else {
            padded.clone().and(pad)
        };
        let ins = b.let_(Type::BOOL, ins);
        let pad = b.let_(Type::BOOL, pad);
        pos.push(p);
        taps(b, ax, insp, oc, a + 1, pos, ins, pad, leaf);
        pos.pop();
    });
}

/// The vec4 variant of [`windowed`]: f32 MaxPool without Indices and AveragePool whose last
/// spatial axis is a multiple of 4 long in the input and in the output (resnet's 112 → 56 max
/// pool). Every invocation computes 4 consecutive outputs along that axis. Per tap of the other
/// axes it loads the input row span the 4 windows cover as a few aligned vec4s (3 for a 3-wide,
/// stride-2 window) and picks each tap's lane at compile time — 9 vec4 loads for 4 outputs of a
/// 3×3 window where the scalar kernel makes 36 scalar loads. A row's length being a multiple of
/// 4, every vec4 is wholly inside or wholly outside the input. `None` where the shape does not
/// qualify (then the scalar kernel runs).
fn windowed_vec4(
    ctx: &LowerCtx<'_>,
    ax: &[Axis],
    insp: &[usize],
    outsp: &[usize],
    n_out: usize,
    kind: Kind,
) -> Option<KernelLaunch> {
    // None: MaxPool; Some(count_include_pad): AveragePool.
    let avg = match kind {
        Kind::Max => None,
        Kind::Avg { include_pad } => Some(include_pad),
        Kind::Lp { .. } => return None,
    };
    let last = ax.len().checked_sub(1)?;
    let (win, wout) = (insp[last], outsp[last]);
    if win % 4 != 0 || wout % 4 != 0 {
        return None;
    }
    let Axis { k, s, d, pb, pe } = ax[last];
    // The 4 windows span input positions 4js - pb ..= 4js + 3s - pb + (k-1)d along the axis:
    // vec4 chunks js + c0 ..= js + c0 + nch - 1.
    let c0 = (-(pb as i64)).div_euclid(4);
    let hi = (3 * s + (k - 1) * d) as i64 - pb as i64;
    let nch = (hi.div_euclid(4) - c0 + 1) as usize;
    if k > 16 || nch > 8 {
        return None;
    }
    let n4 = n_out / 4;
    let grid = grid_1d(n4, WG);
    let v4 = Type::vec(Scalar::F32, 4);
    let mut b = KernelBuilder::new(ctx.kname("vec4"), [WG, 1, 1]);
    let xb = b.buffer("x", v4, Access::Read);
    let yb = b.buffer("y", v4, Access::ReadWrite);
    let idx = flat_index(&mut b, grid, WG);
    guard(&mut b, &idx, n4);
    let mut outsp4 = outsp.to_vec();
    outsp4[last] /= 4;
    let pout4: usize = outsp4.iter().product();
    let pin: usize = insp.iter().product();
    let plane = b.let_(Type::I32, idx.clone() / i(pout4 as i32));
    let oc = unravel(&mut b, &(idx.clone() % i(pout4 as i32)), &outsp4);
    let ist = strides(insp);
    let in_base4 = b.let_(Type::I32, plane * i((pin / 4) as i32));
    // Chunk validity does not depend on the other axes' taps.
    let cb = b.let_(Type::I32, oc[last].clone() * i(s as i32) + i(c0 as i32));
    let chunk_ok: Vec<Expr> = (0..nch)
        .map(|c| {
            let ch = cb.clone() + i(c as i32);
            b.let_(Type::BOOL, ch.cast(Scalar::U32).lt(u((win / 4) as u32)))
        })
        .collect();
    // Tap t of output q reads lane r % 4 of chunk r / 4.
    let tap = |q: usize, t: usize| (q * s + t * d) as i64 - pb as i64 - 4 * c0;
    let is_max = avg.is_none();
    let init = if is_max { f(f32::NEG_INFINITY) } else { f(0.0) };
    let acc: Vec<_> = (0..4).map(|_| b.var(Type::F32, init.clone())).collect();
    let cnt: Vec<_> = (0..4).map(|_| b.var(Type::I32, i(0))).collect();
    // Taps of the other axes inside the padded input (count_include_pad's divisor).
    let rows_padded = (avg == Some(true)).then(|| b.var(Type::I32, i(0)));
    let mut pos = Vec::new();
    taps(
        &mut b,
        &ax[..last],
        &insp[..last],
        &oc[..last],
        0,
        &mut pos,
        Expr::Bool(true),
        Expr::Bool(true),
        &mut |b, pos, inside, padded| {
            if let Some(rp) = rows_padded {
                b.assign(rp, Expr::Var(rp) + select(padded, i(1), i(0)));
            }
            let row4 = pos
                .iter()
                .zip(&ist)
                .fold(in_base4.clone(), |acc, (p, &st)| {
                    acc + p.clone() * i((st / 4) as i32)
                });
            b.if_(inside, |b| {
                let row4 = b.let_(Type::I32, row4 + cb.clone());
                let v: Vec<Expr> = (0..nch)
                    .map(|c| {
                        let at = select(chunk_ok[c].clone(), row4.clone() + i(c as i32), i(0));
                        b.let_(v4, Expr::load(xb, at))
                    })
                    .collect();
                for q in 0..4 {
                    for t in 0..k {
                        let r = tap(q, t) as usize;
                        let (x, ok) = (v[r / 4].clone().lane((r % 4) as u8), &chunk_ok[r / 4]);
                        let (a, c) = (acc[q], cnt[q]);
                        if is_max {
                            // The first tap inside, then strictly greater ones (the reference's
                            // first-maximum rule, NaN included).
                            let first = Expr::Var(c).eq_(i(0));
                            let take = ok.clone().and(first.or(x.clone().gt(Expr::Var(a))));
                            b.assign(a, select(take, x, Expr::Var(a)));
                        } else {
                            b.assign(a, Expr::Var(a) + select(ok.clone(), x, f(0.0)));
                        }
                        b.assign(c, Expr::Var(c) + select(ok.clone(), i(1), i(0)));
                    }
                }
            });
        },
    );
    let ys: Vec<Expr> = (0..4)
        .map(|q| {
            if is_max {
                return select(Expr::Var(cnt[q]).gt(i(0)), Expr::Var(acc[q]), f(0.0));
            }
            let c = match rows_padded {
                // Taps inside the padded input: every tap is at or after -pb; those before the
                // end padding's end count, times the padded rows.
                Some(rp) => {
                    let p0 = oc[last].clone() * i((4 * s) as i32);
                    let along = (0..k).fold(i(0), |acc, t| {
                        let p = p0.clone() + i((q * s + t * d) as i32 - pb as i32);
                        acc + select(p.lt(i((win + pe) as i32)), i(1), i(0))
                    });
                    Expr::Var(rp) * along
                }
                None => Expr::Var(cnt[q]),
            };
            Expr::Var(acc[q]) / c.cast(Scalar::F32)
        })
        .collect();
    b.store(yb, idx, Expr::Vector(ys));
    Some(KernelLaunch {
        kernel: b.finish(),
        args: vec![Arg::Input(0), Arg::Output(0)],
        grid,
    })
}

#[cfg(test)]
mod tests {
    use super::super::sim::{assert_close, rand_t, run_op, run_op_n};
    use optc_ir::ops::{AutoPad, Op, Window};

    fn win(k: &[usize], s: &[usize], d: &[usize], pads: &[usize], auto_pad: AutoPad) -> Window {
        Window {
            kernel_shape: k.to_vec(),
            strides: s.to_vec(),
            dilations: d.to_vec(),
            pads: pads.to_vec(),
            auto_pad,
        }
    }

    fn check(op: Op, shape: &[usize], n_out: usize) {
        let (got, want) = run_op(&op, &[Some(rand_t(shape, 3))], &[]);
        for k in 0..n_out {
            assert_close(&got[k], &want[k], &format!("{op:?} output {k}"));
        }
    }

    #[test]
    fn windowed_pools_match_reference() {
        let wins = [
            win(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1], AutoPad::NotSet),
            win(&[2, 3], &[1, 2], &[2, 1], &[0, 1, 1, 0], AutoPad::NotSet),
            win(&[3, 3], &[2, 2], &[], &[], AutoPad::SameUpper),
            win(&[2, 2], &[2, 2], &[], &[], AutoPad::SameLower),
            win(&[3, 3], &[2, 2], &[], &[], AutoPad::Valid),
        ];
        for w in &wins {
            for ceil_mode in [false, true] {
                let mp = Op::MaxPool {
                    window: w.clone(),
                    ceil_mode,
                    storage_order: 0,
                };
                check(mp, &[1, 2, 7, 6], 2);
                let mp = Op::MaxPool {
                    window: w.clone(),
                    ceil_mode,
                    storage_order: 1,
                };
                check(mp, &[1, 2, 7, 6], 2);
                for count_include_pad in [false, true] {
                    let ap = Op::AveragePool {
                        window: w.clone(),
                        ceil_mode,
                        count_include_pad,
                    };
                    check(ap, &[2, 1, 7, 6], 1);
                }
                for p in [1, 2, 3] {
                    let lp = Op::LpPool {
                        window: w.clone(),
                        ceil_mode,
                        p,
                    };
                    check(lp, &[1, 2, 7, 6], 1);
                }
            }
        }
        let w1 = win(&[3], &[1], &[], &[1, 1], AutoPad::NotSet);
        check(
            Op::MaxPool {
                window: w1,
                ceil_mode: false,
                storage_order: 0,
            },
            &[2, 3, 8],
            2,
        );
        let w3 = win(&[2, 2, 2], &[1, 2, 1], &[], &[], AutoPad::NotSet);
        check(
            Op::AveragePool {
                window: w3,
                ceil_mode: false,
                count_include_pad: false,
            },
            &[1, 2, 3, 4, 5],
            1,
        );
    }

    /// [`check`] of `op`'s first output alone (MaxPool without its Indices output).
    fn check1(op: &Op, x: optc_ir::tensor::Tensor) {
        let (got, want) = run_op_n(op, &[Some(x)], &[], 1);
        assert_close(&got[0], &want[0], &format!("{op:?}"));
    }

    /// The kernel `op` lowers to for an f32 input of `shape`, and the output's shape (from the
    /// reference).
    fn kernel_name(op: &Op, shape: &[usize]) -> (String, Vec<usize>) {
        use super::super::{LowerCtx, TensorDesc};
        use optc_ir::dtype::DType;
        let x = rand_t(shape, 1);
        let (_, want) = run_op(op, &[Some(x)], &[]);
        let ins = vec![Some(TensorDesc::new(DType::F32, shape.to_vec()))];
        let outs = vec![Some(TensorDesc::new(DType::F32, want[0].shape().to_vec()))];
        let values = vec![None];
        let ctx = LowerCtx {
            op,
            name: "n0",
            inputs: &ins,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        let name = super::lower(&ctx).expect("lowers").launches[0]
            .kernel
            .name
            .clone();
        (name, want[0].shape().to_vec())
    }

    /// Last spatial axis a multiple of 4 in and out: the vec4 kernel (4 outputs per thread,
    /// aligned vec4 loads of each window row's span), for every window geometry the scalar test
    /// covers plus dilations, stride 1 and 1-D/3-D pools; Indices and LpPool stay scalar.
    #[test]
    fn vec4_pools_match_reference() {
        let wins = [
            // resnet's stem pool
            (
                win(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1], AutoPad::NotSet),
                [1, 3, 10, 16],
            ),
            (
                win(&[2, 3], &[1, 2], &[2, 1], &[0, 1, 1, 0], AutoPad::NotSet),
                [1, 2, 7, 16],
            ),
            (
                win(&[3, 3], &[2, 2], &[], &[], AutoPad::SameUpper),
                [2, 1, 9, 16],
            ),
            (
                win(&[2, 2], &[2, 2], &[], &[], AutoPad::SameLower),
                [1, 2, 6, 8],
            ),
            (
                win(&[3, 3], &[1, 1], &[1, 2], &[1, 2, 1, 2], AutoPad::NotSet),
                [1, 2, 5, 12],
            ),
            (
                win(&[1, 5], &[1, 1], &[], &[0, 2, 0, 2], AutoPad::NotSet),
                [1, 2, 3, 8],
            ),
            (
                win(&[2, 2], &[2, 2], &[], &[], AutoPad::Valid),
                [1, 2, 4, 16],
            ),
            // With ceil_mode the last window overhangs the input (and its padding): 3 → 4 wide.
            (
                win(&[2, 3], &[1, 2], &[], &[], AutoPad::NotSet),
                [1, 2, 5, 8],
            ),
        ];
        for (w, shape) in &wins {
            for ceil_mode in [false, true] {
                let mp = Op::MaxPool {
                    window: w.clone(),
                    ceil_mode,
                    storage_order: 0,
                };
                // Every input here is a multiple of 4 wide: vec4 exactly where the output is.
                let (name, out) = kernel_name(&mp, shape);
                assert_eq!(
                    name.ends_with("vec4"),
                    out.last().is_some_and(|w| w % 4 == 0),
                    "{w:?} ceil {ceil_mode}: {name}"
                );
                check1(&mp, rand_t(shape, 5));
                for count_include_pad in [false, true] {
                    let ap = Op::AveragePool {
                        window: w.clone(),
                        ceil_mode,
                        count_include_pad,
                    };
                    check(ap, shape, 1);
                }
            }
        }
        // Windows with no tap inside the input on a padded edge (MaxPool writes 0) and NaNs
        // (the first maximum wins): same as the reference.
        let mp = Op::MaxPool {
            window: win(&[2, 2], &[1, 4], &[], &[0, 3, 0, 3], AutoPad::NotSet),
            ceil_mode: false,
            storage_order: 0,
        };
        let mut x = rand_t(&[1, 1, 2, 8], 2).to_f64_vec();
        x[1] = f64::NAN; // the first tap of the second window
        let x = optc_ir::tensor::Tensor::from_vec(
            vec![1, 1, 2, 8],
            x.iter().map(|&v| v as f32).collect(),
        )
        .expect("tensor");
        assert!(kernel_name(&mp, &[1, 1, 2, 8]).0.ends_with("vec4"));
        check1(&mp, x);
        // 1-D and 3-D.
        let mp1 = Op::MaxPool {
            window: win(&[3], &[1], &[], &[1, 1], AutoPad::NotSet),
            ceil_mode: false,
            storage_order: 0,
        };
        assert!(kernel_name(&mp1, &[2, 3, 16]).0.ends_with("vec4"));
        check1(&mp1, rand_t(&[2, 3, 16], 3));
        let ap3 = Op::AveragePool {
            window: win(
                &[2, 2, 3],
                &[1, 2, 1],
                &[],
                &[0, 0, 1, 0, 1, 1],
                AutoPad::NotSet,
            ),
            ceil_mode: false,
            count_include_pad: true,
        };
        assert!(kernel_name(&ap3, &[1, 2, 3, 4, 8]).0.ends_with("vec4"));
        check(ap3, &[1, 2, 3, 4, 8], 1);
        // With Indices, LpPool, or a last axis not a multiple of 4: the scalar kernel.
        check(mp1, &[2, 3, 16], 2);
        let lp = Op::LpPool {
            window: win(&[3], &[1], &[], &[1, 1], AutoPad::NotSet),
            ceil_mode: false,
            p: 2,
        };
        assert!(!kernel_name(&lp, &[2, 3, 16]).0.ends_with("vec4"));
        let odd = Op::MaxPool {
            window: win(&[3, 3], &[2, 2], &[], &[1, 1, 1, 1], AutoPad::NotSet),
            ceil_mode: false,
            storage_order: 0,
        };
        assert!(!kernel_name(&odd, &[1, 2, 10, 12]).0.ends_with("vec4"));
    }

    #[test]
    fn global_pools_match_reference() {
        for shape in [[2usize, 3, 7, 7], [1, 2, 30, 30]] {
            check(Op::GlobalAveragePool, &shape, 1);
            check(Op::GlobalMaxPool, &shape, 1);
        }
    }
}
