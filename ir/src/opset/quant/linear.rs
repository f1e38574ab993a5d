//! QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear.
//!
//! Arithmetic follows the ONNX reference implementation: `x / scale` in the promoted float
//! type of the two (f16 ÷ f16 rounds to f16, as numpy does), rounding half to even, then the
//! zero point is added and the result saturates to the output integer type.

use super::{half_round, int_range};
use crate::dtype::DType;
use crate::interp::EvalError;
use crate::lowp;
use crate::opset::elementwise::kernels::map1;
use crate::opset::util::axis as norm_axis;
use crate::tensor::Tensor;

/// How a scale (and zero point) tensor maps onto the elements of `x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// One scale for all of `x`.
    PerTensor,
    /// One scale per index of `axis` (a 1-D scale of `x.shape[axis]` elements).
    PerAxis {
        /// `x.shape[axis]`.
        dim: usize,
        /// Elements after `axis`.
        inner: usize,
    },
    /// One scale per block of `block` consecutive indices along `axis`; the scale has `x`'s
    /// shape with `ceil(x.shape[axis] / block)` along `axis`.
    Blocked {
        /// `x.shape[axis]`.
        dim: usize,
        /// Elements after `axis`.
        inner: usize,
        /// Block size.
        block: usize,
        /// `scale.shape[axis]`.
        blocks: usize,
    },
}

impl Granularity {
    /// Works out the granularity of a scale of `s` over an input of `x`.
    pub fn of(
        op: &str,
        x: &[usize],
        s: &[usize],
        axis: i64,
        block_size: usize,
    ) -> Result<Granularity, String> {
        if s.iter().product::<usize>() == 1 {
            return Ok(Granularity::PerTensor);
        }
        let a = norm_axis(axis, x.len()).map_err(|e| format!("{op}: {e}"))?;
        if x.is_empty() {
            return Err(format!("{op}: a per-axis scale needs a ranked input"));
        }
        let inner: usize = x[a + 1..].iter().product();
        let dim = x[a];
        if block_size == 0 {
            if s.len() != 1 || s[0] != dim {
                return Err(format!(
                    "{op}: scale of shape {s:?} is neither per-tensor nor per-axis for input \
                     {x:?} along axis {a}"
                ));
            }
            return Ok(Granularity::PerAxis { dim, inner });
        }
        let blocks = dim.div_ceil(block_size);
        let ok = s.len() == x.len()
            && s.iter()
                .zip(x)
                .enumerate()
                .all(|(i, (&sd, &xd))| if i == a { sd == blocks } else { sd == xd });
        if !ok {
            return Err(format!(
                "{op}: blocked scale of shape {s:?} does not fit input {x:?} with block size \
                 {block_size} along axis {a}"
            ));
        }
        Ok(Granularity::Blocked {
            dim,
            inner,
            block: block_size,
            blocks,
        })
    }

    /// The scale index of element `i` of `x`.
    #[inline]
    pub fn index(self, i: usize) -> usize {
        match self {
            Granularity::PerTensor => 0,
            Granularity::PerAxis { dim, inner } => (i / inner) % dim,
            Granularity::Blocked {
                dim,
                inner,
                block,
                blocks,
            } => {
                let (outer, rest) = (i / (dim * inner), i % (dim * inner));
                let (a, j) = (rest / inner, rest % inner);
                (outer * blocks + a / block) * inner + j
            }
        }
    }
}

/// Checks a zero point against its scale: same shape, integer dtype.
fn check_zero_point(op: &str, zp: &Tensor, scale: &Tensor) -> Result<(), EvalError> {
    if zp.shape() != scale.shape() && !(zp.numel() == 1 && scale.numel() == 1) {
        return Err(EvalError::Invalid(format!(
            "{op}: zero point of shape {:?} differs from scale of shape {:?}",
            zp.shape(),
            scale.shape()
        )));
    }
    Ok(())
}

/// QuantizeLinear: `saturate(round_half_even(x / scale) + zero_point)` for integer outputs;
/// for float8 outputs `x / scale` converted with the `saturate` rule of Cast (the zero point,
/// which must be 0, is ignored), for FLOAT4E2M1 `x / scale + zero_point` converted (saturating).
#[allow(clippy::too_many_arguments)]
pub fn quantize(
    x: &Tensor,
    scale: &Tensor,
    zp: Option<&Tensor>,
    axis: i64,
    block_size: usize,
    output_dtype: Option<DType>,
    saturate: bool,
) -> Result<Tensor, EvalError> {
    let op = "QuantizeLinear";
    let out = super::quantize_dtype(
        x.dtype(),
        scale.dtype(),
        zp.map(Tensor::dtype),
        output_dtype,
    )
    .map_err(EvalError::Invalid)?;
    let g = Granularity::of(op, x.shape(), scale.shape(), axis, block_size)
        .map_err(EvalError::Invalid)?;
    let scales = scale.to_f64_vec();
    let zps: Vec<f64> = match zp {
        Some(z) => {
            check_zero_point(op, z, scale)?;
            z.to_f64_vec()
        }
        None => vec![0.0; scales.len()],
    };
    let float_out = out.is_float8() || out == DType::F4E2M1;
    let (lo, hi) = int_range(out);
    let xd = x.dtype();
    // numpy: x / scale in the promoted dtype; f16/f16 (or bf16/bf16) rounds to that type.
    let same_half = xd == scale.dtype() && matches!(xd, DType::F16 | DType::BF16);
    let in_f32 = matches!(xd, DType::F32 | DType::F16 | DType::BF16)
        && matches!(scale.dtype(), DType::F32 | DType::F16 | DType::BF16);
    let xs = x.to_f64_vec();
    let idx: Vec<usize> = (0..xs.len()).collect();
    let q = map1(&idx, |i| {
        let s = g.index(i);
        let v = if in_f32 {
            let r = xs[i] as f32 / scales[s] as f32;
            (if same_half { half_round(xd, r) } else { r }) as f64
        } else {
            xs[i] / scales[s]
        };
        if float_out {
            let v = if out == DType::F4E2M1 { v + zps[s] } else { v };
            return v;
        }
        (v.round_ties_even() + zps[s]).clamp(lo, hi)
    });
    if float_out {
        let codes = q
            .iter()
            .map(|&v| lowp::encode_f64(out, v, saturate, lowp::E8m0Round::Up))
            .collect();
        return Ok(Tensor::from_codes(out, x.shape().to_vec(), codes)?);
    }
    super::from_f64_as(out, x.shape().to_vec(), &q)
}

/// DequantizeLinear: `(x - zero_point) * scale`, in the scale's dtype. Float8 and FLOAT4E2M1
/// inputs decode exactly and ignore the zero point (which must be 0 for float8).
pub fn dequantize(
    x: &Tensor,
    scale: &Tensor,
    zp: Option<&Tensor>,
    axis: i64,
    block_size: usize,
) -> Result<Tensor, EvalError> {
    let op = "DequantizeLinear";
    let out = super::dequantize_dtype(x.dtype(), scale.dtype(), zp.map(Tensor::dtype))
        .map_err(EvalError::Invalid)?;
    let g = Granularity::of(op, x.shape(), scale.shape(), axis, block_size)
        .map_err(EvalError::Invalid)?;
    let scales = scale.to_f64_vec();
    let float_in = x.dtype().is_float8() || x.dtype() == DType::F4E2M1;
    let zps: Vec<i64> = match zp {
        Some(z) => {
            check_zero_point(op, z, scale)?;
            if float_in {
                if x.dtype().is_float8() && z.to_f64_vec().iter().any(|&v| v != 0.0) {
                    return Err(EvalError::Invalid(format!(
                        "{op}: a float8 zero point must be 0"
                    )));
                }
                vec![0; scales.len()]
            } else {
                z.to_i64_vec()
            }
        }
        None => vec![0; scales.len()],
    };
    let xf = if float_in { x.to_f64_vec() } else { vec![] };
    let xs = if float_in { vec![] } else { x.to_i64_vec() };
    let idx: Vec<usize> = (0..x.numel()).collect();
    let wide = out == DType::F64;
    let y = map1(&idx, |i| {
        let s = g.index(i);
        if float_in {
            // Decoded float8/float4 values are exact in f32.
            return if wide {
                xf[i] * scales[s]
            } else {
                (xf[i] as f32 * scales[s] as f32) as f64
            };
        }
        let d = xs[i] - zps[s];
        if wide {
            d as f64 * scales[s]
        } else {
            (d as f32 * scales[s] as f32) as f64
        }
    });
    super::from_f64_as(out, x.shape().to_vec(), &y)
}

/// DynamicQuantizeLinear: u8 quantization of `x` with a range that includes 0, returning
/// `[y, y_scale, y_zero_point]`.
pub fn dynamic_quantize(x: &Tensor) -> Result<Vec<Tensor>, EvalError> {
    if x.dtype() != DType::F32 {
        return Err(EvalError::Invalid(format!(
            "DynamicQuantizeLinear needs an f32 input, got {}",
            x.dtype()
        )));
    }
    let xs = x.view::<f32>();
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in xs {
        if v.is_nan() {
            return Err(EvalError::Invalid(
                "DynamicQuantizeLinear input contains NaN".into(),
            ));
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let (qmin, qmax) = (0f32, 255f32);
    let scale = (if hi == lo { 1.0 } else { hi - lo }) / (qmax - qmin);
    let zp = (qmin - lo / scale).clamp(qmin, qmax).round_ties_even();
    let y = map1(xs, |v| {
        ((v / scale).round_ties_even() + zp).clamp(qmin, qmax) as u8
    });
    Ok(vec![
        Tensor::from_vec(x.shape().to_vec(), y)?,
        Tensor::scalar(scale),
        Tensor::scalar(zp as u8),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Elem;
    use half::f16;

    fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn granularity_indexes_per_axis_and_blocks() {
        let g = Granularity::of("Q", &[2, 3, 2], &[3], 1, 0).unwrap();
        let idx: Vec<usize> = (0..12).map(|i| g.index(i)).collect();
        assert_eq!(idx, vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]);
        let g = Granularity::of("Q", &[2, 3, 2], &[3], -2, 0).unwrap();
        assert_eq!(g.index(5), 2);
        let b = Granularity::of("Q", &[2, 5], &[2, 3], 1, 2).unwrap();
        let idx: Vec<usize> = (0..10).map(|i| b.index(i)).collect();
        assert_eq!(idx, vec![0, 0, 1, 1, 2, 3, 3, 4, 4, 5]);
        assert_eq!(
            Granularity::of("Q", &[2, 5], &[], 1, 0).unwrap(),
            Granularity::PerTensor
        );
        assert!(Granularity::of("Q", &[2, 5], &[2], 1, 0).is_err());
        assert!(Granularity::of("Q", &[2, 5], &[2, 2], 1, 2).is_err());
        assert!(Granularity::of("Q", &[2, 5], &[5], 2, 0).is_err());
    }

    #[test]
    fn quantize_rounds_half_even_and_saturates() {
        let x = t(&[6], vec![0f32, 2.0, 3.0, 1000.0, -254.0, -1000.0]);
        let y = quantize(
            &x,
            &t(&[], vec![2f32]),
            Some(&t(&[], vec![128u8])),
            1,
            0,
            None,
            true,
        )
        .unwrap();
        assert_eq!(y.view::<u8>(), &[128, 129, 130, 255, 1, 0]);
        let i = quantize(&x, &t(&[1], vec![2f32]), None, 1, 0, Some(DType::I8), true).unwrap();
        assert_eq!(i.view::<i8>(), &[0, 1, 2, 127, -127, -128]);
        let d = quantize(&x, &t(&[], vec![2f32]), None, 1, 0, None, true).unwrap();
        assert_eq!(d.dtype(), DType::U8);
        assert_eq!(d.view::<u8>(), &[0, 1, 2, 255, 0, 0]);
        // Mismatched output_dtype and zero point.
        assert!(
            quantize(
                &x,
                &t(&[], vec![2f32]),
                Some(&t(&[], vec![1u8])),
                1,
                0,
                Some(DType::I8),
                true
            )
            .is_err()
        );
        // Per axis.
        let xa = t(&[1, 3, 2], vec![-162f32, 10.0, -100.0, 232.0, -20.0, -50.0]);
        let ya = quantize(
            &xa,
            &t(&[3], vec![2f32, 4.0, 5.0]),
            Some(&t(&[3], vec![84u8, 24, 196])),
            1,
            0,
            None,
            true,
        )
        .unwrap();
        assert_eq!(ya.view::<u8>(), &[3, 89, 0, 82, 192, 186]);
    }

    #[test]
    fn quantize_blocked_int16() {
        let x = t(
            &[3, 4],
            vec![
                6f32, -8.0, -10.0, 5.0, 1.0, 8.0, 4.0, 5.0, 0.0, 20.0, 4.0, 4.0,
            ],
        );
        let s = t(&[3, 2], vec![1.5f32, 2.5, 3.0, 4.9, 5.1, 6.9]);
        let y = quantize(&x, &s, None, 1, 2, Some(DType::I16), true).unwrap();
        assert_eq!(y.view::<i16>(), &[4, -5, -4, 2, 0, 3, 1, 1, 0, 4, 1, 1]);
    }

    #[test]
    fn quantize_half_divides_in_half() {
        let x = t(&[1], vec![f16::from_f32(3.0)]);
        let s = t(&[], vec![f16::from_f32(2.0)]);
        let y = quantize(&x, &s, Some(&t(&[], vec![0i8])), 1, 0, None, true).unwrap();
        assert_eq!(y.view::<i8>(), &[2]);
    }

    #[test]
    fn dequantize_per_tensor_axis_and_blocked() {
        let x = t(&[4], vec![0u8, 3, 128, 255]);
        let y = dequantize(&x, &t(&[], vec![2f32]), Some(&t(&[], vec![128u8])), 1, 0).unwrap();
        assert_eq!(y.view::<f32>(), &[-256.0, -250.0, 0.0, 254.0]);
        let xi = t(&[2, 2], vec![-300i16, -30, -1025, 1270]);
        let yi = dequantize(
            &xi,
            &t(&[2], vec![2f32, 0.5]),
            Some(&t(&[2], vec![-1024i16, 10])),
            0,
            0,
        )
        .unwrap();
        assert_eq!(yi.view::<f32>(), &[1448.0, 1988.0, -517.5, 630.0]);
        let x32 = t(&[2], vec![100_000i32, -3]);
        let h = dequantize(&x32, &t(&[], vec![f16::from_f32(0.5)]), None, 1, 0).unwrap();
        assert_eq!(h.dtype(), DType::F16);
        assert_eq!(
            h.view::<f16>(),
            &[f16::from_f32(50000.0), f16::from_f32(-1.5)]
        );
        let xb = t(&[1, 4], vec![3u8, 89, 34, 200]);
        let yb = dequantize(
            &xb,
            &t(&[1, 2], vec![3f32, 2.0]),
            Some(&t(&[1, 2], vec![1u8, 0])),
            1,
            2,
        )
        .unwrap();
        assert_eq!(yb.view::<f32>(), &[6.0, 264.0, 68.0, 400.0]);
        assert!(dequantize(&xb, &t(&[], vec![1f32]), Some(&t(&[], vec![1i8])), 1, 0).is_err());
        assert!(dequantize(&t(&[1], vec![1f32]), &t(&[], vec![1f32]), None, 1, 0).is_err());
    }

    #[test]
    fn dynamic_quantize_matches_the_spec_example() {
        let x = t(&[6], vec![0f32, 2.0, -3.0, -2.5, 1.34, 0.5]);
        let out = dynamic_quantize(&x).unwrap();
        assert_eq!(out[0].view::<u8>(), &[153, 255, 0, 26, 221, 179]);
        assert!((out[1].view::<f32>()[0] - 0.019_607_844).abs() < 1e-9);
        assert_eq!(out[2].view::<u8>(), &[153]);
        let z = dynamic_quantize(&t(&[2], vec![0f32, 0.0])).unwrap();
        assert_eq!(z[0].view::<u8>(), &[0, 0]);
        assert_eq!(z[2].view::<u8>(), &[0]);
        let pos = dynamic_quantize(&t(&[2], vec![1f32, 255.0])).unwrap();
        assert_eq!(pos[0].view::<u8>(), &[1, 255]);
        assert_eq!(pos[1].view::<f32>(), &[1.0]);
        assert!(dynamic_quantize(&t(&[1], vec![1f64])).is_err());
    }

    fn codes(d: DType, v: Vec<u8>) -> Tensor {
        Tensor::from_codes(d, vec![v.len()], v).unwrap()
    }

    #[test]
    fn low_precision_quantize_and_dequantize() {
        // ONNX test_quantizelinear_e4m3fn: 100000 / 2 saturates to 448, 200 / 2 = 100 → 96.
        let x = t(&[5], vec![0f32, 1.0, 2.0, 100000.0, 200.0]);
        let zp = codes(DType::F8E4M3FN, vec![0]);
        let s = t(&[], vec![2f32]);
        let y = quantize(&x, &s, Some(&zp), 1, 0, None, true).unwrap();
        assert_eq!(y.dtype(), DType::F8E4M3FN);
        assert_eq!(y.to_f64_vec(), vec![0.0, 0.5, 1.0, 448.0, 96.0]);
        let n = quantize(&x, &s, Some(&zp), 1, 0, None, false).unwrap();
        assert!(n.to_f64_vec()[3].is_nan());
        // Per-axis int4 with a zero point of 1: round half even, then saturate to [-8, 7].
        let x = t(&[2, 2], vec![2.5f32, -30.0, 9.0, 40.0]);
        let s = t(&[2], vec![2f32, 4.0]);
        let zp = Tensor::from_codes(DType::I4, vec![2], vec![1, 1]).unwrap();
        let y = quantize(&x, &s, Some(&zp), 0, 0, None, true).unwrap();
        assert_eq!(y.to_i64_vec(), vec![2, -8, 3, 7]);
        let u2 = quantize(&x, &s, None, 0, 0, Some(DType::U2), true).unwrap();
        assert_eq!(u2.to_i64_vec(), vec![1, 0, 2, 3]);
        // Dequantize: int4 subtracts its zero point, float8 decodes exactly.
        let d = dequantize(&y, &s, Some(&zp), 0, 0).unwrap();
        assert_eq!(d.view::<f32>(), &[2.0, -18.0, 8.0, 24.0]);
        let e = codes(DType::F8E5M2, vec![0x00, 0x3C, 0x7A, 0xD6]);
        let d = dequantize(&e, &t(&[], vec![2f32]), None, 1, 0).unwrap();
        assert_eq!(d.view::<f32>(), &[0.0, 2.0, 98304.0, -192.0]);
        let bad = codes(DType::F8E5M2, vec![0x3C]);
        assert!(dequantize(&e, &t(&[], vec![2f32]), Some(&bad), 1, 0).is_err());
        // E8M0 is a scale type, not a quantized one.
        let z8 = codes(DType::F8E8M0, vec![127]);
        assert!(quantize(&x, &t(&[], vec![1f32]), Some(&z8), 0, 0, None, true).is_err());
    }
}
