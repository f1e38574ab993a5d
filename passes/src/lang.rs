//! The e-graph language and its analysis.
//!
//! One e-class is one tensor value. E-nodes are leaves ([`Node::Input`], [`Node::Weight`],
//! [`Node::Absent`] for missing optional inputs) or an IR op applied to classes
//! ([`Node::Op`]). Ops — with all their attributes, and the fused kernels the fusion rules
//! build — are interned in an [`OpTable`] and referred to by [`OpId`], so the language mirrors
//! the IR's closed op set without restating it. A multi-output op appears as one e-node per
//! used output slot (`slot` of `nout`); the graph rebuild merges e-nodes with equal op and
//! arguments back into one IR node.
//!
//! Weights stay in a side table ([`Meta::weights`]): the e-graph holds only their indices.
//!
//! The analysis ([`Meta`] / [`ClassData`]) carries each class's type (dtype and static shape,
//! inferred by the IR's own inference) and constness (computable at compile time, so free at
//! run time). Merging two classes of different types is an optimizer bug: it is recorded in
//! [`Meta::conflicts`] and every stage fails with it.

use egg::{Analysis, DidMerge, EGraph, Id, Language};
use optc_ir::infer::InferInput;
use optc_ir::{Op, Tensor, TensorType};
use std::collections::BTreeMap;

/// An interned op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u32);

/// An e-node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// Graph input `k`.
    Input(u32),
    /// Weight `k` of the side table.
    Weight(u32),
    /// An absent optional input.
    Absent,
    /// Output `slot` (of `nout` output slots) of `op` applied to `args`.
    Op {
        /// The op.
        op: OpId,
        /// Output slot.
        slot: u32,
        /// Output slots the op is built with.
        nout: u32,
        /// Arguments (absent optional inputs are the [`Node::Absent`] class).
        args: Vec<Id>,
    },
    /// The graph's outputs (the root of a whole-graph `RecExpr`).
    Outputs(Vec<Id>),
}

impl Language for Node {
    type Discriminant = (u8, Option<(OpId, u32, u32)>, usize);

    fn discriminant(&self) -> Self::Discriminant {
        match self {
            Node::Input(k) => (0, Some((OpId(*k), 0, 0)), 0),
            Node::Weight(k) => (1, Some((OpId(*k), 0, 0)), 0),
            Node::Absent => (2, None, 0),
            Node::Op {
                op,
                slot,
                nout,
                args,
            } => (3, Some((*op, *slot, *nout)), args.len()),
            Node::Outputs(a) => (4, None, a.len()),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant()
    }

    fn children(&self) -> &[Id] {
        match self {
            Node::Op { args, .. } | Node::Outputs(args) => args,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Node::Op { args, .. } | Node::Outputs(args) => args,
            _ => &mut [],
        }
    }
}

/// Interned ops: equal ops (by their full Debug form, attributes included) get one id, in
/// first-seen order, so ids are deterministic.
#[derive(Clone, Debug, Default)]
pub struct OpTable {
    ops: Vec<Op>,
    index: BTreeMap<String, OpId>,
}

impl OpTable {
    /// The id of `op`, interning it.
    pub fn intern(&mut self, op: Op) -> OpId {
        let key = format!("{op:?}");
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let id = OpId(self.ops.len() as u32);
        self.ops.push(op);
        self.index.insert(key, id);
        id
    }

    /// The op of `id`.
    pub fn get(&self, id: OpId) -> &Op {
        &self.ops[id.0 as usize]
    }
}

/// What the analysis knows of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassData {
    /// The value's type; `None` for [`Node::Absent`] and [`Node::Outputs`].
    pub ty: Option<TensorType>,
    /// Computable at compile time (weights and ops over them).
    pub konst: bool,
    /// The weight this class is, when it holds a [`Node::Weight`].
    pub weight: Option<u32>,
}

/// The e-graph's analysis and side tables.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// Interned ops.
    pub ops: OpTable,
    /// The weights (side table; new weights made by rules are appended).
    pub weights: Vec<Tensor>,
    /// Names of the weights (new ones get `opt_w<k>`).
    pub weight_names: Vec<String>,
    /// Types of the graph inputs.
    pub inputs: Vec<TensorType>,
    /// Type conflicts seen while merging or inferring: optimizer bugs.
    pub conflicts: Vec<String>,
    /// Rule-made weights by content, so that a rule applied again reuses its weight.
    made: BTreeMap<(String, Vec<usize>, Vec<u8>), u32>,
}

impl Meta {
    /// Adds a weight to the side table.
    pub fn add_weight(&mut self, name: Option<String>, t: Tensor) -> u32 {
        let key = name.is_none().then(|| {
            (
                t.dtype().name().to_string(),
                t.shape().to_vec(),
                t.bytes().to_vec(),
            )
        });
        if let Some(k) = key.as_ref().and_then(|k| self.made.get(k)) {
            return *k;
        }
        let k = self.weights.len() as u32;
        if let Some(key) = key {
            self.made.insert(key, k);
        }
        self.weight_names
            .push(name.unwrap_or_else(|| format!("opt_w{k}")));
        self.weights.push(t);
        k
    }
}

/// The e-graph type of the optimizer.
pub type EG = EGraph<Node, Meta>;

impl Analysis<Node> for Meta {
    type Data = ClassData;

    fn make(egraph: &mut EG, enode: &Node, _id: Id) -> ClassData {
        match enode {
            Node::Input(k) => ClassData {
                ty: egraph.analysis.inputs.get(*k as usize).cloned(),
                konst: false,
                weight: None,
            },
            Node::Weight(k) => {
                let t = &egraph.analysis.weights[*k as usize];
                ClassData {
                    ty: Some(TensorType::fixed(t.dtype(), t.shape())),
                    konst: true,
                    weight: Some(*k),
                }
            }
            Node::Absent | Node::Outputs(_) => ClassData {
                ty: None,
                konst: true,
                weight: None,
            },
            Node::Op {
                op,
                slot,
                nout,
                args,
            } => {
                let konst = args.iter().all(|a| egraph[*a].data.konst);
                let op = egraph.analysis.ops.get(*op).clone();
                let ty = infer_slot(egraph, &op, args, *slot, *nout);
                let ty = match ty {
                    Ok(t) => Some(t),
                    Err(e) => {
                        egraph
                            .analysis
                            .conflicts
                            .push(format!("{} does not type-check: {e}", op.name()));
                        None
                    }
                };
                ClassData {
                    ty,
                    konst,
                    weight: None,
                }
            }
        }
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        if let (Some(x), Some(y)) = (&a.ty, &b.ty) {
            if x != y {
                self.conflicts
                    .push(format!("merged classes of types {x} and {y}"));
            }
        }
        let mut changed_a = false;
        if a.ty.is_none() && b.ty.is_some() {
            a.ty = b.ty.clone();
            changed_a = true;
        }
        if !a.konst && b.konst {
            a.konst = true;
            changed_a = true;
        }
        if a.weight.is_none() && b.weight.is_some() {
            a.weight = b.weight;
            changed_a = true;
        }
        let changed_b = (a.konst && !b.konst) || (a.weight.is_some() && b.weight.is_none());
        DidMerge(changed_a, changed_b)
    }
}

/// The type of output `slot` of `op(args)`, by the IR's inference.
pub fn infer_slot(
    eg: &EG,
    op: &Op,
    args: &[Id],
    slot: u32,
    nout: u32,
) -> Result<TensorType, String> {
    let mut tys = Vec::with_capacity(args.len());
    for a in args {
        let d = &eg[*a].data;
        tys.push((d.ty.clone(), d.weight));
    }
    let ins: Vec<Option<InferInput<'_>>> = tys
        .iter()
        .map(|(t, w)| {
            t.as_ref().map(|t| InferInput {
                ty: t,
                value: w.map(|w| &eg.analysis.weights[w as usize]),
            })
        })
        .collect();
    let out = optc_ir::infer::infer(op, &ins, nout as usize).map_err(|e| e.to_string())?;
    out.into_iter()
        .nth(slot as usize)
        .ok_or_else(|| format!("{} has no output {slot}", op.name()))
}

/// The type of class `id` (an error naming the class when it has none).
pub fn ty(eg: &EG, id: Id) -> Option<&TensorType> {
    eg[id].data.ty.as_ref()
}
