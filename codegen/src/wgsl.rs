//! The WGSL printer: kernel IR → WGSL text, and naga validation of that text.
//!
//! [`emit_wgsl`] checks the kernel ([`crate::check::check`]) and prints one compute entry point.
//! The layout is fixed and deterministic:
//!
//! ```text
//! enable f16;                          // only when Kernel::uses_f16()
//! @group(0) @binding(i) var<storage, read|read_write> NAME: array<T>;   // per buffer
//! var<workgroup> NAME: array<T, LEN>;                                  // per shared array
//! @compute @workgroup_size(x, y, z)
//! fn NAME(@builtin(global_invocation_id) gid: vec3<u32>, ... ) { body }
//! ```
//!
//! Subgroup kernels print no `enable subgroups;`: naga 30 parses that directive but reports it
//! as not yet implemented, and enables subgroup built-ins through the validator's
//! `Capabilities::SUBGROUP` instead (which wgpu sets from the device's `SUBGROUP` feature). The
//! `subgroup_invocation_id`/`subgroup_size` parameters are declared only when the kernel uses
//! subgroups.
//!
//! How IR constructs map (where WGSL semantics differ from the IR's, that is noted):
//! - locals are `var vN: T = init;` at their [`Stmt::Let`]; binary expressions, unary
//!   expressions and negative literals are fully parenthesised, so every printed expression is a
//!   WGSL primary expression and can take a swizzle;
//! - f32 literals print as the shortest decimal that reads back to the same bits (`0.1f`,
//!   `1e-45f`, `-0.0f` as `(-0.0f)`); NaN and ±inf, which have no WGSL literal, print as
//!   `bitcast<f32>(0x7f800000u)` keeping their exact bits; f16 literals likewise with an `h`
//!   suffix, non-finite ones as `f16(bitcast<f32>(0x7f800000u))`; `i32::MIN` prints as
//!   `(-2147483647i - 1i)` because `2147483648i` is out of range;
//! - `Rem` is WGSL `%` (truncated, sign of the dividend, as the IR says); `And`/`Or` are the
//!   non-short-circuit `&`/`|` for bools and integers alike; `Xor` is `^` on integers and `!=`
//!   on bools; `Neg` on `u32` (not a WGSL operator) prints as two's-complement `(~x + 1u)`;
//! - `IsNan`/`IsInf` test the bits (`(bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u`), not
//!   `x != x`: WGSL lets implementations assume floats are never NaN, and fast-math compilers
//!   do fold `x != x` to false; f16 operands are widened to f32 first (exact, NaN stays NaN);
//! - `Select` is `select(f, t, cond)`; `Fma` is `fma` on floats and `((a * b) + c)` on
//!   integers;
//! - `Cast` is a WGSL value conversion `T(x)`. Float → integer rounds toward zero as the IR
//!   says, but out-of-range values (and NaN) are *clamped* to the integer type's range by WGSL
//!   rather than undefined as in C; bool → number is 0/1 and number → bool is `x != 0` as the
//!   IR says;
//! - [`Stmt::For`] is `for (var vN: i32 = start; vN < end; vN += step) { … }`. When `unroll` is
//!   set, `start` and `end` are `i32` literals, `step > 0`, the trip count is at most
//!   [`MAX_UNROLL`], the body has no `Break` of this loop and does not assign the loop
//!   variable, the loop is fully unrolled into one `{ let vN: i32 = …; body }` block per
//!   iteration; otherwise `unroll` is ignored and the loop printed as is;
//! - `Barrier::Workgroup` is `workgroupBarrier();`, `Barrier::Storage` is
//!   `storageBarrier(); workgroupBarrier();`;
//! - `AsyncCopy` is a plain `shared[dst] = buf[src];`, `AsyncCommit`/`AsyncWait` print nothing;
//! - [`Stmt::Mma`] and [`Stmt::LoadMatrix`] have no WGSL form: [`emit_wgsl`] returns
//!   [`CodegenError::Unsupported`].

use crate::CodegenError;
use crate::check::check;
use optc_kernels::ir::{
    Access, Barrier, BinOp, Builtin, Expr, Kernel, Scalar, Stmt, SubgroupOp, Type, UnOp,
};
use std::fmt::Write as _;

/// The largest trip count a `For` with `unroll` is fully unrolled for.
pub const MAX_UNROLL: i64 = 16;

/// Prints `k` as a WGSL module with one compute entry point named `k.name`.
///
/// Fails with [`CodegenError::Invalid`] when [`check`] rejects the kernel and with
/// [`CodegenError::Unsupported`] for [`Stmt::Mma`], [`Stmt::LoadMatrix`] and a `vec2<f16>`
/// bitcast to 32 bits (tensor-core kernels only; PTX prints them). The text is deterministic. It is not
/// validated here: call [`validate_wgsl`] (tests do, for every kernel they print).
pub fn emit_wgsl(k: &Kernel) -> Result<String, CodegenError> {
    check(k)?;
    if let Some(b) = k.buffers.iter().find(|b| b.bf16) {
        return Err(CodegenError::Unsupported {
            kernel: k.name.clone(),
            what: format!(
                "buffer {} stores bf16 (WGSL has no 16-bit bf16 storage)",
                b.name
            ),
        });
    }
    let mut p = Printer {
        k,
        out: String::new(),
        depth: 1,
    };
    p.module()?;
    Ok(p.out)
}

/// Parses and validates WGSL with naga 30, with the capabilities optc kernels may use
/// (`SHADER_FLOAT16`, `SUBGROUP`); the error carries naga's report quoting the source line.
pub fn validate_wgsl(src: &str) -> Result<(), CodegenError> {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    let module =
        naga::front::wgsl::parse_str(src).map_err(|e| CodegenError::Naga(e.emit_to_string(src)))?;
    Validator::new(
        ValidationFlags::all(),
        Capabilities::SHADER_FLOAT16 | Capabilities::SUBGROUP,
    )
    .validate(&module)
    .map_err(|e| CodegenError::Naga(e.emit_to_string(src)))?;
    Ok(())
}

/// The WGSL spelling of a type (`f32`, `vec4<f32>`).
pub fn wgsl_type(t: Type) -> String {
    if t.lanes == 1 {
        t.scalar.to_string()
    } else {
        format!("vec{}<{}>", t.lanes, t.scalar)
    }
}

/// An f32 literal that reads back to exactly the bits of `v` (NaN payloads included).
pub fn f32_literal(v: f32) -> String {
    if !v.is_finite() {
        return format!("bitcast<f32>({:#010x}u)", v.to_bits());
    }
    // `{:?}` prints the shortest decimal that round-trips (`0.1`, `1e-45`, `3.4028235e38`),
    // always with a `.` or an exponent, which WGSL reads with an `f` suffix.
    let s = format!("{v:?}f");
    if v.is_sign_negative() {
        format!("({s})")
    } else {
        s
    }
}

/// An f16 literal for `v`, which must be exactly representable in f16 (or non-finite).
pub fn f16_literal(v: f32) -> String {
    if !v.is_finite() {
        // naga 30 mistypes `bitcast<vec2<f16>>(u32)`, so go through f32: ±inf stays exact, a
        // NaN stays a NaN (its payload is the converter's business).
        return format!("f16({})", f32_literal(v));
    }
    // The shortest f32 decimal of an f16 value also reads back exactly as f16: it lies within
    // half an f32 ulp of the value, which is less than half an f16 ulp.
    let s = format!("{v:?}h");
    if v.is_sign_negative() {
        format!("({s})")
    } else {
        s
    }
}

/// An i32 literal (`5i`, `(-5i)`, and `(-2147483647i - 1i)` for `i32::MIN`).
pub fn i32_literal(v: i32) -> String {
    if v == i32::MIN {
        "(-2147483647i - 1i)".to_string()
    } else if v < 0 {
        format!("({v}i)")
    } else {
        format!("{v}i")
    }
}

struct Printer<'a> {
    k: &'a Kernel,
    out: String,
    depth: usize,
}

type R<T> = Result<T, CodegenError>;

const AXES: [&str; 3] = ["x", "y", "z"];

impl Printer<'_> {
    fn ty(&self, e: &Expr) -> R<Type> {
        Ok(self.k.type_of(e)?)
    }

    fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn module(&mut self) -> R<()> {
        let k = self.k;
        let subgroups = k.uses_subgroups();
        if k.uses_f16() {
            self.out.push_str("enable f16;\n\n");
        }
        for (i, b) in k.buffers.iter().enumerate() {
            let access = match b.access {
                Access::Read => "read",
                Access::ReadWrite => "read_write",
            };
            writeln!(
                self.out,
                "@group(0) @binding({i}) var<storage, {access}> {}: array<{}>;",
                b.name,
                wgsl_type(b.elem)
            )
            .expect("write to String");
        }
        if !k.buffers.is_empty() {
            self.out.push('\n');
        }
        for s in &k.shared {
            writeln!(
                self.out,
                "var<workgroup> {}: array<{}, {}>;",
                s.name,
                wgsl_type(s.elem),
                s.len
            )
            .expect("write to String");
        }
        if !k.shared.is_empty() {
            self.out.push('\n');
        }
        let [x, y, z] = k.workgroup;
        writeln!(self.out, "@compute @workgroup_size({x}, {y}, {z})").expect("write to String");
        writeln!(self.out, "fn {}(", k.name).expect("write to String");
        let mut params = vec![
            "@builtin(global_invocation_id) gid: vec3<u32>",
            "@builtin(local_invocation_id) lid: vec3<u32>",
            "@builtin(local_invocation_index) lidx: u32",
            "@builtin(workgroup_id) wid: vec3<u32>",
            "@builtin(num_workgroups) nwg: vec3<u32>",
        ];
        if subgroups {
            params.push("@builtin(subgroup_invocation_id) sg_lane: u32");
            params.push("@builtin(subgroup_size) sg_size: u32");
        }
        for p in params {
            writeln!(self.out, "    {p},").expect("write to String");
        }
        self.out.push_str(") {\n");
        self.block(&k.body)?;
        self.out.push_str("}\n");
        Ok(())
    }

    fn block(&mut self, stmts: &[Stmt]) -> R<()> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::Let(v, e) => {
                let t = self.k.locals[v.0 as usize];
                let e = self.expr(e)?;
                self.line(&format!("var v{}: {} = {e};", v.0, wgsl_type(t)));
            }
            Stmt::Assign(v, e) => {
                let e = self.expr(e)?;
                self.line(&format!("v{} = {e};", v.0));
            }
            Stmt::Store { buf, index, value } => {
                let name = &self.k.buffers[*buf as usize].name;
                let (i, v) = (self.expr(index)?, self.expr(value)?);
                self.line(&format!("{name}[{i}] = {v};"));
            }
            Stmt::StoreShared { arr, index, value } => {
                let name = &self.k.shared[*arr as usize].name;
                let (i, v) = (self.expr(index)?, self.expr(value)?);
                self.line(&format!("{name}[{i}] = {v};"));
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                self.line(&format!("if ({c}) {{"));
                self.nested(then)?;
                if !els.is_empty() {
                    self.line("} else {");
                    self.nested(els)?;
                }
                self.line("}");
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
                unroll,
            } => {
                let v = var.0;
                if *unroll && let Some((a, b)) = unrollable(*var, start, end, *step, body) {
                    self.line(&format!("// v{v} in {a}..{b} step {step}, unrolled"));
                    let mut i = a;
                    while i < b {
                        self.line("{");
                        self.depth += 1;
                        self.line(&format!("let v{v}: i32 = {};", i32_literal(i as i32)));
                        self.block(body)?;
                        self.depth -= 1;
                        self.line("}");
                        i += i64::from(*step);
                    }
                } else {
                    let (a, b) = (self.expr(start)?, self.expr(end)?);
                    self.line(&format!(
                        "for (var v{v}: i32 = {a}; v{v} < {b}; v{v} += {}) {{",
                        i32_literal(*step)
                    ));
                    self.nested(body)?;
                    self.line("}");
                }
            }
            Stmt::Break => self.line("break;"),
            Stmt::Return => self.line("return;"),
            Stmt::Barrier(Barrier::Workgroup) => self.line("workgroupBarrier();"),
            Stmt::Barrier(Barrier::Storage) => {
                self.line("storageBarrier();");
                self.line("workgroupBarrier();");
            }
            Stmt::Mma { .. } => {
                return Err(CodegenError::Unsupported {
                    kernel: self.k.name.clone(),
                    what: "matrix multiply-accumulate (mma) has no WGSL form".into(),
                });
            }
            Stmt::AsyncCopy { arr, dst, buf, src } => {
                let sname = &self.k.shared[*arr as usize].name;
                let bname = &self.k.buffers[*buf as usize].name;
                let (d, s) = (self.expr(dst)?, self.expr(src)?);
                self.line(&format!("{sname}[{d}] = {bname}[{s}];"));
            }
            Stmt::AsyncCommit | Stmt::AsyncWait { .. } => {}
            Stmt::LoadMatrix { .. } => {
                return Err(CodegenError::Unsupported {
                    kernel: self.k.name.clone(),
                    what: "warp matrix load (ldmatrix) has no WGSL form".into(),
                });
            }
        }
        Ok(())
    }

    fn nested(&mut self, stmts: &[Stmt]) -> R<()> {
        self.depth += 1;
        let r = self.block(stmts);
        self.depth -= 1;
        r
    }

    fn expr(&self, e: &Expr) -> R<String> {
        Ok(match e {
            Expr::F32(v) => f32_literal(*v),
            Expr::F16(v) => f16_literal(*v),
            Expr::I32(v) => i32_literal(*v),
            Expr::U32(v) => format!("{v}u"),
            Expr::Bool(v) => v.to_string(),
            Expr::Var(v) => format!("v{}", v.0),
            Expr::Builtin(b) => match b {
                Builtin::GlobalId(a) => format!("gid.{}", AXES[*a as usize]),
                Builtin::LocalId(a) => format!("lid.{}", AXES[*a as usize]),
                Builtin::LocalIndex => "lidx".into(),
                Builtin::WorkgroupId(a) => format!("wid.{}", AXES[*a as usize]),
                Builtin::NumWorkgroups(a) => format!("nwg.{}", AXES[*a as usize]),
                Builtin::SubgroupLane => "sg_lane".into(),
                Builtin::SubgroupSize => "sg_size".into(),
            },
            Expr::Load { buf, index } => {
                format!(
                    "{}[{}]",
                    self.k.buffers[*buf as usize].name,
                    self.expr(index)?
                )
            }
            Expr::LoadShared { arr, index } => {
                format!(
                    "{}[{}]",
                    self.k.shared[*arr as usize].name,
                    self.expr(index)?
                )
            }
            Expr::Unary(op, x) => self.unary(*op, x)?,
            Expr::Binary(op, a, b) => {
                let t = self.ty(a)?;
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                let infix = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Rem => "%",
                    BinOp::Eq => "==",
                    BinOp::Ne => "!=",
                    BinOp::Lt => "<",
                    BinOp::Le => "<=",
                    BinOp::Gt => ">",
                    BinOp::Ge => ">=",
                    BinOp::And => "&",
                    BinOp::Or => "|",
                    BinOp::Xor if t.scalar == Scalar::Bool => "!=",
                    BinOp::Xor => "^",
                    BinOp::Shl => "<<",
                    BinOp::Shr => ">>",
                    BinOp::Min => return Ok(format!("min({a}, {b})")),
                    BinOp::Max => return Ok(format!("max({a}, {b})")),
                    BinOp::Pow => return Ok(format!("pow({a}, {b})")),
                    BinOp::Atan2 => return Ok(format!("atan2({a}, {b})")),
                };
                format!("({a} {infix} {b})")
            }
            Expr::Select { cond, t, f } => format!(
                "select({}, {}, {})",
                self.expr(f)?,
                self.expr(t)?,
                self.expr(cond)?
            ),
            Expr::Fma(a, b, c) => {
                let float = self.ty(a)?.scalar.is_float();
                let (a, b, c) = (self.expr(a)?, self.expr(b)?, self.expr(c)?);
                if float {
                    format!("fma({a}, {b}, {c})")
                } else {
                    format!("(({a} * {b}) + {c})")
                }
            }
            Expr::Cast(s, x) => {
                let t = Type::vec(*s, self.ty(x)?.lanes);
                format!("{}({})", wgsl_type(t), self.expr(x)?)
            }
            Expr::Bitcast(_, x) if self.ty(x)? == Type::vec(Scalar::F16, 2) => {
                // naga types `bitcast<u32>(vec2<f16>)` as vec2<u16> and wants a capability
                // for `pack2x16float` beside f16; only tensor-core kernels (PTX) pack halves.
                return Err(CodegenError::Unsupported {
                    kernel: self.k.name.clone(),
                    what: "a vec2<f16> packed into 32 bits (bitcast) has no WGSL form naga \
                           accepts"
                        .into(),
                });
            }
            Expr::Bitcast(s, x) => {
                let t = Type::vec(*s, self.ty(x)?.lanes);
                format!("bitcast<{}>({})", wgsl_type(t), self.expr(x)?)
            }
            Expr::Vector(xs) => {
                let t = self.ty(e)?;
                let parts = xs.iter().map(|x| self.expr(x)).collect::<R<Vec<_>>>()?;
                format!("{}({})", wgsl_type(t), parts.join(", "))
            }
            Expr::Splat(_, x) => format!("{}({})", wgsl_type(self.ty(e)?), self.expr(x)?),
            Expr::Lane(x, i) => format!("{}.{}", self.expr(x)?, ["x", "y", "z", "w"][*i as usize]),
            Expr::Subgroup { op, value, lane } => {
                let v = self.expr(value)?;
                let lane = lane.as_deref().map(|l| self.expr(l)).transpose()?;
                match (op, lane) {
                    (SubgroupOp::Shuffle, Some(l)) => format!("subgroupShuffle({v}, {l})"),
                    (SubgroupOp::Broadcast, Some(l)) => format!("subgroupBroadcast({v}, {l})"),
                    (SubgroupOp::Add, _) => format!("subgroupAdd({v})"),
                    (SubgroupOp::Max, _) => format!("subgroupMax({v})"),
                    (SubgroupOp::Min, _) => format!("subgroupMin({v})"),
                    (op, None) => unreachable!("check() requires a lane for {op:?}"),
                }
            }
        })
    }

    fn unary(&self, op: UnOp, x: &Expr) -> R<String> {
        let t = self.ty(x)?;
        let s = self.expr(x)?;
        let func = match op {
            UnOp::Neg if t.scalar == Scalar::U32 => return Ok(format!("(~{s} + 1u)")),
            UnOp::Neg => return Ok(format!("(-{s})")),
            UnOp::Not if t.scalar == Scalar::Bool => return Ok(format!("(!{s})")),
            UnOp::Not => return Ok(format!("(~{s})")),
            UnOp::IsNan | UnOp::IsInf => {
                let u = wgsl_type(Type::vec(Scalar::U32, t.lanes));
                let f32s = if t.scalar == Scalar::F16 {
                    format!("{}({s})", wgsl_type(Type::vec(Scalar::F32, t.lanes)))
                } else {
                    s
                };
                let (mask, inf) = if t.lanes == 1 {
                    ("0x7fffffffu".to_string(), "0x7f800000u".to_string())
                } else {
                    (format!("{u}(0x7fffffffu)"), format!("{u}(0x7f800000u)"))
                };
                let cmp = if op == UnOp::IsNan { ">" } else { "==" };
                return Ok(format!("((bitcast<{u}>({f32s}) & {mask}) {cmp} {inf})"));
            }
            UnOp::Abs => "abs",
            UnOp::Exp => "exp",
            UnOp::Log => "log",
            UnOp::Sqrt => "sqrt",
            UnOp::InverseSqrt => "inverseSqrt",
            UnOp::Sin => "sin",
            UnOp::Cos => "cos",
            UnOp::Tan => "tan",
            UnOp::Asin => "asin",
            UnOp::Acos => "acos",
            UnOp::Atan => "atan",
            UnOp::Sinh => "sinh",
            UnOp::Cosh => "cosh",
            UnOp::Tanh => "tanh",
            UnOp::Asinh => "asinh",
            UnOp::Acosh => "acosh",
            UnOp::Atanh => "atanh",
            UnOp::Floor => "floor",
            UnOp::Ceil => "ceil",
            UnOp::Round => "round",
            UnOp::Trunc => "trunc",
            UnOp::Sign => "sign",
        };
        Ok(format!("{func}({s})"))
    }
}

/// The literal bounds of a `For` that may be fully unrolled (see the module docs); the PTX
/// printer unrolls exactly the same loops.
pub(crate) fn unrollable(
    var: optc_kernels::ir::Var,
    start: &Expr,
    end: &Expr,
    step: i32,
    body: &[Stmt],
) -> Option<(i64, i64)> {
    let (Expr::I32(a), Expr::I32(b)) = (start, end) else {
        return None;
    };
    let (a, b) = (i64::from(*a), i64::from(*b));
    if step <= 0 {
        return None;
    }
    let trips = if b > a {
        (b - a + i64::from(step) - 1) / i64::from(step)
    } else {
        0
    };
    if trips > MAX_UNROLL || breaks(body) || assigns(var, body) {
        return None;
    }
    Some((a, b))
}

/// True if `body` breaks out of the loop it is the body of (not counting nested loops).
fn breaks(body: &[Stmt]) -> bool {
    body.iter().any(|s| match s {
        Stmt::Break => true,
        Stmt::If { then, els, .. } => breaks(then) || breaks(els),
        _ => false,
    })
}

/// True if `body` assigns `var` anywhere.
fn assigns(var: optc_kernels::ir::Var, body: &[Stmt]) -> bool {
    body.iter().any(|s| match s {
        Stmt::Assign(v, _) => *v == var,
        Stmt::If { then, els, .. } => assigns(var, then) || assigns(var, els),
        Stmt::For { body, .. } => assigns(var, body),
        _ => false,
    })
}
