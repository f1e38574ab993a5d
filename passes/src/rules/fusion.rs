//! Fusion rules (stage 2). Every elementwise op and every anchor op (Conv, Gemm, MatMul) also
//! gets its one-kernel [`Op::Fused`] form; then a fused kernel reading a value that another
//! fused kernel computes gets a merged form that computes it in registers: elementwise chains
//! grow into one program, and programs fold into an anchor's epilogue (bias, BatchNorm scale,
//! activation, residual add, clip). Each merged kernel must pass the backend's legality check
//! and the input/step guards. Whether a fusion pays — an intermediate another consumer still
//! needs is then computed twice — is left to DAG extraction.
//!
//! Attention (`MatMul(Softmax_{-1}(S), V)` with `S = MatMul(Q, Kt)` or a MatMul-anchored fused
//! score kernel, and an optional `Where(IsNaN(p), 0, p)` between) gets its one-kernel
//! [`Op::FusedAttention`] form ([`FuseAttention`]).

use super::einsum::Contraction;
use super::{Ctx, Rule, add_op, op_node, shape};
use crate::lang::{EG, Node};
use egg::Id;
use optc_ir::ops::{AttentionLayout, Fused, FusedAttention, Program, Step, UnaryOp};
use optc_ir::{DType, Op, TensorType};

/// All fusion rules.
pub fn rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(ElementwiseAsProgram),
        Box::new(AnchorAsProgram),
        Box::new(FuseProducer),
        Box::new(FuseAttention),
    ]
}

fn is_anchor(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv(_) | Op::Gemm { .. } | Op::MatMul | Op::Einsum { .. }
    )
}

/// A reference to a value while a fused program is being built.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ref {
    Anchor,
    Extra(usize),
    Step(usize),
}

/// A fused kernel under construction: anchor, distinct extra inputs, steps.
#[derive(Clone, Debug, Default)]
struct Builder {
    anchor: Option<(Op, Vec<Id>)>,
    extras: Vec<Id>,
    steps: Vec<(Op, Vec<Option<Ref>>)>,
}

impl Builder {
    fn extra(&mut self, id: Id) -> Ref {
        match self.extras.iter().position(|&e| e == id) {
            Some(k) => Ref::Extra(k),
            None => {
                self.extras.push(id);
                Ref::Extra(self.extras.len() - 1)
            }
        }
    }

    /// Appends fused op `f` (inputs `ins`); program input `replace.0` of `f` is given by
    /// `replace.1` instead of an input. Returns `f`'s result.
    fn append(
        &mut self,
        eg: &EG,
        f: &Fused,
        ins: &[Id],
        replace: Option<(usize, Ref)>,
    ) -> Option<Ref> {
        let mut vals: Vec<Ref> = Vec::new();
        let extras = if let Some(a) = &f.anchor {
            if self.anchor.is_some() {
                return None;
            }
            self.anchor = Some((a.clone(), ins[..f.anchor_inputs].to_vec()));
            vals.push(Ref::Anchor);
            &ins[f.anchor_inputs..]
        } else {
            ins
        };
        for &e in extras {
            let pi = vals.len();
            match replace {
                Some((r, v)) if r == pi => vals.push(v),
                _ => vals.push(self.extra(eg.find(e))),
            }
        }
        for s in &f.program.steps {
            let args: Vec<Option<Ref>> = s.args.iter().map(|a| a.map(|a| vals[a])).collect();
            if matches!(s.op, Op::Identity) {
                vals.push(args[0]?);
            } else {
                self.steps.push((s.op.clone(), args));
                vals.push(Ref::Step(self.steps.len() - 1));
            }
        }
        vals.last().copied()
    }

    /// The fused op and its inputs, in a canonical form: steps in depth-first post-order from
    /// the result (dead steps dropped), extra inputs sorted by class id. The same fused
    /// computation reached by different merge orders is then the same e-node.
    fn finish(self, result: Ref) -> (Fused, Vec<Id>) {
        // Steps reachable from the result, in post-order.
        let mut order: Vec<usize> = Vec::new();
        let mut state = vec![0u8; self.steps.len()];
        let mut stack: Vec<(usize, bool)> = Vec::new();
        if let Ref::Step(j) = result {
            stack.push((j, false));
        }
        while let Some((j, done)) = stack.pop() {
            if done {
                if state[j] != 2 {
                    state[j] = 2;
                    order.push(j);
                }
                continue;
            }
            if state[j] != 0 {
                continue;
            }
            state[j] = 1;
            stack.push((j, true));
            for a in self.steps[j].1.iter().rev().flatten() {
                if let Ref::Step(k) = a {
                    if state[*k] == 0 {
                        stack.push((*k, false));
                    }
                }
            }
        }
        // Extras used, sorted by class id.
        let mut used: Vec<usize> = Vec::new();
        let mut mark = |r: &Ref| {
            if let Ref::Extra(k) = r {
                if !used.contains(k) {
                    used.push(*k);
                }
            }
        };
        mark(&result);
        for &j in &order {
            self.steps[j].1.iter().flatten().for_each(&mut mark);
        }
        used.sort_by_key(|&k| self.extras[k]);
        let base = usize::from(self.anchor.is_some());
        let inputs = base + used.len();
        let step_pos: Vec<Option<usize>> = {
            let mut p = vec![None; self.steps.len()];
            for (i, &j) in order.iter().enumerate() {
                p[j] = Some(i);
            }
            p
        };
        let num = |r: Ref| match r {
            Ref::Anchor => 0,
            Ref::Extra(k) => base + used.iter().position(|&u| u == k).expect("marked"),
            Ref::Step(j) => inputs + step_pos[j].expect("reachable"),
        };
        let mut steps: Vec<Step> = order
            .iter()
            .map(|&j| Step {
                op: self.steps[j].0.clone(),
                args: self.steps[j].1.iter().map(|a| a.map(num)).collect(),
            })
            .collect();
        // The result must be the last step.
        if steps.is_empty() || num(result) != inputs + steps.len() - 1 {
            steps.push(Step {
                op: Op::Identity,
                args: vec![Some(num(result))],
            });
        }
        let (anchor, anchor_ins) = match self.anchor {
            Some((op, ins)) => (Some(op), ins),
            None => (None, Vec::new()),
        };
        let mut ids = anchor_ins.clone();
        ids.extend(used.iter().map(|&k| self.extras[k]));
        (
            Fused {
                anchor,
                anchor_inputs: anchor_ins.len(),
                program: Program { inputs, steps },
            },
            ids,
        )
    }
}

fn legal(eg: &EG, ctx: &Ctx, f: &Fused, ids: &[Id]) -> bool {
    if f.program.steps.len() > ctx.max_fused_steps
        || f.program.inputs - usize::from(f.anchor.is_some()) > ctx.max_fused_inputs
    {
        return false;
    }
    legal_op(eg, ctx, &Op::Fused(Box::new(f.clone())), ids)
}

/// Whether fused op `op` (a [`Op::Fused`] or [`Op::FusedAttention`]) on classes `ids`
/// type-checks and the backend compiles it as one kernel.
fn legal_op(eg: &EG, ctx: &Ctx, op: &Op, ids: &[Id]) -> bool {
    let tys: Vec<Option<TensorType>> = ids.iter().map(|&i| eg[i].data.ty.clone()).collect();
    // Programs must type-check: an ill-typed merge is dropped, not added.
    let ins: Vec<Option<optc_ir::infer::InferInput<'_>>> = tys
        .iter()
        .map(|t| {
            t.as_ref()
                .map(|t| optc_ir::infer::InferInput { ty: t, value: None })
        })
        .collect();
    let Ok(out) = optc_ir::infer::infer(op, &ins, 1) else {
        return false;
    };
    ctx.legal.as_ref().is_none_or(|l| l(op, &tys, &out[0]))
}

/// `op(xs) = Fused{program: [op]}(xs)` for every single-output elementwise op.
pub struct ElementwiseAsProgram;

impl Rule for ElementwiseAsProgram {
    fn name(&self) -> &'static str {
        "elementwise-as-program"
    }
    fn apply(&self, eg: &mut EG, ctx: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((op, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        if eg[class].data.konst || !Program::is_step_op(&op) || matches!(op, Op::Identity) {
            return vec![];
        }
        let mut b = Builder::default();
        let refs: Vec<Option<Ref>> = args
            .iter()
            .map(|&a| eg[a].data.ty.is_some().then(|| b.extra(eg.find(a))))
            .collect();
        b.steps.push((op, refs));
        let (f, ids) = b.finish(Ref::Step(0));
        if !legal(eg, ctx, &f, &ids) {
            return vec![];
        }
        vec![add_op(eg, Op::Fused(Box::new(f)), ids)]
    }
}

/// `anchor(xs) = Fused{anchor, program: [Identity]}(xs)` for Conv, Gemm and MatMul: the form
/// epilogues merge into.
pub struct AnchorAsProgram;

impl Rule for AnchorAsProgram {
    fn name(&self) -> &'static str {
        "anchor-as-program"
    }
    fn apply(&self, eg: &mut EG, ctx: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((op, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        if eg[class].data.konst || !is_anchor(&op) {
            return vec![];
        }
        let f = Fused {
            anchor: Some(op),
            anchor_inputs: args.len(),
            program: Program {
                inputs: 1,
                steps: vec![Step {
                    op: Op::Identity,
                    args: vec![Some(0)],
                }],
            },
        };
        if !legal(eg, ctx, &f, &args) {
            return vec![];
        }
        vec![add_op(eg, Op::Fused(Box::new(f)), args)]
    }
}

/// `Fused{P}(.., y, ..)` where `y = Fused{Q}(zs)`: one kernel computing `Q` in registers. At
/// most one anchor, and an anchored producer's output must have the consumer's output shape
/// (epilogues never broadcast the anchor).
pub struct FuseProducer;

impl Rule for FuseProducer {
    fn name(&self) -> &'static str {
        "fuse-producer"
    }
    fn apply(&self, eg: &mut EG, ctx: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Fused(pf), 0, 1, pins)) = op_node(eg, node) else {
            return vec![];
        };
        if eg[class].data.konst {
            return vec![];
        }
        let out_shape = shape(eg, class);
        let base = if pf.anchor.is_some() {
            pf.anchor_inputs
        } else {
            0
        };
        let mut res = Vec::new();
        for (pos, &inp) in pins.iter().enumerate().skip(base) {
            if eg[inp].data.konst {
                continue;
            }
            let cands: Vec<Node> = eg[inp].nodes.clone();
            for cn in &cands {
                let Some((Op::Fused(cf), 0, 1, cins)) = op_node(eg, cn) else {
                    continue;
                };
                if cf.anchor.is_some() && (pf.anchor.is_some() || shape(eg, inp) != out_shape) {
                    continue;
                }
                let mut b = Builder::default();
                let Some(r) = b.append(eg, &cf, &cins, None) else {
                    continue;
                };
                let prog_pos = pos - base + usize::from(pf.anchor.is_some());
                let Some(result) = b.append(eg, &pf, &pins, Some((prog_pos, r))) else {
                    continue;
                };
                let (f, ids) = b.finish(result);
                if !legal(eg, ctx, &f, &ids) {
                    continue;
                }
                res.push(add_op(eg, Op::Fused(Box::new(f)), ids));
            }
        }
        res
    }
}

/// `MatMul(P, V)` where `P = Softmax_{-1}(S)`, or `P = Where(IsNaN(p), 0, p)` of that softmax
/// (as plain ops or as their fused program), and `S = MatMul(Q, Kt)` or
/// `Fused{anchor: MatMul, program}(Q, Kt, extras)`: one [`FusedAttention`] kernel over
/// `(Q, Kt, V, extras)`. f32 only, every operand of rank ≥ 2; the NaN step only with a constant
/// scalar 0 fill. Either product may be the strided Einsum the einsum rules make of a MatMul
/// and the transposes around it (torch's head split `[b, s, h, d]` and merge): its equation
/// gives the op's [`AttentionLayout`], so the operands are read and the output written in
/// place.
pub struct FuseAttention;

/// True when class `id` holds the scalar constant 0 (any float dtype, any rank-0/one-element
/// form).
fn is_zero_const(eg: &EG, id: Id) -> bool {
    super::weight(eg, id).is_some_and(|t| {
        t.shape().iter().product::<usize>() == 1 && t.to_f64_vec().first() == Some(&0.0)
    })
}

/// The Softmax-over-the-last-axis input class of class `id`, if it holds such a softmax.
fn softmax_input(eg: &EG, id: Id) -> Option<Id> {
    let rank = shape(eg, id)?.len() as i64;
    eg[id].nodes.iter().find_map(|n| match op_node(eg, n) {
        Some((Op::Softmax { axis, legacy }, 0, 1, a)) if a.len() == 1 => {
            let ax = if axis < 0 { axis + rank } else { axis };
            // Legacy softmax normalises over all axes from `axis` on: the same when it is the
            // last one.
            let _ = legacy;
            (rank >= 1 && ax == rank - 1).then(|| eg.find(a[0]))
        }
        _ => None,
    })
}

/// The classes `(softmax input, nan_fill_zero)` that class `id` (the first MatMul operand) may
/// be the normalised scores of.
fn attention_probs(eg: &EG, id: Id) -> Vec<(Id, bool)> {
    let mut out = Vec::new();
    if let Some(s) = softmax_input(eg, id) {
        out.push((s, false));
    }
    let is_isnan_of = |c: Id, p: Id| {
        eg[c].nodes.iter().any(|n| {
            matches!(op_node(eg, n), Some((Op::Unary(UnaryOp::IsNaN), 0, 1, a))
                if a.len() == 1 && eg.find(a[0]) == p)
        })
    };
    for n in &eg[id].nodes {
        // (fill class, probability class)
        let pair = match op_node(eg, n) {
            Some((Op::Where, 0, 1, a)) if a.len() == 3 => {
                let (c, fill, p) = (eg.find(a[0]), eg.find(a[1]), eg.find(a[2]));
                is_isnan_of(c, p).then_some((fill, p))
            }
            Some((Op::Fused(f), 0, 1, a)) if f.anchor.is_none() && f.program.inputs == 2 => {
                let st = &f.program.steps;
                match st.as_slice() {
                    [
                        Step {
                            op: Op::Unary(UnaryOp::IsNaN),
                            args: x,
                        },
                        Step {
                            op: Op::Where,
                            args: w,
                        },
                    ] if a.len() == 2 => match (x.as_slice(), w.as_slice()) {
                        ([Some(pi)], [Some(2), Some(fi), Some(pj)])
                            if pi == pj && *pi < 2 && *fi < 2 && pi != fi =>
                        {
                            Some((eg.find(a[*fi]), eg.find(a[*pi])))
                        }
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((fill, p)) = pair {
            if is_zero_const(eg, fill) {
                if let Some(s) = softmax_input(eg, p) {
                    if !out.contains(&(s, true)) {
                        out.push((s, true));
                    }
                }
            }
        }
    }
    out
}

/// The op's layout from the products' (`None` when both are MatMuls): identity permutations
/// where a product is a MatMul.
fn attention_layout(
    eg: &EG,
    ids: &[Id],
    score: Option<&Perms>,
    pv: Option<&Perms>,
    out: Id,
) -> Option<AttentionLayout> {
    if score.is_none() && pv.is_none() {
        return None;
    }
    let id = |c: Id| (0..shape(eg, c).map_or(0, |s| s.len())).collect::<Vec<usize>>();
    let (q, k) = score.cloned().unwrap_or_else(|| (id(ids[0]), id(ids[1])));
    let (v, o) = pv.cloned().unwrap_or_else(|| (id(ids[2]), id(out)));
    Some(AttentionLayout { q, k, v, out: o })
}

fn is_f32_rank2(eg: &EG, id: Id) -> bool {
    eg[id]
        .data
        .ty
        .as_ref()
        .is_some_and(|t| t.dtype == DType::F32 && t.shape.as_static().is_some_and(|s| s.len() >= 2))
}

/// Two operand permutations of an attention product (Q and Kt, or V and the output).
type Perms = (Vec<usize>, Vec<usize>);

/// The layouts of `P·V` as an Einsum with P read as stored, `[batch.., S, T]`: the
/// permutations taking V to `[.., T, Dv]` and the output from `[.., S, Dv]`.
fn pv_layout(c: &Contraction) -> Option<Perms> {
    let r = c.a.len();
    if r < 2 || c.b.len() != r || c.out.len() != r {
        return None;
    }
    let (batch, m, k) = (&c.a[..r - 2], c.a[r - 2], c.a[r - 1]);
    if c.out.contains(&k) {
        return None;
    }
    let ns: Vec<char> = c.b.iter().copied().filter(|l| !c.a.contains(l)).collect();
    let [n] = ns[..] else {
        return None;
    };
    let canon_v: Vec<char> = batch.iter().copied().chain([k, n]).collect();
    let canon_o: Vec<char> = batch.iter().copied().chain([m, n]).collect();
    Some((positions(&canon_v, &c.b)?, positions(&c.out, &canon_o)?))
}

/// Where each letter of `want` sits in `have`: the permutation taking `have`'s order to
/// `want`'s (`None` if a letter is missing).
fn positions(want: &[char], have: &[char]) -> Option<Vec<usize>> {
    want.iter()
        .map(|&l| have.iter().position(|&x| x == l))
        .collect()
}

/// The layouts of the scores `Q·Kt` as an Einsum whose output is `[batch.., S, T]`: the
/// permutations taking its operands to Q `[.., S, D]` and Kt `[.., D, T]`.
fn score_layout(c: &Contraction) -> Option<Perms> {
    let r = c.out.len();
    if r < 2 || c.a.len() != r || c.b.len() != r {
        return None;
    }
    let (batch, m, n) = (&c.out[..r - 2], c.out[r - 2], c.out[r - 1]);
    let ks: Vec<char> = c.a.iter().copied().filter(|l| !c.out.contains(l)).collect();
    let [k] = ks[..] else {
        return None;
    };
    let canon_q: Vec<char> = batch.iter().copied().chain([m, k]).collect();
    let canon_k: Vec<char> = batch.iter().copied().chain([k, n]).collect();
    Some((positions(&canon_q, &c.a)?, positions(&canon_k, &c.b)?))
}

/// A contraction anchor of the attention products: MatMul (canonical layouts) or a parsable
/// two-operand Einsum (with the layout `f` derives from its equation, or not an anchor).
fn product_layout(op: &Op, f: fn(&Contraction) -> Option<Perms>) -> Option<Option<Perms>> {
    match op {
        Op::MatMul => Some(None),
        Op::Einsum { equation } => Contraction::parse(equation).and_then(|c| f(&c)).map(Some),
        _ => None,
    }
}

impl Rule for FuseAttention {
    fn name(&self) -> &'static str {
        "fuse-attention"
    }
    fn apply(&self, eg: &mut EG, ctx: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((pv_op, 0, 1, args)) = op_node(eg, node) else {
            return vec![];
        };
        let Some(pv) = product_layout(&pv_op, pv_layout) else {
            return vec![];
        };
        if eg[class].data.konst || args.len() != 2 || !is_f32_rank2(eg, class) {
            return vec![];
        }
        let v = eg.find(args[1]);
        if !is_f32_rank2(eg, v) {
            return vec![];
        }
        let mut res = Vec::new();
        for (s, nan_fill_zero) in attention_probs(eg, eg.find(args[0])) {
            let cands: Vec<Node> = eg[s].nodes.clone();
            for sn in &cands {
                let (score, sargs, sl) = match op_node(eg, sn) {
                    Some((op, 0, 1, a)) if a.len() == 2 => {
                        match product_layout(&op, score_layout) {
                            Some(sl) => (None, a, sl),
                            None => continue,
                        }
                    }
                    Some((Op::Fused(f), 0, 1, a)) if f.anchor_inputs == 2 => {
                        let Some(sl) = f
                            .anchor
                            .as_ref()
                            .and_then(|o| product_layout(o, score_layout))
                        else {
                            continue;
                        };
                        // The anchor-as-program form of a plain product is the plain product.
                        let identity = f.program.inputs == 1
                            && matches!(f.program.steps.as_slice(),
                                [Step { op: Op::Identity, args }] if args == &[Some(0)]);
                        if identity {
                            (None, a[..2].to_vec(), sl)
                        } else {
                            (Some(f.program.clone()), a, sl)
                        }
                    }
                    _ => continue,
                };
                if score.as_ref().is_some_and(|p| {
                    p.steps.len() > ctx.max_fused_steps || p.inputs - 1 > ctx.max_fused_inputs
                }) {
                    continue;
                }
                let (q, kt) = (eg.find(sargs[0]), eg.find(sargs[1]));
                if !is_f32_rank2(eg, q) || !is_f32_rank2(eg, kt) {
                    continue;
                }
                let mut ids = vec![q, kt, v];
                ids.extend(sargs[2..].iter().map(|&e| eg.find(e)));
                let layout = attention_layout(eg, &ids, sl.as_ref(), pv.as_ref(), class);
                let op = Op::FusedAttention(Box::new(FusedAttention {
                    score,
                    nan_fill_zero,
                    layout,
                }));
                if !legal_op(eg, ctx, &op, &ids) {
                    continue;
                }
                res.push(add_op(eg, op, ids));
            }
        }
        res
    }
}
