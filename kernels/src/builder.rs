//! A builder for [`Kernel`]s that templates use: declares buffers, shared arrays and locals, and
//! nests structured control flow through closures. Expressions compose with Rust operators
//! (`a + b`, `a * b`) and the helper methods on [`Expr`].

use crate::ir::*;
use std::ops;

/// Builds one kernel.
pub struct KernelBuilder {
    kernel: Kernel,
    blocks: Vec<Vec<Stmt>>,
}

impl KernelBuilder {
    /// A kernel named `name` with the given workgroup size.
    pub fn new(name: impl Into<String>, workgroup: [u32; 3]) -> KernelBuilder {
        KernelBuilder {
            kernel: Kernel {
                name: name.into(),
                workgroup,
                buffers: Vec::new(),
                shared: Vec::new(),
                locals: Vec::new(),
                body: Vec::new(),
            },
            blocks: vec![Vec::new()],
        }
    }

    /// Declares the next buffer binding; returns its index.
    pub fn buffer(&mut self, name: impl Into<String>, elem: Type, access: Access) -> u32 {
        self.kernel.buffers.push(Buffer {
            name: name.into(),
            elem,
            access,
            bf16: false,
        });
        self.kernel.buffers.len() as u32 - 1
    }

    /// Declares a workgroup-memory array; returns its index.
    pub fn shared(&mut self, name: impl Into<String>, elem: Type, len: u32) -> u32 {
        self.kernel.shared.push(Shared {
            name: name.into(),
            elem,
            len,
        });
        self.kernel.shared.len() as u32 - 1
    }

    fn new_var(&mut self, ty: Type) -> Var {
        self.kernel.locals.push(ty);
        Var(self.kernel.locals.len() as u32 - 1)
    }

    fn push(&mut self, s: Stmt) {
        self.blocks
            .last_mut()
            .expect("builder block stack is never empty")
            .push(s);
    }

    /// Declares a local of type `ty` initialised to `init`; returns it as a variable.
    pub fn var(&mut self, ty: Type, init: Expr) -> Var {
        let v = self.new_var(ty);
        self.push(Stmt::Let(v, init));
        v
    }

    /// Declares a local initialised to `init` and returns an expression reading it (for values
    /// computed once and used several times).
    pub fn let_(&mut self, ty: Type, init: Expr) -> Expr {
        Expr::Var(self.var(ty, init))
    }

    /// `v = value`.
    pub fn assign(&mut self, v: Var, value: Expr) {
        self.push(Stmt::Assign(v, value));
    }

    /// `buffers[buf][index] = value`.
    pub fn store(&mut self, buf: u32, index: Expr, value: Expr) {
        self.push(Stmt::Store { buf, index, value });
    }

    /// `shared[arr][index] = value`.
    pub fn store_shared(&mut self, arr: u32, index: Expr, value: Expr) {
        self.push(Stmt::StoreShared { arr, index, value });
    }

    /// A workgroup barrier.
    pub fn barrier(&mut self, b: Barrier) {
        self.push(Stmt::Barrier(b));
    }

    /// Ends the invocation.
    pub fn ret(&mut self) {
        self.push(Stmt::Return);
    }

    /// Leaves the innermost loop.
    pub fn brk(&mut self) {
        self.push(Stmt::Break);
    }

    /// Appends a raw statement.
    pub fn stmt(&mut self, s: Stmt) {
        self.push(s);
    }

    fn block(&mut self, f: impl FnOnce(&mut Self)) -> Vec<Stmt> {
        self.blocks.push(Vec::new());
        f(self);
        self.blocks.pop().expect("pushed above")
    }

    /// `if cond { then }`.
    pub fn if_(&mut self, cond: Expr, then: impl FnOnce(&mut Self)) {
        let then = self.block(then);
        self.push(Stmt::If {
            cond,
            then,
            els: Vec::new(),
        });
    }

    /// `if cond { then }`, or `then` unconditionally when there is no condition (a guard known
    /// to hold at compile time, left out of the kernel).
    pub fn if_some(&mut self, cond: Option<Expr>, then: impl FnOnce(&mut Self)) {
        match cond {
            Some(c) => self.if_(c, then),
            None => then(self),
        }
    }

    /// `if cond { then } else { els }`.
    pub fn if_else(
        &mut self,
        cond: Expr,
        then: impl FnOnce(&mut Self),
        els: impl FnOnce(&mut Self),
    ) {
        let then = self.block(then);
        let els = self.block(els);
        self.push(Stmt::If { cond, then, els });
    }

    /// `for (i = start; i < end; i += step) { body(i) }` over i32.
    pub fn for_(
        &mut self,
        start: Expr,
        end: Expr,
        step: i32,
        unroll: bool,
        body: impl FnOnce(&mut Self, Expr),
    ) {
        let var = self.new_var(Type::I32);
        let body = self.block(|b| body(b, Expr::Var(var)));
        self.push(Stmt::For {
            var,
            start,
            end,
            step,
            body,
            unroll,
        });
    }

    /// The finished kernel.
    pub fn finish(mut self) -> Kernel {
        self.kernel.body = self
            .blocks
            .pop()
            .expect("builder block stack is never empty");
        self.kernel
    }
}

/// An `i32` literal.
pub fn i(v: i32) -> Expr {
    Expr::I32(v)
}

/// A `u32` literal.
pub fn u(v: u32) -> Expr {
    Expr::U32(v)
}

/// An `f32` literal.
pub fn f(v: f32) -> Expr {
    Expr::F32(v)
}

/// A literal of scalar type `s` with value `v` (rounded/truncated to the type).
pub fn lit(s: Scalar, v: f64) -> Expr {
    match s {
        Scalar::F32 => Expr::F32(v as f32),
        Scalar::F16 => Expr::F16(<half::f16 as optc_ir::Elem>::round_from_f64(v).to_f32()),
        Scalar::I32 => Expr::I32(v as i32),
        Scalar::U32 => Expr::U32(v as u32),
        Scalar::Bool => Expr::Bool(v != 0.0),
    }
}

/// `cond ? t : f`.
pub fn select(cond: Expr, t: Expr, f: Expr) -> Expr {
    Expr::Select {
        cond: Box::new(cond),
        t: Box::new(t),
        f: Box::new(f),
    }
}

/// A builtin as an `i32` (`i32(global_id.x)` and so on).
pub fn builtin_i32(b: Builtin) -> Expr {
    Expr::Cast(Scalar::I32, Box::new(Expr::Builtin(b)))
}

impl Expr {
    /// A unary operation.
    pub fn un(self, op: UnOp) -> Expr {
        Expr::Unary(op, Box::new(self))
    }
    /// A binary operation.
    pub fn bin(self, op: BinOp, rhs: Expr) -> Expr {
        Expr::Binary(op, Box::new(self), Box::new(rhs))
    }
    /// `self < rhs`.
    pub fn lt(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Lt, rhs)
    }
    /// `self <= rhs`.
    pub fn le(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Le, rhs)
    }
    /// `self > rhs`.
    pub fn gt(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Gt, rhs)
    }
    /// `self >= rhs`.
    pub fn ge(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Ge, rhs)
    }
    /// `self == rhs`.
    pub fn eq_(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Eq, rhs)
    }
    /// `self != rhs`.
    pub fn ne_(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Ne, rhs)
    }
    /// `min(self, rhs)`.
    pub fn min(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Min, rhs)
    }
    /// `max(self, rhs)`.
    pub fn max(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Max, rhs)
    }
    /// Logical/bitwise and.
    pub fn and(self, rhs: Expr) -> Expr {
        self.bin(BinOp::And, rhs)
    }
    /// Logical/bitwise or.
    pub fn or(self, rhs: Expr) -> Expr {
        self.bin(BinOp::Or, rhs)
    }
    /// Value conversion.
    pub fn cast(self, s: Scalar) -> Expr {
        Expr::Cast(s, Box::new(self))
    }
    /// `self * b + c`, fused.
    pub fn fma(self, b: Expr, c: Expr) -> Expr {
        Expr::Fma(Box::new(self), Box::new(b), Box::new(c))
    }
    /// Lane `i` of a vector.
    pub fn lane(self, i: u8) -> Expr {
        Expr::Lane(Box::new(self), i)
    }
    /// `self` as subgroup lane `lane` (a constant) holds it, in every lane.
    pub fn broadcast(self, lane: u32) -> Expr {
        Expr::Subgroup {
            op: SubgroupOp::Broadcast,
            value: Box::new(self),
            lane: Some(Box::new(Expr::U32(lane))),
        }
    }
    /// `self` as subgroup lane `from` (a `u32` expression) holds it.
    pub fn shuffle(self, from: Expr) -> Expr {
        Expr::Subgroup {
            op: SubgroupOp::Shuffle,
            value: Box::new(self),
            lane: Some(Box::new(from)),
        }
    }
    /// `buffers[buf][index]`.
    pub fn load(buf: u32, index: Expr) -> Expr {
        Expr::Load {
            buf,
            index: Box::new(index),
        }
    }
    /// `shared[arr][index]`.
    pub fn load_shared(arr: u32, index: Expr) -> Expr {
        Expr::LoadShared {
            arr,
            index: Box::new(index),
        }
    }
}

macro_rules! arith {
    ($tr:ident, $m:ident, $op:ident) => {
        impl ops::$tr for Expr {
            type Output = Expr;
            fn $m(self, rhs: Expr) -> Expr {
                Expr::Binary(BinOp::$op, Box::new(self), Box::new(rhs))
            }
        }
    };
}
arith!(Add, add, Add);
arith!(Sub, sub, Sub);
arith!(Mul, mul, Mul);
arith!(Div, div, Div);
arith!(Rem, rem, Rem);

impl ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::Unary(UnOp::Neg, Box::new(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_nested_blocks_in_order() {
        let mut b = KernelBuilder::new("k", [64, 1, 1]);
        let x = b.buffer("x", Type::F32, Access::Read);
        let y = b.buffer("y", Type::F32, Access::ReadWrite);
        let gid = b.let_(Type::I32, builtin_i32(Builtin::GlobalId(0)));
        b.if_(gid.clone().ge(i(10)), |b| b.ret());
        let acc = b.var(Type::F32, f(0.0));
        b.for_(i(0), i(4), 1, true, |b, k| {
            b.assign(acc, Expr::Var(acc) + Expr::load(x, gid.clone() * i(4) + k));
        });
        b.store(y, gid, Expr::Var(acc));
        let k = b.finish();
        assert_eq!(k.buffers.len(), 2);
        assert_eq!(k.locals, vec![Type::I32, Type::F32, Type::I32]);
        assert_eq!(k.body.len(), 5);
        assert!(matches!(k.body[1], Stmt::If { .. }));
        match &k.body[3] {
            Stmt::For { var, body, .. } => {
                assert_eq!(*var, Var(2));
                assert_eq!(body.len(), 1);
            }
            s => panic!("expected a loop, got {s:?}"),
        }
        assert_eq!(k.type_of(&Expr::Var(Var(1))).unwrap(), Type::F32);
        assert_eq!(k.type_of(&(gid_expr().lt(i(3)))).unwrap(), Type::BOOL);
        assert!(!k.uses_f16());
        assert!(!k.uses_subgroups());
    }

    fn gid_expr() -> Expr {
        Expr::Var(Var(0))
    }
}
