//! Shape and dtype inference: the output [`TensorType`]s of an op from its input types (and
//! input contents, where they are known at build time).
//!
//! The rules live beside each op family's reference semantics in [`crate::opset`]; this module
//! holds the entry point, the error type and the helpers they share.

use crate::dtype::DType;
use crate::ops::Op;
use crate::tensor::Tensor;
use crate::types::{Dim, Shape, TensorType};

/// One input of the op being inferred.
#[derive(Clone, Copy, Debug)]
pub struct InferInput<'a> {
    /// Its type.
    pub ty: &'a TensorType,
    /// Its contents, when known at build time (a constant or a folded value).
    pub value: Option<&'a Tensor>,
}

/// Why an op's types cannot be inferred: the model is invalid or unsupported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InferError {
    /// Wrong number of inputs or outputs, or a missing required input.
    #[error("{0}")]
    Arity(String),
    /// An input has a dtype the op does not accept.
    #[error("{0}")]
    Dtype(String),
    /// Shapes are inconsistent (e.g. MatMul inner dims, Reshape element counts).
    #[error("{0}")]
    Shape(String),
    /// An attribute or constant input is out of range.
    #[error("{0}")]
    Attribute(String),
    /// A valid model that optc does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Infers the output types of `op` over `inputs`, for a node with `num_outputs` output slots.
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    use crate::opset::*;
    let lowp_in = inputs.iter().flatten().map(|i| i.ty.dtype);
    if let Some(msg) = crate::lowp::refuse(op, lowp_in) {
        return Err(InferError::Unsupported(msg));
    }
    let out = match op {
        Op::Identity
        | Op::Unary(_)
        | Op::Activation(_)
        | Op::Binary(_)
        | Op::Variadic(_)
        | Op::Clip
        | Op::Where
        | Op::Cast { .. }
        | Op::Dropout => elementwise::infer(op, inputs, num_outputs)?,
        Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::Hardmax { .. }
        | Op::Reduce { .. }
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::CumSum { .. }
        | Op::TopK { .. } => reduce::infer(op, inputs, num_outputs)?,
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
        | Op::Einsum { .. } => nn::infer(op, inputs, num_outputs)?,
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
        | Op::EyeLike { .. } => movement::infer(op, inputs, num_outputs)?,
        Op::QuantizeLinear { .. }
        | Op::DequantizeLinear { .. }
        | Op::DynamicQuantizeLinear
        | Op::QLinearConv(_)
        | Op::QLinearMatMul
        | Op::MatMulInteger
        | Op::ConvInteger(_) => quant::infer(op, inputs, num_outputs)?,
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
        | Op::GridSample { .. } => extra::infer(op, inputs, num_outputs)?,
        Op::If {
            then_branch,
            else_branch,
        } => control::infer_if(then_branch, else_branch, inputs, num_outputs)?,
        Op::NegativeLogLikelihoodLoss { .. } | Op::SoftmaxCrossEntropyLoss { .. } => {
            loss::infer(op, inputs, num_outputs)?
        }
        Op::CastExt { .. } => elementwise::infer(op, inputs, num_outputs)?,
        Op::Fused(f) => fused::infer(f, inputs)?,
        Op::FusedAttention(a) => attention::infer(a, inputs)?,
    };
    if let Some(msg) = crate::lowp::refuse(op, out.iter().map(|t| t.dtype)) {
        return Err(InferError::Unsupported(msg));
    }
    if out.len() < num_outputs {
        return Err(InferError::Arity(format!(
            "{} has at most {} outputs, the node has {}",
            op.name(),
            out.len(),
            num_outputs
        )));
    }
    Ok(out)
}

/// The required input at `i`, or an arity error naming the op.
pub fn input<'a>(
    op: &Op,
    inputs: &[Option<InferInput<'a>>],
    i: usize,
) -> Result<InferInput<'a>, InferError> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| InferError::Arity(format!("{} needs input {}", op.name(), i)))
}

/// The optional input at `i`.
pub fn opt_input<'a>(inputs: &[Option<InferInput<'a>>], i: usize) -> Option<InferInput<'a>> {
    inputs.get(i).copied().flatten()
}

/// Requires a float dtype.
pub fn require_float(op: &Op, dtype: DType) -> Result<(), InferError> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(InferError::Dtype(format!(
            "{} needs a float input, got {}",
            op.name(),
            dtype
        )))
    }
}

/// Normalises a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, InferError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(InferError::Attribute(format!(
            "axis {axis} is out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// Multidirectional (numpy) broadcasting of two shapes.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Result<Shape, InferError> {
    let (Some(a), Some(b)) = (a.dims(), b.dims()) else {
        return Ok(Shape::Unranked);
    };
    let r = a.len().max(b.len());
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let da = if i + a.len() >= r {
            &a[i + a.len() - r]
        } else {
            &Dim::Static(1)
        };
        let db = if i + b.len() >= r {
            &b[i + b.len() - r]
        } else {
            &Dim::Static(1)
        };
        let d = match (da, db) {
            (Dim::Static(1), d) | (d, Dim::Static(1)) => d.clone(),
            (Dim::Static(x), Dim::Static(y)) if x == y => Dim::Static(*x),
            (Dim::Static(x), Dim::Static(y)) => {
                return Err(InferError::Shape(format!(
                    "shapes {} and {} do not broadcast (dim {x} vs {y})",
                    Shape::Ranked(a.to_vec()),
                    Shape::Ranked(b.to_vec())
                )));
            }
            (Dim::Sym(x), Dim::Sym(y)) if x == y => Dim::Sym(x.clone()),
            (Dim::Static(x), _) | (_, Dim::Static(x)) => Dim::Static(*x),
            _ => Dim::Unknown,
        };
        out.push(d);
    }
    Ok(Shape::Ranked(out))
}

/// The contents of a known i64 (or other integer) input as i64s.
pub fn known_ints(i: &InferInput<'_>) -> Option<Vec<i64>> {
    i.value
        .filter(|t| t.dtype().is_int())
        .map(Tensor::to_i64_vec)
}
