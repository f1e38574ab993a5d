//! WGSL printer tests: snapshots of representative kernels (each also validated by naga),
//! random expression trees, checker rejections, Mma refusal and exact literal round trips.

mod common;

use common::*;
use optc_codegen::{CodegenError, check, emit_wgsl, validate_wgsl};
use optc_kernels::KernelBuilder;
use optc_kernels::builder::{f, i, select, u};
use optc_kernels::ir::{Access, BinOp, Expr, Kernel, MmaElem, MmaShape, Scalar, Stmt, Type, Var};

/// Prints `k`, validates the text with naga, and checks printing is deterministic.
fn wgsl(k: &Kernel) -> String {
    let src = emit_wgsl(k).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = validate_wgsl(&src) {
        panic!("{e}\n--- source ---\n{src}");
    }
    assert_eq!(emit_wgsl(k).unwrap(), src, "printing is not deterministic");
    src
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

#[test]
fn random_expression_trees_print_to_valid_wgsl() {
    let mut gen_ = Gen {
        rng: Rng(0x5eed),
        vars: [Var(0); 4],
    };
    for round in 0..40 {
        let k = random_kernel(&mut gen_, round);
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
            ab: MmaElem::F16,
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

#[test]
fn f16_pairs_bitcast_is_refused() {
    // `Bitcast(u32, vec2<f16>)` type-checks as one u32 (the PTX printer packs the pair, see
    // ptx_semantics.rs) but has no WGSL form naga accepts; a lone half never bitcasts.
    let mut b = KernelBuilder::new("pack", [1, 1, 1]);
    let h = b.buffer("h", Type::F16, Access::Read);
    let z = b.buffer("z", Type::U32, Access::ReadWrite);
    let pair = Expr::Vector(vec![Expr::load(h, u(0)), Expr::load(h, u(1))]);
    b.store(z, u(0), Expr::Bitcast(Scalar::U32, Box::new(pair)));
    let k = b.finish();
    check(&k).unwrap();
    assert!(matches!(
        emit_wgsl(&k),
        Err(CodegenError::Unsupported { what, .. }) if what.contains("vec2<f16> packed")
    ));
    let mut b = KernelBuilder::new("bad_pack", [1, 1, 1]);
    let h = b.buffer("h", Type::F16, Access::Read);
    let z = b.buffer("z", Type::U32, Access::ReadWrite);
    b.store(
        z,
        u(0),
        Expr::Bitcast(Scalar::U32, Box::new(Expr::load(h, u(0)))),
    );
    assert!(invalid(&b.finish()).contains("bitcast from f16 to u32"));
}
