//! The elementwise template: one output element per invocation, any number of inputs broadcast
//! (numpy rules) to the output, and a scalar expression program computed in the compute scalar
//! (f32 for floats, i32/u32 for integers, bool). Unary, activation, binary, variadic, Clip, Where,
//! Cast, bitwise, Q/DQ, Swish and Shrink all lower here; a fused elementwise kernel is just a
//! bigger program.
//!
//! [`scalar_op`] is the one implementation of each elementwise op's scalar code: single-op
//! kernels call it once, fused programs ([`eval_program`], used by anchorless fused kernels
//! ([`lower_program`]) and by anchor epilogues ([`super::epilogue`])) once per step. Inputs that
//! are known scalars at compile time (Clip bounds, scalar weights) are inlined as literals and
//! bind no buffer.
//!
//! Tuning space: workgroup size (64, 128, 256; default 256).

use super::common::{self, convert, convert_ext, flat_index, grid_1d, guard, load, to_storage};
use super::lowp;
use super::{
    Arg, KernelLaunch, LowerCtx, LowerError, Lowered, TensorDesc, compute_scalar, storage_scalar,
};
use crate::builder::{KernelBuilder, f, i, lit, select, u};
use crate::ir::{Access, BinOp, Expr, Scalar, Type, UnOp};
use optc_ir::dtype::DType;
use optc_ir::infer::{InferInput, infer};
use optc_ir::lowp::{E8m0Round, is_lowp_float};
use optc_ir::ops::{ActivationOp, BinaryOp, BitwiseOp, Fused, Op, Program, UnaryOp, VariadicOp};
use optc_ir::types::TensorType;

/// Default workgroup size of elementwise kernels.
pub const WORKGROUP: u32 = 256;

/// An input of an elementwise kernel: which op input, and the shape it is viewed with
/// (broadcast against the output).
#[derive(Clone, Debug)]
pub struct Operand {
    /// The argument it binds.
    pub arg: Arg,
    /// Its dtype.
    pub dtype: DType,
    /// The shape it broadcasts from.
    pub shape: Vec<usize>,
    /// Its single element as a literal (in its compute scalar) when it is a known scalar: it
    /// then binds no buffer.
    pub literal: Option<Expr>,
}

/// Builds an elementwise kernel computing `program(values)` for every element of `out`, where
/// `values[k]` is operand `k`'s element (in its compute scalar, each loaded once, at the
/// offset [`common::broadcast_flat_offset`] derives from the flat index). Operands must
/// broadcast to `out` (numpy rules); an error otherwise, or when `program` fails.
///
/// When the output and every operand are f32-stored floats, every operand is a literal, a
/// single element or the output's shape, and the element count is a multiple of 4, each thread
/// computes four consecutive elements with vec4 loads and stores (`program` is applied per
/// lane): on lavapipe a load costs the same whatever its width, so this quarters the memory
/// instructions.
pub fn kernel(
    name: String,
    operands: &[Operand],
    out: &TensorDesc,
    out_arg: Arg,
    program: impl Fn(&mut KernelBuilder, Vec<Expr>) -> Result<Expr, LowerError>,
) -> Result<KernelLaunch, LowerError> {
    for o in operands {
        if !common::broadcasts_to(&o.shape, &out.shape) {
            return Err(LowerError::Invalid {
                op: "elementwise",
                msg: format!(
                    "operand of shape {:?} does not broadcast to {:?}",
                    o.shape, out.shape
                ),
            });
        }
    }
    let n = out.numel();
    let wg = WORKGROUP;
    if let Some(launch) = vec4_kernel(&name, operands, out, out_arg, &program)? {
        return Ok(launch);
    }
    let grid = grid_1d(n, wg);
    let mut b = KernelBuilder::new(name, [wg, 1, 1]);
    let mut args = Vec::new();
    let mut bufs = Vec::new();
    for (k, o) in operands.iter().enumerate() {
        if o.literal.is_some() {
            bufs.push(None);
            continue;
        }
        let s = storage_scalar(o.dtype).unwrap_or(Scalar::F32);
        bufs.push(Some(b.buffer(
            format!("in{k}"),
            Type::scalar(s),
            Access::Read,
        )));
        args.push(o.arg);
    }
    let out_s = storage_scalar(out.dtype).unwrap_or(Scalar::F32);
    let ob = b.buffer("out", Type::scalar(out_s), Access::ReadWrite);
    args.push(out_arg);
    let idx = flat_index(&mut b, grid, wg);
    guard(&mut b, &idx, n);
    let mut vals = Vec::new();
    for (k, o) in operands.iter().enumerate() {
        let (Some(buf), None) = (bufs[k], &o.literal) else {
            vals.push(o.literal.clone().unwrap_or(f(0.0)));
            continue;
        };
        let off = common::broadcast_flat_offset(&idx, &out.shape, &o.shape);
        let v = load(buf, off, o.dtype);
        let cs = compute_scalar(o.dtype).unwrap_or(Scalar::F32);
        vals.push(b.let_(Type::scalar(cs), v));
    }
    let value = program(&mut b, vals)?;
    b.store(ob, idx, to_storage(value, out.dtype));
    Ok(KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    })
}

/// How an operand of a vec4 elementwise kernel is read.
#[derive(Clone, Copy, PartialEq)]
enum VecRead {
    Literal,
    /// One element for all lanes.
    Single,
    /// The output's shape: one vec4 per thread.
    Full,
}

/// The vec4 form of [`kernel`], or `None` where it does not apply.
fn vec4_kernel(
    name: &str,
    operands: &[Operand],
    out: &TensorDesc,
    out_arg: Arg,
    program: &impl Fn(&mut KernelBuilder, Vec<Expr>) -> Result<Expr, LowerError>,
) -> Result<Option<KernelLaunch>, LowerError> {
    let f32_stored =
        |d: DType| storage_scalar(d) == Some(Scalar::F32) && compute_scalar(d) == Some(Scalar::F32);
    let n = out.numel();
    if n % 4 != 0 || n == 0 || !f32_stored(out.dtype) {
        return Ok(None);
    }
    let mut reads = Vec::with_capacity(operands.len());
    for o in operands {
        reads.push(if o.literal.is_some() {
            VecRead::Literal
        } else if !f32_stored(o.dtype) {
            return Ok(None);
        } else if o.shape.iter().product::<usize>() == 1 {
            VecRead::Single
        } else if o.shape == out.shape {
            VecRead::Full
        } else {
            return Ok(None);
        });
    }
    let wg = WORKGROUP;
    let grid = grid_1d(n / 4, wg);
    let mut b = KernelBuilder::new(name.to_string(), [wg, 1, 1]);
    let v4 = Type::vec(Scalar::F32, 4);
    let mut args = Vec::new();
    let mut bufs = Vec::new();
    for (k, (o, r)) in operands.iter().zip(&reads).enumerate() {
        let ty = match r {
            VecRead::Literal => {
                bufs.push(None);
                continue;
            }
            VecRead::Single => Type::F32,
            VecRead::Full => v4,
        };
        bufs.push(Some(b.buffer(format!("in{k}"), ty, Access::Read)));
        args.push(o.arg);
    }
    let ob = b.buffer("out", v4, Access::ReadWrite);
    args.push(out_arg);
    let idx = flat_index(&mut b, grid, wg);
    guard(&mut b, &idx, n / 4);
    // Per operand, its four lane values.
    let mut lanes: Vec<[Expr; 4]> = Vec::with_capacity(operands.len());
    for ((o, r), buf) in operands.iter().zip(&reads).zip(&bufs) {
        lanes.push(match (r, buf) {
            (VecRead::Full, Some(buf)) => {
                let v = b.let_(v4, Expr::load(*buf, idx.clone()));
                [0, 1, 2, 3].map(|l| v.clone().lane(l))
            }
            (VecRead::Single, Some(buf)) => {
                let v = b.let_(Type::F32, Expr::load(*buf, i(0)));
                [v.clone(), v.clone(), v.clone(), v]
            }
            _ => {
                let v = o.literal.clone().unwrap_or(f(0.0));
                [v.clone(), v.clone(), v.clone(), v]
            }
        });
    }
    let mut outs = Vec::with_capacity(4);
    for l in 0..4 {
        let vals = lanes.iter().map(|v| v[l].clone()).collect();
        let r = program(&mut b, vals)?;
        outs.push(b.let_(Type::F32, r));
    }
    b.store(ob, idx, Expr::Vector(outs));
    Ok(Some(KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    }))
}

fn operand(ctx: &LowerCtx<'_>, k: usize) -> Result<Operand, LowerError> {
    let d = ctx.input(k)?;
    Ok(Operand {
        arg: Arg::Input(k),
        dtype: d.dtype,
        shape: d.shape.clone(),
        literal: scalar_literal(ctx, k),
    })
}

/// `e` bound to a local of type `ty`, unless it already is a local or a literal (so that a
/// value passed from step to step is not copied).
fn local(b: &mut KernelBuilder, ty: Type, e: Expr) -> Expr {
    match e {
        Expr::Var(_) | Expr::F32(_) | Expr::I32(_) | Expr::U32(_) | Expr::Bool(_) => e,
        _ => b.let_(ty, e),
    }
}

/// True where `x` is NaN ([`UnOp::IsNan`]: the printers test the bits, since WGSL lets
/// compilers assume floats are never NaN).
fn is_nan(x: Expr) -> Expr {
    x.un(UnOp::IsNan)
}

/// True where `x` is +inf (`sign` 1) or -inf (`sign` -1).
fn is_inf(x: Expr, sign: i32) -> Expr {
    let side = if sign > 0 {
        x.clone().gt(f(0.0))
    } else {
        x.clone().lt(f(0.0))
    };
    x.un(UnOp::IsInf).and(side)
}

/// `a > b ? a : b` with NaN propagating from either side.
fn max_nan(a: Expr, b: Expr) -> Expr {
    let m = select(a.clone().gt(b.clone()), a.clone(), b.clone());
    let m = select(is_nan(a.clone()), a, m);
    select(is_nan(b.clone()), b, m)
}

fn min_nan(a: Expr, b: Expr) -> Expr {
    let m = select(a.clone().lt(b.clone()), a.clone(), b.clone());
    let m = select(is_nan(a.clone()), a, m);
    select(is_nan(b.clone()), b, m)
}

/// `log(1 + u)` accurate for small `u` (Goldberg's trick: the rounding error of `1 + u` is
/// divided out).
fn log1p(b: &mut KernelBuilder, u_: Expr) -> Expr {
    let u_ = local(b, Type::F32, u_);
    let w = b.let_(Type::F32, f(1.0) + u_.clone());
    let d = b.let_(Type::F32, w.clone() - f(1.0));
    select(
        d.clone().eq_(f(0.0)),
        u_.clone(),
        w.un(UnOp::Log) * (u_ / select(d.clone().eq_(f(0.0)), f(1.0), d)),
    )
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7).
fn erf(b: &mut KernelBuilder, x: Expr) -> Expr {
    let a = b.let_(Type::F32, x.clone().un(UnOp::Abs));
    let t = b.let_(Type::F32, f(1.0) / (f(1.0) + f(0.327_591_1) * a.clone()));
    let poly = t.clone()
        * (f(0.254_829_6)
            + t.clone()
                * (f(-0.284_496_74)
                    + t.clone()
                        * (f(1.421_413_7) + t.clone() * (f(-1.453_152_1) + t * f(1.061_405_4)))));
    let y = f(1.0) - poly * (-(a.clone() * a)).un(UnOp::Exp);
    x.un(UnOp::Sign) * y
}

/// tanh(x) to f32 accuracy everywhere. Drivers' builtin tanh may be a ratio of exponentials,
/// which cancels catastrophically near 0 and overflows to NaN for large |x| (lavapipe does
/// both), so: Cephes' odd polynomial below 0.625, `1 - 2 / (exp(2|x|) + 1)` above.
fn tanh(b: &mut KernelBuilder, x: Expr) -> Expr {
    let x = local(b, Type::F32, x);
    let a = b.let_(Type::F32, x.clone().un(UnOp::Abs));
    let z = b.let_(Type::F32, x.clone() * x.clone());
    let poly = ((((f(-5.704_988_7e-3) * z.clone() + f(2.063_909e-2)) * z.clone()
        - f(5.373_971_6e-2))
        * z.clone()
        + f(1.333_144_2e-1))
        * z.clone()
        - f(3.333_328e-1))
        * z
        * x.clone()
        + x.clone();
    let big = f(1.0) - f(2.0) / ((f(2.0) * a.clone().min(f(44.0))).un(UnOp::Exp) + f(1.0));
    let big = select(x.lt(f(0.0)), -big.clone(), big);
    select(a.lt(f(0.625)), poly, big)
}

fn sigmoid(x: Expr) -> Expr {
    f(1.0) / (f(1.0) + (-x).un(UnOp::Exp))
}

/// log(1 + exp(x)), stable for large |x| and accurate for very negative x.
fn softplus(b: &mut KernelBuilder, x: Expr) -> Expr {
    let x = local(b, Type::F32, x);
    let e = (-x.clone().un(UnOp::Abs)).un(UnOp::Exp);
    x.max(f(0.0)) + log1p(b, e)
}

/// `x ** y` for f32 with the C/numpy rules for negative bases and zero.
fn pow(b: &mut KernelBuilder, x: Expr, y: Expr) -> Expr {
    let x = local(b, Type::F32, x);
    let y = local(b, Type::F32, y);
    let r = b.let_(
        Type::F32,
        x.clone().un(UnOp::Abs).bin(BinOp::Pow, y.clone()),
    );
    let y_int = y.clone().un(UnOp::Floor).eq_(y.clone());
    let y_odd = y_int
        .clone()
        .and((y.clone() * f(0.5)).un(UnOp::Floor).ne_(y.clone() * f(0.5)));
    let neg = select(y_odd, -r.clone(), r.clone());
    let neg = select(y_int, neg, common::f32_nan());
    let v = select(x.clone().lt(f(0.0)), neg, r);
    select(y.eq_(f(0.0)), f(1.0), v)
}

fn unary(
    b: &mut KernelBuilder,
    whole: &Op,
    op: UnaryOp,
    x: Expr,
    dt: DType,
) -> Result<Expr, LowerError> {
    let float = dt.is_float();
    let need_float = |b: bool| {
        if b {
            Ok(())
        } else {
            Err(refuse(whole, format!("needs {}", dt.name())))
        }
    };
    Ok(match op {
        UnaryOp::Abs => {
            if dt == DType::I64 {
                return Err(refuse(whole, "needs int64 arithmetic"));
            }
            if compute_scalar(dt) == Some(Scalar::U32) {
                x
            } else {
                x.un(UnOp::Abs)
            }
        }
        UnaryOp::Neg => {
            if dt == DType::I64 {
                return Err(refuse(whole, "needs int64 arithmetic"));
            }
            -x
        }
        UnaryOp::Not => x.un(UnOp::Not),
        UnaryOp::IsNaN => is_nan(x),
        UnaryOp::Sign => {
            if float {
                x.un(UnOp::Sign)
            } else if compute_scalar(dt) == Some(Scalar::U32) {
                select(x.gt(u(0)), u(1), u(0))
            } else {
                x.un(UnOp::Sign)
            }
        }
        UnaryOp::Relu => {
            if float {
                select(x.clone().lt(f(0.0)), f(0.0), x)
            } else if compute_scalar(dt) == Some(Scalar::I32) {
                x.max(i(0))
            } else {
                x
            }
        }
        _ => {
            need_float(float)?;
            match op {
                UnaryOp::Exp => x.un(UnOp::Exp),
                UnaryOp::Log => x.un(UnOp::Log),
                UnaryOp::Sqrt => x.un(UnOp::Sqrt),
                UnaryOp::Reciprocal => f(1.0) / x,
                UnaryOp::Sin => x.un(UnOp::Sin),
                UnaryOp::Cos => x.un(UnOp::Cos),
                UnaryOp::Tan => x.un(UnOp::Tan),
                UnaryOp::Asin => x.un(UnOp::Asin),
                UnaryOp::Acos => x.un(UnOp::Acos),
                UnaryOp::Atan => x.un(UnOp::Atan),
                UnaryOp::Sinh => x.un(UnOp::Sinh),
                UnaryOp::Cosh => x.un(UnOp::Cosh),
                UnaryOp::Asinh => x.un(UnOp::Asinh),
                UnaryOp::Acosh => x.un(UnOp::Acosh),
                UnaryOp::Atanh => x.un(UnOp::Atanh),
                UnaryOp::Tanh => tanh(b, x),
                UnaryOp::Sigmoid => sigmoid(x),
                UnaryOp::Erf => erf(b, x),
                UnaryOp::Floor => x.un(UnOp::Floor),
                UnaryOp::Ceil => x.un(UnOp::Ceil),
                UnaryOp::Round => x.un(UnOp::Round),
                UnaryOp::Softplus => softplus(b, x),
                UnaryOp::Softsign => x.clone() / (f(1.0) + x.un(UnOp::Abs)),
                UnaryOp::Mish => {
                    let sp = softplus(b, x.clone());
                    x * tanh(b, sp)
                }
                UnaryOp::HardSwish => {
                    x.clone() * (x * f(1.0 / 6.0) + f(0.5)).max(f(0.0)).min(f(1.0))
                }
                _ => {
                    return Err(LowerError::Invalid {
                        op: whole.name(),
                        msg: format!("unexpected unary op {op:?}"),
                    });
                }
            }
        }
    })
}

fn activation(b: &mut KernelBuilder, op: ActivationOp, x: Expr) -> Expr {
    let x = local(b, Type::F32, x);
    match op {
        ActivationOp::LeakyRelu { alpha } => select(x.clone().lt(f(0.0)), x.clone() * f(alpha), x),
        ActivationOp::Elu { alpha } => select(
            x.clone().lt(f(0.0)),
            f(alpha) * (x.clone().un(UnOp::Exp) - f(1.0)),
            x,
        ),
        ActivationOp::Selu { alpha, gamma } => {
            f(gamma)
                * select(
                    x.clone().le(f(0.0)),
                    f(alpha) * (x.clone().un(UnOp::Exp) - f(1.0)),
                    x,
                )
        }
        ActivationOp::Celu { alpha } => {
            x.clone().max(f(0.0)) + (f(alpha) * ((x / f(alpha)).un(UnOp::Exp) - f(1.0))).min(f(0.0))
        }
        ActivationOp::HardSigmoid { alpha, beta } => {
            (f(alpha) * x + f(beta)).max(f(0.0)).min(f(1.0))
        }
        ActivationOp::ThresholdedRelu { alpha } => select(x.clone().gt(f(alpha)), x, f(0.0)),
        ActivationOp::Gelu { tanh: false } => {
            let e = erf(b, x.clone() * f(std::f32::consts::FRAC_1_SQRT_2));
            f(0.5) * x * (f(1.0) + e)
        }
        ActivationOp::Gelu { tanh: true } => {
            let c = f((2.0f32 / std::f32::consts::PI).sqrt());
            let inner = c * (x.clone() + f(0.044_715) * x.clone() * x.clone() * x.clone());
            f(0.5) * x * (f(1.0) + tanh(b, inner))
        }
        ActivationOp::IsInf {
            detect_negative,
            detect_positive,
        } => {
            let pos = is_inf(x.clone(), 1);
            let neg = is_inf(x, -1);
            match (detect_negative, detect_positive) {
                (true, true) => pos.or(neg),
                (false, true) => pos,
                (true, false) => neg,
                (false, false) => Expr::Bool(false),
            }
        }
    }
}

fn binary(
    b: &mut KernelBuilder,
    whole: &Op,
    op: BinaryOp,
    x: Expr,
    y: Expr,
    dt: DType,
    dt_y: DType,
) -> Result<Expr, LowerError> {
    let float = dt.is_float();
    let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
    let arith = matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Mod { .. }
    );
    if arith && dt == DType::I64 {
        return Err(refuse(whole, "needs int64 arithmetic"));
    }
    Ok(match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Pow => {
            let yf = if dt_y.is_float() {
                y
            } else {
                y.cast(Scalar::F32)
            };
            if float {
                pow(b, x, yf)
            } else {
                let r = pow(b, x.cast(Scalar::F32), yf);
                r.un(UnOp::Round).cast(cs)
            }
        }
        BinaryOp::Mod { fmod } => {
            if fmod {
                x % y
            } else if float {
                // numpy's remainder: the sign of the divisor; ±0 follows the divisor.
                let x = local(b, Type::F32, x);
                let y = local(b, Type::F32, y);
                let m = b.let_(Type::F32, x.clone() % y.clone());
                let fix = m
                    .clone()
                    .ne_(f(0.0))
                    .and(y.clone().lt(f(0.0)).ne_(m.clone().lt(f(0.0))));
                let zero = select(y.clone().lt(f(0.0)), f(-0.0), f(0.0));
                let r = select(
                    fix,
                    m.clone() + y.clone(),
                    select(m.clone().eq_(f(0.0)), zero, m.clone()),
                );
                // x % ±inf: numpy gives x when the signs agree, ±inf otherwise (and NaN for an
                // infinite x, which `%` already gives).
                let y_inf = y.clone().un(UnOp::Abs).eq_(common::f32_inf());
                let same = x
                    .clone()
                    .lt(f(0.0))
                    .eq_(y.clone().lt(f(0.0)))
                    .or(x.clone().eq_(f(0.0)));
                let inf_case = select(same, x, y.clone());
                select(y.eq_(f(0.0)), m, select(y_inf, inf_case, r))
            } else {
                let r = b.let_(Type::scalar(cs), x % y.clone());
                if cs == Scalar::U32 {
                    r
                } else {
                    let fix = r
                        .clone()
                        .ne_(i(0))
                        .and(r.clone().lt(i(0)).ne_(y.clone().lt(i(0))));
                    select(fix, r.clone() + y, r)
                }
            }
        }
        BinaryOp::And => x.and(y),
        BinaryOp::Or => x.or(y),
        BinaryOp::Xor => x.ne_(y),
        BinaryOp::Equal => x.eq_(y),
        BinaryOp::Less => x.lt(y),
        BinaryOp::LessOrEqual => x.le(y),
        BinaryOp::Greater => x.gt(y),
        BinaryOp::GreaterOrEqual => x.ge(y),
        BinaryOp::BitShiftLeft | BinaryOp::BitShiftRight => {
            // Shifts that are negative or at least the width give 0 (left) or the sign fill.
            let width = (dt.size() * 8) as i64;
            let signed = cs == Scalar::I32;
            let x = local(b, Type::scalar(cs), x);
            let y = local(b, Type::scalar(cs), y);
            let in_range = if signed {
                y.clone().ge(i(0)).and(y.clone().lt(i(width as i32)))
            } else {
                y.clone().lt(u(width as u32))
            };
            let s = if signed {
                y.clone().cast(Scalar::U32)
            } else {
                y.clone()
            };
            let s = select(in_range.clone(), s, u(0));
            let zero = lit(cs, 0.0);
            if op == BinaryOp::BitShiftLeft {
                select(in_range, common::wrap_int(x.bin(BinOp::Shl, s), dt), zero)
            } else {
                let fill = if signed {
                    select(x.clone().lt(i(0)), i(-1), i(0))
                } else {
                    zero
                };
                select(in_range, x.bin(BinOp::Shr, s), fill)
            }
        }
        BinaryOp::PRelu => {
            if float {
                select(x.clone().lt(f(0.0)), x.clone() * y, x)
            } else if cs == Scalar::I32 {
                select(x.clone().lt(i(0)), x.clone() * y, x)
            } else {
                x
            }
        }
    })
}

/// One input of a scalar op: its value (in the compute scalar of its dtype) and its graph
/// dtype; `None` for an absent optional input.
pub type ScalarArg = Option<(Expr, DType)>;

fn refuse(op: &Op, what: impl Into<String>) -> LowerError {
    LowerError::Unsupported {
        target: "wgsl",
        op: op.name(),
        what: what.into(),
    }
}

fn arg(op: &Op, args: &[ScalarArg], k: usize) -> Result<(Expr, DType), LowerError> {
    args.get(k)
        .cloned()
        .flatten()
        .ok_or_else(|| LowerError::Invalid {
            op: op.name(),
            msg: format!("input {k} is missing"),
        })
}

/// The scalar code of one elementwise op ([`Program::is_step_op`]: Identity, unary, activation,
/// binary, variadic, Clip, Where, Cast, bitwise, Swish, Shrink) applied to one element of each
/// input, producing one element of dtype `out` in its compute scalar. The single source of the
/// elementwise semantics: single-op kernels and fused programs ([`eval_program`]) both call it.
/// Refusals (int64 arithmetic, math on integers) name `op`.
pub fn scalar_op(
    b: &mut KernelBuilder,
    op: &Op,
    args: &[ScalarArg],
    out: DType,
) -> Result<Expr, LowerError> {
    let x = arg(op, args, 0)?;
    let (xv, dt) = x.clone();
    let need_float = || {
        if dt.is_float() {
            Ok(())
        } else {
            Err(refuse(op, format!("needs {}", dt.name())))
        }
    };
    Ok(match op {
        Op::Identity => xv,
        Op::Unary(u) => unary(b, op, *u, xv, dt)?,
        Op::Activation(a) => {
            need_float()?;
            activation(b, *a, xv)
        }
        Op::Swish { alpha } => {
            need_float()?;
            let x = local(b, Type::F32, xv);
            x.clone() * sigmoid(x * f(*alpha))
        }
        Op::Shrink { bias, lambd } => {
            let cs = compute_scalar(dt).unwrap_or(Scalar::F32);
            let x = local(b, Type::scalar(cs), xv);
            let xf = if cs == Scalar::F32 {
                x
            } else {
                x.cast(Scalar::F32)
            };
            let r = select(
                xf.clone().lt(f(-*lambd)),
                xf.clone() + f(*bias),
                select(xf.clone().gt(f(*lambd)), xf - f(*bias), f(0.0)),
            );
            if cs == Scalar::F32 { r } else { r.cast(cs) }
        }
        Op::Binary(bop) => {
            let (yv, dty) = arg(op, args, 1)?;
            binary(b, op, *bop, xv, yv, dt, dty)?
        }
        Op::Bitwise(bw) => {
            let y = || arg(op, args, 1).map(|a| a.0);
            let r = match bw {
                BitwiseOp::And => xv.and(y()?),
                BitwiseOp::Or => xv.or(y()?),
                BitwiseOp::Xor => xv.bin(BinOp::Xor, y()?),
                BitwiseOp::Not => xv.un(UnOp::Not),
            };
            common::wrap_int(r, dt)
        }
        Op::Variadic(v) => {
            if out == DType::I64 && matches!(v, VariadicOp::Sum | VariadicOp::Mean) {
                return Err(refuse(op, "needs int64 arithmetic"));
            }
            let vals: Vec<Expr> = args.iter().flatten().map(|a| a.0.clone()).collect();
            let float = out.is_float();
            let mut acc = xv;
            for x in &vals[1..] {
                acc = match v {
                    VariadicOp::Sum | VariadicOp::Mean => acc + x.clone(),
                    VariadicOp::Max if float => max_nan(acc, x.clone()),
                    VariadicOp::Min if float => min_nan(acc, x.clone()),
                    VariadicOp::Max => acc.max(x.clone()),
                    VariadicOp::Min => acc.min(x.clone()),
                };
            }
            if *v == VariadicOp::Mean {
                acc / lit(
                    compute_scalar(out).unwrap_or(Scalar::F32),
                    vals.len() as f64,
                )
            } else {
                acc
            }
        }
        Op::Clip => {
            let mut r = xv;
            if let Some((lo, _)) = args.get(1).cloned().flatten() {
                r = select(r.clone().lt(lo.clone()), lo, r);
            }
            if let Some((hi, _)) = args.get(2).cloned().flatten() {
                r = select(r.clone().gt(hi.clone()), hi, r);
            }
            r
        }
        Op::Where => select(xv, arg(op, args, 1)?.0, arg(op, args, 2)?.0),
        Op::Cast { to } => convert(xv, dt, *to),
        _ => {
            return Err(LowerError::Invalid {
                op: op.name(),
                msg: "not a scalar elementwise op".into(),
            });
        }
    })
}

/// The dtype of every value of `p` (program inputs first, then one per step) given the
/// inputs' dtypes, by the IR's own inference on each step.
pub fn program_dtypes(p: &Program, inputs: &[DType]) -> Result<Vec<DType>, LowerError> {
    let bad = |msg: String| LowerError::Invalid { op: "Fused", msg };
    optc_ir::opset::fused::check(p).map_err(bad)?;
    if inputs.len() != p.inputs {
        return Err(bad(format!(
            "program takes {} inputs, {} given",
            p.inputs,
            inputs.len()
        )));
    }
    let mut tys: Vec<TensorType> = inputs.iter().map(|&d| TensorType::fixed(d, &[])).collect();
    for (j, s) in p.steps.iter().enumerate() {
        let ins: Vec<Option<InferInput<'_>>> = s
            .args
            .iter()
            .map(|a| {
                a.map(|a| InferInput {
                    ty: &tys[a],
                    value: None,
                })
            })
            .collect();
        let t = infer(&s.op, &ins, 1)
            .map_err(|e| bad(format!("step {j} ({}): {e}", s.op.name())))?
            .into_iter()
            .next()
            .ok_or_else(|| bad(format!("step {j} ({}) has no output", s.op.name())))?;
        tys.push(TensorType::fixed(t.dtype, &[]));
    }
    Ok(tys.into_iter().map(|t| t.dtype).collect())
}

/// Evaluates program `p` in the kernel being built: `inputs[k]` is program input `k`'s value in
/// its compute scalar, `dtypes` the dtypes [`program_dtypes`] gave. Each step's result is bound
/// to a local in its compute scalar, so a value used by several steps is computed once; values
/// stay in registers at compute precision (f32 for f16 intermediates: a fused program rounds
/// only its result to the output dtype, where the unfused graph rounded every f16
/// intermediate). Returns the result's value.
pub fn eval_program(
    b: &mut KernelBuilder,
    p: &Program,
    dtypes: &[DType],
    inputs: Vec<Expr>,
) -> Result<Expr, LowerError> {
    let mut vals = inputs;
    for (j, s) in p.steps.iter().enumerate() {
        let args: Vec<ScalarArg> = s
            .args
            .iter()
            .map(|a| a.and_then(|a| Some((vals.get(a)?.clone(), *dtypes.get(a)?))))
            .collect();
        let out = *dtypes
            .get(p.inputs + j)
            .ok_or_else(|| LowerError::Invalid {
                op: "Fused",
                msg: "program dtypes do not match its steps".into(),
            })?;
        let cs = compute_scalar(out).ok_or_else(|| LowerError::Unsupported {
            target: "wgsl",
            op: "Fused",
            what: format!("step {j} ({}) needs {}", s.op.name(), out.name()),
        })?;
        let e = scalar_op(b, &s.op, &args, out).map_err(|e| match e {
            LowerError::Unsupported { target, op, what } => LowerError::Unsupported {
                target,
                op: "Fused",
                what: format!("step {j} ({op}) {what}"),
            },
            LowerError::Invalid { op, msg } => LowerError::Invalid {
                op: "Fused",
                msg: format!("step {j} ({op}): {msg}"),
            },
        })?;
        vals.push(local(b, Type::scalar(cs), e));
    }
    vals.pop().ok_or_else(|| LowerError::Invalid {
        op: "Fused",
        msg: "program has no steps".into(),
    })
}

/// A zero of `dtype`'s compute scalar (placeholder values for checking a program).
pub(crate) fn zero_of(dtype: DType) -> Expr {
    match compute_scalar(dtype) {
        Some(Scalar::Bool) => Expr::Bool(false),
        Some(s) => lit(s, 0.0),
        None => f(0.0),
    }
}

/// The single element of a compile-time constant input as a literal in its compute scalar,
/// when it has exactly one element that the literal holds exactly (integers in i32/u32 range).
pub fn scalar_literal(ctx: &LowerCtx<'_>, k: usize) -> Option<Expr> {
    let t = ctx.value(k)?;
    if t.shape().iter().product::<usize>() != 1 {
        return None;
    }
    let dt = t.dtype();
    Some(match compute_scalar(dt)? {
        Scalar::F32 => Expr::F32(*t.to_f64_vec().first()? as f32),
        Scalar::I32 => Expr::I32(i32::try_from(*t.to_i64_vec().first()?).ok()?),
        Scalar::U32 => Expr::U32(u32::try_from(*t.to_i64_vec().first()?).ok()?),
        Scalar::Bool => Expr::Bool(*t.to_i64_vec().first()? != 0),
        Scalar::F16 => return None,
    })
}

/// Lowers an elementwise op.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    let out = ctx.output(0)?.clone();
    let name = ctx.kname("");
    let launch = match ctx.op {
        Op::Dropout => {
            // Inference only: with training_mode true, Dropout draws random masks, unless the
            // ratio is known to be 0.
            let training = match (ctx.opt_input(2), ctx.value(2)) {
                (None, _) => false,
                (Some(_), Some(t)) => t.to_f64_vec().first().is_some_and(|&v| v != 0.0),
                (Some(_), None) => true,
            };
            let zero_ratio = ctx
                .value(1)
                .is_some_and(|t| t.to_f64_vec().first() == Some(&0.0));
            if training && !zero_ratio {
                return Err(ctx.unsupported("in training mode (random masks)"));
            }
            let mut l = Lowered {
                aliases: vec![(0, 0)],
                ..Lowered::default()
            };
            if let Ok(mask) = ctx.output(1) {
                l.launches.push(kernel(
                    ctx.kname("mask"),
                    &[],
                    mask,
                    Arg::Output(1),
                    |_, _| Ok(Expr::Bool(true)),
                )?);
            }
            return Ok(l);
        }
        op if Program::is_step_op(op) => {
            // Every present input is an operand (a literal when it is a known scalar).
            let present: Vec<usize> = (0..ctx.inputs.len())
                .filter(|&k| ctx.opt_input(k).is_some())
                .collect();
            let ops: Vec<Operand> = present
                .iter()
                .map(|&k| operand(ctx, k))
                .collect::<Result<_, _>>()?;
            let dts: Vec<DType> = ops.iter().map(|o| o.dtype).collect();
            let n_in = ctx.inputs.len();
            let out_dt = out.dtype;
            kernel(name, &ops, &out, Arg::Output(0), |b, v| {
                let mut args: Vec<ScalarArg> = vec![None; n_in];
                for ((&k, e), &dt) in present.iter().zip(v).zip(&dts) {
                    args[k] = Some((e, dt));
                }
                scalar_op(b, op, &args, out_dt)
            })?
        }
        Op::CastExt {
            to,
            saturate,
            round_mode,
        } => {
            let x = operand(ctx, 0)?;
            let from = x.dtype;
            let (to, saturate, mode) = (*to, *saturate, *round_mode);
            kernel(name, &[x], &out, Arg::Output(0), |_, v| {
                let x = v.into_iter().next().unwrap_or(f(0.0));
                Ok(convert_ext(x, from, to, saturate, mode))
            })?
        }
        Op::QuantizeLinear {
            axis,
            block_size,
            saturate,
            ..
        } => {
            if *block_size != 0 {
                return Err(ctx.unsupported("with block_size (blocked quantization)"));
            }
            let x = operand(ctx, 0)?;
            let rank = x.shape.len();
            let mut scale = operand(ctx, 1)?;
            scale.shape = axis_view(ctx, &scale.shape, rank, *axis)?;
            let mut ops = vec![x, scale];
            if ctx.opt_input(2).is_some() {
                let mut zp = operand(ctx, 2)?;
                zp.shape = axis_view(ctx, &zp.shape, rank, *axis)?;
                ops.push(zp);
            }
            let has_zp = ops.len() == 3;
            let out_dt = out.dtype;
            if is_lowp_float(out_dt) {
                // Float8 / FLOAT4E2M1: x / scale converted by Cast's rule (float8 zero points
                // are 0 and ignored; FLOAT4E2M1's is added first), no integer rounding.
                let saturate = *saturate;
                return Ok(Lowered {
                    launches: vec![kernel(name, &ops, &out, Arg::Output(0), |_, v| {
                        let mut q = v[0].clone().cast(Scalar::F32) / v[1].clone();
                        if has_zp && out_dt == DType::F4E2M1 {
                            q = q + v[2].clone();
                        }
                        Ok(lowp::round(q, out_dt, saturate, E8m0Round::Up))
                    })?],
                    ..Lowered::default()
                });
            }
            let (qmin, qmax) = match out.dtype {
                DType::U8 => (0.0, 255.0),
                DType::I8 => (-128.0, 127.0),
                DType::U16 => (0.0, 65535.0),
                DType::I16 => (-32768.0, 32767.0),
                DType::U4 => (0.0, 15.0),
                DType::I4 => (-8.0, 7.0),
                DType::U2 => (0.0, 3.0),
                DType::I2 => (-2.0, 1.0),
                dt => return Err(ctx.unsupported(format!("with output {}", dt.name()))),
            };
            let cs = compute_scalar(out.dtype).unwrap_or(Scalar::I32);
            kernel(name, &ops, &out, Arg::Output(0), |_, v| {
                let mut q = (v[0].clone() / v[1].clone()).un(UnOp::Round);
                if has_zp {
                    q = q + v[2].clone().cast(Scalar::F32);
                }
                Ok(q.max(f(qmin)).min(f(qmax)).cast(cs))
            })?
        }
        Op::DequantizeLinear { axis, block_size } => {
            if *block_size != 0 {
                return Err(ctx.unsupported("with block_size (blocked quantization)"));
            }
            let x = operand(ctx, 0)?;
            let rank = x.shape.len();
            let mut scale = operand(ctx, 1)?;
            scale.shape = axis_view(ctx, &scale.shape, rank, *axis)?;
            let mut ops = vec![x, scale];
            if ctx.opt_input(2).is_some() {
                let mut zp = operand(ctx, 2)?;
                zp.shape = axis_view(ctx, &zp.shape, rank, *axis)?;
                ops.push(zp);
            }
            // Float8 and FLOAT4E2M1 inputs decode exactly and ignore the zero point.
            let x_dt = ctx.input(0)?.dtype;
            let has_zp = ops.len() == 3 && !is_lowp_float(x_dt);
            let out_f16 = out.dtype == DType::F16;
            kernel(name, &ops, &out, Arg::Output(0), |_, v| {
                let mut x = v[0].clone().cast(Scalar::F32);
                if has_zp {
                    x = x - v[2].clone().cast(Scalar::F32);
                }
                let r = x * v[1].clone();
                Ok(if out_f16 {
                    r.cast(Scalar::F16).cast(Scalar::F32)
                } else {
                    r
                })
            })?
        }
        _ => return Err(ctx.invalid("not an elementwise op")),
    };
    Ok(Lowered {
        launches: vec![launch],
        ..Lowered::default()
    })
}

/// Lowers an anchorless fused op: program input `k` is input `k`; one elementwise kernel loads
/// each input the program reads once (known scalars inlined as literals), evaluates the steps
/// in order in registers ([`eval_program`]) and stores the result.
pub fn lower_program(ctx: &LowerCtx<'_>, f: &Fused) -> Result<Lowered, LowerError> {
    let p = &f.program;
    let out = ctx.output(0)?.clone();
    if ctx.inputs.len() != p.inputs {
        return Err(ctx.invalid(format!(
            "the program takes {} inputs, the op has {}",
            p.inputs,
            ctx.inputs.len()
        )));
    }
    let all: Vec<Operand> = (0..p.inputs)
        .map(|k| operand(ctx, k))
        .collect::<Result<_, _>>()?;
    let dtypes = program_dtypes(p, &all.iter().map(|o| o.dtype).collect::<Vec<_>>())?;
    if dtypes.last() != Some(&out.dtype) {
        return Err(ctx.invalid(format!(
            "the program gives {}, the output is {}",
            dtypes.last().map_or("nothing", |d| d.name()),
            out.dtype.name()
        )));
    }
    // Only the inputs some step reads are operands.
    let used: Vec<usize> = (0..p.inputs)
        .filter(|&k| p.steps.iter().any(|s| s.args.contains(&Some(k))))
        .collect();
    let ops: Vec<Operand> = used.iter().map(|&k| all[k].clone()).collect();
    let bindings = 1 + ops.iter().filter(|o| o.literal.is_none()).count();
    if bindings > super::epilogue::MAX_BINDINGS {
        return Err(ctx.unsupported(format!(
            "needing {bindings} bindings (at most {})",
            super::epilogue::MAX_BINDINGS
        )));
    }
    if out.numel() == 0 {
        return Ok(Lowered::default());
    }
    let launch = kernel(ctx.kname("fused"), &ops, &out, Arg::Output(0), |b, v| {
        let mut ins: Vec<Expr> = all.iter().map(|o| zero_of(o.dtype)).collect();
        for (&k, e) in used.iter().zip(v) {
            ins[k] = e;
        }
        eval_program(b, p, &dtypes, ins)
    })?;
    Ok(Lowered {
        launches: vec![launch],
        ..Lowered::default()
    })
}

/// The broadcast view of a per-axis parameter (shape `[C]` or a scalar) against a rank-`rank`
/// input: `[1, .., C, .., 1]` with `C` at `axis`.
fn axis_view(
    ctx: &LowerCtx<'_>,
    shape: &[usize],
    rank: usize,
    axis: i64,
) -> Result<Vec<usize>, LowerError> {
    let n: usize = shape.iter().product();
    if shape.len() <= 1 && n == 1 {
        return Ok(vec![1; rank.max(1)]);
    }
    if shape.len() != 1 {
        return Err(ctx.unsupported("with a scale of rank > 1 (blocked quantization)"));
    }
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank {
        return Err(ctx.invalid(format!("axis {axis} out of range for rank {rank}")));
    }
    let mut v = vec![1; rank];
    v[a as usize] = shape[0];
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::super::sim::{rand_t, run_op};
    use super::*;
    use optc_ir::tensor::Tensor;

    /// Runs `op` on `ins` (the `consts` known) in the simulator against the reference.
    fn same(op: &Op, ins: &[Option<Tensor>], consts: &[usize], rtol: f64, atol: f64) {
        let (got, want) = run_op(op, ins, consts);
        assert_eq!(got[0].dtype(), want[0].dtype(), "{op:?}");
        let (g, w) = (got[0].to_f64_vec(), want[0].to_f64_vec());
        for (k, (a, b)) in g.iter().zip(&w).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
            assert!(ok, "{op:?} element {k}: got {a}, want {b}");
        }
    }

    fn ints(shape: &[usize], seed: u64, scale: f64, dt: DType) -> Tensor {
        let v: Vec<i64> = rand_t(shape, seed)
            .to_f64_vec()
            .iter()
            .map(|x| (x * scale).round() as i64)
            .collect();
        Tensor::from_vec(shape.to_vec(), v).unwrap().cast(dt)
    }

    #[test]
    fn f32_kernels_over_multiples_of_four_elements_use_vec4_loads_and_stores() {
        // x full-shape, s a one-element buffer (not a compile-time constant), 0.5 a literal.
        let x = rand_t(&[4, 6], 3);
        let s = rand_t(&[1, 1], 4);
        let half = Tensor::scalar(0.5f32);
        let ins = [Some(x.clone()), Some(s.clone())];
        let descs = super::super::sim::descs(&ins);
        let op = Op::Binary(BinaryOp::Mul);
        let outs = [Some(TensorDesc::new(DType::F32, vec![4, 6]))];
        let ctx = LowerCtx {
            op: &op,
            name: "n0",
            inputs: &descs,
            values: &[None, None],
            outputs: &outs,
            features: Default::default(),
        };
        let l = super::lower(&ctx).unwrap();
        let k = &l.launches[0].kernel;
        let v4 = Type::vec(Scalar::F32, 4);
        assert_eq!(k.buffers[0].elem, v4);
        assert_eq!(k.buffers[1].elem, Type::F32);
        assert_eq!(k.buffers[2].elem, v4);
        assert_eq!(l.launches[0].grid[0], 1); // 24 / 4 = 6 threads: one workgroup
        same(&op, &ins, &[], 0.0, 0.0);
        same(
            &Op::Binary(BinaryOp::Sub),
            &[Some(x.clone()), Some(half)],
            &[1],
            0.0,
            0.0,
        );
        // 3×5 = 15 elements, or a [4, 1] operand: the scalar kernel.
        let odd = rand_t(&[3, 5], 5);
        same(&op, &[Some(odd.clone()), Some(odd)], &[], 0.0, 0.0);
        same(&op, &[Some(x), Some(rand_t(&[4, 1], 6))], &[], 0.0, 0.0);
    }

    #[test]
    fn single_ops_share_scalar_op_and_match_the_reference() {
        use UnaryOp::*;
        let x = rand_t(&[3, 17], 1);
        let y = rand_t(&[17], 2);
        for u in [
            Abs, Neg, Exp, Log, Sqrt, Reciprocal, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh,
            Asinh, Acosh, Atanh, Tanh, Sigmoid, Erf, Floor, Ceil, Round, Sign, Relu, Softplus,
            Softsign, Mish, HardSwish,
        ] {
            same(&Op::Unary(u), &[Some(x.clone())], &[], 2e-5, 1e-6);
        }
        for a in [
            ActivationOp::LeakyRelu { alpha: 0.2 },
            ActivationOp::Elu { alpha: 0.7 },
            ActivationOp::Selu {
                alpha: 1.67,
                gamma: 1.05,
            },
            ActivationOp::Celu { alpha: 0.5 },
            ActivationOp::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            ActivationOp::ThresholdedRelu { alpha: 0.3 },
            ActivationOp::Gelu { tanh: false },
            ActivationOp::Gelu { tanh: true },
        ] {
            same(&Op::Activation(a), &[Some(x.clone())], &[], 2e-5, 1e-6);
        }
        same(
            &Op::Swish { alpha: 1.5 },
            &[Some(x.clone())],
            &[],
            2e-5,
            1e-6,
        );
        let shrink = Op::Shrink {
            bias: 0.5,
            lambd: 0.7,
        };
        same(&shrink, &[Some(x.clone())], &[], 0.0, 0.0);
        same(
            &shrink,
            &[Some(ints(&[9], 3, 3.0, DType::I32))],
            &[],
            0.0,
            0.0,
        );
        for bop in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Pow,
            BinaryOp::Mod { fmod: false },
            BinaryOp::Mod { fmod: true },
            BinaryOp::Less,
            BinaryOp::GreaterOrEqual,
            BinaryOp::Equal,
            BinaryOp::PRelu,
        ] {
            same(
                &Op::Binary(bop),
                &[Some(x.clone()), Some(y.clone())],
                &[],
                2e-5,
                1e-6,
            );
        }
        // Integers: i32 and narrow types (wrapping), shifts, integer Pow and Mod.
        let xi = ints(&[3, 17], 4, 20.0, DType::I32);
        let yi = ints(&[17], 5, 3.0, DType::I32);
        let ones = Tensor::from_vec(vec![17], vec![1i32; 17]).unwrap();
        let yi_nz = Tensor::from_vec(
            vec![17],
            yi.to_i64_vec()
                .iter()
                .zip(ones.to_i64_vec())
                .map(|(a, o)| if *a == 0 { o as i32 } else { *a as i32 })
                .collect::<Vec<i32>>(),
        )
        .unwrap();
        for bop in [
            BinaryOp::Add,
            BinaryOp::Mul,
            BinaryOp::Mod { fmod: false },
            BinaryOp::Mod { fmod: true },
            BinaryOp::Pow,
            BinaryOp::BitShiftLeft,
            BinaryOp::BitShiftRight,
        ] {
            let (x, y) = match bop {
                BinaryOp::Mod { .. } => (xi.clone(), yi_nz.clone()),
                // Integer Pow goes through f32: keep results below 2^24.
                BinaryOp::Pow => (
                    ints(&[3, 17], 4, 2.5, DType::I32),
                    Tensor::from_vec(
                        vec![17],
                        ints(&[17], 5, 1.5, DType::I32)
                            .to_i64_vec()
                            .iter()
                            .map(|v| v.abs() as i32)
                            .collect::<Vec<i32>>(),
                    )
                    .unwrap(),
                ),
                _ => (xi.clone(), yi.clone()),
            };
            same(&Op::Binary(bop), &[Some(x), Some(y)], &[], 0.0, 0.0);
        }
        let xu = ints(&[3, 17], 6, 60.0, DType::U8);
        let yu = ints(&[17], 7, 60.0, DType::U8);
        for bop in [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub] {
            same(
                &Op::Binary(bop),
                &[Some(xu.clone()), Some(yu.clone())],
                &[],
                0.0,
                0.0,
            );
        }
        for bw in [BitwiseOp::And, BitwiseOp::Or, BitwiseOp::Xor] {
            same(
                &Op::Bitwise(bw),
                &[Some(xi.clone()), Some(yi.clone())],
                &[],
                0.0,
                0.0,
            );
        }
        same(
            &Op::Bitwise(BitwiseOp::Not),
            &[Some(xu.clone())],
            &[],
            0.0,
            0.0,
        );
        // Bools.
        let b1 = Tensor::from_vec(vec![4], vec![0.0f32, 1.0, 0.0, 1.0])
            .unwrap()
            .cast(DType::Bool);
        let b2 = Tensor::from_vec(vec![4], vec![0.0f32, 0.0, 1.0, 1.0])
            .unwrap()
            .cast(DType::Bool);
        for bop in [BinaryOp::And, BinaryOp::Or, BinaryOp::Xor] {
            same(
                &Op::Binary(bop),
                &[Some(b1.clone()), Some(b2.clone())],
                &[],
                0.0,
                0.0,
            );
        }
        same(&Op::Unary(Not), &[Some(b1.clone())], &[], 0.0, 0.0);
        // Variadic with broadcasting, Where, Cast.
        let z = rand_t(&[3, 1], 8);
        for v in [
            VariadicOp::Sum,
            VariadicOp::Mean,
            VariadicOp::Max,
            VariadicOp::Min,
        ] {
            same(
                &Op::Variadic(v),
                &[Some(x.clone()), Some(y.clone()), Some(z.clone())],
                &[],
                1e-6,
                1e-6,
            );
        }
        let c = Tensor::from_vec(vec![17], (0..17).map(|k| (k % 3) as f32).collect())
            .unwrap()
            .cast(DType::Bool);
        same(
            &Op::Where,
            &[Some(c), Some(x.clone()), Some(z.clone())],
            &[],
            0.0,
            0.0,
        );
        // (Negative floats to unsigned integers are implementation-defined: not checked.)
        for to in [DType::I32, DType::F16, DType::Bool, DType::I8] {
            same(&Op::Cast { to }, &[Some(x.clone())], &[], 0.0, 0.0);
        }
        let xabs = Tensor::from_vec(
            vec![3, 17],
            x.to_f64_vec()
                .iter()
                .map(|v| (v.abs() * 100.0) as f32)
                .collect::<Vec<f32>>(),
        )
        .unwrap();
        same(&Op::Cast { to: DType::U8 }, &[Some(xabs)], &[], 0.0, 0.0);
        same(
            &Op::Cast { to: DType::F32 },
            &[Some(xi.clone())],
            &[],
            0.0,
            0.0,
        );
    }

    #[test]
    fn clip_bounds_known_at_compile_time_are_literals() {
        let x = rand_t(&[5, 8], 9);
        let ins = [
            Some(x.clone()),
            Some(Tensor::scalar(-0.5f32)),
            Some(Tensor::scalar(1.0f32)),
        ];
        same(&Op::Clip, &ins, &[1, 2], 0.0, 0.0);
        same(&Op::Clip, &ins, &[], 0.0, 0.0);
        same(
            &Op::Clip,
            &[Some(x), None, Some(Tensor::scalar(0.25f32))],
            &[2],
            0.0,
            0.0,
        );
        let descs = super::super::sim::descs(&ins);
        let values: Vec<Option<&Tensor>> = vec![None, ins[1].as_ref(), ins[2].as_ref()];
        let outs = [descs[0].clone()];
        let ctx = LowerCtx {
            op: &Op::Clip,
            name: "n0",
            inputs: &descs,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        let l = lower(&ctx).unwrap();
        assert_eq!(l.launches[0].args, [Arg::Input(0), Arg::Output(0)]);
    }

    #[test]
    fn refusals_name_the_op() {
        let mut b = KernelBuilder::new("t", [1, 1, 1]);
        let x = Some((i(1), DType::I64));
        let e = scalar_op(
            &mut b,
            &Op::Unary(UnaryOp::Neg),
            std::slice::from_ref(&x),
            DType::I64,
        );
        assert!(matches!(e, Err(LowerError::Unsupported { op: "Neg", .. })));
        let e = scalar_op(
            &mut b,
            &Op::Activation(ActivationOp::Elu { alpha: 1.0 }),
            &[x],
            DType::I64,
        );
        assert!(matches!(e, Err(LowerError::Unsupported { op: "Elu", .. })));
        let e = scalar_op(
            &mut b,
            &Op::MatMul,
            &[Some((f(1.0), DType::F32))],
            DType::F32,
        );
        assert!(matches!(e, Err(LowerError::Invalid { .. })));
        let e = scalar_op(
            &mut b,
            &Op::Binary(BinaryOp::Add),
            &[Some((f(1.0), DType::F32))],
            DType::F32,
        );
        assert!(matches!(e, Err(LowerError::Invalid { .. })));
    }
}
