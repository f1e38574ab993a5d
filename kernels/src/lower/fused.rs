//! Fused kernels ([`Op::Fused`]): one kernel launch per fusion, so that intermediates never go
//! through memory.
//!
//! - Without an anchor, the program is one elementwise kernel
//!   ([`super::elementwise::lower_program`]): every program input loaded once (known scalars
//!   inlined as literals), the steps evaluated in order in registers, the result stored.
//! - With an anchor, the anchor's own template runs with an [`Epilogue`] applied at each of its
//!   stores. Anchors with an epilogue: Conv (implicit GEMM, pointwise 1×1, depthwise,
//!   grouped), ConvTranspose, Gemm, MatMul (float: the GEMM core; integer: the dot kernel) and
//!   Einsum (the forms it lowers). ConvInteger, QLinearConv, MatMulInteger and QLinearMatMul
//!   refuse one; any other anchor is unsupported.
//!
//! [`supports_fused`] / [`check_fused`] say exactly whether [`lower_fused`] (hence
//! [`super::lower`]) accepts a fused op, running the same checks without building the GEMM
//! kernels; the optimizer calls it to decide a fusion's legality.
//!
//! Precision: intermediates stay in registers at compute precision (f32 for f16/bf16 values),
//! where the unfused graph would round each f16 intermediate when storing it.

use super::elementwise;
use super::epilogue::Epilogue;
use super::{BuildMode, LowerCtx, LowerError, Lowered, TensorDesc, check_storage, conv, gemm};
use optc_ir::infer::{InferInput, infer};
use optc_ir::ops::{Fused, Op};
use optc_ir::tensor::Tensor;
use optc_ir::types::TensorType;

/// Lowers a fused op (see the module docs) to one kernel launch (none for an empty output).
pub fn lower_fused(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_mode(ctx, BuildMode::Build)
}

/// `Ok` exactly when [`super::lower`] lowers this fused op (`ctx.op` must be [`Op::Fused`]);
/// otherwise the error `lower` would give. Runs the same analysis as the lowering but builds
/// no GEMM kernel, so it costs a small fraction of lowering.
pub fn check_fused(ctx: &LowerCtx<'_>) -> Result<(), LowerError> {
    check_storage(ctx)?;
    lower_mode(ctx, BuildMode::Check).map(|_| ())
}

/// Whether the WGSL target lowers fused op `f` with these input descriptors (`None` for absent
/// optional anchor inputs), compile-time input contents (`values[k]` for input `k`; pass `&[]`
/// when none are known: known scalar constants only ever save bindings, so the answer without
/// them is never `true` where the answer with them is `false`) and output descriptor — exactly
/// [`check_fused`] on the corresponding [`LowerCtx`].
pub fn supports_fused(
    f: &Fused,
    inputs: &[Option<TensorDesc>],
    values: &[Option<&Tensor>],
    output: &TensorDesc,
) -> bool {
    supports_fused_op(&Op::Fused(Box::new(f.clone())), inputs, values, output)
}

/// Whether the WGSL target lowers fused op `op` as one kernel: [`check_fused`] for an
/// [`Op::Fused`], [`super::attention::check_attention`] for an [`Op::FusedAttention`], on the
/// [`LowerCtx`] of these descriptors (see [`supports_fused`]); `false` for any other op. The
/// optimizer's legality callback.
pub fn supports_fused_op(
    op: &Op,
    inputs: &[Option<TensorDesc>],
    values: &[Option<&Tensor>],
    output: &TensorDesc,
) -> bool {
    let outputs = [Some(output.clone())];
    let ctx = LowerCtx {
        op,
        name: "check",
        inputs,
        values,
        outputs: &outputs,
        features: Default::default(),
    };
    match op {
        Op::Fused(_) => check_fused(&ctx).is_ok(),
        Op::FusedAttention(_) => super::attention::check_attention(&ctx).is_ok(),
        _ => false,
    }
}

/// The output type of `anchor` on these inputs, by the IR's inference.
fn anchor_output(
    ctx: &LowerCtx<'_>,
    anchor: &Op,
    inputs: &[Option<TensorDesc>],
    values: &[Option<&Tensor>],
) -> Result<TensorDesc, LowerError> {
    let tys: Vec<Option<TensorType>> = inputs
        .iter()
        .map(|d| d.as_ref().map(|d| TensorType::fixed(d.dtype, &d.shape)))
        .collect();
    let ins: Vec<Option<InferInput<'_>>> = tys
        .iter()
        .enumerate()
        .map(|(k, t)| {
            t.as_ref().map(|ty| InferInput {
                ty,
                value: values.get(k).copied().flatten(),
            })
        })
        .collect();
    let t = infer(anchor, &ins, 1)
        .map_err(|e| ctx.invalid(format!("anchor {}: {e}", anchor.name())))?
        .into_iter()
        .next()
        .ok_or_else(|| ctx.invalid(format!("anchor {} has no output", anchor.name())))?;
    let shape = t
        .shape
        .as_static()
        .ok_or_else(|| ctx.invalid(format!("anchor {} has a dynamic shape", anchor.name())))?;
    Ok(TensorDesc::new(t.dtype, shape))
}

fn lower_mode(ctx: &LowerCtx<'_>, mode: BuildMode) -> Result<Lowered, LowerError> {
    let Op::Fused(f) = ctx.op else {
        return Err(ctx.invalid("not a fused op"));
    };
    let Some(anchor) = &f.anchor else {
        return elementwise::lower_program(ctx, f);
    };
    let na = f.anchor_inputs;
    if na > ctx.inputs.len() {
        return Err(ctx.invalid(format!(
            "the anchor takes {na} inputs, the op has {}",
            ctx.inputs.len()
        )));
    }
    let a_inputs = &ctx.inputs[..na];
    let a_values = &ctx.values[..na.min(ctx.values.len())];
    let acc = anchor_output(ctx, anchor, a_inputs, a_values)?;
    let out = ctx.output(0)?;
    if acc.shape != out.shape {
        return Err(ctx.invalid(format!(
            "the anchor's output {:?} is not the fused output {:?}",
            acc.shape, out.shape
        )));
    }
    let outputs = [Some(acc.clone())];
    let actx = LowerCtx {
        op: anchor,
        name: ctx.name,
        inputs: a_inputs,
        values: a_values,
        outputs: &outputs,
        features: ctx.features,
    };
    check_storage(&actx)?;
    if !matches!(
        anchor,
        Op::Conv(_) | Op::ConvTranspose { .. } | Op::Gemm { .. } | Op::MatMul | Op::Einsum { .. }
    ) {
        return Err(match anchor {
            Op::ConvInteger(_) | Op::QLinearConv(_) | Op::MatMulInteger | Op::QLinearMatMul => {
                actx.unsupported("with a fused epilogue")
            }
            _ => actx.unsupported("as the anchor of a fused kernel"),
        });
    }
    let ep = Some(Epilogue::new(ctx, f, acc.dtype)?);
    match anchor {
        Op::MatMul => gemm::lower_matmul_with(&actx, ep, mode),
        Op::Gemm { .. } => gemm::lower_gemm_with(&actx, ep, mode),
        Op::Einsum { .. } => gemm::lower_einsum_with(&actx, ep, mode),
        _ => conv::lower_with(&actx, ep, mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::sim::{rand_t, run_op};
    use crate::lower::{Arg, lower};
    use optc_ir::dtype::DType;
    use optc_ir::ops::{
        ActivationOp, AutoPad, BinaryOp, ConvAttrs, Program, Step, UnaryOp, VariadicOp, Window,
    };

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

    fn conv(k: &[usize], s: &[usize], p: &[usize], group: usize) -> Op {
        Op::Conv(ConvAttrs {
            window: Window {
                kernel_shape: k.to_vec(),
                strides: s.to_vec(),
                dilations: vec![],
                pads: p.to_vec(),
                auto_pad: AutoPad::NotSet,
            },
            group,
            layout: Default::default(),
        })
    }

    fn descs(ins: &[Option<Tensor>]) -> Vec<Option<TensorDesc>> {
        ins.iter()
            .map(|t| {
                t.as_ref()
                    .map(|t| TensorDesc::new(t.dtype(), t.shape().to_vec()))
            })
            .collect()
    }

    /// Lowers `op` (inputs `consts` known), checks it is one launch and that
    /// [`supports_fused`] agrees, runs it in the simulator against the reference interpreter
    /// within `atol + rtol·|want|`, and returns the launch's bindings.
    fn check(op: &Op, ins: &[Option<Tensor>], consts: &[usize], rtol: f64, atol: f64) -> Vec<Arg> {
        let Op::Fused(f) = op else { unreachable!() };
        let want = optc_ir::interp::eval_op(op, ins, 1).expect("reference");
        let d = descs(ins);
        let values: Vec<Option<&Tensor>> = ins
            .iter()
            .enumerate()
            .map(|(k, t)| t.as_ref().filter(|_| consts.contains(&k)))
            .collect();
        let out = TensorDesc::new(want[0].dtype(), want[0].shape().to_vec());
        assert!(supports_fused(f, &d, &values, &out), "supports_fused");
        let outs = [Some(out)];
        let ctx = LowerCtx {
            op,
            name: "n0",
            inputs: &d,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        let l = lower(&ctx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.launches.len(), 1, "one launch");
        assert!(l.temps.is_empty() && l.aliases.is_empty());
        let (got, want) = run_op(op, ins, consts);
        assert_eq!(got[0].dtype(), want[0].dtype());
        assert_eq!(got[0].shape(), want[0].shape());
        let (g, w) = (got[0].to_f64_vec(), want[0].to_f64_vec());
        for (k, (a, b)) in g.iter().zip(&w).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
            assert!(ok, "element {k}: got {a}, want {b}");
        }
        l.launches[0].args.clone()
    }

    /// `s0 = x0·x1; s1 = s0 + x2; s2 = tanh s1; s3 = s2 - x0; s4 = LeakyRelu s3;
    /// s5 = max(s4, s1); s6 = s5·s2; s7 = |s6|`.
    fn chain8() -> Vec<Step> {
        vec![
            bin(BinaryOp::Mul, 0, 1),
            bin(BinaryOp::Add, 3, 2),
            st(Op::Unary(UnaryOp::Tanh), &[4]),
            bin(BinaryOp::Sub, 5, 0),
            st(Op::Activation(ActivationOp::LeakyRelu { alpha: 0.1 }), &[6]),
            st(Op::Variadic(VariadicOp::Max), &[7, 4]),
            bin(BinaryOp::Mul, 8, 5),
            st(Op::Unary(UnaryOp::Abs), &[9]),
        ]
    }

    #[test]
    fn elementwise_chain_of_eight_steps_with_broadcasting() {
        let op = fused(None, 0, 3, chain8());
        let x = rand_t(&[2, 3, 4, 5], 1);
        let c = rand_t(&[3, 1, 1], 2);
        let s = rand_t(&[], 3);
        let ins = vec![Some(x.clone()), Some(c.clone()), Some(s.clone())];
        let args = check(&op, &ins, &[], 1e-5, 1e-6);
        assert_eq!(
            args,
            [Arg::Input(0), Arg::Input(1), Arg::Input(2), Arg::Output(0)]
        );
        // A known scalar becomes a literal: one binding fewer.
        let args = check(&op, &ins, &[2], 1e-5, 1e-6);
        assert_eq!(args, [Arg::Input(0), Arg::Input(1), Arg::Output(0)]);
        // The per-channel operand as the widest one, the big tensor broadcast along rows.
        let ins = vec![
            Some(rand_t(&[4, 1], 4)),
            Some(rand_t(&[3, 4, 5], 5)),
            Some(s),
        ];
        check(&op, &ins, &[], 1e-5, 1e-6);
    }

    #[test]
    fn program_with_clip_where_and_casts() {
        // s0 = clip(x0, x1, x2); s1 = s0 > x3; s2 = where(s1, s0, x3); s3 = s2·x4;
        // s4 = int32(s3); s5 = f16(s4)
        let steps = vec![
            st(Op::Clip, &[0, 1, 2]),
            bin(BinaryOp::Greater, 5, 3),
            st(Op::Where, &[6, 5, 3]),
            bin(BinaryOp::Mul, 7, 4),
            st(Op::Cast { to: DType::I32 }, &[8]),
            st(Op::Cast { to: DType::F16 }, &[9]),
        ];
        let op = fused(None, 0, 5, steps);
        let ins = vec![
            Some(rand_t(&[4, 6], 7)),
            Some(Tensor::scalar(-1.0f32)),
            Some(Tensor::scalar(1.5f32)),
            Some(rand_t(&[6], 8)),
            Some(Tensor::scalar(3.0f32)),
        ];
        let args = check(&op, &ins, &[1, 2, 4], 0.0, 0.0);
        assert_eq!(args, [Arg::Input(0), Arg::Input(3), Arg::Output(0)]);
        check(&op, &ins, &[], 0.0, 0.0);
        // Clip with an absent max, on integers.
        let clip = Op::Fused(Box::new(Fused {
            anchor: None,
            anchor_inputs: 0,
            program: Program {
                inputs: 2,
                steps: vec![
                    Step {
                        op: Op::Clip,
                        args: vec![Some(0), Some(1), None],
                    },
                    bin(BinaryOp::Mul, 2, 0),
                ],
            },
        }));
        let xi = Tensor::from_vec(vec![5], vec![-7i32, -2, 0, 3, 9]).unwrap();
        check(
            &clip,
            &[Some(xi), Some(Tensor::scalar(-1i32))],
            &[],
            0.0,
            0.0,
        );
    }

    #[test]
    fn f16_programs_keep_intermediates_in_f32() {
        // In the unfused graph every f16 intermediate is rounded when stored; the fused kernel
        // rounds only the result, so the two may differ by a few f16 ulps.
        let op = fused(
            None,
            0,
            2,
            vec![
                bin(BinaryOp::Mul, 0, 1),
                bin(BinaryOp::Add, 2, 0),
                st(Op::Unary(UnaryOp::Sigmoid), &[3]),
            ],
        );
        let ins = vec![
            Some(rand_t(&[64], 9).cast(DType::F16)),
            Some(rand_t(&[64], 10).cast(DType::F16)),
        ];
        check(&op, &ins, &[], 4e-3, 1e-3);
    }

    /// MatMul + bias + Gelu + residual.
    fn matmul_gelu(a: &[usize], b: &[usize], out: &[usize], seed: u64) {
        let n = *out.last().unwrap();
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
        let ins = vec![
            Some(rand_t(a, seed)),
            Some(rand_t(b, seed + 1)),
            Some(rand_t(&[n], seed + 2)),
            Some(rand_t(out, seed + 3)),
        ];
        check(&op, &ins, &[], 1e-3, 1e-4);
    }

    #[test]
    fn matmul_with_bias_gelu_and_residual() {
        // Batched, scalar loads and stores.
        matmul_gelu(&[2, 5, 6], &[6, 7], &[2, 5, 7], 11);
        // Register-tiled with subgroup sharing, vec4 loads and stores (epilogue per lane).
        matmul_gelu(&[64, 32], &[32, 64], &[64, 64], 12);
        // A vector times a matrix.
        matmul_gelu(&[16], &[16, 12], &[12], 13);
    }

    #[test]
    fn gemm_with_trans_b_alpha_beta_c_and_relu() {
        let gemm = Op::Gemm {
            alpha: 1.5,
            beta: 0.5,
            trans_a: false,
            trans_b: true,
        };
        let op = fused(
            Some(gemm.clone()),
            3,
            1,
            vec![st(Op::Unary(UnaryOp::Relu), &[0])],
        );
        for (m, n, k, seed) in [(5, 20, 12, 20), (48, 24, 16, 21)] {
            let ins = vec![
                Some(rand_t(&[m, k], seed)),
                Some(rand_t(&[n, k], seed + 1)),
                Some(rand_t(&[n], seed + 2)),
            ];
            check(&op, &ins, &[], 1e-3, 1e-4);
        }
        // Relu then a per-row scale [M, 1] with trans_a, no C.
        let gemm = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: true,
            trans_b: false,
        };
        let op = fused(
            Some(gemm),
            2,
            2,
            vec![st(Op::Unary(UnaryOp::Relu), &[0]), bin(BinaryOp::Mul, 2, 1)],
        );
        let ins = vec![
            Some(rand_t(&[8, 32], 22)),
            Some(rand_t(&[8, 16], 23)),
            Some(rand_t(&[32, 1], 24)),
        ];
        check(&op, &ins, &[], 1e-3, 1e-4);
    }

    /// Conv + BN-style scale/shift `[C, 1, 1]` + Relu + residual Add.
    fn conv_bn_relu_add(cv: Op, x: &[usize], w: &[usize], bias: bool, seed: u64) {
        let want = optc_ir::interp::eval_op(&cv, &[Some(rand_t(x, 0)), Some(rand_t(w, 0))], 1)
            .expect("conv");
        let y = want[0].shape().to_vec();
        let c = y[1];
        let na = 2 + bias as usize;
        let op = fused(
            Some(cv),
            na,
            4,
            vec![
                bin(BinaryOp::Mul, 0, 1),
                bin(BinaryOp::Add, 4, 2),
                st(Op::Unary(UnaryOp::Relu), &[5]),
                bin(BinaryOp::Add, 6, 3),
            ],
        );
        let mut ins = vec![Some(rand_t(x, seed)), Some(rand_t(w, seed + 1))];
        if bias {
            ins.push(Some(rand_t(&[w[0]], seed + 2)));
        }
        // [C, 1, ..] and [1, C, 1, ..].
        let mut per_c = vec![c];
        per_c.resize(y.len() - 1, 1);
        ins.push(Some(rand_t(&per_c, seed + 3)));
        per_c.insert(0, 1);
        ins.push(Some(rand_t(&per_c, seed + 4)));
        ins.push(Some(rand_t(&y, seed + 5)));
        check(&op, &ins, &[], 1e-3, 1e-4);
    }

    #[test]
    fn conv_with_scale_shift_relu_and_residual() {
        // Implicit GEMM with padding and stride, and a bias.
        conv_bn_relu_add(
            conv(&[3, 3], &[2, 2], &[1, 1, 1, 1], 1),
            &[2, 4, 9, 9],
            &[8, 4, 3, 3],
            true,
            30,
        );
        // Implicit GEMM big enough for subgroup sharing.
        conv_bn_relu_add(
            conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 1),
            &[1, 8, 8, 8],
            &[16, 8, 3, 3],
            false,
            31,
        );
        // Pointwise 1×1: vec4 stores along the plane, the per-channel operands loaded once.
        conv_bn_relu_add(
            conv(&[1, 1], &[1, 1], &[0, 0, 0, 0], 1),
            &[2, 8, 4, 4],
            &[16, 8, 1, 1],
            true,
            32,
        );
        // Depthwise with a partial tile (7 % 4 != 0).
        conv_bn_relu_add(
            conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 8),
            &[1, 8, 7, 7],
            &[8, 1, 3, 3],
            true,
            33,
        );
        // Grouped.
        conv_bn_relu_add(
            conv(&[3, 3], &[1, 1], &[1, 0, 1, 0], 2),
            &[1, 8, 6, 6],
            &[8, 4, 3, 3],
            true,
            34,
        );
        // 1-D.
        conv_bn_relu_add(
            conv(&[3], &[2], &[1, 1], 1),
            &[2, 3, 11],
            &[4, 3, 3],
            true,
            35,
        );
    }

    #[test]
    fn conv_with_clip_0_6() {
        let op = fused(
            Some(conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], 1)),
            3,
            3,
            vec![st(Op::Clip, &[0, 1, 2])],
        );
        let mut x = rand_t(&[1, 3, 6, 6], 40);
        x = Tensor::from_vec(
            x.shape().to_vec(),
            x.to_f64_vec().iter().map(|v| (v * 2.0) as f32).collect(),
        )
        .unwrap();
        let ins = vec![
            Some(x),
            Some(rand_t(&[8, 3, 3, 3], 41)),
            Some(rand_t(&[8], 42)),
            Some(Tensor::scalar(0.0f32)),
            Some(Tensor::scalar(6.0f32)),
        ];
        let args = check(&op, &ins, &[3, 4], 1e-3, 1e-4);
        // min and max are literals.
        assert_eq!(
            args,
            [Arg::Input(0), Arg::Input(1), Arg::Input(2), Arg::Output(0)]
        );
        check(&op, &ins, &[], 1e-3, 1e-4);
        // Depthwise, pointwise.
        for (w, g, pads) in [
            ([3, 1, 3, 3], 3, [1, 1, 1, 1]),
            ([8, 3, 1, 1], 1, [0, 0, 0, 0]),
        ] {
            let op = fused(
                Some(conv(&w[2..], &[1, 1], &pads, g)),
                2,
                3,
                vec![st(Op::Clip, &[0, 1, 2])],
            );
            let mut ins = ins.clone();
            ins[1] = Some(rand_t(&w, 43));
            ins.remove(2);
            check(&op, &ins, &[2, 3], 1e-3, 1e-4);
        }
    }

    #[test]
    fn other_anchors_conv_transpose_einsum_and_integer_matmul() {
        let ct = Op::ConvTranspose {
            conv: ConvAttrs {
                window: Window {
                    strides: vec![2, 2],
                    pads: vec![1, 1, 1, 1],
                    ..Window::default()
                },
                group: 1,
                layout: Default::default(),
            },
            output_padding: vec![],
            output_shape: vec![],
        };
        let op = fused(
            Some(ct),
            3,
            2,
            vec![bin(BinaryOp::Add, 0, 1), st(Op::Unary(UnaryOp::Relu), &[2])],
        );
        let ins = vec![
            Some(rand_t(&[1, 4, 3, 3], 50)),
            Some(rand_t(&[4, 2, 3, 3], 51)),
            Some(rand_t(&[2], 52)),
            Some(rand_t(&[2, 1, 1], 53)),
        ];
        check(&op, &ins, &[], 1e-3, 1e-4);

        let es = Op::Einsum {
            equation: "bij,bjk->bik".into(),
        };
        let op = fused(Some(es), 2, 2, vec![bin(BinaryOp::Sub, 0, 1)]);
        let ins = vec![
            Some(rand_t(&[2, 3, 4], 54)),
            Some(rand_t(&[2, 4, 5], 55)),
            Some(rand_t(&[5], 56)),
        ];
        check(&op, &ins, &[], 1e-3, 1e-4);

        let op = fused(
            Some(Op::MatMul),
            2,
            2,
            vec![bin(BinaryOp::Add, 0, 1), st(Op::Unary(UnaryOp::Relu), &[2])],
        );
        let int = |shape: &[usize], seed: u64| {
            let v = rand_t(shape, seed).to_f64_vec();
            Tensor::from_vec(
                shape.to_vec(),
                v.iter().map(|x| (x * 4.0) as i32).collect::<Vec<i32>>(),
            )
            .unwrap()
        };
        let ins = vec![
            Some(int(&[3, 4], 57)),
            Some(int(&[4, 5], 58)),
            Some(int(&[3, 1], 59)),
        ];
        check(&op, &ins, &[], 0.0, 0.0);
    }

    fn ctx_check(op: &Op, ins: &[Option<TensorDesc>], out: TensorDesc) -> Result<(), LowerError> {
        let values = vec![None; ins.len()];
        let outs = [Some(out)];
        let ctx = LowerCtx {
            op,
            name: "n0",
            inputs: ins,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        let checked = check_fused(&ctx);
        // Exactly what lowering says.
        assert_eq!(
            checked,
            lower(&ctx).map(|_| ()),
            "check_fused and lower disagree"
        );
        checked
    }

    fn d(dt: DType, s: &[usize]) -> Option<TensorDesc> {
        Some(TensorDesc::new(dt, s.to_vec()))
    }

    #[test]
    fn refusals_are_errors_and_supports_fused_agrees_with_lower() {
        let f32d = |s: &[usize]| d(DType::F32, s);
        let unsupported = |r: Result<(), LowerError>| {
            assert!(
                matches!(r, Err(LowerError::Unsupported { .. })),
                "{r:?} is not Unsupported"
            )
        };
        // int64 arithmetic in a step.
        let add = fused(None, 0, 2, vec![bin(BinaryOp::Add, 0, 1)]);
        let i64d = d(DType::I64, &[4]);
        unsupported(ctx_check(
            &add,
            &[i64d.clone(), i64d],
            TensorDesc::new(DType::I64, vec![4]),
        ));
        // ... but an int64 comparison is fine.
        let less = fused(None, 0, 2, vec![bin(BinaryOp::Less, 0, 1)]);
        let i64d = d(DType::I64, &[4]);
        assert!(
            ctx_check(
                &less,
                &[i64d.clone(), i64d],
                TensorDesc::new(DType::Bool, vec![4])
            )
            .is_ok()
        );
        // int64 arithmetic mid-program.
        let neg = fused(
            None,
            0,
            1,
            vec![
                st(Op::Cast { to: DType::I64 }, &[0]),
                st(Op::Unary(UnaryOp::Neg), &[1]),
            ],
        );
        unsupported(ctx_check(
            &neg,
            &[f32d(&[4])],
            TensorDesc::new(DType::I64, vec![4]),
        ));
        // A step the IR rejects is invalid.
        let exp = fused(
            None,
            0,
            1,
            vec![
                st(Op::Cast { to: DType::I32 }, &[0]),
                st(Op::Unary(UnaryOp::Exp), &[1]),
            ],
        );
        assert!(matches!(
            ctx_check(&exp, &[f32d(&[4])], TensorDesc::new(DType::I32, vec![4])),
            Err(LowerError::Invalid { .. })
        ));
        // An f64 intermediate.
        let f64c = fused(
            None,
            0,
            1,
            vec![
                st(Op::Cast { to: DType::F64 }, &[0]),
                st(Op::Cast { to: DType::F32 }, &[1]),
            ],
        );
        unsupported(ctx_check(
            &f64c,
            &[f32d(&[4])],
            TensorDesc::new(DType::F32, vec![4]),
        ));
        // Too many bindings: 8 inputs + the output.
        let sum = fused(
            None,
            0,
            8,
            vec![st(Op::Variadic(VariadicOp::Sum), &[0, 1, 2, 3, 4, 5, 6, 7])],
        );
        let ins: Vec<_> = (0..8).map(|_| f32d(&[4])).collect();
        unsupported(ctx_check(&sum, &ins, TensorDesc::new(DType::F32, vec![4])));
        let ok = fused(
            None,
            0,
            7,
            vec![st(Op::Variadic(VariadicOp::Sum), &[0, 1, 2, 3, 4, 5, 6])],
        );
        assert!(ctx_check(&ok, &ins[..7], TensorDesc::new(DType::F32, vec![4])).is_ok());
        // Gemm's a, b, c, out + 5 epilogue operands.
        let gemm = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        };
        let mut steps = Vec::new();
        for k in 1..6 {
            steps.push(bin(BinaryOp::Add, if k == 1 { 0 } else { 4 + k }, k));
        }
        let wide = fused(Some(gemm.clone()), 3, 6, steps);
        let mut ins = vec![f32d(&[4, 8]), f32d(&[8, 4]), f32d(&[4])];
        ins.extend((0..5).map(|_| f32d(&[4, 4])));
        unsupported(ctx_check(
            &wide,
            &ins,
            TensorDesc::new(DType::F32, vec![4, 4]),
        ));
        // Anchors without an epilogue form.
        let relu = vec![st(Op::Unary(UnaryOp::Relu), &[0])];
        let sm = fused(
            Some(Op::Softmax {
                axis: -1,
                legacy: false,
            }),
            1,
            1,
            relu.clone(),
        );
        unsupported(ctx_check(
            &sm,
            &[f32d(&[2, 4])],
            TensorDesc::new(DType::F32, vec![2, 4]),
        ));
        let ci = fused(
            Some(Op::ConvInteger(ConvAttrs {
                group: 1,
                ..ConvAttrs::default()
            })),
            2,
            1,
            vec![st(Op::Unary(UnaryOp::Abs), &[0])],
        );
        unsupported(ctx_check(
            &ci,
            &[d(DType::U8, &[1, 1, 4, 4]), d(DType::U8, &[1, 1, 3, 3])],
            TensorDesc::new(DType::I32, vec![1, 1, 2, 2]),
        ));
        // An f16 conv anchor with a float program is fine; an int64 MatMul is not.
        let cv = fused(Some(conv(&[3, 3], &[1, 1], &[], 1)), 2, 1, relu.clone());
        let f16d = |s: &[usize]| d(DType::F16, s);
        assert!(
            ctx_check(
                &cv,
                &[f16d(&[1, 2, 5, 5]), f16d(&[4, 2, 3, 3])],
                TensorDesc::new(DType::F16, vec![1, 4, 3, 3])
            )
            .is_ok()
        );
        let mm = fused(Some(Op::MatMul), 2, 1, relu);
        unsupported(ctx_check(
            &mm,
            &[d(DType::I64, &[2, 3]), d(DType::I64, &[3, 2])],
            TensorDesc::new(DType::I64, vec![2, 2]),
        ));
        // Invalid forms are errors, not panics: an operand that would enlarge the output, a
        // wrong output dtype, a step reading a later value, a missing input.
        let bias = fused(Some(Op::MatMul), 2, 2, vec![bin(BinaryOp::Add, 0, 1)]);
        let r = ctx_check(
            &bias,
            &[f32d(&[2, 3]), f32d(&[3, 2]), f32d(&[3, 2, 2])],
            TensorDesc::new(DType::F32, vec![3, 2, 2]),
        );
        assert!(r.is_err());
        let r = ctx_check(
            &add,
            &[f32d(&[4]), f32d(&[4])],
            TensorDesc::new(DType::F16, vec![4]),
        );
        assert!(matches!(r, Err(LowerError::Invalid { .. })));
        let bad = fused(None, 0, 1, vec![bin(BinaryOp::Add, 0, 1)]);
        assert!(ctx_check(&bad, &[f32d(&[4])], TensorDesc::new(DType::F32, vec![4])).is_err());
        assert!(
            ctx_check(
                &add,
                &[f32d(&[4]), None],
                TensorDesc::new(DType::F32, vec![4])
            )
            .is_err()
        );
        assert!(
            ctx_check(
                &bias,
                &[f32d(&[2, 3])],
                TensorDesc::new(DType::F32, vec![2, 2])
            )
            .is_err()
        );
    }

    /// (loads from buffer `buf`, stores to buffer `buf`) in `k`'s body.
    fn traffic(k: &crate::ir::Kernel, buf: u32) -> (usize, usize) {
        use crate::ir::{Expr, Stmt};
        fn e(x: &Expr, buf: u32) -> usize {
            match x {
                Expr::Load { buf: b, index } => (*b == buf) as usize + e(index, buf),
                Expr::Unary(_, a)
                | Expr::Cast(_, a)
                | Expr::Bitcast(_, a)
                | Expr::Splat(_, a)
                | Expr::Lane(a, _) => e(a, buf),
                Expr::Binary(_, a, b) => e(a, buf) + e(b, buf),
                Expr::Select { cond, t, f } => e(cond, buf) + e(t, buf) + e(f, buf),
                Expr::Fma(a, b, c) => e(a, buf) + e(b, buf) + e(c, buf),
                Expr::Vector(xs) => xs.iter().map(|x| e(x, buf)).sum(),
                _ => 0,
            }
        }
        fn s(body: &[Stmt], buf: u32) -> (usize, usize) {
            let mut t = (0, 0);
            for st in body {
                let (l, w) = match st {
                    Stmt::Let(_, x) | Stmt::Assign(_, x) => (e(x, buf), 0),
                    Stmt::Store {
                        buf: b,
                        index,
                        value,
                    } => (e(index, buf) + e(value, buf), (*b == buf) as usize),
                    Stmt::If { cond, then, els } => {
                        let (a, b) = s(then, buf);
                        let (c, d) = s(els, buf);
                        (e(cond, buf) + a + c, b + d)
                    }
                    Stmt::For { body, .. } => s(body, buf),
                    _ => (0, 0),
                };
                t = (t.0 + l, t.1 + w);
            }
            t
        }
        s(&k.body, buf)
    }

    #[test]
    fn vector_stores_apply_the_epilogue_per_lane_loading_per_channel_operands_once() {
        use crate::ir::{Scalar, Type};
        // Pointwise conv + scale [C,1,1] + residual: vec4 stores along the 16-pixel plane.
        let cv = conv(&[1, 1], &[1, 1], &[0, 0, 0, 0], 1);
        let op = fused(
            Some(cv),
            2,
            3,
            vec![bin(BinaryOp::Mul, 0, 1), bin(BinaryOp::Add, 3, 2)],
        );
        let f32d = |s: &[usize]| Some(TensorDesc::new(DType::F32, s.to_vec()));
        let ins = [
            f32d(&[2, 8, 4, 4]),
            f32d(&[16, 8, 1, 1]),
            f32d(&[16, 1, 1]),
            f32d(&[2, 16, 4, 4]),
        ];
        let values = [None; 4];
        let outs = [f32d(&[2, 16, 4, 4])];
        let ctx = LowerCtx {
            op: &op,
            name: "n0",
            inputs: &ins,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        let l = lower(&ctx).unwrap();
        let lk = &l.launches[0];
        assert_eq!(
            lk.args,
            [
                Arg::Input(1),
                Arg::Input(0),
                Arg::Input(2),
                Arg::Input(3),
                Arg::Output(0)
            ]
        );
        let k = &lk.kernel;
        assert!(k.uses_subgroups());
        assert_eq!(k.buffers[4].elem, Type::vec(Scalar::F32, 4));
        let (_, stores) = traffic(k, 4);
        assert!(stores > 0);
        assert_eq!(traffic(k, 2), (stores, 0), "one scale load per vec4 store");
        assert_eq!(
            traffic(k, 3),
            (4 * stores, 0),
            "four residual loads per vec4 store"
        );
    }

    #[test]
    fn epilogue_offsets_are_cheap_for_common_shapes() {
        use crate::builder::i;
        use crate::lower::common::{broadcast_flat_offset, lane_invariant};
        let x = crate::ir::Expr::Var(crate::ir::Var(0));
        let y = [2, 8, 5, 5];
        // Same shape: the flat index.
        assert_eq!(broadcast_flat_offset(&x, &y, &y), x);
        assert_eq!(
            broadcast_flat_offset(&x, &y, &[1, 8, 5, 5]),
            x.clone() % i(200)
        );
        // Per channel: (flat / 25) % 8, the same along aligned quads only when 25 % 4 == 0.
        assert_eq!(
            broadcast_flat_offset(&x, &y, &[8, 1, 1]),
            (x.clone() / i(25)) % i(8)
        );
        assert!(!lane_invariant(&y, &[8, 1, 1], 4));
        assert!(lane_invariant(&[2, 8, 4, 4], &[8, 1, 1], 4));
        // Scalars: 0; rows of a matrix broadcast along columns.
        assert_eq!(broadcast_flat_offset(&x, &y, &[]), i(0));
        assert_eq!(
            broadcast_flat_offset(&x, &[6, 4], &[6, 1]),
            x.clone() / i(4)
        );
        // Two runs.
        assert_eq!(
            broadcast_flat_offset(&x, &[3, 4, 5], &[3, 1, 5]),
            (x.clone() / i(20)) * i(5) + x.clone() % i(5)
        );
    }
}
