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
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 13] = [
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
    ];

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// True for the floating-point dtypes.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }

    /// True for the integer dtypes (not bool).
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
/// `bool` tensors use [`Bool8`] elements. Conversions go through `f64` (floats) or `i128`-free
/// `f64`/`i64` pairs, which is exact for every value of every supported dtype except `u64`
/// above 2^63 (stored through `as_i64` wrapping) and 64-bit integers beyond 2^53 through `f64`.
pub trait Elem:
    bytemuck::Pod + Send + Sync + PartialEq + PartialOrd + fmt::Debug + 'static
{
    /// The dtype this Rust type stores.
    const DTYPE: DType;
    /// Converts to f64 (ONNX Cast semantics for floats and integers).
    fn to_f64(self) -> f64;
    /// Converts from f64: floats round to nearest, integers truncate toward zero and wrap
    /// like a C cast of an in-range value (out-of-range values saturate).
    fn from_f64(v: f64) -> Self;
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
            fn from_f64(v: f64) -> Self { v as $t }
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
    fn from_f64(v: f64) -> Self {
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
    fn from_f64(v: f64) -> Self {
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
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        f16::to_f64(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        f16::from_f64(v as f64)
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
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        bf16::to_f64(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        bf16::from_f64(v as f64)
    }
    fn zero() -> Self {
        bf16::ZERO
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
    fn from_f64(v: f64) -> Self {
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
/// ```ignore
/// let n = dispatch!(t.dtype(), T => t.view::<T>().len());
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
    }

    #[test]
    fn dispatch_binds_the_element_type() {
        for d in DType::ALL {
            let size = dispatch!(d, T => std::mem::size_of::<T>());
            assert_eq!(size, d.size(), "{d}");
        }
    }
}
