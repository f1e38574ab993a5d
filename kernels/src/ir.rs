//! The kernel IR: one small, target-neutral description of a compute kernel that every printer
//! (WGSL today, PTX next) renders.
//!
//! A [`Kernel`] is a structured program run by a grid of workgroups of `workgroup` threads. It
//! reads and writes typed global buffers (one binding each), may declare workgroup (shared)
//! arrays, and has a body of [`Stmt`]s over expression trees ([`Expr`]). Locals are typed
//! variables numbered by [`Var`]; every local is declared by exactly one [`Stmt::Let`] before use.
//! Shapes are compile-time constants: optc compiles ahead of time for static shapes, so sizes,
//! strides and offsets are literals and kernels take no parameters.
//!
//! How the PTX printer (`optc_codegen::ptx`) maps the pieces (see ARCHITECTURE.md):
//! - expression trees → SSA registers (`%f`, `%h`, `%r`, `%rd`, `%p`), one instruction per node;
//! - [`Stmt::For`]/[`Stmt::If`] → labelled branches; `unroll` → full unroll (as in WGSL);
//! - [`Builtin`] → `%tid`, `%ctaid`, `%ntid`, `%nctaid`, `%laneid`;
//! - shared arrays → `.shared` declarations; [`Stmt::Barrier`] → `bar.sync 0`;
//! - [`Expr::Subgroup`] → `shfl.sync`/`redux.sync`;
//! - [`Stmt::Mma`] → `mma.sync.aligned.m16n8k16` (WGSL has no matrix units: the WGSL printer
//!   refuses it and templates emit tiled FMA loops for WGSL instead);
//! - [`Stmt::AsyncCopy`] → `cp.async.{ca,cg}.shared.global`, [`Stmt::AsyncCommit`] →
//!   `cp.async.commit_group`, [`Stmt::AsyncWait`] → `cp.async.wait_group`/`wait_all` (WGSL: a
//!   plain load/store pair and nothing, which is what the WGSL printer emits);
//! - [`Stmt::LoadMatrix`] → `ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16` (WGSL:
//!   refused, as `Mma`).

use std::fmt;

/// A scalar element type that kernels compute with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    /// 32-bit float.
    F32,
    /// 16-bit float (needs the device's f16 feature).
    F16,
    /// 32-bit signed integer; also the index type of every kernel.
    I32,
    /// 32-bit unsigned integer.
    U32,
    /// Boolean; not storable in a buffer (tensors of bool are stored as u32 0/1).
    Bool,
}

impl Scalar {
    /// Bytes of one element in a buffer (`Bool` is stored as `U32`).
    pub fn size(self) -> u32 {
        match self {
            Scalar::F16 => 2,
            _ => 4,
        }
    }

    /// True for the float scalars.
    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F16)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scalar::F32 => "f32",
            Scalar::F16 => "f16",
            Scalar::I32 => "i32",
            Scalar::U32 => "u32",
            Scalar::Bool => "bool",
        })
    }
}

/// A value type: a scalar or a short vector of `lanes` scalars (1, 2 or 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Type {
    /// Element type.
    pub scalar: Scalar,
    /// 1 for a scalar, 2 or 4 for a vector.
    pub lanes: u8,
}

impl Type {
    /// A scalar type.
    pub const fn scalar(scalar: Scalar) -> Type {
        Type { scalar, lanes: 1 }
    }
    /// A vector type of `lanes` elements.
    pub const fn vec(scalar: Scalar, lanes: u8) -> Type {
        Type { scalar, lanes }
    }
    /// `f32`.
    pub const F32: Type = Type::scalar(Scalar::F32);
    /// `f16`.
    pub const F16: Type = Type::scalar(Scalar::F16);
    /// `i32`.
    pub const I32: Type = Type::scalar(Scalar::I32);
    /// `u32`.
    pub const U32: Type = Type::scalar(Scalar::U32);
    /// `bool`.
    pub const BOOL: Type = Type::scalar(Scalar::Bool);
}

/// The type of `Expr::Bitcast(to, x)` for `x` of type `from`: the lane count is kept, except
/// that a `vec2<f16>` packs into one 32-bit scalar.
pub fn bitcast_type(to: Scalar, from: Type) -> Type {
    if from == Type::vec(Scalar::F16, 2) && to != Scalar::F16 {
        Type::scalar(to)
    } else {
        Type::vec(to, from.lanes)
    }
}

/// A local variable of a kernel (index into [`Kernel::locals`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub u32);

/// How a kernel uses a global buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Only loaded from.
    Read,
    /// Loaded from and stored to.
    ReadWrite,
}

/// A global buffer binding: binding `i` of the kernel is `buffers[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// Name in generated code (an identifier).
    pub name: String,
    /// Element type of the buffer as the kernel indexes it (a vector type for vectorised access).
    pub elem: Type,
    /// Access mode.
    pub access: Access,
    /// The f32 elements are stored as bf16 (2 bytes each): loads widen them exactly, stores
    /// round to nearest even. Set by the lowering for bf16 tensors on targets with
    /// [`crate::lower::Features::bf16_storage`] (PTX); the WGSL printer refuses it.
    pub bf16: bool,
}

/// A workgroup (shared) memory array.
#[derive(Clone, Debug, PartialEq)]
pub struct Shared {
    /// Name in generated code.
    pub name: String,
    /// Element type.
    pub elem: Type,
    /// Number of elements.
    pub len: u32,
}

/// Thread-position builtins. The `u8` is the axis (0 = x, 1 = y, 2 = z).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// Global invocation id along an axis.
    GlobalId(u8),
    /// Invocation id within the workgroup along an axis.
    LocalId(u8),
    /// Flat invocation index within the workgroup.
    LocalIndex,
    /// Workgroup id along an axis.
    WorkgroupId(u8),
    /// Number of workgroups along an axis.
    NumWorkgroups(u8),
    /// Lane index within the subgroup (warp).
    SubgroupLane,
    /// Subgroup (warp) size.
    SubgroupSize,
}

/// Unary operations. Float math functions apply per lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum UnOp {
    Neg,
    /// Logical not (bool) or bitwise not (integers).
    Not,
    Abs,
    Exp,
    Log,
    Sqrt,
    InverseSqrt,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    Trunc,
    Sign,
    /// True where a float lane is NaN.
    IsNan,
    /// True where a float lane is ±infinity.
    IsInf,
}

/// Binary operations. Both operands have the same type unless noted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Remainder with the sign of the dividend (C `fmod`/`%`).
    Rem,
    Min,
    Max,
    Pow,
    Atan2,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Logical and (bool) / bitwise and (integers).
    And,
    /// Logical or (bool) / bitwise or (integers).
    Or,
    /// Bitwise xor (integers) / inequality (bool).
    Xor,
    /// Shift left; the right operand is `u32`.
    Shl,
    /// Shift right (arithmetic for i32); the right operand is `u32`.
    Shr,
}

impl BinOp {
    /// True for comparisons, whose result is bool.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

/// Subgroup (warp) collective operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubgroupOp {
    /// Value of lane `lane` (second operand, u32).
    Shuffle,
    /// Value of lane `lane` (second operand, a u32 constant): one lane to all.
    Broadcast,
    /// Sum over the subgroup.
    Add,
    /// Maximum over the subgroup.
    Max,
    /// Minimum over the subgroup.
    Min,
}

/// An expression tree. Types are implied: printers infer them through [`Kernel::type_of`].
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // variant fields are described on their variant
pub enum Expr {
    /// A literal `f32`.
    F32(f32),
    /// A literal `f16`, stored as its f32 value (exactly representable).
    F16(f32),
    /// A literal `i32`.
    I32(i32),
    /// A literal `u32`.
    U32(u32),
    /// A literal bool.
    Bool(bool),
    /// A local.
    Var(Var),
    /// A thread-position builtin (u32).
    Builtin(Builtin),
    /// `buffers[buf][index]` (index i32 or u32).
    Load { buf: u32, index: Box<Expr> },
    /// `shared[arr][index]`.
    LoadShared { arr: u32, index: Box<Expr> },
    /// A unary operation.
    Unary(UnOp, Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `cond ? t : f` (both branches evaluated; `cond` bool, or a bool vector matching `t`).
    Select {
        cond: Box<Expr>,
        t: Box<Expr>,
        f: Box<Expr>,
    },
    /// `a * b + c`, fused.
    Fma(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Value conversion to another scalar type (lane count kept). Float → int truncates toward
    /// zero; bool → number is 0/1; number → bool is `!= 0`.
    Cast(Scalar, Box<Expr>),
    /// Reinterpretation of the bits as another 32-bit scalar type (lane count kept), or of a
    /// `vec2<f16>` as one 32-bit scalar (lane 0 in the low half: PTX's `mov.b32 r, {lo, hi}`;
    /// the WGSL printer refuses it, as naga mistypes `bitcast<u32>(vec2<f16>)`) — see
    /// [`bitcast_type`].
    Bitcast(Scalar, Box<Expr>),
    /// A vector built from `lanes` scalars, or one scalar repeated (`Splat`).
    Vector(Vec<Expr>),
    /// One scalar repeated into a vector of `lanes`.
    Splat(u8, Box<Expr>),
    /// Lane `i` of a vector.
    Lane(Box<Expr>, u8),
    /// A subgroup collective; `lane` is the source lane for shuffles and broadcasts.
    Subgroup {
        op: SubgroupOp,
        value: Box<Expr>,
        lane: Option<Box<Expr>>,
    },
}

/// The element format of a matrix-multiply-accumulate intrinsic's A and B fragments.
///
/// Fragment locals hold it as: `F16` — a `vec2<f16>` or a `u32` of two packed halves; `Bf16` —
/// a `u32` of two packed bf16 (low half first; the kernel IR has no bf16 scalar: the tensor-core
/// template packs them with integer ops); `Tf32` — an `f32`, rounded to tf32 by the target;
/// `S8`/`U8` — a `u32` of four packed bytes (low byte first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmaElem {
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// TensorFloat-32 (f32 with a 10-bit mantissa).
    Tf32,
    /// Signed 8-bit integers, four per `u32` fragment register (low byte first).
    S8,
    /// Unsigned 8-bit integers, likewise.
    U8,
}

impl fmt::Display for MmaElem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MmaElem::F16 => "f16",
            MmaElem::Bf16 => "bf16",
            MmaElem::Tf32 => "tf32",
            MmaElem::S8 => "s8",
            MmaElem::U8 => "u8",
        })
    }
}

/// The operand shapes of a matrix-multiply-accumulate intrinsic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MmaShape {
    /// Rows of the tile.
    pub m: u32,
    /// Columns of the tile.
    pub n: u32,
    /// Depth of the tile.
    pub k: u32,
    /// Element type of A and B.
    pub ab: MmaElem,
    /// Element type of the accumulator.
    pub acc: Scalar,
}

impl MmaShape {
    /// `mma.sync.aligned.m16n8k16`: f16 × f16 + f32.
    pub const M16N8K16_F16: MmaShape = MmaShape {
        m: 16,
        n: 8,
        k: 16,
        ab: MmaElem::F16,
        acc: Scalar::F32,
    };
    /// `mma.sync.aligned.m16n8k16`: bf16 × bf16 + f32.
    pub const M16N8K16_BF16: MmaShape = MmaShape {
        m: 16,
        n: 8,
        k: 16,
        ab: MmaElem::Bf16,
        acc: Scalar::F32,
    };
    /// `mma.sync.aligned.m16n8k32`: s8 × s8 + s32.
    pub const M16N8K32_S8: MmaShape = MmaShape {
        m: 16,
        n: 8,
        k: 32,
        ab: MmaElem::S8,
        acc: Scalar::I32,
    };
    /// `mma.sync.aligned.m16n8k32`: u8 × u8 + s32.
    pub const M16N8K32_U8: MmaShape = MmaShape {
        m: 16,
        n: 8,
        k: 32,
        ab: MmaElem::U8,
        acc: Scalar::I32,
    };
    /// `mma.sync.aligned.m16n8k8` on tf32: f32 operands rounded to tf32, + f32.
    pub const M16N8K8_TF32: MmaShape = MmaShape {
        m: 16,
        n: 8,
        k: 8,
        ab: MmaElem::Tf32,
        acc: Scalar::F32,
    };
}

/// Workgroup synchronisation scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Barrier {
    /// All invocations of the workgroup reach it; workgroup memory is visible after it.
    Workgroup,
    /// As `Workgroup`, and global-buffer writes of the workgroup are visible too.
    Storage,
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // variant fields are described on their variant
pub enum Stmt {
    /// Declares local `var` (type from [`Kernel::locals`]) with an initial value.
    Let(Var, Expr),
    /// Assigns to a declared local.
    Assign(Var, Expr),
    /// `buffers[buf][index] = value`.
    Store { buf: u32, index: Expr, value: Expr },
    /// `shared[arr][index] = value`.
    StoreShared { arr: u32, index: Expr, value: Expr },
    /// Structured conditional.
    If {
        cond: Expr,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    /// `for (var = start; var < end; var += step)` over i32; `var` is declared by the loop.
    /// `unroll` asks the printer to unroll (only when the trip count is a small constant).
    For {
        var: Var,
        start: Expr,
        end: Expr,
        step: i32,
        body: Vec<Stmt>,
        unroll: bool,
    },
    /// Leaves the innermost loop.
    Break,
    /// Ends this invocation.
    Return,
    /// A workgroup barrier.
    Barrier(Barrier),
    /// Matrix multiply-accumulate on per-thread fragments: `c += a * b`, where `a`, `b`, `c`
    /// are the thread's fragment registers in the target's fragment layout.
    Mma {
        shape: MmaShape,
        a: Vec<Var>,
        b: Vec<Var>,
        c: Vec<Var>,
    },
    /// Warp-wide load of `dst.len()` (1, 2 or 4) 8 × 8 matrices of 16-bit elements from
    /// shared array `arr`, whose elements must be 16 bytes (one matrix row): lane `8·i + r`
    /// gives, as `index`, the element holding row `r` of matrix `i`; every lane receives in
    /// `dst[i]` (a `u32` local) the two 16-bit elements of matrix `i` at row `lane / 4`,
    /// columns `2·(lane % 4)` and `+1` (low half first) — of the transposed matrix when `trans`.
    /// That is an mma A/B fragment register. Every lane of the warp must execute it.
    LoadMatrix {
        arr: u32,
        index: Expr,
        trans: bool,
        dst: Vec<Var>,
    },
    /// Copy of one element (or vector) from global memory into shared memory, which may
    /// complete asynchronously until a [`Stmt::AsyncWait`] covers it.
    AsyncCopy {
        arr: u32,
        dst: Expr,
        buf: u32,
        src: Expr,
    },
    /// Closes this thread's current group of [`Stmt::AsyncCopy`]s (the unit
    /// `AsyncWait { pending }` counts).
    AsyncCommit,
    /// Waits until at most `pending` committed groups of this thread's copies are in flight;
    /// `pending: 0` waits for every outstanding copy, committed or not.
    AsyncWait { pending: u32 },
}

/// A compute kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// Entry point name (an identifier, deterministic).
    pub name: String,
    /// Workgroup size (threads per block), x/y/z.
    pub workgroup: [u32; 3],
    /// Global buffers; binding `i` is `buffers[i]`.
    pub buffers: Vec<Buffer>,
    /// Workgroup memory arrays.
    pub shared: Vec<Shared>,
    /// Types of the locals: `Var(i)` has type `locals[i]`.
    pub locals: Vec<Type>,
    /// The body.
    pub body: Vec<Stmt>,
}

/// A kernel that is not well typed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel {kernel}: {msg}")]
pub struct TypeError {
    /// The kernel's name.
    pub kernel: String,
    /// What is wrong.
    pub msg: String,
}

impl Kernel {
    /// The type of an expression in this kernel.
    pub fn type_of(&self, e: &Expr) -> Result<Type, TypeError> {
        let err = |msg: String| TypeError {
            kernel: self.name.clone(),
            msg,
        };
        Ok(match e {
            Expr::F32(_) => Type::F32,
            Expr::F16(_) => Type::F16,
            Expr::I32(_) => Type::I32,
            Expr::U32(_) => Type::U32,
            Expr::Bool(_) => Type::BOOL,
            Expr::Var(v) => *self
                .locals
                .get(v.0 as usize)
                .ok_or_else(|| err(format!("undeclared local v{}", v.0)))?,
            Expr::Builtin(_) => Type::U32,
            Expr::Load { buf, .. } => {
                self.buffers
                    .get(*buf as usize)
                    .ok_or_else(|| err(format!("no buffer {buf}")))?
                    .elem
            }
            Expr::LoadShared { arr, .. } => {
                self.shared
                    .get(*arr as usize)
                    .ok_or_else(|| err(format!("no shared array {arr}")))?
                    .elem
            }
            Expr::Unary(op, x) => {
                let t = self.type_of(x)?;
                match op {
                    UnOp::IsNan | UnOp::IsInf => Type::vec(Scalar::Bool, t.lanes),
                    _ => t,
                }
            }
            Expr::Binary(op, a, _) => {
                let t = self.type_of(a)?;
                if op.is_comparison() {
                    Type::vec(Scalar::Bool, t.lanes)
                } else {
                    t
                }
            }
            Expr::Select { t, .. } => self.type_of(t)?,
            Expr::Fma(a, _, _) => self.type_of(a)?,
            Expr::Cast(s, x) => Type::vec(*s, self.type_of(x)?.lanes),
            Expr::Bitcast(s, x) => bitcast_type(*s, self.type_of(x)?),
            Expr::Vector(xs) => {
                let first = xs.first().ok_or_else(|| err("empty vector".into()))?;
                Type::vec(self.type_of(first)?.scalar, xs.len() as u8)
            }
            Expr::Splat(n, x) => Type::vec(self.type_of(x)?.scalar, *n),
            Expr::Lane(x, _) => Type::scalar(self.type_of(x)?.scalar),
            Expr::Subgroup { value, .. } => self.type_of(value)?,
        })
    }

    /// True if any buffer, shared array or local uses `f16`.
    pub fn uses_f16(&self) -> bool {
        self.buffers.iter().any(|b| b.elem.scalar == Scalar::F16)
            || self.shared.iter().any(|s| s.elem.scalar == Scalar::F16)
            || self.locals.iter().any(|t| t.scalar == Scalar::F16)
    }

    /// True if the body uses subgroup operations or subgroup builtins.
    pub fn uses_subgroups(&self) -> bool {
        fn expr(e: &Expr) -> bool {
            match e {
                Expr::Subgroup { .. } => true,
                Expr::Builtin(Builtin::SubgroupLane | Builtin::SubgroupSize) => true,
                Expr::Load { index, .. } | Expr::LoadShared { index, .. } => expr(index),
                Expr::Unary(_, x)
                | Expr::Cast(_, x)
                | Expr::Bitcast(_, x)
                | Expr::Splat(_, x)
                | Expr::Lane(x, _) => expr(x),
                Expr::Binary(_, a, b) => expr(a) || expr(b),
                Expr::Select { cond, t, f } => expr(cond) || expr(t) || expr(f),
                Expr::Fma(a, b, c) => expr(a) || expr(b) || expr(c),
                Expr::Vector(xs) => xs.iter().any(expr),
                _ => false,
            }
        }
        fn stmts(s: &[Stmt]) -> bool {
            s.iter().any(|s| match s {
                Stmt::Let(_, e) | Stmt::Assign(_, e) => expr(e),
                Stmt::Store { index, value, .. } | Stmt::StoreShared { index, value, .. } => {
                    expr(index) || expr(value)
                }
                Stmt::If { cond, then, els } => expr(cond) || stmts(then) || stmts(els),
                Stmt::For {
                    start, end, body, ..
                } => expr(start) || expr(end) || stmts(body),
                Stmt::AsyncCopy { dst, src, .. } => expr(dst) || expr(src),
                Stmt::LoadMatrix { index, .. } => expr(index),
                _ => false,
            })
        }
        stmts(&self.body)
    }
}
