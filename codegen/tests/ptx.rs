//! PTX printer tests: snapshots of representative kernels, the kernels of every template (each
//! op family lowered through `optc_kernels::lower`), random expression trees, and refusals —
//! and every printed module assembled by NVIDIA's ptxas for every target when ptxas is installed
//! (`scripts/setup-ptxas.sh`; the root crate's `tests/ptxas.rs` is the check that *requires* it).

mod common;

use common::*;
use optc_codegen::ptxas;
use optc_codegen::{PtxError, PtxTarget, emit_ptx};
use optc_ir::ops::{
    ActivationOp, AutoPad, BinaryOp, ConvAttrs, CoordTransform, NearestMode, NormOp, PadMode,
    ReduceOp, ResizeAttrs, ResizeMode, UnaryOp, VariadicOp, Window,
};
use optc_ir::{DType, Graph, Op, Tensor, TensorType};
use optc_kernels::KernelBuilder;
use optc_kernels::builder::{f, u};
use optc_kernels::ir::{
    Access, Builtin, Expr, Kernel, MmaShape, Scalar, Stmt, SubgroupOp, Type, Var,
};
use optc_kernels::lower::{Features, LowerCtx, TensorDesc, lower};
use std::path::{Path, PathBuf};

/// Prints `k` for `t` and checks printing is deterministic.
fn ptx(k: &Kernel, t: PtxTarget) -> String {
    let src = emit_ptx(k, t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        emit_ptx(k, t).unwrap(),
        src,
        "printing is not deterministic"
    );
    src
}

#[test]
fn snapshot_elementwise_add() {
    insta::assert_snapshot!(ptx(&elementwise_add(), PtxTarget::Sm89));
}

#[test]
fn snapshot_vec4_copy() {
    insta::assert_snapshot!(ptx(&vec4_copy(), PtxTarget::Sm80));
}

#[test]
fn snapshot_tree_reduction() {
    insta::assert_snapshot!(ptx(&tree_reduction(), PtxTarget::Sm86));
}

#[test]
fn snapshot_subgroup_shuffle() {
    insta::assert_snapshot!(ptx(&subgroup_shuffle(), PtxTarget::Sm90));
}

#[test]
fn snapshot_f16() {
    insta::assert_snapshot!(ptx(&f16_kernel(), PtxTarget::Sm90a));
}

#[test]
fn header_declares_target_version_and_abi() {
    let k = elementwise_add();
    let a = ptx(&k, PtxTarget::Sm80);
    assert!(a.contains(".version 7.8\n.target sm_80\n.address_size 64\n"));
    assert!(a.contains(".visible .entry add_bcast(\n\t.param .u64 p0,"));
    assert!(a.contains("\t.param .u64 p2\t// binding 2: out (f32, read_write)\n)"));
    assert!(a.contains(".reqntid 64, 1, 1\n"));
    let b = ptx(&k, PtxTarget::Sm90a);
    assert!(b.contains(".version 8.0\n.target sm_90a\n"));
    for t in PtxTarget::ALL {
        assert_eq!(t.name().parse::<PtxTarget>(), Ok(t));
    }
}

#[test]
fn literals_are_exact_immediates() {
    let mut b = KernelBuilder::new("lits", [1, 1, 1]);
    let y = b.buffer("y", Type::F32, Access::ReadWrite);
    let z = b.buffer("z", Type::I32, Access::ReadWrite);
    let h = b.buffer("h", Type::F16, Access::ReadWrite);
    for (n, x) in [
        0.1f32,
        -0.0,
        f32::from_bits(0x7fc0_1234),
        f32::NEG_INFINITY,
        1e-45,
    ]
    .into_iter()
    .enumerate()
    {
        b.store(y, u(n as u32), f(x));
    }
    b.store(z, u(0), Expr::I32(i32::MIN));
    b.store(h, u(0), Expr::F16(-2.0));
    let s = ptx(&b.finish(), PtxTarget::Sm89);
    for want in [
        "st.global.f32 [%rd1+0], 0f3DCCCCCD",
        "st.global.f32 [%rd1+4], 0f80000000",
        "st.global.f32 [%rd1+8], 0f7FC01234",
        "st.global.f32 [%rd1+12], 0fFF800000",
        "st.global.f32 [%rd1+16], 0f00000001",
        "st.global.u32 [%rd3+0], -2147483648",
        "st.global.b16 [%rd5+0], 0xC000",
    ] {
        assert!(s.contains(want), "missing `{want}` in\n{s}");
    }
}

// ---- refusals -----------------------------------------------------------------------------

fn mma_kernel(shape: MmaShape, a_ty: Type, n_a: usize) -> Kernel {
    let mut b = KernelBuilder::new("tensor_core", [32, 1, 1]);
    let out = b.buffer("out", Type::F32, Access::ReadWrite);
    let a: Vec<Var> = (0..n_a).map(|_| b.var(a_ty, zero(a_ty))).collect();
    let bb: Vec<Var> = (0..2).map(|_| b.var(a_ty, zero(a_ty))).collect();
    let c: Vec<Var> = (0..4).map(|_| b.var(Type::F32, f(0.0))).collect();
    b.stmt(Stmt::Mma {
        shape,
        a,
        b: bb,
        c: c.clone(),
    });
    let lane = Expr::Builtin(Builtin::SubgroupLane);
    for (i, v) in c.iter().enumerate() {
        b.store(out, lane.clone() * u(4) + u(i as u32), Expr::Var(*v));
    }
    b.finish()
}

fn zero(t: Type) -> Expr {
    if t == Type::U32 {
        u(0)
    } else {
        Expr::Splat(2, Box::new(Expr::F16(0.0)))
    }
}

#[test]
fn mma_prints_for_its_shapes_and_is_refused_otherwise() {
    for t in [Type::U32, Type::vec(Scalar::F16, 2)] {
        let s = ptx(&mma_kernel(MmaShape::M16N8K16_F16, t, 4), PtxTarget::Sm80);
        assert!(s.contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {"));
    }
    let s = ptx(
        &mma_kernel(MmaShape::M16N8K16_BF16, Type::U32, 4),
        PtxTarget::Sm80,
    );
    assert!(s.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {"));
    // bf16 fragments are packed u32s only.
    assert!(matches!(
        emit_ptx(
            &mma_kernel(MmaShape::M16N8K16_BF16, Type::vec(Scalar::F16, 2), 4),
            PtxTarget::Sm80
        ),
        Err(PtxError::Unsupported { .. })
    ));
    let bad = MmaShape {
        k: 8,
        ..MmaShape::M16N8K16_F16
    };
    match emit_ptx(&mma_kernel(bad, Type::U32, 4), PtxTarget::Sm80) {
        Err(PtxError::Unsupported { kernel, what }) => {
            assert_eq!(kernel, "tensor_core");
            assert!(what.contains("m16n8k8"), "{what}");
        }
        r => panic!("expected Unsupported, got {r:?}"),
    }
    assert!(matches!(
        emit_ptx(
            &mma_kernel(MmaShape::M16N8K16_F16, Type::U32, 2),
            PtxTarget::Sm80
        ),
        Err(PtxError::Unsupported { .. })
    ));
}

#[test]
fn unexpressible_kernels_are_refused() {
    // A float subgroup reduction in a workgroup that is not a whole number of warps.
    let mut b = KernelBuilder::new("partial_warp", [48, 1, 1]);
    let y = b.buffer("y", Type::F32, Access::ReadWrite);
    let s = sub(SubgroupOp::Add, f(1.0), None);
    b.store(y, Expr::Builtin(Builtin::GlobalId(0)), s);
    let e = emit_ptx(&b.finish(), PtxTarget::Sm89).unwrap_err();
    assert!(
        e.to_string()
            .contains("not a whole number of 32-thread warps"),
        "{e}"
    );
    // Integer reductions and shuffles in such a workgroup are fine (redux.sync with the mask).
    let mut b = KernelBuilder::new("partial_warp_int", [48, 1, 1]);
    let y = b.buffer("y", Type::U32, Access::ReadWrite);
    let s = sub(SubgroupOp::Add, u(1), None)
        + sub(
            SubgroupOp::Shuffle,
            u(3),
            Some(Expr::Builtin(Builtin::SubgroupLane)),
        );
    b.store(y, Expr::Builtin(Builtin::GlobalId(0)), s);
    let src = ptx(&b.finish(), PtxTarget::Sm89);
    assert!(src.contains("redux.sync.add.u32"), "{src}");
    // Too many threads for a CUDA block.
    let mut b = KernelBuilder::new("huge", [64, 32, 1]);
    b.buffer("y", Type::F32, Access::ReadWrite);
    let e = emit_ptx(&b.finish(), PtxTarget::Sm89).unwrap_err();
    assert!(matches!(e, PtxError::Unsupported { .. }), "{e}");
    // Ill-formed kernels are reported as invalid.
    let mut b = KernelBuilder::new("bad", [1, 1, 1]);
    let y = b.buffer("y", Type::F32, Access::Read);
    b.store(y, u(0), f(1.0));
    assert_eq!(
        emit_ptx(&b.finish(), PtxTarget::Sm89),
        Err(PtxError::Invalid {
            kernel: "bad".into(),
            msg: "store to read-only buffer y".into()
        })
    );
}

// ---- every template -----------------------------------------------------------------------

/// An op input: a runtime tensor or a compile-time constant.
enum In {
    Rt(DType, Vec<usize>),
    Const(Tensor),
}

fn rt(shape: &[usize]) -> In {
    In::Rt(DType::F32, shape.to_vec())
}

fn rtd(dtype: DType, shape: &[usize]) -> In {
    In::Rt(dtype, shape.to_vec())
}

fn ints(v: &[i64]) -> In {
    In::Const(Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap())
}

fn floats(shape: &[usize], v: Vec<f32>) -> In {
    In::Const(Tensor::from_vec(shape.to_vec(), v).unwrap())
}

/// The kernels `op` lowers to for these inputs (output types from the graph IR's inference).
fn lower_op(index: usize, op: Op, ins: Vec<In>, n_out: usize) -> Vec<Kernel> {
    let mut g = Graph::new();
    let mut ids = Vec::new();
    let mut values = Vec::new();
    let mut descs = Vec::new();
    for (k, i) in ins.iter().enumerate() {
        let (id, d, v) = match i {
            In::Rt(dt, s) => (
                g.add_input(format!("i{k}"), TensorType::fixed(*dt, s))
                    .unwrap(),
                TensorDesc::new(*dt, s.clone()),
                None,
            ),
            In::Const(t) => (
                g.add_const(format!("i{k}"), t.clone()).unwrap(),
                TensorDesc::new(t.dtype(), t.shape().to_vec()),
                Some(t),
            ),
        };
        ids.push(Some(id));
        descs.push(Some(d));
        values.push(v);
    }
    let name = format!("n{index}_{}", op.name().to_ascii_lowercase());
    let outs = (0..n_out).map(|k| Some(format!("o{k}"))).collect();
    let (_, out_ids) = g
        .add_node(name.clone(), op.clone(), ids, outs)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let outputs: Vec<Option<TensorDesc>> = out_ids
        .iter()
        .map(|o| {
            let t = g.ty(o.unwrap());
            Some(TensorDesc::new(
                t.dtype,
                t.shape.as_static().unwrap().to_vec(),
            ))
        })
        .collect();
    let ctx = LowerCtx {
        op: &op,
        name: &name,
        inputs: &descs,
        values: &values,
        outputs: &outputs,
        // What the compile driver sets for the sm targets.
        features: Features {
            tensor_cores: true,
            allow_tf32: false,
            small_register_file: true,
            bf16_storage: true,
        },
    };
    let lowered = lower(&ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        !lowered.launches.is_empty() || !lowered.aliases.is_empty(),
        "{name} lowered to nothing"
    );
    lowered.launches.into_iter().map(|l| l.kernel).collect()
}

fn window(k: &[usize], s: &[usize], pads: &[usize]) -> Window {
    Window {
        kernel_shape: k.to_vec(),
        strides: s.to_vec(),
        dilations: vec![],
        pads: pads.to_vec(),
        auto_pad: AutoPad::NotSet,
    }
}

/// Kernels of every template family: elementwise (every unary, activation and binary op,
/// casts, f16 and integer forms), GEMM (MatMul, batched, Gemm, Einsum, integer), conv (direct,
/// pointwise, depthwise, transposed), movement, gather/scatter, resize, reductions, softmax,
/// normalisations and pooling.
fn template_kernels() -> Vec<Kernel> {
    use UnaryOp as U;
    let mut cases: Vec<(Op, Vec<In>, usize)> = Vec::new();
    for op in [
        U::Abs,
        U::Neg,
        U::Exp,
        U::Log,
        U::Sqrt,
        U::Reciprocal,
        U::Sin,
        U::Cos,
        U::Tan,
        U::Asin,
        U::Acos,
        U::Atan,
        U::Sinh,
        U::Cosh,
        U::Asinh,
        U::Acosh,
        U::Atanh,
        U::Tanh,
        U::Sigmoid,
        U::Erf,
        U::Floor,
        U::Ceil,
        U::Round,
        U::Sign,
        U::IsNaN,
        U::Relu,
        U::Softplus,
        U::Softsign,
        U::Mish,
        U::HardSwish,
    ] {
        cases.push((Op::Unary(op), vec![rt(&[3, 5])], 1));
    }
    cases.push((Op::Unary(U::Not), vec![rtd(DType::Bool, &[7])], 1));
    cases.push((Op::Unary(U::Abs), vec![rtd(DType::I32, &[7])], 1));
    cases.push((Op::Unary(U::Exp), vec![rtd(DType::F16, &[6])], 1));
    for a in [
        ActivationOp::LeakyRelu { alpha: 0.1 },
        ActivationOp::Elu { alpha: 1.0 },
        ActivationOp::Selu {
            alpha: 1.67,
            gamma: 1.05,
        },
        ActivationOp::Celu { alpha: 1.0 },
        ActivationOp::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        ActivationOp::ThresholdedRelu { alpha: 1.0 },
        ActivationOp::Gelu { tanh: false },
        ActivationOp::Gelu { tanh: true },
        ActivationOp::IsInf {
            detect_negative: true,
            detect_positive: true,
        },
    ] {
        cases.push((Op::Activation(a), vec![rt(&[4, 4])], 1));
    }
    use BinaryOp as B;
    for op in [
        B::Add,
        B::Sub,
        B::Mul,
        B::Div,
        B::Pow,
        B::Mod { fmod: true },
        B::Equal,
        B::Less,
        B::Greater,
        B::LessOrEqual,
        B::GreaterOrEqual,
        B::PRelu,
    ] {
        cases.push((Op::Binary(op), vec![rt(&[2, 3, 4]), rt(&[3, 1])], 1));
    }
    for op in [B::Add, B::Div, B::Mod { fmod: false }, B::Mul] {
        cases.push((
            Op::Binary(op),
            vec![rtd(DType::I32, &[4, 5]), rtd(DType::I32, &[5])],
            1,
        ));
    }
    for op in [B::And, B::Or, B::Xor] {
        cases.push((
            Op::Binary(op),
            vec![rtd(DType::Bool, &[6]), rtd(DType::Bool, &[6])],
            1,
        ));
    }
    for op in [B::BitShiftLeft, B::BitShiftRight] {
        cases.push((
            Op::Binary(op),
            vec![rtd(DType::U8, &[6]), rtd(DType::U8, &[6])],
            1,
        ));
    }
    cases.push((
        Op::Binary(B::Add),
        vec![rtd(DType::F16, &[8]), rtd(DType::F16, &[8])],
        1,
    ));
    for op in [
        VariadicOp::Sum,
        VariadicOp::Max,
        VariadicOp::Min,
        VariadicOp::Mean,
    ] {
        cases.push((
            Op::Variadic(op),
            vec![rt(&[4, 1]), rt(&[4, 3]), rt(&[3])],
            1,
        ));
    }
    cases.push((
        Op::Where,
        vec![rtd(DType::Bool, &[2, 3]), rt(&[2, 3]), rt(&[3])],
        1,
    ));
    cases.push((
        Op::Clip,
        vec![rt(&[10]), floats(&[], vec![-1.0]), floats(&[], vec![1.0])],
        1,
    ));
    for (from, to) in [
        (DType::F32, DType::I32),
        (DType::F32, DType::F16),
        (DType::F16, DType::F32),
        (DType::I64, DType::F32),
        (DType::F32, DType::U8),
        (DType::F32, DType::Bool),
        (DType::Bool, DType::F32),
    ] {
        cases.push((Op::Cast { to }, vec![rtd(from, &[9])], 1));
    }
    // GEMM family.
    cases.push((Op::MatMul, vec![rt(&[16, 32]), rt(&[32, 24])], 1));
    cases.push((Op::MatMul, vec![rt(&[3, 5, 7]), rt(&[7, 9])], 1));
    cases.push((Op::MatMul, vec![rt(&[1, 64, 64]), rt(&[1, 64, 64])], 1));
    cases.push((
        Op::Gemm {
            alpha: 0.5,
            beta: 2.0,
            trans_a: false,
            trans_b: true,
        },
        vec![rt(&[8, 16]), rt(&[12, 16]), rt(&[12])],
        1,
    ));
    cases.push((
        Op::Einsum {
            equation: "bij,bjk->bik".into(),
        },
        vec![rt(&[2, 3, 4]), rt(&[2, 4, 5])],
        1,
    ));
    cases.push((
        Op::MatMulInteger,
        vec![rtd(DType::U8, &[4, 8]), rtd(DType::U8, &[8, 3])],
        1,
    ));
    // Convolutions.
    let conv = |k: &[usize], s: &[usize], p: &[usize], group: usize| {
        Op::Conv(ConvAttrs {
            window: window(k, s, p),
            group,
            layout: Default::default(),
        })
    };
    cases.push((
        conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 1),
        vec![rt(&[1, 3, 10, 10]), rt(&[8, 3, 3, 3]), rt(&[8])],
        1,
    ));
    cases.push((
        conv(&[1, 1], &[1, 1], &[], 1),
        vec![rt(&[2, 16, 5, 5]), rt(&[32, 16, 1, 1])],
        1,
    ));
    cases.push((
        conv(&[3, 3], &[2, 2], &[1, 1, 1, 1], 8),
        vec![rt(&[1, 8, 9, 9]), rt(&[8, 1, 3, 3])],
        1,
    ));
    cases.push((
        conv(&[3], &[1], &[0, 0], 1),
        vec![rt(&[1, 2, 12]), rt(&[4, 2, 3])],
        1,
    ));
    cases.push((
        Op::ConvTranspose {
            conv: ConvAttrs {
                window: window(&[3, 3], &[2, 2], &[1, 1, 1, 1]),
                group: 1,
                layout: Default::default(),
            },
            output_padding: vec![],
            output_shape: vec![],
        },
        vec![rt(&[1, 4, 5, 5]), rt(&[4, 2, 3, 3])],
        1,
    ));
    // Movement.
    cases.push((
        Op::Transpose {
            perm: Some(vec![0, 2, 3, 1]),
        },
        vec![rt(&[2, 3, 4, 5])],
        1,
    ));
    cases.push((
        Op::Slice,
        vec![
            rt(&[6, 8]),
            ints(&[1, 0]),
            ints(&[5, 8]),
            ints(&[0, 1]),
            ints(&[2, 3]),
        ],
        1,
    ));
    cases.push((
        Op::Concat { axis: 1 },
        vec![rt(&[2, 3]), rt(&[2, 5]), rt(&[2, 1])],
        1,
    ));
    cases.push((
        Op::Split {
            axis: 0,
            num_outputs: Some(2),
        },
        vec![rt(&[6, 2])],
        2,
    ));
    cases.push((
        Op::Pad {
            mode: PadMode::Reflect,
        },
        vec![rt(&[1, 2, 5, 5]), ints(&[0, 0, 1, 2, 0, 0, 2, 1])],
        1,
    ));
    cases.push((Op::Expand, vec![rt(&[3, 1]), ints(&[2, 3, 4])], 1));
    cases.push((Op::Tile, vec![rt(&[2, 3]), ints(&[2, 2])], 1));
    cases.push((
        Op::DepthToSpace {
            blocksize: 2,
            crd: true,
        },
        vec![rt(&[1, 8, 3, 3])],
        1,
    ));
    cases.push((Op::Trilu { upper: true }, vec![rt(&[4, 5])], 1));
    cases.push((Op::Range, vec![ints(&[0]), ints(&[10]), ints(&[3])], 1));
    // Gather / scatter.
    cases.push((
        Op::Gather { axis: 0 },
        vec![rt(&[50, 16]), rtd(DType::I64, &[2, 7])],
        1,
    ));
    cases.push((
        Op::GatherElements { axis: 1 },
        vec![rt(&[3, 4]), rtd(DType::I64, &[3, 2])],
        1,
    ));
    cases.push((
        Op::ScatterElements {
            axis: 0,
            reduction: optc_ir::ops::ScatterReduction::None,
        },
        vec![rt(&[4, 3]), rtd(DType::I64, &[2, 3]), rt(&[2, 3])],
        1,
    ));
    // Resize.
    cases.push((
        Op::Resize(Box::new(ResizeAttrs {
            mode: ResizeMode::Linear,
            coord: CoordTransform::HalfPixel,
            nearest: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: vec![],
            aspect: optc_ir::ops::AspectPolicy::Stretch,
        })),
        vec![
            rt(&[1, 2, 4, 4]),
            floats(&[0], vec![]),
            floats(&[4], vec![1.0, 1.0, 2.0, 2.0]),
        ],
        1,
    ));
    // Reductions, softmax.
    for op in [
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::Mean,
        ReduceOp::LogSumExp,
    ] {
        cases.push((
            Op::Reduce {
                op,
                keepdims: true,
                noop_with_empty_axes: false,
            },
            vec![rt(&[4, 300]), ints(&[1])],
            1,
        ));
    }
    cases.push((
        Op::Reduce {
            op: ReduceOp::Sum,
            keepdims: false,
            noop_with_empty_axes: false,
        },
        vec![rt(&[64, 3]), ints(&[0])],
        1,
    ));
    cases.push((
        Op::ArgMax {
            axis: 1,
            keepdims: false,
            select_last_index: false,
        },
        vec![rt(&[3, 10])],
        1,
    ));
    cases.push((
        Op::CumSum {
            exclusive: false,
            reverse: true,
        },
        vec![rt(&[3, 10]), ints(&[1])],
        1,
    ));
    cases.push((
        Op::TopK {
            axis: -1,
            largest: true,
            sorted: true,
        },
        vec![rt(&[3, 20]), ints(&[4])],
        2,
    ));
    cases.push((
        Op::Softmax {
            axis: -1,
            legacy: false,
        },
        vec![rt(&[6, 1000])],
        1,
    ));
    cases.push((
        Op::LogSoftmax {
            axis: 1,
            legacy: false,
        },
        vec![rt(&[4, 7, 3])],
        1,
    ));
    // Normalisations.
    cases.push((
        Op::Norm {
            op: NormOp::LayerNormalization { axis: -1 },
            epsilon: 1e-5,
        },
        vec![rt(&[2, 5, 64]), rt(&[64]), rt(&[64])],
        1,
    ));
    cases.push((
        Op::Norm {
            op: NormOp::BatchNormalization,
            epsilon: 1e-5,
        },
        vec![rt(&[2, 3, 4, 4]), rt(&[3]), rt(&[3]), rt(&[3]), rt(&[3])],
        1,
    ));
    cases.push((
        Op::Norm {
            op: NormOp::InstanceNormalization,
            epsilon: 1e-5,
        },
        vec![rt(&[2, 3, 4, 4]), rt(&[3]), rt(&[3])],
        1,
    ));
    cases.push((Op::LpNormalization { axis: -1, p: 2 }, vec![rt(&[3, 9])], 1));
    cases.push((
        Op::Lrn {
            alpha: 1e-4,
            beta: 0.75,
            bias: 1.0,
            size: 3,
        },
        vec![rt(&[1, 5, 3, 3])],
        1,
    ));
    // Pooling.
    cases.push((
        Op::MaxPool {
            window: window(&[3, 3], &[2, 2], &[1, 1, 1, 1]),
            ceil_mode: false,
            storage_order: 0,
        },
        vec![rt(&[1, 3, 9, 9])],
        1,
    ));
    cases.push((
        Op::AveragePool {
            window: window(&[2, 2], &[2, 2], &[]),
            ceil_mode: true,
            count_include_pad: false,
        },
        vec![rt(&[1, 3, 7, 7])],
        1,
    ));
    cases.push((Op::GlobalAveragePool, vec![rt(&[2, 64, 7, 7])], 1));
    cases.push((Op::GlobalMaxPool, vec![rt(&[2, 8, 5, 5])], 1));

    let mut kernels = Vec::new();
    for (i, (op, ins, n_out)) in cases.into_iter().enumerate() {
        kernels.extend(lower_op(i, op, ins, n_out));
    }
    kernels
}

// ---- assembling with ptxas ----------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes each kernel's PTX for `t` into `dir` and assembles them all in one ptxas run.
fn assemble_all(ptxas_bin: &Path, kernels: &[Kernel], t: PtxTarget, dir: &Path) {
    let mut files = Vec::new();
    for k in kernels {
        let src = ptx(k, t);
        let f = dir.join(format!("{}.ptx", k.name));
        std::fs::write(&f, src).unwrap();
        files.push(f);
    }
    let out = dir.join(format!("all_{}.cubin", t.name()));
    if let Err(e) = ptxas::assemble(ptxas_bin, &files, t, &out) {
        panic!("{e}");
    }
}

#[test]
fn every_kernel_prints_and_assembles_with_ptxas() {
    let mut kernels = vec![
        elementwise_add(),
        vec4_copy(),
        tree_reduction(),
        subgroup_shuffle(),
        f16_kernel(),
        every_op(),
        mma_kernel(MmaShape::M16N8K16_F16, Type::U32, 4),
    ];
    let mut gen_ = Gen {
        rng: Rng(0x5eed),
        vars: [Var(0); 4],
    };
    for round in 0..40 {
        kernels.push(random_kernel(&mut gen_, round));
    }
    let templates = template_kernels();
    assert!(
        templates.len() > 100,
        "only {} template kernels",
        templates.len()
    );
    kernels.extend(templates);
    // Every kernel prints for every target (with distinct entry names for one ptxas run).
    for k in &kernels {
        for t in PtxTarget::ALL {
            ptx(k, t);
        }
    }
    let Some(bin) = ptxas::find(&workspace_root()) else {
        eprintln!(
            "\n!!!!!!!! WARNING: ptxas not found ($OPTC_PTXAS, .venv or PATH): {} kernels were printed \
             but NOT assembled.\n!!!!!!!! Run scripts/setup-ptxas.sh (tests/ptxas.rs requires it).\n",
            kernels.len()
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("optc-codegen-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for t in PtxTarget::ALL {
        assemble_all(&bin, &kernels, t, &dir);
    }
    eprintln!(
        "assembled {} kernels for {} targets with {}",
        kernels.len(),
        PtxTarget::ALL.len(),
        bin.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
