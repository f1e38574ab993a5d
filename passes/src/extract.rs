//! Greedy DAG extraction: every class gets the e-node whose *DAG* cost — its own cost plus the
//! costs of the distinct classes below it, each counted once however often it is shared — is
//! least. Unlike egg's tree-cost `Extractor`, this charges a shared intermediate once, and a
//! fused kernel that recomputes an intermediate another consumer also needs pays for both.
//!
//! The fixpoint runs over a worklist in class-id order (deterministic). A node whose own class
//! appears below it is a cycle and is never chosen.
//!
//! [`extract_ilp`] solves the same choice exactly as a 0-1 integer program (microlp, pure Rust):
//! a binary per e-node, its own cost as the objective, "a chosen node's children are chosen",
//! one node per class, the root chosen, and acyclicity by order variables (`t_c ≥ t_child + 1`
//! wherever a node is chosen). It is warm-started from the greedy answer and budgeted in
//! branch-and-bound nodes — not wall time — so its answer is deterministic; the driver keeps it
//! only when it is strictly cheaper than the greedy one. Both extractors price e-nodes from one
//! table ([`node_costs`]).

use crate::cost::{CostModel, node_cost};
use crate::lang::{EG, Node};
use egg::{Id, Language, RecExpr};
use microlp::{ComparisonOp, OptimizationDirection, Problem, SolveOptions, Variable};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

struct Best {
    /// Index of the chosen node in its class.
    k: usize,
    own: f64,
    total: f64,
    below: BTreeMap<Id, f64>,
}

/// The extraction result.
#[derive(Clone, Debug)]
pub struct Extracted {
    /// The chosen DAG, rooted at its last node.
    pub expr: RecExpr<Node>,
    /// The class of each expression node.
    pub classes: Vec<Id>,
    /// Total cost, µs.
    pub cost: f64,
    /// The chosen node (its index in the class) of every class of the DAG.
    pub choice: BTreeMap<Id, usize>,
}

/// The cost of every e-node, µs, by (class, index in the class).
pub type NodeCosts = BTreeMap<(Id, usize), f64>;

/// Prices every e-node of `eg` with `model` (once, for both extractors).
pub fn node_costs(eg: &EG, model: &CostModel) -> NodeCosts {
    let mut own = NodeCosts::new();
    for c in eg.classes() {
        for (k, n) in c.nodes.iter().enumerate() {
            own.insert((c.id, k), node_cost(model, eg, c.id, n));
        }
    }
    own
}

/// Whether cost `a` is cheaper than `b` by more than rounding (relative 1e-9).
pub fn cheaper(a: f64, b: f64) -> bool {
    a < b - 1e-9 * b.abs().max(1.0)
}

/// Extracts the cheapest DAG computing `root` (a [`Node::Outputs`] class), with e-node costs
/// `own` ([`node_costs`]).
pub fn extract(eg: &EG, root: Id, own: &NodeCosts) -> Result<Extracted, String> {
    let mut classes: Vec<Id> = eg.classes().map(|c| c.id).collect();
    classes.sort();
    let mut parents: BTreeMap<Id, BTreeSet<Id>> = BTreeMap::new();
    for &c in &classes {
        for n in &eg[c].nodes {
            for ch in n.children() {
                parents.entry(eg.find(*ch)).or_default().insert(c);
            }
        }
    }
    let mut best: BTreeMap<Id, Best> = BTreeMap::new();
    let mut queue: VecDeque<Id> = classes.iter().copied().collect();
    let mut queued: BTreeSet<Id> = classes.iter().copied().collect();
    while let Some(c) = queue.pop_front() {
        queued.remove(&c);
        let mut improved = false;
        for (k, n) in eg[c].nodes.iter().enumerate() {
            let mut below: BTreeMap<Id, f64> = BTreeMap::new();
            let mut ok = true;
            for ch in n.children() {
                let ch = eg.find(*ch);
                match best.get(&ch) {
                    // Compile-time constants cost nothing and are left out of the sets.
                    Some(_) if eg[ch].data.konst => {}
                    Some(b) => {
                        below.insert(ch, b.own);
                        for (&id, &v) in &b.below {
                            below.insert(id, v);
                        }
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok || below.contains_key(&c) {
                continue;
            }
            let me = own[&(c, k)];
            let total = me + below.values().sum::<f64>();
            let better = best.get(&c).is_none_or(|b| cheaper(total, b.total));
            if better {
                best.insert(
                    c,
                    Best {
                        k,
                        own: me,
                        total,
                        below,
                    },
                );
                improved = true;
            }
        }
        if improved {
            if let Some(ps) = parents.get(&c) {
                for &p in ps {
                    if queued.insert(p) {
                        queue.push_back(p);
                    }
                }
            }
        }
    }
    let root = eg.find(root);
    let total = best
        .get(&root)
        .map(|b| b.total)
        .ok_or_else(|| "no finite extraction (every choice is cyclic)".to_string())?;
    let choice: BTreeMap<Id, usize> = best.iter().map(|(&c, b)| (c, b.k)).collect();
    let (expr, out_classes) = emit(eg, root, &choice)?;
    let choice = out_classes.iter().map(|c| (*c, choice[c])).collect();
    Ok(Extracted {
        expr,
        classes: out_classes,
        cost: total,
        choice,
    })
}

/// The DAG of the chosen node (index in its class) of every class below `root`, in dependency
/// order, with the class of each expression node.
fn emit(
    eg: &EG,
    root: Id,
    choice: &BTreeMap<Id, usize>,
) -> Result<(RecExpr<Node>, Vec<Id>), String> {
    let mut expr = RecExpr::default();
    let mut at: BTreeMap<Id, Id> = BTreeMap::new();
    let mut out_classes = Vec::new();
    let mut stack: Vec<(Id, bool)> = vec![(eg.find(root), false)];
    let mut steps = 0usize;
    while let Some((c, expanded)) = stack.pop() {
        steps += 1;
        if steps > 4 * eg.total_number_of_nodes() + 16 {
            return Err("the chosen nodes form a cycle".into());
        }
        if at.contains_key(&c) {
            continue;
        }
        let node = choice
            .get(&c)
            .map(|&k| &eg[c].nodes[k])
            .ok_or_else(|| format!("class {c} has no extraction"))?;
        if expanded {
            let node = node.clone().map_children(|ch| at[&eg.find(ch)]);
            at.insert(c, expr.add(node));
            out_classes.push(c);
        } else {
            stack.push((c, true));
            for ch in node.children().iter().rev() {
                let ch = eg.find(*ch);
                if !at.contains_key(&ch) {
                    stack.push((ch, false));
                }
            }
        }
    }
    Ok((expr, out_classes))
}

/// Budget of [`extract_ilp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IlpLimits {
    /// E-graphs with more e-nodes below the root are left to the greedy extractor.
    pub max_enodes: usize,
    /// Branch-and-bound nodes (deterministic, unlike a time limit).
    pub bb_nodes: u64,
}

impl Default for IlpLimits {
    fn default() -> Self {
        IlpLimits {
            max_enodes: 4000,
            bb_nodes: 200,
        }
    }
}

/// What [`extract_ilp`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct IlpOutcome {
    /// `optimal`, `nodelimit` (the best found within the budget), `timelimit` (discarded),
    /// `skipped: …` or `failed: …`.
    pub status: String,
    /// Wall time, ms.
    pub ms: f64,
}

/// The cheapest DAG computing `root` as a 0-1 integer program (see the module docs), warm-started
/// from `greedy` (the [`extract`] answer on the same e-graph). Returns the ILP's extraction, if
/// it found one, and what it did.
pub fn extract_ilp(
    eg: &EG,
    root: Id,
    own: &NodeCosts,
    greedy: &Extracted,
    limits: IlpLimits,
) -> (Option<Extracted>, IlpOutcome) {
    let t0 = Instant::now();
    let done = |ex: Option<Extracted>, status: String| {
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        (ex, IlpOutcome { status, ms })
    };
    let root = eg.find(root);
    // The classes below the root.
    let mut reach: BTreeSet<Id> = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(c) = todo.pop() {
        if !reach.insert(c) {
            continue;
        }
        for n in &eg[c].nodes {
            for ch in n.children() {
                let ch = eg.find(*ch);
                if !reach.contains(&ch) {
                    todo.push(ch);
                }
            }
        }
    }
    let enodes: usize = reach.iter().map(|&c| eg[c].nodes.len()).sum();
    if enodes > limits.max_enodes {
        let why = format!("skipped: {enodes} e-nodes > {}", limits.max_enodes);
        return done(None, why);
    }
    let n = reach.len() as f64;
    let mut p = Problem::new(OptimizationDirection::Minimize);
    // x[(c, k)]: node k of class c is chosen (absent: it is its own descendant's parent).
    let mut x: BTreeMap<(Id, usize), Variable> = BTreeMap::new();
    let mut t: BTreeMap<Id, Variable> = BTreeMap::new();
    for &c in &reach {
        t.insert(c, p.add_var(0.0, (0.0, n)));
        for (k, node) in eg[c].nodes.iter().enumerate() {
            if node.children().iter().any(|&ch| eg.find(ch) == c) {
                continue;
            }
            x.insert((c, k), p.add_binary_var(own[&(c, k)]));
        }
    }
    let vars_of = |c: Id| -> Vec<(Variable, f64)> {
        x.range((c, 0)..=(c, usize::MAX))
            .map(|(_, &v)| (v, 1.0))
            .collect()
    };
    p.add_constraint(vars_of(root).as_slice(), ComparisonOp::Eq, 1.0);
    for &c in &reach {
        let nodes = vars_of(c);
        if nodes.len() > 1 {
            p.add_constraint(nodes.as_slice(), ComparisonOp::Le, 1.0);
        }
        for (k, node) in eg[c].nodes.iter().enumerate() {
            let Some(&xv) = x.get(&(c, k)) else {
                continue;
            };
            let kids: BTreeSet<Id> = node.children().iter().map(|&ch| eg.find(ch)).collect();
            for ch in kids {
                // A chosen node's children are chosen ...
                let mut e = vars_of(ch);
                e.push((xv, -1.0));
                p.add_constraint(e.as_slice(), ComparisonOp::Ge, 0.0);
                // ... and come before it.
                let big = n + 1.0;
                p.add_constraint(
                    [(t[&c], 1.0), (t[&ch], -1.0), (xv, -big)].as_slice(),
                    ComparisonOp::Ge,
                    1.0 - big,
                );
            }
        }
    }
    // Warm start: the greedy DAG, ordered as emitted (topologically).
    let chosen: BTreeMap<Id, (usize, usize)> = greedy
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, (greedy.choice[c], i)))
        .collect();
    let mut hint: Vec<(Variable, f64)> = Vec::new();
    for (&(c, k), &v) in &x {
        let on = chosen.get(&c).is_some_and(|&(ck, _)| ck == k);
        hint.push((v, if on { 1.0 } else { 0.0 }));
    }
    for (&c, &v) in &t {
        hint.push((v, chosen.get(&c).map_or(0.0, |&(_, i)| i as f64)));
    }
    let mut options = SolveOptions::default();
    options.node_limit = Some(limits.bb_nodes);
    // A safety net only (the node budget ends every solve of the shared models in well under
    // a second): an answer cut by wall time is discarded below for the greedy one, so wall time
    // can change the artifact only for a solve that straddles the limit.
    options.time_limit = Some(std::time::Duration::from_secs(2));
    options.warm_start = Some(hint);
    // The solver is third-party code: a panic in it costs the ILP answer, not the compile.
    let solved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.solve_with(options)));
    let outcome = match solved {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return done(None, format!("failed: {e}")),
        Err(_) => return done(None, "failed: the solver panicked".into()),
    };
    let status = if outcome.is_optimal() {
        "optimal".to_string()
    } else {
        format!("{:?}", outcome.termination_reason()).to_lowercase()
    };
    if outcome.termination_reason() == microlp::TerminationReason::TimeLimit {
        return done(None, status);
    }
    let Some(sol) = outcome.solution() else {
        return done(None, status);
    };
    let choice: BTreeMap<Id, usize> = x
        .iter()
        .filter(|&(_, &v)| sol.var_value(v) > 0.5)
        .map(|(&(c, k), _)| (c, k))
        .collect();
    let (expr, classes) = match emit(eg, root, &choice) {
        Ok(e) => e,
        Err(e) => return done(None, format!("failed: {e}")),
    };
    // The cost and choice of what is emitted (a chosen node nothing uses is not paid).
    let choice: BTreeMap<Id, usize> = classes.iter().map(|c| (*c, choice[c])).collect();
    let cost = choice.iter().map(|(&c, &k)| own[&(c, k)]).sum();
    let ex = Extracted {
        expr,
        classes,
        cost,
        choice,
    };
    done(Some(ex), status)
}
