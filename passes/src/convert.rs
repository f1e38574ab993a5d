//! Conversion between the graph IR and the e-graph language, both ways, through
//! [`egg::RecExpr`]: a graph becomes one `RecExpr` rooted at [`Node::Outputs`] (weights and
//! folded values as [`Node::Weight`] leaves into the side table), and an extracted `RecExpr`
//! becomes a graph again, keeping the input, output and (where the value survives) the
//! intermediate names of the original.

use crate::PassError;
use crate::lang::{Meta, Node};
use egg::{Id, RecExpr};
use optc_ir::{Graph, Tensor, ValueId};
use std::collections::{BTreeMap, BTreeSet};

/// A graph as a `RecExpr`, with what the way back needs.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The expression; its last node is [`Node::Outputs`].
    pub expr: RecExpr<Node>,
    /// Side tables: interned ops, weights, input types.
    pub meta: Meta,
    /// Names of values, by expression index.
    pub names: BTreeMap<usize, String>,
    /// Input names, in order.
    pub input_names: Vec<String>,
    /// Output names, in order.
    pub output_names: Vec<String>,
}

/// Converts `g` (with `known`: values computed at compile time, treated as weights) to a
/// `RecExpr`.
pub fn import(g: &Graph, known: &BTreeMap<ValueId, Tensor>) -> Result<Imported, PassError> {
    let mut meta = Meta::default();
    let mut expr: RecExpr<Node> = RecExpr::default();
    let mut of: BTreeMap<ValueId, Id> = BTreeMap::new();
    let mut names = BTreeMap::new();
    let mut input_names = Vec::new();
    for &v in g.inputs() {
        if g.value_of(v).is_some() || known.contains_key(&v) {
            continue;
        }
        meta.inputs.push(g.ty(v).clone());
        let id = expr.add(Node::Input(meta.inputs.len() as u32 - 1));
        of.insert(v, id);
        names.insert(usize::from(id), g.value(v).name.clone());
        input_names.push(g.value(v).name.clone());
    }
    let absent = expr.add(Node::Absent);
    let order = g
        .topo_order()
        .ok_or_else(|| PassError::Graph("the graph has a cycle".into()))?;
    let arg = |v: ValueId,
               expr: &mut RecExpr<Node>,
               meta: &mut Meta,
               of: &mut BTreeMap<ValueId, Id>|
     -> Result<Id, PassError> {
        if let Some(&id) = of.get(&v) {
            return Ok(id);
        }
        let t = g.value_of(v).or_else(|| known.get(&v)).ok_or_else(|| {
            PassError::Graph(format!(
                "value '{}' is used before it is defined",
                g.value(v).name
            ))
        })?;
        let k = meta.add_weight(Some(g.value(v).name.clone()), t.clone());
        let id = expr.add(Node::Weight(k));
        of.insert(v, id);
        Ok(id)
    };
    for n in order {
        let node = g.node(n);
        let outs_known = node
            .outputs
            .iter()
            .flatten()
            .all(|v| g.value_of(*v).is_some() || known.contains_key(v));
        if outs_known {
            continue;
        }
        let mut args = Vec::with_capacity(node.inputs.len());
        for v in &node.inputs {
            args.push(match v {
                None => absent,
                Some(v) => arg(*v, &mut expr, &mut meta, &mut of)?,
            });
        }
        let op = meta.ops.intern(node.op.clone());
        let nout = node.outputs.len() as u32;
        for (slot, o) in node.outputs.iter().enumerate() {
            if let Some(o) = o {
                let id = expr.add(Node::Op {
                    op,
                    slot: slot as u32,
                    nout,
                    args: args.clone(),
                });
                of.insert(*o, id);
                names.insert(usize::from(id), g.value(*o).name.clone());
            }
        }
    }
    let mut outs = Vec::new();
    let mut output_names = Vec::new();
    for &v in g.outputs() {
        outs.push(arg(v, &mut expr, &mut meta, &mut of)?);
        output_names.push(g.value(v).name.clone());
    }
    expr.add(Node::Outputs(outs));
    Ok(Imported {
        expr,
        meta,
        names,
        input_names,
        output_names,
    })
}

/// Converts an extracted `RecExpr` (rooted at [`Node::Outputs`]) back to a graph. `names`
/// gives preferred value names by expression index.
pub fn export(
    expr: &RecExpr<Node>,
    meta: &Meta,
    names: &BTreeMap<usize, String>,
    input_names: &[String],
    output_names: &[String],
) -> Result<Graph, PassError> {
    let nodes = expr.as_ref();
    let Some(Node::Outputs(outs)) = nodes.last() else {
        return Err(PassError::Internal(
            "extracted expression has no outputs root".into(),
        ));
    };
    let gerr = |e: optc_ir::GraphError| PassError::Internal(format!("rebuilding the graph: {e}"));
    let mut g = Graph::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let unique = |want: &str, used: &mut BTreeSet<String>| -> String {
        let mut name = want.to_string();
        let mut k = 1;
        while used.contains(&name) {
            name = format!("{want}_{k}");
            k += 1;
        }
        used.insert(name.clone());
        name
    };
    // Output names are reserved for the values that first carry them.
    let mut out_name_of: BTreeMap<usize, String> = BTreeMap::new();
    for (j, o) in outs.iter().enumerate() {
        let i = usize::from(*o);
        if matches!(nodes[i], Node::Op { .. }) && !out_name_of.contains_key(&i) {
            out_name_of.insert(i, output_names[j].clone());
            used.insert(output_names[j].clone());
        }
    }
    for n in input_names {
        used.insert(n.clone());
    }
    // Which slots of each (op, nout, args) node are used.
    // (op, nout, args) -> [(slot, expression index)]
    type Users = Vec<(u32, usize)>;
    let mut slots: BTreeMap<(u32, u32, Vec<Id>), Users> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Node::Op {
            op,
            slot,
            nout,
            args,
        } = n
        {
            slots
                .entry((op.0, *nout, args.clone()))
                .or_default()
                .push((*slot, i));
        }
    }
    let mut val: Vec<Option<ValueId>> = vec![None; nodes.len()];
    let mut input_vals = Vec::new();
    for (k, name) in input_names.iter().enumerate() {
        let ty = meta
            .inputs
            .get(k)
            .ok_or_else(|| PassError::Internal(format!("input {k} has no type")))?;
        input_vals.push(g.add_input(name.clone(), ty.clone()).map_err(gerr)?);
    }
    let mut weight_vals: BTreeMap<u32, ValueId> = BTreeMap::new();
    let mut node_count = 0usize;
    for (i, n) in nodes.iter().enumerate() {
        match n {
            Node::Input(k) => {
                val[i] = Some(
                    *input_vals
                        .get(*k as usize)
                        .ok_or_else(|| PassError::Internal(format!("input {k} out of range")))?,
                );
            }
            Node::Weight(k) => {
                let v = match weight_vals.get(k) {
                    Some(v) => *v,
                    None => {
                        let name = unique(&meta.weight_names[*k as usize], &mut used);
                        let v = g
                            .add_const(name, meta.weights[*k as usize].clone())
                            .map_err(gerr)?;
                        weight_vals.insert(*k, v);
                        v
                    }
                };
                val[i] = Some(v);
            }
            Node::Absent | Node::Outputs(_) => {}
            Node::Op {
                op,
                nout,
                args,
                slot: _,
            } => {
                if val[i].is_some() {
                    continue;
                }
                let key = (op.0, *nout, args.clone());
                let users = slots.get(&key).cloned().unwrap_or_default();
                let inputs: Vec<Option<ValueId>> =
                    args.iter().map(|a| val[usize::from(*a)]).collect();
                let ir_op = meta.ops.get(*op).clone();
                let mut outputs: Vec<Option<String>> = vec![None; *nout as usize];
                for &(s, idx) in &users {
                    if outputs[s as usize].is_none() {
                        let name = match out_name_of.get(&idx) {
                            Some(n) => n.clone(),
                            None => unique(
                                names.get(&idx).map(String::as_str).unwrap_or(&format!(
                                    "{}_{idx}",
                                    ir_op.name().to_ascii_lowercase()
                                )),
                                &mut used,
                            ),
                        };
                        outputs[s as usize] = Some(name);
                    }
                }
                // Output 0 always exists (templates and the IR treat it as the main result).
                if outputs[0].is_none() {
                    let n = format!("{}_{i}_out0", ir_op.name().to_ascii_lowercase());
                    outputs[0] = Some(unique(&n, &mut used));
                }
                let (_, ov) = g
                    .add_node(format!("opt{node_count}"), ir_op, inputs, outputs)
                    .map_err(gerr)?;
                node_count += 1;
                for &(s, idx) in &users {
                    val[idx] = ov[s as usize];
                }
            }
        }
    }
    let mut outputs = Vec::new();
    for (j, o) in outs.iter().enumerate() {
        let i = usize::from(*o);
        let v = val[i].ok_or_else(|| PassError::Internal(format!("output {j} has no value")))?;
        if g.value(v).name == output_names[j] {
            outputs.push(v);
        } else {
            // The output became another output's value, an input or a weight: copy it.
            let name = unique(&output_names[j], &mut used);
            let (_, ov) = g
                .add_node(
                    format!("opt{node_count}"),
                    optc_ir::Op::Identity,
                    vec![Some(v)],
                    vec![Some(name)],
                )
                .map_err(gerr)?;
            node_count += 1;
            outputs.push(ov[0].expect("named output"));
        }
    }
    g.set_outputs(outputs);
    Ok(g)
}
