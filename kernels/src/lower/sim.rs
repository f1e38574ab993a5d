//! A test-only executor of the kernel IR on the CPU, shared by the template families' unit
//! tests, used to check kernels against
//! the reference interpreter before a device backend exists. Kernels without barriers run their
//! invocations one after another; kernels with barriers or subgroup operations run each
//! workgroup's invocations as OS threads meeting at a barrier that exited invocations leave.
//! Subgroups are [`SUBGROUP`] consecutive local invocations (lavapipe's size, the smallest the
//! templates accept); a subgroup operation is an exchange among the subgroup's live
//! invocations: each deposits its value, they meet, each reads what it needs, they meet again.
//! Lowered ops run end to end through [`run_op`].

use crate::ir::{Access, BinOp, Builtin, Expr, Kernel, Scalar, Stmt, SubgroupOp, UnOp};
use crate::lower::{Arg, LowerCtx, TensorDesc, lower, storage_scalar};
use optc_ir::ops::Op;
use optc_ir::tensor::Tensor;
use std::sync::{Condvar, Mutex};

/// One lane value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum S {
    F(f32),
    I(i32),
    U(u32),
    B(bool),
}

impl S {
    fn f(self) -> f32 {
        match self {
            S::F(v) => v,
            S::I(v) => v as f32,
            S::U(v) => v as f32,
            S::B(v) => v as u8 as f32,
        }
    }
    fn i(self) -> i32 {
        match self {
            S::F(v) => v as i32,
            S::I(v) => v,
            S::U(v) => v as i32,
            S::B(v) => v as i32,
        }
    }
    fn u(self) -> u32 {
        match self {
            S::F(v) => v as u32,
            S::I(v) => v as u32,
            S::U(v) => v,
            S::B(v) => v as u32,
        }
    }
    fn b(self) -> bool {
        match self {
            S::B(v) => v,
            _ => panic!("not a bool: {self:?}"),
        }
    }
    fn bits(self) -> u32 {
        match self {
            S::F(v) => v.to_bits(),
            S::I(v) => v as u32,
            S::U(v) => v,
            S::B(v) => v as u32,
        }
    }
}

type V = Vec<S>;

struct Bar {
    state: Mutex<(usize, usize, usize)>, // (alive, arrived, generation)
    cv: Condvar,
}

impl Bar {
    fn wait(&self) {
        let mut g = self.state.lock().unwrap();
        let gen0 = g.2;
        g.1 += 1;
        if g.1 >= g.0 {
            g.1 = 0;
            g.2 += 1;
            self.cv.notify_all();
            return;
        }
        while g.2 == gen0 {
            g = self.cv.wait(g).unwrap();
        }
    }
    fn leave(&self) {
        let mut g = self.state.lock().unwrap();
        g.0 -= 1;
        if g.1 > 0 && g.1 >= g.0 {
            g.1 = 0;
            g.2 += 1;
            self.cv.notify_all();
        }
    }
}

/// Lanes per subgroup in the simulator.
pub const SUBGROUP: u32 = 8;

/// One subgroup's exchange: a barrier among its live invocations and a value slot per lane.
struct Sub {
    bar: Bar,
    slots: Mutex<Vec<Option<V>>>,
}

struct Mem<'a> {
    bufs: &'a Mutex<Vec<Vec<S>>>,
    shared: &'a Mutex<Vec<Vec<S>>>,
    bar: Option<&'a Bar>,
    subs: &'a [Sub],
}

struct Inv<'k, 'a> {
    k: &'k Kernel,
    mem: &'a Mem<'a>,
    locals: Vec<Option<V>>,
    lid: [u32; 3],
    wid: [u32; 3],
    grid: [u32; 3],
}

enum Flow {
    Next,
    Break,
    Return,
}

fn has_barrier(s: &[Stmt]) -> bool {
    s.iter().any(|s| match s {
        Stmt::Barrier(_) => true,
        Stmt::If { then, els, .. } => has_barrier(then) || has_barrier(els),
        Stmt::For { body, .. } => has_barrier(body),
        _ => false,
    })
}

/// Runs `k` over `grid` on `bufs` (one flat lane vector per binding).
pub fn run(k: &Kernel, grid: [u32; 3], bufs: Vec<Vec<S>>) -> Vec<Vec<S>> {
    let bufs = Mutex::new(bufs);
    let wg = k.workgroup;
    let threads = (wg[0] * wg[1] * wg[2]) as usize;
    let sync = has_barrier(&k.body) || k.uses_subgroups();
    for wz in 0..grid[2] {
        for wy in 0..grid[1] {
            for wx in 0..grid[0] {
                let shared = Mutex::new(
                    k.shared
                        .iter()
                        .map(|s| vec![zero(s.elem.scalar); (s.len * s.elem.lanes as u32) as usize])
                        .collect(),
                );
                let bar = Bar {
                    state: Mutex::new((threads, 0, 0)),
                    cv: Condvar::new(),
                };
                let subs: Vec<Sub> = (0..threads.div_ceil(SUBGROUP as usize))
                    .map(|g| {
                        let live = (threads - g * SUBGROUP as usize).min(SUBGROUP as usize);
                        Sub {
                            bar: Bar {
                                state: Mutex::new((live, 0, 0)),
                                cv: Condvar::new(),
                            },
                            slots: Mutex::new(vec![None; SUBGROUP as usize]),
                        }
                    })
                    .collect();
                let mem = Mem {
                    bufs: &bufs,
                    shared: &shared,
                    bar: sync.then_some(&bar),
                    subs: &subs,
                };
                let lids: Vec<[u32; 3]> = (0..threads as u32)
                    .map(|t| [t % wg[0], (t / wg[0]) % wg[1], t / (wg[0] * wg[1])])
                    .collect();
                let go = |lid: [u32; 3]| {
                    let mut inv = Inv {
                        k,
                        mem: &mem,
                        locals: vec![None; k.locals.len()],
                        lid,
                        wid: [wx, wy, wz],
                        grid,
                    };
                    inv.block(&k.body);
                    if let Some(b) = mem.bar {
                        b.leave();
                        let (sg, _) = inv.subgroup();
                        mem.subs[sg].bar.leave();
                    }
                };
                if sync {
                    std::thread::scope(|s| {
                        for &lid in &lids {
                            s.spawn(move || go(lid));
                        }
                    });
                } else {
                    for &lid in &lids {
                        go(lid);
                    }
                }
            }
        }
    }
    bufs.into_inner().unwrap()
}

fn zero(s: Scalar) -> S {
    match s {
        Scalar::F32 | Scalar::F16 => S::F(0.0),
        Scalar::I32 => S::I(0),
        Scalar::U32 => S::U(0),
        Scalar::Bool => S::B(false),
    }
}

fn conv(s: Scalar, v: S) -> S {
    match s {
        Scalar::F32 => S::F(v.f()),
        Scalar::F16 => S::F(half::f16::from_f32(v.f()).to_f32()),
        Scalar::I32 => S::I(v.i()),
        Scalar::U32 => S::U(v.u()),
        Scalar::Bool => S::B(match v {
            S::F(x) => x != 0.0,
            S::I(x) => x != 0,
            S::U(x) => x != 0,
            S::B(x) => x,
        }),
    }
}

impl Inv<'_, '_> {
    fn local_index(&self) -> u32 {
        let wg = self.k.workgroup;
        self.lid[0] + wg[0] * (self.lid[1] + wg[1] * self.lid[2])
    }

    /// (subgroup within the workgroup, lane within the subgroup).
    fn subgroup(&self) -> (usize, usize) {
        let l = self.local_index();
        ((l / SUBGROUP) as usize, (l % SUBGROUP) as usize)
    }

    /// A subgroup operation: deposit `v`, meet the subgroup's live lanes, compute, meet again.
    fn exchange(&mut self, op: SubgroupOp, v: V, src: Option<u32>) -> V {
        let (sg, lane) = self.subgroup();
        let sub = &self.mem.subs[sg];
        sub.slots.lock().unwrap()[lane] = Some(v);
        sub.bar.wait();
        let r = {
            let slots = sub.slots.lock().unwrap();
            match op {
                SubgroupOp::Shuffle | SubgroupOp::Broadcast => {
                    let s = src.expect("shuffle lane") as usize;
                    slots
                        .get(s)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| panic!("{}: lane {s} is not active", self.k.name))
                }
                SubgroupOp::Add | SubgroupOp::Max | SubgroupOp::Min => {
                    let bop = match op {
                        SubgroupOp::Add => BinOp::Add,
                        SubgroupOp::Max => BinOp::Max,
                        _ => BinOp::Min,
                    };
                    slots
                        .iter()
                        .flatten()
                        .cloned()
                        .reduce(|a, b| {
                            a.into_iter()
                                .zip(b)
                                .map(|(x, y)| binary(bop, x, y))
                                .collect()
                        })
                        .expect("own lane")
                }
            }
        };
        sub.bar.wait();
        sub.slots.lock().unwrap()[lane] = None;
        r
    }

    fn block(&mut self, body: &[Stmt]) -> Flow {
        for s in body {
            match self.stmt(s) {
                Flow::Next => {}
                f => return f,
            }
        }
        Flow::Next
    }

    fn stmt(&mut self, s: &Stmt) -> Flow {
        match s {
            Stmt::Let(v, e) | Stmt::Assign(v, e) => {
                let x = self.eval(e);
                let t = self.k.locals[v.0 as usize];
                assert_eq!(
                    x.len(),
                    t.lanes as usize,
                    "{}: lanes of v{}",
                    self.k.name,
                    v.0
                );
                self.locals[v.0 as usize] =
                    Some(x.into_iter().map(|l| conv(t.scalar, l)).collect());
            }
            Stmt::Store { buf, index, value } => {
                let b = &self.k.buffers[*buf as usize];
                assert_eq!(b.access, Access::ReadWrite);
                let idx = self.eval(index)[0].i();
                let x = self.eval(value);
                let l = b.elem.lanes as usize;
                assert_eq!(x.len(), l);
                let mut bufs = self.mem.bufs.lock().unwrap();
                let dst = &mut bufs[*buf as usize];
                assert!(
                    idx >= 0 && (idx as usize + 1) * l <= dst.len(),
                    "{}: store {idx} out of range",
                    self.k.name
                );
                for (j, v) in x.into_iter().enumerate() {
                    dst[idx as usize * l + j] = conv(b.elem.scalar, v);
                }
            }
            Stmt::StoreShared { arr, index, value } => {
                let a = &self.k.shared[*arr as usize];
                let idx = self.eval(index)[0].i();
                let x = self.eval(value);
                let l = a.elem.lanes as usize;
                let mut sh = self.mem.shared.lock().unwrap();
                let dst = &mut sh[*arr as usize];
                assert!(idx >= 0 && (idx as usize + 1) * l <= dst.len());
                for (j, v) in x.into_iter().enumerate() {
                    dst[idx as usize * l + j] = conv(a.elem.scalar, v);
                }
            }
            Stmt::If { cond, then, els } => {
                let c = self.eval(cond)[0].b();
                return self.block(if c { then } else { els });
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
                ..
            } => {
                let mut k = self.eval(start)[0].i();
                loop {
                    self.locals[var.0 as usize] = Some(vec![S::I(k)]);
                    let e = self.eval(end)[0].i();
                    if k >= e {
                        break;
                    }
                    match self.block(body) {
                        Flow::Next => {}
                        Flow::Break => break,
                        Flow::Return => return Flow::Return,
                    }
                    k += step;
                }
            }
            Stmt::Break => return Flow::Break,
            Stmt::Return => return Flow::Return,
            Stmt::Barrier(_) => {
                if let Some(b) = self.mem.bar {
                    b.wait();
                }
            }
            other => panic!("sim: unsupported statement {other:?}"),
        }
        Flow::Next
    }

    fn eval(&mut self, e: &Expr) -> V {
        match e {
            Expr::F32(v) | Expr::F16(v) => vec![S::F(*v)],
            Expr::I32(v) => vec![S::I(*v)],
            Expr::U32(v) => vec![S::U(*v)],
            Expr::Bool(v) => vec![S::B(*v)],
            Expr::Var(v) => self.locals[v.0 as usize]
                .clone()
                .unwrap_or_else(|| panic!("{}: v{} read before its Let", self.k.name, v.0)),
            Expr::Builtin(b) => {
                let wg = self.k.workgroup;
                let v = match b {
                    Builtin::GlobalId(a) => {
                        self.wid[*a as usize] * wg[*a as usize] + self.lid[*a as usize]
                    }
                    Builtin::LocalId(a) => self.lid[*a as usize],
                    Builtin::LocalIndex => self.local_index(),
                    Builtin::WorkgroupId(a) => self.wid[*a as usize],
                    Builtin::NumWorkgroups(a) => self.grid[*a as usize],
                    Builtin::SubgroupLane => self.subgroup().1 as u32,
                    Builtin::SubgroupSize => SUBGROUP,
                };
                vec![S::U(v)]
            }
            Expr::Load { buf, index } => {
                let b = &self.k.buffers[*buf as usize];
                let idx = self.eval(index)[0].i();
                let l = b.elem.lanes as usize;
                let bufs = self.mem.bufs.lock().unwrap();
                let src = &bufs[*buf as usize];
                assert!(
                    idx >= 0 && (idx as usize + 1) * l <= src.len(),
                    "{}: load {idx} of buffer {} out of range ({})",
                    self.k.name,
                    b.name,
                    src.len()
                );
                src[idx as usize * l..(idx as usize + 1) * l].to_vec()
            }
            Expr::LoadShared { arr, index } => {
                let a = &self.k.shared[*arr as usize];
                let idx = self.eval(index)[0].i();
                let l = a.elem.lanes as usize;
                let sh = self.mem.shared.lock().unwrap();
                sh[*arr as usize][idx as usize * l..(idx as usize + 1) * l].to_vec()
            }
            Expr::Unary(op, x) => {
                let x = self.eval(x);
                x.into_iter().map(|v| unary(*op, v)).collect()
            }
            Expr::Binary(op, a, b) => {
                let a = self.eval(a);
                let b = self.eval(b);
                assert_eq!(a.len(), b.len(), "{}: lanes of {op:?}", self.k.name);
                a.into_iter()
                    .zip(b)
                    .map(|(x, y)| binary(*op, x, y))
                    .collect()
            }
            Expr::Select { cond, t, f } => {
                let c = self.eval(cond);
                let t = self.eval(t);
                let f = self.eval(f);
                (0..t.len())
                    .map(|j| {
                        if c[j.min(c.len() - 1)].b() {
                            t[j]
                        } else {
                            f[j]
                        }
                    })
                    .collect()
            }
            Expr::Fma(a, b, c) => {
                let (a, b, c) = (self.eval(a), self.eval(b), self.eval(c));
                (0..a.len())
                    .map(|j| S::F(a[j].f().mul_add(b[j].f(), c[j].f())))
                    .collect()
            }
            Expr::Cast(s, x) => self.eval(x).into_iter().map(|v| conv(*s, v)).collect(),
            Expr::Bitcast(s, x) => self
                .eval(x)
                .into_iter()
                .map(|v| {
                    let b = v.bits();
                    match s {
                        Scalar::F32 => S::F(f32::from_bits(b)),
                        Scalar::I32 => S::I(b as i32),
                        _ => S::U(b),
                    }
                })
                .collect(),
            Expr::Vector(xs) => xs.iter().map(|x| self.eval(x)[0]).collect(),
            Expr::Splat(n, x) => vec![self.eval(x)[0]; *n as usize],
            Expr::Lane(x, j) => vec![self.eval(x)[*j as usize]],
            Expr::Subgroup { op, value, lane } => {
                let v = self.eval(value);
                let src = lane.as_ref().map(|l| self.eval(l)[0].u());
                self.exchange(*op, v, src)
            }
        }
    }
}

fn unary(op: UnOp, v: S) -> S {
    match v {
        S::F(x) => match op {
            UnOp::Neg => S::F(-x),
            UnOp::Abs => S::F(x.abs()),
            UnOp::Exp => S::F(x.exp()),
            UnOp::Log => S::F(x.ln()),
            UnOp::Sqrt => S::F(x.sqrt()),
            UnOp::InverseSqrt => S::F(1.0 / x.sqrt()),
            UnOp::Sin => S::F(x.sin()),
            UnOp::Cos => S::F(x.cos()),
            UnOp::Tan => S::F(x.tan()),
            UnOp::Asin => S::F(x.asin()),
            UnOp::Acos => S::F(x.acos()),
            UnOp::Atan => S::F(x.atan()),
            UnOp::Sinh => S::F(x.sinh()),
            UnOp::Cosh => S::F(x.cosh()),
            UnOp::Asinh => S::F(x.asinh()),
            UnOp::Acosh => S::F(x.acosh()),
            UnOp::Atanh => S::F(x.atanh()),
            UnOp::Tanh => S::F(x.tanh()),
            UnOp::Floor => S::F(x.floor()),
            UnOp::Ceil => S::F(x.ceil()),
            UnOp::Round => S::F(x.round_ties_even()),
            UnOp::Trunc => S::F(x.trunc()),
            UnOp::Sign => S::F(if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }),
            UnOp::IsNan => S::B(x.is_nan()),
            UnOp::IsInf => S::B(x.is_infinite()),
            _ => panic!("sim: unary {op:?} on f32"),
        },
        S::I(x) => match op {
            UnOp::Neg => S::I(x.wrapping_neg()),
            UnOp::Abs => S::I(x.wrapping_abs()),
            UnOp::Not => S::I(!x),
            UnOp::Sign => S::I(x.signum()),
            _ => panic!("sim: unary {op:?} on i32"),
        },
        S::U(x) => match op {
            UnOp::Not => S::U(!x),
            _ => panic!("sim: unary {op:?} on u32"),
        },
        S::B(x) => match op {
            UnOp::Not => S::B(!x),
            _ => panic!("sim: unary {op:?} on bool"),
        },
    }
}

fn binary(op: BinOp, a: S, b: S) -> S {
    use BinOp::*;
    match (a, b) {
        (S::F(x), S::F(y)) => match op {
            Add => S::F(x + y),
            Sub => S::F(x - y),
            Mul => S::F(x * y),
            Div => S::F(x / y),
            Rem => S::F(x % y),
            Min => S::F(x.min(y)),
            Max => S::F(x.max(y)),
            Pow => S::F(x.powf(y)),
            Eq => S::B(x == y),
            Ne => S::B(x != y),
            Lt => S::B(x < y),
            Le => S::B(x <= y),
            Gt => S::B(x > y),
            Ge => S::B(x >= y),
            _ => panic!("sim: {op:?} on f32"),
        },
        (S::I(x), S::I(y)) => match op {
            Add => S::I(x.wrapping_add(y)),
            Sub => S::I(x.wrapping_sub(y)),
            Mul => S::I(x.wrapping_mul(y)),
            Div => S::I(if y == 0 { x } else { x.wrapping_div(y) }),
            Rem => S::I(if y == 0 { 0 } else { x.wrapping_rem(y) }),
            Min => S::I(x.min(y)),
            Max => S::I(x.max(y)),
            Eq => S::B(x == y),
            Ne => S::B(x != y),
            Lt => S::B(x < y),
            Le => S::B(x <= y),
            Gt => S::B(x > y),
            Ge => S::B(x >= y),
            And => S::I(x & y),
            Or => S::I(x | y),
            Xor => S::I(x ^ y),
            _ => panic!("sim: {op:?} on i32"),
        },
        (S::I(x), S::U(y)) => match op {
            Shl => S::I(x.wrapping_shl(y)),
            Shr => S::I(x.wrapping_shr(y)),
            _ => panic!("sim: {op:?} on i32, u32"),
        },
        (S::U(x), S::U(y)) => match op {
            Add => S::U(x.wrapping_add(y)),
            Sub => S::U(x.wrapping_sub(y)),
            Mul => S::U(x.wrapping_mul(y)),
            Div => S::U(x.checked_div(y).unwrap_or(x)),
            Rem => S::U(if y == 0 { 0 } else { x % y }),
            Min => S::U(x.min(y)),
            Max => S::U(x.max(y)),
            Eq => S::B(x == y),
            Ne => S::B(x != y),
            Lt => S::B(x < y),
            Le => S::B(x <= y),
            Gt => S::B(x > y),
            Ge => S::B(x >= y),
            And => S::U(x & y),
            Or => S::U(x | y),
            Xor => S::U(x ^ y),
            Shl => S::U(x.wrapping_shl(y)),
            Shr => S::U(x.wrapping_shr(y)),
            _ => panic!("sim: {op:?} on u32"),
        },
        (S::B(x), S::B(y)) => match op {
            And => S::B(x && y),
            Or => S::B(x || y),
            Xor | Ne => S::B(x != y),
            Eq => S::B(x == y),
            _ => panic!("sim: {op:?} on bool"),
        },
        _ => panic!("sim: {op:?} on mismatched {a:?}, {b:?}"),
    }
}

fn to_lanes(t: &Tensor) -> Vec<S> {
    if t.dtype().is_lowp() {
        // One code per element (see `lower::lowp`).
        return t.bytes().iter().map(|&c| S::U(c as u32)).collect();
    }
    let s = storage_scalar(t.dtype()).expect("storable dtype");
    match s {
        Scalar::F32 | Scalar::F16 => t.to_f64_vec().into_iter().map(|v| S::F(v as f32)).collect(),
        Scalar::I32 => t.to_i64_vec().into_iter().map(|v| S::I(v as i32)).collect(),
        _ => t.to_i64_vec().into_iter().map(|v| S::U(v as u32)).collect(),
    }
}

fn from_lanes(d: &TensorDesc, v: &[S]) -> Tensor {
    let shape = d.shape.clone();
    if d.dtype.is_lowp() {
        let codes = v.iter().map(|x| x.u() as u8).collect();
        return Tensor::from_codes(d.dtype, shape, codes).expect("codes");
    }
    let t = match storage_scalar(d.dtype).expect("storable dtype") {
        Scalar::F32 | Scalar::F16 => {
            Tensor::from_vec(shape, v.iter().map(|x| x.f()).collect::<Vec<f32>>())
        }
        Scalar::I32 => {
            Tensor::from_vec(shape, v.iter().map(|x| x.i() as i64).collect::<Vec<i64>>())
        }
        _ => Tensor::from_vec(shape, v.iter().map(|x| x.u() as i64).collect::<Vec<i64>>()),
    };
    t.expect("tensor").cast(d.dtype)
}

/// The descriptors of optional tensors (a lowering's `inputs`).
pub fn descs(ts: &[Option<Tensor>]) -> Vec<Option<TensorDesc>> {
    ts.iter()
        .map(|t| {
            t.as_ref()
                .map(|t| TensorDesc::new(t.dtype(), t.shape().to_vec()))
        })
        .collect()
}

/// Lowers `op` for `inputs` (the ones in `consts` also known at compile time), runs the
/// launches, and returns the outputs the reference interpreter also produces, with the
/// reference's.
pub fn run_op(op: &Op, inputs: &[Option<Tensor>], consts: &[usize]) -> (Vec<Tensor>, Vec<Tensor>) {
    run_op_n(op, inputs, consts, 3)
}

/// Like [`run_op`] for an op with `num_outputs` output slots.
pub fn run_op_n(
    op: &Op,
    inputs: &[Option<Tensor>],
    consts: &[usize],
    num_outputs: usize,
) -> (Vec<Tensor>, Vec<Tensor>) {
    run_op_for(op, inputs, consts, num_outputs, Default::default())
}

/// Like [`run_op_n`], lowered for a target with `features`.
pub fn run_op_for(
    op: &Op,
    inputs: &[Option<Tensor>],
    consts: &[usize],
    num_outputs: usize,
    features: crate::lower::Features,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let mut want = optc_ir::interp::eval_op(op, inputs, num_outputs).expect("reference eval");
    // The reference may compute optional outputs too; only the first `num_outputs` are bound,
    // so a lowering sees them as unused (LayerNorm without its statistics).
    want.truncate(num_outputs);
    let descs = descs(inputs);
    let values: Vec<Option<&Tensor>> = inputs
        .iter()
        .enumerate()
        .map(|(k, t)| {
            if consts.contains(&k) {
                t.as_ref()
            } else {
                None
            }
        })
        .collect();
    let outs: Vec<Option<TensorDesc>> = want
        .iter()
        .map(|t| Some(TensorDesc::new(t.dtype(), t.shape().to_vec())))
        .collect();
    let ctx = LowerCtx {
        op,
        name: "n0",
        inputs: &descs,
        values: &values,
        outputs: &outs,
        features,
    };
    let lowered = lower(&ctx).unwrap_or_else(|e| panic!("lower: {e}"));
    for l in &lowered.launches {
        typecheck(&l.kernel);
    }
    let mut in_bufs: Vec<Vec<S>> = inputs
        .iter()
        .map(|t| t.as_ref().map(to_lanes).unwrap_or_default())
        .collect();
    let mut out_bufs: Vec<Vec<S>> = outs
        .iter()
        .map(|d| {
            let d = d.as_ref().expect("desc");
            vec![S::F(f32::NAN); d.numel()]
        })
        .collect();
    let mut temps: Vec<Vec<S>> = lowered
        .temps
        .iter()
        .map(|d| vec![S::F(f32::NAN); d.numel()])
        .collect();
    for &(o, i) in &lowered.aliases {
        out_bufs[o] = in_bufs[i].clone();
    }
    for l in &lowered.launches {
        let bufs: Vec<Vec<S>> = l
            .args
            .iter()
            .map(|a| match a {
                Arg::Input(k) => in_bufs[*k].clone(),
                Arg::Output(k) => out_bufs[*k].clone(),
                Arg::Temp(k) => temps[*k].clone(),
            })
            .collect();
        assert!(l.kernel.buffers.len() <= 8, "more than 8 bindings");
        let res = run(&l.kernel, l.grid, bufs);
        for (a, v) in l.args.iter().zip(res) {
            match a {
                Arg::Input(k) => in_bufs[*k] = v,
                Arg::Output(k) => out_bufs[*k] = v,
                Arg::Temp(k) => temps[*k] = v,
            }
        }
    }
    let got = outs
        .iter()
        .zip(&out_bufs)
        .map(|(d, v)| from_lanes(d.as_ref().expect("desc"), v))
        .collect();
    (got, want)
}

/// Asserts `got` matches `want` within rtol 1e-3, atol 1e-6 (NaN matches NaN).
pub fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 + 1e-3 * b.abs();
        assert!(ok, "{what}: element {k}: got {a}, want {b}");
    }
}

/// Asserts that every local, store, operand pair and load index of `k` is consistently typed
/// (what the WGSL printer and naga will demand).
pub fn typecheck(k: &Kernel) {
    use crate::ir::Type;
    fn expr(k: &Kernel, e: &Expr) -> Type {
        let t = k.type_of(e).unwrap_or_else(|err| panic!("{err}"));
        match e {
            Expr::Load { index, .. } | Expr::LoadShared { index, .. } => {
                let it = expr(k, index);
                assert!(
                    it == Type::I32 || it == Type::U32,
                    "{}: index of type {it:?} in {e:?}",
                    k.name
                );
            }
            Expr::Unary(_, x) | Expr::Cast(_, x) | Expr::Bitcast(_, x) | Expr::Splat(_, x) => {
                expr(k, x);
            }
            Expr::Lane(x, _) => {
                expr(k, x);
            }
            Expr::Binary(op, a, b) => {
                let (ta, tb) = (expr(k, a), expr(k, b));
                if !matches!(op, BinOp::Shl | BinOp::Shr) {
                    assert_eq!(ta, tb, "{}: operands of {op:?} in {e:?}", k.name);
                }
            }
            Expr::Select { cond, t: a, f: b } => {
                let c = expr(k, cond);
                assert_eq!(c.scalar, Scalar::Bool, "{}: select condition", k.name);
                assert_eq!(expr(k, a), expr(k, b), "{}: select branches {e:?}", k.name);
            }
            Expr::Fma(a, b, c) => {
                let ta = expr(k, a);
                assert_eq!(ta, expr(k, b));
                assert_eq!(ta, expr(k, c));
            }
            Expr::Vector(xs) => {
                for x in xs {
                    expr(k, x);
                }
            }
            _ => {}
        }
        t
    }
    fn stmts(k: &Kernel, s: &[Stmt]) {
        for s in s {
            match s {
                Stmt::Let(v, e) | Stmt::Assign(v, e) => {
                    assert_eq!(
                        expr(k, e),
                        k.locals[v.0 as usize],
                        "{}: v{} = {e:?}",
                        k.name,
                        v.0
                    )
                }
                Stmt::Store { buf, index, value } => {
                    let it = expr(k, index);
                    assert!(
                        it == Type::I32 || it == Type::U32,
                        "{}: store index",
                        k.name
                    );
                    assert_eq!(
                        expr(k, value),
                        k.buffers[*buf as usize].elem,
                        "{}: store {value:?}",
                        k.name
                    );
                }
                Stmt::If { cond, then, els } => {
                    assert_eq!(expr(k, cond), Type::BOOL, "{}: if condition", k.name);
                    stmts(k, then);
                    stmts(k, els);
                }
                Stmt::For {
                    start, end, body, ..
                } => {
                    assert_eq!(expr(k, start), Type::I32);
                    assert_eq!(expr(k, end), Type::I32);
                    stmts(k, body);
                }
                _ => {}
            }
        }
    }
    stmts(k, &k.body);
}

/// Deterministic pseudo-random floats in [-2, 2).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// A random f32 tensor.
pub fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), rand_vec(n, seed)).expect("tensor")
}
