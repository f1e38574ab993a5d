//! Storage-only low-precision dtypes: the four float8 formats, FLOAT8E8M0, FLOAT4E2M1 and the
//! 4-bit and 2-bit integers.
//!
//! A tensor of one of these dtypes stores one *code* per element in one byte (the format's bit
//! pattern in the low bits; 4-bit and 2-bit codes are unpacked). Only conversions are defined
//! here — to and from f32/f64/i64 with the ONNX `Cast` rules (round to nearest even, the
//! `saturate` flag of float8, the `round_mode` of FLOAT8E8M0, wrapping for the narrow
//! integers) and the packing of 4-bit and 2-bit codes in ONNX `TensorProto`s. Arithmetic ops
//! refuse these dtypes; Cast, CastLike, QuantizeLinear and DequantizeLinear convert them.

use crate::dtype::DType;
use crate::ops::Op;

/// Why `op` cannot take (or produce) a value of one of `dtypes`: `Some` when one is a
/// storage-only dtype and `op` is not one of the ops that convert them (Cast, CastLike,
/// QuantizeLinear, DequantizeLinear), Identity or If. The interpreter and inference check
/// this before any op code runs, so no other op ever sees these dtypes.
pub fn refuse(op: &Op, mut dtypes: impl Iterator<Item = DType>) -> Option<String> {
    let accepts = matches!(
        op,
        Op::Identity
            | Op::Cast { .. }
            | Op::CastExt { .. }
            | Op::QuantizeLinear { .. }
            | Op::DequantizeLinear { .. }
            | Op::If { .. }
    );
    if accepts {
        return None;
    }
    dtypes.find(|d| d.is_lowp()).map(|d| {
        format!(
            "{} does not support {d} tensors (optc only converts them: Cast, CastLike, \
             QuantizeLinear, DequantizeLinear)",
            op.name()
        )
    })
}

/// Rounding of a cast to FLOAT8E8M0 (ONNX `Cast` attribute `round_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum E8m0Round {
    /// Round up to the next power of two (the default).
    #[default]
    Up,
    /// Round down (truncate the mantissa).
    Down,
    /// Round to the nearest power of two.
    Nearest,
}

/// Layout of a small float format: exponent and mantissa widths, bias, largest finite code
/// (without the sign) and how NaN and infinity are encoded. Public so that kernel templates
/// can generate the same conversions ([`float_format`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fmt {
    /// Mantissa bits.
    pub mant: u32,
    /// Exponent bias.
    pub bias: i32,
    /// Code of the largest finite magnitude.
    pub max: u8,
    /// The sign bit.
    pub sign: u8,
    /// NaN and infinity encoding.
    pub kind: Kind,
}

/// How a small float format encodes NaN and infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// NaN is `S.1111.111`; no infinities (E4M3FN).
    Fn,
    /// NaN is `0x80`; no infinities and no negative zero (E4M3FNUZ, E5M2FNUZ).
    Fnuz,
    /// IEEE-like: infinities and NaNs in the top exponent (E5M2).
    Ieee,
    /// No NaN and no infinities (FLOAT4E2M1).
    Finite,
}

/// The layout of a float8 format or FLOAT4E2M1 (`None` for other dtypes, FLOAT8E8M0 included).
pub fn float_format(d: DType) -> Option<Fmt> {
    fmt(d)
}

fn fmt(d: DType) -> Option<Fmt> {
    let f = |mant, bias, max, sign, kind| {
        Some(Fmt {
            mant,
            bias,
            max,
            sign,
            kind,
        })
    };
    match d {
        DType::F8E4M3FN => f(3, 7, 0x7E, 0x80, Kind::Fn),
        DType::F8E4M3FNUZ => f(3, 8, 0x7F, 0x80, Kind::Fnuz),
        DType::F8E5M2 => f(2, 15, 0x7B, 0x80, Kind::Ieee),
        DType::F8E5M2FNUZ => f(2, 16, 0x7F, 0x80, Kind::Fnuz),
        DType::F4E2M1 => f(1, 1, 0x7, 0x8, Kind::Finite),
        _ => None,
    }
}

/// Bits per element of a low-precision dtype as stored in ONNX (8, 4 or 2); `None` for the
/// other dtypes.
pub fn bits(d: DType) -> Option<u32> {
    match d {
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 => {
            Some(8)
        }
        DType::F4E2M1 | DType::I4 | DType::U4 => Some(4),
        DType::I2 | DType::U2 => Some(2),
        _ => None,
    }
}

/// True for the low-precision float dtypes (the float8 formats, FLOAT8E8M0, FLOAT4E2M1).
pub fn is_lowp_float(d: DType) -> bool {
    d.is_lowp() && !is_lowp_int(d)
}

/// True for the low-precision integer dtypes (INT4, UINT4, INT2, UINT2).
pub fn is_lowp_int(d: DType) -> bool {
    matches!(d, DType::I4 | DType::U4 | DType::I2 | DType::U2)
}

/// Decodes a code of `d` to f32 (exactly; every value of these formats is an f32). Integer
/// dtypes decode to their integer value.
pub fn decode(d: DType, code: u8) -> f32 {
    if is_lowp_int(d) {
        return decode_int(d, code) as f32;
    }
    if d == DType::F8E8M0 {
        return if code == 0xFF {
            f32::NAN
        } else {
            2f32.powi(code as i32 - 127)
        };
    }
    let Some(f) = fmt(d) else {
        return f32::NAN;
    };
    let neg = code & f.sign != 0;
    let mag = code & (f.sign - 1);
    match f.kind {
        Kind::Fnuz if code == 0x80 => return f32::NAN,
        Kind::Fn if mag == 0x7F => return if neg { -f32::NAN } else { f32::NAN },
        Kind::Ieee if mag >= 0x7C => {
            let v = if mag == 0x7C { f32::INFINITY } else { f32::NAN };
            return if neg { -v } else { v };
        }
        _ => {}
    }
    let e = (mag >> f.mant) as i32;
    let m = (mag & ((1 << f.mant) - 1)) as f32;
    let scale = 2f32.powi(-(f.mant as i32));
    let v = if e == 0 {
        m * scale * 2f32.powi(1 - f.bias)
    } else {
        (1.0 + m * scale) * 2f32.powi(e - f.bias)
    };
    if neg { -v } else { v }
}

/// Decodes a code of a low-precision integer dtype (sign-extending INT4 and INT2).
pub fn decode_int(d: DType, code: u8) -> i64 {
    match d {
        DType::I4 => (((code & 0xF) << 4) as i8 >> 4) as i64,
        DType::I2 => (((code & 0x3) << 6) as i8 >> 6) as i64,
        DType::U4 => (code & 0xF) as i64,
        DType::U2 => (code & 0x3) as i64,
        _ => decode(d, code) as i64,
    }
}

/// Encodes an integer as a low-precision integer code, keeping the low bits (ONNX Cast
/// between integers wraps).
pub fn encode_int(d: DType, v: i64) -> u8 {
    match d {
        DType::I4 | DType::U4 => (v & 0xF) as u8,
        DType::I2 | DType::U2 => (v & 0x3) as u8,
        _ => encode_f64(d, v as f64, true, E8m0Round::Up),
    }
}

/// Encodes an f64 as a code of `d` with a single rounding: float formats round to nearest
/// even (through an f32 rounded to odd, which is exact for these narrow formats); integer
/// formats truncate toward zero and wrap.
pub fn encode_f64(d: DType, v: f64, saturate: bool, round: E8m0Round) -> u8 {
    if is_lowp_int(d) {
        let i = if v.is_nan() { 0 } else { v as i64 };
        return encode_int(d, i);
    }
    encode_f32(d, crate::dtype::f64_to_f32_odd(v), saturate, round)
}

/// Encodes an f32 as a code of `d` (see [`encode_f64`]). `saturate` (float8 formats only):
/// out-of-range values and infinities become the largest finite value of the same sign
/// instead of NaN (or infinity for E5M2). FLOAT4E2M1 always saturates and, having no NaN,
/// maps NaN to zero (as `ml_dtypes` does).
pub fn encode_f32(d: DType, v: f32, saturate: bool, round: E8m0Round) -> u8 {
    if is_lowp_int(d) {
        return encode_f64(d, v as f64, saturate, round);
    }
    if d == DType::F8E8M0 {
        return encode_e8m0(v, saturate, round);
    }
    let Some(f) = fmt(d) else {
        return 0;
    };
    let neg = v.is_sign_negative();
    let sign = if neg { f.sign } else { 0 };
    let nan = match f.kind {
        Kind::Fn => sign | 0x7F,
        Kind::Fnuz => 0x80,
        Kind::Ieee => sign | 0x7E,
        // ml_dtypes maps NaN to a zero of the opposite sign.
        Kind::Finite => (f.sign ^ sign) & f.sign,
    };
    if v.is_nan() {
        return nan;
    }
    let saturate = saturate || f.kind == Kind::Finite;
    let overflow = if saturate {
        sign | f.max
    } else if f.kind == Kind::Ieee {
        sign | 0x7C
    } else {
        nan
    };
    if v.is_infinite() {
        return overflow;
    }
    let a = (v as f64).abs();
    if a == 0.0 {
        return if f.kind == Kind::Fnuz { 0 } else { sign };
    }
    // Round |v| to the format's grid: spacing 2^(e - mant) for e = max(exponent(a), emin).
    let emin = 1 - f.bias;
    let e = (((a.to_bits() >> 52) & 0x7FF) as i32 - 1023).max(emin);
    let q = 2f64.powi(e - f.mant as i32);
    let r = (a / q).round_ties_even() * q;
    let max = decode(d, f.max) as f64;
    if r > max {
        return overflow;
    }
    if r == 0.0 {
        return if f.kind == Kind::Fnuz { 0 } else { sign };
    }
    let re = ((r.to_bits() >> 52) & 0x7FF) as i32 - 1023;
    let mag = if re < emin {
        // Subnormal: the mantissa counts units of 2^(emin - mant).
        (r / 2f64.powi(emin - f.mant as i32)) as u8
    } else {
        let m = (r / 2f64.powi(re - f.mant as i32)) as u32 - (1 << f.mant);
        (((re + f.bias) as u32) << f.mant | m) as u8
    };
    sign | mag
}

/// f32 → FLOAT8E8M0 (a biased power-of-two exponent; 0xFF is NaN), as the ONNX reference
/// `to_float8e8m0` does; the sign is ignored (negative inputs are undefined in ONNX).
fn encode_e8m0(v: f32, saturate: bool, round: E8m0Round) -> u8 {
    if v.is_nan() {
        return 0xFF;
    }
    if v.is_infinite() {
        return if saturate { 0xFE } else { 0xFF };
    }
    let bits = v.to_bits();
    let exp = (bits >> 23) & 0xFF;
    let up = match round {
        E8m0Round::Down => false,
        E8m0Round::Up => bits & 0x7F_FFFF != 0,
        E8m0Round::Nearest => {
            let g = bits & 0x40_0000 != 0;
            let r = bits & 0x20_0000 != 0;
            let s = bits & 0x1F_FFFF != 0;
            g && (r || s || exp > 0)
        }
    };
    let up = up && !(saturate && exp == 0xFE);
    (exp + up as u32) as u8
}

/// Packs unpacked codes of a 4-bit or 2-bit dtype into ONNX's layout (element `i` in bits
/// `(i % k) * w ..` of byte `i / k`, low bits first; the last byte is zero-padded). Other
/// dtypes are returned as they are.
pub fn pack(d: DType, codes: &[u8]) -> Vec<u8> {
    let w = match bits(d) {
        Some(w @ (2 | 4)) => w as usize,
        _ => return codes.to_vec(),
    };
    let k = 8 / w;
    let mask = ((1u16 << w) - 1) as u8;
    let mut out = vec![0u8; codes.len().div_ceil(k)];
    for (i, &c) in codes.iter().enumerate() {
        out[i / k] |= (c & mask) << ((i % k) * w);
    }
    out
}

/// Number of bytes the packed form of `n` elements of `d` takes (`n` for 8-bit dtypes).
pub fn packed_len(d: DType, n: usize) -> usize {
    match bits(d) {
        Some(w @ (2 | 4)) => n.div_ceil(8 / w as usize),
        _ => n,
    }
}

/// Unpacks `n` codes of a 4-bit or 2-bit dtype from ONNX's packed layout; `None` when `bytes`
/// is not exactly [`packed_len`] long.
pub fn unpack(d: DType, bytes: &[u8], n: usize) -> Option<Vec<u8>> {
    if bytes.len() != packed_len(d, n) {
        return None;
    }
    let w = match bits(d) {
        Some(w @ (2 | 4)) => w as usize,
        _ => return Some(bytes.to_vec()),
    };
    let k = 8 / w;
    let mask = ((1u16 << w) - 1) as u8;
    Some(
        (0..n)
            .map(|i| (bytes[i / k] >> ((i % k) * w)) & mask)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(d: DType, v: f32, sat: bool) -> u8 {
        encode_f32(d, v, sat, E8m0Round::Up)
    }

    #[test]
    fn e4m3fn_rounds_saturates_and_keeps_nan() {
        let d = DType::F8E4M3FN;
        assert_eq!(e(d, 448.0, true), 0x7E);
        assert_eq!(decode(d, 0x7E), 448.0);
        // 464 is the tie between 448 and (unrepresentable) 480: it rounds to even 448.
        assert_eq!(e(d, 464.0, false), 0x7E);
        assert_eq!(e(d, 465.0, false), 0x7F);
        assert_eq!(e(d, 465.0, true), 0x7E);
        assert_eq!(e(d, -1e6, true), 0xFE);
        assert_eq!(e(d, f32::INFINITY, true), 0x7E);
        assert_eq!(e(d, f32::NEG_INFINITY, false), 0xFF);
        assert!(decode(d, e(d, f32::NAN, true)).is_nan());
        assert_eq!(e(d, -0.0, true), 0x80);
        assert!(decode(d, 0x80).is_sign_negative());
        // Subnormals: the smallest is 2^-9; 2^-10 ties to 0, 1.5 * 2^-10 rounds up.
        assert_eq!(e(d, 2f32.powi(-9), true), 0x01);
        assert_eq!(decode(d, 0x01), 2f32.powi(-9));
        assert_eq!(e(d, 2f32.powi(-10), true), 0x00);
        assert_eq!(e(d, 1.5 * 2f32.powi(-10), true), 0x01);
        assert_eq!(decode(d, 0x07), 7.0 * 2f32.powi(-9));
        assert_eq!(e(d, 0.47892547, true), 0x2F);
        assert_eq!(decode(d, 0x2F), 0.46875);
    }

    #[test]
    fn other_float8_formats() {
        let d = DType::F8E4M3FNUZ;
        assert_eq!(decode(d, 0x7F), 240.0);
        assert_eq!(e(d, -0.0, false), 0x00);
        assert_eq!(e(d, -1e-7, true), 0x00);
        assert_eq!(e(d, f32::INFINITY, false), 0x80);
        assert_eq!(e(d, f32::NEG_INFINITY, true), 0xFF);
        assert!(decode(d, 0x80).is_nan());
        let d = DType::F8E5M2;
        assert_eq!(decode(d, 0x7B), 57344.0);
        assert_eq!(e(d, 61439.0, false), 0x7B);
        assert_eq!(e(d, 61440.0, false), 0x7C);
        assert_eq!(decode(d, 0x7C), f32::INFINITY);
        assert_eq!(e(d, 1e6, true), 0x7B);
        assert_eq!(e(d, -96.0, true), 0xD6);
        let d = DType::F8E5M2FNUZ;
        assert_eq!(decode(d, 0x7F), 57344.0);
        assert_eq!(e(d, 1e6, false), 0x80);
        assert_eq!(e(d, 1.0, false), 0x40);
    }

    #[test]
    fn float4_and_e8m0() {
        let d = DType::F4E2M1;
        let all: Vec<f32> = (0..8).map(|c| decode(d, c)).collect();
        assert_eq!(all, vec![0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(decode(d, 0xF), -6.0);
        assert_eq!(e(d, 0.25, false), 0x0);
        assert_eq!(e(d, 1.05, false), 0x2);
        assert_eq!(e(d, -3.5, false), 0xE);
        assert_eq!(e(d, 9.0, false), 0x7);
        assert_eq!(e(d, f32::NEG_INFINITY, false), 0xF);
        assert_eq!(e(d, f32::NAN, false), 0x8);
        let d = DType::F8E8M0;
        assert_eq!(e(d, 1.1, true), 128);
        assert_eq!(decode(d, 128), 2.0);
        assert_eq!(encode_f32(d, 1.1, true, E8m0Round::Down), 127);
        assert_eq!(encode_f32(d, 1.6, true, E8m0Round::Nearest), 128);
        assert_eq!(encode_f32(d, 1.4, true, E8m0Round::Nearest), 127);
        assert_eq!(e(d, 0.0, true), 0);
        assert_eq!(decode(d, 0), 2f32.powi(-127));
        assert_eq!(e(d, f32::MAX, true), 0xFE);
        assert_eq!(e(d, f32::MAX, false), 0xFF);
        assert!(decode(d, 0xFF).is_nan());
    }

    #[test]
    fn narrow_integers_wrap_and_sign_extend() {
        assert_eq!(encode_f32(DType::I4, -9.0, true, E8m0Round::Up), 7);
        assert_eq!(decode_int(DType::I4, encode_int(DType::I4, 8)), -8);
        assert_eq!(decode_int(DType::U4, encode_int(DType::U4, -1)), 15);
        assert_eq!(decode_int(DType::I2, encode_int(DType::I2, 3)), -1);
        assert_eq!(
            decode(DType::U2, encode_f64(DType::U2, 2.9, true, E8m0Round::Up)),
            2.0
        );
        assert_eq!(decode_int(DType::I4, 0xF), -1);
    }

    #[test]
    fn packing_round_trips_odd_lengths() {
        let codes = [1u8, 0xF, 7];
        let p = pack(DType::I4, &codes);
        assert_eq!(p, vec![0xF1, 0x07]);
        assert_eq!(unpack(DType::I4, &p, 3).unwrap(), codes);
        assert!(unpack(DType::I4, &p, 5).is_none());
        let codes = [0u8, 1, 2, 3, 3];
        let p = pack(DType::U2, &codes);
        assert_eq!(p, vec![0b11_10_01_00, 0b11]);
        assert_eq!(unpack(DType::U2, &p, 5).unwrap(), codes);
        assert_eq!(packed_len(DType::U2, 5), 2);
        assert_eq!(packed_len(DType::F8E5M2, 5), 5);
        assert_eq!(pack(DType::F8E5M2, &[3, 4]), vec![3, 4]);
    }

    #[test]
    fn only_conversions_accept_storage_only_dtypes() {
        use crate::ops::BinaryOp;
        let add = Op::Binary(BinaryOp::Add);
        let msg = refuse(&add, [DType::F32, DType::F8E5M2].into_iter()).unwrap();
        assert!(msg.contains("Add does not support f8e5m2"), "{msg}");
        assert!(refuse(&add, [DType::F32, DType::I8].into_iter()).is_none());
        assert!(refuse(&Op::Cast { to: DType::F32 }, [DType::I4].into_iter()).is_none());
        // The interpreter refuses before any op code runs.
        let t = crate::Tensor::from_codes(DType::U4, vec![1], vec![3]).unwrap();
        let e = crate::interp::eval_op(&add, &[Some(t.clone()), Some(t)], 1).unwrap_err();
        assert!(e.to_string().contains("does not support u4"), "{e}");
    }
}
