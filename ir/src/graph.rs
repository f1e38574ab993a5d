//! The graph IR: operator nodes over typed tensor values, held in a petgraph `StableGraph`
//! behind typed ids.
//!
//! Invariants (checked by [`crate::verify`]):
//! - every value is a graph input, a constant, or the output of exactly one node;
//! - a node's inputs exist when it is added, so the graph is acyclic by construction;
//! - every value has a [`TensorType`] inferred from its producer (see [`crate::infer`]);
//! - petgraph edges mirror the def-use relation (one edge per node input, producer → consumer).
//!
//! Constants (initializers, Constant nodes) live in a side table, never as nodes. Values whose
//! contents are known at build time because all their producer's inputs are known (typically
//! `Shape → Gather → Concat` chains) are recorded in a second table, `known`, so that shape
//! inference of `Reshape`, `Expand` and friends sees them; their nodes stay in the graph.

use crate::ops::Op;
use crate::tensor::Tensor;
use crate::types::TensorType;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use std::collections::BTreeMap;
use std::fmt;

/// A node of a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(NodeIndex<u32>);

impl NodeId {
    /// The index as a number (stable across removals of other nodes).
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0.index())
    }
}

/// A tensor value of a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(u32);

impl ValueId {
    /// The index as a number.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What is known about a value.
#[derive(Clone, Debug)]
pub struct ValueData {
    /// The name in the source model (unique within the graph).
    pub name: String,
    /// Dtype and shape.
    pub ty: TensorType,
    /// The node and output slot that produce it; `None` for inputs and constants.
    pub producer: Option<(NodeId, usize)>,
}

/// An operator node.
#[derive(Clone, Debug)]
pub struct Node {
    /// The node's name in the source model (may be empty).
    pub name: String,
    /// The operator.
    pub op: Op,
    /// Inputs; `None` is an absent optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Outputs; `None` is an optional output the model does not use.
    pub outputs: Vec<Option<ValueId>>,
}

/// Errors building a graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Shape or dtype inference rejected the node.
    #[error("node '{node}' ({op}): {source}")]
    Infer {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// Why.
        #[source]
        source: crate::infer::InferError,
    },
    /// A value id does not belong to this graph.
    #[error("node '{node}' ({op}): input {index} is not a value of this graph")]
    DanglingInput {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// Input position.
        index: usize,
    },
    /// Two values with one name.
    #[error("value '{0}' is defined twice")]
    DuplicateName(String),
}

/// A dataflow graph of operator nodes.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, ValueId>,
    values: Vec<ValueData>,
    by_name: BTreeMap<String, ValueId>,
    inputs: Vec<ValueId>,
    outputs: Vec<ValueId>,
    consts: BTreeMap<ValueId, Tensor>,
    known: BTreeMap<ValueId, Tensor>,
}

/// The largest known value (in elements) that [`Graph::add_node`] evaluates at build time.
pub const MAX_KNOWN_ELEMENTS: usize = 1 << 16;

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    fn new_value(&mut self, name: String, ty: TensorType) -> Result<ValueId, GraphError> {
        if self.by_name.contains_key(&name) {
            return Err(GraphError::DuplicateName(name));
        }
        let id = ValueId(self.values.len() as u32);
        self.by_name.insert(name.clone(), id);
        self.values.push(ValueData {
            name,
            ty,
            producer: None,
        });
        Ok(id)
    }

    /// Adds a graph input.
    pub fn add_input(
        &mut self,
        name: impl Into<String>,
        ty: TensorType,
    ) -> Result<ValueId, GraphError> {
        let id = self.new_value(name.into(), ty)?;
        self.inputs.push(id);
        Ok(id)
    }

    /// Adds a constant (an initializer or a Constant node's value).
    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> Result<ValueId, GraphError> {
        let ty = TensorType::fixed(t.dtype(), t.shape());
        let id = self.new_value(name.into(), ty)?;
        self.consts.insert(id, t);
        Ok(id)
    }

    /// Adds a node after inferring its output types. `outputs` names each output slot;
    /// `None` for an optional output that is not used. Returns the node and its output values.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<Option<ValueId>>,
        outputs: Vec<Option<String>>,
    ) -> Result<(NodeId, Vec<Option<ValueId>>), GraphError> {
        let name = name.into();
        for (index, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                if v.index() >= self.values.len() {
                    return Err(GraphError::DanglingInput {
                        node: name,
                        op: op.name(),
                        index,
                    });
                }
            }
        }
        let types = {
            let infer_inputs: Vec<Option<crate::infer::InferInput<'_>>> = inputs
                .iter()
                .map(|v| {
                    v.map(|v| crate::infer::InferInput {
                        ty: &self.values[v.index()].ty,
                        value: self.value_of(v),
                    })
                })
                .collect();
            crate::infer::infer(&op, &infer_inputs, outputs.len()).map_err(|source| {
                GraphError::Infer {
                    node: name.clone(),
                    op: op.name(),
                    source,
                }
            })?
        };
        // Evaluate small nodes whose inputs are all known (shape arithmetic).
        let known = self.try_evaluate(&op, &inputs, &types);
        let mut out_ids = Vec::with_capacity(outputs.len());
        for (slot, (oname, ty)) in outputs.into_iter().zip(types).enumerate() {
            match oname {
                Some(n) => {
                    let id = self.new_value(n, ty)?;
                    out_ids.push(Some(id));
                    if let Some(k) = known.as_ref().and_then(|k| k.get(slot)) {
                        self.known.insert(id, k.clone());
                    }
                }
                None => out_ids.push(None),
            }
        }
        let node = Node {
            name,
            op,
            inputs: inputs.clone(),
            outputs: out_ids.clone(),
        };
        let nid = NodeId(self.g.add_node(node));
        for (slot, o) in out_ids.iter().enumerate() {
            if let Some(o) = o {
                self.values[o.index()].producer = Some((nid, slot));
            }
        }
        for v in inputs.into_iter().flatten() {
            if let Some((p, _)) = self.values[v.index()].producer {
                self.g.add_edge(p.0, nid.0, v);
            }
        }
        Ok((nid, out_ids))
    }

    fn try_evaluate(
        &self,
        op: &Op,
        inputs: &[Option<ValueId>],
        types: &[TensorType],
    ) -> Option<Vec<Tensor>> {
        if matches!(op, Op::If { .. }) {
            return None;
        }
        let small = types.iter().all(|t| {
            t.shape
                .as_static()
                .is_some_and(|s| s.iter().product::<usize>() <= MAX_KNOWN_ELEMENTS)
        });
        if !small {
            return None;
        }
        if let (Op::Shape { start, end }, [Some(x)]) = (op, inputs) {
            let dims = self.values[x.index()].ty.shape.as_static()?;
            let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
            let r = dims.len() as i64;
            let clamp = |i: i64| (if i < 0 { i + r } else { i }).clamp(0, r) as usize;
            let (s, e) = (clamp(*start), clamp(end.unwrap_or(r)));
            let v = dims[s..e.max(s)].to_vec();
            return Tensor::from_vec(vec![v.len()], v).ok().map(|t| vec![t]);
        }
        if let (Op::Size, [Some(x)]) = (op, inputs) {
            let dims = self.values[x.index()].ty.shape.as_static()?;
            return Some(vec![Tensor::scalar(dims.iter().product::<usize>() as i64)]);
        }
        let vals: Option<Vec<Option<Tensor>>> = inputs
            .iter()
            .map(|v| match v {
                None => Some(None),
                Some(v) => self.value_of(*v).map(|t| Some(t.clone())),
            })
            .collect();
        let vals = vals?;
        if vals
            .iter()
            .flatten()
            .any(|t| t.numel() > MAX_KNOWN_ELEMENTS)
        {
            return None;
        }
        crate::interp::eval_op(op, &vals, types.len()).ok()
    }

    /// The contents of a value when known at build time (a constant or a folded value).
    pub fn value_of(&self, v: ValueId) -> Option<&Tensor> {
        self.consts.get(&v).or_else(|| self.known.get(&v))
    }

    /// Marks the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<ValueId>) {
        self.outputs = outputs;
    }

    /// Graph inputs, in order.
    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    /// The constants (initializers and Constant nodes).
    pub fn consts(&self) -> &BTreeMap<ValueId, Tensor> {
        &self.consts
    }

    /// The constant tensor of `v`, if `v` is a constant.
    pub fn const_value(&self, v: ValueId) -> Option<&Tensor> {
        self.consts.get(&v)
    }

    /// A value's data.
    pub fn value(&self, v: ValueId) -> &ValueData {
        &self.values[v.index()]
    }

    /// The type of a value.
    pub fn ty(&self, v: ValueId) -> &TensorType {
        &self.values[v.index()].ty
    }

    /// Looks a value up by name.
    pub fn value_by_name(&self, name: &str) -> Option<ValueId> {
        self.by_name.get(name).copied()
    }

    /// Every value id, in creation order.
    pub fn value_ids(&self) -> impl Iterator<Item = ValueId> + '_ {
        (0..self.values.len() as u32).map(ValueId)
    }

    /// Number of values.
    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// A node.
    pub fn node(&self, n: NodeId) -> &Node {
        &self.g[n.0]
    }

    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.g.node_count()
    }

    /// Node ids in insertion order (which is a topological order for graphs built through
    /// [`Graph::add_node`]).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices().map(NodeId)
    }

    /// Nodes in a topological order (insertion order where possible); `None` on a cycle.
    pub fn topo_order(&self) -> Option<Vec<NodeId>> {
        petgraph::algo::toposort(&self.g, None)
            .ok()
            .map(|v| v.into_iter().map(NodeId).collect())
    }

    /// The nodes that read `v`, with the input position, in node order.
    pub fn consumers(&self, v: ValueId) -> Vec<(NodeId, usize)> {
        let mut out = Vec::new();
        match self.values[v.index()].producer {
            Some((p, _)) => {
                for e in self.g.edges(p.0) {
                    if *e.weight() == v {
                        let n = NodeId(e.target());
                        for (i, x) in self.g[e.target()].inputs.iter().enumerate() {
                            if *x == Some(v) && !out.contains(&(n, i)) {
                                out.push((n, i));
                            }
                        }
                    }
                }
            }
            None => {
                for n in self.g.node_indices() {
                    for (i, x) in self.g[n].inputs.iter().enumerate() {
                        if *x == Some(v) {
                            out.push((NodeId(n), i));
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Producer → consumer edges as `(from, to, value)`, for the verifier.
    pub fn edges(&self) -> Vec<(NodeId, NodeId, ValueId)> {
        self.g
            .edge_references()
            .map(|e| (NodeId(e.source()), NodeId(e.target()), *e.weight()))
            .collect()
    }
}

impl PartialEq for Graph {
    /// Structural equality through the deterministic text form (used for `If` branches).
    fn eq(&self, other: &Graph) -> bool {
        crate::print::print(self, "g") == crate::print::print(other, "g")
    }
}
