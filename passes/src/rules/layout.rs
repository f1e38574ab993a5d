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
use super::{Ctx, Rule, add_op, add_weight, op_node, shape};
use crate::cost::is_alias;
use crate::lang::{EG, Node};
use egg::Id;
use optc_ir::Op;
use optc_ir::ops::{ConvLayout, Program};

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
    vec![
        Box::new(SinkReshape),
        Box::new(SinkTranspose),
        Box::new(ConvLayouts),
        Box::new(GlobalPoolChannelsLast),
    ]
}

/// `perm` of a rank-`rank` transpose with the default (reversal) filled in; `None` when it is
/// not a permutation of that rank.
fn full_perm(perm: Option<Vec<usize>>, rank: usize) -> Option<Vec<usize>> {
    let p = perm.unwrap_or_else(|| (0..rank).rev().collect());
    (p.len() == rank && p.iter().all(|&i| i < rank)).then_some(p)
}

/// Positions of the dims of `s` other than 1.
fn big_dims(s: &[usize]) -> Vec<usize> {
    (0..s.len()).filter(|&i| s[i] != 1).collect()
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// The data inputs of the reshape-like aliases (Reshape, Flatten, Squeeze, Unsqueeze) in class
/// `id`.
fn reshape_inputs(eg: &EG, id: Id) -> Vec<Id> {
    eg[id]
        .nodes
        .iter()
        .filter_map(|n| match op_node(eg, n)? {
            (op, 0, 1, args) if is_alias(&op) && !matches!(op, Op::Identity) => Some(args[0]),
            _ => None,
        })
        .collect()
}

/// The inputs `y` (with their shapes) of the reshapes in class `id` (shape `s`) that only add
/// or remove size-1 dims: `y` has `s`'s dims other than 1, in order, and is not `s` itself.
pub(crate) fn unit_reshape_inputs(eg: &EG, id: Id, s: &[usize]) -> Vec<(Id, Vec<usize>)> {
    let big: Vec<usize> = s.iter().copied().filter(|&d| d != 1).collect();
    reshape_inputs(eg, id)
        .into_iter()
        .filter_map(|y| {
            let ys = shape(eg, y)?;
            let same = ys
                .iter()
                .copied()
                .filter(|&d| d != 1)
                .eq(big.iter().copied());
            (same && ys != s).then_some((y, ys))
        })
        .collect()
}

/// The axis (normalised), data and index of a Gather by a scalar index.
fn scalar_gather(eg: &EG, node: &Node) -> Option<(usize, Id, Id, Vec<usize>)> {
    let (Op::Gather { axis }, 0, 1, args) = op_node(eg, node)? else {
        return None;
    };
    if args.len() != 2 || !shape(eg, args[1])?.is_empty() {
        return None;
    }
    let ds = shape(eg, args[0])?;
    let r = ds.len() as i64;
    if axis < -r || axis >= r {
        return None;
    }
    Some((axis.rem_euclid(r) as usize, args[0], args[1], ds))
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
        let Some(perm) = full_perm(perm, xs.len()) else {
            return vec![];
        };
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
        let Some(p) = full_perm(perm, a.len()) else {
            return vec![];
        };
        let big_a = big_dims(&a);
        // The non-unit dims of the output, as ranks among `a`'s non-unit dims.
        let order: Vec<usize> = p
            .iter()
            .filter_map(|i| big_a.iter().position(|j| j == i))
            .collect();
        let mut res = Vec::new();
        for (y, ys) in unit_reshape_inputs(eg, args[0], &a) {
            let big_y = big_dims(&ys);
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
        let Some((a, data, idx, ds)) = scalar_gather(eg, node) else {
            return vec![];
        };
        let inner: Vec<Node> = eg[data].nodes.clone();
        let mut res = Vec::new();
        for n in &inner {
            let Some((Op::Transpose { perm }, 0, 1, targs)) = op_node(eg, n) else {
                continue;
            };
            let Some(p) = full_perm(perm, ds.len()) else {
                continue;
            };
            let pa = p[a];
            let q: Vec<usize> = p
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != a)
                .map(|(_, &d)| d - usize::from(d > pa))
                .collect();
            let g = add_op(eg, Op::Gather { axis: pa as i64 }, vec![targs[0], idx]);
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
        let Some((a, data, idx, ds)) = scalar_gather(eg, node) else {
            return vec![];
        };
        let Some(out) = shape(eg, class) else {
            return vec![];
        };
        if ds[a] == 1 {
            return vec![];
        }
        // Rank of axis `a` among the non-unit dims.
        let k = (0..a).filter(|&i| ds[i] != 1).count();
        let mut res = Vec::new();
        for (z, zs) in unit_reshape_inputs(eg, data, &ds) {
            let axis = big_dims(&zs)[k] as i64;
            let g = add_op(eg, Op::Gather { axis }, vec![z, idx]);
            res.push(reshape_to(eg, g, &out));
        }
        res
    }
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

/// The data movement an elementwise op is sunk below.
enum Movement {
    /// A reshape-like alias: full-shape operands are reshaped along (free).
    Reshape,
    /// A transpose (permutation): other operands must be scalars.
    Transpose(Op),
}

/// Both sink rules: for each operand of the elementwise `node` that is (in its class) a
/// movement of a value `x` sitting on a fusable producer, `node`'s op applied to `x` (the
/// other operands adapted), with the movement re-applied on top.
fn sink(eg: &mut EG, class: Id, node: &Node, transpose: bool) -> Vec<Id> {
    let Some((op, 0, 1, args)) = op_node(eg, node) else {
        return vec![];
    };
    if eg[class].data.konst || !Program::is_step_op(&op) || matches!(op, Op::Identity) {
        return vec![];
    }
    let Some(out) = shape(eg, class) else {
        return vec![];
    };
    let mut res = Vec::new();
    for (pos, &a) in args.iter().enumerate() {
        if eg[a].data.konst || shape(eg, a).as_ref() != Some(&out) {
            continue;
        }
        let moved: Vec<(Id, Movement)> = if transpose {
            eg[a]
                .nodes
                .iter()
                .filter_map(|n| match op_node(eg, n)? {
                    (t @ Op::Transpose { .. }, 0, 1, targs) => {
                        Some((targs[0], Movement::Transpose(t)))
                    }
                    _ => None,
                })
                .collect()
        } else {
            reshape_inputs(eg, a)
                .into_iter()
                .map(|x| (x, Movement::Reshape))
                .collect()
        };
        'movement: for (x, how) in moved {
            let Some(xs) = shape(eg, x) else { continue };
            let is_reshape = matches!(how, Movement::Reshape);
            if (is_reshape && (xs == out || numel(&xs) != numel(&out))) || !fusable_below(eg, x, 0)
            {
                continue;
            }
            let mut new_args = Vec::with_capacity(args.len());
            for (j, &b) in args.iter().enumerate() {
                let nb = if j == pos {
                    x
                } else if eg[b].data.ty.is_none() {
                    b
                } else if is_reshape && shape(eg, b).as_ref() == Some(&out) {
                    reshape_to(eg, b, &xs)
                } else if let Movement::Transpose(t) = &how
                    && let Some(y) = transposed_by(eg, b, t)
                {
                    // Another operand transposed the same way (a residual Add of two
                    // channels-last tensors): its input.
                    y
                } else if let Movement::Transpose(t) = &how
                    && let Some(y) = inverse_transpose_of(eg, b, t, xs.len())
                {
                    // Another operand whose inverse transpose the e-graph already holds (a
                    // residual Add of a channels-first block input that the block's first
                    // conv reads channels-last): that transpose.
                    y
                } else if let Some(s) = scalar_operand(eg, b, xs.len()) {
                    s
                } else {
                    continue 'movement;
                };
                new_args.push(nb);
            }
            let e = add_op(eg, op.clone(), new_args);
            res.push(match how {
                Movement::Reshape => reshape_to(eg, e, &out),
                Movement::Transpose(t) => add_op(eg, t, vec![e]),
            });
        }
    }
    res
}

/// The class of `Transpose(id)` by the inverse of `t`'s permutation, if the e-graph already
/// holds it (nothing is added).
fn inverse_transpose_of(eg: &mut EG, id: Id, t: &Op, rank: usize) -> Option<Id> {
    let Op::Transpose { perm } = t else {
        return None;
    };
    let inv = optc_ir::ops::inverse_permutation(&full_perm(perm.clone(), rank)?)?;
    let op = eg.analysis.ops.intern(Op::Transpose { perm: Some(inv) });
    eg.lookup(Node::Op {
        op,
        slot: 0,
        nout: 1,
        args: vec![id],
    })
}

/// The input of a transpose `t` (the same op, permutation included) in class `id`.
fn transposed_by(eg: &EG, id: Id, t: &Op) -> Option<Id> {
    eg[id].nodes.iter().find_map(|n| match op_node(eg, n)? {
        (op, 0, 1, args) if &op == t => args.first().copied(),
        _ => None,
    })
}

/// `Conv(x) = Transpose(Conv'(x), to_first)`, where `Conv'` stores its output channels-last,
/// and `Conv(x) = Conv''(Transpose(x, to_last))`, where `Conv''` reads a channels-last input
/// (the conv kernels address either layout through strides; [`ConvLayout`]).
///
/// With transposes sunk through elementwise ops ([`SinkTranspose`], which also matches a
/// residual `Add` of two equally transposed operands) and cancelled in pairs (the
/// canonicalisation stage's `transpose-transpose`, which this stage also runs), a chain of
/// 2-D convs can run channels-last between one layout change in and one out — typically none
/// at all, since the first conv can read channels-first and write channels-last and the last
/// the reverse. Extraction keeps it where the cost model says it pays: on lavapipe, where a
/// load costs the same for a scalar and a vec4, channels-last gives vec4s along the channels
/// to depthwise convs and 1×1 convs whose channels-first planes are not a multiple of 4 wide
/// (14×14 and 7×7), and to the input side of every im2col conv (with its weight tap-major).
/// Offered only where [`Ctx::conv_layouts`] says the cost model prices it.
pub struct ConvLayouts;

impl Rule for ConvLayouts {
    fn name(&self) -> &'static str {
        "conv-channels-last"
    }
    fn apply(&self, eg: &mut EG, ctx: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        if !ctx.conv_layouts {
            return vec![];
        }
        let Some((Op::Conv(a), 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let rank = match shape(eg, args[0]) {
            Some(s) if s.len() == 4 => 4,
            _ => return vec![],
        };
        let float = eg[args[0]]
            .data
            .ty
            .as_ref()
            .is_some_and(|t| t.dtype.is_float());
        if !float {
            return vec![];
        }
        let mut res = Vec::new();
        if !a.layout.output_last {
            let mut last = a.clone();
            last.layout.output_last = true;
            let c = add_op(eg, Op::Conv(last), args.clone());
            let perm = Some(ConvLayout::to_first(rank));
            res.push(add_op(eg, Op::Transpose { perm }, vec![c]));
        }
        if !a.layout.input_last {
            let mut last = a.clone();
            last.layout.input_last = true;
            let perm = Some(ConvLayout::to_last(rank));
            let t = add_op(eg, Op::Transpose { perm: perm.clone() }, vec![args[0]]);
            let mut nargs = args.clone();
            nargs[0] = t;
            // An im2col conv (neither 1×1 nor depthwise) also takes its weight tap-major, so
            // that an im2col row's K runs along the channels as the input does (a transpose
            // of a constant weight is folded at compile time).
            let ws = shape(eg, args[1]).unwrap_or_default();
            let im2col = ws.len() == 4 && ws[2] * ws[3] > 1 && ws[1] > 1;
            if im2col && !a.layout.weight_last {
                last.layout.weight_last = true;
                nargs[1] = add_op(eg, Op::Transpose { perm }, vec![args[1]]);
            }
            res.push(add_op(eg, Op::Conv(last), nargs));
        }
        res
    }
}

/// `GlobalAveragePool(Transpose(y, to_first)) = Transpose(ReduceMean(y, [1, 2]), to_first)`
/// (and GlobalMaxPool with ReduceMax) for a 4-D channels-last `y`: the pool of a channels-last
/// conv chain's output reads it in place; the transpose of the `[N, 1, 1, C]` result only
/// moves unit dims, so it is written as a (free) reshape.
pub struct GlobalPoolChannelsLast;

impl Rule for GlobalPoolChannelsLast {
    fn name(&self) -> &'static str {
        "global-pool-channels-last"
    }
    fn apply(&self, eg: &mut EG, ctx: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        if !ctx.conv_layouts {
            return vec![];
        }
        let Some((pool, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let rop = match pool {
            Op::GlobalAveragePool => optc_ir::ops::ReduceOp::Mean,
            Op::GlobalMaxPool => optc_ir::ops::ReduceOp::Max,
            _ => return vec![],
        };
        if shape(eg, args[0]).is_none_or(|s| s.len() != 4) {
            return vec![];
        }
        let to_first = Op::Transpose {
            perm: Some(ConvLayout::to_first(4)),
        };
        let Some(y) = transposed_by(eg, args[0], &to_first) else {
            return vec![];
        };
        let axes = match optc_ir::Tensor::from_vec(vec![2], vec![1i64, 2]) {
            Ok(t) => add_weight(eg, t),
            Err(_) => return vec![],
        };
        let r = add_op(
            eg,
            Op::Reduce {
                op: rop,
                keepdims: true,
                noop_with_empty_axes: false,
            },
            vec![y, axes],
        );
        // [N, 1, 1, C] to [N, C, 1, 1]: only unit dims move, a reshape.
        match shape(eg, class) {
            Some(out) => vec![reshape_to(eg, r, &out)],
            None => vec![],
        }
    }
}

/// `E(.., Reshape(x), ..) = Reshape(E(.., x, ..), out)`.
pub struct SinkReshape;

impl Rule for SinkReshape {
    fn name(&self) -> &'static str {
        "sink-reshape"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        sink(eg, class, node, false)
    }
}

/// `E(.., Transpose(x, p), ..) = Transpose(E(.., x, ..), p)`, other operands scalars.
pub struct SinkTranspose;

impl Rule for SinkTranspose {
    fn name(&self) -> &'static str {
        "sink-transpose"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        sink(eg, class, node, true)
    }
}
