//! Kernels and a random expression generator shared by the WGSL and PTX printer tests.

// Each test binary uses only some of these.
#![allow(dead_code)]

use optc_kernels::KernelBuilder;
use optc_kernels::builder::{builtin_i32, f, i, lit, select, u};
use optc_kernels::ir::{
    Access, Barrier, BinOp, Builtin, Expr, Kernel, Scalar, Stmt, SubgroupOp, Type, UnOp, Var,
};

pub fn v(x: Var) -> Expr {
    Expr::Var(x)
}

pub fn sub(op: SubgroupOp, value: Expr, lane: Option<Expr>) -> Expr {
    Expr::Subgroup {
        op,
        value: Box::new(value),
        lane: lane.map(Box::new),
    }
}

/// out[4, 8] = a[4, 8] + b[1, 8]: broadcasting index math, a bounds check, an early return.
pub fn elementwise_add() -> Kernel {
    let mut b = KernelBuilder::new("add_bcast", [64, 1, 1]);
    let a = b.buffer("a", Type::F32, Access::Read);
    let bb = b.buffer("b", Type::F32, Access::Read);
    let out = b.buffer("out", Type::F32, Access::ReadWrite);
    let idx = b.let_(Type::I32, builtin_i32(Builtin::GlobalId(0)));
    b.if_(idx.clone().ge(i(32)), |b| b.ret());
    let row = b.let_(Type::I32, idx.clone() / i(8));
    let col = b.let_(Type::I32, idx.clone() % i(8));
    let ai = b.let_(Type::I32, row * i(8) + col.clone());
    let bi = b.let_(Type::I32, i(0) * i(8) + col);
    b.store(out, idx, Expr::load(a, ai) + Expr::load(bb, bi));
    b.finish()
}

/// Each thread copies four vec4s, in a loop the printer unrolls.
pub fn vec4_copy() -> Kernel {
    let mut b = KernelBuilder::new("copy_vec4", [64, 1, 1]);
    let x = b.buffer("x", Type::vec(Scalar::F32, 4), Access::Read);
    let y = b.buffer("y", Type::vec(Scalar::F32, 4), Access::ReadWrite);
    let base = b.let_(Type::U32, Expr::Builtin(Builtin::GlobalId(0)) * u(4));
    b.for_(i(0), i(4), 1, true, |b, k| {
        let j = b.let_(Type::U32, base.clone() + k.cast(Scalar::U32));
        b.store(y, j.clone(), Expr::load(x, j));
    });
    b.finish()
}

/// Sum of 256 floats per workgroup: async copy into workgroup memory, then a barrier-separated
/// tree reduction in a loop.
pub fn tree_reduction() -> Kernel {
    let mut b = KernelBuilder::new("reduce_sum", [256, 1, 1]);
    let x = b.buffer("x", Type::F32, Access::Read);
    let out = b.buffer("out", Type::F32, Access::ReadWrite);
    let sh = b.shared("partial", Type::F32, 256);
    let l = b.let_(Type::U32, Expr::Builtin(Builtin::LocalIndex));
    b.stmt(Stmt::AsyncCopy {
        arr: sh,
        dst: l.clone(),
        buf: x,
        src: Expr::Builtin(Builtin::GlobalId(0)),
    });
    b.stmt(Stmt::AsyncWait { pending: 0 });
    b.barrier(Barrier::Workgroup);
    b.for_(i(0), i(8), 1, false, |b, k| {
        let s = b.let_(Type::U32, u(128).bin(BinOp::Shr, k.cast(Scalar::U32)));
        b.if_(l.clone().lt(s.clone()), |b| {
            let sum = Expr::load_shared(sh, l.clone()) + Expr::load_shared(sh, l.clone() + s);
            b.store_shared(sh, l.clone(), sum);
        });
        b.barrier(Barrier::Workgroup);
    });
    b.if_(l.eq_(u(0)), |b| {
        b.store(
            out,
            Expr::Builtin(Builtin::WorkgroupId(0)),
            Expr::load_shared(sh, u(0)),
        );
    });
    b.barrier(Barrier::Storage);
    b.finish()
}

/// Subgroup shuffles, a reduction and a broadcast.
pub fn subgroup_shuffle() -> Kernel {
    let mut b = KernelBuilder::new("subgroup_mix", [64, 1, 1]);
    let x = b.buffer("x", Type::vec(Scalar::F32, 4), Access::Read);
    let out = b.buffer("out", Type::F32, Access::ReadWrite);
    let g = Expr::Builtin(Builtin::GlobalId(0));
    let lane = Expr::Builtin(Builtin::SubgroupLane);
    let val = b.let_(Type::vec(Scalar::F32, 4), Expr::load(x, g.clone()));
    let pair = b.let_(
        Type::vec(Scalar::F32, 4),
        sub(
            SubgroupOp::Shuffle,
            val.clone(),
            Some(lane.clone().bin(BinOp::Xor, u(1))),
        ),
    );
    let total = b.let_(Type::F32, sub(SubgroupOp::Add, (val + pair).lane(0), None));
    let hi = b.let_(Type::F32, sub(SubgroupOp::Max, total.clone(), None));
    let lo = b.let_(Type::F32, sub(SubgroupOp::Min, total.clone(), None));
    let first = b.let_(Type::F32, sub(SubgroupOp::Broadcast, total, Some(u(0))));
    b.if_(lane.eq_(Expr::Builtin(Builtin::SubgroupSize) - u(1)), |b| {
        b.store(out, g, first + hi - lo)
    });
    b.finish()
}

/// f16 arithmetic on scalars and vectors, converted to f32 on the way out.
pub fn f16_kernel() -> Kernel {
    let mut b = KernelBuilder::new("half_scale", [32, 1, 1]);
    let x = b.buffer("x", Type::vec(Scalar::F16, 4), Access::Read);
    let y = b.buffer("y", Type::F32, Access::ReadWrite);
    let g = Expr::Builtin(Builtin::GlobalId(0));
    let h = b.let_(Type::vec(Scalar::F16, 4), Expr::load(x, g.clone()));
    let scaled = b.let_(
        Type::vec(Scalar::F16, 4),
        h.clone() * Expr::Splat(4, Box::new(lit(Scalar::F16, 0.5))) + h.clone(),
    );
    let s = b.let_(
        Type::F16,
        scaled.clone().lane(0) + scaled.clone().lane(3) - Expr::F16(65504.0),
    );
    let nan = b.let_(Type::BOOL, Expr::Lane(Box::new(scaled.un(UnOp::IsNan)), 1));
    let r = select(nan, Expr::F16(f32::INFINITY), s).cast(Scalar::F32);
    b.store(y, g, r);
    b.finish()
}

/// Every unary and binary operation, each on a type it is defined on.
pub fn every_op() -> Kernel {
    let mut b = KernelBuilder::new("every_op", [64, 1, 1]);
    let xf = b.buffer("xf", Type::F32, Access::Read);
    let xi = b.buffer("xi", Type::I32, Access::Read);
    let xu = b.buffer("xu", Type::U32, Access::Read);
    let of = b.buffer("outf", Type::F32, Access::ReadWrite);
    let oi = b.buffer("oi", Type::I32, Access::ReadWrite);
    let ou = b.buffer("ou", Type::U32, Access::ReadWrite);
    let g = b.let_(Type::U32, Expr::Builtin(Builtin::GlobalId(0)));
    let a = b.let_(Type::F32, Expr::load(xf, g.clone()));
    let n = b.let_(Type::I32, Expr::load(xi, g.clone()));
    let m = b.let_(Type::U32, Expr::load(xu, g.clone()));
    let p = b.let_(Type::BOOL, m.clone().gt(u(7)));
    let af = b.var(Type::F32, f(0.0));
    let ai = b.var(Type::I32, i(0));
    let au = b.var(Type::U32, u(0));
    let ab = b.var(Type::BOOL, Expr::Bool(false));
    use UnOp::*;
    for op in [
        Neg,
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
        Round,
        Trunc,
        Sign,
    ] {
        b.assign(af, v(af) + a.clone().un(op));
    }
    for op in [Neg, Not, Abs, Sign] {
        b.assign(ai, v(ai) + n.clone().un(op));
    }
    for op in [Neg, Not, Abs] {
        b.assign(au, v(au) + m.clone().un(op));
    }
    b.assign(ab, p.clone().un(Not));
    b.assign(ab, v(ab).or(a.clone().un(IsNan)));
    b.assign(ab, v(ab).or(a.clone().un(IsInf)));
    use BinOp::*;
    for op in [Add, Sub, Mul, Div, Rem, Min, Max, Pow, Atan2] {
        b.assign(af, v(af).bin(op, a.clone()));
    }
    for op in [Add, Sub, Mul, Div, Rem, Min, Max, And, Or, Xor] {
        b.assign(ai, v(ai).bin(op, n.clone()));
        b.assign(au, v(au).bin(op, m.clone()));
    }
    for op in [Shl, Shr] {
        b.assign(ai, v(ai).bin(op, m.clone()));
        b.assign(au, v(au).bin(op, m.clone()));
    }
    for op in [Eq, Ne, Lt, Le, Gt, Ge] {
        b.assign(ab, v(ab).and(v(af).bin(op, a.clone())));
    }
    for op in [And, Or, Xor, Eq, Ne] {
        b.assign(ab, v(ab).bin(op, p.clone()));
    }
    b.assign(af, v(af).fma(a.clone(), f(1.5)));
    b.assign(ai, v(ai).fma(n.clone(), i(-3)));
    b.assign(
        au,
        v(au) + Expr::Bitcast(Scalar::U32, Box::new(v(af))) + v(ab).cast(Scalar::U32),
    );
    b.store(of, g.clone(), select(v(ab), v(af), f(-0.0)));
    b.store(oi, g.clone(), v(ai));
    b.store(ou, g, v(au));
    b.finish()
}

// ---- random expression trees -------------------------------------------------------------

/// A small deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

pub const SCALARS: [Scalar; 4] = [Scalar::F32, Scalar::I32, Scalar::U32, Scalar::Bool];

/// Generates well-typed expression trees over f32/i32/u32/bool. Leaves are literals (tricky
/// values included) or locals loaded from buffers. naga folds constant subexpressions and
/// rejects folds that overflow or produce NaN/inf, so operations that could fail when folded
/// get at least one non-constant operand.
pub struct Gen {
    pub rng: Rng,
    /// The local holding a runtime value of each scalar type, in `SCALARS` order.
    pub vars: [Var; 4],
}

impl Gen {
    pub fn var(&self, s: Scalar) -> Expr {
        Expr::Var(self.vars[SCALARS.iter().position(|x| *x == s).unwrap()])
    }

    pub fn literal(&mut self, s: Scalar) -> Expr {
        match s {
            Scalar::F32 => Expr::F32(self.rng.pick(&[
                0.0,
                -0.0,
                1.0,
                -2.5,
                0.1,
                1e-45,
                f32::MAX,
                f32::MIN_POSITIVE,
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
            ])),
            Scalar::I32 => Expr::I32(self.rng.pick(&[0, 1, -1, 7, i32::MAX, i32::MIN])),
            Scalar::U32 => Expr::U32(self.rng.pick(&[0, 1, 31, u32::MAX])),
            Scalar::Bool => Expr::Bool(self.rng.below(2) == 0),
            Scalar::F16 => unreachable!(),
        }
    }

    /// An expression of type `s` and whether it is constant.
    pub fn expr_of(&mut self, s: Scalar, depth: u32) -> (Expr, bool) {
        if depth == 0 || self.rng.below(4) == 0 {
            return if self.rng.below(2) == 0 {
                (self.literal(s), true)
            } else {
                (self.var(s), false)
            };
        }
        let d = depth - 1;
        let choice = self.rng.below(6);
        let e = match (s, choice) {
            (_, 0) => {
                let (c, cc) = self.expr_of(Scalar::Bool, d);
                let (t, tc) = self.expr_of(s, d);
                let (f, fc) = self.expr_of(s, d);
                return (select(c, t, f), cc && tc && fc);
            }
            (_, 1) => {
                let from = self.rng.pick(&SCALARS);
                self.runtime(from, d).cast(s)
            }
            (_, 2) => {
                // Through a vector and back.
                let x = self.runtime(s, d);
                let (y, _) = self.expr_of(s, d);
                let vec = if self.rng.below(2) == 0 {
                    Expr::Splat(4, Box::new(x))
                } else {
                    Expr::Vector(vec![x.clone(), y, x.clone(), x])
                };
                vec.lane(self.rng.below(4) as u8)
            }
            (Scalar::Bool, _) => {
                let from = self.rng.pick(&SCALARS);
                let op = match from {
                    Scalar::Bool => {
                        self.rng
                            .pick(&[BinOp::Eq, BinOp::Ne, BinOp::And, BinOp::Or, BinOp::Xor])
                    }
                    _ => self.rng.pick(&[
                        BinOp::Eq,
                        BinOp::Ne,
                        BinOp::Lt,
                        BinOp::Le,
                        BinOp::Gt,
                        BinOp::Ge,
                    ]),
                };
                match self.rng.below(3) {
                    0 => self.runtime(Scalar::Bool, d).un(UnOp::Not),
                    1 => self
                        .runtime(Scalar::F32, d)
                        .un(self.rng.pick(&[UnOp::IsNan, UnOp::IsInf])),
                    _ => self.binary(from, op, d),
                }
            }
            (Scalar::F32, 3) => self.runtime(s, d).un(self.rng.pick(&[
                UnOp::Neg,
                UnOp::Abs,
                UnOp::Exp,
                UnOp::Log,
                UnOp::Sqrt,
                UnOp::InverseSqrt,
                UnOp::Sin,
                UnOp::Cos,
                UnOp::Tan,
                UnOp::Asin,
                UnOp::Acos,
                UnOp::Atan,
                UnOp::Sinh,
                UnOp::Cosh,
                UnOp::Tanh,
                UnOp::Asinh,
                UnOp::Acosh,
                UnOp::Atanh,
                UnOp::Floor,
                UnOp::Ceil,
                UnOp::Round,
                UnOp::Trunc,
                UnOp::Sign,
            ])),
            (Scalar::F32, 4) => {
                let op = self.rng.pick(&[
                    BinOp::Add,
                    BinOp::Sub,
                    BinOp::Mul,
                    BinOp::Div,
                    BinOp::Rem,
                    BinOp::Min,
                    BinOp::Max,
                    BinOp::Pow,
                    BinOp::Atan2,
                ]);
                self.binary(s, op, d)
            }
            (Scalar::F32, _) => {
                if self.rng.below(2) == 0 {
                    let a = self.runtime(s, d);
                    let (b, _) = self.expr_of(s, d);
                    let (c, _) = self.expr_of(s, d);
                    a.fma(b, c)
                } else {
                    let from = self.rng.pick(&[Scalar::I32, Scalar::U32]);
                    Expr::Bitcast(s, Box::new(self.runtime(from, d)))
                }
            }
            (_, 3) => {
                let ops: &[UnOp] = if s == Scalar::I32 {
                    &[UnOp::Neg, UnOp::Not, UnOp::Abs, UnOp::Sign]
                } else {
                    &[UnOp::Neg, UnOp::Not, UnOp::Abs]
                };
                self.runtime(s, d).un(self.rng.pick(ops))
            }
            (_, 4) => {
                let op = self.rng.pick(&[
                    BinOp::Add,
                    BinOp::Sub,
                    BinOp::Mul,
                    BinOp::Div,
                    BinOp::Rem,
                    BinOp::Min,
                    BinOp::Max,
                    BinOp::And,
                    BinOp::Or,
                    BinOp::Xor,
                    BinOp::Shl,
                    BinOp::Shr,
                ]);
                self.binary(s, op, d)
            }
            (_, _) => {
                if self.rng.below(2) == 0 {
                    let a = self.runtime(s, d);
                    let (b, _) = self.expr_of(s, d);
                    let (c, _) = self.expr_of(s, d);
                    a.fma(b, c)
                } else {
                    let from = self.rng.pick(&[Scalar::F32, Scalar::I32, Scalar::U32]);
                    Expr::Bitcast(s, Box::new(self.runtime(from, d)))
                }
            }
        };
        (e, false)
    }

    /// A non-constant expression of type `s`.
    pub fn runtime(&mut self, s: Scalar, depth: u32) -> Expr {
        match self.expr_of(s, depth) {
            (e, false) => e,
            (_, true) => self.var(s),
        }
    }

    /// `a op b` on operands of type `s`, at most one of them constant (shift amounts never).
    pub fn binary(&mut self, s: Scalar, op: BinOp, depth: u32) -> Expr {
        let (a, ac) = self.expr_of(s, depth);
        // Shift amounts and integer divisors are never constant: naga rejects constant shift
        // amounts >= 32 and constant zero divisors even with a runtime left operand.
        let b = if matches!(op, BinOp::Shl | BinOp::Shr) {
            self.runtime(Scalar::U32, depth)
        } else if ac || (matches!(op, BinOp::Div | BinOp::Rem) && s != Scalar::F32) {
            self.runtime(s, depth)
        } else {
            self.expr_of(s, depth).0
        };
        a.bin(op, b)
    }
}

/// A kernel that loads one f32, i32, u32 and bool per thread and stores one random expression
/// tree (depth 5) of each scalar type.
pub fn random_kernel(gen_: &mut Gen, round: u32) -> Kernel {
    let mut b = KernelBuilder::new(format!("random_{round}"), [64, 1, 1]);
    let xf = b.buffer("xf", Type::F32, Access::Read);
    let xi = b.buffer("xi", Type::I32, Access::Read);
    let xu = b.buffer("xu", Type::U32, Access::Read);
    let outs = [
        b.buffer("of32", Type::F32, Access::ReadWrite),
        b.buffer("oi32", Type::I32, Access::ReadWrite),
        b.buffer("ou32", Type::U32, Access::ReadWrite),
    ];
    let g = b.let_(Type::U32, Expr::Builtin(Builtin::GlobalId(0)));
    let vf = b.var(Type::F32, Expr::load(xf, g.clone()));
    let vi = b.var(Type::I32, Expr::load(xi, g.clone()));
    let vu = b.var(Type::U32, Expr::load(xu, g.clone()));
    let vb = b.var(Type::BOOL, Expr::load(xu, g.clone()).gt(u(3)));
    gen_.vars = [vf, vi, vu, vb];
    for (k, s) in SCALARS.iter().enumerate() {
        let (e, _) = gen_.expr_of(*s, 5);
        let (buf, val) = match s {
            Scalar::Bool => (outs[2], e.cast(Scalar::U32)),
            _ => (outs[k], e),
        };
        b.store(buf, g.clone(), val);
    }
    b.finish()
}
