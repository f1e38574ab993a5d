//! Semantics of the printed PTX, checked without a GPU: a small interpreter for the subset of
//! PTX the printer emits runs printed kernels one thread at a time on the CPU, and the results
//! are compared with Rust references (f64 math for the float functions; WGSL's rules for
//! integer division, shifts and conversions).
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
use std::collections::BTreeMap;

// ---- the interpreter ----------------------------------------------------------------------

struct Inst {
    guard: Option<(bool, String)>,
    op: String,
    args: Vec<String>,
}

struct Program {
    insts: Vec<Inst>,
    labels: BTreeMap<String, usize>,
}

fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn parse(src: &str) -> Program {
    let body = &src[src.find("\n{\n").expect("entry body") + 3..];
    let mut insts = Vec::new();
    let mut labels = BTreeMap::new();
    for line in body.lines() {
        let line = line.split("//").next().unwrap().trim();
        if line.is_empty() || line.starts_with('.') || line == "}" {
            continue;
        }
        if let Some(l) = line.strip_suffix(':') {
            labels.insert(l.to_string(), insts.len());
            continue;
        }
        let line = line.strip_suffix(';').expect("instruction ends with ;");
        let (guard, rest) = match line.strip_prefix('@') {
            Some(r) => {
                let (g, rest) = r.split_once(' ').unwrap();
                let neg = g.starts_with('!');
                (
                    Some((neg, g.trim_start_matches('!').to_string())),
                    rest.trim(),
                )
            }
            None => (None, line),
        };
        let (op, args) = rest.split_once(' ').unwrap_or((rest, ""));
        insts.push(Inst {
            guard,
            op: op.to_string(),
            args: split_args(args),
        });
    }
    Program { insts, labels }
}

/// One thread's machine: registers as raw bits, buffers as byte vectors addressed by
/// `(binding + 1) << 40 | offset`.
struct Machine<'a> {
    regs: BTreeMap<String, u64>,
    bufs: &'a mut [Vec<u8>],
    tid: u32,
    ntid: u32,
}

fn f(bits: u64) -> f32 {
    f32::from_bits(bits as u32)
}

fn fb(v: f32) -> u64 {
    u64::from(v.to_bits())
}

fn h2f(bits: u64) -> f32 {
    half::f16::from_bits(bits as u16).to_f32()
}

impl Machine<'_> {
    fn val(&self, s: &str) -> u64 {
        if let Some(hex) = s.strip_prefix("0f") {
            return u64::from(u32::from_str_radix(hex, 16).unwrap());
        }
        if let Some(hex) = s.strip_prefix("0x") {
            return u64::from_str_radix(hex, 16).unwrap();
        }
        match s {
            "%tid.x" => return u64::from(self.tid),
            "%ntid.x" => return u64::from(self.ntid),
            "%ctaid.x" | "%tid.y" | "%tid.z" | "%ctaid.y" | "%ctaid.z" => return 0,
            "%laneid" => return u64::from(self.tid % 32),
            _ => {}
        }
        if s.starts_with('%') {
            return *self
                .regs
                .get(s)
                .unwrap_or_else(|| panic!("read of unset register {s}"));
        }
        s.parse::<i64>()
            .map(|v| v as u64)
            .unwrap_or_else(|_| panic!("operand {s}"))
    }

    fn set(&mut self, r: &str, v: u64) {
        self.regs.insert(r.to_string(), v);
    }

    fn addr(&self, s: &str) -> (usize, usize) {
        let inner = s.trim_start_matches('[').trim_end_matches(']');
        let (base, off) = match inner.split_once('+') {
            Some((b, o)) => (b, o.parse::<u64>().unwrap()),
            None => (inner, 0),
        };
        let a = self.val(base).wrapping_add(off);
        ((a >> 40) as usize - 1, (a & ((1 << 40) - 1)) as usize)
    }

    fn run(&mut self, p: &Program) {
        let mut pc = 0;
        let mut steps = 0;
        while pc < p.insts.len() {
            steps += 1;
            assert!(steps < 100_000, "runaway program");
            let i = &p.insts[pc];
            pc += 1;
            if let Some((neg, g)) = &i.guard
                && (self.val(g) != 0) == *neg
            {
                continue;
            }
            if i.op == "ret" {
                return;
            }
            if i.op == "bra" {
                pc = p.labels[&i.args[0]];
                continue;
            }
            self.exec(&i.op, &i.args);
        }
    }

    fn exec(&mut self, op: &str, a: &[String]) {
        let parts: Vec<&str> = op.split('.').collect();
        let d = a[0].as_str();
        let x = |m: &Self, k: usize| m.val(&a[k]);
        let ty = *parts.last().unwrap();
        let r: u64 = match parts[0] {
            "ld" if parts[1] == "param" => {
                let k: u64 = a[1].trim_matches(|c| c == '[' || c == ']')[1..]
                    .parse()
                    .unwrap();
                (k + 1) << 40
            }
            "cvta" => x(self, 1),
            "ld" => {
                let (b, off) = self.addr(&a[1]);
                let size = if ty == "b16" { 2 } else { 4 };
                let lanes: Vec<String> = a[0]
                    .trim_matches(|c| c == '{' || c == '}')
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect();
                for (l, reg) in lanes.iter().enumerate() {
                    let o = off + l * size;
                    let bytes = &self.bufs[b][o..o + size];
                    let mut v = 0u64;
                    for (k, byte) in bytes.iter().enumerate() {
                        v |= u64::from(*byte) << (8 * k);
                    }
                    self.set(reg, v);
                }
                return;
            }
            "st" => {
                let (b, off) = self.addr(&a[0]);
                let size = if ty == "b16" { 2 } else { 4 };
                let lanes: Vec<u64> = a[1]
                    .trim_matches(|c| c == '{' || c == '}')
                    .split(',')
                    .map(|s| self.val(s.trim()))
                    .collect();
                for (l, v) in lanes.iter().enumerate() {
                    for k in 0..size {
                        self.bufs[b][off + l * size + k] = (v >> (8 * k)) as u8;
                    }
                }
                return;
            }
            "mov" => x(self, 1) & mask(ty),
            "selp" => {
                if x(self, 3) != 0 {
                    x(self, 1)
                } else {
                    x(self, 2)
                }
            }
            "setp" => u64::from(compare(parts[1], ty, x(self, 1), x(self, 2))),
            "and" | "or" | "xor" if ty == "pred" || ty == "b32" => {
                let (p, q) = (x(self, 1), x(self, 2));
                let v = match parts[0] {
                    "and" => p & q,
                    "or" => p | q,
                    _ => p ^ q,
                };
                v & mask(ty)
            }
            "not" if ty == "pred" => u64::from(x(self, 1) == 0),
            "not" => !x(self, 1) & 0xffff_ffff,
            "shl" => {
                let s = x(self, 2) as u32;
                if s >= 32 {
                    0
                } else {
                    u64::from((x(self, 1) as u32) << s)
                }
            }
            "shr" => {
                let s = (x(self, 2) as u32).min(32);
                if ty == "s32" {
                    let v = x(self, 1) as u32 as i32;
                    u64::from((if s >= 32 { v >> 31 } else { v >> s }) as u32)
                } else if s >= 32 {
                    0
                } else {
                    u64::from((x(self, 1) as u32) >> s)
                }
            }
            "mul" if parts[1] == "wide" => {
                if ty == "s32" {
                    (i64::from(x(self, 1) as u32 as i32) * i64::from(x(self, 2) as u32 as i32))
                        as u64
                } else {
                    (x(self, 1) & 0xffff_ffff) * (x(self, 2) & 0xffff_ffff)
                }
            }
            "add" if ty == "s64" => x(self, 1).wrapping_add(x(self, 2)),
            "cvt" => cvt(&parts[1..], x(self, 1)),
            _ if ty == "f32" => {
                let fa = |k: usize| f(x(self, k));
                let v = match parts[0] {
                    "add" => fa(1) + fa(2),
                    "sub" => fa(1) - fa(2),
                    "mul" => fa(1) * fa(2),
                    "div" => fa(1) / fa(2),
                    "fma" => fa(1).mul_add(fa(2), fa(3)),
                    "neg" => -fa(1),
                    "abs" => fa(1).abs(),
                    "min" => fa(1).min(fa(2)),
                    "max" => fa(1).max(fa(2)),
                    "sqrt" => fa(1).sqrt(),
                    "rsqrt" => (1.0 / f64::from(fa(1)).sqrt()) as f32,
                    "ex2" => f64::from(fa(1)).exp2() as f32,
                    "lg2" => f64::from(fa(1)).log2() as f32,
                    "copysign" => fa(2).copysign(fa(1)),
                    o => panic!("unmodelled f32 op {o}"),
                };
                fb(v)
            }
            _ => {
                let (p, q) = (x(self, 1) as u32, a.get(2).map(|_| x(self, 2) as u32));
                let (sp, sq) = (p as i32, q.map(|q| q as i32));
                let signed = ty == "s32";
                let v: u32 = match parts[0] {
                    "add" => p.wrapping_add(q.unwrap()),
                    "sub" => p.wrapping_sub(q.unwrap()),
                    "mul" => p.wrapping_mul(q.unwrap()),
                    "mad" => p.wrapping_mul(q.unwrap()).wrapping_add(x(self, 3) as u32),
                    "div" | "rem" => {
                        let q = q.unwrap();
                        assert!(q != 0, "{op} by zero (undefined in PTX)");
                        match (parts[0], signed) {
                            ("div", true) => sp.wrapping_div(sq.unwrap()) as u32,
                            ("div", false) => p / q,
                            (_, true) => sp.wrapping_rem(sq.unwrap()) as u32,
                            _ => p % q,
                        }
                    }
                    "min" if signed => sp.min(sq.unwrap()) as u32,
                    "max" if signed => sp.max(sq.unwrap()) as u32,
                    "min" => p.min(q.unwrap()),
                    "max" => p.max(q.unwrap()),
                    "neg" => p.wrapping_neg(),
                    "abs" => sp.wrapping_abs() as u32,
                    o => panic!("unmodelled op {o}.{ty}"),
                };
                u64::from(v)
            }
        };
        self.set(d, r);
    }
}

fn mask(ty: &str) -> u64 {
    match ty {
        "b16" => 0xffff,
        "pred" => 1,
        "u64" | "b64" | "s64" => u64::MAX,
        _ => 0xffff_ffff,
    }
}

fn compare(cmp: &str, ty: &str, a: u64, b: u64) -> bool {
    use std::cmp::Ordering::*;
    let ord = match ty {
        "f32" => f(a).partial_cmp(&f(b)),
        "s32" => Some((a as u32 as i32).cmp(&(b as u32 as i32))),
        _ => Some((a as u32).cmp(&(b as u32))),
    };
    match (cmp, ord) {
        ("neu", None) => true,
        (_, None) => false,
        ("eq", Some(o)) => o == Equal,
        ("ne" | "neu", Some(o)) => o != Equal,
        ("lt", Some(o)) => o == Less,
        ("le", Some(o)) => o != Greater,
        ("gt", Some(o)) => o == Greater,
        ("ge", Some(o)) => o != Less,
        (c, _) => panic!("comparison {c}"),
    }
}

fn cvt(mods: &[&str], v: u64) -> u64 {
    let (dst, src) = (mods[mods.len() - 2], mods[mods.len() - 1]);
    let rnd = if mods.len() == 3 { mods[0] } else { "" };
    let x = match src {
        "f32" => f64::from(f(v)),
        "f16" => f64::from(h2f(v)),
        "s32" => f64::from(v as u32 as i32),
        _ => f64::from(v as u32),
    };
    match dst {
        "f32" => {
            let y = match (src, rnd) {
                ("f32", "rzi") => x.trunc(),
                ("f32", "rmi") => x.floor(),
                ("f32", "rpi") => x.ceil(),
                ("f32", "rni") => x.round_ties_even(),
                _ => x,
            };
            fb(y as f32)
        }
        // One rounding from the exact source value.
        "f16" => u64::from(half::f16::from_f64(x).to_bits()),
        // Float → integer: truncation with saturation and NaN → 0 (Rust's `as`).
        "s32" => u64::from((x.trunc() as i32) as u32),
        "u32" => u64::from(x.trunc() as u32),
        d => panic!("cvt to {d}"),
    }
}

/// Runs thread `tid` of a one-dimensional kernel over `bufs`.
fn run_thread(src: &str, bufs: &mut [Vec<u8>], tid: u32, ntid: u32) {
    let p = parse(src);
    let mut m = Machine {
        regs: BTreeMap::new(),
        bufs,
        tid,
        ntid,
    };
    m.run(&p);
}

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
    let mut b = KernelBuilder::new(format!("k_{name}"), [n.min(1024), 1, 1]);
    let x = b.buffer("x", Type::scalar(x_ty), Access::Read);
    let w = b.buffer("w", Type::scalar(x_ty), Access::Read);
    let y = b.buffer("y", Type::scalar(y_ty), Access::ReadWrite);
    let g = Expr::Builtin(Builtin::GlobalId(0));
    let xv = b.let_(Type::scalar(x_ty), Expr::load(x, g.clone()));
    let wv = b.let_(Type::scalar(x_ty), Expr::load(w, g.clone()));
    b.store(y, g, body(xv, wv));
    let k: Kernel = b.finish();
    let src = emit_ptx(&k, PtxTarget::Sm89).unwrap_or_else(|e| panic!("{e}"));
    let mut bufs = vec![bytes_u32(xs), bytes_u32(ws), vec![0u8; xs.len() * 4]];
    for t in 0..n {
        run_thread(&src, &mut bufs, t, n);
    }
    u32s(&bufs[2])
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
