//! Reference semantics of the one-input elementwise ops: [`UnaryOp`] and [`ActivationOp`].
//!
//! Floats are computed in f32 (f32, f16, bf16) or f64 (f64) and rounded back once.

use super::kernels::map_tensor;
use super::scalar::{FloatElem, IntElem, Real};
use crate::dtype::{Bool8, DType};
use crate::interp::EvalError;
use crate::ops::{ActivationOp, UnaryOp};
use crate::tensor::Tensor;

/// The output dtype of `op` on `dtype`, or why the dtype is not accepted.
pub fn unary_dtype(op: UnaryOp, dtype: DType) -> Result<DType, String> {
    use UnaryOp::*;
    let ok = match op {
        Abs | Sign | Erf => dtype.is_float() || dtype.is_int(),
        Neg | Relu => dtype.is_float() || dtype.is_signed_int(),
        Not => dtype == DType::Bool,
        _ => dtype.is_float(),
    };
    if !ok {
        return Err(format!("{op:?} does not accept {dtype} inputs"));
    }
    Ok(if op == IsNaN { DType::Bool } else { dtype })
}

/// The output dtype of `op` on `dtype`, or why the dtype is not accepted.
pub fn activation_dtype(op: ActivationOp, dtype: DType) -> Result<DType, String> {
    if !dtype.is_float() {
        return Err(format!(
            "{} needs a float input, got {dtype}",
            super::activation_name(op)
        ));
    }
    Ok(if matches!(op, ActivationOp::IsInf { .. }) {
        DType::Bool
    } else {
        dtype
    })
}

/// Runs a float op computed in the element's compute type.
fn fmap<T: FloatElem>(
    x: &Tensor,
    f: impl Fn(T::C) -> T::C + Sync + Send,
) -> Result<Tensor, EvalError> {
    map_tensor(x, |v: T| T::from_c(f(v.to_c())))
}

/// Logistic sigmoid, stable for large |x|.
fn sigmoid<C: Real>(x: C) -> C {
    if x >= C::ZERO {
        C::ONE / (C::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (C::ONE + e)
    }
}

/// ln(1 + e^x), stable for large |x|.
fn softplus<C: Real>(x: C) -> C {
    let m = if x > C::ZERO { x } else { C::ZERO };
    if x.is_nan() {
        return x;
    }
    m + (-x.abs()).exp().ln_1p()
}

/// `max(lo, min(hi, x))` keeping NaN.
fn clamp<C: Real>(x: C, lo: C, hi: C) -> C {
    let y = if x < lo { lo } else { x };
    if y > hi { hi } else { y }
}

fn float_unary<T: FloatElem>(op: UnaryOp, x: &Tensor) -> Result<Tensor, EvalError> {
    use UnaryOp::*;
    let one = T::C::ONE;
    match op {
        Abs => fmap::<T>(x, |v| v.abs()),
        Neg => fmap::<T>(x, |v| -v),
        Exp => fmap::<T>(x, |v| v.exp()),
        Log => fmap::<T>(x, |v| v.ln()),
        Sqrt => fmap::<T>(x, |v| v.sqrt()),
        Reciprocal => fmap::<T>(x, |v| one / v),
        Sin => fmap::<T>(x, |v| v.sin()),
        Cos => fmap::<T>(x, |v| v.cos()),
        Tan => fmap::<T>(x, |v| v.tan()),
        Asin => fmap::<T>(x, |v| v.asin()),
        Acos => fmap::<T>(x, |v| v.acos()),
        Atan => fmap::<T>(x, |v| v.atan()),
        Sinh => fmap::<T>(x, |v| v.sinh()),
        Cosh => fmap::<T>(x, |v| v.cosh()),
        Asinh => fmap::<T>(x, |v| v.asinh()),
        Acosh => fmap::<T>(x, |v| v.acosh()),
        Atanh => fmap::<T>(x, |v| v.atanh()),
        Tanh => fmap::<T>(x, |v| v.tanh()),
        Sigmoid => fmap::<T>(x, sigmoid),
        Erf => fmap::<T>(x, |v| v.erf()),
        Floor => fmap::<T>(x, |v| v.floor()),
        Ceil => fmap::<T>(x, |v| v.ceil()),
        Round => fmap::<T>(x, |v| v.round_even()),
        Sign => fmap::<T>(x, |v| {
            if v > T::C::ZERO {
                one
            } else if v < T::C::ZERO {
                -one
            } else {
                v // ±0 and NaN
            }
        }),
        IsNaN => map_tensor(x, |v: T| Bool8::from(v.to_c().is_nan())),
        Relu => fmap::<T>(x, |v| if v < T::C::ZERO { T::C::ZERO } else { v }),
        Softplus => fmap::<T>(x, softplus),
        Softsign => fmap::<T>(x, |v| v / (one + v.abs())),
        Mish => fmap::<T>(x, |v| v * softplus(v).tanh()),
        HardSwish => {
            let (alpha, beta) = (T::C::of(1.0 / 6.0), T::C::of(0.5));
            fmap::<T>(x, move |v| v * clamp(alpha * v + beta, T::C::ZERO, one))
        }
        Not => Err(EvalError::Invalid("Not needs a bool input".into())),
    }
}

fn int_unary<T: IntElem>(op: UnaryOp, x: &Tensor) -> Result<Tensor, EvalError> {
    use UnaryOp::*;
    match op {
        Abs => map_tensor(x, |v: T| v.wabs()),
        Neg => map_tensor(x, |v: T| v.wneg()),
        Sign => map_tensor(x, |v: T| v.signum()),
        Relu => map_tensor(x, |v: T| if v < T::ZERO { T::ZERO } else { v }),
        Erf => map_tensor(x, |v: T| T::round_from_f64(libm::erf(v.to_f64()))),
        _ => Err(EvalError::Invalid(format!(
            "{op:?} does not accept {} inputs",
            T::DTYPE
        ))),
    }
}

/// Evaluates a [`UnaryOp`].
pub fn eval_unary(op: UnaryOp, x: &Tensor) -> Result<Tensor, EvalError> {
    unary_dtype(op, x.dtype()).map_err(EvalError::Invalid)?;
    if op == UnaryOp::Not {
        return map_tensor(x, |v: Bool8| Bool8::from(!v.get()));
    }
    crate::dispatch_float!(x.dtype(), T => float_unary::<T>(op, x), else {
        crate::dispatch_int!(x.dtype(), T => int_unary::<T>(op, x), else {
            Err(EvalError::Invalid(format!("{op:?} does not accept {} inputs", x.dtype())))
        })
    })
}

fn float_activation<T: FloatElem>(op: ActivationOp, x: &Tensor) -> Result<Tensor, EvalError> {
    use ActivationOp::*;
    let c = |v: f32| T::C::of(v as f64);
    let (zero, one) = (T::C::ZERO, T::C::ONE);
    match op {
        LeakyRelu { alpha } => {
            let a = c(alpha);
            fmap::<T>(x, move |v| if v < zero { a * v } else { v })
        }
        Elu { alpha } => {
            let a = c(alpha);
            fmap::<T>(x, move |v| if v < zero { a * v.exp_m1() } else { v })
        }
        Selu { alpha, gamma } => {
            let (a, g) = (c(alpha), c(gamma));
            fmap::<T>(x, move |v| {
                if v <= zero {
                    g * (a * v.exp() - a)
                } else {
                    g * v
                }
            })
        }
        Celu { alpha } => {
            let a = c(alpha);
            fmap::<T>(x, move |v| {
                let pos = if v > zero { v } else { zero };
                let neg = a * (v / a).exp_m1();
                pos + if neg < zero { neg } else { zero }
            })
        }
        HardSigmoid { alpha, beta } => {
            let (a, b) = (c(alpha), c(beta));
            fmap::<T>(x, move |v| clamp(a * v + b, zero, one))
        }
        ThresholdedRelu { alpha } => {
            let a = c(alpha);
            fmap::<T>(x, move |v| if v > a { v } else { zero })
        }
        Gelu { tanh: false } => {
            let inv_sqrt2 = T::C::of(std::f64::consts::FRAC_1_SQRT_2);
            let half = T::C::of(0.5);
            fmap::<T>(x, move |v| half * v * (one + (v * inv_sqrt2).erf()))
        }
        Gelu { tanh: true } => {
            let k = T::C::of((2.0 / std::f64::consts::PI).sqrt());
            let (half, cub) = (T::C::of(0.5), T::C::of(0.044715));
            fmap::<T>(x, move |v| {
                half * v * (one + (k * (v + cub * v * v * v)).tanh())
            })
        }
        IsInf {
            detect_negative,
            detect_positive,
        } => map_tensor(x, move |v: T| {
            let v = v.to_c();
            Bool8::from(
                v.is_infinite()
                    && if v > zero {
                        detect_positive
                    } else {
                        detect_negative
                    },
            )
        }),
    }
}

/// Evaluates an [`ActivationOp`].
pub fn eval_activation(op: ActivationOp, x: &Tensor) -> Result<Tensor, EvalError> {
    activation_dtype(op, x.dtype()).map_err(EvalError::Invalid)?;
    crate::dispatch_float!(x.dtype(), T => float_activation::<T>(op, x), else {
        Err(EvalError::Invalid(format!("{} needs a float input", super::activation_name(op))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn f32s(v: &[f32]) -> Tensor {
        Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap()
    }

    fn close(t: &Tensor, want: &[f64], tol: f64) {
        let got = t.to_f64_vec();
        assert_eq!(got.len(), want.len(), "{t:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                g == w || (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()),
                "got {got:?} want {want:?}"
            );
        }
    }

    #[test]
    fn basic_float_unaries() {
        let x = f32s(&[-1.5, 0.0, 2.0]);
        close(
            &eval_unary(UnaryOp::Abs, &x).unwrap(),
            &[1.5, 0.0, 2.0],
            0.0,
        );
        close(
            &eval_unary(UnaryOp::Neg, &x).unwrap(),
            &[1.5, 0.0, -2.0],
            0.0,
        );
        close(
            &eval_unary(UnaryOp::Exp, &x).unwrap(),
            &[0.223_130_16, 1.0, 7.389_056],
            1e-6,
        );
        close(
            &eval_unary(UnaryOp::Relu, &x).unwrap(),
            &[0.0, 0.0, 2.0],
            0.0,
        );
        close(
            &eval_unary(UnaryOp::Sigmoid, &x).unwrap(),
            &[0.182_425_52, 0.5, 0.880_797_1],
            1e-6,
        );
        close(
            &eval_unary(UnaryOp::Reciprocal, &x).unwrap(),
            &[-0.666_666_7, f64::INFINITY, 0.5],
            1e-6,
        );
        close(
            &eval_unary(UnaryOp::Softsign, &x).unwrap(),
            &[-0.6, 0.0, 2.0 / 3.0],
            1e-6,
        );
    }

    #[test]
    fn round_is_half_to_even_and_sign_keeps_nan() {
        let x = f32s(&[0.5, 1.5, 2.5, -2.5, -0.4, 2.7]);
        close(
            &eval_unary(UnaryOp::Round, &x).unwrap(),
            &[0.0, 2.0, 2.0, -2.0, 0.0, 3.0],
            0.0,
        );
        let s = eval_unary(UnaryOp::Sign, &f32s(&[f32::NAN, -3.0, 0.0, 7.0])).unwrap();
        close(&s, &[f64::NAN, -1.0, 0.0, 1.0], 0.0);
        let n = eval_unary(UnaryOp::IsNaN, &f32s(&[f32::NAN, 1.0])).unwrap();
        assert_eq!(n.view::<Bool8>(), &[Bool8(1), Bool8(0)]);
    }

    #[test]
    fn erf_gelu_softplus_mish_hardswish() {
        let x = Tensor::from_vec(vec![4], vec![-1.0f64, 0.0, 0.5, 3.0]).unwrap();
        close(
            &eval_unary(UnaryOp::Erf, &x).unwrap(),
            &[
                -0.842_700_792_949_715,
                0.0,
                0.520_499_877_813_046_5,
                0.999_977_909_503_001_4,
            ],
            1e-14,
        );
        // Gelu(1) exact = 0.8413447460685429, tanh approx = 0.8411919906082768.
        let one = f32s(&[1.0, -2.0]);
        close(
            &eval_activation(ActivationOp::Gelu { tanh: false }, &one).unwrap(),
            &[0.841_344_746_068_542_9, -0.045_500_263_896_358_42],
            1e-6,
        );
        close(
            &eval_activation(ActivationOp::Gelu { tanh: true }, &one).unwrap(),
            &[0.841_191_990_608_276_8, -0.045_402_305_948_708_04],
            1e-6,
        );
        let big = f32s(&[-100.0, 0.0, 100.0, 1.0]);
        close(
            &eval_unary(UnaryOp::Softplus, &big).unwrap(),
            &[
                3.720_076e-44,
                std::f64::consts::LN_2,
                100.0,
                1.313_261_687_518_222_8,
            ],
            1e-6,
        );
        // mish(1) = tanh(ln(1+e)) = 0.8650983882673103
        close(
            &eval_unary(UnaryOp::Mish, &big).unwrap(),
            &[0.0, 0.0, 100.0, 0.865_098_388_267_310_3],
            1e-6,
        );
        let hs = f32s(&[-4.0, -1.0, 0.0, 1.0, 4.0]);
        close(
            &eval_unary(UnaryOp::HardSwish, &hs).unwrap(),
            &[0.0, -1.0 / 3.0, 0.0, 2.0 / 3.0, 4.0],
            1e-6,
        );
    }

    #[test]
    fn half_types_compute_in_f32() {
        let x = Tensor::from_vec(vec![2], vec![f16::from_f32(1.0), f16::from_f32(-2.0)]).unwrap();
        let y = eval_unary(UnaryOp::Exp, &x).unwrap();
        assert_eq!(y.dtype(), DType::F16);
        assert_eq!(
            y.view::<f16>(),
            &[
                f16::from_f32(std::f32::consts::E),
                f16::from_f32((-2f32).exp())
            ]
        );
        let b = Tensor::from_vec(vec![1], vec![bf16::from_f32(-3.0)]).unwrap();
        let c = eval_activation(ActivationOp::Celu { alpha: 1.0 }, &b).unwrap();
        assert_eq!(c.view::<bf16>(), &[bf16::from_f32((-3f32).exp_m1())]);
    }

    #[test]
    fn integer_unaries_wrap() {
        let x = Tensor::from_vec(vec![3], vec![-128i8, -3, 5]).unwrap();
        assert_eq!(
            eval_unary(UnaryOp::Abs, &x).unwrap().view::<i8>(),
            &[-128, 3, 5]
        );
        assert_eq!(
            eval_unary(UnaryOp::Neg, &x).unwrap().view::<i8>(),
            &[-128, 3, -5]
        );
        assert_eq!(
            eval_unary(UnaryOp::Sign, &x).unwrap().view::<i8>(),
            &[-1, -1, 1]
        );
        assert_eq!(
            eval_unary(UnaryOp::Relu, &x).unwrap().view::<i8>(),
            &[0, 0, 5]
        );
        let u = Tensor::from_vec(vec![2], vec![0u32, 9]).unwrap();
        assert_eq!(
            eval_unary(UnaryOp::Sign, &u).unwrap().view::<u32>(),
            &[0, 1]
        );
        assert!(eval_unary(UnaryOp::Neg, &u).is_err());
        assert!(eval_unary(UnaryOp::Exp, &x).is_err());
        let b = Tensor::from_vec(vec![2], vec![Bool8(1), Bool8(0)]).unwrap();
        assert_eq!(
            eval_unary(UnaryOp::Not, &b).unwrap().view::<Bool8>(),
            &[Bool8(0), Bool8(1)]
        );
        assert!(eval_unary(UnaryOp::Not, &u).is_err());
    }

    #[test]
    fn parameterised_activations() {
        let x = f32s(&[-2.0, -0.5, 0.0, 1.5]);
        close(
            &eval_activation(ActivationOp::LeakyRelu { alpha: 0.1 }, &x).unwrap(),
            &[-0.2, -0.05, 0.0, 1.5],
            1e-6,
        );
        close(
            &eval_activation(ActivationOp::Elu { alpha: 2.0 }, &x).unwrap(),
            &[2.0 * (-2f64).exp_m1(), 2.0 * (-0.5f64).exp_m1(), 0.0, 1.5],
            1e-6,
        );
        close(
            &eval_activation(
                ActivationOp::Selu {
                    alpha: 2.0,
                    gamma: 3.0,
                },
                &x,
            )
            .unwrap(),
            &[6.0 * (-2f64).exp_m1(), 6.0 * (-0.5f64).exp_m1(), 0.0, 4.5],
            1e-6,
        );
        close(
            &eval_activation(
                ActivationOp::HardSigmoid {
                    alpha: 0.5,
                    beta: 0.6,
                },
                &x,
            )
            .unwrap(),
            &[0.0, 0.35, 0.6, 1.0],
            1e-6,
        );
        close(
            &eval_activation(ActivationOp::ThresholdedRelu { alpha: 0.0 }, &x).unwrap(),
            &[0.0, 0.0, 0.0, 1.5],
            0.0,
        );
        let inf = f32s(&[f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0]);
        let both = eval_activation(
            ActivationOp::IsInf {
                detect_negative: true,
                detect_positive: true,
            },
            &inf,
        )
        .unwrap();
        assert_eq!(
            both.view::<Bool8>(),
            &[Bool8(1), Bool8(1), Bool8(0), Bool8(0)]
        );
        let neg = eval_activation(
            ActivationOp::IsInf {
                detect_negative: true,
                detect_positive: false,
            },
            &inf,
        )
        .unwrap();
        assert_eq!(
            neg.view::<Bool8>(),
            &[Bool8(0), Bool8(1), Bool8(0), Bool8(0)]
        );
        assert!(
            eval_activation(
                ActivationOp::LeakyRelu { alpha: 0.1 },
                &Tensor::scalar(1i32)
            )
            .is_err()
        );
    }
}
