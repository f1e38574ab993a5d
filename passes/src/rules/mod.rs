//! Rewrite rules, by topic (`canon.rs`, `layout.rs`, `einsum.rs`, `fusion.rs`; see `README.md` in this folder for how
//! to write one), and the saturation loop that runs a stage's rules to a fixpoint or a limit.
//!
//! A rule looks at one e-node (and, through the e-graph, at its children's classes) and
//! returns classes equal to the node's class, which the loop unions in. Rules only add: the
//! e-graph keeps every alternative, and extraction chooses by cost. Rules are Rust, not egg
//! patterns, because nearly every rule here reads attributes, shapes or weights
//! (permutations to compose, epsilons to fold, legality of a fused kernel).

pub mod canon;
pub mod einsum;
pub mod fusion;
pub mod layout;

use crate::lang::{EG, Node};
use egg::Id;
use optc_ir::{Op, TensorType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Says whether the backend can compile a fused kernel — an [`Op::Fused`] or an
/// [`Op::FusedAttention`], given its input types (`None` for absent optional anchor inputs) and
/// its output type, inferred once by the rule — as one kernel.
pub type LegalFn = Arc<dyn Fn(&Op, &[Option<TensorType>], &TensorType) -> bool + Send + Sync>;

/// What rules may consult.
pub struct Ctx {
    /// Fusion legality (the backend's `supports_fused`); `None` allows everything.
    pub legal: Option<LegalFn>,
    /// Most distinct extra inputs of a fused kernel.
    pub max_fused_inputs: usize,
    /// Most program steps of a fused kernel (a register-pressure guard).
    pub max_fused_steps: usize,
    /// Whether the layout stage offers channels-last conv layouts (where the cost model
    /// prices the difference: [`crate::cost::CostModel::scalar_conv_rate`]).
    pub conv_layouts: bool,
}

/// One rewrite rule.
pub trait Rule {
    /// Its name (reports and tests use it).
    fn name(&self) -> &'static str;
    /// Classes equal to `class`, derived from its e-node `node`; new nodes are added to `eg`.
    fn apply(&self, eg: &mut EG, ctx: &Ctx, class: Id, node: &Node) -> Vec<Id>;
}

/// Limits of one saturation stage.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Limits {
    /// Most e-nodes.
    pub nodes: usize,
    /// Most iterations.
    pub iterations: usize,
    /// Most wall time.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            nodes: 50_000,
            iterations: 30,
            time: Duration::from_millis(500),
        }
    }
}

/// What one stage did.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    /// Stage name.
    pub name: String,
    /// E-nodes at the end.
    pub nodes: usize,
    /// E-classes at the end.
    pub classes: usize,
    /// Iterations run.
    pub iterations: usize,
    /// `saturated`, `node_limit`, `iteration_limit` or `time_limit`.
    pub stop_reason: String,
    /// Saturation time, ms.
    pub ms: f64,
    /// Extraction time, ms.
    pub extract_ms: f64,
    /// Cost of the extracted graph (µs, the target's roofline model).
    pub cost_us: f64,
    /// Which extraction was kept: `greedy`, or `ilp` where the integer program found a
    /// cheaper DAG.
    pub extractor: String,
    /// Cost of the greedy DAG extraction, µs.
    pub greedy_cost_us: f64,
    /// The integer program's outcome (`optimal`, `nodelimit`, `skipped: …`), when it ran
    /// ([`crate::Options::ilp`]).
    pub ilp: Option<String>,
    /// Its time, ms.
    pub ilp_ms: f64,
    /// Times each rule produced a new equality.
    pub applied: BTreeMap<String, usize>,
}

/// Runs `rules` on `eg` until nothing changes or a limit is hit.
pub fn saturate(
    eg: &mut EG,
    rules: &[&dyn Rule],
    ctx: &Ctx,
    limits: Limits,
    name: &str,
) -> StageReport {
    let t0 = Instant::now();
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    let mut iterations = 0;
    let stop = loop {
        if iterations >= limits.iterations {
            break "iteration_limit";
        }
        iterations += 1;
        let mut snapshot: Vec<(Id, Node)> = eg
            .classes()
            .flat_map(|c| c.nodes.iter().map(move |n| (c.id, n.clone())))
            .collect();
        snapshot.sort();
        let before = eg.total_number_of_nodes();
        let mut unions: Vec<(Id, Id, &'static str)> = Vec::new();
        let mut over = None;
        for (class, node) in &snapshot {
            for r in rules {
                for new in r.apply(eg, ctx, *class, node) {
                    unions.push((*class, new, r.name()));
                }
            }
            if eg.total_number_of_nodes() > limits.nodes {
                over = Some("node_limit");
                break;
            }
            if t0.elapsed() > limits.time {
                over = Some("time_limit");
                break;
            }
        }
        let mut merged = false;
        for (a, b, rule) in unions {
            if eg.union(a, b) {
                merged = true;
                *applied.entry(rule.to_string()).or_default() += 1;
            }
        }
        eg.rebuild();
        if let Some(r) = over {
            break r;
        }
        if !merged && eg.total_number_of_nodes() == before {
            break "saturated";
        }
    };
    StageReport {
        name: name.to_string(),
        nodes: eg.total_number_of_nodes(),
        classes: eg.number_of_classes(),
        iterations,
        stop_reason: stop.to_string(),
        ms: t0.elapsed().as_secs_f64() * 1e3,
        extract_ms: 0.0,
        cost_us: 0.0,
        extractor: "greedy".to_string(),
        greedy_cost_us: 0.0,
        ilp: None,
        ilp_ms: 0.0,
        applied,
    }
}

/// The op of an e-node (cloned), with its slot, output count and arguments.
pub fn op_node(eg: &EG, node: &Node) -> Option<(optc_ir::Op, u32, u32, Vec<Id>)> {
    match node {
        Node::Op {
            op,
            slot,
            nout,
            args,
        } => Some((eg.analysis.ops.get(*op).clone(), *slot, *nout, args.clone())),
        _ => None,
    }
}

/// Adds `op(args)` (single output) to the e-graph.
pub fn add_op(eg: &mut EG, op: optc_ir::Op, args: Vec<Id>) -> Id {
    let op = eg.analysis.ops.intern(op);
    eg.add(Node::Op {
        op,
        slot: 0,
        nout: 1,
        args,
    })
}

/// Adds a weight leaf.
pub fn add_weight(eg: &mut EG, t: optc_ir::Tensor) -> Id {
    let k = eg.analysis.add_weight(None, t);
    eg.add(Node::Weight(k))
}

/// The weight held by class `id`, if it is one.
pub fn weight(eg: &EG, id: Id) -> Option<&optc_ir::Tensor> {
    eg[id].data.weight.map(|k| &eg.analysis.weights[k as usize])
}

/// The static shape of class `id`.
pub fn shape(eg: &EG, id: Id) -> Option<Vec<usize>> {
    eg[id].data.ty.as_ref().and_then(|t| t.shape.as_static())
}
