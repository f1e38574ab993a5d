//! Fused kernels (`Op::Fused`) compiled to WGSL and run through wgpu (lavapipe in CI) against
//! the reference interpreter: an elementwise chain (f32 and f16), and epilogues on the
//! implicit-GEMM, pointwise and depthwise Conv templates, MatMul and Gemm. Each graph is one
//! fused node. Fails (does not skip) when no adapter exists.

use optc_ir::ops::{
    ActivationOp, AutoPad, BinaryOp, ConvAttrs, ConvLayout, Fused, Program, Step, UnaryOp,
    VariadicOp, Window,
};
use optc_ir::{DType, Op, Tensor};

mod common;
use common::{assert_close, device, graph, rand};

fn st(op: Op, args: &[usize]) -> Step {
    Step {
        op,
        args: args.iter().map(|&a| Some(a)).collect(),
    }
}

fn bin(op: BinaryOp, a: usize, b: usize) -> Step {
    st(Op::Binary(op), &[a, b])
}

fn fused(anchor: Option<Op>, anchor_inputs: usize, inputs: usize, steps: Vec<Step>) -> Op {
    Op::Fused(Box::new(Fused {
        anchor,
        anchor_inputs,
        program: Program { inputs, steps },
    }))
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

/// Runs the one-node graph of `op` on `ins` (inputs `consts` are constants) on the device and
/// compares with the reference within `atol + rtol·|want|`.
fn check(
    device: &optc_runtime::wgpu_exec::Device,
    name: &str,
    op: Op,
    ins: &[Tensor],
    consts: &[usize],
    rtol: f64,
    atol: f64,
) {
    let want = optc_ir::interp::eval_op(&op, &ins.iter().cloned().map(Some).collect::<Vec<_>>(), 1)
        .unwrap();
    let (g, feeds) = graph(ins, consts, &[(op, (0..ins.len()).collect())]);
    let got = optc::conformance::run_wgpu(device, &g, name, &feeds)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_close(name, &got[0], &want[0], rtol, atol);
}

#[test]
fn fused_kernels_match_the_reference_on_wgpu() {
    let device = device();
    // Eight elementwise steps over a tensor, a per-channel operand and a scalar.
    let chain = fused(
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
    );
    let ins = [rand(&[2, 3, 4, 5], 1), rand(&[3, 1, 1], 2), rand(&[], 3)];
    check(&device, "chain8", chain.clone(), &ins, &[], 1e-5, 1e-5);
    check(
        &device,
        "chain8_const",
        chain.clone(),
        &ins,
        &[2],
        1e-5,
        1e-5,
    );
    let ins16: Vec<Tensor> = ins.iter().map(|t| t.cast(DType::F16)).collect();
    // f16 intermediates stay f32 in the fused kernel: a few f16 ulps from the unfused rounding.
    check(&device, "chain8_f16", chain, &ins16, &[], 4e-3, 2e-3);

    // Conv + scale/shift [C, 1, 1] + Relu + residual on every conv template.
    let bn = |cv: Op, x: &[usize], w: &[usize], seed: u64| {
        let y = {
            let r = optc_ir::interp::eval_op(
                &cv,
                &[Some(rand(x, 0)), Some(rand(w, 0)), Some(rand(&[w[0]], 0))],
                1,
            )
            .unwrap();
            r[0].shape().to_vec()
        };
        let c = y[1];
        let op = fused(
            Some(cv),
            3,
            4,
            vec![
                bin(BinaryOp::Mul, 0, 1),
                bin(BinaryOp::Add, 4, 2),
                st(Op::Unary(UnaryOp::Relu), &[5]),
                bin(BinaryOp::Add, 6, 3),
            ],
        );
        let ins = vec![
            rand(x, seed),
            rand(w, seed + 1),
            rand(&[w[0]], seed + 2),
            rand(&[c, 1, 1], seed + 3),
            rand(&[c, 1, 1], seed + 4),
            rand(&y, seed + 5),
        ];
        (op, ins)
    };
    for (name, cv, x, w) in [
        ("conv3x3", conv(3, 1, 1), [1, 16, 12, 12], [32, 16, 3, 3]),
        ("conv1x1", conv(1, 0, 1), [2, 16, 8, 8], [32, 16, 1, 1]),
        ("dwconv", conv(3, 1, 16), [1, 16, 9, 9], [16, 1, 3, 3]),
        // Rows a multiple of 4 wide: the vec4 depthwise kernel, epilogue on vec4 stores.
        ("dwconv_vec4", conv(3, 1, 16), [1, 16, 9, 16], [16, 1, 3, 3]),
        ("grouped", conv(3, 1, 4), [1, 16, 8, 8], [16, 4, 3, 3]),
    ] {
        let (op, ins) = bn(cv, &x, &w, 10);
        check(&device, name, op, &ins, &[], 1e-4, 1e-4);
    }
    // Conv + Clip(0, 6) with constant bounds (literals).
    let op = fused(Some(conv(3, 1, 1)), 3, 3, vec![st(Op::Clip, &[0, 1, 2])]);
    let ins = [
        rand(&[1, 8, 10, 10], 20),
        rand(&[16, 8, 3, 3], 21),
        rand(&[16], 22),
        Tensor::scalar(0.0f32),
        Tensor::scalar(6.0f32),
    ];
    check(&device, "conv_clip", op, &ins, &[1, 3, 4], 1e-4, 1e-4);

    // Channels-last convs (the layout stage's) + Clip(0, 6) + residual: the pointwise GEMM
    // with rows = pixels (and writing channels-first), the implicit GEMM reading channels-first
    // and writing channels-last, and both depthwise kernels (vec4 along the channels; scalar
    // for 6 channels).
    #[rustfmt::skip]
    let cases = [
        ("conv1x1_last", 1, 1, [1, 7, 7, 16], [32, 16, 1, 1], (true, true, false)),
        ("conv1x1_last_first", 1, 1, [1, 7, 7, 16], [8, 16, 1, 1], (true, false, false)),
        ("conv3x3_first_last", 3, 1, [1, 8, 10, 10], [16, 8, 3, 3], (false, true, false)),
        // Tap-major weight [M, kh, kw, C]: the im2col side loads vec4s along the channels.
        ("conv3x3_tap_major", 3, 1, [1, 8, 8, 16], [16, 3, 3, 16], (true, true, true)),
        ("dwconv_last_vec4", 3, 16, [1, 7, 7, 16], [16, 1, 3, 3], (true, true, false)),
        ("dwconv_last_scalar", 3, 6, [1, 9, 9, 6], [6, 1, 3, 3], (true, true, false)),
    ];
    for (name, k, group, x, w, (input_last, output_last, weight_last)) in cases {
        let mut cv = conv(k, k / 2, group);
        if let Op::Conv(a) = &mut cv {
            a.layout = ConvLayout {
                input_last,
                output_last,
                weight_last,
            };
        }
        let xs = [rand(&x, 50), rand(&w, 51), rand(&[w[0]], 52)];
        let y = optc_ir::interp::eval_op(&cv, &xs.clone().map(Some), 1).unwrap()[0]
            .shape()
            .to_vec();
        let op = fused(
            Some(cv),
            3,
            4,
            vec![st(Op::Clip, &[0, 1, 2]), bin(BinaryOp::Add, 4, 3)],
        );
        let [xt, wt, bt] = xs;
        let ins = [
            xt,
            wt,
            bt,
            Tensor::scalar(0.0f32),
            Tensor::scalar(6.0f32),
            rand(&y, 53),
        ];
        check(&device, name, op, &ins, &[3, 4], 1e-4, 1e-4);
    }

    // MatMul + bias + Gelu + residual: vec4 stores, the epilogue per lane.
    let op = fused(
        Some(Op::MatMul),
        2,
        3,
        vec![
            bin(BinaryOp::Add, 0, 1),
            st(Op::Activation(ActivationOp::Gelu { tanh: false }), &[3]),
            bin(BinaryOp::Add, 4, 2),
        ],
    );
    let ins = [
        rand(&[64, 48], 30),
        rand(&[48, 64], 31),
        rand(&[64], 32),
        rand(&[64, 64], 33),
    ];
    check(&device, "matmul_gelu", op, &ins, &[], 1e-4, 1e-4);
    // Gemm (transB, alpha, beta, C) + Relu.
    let gemm = Op::Gemm {
        alpha: 1.5,
        beta: 0.5,
        trans_a: false,
        trans_b: true,
    };
    let op = fused(Some(gemm), 3, 1, vec![st(Op::Unary(UnaryOp::Relu), &[0])]);
    let ins = [rand(&[33, 40], 40), rand(&[20, 40], 41), rand(&[20], 42)];
    check(&device, "gemm_relu", op, &ins, &[], 1e-4, 1e-4);
}
