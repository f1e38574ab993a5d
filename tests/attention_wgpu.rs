//! Fused attention (`Op::FusedAttention`) compiled to WGSL and run through wgpu (lavapipe in
//! CI) against the reference interpreter: the fused op itself (plain, and with a BERT-style
//! mask program with fully masked rows, S ≠ T, batch and heads > 1), and decomposed graphs that
//! the optimizer fuses — or, for a head dim the kernel rejects, leaves decomposed. Fails (does
//! not skip) when no adapter exists.

use optc_ir::ops::{BinaryOp, FusedAttention, Program, Step, UnaryOp};
use optc_ir::{DType, Graph, Op, Tensor};
use optc_runtime::Target;
use optc_runtime::wgpu_exec::Device;

mod common;
use common::{assert_close, device, graph, rand};

fn run_checked(dev: &Device, name: &str, g: &Graph, feeds: &[Tensor]) {
    let want = optc_ir::run(g, feeds).unwrap();
    let got =
        optc::conformance::run_wgpu(dev, g, name, feeds).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_close(name, &got[0], &want[0], 1e-4, 1e-5);
}

/// BERT's mask program: `score + Where(And(row_ok, key_ok), 0, -inf)`.
fn bert_mask() -> Program {
    let st = |op, args: &[usize]| Step {
        op,
        args: args.iter().map(|&a| Some(a)).collect(),
    };
    Program {
        inputs: 5,
        steps: vec![
            st(Op::Binary(BinaryOp::And), &[1, 2]),
            st(Op::Where, &[5, 3, 4]),
            st(Op::Binary(BinaryOp::Add), &[0, 6]),
        ],
    }
}

fn bools(shape: &[usize], f: impl Fn(usize) -> bool) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|k| f(k) as u8).collect::<Vec<u8>>(),
    )
    .unwrap()
    .cast(DType::Bool)
}

#[test]
fn fused_attention_matches_the_reference_on_wgpu() {
    let dev = device();
    // Plain (ViT): S ≠ T, two heads.
    let plain = Op::FusedAttention(Box::new(FusedAttention {
        score: None,
        nan_fill_zero: false,
        layout: None,
    }));
    let ins = [
        rand(&[1, 2, 37, 16], 1),
        rand(&[1, 2, 16, 50], 2),
        rand(&[1, 2, 50, 24], 3),
    ];
    let (g, feeds) = graph(&ins, &[], &[(plain, vec![0, 1, 2])]);
    run_checked(&dev, "plain", &g, &feeds);
    // Masked (BERT/GPT-2 form): batch 2, 3 heads, S = 20, T = 33, head dim 64; rows 3 and 7
    // of batch 1 and keys ≥ 30 of batch 0 masked out.
    let (s, t) = (20usize, 33usize);
    let ins = [
        rand(&[2, 3, s, 64], 4),
        rand(&[2, 3, 64, t], 5),
        rand(&[2, 3, t, 64], 6),
        bools(&[2, 1, s, 1], |k| !(k == s + 3 || k == s + 7)),
        bools(&[2, 1, 1, t], |k| k >= t || k < 30),
        Tensor::scalar(0.0f32),
        Tensor::scalar(f32::NEG_INFINITY),
    ];
    for fill in [true, false] {
        let op = Op::FusedAttention(Box::new(FusedAttention {
            score: Some(bert_mask()),
            nan_fill_zero: fill,
            layout: None,
        }));
        let want =
            optc_ir::interp::eval_op(&op, &ins.iter().cloned().map(Some).collect::<Vec<_>>(), 1)
                .unwrap();
        // The fully masked rows are really there.
        let w = want[0].to_f64_vec();
        let row = |r: usize| &w[(3 * s + r) * 64..(3 * s + r + 1) * 64];
        assert!(
            row(3)
                .iter()
                .all(|x| if fill { *x == 0.0 } else { x.is_nan() })
        );
        let (g, feeds) = graph(&ins, &[5, 6], &[(op, vec![0, 1, 2, 3, 4, 5, 6])]);
        run_checked(&dev, &format!("masked_fill_{fill}"), &g, &feeds);
    }
}

/// `MatMul(Where(IsNaN(p), 0, p), V)`, `p = Softmax(MatMul(Q, Kt) + mask)`: the decomposed
/// ops, as exporters write them.
fn decomposed(b: usize, h: usize, s: usize, t: usize, d: usize) -> (Graph, Vec<Tensor>) {
    let ins = [
        rand(&[b, h, s, d], 7),
        rand(&[b, h, d, t], 8),
        rand(&[b, h, t, d], 9),
        Tensor::from_vec(
            vec![b, 1, 1, t],
            (0..b * t)
                .map(|k| if k % 5 == 1 { f32::NEG_INFINITY } else { 0.0 })
                .collect::<Vec<f32>>(),
        )
        .unwrap(),
        Tensor::scalar(0.0f32),
    ];
    let softmax = Op::Softmax {
        axis: -1,
        legacy: false,
    };
    graph(
        &ins,
        &[3, 4],
        &[
            (Op::MatMul, vec![0, 1]),                // 5
            (Op::Binary(BinaryOp::Add), vec![5, 3]), // 6
            (softmax, vec![6]),                      // 7
            (Op::Unary(UnaryOp::IsNaN), vec![7]),    // 8
            (Op::Where, vec![8, 4, 7]),              // 9
            (Op::MatMul, vec![9, 2]),                // 10
        ],
    )
}

fn optimized_ops(g: &Graph, feeds: &[Tensor]) -> Vec<String> {
    let mut o = optc::compile::Options::new(Target::Wgsl);
    o.opt_level = 3;
    o.input_shapes = Some(feeds.iter().map(|t| t.shape().to_vec()).collect());
    let (og, _) = optc::compile::optimized_graph(g, &o).unwrap();
    og.node_ids()
        .map(|n| og.node(n).op.name().to_string())
        .collect()
}

#[test]
fn the_optimizer_fuses_attention_and_falls_back_for_large_heads() {
    let dev = device();
    // Small enough that the fused kernel wins on lavapipe's cost model (it is slower than the
    // decomposed ops on long sequences there: see passes/src/cost.rs).
    let (g, feeds) = decomposed(1, 2, 8, 9, 16);
    let ops = optimized_ops(&g, &feeds);
    assert_eq!(ops, vec!["FusedAttention"], "{ops:?}");
    run_checked(&dev, "decomposed_fused", &g, &feeds);
    // Head dim 128: the kernel refuses it, the ops stay decomposed and still run.
    let (g, feeds) = decomposed(1, 2, 8, 12, 128);
    let ops = optimized_ops(&g, &feeds);
    assert!(!ops.iter().any(|o| o == "FusedAttention"), "{ops:?}");
    assert!(ops.iter().any(|o| o == "Softmax"), "{ops:?}");
    run_checked(&dev, "decomposed_head128", &g, &feeds);
}
