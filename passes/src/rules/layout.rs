//! Layout rules: transposes that only move size-1 dimensions are reshapes (free aliases), and
//! elementwise ops sink below reshapes and transposes so that they reach — and fuse into —
//! the kernel that produced their input.
//!
//! Exporters put a `Reshape`/`Transpose` between a GEMM and its elementwise consumers all the
//! time (`MatMul → Reshape → Transpose → Mul(scale)` in attention, `Gemm → Reshape → Add` for
//! residuals in GPT-2). Fusion only merges a consumer into its direct producer, so the
//! consumer is rewritten to act before the data movement instead:
//!
//! * `E(.., Reshape(x), ..) = Reshape(E(.., x, ..))` when every other operand is a scalar or
//!   has the output's shape (it is then reshaped too, which is free);
//! * `E(.., Transpose(x, p), ..) = Transpose(E(.., x, ..), p)` when every other operand is a
//!   scalar (full-shape operands would need a real transpose of their own).
//!
//! Both sides stay in the e-graph; extraction keeps the sunk form only where it pays, i.e.
//! where the elementwise op then fuses into a producer.

use super::canon::reshape_to;
use super::{Ctx, Rule, add_op, op_node, shape};
use crate::cost::is_alias;
use crate::lang::{EG, Node};
use egg::Id;
use optc_ir::Op;
use optc_ir::ops::Program;

/// Layout rules of the canonicalisation stage.
pub fn canon_rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(UnitTranspose),
        Box::new(TransposeThroughReshape),
        Box::new(GatherThroughTranspose),
        Box::new(GatherThroughReshape),
    ]
}

/// Rules of the layout stage, which runs between canonicalisation and fusion.
pub fn sink_rules() -> Vec<Box<dyn Rule>> {
    vec![Box::new(SinkReshape), Box::new(SinkTranspose)]
}

/// `Transpose(x, p) = Reshape(x, out)` when `p` keeps the order of the dimensions of size
/// other than 1 (it only moves size-1 dims, so memory order is unchanged).
pub struct UnitTranspose;

impl Rule for UnitTranspose {
    fn name(&self) -> &'static str {
        "transpose-unit-dims"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Transpose { perm }, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let (Some(xs), Some(out)) = (shape(eg, args[0]), shape(eg, class)) else {
            return vec![];
        };
        let perm = perm.unwrap_or_else(|| (0..xs.len()).rev().collect());
        if perm.len() != xs.len() || perm.iter().any(|&p| p >= xs.len()) {
            return vec![];
        }
        let moved: Vec<usize> = perm.iter().copied().filter(|&p| xs[p] != 1).collect();
        if !moved.windows(2).all(|w| w[0] < w[1]) {
            return vec![];
        }
        vec![reshape_to(eg, args[0], &out)]
    }
}

/// `Transpose(Reshape(y), p) = Reshape(Transpose(y, p'), out)` when the reshape only adds or
/// removes size-1 dims: the transpose then meets `y`'s producer, where `transpose-transpose`
/// composes it with an earlier transpose (attention's `K` path: head split, then `Kᵀ`).
pub struct TransposeThroughReshape;

impl Rule for TransposeThroughReshape {
    fn name(&self) -> &'static str {
        "transpose-through-unit-reshape"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Transpose { perm }, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let (Some(a), Some(out)) = (shape(eg, args[0]), shape(eg, class)) else {
            return vec![];
        };
        let p = perm.unwrap_or_else(|| (0..a.len()).rev().collect());
        if p.len() != a.len() || p.iter().any(|&i| i >= a.len()) {
            return vec![];
        }
        let big_a: Vec<usize> = (0..a.len()).filter(|&i| a[i] != 1).collect();
        // The non-unit dims of the output, as ranks among `a`'s non-unit dims.
        let order: Vec<usize> = p
            .iter()
            .filter(|&&i| a[i] != 1)
            .map(|i| big_a.iter().position(|j| j == i).expect("non-unit"))
            .collect();
        let inner: Vec<Node> = eg[args[0]].nodes.clone();
        let mut res = Vec::new();
        for n in &inner {
            let Some((rop, 0, 1, rargs)) = op_node(eg, n) else {
                continue;
            };
            if !is_alias(&rop) || matches!(rop, Op::Identity) {
                continue;
            }
            let y = rargs[0];
            let Some(ys) = shape(eg, y) else { continue };
            let big_y: Vec<usize> = (0..ys.len()).filter(|&j| ys[j] != 1).collect();
            let same = big_y.len() == big_a.len()
                && big_y.iter().zip(&big_a).all(|(&j, &i)| ys[j] == a[i]);
            if !same || ys == a {
                continue;
            }
            // Unit dims first (in order), then the non-unit dims in the output's order.
            let mut q: Vec<usize> = (0..ys.len()).filter(|&j| ys[j] == 1).collect();
            q.extend(order.iter().map(|&k| big_y[k]));
            let t = add_op(eg, Op::Transpose { perm: Some(q) }, vec![y]);
            res.push(reshape_to(eg, t, &out));
        }
        res
    }
}

/// `Gather(Transpose(x, p), i, axis a) = Transpose(Gather(x, i, axis p[a]), q)` for a scalar
/// index `i`: picking one slice commutes with permuting the other axes (ViT's
/// `Transpose → Gather(q/k/v)` head split), so the transpose can then compose with the ones
/// that follow.
pub struct GatherThroughTranspose;

impl Rule for GatherThroughTranspose {
    fn name(&self) -> &'static str {
        "gather-through-transpose"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Gather { axis }, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        if args.len() != 2 || shape(eg, args[1]).is_none_or(|s| !s.is_empty()) {
            return vec![];
        }
        let Some(ds) = shape(eg, args[0]) else {
            return vec![];
        };
        let r = ds.len() as i64;
        if axis < -r || axis >= r {
            return vec![];
        }
        let a = axis.rem_euclid(r) as usize;
        let inner: Vec<Node> = eg[args[0]].nodes.clone();
        let mut res = Vec::new();
        for n in &inner {
            let Some((Op::Transpose { perm }, 0, 1, targs)) = op_node(eg, n) else {
                continue;
            };
            let p = perm.unwrap_or_else(|| (0..ds.len()).rev().collect());
            if p.len() != ds.len() || p.iter().any(|&k| k >= ds.len()) {
                continue;
            }
            let pa = p[a];
            let q: Vec<usize> = p
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != a)
                .map(|(_, &d)| d - usize::from(d > pa))
                .collect();
            let g = add_op(eg, Op::Gather { axis: pa as i64 }, vec![targs[0], args[1]]);
            res.push(add_op(eg, Op::Transpose { perm: Some(q) }, vec![g]));
        }
        res
    }
}

/// `Gather(Reshape(z), i, axis a) = Reshape(Gather(z, i, axis a'), out)` for a scalar index
/// when the reshape only adds or removes size-1 dims and axis `a` is not one of them (`a'` is
/// the same dim in `z`), so that a gather can meet the transpose under a squeeze.
pub struct GatherThroughReshape;

impl Rule for GatherThroughReshape {
    fn name(&self) -> &'static str {
        "gather-through-unit-reshape"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Gather { axis }, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        if args.len() != 2 || shape(eg, args[1]).is_none_or(|s| !s.is_empty()) {
            return vec![];
        }
        let (Some(ds), Some(out)) = (shape(eg, args[0]), shape(eg, class)) else {
            return vec![];
        };
        let r = ds.len() as i64;
        if axis < -r || axis >= r {
            return vec![];
        }
        let a = axis.rem_euclid(r) as usize;
        if ds[a] == 1 {
            return vec![];
        }
        // Rank of axis `a` among the non-unit dims.
        let k = (0..a).filter(|&i| ds[i] != 1).count();
        let big_d: Vec<usize> = ds.iter().copied().filter(|&d| d != 1).collect();
        let inner: Vec<Node> = eg[args[0]].nodes.clone();
        let mut res = Vec::new();
        for n in &inner {
            let Some((rop, 0, 1, rargs)) = op_node(eg, n) else {
                continue;
            };
            if !is_alias(&rop) || matches!(rop, Op::Identity) {
                continue;
            }
            let z = rargs[0];
            let Some(zs) = shape(eg, z) else { continue };
            let big_z: Vec<usize> = (0..zs.len()).filter(|&j| zs[j] != 1).collect();
            if zs == ds
                || big_z.len() != big_d.len()
                || big_z.iter().zip(&big_d).any(|(&j, &d)| zs[j] != d)
            {
                continue;
            }
            let g = add_op(
                eg,
                Op::Gather {
                    axis: big_z[k] as i64,
                },
                vec![z, args[1]],
            );
            res.push(reshape_to(eg, g, &out));
        }
        res
    }
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// True when the data movement (reshapes, transposes) under class `id` ends at a kernel that
/// an elementwise consumer can fuse into: a Conv/Gemm/MatMul or an elementwise op. Sinking
/// elsewhere gains nothing and can split an elementwise chain.
fn fusable_below(eg: &EG, id: Id, depth: usize) -> bool {
    if depth > 8 || eg[id].data.konst {
        return false;
    }
    eg[id].nodes.iter().any(|n| {
        let Some((op, 0, 1, args)) = op_node(eg, n) else {
            return false;
        };
        match op {
            Op::Conv(_) | Op::Gemm { .. } | Op::MatMul => true,
            Op::Transpose { .. } => fusable_below(eg, args[0], depth + 1),
            op if is_alias(&op) => fusable_below(eg, args[0], depth + 1),
            op => Program::is_step_op(&op),
        }
    })
}

/// The single-output elementwise op of `node` (not constant), its arguments and the output
/// shape.
fn elementwise(eg: &EG, class: Id, node: &Node) -> Option<(Op, Vec<Id>, Vec<usize>)> {
    let (op, 0, 1, args) = op_node(eg, node)? else {
        return None;
    };
    if eg[class].data.konst || !Program::is_step_op(&op) || matches!(op, Op::Identity) {
        return None;
    }
    let out = shape(eg, class)?;
    Some((op, args, out))
}

/// A scalar operand, made to broadcast against rank `rank`: itself when its rank is at most
/// `rank`, else reshaped to rank 0.
fn scalar_operand(eg: &mut EG, a: Id, rank: usize) -> Option<Id> {
    let s = shape(eg, a)?;
    if numel(&s) != 1 {
        return None;
    }
    Some(if s.len() <= rank {
        a
    } else {
        reshape_to(eg, a, &[])
    })
}

/// `E(.., Reshape(x), ..) = Reshape(E(.., x, ..), out)`.
pub struct SinkReshape;

impl Rule for SinkReshape {
    fn name(&self) -> &'static str {
        "sink-reshape"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((op, args, out)) = elementwise(eg, class, node) else {
            return vec![];
        };
        let mut res = Vec::new();
        for (pos, &a) in args.iter().enumerate() {
            if eg[a].data.konst || shape(eg, a).as_ref() != Some(&out) {
                continue;
            }
            let inner: Vec<Node> = eg[a].nodes.clone();
            for n in &inner {
                let Some((rop, 0, 1, rargs)) = op_node(eg, n) else {
                    continue;
                };
                if !is_alias(&rop) || matches!(rop, Op::Identity) {
                    continue;
                }
                let x = rargs[0];
                let Some(xs) = shape(eg, x) else { continue };
                if xs == out || numel(&xs) != numel(&out) || !fusable_below(eg, x, 0) {
                    continue;
                }
                let mut new_args = Vec::with_capacity(args.len());
                let mut ok = true;
                for (j, &b) in args.iter().enumerate() {
                    if j == pos {
                        new_args.push(x);
                    } else if eg[b].data.ty.is_none() {
                        new_args.push(b);
                    } else if shape(eg, b).as_ref() == Some(&out) {
                        new_args.push(reshape_to(eg, b, &xs));
                    } else if let Some(s) = scalar_operand(eg, b, xs.len()) {
                        new_args.push(s);
                    } else {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    continue;
                }
                let e = add_op(eg, op.clone(), new_args);
                res.push(reshape_to(eg, e, &out));
            }
        }
        res
    }
}

/// `E(.., Transpose(x, p), ..) = Transpose(E(.., x, ..), p)`, other operands scalars.
pub struct SinkTranspose;

impl Rule for SinkTranspose {
    fn name(&self) -> &'static str {
        "sink-transpose"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((op, args, out)) = elementwise(eg, class, node) else {
            return vec![];
        };
        let mut res = Vec::new();
        for (pos, &a) in args.iter().enumerate() {
            if eg[a].data.konst || shape(eg, a).as_ref() != Some(&out) {
                continue;
            }
            let inner: Vec<Node> = eg[a].nodes.clone();
            for n in &inner {
                let Some((top @ Op::Transpose { .. }, 0, 1, targs)) = op_node(eg, n) else {
                    continue;
                };
                let x = targs[0];
                let Some(xs) = shape(eg, x) else { continue };
                if !fusable_below(eg, x, 0) {
                    continue;
                }
                let mut new_args = Vec::with_capacity(args.len());
                let mut ok = true;
                for (j, &b) in args.iter().enumerate() {
                    if j == pos {
                        new_args.push(x);
                    } else if eg[b].data.ty.is_none() {
                        new_args.push(b);
                    } else if let Some(s) = scalar_operand(eg, b, xs.len()) {
                        new_args.push(s);
                    } else {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    continue;
                }
                let e = add_op(eg, op.clone(), new_args);
                res.push(add_op(eg, top, vec![e]));
            }
        }
        res
    }
}
