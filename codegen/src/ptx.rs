//! The PTX printer: kernel IR → PTX text for the CUDA driver (sm_80 and newer).
//!
//! [`emit_ptx`] checks the kernel ([`crate::check::check`]) and prints one PTX module holding one
//! `.entry`. The text is deterministic (the printer iterates only over `Vec`s).
//!
//! # Module layout
//!
//! ```text
//! .version 7.8                       // 8.0 for sm_90a
//! .target sm_89
//! .address_size 64
//!
//! .visible .entry NAME(
//!     .param .u64 p0,                // binding 0: x (f32, read)
//!     .param .u64 p1                 // binding 1: y (f32, read_write)
//! )
//! .reqntid 64, 1, 1                  // the kernel's workgroup size
//! {
//!     .shared .align 16 .b8 sh$tile[1024];
//!     .reg .pred %p<N>; .reg .b16 %h<N>; .reg .f32 %f<N>; .reg .b32 %r<N>; .reg .b64 %rd<N>;
//!     ... body ...
//! }
//! ```
//!
//! # ABI (what the CUDA executor must do)
//!
//! - The entry takes one `.param .u64` per buffer binding, **in binding order** (`p0` is
//!   `Kernel::buffers[0]`): the generic (cudaMalloc'd) device address of the first element of
//!   that binding. No other parameters: shapes are literals in the code. Every address must be
//!   aligned to the binding's element size (16 bytes for `vec4<f32>`); artifact bindings are
//!   256-byte aligned.
//! - Launch with block dims = the kernel's workgroup size (`KernelInfo::workgroup`; the entry
//!   declares it with `.reqntid`, so another block shape fails to launch) and grid = the
//!   launch's `grid`. No dynamic shared memory: shared arrays are static `.shared` variables.
//!
//! # Registers
//!
//! Every expression node is evaluated into fresh registers (SSA), one register per vector lane,
//! in typed classes: `%f` (f32), `%h` (f16 values, as `.b16`), `%r` (i32/u32, as `.b32`), `%rd`
//! (64-bit addresses), `%p` (bool, `.pred`). Locals ([`Stmt::Let`]) get fixed registers that
//! assignments `mov` into; loop variables likewise. Each class is declared once with its exact
//! count (`.reg .f32 %f<12>;` declares `%f0`..`%f11`). Literals are immediates (`0f3F800000` for
//! f32 — the exact bits —, `0x3C00` for f16, decimal integers).
//!
//! # Mapping
//!
//! - Buffers: `ld.param.u64` + `cvta.to.global.u64` once per parameter in the prologue; an
//!   element address is `base + index * elem_bytes` (`mul.wide.s32`/`mul.wide.u32` to 64 bits);
//!   literal indices fold into `[base+offset]`. Vector elements load and store with
//!   `ld/st.global.v2/v4`, f16 with `.b16`.
//! - Shared arrays: `.shared .align 16 .b8 sh$NAME[bytes]` inside the entry (the `sh$` prefix
//!   cannot clash with IR names, which have no `$`); 32-bit shared addresses.
//! - Builtins (computed once in the prologue): `GlobalId(a)` = `%ctaid.a * %ntid.a + %tid.a`,
//!   `LocalId` = `%tid`, `WorkgroupId` = `%ctaid`, `NumWorkgroups` = `%nctaid`, `LocalIndex` =
//!   `tid.x + wx * (tid.y + wy * tid.z)`, `SubgroupLane` = `%laneid`, `SubgroupSize` = 32 (a
//!   subgroup is a warp).
//! - Control flow: `If` → `@!%p bra` to an else/end label; `For` → a head label that
//!   re-evaluates `end`, `setp.ge.s32` + `@%p bra` to the exit label, the body, `add` of the step
//!   and `bra` back; `Break` → `bra` to the innermost exit; `Return` → `ret`. `unroll` fully
//!   unrolls exactly when the WGSL printer does ([`crate::wgsl::MAX_UNROLL`]).
//! - `Barrier::Workgroup` → `bar.sync 0`; `Barrier::Storage` → `membar.cta` + `bar.sync 0`.
//! - Subgroups: `Shuffle`/`Broadcast` → `shfl.sync.idx.b32`; integer `Add`/`Max`/`Min` →
//!   `redux.sync`; float reductions → a `shfl.sync.bfly.b32` butterfly (offsets 16..1, every lane
//!   ends with the same bits because each step combines the same pair). The member mask is all
//!   ones when the workgroup is a whole number of warps; otherwise the last warp's mask is
//!   computed, and float reductions are refused ([`PtxError::Unsupported`]: a butterfly would
//!   read lanes that do not exist).
//! - f32 arithmetic: `add/sub/mul/div.rn.f32` (`.rn` also keeps ptxas from contracting a
//!   multiply and an add into an fma the IR did not ask for), `fma.rn.f32`, `sqrt.rn.f32`,
//!   `rsqrt.approx.f32`, `min/max.f32` (a NaN operand yields the other operand, as WGSL's
//!   `min`/`max` may; templates that must propagate NaN test for it explicitly). `Rem` is C's
//!   `fmod` as the IR says, exact while |a / b| < 2^24 (`a - trunc(a / b) * b` in an fma, with a
//!   one-step correction of a rounded-up quotient). `!=` on floats is the unordered `setp.neu`
//!   (true for NaN, as in WGSL); the other comparisons are ordered.
//! - Transcendentals, with WGSL's accuracy or better: `exp(x)` = `ex2.approx(x * log2 e)`;
//!   `log(x)` = `lg2.approx(x) * ln 2`, except on (√½, √2) where a Cephes polynomial in `x - 1`
//!   keeps the *relative* error small (lg2.approx's error is absolute); `pow(x, y)` =
//!   `ex2(y * lg2(x))` with `pow(x, 0) = 1`; `sin`/`cos`/`tan` reduce by π/2 (three-part
//!   Cody–Waite, accurate while |x| < ~10⁴) and evaluate Cephes polynomials; `asin`, `acos`,
//!   `atan`, `atan2`, `sinh`, `cosh`, `tanh`, `asinh`, `acosh`, `atanh` are Cephes' single
//!   precision algorithms, branch-free (both sides computed, `selp` picks); `atan2(±0, ±0)` is
//!   `y` (WGSL leaves it undefined); `floor`/`ceil`/`trunc`/`round` are `cvt.rmi/rpi/rzi/rni`
//!   (`round` is half to even as the IR says).
//! - `IsNan`/`IsInf` test the bits (`(bits & 0x7fffffff) > / == 0x7f800000`), as the WGSL
//!   printer does.
//! - Integers: wrapping `add/sub/mul.lo`, `mad.lo` for `Fma`; `Div`/`Rem` follow WGSL: `x / 0 =
//!   x`, `x % 0 = 0`, `i32::MIN / -1 = i32::MIN`, `i32::MIN % -1 = 0` (a runtime divisor is
//!   replaced by 1 in those cases; literal divisors need no guard); shift amounts are taken
//!   modulo 32 as in WGSL (`shr.s32` for i32, `shr.u32` for u32).
//! - Casts: float → integer is `cvt.rzi.s32/u32.f32`, which truncates and *saturates* (NaN → 0),
//!   the same clamping WGSL's conversion does; integer → float `cvt.rn`; f32 → f16
//!   `cvt.rn.f16.f32`, integer → f16 directly `cvt.rn.f16.s32/u32` (one rounding); bool ↔ number
//!   via `selp`/`setp.ne` (`setp.neu` for floats, so NaN is true); i32 ↔ u32 and `Bitcast` are
//!   register moves (`mov.b32` between `%f` and `%r`).
//! - f16: stored and loaded as `.b16`; every f16 operation is computed in f32 (`cvt.f32.f16`,
//!   exact) and rounded back with `cvt.rn.f16.f32`.
//! - `Select` → `selp` (bool values: predicate logic); a literal condition picks its branch.
//! - `AsyncCopy` of a 16-byte element → `cp.async.cg.shared.global`, of a 4- or 8-byte one →
//!   `cp.async.ca.shared.global` (a 2-byte f16 element, which cp.async cannot move, is a plain
//!   load + store); `AsyncCommit` → `cp.async.commit_group`; `AsyncWait { pending: 0 }` →
//!   `cp.async.wait_all`, otherwise `cp.async.wait_group pending`.
//! - `LoadMatrix` → `ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16` into the `u32`
//!   locals' registers (each lane's row address from its index into the 16-byte-element array).
//! - `Mma` with shape m16n8k16, f16 × f16 + f32, fragments of 4 (A), 2 (B) and 4 (C) locals —
//!   A/B locals of type `u32` (two packed f16, low half first) or `vec2<f16>`, C locals `f32` —
//!   → `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32` accumulating in place; the same with
//!   `ab = Bf16` and `u32` A/B locals (two packed bf16) → `….f32.bf16.bf16.f32`; shape m16n8k8
//!   with `ab = Tf32` and f32 A/B locals → each operand rounded by `cvt.rna.tf32.f32`, then
//!   `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32` (what `--allow-tf32` compiles f32
//!   MatMuls to); shape m16n8k32 with `ab = S8`/`U8`, `u32` A/B locals of four packed bytes and
//!   `i32` accumulators → `….s32.s8.s8.s32` / `….s32.u8.u8.s32`. Any other shape or fragment
//!   typing is [`PtxError::Unsupported`].
//!
//! Kernels whose workgroup exceeds 1024 threads or whose shared arrays exceed 48 KiB (the static
//! shared-memory limit) are refused with [`PtxError::Unsupported`] rather than printed.
//!
//! Global loads are plain `ld.global` (no bounds checks): unlike WGSL there is no robust buffer
//! access, so an out-of-range index is undefined behaviour, as in the IR simulator, which
//! rejects it.

use crate::CodegenError;
use crate::check::check;
use optc_kernels::ir::{
    Barrier, BinOp, Builtin, Expr, Kernel, MmaElem, MmaShape, Scalar, Stmt, SubgroupOp, Type, UnOp,
    Var,
};
use std::fmt::{self, Write as _};
use std::str::FromStr;

/// A PTX target: the compute capability the module is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PtxTarget {
    /// sm_80 (A100).
    Sm80,
    /// sm_86 (RTX 30xx, A10).
    Sm86,
    /// sm_89 (RTX 40xx, L4, L40).
    Sm89,
    /// sm_90 (H100, H200).
    Sm90,
    /// sm_90a (H100 with the arch-specific features: wgmma, setmaxnreg).
    Sm90a,
}

impl PtxTarget {
    /// Every target.
    pub const ALL: [PtxTarget; 5] = [
        PtxTarget::Sm80,
        PtxTarget::Sm86,
        PtxTarget::Sm89,
        PtxTarget::Sm90,
        PtxTarget::Sm90a,
    ];

    /// The `.target` name (`sm_89`), which is also ptxas's `-arch`.
    pub fn name(self) -> &'static str {
        match self {
            PtxTarget::Sm80 => "sm_80",
            PtxTarget::Sm86 => "sm_86",
            PtxTarget::Sm89 => "sm_89",
            PtxTarget::Sm90 => "sm_90",
            PtxTarget::Sm90a => "sm_90a",
        }
    }

    /// The `.version` the module declares: 7.8 (CUDA 11.8 drivers and newer), 8.0 for sm_90a,
    /// which needs it.
    pub fn isa_version(self) -> &'static str {
        match self {
            PtxTarget::Sm90a => "8.0",
            _ => "7.8",
        }
    }
}

impl fmt::Display for PtxTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PtxTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<PtxTarget, String> {
        PtxTarget::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown PTX target '{s}'"))
    }
}

/// Why a kernel could not be printed as PTX.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PtxError {
    /// The kernel is not well formed ([`check`] rejected it).
    #[error("kernel {kernel}: {msg}")]
    Invalid {
        /// The kernel's name.
        kernel: String,
        /// What is wrong.
        msg: String,
    },
    /// The kernel uses a construct this printer cannot express in PTX.
    #[error("kernel {kernel}: {what} (not expressible in PTX by optc)")]
    Unsupported {
        /// The kernel's name.
        kernel: String,
        /// The construct.
        what: String,
    },
}

impl From<PtxError> for CodegenError {
    fn from(e: PtxError) -> CodegenError {
        match e {
            PtxError::Invalid { kernel, msg } => CodegenError::Invalid { kernel, msg },
            PtxError::Unsupported { kernel, what } => CodegenError::Unsupported { kernel, what },
        }
    }
}

/// Most threads in a CUDA block.
pub const MAX_THREADS: u32 = 1024;
/// Most static shared memory per block, bytes.
pub const MAX_SHARED_BYTES: u32 = 48 * 1024;

/// Prints `k` as a PTX module for `target` with one entry named `k.name` (see the module docs
/// for the layout, ABI and mapping).
pub fn emit_ptx(k: &Kernel, target: PtxTarget) -> Result<String, PtxError> {
    check(k).map_err(|e| match e {
        CodegenError::Invalid { kernel, msg } => PtxError::Invalid { kernel, msg },
        CodegenError::Unsupported { kernel, what } => PtxError::Unsupported { kernel, what },
        CodegenError::Naga(m) => PtxError::Invalid {
            kernel: k.name.clone(),
            msg: m,
        },
    })?;
    let mut p = Printer {
        k,
        body: String::new(),
        counts: [0; 5],
        vars: vec![None; k.locals.len()],
        labels: 0,
        loops: Vec::new(),
        bufs: Vec::new(),
        shared_base: Vec::new(),
        builtins: Vec::new(),
        mask: Op::Imm(Imm::U32(u32::MAX)),
    };
    p.header_checks()?;
    p.prologue()?;
    p.block(&k.body)?;
    p.emit("ret");
    Ok(p.module(target))
}

// ---- operands -----------------------------------------------------------------------------

/// A register class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    P,
    H,
    F,
    R,
    Rd,
}

const CLASSES: [Class; 5] = [Class::P, Class::H, Class::F, Class::R, Class::Rd];

impl Class {
    fn prefix(self) -> &'static str {
        match self {
            Class::P => "%p",
            Class::H => "%h",
            Class::F => "%f",
            Class::R => "%r",
            Class::Rd => "%rd",
        }
    }
    fn decl(self) -> &'static str {
        match self {
            Class::P => ".pred",
            Class::H => ".b16",
            Class::F => ".f32",
            Class::R => ".b32",
            Class::Rd => ".b64",
        }
    }
    fn of(s: Scalar) -> Class {
        match s {
            Scalar::F32 => Class::F,
            Scalar::F16 => Class::H,
            Scalar::I32 | Scalar::U32 => Class::R,
            Scalar::Bool => Class::P,
        }
    }
    fn index(self) -> usize {
        CLASSES.iter().position(|c| *c == self).expect("listed")
    }
}

/// An immediate, typed so that it prints right for its instruction.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Imm {
    F32(u32),
    F16(u16),
    I32(i32),
    U32(u32),
    Bool(bool),
}

impl fmt::Display for Imm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Imm::F32(b) => write!(f, "0f{b:08X}"),
            Imm::F16(b) => write!(f, "0x{b:04X}"),
            Imm::I32(v) => write!(f, "{v}"),
            Imm::U32(v) => write!(f, "{v}"),
            Imm::Bool(b) => f.write_str(if *b { "1" } else { "0" }),
        }
    }
}

/// An instruction operand: a register or an immediate.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    Reg(String),
    Imm(Imm),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Reg(r) => f.write_str(r),
            Op::Imm(i) => i.fmt(f),
        }
    }
}

fn fk(v: f32) -> Op {
    Op::Imm(Imm::F32(v.to_bits()))
}

fn ik(v: i32) -> Op {
    Op::Imm(Imm::I32(v))
}

fn uk(v: u32) -> Op {
    Op::Imm(Imm::U32(v))
}

/// A value: its scalar type and one operand per lane.
#[derive(Clone, Debug)]
struct Val {
    s: Scalar,
    lanes: Vec<Op>,
}

/// The PTX type suffix for moving/selecting/loading a scalar's bits.
fn bits_ty(s: Scalar) -> &'static str {
    match s {
        Scalar::F32 => "f32",
        Scalar::F16 => "b16",
        Scalar::I32 | Scalar::U32 => "b32",
        Scalar::Bool => "pred",
    }
}

/// The PTX type suffix for integer arithmetic on a scalar.
fn int_ty(s: Scalar) -> &'static str {
    if s == Scalar::U32 { "u32" } else { "s32" }
}

// ---- constants of the math sequences --------------------------------------------------------

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2: f32 = std::f32::consts::LN_2;
const PI: f32 = std::f32::consts::PI;
const PIO2: f32 = std::f32::consts::FRAC_PI_2;
const PIO4: f32 = std::f32::consts::FRAC_PI_4;
/// Cephes logf: log(1+f) = f - f²/2 + f³·P(f) on [√½-1, √2-1].
const LOG_P: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_4e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];
/// Cephes sinf/cosf polynomials on [-π/4, π/4].
const SIN_P: [f32; 3] = [-1.951_529_6e-4, 8.332_161e-3, -1.666_665_5e-1];
const COS_P: [f32; 3] = [2.443_315_7e-5, -1.388_731_6e-3, 4.166_664_6e-2];
/// π/2 in three parts (Cody–Waite): the first two have short mantissas so `j * part` is exact.
const PIO2_1: f32 = 1.570_312_5;
const PIO2_2: f32 = 4.837_513e-4;
const PIO2_3: f32 = 7.549_79e-8;
/// Cephes atanf.
const ATAN_P: [f32; 4] = [
    8.053_744_5e-2,
    -1.387_768_6e-1,
    1.997_771_1e-1,
    -3.333_295e-1,
];
const T3P8: f32 = 2.414_213_5;
const TP8: f32 = 0.414_213_57;
/// Cephes asinf.
const ASIN_P: [f32; 5] = [
    4.216_32e-2,
    2.418_131e-2,
    4.547_002_6e-2,
    7.495_300_3e-2,
    1.666_675_2e-1,
];
/// Cephes sinhf, tanhf, asinhf, acoshf, atanhf.
const SINH_P: [f32; 3] = [2.037_219_1e-4, 8.330_284e-3, 1.666_671_6e-1];
const TANH_P: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];
const ASINH_P: [f32; 4] = [2.012_2e-2, -4.269_934e-2, 7.484_759e-2, -1.666_628_8e-1];
// The last coefficient is Cephes' fit, close to (but not) √2.
#[allow(clippy::approx_constant)]
const ACOSH_P: [f32; 5] = [
    1.759_688_1e-3,
    -7.527_288_7e-3,
    2.645_490_5e-2,
    -1.178_474_2e-1,
    1.414_213_5,
];
const ATANH_P: [f32; 5] = [
    1.817_400_8e-1,
    8.243_703e-2,
    1.466_914_3e-1,
    1.997_821_6e-1,
    3.333_373e-1,
];

// ---- the printer ----------------------------------------------------------------------------

struct Printer<'a> {
    k: &'a Kernel,
    body: String,
    /// Registers used per class (in `CLASSES` order).
    counts: [u32; 5],
    /// The registers of each declared local, one per lane.
    vars: Vec<Option<Vec<String>>>,
    labels: u32,
    /// Exit labels of the open loops, innermost last.
    loops: Vec<String>,
    /// The global base address register of each buffer.
    bufs: Vec<String>,
    /// The 32-bit base address register of each shared array.
    shared_base: Vec<String>,
    /// The registers of the builtins the body uses.
    builtins: Vec<(Builtin, String)>,
    /// The shfl/redux member mask.
    mask: Op,
}

type R<T> = Result<T, PtxError>;

const AXES: [&str; 3] = ["x", "y", "z"];

impl Printer<'_> {
    fn unsupported(&self, what: impl Into<String>) -> PtxError {
        PtxError::Unsupported {
            kernel: self.k.name.clone(),
            what: what.into(),
        }
    }

    fn new_reg(&mut self, c: Class) -> String {
        let i = c.index();
        let n = self.counts[i];
        self.counts[i] += 1;
        format!("{}{n}", c.prefix())
    }

    fn emit(&mut self, s: impl AsRef<str>) {
        self.body.push('\t');
        self.body.push_str(s.as_ref());
        self.body.push_str(";\n");
    }

    fn label(&mut self, l: &str) {
        self.body.push_str(l);
        self.body.push_str(":\n");
    }

    fn new_label(&mut self, what: &str) -> String {
        self.labels += 1;
        format!("$L{}_{what}", self.labels)
    }

    /// `ins d, args...` into a fresh register of class `c`.
    fn op(&mut self, c: Class, ins: &str, args: &[&Op]) -> Op {
        let d = self.new_reg(c);
        let mut s = format!("{ins} {d}");
        for a in args {
            write!(s, ", {a}").expect("write to String");
        }
        self.emit(s);
        Op::Reg(d)
    }

    fn f1(&mut self, ins: &str, a: &Op) -> Op {
        self.op(Class::F, ins, &[a])
    }
    fn f2(&mut self, ins: &str, a: &Op, b: &Op) -> Op {
        self.op(Class::F, ins, &[a, b])
    }
    fn f3(&mut self, ins: &str, a: &Op, b: &Op, c: &Op) -> Op {
        self.op(Class::F, ins, &[a, b, c])
    }
    fn r2(&mut self, ins: &str, a: &Op, b: &Op) -> Op {
        self.op(Class::R, ins, &[a, b])
    }
    /// A predicate from `setp`/pred logic.
    fn p2(&mut self, ins: &str, a: &Op, b: &Op) -> Op {
        self.op(Class::P, ins, &[a, b])
    }
    /// `selp.f32 d, t, f, p`.
    fn fsel(&mut self, p: &Op, t: &Op, f: &Op) -> Op {
        self.op(Class::F, "selp.f32", &[t, f, p])
    }
    /// Horner evaluation `((c0 x + c1) x + c2) ...` with fmas.
    fn poly(&mut self, x: &Op, cs: &[f32]) -> Op {
        let mut p = fk(cs[0]);
        for c in &cs[1..] {
            p = self.f3("fma.rn.f32", &p, x, &fk(*c));
        }
        p
    }

    /// The operand in a register (immediates are moved into a fresh one).
    fn in_reg(&mut self, s: Scalar, o: &Op) -> Op {
        match o {
            Op::Reg(_) => o.clone(),
            Op::Imm(_) => self.op(Class::of(s), &format!("mov.{}", bits_ty(s)), &[o]),
        }
    }

    /// An f16 operand as f32 (exact).
    fn widen(&mut self, o: &Op) -> Op {
        match o {
            Op::Imm(Imm::F16(b)) => fk(half::f16::from_bits(*b).to_f32()),
            _ => self.f1("cvt.f32.f16", o),
        }
    }

    /// An f32 operand rounded to f16.
    fn narrow(&mut self, o: &Op) -> Op {
        match o {
            Op::Imm(Imm::F32(b)) => {
                Op::Imm(Imm::F16(half::f16::from_f32(f32::from_bits(*b)).to_bits()))
            }
            _ => self.op(Class::H, "cvt.rn.f16.f32", &[o]),
        }
    }

    // ---- module structure -------------------------------------------------------------------

    fn header_checks(&self) -> R<()> {
        let k = self.k;
        let threads: u64 = k.workgroup.iter().map(|&d| u64::from(d)).product();
        if threads > u64::from(MAX_THREADS) {
            return Err(self.unsupported(format!(
                "workgroup {:?} has {threads} threads, more than a CUDA block's {MAX_THREADS}",
                k.workgroup
            )));
        }
        let shared: u64 = k.shared.iter().map(|s| shared_bytes(s.elem, s.len)).sum();
        if shared > u64::from(MAX_SHARED_BYTES) {
            return Err(self.unsupported(format!(
                "{shared} bytes of shared arrays, more than the {MAX_SHARED_BYTES} of static shared memory"
            )));
        }
        Ok(())
    }

    fn module(self, target: PtxTarget) -> String {
        let k = self.k;
        let mut out = String::new();
        let w = &mut out;
        writeln!(w, "//\n// optc kernel {} for {}\n//", k.name, target.name()).expect("write");
        writeln!(w, ".version {}", target.isa_version()).expect("write");
        writeln!(w, ".target {}", target.name()).expect("write");
        w.push_str(".address_size 64\n\n");
        writeln!(w, ".visible .entry {}(", k.name).expect("write");
        for (i, b) in k.buffers.iter().enumerate() {
            let comma = if i + 1 < k.buffers.len() { "," } else { "" };
            let access = match b.access {
                optc_kernels::ir::Access::Read => "read",
                optc_kernels::ir::Access::ReadWrite => "read_write",
            };
            writeln!(
                w,
                "\t.param .u64 p{i}{comma}\t// binding {i}: {} ({}, {access})",
                b.name,
                crate::wgsl::wgsl_type(b.elem)
            )
            .expect("write");
        }
        w.push_str(")\n");
        let [x, y, z] = k.workgroup;
        writeln!(w, ".reqntid {x}, {y}, {z}").expect("write");
        w.push_str("{\n");
        for s in &k.shared {
            writeln!(
                w,
                "\t.shared .align 16 .b8 sh${}[{}];",
                s.name,
                shared_bytes(s.elem, s.len)
            )
            .expect("write");
        }
        for c in CLASSES {
            let n = self.counts[c.index()];
            if n > 0 {
                writeln!(w, "\t.reg {} {}<{n}>;", c.decl(), c.prefix()).expect("write");
            }
        }
        w.push('\n');
        w.push_str(&self.body);
        w.push_str("}\n");
        out
    }

    fn prologue(&mut self) -> R<()> {
        let k = self.k;
        for i in 0..k.buffers.len() {
            let p = self.op(Class::Rd, "ld.param.u64", &[&Op::Reg(format!("[p{i}]"))]);
            let g = self.op(Class::Rd, "cvta.to.global.u64", &[&p]);
            let Op::Reg(g) = g else { unreachable!() };
            self.bufs.push(g);
        }
        for s in &k.shared {
            let Op::Reg(b) = self.op(Class::R, "mov.u32", &[&Op::Reg(format!("sh${}", s.name))])
            else {
                unreachable!("op returns a register")
            };
            self.shared_base.push(b);
        }
        // Builtins, in a fixed order.
        let mut used = Vec::new();
        visit_stmts(&k.body, &mut |e| {
            if let Expr::Builtin(b) = e
                && !used.contains(b)
            {
                used.push(*b);
            }
        });
        let subgroups = k.uses_subgroups();
        let threads: u32 = k.workgroup.iter().product();
        let partial_warp = subgroups && threads % 32 != 0;
        if partial_warp && !used.contains(&Builtin::LocalIndex) {
            used.push(Builtin::LocalIndex);
        }
        let mut order: Vec<Builtin> = Vec::new();
        for a in 0..3u8 {
            order.extend([
                Builtin::GlobalId(a),
                Builtin::LocalId(a),
                Builtin::WorkgroupId(a),
                Builtin::NumWorkgroups(a),
            ]);
        }
        order.extend([Builtin::LocalIndex, Builtin::SubgroupLane]);
        for b in order {
            if !used.contains(&b) {
                continue;
            }
            let r = self.builtin(b);
            self.builtins.push((b, r));
        }
        if partial_warp {
            // Warp w holds threads 32w..32w+31; only the last one is partial.
            let full = threads / 32 * 32;
            let lidx = Op::Reg(self.builtin_reg(Builtin::LocalIndex).to_string());
            let p = self.p2("setp.ge.u32", &lidx, &uk(full));
            let partial = (1u32 << (threads % 32)) - 1;
            self.mask = self.op(Class::R, "selp.b32", &[&uk(partial), &uk(u32::MAX), &p]);
        }
        Ok(())
    }

    fn special(&mut self, name: &str) -> Op {
        self.op(Class::R, "mov.u32", &[&Op::Reg(name.to_string())])
    }

    fn builtin(&mut self, b: Builtin) -> String {
        let [wx, wy, wz] = self.k.workgroup;
        let r = match b {
            Builtin::GlobalId(a) => {
                let ax = AXES[a as usize];
                let c = self.special(&format!("%ctaid.{ax}"));
                let n = self.special(&format!("%ntid.{ax}"));
                let t = self.special(&format!("%tid.{ax}"));
                self.op(Class::R, "mad.lo.u32", &[&c, &n, &t])
            }
            Builtin::LocalId(a) => self.special(&format!("%tid.{}", AXES[a as usize])),
            Builtin::WorkgroupId(a) => self.special(&format!("%ctaid.{}", AXES[a as usize])),
            Builtin::NumWorkgroups(a) => self.special(&format!("%nctaid.{}", AXES[a as usize])),
            Builtin::LocalIndex => {
                let tx = self.special("%tid.x");
                if wy == 1 && wz == 1 {
                    tx
                } else {
                    let ty = self.special("%tid.y");
                    let tz = self.special("%tid.z");
                    let yz = self.op(Class::R, "mad.lo.u32", &[&tz, &uk(wy), &ty]);
                    self.op(Class::R, "mad.lo.u32", &[&yz, &uk(wx), &tx])
                }
            }
            Builtin::SubgroupLane => self.special("%laneid"),
            Builtin::SubgroupSize => uk(32),
        };
        match r {
            Op::Reg(r) => r,
            Op::Imm(i) => i.to_string(),
        }
    }

    fn builtin_reg(&self, b: Builtin) -> &str {
        self.builtins
            .iter()
            .find(|(x, _)| *x == b)
            .map(|(_, r)| r.as_str())
            .expect("builtins are computed in the prologue")
    }

    // ---- statements -------------------------------------------------------------------------

    fn block(&mut self, stmts: &[Stmt]) -> R<()> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    /// The registers of local `v`, allocated at its first declaration.
    fn var_regs(&mut self, v: Var) -> Vec<String> {
        if let Some(r) = &self.vars[v.0 as usize] {
            return r.clone();
        }
        let t = self.k.locals[v.0 as usize];
        let regs: Vec<String> = (0..t.lanes)
            .map(|_| self.new_reg(Class::of(t.scalar)))
            .collect();
        self.vars[v.0 as usize] = Some(regs.clone());
        regs
    }

    /// `v = value`, lane by lane; a value that reads `v`'s own registers in other lanes (a
    /// swizzle) goes through fresh registers first.
    fn assign(&mut self, v: Var, value: Val) {
        let regs = self.var_regs(v);
        let hazard = value.lanes.iter().enumerate().any(|(i, o)| {
            matches!(o, Op::Reg(r) if regs.iter().enumerate().any(|(j, x)| j != i && x == r))
        });
        let mov = format!("mov.{}", bits_ty(value.s));
        let lanes = if hazard {
            value
                .lanes
                .iter()
                .map(|o| self.op(Class::of(value.s), &mov, &[o]))
                .collect()
        } else {
            value.lanes
        };
        for (d, o) in regs.iter().zip(&lanes) {
            if let Op::Reg(r) = o
                && r == d
            {
                continue;
            }
            self.emit(format!("{mov} {d}, {o}"));
        }
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::Let(v, e) | Stmt::Assign(v, e) => {
                let val = self.expr(e)?;
                self.assign(*v, val);
            }
            Stmt::Store { buf, index, value } => {
                let b = &self.k.buffers[*buf as usize];
                let (elem, bf16) = (b.elem, b.bf16);
                let addr = self.global_addr(*buf, index)?;
                let val = self.expr(value)?;
                if bf16 {
                    self.store_bf16(elem, &addr, &val);
                } else {
                    self.store("global", elem, &addr, &val);
                }
            }
            Stmt::StoreShared { arr, index, value } => {
                let elem = self.k.shared[*arr as usize].elem;
                let addr = self.shared_addr(*arr, index)?;
                let val = self.expr(value)?;
                self.store("shared", elem, &addr, &val);
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                match &c.lanes[0] {
                    Op::Imm(Imm::Bool(b)) => {
                        // A literal condition: only the taken branch exists.
                        self.block(if *b { then } else { els })?;
                    }
                    p => {
                        let p = p.clone();
                        if els.is_empty() {
                            let end_l = self.new_label("endif");
                            self.emit(format!("@!{p} bra {end_l}"));
                            self.block(then)?;
                            self.label(&end_l);
                        } else {
                            let else_l = self.new_label("else");
                            let end_l = self.new_label("endif");
                            self.emit(format!("@!{p} bra {else_l}"));
                            self.block(then)?;
                            self.emit(format!("bra {end_l}"));
                            self.label(&else_l);
                            self.block(els)?;
                            self.label(&end_l);
                        }
                    }
                }
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
                unroll,
            } => {
                if *unroll
                    && let Some((a, b)) = crate::wgsl::unrollable(*var, start, end, *step, body)
                {
                    let mut i = a;
                    while i < b {
                        self.assign(
                            *var,
                            Val {
                                s: Scalar::I32,
                                lanes: vec![ik(i as i32)],
                            },
                        );
                        self.block(body)?;
                        i += i64::from(*step);
                    }
                } else {
                    let s = self.expr(start)?;
                    self.assign(*var, s);
                    let reg = Op::Reg(self.var_regs(*var)[0].clone());
                    let head = self.new_label("loop");
                    let exit = self.new_label("endloop");
                    self.label(&head);
                    let e = self.expr(end)?;
                    let p = self.p2("setp.ge.s32", &reg, &e.lanes[0]);
                    self.emit(format!("@{p} bra {exit}"));
                    self.loops.push(exit.clone());
                    self.block(body)?;
                    self.loops.pop();
                    self.emit(format!("add.s32 {reg}, {reg}, {step}"));
                    self.emit(format!("bra {head}"));
                    self.label(&exit);
                }
            }
            Stmt::Break => {
                let l = self
                    .loops
                    .last()
                    .cloned()
                    .ok_or_else(|| self.unsupported("break outside a loop"))?;
                self.emit(format!("bra {l}"));
            }
            Stmt::Return => self.emit("ret"),
            Stmt::Barrier(Barrier::Workgroup) => self.emit("bar.sync 0"),
            Stmt::Barrier(Barrier::Storage) => {
                self.emit("membar.cta");
                self.emit("bar.sync 0");
            }
            Stmt::Mma { shape, a, b, c } => self.mma(*shape, a, b, c)?,
            Stmt::AsyncCopy { arr, dst, buf, src } => {
                let elem = self.k.shared[*arr as usize].elem;
                let bytes = elem.scalar.size() * u32::from(elem.lanes);
                let d = self.shared_addr(*arr, dst)?;
                let s = self.global_addr(*buf, src)?;
                match bytes {
                    // 16 bytes bypass L1 (`.cg`); smaller copies must go through it.
                    16 => self.emit(format!("cp.async.cg.shared.global {d}, {s}, 16")),
                    4 | 8 => self.emit(format!("cp.async.ca.shared.global {d}, {s}, {bytes}")),
                    _ => {
                        let v = self.load("global", elem, &s);
                        self.store("shared", elem, &d, &v);
                    }
                }
            }
            Stmt::AsyncCommit => self.emit("cp.async.commit_group"),
            Stmt::AsyncWait { pending: 0 } => self.emit("cp.async.wait_all"),
            Stmt::AsyncWait { pending } => self.emit(format!("cp.async.wait_group {pending}")),
            Stmt::LoadMatrix {
                arr,
                index,
                trans,
                dst,
            } => {
                let addr = self.shared_addr(*arr, index)?;
                let regs: Vec<String> = dst.iter().map(|v| self.var_regs(*v)[0].clone()).collect();
                let t = if *trans { ".trans" } else { "" };
                self.emit(format!(
                    "ldmatrix.sync.aligned.m8n8.x{}{t}.shared.b16 {{{}}}, {addr}",
                    dst.len(),
                    regs.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn mma(&mut self, shape: MmaShape, a: &[Var], b: &[Var], c: &[Var]) -> R<()> {
        let ins = match shape {
            MmaShape::M16N8K16_F16 => "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
            MmaShape::M16N8K16_BF16 => "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
            MmaShape::M16N8K8_TF32 => "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
            MmaShape::M16N8K32_S8 => "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32",
            MmaShape::M16N8K32_U8 => "mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32",
            _ => {
                return Err(self.unsupported(format!(
                    "mma m{}n{}k{} {} x {} + {}: only m16n8k16 f16/bf16 x f16/bf16 + f32, \
                     m16n8k8 tf32 (f32 operands) + f32 and m16n8k32 s8/u8 + s32 are implemented",
                    shape.m, shape.n, shape.k, shape.ab, shape.ab, shape.acc
                )));
            }
        };
        if a.len() != 4 || b.len() != 2 || c.len() != 4 {
            return Err(self.unsupported(format!(
                "mma m16n8k{} with fragments of {}, {}, {} locals (needs 4 A, 2 B, 4 C)",
                shape.k,
                a.len(),
                b.len(),
                c.len()
            )));
        }
        let mut ra = Vec::new();
        for v in a {
            ra.push(self.mma_operand(*v, shape.ab)?);
        }
        let mut rb = Vec::new();
        for v in b {
            rb.push(self.mma_operand(*v, shape.ab)?);
        }
        let mut rc = Vec::new();
        for v in c {
            if self.k.locals[v.0 as usize] != Type::scalar(shape.acc) {
                return Err(self.unsupported(format!(
                    "mma accumulator local v{} is not {}",
                    v.0, shape.acc
                )));
            }
            rc.push(self.var_regs(*v)[0].clone());
        }
        let c = rc.join(", ");
        self.emit(format!(
            "{ins} {{{c}}}, {{{}}}, {{{}}}, {{{c}}}",
            ra.join(", "),
            rb.join(", ")
        ));
        Ok(())
    }

    /// The `.b32` register of an A/B fragment local: for f16, a `u32` as is or a `vec2<f16>`
    /// packed; for bf16, a `u32` as is; for tf32, an `f32` rounded with `cvt.rna.tf32.f32`.
    fn mma_operand(&mut self, v: Var, elem: MmaElem) -> R<String> {
        let t = self.k.locals[v.0 as usize];
        let regs = self.var_regs(v);
        match elem {
            MmaElem::Tf32 if t == Type::F32 => {
                let d = self.new_reg(Class::R);
                self.emit(format!("cvt.rna.tf32.f32 {d}, {}", regs[0]));
                Ok(d)
            }
            MmaElem::F16 | MmaElem::Bf16 | MmaElem::S8 | MmaElem::U8 if t == Type::U32 => {
                Ok(regs[0].clone())
            }
            MmaElem::F16 if t == Type::vec(Scalar::F16, 2) => {
                let d = self.new_reg(Class::R);
                self.emit(format!("mov.b32 {d}, {{{}, {}}}", regs[0], regs[1]));
                Ok(d)
            }
            _ => Err(self.unsupported(format!(
                "mma {elem} A/B fragment local v{} of type {} (needs {})",
                v.0,
                crate::wgsl::wgsl_type(t),
                match elem {
                    MmaElem::Tf32 => "f32",
                    MmaElem::F16 => "u32 or vec2<f16>",
                    MmaElem::Bf16 | MmaElem::S8 | MmaElem::U8 => "u32",
                }
            ))),
        }
    }

    // ---- memory -----------------------------------------------------------------------------

    /// `[addr]` of element `index` of buffer `buf`.
    fn global_addr(&mut self, buf: u32, index: &Expr) -> R<String> {
        let b = &self.k.buffers[buf as usize];
        let elem = b.elem;
        let scalar_bytes = if b.bf16 { 2 } else { elem.scalar.size() };
        let size = i64::from(scalar_bytes * u32::from(elem.lanes));
        let base = self.bufs[buf as usize].clone();
        let idx = self.expr(index)?;
        Ok(match &idx.lanes[0] {
            Op::Imm(i) => {
                let off = match i {
                    Imm::I32(v) => i64::from(*v) * size,
                    Imm::U32(v) => i64::from(*v) * size,
                    _ => unreachable!("check() makes indices integers"),
                };
                if (0..=i64::from(i32::MAX)).contains(&off) {
                    format!("[{base}+{off}]")
                } else {
                    let d = self.new_reg(Class::Rd);
                    self.emit(format!("add.s64 {d}, {base}, {off}"));
                    format!("[{d}]")
                }
            }
            o => {
                let mul = if idx.s == Scalar::U32 {
                    "mul.wide.u32"
                } else {
                    "mul.wide.s32"
                };
                let o = o.clone();
                let off = self.op(Class::Rd, mul, &[&o, &Op::Imm(Imm::I32(size as i32))]);
                let a = self.op(Class::Rd, "add.s64", &[&Op::Reg(base), &off]);
                format!("[{a}]")
            }
        })
    }

    /// `[addr]` of element `index` of shared array `arr` (32-bit shared addresses).
    fn shared_addr(&mut self, arr: u32, index: &Expr) -> R<String> {
        let s = &self.k.shared[arr as usize];
        let size = s.elem.scalar.size() * u32::from(s.elem.lanes);
        let name = format!("sh${}", s.name);
        let idx = self.expr(index)?;
        Ok(match &idx.lanes[0] {
            Op::Imm(Imm::I32(v)) => format!("[{name}+{}]", i64::from(*v) * i64::from(size)),
            Op::Imm(Imm::U32(v)) => format!("[{name}+{}]", u64::from(*v) * u64::from(size)),
            o => {
                let o = o.clone();
                let base = Op::Reg(self.shared_base[arr as usize].clone());
                let a = self.op(Class::R, "mad.lo.s32", &[&o, &uk(size), &base]);
                format!("[{a}]")
            }
        })
    }

    fn load(&mut self, space: &str, elem: Type, addr: &str) -> Val {
        let c = Class::of(elem.scalar);
        let ty = match elem.scalar {
            Scalar::F32 => "f32",
            Scalar::F16 => "b16",
            _ => "u32",
        };
        let regs: Vec<String> = (0..elem.lanes).map(|_| self.new_reg(c)).collect();
        if elem.lanes == 1 {
            self.emit(format!("ld.{space}.{ty} {}, {addr}", regs[0]));
        } else {
            self.emit(format!(
                "ld.{space}.v{}.{ty} {{{}}}, {addr}",
                elem.lanes,
                regs.join(", ")
            ));
        }
        Val {
            s: elem.scalar,
            lanes: regs.into_iter().map(Op::Reg).collect(),
        }
    }

    /// A load from a bf16-stored buffer ([`optc_kernels::ir::Buffer::bf16`]): the 16-bit
    /// values, each widened exactly to f32 (the bf16 bits are the f32's high half).
    fn load_bf16(&mut self, elem: Type, addr: &str) -> Val {
        let raw = self.load("global", Type::vec(Scalar::F16, elem.lanes), addr);
        let zero = self.new_reg(Class::H);
        self.emit(format!("mov.b16 {zero}, 0x0000"));
        let lanes = raw
            .lanes
            .iter()
            .map(|h| {
                let f = self.new_reg(Class::F);
                self.emit(format!("mov.b32 {f}, {{{zero}, {h}}}"));
                Op::Reg(f)
            })
            .collect();
        Val {
            s: Scalar::F32,
            lanes,
        }
    }

    /// A store to a bf16-stored buffer: each f32 rounded to nearest-even bf16.
    fn store_bf16(&mut self, elem: Type, addr: &str, v: &Val) {
        let lanes = v
            .lanes
            .iter()
            .map(|x| {
                let x = match x {
                    Op::Imm(_) => self.op(Class::F, "mov.f32", &[x]),
                    r => r.clone(),
                };
                let h = self.new_reg(Class::H);
                self.emit(format!("cvt.rn.bf16.f32 {h}, {x}"));
                Op::Reg(h)
            })
            .collect();
        let raw = Val {
            s: Scalar::F16,
            lanes,
        };
        self.store("global", Type::vec(Scalar::F16, elem.lanes), addr, &raw);
    }

    fn store(&mut self, space: &str, elem: Type, addr: &str, v: &Val) {
        let ty = match elem.scalar {
            Scalar::F32 => "f32",
            Scalar::F16 => "b16",
            _ => "u32",
        };
        let parts: Vec<String> = v.lanes.iter().map(Op::to_string).collect();
        if elem.lanes == 1 {
            self.emit(format!("st.{space}.{ty} {addr}, {}", parts[0]));
        } else {
            self.emit(format!(
                "st.{space}.v{}.{ty} {addr}, {{{}}}",
                elem.lanes,
                parts.join(", ")
            ));
        }
    }

    // ---- expressions ------------------------------------------------------------------------

    fn expr(&mut self, e: &Expr) -> R<Val> {
        Ok(match e {
            Expr::F32(v) => Val {
                s: Scalar::F32,
                lanes: vec![fk(*v)],
            },
            Expr::F16(v) => Val {
                s: Scalar::F16,
                lanes: vec![Op::Imm(Imm::F16(half::f16::from_f32(*v).to_bits()))],
            },
            Expr::I32(v) => Val {
                s: Scalar::I32,
                lanes: vec![ik(*v)],
            },
            Expr::U32(v) => Val {
                s: Scalar::U32,
                lanes: vec![uk(*v)],
            },
            Expr::Bool(b) => Val {
                s: Scalar::Bool,
                lanes: vec![Op::Imm(Imm::Bool(*b))],
            },
            Expr::Var(v) => {
                let t = self.k.locals[v.0 as usize];
                Val {
                    s: t.scalar,
                    lanes: self.var_regs(*v).into_iter().map(Op::Reg).collect(),
                }
            }
            Expr::Builtin(Builtin::SubgroupSize) => Val {
                s: Scalar::U32,
                lanes: vec![uk(32)],
            },
            Expr::Builtin(b) => Val {
                s: Scalar::U32,
                lanes: vec![Op::Reg(self.builtin_reg(*b).to_string())],
            },
            Expr::Load { buf, index } => {
                let b = &self.k.buffers[*buf as usize];
                let (elem, bf16) = (b.elem, b.bf16);
                let addr = self.global_addr(*buf, index)?;
                if bf16 {
                    self.load_bf16(elem, &addr)
                } else {
                    self.load("global", elem, &addr)
                }
            }
            Expr::LoadShared { arr, index } => {
                let elem = self.k.shared[*arr as usize].elem;
                let addr = self.shared_addr(*arr, index)?;
                self.load("shared", elem, &addr)
            }
            Expr::Unary(op, x) => {
                let v = self.expr(x)?;
                self.unary(*op, v)?
            }
            Expr::Binary(op, a, b) => {
                let va = self.expr(a)?;
                let vb = self.expr(b)?;
                self.binary(*op, va, vb)?
            }
            Expr::Select { cond, t, f } => {
                let c = self.expr(cond)?;
                let vt = self.expr(t)?;
                let vf = self.expr(f)?;
                let mut lanes = Vec::new();
                for i in 0..vt.lanes.len() {
                    let p = &c.lanes[if c.lanes.len() == 1 { 0 } else { i }];
                    lanes.push(self.select(vt.s, p, &vt.lanes[i], &vf.lanes[i]));
                }
                Val { s: vt.s, lanes }
            }
            Expr::Fma(a, b, c) => {
                let (va, vb, vc) = (self.expr(a)?, self.expr(b)?, self.expr(c)?);
                let mut lanes = Vec::new();
                for i in 0..va.lanes.len() {
                    let (x, y, z) = (&va.lanes[i], &vb.lanes[i], &vc.lanes[i]);
                    lanes.push(match va.s {
                        Scalar::F32 => self.f3("fma.rn.f32", x, y, z),
                        Scalar::F16 => {
                            let (x, y, z) = (self.widen(x), self.widen(y), self.widen(z));
                            let r = self.f3("fma.rn.f32", &x, &y, &z);
                            self.narrow(&r)
                        }
                        s => self.op(Class::R, &format!("mad.lo.{}", int_ty(s)), &[x, y, z]),
                    });
                }
                Val { s: va.s, lanes }
            }
            Expr::Cast(s, x) => {
                let v = self.expr(x)?;
                let lanes = v
                    .lanes
                    .iter()
                    .map(|o| self.cast(v.s, *s, o))
                    .collect::<Vec<_>>();
                Val { s: *s, lanes }
            }
            Expr::Bitcast(s, x) => {
                let v = self.expr(x)?;
                if v.s == Scalar::F16 && v.lanes.len() == 2 && *s != Scalar::F16 {
                    // A pair of halves packed into one 32-bit register, lane 0 low.
                    let d = self.new_reg(Class::of(*s));
                    self.emit(format!("mov.b32 {d}, {{{}, {}}}", v.lanes[0], v.lanes[1]));
                    return Ok(Val {
                        s: *s,
                        lanes: vec![Op::Reg(d)],
                    });
                }
                let lanes = v
                    .lanes
                    .iter()
                    .map(|o| self.bitcast(v.s, *s, o))
                    .collect::<Vec<_>>();
                Val { s: *s, lanes }
            }
            Expr::Vector(xs) => {
                let mut lanes = Vec::new();
                let mut s = Scalar::F32;
                for x in xs {
                    let v = self.expr(x)?;
                    s = v.s;
                    lanes.extend(v.lanes);
                }
                Val { s, lanes }
            }
            Expr::Splat(n, x) => {
                let v = self.expr(x)?;
                Val {
                    s: v.s,
                    lanes: vec![v.lanes[0].clone(); *n as usize],
                }
            }
            Expr::Lane(x, i) => {
                let v = self.expr(x)?;
                Val {
                    s: v.s,
                    lanes: vec![v.lanes[*i as usize].clone()],
                }
            }
            Expr::Subgroup { op, value, lane } => {
                let v = self.expr(value)?;
                let l = match lane {
                    Some(l) => Some(self.expr(l)?),
                    None => None,
                };
                self.subgroup(*op, v, l)?
            }
        })
    }

    fn select(&mut self, s: Scalar, p: &Op, t: &Op, f: &Op) -> Op {
        match p {
            Op::Imm(Imm::Bool(true)) => return t.clone(),
            Op::Imm(Imm::Bool(false)) => return f.clone(),
            _ => {}
        }
        if s == Scalar::Bool {
            // (p & t) | (!p & f)
            let t = self.in_reg(s, t);
            let f = self.in_reg(s, f);
            let a = self.p2("and.pred", p, &t);
            let np = self.op(Class::P, "not.pred", &[p]);
            let b = self.p2("and.pred", &np, &f);
            return self.p2("or.pred", &a, &b);
        }
        self.op(Class::of(s), &format!("selp.{}", bits_ty(s)), &[t, f, p])
    }

    fn cast(&mut self, from: Scalar, to: Scalar, o: &Op) -> Op {
        use Scalar::*;
        if from == to {
            return o.clone();
        }
        match (from, to) {
            (I32, U32) | (U32, I32) => match o {
                Op::Imm(Imm::I32(v)) => uk(*v as u32),
                Op::Imm(Imm::U32(v)) => ik(*v as i32),
                _ => o.clone(),
            },
            (F32, I32) => self.op(Class::R, "cvt.rzi.s32.f32", &[o]),
            (F32, U32) => self.op(Class::R, "cvt.rzi.u32.f32", &[o]),
            (F16, I32 | U32) => {
                let w = self.widen(o);
                self.cast(F32, to, &w)
            }
            (I32, F32) => self.f1("cvt.rn.f32.s32", o),
            (U32, F32) => self.f1("cvt.rn.f32.u32", o),
            (I32, F16) => self.op(Class::H, "cvt.rn.f16.s32", &[o]),
            (U32, F16) => self.op(Class::H, "cvt.rn.f16.u32", &[o]),
            (F32, F16) => self.narrow(o),
            (F16, F32) => self.widen(o),
            (Bool, F32) => self.select(F32, o, &fk(1.0), &fk(0.0)),
            (Bool, F16) => self.select(F16, o, &Op::Imm(Imm::F16(0x3C00)), &Op::Imm(Imm::F16(0))),
            (Bool, I32) => self.select(I32, o, &ik(1), &ik(0)),
            (Bool, U32) => self.select(U32, o, &uk(1), &uk(0)),
            (F32, Bool) => self.p2("setp.neu.f32", o, &fk(0.0)),
            (F16, Bool) => {
                let w = self.widen(o);
                self.p2("setp.neu.f32", &w, &fk(0.0))
            }
            (I32 | U32, Bool) => self.p2("setp.ne.b32", o, &uk(0)),
            _ => unreachable!("same-type casts return above"),
        }
    }

    fn bitcast(&mut self, from: Scalar, to: Scalar, o: &Op) -> Op {
        let bits = match o {
            Op::Imm(Imm::F32(b)) | Op::Imm(Imm::U32(b)) => Some(*b),
            Op::Imm(Imm::I32(v)) => Some(*v as u32),
            _ => None,
        };
        if let Some(b) = bits {
            return match to {
                Scalar::F32 => Op::Imm(Imm::F32(b)),
                Scalar::I32 => ik(b as i32),
                _ => uk(b),
            };
        }
        if Class::of(from) == Class::of(to) {
            o.clone()
        } else {
            self.op(Class::of(to), "mov.b32", &[o])
        }
    }

    fn unary(&mut self, op: UnOp, v: Val) -> R<Val> {
        let s = v.s;
        let out_s = match op {
            UnOp::IsNan | UnOp::IsInf => Scalar::Bool,
            _ => s,
        };
        let mut lanes = Vec::new();
        for x in &v.lanes {
            lanes.push(match s {
                Scalar::F32 => self.funary(op, x),
                Scalar::F16 => {
                    let w = self.widen(x);
                    let r = self.funary(op, &w);
                    if out_s == Scalar::F16 {
                        self.narrow(&r)
                    } else {
                        r
                    }
                }
                Scalar::Bool => {
                    let x = self.in_reg(s, x);
                    self.op(Class::P, "not.pred", &[&x])
                }
                Scalar::I32 | Scalar::U32 => match op {
                    UnOp::Neg => self.op(Class::R, "neg.s32", &[x]),
                    UnOp::Not => self.op(Class::R, "not.b32", &[x]),
                    UnOp::Abs if s == Scalar::U32 => x.clone(),
                    UnOp::Abs => self.op(Class::R, "abs.s32", &[x]),
                    UnOp::Sign => {
                        let gt = self.p2("setp.gt.s32", x, &ik(0));
                        let lt = self.p2("setp.lt.s32", x, &ik(0));
                        let t = self.op(Class::R, "selp.b32", &[&ik(-1), &ik(0), &lt]);
                        self.op(Class::R, "selp.b32", &[&ik(1), &t, &gt])
                    }
                    _ => unreachable!("check() allows only Neg/Not/Abs/Sign on integers"),
                },
            });
        }
        Ok(Val { s: out_s, lanes })
    }

    /// A float unary op on one f32 lane.
    fn funary(&mut self, op: UnOp, x: &Op) -> Op {
        match op {
            UnOp::Neg => self.f1("neg.f32", x),
            UnOp::Abs => self.f1("abs.f32", x),
            UnOp::Exp => self.exp(x),
            UnOp::Log => self.log(x),
            UnOp::Sqrt => self.f1("sqrt.rn.f32", x),
            UnOp::InverseSqrt => self.f1("rsqrt.approx.f32", x),
            UnOp::Sin | UnOp::Cos | UnOp::Tan => self.trig(op, x),
            UnOp::Asin => self.asin(x),
            UnOp::Acos => self.acos(x),
            UnOp::Atan => self.atan(x),
            UnOp::Sinh => self.sinh(x),
            UnOp::Cosh => {
                let a = self.f1("abs.f32", x);
                let t = self.f3("fma.rn.f32", &a, &fk(LOG2E), &fk(-1.0));
                let e = self.f1("ex2.approx.f32", &t);
                let ie = self.f2("div.rn.f32", &fk(0.25), &e);
                self.f2("add.rn.f32", &e, &ie)
            }
            UnOp::Tanh => self.tanh(x),
            UnOp::Asinh => self.asinh(x),
            UnOp::Acosh => self.acosh(x),
            UnOp::Atanh => self.atanh(x),
            UnOp::Floor => self.f1("cvt.rmi.f32.f32", x),
            UnOp::Ceil => self.f1("cvt.rpi.f32.f32", x),
            UnOp::Round => self.f1("cvt.rni.f32.f32", x),
            UnOp::Trunc => self.f1("cvt.rzi.f32.f32", x),
            UnOp::Sign => {
                let gt = self.p2("setp.gt.f32", x, &fk(0.0));
                let lt = self.p2("setp.lt.f32", x, &fk(0.0));
                let t = self.fsel(&lt, &fk(-1.0), x);
                self.fsel(&gt, &fk(1.0), &t)
            }
            UnOp::Not => unreachable!("check() rejects Not on floats"),
            UnOp::IsNan | UnOp::IsInf => {
                let b = self.op(Class::R, "mov.b32", &[x]);
                let m = self.r2("and.b32", &b, &uk(0x7fff_ffff));
                let cmp = if op == UnOp::IsNan {
                    "setp.gt.u32"
                } else {
                    "setp.eq.u32"
                };
                self.p2(cmp, &m, &uk(0x7f80_0000))
            }
        }
    }

    fn exp(&mut self, x: &Op) -> Op {
        let t = self.f2("mul.rn.f32", x, &fk(LOG2E));
        self.f1("ex2.approx.f32", &t)
    }

    fn log(&mut self, x: &Op) -> Op {
        let l = self.f1("lg2.approx.f32", x);
        let far = self.f2("mul.rn.f32", &l, &fk(LN2));
        // Near 1: f = x - 1 is exact; log(1+f) = f - f²/2 + f³ P(f).
        let f = self.f2("sub.rn.f32", x, &fk(1.0));
        let z = self.f2("mul.rn.f32", &f, &f);
        let p = self.poly(&f, &LOG_P);
        let fz = self.f2("mul.rn.f32", &f, &z);
        let y = self.f2("mul.rn.f32", &fz, &p);
        let y = self.f3("fma.rn.f32", &z, &fk(-0.5), &y);
        let near = self.f2("add.rn.f32", &f, &y);
        let lo = self.p2("setp.gt.f32", x, &fk(std::f32::consts::FRAC_1_SQRT_2));
        let hi = self.p2("setp.lt.f32", x, &fk(std::f32::consts::SQRT_2));
        let p = self.p2("and.pred", &lo, &hi);
        self.fsel(&p, &near, &far)
    }

    /// sin, cos or tan: reduction by π/2 and the Cephes polynomials.
    fn trig(&mut self, op: UnOp, x: &Op) -> Op {
        let t = self.f2("mul.rn.f32", x, &fk(std::f32::consts::FRAC_2_PI));
        let j = self.f1("cvt.rni.f32.f32", &t);
        let r = self.f3("fma.rn.f32", &j, &fk(-PIO2_1), x);
        let r = self.f3("fma.rn.f32", &j, &fk(-PIO2_2), &r);
        let r = self.f3("fma.rn.f32", &j, &fk(-PIO2_3), &r);
        let z = self.f2("mul.rn.f32", &r, &r);
        let sp = self.poly(&z, &SIN_P);
        let rz = self.f2("mul.rn.f32", &r, &z);
        let s = self.f3("fma.rn.f32", &rz, &sp, &r);
        let cp = self.poly(&z, &COS_P);
        let zz = self.f2("mul.rn.f32", &z, &z);
        let c = self.f2("mul.rn.f32", &zz, &cp);
        let c = self.f3("fma.rn.f32", &z, &fk(-0.5), &c);
        let c = self.f2("add.rn.f32", &c, &fk(1.0));
        let q = self.op(Class::R, "cvt.rzi.s32.f32", &[&j]);
        let q1 = self.r2("and.b32", &q, &uk(1));
        let odd = self.p2("setp.ne.u32", &q1, &uk(0));
        match op {
            UnOp::Tan => {
                let nc = self.f1("neg.f32", &c);
                let num = self.fsel(&odd, &nc, &s);
                let den = self.fsel(&odd, &s, &c);
                self.f2("div.rn.f32", &num, &den)
            }
            _ => {
                let (v, q2) = if op == UnOp::Sin {
                    let v = self.fsel(&odd, &c, &s);
                    (v, self.r2("and.b32", &q, &uk(2)))
                } else {
                    let v = self.fsel(&odd, &s, &c);
                    let q1 = self.r2("add.s32", &q, &ik(1));
                    (v, self.r2("and.b32", &q1, &uk(2)))
                };
                let neg = self.p2("setp.ne.u32", &q2, &uk(0));
                let nv = self.f1("neg.f32", &v);
                self.fsel(&neg, &nv, &v)
            }
        }
    }

    fn atan(&mut self, x: &Op) -> Op {
        let a = self.f1("abs.f32", x);
        let big = self.p2("setp.gt.f32", &a, &fk(T3P8));
        let mid = self.p2("setp.gt.f32", &a, &fk(TP8));
        let inv = self.f2("div.rn.f32", &fk(-1.0), &a);
        let num = self.f2("sub.rn.f32", &a, &fk(1.0));
        let den = self.f2("add.rn.f32", &a, &fk(1.0));
        let q = self.f2("div.rn.f32", &num, &den);
        let t = self.fsel(&mid, &q, &a);
        let t = self.fsel(&big, &inv, &t);
        let y0 = self.fsel(&mid, &fk(PIO4), &fk(0.0));
        let y0 = self.fsel(&big, &fk(PIO2), &y0);
        let z = self.f2("mul.rn.f32", &t, &t);
        let p = self.poly(&z, &ATAN_P);
        let tz = self.f2("mul.rn.f32", &t, &z);
        let r = self.f3("fma.rn.f32", &tz, &p, &t);
        let r = self.f2("add.rn.f32", &r, &y0);
        self.f2("copysign.f32", x, &r)
    }

    /// C `fmod`, exact while |x / y| < 2^24: `x - t·y` with `t = trunc(x / y)` is exact in an
    /// fma when `t` is right; a rounded-up quotient shows as a remainder of the wrong sign and
    /// is corrected once.
    fn fmod(&mut self, x: &Op, y: &Op) -> Op {
        let q = self.f2("div.rn.f32", x, y);
        let t = self.f1("cvt.rzi.f32.f32", &q);
        let nt = self.f1("neg.f32", &t);
        let r = self.f3("fma.rn.f32", &nt, y, x);
        let rx = self.f2("copysign.f32", x, &r);
        let wrong = self.p2("setp.neu.f32", &rx, &r);
        let one = self.f2("copysign.f32", &t, &fk(1.0));
        let t2 = self.f2("sub.rn.f32", &t, &one);
        let nt2 = self.f1("neg.f32", &t2);
        let r2 = self.f3("fma.rn.f32", &nt2, y, x);
        let r = self.fsel(&wrong, &r2, &r);
        // The result has the dividend's sign (also when it is zero); fmod(x, ±inf) = x.
        let r = self.f2("copysign.f32", x, &r);
        let ay = self.f1("abs.f32", y);
        let yinf = self.p2("setp.eq.f32", &ay, &fk(f32::INFINITY));
        self.fsel(&yinf, x, &r)
    }

    fn atan2(&mut self, y: &Op, x: &Op) -> Op {
        let q = self.f2("div.rn.f32", y, x);
        let at = self.atan(&q);
        let xneg = self.p2("setp.lt.f32", x, &fk(0.0));
        let pi_y = self.f2("copysign.f32", y, &fk(PI));
        let w = self.fsel(&xneg, &pi_y, &fk(0.0));
        let r = self.f2("add.rn.f32", &at, &w);
        // x = ±0: ±π/2 by the sign of y (y / -0 would flip it); both zero: y.
        let x0 = self.p2("setp.eq.f32", x, &fk(0.0));
        let half_pi = self.f2("copysign.f32", y, &fk(PIO2));
        let r = self.fsel(&x0, &half_pi, &r);
        let y0 = self.p2("setp.eq.f32", y, &fk(0.0));
        let both = self.p2("and.pred", &y0, &x0);
        self.fsel(&both, y, &r)
    }

    /// Cephes' asin kernel `s + s z P(z)`.
    fn asin_kernel(&mut self, s: &Op, z: &Op) -> Op {
        let p = self.poly(z, &ASIN_P);
        let sz = self.f2("mul.rn.f32", s, z);
        self.f3("fma.rn.f32", &sz, &p, s)
    }

    fn asin(&mut self, x: &Op) -> Op {
        let a = self.f1("abs.f32", x);
        let big = self.p2("setp.gt.f32", &a, &fk(0.5));
        let zb = self.f3("fma.rn.f32", &a, &fk(-0.5), &fk(0.5));
        let zs = self.f2("mul.rn.f32", &a, &a);
        let z = self.fsel(&big, &zb, &zs);
        let sb = self.f1("sqrt.rn.f32", &zb);
        let s = self.fsel(&big, &sb, &a);
        let q = self.asin_kernel(&s, &z);
        let qb = self.f3("fma.rn.f32", &q, &fk(-2.0), &fk(PIO2));
        let r = self.fsel(&big, &qb, &q);
        self.f2("copysign.f32", x, &r)
    }

    fn acos(&mut self, x: &Op) -> Op {
        let a = self.f1("abs.f32", x);
        let big = self.p2("setp.gt.f32", &a, &fk(0.5));
        let zb = self.f3("fma.rn.f32", &a, &fk(-0.5), &fk(0.5));
        let zs = self.f2("mul.rn.f32", x, x);
        let z = self.fsel(&big, &zb, &zs);
        let sb = self.f1("sqrt.rn.f32", &zb);
        let s = self.fsel(&big, &sb, x);
        let q = self.asin_kernel(&s, &z);
        let q2 = self.f2("add.rn.f32", &q, &q);
        let neg = self.f2("sub.rn.f32", &fk(PI), &q2);
        let pos = self.p2("setp.gt.f32", x, &fk(0.0));
        let bigr = self.fsel(&pos, &q2, &neg);
        let small = self.f2("sub.rn.f32", &fk(PIO2), &q);
        self.fsel(&big, &bigr, &small)
    }

    fn sinh(&mut self, x: &Op) -> Op {
        let a = self.f1("abs.f32", x);
        let z = self.f2("mul.rn.f32", x, x);
        let p = self.poly(&z, &SINH_P);
        let xz = self.f2("mul.rn.f32", x, &z);
        let small = self.f3("fma.rn.f32", &xz, &p, x);
        // e = e^|x| / 2, so e - 1/(4e) = sinh|x| without overflowing early.
        let t = self.f3("fma.rn.f32", &a, &fk(LOG2E), &fk(-1.0));
        let e = self.f1("ex2.approx.f32", &t);
        let ie = self.f2("div.rn.f32", &fk(0.25), &e);
        let m = self.f2("sub.rn.f32", &e, &ie);
        let big = self.f2("copysign.f32", x, &m);
        let pbig = self.p2("setp.gt.f32", &a, &fk(1.0));
        self.fsel(&pbig, &big, &small)
    }

    fn tanh(&mut self, x: &Op) -> Op {
        let a = self.f1("abs.f32", x);
        let z = self.f2("mul.rn.f32", x, x);
        let p = self.poly(&z, &TANH_P);
        let xz = self.f2("mul.rn.f32", x, &z);
        let small = self.f3("fma.rn.f32", &xz, &p, x);
        let t = self.f2("mul.rn.f32", &a, &fk(2.0 * LOG2E));
        let e = self.f1("ex2.approx.f32", &t);
        let e1 = self.f2("add.rn.f32", &e, &fk(1.0));
        let q = self.f2("div.rn.f32", &fk(2.0), &e1);
        let m = self.f2("sub.rn.f32", &fk(1.0), &q);
        let big = self.f2("copysign.f32", x, &m);
        let pbig = self.p2("setp.ge.f32", &a, &fk(0.625));
        self.fsel(&pbig, &big, &small)
    }

    fn asinh(&mut self, x: &Op) -> Op {
        let a = self.f1("abs.f32", x);
        let small_p = self.p2("setp.lt.f32", &a, &fk(0.5));
        let huge = self.p2("setp.gt.f32", &a, &fk(1500.0));
        let z = self.f2("mul.rn.f32", &a, &a);
        let z1 = self.f2("add.rn.f32", &z, &fk(1.0));
        let sq = self.f1("sqrt.rn.f32", &z1);
        let mid = self.f2("add.rn.f32", &a, &sq);
        let arg = self.fsel(&huge, &a, &mid);
        let l = self.log(&arg);
        let lb = self.f2("add.rn.f32", &l, &fk(LN2));
        let big = self.fsel(&huge, &lb, &l);
        let p = self.poly(&z, &ASINH_P);
        let az = self.f2("mul.rn.f32", &a, &z);
        let small = self.f3("fma.rn.f32", &az, &p, &a);
        let r = self.fsel(&small_p, &small, &big);
        self.f2("copysign.f32", x, &r)
    }

    fn acosh(&mut self, x: &Op) -> Op {
        let huge = self.p2("setp.gt.f32", x, &fk(1500.0));
        let z = self.f2("sub.rn.f32", x, &fk(1.0));
        let small_p = self.p2("setp.lt.f32", &z, &fk(0.5));
        let xp1 = self.f2("add.rn.f32", x, &fk(1.0));
        let zz = self.f2("mul.rn.f32", &z, &xp1);
        let sq = self.f1("sqrt.rn.f32", &zz);
        let mid = self.f2("add.rn.f32", x, &sq);
        let arg = self.fsel(&huge, x, &mid);
        let l = self.log(&arg);
        let lb = self.f2("add.rn.f32", &l, &fk(LN2));
        let big = self.fsel(&huge, &lb, &l);
        let p = self.poly(&z, &ACOSH_P);
        let sz = self.f1("sqrt.rn.f32", &z);
        let small = self.f2("mul.rn.f32", &p, &sz);
        self.fsel(&small_p, &small, &big)
    }

    fn atanh(&mut self, x: &Op) -> Op {
        let a = self.f1("abs.f32", x);
        let small_p = self.p2("setp.lt.f32", &a, &fk(0.5));
        let z = self.f2("mul.rn.f32", x, x);
        let p = self.poly(&z, &ATANH_P);
        let xz = self.f2("mul.rn.f32", x, &z);
        let small = self.f3("fma.rn.f32", &xz, &p, x);
        let n = self.f2("add.rn.f32", &fk(1.0), x);
        let d = self.f2("sub.rn.f32", &fk(1.0), x);
        let q = self.f2("div.rn.f32", &n, &d);
        let l = self.log(&q);
        let big = self.f2("mul.rn.f32", &l, &fk(0.5));
        self.fsel(&small_p, &small, &big)
    }

    fn binary(&mut self, op: BinOp, a: Val, b: Val) -> R<Val> {
        let s = a.s;
        let out_s = if op.is_comparison() { Scalar::Bool } else { s };
        let mut lanes = Vec::new();
        for i in 0..a.lanes.len() {
            let (x, y) = (&a.lanes[i], &b.lanes[i]);
            lanes.push(match s {
                Scalar::F32 => self.fbinary(op, x, y),
                Scalar::F16 => {
                    let (x, y) = (self.widen(x), self.widen(y));
                    let r = self.fbinary(op, &x, &y);
                    if out_s == Scalar::F16 {
                        self.narrow(&r)
                    } else {
                        r
                    }
                }
                Scalar::I32 | Scalar::U32 => self.ibinary(op, s, x, y),
                Scalar::Bool => {
                    let x = self.in_reg(s, x);
                    let y = self.in_reg(s, y);
                    match op {
                        BinOp::And => self.p2("and.pred", &x, &y),
                        BinOp::Or => self.p2("or.pred", &x, &y),
                        BinOp::Xor | BinOp::Ne => self.p2("xor.pred", &x, &y),
                        BinOp::Eq => {
                            let t = self.p2("xor.pred", &x, &y);
                            self.op(Class::P, "not.pred", &[&t])
                        }
                        _ => unreachable!("check() allows only logic and equality on bools"),
                    }
                }
            });
        }
        Ok(Val { s: out_s, lanes })
    }

    fn fbinary(&mut self, op: BinOp, x: &Op, y: &Op) -> Op {
        match op {
            BinOp::Add => self.f2("add.rn.f32", x, y),
            BinOp::Sub => self.f2("sub.rn.f32", x, y),
            BinOp::Mul => self.f2("mul.rn.f32", x, y),
            BinOp::Div => self.f2("div.rn.f32", x, y),
            BinOp::Rem => self.fmod(x, y),
            BinOp::Min => self.f2("min.f32", x, y),
            BinOp::Max => self.f2("max.f32", x, y),
            BinOp::Pow => {
                let l = self.f1("lg2.approx.f32", x);
                let m = self.f2("mul.rn.f32", &l, y);
                let r = self.f1("ex2.approx.f32", &m);
                let y0 = self.p2("setp.eq.f32", y, &fk(0.0));
                self.fsel(&y0, &fk(1.0), &r)
            }
            BinOp::Atan2 => self.atan2(x, y),
            BinOp::Eq => self.p2("setp.eq.f32", x, y),
            BinOp::Ne => self.p2("setp.neu.f32", x, y),
            BinOp::Lt => self.p2("setp.lt.f32", x, y),
            BinOp::Le => self.p2("setp.le.f32", x, y),
            BinOp::Gt => self.p2("setp.gt.f32", x, y),
            BinOp::Ge => self.p2("setp.ge.f32", x, y),
            BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Shl | BinOp::Shr => {
                unreachable!("check() rejects bitwise ops on floats")
            }
        }
    }

    fn ibinary(&mut self, op: BinOp, s: Scalar, x: &Op, y: &Op) -> Op {
        let t = int_ty(s);
        let signed = s == Scalar::I32;
        match op {
            BinOp::Add => self.r2(&format!("add.{t}"), x, y),
            BinOp::Sub => self.r2(&format!("sub.{t}"), x, y),
            BinOp::Mul => self.r2(&format!("mul.lo.{t}"), x, y),
            BinOp::Div | BinOp::Rem => {
                let ins = if op == BinOp::Div { "div" } else { "rem" };
                match y {
                    Op::Imm(Imm::I32(-1)) if signed => {
                        // x / -1 = -x (wrapping: MIN / -1 = MIN), x % -1 = 0, as in WGSL.
                        if op == BinOp::Div {
                            self.op(Class::R, "neg.s32", &[x])
                        } else {
                            ik(0)
                        }
                    }
                    Op::Imm(_) => self.r2(&format!("{ins}.{t}"), x, y),
                    _ => {
                        // WGSL: x / 0 = x, x % 0 = 0, MIN / -1 = MIN, MIN % -1 = 0: divide by 1.
                        let mut bad = self.p2(&format!("setp.eq.{t}"), y, &uk(0));
                        if signed {
                            let m1 = self.p2("setp.eq.s32", y, &ik(-1));
                            let mn = self.p2("setp.eq.s32", x, &ik(i32::MIN));
                            let ov = self.p2("and.pred", &m1, &mn);
                            bad = self.p2("or.pred", &bad, &ov);
                        }
                        let d = self.op(Class::R, "selp.b32", &[&uk(1), y, &bad]);
                        self.r2(&format!("{ins}.{t}"), x, &d)
                    }
                }
            }
            BinOp::Min => self.r2(&format!("min.{t}"), x, y),
            BinOp::Max => self.r2(&format!("max.{t}"), x, y),
            BinOp::And => self.r2("and.b32", x, y),
            BinOp::Or => self.r2("or.b32", x, y),
            BinOp::Xor => self.r2("xor.b32", x, y),
            BinOp::Shl | BinOp::Shr => {
                // WGSL takes the shift amount modulo 32; PTX clamps it.
                let amt = match y {
                    Op::Imm(Imm::U32(v)) => uk(v & 31),
                    Op::Imm(Imm::I32(v)) => uk(*v as u32 & 31),
                    _ => self.r2("and.b32", y, &uk(31)),
                };
                let ins = match (op, signed) {
                    (BinOp::Shl, _) => "shl.b32",
                    (_, true) => "shr.s32",
                    _ => "shr.u32",
                };
                self.r2(ins, x, &amt)
            }
            BinOp::Eq => self.p2(&format!("setp.eq.{t}"), x, y),
            BinOp::Ne => self.p2(&format!("setp.ne.{t}"), x, y),
            BinOp::Lt => self.p2(&format!("setp.lt.{t}"), x, y),
            BinOp::Le => self.p2(&format!("setp.le.{t}"), x, y),
            BinOp::Gt => self.p2(&format!("setp.gt.{t}"), x, y),
            BinOp::Ge => self.p2(&format!("setp.ge.{t}"), x, y),
            BinOp::Pow | BinOp::Atan2 => unreachable!("check() allows Pow/Atan2 on floats only"),
        }
    }

    fn subgroup(&mut self, op: SubgroupOp, v: Val, lane: Option<Val>) -> R<Val> {
        let mask = self.mask.clone();
        let s = v.s;
        let mut lanes = Vec::new();
        for x in &v.lanes {
            // f16 travels as f32 (exact both ways).
            let x = if s == Scalar::F16 {
                self.widen(x)
            } else {
                x.clone()
            };
            let ws = if s == Scalar::F16 { Scalar::F32 } else { s };
            let x = self.in_reg(ws, &x);
            let c = Class::of(ws);
            let r = match op {
                SubgroupOp::Shuffle | SubgroupOp::Broadcast => {
                    let l = &lane.as_ref().expect("check() requires a lane").lanes[0];
                    self.op(c, "shfl.sync.idx.b32", &[&x, l, &uk(31), &mask])
                }
                SubgroupOp::Add | SubgroupOp::Max | SubgroupOp::Min if ws != Scalar::F32 => {
                    let o = match op {
                        SubgroupOp::Add => "add",
                        SubgroupOp::Max => "max",
                        _ => "min",
                    };
                    self.op(c, &format!("redux.sync.{o}.{}", int_ty(ws)), &[&x, &mask])
                }
                _ => {
                    if mask != Op::Imm(Imm::U32(u32::MAX)) {
                        return Err(self.unsupported(format!(
                            "float subgroup {op:?} in a workgroup of {} threads, not a whole number of 32-thread warps",
                            self.k.workgroup.iter().product::<u32>()
                        )));
                    }
                    let ins = match op {
                        SubgroupOp::Add => "add.rn.f32",
                        SubgroupOp::Max => "max.f32",
                        _ => "min.f32",
                    };
                    let mut acc = x;
                    for off in [16u32, 8, 4, 2, 1] {
                        let o = self.op(c, "shfl.sync.bfly.b32", &[&acc, &uk(off), &uk(31), &mask]);
                        acc = self.f2(ins, &acc, &o);
                    }
                    acc
                }
            };
            lanes.push(if s == Scalar::F16 { self.narrow(&r) } else { r });
        }
        Ok(Val { s, lanes })
    }
}

/// Bytes of a shared array (rounded up to 4 so that every declaration stays word-sized).
fn shared_bytes(elem: Type, len: u32) -> u64 {
    (u64::from(elem.scalar.size()) * u64::from(elem.lanes) * u64::from(len)).div_ceil(4) * 4
}

/// Calls `f` on every expression node in `stmts` (pre-order).
fn visit_stmts(stmts: &[Stmt], f: &mut impl FnMut(&Expr)) {
    for s in stmts {
        match s {
            Stmt::Let(_, e) | Stmt::Assign(_, e) => visit_expr(e, f),
            Stmt::Store { index, value, .. } | Stmt::StoreShared { index, value, .. } => {
                visit_expr(index, f);
                visit_expr(value, f);
            }
            Stmt::If { cond, then, els } => {
                visit_expr(cond, f);
                visit_stmts(then, f);
                visit_stmts(els, f);
            }
            Stmt::For {
                start, end, body, ..
            } => {
                visit_expr(start, f);
                visit_expr(end, f);
                visit_stmts(body, f);
            }
            Stmt::AsyncCopy { dst, src, .. } => {
                visit_expr(dst, f);
                visit_expr(src, f);
            }
            Stmt::LoadMatrix { index, .. } => visit_expr(index, f),
            Stmt::Break
            | Stmt::Return
            | Stmt::Barrier(_)
            | Stmt::Mma { .. }
            | Stmt::AsyncCommit
            | Stmt::AsyncWait { .. } => {}
        }
    }
}

fn visit_expr(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match e {
        Expr::Load { index, .. } | Expr::LoadShared { index, .. } => visit_expr(index, f),
        Expr::Unary(_, x)
        | Expr::Cast(_, x)
        | Expr::Bitcast(_, x)
        | Expr::Splat(_, x)
        | Expr::Lane(x, _) => visit_expr(x, f),
        Expr::Binary(_, a, b) => {
            visit_expr(a, f);
            visit_expr(b, f);
        }
        Expr::Select { cond, t, f: fe } => {
            visit_expr(cond, f);
            visit_expr(t, f);
            visit_expr(fe, f);
        }
        Expr::Fma(a, b, c) => {
            visit_expr(a, f);
            visit_expr(b, f);
            visit_expr(c, f);
        }
        Expr::Vector(xs) => xs.iter().for_each(|x| visit_expr(x, f)),
        Expr::Subgroup { value, lane, .. } => {
            visit_expr(value, f);
            if let Some(l) = lane {
                visit_expr(l, f);
            }
        }
        Expr::F32(_)
        | Expr::F16(_)
        | Expr::I32(_)
        | Expr::U32(_)
        | Expr::Bool(_)
        | Expr::Var(_)
        | Expr::Builtin(_) => {}
    }
}
