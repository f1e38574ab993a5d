//! A type and scope checker for the kernel IR, run by every printer before it prints.
//!
//! [`check`] accepts exactly the kernels the printers can render faithfully, and reports the
//! first problem it finds as [`CodegenError::Invalid`] naming the kernel. It verifies:
//!
//! - names: the kernel, buffer and shared-array names are identifiers, distinct from each other
//!   and from the names printers generate (`v0`, `v1`, ... for locals; `gid`, `lid`, `lidx`,
//!   `wid`, `nwg`, `sg_lane`, `sg_size` for builtins) and from WGSL's reserved words and
//!   predeclared types and functions (naga's lists), which a module-scope name would shadow;
//! - types: every type has 1, 2 or 4 lanes; buffers do not hold `bool`; shared arrays are not
//!   empty; the workgroup size is not zero;
//! - locals: every [`Var`] is declared once (by a [`Stmt::Let`] or as a [`Stmt::For`] variable)
//!   and is used only after its declaration and inside the block that declares it (block
//!   scoping, as in WGSL and C); a loop variable is `i32`;
//! - expressions: operand types of binary operations agree (the right operand of a shift is
//!   `u32` with the left operand's lane count), each operation is applied to types it is defined
//!   on (for example no arithmetic on `bool`, `pow` only on floats, bitwise ops only on
//!   integers and bools), a `Select` condition is `bool` (scalar or with the branches' lane
//!   count), indices are scalar `i32`/`u32`, literal indices are in range for shared arrays and
//!   not negative, `f16` literals are exactly representable in `f16`, bitcasts are between
//!   32-bit types, integer `Div`/`Rem` do not divide by a literal zero (naga rejects that even
//!   with a runtime dividend), lanes exist, subgroup operations have the lane operand they need (a literal
//!   for `Broadcast`);
//! - statements: assignments and stores match the target's type, no store goes to an
//!   [`Access::Read`] buffer, `AsyncCopy` moves between a buffer and a shared array of the same
//!   element type, `LoadMatrix` reads a shared array of 16-byte elements into 1, 2 or 4 `u32`
//!   locals, `If` conditions are scalar `bool`, `Break` appears only inside a loop.
//!
//! Uniformity (barriers and subgroup operations in uniform control flow) is not checked here:
//! naga's validator checks it on the printed WGSL.

use crate::CodegenError;
use optc_kernels::ir::{
    Access, BinOp, Builtin, Expr, Kernel, Scalar, Stmt, SubgroupOp, Type, UnOp, Var,
};

/// Names the printers generate, which kernel, buffer and shared names must avoid (as well as
/// WGSL's reserved words and predeclared identifiers, taken from naga).
const GENERATED: &[&str] = &["gid", "lid", "lidx", "wid", "nwg", "sg_lane", "sg_size"];

fn is_reserved(name: &str) -> bool {
    use naga::keywords::wgsl::{BUILTIN_IDENTIFIERS, RESERVED};
    GENERATED.contains(&name)
        || RESERVED.contains(&name)
        || BUILTIN_IDENTIFIERS.contains(&name)
        || is_local_name(name)
}

/// Checks that `k` is well formed (see the module docs for the rules).
pub fn check(k: &Kernel) -> Result<(), CodegenError> {
    let mut c = Checker {
        k,
        declared: vec![false; k.locals.len()],
        visible: vec![false; k.locals.len()],
        scope: Vec::new(),
    };
    c.header()
        .and_then(|()| c.block(&k.body, false))
        .map_err(|msg| CodegenError::Invalid {
            kernel: k.name.clone(),
            msg,
        })
}

struct Checker<'a> {
    k: &'a Kernel,
    /// Locals declared so far (anywhere).
    declared: Vec<bool>,
    /// Locals declared and in scope here.
    visible: Vec<bool>,
    /// Locals declared in the open blocks, innermost last.
    scope: Vec<Var>,
}

type R<T> = Result<T, String>;

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s != "_"
        && !s.starts_with("__")
}

fn is_local_name(s: &str) -> bool {
    s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn show(t: Type) -> String {
    if t.lanes == 1 {
        t.scalar.to_string()
    } else {
        format!("vec{}<{}>", t.lanes, t.scalar)
    }
}

fn is_int(s: Scalar) -> bool {
    matches!(s, Scalar::I32 | Scalar::U32)
}

fn is_index(t: Type) -> bool {
    t.lanes == 1 && is_int(t.scalar)
}

impl Checker<'_> {
    fn header(&self) -> R<()> {
        let k = self.k;
        let mut names: Vec<(&str, &str)> = vec![(k.name.as_str(), "kernel")];
        names.extend(k.buffers.iter().map(|b| (b.name.as_str(), "buffer")));
        names.extend(k.shared.iter().map(|s| (s.name.as_str(), "shared array")));
        for (i, (name, what)) in names.iter().enumerate() {
            if !is_ident(name) {
                return Err(format!("{what} name {name:?} is not an identifier"));
            }
            if is_reserved(name) {
                return Err(format!(
                    "{what} name {name:?} is reserved (a keyword, built-in or generated name)"
                ));
            }
            if names[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("{what} name {name:?} is used twice"));
            }
        }
        if k.workgroup.contains(&0) {
            return Err(format!("workgroup size {:?} has a zero", k.workgroup));
        }
        for b in &k.buffers {
            valid_type(b.elem).map_err(|m| format!("buffer {}: {m}", b.name))?;
            if b.elem.scalar == Scalar::Bool {
                return Err(format!(
                    "buffer {} holds bool, which is not storable (store u32 0/1)",
                    b.name
                ));
            }
        }
        for s in &k.shared {
            valid_type(s.elem).map_err(|m| format!("shared array {}: {m}", s.name))?;
            if s.len == 0 {
                return Err(format!("shared array {} is empty", s.name));
            }
        }
        for (i, t) in k.locals.iter().enumerate() {
            valid_type(*t).map_err(|m| format!("local v{i}: {m}"))?;
        }
        Ok(())
    }

    fn declare(&mut self, v: Var) -> R<Type> {
        let i = v.0 as usize;
        let t = *self
            .k
            .locals
            .get(i)
            .ok_or_else(|| format!("v{} is declared but has no entry in locals", v.0))?;
        if self.declared[i] {
            return Err(format!("local v{} is declared twice", v.0));
        }
        self.declared[i] = true;
        self.visible[i] = true;
        self.scope.push(v);
        Ok(t)
    }

    fn use_var(&self, v: Var) -> R<Type> {
        let i = v.0 as usize;
        let t = *self
            .k
            .locals
            .get(i)
            .ok_or_else(|| format!("undeclared local v{} (no entry in locals)", v.0))?;
        if !self.visible[i] {
            return Err(if self.declared[i] {
                format!("local v{} is used outside the block that declares it", v.0)
            } else {
                format!("local v{} is used before it is declared", v.0)
            });
        }
        Ok(t)
    }

    fn block(&mut self, stmts: &[Stmt], in_loop: bool) -> R<()> {
        let mark = self.scope.len();
        for s in stmts {
            self.stmt(s, in_loop)?;
        }
        self.close(mark);
        Ok(())
    }

    fn close(&mut self, mark: usize) {
        for v in self.scope.drain(mark..) {
            self.visible[v.0 as usize] = false;
        }
    }

    fn buffer(&self, buf: u32) -> R<&optc_kernels::ir::Buffer> {
        self.k
            .buffers
            .get(buf as usize)
            .ok_or_else(|| format!("no buffer {buf} (the kernel has {})", self.k.buffers.len()))
    }

    fn shared(&self, arr: u32) -> R<&optc_kernels::ir::Shared> {
        self.k.shared.get(arr as usize).ok_or_else(|| {
            format!(
                "no shared array {arr} (the kernel has {})",
                self.k.shared.len()
            )
        })
    }

    /// Checks an index expression into an array of `len` elements (`None`: runtime-sized).
    fn index(&mut self, index: &Expr, what: &str, len: Option<u32>) -> R<()> {
        let t = self.expr(index)?;
        if !is_index(t) {
            return Err(format!(
                "index into {what} has type {}, not i32/u32",
                show(t)
            ));
        }
        let lit = match index {
            Expr::I32(v) => Some(i64::from(*v)),
            Expr::U32(v) => Some(i64::from(*v)),
            _ => None,
        };
        if let Some(v) = lit {
            if v < 0 {
                return Err(format!("index {v} into {what} is negative"));
            }
            if let Some(len) = len
                && v >= i64::from(len)
            {
                return Err(format!(
                    "index {v} into {what} is out of range (length {len})"
                ));
            }
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt, in_loop: bool) -> R<()> {
        match s {
            Stmt::Let(v, e) => {
                let t = self.expr(e)?;
                let vt = self.declare(*v)?;
                if t != vt {
                    return Err(format!(
                        "local v{} of type {} is initialised with a {}",
                        v.0,
                        show(vt),
                        show(t)
                    ));
                }
            }
            Stmt::Assign(v, e) => {
                let vt = self.use_var(*v)?;
                let t = self.expr(e)?;
                if t != vt {
                    return Err(format!(
                        "local v{} of type {} is assigned a {}",
                        v.0,
                        show(vt),
                        show(t)
                    ));
                }
            }
            Stmt::Store { buf, index, value } => {
                let b = self.buffer(*buf)?;
                let (name, elem, access) = (b.name.clone(), b.elem, b.access);
                if access == Access::Read {
                    return Err(format!("store to read-only buffer {name}"));
                }
                self.index(index, &format!("buffer {name}"), None)?;
                let t = self.expr(value)?;
                if t != elem {
                    return Err(format!(
                        "store of a {} into buffer {name} of {}",
                        show(t),
                        show(elem)
                    ));
                }
            }
            Stmt::StoreShared { arr, index, value } => {
                let s = self.shared(*arr)?;
                let (name, elem, len) = (s.name.clone(), s.elem, s.len);
                self.index(index, &format!("shared array {name}"), Some(len))?;
                let t = self.expr(value)?;
                if t != elem {
                    return Err(format!(
                        "store of a {} into shared array {name} of {}",
                        show(t),
                        show(elem)
                    ));
                }
            }
            Stmt::If { cond, then, els } => {
                let t = self.expr(cond)?;
                if t != Type::BOOL {
                    return Err(format!("if condition has type {}, not bool", show(t)));
                }
                self.block(then, in_loop)?;
                self.block(els, in_loop)?;
            }
            Stmt::For {
                var,
                start,
                end,
                body,
                ..
            } => {
                for (what, e) in [("start", start), ("end", end)] {
                    let t = self.expr(e)?;
                    if t != Type::I32 {
                        return Err(format!("loop {what} has type {}, not i32", show(t)));
                    }
                }
                let mark = self.scope.len();
                let vt = self.declare(*var)?;
                if vt != Type::I32 {
                    return Err(format!(
                        "loop variable v{} has type {}, not i32",
                        var.0,
                        show(vt)
                    ));
                }
                self.block(body, true)?;
                self.close(mark);
            }
            Stmt::Break => {
                if !in_loop {
                    return Err("break outside a loop".into());
                }
            }
            Stmt::Return | Stmt::Barrier(_) | Stmt::AsyncCommit | Stmt::AsyncWait { .. } => {}
            Stmt::LoadMatrix {
                arr, index, dst, ..
            } => {
                let s = self.shared(*arr)?;
                let (sname, selem) = (s.name.clone(), s.elem);
                if selem.scalar.size() * u32::from(selem.lanes) != 16 {
                    return Err(format!(
                        "ldmatrix from shared {sname} of {}: needs 16-byte elements (matrix rows)",
                        show(selem)
                    ));
                }
                let t = self.expr(index)?;
                if t != Type::I32 && t != Type::U32 {
                    return Err(format!("ldmatrix index has type {}", show(t)));
                }
                if !matches!(dst.len(), 1 | 2 | 4) {
                    return Err(format!("ldmatrix into {} locals (1, 2 or 4)", dst.len()));
                }
                for v in dst {
                    let vt = self.use_var(*v)?;
                    if vt != Type::U32 {
                        return Err(format!("ldmatrix into v{} of type {}", v.0, show(vt)));
                    }
                }
            }
            Stmt::Mma { a, b, c, .. } => {
                for v in a.iter().chain(b).chain(c) {
                    self.use_var(*v)?;
                }
            }
            Stmt::AsyncCopy { arr, dst, buf, src } => {
                let s = self.shared(*arr)?;
                let (sname, selem, len) = (s.name.clone(), s.elem, s.len);
                let b = self.buffer(*buf)?;
                let (bname, belem) = (b.name.clone(), b.elem);
                if selem != belem {
                    return Err(format!(
                        "async copy from buffer {bname} of {} into shared array {sname} of {}",
                        show(belem),
                        show(selem)
                    ));
                }
                self.index(dst, &format!("shared array {sname}"), Some(len))?;
                self.index(src, &format!("buffer {bname}"), None)?;
            }
        }
        Ok(())
    }

    /// Checks an expression and returns its type (the same type [`Kernel::type_of`] gives).
    fn expr(&mut self, e: &Expr) -> R<Type> {
        Ok(match e {
            Expr::F32(_) => Type::F32,
            Expr::F16(v) => {
                if v.is_finite() && f32::from(half::f16::from_f32(*v)) != *v {
                    return Err(format!("f16 literal {v:?} is not exactly representable"));
                }
                Type::F16
            }
            Expr::I32(_) => Type::I32,
            Expr::U32(_) => Type::U32,
            Expr::Bool(_) => Type::BOOL,
            Expr::Var(v) => self.use_var(*v)?,
            Expr::Builtin(b) => {
                if let Builtin::GlobalId(a)
                | Builtin::LocalId(a)
                | Builtin::WorkgroupId(a)
                | Builtin::NumWorkgroups(a) = b
                    && *a > 2
                {
                    return Err(format!("builtin {b:?} has axis {a}, not 0..=2"));
                }
                Type::U32
            }
            Expr::Load { buf, index } => {
                let b = self.buffer(*buf)?;
                let (name, elem) = (b.name.clone(), b.elem);
                self.index(index, &format!("buffer {name}"), None)?;
                elem
            }
            Expr::LoadShared { arr, index } => {
                let s = self.shared(*arr)?;
                let (name, elem, len) = (s.name.clone(), s.elem, s.len);
                self.index(index, &format!("shared array {name}"), Some(len))?;
                elem
            }
            Expr::Unary(op, x) => {
                let t = self.expr(x)?;
                let s = t.scalar;
                let ok = match op {
                    UnOp::Neg | UnOp::Abs => s != Scalar::Bool,
                    UnOp::Not => s != Scalar::F32 && s != Scalar::F16,
                    UnOp::Sign => s != Scalar::Bool && s != Scalar::U32,
                    _ => s.is_float(),
                };
                if !ok {
                    return Err(format!("{op:?} is not defined on {}", show(t)));
                }
                match op {
                    UnOp::IsNan | UnOp::IsInf => Type::vec(Scalar::Bool, t.lanes),
                    _ => t,
                }
            }
            Expr::Binary(op, a, b) => {
                let ta = self.expr(a)?;
                let tb = self.expr(b)?;
                let s = ta.scalar;
                if matches!(op, BinOp::Shl | BinOp::Shr) {
                    if !is_int(s) {
                        return Err(format!("{op:?} is not defined on {}", show(ta)));
                    }
                    if tb != Type::vec(Scalar::U32, ta.lanes) {
                        return Err(format!(
                            "{op:?} shift amount has type {}, not {}",
                            show(tb),
                            show(Type::vec(Scalar::U32, ta.lanes))
                        ));
                    }
                    return Ok(ta);
                }
                if ta != tb {
                    return Err(format!(
                        "operands of {op:?} differ: {} vs {}",
                        show(ta),
                        show(tb)
                    ));
                }
                let ok = match op {
                    BinOp::Pow | BinOp::Atan2 => s.is_float(),
                    BinOp::Eq | BinOp::Ne => true,
                    BinOp::And | BinOp::Or | BinOp::Xor => !s.is_float(),
                    _ => s != Scalar::Bool,
                };
                if !ok {
                    return Err(format!("{op:?} is not defined on {}", show(ta)));
                }
                if matches!(op, BinOp::Div | BinOp::Rem)
                    && is_int(s)
                    && matches!(**b, Expr::I32(0) | Expr::U32(0))
                {
                    // naga rejects it even with a non-constant dividend.
                    return Err(format!("integer {op:?} by a literal zero"));
                }
                if op.is_comparison() {
                    Type::vec(Scalar::Bool, ta.lanes)
                } else {
                    ta
                }
            }
            Expr::Select { cond, t, f } => {
                let tc = self.expr(cond)?;
                let tt = self.expr(t)?;
                let tf = self.expr(f)?;
                if tc.scalar != Scalar::Bool || (tc.lanes != 1 && tc.lanes != tt.lanes) {
                    let want = if tt.lanes == 1 {
                        "bool".to_string()
                    } else {
                        format!("bool or vec{}<bool>", tt.lanes)
                    };
                    return Err(format!(
                        "select condition has type {}, not {want}",
                        show(tc)
                    ));
                }
                if tt != tf {
                    return Err(format!(
                        "select branches differ: {} vs {}",
                        show(tt),
                        show(tf)
                    ));
                }
                tt
            }
            Expr::Fma(a, b, c) => {
                let ts = [self.expr(a)?, self.expr(b)?, self.expr(c)?];
                if ts[1] != ts[0] || ts[2] != ts[0] {
                    return Err(format!(
                        "fma operands differ: {}, {}, {}",
                        show(ts[0]),
                        show(ts[1]),
                        show(ts[2])
                    ));
                }
                if ts[0].scalar == Scalar::Bool {
                    return Err(format!("fma is not defined on {}", show(ts[0])));
                }
                ts[0]
            }
            Expr::Cast(s, x) => Type::vec(*s, self.expr(x)?.lanes),
            Expr::Bitcast(s, x) => {
                let t = self.expr(x)?;
                let bits32 = |s: Scalar| matches!(s, Scalar::F32 | Scalar::I32 | Scalar::U32);
                let pair = t == Type::vec(Scalar::F16, 2);
                if !(bits32(t.scalar) || pair) || !bits32(*s) {
                    return Err(format!(
                        "bitcast from {} to {s} is neither between 32-bit types nor a \
                         vec2<f16> packed into one",
                        show(t)
                    ));
                }
                optc_kernels::ir::bitcast_type(*s, t)
            }
            Expr::Vector(xs) => {
                if !matches!(xs.len(), 2 | 4) {
                    return Err(format!("vector of {} elements (need 2 or 4)", xs.len()));
                }
                let mut first = None;
                for x in xs {
                    let t = self.expr(x)?;
                    if t.lanes != 1 {
                        return Err(format!("vector element of type {} is not scalar", show(t)));
                    }
                    match first {
                        None => first = Some(t),
                        Some(f) if f != t => {
                            return Err(format!(
                                "vector elements differ: {} vs {}",
                                show(f),
                                show(t)
                            ));
                        }
                        _ => {}
                    }
                }
                Type::vec(first.expect("non-empty").scalar, xs.len() as u8)
            }
            Expr::Splat(n, x) => {
                let t = self.expr(x)?;
                if !matches!(n, 2 | 4) {
                    return Err(format!("splat to {n} lanes (need 2 or 4)"));
                }
                if t.lanes != 1 {
                    return Err(format!("splat of non-scalar {}", show(t)));
                }
                Type::vec(t.scalar, *n)
            }
            Expr::Lane(x, i) => {
                let t = self.expr(x)?;
                if t.lanes == 1 || *i >= t.lanes {
                    return Err(format!("lane {i} of a {}", show(t)));
                }
                Type::scalar(t.scalar)
            }
            Expr::Subgroup { op, value, lane } => {
                let t = self.expr(value)?;
                if t.scalar == Scalar::Bool {
                    return Err(format!("subgroup {op:?} is not defined on {}", show(t)));
                }
                match (op, lane) {
                    (SubgroupOp::Shuffle, Some(l)) => {
                        let tl = self.expr(l)?;
                        if !is_index(tl) {
                            return Err(format!(
                                "subgroup shuffle lane has type {}, not u32",
                                show(tl)
                            ));
                        }
                    }
                    (SubgroupOp::Broadcast, Some(l)) => {
                        if !matches!(**l, Expr::U32(_)) && !matches!(**l, Expr::I32(v) if v >= 0) {
                            return Err("subgroup broadcast lane must be a u32 literal".to_string());
                        }
                    }
                    (SubgroupOp::Add | SubgroupOp::Max | SubgroupOp::Min, None) => {}
                    (op, Some(_)) => {
                        return Err(format!("subgroup {op:?} takes no lane operand"));
                    }
                    (op, None) => return Err(format!("subgroup {op:?} needs a lane operand")),
                }
                t
            }
        })
    }
}

fn valid_type(t: Type) -> R<()> {
    if matches!(t.lanes, 1 | 2 | 4) {
        Ok(())
    } else {
        Err(format!("type with {} lanes (need 1, 2 or 4)", t.lanes))
    }
}
