//! A deterministic text form of a graph, for `optc inspect --stage import` and snapshot tests.
//!
//! ```text
//! graph main(%0 "input": f32[1x3x224x224]) {
//!   %1 "w": f32[64x3x7x7] = const
//!   %3 "y": f32[1x64x112x112] = Conv(%0, %1, %2) {window: .., group: 1}  # conv1
//!   return %3
//! }
//! ```

use crate::graph::{Graph, ValueId};
use crate::ops::Op;
use std::fmt::Write;

/// Prints `g` (and its subgraphs, indented).
pub fn print(g: &Graph, name: &str) -> String {
    let mut s = String::new();
    print_into(&mut s, g, name, 0);
    s
}

fn val(g: &Graph, v: ValueId) -> String {
    format!("{v} \"{}\": {}", g.value(v).name, g.ty(v))
}

fn attrs(op: &Op) -> String {
    // The Debug form of the variant's payload, without the variant name already printed.
    let d = format!("{op:?}");
    match d.find(['(', '{']) {
        Some(i) => {
            let body = d[i..].trim();
            let inner = &body[1..body.len() - 1];
            format!(" {{{}}}", inner.trim())
        }
        None => String::new(),
    }
}

fn print_into(s: &mut String, g: &Graph, name: &str, depth: usize) {
    let pad = "  ".repeat(depth);
    let ins: Vec<String> = g.inputs().iter().map(|&v| val(g, v)).collect();
    let _ = writeln!(s, "{pad}graph {name}({}) {{", ins.join(", "));
    for (&v, t) in g.consts() {
        let _ = writeln!(
            s,
            "{pad}  {} = const{}",
            val(g, v),
            if t.is_mapped() { " (mapped)" } else { "" }
        );
    }
    let order = g.topo_order().unwrap_or_else(|| g.node_ids().collect());
    for n in order {
        let node = g.node(n);
        let outs: Vec<String> = node
            .outputs
            .iter()
            .map(|o| o.map_or_else(|| "_".to_string(), |v| val(g, v)))
            .collect();
        let args: Vec<String> = node
            .inputs
            .iter()
            .map(|i| i.map_or_else(|| "_".to_string(), |v| v.to_string()))
            .collect();
        let attr = if matches!(node.op, Op::If { .. }) {
            String::new()
        } else {
            attrs(&node.op)
        };
        let _ = write!(
            s,
            "{pad}  {} = {}({}){attr}",
            outs.join(", "),
            node.op.name(),
            args.join(", ")
        );
        if !node.name.is_empty() {
            let _ = write!(s, "  # {}", node.name);
        }
        s.push('\n');
        if let Op::If {
            then_branch,
            else_branch,
        } = &node.op
        {
            print_into(s, then_branch, "then", depth + 2);
            print_into(s, else_branch, "else", depth + 2);
        }
    }
    let outs: Vec<String> = g.outputs().iter().map(|v| v.to_string()).collect();
    let _ = writeln!(s, "{pad}  return {}", outs.join(", "));
    let _ = writeln!(s, "{pad}}}");
}
