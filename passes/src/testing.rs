//! Semantic checking of rewrite rules, for tests: saturate a graph's e-graph with some rules,
//! then evaluate every e-class on the reference interpreter and check that *every* e-node in
//! it computes the class's value. This checks each equality a rule asserted, whichever side
//! extraction would later choose.

use crate::convert;
use crate::lang::{EG, Node};
use crate::rules::{Ctx, LegalFn, Limits, Rule, saturate};
use egg::{Id, Language};
use optc_ir::{Graph, Tensor, ValueId};
use std::collections::BTreeMap;

/// What [`check_rules`] found.
#[derive(Debug)]
pub struct RuleCheck {
    /// Equalities each rule added.
    pub applied: BTreeMap<String, usize>,
    /// E-nodes checked.
    pub nodes_checked: usize,
}

/// Saturates `g` (inputs `inputs`) with `rules` and checks every e-node's value against its
/// class's value (max relative error `rtol` against the class value's max magnitude, plus
/// `rtol` absolute).
pub fn check_rules(
    g: &Graph,
    inputs: &[Tensor],
    rules: &[&dyn Rule],
    legal: Option<LegalFn>,
    rtol: f64,
) -> Result<RuleCheck, String> {
    let imp = convert::import(g, &BTreeMap::<ValueId, Tensor>::new()).map_err(|e| e.to_string())?;
    let mut eg = EG::new(imp.meta);
    let mut ids = Vec::new();
    for n in imp.expr.as_ref() {
        let n = n.clone().map_children(|c| ids[usize::from(c)]);
        ids.push(eg.add(n));
    }
    eg.rebuild();
    let ctx = Ctx {
        legal,
        max_fused_inputs: 8,
        max_fused_steps: 32,
        conv_layouts: true,
    };
    let rep = saturate(&mut eg, rules, &ctx, Limits::default(), "test");
    if !eg.analysis.conflicts.is_empty() {
        return Err(eg.analysis.conflicts.join("; "));
    }
    // Values of classes, to a fixpoint.
    let mut val: BTreeMap<Id, Tensor> = BTreeMap::new();
    let mut classes: Vec<Id> = eg.classes().map(|c| c.id).collect();
    classes.sort();
    loop {
        let mut progress = false;
        for &c in &classes {
            if val.contains_key(&c) {
                continue;
            }
            for n in &eg[c].nodes {
                if let Some(t) = eval_node(&eg, n, &val, inputs)? {
                    val.insert(c, t);
                    progress = true;
                    break;
                }
            }
        }
        if !progress {
            break;
        }
    }
    let mut checked = 0;
    for &c in &classes {
        let Some(want) = val.get(&c) else { continue };
        for n in &eg[c].nodes {
            let Some(got) = eval_node(&eg, n, &val, inputs)? else {
                continue;
            };
            checked += 1;
            close(&got, want, rtol).map_err(|m| {
                let what = match n {
                    Node::Op { op, .. } => format!("{:?}", eg.analysis.ops.get(*op)),
                    other => format!("{other:?}"),
                };
                format!("class {c}: e-node {what}: {m}")
            })?;
        }
    }
    Ok(RuleCheck {
        applied: rep.applied,
        nodes_checked: checked,
    })
}

fn eval_node(
    eg: &EG,
    n: &Node,
    val: &BTreeMap<Id, Tensor>,
    inputs: &[Tensor],
) -> Result<Option<Tensor>, String> {
    Ok(match n {
        Node::Input(k) => inputs.get(*k as usize).cloned(),
        Node::Weight(k) => Some(eg.analysis.weights[*k as usize].clone()),
        Node::Absent | Node::Outputs(_) => None,
        Node::Op {
            op,
            slot,
            nout,
            args,
        } => {
            let mut ins = Vec::new();
            for a in args {
                let a = eg.find(*a);
                if eg[a].data.ty.is_none() {
                    ins.push(None);
                } else {
                    match val.get(&a) {
                        Some(t) => ins.push(Some(t.clone())),
                        None => return Ok(None),
                    }
                }
            }
            let op = eg.analysis.ops.get(*op);
            let outs = optc_ir::interp::eval_op(op, &ins, *nout as usize)
                .map_err(|e| format!("{}: {e}", op.name()))?;
            outs.into_iter().nth(*slot as usize)
        }
    })
}

fn close(a: &Tensor, b: &Tensor, rtol: f64) -> Result<(), String> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Err(format!(
            "{} {:?} vs {} {:?}",
            a.dtype().name(),
            a.shape(),
            b.dtype().name(),
            b.shape()
        ));
    }
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let scale = y.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let same = (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= rtol * scale;
        if !same {
            return Err(format!("element {i}: {p} vs {q}"));
        }
    }
    Ok(())
}

/// Appends to `g` the opset-13 exporters' LayerNorm of `x` (f32) over its last axis —
/// `ReduceMean`, `Sub`, `Pow 2`, `ReduceMean`, `Add ε`, `Sqrt`, `Div`, `Mul γ`, `Add β` — the
/// pattern the canonicalize stage recognises as `LayerNormalization`. Nodes, values and
/// constants are named after `x`. Returns the output.
pub fn decomposed_layer_norm(
    g: &mut Graph,
    x: ValueId,
    gamma: ValueId,
    beta: ValueId,
    eps: f32,
) -> Result<ValueId, optc_ir::GraphError> {
    use optc_ir::Op;
    use optc_ir::ops::{BinaryOp, ReduceOp, UnaryOp};
    let p = format!("{}_ln", g.value(x).name);
    let mut k = 0;
    let mut op =
        |g: &mut Graph, op: Op, ins: Vec<ValueId>| -> Result<ValueId, optc_ir::GraphError> {
            k += 1;
            let name = format!("{p}{k}");
            let (_, o) = g.add_node(
                name.clone(),
                op,
                ins.into_iter().map(Some).collect(),
                vec![Some(name)],
            )?;
            Ok(o[0].expect("one output"))
        };
    let axes_t = Tensor::from_vec(vec![1], vec![-1i64]).expect("a 1-D tensor of one axis");
    let axes = g.add_const(format!("{p}_axes"), axes_t)?;
    let two = g.add_const(format!("{p}_two"), Tensor::scalar(2.0f32))?;
    let eps = g.add_const(format!("{p}_eps"), Tensor::scalar(eps))?;
    let mean = Op::Reduce {
        op: ReduceOp::Mean,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    let m = op(g, mean.clone(), vec![x, axes])?;
    let d = op(g, Op::Binary(BinaryOp::Sub), vec![x, m])?;
    let sq = op(g, Op::Binary(BinaryOp::Pow), vec![d, two])?;
    let var = op(g, mean, vec![sq, axes])?;
    let ve = op(g, Op::Binary(BinaryOp::Add), vec![var, eps])?;
    let sd = op(g, Op::Unary(UnaryOp::Sqrt), vec![ve])?;
    let n = op(g, Op::Binary(BinaryOp::Div), vec![d, sd])?;
    let y = op(g, Op::Binary(BinaryOp::Mul), vec![n, gamma])?;
    op(g, Op::Binary(BinaryOp::Add), vec![y, beta])
}
