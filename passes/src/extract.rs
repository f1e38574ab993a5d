//! Greedy DAG extraction: every class gets the e-node whose *DAG* cost — its own cost plus the
//! costs of the distinct classes below it, each counted once however often it is shared — is
//! least. Unlike egg's tree-cost `Extractor`, this charges a shared intermediate once, and a
//! fused kernel that recomputes an intermediate another consumer also needs pays for both.
//!
//! The fixpoint runs over a worklist in class-id order (deterministic). A node whose own class
//! appears below it is a cycle and is never chosen.

use crate::cost::{CostModel, node_cost};
use crate::lang::{EG, Node};
use egg::{Id, Language, RecExpr};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

struct Best {
    node: Node,
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
}

/// Extracts the cheapest DAG computing `root` (a [`Node::Outputs`] class).
pub fn extract(eg: &EG, root: Id, model: &CostModel) -> Result<Extracted, String> {
    let mut classes: Vec<Id> = eg.classes().map(|c| c.id).collect();
    classes.sort();
    let mut parents: BTreeMap<Id, BTreeSet<Id>> = BTreeMap::new();
    let mut own: BTreeMap<(Id, usize), f64> = BTreeMap::new();
    for &c in &classes {
        for (k, n) in eg[c].nodes.iter().enumerate() {
            for ch in n.children() {
                parents.entry(eg.find(*ch)).or_default().insert(c);
            }
            own.insert((c, k), node_cost(model, eg, c, n));
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
            let better = match best.get(&c) {
                None => true,
                Some(b) => total < b.total - 1e-9 * b.total.abs().max(1.0),
            };
            if better {
                best.insert(
                    c,
                    Best {
                        node: n.clone(),
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
    // Emit the chosen DAG in dependency order.
    let mut expr = RecExpr::default();
    let mut at: BTreeMap<Id, Id> = BTreeMap::new();
    let mut out_classes = Vec::new();
    let mut stack: Vec<(Id, bool)> = vec![(root, false)];
    let mut steps = 0usize;
    while let Some((c, expanded)) = stack.pop() {
        steps += 1;
        if steps > 4 * eg.total_number_of_nodes() + 16 {
            return Err("the chosen nodes form a cycle".into());
        }
        if at.contains_key(&c) {
            continue;
        }
        let b = best
            .get(&c)
            .ok_or_else(|| format!("class {c} has no extraction"))?;
        if expanded {
            let node = b.node.clone().map_children(|ch| at[&eg.find(ch)]);
            at.insert(c, expr.add(node));
            out_classes.push(c);
        } else {
            stack.push((c, true));
            for ch in b.node.children().iter().rev() {
                let ch = eg.find(*ch);
                if !at.contains_key(&ch) {
                    stack.push((ch, false));
                }
            }
        }
    }
    Ok(Extracted {
        expr,
        classes: out_classes,
        cost: total,
    })
}
