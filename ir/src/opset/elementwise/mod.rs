//! Elementwise ops: Identity, [`UnaryOp`](crate::ops::UnaryOp)s,
//! [`ActivationOp`]s, broadcasting [`BinaryOp`]s,
//! [`VariadicOp`](crate::ops::VariadicOp)s, Clip, Where, Cast and (inference-mode) Dropout.
//!
//! Floats are computed in f32 (f32, f16, bf16) or f64 and rounded back once; integers wrap;
//! broadcasting is multidirectional (numpy) except PRelu's slope, which broadcasts to X.

pub(crate) mod binary;
pub(crate) mod kernels;
pub(crate) mod scalar;
pub(crate) mod unary;

use crate::dtype::{Bool8, DType};
use crate::infer::{InferError, InferInput, broadcast_shapes, input, opt_input};
use crate::interp::EvalError;
use crate::ops::{ActivationOp, BinaryOp, Op};
use crate::opset::util::{opt, req};
use crate::tensor::Tensor;
use crate::types::{Dim, Shape, TensorType};

/// The ONNX name of an activation (for messages).
pub(crate) fn activation_name(op: ActivationOp) -> &'static str {
    Op::Activation(op).name()
}

/// Fails when the node has more inputs than the op takes.
fn max_inputs<T>(op: &Op, inputs: &[Option<T>], n: usize) -> Result<(), String> {
    if inputs.len() > n {
        return Err(format!(
            "{} takes at most {n} inputs, the node has {}",
            op.name(),
            inputs.len()
        ));
    }
    Ok(())
}

/// Requires a known one-element shape (rank 0, or all dims 1) where the shape is known.
fn one_element(op: &Op, what: &str, ty: &TensorType) -> Result<(), InferError> {
    if let Some(dims) = ty.shape.dims() {
        if dims.iter().any(|d| matches!(d, Dim::Static(n) if *n != 1)) {
            return Err(InferError::Shape(format!(
                "{} {what} must have one element, it has shape {}",
                op.name(),
                ty.shape
            )));
        }
    }
    Ok(())
}

/// Unidirectional broadcast of `slope` to `x` (PRelu): the output has `x`'s shape.
fn unidirectional(x: &Shape, slope: &Shape) -> Result<Shape, InferError> {
    if let (Some(xd), Some(sd)) = (x.dims(), slope.dims()) {
        let bad = || {
            InferError::Shape(format!(
                "PRelu slope of shape {slope} does not broadcast to X of shape {x}"
            ))
        };
        if sd.len() > xd.len() {
            return Err(bad());
        }
        for (s, d) in sd.iter().rev().zip(xd.iter().rev()) {
            if let (Dim::Static(s), Dim::Static(d)) = (s, d) {
                if *s != 1 && s != d {
                    return Err(bad());
                }
            }
        }
    }
    Ok(x.clone())
}

/// Output types of the ops of this family.
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    _num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    let arity = InferError::Arity;
    let dt = InferError::Dtype;
    match op {
        Op::Identity => {
            max_inputs(op, inputs, 1).map_err(arity)?;
            Ok(vec![input(op, inputs, 0)?.ty.clone()])
        }
        Op::Unary(u) => {
            max_inputs(op, inputs, 1).map_err(arity)?;
            let x = input(op, inputs, 0)?;
            let dtype = unary::unary_dtype(*u, x.ty.dtype).map_err(dt)?;
            Ok(vec![TensorType {
                dtype,
                shape: x.ty.shape.clone(),
            }])
        }
        Op::Activation(a) => {
            max_inputs(op, inputs, 1).map_err(arity)?;
            let x = input(op, inputs, 0)?;
            let dtype = unary::activation_dtype(*a, x.ty.dtype).map_err(dt)?;
            Ok(vec![TensorType {
                dtype,
                shape: x.ty.shape.clone(),
            }])
        }
        Op::Binary(b) => {
            max_inputs(op, inputs, 2).map_err(arity)?;
            let (x, y) = (input(op, inputs, 0)?, input(op, inputs, 1)?);
            let dtype = binary::binary_dtype(*b, x.ty.dtype, y.ty.dtype).map_err(dt)?;
            let shape = if *b == BinaryOp::PRelu {
                unidirectional(&x.ty.shape, &y.ty.shape)?
            } else {
                broadcast_shapes(&x.ty.shape, &y.ty.shape)?
            };
            Ok(vec![TensorType { dtype, shape }])
        }
        Op::Variadic(v) => {
            if inputs.is_empty() {
                return Err(arity(format!("{} needs at least one input", op.name())));
            }
            let first = input(op, inputs, 0)?;
            let dtype = binary::variadic_dtype(*v, first.ty.dtype).map_err(dt)?;
            let mut shape = first.ty.shape.clone();
            for i in 1..inputs.len() {
                let t = input(op, inputs, i)?;
                if t.ty.dtype != dtype {
                    return Err(dt(format!(
                        "{} needs inputs of one dtype, got {dtype} and {}",
                        op.name(),
                        t.ty.dtype
                    )));
                }
                shape = broadcast_shapes(&shape, &t.ty.shape)?;
            }
            Ok(vec![TensorType { dtype, shape }])
        }
        Op::Clip => {
            max_inputs(op, inputs, 3).map_err(arity)?;
            let x = input(op, inputs, 0)?;
            if !(x.ty.dtype.is_float() || x.ty.dtype.is_int()) {
                return Err(dt(format!("Clip does not accept {} inputs", x.ty.dtype)));
            }
            for (i, what) in [(1, "min"), (2, "max")] {
                if let Some(b) = opt_input(inputs, i) {
                    if b.ty.dtype != x.ty.dtype {
                        return Err(dt(format!(
                            "Clip {what} has dtype {} but the input has {}",
                            b.ty.dtype, x.ty.dtype
                        )));
                    }
                    one_element(op, what, b.ty)?;
                }
            }
            Ok(vec![x.ty.clone()])
        }
        Op::Where => {
            max_inputs(op, inputs, 3).map_err(arity)?;
            let (c, x, y) = (
                input(op, inputs, 0)?,
                input(op, inputs, 1)?,
                input(op, inputs, 2)?,
            );
            if c.ty.dtype != DType::Bool {
                return Err(dt(format!(
                    "Where condition must be bool, got {}",
                    c.ty.dtype
                )));
            }
            if x.ty.dtype != y.ty.dtype {
                return Err(dt(format!(
                    "Where needs X and Y of one dtype, got {} and {}",
                    x.ty.dtype, y.ty.dtype
                )));
            }
            let shape =
                broadcast_shapes(&broadcast_shapes(&c.ty.shape, &x.ty.shape)?, &y.ty.shape)?;
            Ok(vec![TensorType {
                dtype: x.ty.dtype,
                shape,
            }])
        }
        Op::Cast { to } | Op::CastExt { to, .. } => {
            max_inputs(op, inputs, 1).map_err(arity)?;
            let x = input(op, inputs, 0)?;
            Ok(vec![TensorType {
                dtype: *to,
                shape: x.ty.shape.clone(),
            }])
        }
        Op::Dropout => {
            max_inputs(op, inputs, 3).map_err(arity)?;
            let x = input(op, inputs, 0)?;
            if !x.ty.dtype.is_float() {
                return Err(dt(format!(
                    "Dropout needs a float input, got {}",
                    x.ty.dtype
                )));
            }
            let ratio = opt_input(inputs, 1);
            if let Some(r) = ratio {
                if !r.ty.dtype.is_float() {
                    return Err(dt(format!(
                        "Dropout ratio must be float, got {}",
                        r.ty.dtype
                    )));
                }
                one_element(op, "ratio", r.ty)?;
            }
            if let Some(m) = opt_input(inputs, 2) {
                if m.ty.dtype != DType::Bool {
                    return Err(dt(format!(
                        "Dropout training_mode must be bool, got {}",
                        m.ty.dtype
                    )));
                }
                one_element(op, "training_mode", m.ty)?;
                let training = m.value.and_then(Tensor::scalar_i64).is_some_and(|v| v != 0);
                let ratio_zero = ratio
                    .and_then(|r| r.value)
                    .and_then(Tensor::scalar_f64)
                    .is_some_and(|r| r == 0.0);
                if training && !ratio_zero {
                    return Err(InferError::Unsupported(
                        "Dropout in training mode (random masks)".into(),
                    ));
                }
            }
            Ok(vec![
                x.ty.clone(),
                TensorType {
                    dtype: DType::Bool,
                    shape: x.ty.shape.clone(),
                },
            ])
        }
        _ => Err(InferError::Unsupported(format!(
            "{} is not an elementwise op",
            op.name()
        ))),
    }
}

/// ONNX Cast with its default attributes (see [`Tensor::cast_with`]): floats to integers
/// truncate toward zero (saturating out of range, NaN → 0), anything to bool is `!= 0`, every
/// narrowing rounds to nearest even exactly once.
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor, EvalError> {
    Ok(x.cast(to))
}

/// Reference semantics of the ops of this family.
pub fn eval(
    op: &Op,
    inputs: &[Option<Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let too_many = |n| max_inputs(op, inputs, n).map_err(EvalError::Invalid);
    let out = match op {
        Op::Identity => {
            too_many(1)?;
            req(op, inputs, 0)?.clone()
        }
        Op::Unary(u) => {
            too_many(1)?;
            unary::eval_unary(*u, req(op, inputs, 0)?)?
        }
        Op::Activation(a) => {
            too_many(1)?;
            unary::eval_activation(*a, req(op, inputs, 0)?)?
        }
        Op::Binary(b) => {
            too_many(2)?;
            binary::eval_binary(*b, req(op, inputs, 0)?, req(op, inputs, 1)?)?
        }
        Op::Variadic(v) => {
            let xs: Vec<&Tensor> = (0..inputs.len())
                .map(|i| req(op, inputs, i))
                .collect::<Result<_, _>>()?;
            binary::eval_variadic(*v, &xs)?
        }
        Op::Clip => {
            too_many(3)?;
            binary::eval_clip(req(op, inputs, 0)?, opt(inputs, 1), opt(inputs, 2))?
        }
        Op::Where => {
            too_many(3)?;
            binary::eval_where(
                req(op, inputs, 0)?,
                req(op, inputs, 1)?,
                req(op, inputs, 2)?,
            )?
        }
        Op::Cast { to } => {
            too_many(1)?;
            cast(req(op, inputs, 0)?, *to)?
        }
        Op::CastExt {
            to,
            saturate,
            round_mode,
        } => {
            too_many(1)?;
            req(op, inputs, 0)?.cast_with(*to, *saturate, *round_mode)
        }
        Op::Dropout => {
            too_many(3)?;
            return eval_dropout(req(op, inputs, 0)?, opt(inputs, 1), opt(inputs, 2));
        }
        _ => {
            return Err(EvalError::Unsupported(format!(
                "{} is not an elementwise op",
                op.name()
            )));
        }
    };
    Ok(vec![out])
}

/// Inference-mode Dropout: `Y = X` and an all-true mask. Training mode is only supported with
/// a zero ratio (which is the identity too); random masks are not reproducible.
fn eval_dropout(
    x: &Tensor,
    ratio: Option<&Tensor>,
    training: Option<&Tensor>,
) -> Result<Vec<Tensor>, EvalError> {
    if !x.dtype().is_float() {
        return Err(EvalError::Invalid(format!(
            "Dropout needs a float input, got {}",
            x.dtype()
        )));
    }
    let ratio = match ratio {
        Some(r) if !r.dtype().is_float() => {
            return Err(EvalError::Invalid(format!(
                "Dropout ratio must be float, got {}",
                r.dtype()
            )));
        }
        Some(r) => Some(
            r.scalar_f64()
                .ok_or_else(|| EvalError::Invalid("Dropout ratio must have one element".into()))?,
        ),
        None => None,
    };
    if let Some(r) = ratio {
        if !(0.0..1.0).contains(&r) {
            return Err(EvalError::Invalid(format!(
                "Dropout ratio {r} is outside [0, 1)"
            )));
        }
    }
    if let Some(m) = training {
        if m.dtype() != DType::Bool {
            return Err(EvalError::Invalid(format!(
                "Dropout training_mode must be bool, got {}",
                m.dtype()
            )));
        }
        let on = m.scalar_i64().ok_or_else(|| {
            EvalError::Invalid("Dropout training_mode must have one element".into())
        })?;
        if on != 0 && ratio.unwrap_or(0.5) != 0.0 {
            return Err(EvalError::Unsupported(
                "Dropout in training mode (random masks)".into(),
            ));
        }
    }
    let mask = Tensor::full(x.shape().to_vec(), Bool8::from(true))?;
    Ok(vec![x.clone(), mask])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{UnaryOp, VariadicOp};
    use half::{bf16, f16};

    fn ty(dtype: DType, dims: &[usize]) -> TensorType {
        TensorType::fixed(dtype, dims)
    }

    fn inp(t: &TensorType) -> Option<InferInput<'_>> {
        Some(InferInput { ty: t, value: None })
    }

    #[test]
    fn infer_broadcasts_and_checks_dtypes() {
        let a = ty(DType::F32, &[2, 1, 4]);
        let b = ty(DType::F32, &[3, 1]);
        let out = infer(&Op::Binary(BinaryOp::Add), &[inp(&a), inp(&b)], 1).unwrap();
        assert_eq!(out, vec![ty(DType::F32, &[2, 3, 4])]);
        let cmp = infer(&Op::Binary(BinaryOp::Less), &[inp(&a), inp(&b)], 1).unwrap();
        assert_eq!(cmp[0].dtype, DType::Bool);
        let i = ty(DType::I32, &[4]);
        assert!(matches!(
            infer(&Op::Binary(BinaryOp::Add), &[inp(&a), inp(&i)], 1),
            Err(InferError::Dtype(_))
        ));
        let p = infer(&Op::Binary(BinaryOp::Pow), &[inp(&i), inp(&a)], 1).unwrap();
        assert_eq!(p[0], ty(DType::I32, &[2, 1, 4]));
        let bad = ty(DType::F32, &[5]);
        assert!(matches!(
            infer(&Op::Binary(BinaryOp::Mul), &[inp(&a), inp(&bad)], 1),
            Err(InferError::Shape(_))
        ));
        assert!(matches!(
            infer(&Op::Unary(UnaryOp::Exp), &[inp(&i)], 1),
            Err(InferError::Dtype(_))
        ));
        assert!(matches!(
            infer(&Op::Unary(UnaryOp::Exp), &[], 1),
            Err(InferError::Arity(_))
        ));
        assert!(matches!(
            infer(&Op::Unary(UnaryOp::Exp), &[inp(&a), inp(&a)], 1),
            Err(InferError::Arity(_))
        ));
    }

    #[test]
    fn infer_keeps_symbolic_dims() {
        let a = TensorType {
            dtype: DType::F16,
            shape: Shape::Ranked(vec![Dim::Sym("n".into()), Dim::Static(4)]),
        };
        let b = ty(DType::F16, &[4]);
        let out = infer(
            &Op::Variadic(VariadicOp::Max),
            &[inp(&a), inp(&b), inp(&b)],
            1,
        )
        .unwrap();
        assert_eq!(out[0], a);
        let s = ty(DType::F16, &[1]);
        let pr = infer(&Op::Binary(BinaryOp::PRelu), &[inp(&a), inp(&s)], 1).unwrap();
        assert_eq!(pr[0], a);
        assert!(infer(&Op::Binary(BinaryOp::PRelu), &[inp(&b), inp(&a)], 1).is_err());
        let c = ty(DType::Bool, &[3, 1]);
        let w = infer(&Op::Where, &[inp(&c), inp(&b), inp(&b)], 1).unwrap();
        assert_eq!(w[0], ty(DType::F16, &[3, 4]));
        let cast = infer(&Op::Cast { to: DType::I8 }, &[inp(&a)], 1).unwrap();
        assert_eq!(cast[0].dtype, DType::I8);
        assert_eq!(cast[0].shape, a.shape);
    }

    #[test]
    fn infer_clip_and_dropout() {
        let x = ty(DType::I8, &[3]);
        let lo = ty(DType::I8, &[]);
        assert_eq!(
            infer(&Op::Clip, &[inp(&x), None, inp(&lo)], 1).unwrap(),
            vec![x.clone()]
        );
        let wide = ty(DType::I8, &[2]);
        assert!(infer(&Op::Clip, &[inp(&x), inp(&wide)], 1).is_err());
        let f = ty(DType::F32, &[2, 2]);
        let d = infer(&Op::Dropout, &[inp(&f)], 2).unwrap();
        assert_eq!(d, vec![f.clone(), ty(DType::Bool, &[2, 2])]);
        let on = Tensor::scalar(Bool8(1));
        let mode = ty(DType::Bool, &[]);
        let r = infer(
            &Op::Dropout,
            &[
                inp(&f),
                None,
                Some(InferInput {
                    ty: &mode,
                    value: Some(&on),
                }),
            ],
            2,
        );
        assert!(matches!(r, Err(InferError::Unsupported(_))));
    }

    #[test]
    fn cast_follows_onnx() {
        let x = Tensor::from_vec(vec![5], vec![-1.7f32, 0.0, 2.5, 300.0, f32::NAN]).unwrap();
        assert_eq!(
            cast(&x, DType::I32).unwrap().view::<i32>(),
            &[-1, 0, 2, 300, 0]
        );
        assert_eq!(
            cast(&x, DType::Bool).unwrap().view::<Bool8>(),
            &[Bool8(1), Bool8(0), Bool8(1), Bool8(1), Bool8(1)]
        );
        // 1 + 2^-11 + 2^-23 is just above the f16 tie: rounds up, not to even.
        let t = Tensor::from_vec(
            vec![3],
            vec![
                1.0f32 + 2f32.powi(-11) + 2f32.powi(-23),
                65520.0,
                1.0 + 2f32.powi(-8) + 2f32.powi(-23),
            ],
        )
        .unwrap();
        let h = cast(&t, DType::F16).unwrap();
        assert_eq!(h.view::<f16>()[0].to_f32(), 1.0 + 2f32.powi(-10));
        assert!(h.view::<f16>()[1].is_infinite());
        let b = cast(&t, DType::BF16).unwrap();
        assert_eq!(b.view::<bf16>()[0].to_f32(), 1.0);
        assert_eq!(b.view::<bf16>()[2].to_f32(), 1.0 + 2f32.powi(-7));
        let big = Tensor::from_vec(vec![1], vec![u64::MAX]).unwrap();
        assert_eq!(
            cast(&big, DType::F64).unwrap().view::<f64>(),
            &[18446744073709551615.0]
        );
        assert_eq!(
            cast(&big, DType::F16).unwrap().view::<f16>()[0],
            f16::INFINITY
        );
        let i = Tensor::from_vec(vec![2], vec![-1i64, 70000]).unwrap();
        assert_eq!(cast(&i, DType::U8).unwrap().view::<u8>(), &[255, 112]);
        let via = eval(&Op::Cast { to: DType::F64 }, &[Some(i)], 1).unwrap();
        assert_eq!(via[0].view::<f64>(), &[-1.0, 70000.0]);
    }

    #[test]
    fn dropout_is_identity_with_a_true_mask() {
        let x = Tensor::from_vec(vec![2], vec![1.5f32, -2.0]).unwrap();
        let r = Tensor::scalar(0.3f32);
        let out = eval(&Op::Dropout, &[Some(x.clone()), Some(r.clone())], 2).unwrap();
        assert_eq!(out[0], x);
        assert_eq!(out[1].view::<Bool8>(), &[Bool8(1), Bool8(1)]);
        let on = Tensor::scalar(Bool8(1));
        assert!(matches!(
            eval(
                &Op::Dropout,
                &[Some(x.clone()), Some(r), Some(on.clone())],
                2
            ),
            Err(EvalError::Unsupported(_))
        ));
        let zero = Tensor::scalar(0.0f32);
        let same = eval(&Op::Dropout, &[Some(x.clone()), Some(zero), Some(on)], 2).unwrap();
        assert_eq!(same[0], x);
    }

    #[test]
    fn eval_checks_arity_and_identity_shares_storage() {
        let x = Tensor::from_vec(vec![2], vec![1i32, 2]).unwrap();
        let y = eval(&Op::Identity, &[Some(x.clone())], 1).unwrap();
        assert_eq!(y[0], x);
        assert!(eval(&Op::Binary(BinaryOp::Add), &[Some(x.clone())], 1).is_err());
        assert!(
            eval(
                &Op::Unary(UnaryOp::Abs),
                &[Some(x.clone()), Some(x.clone())],
                1
            )
            .is_err()
        );
        let s = eval(
            &Op::Variadic(VariadicOp::Sum),
            &[Some(x.clone()), Some(x)],
            1,
        )
        .unwrap();
        assert_eq!(s[0].view::<i32>(), &[2, 4]);
    }
}
