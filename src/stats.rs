//! Static statistics of a graph for `optc inspect`: op histogram, parameter count, FLOPs.

use optc_ir::ops::Op;
use optc_ir::{Graph, NodeId};
use std::collections::BTreeMap;

/// Counts of each op type (ONNX names), subgraphs included.
pub fn op_histogram(g: &Graph) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    fn walk(g: &Graph, m: &mut BTreeMap<String, usize>) {
        for n in g.node_ids() {
            let op = &g.node(n).op;
            *m.entry(op.name().to_string()).or_insert(0) += 1;
            for sg in op.subgraphs() {
                walk(sg, m);
            }
        }
    }
    walk(g, &mut m);
    m
}

/// Elements held in constants (weights).
pub fn params(g: &Graph) -> usize {
    g.consts().values().map(|t| t.numel()).sum()
}

/// Bytes held in constants.
pub fn param_bytes(g: &Graph) -> usize {
    g.consts().values().map(|t| t.bytes().len()).sum()
}

fn numel(g: &Graph, v: Option<optc_ir::ValueId>) -> Option<u64> {
    let s = g.ty(v?).shape.as_static()?;
    Some(s.iter().map(|&d| d as u64).product())
}

/// Floating-point operations of one node (a multiply-add counts 2); elementwise and data
/// movement ops count one per output element; `None` when shapes are not static.
pub fn node_flops(g: &Graph, n: NodeId) -> Option<u64> {
    let node = g.node(n);
    let out = numel(g, node.outputs.first().copied().flatten())?;
    let input_dims = |i: usize| -> Option<Vec<usize>> {
        g.ty(node.inputs.get(i).copied().flatten()?)
            .shape
            .as_static()
    };
    Some(match &node.op {
        Op::Conv(c) => {
            let w = input_dims(1)?;
            let per_out: u64 = w[1..].iter().map(|&d| d as u64).product();
            let _ = c;
            2 * out * per_out
        }
        Op::ConvTranspose { .. } => {
            let (x, w) = (input_dims(0)?, input_dims(1)?);
            let in_elems: u64 = x.iter().map(|&d| d as u64).product();
            2 * in_elems * w[1..].iter().map(|&d| d as u64).product::<u64>()
        }
        Op::MatMul | Op::MatMulInteger => {
            let a = input_dims(0)?;
            2 * out * (*a.last()? as u64)
        }
        Op::Gemm { trans_a, .. } => {
            let a = input_dims(0)?;
            let k = if *trans_a { a[0] } else { *a.get(1)? };
            2 * out * k as u64
        }
        _ => out,
    })
}

/// Total FLOPs of the graph (nodes with unknown shapes count 0).
pub fn flops(g: &Graph) -> u64 {
    g.node_ids().filter_map(|n| node_flops(g, n)).sum()
}
