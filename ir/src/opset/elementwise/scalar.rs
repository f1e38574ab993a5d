//! Scalar arithmetic for the elementwise kernels: the [`Real`] types floats are computed in
//! (f32 for f32/f16/bf16, f64 for f64), the [`FloatElem`] and [`IntElem`] element traits, and
//! correctly rounded narrowing conversions to the half types.

use crate::dtype::Elem;
use half::{bf16, f16};
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

/// The arithmetic type float elements are computed in (f32 or f64), with the math functions
/// the elementwise ops need.
pub trait Real:
    Elem
    + Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Rem<Output = Self>
    + Neg<Output = Self>
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Converts from f64 (rounding to nearest).
    fn of(v: f64) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// e^x - 1.
    fn exp_m1(self) -> Self;
    /// ln x.
    fn ln(self) -> Self;
    /// ln(1 + x).
    fn ln_1p(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
    /// sin x.
    fn sin(self) -> Self;
    /// cos x.
    fn cos(self) -> Self;
    /// tan x.
    fn tan(self) -> Self;
    /// asin x.
    fn asin(self) -> Self;
    /// acos x.
    fn acos(self) -> Self;
    /// atan x.
    fn atan(self) -> Self;
    /// sinh x.
    fn sinh(self) -> Self;
    /// cosh x.
    fn cosh(self) -> Self;
    /// asinh x.
    fn asinh(self) -> Self;
    /// acosh x.
    fn acosh(self) -> Self;
    /// atanh x.
    fn atanh(self) -> Self;
    /// tanh x.
    fn tanh(self) -> Self;
    /// The error function.
    fn erf(self) -> Self;
    /// Rounds toward -inf.
    fn floor(self) -> Self;
    /// Rounds toward +inf.
    fn ceil(self) -> Self;
    /// Rounds half to even.
    fn round_even(self) -> Self;
    /// x^y.
    fn powf(self, y: Self) -> Self;
    /// True for NaN.
    fn is_nan(self) -> bool;
    /// True for ±inf.
    fn is_infinite(self) -> bool;
}

macro_rules! real_impl {
    ($t:ident, $erf:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn of(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline]
            fn exp(self) -> Self {
                $t::exp(self)
            }
            #[inline]
            fn exp_m1(self) -> Self {
                $t::exp_m1(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                $t::ln_1p(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            #[inline]
            fn sin(self) -> Self {
                $t::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                $t::cos(self)
            }
            #[inline]
            fn tan(self) -> Self {
                $t::tan(self)
            }
            #[inline]
            fn asin(self) -> Self {
                $t::asin(self)
            }
            #[inline]
            fn acos(self) -> Self {
                $t::acos(self)
            }
            #[inline]
            fn atan(self) -> Self {
                $t::atan(self)
            }
            #[inline]
            fn sinh(self) -> Self {
                $t::sinh(self)
            }
            #[inline]
            fn cosh(self) -> Self {
                $t::cosh(self)
            }
            #[inline]
            fn asinh(self) -> Self {
                $t::asinh(self)
            }
            #[inline]
            fn acosh(self) -> Self {
                $t::acosh(self)
            }
            #[inline]
            fn atanh(self) -> Self {
                $t::atanh(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline]
            fn floor(self) -> Self {
                $t::floor(self)
            }
            #[inline]
            fn ceil(self) -> Self {
                $t::ceil(self)
            }
            #[inline]
            fn round_even(self) -> Self {
                $t::round_ties_even(self)
            }
            #[inline]
            fn powf(self, y: Self) -> Self {
                $t::powf(self, y)
            }
            #[inline]
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            #[inline]
            fn is_infinite(self) -> bool {
                $t::is_infinite(self)
            }
        }
    };
}
real_impl!(f32, libm::erff);
real_impl!(f64, libm::erf);

/// A float element type and the [`Real`] type it is computed in.
pub trait FloatElem: Elem {
    /// The compute type: f32 for f32/f16/bf16, f64 for f64.
    type C: Real;
    /// Widens to the compute type (exact).
    fn to_c(self) -> Self::C;
    /// Narrows from the compute type, rounding to nearest even.
    fn from_c(c: Self::C) -> Self;
}

impl FloatElem for f32 {
    type C = f32;
    #[inline]
    fn to_c(self) -> f32 {
        self
    }
    #[inline]
    fn from_c(c: f32) -> Self {
        c
    }
}

impl FloatElem for f64 {
    type C = f64;
    #[inline]
    fn to_c(self) -> f64 {
        self
    }
    #[inline]
    fn from_c(c: f64) -> Self {
        c
    }
}

impl FloatElem for f16 {
    type C = f32;
    #[inline]
    fn to_c(self) -> f32 {
        self.to_f32()
    }
    #[inline]
    fn from_c(c: f32) -> Self {
        f16::from_f32(c)
    }
}

impl FloatElem for bf16 {
    type C = f32;
    #[inline]
    fn to_c(self) -> f32 {
        self.to_f32()
    }
    #[inline]
    fn from_c(c: f32) -> Self {
        bf16::from_f32(c)
    }
}

/// An integer element type with wrapping arithmetic.
pub trait IntElem: Elem + Ord + Copy {
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Wrapping a + b.
    fn wadd(self, o: Self) -> Self;
    /// Wrapping a - b.
    fn wsub(self, o: Self) -> Self;
    /// Wrapping a * b.
    fn wmul(self, o: Self) -> Self;
    /// Division truncating toward zero (wrapping for MIN / -1); `None` for a zero divisor.
    fn div_trunc(self, o: Self) -> Option<Self>;
    /// Remainder with the sign of the dividend (C `%`); `None` for a zero divisor.
    fn rem_trunc(self, o: Self) -> Option<Self>;
    /// Remainder with the sign of the divisor (Python `%`); `None` for a zero divisor.
    fn rem_floor(self, o: Self) -> Option<Self>;
    /// Wrapping negation.
    fn wneg(self) -> Self;
    /// Wrapping absolute value.
    fn wabs(self) -> Self;
    /// -1, 0 or 1.
    fn signum(self) -> Self;
    /// Left shift; shifts that are negative or at least the width give 0.
    fn shl_sat(self, s: Self) -> Self;
    /// Right shift (arithmetic for signed types); shifts that are negative or at least the
    /// width give the sign fill (0 or -1).
    fn shr_sat(self, s: Self) -> Self;
    /// Wrapping `self^e` for a non-negative exponent.
    fn wpow(self, e: u64) -> Self {
        let (mut base, mut e, mut acc) = (self, e, Self::ONE);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.wmul(base);
            }
            base = base.wmul(base);
            e >>= 1;
        }
        acc
    }
}

macro_rules! int_impl {
    ($($t:ty),*) => {$(
        impl IntElem for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline]
            fn wadd(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline]
            fn wsub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline]
            fn wmul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline]
            fn div_trunc(self, o: Self) -> Option<Self> {
                (o != 0).then(|| self.wrapping_div(o))
            }
            #[inline]
            fn rem_trunc(self, o: Self) -> Option<Self> {
                (o != 0).then(|| self.wrapping_rem(o))
            }
            #[inline]
            #[allow(unused_comparisons)]
            fn rem_floor(self, o: Self) -> Option<Self> {
                let r = self.rem_trunc(o)?;
                Some(if r != 0 && ((r < 0) != (o < 0)) { r.wrapping_add(o) } else { r })
            }
            #[inline]
            fn wneg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline]
            #[allow(unused_comparisons)]
            fn wabs(self) -> Self {
                if self < 0 { self.wrapping_neg() } else { self }
            }
            #[inline]
            #[allow(unused_comparisons)]
            fn signum(self) -> Self {
                if self > 0 {
                    1
                } else if self < 0 {
                    <$t>::ZERO.wrapping_sub(1)
                } else {
                    0
                }
            }
            #[inline]
            #[allow(unused_comparisons)]
            fn shl_sat(self, s: Self) -> Self {
                if s < 0 || (s as u64) >= <$t>::BITS as u64 { 0 } else { self << (s as u32) }
            }
            #[inline]
            #[allow(unused_comparisons)]
            fn shr_sat(self, s: Self) -> Self {
                if s < 0 || (s as u64) >= <$t>::BITS as u64 {
                    if self < 0 { <$t>::ZERO.wrapping_sub(1) } else { 0 }
                } else {
                    self >> (s as u32)
                }
            }
        }
    )*};
}
int_impl!(i8, u8, i16, u16, i32, u32, i64, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_helpers_wrap_and_saturate_shifts() {
        assert_eq!((-7i32).rem_floor(3), Some(2));
        assert_eq!(7i32.rem_floor(-3), Some(-2));
        assert_eq!((-7i32).rem_trunc(3), Some(-1));
        assert_eq!(5u8.rem_floor(0), None);
        assert_eq!(i8::MIN.div_trunc(-1), Some(i8::MIN));
        assert_eq!((-7i16).div_trunc(2), Some(-3));
        assert_eq!(i8::MIN.wabs(), i8::MIN);
        assert_eq!((-5i64).signum(), -1);
        assert_eq!(1u8.shl_sat(8), 0);
        assert_eq!(64i8.shl_sat(1), -128);
        assert_eq!((-8i8).shr_sat(1), -4);
        assert_eq!((-8i32).shr_sat(-1), -1);
        assert_eq!(4i32.shr_sat(40), 0);
        assert_eq!(3i32.wpow(4), 81);
        assert_eq!(2u8.wpow(9), 0);
    }

    #[test]
    fn real_math_is_accurate() {
        assert!((Real::erf(0.5f32) - 0.520_499_9).abs() < 1e-7);
        assert!((Real::erf(0.5f64) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert_eq!(Real::round_even(2.5f32), 2.0);
        assert_eq!(Real::round_even(-3.5f64), -4.0);
    }
}
