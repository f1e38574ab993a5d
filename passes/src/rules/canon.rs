//! Canonicalisation rules (stage 1): remove no-ops, compose transposes and reshape chains,
//! fold inference BatchNormalization into the preceding Conv or turn it into a per-channel
//! multiply-add that the fusion stage can fuse, recognise the exporters' decomposed
//! LayerNormalization, GELU (erf and tanh forms), HardSwish and Softmax as the ops. Weight arithmetic is written as ordinary ops
//! over weights: the compiler's constant folder evaluates it after extraction, so the e-graph
//! never holds tensor data.

use super::{Ctx, Rule, add_op, add_weight, op_node, shape, weight};
use crate::cost::is_alias;
use crate::lang::{EG, Node};
use egg::Id;
use optc_ir::ops::{ActivationOp, BinaryOp, NormOp, ReduceOp, UnaryOp};
use optc_ir::{DType, Op, Tensor};

/// All canonicalisation rules.
pub fn rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(RemoveIdentity),
        Box::new(TransposeTranspose),
        Box::new(AliasChain),
        Box::new(BnIntoConv),
        Box::new(BnToAffine),
        Box::new(DecomposedLayerNorm),
        Box::new(DecomposedGelu),
        Box::new(DecomposedHardSwish),
        Box::new(DecomposedSoftmax),
    ]
}

/// `Identity(x) = x`; inference `Dropout(x) = x` (output 0, training mode absent or false).
pub struct RemoveIdentity;

impl Rule for RemoveIdentity {
    fn name(&self) -> &'static str {
        "remove-identity"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((op, slot, _, args)) = op_node(eg, node) else {
            return vec![];
        };
        match op {
            Op::Identity => vec![args[0]],
            Op::Dropout if slot == 0 => {
                let training = args.get(2).is_some_and(|&t| {
                    if eg[t].data.ty.is_none() {
                        return false;
                    }
                    match weight(eg, t) {
                        Some(w) => w.to_f64_vec().first().is_some_and(|&v| v != 0.0),
                        None => true,
                    }
                });
                if training { vec![] } else { vec![args[0]] }
            }
            _ => vec![],
        }
    }
}

fn perm_of(perm: &Option<Vec<usize>>, rank: usize) -> Vec<usize> {
    perm.clone().unwrap_or_else(|| (0..rank).rev().collect())
}

/// `Transpose(Transpose(x, p1), p2) = Transpose(x, p1∘p2)`, and `= x` when that is the
/// identity permutation.
pub struct TransposeTranspose;

impl Rule for TransposeTranspose {
    fn name(&self) -> &'static str {
        "transpose-transpose"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Transpose { perm: p2 }, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let inner: Vec<Node> = eg[args[0]].nodes.clone();
        let mut out = Vec::new();
        for n in &inner {
            let Some((Op::Transpose { perm: p1 }, 0, 1, iargs)) = op_node(eg, n) else {
                continue;
            };
            let Some(rank) = shape(eg, iargs[0]).map(|s| s.len()) else {
                continue;
            };
            let (p1, p2) = (perm_of(&p1, rank), perm_of(&p2, rank));
            if p1.len() != rank || p2.len() != rank {
                continue;
            }
            let p: Vec<usize> = p2.iter().map(|&j| p1[j]).collect();
            if p.iter().enumerate().all(|(i, &j)| i == j) {
                out.push(iargs[0]);
            } else {
                out.push(add_op(eg, Op::Transpose { perm: Some(p) }, vec![iargs[0]]));
            }
        }
        out
    }
}

/// A chain of aliasing reshapes (Reshape, Flatten, Squeeze, Unsqueeze) over `x` is one
/// `Reshape(x, static shape)`, and `x` itself when the shape is unchanged.
pub struct AliasChain;

impl Rule for AliasChain {
    fn name(&self) -> &'static str {
        "reshape-chain"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((op, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        if !is_alias(&op) || matches!(op, Op::Identity) {
            return vec![];
        }
        let Some(out) = shape(eg, class) else {
            return vec![];
        };
        let x = args[0];
        if shape(eg, x).as_ref() == Some(&out) {
            return vec![x];
        }
        let inner: Vec<Node> = eg[x].nodes.clone();
        let mut res = Vec::new();
        for n in &inner {
            let Some((iop, 0, 1, iargs)) = op_node(eg, n) else {
                continue;
            };
            if !is_alias(&iop) || matches!(iop, Op::Identity) {
                continue;
            }
            let dims: Vec<i64> = out.iter().map(|&d| d as i64).collect();
            let Ok(t) = Tensor::from_vec(vec![dims.len()], dims) else {
                continue;
            };
            let s = add_weight(eg, t);
            res.push(add_op(
                eg,
                Op::Reshape { allowzero: true },
                vec![iargs[0], s],
            ));
        }
        res
    }
}

/// The per-channel scale `s / sqrt(var + eps)` and shift `B - mean * scale` of an inference
/// BatchNormalization, as ops over its (constant) parameters.
fn bn_affine(eg: &mut EG, args: &[Id], eps: f32) -> Option<(Id, Id)> {
    if args.len() < 5 || !args[1..5].iter().all(|&a| eg[a].data.konst) {
        return None;
    }
    let dt = eg[args[1]].data.ty.as_ref()?.dtype;
    let eps_t = Tensor::scalar(eps).cast(dt);
    let e = add_weight(eg, eps_t);
    let ve = add_op(eg, Op::Binary(BinaryOp::Add), vec![args[4], e]);
    let sd = add_op(eg, Op::Unary(UnaryOp::Sqrt), vec![ve]);
    let scale = add_op(eg, Op::Binary(BinaryOp::Div), vec![args[1], sd]);
    let ms = add_op(eg, Op::Binary(BinaryOp::Mul), vec![args[3], scale]);
    let shift = add_op(eg, Op::Binary(BinaryOp::Sub), vec![args[2], ms]);
    Some((scale, shift))
}

/// `Reshape(x, dims)` with a static shape weight.
pub(crate) fn reshape_to(eg: &mut EG, x: Id, dims: &[usize]) -> Id {
    let d: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let t = Tensor::from_vec(vec![d.len()], d).expect("a 1-D shape tensor");
    let s = add_weight(eg, t);
    add_op(eg, Op::Reshape { allowzero: true }, vec![x, s])
}

fn bn_node(eg: &EG, node: &Node) -> Option<(f32, Vec<Id>)> {
    match op_node(eg, node)? {
        (
            Op::Norm {
                op: NormOp::BatchNormalization,
                epsilon,
            },
            0,
            _,
            args,
        ) => Some((epsilon, args)),
        _ => None,
    }
}

/// `BN(Conv(x, W, b)) = Conv(x, W * scale[:,None,..], (b - mean) * scale + B)`.
pub struct BnIntoConv;

impl Rule for BnIntoConv {
    fn name(&self) -> &'static str {
        "bn-into-conv"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((eps, args)) = bn_node(eg, node) else {
            return vec![];
        };
        let inner: Vec<Node> = eg[args[0]].nodes.clone();
        let mut res = Vec::new();
        for n in &inner {
            let Some((conv @ Op::Conv(_), 0, 1, cargs)) = op_node(eg, n) else {
                continue;
            };
            let w = cargs[1];
            let Some(wshape) = shape(eg, w) else { continue };
            let bias = cargs.get(2).copied().filter(|&b| eg[b].data.ty.is_some());
            if !eg[w].data.konst || bias.is_some_and(|b| !eg[b].data.konst) {
                continue;
            }
            let Some((scale, shift)) = bn_affine(eg, &args, eps) else {
                continue;
            };
            let mut sdims = vec![1; wshape.len()];
            sdims[0] = wshape[0];
            let s4 = reshape_to(eg, scale, &sdims);
            let w2 = add_op(eg, Op::Binary(BinaryOp::Mul), vec![w, s4]);
            let b2 = match bias {
                Some(b) => {
                    let bs = add_op(eg, Op::Binary(BinaryOp::Mul), vec![b, scale]);
                    add_op(eg, Op::Binary(BinaryOp::Add), vec![bs, shift])
                }
                None => shift,
            };
            res.push(add_op(eg, conv, vec![cargs[0], w2, b2]));
        }
        res
    }
}

/// `BN(x) = x * scale[c] + shift[c]` (per channel, broadcast over the spatial dims): an
/// elementwise form the fusion stage can fold into a producer's epilogue.
pub struct BnToAffine;

impl Rule for BnToAffine {
    fn name(&self) -> &'static str {
        "bn-to-affine"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((eps, args)) = bn_node(eg, node) else {
            return vec![];
        };
        let Some(xs) = shape(eg, args[0]) else {
            return vec![];
        };
        if xs.len() < 2 || eg[args[0]].data.ty.as_ref().map(|t| t.dtype) == Some(DType::F64) {
            return vec![];
        }
        let Some((scale, shift)) = bn_affine(eg, &args, eps) else {
            return vec![];
        };
        let mut cdims = vec![1; xs.len() - 1];
        cdims[0] = xs[1];
        let s = reshape_to(eg, scale, &cdims);
        let t = reshape_to(eg, shift, &cdims);
        let m = add_op(eg, Op::Binary(BinaryOp::Mul), vec![args[0], s]);
        vec![add_op(eg, Op::Binary(BinaryOp::Add), vec![m, t])]
    }
}

/// The exporters' decomposed LayerNormalization (opset < 17):
/// `Add(Mul(Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), ε))), γ), β)` with `d = Sub(x, ReduceMean(x))`,
/// both means over the same suffix of axes with keepdims, `Pow(d, 2)` also as `Mul(d, d)`, ε a
/// scalar constant and the operands of commutative ops in either order, is
/// `LayerNormalization(x, γ, β)` with `axis` the suffix's first axis. The inner levels match
/// too: without β (`Mul` at the top) and without γ (`Div` at the top: scale 1). γ and β must
/// broadcast over the normalized dims only (leading unit dims are reshaped away).
pub struct DecomposedLayerNorm;

impl Rule for DecomposedLayerNorm {
    fn name(&self) -> &'static str {
        "decomposed-layernorm"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Binary(op), 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let pairs = [(args[0], args[1]), (args[1], args[0])];
        let mut found: Vec<LnMatch> = Vec::new();
        match op {
            BinaryOp::Div => {
                if let Some((x, a, e)) = ln_core(eg, args[0], args[1]) {
                    found.push((x, a, e, None, None));
                }
            }
            BinaryOp::Mul => {
                for (n, g) in pairs {
                    for (x, a, e) in ln_divs(eg, n) {
                        found.push((x, a, e, Some(g), None));
                    }
                }
            }
            BinaryOp::Add => {
                for (y, b) in pairs {
                    for (x, a, e) in ln_divs(eg, y) {
                        found.push((x, a, e, None, Some(b)));
                    }
                    for n in eg[y].nodes.clone() {
                        let Some((Op::Binary(BinaryOp::Mul), 0, 1, margs)) = op_node(eg, &n) else {
                            continue;
                        };
                        for (nn, g) in [(margs[0], margs[1]), (margs[1], margs[0])] {
                            for (x, a, e) in ln_divs(eg, nn) {
                                found.push((x, a, e, Some(g), Some(b)));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        found
            .into_iter()
            .filter_map(|(x, a, e, g, b)| ln_build(eg, x, a, e, g, b))
            .collect()
    }
}

/// A matched decomposed LayerNorm: (x, axis, eps, scale, bias).
type LnMatch = (Id, usize, f32, Option<Id>, Option<Id>);

/// `(x, axis, eps)` of every `Div(d, s)` node of class `n` that is a normalisation core.
fn ln_divs(eg: &EG, n: Id) -> Vec<(Id, usize, f32)> {
    eg[n]
        .nodes
        .iter()
        .filter_map(|node| match op_node(eg, node)? {
            (Op::Binary(BinaryOp::Div), 0, 1, a) => ln_core(eg, a[0], a[1]),
            _ => None,
        })
        .collect()
}

/// The scalar float weight held by class `id`.
fn scalar_weight(eg: &EG, id: Id) -> Option<f64> {
    weight(eg, id)
        .filter(|w| w.dtype().is_float())?
        .scalar_f64()
}

/// `(x, first axis)` when class `m` holds `ReduceMean(x, axes)` with keepdims over the
/// axes `first..rank` of x (given as a constant).
fn suffix_means(eg: &EG, m: Id) -> Vec<(Id, usize)> {
    eg[m]
        .nodes
        .iter()
        .filter_map(|node| {
            let (op, slot, _, a) = op_node(eg, node)?;
            let Op::Reduce {
                op: optc_ir::ops::ReduceOp::Mean,
                keepdims: true,
                ..
            } = op
            else {
                return None;
            };
            if slot != 0 || a.len() < 2 {
                return None;
            }
            let rank = shape(eg, a[0])?.len() as i64;
            let mut axes: Vec<i64> = weight(eg, a[1])?
                .to_f64_vec()
                .iter()
                .map(|&v| {
                    let v = v as i64;
                    if v < 0 { v + rank } else { v }
                })
                .collect();
            axes.sort_unstable();
            let first = *axes.first()?;
            let suffix = (first..rank).collect::<Vec<_>>();
            (first >= 0 && axes == suffix).then_some((eg.find(a[0]), first as usize))
        })
        .collect()
}

/// `(x, axis, eps)` when `d / s` normalises x: `d = Sub(x, ReduceMean(x))`,
/// `s = Sqrt(Add(ReduceMean(d²), ε))` over the same axes.
fn ln_core(eg: &EG, d: Id, s: Id) -> Option<(Id, usize, f32)> {
    let d = eg.find(d);
    // d = x - mean(x)
    let centred: Vec<(Id, usize)> = eg[d]
        .nodes
        .iter()
        .filter_map(|node| match op_node(eg, node)? {
            (Op::Binary(BinaryOp::Sub), 0, 1, a) => {
                let x = eg.find(a[0]);
                suffix_means(eg, a[1])
                    .into_iter()
                    .find(|&(mx, _)| mx == x)
                    .map(|(_, axis)| (x, axis))
            }
            _ => None,
        })
        .collect();
    let (x, axis) = *centred.first()?;
    if !is_float(eg, x) {
        return None;
    }
    // s = sqrt(mean(d²) + eps)
    for sn in &eg[s].nodes {
        let Some((Op::Unary(UnaryOp::Sqrt), 0, 1, sa)) = op_node(eg, sn) else {
            continue;
        };
        for vn in &eg[sa[0]].nodes {
            let Some((Op::Binary(BinaryOp::Add), 0, 1, va)) = op_node(eg, vn) else {
                continue;
            };
            for (var, e) in [(va[0], va[1]), (va[1], va[0])] {
                let Some(eps) = scalar_weight(eg, e) else {
                    continue;
                };
                for (sq, a2) in suffix_means(eg, var) {
                    if a2 != axis {
                        continue;
                    }
                    let squares_d = eg[sq].nodes.iter().any(|pn| match op_node(eg, pn) {
                        Some((Op::Binary(BinaryOp::Pow), 0, 1, pa)) => {
                            eg.find(pa[0]) == d && scalar_weight(eg, pa[1]) == Some(2.0)
                        }
                        Some((Op::Binary(BinaryOp::Mul), 0, 1, pa)) => {
                            eg.find(pa[0]) == d && eg.find(pa[1]) == d
                        }
                        _ => false,
                    });
                    if squares_d {
                        return Some((x, axis, eps as f32));
                    }
                }
            }
        }
    }
    None
}

/// `p` (scale or bias, x's dtype) as an operand of LayerNormalization over `norm` (the
/// normalized dims): leading unit dims beyond `norm`'s rank reshaped away; `None` when it
/// varies along a dim that is not normalized or does not broadcast.
fn ln_param(eg: &mut EG, p: Id, dt: DType, norm: &[usize]) -> Option<Id> {
    if eg[p].data.ty.as_ref()?.dtype != dt {
        return None;
    }
    let ps = shape(eg, p)?;
    let extra = ps.len().saturating_sub(norm.len());
    if ps[..extra].iter().any(|&d| d != 1) {
        return None;
    }
    let kept = &ps[extra..];
    let off = norm.len() - kept.len();
    if kept
        .iter()
        .zip(&norm[off..])
        .any(|(&k, &n)| k != 1 && k != n)
    {
        return None;
    }
    Some(if extra > 0 {
        reshape_to(eg, p, kept)
    } else {
        p
    })
}

fn ln_build(
    eg: &mut EG,
    x: Id,
    axis: usize,
    eps: f32,
    scale: Option<Id>,
    bias: Option<Id>,
) -> Option<Id> {
    let xs = shape(eg, x)?;
    let dt = eg[x].data.ty.as_ref()?.dtype;
    let norm = xs[axis..].to_vec();
    let scale = match scale {
        Some(g) => ln_param(eg, g, dt, &norm)?,
        None => {
            // Scale 1: a constant the compiler's folder expands.
            let one = add_weight(eg, Tensor::scalar(1.0f32).cast(dt));
            let dims: Vec<i64> = norm.iter().map(|&d| d as i64).collect();
            let shape_w = add_weight(eg, Tensor::from_vec(vec![dims.len()], dims).ok()?);
            add_op(eg, Op::Expand, vec![one, shape_w])
        }
    };
    let mut args = vec![x, scale];
    if let Some(b) = bias {
        args.push(ln_param(eg, b, dt, &norm)?);
    }
    Some(add_op(
        eg,
        Op::Norm {
            op: NormOp::LayerNormalization { axis: axis as i64 },
            epsilon: eps,
        },
        args,
    ))
}

// ---- decomposed activations and Softmax ------------------------------------------------------

/// Every way class `id` is a product of exactly `n` factors through nested `Mul` nodes
/// (operands in written order); `n` bounds the depth.
fn products(eg: &EG, id: Id, n: usize) -> Vec<Vec<Id>> {
    let id = eg.find(id);
    if n <= 1 {
        return vec![vec![id]];
    }
    let mut out = Vec::new();
    for node in &eg[id].nodes {
        if let Some((Op::Binary(BinaryOp::Mul), 0, 1, a)) = op_node(eg, node) {
            out.extend(split_product(eg, a[0], a[1], n));
        }
    }
    out
}

/// The `n`-factor products `l · r` (each side one or more factors).
fn split_product(eg: &EG, l: Id, r: Id, n: usize) -> Vec<Vec<Id>> {
    let mut out = Vec::new();
    for k in 1..n {
        for lf in products(eg, l, k) {
            for rf in products(eg, r, n - k) {
                out.push([lf.clone(), rf].concat());
            }
        }
    }
    out
}

/// The orderings of three factors.
fn perms3(f: &[Id]) -> [[Id; 3]; 6] {
    let (a, b, c) = (f[0], f[1], f[2]);
    [
        [a, b, c],
        [a, c, b],
        [b, a, c],
        [b, c, a],
        [c, a, b],
        [c, b, a],
    ]
}

/// Class `id` is a scalar float constant within a relative 1e-4 of `want`.
fn is_const(eg: &EG, id: Id, want: f64) -> bool {
    scalar_weight(eg, id).is_some_and(|v| (v - want).abs() <= 1e-4 * want.abs().max(1e-30))
}

/// The operand lists of the `op` nodes (output 0) in class `id`.
fn nodes_of(eg: &EG, id: Id, op: &Op) -> Vec<Vec<Id>> {
    eg[eg.find(id)]
        .nodes
        .iter()
        .filter_map(|n| match op_node(eg, n)? {
            (o, 0, _, a) if &o == op => Some(a),
            _ => None,
        })
        .collect()
}

/// Class `id` holds `Binary(op)(x, c)` (or `(c, x)` for commutative `op`) with `x` in class
/// `x` and `c` a scalar constant `want`.
fn is_binary_const(eg: &EG, id: Id, op: BinaryOp, x: Id, want: f64) -> bool {
    let x = eg.find(x);
    nodes_of(eg, id, &Op::Binary(op)).iter().any(|a| {
        (eg.find(a[0]) == x && is_const(eg, a[1], want))
            || (matches!(op, BinaryOp::Add | BinaryOp::Mul)
                && eg.find(a[1]) == x
                && is_const(eg, a[0], want))
    })
}

/// The operands of `op(a, b)` nodes in class `id`, both orders for commutative `op`.
fn operand_pairs(eg: &EG, id: Id, op: BinaryOp) -> Vec<(Id, Id)> {
    let mut out = Vec::new();
    for a in nodes_of(eg, id, &Op::Binary(op)) {
        out.push((a[0], a[1]));
        if matches!(op, BinaryOp::Add | BinaryOp::Mul) {
            out.push((a[1], a[0]));
        }
    }
    out
}

/// Class `id` is a float tensor.
fn is_float(eg: &EG, id: Id) -> bool {
    eg[id]
        .data
        .ty
        .as_ref()
        .is_some_and(|t| matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16))
}

/// The exporters' decomposed GELU, as the op: the product, in any association and order, of
/// `x`, `0.5` and `1 + erf(x / √2)` (`x · (1/√2)` too) — `Gelu(x)` — or `1 + tanh(√(2/π) ·
/// (x + 0.044715 · x³))` with `x³` as `Pow(x, 3)` — `Gelu(x, approximate = "tanh")`.
pub struct DecomposedGelu;

impl Rule for DecomposedGelu {
    fn name(&self) -> &'static str {
        "decomposed-gelu"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Binary(BinaryOp::Mul), 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let mut found: Vec<(Id, bool)> = Vec::new();
        for f in split_product(eg, args[0], args[1], 3) {
            for [x, half, s] in perms3(&f) {
                if !is_const(eg, half, 0.5) || !is_float(eg, x) {
                    continue;
                }
                if let Some(tanh) = gelu_sum(eg, s, x)
                    && !found.contains(&(x, tanh))
                {
                    found.push((x, tanh));
                }
            }
        }
        found
            .into_iter()
            .map(|(x, tanh)| add_op(eg, Op::Activation(ActivationOp::Gelu { tanh }), vec![x]))
            .collect()
    }
}

/// Whether class `s` is `1 + erf(x/√2)` (`Some(false)`) or the tanh form's `1 + tanh(…)`
/// (`Some(true)`).
fn gelu_sum(eg: &EG, s: Id, x: Id) -> Option<bool> {
    let x = eg.find(x);
    for (e, one) in operand_pairs(eg, s, BinaryOp::Add) {
        if !is_const(eg, one, 1.0) {
            continue;
        }
        for z in nodes_of(eg, e, &Op::Unary(UnaryOp::Erf)) {
            if is_binary_const(eg, z[0], BinaryOp::Div, x, std::f64::consts::SQRT_2)
                || is_binary_const(eg, z[0], BinaryOp::Mul, x, std::f64::consts::FRAC_1_SQRT_2)
            {
                return Some(false);
            }
        }
        for z in nodes_of(eg, e, &Op::Unary(UnaryOp::Tanh)) {
            // √(2/π) · (x + 0.044715 · x³)
            let k = (2.0 / std::f64::consts::PI).sqrt();
            for (w, c) in operand_pairs(eg, z[0], BinaryOp::Mul) {
                if !is_const(eg, c, k) {
                    continue;
                }
                for (xx, m) in operand_pairs(eg, w, BinaryOp::Add) {
                    if eg.find(xx) != x {
                        continue;
                    }
                    for (cube, c3) in operand_pairs(eg, m, BinaryOp::Mul) {
                        if is_const(eg, c3, 0.044715)
                            && is_binary_const(eg, cube, BinaryOp::Pow, x, 3.0)
                        {
                            return Some(true);
                        }
                    }
                }
            }
        }
    }
    None
}

/// The decomposed HardSwish, as the op: `x · Clip(x + 3, 0, 6) / 6`, the division also as a
/// factor `1/6` of the product (any association and order), and `x · HardSigmoid(x)` with
/// HardSigmoid's `alpha = 1/6`, `beta = 0.5`.
pub struct DecomposedHardSwish;

impl Rule for DecomposedHardSwish {
    fn name(&self) -> &'static str {
        "decomposed-hardswish"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Binary(op), 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let mut found: Vec<Id> = Vec::new();
        let mut push = |x: Id| {
            if !found.contains(&x) {
                found.push(x);
            }
        };
        match op {
            BinaryOp::Div if is_const(eg, args[1], 6.0) => {
                for f in products(eg, args[0], 2) {
                    for (x, c) in [(f[0], f[1]), (f[1], f[0])] {
                        if relu6_of_x_plus_3(eg, c, x) {
                            push(x);
                        }
                    }
                }
            }
            BinaryOp::Mul => {
                for f in split_product(eg, args[0], args[1], 3) {
                    for [x, c, sixth] in perms3(&f) {
                        if is_const(eg, sixth, 1.0 / 6.0) && relu6_of_x_plus_3(eg, c, x) {
                            push(x);
                        }
                    }
                }
                for (x, h) in [(args[0], args[1]), (args[1], args[0])] {
                    let x = eg.find(x);
                    let hard_sigmoid = eg[h].nodes.iter().any(|n| match op_node(eg, n) {
                        Some((
                            Op::Activation(ActivationOp::HardSigmoid { alpha, beta }),
                            0,
                            1,
                            a,
                        )) => {
                            eg.find(a[0]) == x
                                && (f64::from(alpha) - 1.0 / 6.0).abs() <= 1e-6
                                && beta == 0.5
                        }
                        _ => false,
                    });
                    if hard_sigmoid {
                        push(x);
                    }
                }
            }
            _ => {}
        }
        found.retain(|&x| is_float(eg, x));
        found
            .into_iter()
            .map(|x| add_op(eg, Op::Unary(UnaryOp::HardSwish), vec![x]))
            .collect()
    }
}

/// Class `c` is `Clip(x + 3, 0, 6)`.
fn relu6_of_x_plus_3(eg: &EG, c: Id, x: Id) -> bool {
    nodes_of(eg, c, &Op::Clip).iter().any(|a| {
        a.len() == 3
            && scalar_weight(eg, a[1]) == Some(0.0)
            && is_const(eg, a[2], 6.0)
            && is_binary_const(eg, a[0], BinaryOp::Add, x, 3.0)
    })
}

/// The decomposed Softmax, as the op: `Exp(x − ReduceMax(x)) / ReduceSum(Exp(x − ReduceMax(x)))`
/// and `Exp(x) / ReduceSum(Exp(x))`, both reductions over one axis with keepdims.
pub struct DecomposedSoftmax;

impl Rule for DecomposedSoftmax {
    fn name(&self) -> &'static str {
        "decomposed-softmax"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Binary(BinaryOp::Div), 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let e = eg.find(args[0]);
        // The denominator sums the numerator over one axis.
        let Some(axis) = one_axis_reductions(eg, args[1], ReduceOp::Sum)
            .into_iter()
            .find_map(|(v, axis)| (v == e).then_some(axis))
        else {
            return vec![];
        };
        let mut found: Vec<Id> = Vec::new();
        for a in nodes_of(eg, e, &Op::Unary(UnaryOp::Exp)) {
            let z = eg.find(a[0]);
            // exp(x - max(x)) or exp(x).
            let mut xs = vec![z];
            for (x, m) in operand_pairs(eg, z, BinaryOp::Sub) {
                let x = eg.find(x);
                if one_axis_reductions(eg, m, ReduceOp::Max).contains(&(x, axis)) {
                    xs.push(x);
                }
            }
            for x in xs {
                if is_float(eg, x) && !found.contains(&x) {
                    found.push(x);
                }
            }
        }
        found
            .into_iter()
            .map(|x| {
                add_op(
                    eg,
                    Op::Softmax {
                        axis: axis as i64,
                        legacy: false,
                    },
                    vec![x],
                )
            })
            .collect()
    }
}

/// `(x, axis)` for the `Reduce(op)(x, [axis])` nodes with keepdims in class `id` (the axis
/// normalised to be non-negative).
fn one_axis_reductions(eg: &EG, id: Id, op: ReduceOp) -> Vec<(Id, usize)> {
    eg[eg.find(id)]
        .nodes
        .iter()
        .filter_map(|node| {
            let (o, slot, _, a) = op_node(eg, node)?;
            let Op::Reduce {
                op: ro,
                keepdims: true,
                ..
            } = o
            else {
                return None;
            };
            if ro != op || slot != 0 || a.len() < 2 {
                return None;
            }
            let rank = shape(eg, a[0])?.len() as i64;
            let axes = weight(eg, a[1])?.to_f64_vec();
            let [ax] = axes[..] else {
                return None;
            };
            let ax = ax as i64;
            let ax = if ax < 0 { ax + rank } else { ax };
            (0..rank)
                .contains(&ax)
                .then_some((eg.find(a[0]), ax as usize))
        })
        .collect()
}
