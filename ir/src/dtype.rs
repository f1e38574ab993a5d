//! Element types of tensors and the [`Elem`] trait that ties a Rust scalar type to its [`DType`].

use half::{bf16, f16};
use std::fmt;

/// The element type of a tensor.
///
/// Booleans are stored one byte per element (0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit IEEE float.
    F64,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// Boolean, one byte per element.
    Bool,
    /// Float8 E4M3FN (no infinities; NaN is `S.1111.111`). Storage only (see [`crate::lowp`]).
    F8E4M3FN,
    /// Float8 E4M3FNUZ (no infinities or negative zero; NaN is `0x80`). Storage only.
    F8E4M3FNUZ,
    /// Float8 E5M2 (IEEE-like). Storage only.
    F8E5M2,
    /// Float8 E5M2FNUZ (no infinities or negative zero; NaN is `0x80`). Storage only.
    F8E5M2FNUZ,
    /// Float8 E8M0: a power-of-two scale (`0xFF` is NaN). Storage only.
    F8E8M0,
    /// Float4 E2M1 (no infinities or NaN), one element per byte. Storage only.
    F4E2M1,
    /// Signed 4-bit integer, one element per byte. Storage only.
    I4,
    /// Unsigned 4-bit integer, one element per byte. Storage only.
    U4,
    /// Signed 2-bit integer, one element per byte. Storage only.
    I2,
    /// Unsigned 2-bit integer, one element per byte. Storage only.
    U2,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 23] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::Bool,
        DType::F8E4M3FN,
        DType::F8E4M3FNUZ,
        DType::F8E5M2,
        DType::F8E5M2FNUZ,
        DType::F8E8M0,
        DType::F4E2M1,
        DType::I4,
        DType::U4,
        DType::I2,
        DType::U2,
    ];

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            // Storage-only dtypes keep one code per byte (4-bit and 2-bit codes unpacked).
            DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F8E8M0
            | DType::F4E2M1
            | DType::I4
            | DType::U4
            | DType::I2
            | DType::U2 => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// True for the storage-only low-precision dtypes (float8, float4, 4-bit and 2-bit
    /// integers): only conversions (Cast, CastLike, QuantizeLinear, DequantizeLinear) and
    /// Identity accept them; every other op refuses them (see [`crate::lowp`]).
    pub fn is_lowp(self) -> bool {
        matches!(
            self,
            DType::F8E4M3FN
                | DType::F8E4M3FNUZ
                | DType::F8E5M2
                | DType::F8E5M2FNUZ
                | DType::F8E8M0
                | DType::F4E2M1
                | DType::I4
                | DType::U4
                | DType::I2
                | DType::U2
        )
    }

    /// True for the four float8 dtypes that the `saturate` attribute applies to.
    pub fn is_float8(self) -> bool {
        matches!(
            self,
            DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ
        )
    }

    /// True for the floating-point dtypes (not the storage-only [`DType::is_lowp`] ones).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }

    /// True for the integer dtypes (not bool, not the storage-only 4-bit and 2-bit ones).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I8
                | DType::U8
                | DType::I16
                | DType::U16
                | DType::I32
                | DType::U32
                | DType::I64
                | DType::U64
        )
    }

    /// True for the signed integer dtypes.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// The short lower-case name used by the text printer (`f32`, `i64`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::F8E4M3FN => "f8e4m3fn",
            DType::F8E4M3FNUZ => "f8e4m3fnuz",
            DType::F8E5M2 => "f8e5m2",
            DType::F8E5M2FNUZ => "f8e5m2fnuz",
            DType::F8E8M0 => "f8e8m0",
            DType::F4E2M1 => "f4e2m1",
            DType::I4 => "i4",
            DType::U4 => "u4",
            DType::I2 => "i2",
            DType::U2 => "u2",
        }
    }

    /// Parses a name printed by [`DType::name`].
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The ONNX `TensorProto.DataType` code of this dtype.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::F64 => 11,
            DType::U32 => 12,
            DType::U64 => 13,
            DType::BF16 => 16,
            DType::F8E4M3FN => 17,
            DType::F8E4M3FNUZ => 18,
            DType::F8E5M2 => 19,
            DType::F8E5M2FNUZ => 20,
            DType::U4 => 21,
            DType::I4 => 22,
            DType::F4E2M1 => 23,
            DType::F8E8M0 => 24,
            DType::U2 => 25,
            DType::I2 => 26,
        }
    }

    /// The dtype of an ONNX `TensorProto.DataType` code, if optc supports it.
    pub fn from_onnx_code(code: i32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.onnx_code() == code)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust scalar type that can be the element of a [`crate::Tensor`].
///
/// `bool` tensors use [`Bool8`] elements. Conversions go through `f64` (floats) or `i64`
/// (integers); `round_from_f64` and `from_i64` round exactly once. `u64` values above 2^63 go
/// through `to_i64` wrapped (two's complement), which [`crate::Tensor::cast`] accounts for.
/// The storage-only dtypes ([`DType::is_lowp`]) have no `Elem` type of their own.
pub trait Elem:
    bytemuck::Pod + Send + Sync + PartialEq + PartialOrd + fmt::Debug + 'static
{
    /// The dtype this Rust type stores.
    const DTYPE: DType;
    /// Converts to f64 (ONNX Cast semantics for floats and integers).
    fn to_f64(self) -> f64;
    /// Converts from f64: floats round to nearest (once), integers truncate toward zero and
    /// wrap like a C cast of an in-range value (out-of-range values saturate).
    ///
    /// Not named `from_f64` on purpose: `half::f16`/`bf16` have an inherent `from_f64` that
    /// rounds wrongly, and inside `dispatch!` bodies (where the element type is a concrete
    /// alias) `T::from_f64` would silently pick it over the trait method.
    fn round_from_f64(v: f64) -> Self;
    /// Converts to i64 exactly for integer types (floats truncate).
    fn to_i64(self) -> i64;
    /// Converts from i64 exactly where representable (integers wrap, floats round).
    fn from_i64(v: i64) -> Self;
    /// The zero value.
    fn zero() -> Self;
}

macro_rules! int_elem {
    ($($t:ty => $d:ident),*) => {$(
        impl Elem for $t {
            const DTYPE: DType = DType::$d;
            fn to_f64(self) -> f64 { self as f64 }
            fn round_from_f64(v: f64) -> Self { v as $t }
            fn to_i64(self) -> i64 { self as i64 }
            fn from_i64(v: i64) -> Self { v as $t }
            fn zero() -> Self { 0 }
        }
    )*};
}
int_elem!(i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32, i64 => I64, u64 => U64);

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn round_from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v as f32
    }
    fn zero() -> Self {
        0.0
    }
}

impl Elem for f64 {
    const DTYPE: DType = DType::F64;
    fn to_f64(self) -> f64 {
        self
    }
    fn round_from_f64(v: f64) -> Self {
        v
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v as f64
    }
    fn zero() -> Self {
        0.0
    }
}

impl Elem for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn round_from_f64(v: f64) -> Self {
        f16::from_f32(f64_to_f32_odd(v))
    }
    fn to_i64(self) -> i64 {
        f16::to_f64(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        f16::from_f32(f64_to_f32_odd(i128_to_f64_odd(v as i128)))
    }
    fn zero() -> Self {
        f16::ZERO
    }
}

impl Elem for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn round_from_f64(v: f64) -> Self {
        bf16::from_f32(f64_to_f32_odd(v))
    }
    fn to_i64(self) -> i64 {
        bf16::to_f64(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        bf16::from_f32(f64_to_f32_odd(i128_to_f64_odd(v as i128)))
    }
    fn zero() -> Self {
        bf16::ZERO
    }
}

/// f64 → f32 rounded to odd: exact values stay, inexact ones truncate toward zero and set
/// the lowest mantissa bit. Rounding that result to nearest even into any format at least two
/// bits narrower (f16, bf16, the float8 formats) rounds exactly once, like a direct rounding.
pub fn f64_to_f32_odd(v: f64) -> f32 {
    let f = v as f32;
    if !f.is_finite() || f as f64 == v {
        return f;
    }
    // Truncate toward zero, then set the sticky low bit.
    let t = if (f as f64).abs() > v.abs() {
        f32::from_bits(f.to_bits() - 1)
    } else {
        f
    };
    f32::from_bits(t.to_bits() | 1)
}

/// A 64-bit integer (signed or unsigned, widened to i128) → f64 rounded to odd (exact up to
/// 2^53); see [`f64_to_f32_odd`].
pub fn i128_to_f64_odd(v: i128) -> f64 {
    let f = v as f64;
    let back = f as i128;
    if back == v || f.is_infinite() {
        return f;
    }
    let t = if back.unsigned_abs() > v.unsigned_abs() {
        f64::from_bits(f.to_bits() - 1)
    } else {
        f
    };
    f64::from_bits(t.to_bits() | 1)
}

/// A 64-bit integer (widened to i128) → an element of float type `T`, rounded once.
pub fn int_to_float<T: Elem>(v: i128) -> T {
    if T::DTYPE == DType::F64 {
        T::round_from_f64(v as f64)
    } else {
        T::round_from_f64(i128_to_f64_odd(v))
    }
}

/// A boolean element stored in one byte (0 = false, anything else = true on input;
/// always 0 or 1 when produced by optc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Bool8(pub u8);

// SAFETY: a transparent wrapper around u8.
unsafe impl bytemuck::Zeroable for Bool8 {}
// SAFETY: a transparent wrapper around u8; every bit pattern is valid.
unsafe impl bytemuck::Pod for Bool8 {}

impl Bool8 {
    /// The wrapped truth value.
    pub fn get(self) -> bool {
        self.0 != 0
    }
}

impl From<bool> for Bool8 {
    fn from(b: bool) -> Self {
        Bool8(b as u8)
    }
}

impl Elem for Bool8 {
    const DTYPE: DType = DType::Bool;
    fn to_f64(self) -> f64 {
        self.get() as u8 as f64
    }
    fn round_from_f64(v: f64) -> Self {
        Bool8((v != 0.0) as u8)
    }
    fn to_i64(self) -> i64 {
        self.get() as i64
    }
    fn from_i64(v: i64) -> Self {
        Bool8((v != 0) as u8)
    }
    fn zero() -> Self {
        Bool8(0)
    }
}

/// Runs `$body` with the type alias `$T` bound to the Rust element type of `$dtype`.
///
/// The storage-only dtypes ([`DType::is_lowp`]) bind `u8`, their one-byte code: generic code
/// then sees raw codes, never values, so ops must refuse those dtypes before dispatching (the
/// interpreter does so centrally; see [`crate::lowp`]).
///
/// ```
/// use optc_ir::{DType, Elem, Tensor, dispatch};
/// let t = Tensor::from_vec(vec![3], vec![1.5f32, -2.0, 4.0]).unwrap();
/// let sum = dispatch!(t.dtype(), T => t.view::<T>().iter().map(|x| x.to_f64()).sum::<f64>());
/// assert_eq!(sum, 3.5);
/// assert_eq!(dispatch!(DType::I16, T => std::mem::size_of::<T>()), 2);
/// ```
#[macro_export]
macro_rules! dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {{
        use $crate::dtype::DType as __D;
        match $dtype {
            __D::F32 => {
                type $T = f32;
                $body
            }
            __D::F16 => {
                type $T = $crate::half::f16;
                $body
            }
            __D::BF16 => {
                type $T = $crate::half::bf16;
                $body
            }
            __D::F64 => {
                type $T = f64;
                $body
            }
            __D::I8 => {
                type $T = i8;
                $body
            }
            // One arm for u8 and the storage-only dtypes: no extra code per call site.
            __D::U8
            | __D::F8E4M3FN
            | __D::F8E4M3FNUZ
            | __D::F8E5M2
            | __D::F8E5M2FNUZ
            | __D::F8E8M0
            | __D::F4E2M1
            | __D::I4
            | __D::U4
            | __D::I2
            | __D::U2 => {
                type $T = u8;
                $body
            }
            __D::I16 => {
                type $T = i16;
                $body
            }
            __D::U16 => {
                type $T = u16;
                $body
            }
            __D::I32 => {
                type $T = i32;
                $body
            }
            __D::U32 => {
                type $T = u32;
                $body
            }
            __D::I64 => {
                type $T = i64;
                $body
            }
            __D::U64 => {
                type $T = u64;
                $body
            }
            __D::Bool => {
                type $T = $crate::dtype::Bool8;
                $body
            }
        }
    }};
}

/// Like [`dispatch!`] but only for the float dtypes; other dtypes evaluate `$else`.
#[macro_export]
macro_rules! dispatch_float {
    ($dtype:expr, $T:ident => $body:expr, else $else:expr) => {{
        use $crate::dtype::DType as __D;
        match $dtype {
            __D::F32 => {
                type $T = f32;
                $body
            }
            __D::F16 => {
                type $T = $crate::half::f16;
                $body
            }
            __D::BF16 => {
                type $T = $crate::half::bf16;
                $body
            }
            __D::F64 => {
                type $T = f64;
                $body
            }
            _ => $else,
        }
    }};
}

/// Like [`dispatch!`] but only for the integer dtypes (not bool, not the storage-only ones);
/// other dtypes evaluate `$else`.
///
/// ```
/// use optc_ir::{DType, dispatch_int};
/// assert_eq!(dispatch_int!(DType::U32, T => T::MAX as u64, else 0), u32::MAX as u64);
/// assert_eq!(dispatch_int!(DType::F32, T => T::MAX as u64, else 0), 0);
/// ```
#[macro_export]
macro_rules! dispatch_int {
    ($dtype:expr, $T:ident => $body:expr, else $else:expr) => {{
        use $crate::dtype::DType as __D;
        match $dtype {
            __D::I8 => {
                type $T = i8;
                $body
            }
            __D::U8 => {
                type $T = u8;
                $body
            }
            __D::I16 => {
                type $T = i16;
                $body
            }
            __D::U16 => {
                type $T = u16;
                $body
            }
            __D::I32 => {
                type $T = i32;
                $body
            }
            __D::U32 => {
                type $T = u32;
                $body
            }
            __D::I64 => {
                type $T = i64;
                $body
            }
            __D::U64 => {
                type $T = u64;
                $body
            }
            _ => $else,
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_codes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_onnx_code(d.onnx_code()), Some(d));
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_onnx_code(8), None, "strings are not supported");
        assert_eq!(DType::from_onnx_code(17), Some(DType::F8E4M3FN));
        assert_eq!(DType::from_onnx_code(26), Some(DType::I2));
        assert!(DType::I4.is_lowp() && !DType::I4.is_int() && !DType::F8E5M2.is_float());
    }

    #[test]
    fn conversions_from_f64_and_i64_round_once() {
        // 1 + 2^-11 is a tie between f16 1.0 and 1.0009766; a tiny excess must round up, which
        // a double rounding through f32 would lose.
        let v = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert_eq!(f16::round_from_f64(v), f16::from_f32(1.000_976_6));
        assert_eq!(f16::round_from_f64(1.0 + 2f64.powi(-11)), f16::ONE);
        let v = 1.0 + 2f64.powi(-8) + 2f64.powi(-40);
        assert_eq!(bf16::round_from_f64(v), bf16::from_f32(1.0078125));
        assert!((f64_to_f32_odd(0.1) as f64 - 0.1).abs() < 1e-8);
        assert!(f16::round_from_f64(1e10).is_infinite());
        // 2^62 + 2^54 + 1 is just above the bf16 tie 2^62 + 2^54: it rounds up, although the
        // nearest f64 is the tie itself.
        let i = (1i64 << 62) + (1 << 54) + 1;
        assert_eq!(
            <bf16 as Elem>::from_i64(i).to_f64(),
            (1u64 << 62) as f64 + (1u64 << 55) as f64
        );
        assert_eq!(
            <bf16 as Elem>::from_i64((1i64 << 62) + (1 << 54)).to_f64(),
            (1u64 << 62) as f64
        );
        assert_eq!(
            int_to_float::<f32>(u64::MAX as i128),
            18446744073709551616.0f32
        );
        assert_eq!(int_to_float::<f64>((1i128 << 53) + 1), 9007199254740992.0);
        assert_eq!(i128_to_f64_odd((1i128 << 53) + 2), 9007199254740994.0);
    }

    #[test]
    fn dispatch_binds_the_element_type() {
        for d in DType::ALL {
            let size = dispatch!(d, T => std::mem::size_of::<T>());
            // Storage-only dtypes bind their one-byte code.
            assert_eq!(size, d.size(), "{d}");
        }
    }
}
