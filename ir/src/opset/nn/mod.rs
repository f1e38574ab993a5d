//! Neural-network ops: convolutions, pooling, normalisations, LRN, Gemm, MatMul and Einsum.
//!
//! Float ops compute in a working type: f32 for f32/f16/bf16 (half inputs are widened once and
//! the result rounded back) and f64 for f64. The FLOP-heavy ops (Conv, ConvTranspose, Gemm,
//! MatMul) go through `matrixmultiply`'s `sgemm`/`dgemm` (im2col/col2im for the convolutions)
//! and use rayon across independent planes; integer MatMul/Gemm and Einsum use exact loops.

mod conv;
mod einsum;
pub use einsum::letter_terms;
mod gemm;
mod norm;
mod pool;

use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::tensor::Tensor;
use crate::types::{Dim, TensorType};
use std::borrow::Cow;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// Output types of the ops of this family.
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    match op {
        Op::Conv(attrs) if !attrs.layout.is_first() => conv::infer_conv_layout(op, attrs, inputs),
        Op::Conv(attrs) => conv::infer_conv(op, attrs, inputs),
        Op::ConvTranspose { conv, .. } if !conv.layout.is_first() => Err(InferError::Unsupported(
            "ConvTranspose is channels-first only".into(),
        )),
        Op::ConvTranspose {
            conv: attrs,
            output_padding,
            output_shape,
        } => conv::infer_conv_transpose(op, attrs, output_padding, output_shape, inputs),
        Op::MaxPool { .. } | Op::AveragePool { .. } | Op::GlobalAveragePool | Op::GlobalMaxPool => {
            pool::infer(op, inputs)
        }
        Op::LpNormalization { .. } | Op::Norm { .. } | Op::Lrn { .. } => {
            norm::infer(op, inputs, num_outputs)
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => gemm::infer_gemm(op, *trans_a, *trans_b, inputs),
        Op::MatMul => gemm::infer_matmul(op, inputs),
        Op::Einsum { equation } => einsum::infer(op, equation, inputs),
        _ => Err(InferError::Unsupported(format!(
            "{} is not a neural-network op",
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
    match op {
        Op::Conv(attrs) if !attrs.layout.is_first() => conv::eval_conv_layout(op, attrs, inputs),
        Op::Conv(attrs) => conv::eval_conv(op, attrs, inputs),
        Op::ConvTranspose {
            conv: attrs,
            output_padding,
            output_shape,
        } => conv::eval_conv_transpose(op, attrs, output_padding, output_shape, inputs),
        Op::MaxPool { .. } | Op::AveragePool { .. } | Op::GlobalAveragePool | Op::GlobalMaxPool => {
            pool::eval(op, inputs)
        }
        Op::LpNormalization { .. } | Op::Norm { .. } | Op::Lrn { .. } => {
            norm::eval(op, inputs, num_outputs)
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => gemm::eval_gemm(op, *alpha, *beta, *trans_a, *trans_b, inputs),
        Op::MatMul => gemm::eval_matmul(op, inputs),
        Op::Einsum { equation } => einsum::eval(op, equation, inputs),
        _ => Err(EvalError::Unsupported(format!(
            "{} is not a neural-network op",
            op.name()
        ))),
    }
}

/// The working float type of the float ops: f32 (for f32, f16 and bf16 tensors) or f64.
pub(crate) trait Real:
    Elem
    + Copy
    + Default
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// From an f32 attribute.
    fn of(v: f32) -> Self;
    /// Widened to f64.
    fn wide(self) -> f64;
    /// Rounded from f64.
    fn narrow(v: f64) -> Self;
    /// `C ← alpha·A·B + beta·C` with arbitrary strides (`matrixmultiply`).
    ///
    /// # Safety
    /// The pointers and strides must describe in-bounds `m×k`, `k×n` and `m×n` matrices, and
    /// `c` must not alias `a` or `b` nor itself.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn of(v: f32) -> Self {
        v
    }
    fn wide(self) -> f64 {
        self as f64
    }
    fn narrow(v: f64) -> Self {
        v as f32
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn of(v: f32) -> Self {
        v as f64
    }
    fn wide(self) -> f64 {
        self
    }
    fn narrow(v: f64) -> Self {
        v
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}

/// Runs `$body` with `$F` bound to the working type of float dtype `$dt` (f32 or f64);
/// other dtypes evaluate `$else`.
macro_rules! with_real {
    ($dt:expr, $F:ident => $body:expr, else $else:expr) => {{
        use $crate::dtype::DType as __D;
        match $dt {
            __D::F32 | __D::F16 | __D::BF16 => {
                type $F = f32;
                $body
            }
            __D::F64 => {
                type $F = f64;
                $body
            }
            _ => $else,
        }
    }};
}
pub(crate) use with_real;

/// The elements of `t` in the working type `F` (borrowed when `t` already is `F`).
pub(crate) fn load<F: Real>(t: &Tensor) -> Cow<'_, [F]> {
    if let Some(v) = t.try_view::<F>() {
        return Cow::Borrowed(v);
    }
    crate::dispatch!(t.dtype(), T => Cow::Owned(
        t.view::<T>().iter().map(|&x| F::narrow(x.to_f64())).collect()
    ))
}

/// A tensor of `dtype` from working-type values (rounded once when `dtype` is narrower).
pub(crate) fn store<F: Real>(
    dtype: DType,
    shape: Vec<usize>,
    v: Vec<F>,
) -> Result<Tensor, EvalError> {
    if dtype == F::DTYPE {
        return Ok(Tensor::from_vec(shape, v)?);
    }
    crate::dispatch!(dtype, T => Ok(Tensor::from_vec(
        shape,
        v.iter().map(|&x| T::round_from_f64(x.wide())).collect::<Vec<T>>(),
    )?))
}

/// An unsupported-dtype evaluation error.
pub(crate) fn bad_dtype(op: &Op, dtype: DType) -> EvalError {
    EvalError::Invalid(format!("{} does not accept {dtype} inputs", op.name()))
}

/// Checks that `t` has dtype `want` (the dtype of the op's main input).
pub(crate) fn same_dtype(op: &Op, what: &str, t: &Tensor, want: DType) -> Result<(), EvalError> {
    if t.dtype() != want {
        return Err(EvalError::Invalid(format!(
            "{} {what} has dtype {} but the input has {want}",
            op.name(),
            t.dtype()
        )));
    }
    Ok(())
}

/// Infer-time dtype check of a secondary input against the main one.
pub(crate) fn infer_same_dtype(
    op: &Op,
    what: &str,
    got: DType,
    want: DType,
) -> Result<(), InferError> {
    if got != want {
        return Err(InferError::Dtype(format!(
            "{} {what} has dtype {got} but the input has {want}",
            op.name()
        )));
    }
    Ok(())
}

/// `[a, b, c]` for error messages.
pub(crate) fn fmt_dims(d: &[Dim]) -> String {
    crate::types::Shape::Ranked(d.to_vec()).to_string()
}

/// The smallest batch of work worth a rayon task, in elements.
pub(crate) const PAR_GRAIN: usize = 1 << 14;

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the unit tests of the nn ops.
    use super::*;
    use crate::types::Shape;

    pub use super::eval as eval_op;

    /// An f32 tensor.
    pub fn f(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    /// An f32 tensor 0, 1, 2, ... of `shape`.
    pub fn iota(shape: &[usize]) -> Tensor {
        let n = shape.iter().product::<usize>();
        f(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
    }

    /// Evaluates `op` and returns its outputs.
    pub fn run(op: &Op, inputs: &[Option<Tensor>], nout: usize) -> Vec<Tensor> {
        eval(op, inputs, nout).unwrap_or_else(|e| panic!("{op:?}: {e}"))
    }

    /// Evaluates `op` with all inputs present and returns output 0.
    pub fn run1(op: &Op, inputs: &[Tensor]) -> Tensor {
        let ins: Vec<Option<Tensor>> = inputs.iter().cloned().map(Some).collect();
        run(op, &ins, 1).remove(0)
    }

    /// Asserts `t` is close to `want` (f64 comparison).
    #[track_caller]
    pub fn close(t: &Tensor, shape: &[usize], want: &[f64]) {
        assert_eq!(t.shape(), shape, "shape");
        let got = t.to_f64_vec();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let tol = 1e-4 * (1.0 + w.abs());
            assert!(
                (g - w).abs() <= tol || (g.is_nan() && w.is_nan()),
                "element {i}: got {g}, want {w}\n got {got:?}"
            );
        }
    }

    /// A type from static dims.
    pub fn ty(dtype: DType, dims: &[usize]) -> TensorType {
        TensorType::fixed(dtype, dims)
    }

    /// A type from dims given as strings (`"N"` symbolic, `"?"` unknown, numbers static).
    pub fn sty(dtype: DType, dims: &[&str]) -> TensorType {
        TensorType {
            dtype,
            shape: Shape::Ranked(
                dims.iter()
                    .map(|d| match d.parse::<usize>() {
                        Ok(n) => Dim::Static(n),
                        Err(_) if *d == "?" => Dim::Unknown,
                        Err(_) => Dim::Sym(d.to_string()),
                    })
                    .collect(),
            ),
        }
    }

    /// Infers `op` over input types (no known contents).
    pub fn infer_types(
        op: &Op,
        tys: &[Option<TensorType>],
        nout: usize,
    ) -> Result<Vec<TensorType>, InferError> {
        let ins: Vec<Option<InferInput<'_>>> = tys
            .iter()
            .map(|t| t.as_ref().map(|ty| InferInput { ty, value: None }))
            .collect();
        infer(op, &ins, nout)
    }
}
