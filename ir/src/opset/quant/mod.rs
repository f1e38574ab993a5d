//! Quantization ops: QuantizeLinear / DequantizeLinear (per tensor, per axis, blocked),
//! DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv.
//!
//! Integer products accumulate in i32 (wrapping, as the spec allows); requantization follows
//! the ONNX reference implementation's float arithmetic and rounds half to even.

pub(crate) mod conv;
pub(crate) mod linear;
pub(crate) mod matmul;

use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, broadcast_shapes, input, opt_input};
use crate::interp::EvalError;
use crate::lowp;
use crate::ops::Op;
use crate::opset::util::{opt, req};
use crate::tensor::Tensor;
use crate::types::{Dim, Shape, TensorType};
use half::{bf16, f16};

/// Integer dtypes a quantized tensor may have.
const QUANT_DTYPES: [DType; 6] = [
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::I32,
    DType::U32,
];

/// True for the dtypes a quantized tensor may have: [`QUANT_DTYPES`] and the storage-only
/// float8, float4, 4-bit and 2-bit dtypes (not FLOAT8E8M0, which is a scale type).
pub(crate) fn is_quant_dtype(d: DType) -> bool {
    QUANT_DTYPES.contains(&d) || (d.is_lowp() && d != DType::F8E8M0)
}

/// Rounds an f32 to `dtype` precision when `dtype` is a half type (numpy's f16 arithmetic).
pub(crate) fn half_round(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::BF16 => bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

/// The value range of an integer dtype, as f64.
pub(crate) fn int_range(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::U8 => (0.0, u8::MAX as f64),
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U64 => (0.0, u64::MAX as f64),
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::I4 => (-8.0, 7.0),
        DType::U4 => (0.0, 15.0),
        DType::I2 => (-2.0, 1.0),
        DType::U2 => (0.0, 3.0),
        _ => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

/// A tensor of `dtype` from f64 values (exact for in-range integers; floats round once).
pub(crate) fn from_f64_as(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Result<Tensor, EvalError> {
    Ok(match dtype {
        d if d.is_lowp() => {
            let codes = v
                .iter()
                .map(|&x| lowp::encode_f64(d, x, true, lowp::E8m0Round::Up))
                .collect();
            Tensor::from_codes(d, shape, codes)?
        }
        DType::F16 => {
            Tensor::from_vec(shape, v.iter().map(|&x| f16::from_f32(x as f32)).collect())?
        }
        DType::BF16 => {
            Tensor::from_vec(shape, v.iter().map(|&x| bf16::from_f32(x as f32)).collect())?
        }
        _ => crate::dispatch!(dtype, T => {
            Tensor::from_vec(shape, v.iter().map(|&x| T::round_from_f64(x)).collect::<Vec<T>>())?
        }),
    })
}

/// The output dtype of QuantizeLinear.
pub(crate) fn quantize_dtype(
    x: DType,
    scale: DType,
    zp: Option<DType>,
    output_dtype: Option<DType>,
) -> Result<DType, String> {
    if !matches!(x, DType::F32 | DType::F16 | DType::BF16 | DType::I32) {
        return Err(format!("QuantizeLinear does not accept a {x} input"));
    }
    if !scale.is_float() {
        return Err(format!("QuantizeLinear scale must be float, got {scale}"));
    }
    let out = match (zp, output_dtype) {
        (Some(z), Some(o)) if z != o => {
            return Err(format!(
                "QuantizeLinear output_dtype {o} differs from the zero point's {z}"
            ));
        }
        (Some(z), _) => z,
        (None, Some(o)) => o,
        (None, None) => DType::U8,
    };
    if !is_quant_dtype(out) {
        return Err(format!("QuantizeLinear cannot quantize to {out}"));
    }
    Ok(out)
}

/// The output dtype of DequantizeLinear (the scale's).
pub(crate) fn dequantize_dtype(x: DType, scale: DType, zp: Option<DType>) -> Result<DType, String> {
    if !is_quant_dtype(x) {
        return Err(format!("DequantizeLinear does not accept a {x} input"));
    }
    if let Some(z) = zp {
        if z != x {
            return Err(format!(
                "DequantizeLinear zero point of {z} for an input of {x}"
            ));
        }
    }
    if !scale.is_float() {
        return Err(format!("DequantizeLinear scale must be float, got {scale}"));
    }
    Ok(scale)
}

/// Numpy matmul output shape.
fn matmul_shape(a: &Shape, b: &Shape) -> Result<Shape, InferError> {
    let (Some(a), Some(b)) = (a.dims(), b.dims()) else {
        return Ok(Shape::Unranked);
    };
    if a.is_empty() || b.is_empty() {
        return Err(InferError::Shape(
            "matmul operands must have rank ≥ 1".into(),
        ));
    }
    let mut a2 = a.to_vec();
    if a.len() == 1 {
        a2.insert(0, Dim::Static(1));
    }
    let mut b2 = b.to_vec();
    if b.len() == 1 {
        b2.push(Dim::Static(1));
    }
    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if let (Dim::Static(x), Dim::Static(y)) = (ka, kb) {
        if x != y {
            return Err(InferError::Shape(format!(
                "matmul inner dims differ: {} × {}",
                Shape::Ranked(a.to_vec()),
                Shape::Ranked(b.to_vec())
            )));
        }
    }
    let batch = broadcast_shapes(
        &Shape::Ranked(a2[..a2.len() - 2].to_vec()),
        &Shape::Ranked(b2[..b2.len() - 2].to_vec()),
    )?;
    let mut out = batch.dims().map(<[Dim]>::to_vec).unwrap_or_default();
    if a.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(Shape::Ranked(out))
}

fn max_inputs(op: &Op, inputs: &[Option<InferInput<'_>>], n: usize) -> Result<(), InferError> {
    if inputs.len() > n {
        return Err(InferError::Arity(format!(
            "{} takes at most {n} inputs, the node has {}",
            op.name(),
            inputs.len()
        )));
    }
    Ok(())
}

fn need_8bit(op: &Op, what: &str, d: DType) -> Result<(), InferError> {
    if !matches!(d, DType::I8 | DType::U8) {
        return Err(InferError::Dtype(format!(
            "{}: {what} must be i8 or u8, got {d}",
            op.name()
        )));
    }
    Ok(())
}

/// Checks a scale's granularity where both shapes are static.
fn check_granularity(
    op: &Op,
    x: &TensorType,
    s: &TensorType,
    axis: i64,
    block_size: usize,
) -> Result<(), InferError> {
    if let (Some(xs), Some(ss)) = (x.shape.as_static(), s.shape.as_static()) {
        linear::Granularity::of(op.name(), &xs, &ss, axis, block_size)
            .map_err(InferError::Shape)?;
    }
    Ok(())
}

/// The conv output shape for QLinearConv/ConvInteger.
fn conv_shape(
    op: &Op,
    attrs: &crate::ops::ConvAttrs,
    x: &TensorType,
    w: &TensorType,
) -> Result<Shape, InferError> {
    match (x.shape.dims(), w.shape.dims()) {
        (Some(xd), Some(wd)) => Ok(Shape::Ranked(
            conv::infer_shape(op.name(), attrs, xd, wd).map_err(InferError::Shape)?,
        )),
        _ => Ok(Shape::Unranked),
    }
}

/// Output types of the ops of this family.
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    _num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    let dt = InferError::Dtype;
    match op {
        Op::QuantizeLinear {
            axis,
            block_size,
            output_dtype,
            ..
        } => {
            max_inputs(op, inputs, 3)?;
            let (x, s) = (input(op, inputs, 0)?, input(op, inputs, 1)?);
            let zp = opt_input(inputs, 2);
            let dtype = quantize_dtype(
                x.ty.dtype,
                s.ty.dtype,
                zp.map(|z| z.ty.dtype),
                *output_dtype,
            )
            .map_err(dt)?;
            check_granularity(op, x.ty, s.ty, *axis, *block_size)?;
            Ok(vec![TensorType {
                dtype,
                shape: x.ty.shape.clone(),
            }])
        }
        Op::DequantizeLinear { axis, block_size } => {
            max_inputs(op, inputs, 3)?;
            let (x, s) = (input(op, inputs, 0)?, input(op, inputs, 1)?);
            let zp = opt_input(inputs, 2);
            let dtype =
                dequantize_dtype(x.ty.dtype, s.ty.dtype, zp.map(|z| z.ty.dtype)).map_err(dt)?;
            check_granularity(op, x.ty, s.ty, *axis, *block_size)?;
            Ok(vec![TensorType {
                dtype,
                shape: x.ty.shape.clone(),
            }])
        }
        Op::DynamicQuantizeLinear => {
            max_inputs(op, inputs, 1)?;
            let x = input(op, inputs, 0)?;
            if x.ty.dtype != DType::F32 {
                return Err(dt(format!(
                    "DynamicQuantizeLinear needs an f32 input, got {}",
                    x.ty.dtype
                )));
            }
            Ok(vec![
                TensorType {
                    dtype: DType::U8,
                    shape: x.ty.shape.clone(),
                },
                TensorType::fixed(DType::F32, &[]),
                TensorType::fixed(DType::U8, &[]),
            ])
        }
        Op::MatMulInteger => {
            max_inputs(op, inputs, 4)?;
            let (a, b) = (input(op, inputs, 0)?, input(op, inputs, 1)?);
            need_8bit(op, "A", a.ty.dtype)?;
            need_8bit(op, "B", b.ty.dtype)?;
            for (i, of) in [(2, a), (3, b)] {
                if let Some(z) = opt_input(inputs, i) {
                    if z.ty.dtype != of.ty.dtype {
                        return Err(dt(format!(
                            "MatMulInteger zero point of {} for an input of {}",
                            z.ty.dtype, of.ty.dtype
                        )));
                    }
                }
            }
            Ok(vec![TensorType {
                dtype: DType::I32,
                shape: matmul_shape(&a.ty.shape, &b.ty.shape)?,
            }])
        }
        Op::QLinearMatMul => {
            max_inputs(op, inputs, 8)?;
            let a = input(op, inputs, 0)?;
            let b = input(op, inputs, 3)?;
            need_8bit(op, "a", a.ty.dtype)?;
            need_8bit(op, "b", b.ty.dtype)?;
            let scales = [
                input(op, inputs, 1)?,
                input(op, inputs, 4)?,
                input(op, inputs, 6)?,
            ];
            let sd = scales[0].ty.dtype;
            if !sd.is_float() || scales.iter().any(|s| s.ty.dtype != sd) {
                return Err(dt("QLinearMatMul scales must share one float dtype".into()));
            }
            let dtype = match opt_input(inputs, 7) {
                Some(z) => {
                    need_8bit(op, "y_zero_point", z.ty.dtype)?;
                    z.ty.dtype
                }
                None => a.ty.dtype,
            };
            Ok(vec![TensorType {
                dtype,
                shape: matmul_shape(&a.ty.shape, &b.ty.shape)?,
            }])
        }
        Op::ConvInteger(attrs) | Op::QLinearConv(attrs) if !attrs.layout.is_first() => Err(
            InferError::Unsupported(format!("{} is channels-first only", op.name())),
        ),
        Op::ConvInteger(attrs) => {
            max_inputs(op, inputs, 4)?;
            let (x, w) = (input(op, inputs, 0)?, input(op, inputs, 1)?);
            need_8bit(op, "x", x.ty.dtype)?;
            need_8bit(op, "w", w.ty.dtype)?;
            Ok(vec![TensorType {
                dtype: DType::I32,
                shape: conv_shape(op, attrs, x.ty, w.ty)?,
            }])
        }
        Op::QLinearConv(attrs) => {
            max_inputs(op, inputs, 9)?;
            let (x, w) = (input(op, inputs, 0)?, input(op, inputs, 3)?);
            need_8bit(op, "x", x.ty.dtype)?;
            need_8bit(op, "w", w.ty.dtype)?;
            for i in [1, 4, 6] {
                let s = input(op, inputs, i)?;
                if !s.ty.dtype.is_float() {
                    return Err(dt(format!(
                        "QLinearConv scales must be float, got {}",
                        s.ty.dtype
                    )));
                }
            }
            if let Some(b) = opt_input(inputs, 8) {
                if b.ty.dtype != DType::I32 {
                    return Err(dt(format!(
                        "QLinearConv bias must be i32, got {}",
                        b.ty.dtype
                    )));
                }
            }
            let dtype = match opt_input(inputs, 7) {
                Some(z) => {
                    need_8bit(op, "y_zero_point", z.ty.dtype)?;
                    z.ty.dtype
                }
                None => x.ty.dtype,
            };
            Ok(vec![TensorType {
                dtype,
                shape: conv_shape(op, attrs, x.ty, w.ty)?,
            }])
        }
        _ => Err(InferError::Unsupported(format!(
            "{} is not a quantization op",
            op.name()
        ))),
    }
}

/// Reference semantics of the ops of this family.
pub fn eval(
    op: &Op,
    inputs: &[Option<Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let at_most = |n: usize| {
        if inputs.len() > n {
            Err(EvalError::Invalid(format!(
                "{} takes at most {n} inputs, the node has {}",
                op.name(),
                inputs.len()
            )))
        } else {
            Ok(())
        }
    };
    let r = |i| req(op, inputs, i);
    let o = |i| opt(inputs, i);
    let out = match op {
        Op::QuantizeLinear {
            axis,
            block_size,
            output_dtype,
            saturate,
        } => {
            at_most(3)?;
            linear::quantize(
                r(0)?,
                r(1)?,
                o(2),
                *axis,
                *block_size,
                *output_dtype,
                *saturate,
            )?
        }
        Op::DequantizeLinear { axis, block_size } => {
            at_most(3)?;
            linear::dequantize(r(0)?, r(1)?, o(2), *axis, *block_size)?
        }
        Op::DynamicQuantizeLinear => {
            at_most(1)?;
            return linear::dynamic_quantize(r(0)?);
        }
        Op::MatMulInteger => {
            at_most(4)?;
            matmul::matmul_integer(r(0)?, r(1)?, o(2), o(3))?
        }
        Op::QLinearMatMul => {
            at_most(8)?;
            matmul::qlinear_matmul(r(0)?, r(1)?, o(2), r(3)?, r(4)?, o(5), r(6)?, o(7))?
        }
        Op::ConvInteger(attrs) => {
            at_most(4)?;
            conv::conv_integer(attrs, r(0)?, r(1)?, o(2), o(3))?
        }
        Op::QLinearConv(attrs) => {
            at_most(9)?;
            conv::qlinear_conv(
                attrs,
                r(0)?,
                r(1)?,
                o(2),
                r(3)?,
                r(4)?,
                o(5),
                r(6)?,
                o(7),
                o(8),
            )?
        }
        _ => {
            return Err(EvalError::Unsupported(format!(
                "{} is not a quantization op",
                op.name()
            )));
        }
    };
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ConvAttrs;

    fn inp(t: &TensorType) -> Option<InferInput<'_>> {
        Some(InferInput { ty: t, value: None })
    }

    #[test]
    fn infer_quantize_dtypes_and_granularity() {
        let x = TensorType::fixed(DType::F32, &[2, 3]);
        let s = TensorType::fixed(DType::F32, &[3]);
        let z = TensorType::fixed(DType::I8, &[3]);
        let q = Op::QuantizeLinear {
            axis: -1,
            block_size: 0,
            output_dtype: None,
            saturate: true,
        };
        let out = infer(&q, &[inp(&x), inp(&s), inp(&z)], 1).unwrap();
        assert_eq!(out, vec![TensorType::fixed(DType::I8, &[2, 3])]);
        let u = infer(&q, &[inp(&x), inp(&s)], 1).unwrap();
        assert_eq!(u[0].dtype, DType::U8);
        let bad = Op::QuantizeLinear {
            axis: 0,
            block_size: 0,
            output_dtype: None,
            saturate: true,
        };
        assert!(matches!(
            infer(&bad, &[inp(&x), inp(&s)], 1),
            Err(InferError::Shape(_))
        ));
        let d = Op::DequantizeLinear {
            axis: 1,
            block_size: 0,
        };
        let xi = TensorType::fixed(DType::I8, &[2, 3]);
        let h = TensorType::fixed(DType::F16, &[]);
        assert_eq!(
            infer(&d, &[inp(&xi), inp(&h)], 1).unwrap()[0].dtype,
            DType::F16
        );
        assert!(matches!(
            infer(&d, &[inp(&x), inp(&h)], 1),
            Err(InferError::Dtype(_))
        ));
        let dy = infer(&Op::DynamicQuantizeLinear, &[inp(&x)], 3).unwrap();
        assert_eq!(dy.len(), 3);
        assert_eq!(dy[1], TensorType::fixed(DType::F32, &[]));
    }

    #[test]
    fn infer_matmul_and_conv_shapes() {
        let a = TensorType {
            dtype: DType::U8,
            shape: Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(4), Dim::Static(3)]),
        };
        let b = TensorType::fixed(DType::I8, &[3, 5]);
        let y = infer(&Op::MatMulInteger, &[inp(&a), inp(&b)], 1).unwrap();
        assert_eq!(
            y[0].shape,
            Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(4), Dim::Static(5)])
        );
        assert_eq!(y[0].dtype, DType::I32);
        let v = TensorType::fixed(DType::U8, &[3]);
        let yv = infer(&Op::MatMulInteger, &[inp(&a), inp(&v)], 1).unwrap();
        assert_eq!(
            yv[0].shape,
            Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(4)])
        );
        let wrong = TensorType::fixed(DType::U8, &[4, 5]);
        assert!(infer(&Op::MatMulInteger, &[inp(&a), inp(&wrong)], 1).is_err());
        let f = TensorType::fixed(DType::F32, &[3, 5]);
        assert!(matches!(
            infer(&Op::MatMulInteger, &[inp(&a), inp(&f)], 1),
            Err(InferError::Dtype(_))
        ));
        let x = TensorType::fixed(DType::U8, &[1, 2, 5, 5]);
        let w = TensorType::fixed(DType::U8, &[4, 2, 3, 3]);
        let attrs = ConvAttrs {
            group: 1,
            ..ConvAttrs::default()
        };
        let c = infer(&Op::ConvInteger(attrs), &[inp(&x), inp(&w)], 1).unwrap();
        assert_eq!(c[0], TensorType::fixed(DType::I32, &[1, 4, 3, 3]));
    }

    #[test]
    fn eval_dispatches_and_checks_arity() {
        let x = Tensor::from_vec(vec![2], vec![1f32, -1.0]).unwrap();
        let s = Tensor::scalar(0.5f32);
        let q = Op::QuantizeLinear {
            axis: 1,
            block_size: 0,
            output_dtype: Some(DType::I8),
            saturate: true,
        };
        let y = eval(&q, &[Some(x.clone()), Some(s.clone())], 1).unwrap();
        assert_eq!(y[0].view::<i8>(), &[2, -2]);
        let d = Op::DequantizeLinear {
            axis: 1,
            block_size: 0,
        };
        let back = eval(&d, &[Some(y[0].clone()), Some(s.clone())], 1).unwrap();
        assert_eq!(back[0], x);
        assert!(eval(&q, &[Some(x.clone())], 1).is_err());
        assert!(eval(&q, &[Some(x.clone()), Some(s.clone()), None, Some(s)], 1).is_err());
        let dq = eval(&Op::DynamicQuantizeLinear, &[Some(x)], 3).unwrap();
        assert_eq!(dq.len(), 3);
    }
}
