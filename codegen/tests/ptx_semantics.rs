//! Semantics of the printed PTX, checked without a GPU: the test-only PTX interpreter
//! (`optc-ptxsim`) runs printed kernels on the CPU, and the results are compared with Rust
//! references (f64 math for the float functions; WGSL's rules for integer division, shifts and
//! conversions).
//!
//! The `.approx` instructions are modelled as exact (`ex2`, `lg2`, `rsqrt` rounded to f32), so
//! these tests check the printer's *algorithms* (range reductions, polynomials, special cases,
//! guards), not the hardware's approximation error (≤ 2 ulp for ex2/rsqrt, 2^-22 absolute for
//! lg2, per the PTX ISA). An integer division by zero, which PTX leaves undefined, panics here,
//! so an unguarded one fails the test.

use optc_codegen::{PtxTarget, emit_ptx};
use optc_kernels::KernelBuilder;
use optc_kernels::builder::select;
use optc_kernels::ir::{Access, BinOp, Builtin, Expr, Kernel, Scalar, Type, UnOp};
use optc_ptxsim::{Launch, Memory, Module};

// ---- running a printed kernel --------------------------------------------------------------

fn bytes_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// `y[i] = body(x[i], w[i])` for every element, one thread each; returns `y` as bits.
fn map2(
    name: &str,
    x_ty: Scalar,
    y_ty: Scalar,
    xs: &[u32],
    ws: &[u32],
    body: impl Fn(Expr, Expr) -> Expr,
) -> Vec<u32> {
    let n = xs.len() as u32;
    let wg = n.min(256);
    let mut b = KernelBuilder::new(format!("k_{name}"), [wg, 1, 1]);
    let x = b.buffer("x", Type::scalar(x_ty), Access::Read);
    let w = b.buffer("w", Type::scalar(x_ty), Access::Read);
    let y = b.buffer("y", Type::scalar(y_ty), Access::ReadWrite);
    let g = Expr::Builtin(Builtin::GlobalId(0));
    let xv = b.let_(Type::scalar(x_ty), Expr::load(x, g.clone()));
    let wv = b.let_(Type::scalar(x_ty), Expr::load(w, g.clone()));
    b.store(y, g, body(xv, wv));
    let k: Kernel = b.finish();
    let src = emit_ptx(&k, PtxTarget::Sm89).unwrap_or_else(|e| panic!("{e}"));
    // Whole blocks: pad the inputs to a multiple of the block by repeating their first element
    // (a value the test already runs) and drop the padding's results.
    let padded = n.next_multiple_of(wg) as usize;
    let pad = |v: &[u32]| {
        let mut v = v.to_vec();
        v.resize(padded, v[0]);
        bytes_u32(&v)
    };
    let module = Module::parse(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut mem = Memory::new();
    let params = [
        mem.add("x", pad(xs), false),
        mem.add("w", pad(ws), false),
        mem.add("y", vec![0u8; padded * 4], true),
    ];
    let launch = Launch {
        grid: [padded as u32 / wg, 1, 1],
        block: [wg, 1, 1],
    };
    optc_ptxsim::launch(&module, launch, &params, &mut mem, 1 << 32)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut y = u32s(mem.region(params[2]));
    y.truncate(n as usize);
    y
}

// ---- float functions ----------------------------------------------------------------------

fn float_inputs() -> Vec<f32> {
    let mut v: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.025).collect();
    v.extend([
        0.0,
        -0.0,
        1e-7,
        -3e-5,
        1e-3,
        0.4999,
        0.5001,
        0.7,
        0.71,
        0.999,
        1.0001,
        1.41,
        1.5,
        2.4,
        2.5,
        -2.5,
        7.0,
        30.0,
        -30.0,
        88.0,
        89.0,
        100.0,
        -100.0,
        1499.0,
        1501.0,
        1e4,
        -3.3e3,
        1e20,
        -1e30,
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]);
    v
}

/// Within `rel` relative error (or `abs` absolute, for results near 0) of the f64 reference;
/// NaN, infinities and their signs must match exactly.
fn close(got: f32, want: f64, rel: f64, abs: f64) -> bool {
    let w = want as f32;
    if w.is_nan() || got.is_nan() {
        return w.is_nan() && got.is_nan();
    }
    if w.is_infinite() || got.is_infinite() {
        // Results that overflow f32 only near the boundary may differ by rounding.
        return w == got || (f64::from(got) - want).abs() <= rel * want.abs();
    }
    let err = (f64::from(got) - want).abs();
    err <= abs || err <= rel * want.abs()
}

#[test]
fn float_unary_functions_match_f64_references() {
    let xs = float_inputs();
    let bits: Vec<u32> = xs.iter().map(|x| x.to_bits()).collect();
    type Ref = fn(f64) -> f64;
    let cases: Vec<(UnOp, Ref, f64, f64, f64)> = vec![
        // op, reference, relative bound, absolute bound (near 0), |x| limit
        // exp's error grows with |x| (the rounding of x·log2 e): ≤ 1e-5 up to overflow.
        (UnOp::Exp, f64::exp, 1e-5, 1e-43, f64::INFINITY),
        (UnOp::Log, f64::ln, 4e-7, 0.0, f64::INFINITY),
        (UnOp::Sqrt, f64::sqrt, 1e-7, 0.0, f64::INFINITY),
        (
            UnOp::InverseSqrt,
            |x| 1.0 / x.sqrt(),
            1e-7,
            0.0,
            f64::INFINITY,
        ),
        (UnOp::Sin, f64::sin, 1e-6, 3e-7, 1e4),
        (UnOp::Cos, f64::cos, 1e-6, 3e-7, 1e4),
        (UnOp::Tan, f64::tan, 2e-6, 3e-7, 1e4),
        (UnOp::Asin, f64::asin, 5e-7, 0.0, f64::INFINITY),
        (UnOp::Acos, f64::acos, 5e-7, 0.0, f64::INFINITY),
        (UnOp::Atan, f64::atan, 5e-7, 0.0, f64::INFINITY),
        (UnOp::Sinh, f64::sinh, 1e-5, 0.0, f64::INFINITY),
        (UnOp::Cosh, f64::cosh, 1e-5, 0.0, f64::INFINITY),
        (UnOp::Tanh, f64::tanh, 1e-6, 0.0, f64::INFINITY),
        (UnOp::Asinh, f64::asinh, 5e-7, 0.0, f64::INFINITY),
        (UnOp::Acosh, f64::acosh, 5e-7, 0.0, f64::INFINITY),
        (UnOp::Atanh, f64::atanh, 5e-7, 0.0, f64::INFINITY),
        (UnOp::Floor, f64::floor, 0.0, 0.0, f64::INFINITY),
        (UnOp::Ceil, f64::ceil, 0.0, 0.0, f64::INFINITY),
        (UnOp::Trunc, f64::trunc, 0.0, 0.0, f64::INFINITY),
        (UnOp::Round, f64::round_ties_even, 0.0, 0.0, f64::INFINITY),
        (UnOp::Abs, f64::abs, 0.0, 0.0, f64::INFINITY),
        (UnOp::Neg, |x| -x, 0.0, 0.0, f64::INFINITY),
        (
            UnOp::Sign,
            |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            },
            0.0,
            0.0,
            f64::INFINITY,
        ),
    ];
    let mut bad = Vec::new();
    for (op, reference, rel, abs, limit) in cases {
        let ys = map2(
            &format!("{op:?}").to_lowercase(),
            Scalar::F32,
            Scalar::F32,
            &bits,
            &bits,
            |x, _| x.un(op),
        );
        for (x, y) in xs.iter().zip(&ys) {
            if f64::from(x.abs()) > limit {
                continue;
            }
            let want = reference(f64::from(*x));
            let got = f32::from_bits(*y);
            if !close(got, want, rel, abs) {
                bad.push(format!("{op:?}({x:e}) = {got:e}, want {want:e}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn float_binary_functions_and_nan_tests() {
    let xs = float_inputs();
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (i, x) in xs.iter().enumerate() {
        a.push(*x);
        b.push(xs[(i * 7 + 3) % xs.len()]);
    }
    let (ab, bb): (Vec<u32>, Vec<u32>) = (
        a.iter().map(|x| x.to_bits()).collect(),
        b.iter().map(|x| x.to_bits()).collect(),
    );
    let mut bad = Vec::new();
    type Ref = fn(f64, f64) -> f64;
    let cases: Vec<(BinOp, Ref, f64)> = vec![
        (BinOp::Atan2, f64::atan2, 5e-7),
        (BinOp::Min, f64::min, 0.0),
        (BinOp::Max, f64::max, 0.0),
        (BinOp::Div, |a, b| a / b, 1e-7),
    ];
    for (op, reference, rel) in cases {
        let ys = map2("bin", Scalar::F32, Scalar::F32, &ab, &bb, |x, w| {
            x.bin(op, w)
        });
        for i in 0..a.len() {
            let (x, w) = (f64::from(a[i]), f64::from(b[i]));
            if op == BinOp::Atan2 && (x == 0.0 && w == 0.0 || x.is_infinite() && w.is_infinite()) {
                continue; // undefined in WGSL; documented choices
            }
            let got = f32::from_bits(ys[i]);
            let want = reference(x, w);
            if !close(got, want, rel, 1e-30) {
                bad.push(format!("{op:?}({x:e}, {w:e}) = {got:e}, want {want:e}"));
            }
        }
    }
    // Rem: C fmod (Rust's `%` on f32), exact (sign of zero included) while |a / b| < 2^24.
    let ys = map2("rem", Scalar::F32, Scalar::F32, &ab, &bb, |x, w| {
        x.bin(BinOp::Rem, w)
    });
    for i in 0..a.len() {
        let (x, w) = (a[i], b[i]);
        if (f64::from(x) / f64::from(w)).abs() >= 16777216.0 && x.is_finite() && w != 0.0 {
            continue;
        }
        let want = x % w;
        let got = f32::from_bits(ys[i]);
        let ok = (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits();
        if !ok {
            bad.push(format!("Rem({x:e}, {w:e}) = {got:e}, want {want:e}"));
        }
    }
    // pow on positive bases (WGSL leaves negative bases undefined), pow(x, 0) = 1.
    let pos: Vec<u32> = a.iter().map(|x| x.abs().to_bits()).collect();
    let exps: Vec<u32> = b.iter().map(|y| (y / 10.0).to_bits()).collect();
    let ys = map2("pow", Scalar::F32, Scalar::F32, &pos, &exps, |x, w| {
        x.bin(BinOp::Pow, w)
    });
    for i in 0..pos.len() {
        let (x, w) = (f32::from_bits(pos[i]), f32::from_bits(exps[i]));
        let want = f64::from(x).powf(f64::from(w));
        let got = f32::from_bits(ys[i]);
        if !w.is_finite() {
            continue; // pow(1, ±inf), pow(1, NaN): undefined in WGSL, NaN here
        }
        if !close(got, want, 2e-5, 1e-30) {
            bad.push(format!("Pow({x:e}, {w:e}) = {got:e}, want {want:e}"));
        }
    }
    // IsNan / IsInf / float != (unordered).
    let ys = map2("isnan", Scalar::F32, Scalar::U32, &ab, &bb, |x, w| {
        let nan = x.clone().un(UnOp::IsNan).cast(Scalar::U32);
        let inf = x.clone().un(UnOp::IsInf).cast(Scalar::U32) * Expr::U32(2);
        let ne = x.bin(BinOp::Ne, w).cast(Scalar::U32) * Expr::U32(4);
        nan + inf + ne
    });
    for i in 0..a.len() {
        let want = u32::from(a[i].is_nan())
            + 2 * u32::from(a[i].is_infinite())
            + 4 * u32::from(a[i] != b[i]);
        if ys[i] != want {
            bad.push(format!(
                "IsNan/IsInf/Ne({}, {}) = {}, want {want}",
                a[i], b[i], ys[i]
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

// ---- integers and conversions ---------------------------------------------------------------

fn int_inputs() -> Vec<i32> {
    vec![
        0,
        1,
        -1,
        2,
        -2,
        3,
        7,
        -7,
        31,
        32,
        33,
        100,
        -100,
        65536,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
    ]
}

#[test]
fn integer_division_shifts_and_wrapping_follow_wgsl() {
    let vals = int_inputs();
    let mut a = Vec::new();
    let mut b = Vec::new();
    for x in &vals {
        for y in &vals {
            a.push(*x as u32);
            b.push(*y as u32);
        }
    }
    let wgsl_div = |x: i32, y: i32| {
        if y == 0 || (x == i32::MIN && y == -1) {
            x
        } else {
            x / y
        }
    };
    let wgsl_rem = |x: i32, y: i32| {
        if y == 0 || (x == i32::MIN && y == -1) {
            0
        } else {
            x % y
        }
    };
    let mut bad = Vec::new();
    type IRef = fn(i32, i32) -> i32;
    let signed: Vec<(BinOp, IRef)> = vec![
        (BinOp::Div, wgsl_div),
        (BinOp::Rem, wgsl_rem),
        (BinOp::Add, i32::wrapping_add),
        (BinOp::Sub, i32::wrapping_sub),
        (BinOp::Mul, i32::wrapping_mul),
        (BinOp::Min, i32::min),
        (BinOp::Max, i32::max),
    ];
    for (op, r) in signed {
        let ys = map2("sdiv", Scalar::I32, Scalar::I32, &a, &b, |x, w| {
            x.bin(op, w)
        });
        for i in 0..a.len() {
            let want = r(a[i] as i32, b[i] as i32) as u32;
            if ys[i] != want {
                bad.push(format!(
                    "{op:?}({}, {}) = {}, want {}",
                    a[i] as i32, b[i] as i32, ys[i] as i32, want as i32
                ));
            }
        }
    }
    let ys = map2("udiv", Scalar::U32, Scalar::U32, &a, &b, |x, w| {
        x.clone().bin(BinOp::Div, w.clone()).bin(
            BinOp::Xor,
            x.bin(BinOp::Rem, w).bin(BinOp::Shl, Expr::U32(16)),
        )
    });
    for i in 0..a.len() {
        let (x, y) = (a[i], b[i]);
        // WGSL: x / 0 = x, x % 0 = 0.
        let (d, r) = (x.checked_div(y).unwrap_or(x), x.checked_rem(y).unwrap_or(0));
        let want = d ^ (r << 16);
        if ys[i] != want {
            bad.push(format!("u32 div/rem({x}, {y}) = {}, want {want}", ys[i]));
        }
    }
    // Shift amounts modulo 32; arithmetic shift right on i32.
    let ys = map2("shifts", Scalar::I32, Scalar::I32, &a, &b, |x, w| {
        let amt = w.cast(Scalar::U32);
        x.clone()
            .bin(BinOp::Shl, amt.clone())
            .bin(BinOp::Xor, x.bin(BinOp::Shr, amt))
    });
    for i in 0..a.len() {
        let (x, s) = (a[i] as i32, b[i] & 31);
        let want = (x.wrapping_shl(s) ^ (x >> s)) as u32;
        if ys[i] != want {
            bad.push(format!("shifts({x}, {}) = {}, want {want}", b[i], ys[i]));
        }
    }
    // Literal divisors (no guard): by -1 and by a constant.
    let ys = map2("lit", Scalar::I32, Scalar::I32, &a, &b, |x, _| {
        x.clone().bin(BinOp::Div, Expr::I32(-1))
            + x.clone().bin(BinOp::Rem, Expr::I32(-1))
            + x.bin(BinOp::Div, Expr::I32(7))
    });
    for i in 0..a.len() {
        let x = a[i] as i32;
        let want = (x.wrapping_neg().wrapping_add(x / 7)) as u32;
        if ys[i] != want {
            bad.push(format!("literal div({x}) = {}, want {want}", ys[i] as i32));
        }
    }
    // Unary integer ops.
    let ys = map2("iun", Scalar::I32, Scalar::I32, &a, &b, |x, _| {
        x.clone()
            .un(UnOp::Abs)
            .bin(
                BinOp::Xor,
                x.clone().un(UnOp::Sign).bin(BinOp::Shl, Expr::U32(8)),
            )
            .bin(BinOp::Xor, x.clone().un(UnOp::Not))
            .bin(BinOp::Xor, x.un(UnOp::Neg))
    });
    for i in 0..a.len() {
        let x = a[i] as i32;
        let want = (x.wrapping_abs() ^ (x.signum() << 8) ^ !x ^ x.wrapping_neg()) as u32;
        if ys[i] != want {
            bad.push(format!("unary({x}) = {}, want {want}", ys[i] as i32));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn conversions_saturate_and_round_like_wgsl() {
    let xs = float_inputs();
    let bits: Vec<u32> = xs.iter().map(|x| x.to_bits()).collect();
    let ys = map2("f2i", Scalar::F32, Scalar::I32, &bits, &bits, |x, _| {
        x.cast(Scalar::I32)
    });
    let zs = map2("f2u", Scalar::F32, Scalar::U32, &bits, &bits, |x, _| {
        x.cast(Scalar::U32)
    });
    let bs = map2("f2b", Scalar::F32, Scalar::U32, &bits, &bits, |x, _| {
        x.cast(Scalar::Bool).cast(Scalar::U32)
    });
    let hs = map2("f2h2f", Scalar::F32, Scalar::F32, &bits, &bits, |x, _| {
        x.cast(Scalar::F16).cast(Scalar::F32)
    });
    let mut bad = Vec::new();
    for (i, x) in xs.iter().enumerate() {
        // Rust's `as` truncates and saturates, NaN → 0: WGSL's clamping conversion.
        if ys[i] as i32 != *x as i32 {
            bad.push(format!("i32({x}) = {}", ys[i] as i32));
        }
        if zs[i] != *x as u32 {
            bad.push(format!("u32({x}) = {}", zs[i]));
        }
        if bs[i] != u32::from(*x != 0.0) {
            bad.push(format!("bool({x}) = {}", bs[i]));
        }
        let h = half::f16::from_f32(*x).to_f32();
        if f32::from_bits(hs[i]).to_bits() != h.to_bits()
            && !(h.is_nan() && f32::from_bits(hs[i]).is_nan())
        {
            bad.push(format!(
                "f32(f16({x})) = {}, want {h}",
                f32::from_bits(hs[i])
            ));
        }
    }
    let ints: Vec<u32> = int_inputs().iter().map(|v| *v as u32).collect();
    let fs = map2("i2f", Scalar::I32, Scalar::F32, &ints, &ints, |x, _| {
        x.cast(Scalar::F32)
    });
    let us = map2("u2f", Scalar::U32, Scalar::F32, &ints, &ints, |x, _| {
        x.cast(Scalar::F32)
    });
    let hs = map2("i2h", Scalar::I32, Scalar::F32, &ints, &ints, |x, _| {
        x.cast(Scalar::F16).cast(Scalar::F32)
    });
    for (i, v) in ints.iter().enumerate() {
        if f32::from_bits(fs[i]) != *v as i32 as f32 {
            bad.push(format!(
                "f32(i32 {}) = {}",
                *v as i32,
                f32::from_bits(fs[i])
            ));
        }
        if f32::from_bits(us[i]) != *v as f32 {
            bad.push(format!("f32(u32 {v}) = {}", f32::from_bits(us[i])));
        }
        // One rounding, integer → f16 (65536 and beyond are +inf in f16).
        let want = half::f16::from_f64(f64::from(*v as i32)).to_f32();
        if f32::from_bits(hs[i]) != want {
            bad.push(format!(
                "f16(i32 {}) = {}, want {want}",
                *v as i32,
                f32::from_bits(hs[i])
            ));
        }
    }
    // Bool selects and vector lanes through a select.
    let ys = map2("sel", Scalar::F32, Scalar::F32, &bits, &bits, |x, _| {
        let c = x.clone().gt(Expr::F32(0.5));
        select(c, x.clone() * Expr::F32(2.0), x.un(UnOp::Neg))
    });
    for (i, x) in xs.iter().enumerate() {
        let want = if *x > 0.5 { x * 2.0 } else { -x };
        let got = f32::from_bits(ys[i]);
        if got != want && !(got.is_nan() && want.is_nan()) {
            bad.push(format!("select({x}) = {got}, want {want}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn f16_pairs_pack_into_u32_low_lane_first() {
    // `Bitcast(u32, vec2<f16>)`, as the tensor-core pipeline packs gathered f16 operands.
    let xs: Vec<f32> = vec![1.0, -2.5, 65504.0, 6.1e-5, 0.0, -0.0, 3.0e-7, 1.0e9];
    let ws: Vec<f32> = vec![0.5, 7.0, -1.0, 1.0e-3, -3.25, 2.0, 100.0, -1.0e9];
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let ys = map2(
        "pack_f16x2",
        Scalar::F32,
        Scalar::U32,
        &bits(&xs),
        &bits(&ws),
        |x, w| {
            Expr::Bitcast(
                Scalar::U32,
                Box::new(Expr::Vector(vec![x.cast(Scalar::F16), w.cast(Scalar::F16)])),
            )
        },
    );
    for ((x, w), y) in xs.iter().zip(&ws).zip(&ys) {
        let lo = half::f16::from_f32(*x).to_bits() as u32;
        let hi = half::f16::from_f32(*w).to_bits() as u32;
        assert_eq!(*y, lo | (hi << 16), "pack({x}, {w})");
    }
}
