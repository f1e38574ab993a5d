//! Storage-only low-precision dtypes on the device: the float8 formats, FLOAT8E8M0,
//! FLOAT4E2M1 and the 4-bit and 2-bit integers.
//!
//! A tensor of one of these dtypes holds one *code* per element, widened to `u32` (the host
//! widens the IR's one-byte codes, as it does for u8). Kernels compute on the decoded value —
//! f32 for the float formats (every value is exact in f32), i32 or u32 for the integers:
//! [`decode`] at every load, [`round`] at every conversion into one of these dtypes (the ONNX
//! Cast rules that [`optc_ir::lowp`] implements for the interpreter: round to nearest even, the
//! `saturate` flag, FLOAT8E8M0's `round_mode`), and [`encode`] of the (on-grid) value at every
//! store. Only Cast, CastLike, QuantizeLinear, DequantizeLinear and Identity take these dtypes
//! (the IR refuses every other op), so no other template meets them.
//!
//! The expressions use their operand several times; callers pass a variable or a load.

use super::common::{f32_inf, f32_nan};
use crate::builder::{f, i, select, u};
use crate::ir::{BinOp, Expr, Scalar, UnOp};
use optc_ir::dtype::DType;
use optc_ir::lowp::{self, E8m0Round, Kind};

fn from_bits(b: Expr) -> Expr {
    Expr::Bitcast(Scalar::F32, Box::new(b))
}

fn bits(v: &Expr) -> Expr {
    Expr::Bitcast(Scalar::U32, Box::new(v.clone()))
}

/// `2^k` for an i32 expression `k` in the normal f32 range.
fn pow2(k: Expr) -> Expr {
    from_bits((k + i(127)).cast(Scalar::U32).bin(BinOp::Shl, u(23)))
}

/// True when the sign bit of the f32 `v` is set (also for -0.0 and negative NaNs).
fn negative(v: &Expr) -> Expr {
    bits(v).bin(BinOp::Shr, u(31)).ne_(u(0))
}

/// The compute value of the code `code` (u32) of `d`.
pub fn decode(code: Expr, d: DType) -> Expr {
    match d {
        DType::I4 => code
            .cast(Scalar::I32)
            .bin(BinOp::Shl, u(28))
            .bin(BinOp::Shr, u(28)),
        DType::I2 => code
            .cast(Scalar::I32)
            .bin(BinOp::Shl, u(30))
            .bin(BinOp::Shr, u(30)),
        DType::U4 => code.and(u(0xF)),
        DType::U2 => code.and(u(0x3)),
        DType::F8E8M0 => select(
            code.clone().eq_(u(0xFF)),
            f32_nan(),
            select(
                code.clone().eq_(u(0)),
                // 2^-127 is an f32 subnormal: its bits, not the exponent trick.
                from_bits(u(0x0040_0000)),
                from_bits(code.bin(BinOp::Shl, u(23))),
            ),
        ),
        _ => {
            let Some(fm) = lowp::float_format(d) else {
                return code;
            };
            let sign = u(fm.sign as u32);
            let neg = code.clone().and(sign.clone()).ne_(u(0));
            let mag = code.clone().and(u(fm.sign as u32 - 1));
            let e = mag.clone().bin(BinOp::Shr, u(fm.mant));
            let m = mag.clone().and(u((1 << fm.mant) - 1));
            let normal = from_bits(
                (e.clone() + u((127 - fm.bias) as u32))
                    .bin(BinOp::Shl, u(23))
                    .or(m.clone().bin(BinOp::Shl, u(23 - fm.mant))),
            );
            let sub = m.cast(Scalar::F32) * f(2f32.powi(1 - fm.bias - fm.mant as i32));
            let v = select(e.eq_(u(0)), sub, normal);
            let v = select(neg.clone(), -v.clone(), v);
            match fm.kind {
                Kind::Fn => select(mag.eq_(u(0x7F)), f32_nan(), v),
                Kind::Fnuz => select(code.eq_(u(0x80)), f32_nan(), v),
                Kind::Ieee => select(
                    mag.clone().eq_(u(0x7C)),
                    select(neg, -f32_inf(), f32_inf()),
                    select(mag.gt(u(0x7C)), f32_nan(), v),
                ),
                Kind::Finite => v,
            }
        }
    }
}

/// The f32 `v` rounded to the grid of the float format `d` (a float8 format, FLOAT8E8M0 or
/// FLOAT4E2M1): the value whose code [`encode`] gives, as [`optc_ir::lowp::encode_f32`]
/// rounds. Other dtypes: `v` unchanged.
pub fn round(v: Expr, d: DType, saturate: bool, mode: E8m0Round) -> Expr {
    if d == DType::F8E8M0 {
        let b = bits(&v);
        let exp = b.clone().bin(BinOp::Shr, u(23)).and(u(0xFF));
        let up = match mode {
            E8m0Round::Down => Expr::Bool(false),
            E8m0Round::Up => b.and(u(0x7F_FFFF)).ne_(u(0)),
            E8m0Round::Nearest => {
                let g = b.clone().and(u(0x40_0000)).ne_(u(0));
                let r = b.clone().and(u(0x20_0000)).ne_(u(0));
                let s = b.and(u(0x1F_FFFF)).ne_(u(0));
                g.and(r.or(s).or(exp.clone().gt(u(0))))
            }
        };
        let up = if saturate {
            up.and(exp.clone().ne_(u(0xFE)))
        } else {
            up
        };
        let code = exp + select(up, u(1), u(0));
        let code = select(
            v.clone().un(UnOp::IsInf),
            u(if saturate { 0xFE } else { 0xFF }),
            code,
        );
        let code = select(v.un(UnOp::IsNan), u(0xFF), code);
        return decode(code, d);
    }
    let Some(fm) = lowp::float_format(d) else {
        return v;
    };
    let a = v.clone().un(UnOp::Abs);
    let emin = 1 - fm.bias;
    let e = (bits(&a).bin(BinOp::Shr, u(23)).cast(Scalar::I32) - i(127)).max(i(emin));
    let q = pow2(e - i(fm.mant as i32));
    let r = (a / q.clone()).un(UnOp::Round) * q;
    let max = lowp::decode(d, fm.max);
    let saturate = saturate || fm.kind == Kind::Finite;
    let over = if saturate {
        f(max)
    } else if fm.kind == Kind::Ieee {
        f32_inf()
    } else {
        f32_nan()
    };
    let r = select(r.clone().gt(f(max)), over, r);
    let neg = negative(&v);
    let signed = select(neg.clone(), -r.clone(), r);
    let nan_to = if fm.kind == Kind::Finite {
        // FLOAT4E2M1 has no NaN: ml_dtypes (and the interpreter) give a zero of the opposite
        // sign.
        select(neg, f(0.0), from_bits(u(0x8000_0000)))
    } else {
        v.clone()
    };
    select(v.un(UnOp::IsNan), nan_to, signed)
}

/// The code (u32) of the compute value `v` of `d`; for the float formats `v` must be on the
/// format's grid (the result of [`round`] or [`decode`]).
pub fn encode(v: Expr, d: DType) -> Expr {
    match d {
        DType::I4 | DType::U4 => v.cast(Scalar::U32).and(u(0xF)),
        DType::I2 | DType::U2 => v.cast(Scalar::U32).and(u(0x3)),
        DType::F8E8M0 => select(
            v.clone().un(UnOp::IsNan),
            u(0xFF),
            // Powers of two 2^(c - 127): the f32 exponent field is the code (2^-127, an f32
            // subnormal, has field 0 = code 0).
            bits(&v).bin(BinOp::Shr, u(23)).and(u(0xFF)),
        ),
        _ => {
            let Some(fm) = lowp::float_format(d) else {
                return v;
            };
            let sgn = select(negative(&v), u(fm.sign as u32), u(0));
            let a = v.clone().un(UnOp::Abs);
            let ab = bits(&a);
            let emin = 1 - fm.bias;
            // The biased exponent re-biased (u32 arithmetic wraps, so a negative shift works).
            let normal = (ab.clone().bin(BinOp::Shr, u(23)) + u((fm.bias - 127) as u32))
                .bin(BinOp::Shl, u(fm.mant))
                .or(ab
                    .bin(BinOp::Shr, u(23 - fm.mant))
                    .and(u((1 << fm.mant) - 1)));
            let sub = (a.clone() * f(2f32.powi(fm.mant as i32 - emin))).cast(Scalar::U32);
            let mag = select(a.clone().lt(f(2f32.powi(emin))), sub, normal);
            let code = sgn.clone().or(mag);
            let code = match fm.kind {
                Kind::Fnuz => select(a.eq_(f(0.0)), u(0), code),
                Kind::Ieee => select(v.clone().un(UnOp::IsInf), sgn.clone().or(u(0x7C)), code),
                _ => code,
            };
            let nan_code = match fm.kind {
                Kind::Fn => sgn.or(u(0x7F)),
                Kind::Fnuz => u(0x80),
                Kind::Ieee => sgn.or(u(0x7E)),
                Kind::Finite => u(0),
            };
            select(v.un(UnOp::IsNan), nan_code, code)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lower::sim::run_op;
    use optc_ir::dtype::DType;
    use optc_ir::lowp::{self, E8m0Round};
    use optc_ir::ops::Op;
    use optc_ir::tensor::Tensor;

    /// Every storage-only dtype, floats first.
    fn lowp_dtypes() -> Vec<DType> {
        let mut v: Vec<DType> = DType::ALL.into_iter().filter(|d| d.is_lowp()).collect();
        v.sort_by_key(|&d| lowp::is_lowp_int(d));
        assert_eq!(v.len(), 10);
        v
    }

    fn all_codes(d: DType) -> Tensor {
        let n = 1usize << lowp::bits(d).unwrap();
        Tensor::from_codes(d, vec![n], (0..n).map(|c| c as u8).collect()).unwrap()
    }

    /// f32 probes for rounding into `d`: every value of the format, the midpoints between
    /// neighbours (ties) and the floats just beside them, beyond the largest value, infinities,
    /// NaNs, signed zeros, tiny values and a spread of others.
    fn probes(d: DType) -> Vec<f32> {
        let n = 1u32 << lowp::bits(d).unwrap();
        let mut vals: Vec<f32> = (0..n)
            .map(|c| lowp::decode(d, c as u8))
            .filter(|v| v.is_finite())
            .collect();
        vals.sort_by(f32::total_cmp);
        let mut out = vals.clone();
        for w in vals.windows(2) {
            let mid = (w[0] + w[1]) / 2.0;
            out.extend([
                mid,
                f32::from_bits(mid.to_bits() + 1),
                f32::from_bits(mid.to_bits().saturating_sub(1)),
            ]);
        }
        let max = vals.iter().fold(0f32, |a, &v| a.max(v.abs()));
        out.extend([max * 1.0625, max * 1.5, max * 4.0, 1e30, f32::MAX]);
        out.extend([
            f32::INFINITY,
            f32::NAN,
            0.0,
            1e-30,
            3.3e-3,
            0.7,
            1.3,
            17.0,
            300.0,
        ]);
        let neg: Vec<f32> = out.iter().map(|v| -v).collect();
        out.extend(neg);
        out
    }

    fn codes(t: &Tensor) -> Vec<u8> {
        t.bytes().to_vec()
    }

    #[test]
    fn every_code_decodes_as_the_interpreter_does() {
        for d in lowp_dtypes() {
            let (got, want) = run_op(&Op::Cast { to: DType::F32 }, &[Some(all_codes(d))], &[]);
            let (g, w) = (got[0].to_f64_vec(), want[0].to_f64_vec());
            for (c, (a, b)) in g.iter().zip(&w).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{d}: code {c:#x} decodes to {a}, the interpreter to {b}"
                );
            }
        }
    }

    #[test]
    fn rounding_into_each_format_matches_the_interpreter_code_for_code() {
        for d in lowp_dtypes() {
            let xs = probes(if lowp::is_lowp_int(d) {
                DType::F4E2M1
            } else {
                d
            });
            let x = Tensor::from_vec(vec![xs.len()], xs.clone()).unwrap();
            let mut ops = vec![Op::Cast { to: d }];
            if !lowp::is_lowp_int(d) {
                for round_mode in [E8m0Round::Up, E8m0Round::Down, E8m0Round::Nearest] {
                    for saturate in [true, false] {
                        ops.push(Op::CastExt {
                            to: d,
                            saturate,
                            round_mode,
                        });
                    }
                }
            }
            for op in ops {
                let (got, want) = run_op(&op, &[Some(x.clone())], &[]);
                let (g, w) = (codes(&got[0]), codes(&want[0]));
                for (k, (a, b)) in g.iter().zip(&w).enumerate() {
                    assert_eq!(
                        a, b,
                        "{op:?}: {} gives code {a:#x}, the interpreter {b:#x}",
                        xs[k]
                    );
                }
            }
        }
    }

    #[test]
    fn quantize_and_dequantize_through_low_precision_match_the_interpreter() {
        let x = Tensor::from_vec(
            vec![8],
            vec![-9.0f32, -3.5, -0.26, 0.0, 0.25, 2.5, 7.0, 600.0],
        )
        .unwrap();
        let scale = Tensor::from_vec(vec![], vec![0.5f32]).unwrap();
        for d in lowp_dtypes() {
            if d == DType::F8E8M0 {
                continue; // Not a QuantizeLinear output type.
            }
            let q = Op::QuantizeLinear {
                axis: 1,
                block_size: 0,
                output_dtype: Some(d),
                saturate: true,
            };
            let (got, want) = run_op(&q, &[Some(x.clone()), Some(scale.clone())], &[]);
            assert_eq!(codes(&got[0]), codes(&want[0]), "QuantizeLinear to {d}");
            let dq = Op::DequantizeLinear {
                axis: 1,
                block_size: 0,
            };
            let (got, want) = run_op(&dq, &[Some(want[0].clone()), Some(scale.clone())], &[]);
            assert_eq!(
                got[0].to_f64_vec(),
                want[0].to_f64_vec(),
                "DequantizeLinear of {d}"
            );
        }
    }
}
