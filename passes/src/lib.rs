//! optc's optimizer: staged equality saturation over the graph IR with [egg], and cost-based
//! DAG extraction.
//!
//! [`optimize`] converts a graph to an e-graph ([`convert`]), and runs the stages of the
//! optimization level, each on a fresh e-graph with its own node/iteration/time limits and its
//! stop reason recorded:
//! 1. **canonicalize** ([`rules::canon`], [`rules::layout::canon_rules`]): no-ops, transpose
//!    and reshape chains, transposes of size-1 dims as reshapes, BatchNorm folded into Conv or
//!    made a per-channel multiply-add;
//! 2. **layout** ([`rules::layout::sink_rules`]): elementwise ops sunk below reshapes and
//!    transposes onto the kernel that produced their input (extraction breaks the tie towards
//!    the sunk form, see [`cost::CostModel::sink_bias_us`]);
//! 3. **fusion** ([`rules::fusion`], [`rules::einsum`]): elementwise chains grown into one
//!    program kernel, programs folded into Conv/Gemm/MatMul/Einsum epilogues, attention fused,
//!    and MatMuls turned into Einsums that absorb the transposes and scalar factors around them.
//!
//! After each stage the greedy DAG extractor ([`extract`]) picks the cheapest graph under the
//! target's roofline [`cost::CostModel`]. Lossy choices (quantization, pruning) are not made
//! here. egg's types never appear in this crate's public API: graphs go in and out.

#![warn(missing_docs)]

pub mod convert;
pub mod cost;
pub mod extract;
pub mod lang;
pub mod rules;
pub mod testing;

use optc_ir::{Graph, Tensor, ValueId};
use rules::{Ctx, Limits, Rule, StageReport};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

pub use cost::CostModel;
pub use rules::LegalFn;

/// Why optimization failed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The input graph is malformed.
    #[error("{0}")]
    Graph(String),
    /// The optimizer broke an invariant (merged classes of different types, lost a value):
    /// an optc bug.
    #[error("optimizer bug: {0}")]
    Internal(String),
}

/// Optimizer options.
#[derive(Clone)]
pub struct Options {
    /// Optimization level: 0 none, 1 canonicalize, 2 and 3 canonicalize and fuse.
    pub level: u8,
    /// The cost model's target.
    pub target: String,
    /// The backend's fusion legality check.
    pub legal: Option<LegalFn>,
    /// Limits of each stage.
    pub limits: Limits,
    /// Most distinct extra inputs of a fused kernel.
    pub max_fused_inputs: usize,
    /// Most program steps of a fused kernel.
    pub max_fused_steps: usize,
    /// Also extract each stage by integer programming (kept where cheaper than the greedy
    /// DAG): on at `-O3`.
    pub ilp: Option<extract::IlpLimits>,
    /// The backend's conv cost factors ([`cost::CostModel::conv_factors`]), used where the
    /// target's cost model prices conv layouts (wgsl).
    pub conv_factors: Option<cost::ConvCostFn>,
}

impl Options {
    /// Defaults for `level` and `target`.
    pub fn new(level: u8, target: &str) -> Options {
        Options {
            level,
            target: target.to_string(),
            legal: None,
            limits: Limits::default(),
            max_fused_inputs: 8,
            max_fused_steps: 32,
            ilp: (level >= 3).then(extract::IlpLimits::default),
            conv_factors: None,
        }
    }
}

/// One fused kernel of the result.
#[derive(Clone, Debug, Serialize)]
pub struct FusionGroup {
    /// The output value's name.
    pub output: String,
    /// The anchor op, if any.
    pub anchor: Option<String>,
    /// The program, in short text form.
    pub program: String,
    /// Ops in the group (anchor included).
    pub ops: usize,
}

/// What the optimizer did.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Optimization level.
    pub level: u8,
    /// The cost model.
    pub cost_model: CostModel,
    /// Per stage.
    pub stages: Vec<StageReport>,
    /// The fused kernels of the result.
    pub groups: Vec<FusionGroup>,
    /// Nodes before and after.
    pub nodes_before: usize,
    /// Nodes after.
    pub nodes_after: usize,
    /// Total time, ms.
    pub ms: f64,
}

/// The optimized graph and the report.
#[derive(Clone, Debug)]
pub struct Optimized {
    /// The graph.
    pub graph: Graph,
    /// What was done.
    pub report: Report,
}

/// Optimizes `g`; `known` holds values computed at compile time (treated as weights).
pub fn optimize(
    g: &Graph,
    known: &BTreeMap<ValueId, Tensor>,
    opts: &Options,
) -> Result<Optimized, PassError> {
    let t0 = Instant::now();
    let mut model = CostModel::for_target(&opts.target);
    if model.scalar_conv_rate.is_some() {
        model.conv_factors = opts.conv_factors;
    }
    let imported = convert::import(g, known)?;
    let nodes_before = g.num_nodes();
    let mut expr = imported.expr;
    let mut meta = imported.meta;
    let mut names = imported.names;
    let ctx = Ctx {
        legal: opts.legal.clone(),
        max_fused_inputs: opts.max_fused_inputs,
        max_fused_steps: opts.max_fused_steps,
        conv_layouts: model.scalar_conv_rate.is_some(),
    };
    let mut canon = rules::canon::rules();
    canon.extend(rules::layout::canon_rules());
    let mut layout = rules::layout::sink_rules();
    layout.extend(rules::canon::rules());
    let mut fusion = rules::fusion::rules();
    fusion.extend(rules::einsum::rules());
    let mut stages: Vec<(&str, &[Box<dyn Rule>])> = Vec::new();
    if opts.level >= 1 {
        stages.push(("canonicalize", &canon));
    }
    if opts.level >= 2 {
        stages.push(("layout", &layout));
        stages.push(("fusion", &fusion));
    }
    let mut reports = Vec::new();
    for (name, rs) in stages {
        let mut eg = lang::EG::new(meta);
        let ids = add_expr_ids(&mut eg, &expr);
        let root = *ids.last().expect("non-empty expression");
        // Names follow classes.
        let mut class_names: BTreeMap<egg::Id, String> = BTreeMap::new();
        for (i, n) in &names {
            class_names
                .entry(eg.find(ids[*i]))
                .or_insert_with(|| n.clone());
        }
        let refs: Vec<&dyn Rule> = rs.iter().map(|r| r.as_ref()).collect();
        let mut rep = rules::saturate(&mut eg, &refs, &ctx, opts.limits, name);
        if !eg.analysis.conflicts.is_empty() {
            return Err(PassError::Internal(format!(
                "stage {name}: {}",
                eg.analysis.conflicts.join("; ")
            )));
        }
        let te = Instant::now();
        let stage_model = if name == "layout" {
            CostModel {
                sink_bias_us: 1e-3,
                ..model.clone()
            }
        } else {
            model.clone()
        };
        let costs = extract::node_costs(&eg, &stage_model);
        let mut ex = extract::extract(&eg, root, &costs)
            .map_err(|e| PassError::Internal(format!("stage {name}: extraction: {e}")))?;
        rep.greedy_cost_us = ex.cost;
        if let Some(limits) = opts.ilp {
            let (ilp, outcome) = extract::extract_ilp(&eg, root, &costs, &ex, limits);
            rep.ilp = Some(outcome.status);
            rep.ilp_ms = outcome.ms;
            if let Some(ilp) = ilp.filter(|i| extract::cheaper(i.cost, ex.cost)) {
                ex = ilp;
                rep.extractor = "ilp".to_string();
            }
        }
        rep.extract_ms = te.elapsed().as_secs_f64() * 1e3;
        rep.cost_us = ex.cost;
        names = ex
            .classes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| class_names.get(&eg.find(*c)).map(|n| (i, n.clone())))
            .collect();
        expr = ex.expr;
        meta = eg.analysis;
        reports.push(rep);
    }
    let graph = convert::export(
        &expr,
        &meta,
        &names,
        &imported.input_names,
        &imported.output_names,
    )?;
    let groups = fusion_groups(&graph);
    Ok(Optimized {
        report: Report {
            level: opts.level,
            cost_model: model,
            stages: reports,
            groups,
            nodes_before,
            nodes_after: graph.num_nodes(),
            ms: t0.elapsed().as_secs_f64() * 1e3,
        },
        graph,
    })
}

/// Adds every node of `expr` to `eg`, returning the class of each.
fn add_expr_ids(eg: &mut lang::EG, expr: &egg::RecExpr<lang::Node>) -> Vec<egg::Id> {
    use egg::Language;
    let mut ids: Vec<egg::Id> = Vec::with_capacity(expr.as_ref().len());
    for n in expr.as_ref() {
        let n = n.clone().map_children(|c| ids[usize::from(c)]);
        ids.push(eg.add(n));
    }
    eg.rebuild();
    ids.into_iter().map(|i| eg.find(i)).collect()
}

/// The fused kernels of `g`.
pub fn fusion_groups(g: &Graph) -> Vec<FusionGroup> {
    let mut out = Vec::new();
    for n in g.topo_order().unwrap_or_default() {
        let node = g.node(n);
        if let optc_ir::Op::Fused(f) = &node.op {
            let steps = f
                .program
                .steps
                .iter()
                .filter(|s| !matches!(s.op, optc_ir::Op::Identity))
                .count();
            out.push(FusionGroup {
                output: node.outputs[0].map_or_else(String::new, |v| g.value(v).name.clone()),
                anchor: f.anchor.as_ref().map(|a| a.name().to_string()),
                program: f.program.describe(),
                ops: steps + usize::from(f.anchor.is_some()),
            });
        }
        if let optc_ir::Op::FusedAttention(a) = &node.op {
            let steps = a.score.as_ref().map_or(0, |p| {
                p.steps
                    .iter()
                    .filter(|s| !matches!(s.op, optc_ir::Op::Identity))
                    .count()
            });
            let mut program = a
                .score
                .as_ref()
                .map_or_else(|| "s=x0".to_string(), |p| p.describe());
            program.push_str("; Softmax");
            if a.nan_fill_zero {
                program.push_str("; Where(IsNaN, 0)");
            }
            program.push_str("; MatMul(V)");
            out.push(FusionGroup {
                output: node.outputs[0].map_or_else(String::new, |v| g.value(v).name.clone()),
                anchor: Some("FusedAttention".to_string()),
                program,
                // MatMul, score steps, Softmax, [IsNaN, Where], MatMul.
                ops: 3 + steps + if a.nan_fill_zero { 2 } else { 0 },
            });
        }
    }
    out
}
