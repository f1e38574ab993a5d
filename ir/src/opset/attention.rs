//! Fused attention ([`Op::FusedAttention`]): reference semantics by decomposition. The ops the
//! fusion replaced run one after another — `MatMul(Q, Kt)` with the score program as its fused
//! epilogue, `Softmax` over the last axis, the optional `Where(IsNaN(p), 0, p)`, `MatMul(·, V)`
//! — so the fused op is checked against exactly the graph it came from, every rounding kept.
//! With a layout ([`crate::ops::AttentionLayout`]), the inputs are transposed into the
//! canonical layout first and the result transposed into the stored one.

use crate::dtype::DType;
use crate::infer::{InferError, InferInput, infer as infer_op};
use crate::interp::{EvalError, eval_op};
use crate::ops::{Fused, FusedAttention, Op, UnaryOp};
use crate::opset::util::{transposed, transposed_type};
use crate::tensor::Tensor;
use crate::types::TensorType;

/// The softmax the fused op normalises with (opset-13 form over the last axis).
pub const SOFTMAX: Op = Op::Softmax {
    axis: -1,
    legacy: false,
};

/// The op computing the (programmed) scores from Q, Kt and the extra inputs.
pub fn score_op(a: &FusedAttention) -> Op {
    match &a.score {
        None => Op::MatMul,
        Some(p) => Op::Fused(Box::new(Fused {
            anchor: Some(Op::MatMul),
            anchor_inputs: 2,
            program: p.clone(),
        })),
    }
}

/// Number of extra inputs (after Q, Kt and V) the op takes.
pub fn num_extras(a: &FusedAttention) -> usize {
    a.score.as_ref().map_or(0, |p| p.inputs.saturating_sub(1))
}

fn arity(a: &FusedAttention, n: usize) -> Result<(), String> {
    if a.score.as_ref().is_some_and(|p| p.inputs == 0) {
        return Err("fused attention: the score program takes no score input".into());
    }
    let want = 3 + num_extras(a);
    if n != want {
        return Err(format!(
            "fused attention takes {want} inputs (Q, Kt, V and {} extras), the node has {n}",
            want - 3
        ));
    }
    Ok(())
}

/// Output type of a fused attention op.
pub fn infer(
    a: &FusedAttention,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    arity(a, inputs.len()).map_err(InferError::Arity)?;
    let Some(layout) = &a.layout else {
        return infer_canonical(a, inputs);
    };
    // The canonical views of Q, Kt and V, then the stored output.
    let mut views: Vec<TensorType> = Vec::new();
    for (p, x) in [&layout.q, &layout.k, &layout.v].into_iter().zip(inputs) {
        let x = x
            .as_ref()
            .ok_or_else(|| InferError::Arity("fused attention is missing Q, K or V".into()))?;
        views.push(transposed_type(p, x.ty)?);
    }
    let mut canon: Vec<Option<InferInput<'_>>> = views
        .iter()
        .map(|ty| Some(InferInput { ty, value: None }))
        .collect();
    canon.extend_from_slice(&inputs[3..]);
    let y = infer_canonical(a, &canon)?;
    Ok(vec![transposed_type(&layout.out, &y[0])?])
}

/// The one output type of `op` on `ins`.
fn one(op: &Op, ins: &[Option<InferInput<'_>>]) -> Result<TensorType, InferError> {
    infer_op(op, ins, 1)?
        .into_iter()
        .next()
        .ok_or_else(|| InferError::Arity(format!("{} has no output", op.name())))
}

/// [`infer`] for the canonical layout.
fn infer_canonical(
    a: &FusedAttention,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let mut score_in: Vec<Option<InferInput<'_>>> = inputs[..2].to_vec();
    score_in.extend_from_slice(&inputs[3..]);
    let s = one(&score_op(a), &score_in)?;
    if !s.dtype.is_float() {
        return Err(InferError::Dtype(format!(
            "fused attention: scores of {} (needs a float type)",
            s.dtype.name()
        )));
    }
    let p = one(
        &SOFTMAX,
        &[Some(InferInput {
            ty: &s,
            value: None,
        })],
    )?;
    one(
        &Op::MatMul,
        &[
            Some(InferInput {
                ty: &p,
                value: None,
            }),
            inputs[2],
        ],
    )
    .map(|t| vec![t])
}

/// A zero scalar of `dtype`.
fn zero(dtype: DType) -> Result<Tensor, EvalError> {
    let z = Tensor::scalar(0.0f32);
    if dtype == DType::F32 {
        return Ok(z);
    }
    first(eval_op(&Op::Cast { to: dtype }, &[Some(z)], 1)?, "Cast")
}

fn first(v: Vec<Tensor>, what: &str) -> Result<Tensor, EvalError> {
    v.into_iter()
        .next()
        .ok_or_else(|| EvalError::Invalid(format!("{what} has no output")))
}

/// Evaluates a fused attention op by decomposition.
pub fn eval(a: &FusedAttention, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>, EvalError> {
    arity(a, inputs.len()).map_err(EvalError::Invalid)?;
    let Some(layout) = &a.layout else {
        return eval_canonical(a, inputs);
    };
    let mut canon: Vec<Option<Tensor>> = Vec::new();
    for (j, x) in inputs.iter().enumerate() {
        canon.push(match layout.input(j) {
            Some(p) => {
                let x = x.clone().ok_or_else(|| {
                    EvalError::Invalid("fused attention is missing Q, K or V".into())
                })?;
                Some(transposed(p, x)?)
            }
            None => x.clone(),
        });
    }
    let y = first(eval_canonical(a, &canon)?, "fused attention")?;
    Ok(vec![transposed(&layout.out, y)?])
}

/// [`eval`] for the canonical layout.
fn eval_canonical(a: &FusedAttention, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>, EvalError> {
    let mut score_in: Vec<Option<Tensor>> = inputs[..2].to_vec();
    score_in.extend_from_slice(&inputs[3..]);
    let s = first(eval_op(&score_op(a), &score_in, 1)?, "the score op")?;
    let mut p = first(eval_op(&SOFTMAX, &[Some(s)], 1)?, "Softmax")?;
    if a.nan_fill_zero {
        let nan = first(
            eval_op(&Op::Unary(UnaryOp::IsNaN), &[Some(p.clone())], 1)?,
            "IsNaN",
        )?;
        let z = zero(p.dtype())?;
        p = first(
            eval_op(&Op::Where, &[Some(nan), Some(z), Some(p)], 1)?,
            "Where",
        )?;
    }
    Ok(vec![first(
        eval_op(&Op::MatMul, &[Some(p), inputs[2].clone()], 1)?,
        "MatMul",
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{BinaryOp, Program, Step};

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    fn add_mask() -> FusedAttention {
        FusedAttention {
            score: Some(Program {
                inputs: 2,
                steps: vec![Step {
                    op: Op::Binary(BinaryOp::Add),
                    args: vec![Some(0), Some(1)],
                }],
            }),
            nan_fill_zero: true,
            layout: None,
        }
    }

    #[test]
    fn matches_the_decomposed_ops_and_zeroes_fully_masked_rows() {
        // Q [2, 1], Kt [1, 2], V [2, 2]; row 1 fully masked.
        let q = t(&[2, 1], vec![1.0, 2.0]);
        let kt = t(&[1, 2], vec![0.5, -0.5]);
        let v = t(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let inf = f32::NEG_INFINITY;
        let mask = t(&[2, 1], vec![0.0, inf]);
        let out = eval(&add_mask(), &[Some(q), Some(kt), Some(v), Some(mask)]).unwrap();
        // Row 0: scores [0.5, -0.5] → softmax [e/(e+1)...].
        let p0 = 1.0 / (1.0 + (-1.0f32).exp());
        let got = out[0].view::<f32>();
        assert!((got[0] - (p0 * 1.0 + (1.0 - p0) * 3.0)).abs() < 1e-6);
        assert!((got[1] - (p0 * 2.0 + (1.0 - p0) * 4.0)).abs() < 1e-6);
        assert_eq!(&got[2..], &[0.0, 0.0]);
        let mut nofill = add_mask();
        nofill.nan_fill_zero = false;
        let q = t(&[2, 1], vec![1.0, 2.0]);
        let kt = t(&[1, 2], vec![0.5, -0.5]);
        let v = t(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let mask = t(&[2, 1], vec![0.0, inf]);
        let out = eval(&nofill, &[Some(q), Some(kt), Some(v), Some(mask)]).unwrap();
        assert!(out[0].view::<f32>()[2].is_nan());
    }

    #[test]
    fn infers_the_output_shape_and_checks_arity() {
        let q = TensorType::fixed(DType::F32, &[3, 4, 8]);
        let kt = TensorType::fixed(DType::F32, &[3, 8, 5]);
        let v = TensorType::fixed(DType::F32, &[3, 5, 6]);
        let m = TensorType::fixed(DType::F32, &[5]);
        let i = |ty| Some(InferInput { ty, value: None });
        let out = infer(&add_mask(), &[i(&q), i(&kt), i(&v), i(&m)]).unwrap();
        assert_eq!(out[0], TensorType::fixed(DType::F32, &[3, 4, 6]));
        let plain = FusedAttention {
            score: None,
            nan_fill_zero: false,
            layout: None,
        };
        assert!(infer(&plain, &[i(&q), i(&kt), i(&v), i(&m)]).is_err());
        assert!(infer(&add_mask(), &[i(&q), i(&kt), i(&v)]).is_err());
        let bad_v = TensorType::fixed(DType::F32, &[3, 4, 6]);
        assert!(infer(&plain, &[i(&q), i(&kt), i(&bad_v)]).is_err());
        assert!(eval(&plain, &[None, None]).is_err());
    }
}
