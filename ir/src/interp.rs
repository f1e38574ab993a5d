//! The CPU reference interpreter: runs a [`Graph`] node by node, exactly, on the CPU.
//!
//! It is the oracle for every rewrite, kernel and quantization in optc, so clarity and exact
//! ONNX semantics come before speed; the heavy ops (Conv, MatMul, Gemm) still use a tuned
//! GEMM (`matrixmultiply`) and rayon so whole models run in well under a second.

use crate::graph::{Graph, ValueId};
use crate::ops::Op;
use crate::tensor::{Tensor, TensorError};
use std::collections::BTreeMap;

/// Errors while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Inputs or attributes the op rejects at run time.
    #[error("{0}")]
    Invalid(String),
    /// An op (or an op/dtype combination) the interpreter does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A tensor could not be built (element count, size limit).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A node failed; wraps the error with the node's name and op.
    #[error("node '{node}' ({op}): {source}")]
    Node {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// Why.
        #[source]
        source: Box<EvalError>,
    },
    /// A graph input was not supplied or has the wrong type.
    #[error("input '{name}': {msg}")]
    Input {
        /// Input name.
        name: String,
        /// What is wrong.
        msg: String,
    },
}

impl EvalError {
    /// The innermost error (through [`EvalError::Node`] wrappers).
    pub fn root(&self) -> &EvalError {
        match self {
            EvalError::Node { source, .. } => source.root(),
            e => e,
        }
    }
}

/// Evaluates one op on concrete inputs; returns one tensor per output slot.
pub fn eval_op(
    op: &Op,
    inputs: &[Option<Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    use crate::opset::*;
    if let Some(msg) = crate::lowp::refuse(op, inputs.iter().flatten().map(Tensor::dtype)) {
        return Err(EvalError::Unsupported(msg));
    }
    match op {
        Op::Identity
        | Op::Unary(_)
        | Op::Activation(_)
        | Op::Binary(_)
        | Op::Variadic(_)
        | Op::Clip
        | Op::Where
        | Op::Cast { .. }
        | Op::Dropout => elementwise::eval(op, inputs, num_outputs),
        Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::Hardmax { .. }
        | Op::Reduce { .. }
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::CumSum { .. }
        | Op::TopK { .. } => reduce::eval(op, inputs, num_outputs),
        Op::Conv(_)
        | Op::ConvTranspose { .. }
        | Op::MaxPool { .. }
        | Op::AveragePool { .. }
        | Op::GlobalAveragePool
        | Op::GlobalMaxPool
        | Op::LpNormalization { .. }
        | Op::Norm { .. }
        | Op::Lrn { .. }
        | Op::Gemm { .. }
        | Op::MatMul
        | Op::Einsum { .. } => nn::eval(op, inputs, num_outputs),
        Op::Resize(_)
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. }
        | Op::Pad { .. }
        | Op::Trilu { .. }
        | Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterElements { .. }
        | Op::ScatterNd { .. }
        | Op::Expand
        | Op::Tile
        | Op::Shape { .. }
        | Op::Size
        | Op::ConstantOfShape { .. }
        | Op::Range
        | Op::OneHot { .. }
        | Op::NonZero
        | Op::EyeLike { .. } => movement::eval(op, inputs, num_outputs),
        Op::QuantizeLinear { .. }
        | Op::DequantizeLinear { .. }
        | Op::DynamicQuantizeLinear
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::MatMulInteger
        | Op::ConvInteger(_) => quant::eval(op, inputs, num_outputs),
        Op::Bitwise(_)
        | Op::CumProd { .. }
        | Op::LpPool { .. }
        | Op::Swish { .. }
        | Op::Compress { .. }
        | Op::CenterCropPad { .. }
        | Op::ReverseSequence { .. }
        | Op::Shrink { .. }
        | Op::MeanVarianceNormalization { .. }
        | Op::SignalWindow { .. }
        | Op::AffineGrid { .. }
        | Op::Col2Im { .. }
        | Op::GridSample { .. } => extra::eval(op, inputs, num_outputs),
        Op::If {
            then_branch,
            else_branch,
        } => {
            let cond = inputs
                .first()
                .and_then(Option::as_ref)
                .and_then(Tensor::scalar_i64)
                .ok_or_else(|| {
                    EvalError::Invalid("If needs a one-element bool condition".into())
                })?;
            let branch = if cond != 0 { then_branch } else { else_branch };
            let captured: Vec<Tensor> = inputs[1..]
                .iter()
                .map(|t| {
                    t.clone()
                        .ok_or_else(|| EvalError::Invalid("If capture missing".into()))
                })
                .collect::<Result<_, _>>()?;
            run(branch, &captured)
        }
        Op::NegativeLogLikelihoodLoss { .. } | Op::SoftmaxCrossEntropyLoss { .. } => {
            loss::eval(op, inputs, num_outputs)
        }
        Op::CastExt { .. } => elementwise::eval(op, inputs, num_outputs),
        Op::Fused(f) => fused::eval(f, inputs),
        Op::FusedAttention(a) => attention::eval(a, inputs),
    }
}

/// Checks that a supplied tensor fits a declared graph input.
fn check_input(g: &Graph, v: ValueId, t: &Tensor) -> Result<(), EvalError> {
    let decl = g.ty(v);
    let err = |msg: String| EvalError::Input {
        name: g.value(v).name.clone(),
        msg,
    };
    if decl.dtype != t.dtype() {
        return Err(err(format!(
            "expected {} but got {}",
            decl.dtype,
            t.dtype()
        )));
    }
    if let Some(dims) = decl.shape.dims() {
        let ok = dims.len() == t.rank()
            && dims
                .iter()
                .zip(t.shape())
                .all(|(d, &n)| d.as_static().is_none_or(|s| s == n));
        if !ok {
            return Err(err(format!(
                "expected shape {} but got {:?}",
                decl.shape,
                t.shape()
            )));
        }
    }
    Ok(())
}

/// Runs `g` on `inputs` (one per graph input, in order) and returns the graph outputs.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, EvalError> {
    run_observed(g, inputs, |_, _| {})
}

/// Like [`run`], calling `observe(value, tensor)` for every value a node produces (in
/// execution order), for layer-by-layer comparisons.
pub fn run_observed(
    g: &Graph,
    inputs: &[Tensor],
    mut observe: impl FnMut(ValueId, &Tensor),
) -> Result<Vec<Tensor>, EvalError> {
    if inputs.len() != g.inputs().len() {
        return Err(EvalError::Invalid(format!(
            "the graph has {} inputs but {} were given",
            g.inputs().len(),
            inputs.len()
        )));
    }
    let order = g
        .topo_order()
        .ok_or_else(|| EvalError::Invalid("the graph has a cycle".into()))?;
    // Remaining uses of each value, so intermediates are freed after their last consumer.
    let mut uses: BTreeMap<ValueId, usize> = BTreeMap::new();
    for &n in &order {
        for v in g.node(n).inputs.iter().flatten() {
            *uses.entry(*v).or_default() += 1;
        }
    }
    for &v in g.outputs() {
        *uses.entry(v).or_default() += 1;
    }
    let mut env: BTreeMap<ValueId, Tensor> = BTreeMap::new();
    for (&v, t) in g.inputs().iter().zip(inputs) {
        check_input(g, v, t)?;
        env.insert(v, t.clone());
    }
    for &n in &order {
        let node = g.node(n);
        let args: Vec<Option<Tensor>> = node
            .inputs
            .iter()
            .map(|v| {
                v.map(|v| {
                    env.get(&v)
                        .or_else(|| g.const_value(v))
                        .cloned()
                        .ok_or_else(|| {
                            EvalError::Invalid(format!("value {} is not computed", g.value(v).name))
                        })
                })
                .transpose()
            })
            .collect::<Result<_, _>>()?;
        let wrap = |e: EvalError| EvalError::Node {
            node: node.name.clone(),
            op: node.op.name(),
            source: Box::new(e),
        };
        let outs = eval_op(&node.op, &args, node.outputs.len()).map_err(wrap)?;
        drop(args);
        for v in node.inputs.iter().flatten() {
            if let Some(u) = uses.get_mut(v) {
                *u -= 1;
                if *u == 0 {
                    env.remove(v);
                }
            }
        }
        for (slot, v) in node.outputs.iter().enumerate() {
            let Some(v) = v else { continue };
            let t = outs.get(slot).cloned().ok_or_else(|| {
                wrap(EvalError::Invalid(format!(
                    "produced {} outputs, output {slot} is used",
                    outs.len()
                )))
            })?;
            observe(*v, &t);
            if uses.get(v).copied().unwrap_or(0) > 0 {
                env.insert(*v, t);
            }
        }
    }
    g.outputs()
        .iter()
        .map(|v| {
            env.get(v)
                .or_else(|| g.const_value(*v))
                .cloned()
                .ok_or_else(|| {
                    EvalError::Invalid(format!("graph output {} is not computed", g.value(*v).name))
                })
        })
        .collect()
}
