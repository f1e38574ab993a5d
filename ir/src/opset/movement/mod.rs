//! Data movement and shape ops: Resize, DepthToSpace/SpaceToDepth, Pad, Trilu, Reshape,
//! Flatten, Squeeze/Unsqueeze, Transpose, Concat, Split, Slice, the Gather/Scatter family,
//! Expand, Tile, Shape, Size, ConstantOfShape, Range, OneHot, NonZero and EyeLike.
//!
//! Moving elements never looks at their values, so most kernels work on machine words of the
//! element's width (`copy`): one monomorphisation per width instead of per dtype. The common
//! model ops (Transpose, Slice, Expand, Tile, DepthToSpace) are all a strided view of their
//! input, materialised by one kernel that copies contiguous inner runs as slices.
//!
//! Shape inference uses input contents where they are known ([`InferInput::value`]) to give
//! exact static shapes in the shape subgraphs exporters emit (Reshape targets, Slice bounds,
//! Expand/Tile/ConstantOfShape/Range arguments), and the rank with unknown dims otherwise.

mod copy;
mod index;
mod layout;
mod resize;
mod shape;

use crate::dtype::DType;
use crate::infer::{InferError, InferInput};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::tensor::Tensor;
use crate::types::{Dim, Shape, TensorType};

/// Output types of the ops of this family.
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    match op {
        Op::Resize(attrs) => resize::infer(op, attrs, inputs).map(one),
        Op::DepthToSpace { blocksize, .. } => {
            layout::infer_depth_to_space(op, *blocksize, inputs).map(one)
        }
        Op::SpaceToDepth { blocksize } => {
            layout::infer_space_to_depth(op, *blocksize, inputs).map(one)
        }
        Op::Pad { .. } => layout::infer_pad(op, inputs).map(one),
        Op::Trilu { .. } => layout::infer_trilu(op, inputs).map(one),
        Op::Transpose { perm } => layout::infer_transpose(op, perm.as_deref(), inputs).map(one),
        Op::Concat { axis } => layout::infer_concat(op, *axis, inputs).map(one),
        Op::Split {
            axis,
            num_outputs: n,
        } => layout::infer_split(op, *axis, *n, inputs, num_outputs),
        Op::Slice => layout::infer_slice(op, inputs).map(one),
        Op::Reshape { allowzero } => shape::infer_reshape(op, *allowzero, inputs).map(one),
        Op::Flatten { axis } => shape::infer_flatten(op, *axis, inputs).map(one),
        Op::Squeeze => shape::infer_squeeze(op, inputs).map(one),
        Op::Unsqueeze => shape::infer_unsqueeze(op, inputs).map(one),
        Op::Expand => shape::infer_expand(op, inputs).map(one),
        Op::Tile => shape::infer_tile(op, inputs).map(one),
        Op::Shape { start, end } => shape::infer_shape(op, *start, *end, inputs).map(one),
        Op::Size => {
            input(op, inputs, 0)?;
            Ok(vec![TensorType::fixed(DType::I64, &[])])
        }
        Op::ConstantOfShape { value } => shape::infer_constant_of_shape(op, value, inputs).map(one),
        Op::Range => shape::infer_range(op, inputs).map(one),
        Op::EyeLike { dtype, .. } => shape::infer_eye_like(op, *dtype, inputs).map(one),
        Op::Gather { axis } => index::infer_gather(op, *axis, inputs).map(one),
        Op::GatherElements { axis } => index::infer_gather_elements(op, *axis, inputs).map(one),
        Op::GatherNd { batch_dims } => index::infer_gather_nd(op, *batch_dims, inputs).map(one),
        Op::ScatterElements { axis, .. } => {
            index::infer_scatter_elements(op, *axis, inputs).map(one)
        }
        Op::ScatterNd { .. } => index::infer_scatter_nd(op, inputs).map(one),
        Op::OneHot { axis } => index::infer_one_hot(op, *axis, inputs).map(one),
        Op::NonZero => index::infer_non_zero(op, inputs).map(one),
        _ => Err(InferError::Unsupported(format!(
            "{} is not a data movement op",
            op.name()
        ))),
    }
}

/// Reference semantics of the ops of this family.
pub fn eval(
    op: &Op,
    inputs: &[Option<Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let out = match op {
        Op::Resize(attrs) => resize::eval(op, attrs, inputs)?,
        Op::DepthToSpace { blocksize, crd } => {
            layout::eval_depth_to_space(op, *blocksize, *crd, inputs)?
        }
        Op::SpaceToDepth { blocksize } => layout::eval_space_to_depth(op, *blocksize, inputs)?,
        Op::Pad { mode } => layout::eval_pad(op, *mode, inputs)?,
        Op::Trilu { upper } => layout::eval_trilu(op, *upper, inputs)?,
        Op::Transpose { perm } => layout::eval_transpose(op, perm.as_deref(), inputs)?,
        Op::Concat { axis } => layout::eval_concat(op, *axis, inputs)?,
        Op::Split {
            axis,
            num_outputs: n,
        } => {
            return layout::eval_split(op, *axis, *n, inputs, num_outputs);
        }
        Op::Slice => layout::eval_slice(op, inputs)?,
        Op::Reshape { allowzero } => shape::eval_reshape(op, *allowzero, inputs)?,
        Op::Flatten { axis } => shape::eval_flatten(op, *axis, inputs)?,
        Op::Squeeze => shape::eval_squeeze(op, inputs)?,
        Op::Unsqueeze => shape::eval_unsqueeze(op, inputs)?,
        Op::Expand => shape::eval_expand(op, inputs)?,
        Op::Tile => shape::eval_tile(op, inputs)?,
        Op::Shape { start, end } => shape::eval_shape(op, *start, *end, inputs)?,
        Op::Size => {
            let x = crate::opset::util::req(op, inputs, 0)?;
            Tensor::scalar(x.numel() as i64)
        }
        Op::ConstantOfShape { value } => shape::eval_constant_of_shape(op, value, inputs)?,
        Op::Range => shape::eval_range(op, inputs)?,
        Op::EyeLike { dtype, k } => shape::eval_eye_like(op, *dtype, *k, inputs)?,
        Op::Gather { axis } => index::eval_gather(op, *axis, inputs)?,
        Op::GatherElements { axis } => index::eval_gather_elements(op, *axis, inputs)?,
        Op::GatherNd { batch_dims } => index::eval_gather_nd(op, *batch_dims, inputs)?,
        Op::ScatterElements { axis, reduction } => {
            index::eval_scatter_elements(op, *axis, *reduction, inputs)?
        }
        Op::ScatterNd { reduction } => index::eval_scatter_nd(op, *reduction, inputs)?,
        Op::OneHot { axis } => index::eval_one_hot(op, *axis, inputs)?,
        Op::NonZero => index::eval_non_zero(op, inputs)?,
        _ => {
            return Err(EvalError::Unsupported(format!(
                "{} is not a data movement op",
                op.name()
            )));
        }
    };
    Ok(vec![out])
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the submodules.

/// Wraps one output type in a vector.
fn one(t: TensorType) -> Vec<TensorType> {
    vec![t]
}

/// The required input at `i` (inference).
fn input<'a>(
    op: &Op,
    inputs: &[Option<InferInput<'a>>],
    i: usize,
) -> Result<InferInput<'a>, InferError> {
    crate::infer::input(op, inputs, i)
}

/// An [`EvalError::Invalid`] naming the op.
fn invalid(op: &Op, msg: impl std::fmt::Display) -> EvalError {
    EvalError::Invalid(format!("{}: {msg}", op.name()))
}

/// An [`InferError::Shape`] naming the op.
fn shape_err(op: &Op, msg: impl std::fmt::Display) -> InferError {
    InferError::Shape(format!("{}: {msg}", op.name()))
}

/// An [`InferError::Attribute`] naming the op.
fn attr_err(op: &Op, msg: impl std::fmt::Display) -> InferError {
    InferError::Attribute(format!("{}: {msg}", op.name()))
}

/// Requires an integer dtype for the input `what` (inference).
fn require_int(op: &Op, dtype: DType, what: &str) -> Result<(), InferError> {
    if dtype.is_int() {
        Ok(())
    } else {
        Err(InferError::Dtype(format!(
            "{}: {what} must be an integer tensor, got {dtype}",
            op.name()
        )))
    }
}

/// The elements of an integer input `what` (evaluation); rejects other dtypes and ranks
/// above 1.
fn int_values(op: &Op, t: &Tensor, what: &str) -> Result<Vec<i64>, EvalError> {
    if !t.dtype().is_int() {
        return Err(invalid(
            op,
            format!("{what} must be an integer tensor, got {}", t.dtype()),
        ));
    }
    if t.rank() > 1 {
        return Err(invalid(
            op,
            format!("{what} must be 1-D, got shape {:?}", t.shape()),
        ));
    }
    Ok(t.to_i64_vec())
}

/// The contents of a known integer input of rank ≤ 1 (inference).
fn known_ints(i: &InferInput<'_>) -> Option<Vec<i64>> {
    i.value
        .filter(|t| t.rank() <= 1)
        .and_then(|_| crate::infer::known_ints(i))
}

/// The static length of a 1-D input (inference), if known.
fn static_len(i: &InferInput<'_>) -> Option<usize> {
    match i.ty.shape.dims() {
        Some([Dim::Static(n)]) => Some(*n),
        Some([]) => Some(1),
        _ => None,
    }
}

/// Normalises `axis` in `[-rank, rank)` (inference), rejecting rank 0.
fn norm_axis_infer(op: &Op, axis: i64, rank: usize) -> Result<usize, InferError> {
    if rank == 0 {
        return Err(shape_err(op, "the input must have rank ≥ 1"));
    }
    crate::infer::norm_axis(axis, rank).map_err(|e| attr_err(op, e))
}

/// Normalises `axis` in `[-rank, rank)` (evaluation), rejecting rank 0.
fn norm_axis_eval(op: &Op, axis: i64, rank: usize) -> Result<usize, EvalError> {
    if rank == 0 {
        return Err(invalid(op, "the input must have rank ≥ 1"));
    }
    crate::opset::util::axis(axis, rank).map_err(|e| invalid(op, e))
}

/// Normalises a list of axes against `rank`, rejecting out-of-range and repeated axes.
fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    let mut seen = vec![false; rank];
    for &a in axes {
        let n = if a < 0 { a + rank as i64 } else { a };
        if n < 0 || n >= rank as i64 {
            return Err(format!("axis {a} is out of range for rank {rank}"));
        }
        if std::mem::replace(&mut seen[n as usize], true) {
            return Err(format!("axis {a} is repeated"));
        }
        out.push(n as usize);
    }
    Ok(out)
}

/// A mask of `rank` flags, set at `axes`.
fn axis_mask(axes: &[usize], rank: usize) -> Vec<bool> {
    let mut m = vec![false; rank];
    for &a in axes {
        m[a] = true;
    }
    m
}

/// A type of `dtype` with `dims`.
fn ranked(dtype: DType, dims: Vec<Dim>) -> TensorType {
    TensorType {
        dtype,
        shape: Shape::Ranked(dims),
    }
}

/// The product of dims: static when all are, the symbol when it is the only non-1 factor.
fn dim_product(dims: &[Dim]) -> Dim {
    let mut n: usize = 1;
    let mut sym: Option<&Dim> = None;
    let mut syms = 0;
    for d in dims {
        match d {
            Dim::Static(k) => match n.checked_mul(*k) {
                Some(m) => n = m,
                None => return Dim::Unknown,
            },
            Dim::Sym(_) => {
                syms += 1;
                sym = Some(d);
            }
            Dim::Unknown => return Dim::Unknown,
        }
    }
    match (syms, sym) {
        (0, _) => Dim::Static(n),
        (_, _) if n == 0 => Dim::Static(0),
        (1, Some(s)) if n == 1 => s.clone(),
        _ => Dim::Unknown,
    }
}

/// `d * k` as a dim.
fn dim_mul(d: &Dim, k: usize) -> Dim {
    match d {
        Dim::Static(n) => n.checked_mul(k).map_or(Dim::Unknown, Dim::Static),
        _ if k == 1 => d.clone(),
        _ if k == 0 => Dim::Static(0),
        _ => Dim::Unknown,
    }
}

/// Converts a non-negative i64 to usize or reports `what`.
fn to_usize(v: i64, what: impl FnOnce() -> String) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| what())
}

#[cfg(test)]
mod test_util {
    //! Builders shared by the unit tests of the submodules.
    use crate::dtype::Elem;
    use crate::infer::InferInput;
    use crate::interp::EvalError;
    use crate::ops::Op;
    use crate::tensor::Tensor;
    use crate::types::{Shape, TensorType};

    /// A tensor from a shape and values.
    pub fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    /// A 1-D i64 tensor.
    pub fn i64s(v: &[i64]) -> Tensor {
        t(&[v.len()], v.to_vec())
    }

    /// Evaluates `op` on present inputs and returns the only output.
    pub fn run(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
        Ok(super::eval(op, inputs, 1)?.remove(0))
    }

    /// Evaluates `op` with all inputs present.
    pub fn run1(op: &Op, inputs: &[Tensor]) -> Tensor {
        let args: Vec<Option<Tensor>> = inputs.iter().cloned().map(Some).collect();
        run(op, &args).unwrap()
    }

    /// The type of a known tensor.
    pub fn ty_of(x: &Tensor) -> TensorType {
        TensorType::fixed(x.dtype(), x.shape())
    }

    /// Infers `op` over (type, known value) pairs, returning the first output's shape.
    pub fn infer_out(
        op: &Op,
        inputs: &[Option<(&TensorType, Option<&Tensor>)>],
    ) -> Result<Shape, crate::infer::InferError> {
        let ins: Vec<Option<InferInput<'_>>> = inputs
            .iter()
            .map(|i| i.map(|(ty, value)| InferInput { ty, value }))
            .collect();
        Ok(super::infer(op, &ins, 1)?.remove(0).shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dim_products_keep_symbols() {
        let b = Dim::Sym("b".into());
        assert_eq!(
            dim_product(&[Dim::Static(2), Dim::Static(3)]),
            Dim::Static(6)
        );
        assert_eq!(dim_product(&[Dim::Static(1), b.clone()]), b);
        assert_eq!(dim_product(&[Dim::Static(2), b.clone()]), Dim::Unknown);
        assert_eq!(dim_product(&[Dim::Static(0), b.clone()]), Dim::Static(0));
        assert_eq!(dim_product(&[]), Dim::Static(1));
        assert_eq!(dim_mul(&b, 1), b);
        assert_eq!(dim_mul(&Dim::Static(3), 4), Dim::Static(12));
    }

    #[test]
    fn hostile_sizes_are_errors_not_allocations() {
        use super::test_util::*;
        use crate::ops::PadMode;
        let empty = t::<f32>(&[0, 2], vec![]);
        // A huge pad on one axis of an empty output allocates nothing.
        let y = run1(
            &Op::Pad {
                mode: PadMode::Constant,
            },
            &[empty.clone(), i64s(&[0, 1 << 40, 0, 0])],
        );
        assert_eq!(y.shape(), &[0, (1 << 40) + 2]);
        let x = t(&[2, 2], vec![1.0f32, 2., 3., 4.]);
        let pad = |p: &[i64]| {
            run(
                &Op::Pad {
                    mode: PadMode::Reflect,
                },
                &[Some(x.clone()), Some(i64s(p))],
            )
        };
        assert!(pad(&[1 << 40, 1 << 40, 0, 0]).is_err());
        // A huge step selecting one element.
        let y = run1(
            &Op::Slice,
            &[
                x.clone(),
                i64s(&[1]),
                i64s(&[2]),
                i64s(&[1]),
                i64s(&[i64::MAX]),
            ],
        );
        assert_eq!(y.view::<f32>(), &[2., 4.]);
        // Split into more chunks than the node has outputs.
        let split = Op::Split {
            axis: 0,
            num_outputs: Some(1 << 40),
        };
        assert!(eval(&split, &[Some(x.clone())], 2).is_err());
        // DepthToSpace of zero channels with a huge block.
        let z = t::<f32>(&[1, 0, 1 << 20, 1 << 20], vec![]);
        let d2s = |blocksize| Op::DepthToSpace {
            blocksize,
            crd: false,
        };
        let y = run(&d2s(1 << 30), &[Some(z.clone())]).unwrap();
        assert_eq!(y.shape(), &[1, 0, 1 << 50, 1 << 50]);
        assert!(run(&d2s(1 << 33), &[Some(z.clone())]).is_err());
        assert!(run(&Op::SpaceToDepth { blocksize: 1 << 33 }, &[Some(z)]).is_err());
        let big = Op::ConstantOfShape {
            value: Tensor::scalar(1u8),
        };
        assert!(run(&big, &[Some(i64s(&[1 << 31, 1 << 31]))]).is_err());
    }

    #[test]
    fn axes_normalise_and_reject_repeats() {
        assert_eq!(norm_axes(&[-1, 0], 3).unwrap(), vec![2, 0]);
        assert!(norm_axes(&[3], 3).is_err());
        assert!(norm_axes(&[1, -2], 3).is_err());
    }
}
