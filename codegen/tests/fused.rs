//! Fused kernels (`Op::Fused`) lowered by the templates print to WGSL that naga accepts: an
//! elementwise chain, and epilogues on every anchor template (implicit-GEMM, pointwise and
//! depthwise Conv, MatMul with vec4 stores, Gemm, the integer dot kernel), in f32 and f16;
//! one fused kernel is snapshotted.

use optc_codegen::{emit_wgsl, validate_wgsl};
use optc_ir::dtype::DType;
use optc_ir::ops::{
    ActivationOp, AutoPad, BinaryOp, ConvAttrs, Fused, Op, Program, Step, UnaryOp, VariadicOp,
    Window,
};
use optc_kernels::lower::{LowerCtx, TensorDesc, fused::supports_fused, lower};

fn st(op: Op, args: &[usize]) -> Step {
    Step {
        op,
        args: args.iter().map(|&a| Some(a)).collect(),
    }
}

fn bin(op: BinaryOp, a: usize, b: usize) -> Step {
    st(Op::Binary(op), &[a, b])
}

fn fused(anchor: Option<Op>, anchor_inputs: usize, inputs: usize, steps: Vec<Step>) -> Fused {
    Fused {
        anchor,
        anchor_inputs,
        program: Program { inputs, steps },
    }
}

fn conv(k: usize, pad: usize, group: usize) -> Op {
    Op::Conv(ConvAttrs {
        window: Window {
            kernel_shape: vec![k, k],
            strides: vec![1, 1],
            dilations: vec![],
            pads: vec![pad; 4],
            auto_pad: AutoPad::NotSet,
        },
        group,
        layout: Default::default(),
    })
}

fn desc(dt: DType, s: &[usize]) -> Option<TensorDesc> {
    Some(TensorDesc::new(dt, s.to_vec()))
}

/// Lowers `f` to its one kernel, prints it, validates it with naga and checks printing is
/// deterministic.
fn wgsl(f: Fused, ins: &[Option<TensorDesc>], out: TensorDesc) -> String {
    let values = vec![None; ins.len()];
    assert!(supports_fused(&f, ins, &values, &out));
    let op = Op::Fused(Box::new(f));
    let outs = [Some(out)];
    let ctx = LowerCtx {
        op: &op,
        name: "n0",
        inputs: ins,
        values: &values,
        outputs: &outs,
        features: Default::default(),
    };
    let l = lower(&ctx).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.launches.len(), 1);
    let k = &l.launches[0].kernel;
    let src = emit_wgsl(k).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = validate_wgsl(&src) {
        panic!("{e}\n--- source ---\n{src}");
    }
    assert_eq!(emit_wgsl(k).unwrap(), src, "printing is not deterministic");
    src
}

/// Eight steps over a tensor, a per-channel `[C, 1, 1]` operand and a scalar.
fn chain8() -> Fused {
    fused(
        None,
        0,
        3,
        vec![
            bin(BinaryOp::Mul, 0, 1),
            bin(BinaryOp::Add, 3, 2),
            st(Op::Unary(UnaryOp::Tanh), &[4]),
            bin(BinaryOp::Sub, 5, 0),
            st(Op::Activation(ActivationOp::LeakyRelu { alpha: 0.1 }), &[6]),
            st(Op::Variadic(VariadicOp::Max), &[7, 4]),
            bin(BinaryOp::Mul, 8, 5),
            st(Op::Unary(UnaryOp::Abs), &[9]),
        ],
    )
}

fn chain8_wgsl(dt: DType) -> String {
    wgsl(
        chain8(),
        &[desc(dt, &[2, 3, 4, 5]), desc(dt, &[3, 1, 1]), desc(dt, &[])],
        TensorDesc::new(dt, vec![2, 3, 4, 5]),
    )
}

#[test]
fn snapshot_fused_elementwise_chain() {
    insta::assert_snapshot!(chain8_wgsl(DType::F32));
}

#[test]
fn fused_elementwise_chain_validates_in_f16() {
    let src = chain8_wgsl(DType::F16);
    assert!(src.contains("enable f16;"));
}

/// Conv (+ bias) → Relu → residual Add.
fn conv_relu_add(cv: Op, x: &[usize], w: &[usize], y: &[usize], dt: DType) -> String {
    let f = fused(
        Some(cv),
        3,
        2,
        vec![st(Op::Unary(UnaryOp::Relu), &[0]), bin(BinaryOp::Add, 2, 1)],
    );
    wgsl(
        f,
        &[desc(dt, x), desc(dt, w), desc(dt, &[w[0]]), desc(dt, y)],
        TensorDesc::new(dt, y.to_vec()),
    )
}

#[test]
fn fused_conv_relu_add_validates_on_every_conv_template() {
    for dt in [DType::F32, DType::F16] {
        // Implicit GEMM (subgroup sharing).
        let src = conv_relu_add(
            conv(3, 1, 1),
            &[1, 32, 16, 16],
            &[64, 32, 3, 3],
            &[1, 64, 16, 16],
            dt,
        );
        assert!(src.contains("subgroupBroadcast"));
        // Pointwise 1×1 (vec4 stores when f32).
        conv_relu_add(
            conv(1, 0, 1),
            &[1, 32, 16, 16],
            &[64, 32, 1, 1],
            &[1, 64, 16, 16],
            dt,
        );
        // Depthwise.
        conv_relu_add(
            conv(3, 1, 32),
            &[1, 32, 15, 15],
            &[32, 1, 3, 3],
            &[1, 32, 15, 15],
            dt,
        );
    }
}

#[test]
fn fused_gemm_epilogues_validate() {
    // MatMul + bias + Gelu (tanh) + residual: vec4 stores with the epilogue per lane.
    let f = fused(
        Some(Op::MatMul),
        2,
        3,
        vec![
            bin(BinaryOp::Add, 0, 1),
            st(Op::Activation(ActivationOp::Gelu { tanh: true }), &[3]),
            bin(BinaryOp::Add, 4, 2),
        ],
    );
    let f32d = |s: &[usize]| desc(DType::F32, s);
    wgsl(
        f,
        &[
            f32d(&[128, 64]),
            f32d(&[64, 256]),
            f32d(&[256]),
            f32d(&[128, 256]),
        ],
        TensorDesc::new(DType::F32, vec![128, 256]),
    );
    // Gemm (transB, C) + Relu, then a comparison: a bool output.
    let gemm = Op::Gemm {
        alpha: 0.5,
        beta: 2.0,
        trans_a: false,
        trans_b: true,
    };
    let f = fused(
        Some(gemm),
        3,
        1,
        vec![
            st(Op::Unary(UnaryOp::Relu), &[0]),
            st(Op::Cast { to: DType::Bool }, &[1]),
        ],
    );
    wgsl(
        f,
        &[f32d(&[10, 64]), f32d(&[30, 64]), f32d(&[30])],
        TensorDesc::new(DType::Bool, vec![10, 30]),
    );
    // Integer MatMul + Add.
    let f = fused(Some(Op::MatMul), 2, 2, vec![bin(BinaryOp::Add, 0, 1)]);
    let i32d = |s: &[usize]| desc(DType::I32, s);
    wgsl(
        f,
        &[i32d(&[4, 8]), i32d(&[8, 6]), i32d(&[6])],
        TensorDesc::new(DType::I32, vec![4, 6]),
    );
}
