//! PTX text → decoded instructions: one `.entry` per module, as optc's printer writes it.
//!
//! Everything is resolved once here — register names to dense indices, labels to instruction
//! indices, shared-array symbols to byte offsets, opcodes and their modifiers to enums — so the
//! interpreter never looks at a string. Anything outside the subset is a [`SimError::Parse`] or
//! [`SimError::Unknown`] naming the line: the printer and the interpreter stay in step.

use crate::SimError;
use std::collections::BTreeMap;

/// A PTX value type as written in an opcode suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `.f32`
    F32,
    /// `.f16` (as a conversion source or destination)
    F16,
    /// `.b16`
    B16,
    /// `.b32`
    B32,
    /// `.u32`
    U32,
    /// `.s32`
    S32,
    /// `.b64`
    B64,
    /// `.u64`
    U64,
    /// `.s64`
    S64,
    /// `.pred`
    Pred,
    /// `.tf32` (an f32 bit pattern whose low 13 mantissa bits are zero)
    Tf32,
    /// `.bf16` (as a conversion destination: `cvt.rn.bf16.f32`)
    Bf16,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "f32" => Ty::F32,
            "f16" => Ty::F16,
            "b16" => Ty::B16,
            "b32" => Ty::B32,
            "u32" => Ty::U32,
            "s32" => Ty::S32,
            "b64" => Ty::B64,
            "u64" => Ty::U64,
            "s64" => Ty::S64,
            "pred" => Ty::Pred,
            "tf32" => Ty::Tf32,
            "bf16" => Ty::Bf16,
            _ => return None,
        })
    }

    /// Size in bytes in memory.
    pub fn bytes(self) -> usize {
        match self {
            Ty::F16 | Ty::B16 | Ty::Bf16 => 2,
            Ty::F32 | Ty::B32 | Ty::U32 | Ty::S32 | Ty::Tf32 => 4,
            Ty::B64 | Ty::U64 | Ty::S64 => 8,
            Ty::Pred => 1,
        }
    }

    /// The bits a register of this type keeps.
    pub fn mask(self) -> u64 {
        match self {
            Ty::Pred => 1,
            Ty::F16 | Ty::B16 => 0xffff,
            Ty::B64 | Ty::U64 | Ty::S64 => u64::MAX,
            _ => 0xffff_ffff,
        }
    }
}

/// A special register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// `%tid.{x,y,z}`
    Tid(u8),
    /// `%ntid.{x,y,z}`
    Ntid(u8),
    /// `%ctaid.{x,y,z}`
    Ctaid(u8),
    /// `%nctaid.{x,y,z}`
    Nctaid(u8),
    /// `%laneid`
    LaneId,
}

/// A source operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// A register (dense index).
    Reg(u32),
    /// An immediate's bits (f32 `0f…` immediates are their bits).
    Imm(u64),
    /// A special register.
    Special(Special),
}

/// An address operand `[base+offset]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Addr {
    /// A register or immediate plus a byte offset.
    Based(Operand, i64),
    /// Parameter `k` of the entry (`[pK]`).
    Param(u32),
}

/// Comparison of `setp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `lt`
    Lt,
    /// `le`
    Le,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `neu`: not equal or unordered.
    Neu,
    /// `equ`: equal or unordered.
    Equ,
    /// `ltu`, `leu`, `gtu`, `geu`: the comparison or unordered.
    Ltu,
    /// `leu`
    Leu,
    /// `gtu`
    Gtu,
    /// `geu`
    Geu,
    /// `num`: both ordered.
    Num,
    /// `nan`: either NaN.
    Nan,
}

/// Rounding modifier of `cvt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rnd {
    /// None given.
    None,
    /// `.rn` (nearest even).
    Rn,
    /// `.rz` (toward zero).
    Rz,
    /// `.rzi` (integer toward zero).
    Rzi,
    /// `.rmi` (integer toward −∞).
    Rmi,
    /// `.rpi` (integer toward +∞).
    Rpi,
    /// `.rni` (integer, nearest even).
    Rni,
    /// `.rna` (nearest, ties away from zero; to tf32).
    Rna,
}

/// Arithmetic and logic with one result register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    /// `add`
    Add,
    /// `sub`
    Sub,
    /// `mul` (`.lo` for integers)
    Mul,
    /// `mul.wide` (32 × 32 → 64)
    MulWide,
    /// `mul.hi`
    MulHi,
    /// `mad.lo` / `fma.rn`
    Mad,
    /// `div`
    Div,
    /// `rem`
    Rem,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `neg`
    Neg,
    /// `abs`
    Abs,
    /// `sqrt.rn`
    Sqrt,
    /// `rsqrt.approx`
    Rsqrt,
    /// `ex2.approx`
    Ex2,
    /// `lg2.approx`
    Lg2,
    /// `rcp.rn`/`rcp.approx`
    Rcp,
    /// `copysign` (sign of the first source, magnitude of the second)
    Copysign,
    /// `and`
    And,
    /// `or`
    Or,
    /// `xor`
    Xor,
    /// `not`
    Not,
    /// `shl`
    Shl,
    /// `shr`
    Shr,
}

/// Memory space of a load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// `.global`
    Global,
    /// `.shared`
    Shared,
}

/// Reduction of `redux.sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redux {
    /// `.add`
    Add,
    /// `.min`
    Min,
    /// `.max`
    Max,
}

/// `shfl.sync` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shfl {
    /// `.idx`
    Idx,
    /// `.bfly`
    Bfly,
    /// `.up`
    Up,
    /// `.down`
    Down,
}

/// The A/B element format of an `mma.sync`: two halves or two bf16 per 32-bit register, or one
/// tf32 (an f32 whose low 13 mantissa bits are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmaElem {
    /// IEEE binary16, m16n8k16.
    F16,
    /// bfloat16, m16n8k16.
    Bf16,
    /// TensorFloat-32, m16n8k8.
    Tf32,
    /// Signed bytes (four per register), m16n8k32, s32 accumulation.
    S8,
    /// Unsigned bytes, likewise.
    U8,
}

/// A decoded instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `ld.param.u64 d, [pK]`
    LdParam { d: u32, k: u32 },
    /// `ld.space[.vN].ty {d…}, [addr]`
    Ld {
        space: Space,
        ty: Ty,
        d: Vec<u32>,
        addr: Addr,
    },
    /// `st.space[.vN].ty [addr], {a…}`
    St {
        space: Space,
        ty: Ty,
        addr: Addr,
        a: Vec<Operand>,
    },
    /// `mov.ty d, a` (also `cvta.to.global.u64`, an identity here).
    Mov { ty: Ty, d: u32, a: Operand },
    /// `mov.b32 d, {lo, hi}`: two 16-bit halves packed.
    Pack { d: u32, lo: Operand, hi: Operand },
    /// `mov.b32 {lo, hi}, a`: unpacked.
    Unpack { lo: u32, hi: u32, a: Operand },
    /// `selp.ty d, a, b, p`
    Selp {
        ty: Ty,
        d: u32,
        a: Operand,
        b: Operand,
        p: Operand,
    },
    /// `setp.cmp.ty d, a, b`
    Setp {
        cmp: Cmp,
        ty: Ty,
        d: u32,
        a: Operand,
        b: Operand,
    },
    /// ALU ops with up to three sources.
    Alu {
        alu: Alu,
        ty: Ty,
        d: u32,
        a: [Operand; 3],
        n: u8,
    },
    /// `cvt[.rnd].dst.src d, a`
    Cvt {
        rnd: Rnd,
        dst: Ty,
        src: Ty,
        d: u32,
        a: Operand,
    },
    /// `shfl.sync.mode.b32 d, a, b, c, mask`
    Shfl {
        mode: Shfl,
        d: u32,
        a: Operand,
        b: Operand,
        c: Operand,
        mask: Operand,
    },
    /// `redux.sync.op.ty d, a, mask`
    Redux {
        op: Redux,
        ty: Ty,
        d: u32,
        a: Operand,
        mask: Operand,
    },
    /// `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {d×4}, {a×4}, {b×2}, {c×4}`, the
    /// same with `bf16`, or `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32` (same register
    /// counts).
    Mma {
        elem: MmaElem,
        d: [u32; 4],
        a: [Operand; 4],
        b: [Operand; 2],
        c: [Operand; 4],
    },
    /// `ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 {d×n}, [addr]`: lane `8i + r`
    /// gives the address of row `r` of matrix `i`.
    Ldmatrix {
        trans: bool,
        d: Vec<u32>,
        addr: Addr,
    },
    /// `cp.async.{ca,cg}.shared.global [dst], [src], bytes`: the source is read at issue, the
    /// shared destination written only when a wait covers it (the latest moment the ISA
    /// allows, so a missing wait shows as stale data).
    CpAsync { dst: Addr, src: Addr, bytes: u32 },
    /// `cp.async.commit_group`: closes the thread's current group of copies.
    CpCommit,
    /// `cp.async.wait_group n` (`Some(n)`: all but the newest `n` committed groups land) or
    /// `cp.async.wait_all` (`None`: every copy, committed or not).
    CpWait(Option<u32>),
    /// `membar.cta`, `fence`: nothing to do here.
    Nop,
    /// `bar.sync 0`
    Bar,
    /// `bra L`
    Bra(usize),
    /// `ret` / `exit`
    Ret,
}

impl Op {
    /// Whether the whole warp executes it together.
    pub fn is_warp_collective(&self) -> bool {
        matches!(
            self,
            Op::Shfl { .. } | Op::Redux { .. } | Op::Mma { .. } | Op::Ldmatrix { .. }
        )
    }
}

/// One instruction with its guard and where it came from.
#[derive(Clone, Debug)]
pub struct Inst {
    /// `@p` / `@!p`: (register, negated).
    pub guard: Option<(u32, bool)>,
    /// What it does.
    pub op: Op,
    /// 1-based line in the module text.
    pub line: usize,
}

/// One parsed `.entry`.
#[derive(Clone, Debug)]
pub struct Module {
    /// The entry's name.
    pub name: String,
    /// Number of `.param .u64` parameters.
    pub params: usize,
    /// `.reqntid`, if declared.
    pub reqntid: Option<[u32; 3]>,
    /// Bytes of static shared memory (all arrays, 16-byte aligned each).
    pub shared_bytes: usize,
    /// The body.
    pub insts: Vec<Inst>,
    /// Register names by index (for messages).
    pub reg_names: Vec<String>,
    /// The module's source text.
    pub text: String,
}

impl Module {
    /// Parses a module optc's printer wrote.
    pub fn parse(text: &str) -> Result<Module, SimError> {
        Parser::default().module(text)
    }

    /// The source line of instruction `pc` (for messages).
    pub fn line_text(&self, pc: usize) -> String {
        let line = self.insts.get(pc).map_or(0, |i| i.line);
        self.text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

#[derive(Default)]
struct Parser {
    regs: BTreeMap<String, u32>,
    names: Vec<String>,
    shared: BTreeMap<String, usize>,
    line: usize,
}

fn strip_braces(s: &str) -> Option<&str> {
    s.strip_prefix('{')?.strip_suffix('}')
}

fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(s[start..].trim());
    }
    out
}

fn axis(s: &str) -> Option<u8> {
    match s {
        "x" => Some(0),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    }
}

impl Parser {
    fn err(&self, msg: impl Into<String>) -> SimError {
        SimError::Parse {
            line: self.line,
            msg: msg.into(),
        }
    }

    fn reg(&mut self, name: &str) -> u32 {
        if let Some(&r) = self.regs.get(name) {
            return r;
        }
        let r = self.names.len() as u32;
        self.regs.insert(name.to_string(), r);
        self.names.push(name.to_string());
        r
    }

    fn dest(&mut self, s: &str) -> Result<u32, SimError> {
        if s.starts_with('%') && !s.contains('.') && s != "%laneid" {
            Ok(self.reg(s))
        } else {
            Err(self.err(format!("destination '{s}' is not a register")))
        }
    }

    fn operand(&mut self, s: &str) -> Result<Operand, SimError> {
        if let Some(rest) = s.strip_prefix('%') {
            if rest == "laneid" {
                return Ok(Operand::Special(Special::LaneId));
            }
            if let Some((base, ax)) = rest.split_once('.') {
                let a = axis(ax).ok_or_else(|| self.err(format!("special register {s}")))?;
                let sp = match base {
                    "tid" => Special::Tid(a),
                    "ntid" => Special::Ntid(a),
                    "ctaid" => Special::Ctaid(a),
                    "nctaid" => Special::Nctaid(a),
                    _ => return Err(self.err(format!("special register {s}"))),
                };
                return Ok(Operand::Special(sp));
            }
            return Ok(Operand::Reg(self.reg(s)));
        }
        if let Some(name) = s.strip_prefix("sh$") {
            let off = self
                .shared
                .get(name)
                .ok_or_else(|| self.err(format!("undeclared shared array {s}")))?;
            return Ok(Operand::Imm(*off as u64));
        }
        if let Some(hex) = s.strip_prefix("0f").or_else(|| s.strip_prefix("0F")) {
            return u32::from_str_radix(hex, 16)
                .map(|v| Operand::Imm(u64::from(v)))
                .map_err(|_| self.err(format!("f32 immediate {s}")));
        }
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return u64::from_str_radix(hex, 16)
                .map(Operand::Imm)
                .map_err(|_| self.err(format!("hex immediate {s}")));
        }
        s.parse::<i64>()
            .map(|v| Operand::Imm(v as u64))
            .map_err(|_| self.err(format!("operand '{s}'")))
    }

    fn addr(&mut self, s: &str) -> Result<Addr, SimError> {
        let inner = s
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(|| self.err(format!("address '{s}'")))?
            .trim();
        if let Some(k) = inner.strip_prefix('p')
            && let Ok(k) = k.parse::<u32>()
        {
            return Ok(Addr::Param(k));
        }
        let (base, off) = match inner.split_once('+') {
            Some((b, o)) => (
                b.trim(),
                o.trim()
                    .parse::<i64>()
                    .map_err(|_| self.err(format!("address offset in '{s}'")))?,
            ),
            None => (inner, 0),
        };
        Ok(Addr::Based(self.operand(base)?, off))
    }

    fn module(mut self, text: &str) -> Result<Module, SimError> {
        let entry = text.find(".entry ").ok_or_else(|| self.err("no .entry"))?;
        let after = &text[entry + ".entry ".len()..];
        let name = after
            .split(['(', ' ', '\n'])
            .next()
            .unwrap_or("")
            .to_string();
        let mut params = 0;
        let mut reqntid = None;
        let mut insts = Vec::new();
        let mut labels: BTreeMap<String, usize> = BTreeMap::new();
        let mut branches: Vec<(usize, String)> = Vec::new();
        let mut shared_bytes = 0usize;
        let mut in_body = false;
        for (i, raw) in text.lines().enumerate() {
            self.line = i + 1;
            let line = raw.split("//").next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if !in_body {
                if line.starts_with(".param .u64") {
                    params += 1;
                } else if let Some(r) = line.strip_prefix(".reqntid") {
                    let v: Vec<u32> = r
                        .split(',')
                        .map(|x| x.trim().parse::<u32>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| self.err(format!("'{line}'")))?;
                    let mut d = [1u32; 3];
                    d[..v.len().min(3)].copy_from_slice(&v[..v.len().min(3)]);
                    reqntid = Some(d);
                } else if line == "{" {
                    in_body = true;
                }
                continue;
            }
            if line == "}" {
                break;
            }
            if let Some(decl) = line.strip_prefix(".shared") {
                // `.shared .align 16 .b8 sh$NAME[BYTES];`
                let decl = decl.trim().trim_end_matches(';');
                let sym = decl
                    .split_whitespace()
                    .last()
                    .ok_or_else(|| self.err("shared declaration"))?;
                let (nm, len) = sym
                    .strip_prefix("sh$")
                    .and_then(|s| s.split_once('['))
                    .ok_or_else(|| self.err(format!("shared declaration '{line}'")))?;
                let len: usize = len
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| self.err(format!("shared size in '{line}'")))?;
                shared_bytes = shared_bytes.next_multiple_of(16);
                self.shared.insert(nm.to_string(), shared_bytes);
                shared_bytes += len;
                continue;
            }
            if line.starts_with('.') {
                // .reg declarations: registers are created on first use.
                continue;
            }
            if let Some(l) = line.strip_suffix(':') {
                labels.insert(l.to_string(), insts.len());
                continue;
            }
            let stmt = line
                .strip_suffix(';')
                .ok_or_else(|| self.err(format!("'{line}' does not end with ';'")))?;
            let (guard, rest) = match stmt.strip_prefix('@') {
                Some(r) => {
                    let (g, rest) = r
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| self.err("guard without instruction"))?;
                    let neg = g.starts_with('!');
                    let reg = self.reg(g.trim_start_matches('!'));
                    (Some((reg, neg)), rest.trim())
                }
                None => (None, stmt),
            };
            let (opcode, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let args = split_args(args);
            let op = if opcode == "bra" || opcode == "bra.uni" {
                let target = args.first().ok_or_else(|| self.err("bra without label"))?;
                branches.push((insts.len(), target.to_string()));
                Op::Bra(usize::MAX)
            } else {
                self.inst(opcode, &args)?
            };
            insts.push(Inst {
                guard,
                op,
                line: self.line,
            });
        }
        for (at, l) in branches {
            let target = *labels.get(&l).ok_or_else(|| SimError::Parse {
                line: insts[at].line,
                msg: format!("branch to unknown label {l}"),
            })?;
            insts[at].op = Op::Bra(target);
        }
        Ok(Module {
            name,
            params,
            reqntid,
            shared_bytes,
            insts,
            reg_names: self.names,
            text: text.to_string(),
        })
    }

    fn unknown(&self, opcode: &str) -> SimError {
        SimError::Unknown {
            line: self.line,
            inst: opcode.to_string(),
        }
    }

    fn inst(&mut self, opcode: &str, a: &[&str]) -> Result<Op, SimError> {
        let parts: Vec<&str> = opcode.split('.').collect();
        let ty = || parts.last().and_then(|t| Ty::parse(t));
        let need = |n: usize, p: &Parser| {
            if a.len() == n {
                Ok(())
            } else {
                Err(p.err(format!("{opcode} takes {n} operands, got {}", a.len())))
            }
        };
        let op = match parts[0] {
            "ret" | "exit" => Op::Ret,
            "membar" | "fence" => Op::Nop,
            "bar" if parts.get(1) == Some(&"sync") || parts.get(1) == Some(&"cta") => Op::Bar,
            "cp" if opcode == "cp.async.wait_all" => Op::CpWait(None),
            "cp" if opcode == "cp.async.commit_group" => Op::CpCommit,
            "cp" if opcode == "cp.async.wait_group" => {
                need(1, self)?;
                let n = a[0]
                    .parse()
                    .map_err(|_| self.err(format!("cp.async.wait_group count '{}'", a[0])))?;
                Op::CpWait(Some(n))
            }
            "cp" if opcode.starts_with("cp.async.") => {
                need(3, self)?;
                let bytes = a[2]
                    .parse()
                    .ok()
                    .filter(|b| [4, 8, 16].contains(b))
                    .ok_or_else(|| self.err(format!("cp.async size '{}'", a[2])))?;
                Op::CpAsync {
                    dst: self.addr(a[0])?,
                    src: self.addr(a[1])?,
                    bytes,
                }
            }
            "ld" if parts.get(1) == Some(&"param") => {
                need(2, self)?;
                let d = self.dest(a[0])?;
                match self.addr(a[1])? {
                    Addr::Param(k) => Op::LdParam { d, k },
                    _ => return Err(self.err("ld.param of a non-parameter")),
                }
            }
            "ld" | "st" => {
                need(2, self)?;
                let space = match parts.get(1) {
                    Some(&"global") => Space::Global,
                    Some(&"shared") => Space::Shared,
                    _ => return Err(self.unknown(opcode)),
                };
                let ty = ty().ok_or_else(|| self.unknown(opcode))?;
                // Exactly `ld|st . space [. vN] . type`: a cache or ordering qualifier
                // (`.nc`, `.volatile`, `.relaxed`…) is outside the subset.
                let plain =
                    parts.len() == 3 || (parts.len() == 4 && matches!(parts[2], "v2" | "v4"));
                if !plain {
                    return Err(self.unknown(opcode));
                }
                let (regs, addr) = if parts[0] == "ld" {
                    (a[0], a[1])
                } else {
                    (a[1], a[0])
                };
                let lanes: Vec<&str> = match strip_braces(regs) {
                    Some(inner) => inner.split(',').map(str::trim).collect(),
                    None => vec![regs],
                };
                let vec_n = parts
                    .iter()
                    .find_map(|p| p.strip_prefix('v').and_then(|n| n.parse::<usize>().ok()))
                    .unwrap_or(1);
                if lanes.len() != vec_n || ![1, 2, 4].contains(&vec_n) {
                    return Err(self.err(format!("{opcode} with {} registers", lanes.len())));
                }
                let addr = self.addr(addr)?;
                if parts[0] == "ld" {
                    let d = lanes
                        .iter()
                        .map(|r| self.dest(r))
                        .collect::<Result<_, _>>()?;
                    Op::Ld { space, ty, d, addr }
                } else {
                    let a = lanes
                        .iter()
                        .map(|r| self.operand(r))
                        .collect::<Result<_, _>>()?;
                    Op::St { space, ty, addr, a }
                }
            }
            "cvta" => {
                need(2, self)?;
                Op::Mov {
                    ty: Ty::U64,
                    d: self.dest(a[0])?,
                    a: self.operand(a[1])?,
                }
            }
            "mov" => {
                need(2, self)?;
                let ty = ty().ok_or_else(|| self.unknown(opcode))?;
                if let Some(inner) = strip_braces(a[1]) {
                    let v: Vec<&str> = inner.split(',').map(str::trim).collect();
                    if v.len() != 2 || ty != Ty::B32 {
                        return Err(self.unknown(opcode));
                    }
                    Op::Pack {
                        d: self.dest(a[0])?,
                        lo: self.operand(v[0])?,
                        hi: self.operand(v[1])?,
                    }
                } else if let Some(inner) = strip_braces(a[0]) {
                    let v: Vec<&str> = inner.split(',').map(str::trim).collect();
                    if v.len() != 2 || ty != Ty::B32 {
                        return Err(self.unknown(opcode));
                    }
                    Op::Unpack {
                        lo: self.dest(v[0])?,
                        hi: self.dest(v[1])?,
                        a: self.operand(a[1])?,
                    }
                } else {
                    Op::Mov {
                        ty,
                        d: self.dest(a[0])?,
                        a: self.operand(a[1])?,
                    }
                }
            }
            "selp" => {
                need(4, self)?;
                Op::Selp {
                    ty: ty().ok_or_else(|| self.unknown(opcode))?,
                    d: self.dest(a[0])?,
                    a: self.operand(a[1])?,
                    b: self.operand(a[2])?,
                    p: self.operand(a[3])?,
                }
            }
            "setp" => {
                need(3, self)?;
                let cmp = match parts.get(1).copied() {
                    Some("eq") => Cmp::Eq,
                    Some("ne") => Cmp::Ne,
                    Some("lt") => Cmp::Lt,
                    Some("le") => Cmp::Le,
                    Some("gt") => Cmp::Gt,
                    Some("ge") => Cmp::Ge,
                    Some("neu") => Cmp::Neu,
                    Some("equ") => Cmp::Equ,
                    Some("ltu") => Cmp::Ltu,
                    Some("leu") => Cmp::Leu,
                    Some("gtu") => Cmp::Gtu,
                    Some("geu") => Cmp::Geu,
                    Some("num") => Cmp::Num,
                    Some("nan") => Cmp::Nan,
                    _ => return Err(self.unknown(opcode)),
                };
                Op::Setp {
                    cmp,
                    ty: ty().ok_or_else(|| self.unknown(opcode))?,
                    d: self.dest(a[0])?,
                    a: self.operand(a[1])?,
                    b: self.operand(a[2])?,
                }
            }
            "cvt" => {
                need(2, self)?;
                let n = parts.len();
                if n < 3 {
                    return Err(self.unknown(opcode));
                }
                let dst = Ty::parse(parts[n - 2]).ok_or_else(|| self.unknown(opcode))?;
                let src = Ty::parse(parts[n - 1]).ok_or_else(|| self.unknown(opcode))?;
                let rnd = match &parts[1..n - 2] {
                    [] => Rnd::None,
                    ["rn"] => Rnd::Rn,
                    ["rz"] => Rnd::Rz,
                    ["rzi"] => Rnd::Rzi,
                    ["rmi"] => Rnd::Rmi,
                    ["rpi"] => Rnd::Rpi,
                    ["rni"] => Rnd::Rni,
                    ["rna"] => Rnd::Rna,
                    _ => return Err(self.unknown(opcode)),
                };
                Op::Cvt {
                    rnd,
                    dst,
                    src,
                    d: self.dest(a[0])?,
                    a: self.operand(a[1])?,
                }
            }
            "shfl" => {
                need(5, self)?;
                let mode = match parts.get(2).copied() {
                    Some("idx") => Shfl::Idx,
                    Some("bfly") => Shfl::Bfly,
                    Some("up") => Shfl::Up,
                    Some("down") => Shfl::Down,
                    _ => return Err(self.unknown(opcode)),
                };
                if parts.get(1) != Some(&"sync") || ty() != Some(Ty::B32) {
                    return Err(self.unknown(opcode));
                }
                Op::Shfl {
                    mode,
                    d: self.dest(a[0])?,
                    a: self.operand(a[1])?,
                    b: self.operand(a[2])?,
                    c: self.operand(a[3])?,
                    mask: self.operand(a[4])?,
                }
            }
            "redux" => {
                need(3, self)?;
                let op = match parts.get(2).copied() {
                    Some("add") => Redux::Add,
                    Some("min") => Redux::Min,
                    Some("max") => Redux::Max,
                    _ => return Err(self.unknown(opcode)),
                };
                Op::Redux {
                    op,
                    ty: ty().ok_or_else(|| self.unknown(opcode))?,
                    d: self.dest(a[0])?,
                    a: self.operand(a[1])?,
                    mask: self.operand(a[2])?,
                }
            }
            "ldmatrix" => {
                let (n, trans) = match opcode {
                    "ldmatrix.sync.aligned.m8n8.x1.shared.b16" => (1, false),
                    "ldmatrix.sync.aligned.m8n8.x2.shared.b16" => (2, false),
                    "ldmatrix.sync.aligned.m8n8.x4.shared.b16" => (4, false),
                    "ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16" => (1, true),
                    "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16" => (2, true),
                    "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" => (4, true),
                    _ => return Err(self.unknown(opcode)),
                };
                need(2, self)?;
                let d: Vec<u32> = strip_braces(a[0])
                    .ok_or_else(|| self.err("ldmatrix destination"))?
                    .split(',')
                    .map(|r| self.dest(r.trim()))
                    .collect::<Result<_, _>>()?;
                if d.len() != n {
                    return Err(self.err(format!("ldmatrix .x{n} into {} registers", d.len())));
                }
                Op::Ldmatrix {
                    trans,
                    d,
                    addr: self.addr(a[1])?,
                }
            }
            "mma" => {
                let elem = match opcode {
                    "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" => MmaElem::F16,
                    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" => MmaElem::Bf16,
                    "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" => MmaElem::Tf32,
                    "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32" => MmaElem::S8,
                    "mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32" => MmaElem::U8,
                    _ => return Err(self.unknown(opcode)),
                };
                need(4, self)?;
                let list = |p: &mut Parser, s: &str, n: usize| -> Result<Vec<Operand>, SimError> {
                    let inner = strip_braces(s).ok_or_else(|| p.err(format!("mma operand {s}")))?;
                    let v: Vec<&str> = inner.split(',').map(str::trim).collect();
                    if v.len() != n {
                        return Err(p.err(format!("mma operand {s}: {n} registers expected")));
                    }
                    v.iter().map(|r| p.operand(r)).collect()
                };
                let d: Vec<u32> = strip_braces(a[0])
                    .ok_or_else(|| self.err("mma destination"))?
                    .split(',')
                    .map(|r| self.dest(r.trim()))
                    .collect::<Result<_, _>>()?;
                let am = list(self, a[1], 4)?;
                let bm = list(self, a[2], 2)?;
                let cm = list(self, a[3], 4)?;
                Op::Mma {
                    elem,
                    d: d.try_into()
                        .map_err(|_| self.err("mma: 4 destination registers expected"))?,
                    a: [am[0], am[1], am[2], am[3]],
                    b: [bm[0], bm[1]],
                    c: [cm[0], cm[1], cm[2], cm[3]],
                }
            }
            name => {
                let alu = match name {
                    "add" => Alu::Add,
                    "sub" => Alu::Sub,
                    "mul" if parts.get(1) == Some(&"wide") => Alu::MulWide,
                    "mul" if parts.get(1) == Some(&"hi") => Alu::MulHi,
                    "mul" => Alu::Mul,
                    "mad" | "fma" => Alu::Mad,
                    "div" => Alu::Div,
                    "rem" => Alu::Rem,
                    "min" => Alu::Min,
                    "max" => Alu::Max,
                    "neg" => Alu::Neg,
                    "abs" => Alu::Abs,
                    "sqrt" => Alu::Sqrt,
                    "rsqrt" => Alu::Rsqrt,
                    "ex2" => Alu::Ex2,
                    "lg2" => Alu::Lg2,
                    "rcp" => Alu::Rcp,
                    "copysign" => Alu::Copysign,
                    "and" => Alu::And,
                    "or" => Alu::Or,
                    "xor" => Alu::Xor,
                    "not" => Alu::Not,
                    "shl" => Alu::Shl,
                    "shr" => Alu::Shr,
                    _ => return Err(self.unknown(opcode)),
                };
                // Only the modifiers the printer writes: anything else (`.ftz`, `.sat`,
                // `.approx` on add…) would change the semantics silently.
                let ok_mods: &[&str] = match alu {
                    Alu::Add | Alu::Sub | Alu::Mul | Alu::Div | Alu::Sqrt | Alu::Mad => {
                        &["rn", "lo", "wide", "hi"]
                    }
                    Alu::Rsqrt | Alu::Ex2 | Alu::Lg2 | Alu::Rcp => &["approx", "rn"],
                    Alu::MulWide => &["wide"],
                    Alu::MulHi => &["hi"],
                    _ => &[],
                };
                if parts[1..parts.len() - 1]
                    .iter()
                    .any(|m| !ok_mods.contains(m))
                {
                    return Err(self.unknown(opcode));
                }
                let ty = ty().ok_or_else(|| self.unknown(opcode))?;
                let n = a.len().saturating_sub(1);
                if !(1..=3).contains(&n) {
                    return Err(self.err(format!("{opcode} with {} operands", a.len())));
                }
                let d = self.dest(a[0])?;
                let mut srcs = [Operand::Imm(0); 3];
                for (k, s) in a[1..].iter().enumerate() {
                    srcs[k] = self.operand(s)?;
                }
                Op::Alu {
                    alu,
                    ty,
                    d,
                    a: srcs,
                    n: n as u8,
                }
            }
        };
        Ok(op)
    }
}
