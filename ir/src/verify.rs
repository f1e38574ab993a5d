//! The verifier: checks the graph invariants listed in [`crate::graph`].
//!
//! A verifier failure on a graph produced by the importer or a pass is an optc bug; a bad model
//! is rejected by the importer before a graph exists.

use crate::graph::{Graph, NodeId, ValueId};
use crate::infer::{InferInput, infer};
use std::collections::BTreeSet;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct VerifierError {
    /// Where (`node n3 'conv1'`, `value %4 'x'`, `graph`).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// Checks `g` (and its subgraphs); returns every problem found.
pub fn verify(g: &Graph) -> Result<(), Vec<VerifierError>> {
    let mut errs = Vec::new();
    let node_loc = |n: NodeId| format!("node {n} '{}'", g.node(n).name);
    let val_loc = |v: ValueId| format!("value {v} '{}'", g.value(v).name);
    let Some(order) = g.topo_order() else {
        return Err(vec![VerifierError {
            location: "graph".into(),
            message: "cycle".into(),
        }]);
    };
    let mut defined: BTreeSet<ValueId> = g.inputs().iter().copied().collect();
    defined.extend(g.consts().keys().copied());
    for &v in g.inputs() {
        if g.value(v).producer.is_some() || g.const_value(v).is_some() {
            errs.push(VerifierError {
                location: val_loc(v),
                message: "graph input has a producer or a constant value".into(),
            });
        }
    }
    let mut edges = 0usize;
    for &n in &order {
        let node = g.node(n);
        for (i, v) in node.inputs.iter().enumerate() {
            let Some(v) = v else { continue };
            if v.index() >= g.num_values() {
                errs.push(VerifierError {
                    location: node_loc(n),
                    message: format!("input {i} is not a value"),
                });
                continue;
            }
            if !defined.contains(v) {
                errs.push(VerifierError {
                    location: node_loc(n),
                    message: format!("input {i} ({v}) is used before it is defined"),
                });
            }
            if g.value(*v).producer.is_some() {
                edges += 1;
            }
        }
        for (slot, v) in node.outputs.iter().enumerate() {
            let Some(v) = v else { continue };
            if g.value(*v).producer != Some((n, slot)) {
                errs.push(VerifierError {
                    location: val_loc(*v),
                    message: format!("producer is not {n} slot {slot}"),
                });
            }
            if !defined.insert(*v) {
                errs.push(VerifierError {
                    location: val_loc(*v),
                    message: "defined twice".into(),
                });
            }
        }
        // Types must be what inference says.
        let inputs: Vec<Option<InferInput<'_>>> = node
            .inputs
            .iter()
            .map(|v| {
                v.filter(|v| v.index() < g.num_values())
                    .map(|v| InferInput {
                        ty: g.ty(v),
                        value: g.value_of(v),
                    })
            })
            .collect();
        match infer(&node.op, &inputs, node.outputs.len()) {
            Ok(types) => {
                for (v, t) in node.outputs.iter().zip(types) {
                    if let Some(v) = v {
                        if *g.ty(*v) != t {
                            errs.push(VerifierError {
                                location: val_loc(*v),
                                message: format!("type {} but inference gives {t}", g.ty(*v)),
                            });
                        }
                    }
                }
            }
            Err(e) => errs.push(VerifierError {
                location: node_loc(n),
                message: format!("inference fails: {e}"),
            }),
        }
        for sub in node.op.subgraphs() {
            if let Err(mut e) = verify(sub) {
                for x in &mut e {
                    x.location = format!("{} / {}", node_loc(n), x.location);
                }
                errs.extend(e);
            }
        }
    }
    if edges != g.edges().len() {
        errs.push(VerifierError {
            location: "graph".into(),
            message: format!("{} edges for {edges} node-to-node uses", g.edges().len()),
        });
    }
    for &v in g.outputs() {
        if !defined.contains(&v) {
            errs.push(VerifierError {
                location: val_loc(v),
                message: "graph output is never defined".into(),
            });
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}
