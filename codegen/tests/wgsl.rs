//! WGSL printer tests: snapshots of representative kernels (each also validated by naga),
//! random expression trees, checker rejections, Mma refusal and exact literal round trips.

use optc_codegen::{CodegenError, check, emit_wgsl, validate_wgsl};
use optc_kernels::KernelBuilder;
use optc_kernels::builder::{builtin_i32, f, i, lit, select, u};
use optc_kernels::ir::{
    Access, Barrier, BinOp, Builtin, Expr, Kernel, MmaShape, Scalar, Stmt, SubgroupOp, Type, UnOp,
    Var,
};

/// Prints `k`, validates the text with naga, and checks printing is deterministic.
fn wgsl(k: &Kernel) -> String {
    let src = emit_wgsl(k).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = validate_wgsl(&src) {
        panic!("{e}\n--- source ---\n{src}");
    }
    assert_eq!(emit_wgsl(k).unwrap(), src, "printing is not deterministic");
    src
}

fn v(x: Var) -> Expr {
    Expr::Var(x)
}

fn sub(op: SubgroupOp, value: Expr, lane: Option<Expr>) -> Expr {
    Expr::Subgroup {
        op,
        value: Box::new(value),
        lane: lane.map(Box::new),
    }
}

/// out[4, 8] = a[4, 8] + b[1, 8]: broadcasting index math, a bounds check, an early return.
fn elementwise_add() -> Kernel {
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
fn vec4_copy() -> Kernel {
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
fn tree_reduction() -> Kernel {
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
    b.stmt(Stmt::AsyncWait);
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
fn subgroup_shuffle() -> Kernel {
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
fn f16_kernel() -> Kernel {
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
fn every_op() -> Kernel {
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

#[test]
fn snapshot_elementwise_add() {
    insta::assert_snapshot!(wgsl(&elementwise_add()));
}

#[test]
fn snapshot_vec4_copy() {
    insta::assert_snapshot!(wgsl(&vec4_copy()));
}

#[test]
fn snapshot_tree_reduction() {
    insta::assert_snapshot!(wgsl(&tree_reduction()));
}

#[test]
fn snapshot_subgroup_shuffle() {
    insta::assert_snapshot!(wgsl(&subgroup_shuffle()));
}

#[test]
fn snapshot_f16() {
    insta::assert_snapshot!(wgsl(&f16_kernel()));
}

#[test]
fn snapshot_every_op() {
    insta::assert_snapshot!(wgsl(&every_op()));
}

// ---- random expression trees -------------------------------------------------------------

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const SCALARS: [Scalar; 4] = [Scalar::F32, Scalar::I32, Scalar::U32, Scalar::Bool];

/// Generates well-typed expression trees over f32/i32/u32/bool. Leaves are literals (tricky
/// values included) or locals loaded from buffers. naga folds constant subexpressions and
/// rejects folds that overflow or produce NaN/inf, so operations that could fail when folded
/// get at least one non-constant operand.
struct Gen {
    rng: Rng,
    /// The local holding a runtime value of each scalar type, in `SCALARS` order.
    vars: [Var; 4],
}

impl Gen {
    fn var(&self, s: Scalar) -> Expr {
        Expr::Var(self.vars[SCALARS.iter().position(|x| *x == s).unwrap()])
    }

    fn literal(&mut self, s: Scalar) -> Expr {
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
    fn expr_of(&mut self, s: Scalar, depth: u32) -> (Expr, bool) {
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
    fn runtime(&mut self, s: Scalar, depth: u32) -> Expr {
        match self.expr_of(s, depth) {
            (e, false) => e,
            (_, true) => self.var(s),
        }
    }

    /// `a op b` on operands of type `s`, at most one of them constant (shift amounts never).
    fn binary(&mut self, s: Scalar, op: BinOp, depth: u32) -> Expr {
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

#[test]
fn random_expression_trees_print_to_valid_wgsl() {
    let mut gen_ = Gen {
        rng: Rng(0x5eed),
        vars: [Var(0); 4],
    };
    for round in 0..40 {
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
        let k = b.finish();
        check(&k).unwrap_or_else(|e| panic!("{e}\n{k:#?}"));
        wgsl(&k);
    }
}

// ---- checker ------------------------------------------------------------------------------

fn invalid(k: &Kernel) -> String {
    match emit_wgsl(k) {
        Err(CodegenError::Invalid { kernel, msg }) => {
            assert_eq!(kernel, k.name);
            msg
        }
        r => panic!("expected CodegenError::Invalid, got {r:?}"),
    }
}

fn base(name: &str) -> (KernelBuilder, u32, u32) {
    let mut b = KernelBuilder::new(name, [64, 1, 1]);
    let x = b.buffer("x", Type::F32, Access::Read);
    let y = b.buffer("y", Type::F32, Access::ReadWrite);
    (b, x, y)
}

#[test]
fn checker_rejects_ill_typed_kernels() {
    let (mut b, _, y) = base("mixed");
    b.store(y, u(0), f(1.0) + i(1).cast(Scalar::I32));
    let msg = invalid(&b.finish());
    assert_eq!(msg, "operands of Add differ: f32 vs i32");

    let (mut b, _, y) = base("undeclared");
    b.store(y, u(0), Expr::Var(Var(0)));
    assert!(invalid(&b.finish()).contains("undeclared local v0"));

    let (b, _, y) = base("before_let");
    let k0 = {
        let mut k = b.finish();
        k.locals.push(Type::F32);
        k.body = vec![
            Stmt::Store {
                buf: y,
                index: u(0),
                value: Expr::Var(Var(0)),
            },
            Stmt::Let(Var(0), f(1.0)),
        ];
        k
    };
    assert_eq!(invalid(&k0), "local v0 is used before it is declared");

    let mut k = k0.clone();
    k.name = "twice".into();
    k.body = vec![Stmt::Let(Var(0), f(1.0)), Stmt::Let(Var(0), f(2.0))];
    assert_eq!(invalid(&k), "local v0 is declared twice");

    let mut k = k0.clone();
    k.name = "scoped".into();
    k.body = vec![
        Stmt::If {
            cond: Expr::Bool(true),
            then: vec![Stmt::Let(Var(0), f(1.0))],
            els: vec![],
        },
        Stmt::Store {
            buf: y,
            index: u(0),
            value: Expr::Var(Var(0)),
        },
    ];
    assert_eq!(
        invalid(&k),
        "local v0 is used outside the block that declares it"
    );

    let (mut b, x, _) = base("store_to_input");
    b.store(x, u(0), f(1.0));
    assert_eq!(invalid(&b.finish()), "store to read-only buffer x");

    let (mut b, _, y) = base("store_type");
    b.store(y, u(0), i(1));
    assert_eq!(invalid(&b.finish()), "store of a i32 into buffer y of f32");

    let (mut b, x, y) = base("float_index");
    b.store(y, u(0), Expr::load(x, f(0.0)));
    assert_eq!(
        invalid(&b.finish()),
        "index into buffer x has type f32, not i32/u32"
    );

    let (mut b, _, y) = base("select_cond");
    b.store(y, u(0), select(u(1), f(1.0), f(2.0)));
    assert_eq!(
        invalid(&b.finish()),
        "select condition has type u32, not bool"
    );

    let (mut b, _, _) = base("break_outside");
    b.brk();
    assert_eq!(invalid(&b.finish()), "break outside a loop");

    let (mut b, _, y) = base("shared_range");
    let sh = b.shared("tile", Type::F32, 16);
    b.store(y, u(0), Expr::load_shared(sh, u(16)));
    assert_eq!(
        invalid(&b.finish()),
        "index 16 into shared array tile is out of range (length 16)"
    );

    let (mut b, _, y) = base("no_buffer");
    b.store(y, u(0), Expr::load(7, u(0)));
    assert_eq!(invalid(&b.finish()), "no buffer 7 (the kernel has 2)");

    let (mut b, _, y) = base("shift");
    b.store(y, u(0), i(1).bin(BinOp::Shl, i(2)).cast(Scalar::F32));
    assert_eq!(
        invalid(&b.finish()),
        "Shl shift amount has type i32, not u32"
    );

    let (mut b, x, y) = base("div_zero");
    b.store(
        y,
        u(0),
        (Expr::load(x, u(0)).cast(Scalar::U32) % u(0)).cast(Scalar::F32),
    );
    assert_eq!(invalid(&b.finish()), "integer Rem by a literal zero");

    let (mut b, _, y) = base("pow_int");
    b.store(y, u(0), i(1).bin(BinOp::Pow, i(2)).cast(Scalar::F32));
    assert_eq!(invalid(&b.finish()), "Pow is not defined on i32");

    let (mut b, _, _) = base("if_cond");
    b.if_(u(1), |b| b.ret());
    assert_eq!(invalid(&b.finish()), "if condition has type u32, not bool");

    let mut b = KernelBuilder::new("clash", [64, 1, 1]);
    b.buffer("select", Type::F32, Access::Read);
    assert!(invalid(&b.finish()).contains("\"select\" is reserved"));

    let mut b = KernelBuilder::new("clash2", [64, 1, 1]);
    b.buffer("v3", Type::F32, Access::Read);
    assert!(invalid(&b.finish()).contains("\"v3\" is reserved"));

    let mut b = KernelBuilder::new("bools", [64, 1, 1]);
    b.buffer("flags", Type::BOOL, Access::Read);
    assert!(invalid(&b.finish()).contains("holds bool"));
}

#[test]
fn mma_is_refused() {
    let mut b = KernelBuilder::new("tensor_core", [32, 1, 1]);
    let a = b.var(Type::U32, u(0));
    let c = b.var(Type::F32, f(0.0));
    b.stmt(Stmt::Mma {
        shape: MmaShape {
            m: 16,
            n: 8,
            k: 16,
            ab: Scalar::F16,
            acc: Scalar::F32,
        },
        a: vec![a],
        b: vec![a],
        c: vec![c],
    });
    let k = b.finish();
    check(&k).unwrap();
    assert_eq!(
        emit_wgsl(&k),
        Err(CodegenError::Unsupported {
            kernel: "tensor_core".into(),
            what: "matrix multiply-accumulate (mma) has no WGSL form".into(),
        })
    );
}

// ---- literals -----------------------------------------------------------------------------

/// The f32 bits naga reads for the value stored by `y[0] = LITERAL;`.
fn stored_f32_bits(src: &str) -> u32 {
    use naga::{Expression, Literal, Statement};
    let m = naga::front::wgsl::parse_str(src).unwrap();
    let f = &m.entry_points[0].function;
    let value = f
        .body
        .iter()
        .find_map(|s| match s {
            Statement::Store { value, .. } => Some(*value),
            _ => None,
        })
        .expect("a store");
    match &f.expressions[value] {
        Expression::Literal(Literal::F32(v)) => v.to_bits(),
        Expression::As {
            expr,
            kind: naga::ScalarKind::Float,
            convert: None,
        } => match f.expressions[*expr] {
            Expression::Literal(Literal::U32(b)) => b,
            ref e => panic!("bitcast of {e:?}"),
        },
        e => panic!("stored {e:?}"),
    }
}

#[test]
fn f32_literals_round_trip_exactly() {
    let values = [
        1e-45,
        -1e-45,
        3.4028235e38,
        -3.4028235e38,
        1.1754944e-38,
        0.1,
        1.0 / 3.0,
        16777217.0,
        1e16,
        0.0,
        -0.0,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    for x in values {
        let mut b = KernelBuilder::new("lit", [1, 1, 1]);
        let y = b.buffer("y", Type::F32, Access::ReadWrite);
        b.store(y, u(0), f(x));
        let src = wgsl(&b.finish());
        assert_eq!(
            stored_f32_bits(&src),
            x.to_bits(),
            "{x:?} printed as\n{src}"
        );
    }
}

#[test]
fn integer_and_f16_literals() {
    use optc_codegen::wgsl::{f16_literal, i32_literal};
    assert_eq!(i32_literal(i32::MIN), "(-2147483647i - 1i)");
    assert_eq!(i32_literal(-5), "(-5i)");
    assert_eq!(i32_literal(i32::MAX), "2147483647i");
    assert_eq!(f16_literal(0.5), "0.5h");
    assert_eq!(f16_literal(65504.0), "65504.0h");
    assert_eq!(f16_literal(f32::INFINITY), "f16(bitcast<f32>(0x7f800000u))");
    let mut b = KernelBuilder::new("ints", [1, 1, 1]);
    let y = b.buffer("y", Type::I32, Access::ReadWrite);
    let z = b.buffer("z", Type::U32, Access::ReadWrite);
    let h = b.buffer("h", Type::F16, Access::ReadWrite);
    b.store(y, u(0), i(i32::MIN));
    b.store(y, u(1), i(-1));
    b.store(z, u(0), u(u32::MAX));
    b.store(h, u(0), Expr::F16(6.1035156e-5));
    b.store(h, u(1), Expr::F16(f32::NEG_INFINITY));
    b.store(h, u(2), Expr::F16(-0.0));
    wgsl(&b.finish());
    let mut b = KernelBuilder::new("bad_half", [1, 1, 1]);
    let h = b.buffer("h", Type::F16, Access::ReadWrite);
    b.store(h, u(0), Expr::F16(0.1));
    assert_eq!(
        invalid(&b.finish()),
        "f16 literal 0.1 is not exactly representable"
    );
}
