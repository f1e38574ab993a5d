//! Reference semantics of the broadcasting elementwise ops: [`BinaryOp`], [`VariadicOp`],
//! Clip and Where.

use super::kernels::{fold_into, map2, map3};
use super::scalar::{FloatElem, IntElem, Real};
use crate::dtype::{Bool8, DType, Elem};
use crate::interp::EvalError;
use crate::ops::{BinaryOp, VariadicOp};
use crate::opset::util::broadcast;
use crate::tensor::{Tensor, checked_numel};

/// The output dtype of `op` on inputs of `a` and `b`, or why they are not accepted.
pub fn binary_dtype(op: BinaryOp, a: DType, b: DType) -> Result<DType, String> {
    use BinaryOp::*;
    let numeric = |d: DType| d.is_float() || d.is_int();
    if op == Pow {
        if !(a.is_float() || a.is_int()) || !numeric(b) {
            return Err(format!(
                "Pow does not accept a {a} base with a {b} exponent"
            ));
        }
        return Ok(a);
    }
    if a != b {
        return Err(format!("{op:?} needs inputs of one dtype, got {a} and {b}"));
    }
    let ok = match op {
        Add | Sub | Mul | Div | Mod { .. } | Less | LessOrEqual | Greater | GreaterOrEqual => {
            numeric(a)
        }
        PRelu => numeric(a),
        And | Or | Xor => a == DType::Bool,
        Equal => true,
        BitShiftLeft | BitShiftRight => a.is_int(),
        Pow => unreachable!("handled above"),
    };
    if !ok {
        return Err(format!("{op:?} does not accept {a} inputs"));
    }
    Ok(match op {
        Equal | Less | LessOrEqual | Greater | GreaterOrEqual => DType::Bool,
        _ => a,
    })
}

/// numpy's float remainder: the sign of the divisor, `-0`/`+0` following the divisor.
fn py_mod<C: Real>(a: C, b: C) -> C {
    let m = a % b;
    if b == C::ZERO {
        return m; // NaN
    }
    if m != C::ZERO {
        if (b < C::ZERO) != (m < C::ZERO) {
            m + b
        } else {
            m
        }
    } else if b < C::ZERO {
        -C::ZERO
    } else {
        C::ZERO
    }
}

fn float_binary<T: FloatElem>(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    use BinaryOp::*;
    let f =
        |g: fn(T::C, T::C) -> T::C| map2(a, b, move |x: T, y: T| T::from_c(g(x.to_c(), y.to_c())));
    let cmp = |g: fn(T::C, T::C) -> bool| {
        map2(a, b, move |x: T, y: T| Bool8::from(g(x.to_c(), y.to_c())))
    };
    match op {
        Add => f(|x, y| x + y),
        Sub => f(|x, y| x - y),
        Mul => f(|x, y| x * y),
        Div => f(|x, y| x / y),
        Mod { fmod: true } => f(|x, y| x % y),
        Mod { fmod: false } => f(py_mod),
        Equal => cmp(|x, y| x == y),
        Less => cmp(|x, y| x < y),
        LessOrEqual => cmp(|x, y| x <= y),
        Greater => cmp(|x, y| x > y),
        GreaterOrEqual => cmp(|x, y| x >= y),
        PRelu => prelu(a, b, |x: T, s: T| {
            let xc = x.to_c();
            if xc < T::C::ZERO {
                T::from_c(s.to_c() * xc)
            } else {
                x
            }
        }),
        _ => Err(EvalError::Invalid(format!(
            "{op:?} does not accept {} inputs",
            T::DTYPE
        ))),
    }
}

fn int_binary<T: IntElem>(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    use BinaryOp::*;
    let no_zero_divisor = || {
        if b.view::<T>().contains(&T::ZERO) {
            Err(EvalError::Invalid(format!("integer {op:?} by zero",)))
        } else {
            Ok(())
        }
    };
    match op {
        Add => map2(a, b, |x: T, y: T| x.wadd(y)),
        Sub => map2(a, b, |x: T, y: T| x.wsub(y)),
        Mul => map2(a, b, |x: T, y: T| x.wmul(y)),
        Div => {
            no_zero_divisor()?;
            map2(a, b, |x: T, y: T| x.div_trunc(y).unwrap_or(T::ZERO))
        }
        Mod { fmod } => {
            no_zero_divisor()?;
            if fmod {
                map2(a, b, |x: T, y: T| x.rem_trunc(y).unwrap_or(T::ZERO))
            } else {
                map2(a, b, |x: T, y: T| x.rem_floor(y).unwrap_or(T::ZERO))
            }
        }
        Equal => map2(a, b, |x: T, y: T| Bool8::from(x == y)),
        Less => map2(a, b, |x: T, y: T| Bool8::from(x < y)),
        LessOrEqual => map2(a, b, |x: T, y: T| Bool8::from(x <= y)),
        Greater => map2(a, b, |x: T, y: T| Bool8::from(x > y)),
        GreaterOrEqual => map2(a, b, |x: T, y: T| Bool8::from(x >= y)),
        BitShiftLeft => map2(a, b, |x: T, s: T| x.shl_sat(s)),
        BitShiftRight => map2(a, b, |x: T, s: T| x.shr_sat(s)),
        PRelu => prelu(a, b, |x: T, s: T| if x < T::ZERO { s.wmul(x) } else { x }),
        _ => Err(EvalError::Invalid(format!(
            "{op:?} does not accept {} inputs",
            T::DTYPE
        ))),
    }
}

/// PRelu: `slope` broadcasts unidirectionally to `x`.
fn prelu<T: Elem>(
    x: &Tensor,
    slope: &Tensor,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Result<Tensor, EvalError> {
    if broadcast(x.shape(), slope.shape())? != x.shape() {
        return Err(EvalError::Invalid(format!(
            "PRelu slope of shape {:?} does not broadcast to X of shape {:?}",
            slope.shape(),
            x.shape()
        )));
    }
    map2(x, slope, f)
}

/// Pow with a float base: the exponent is converted to the base's compute type.
fn pow_float<T: FloatElem>(a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    crate::dispatch!(b.dtype(), E => {
        map2(a, b, |x: T, e: E| T::from_c(x.to_c().powf(T::C::of(e.to_f64()))))
    })
}

/// Pow with an integer base: exact wrapping powers for non-negative integer exponents,
/// otherwise computed in f64 and truncated.
fn pow_int<T: IntElem>(a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    let via_f64 = |x: T, e: f64| T::round_from_f64(x.to_f64().powf(e));
    if b.dtype().is_int() {
        if b.dtype() == DType::U64 {
            return map2(a, b, |x: T, e: u64| x.wpow(e));
        }
        crate::dispatch!(b.dtype(), E => map2(a, b, move |x: T, e: E| {
            let e = e.to_i64();
            if e >= 0 { x.wpow(e as u64) } else { via_f64(x, e as f64) }
        }))
    } else {
        crate::dispatch!(b.dtype(), E => map2(a, b, move |x: T, e: E| via_f64(x, e.to_f64())))
    }
}

/// Evaluates a [`BinaryOp`].
pub fn eval_binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    binary_dtype(op, a.dtype(), b.dtype()).map_err(EvalError::Invalid)?;
    let bad = || {
        Err(EvalError::Invalid(format!(
            "{op:?} does not accept {} inputs",
            a.dtype()
        )))
    };
    match op {
        BinaryOp::Pow => crate::dispatch_float!(a.dtype(), T => pow_float::<T>(a, b), else {
            crate::dispatch_int!(a.dtype(), T => pow_int::<T>(a, b), else bad())
        }),
        BinaryOp::And => map2(a, b, |x: Bool8, y: Bool8| Bool8::from(x.get() && y.get())),
        BinaryOp::Or => map2(a, b, |x: Bool8, y: Bool8| Bool8::from(x.get() || y.get())),
        BinaryOp::Xor => map2(a, b, |x: Bool8, y: Bool8| Bool8::from(x.get() != y.get())),
        BinaryOp::Equal if a.dtype() == DType::Bool => {
            map2(a, b, |x: Bool8, y: Bool8| Bool8::from(x.get() == y.get()))
        }
        _ => crate::dispatch_float!(a.dtype(), T => float_binary::<T>(op, a, b), else {
            crate::dispatch_int!(a.dtype(), T => int_binary::<T>(op, a, b), else bad())
        }),
    }
}

/// The dtype check of a variadic op over inputs of `dtype`.
pub fn variadic_dtype(op: VariadicOp, dtype: DType) -> Result<DType, String> {
    let ok = match op {
        VariadicOp::Mean => dtype.is_float(),
        VariadicOp::Sum | VariadicOp::Max | VariadicOp::Min => dtype.is_float() || dtype.is_int(),
    };
    if ok {
        Ok(dtype)
    } else {
        Err(format!("{op:?} does not accept {dtype} inputs"))
    }
}

/// Folds `inputs` (all of dtype `T`) pairwise into an accumulator of type `A` with the
/// broadcast shape of all of them.
fn fold_all<T: Elem, A: Elem>(
    inputs: &[&Tensor],
    init: impl Fn(T) -> A + Sync,
    step: impl Fn(A, T) -> A + Sync,
) -> Result<(Vec<usize>, Vec<A>), EvalError> {
    let mut shape: Vec<usize> = vec![];
    for t in inputs {
        shape = broadcast(&shape, t.shape())?;
    }
    let n = checked_numel(&shape)?;
    let mut acc = vec![A::zero(); n];
    let (first, rest) = inputs
        .split_first()
        .ok_or_else(|| EvalError::Invalid("a variadic op needs at least one input".into()))?;
    fold_into(&mut acc, &shape, first, |a: &mut A, v: T| *a = init(v));
    for t in rest {
        fold_into(&mut acc, &shape, t, |a: &mut A, v: T| *a = step(*a, v));
    }
    Ok((shape, acc))
}

/// Max/min that propagate NaN (numpy `maximum`/`minimum`).
fn pick<T: PartialOrd + Copy>(a: T, b: T, max: bool) -> T {
    #[allow(clippy::eq_op)]
    if a != a {
        a
    } else if b != b || (max && b > a) || (!max && b < a) {
        b
    } else {
        a
    }
}

fn variadic_float<T: FloatElem>(op: VariadicOp, inputs: &[&Tensor]) -> Result<Tensor, EvalError> {
    let (shape, out): (Vec<usize>, Vec<T>) = match op {
        VariadicOp::Sum | VariadicOp::Mean => {
            let (shape, acc) = fold_all::<T, T::C>(inputs, |v| v.to_c(), |a, v| a + v.to_c())?;
            let n = T::C::of(inputs.len() as f64);
            let mean = op == VariadicOp::Mean;
            let out = acc
                .into_iter()
                .map(|a| T::from_c(if mean { a / n } else { a }))
                .collect();
            (shape, out)
        }
        VariadicOp::Max | VariadicOp::Min => {
            let max = op == VariadicOp::Max;
            fold_all::<T, T>(inputs, |v| v, move |a, v| pick(a, v, max))?
        }
    };
    Ok(Tensor::from_vec(shape, out)?)
}

fn variadic_int<T: IntElem>(op: VariadicOp, inputs: &[&Tensor]) -> Result<Tensor, EvalError> {
    let (shape, out) = match op {
        VariadicOp::Sum => fold_all::<T, T>(inputs, |v| v, |a, v| a.wadd(v))?,
        VariadicOp::Max => fold_all::<T, T>(inputs, |v| v, |a, v| a.max(v))?,
        VariadicOp::Min => fold_all::<T, T>(inputs, |v| v, |a, v| a.min(v))?,
        VariadicOp::Mean => {
            return Err(EvalError::Invalid(format!(
                "Mean does not accept {} inputs",
                T::DTYPE
            )));
        }
    };
    Ok(Tensor::from_vec(shape, out)?)
}

/// Evaluates a [`VariadicOp`] over one or more inputs of one dtype.
pub fn eval_variadic(op: VariadicOp, inputs: &[&Tensor]) -> Result<Tensor, EvalError> {
    let dtype = inputs
        .first()
        .ok_or_else(|| EvalError::Invalid(format!("{op:?} needs at least one input")))?
        .dtype();
    variadic_dtype(op, dtype).map_err(EvalError::Invalid)?;
    if let Some(t) = inputs.iter().find(|t| t.dtype() != dtype) {
        return Err(EvalError::Invalid(format!(
            "{op:?} needs inputs of one dtype, got {dtype} and {}",
            t.dtype()
        )));
    }
    crate::dispatch_float!(dtype, T => variadic_float::<T>(op, inputs), else {
        crate::dispatch_int!(dtype, T => variadic_int::<T>(op, inputs), else {
            Err(EvalError::Invalid(format!("{op:?} does not accept {dtype} inputs")))
        })
    })
}

/// The single element of a Clip bound.
fn bound<T: Elem>(t: Option<&Tensor>, dtype: DType, what: &str) -> Result<Option<T>, EvalError> {
    let Some(t) = t else { return Ok(None) };
    if t.dtype() != dtype {
        return Err(EvalError::Invalid(format!(
            "Clip {what} has dtype {} but the input has {dtype}",
            t.dtype()
        )));
    }
    if t.numel() != 1 {
        return Err(EvalError::Invalid(format!(
            "Clip {what} must have one element, it has shape {:?}",
            t.shape()
        )));
    }
    Ok(Some(t.view::<T>()[0]))
}

/// Clip: `min(max(x, lo), hi)`; a NaN input stays NaN, and `lo > hi` gives `hi`.
pub fn eval_clip(
    x: &Tensor,
    lo: Option<&Tensor>,
    hi: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    let dtype = x.dtype();
    if !(dtype.is_float() || dtype.is_int()) {
        return Err(EvalError::Invalid(format!(
            "Clip does not accept {dtype} inputs"
        )));
    }
    crate::dispatch!(dtype, T => {
        let lo = bound::<T>(lo, dtype, "min")?;
        let hi = bound::<T>(hi, dtype, "max")?;
        super::kernels::map_tensor(x, move |v: T| {
            let v = match lo { Some(l) if v < l => l, _ => v };
            match hi { Some(h) if v > h => h, _ => v }
        })
    })
}

/// Where: `cond ? x : y` over the broadcast of all three.
pub fn eval_where(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor, EvalError> {
    if cond.dtype() != DType::Bool {
        return Err(EvalError::Invalid(format!(
            "Where condition must be bool, got {}",
            cond.dtype()
        )));
    }
    if x.dtype() != y.dtype() {
        return Err(EvalError::Invalid(format!(
            "Where needs X and Y of one dtype, got {} and {}",
            x.dtype(),
            y.dtype()
        )));
    }
    crate::dispatch!(x.dtype(), T => {
        map3(cond, x, y, |c: Bool8, a: T, b: T| if c.get() { a } else { b })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn arithmetic_broadcasts_and_wraps() {
        let a = t(&[2, 2], vec![1f32, 2.0, 3.0, 4.0]);
        let b = t(&[2], vec![10f32, 20.0]);
        let c = eval_binary(BinaryOp::Add, &a, &b).unwrap();
        assert_eq!(c.view::<f32>(), &[11.0, 22.0, 13.0, 24.0]);
        let d = eval_binary(BinaryOp::Sub, &b, &a).unwrap();
        assert_eq!(d.view::<f32>(), &[9.0, 18.0, 7.0, 16.0]);
        let x = t(&[3], vec![100u8, 200, 7]);
        let y = t(&[], vec![100u8]);
        assert_eq!(
            eval_binary(BinaryOp::Add, &x, &y).unwrap().view::<u8>(),
            &[200, 44, 107]
        );
        assert_eq!(
            eval_binary(BinaryOp::Mul, &x, &y).unwrap().view::<u8>(),
            &[16, 32, 188]
        );
        assert!(eval_binary(BinaryOp::Add, &a, &x).is_err(), "mixed dtypes");
    }

    #[test]
    fn integer_division_truncates_and_rejects_zero() {
        let a = t(&[4], vec![-7i32, 7, -8, i32::MIN]);
        let b = t(&[4], vec![2i32, -2, 3, -1]);
        assert_eq!(
            eval_binary(BinaryOp::Div, &a, &b).unwrap().view::<i32>(),
            &[-3, -3, -2, i32::MIN]
        );
        let z = t(&[1], vec![0i32]);
        assert!(eval_binary(BinaryOp::Div, &a, &z).is_err());
        assert!(eval_binary(BinaryOp::Mod { fmod: false }, &a, &z).is_err());
    }

    #[test]
    fn modulo_follows_fmod() {
        let a = t(&[6], vec![-4i64, 7, 5, 4, -7, 8]);
        let b = t(&[6], vec![2i64, -3, 8, -2, 3, 5]);
        let py = eval_binary(BinaryOp::Mod { fmod: false }, &a, &b).unwrap();
        assert_eq!(py.view::<i64>(), &[0, -2, 5, 0, 2, 3]);
        let c = eval_binary(BinaryOp::Mod { fmod: true }, &a, &b).unwrap();
        assert_eq!(c.view::<i64>(), &[0, 1, 5, 0, -1, 3]);
        let x = t(&[4], vec![-4.5f32, 7.5, 3.0, -0.0]);
        let y = t(&[4], vec![2.0f32, -2.0, f32::INFINITY, 2.0]);
        let f = eval_binary(BinaryOp::Mod { fmod: true }, &x, &y).unwrap();
        assert_eq!(f.view::<f32>(), &[-0.5, 1.5, 3.0, -0.0]);
        let p = eval_binary(BinaryOp::Mod { fmod: false }, &x, &y).unwrap();
        assert_eq!(p.view::<f32>(), &[1.5, -0.5, 3.0, 0.0]);
        let neg = eval_binary(
            BinaryOp::Mod { fmod: false },
            &t(&[2], vec![-3.0f64, 1.0]),
            &t(&[2], vec![f64::INFINITY, f64::NEG_INFINITY]),
        )
        .unwrap();
        assert_eq!(neg.view::<f64>(), &[f64::INFINITY, f64::NEG_INFINITY]);
    }

    #[test]
    fn pow_mixes_dtypes_and_keeps_the_base_dtype() {
        let base = t(&[3], vec![1i32, 2, 3]);
        let ef = t(&[3], vec![4f32, 5.0, 6.0]);
        let r = eval_binary(BinaryOp::Pow, &base, &ef).unwrap();
        assert_eq!(r.view::<i32>(), &[1, 32, 729]);
        let ei = t(&[1], vec![-1i64]);
        assert_eq!(
            eval_binary(BinaryOp::Pow, &base, &ei)
                .unwrap()
                .view::<i32>(),
            &[1, 0, 0]
        );
        let fb = t(&[2], vec![2f32, 9.0]);
        let eu = t(&[2], vec![10u64, 0]);
        assert_eq!(
            eval_binary(BinaryOp::Pow, &fb, &eu).unwrap().view::<f32>(),
            &[1024.0, 1.0]
        );
        let half = t(&[], vec![0.5f32]);
        assert_eq!(
            eval_binary(BinaryOp::Pow, &fb, &half)
                .unwrap()
                .view::<f32>(),
            &[2f32.sqrt(), 3.0]
        );
        assert!(eval_binary(BinaryOp::Pow, &t(&[1], vec![Bool8(1)]), &half).is_err());
    }

    #[test]
    fn comparisons_and_logic_output_bool() {
        let a = t(&[3], vec![1.0f32, f32::NAN, 3.0]);
        let b = t(&[], vec![1.0f32]);
        let eq = eval_binary(BinaryOp::Equal, &a, &b).unwrap();
        assert_eq!(eq.view::<Bool8>(), &[Bool8(1), Bool8(0), Bool8(0)]);
        let ge = eval_binary(BinaryOp::GreaterOrEqual, &a, &b).unwrap();
        assert_eq!(ge.view::<Bool8>(), &[Bool8(1), Bool8(0), Bool8(1)]);
        let l = eval_binary(BinaryOp::Less, &t(&[2], vec![-1i8, 5]), &t(&[1], vec![0i8])).unwrap();
        assert_eq!(l.view::<Bool8>(), &[Bool8(1), Bool8(0)]);
        let p = t(&[4], vec![Bool8(0), Bool8(0), Bool8(1), Bool8(1)]);
        let q = t(&[4], vec![Bool8(0), Bool8(1), Bool8(0), Bool8(1)]);
        let v = |op| {
            eval_binary(op, &p, &q)
                .unwrap()
                .view::<Bool8>()
                .iter()
                .map(|b| b.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(v(BinaryOp::And), vec![0, 0, 0, 1]);
        assert_eq!(v(BinaryOp::Or), vec![0, 1, 1, 1]);
        assert_eq!(v(BinaryOp::Xor), vec![0, 1, 1, 0]);
        assert_eq!(v(BinaryOp::Equal), vec![1, 0, 0, 1]);
        assert!(eval_binary(BinaryOp::And, &a, &a).is_err());
        assert!(eval_binary(BinaryOp::Less, &p, &q).is_err());
    }

    #[test]
    fn bitshift_saturates_out_of_range_shifts() {
        let x = t(&[4], vec![1u8, 2, 255, 16]);
        let s = t(&[4], vec![1u8, 7, 8, 2]);
        assert_eq!(
            eval_binary(BinaryOp::BitShiftLeft, &x, &s)
                .unwrap()
                .view::<u8>(),
            &[2, 0, 0, 64]
        );
        assert_eq!(
            eval_binary(BinaryOp::BitShiftRight, &x, &s)
                .unwrap()
                .view::<u8>(),
            &[0, 0, 0, 4]
        );
        let xi = t(&[3], vec![-8i32, 4, -1]);
        let si = t(&[3], vec![-1i32, 32, 1]);
        assert_eq!(
            eval_binary(BinaryOp::BitShiftRight, &xi, &si)
                .unwrap()
                .view::<i32>(),
            &[-1, 0, -1]
        );
        assert_eq!(
            eval_binary(BinaryOp::BitShiftLeft, &xi, &si)
                .unwrap()
                .view::<i32>(),
            &[0, 0, -2]
        );
        assert!(
            eval_binary(
                BinaryOp::BitShiftLeft,
                &t(&[1], vec![1f32]),
                &t(&[1], vec![1f32])
            )
            .is_err()
        );
    }

    #[test]
    fn prelu_is_unidirectional() {
        let x = t(&[2, 2], vec![-1f32, 2.0, -3.0, 4.0]);
        let s = t(&[2], vec![0.5f32, 0.25]);
        assert_eq!(
            eval_binary(BinaryOp::PRelu, &x, &s).unwrap().view::<f32>(),
            &[-0.5, 2.0, -1.5, 4.0]
        );
        assert!(
            eval_binary(BinaryOp::PRelu, &s, &x).is_err(),
            "slope larger than X"
        );
        let xi = t(&[2], vec![-3i32, 3]);
        assert_eq!(
            eval_binary(BinaryOp::PRelu, &xi, &t(&[1], vec![2i32]))
                .unwrap()
                .view::<i32>(),
            &[-6, 3]
        );
    }

    #[test]
    fn variadic_ops_broadcast_and_fold() {
        let a = t(&[2, 1], vec![1f32, 2.0]);
        let b = t(&[3], vec![10f32, 20.0, 30.0]);
        let c = t(&[], vec![100f32]);
        let s = eval_variadic(VariadicOp::Sum, &[&a, &b, &c]).unwrap();
        assert_eq!(s.shape(), &[2, 3]);
        assert_eq!(s.view::<f32>(), &[111.0, 121.0, 131.0, 112.0, 122.0, 132.0]);
        let m = eval_variadic(VariadicOp::Mean, &[&a, &b]).unwrap();
        assert_eq!(m.view::<f32>(), &[5.5, 10.5, 15.5, 6.0, 11.0, 16.0]);
        let n = t(&[3], vec![f32::NAN, 25.0, 0.0]);
        let mx = eval_variadic(VariadicOp::Max, &[&b, &n]).unwrap();
        let v = mx.view::<f32>();
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[25.0, 30.0]);
        let mn = eval_variadic(
            VariadicOp::Min,
            &[&t(&[2], vec![3u16, 9]), &t(&[2], vec![5u16, 1])],
        )
        .unwrap();
        assert_eq!(mn.view::<u16>(), &[3, 1]);
        let one = eval_variadic(VariadicOp::Max, &[&a]).unwrap();
        assert_eq!(one, a);
        assert!(eval_variadic(VariadicOp::Mean, &[&t(&[1], vec![1i32])]).is_err());
        assert!(eval_variadic(VariadicOp::Sum, &[&a, &t(&[1], vec![1i32])]).is_err());
        assert!(eval_variadic(VariadicOp::Sum, &[]).is_err());
    }

    #[test]
    fn sum_of_two_thousand_inputs_is_quick() {
        let xs: Vec<Tensor> = (0..2000)
            .map(|i| t(&[64, 64], vec![i as f32; 64 * 64]))
            .collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let s = eval_variadic(VariadicOp::Sum, &refs).unwrap();
        assert_eq!(s.view::<f32>()[4095], 1999.0 * 2000.0 / 2.0);
        let h: Vec<Tensor> = (0..3)
            .map(|i| t(&[1], vec![f16::from_f32(i as f32 + 0.5)]))
            .collect();
        let hr: Vec<&Tensor> = h.iter().collect();
        assert_eq!(
            eval_variadic(VariadicOp::Mean, &hr).unwrap().view::<f16>(),
            &[f16::from_f32(1.5)]
        );
    }

    #[test]
    fn clip_bounds_are_optional() {
        let x = t(&[4], vec![-2f32, 0.5, 6.0, f32::NAN]);
        let lo = t(&[], vec![0f32]);
        let hi = t(&[1], vec![1f32]);
        let y = eval_clip(&x, Some(&lo), Some(&hi)).unwrap();
        let v = y.view::<f32>();
        assert_eq!(&v[..3], &[0.0, 0.5, 1.0]);
        assert!(v[3].is_nan());
        let only_hi = eval_clip(&x, None, Some(&hi)).unwrap();
        assert_eq!(&only_hi.view::<f32>()[..3], &[-2.0, 0.5, 1.0]);
        let crossed = eval_clip(&x, Some(&t(&[], vec![2f32])), Some(&hi)).unwrap();
        assert_eq!(&crossed.view::<f32>()[..3], &[1.0, 1.0, 1.0]);
        let xi = t(&[3], vec![-100i8, 5, 100]);
        let yi = eval_clip(&xi, Some(&t(&[], vec![-10i8])), None).unwrap();
        assert_eq!(yi.view::<i8>(), &[-10, 5, 100]);
        assert!(eval_clip(&xi, Some(&lo), None).is_err(), "bound dtype");
        assert!(
            eval_clip(&x, Some(&t(&[2], vec![0f32, 1.0])), None).is_err(),
            "bound shape"
        );
    }

    #[test]
    fn where_broadcasts_three_ways() {
        let c = t(&[2, 1], vec![Bool8(1), Bool8(0)]);
        let x = t(&[3], vec![1i64, 2, 3]);
        let y = t(&[], vec![-1i64]);
        let z = eval_where(&c, &x, &y).unwrap();
        assert_eq!(z.shape(), &[2, 3]);
        assert_eq!(z.view::<i64>(), &[1, 2, 3, -1, -1, -1]);
        assert!(eval_where(&x, &x, &y).is_err());
        assert!(eval_where(&c, &x, &t(&[], vec![1i32])).is_err());
    }
}
