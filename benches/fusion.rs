//! Kernel-fusion speedups a CI tracks, on the wgpu device (lavapipe in CI): each graph is
//! compiled at -O0 (one kernel per op) and at -O2 (fused) and timed in the same run.
//!
//! - `chain8`: an 8-op elementwise chain over 16M f32 elements;
//! - `gemm_bias_gelu`: MatMul 512×512×512 + bias + Gelu (fused epilogue vs three kernels);
//! - `softmax` and `layernorm`: the single-op kernels on [4096, 1024] (no fusion applies);
//!   `layernorm_decomposed`: the opset-13 exporters' nine-op LayerNorm on the same rows (-O2
//!   recognises it as the op: one kernel);
//! - `attention_s128` / `attention_s512`: `MatMul(Softmax(Q·Kt), V)` with batch 1, 4 heads,
//!   head dim 64, at sequence 128 and 512 (-O2: one fused attention kernel; -O0: MatMul,
//!   Softmax, MatMul); `attention_fusedop_*` is the same computation as one `FusedAttention`
//!   node, so the fused kernel is timed even where the cost model keeps the decomposed ops.
//!
//! Each case is timed end to end (`O{level}_{n}launches`: upload, submission, readback) and,
//! where the adapter has timestamp queries, on the device only (`O{level}_device`).
//!
//! `cargo bench --bench fusion` (needs a wgpu adapter: `scripts/setup-vulkan.sh`).

use criterion::{Criterion, criterion_group, criterion_main};
use optc::compile::Options;
use optc::ir::ops::{ActivationOp, BinaryOp, NormOp, UnaryOp};
use optc::ir::{Graph, Op, Tensor, TensorType, ValueId};
use optc_runtime::Target;
use optc_runtime::wgpu_exec::{Device, Session};
use std::time::Duration;

struct G {
    g: Graph,
    k: usize,
}

impl G {
    fn new() -> G {
        G {
            g: Graph::new(),
            k: 0,
        }
    }
    /// An f32 graph input.
    fn input(&mut self, name: &str, shape: &[usize]) -> ValueId {
        self.g
            .add_input(name, TensorType::fixed(optc::ir::DType::F32, shape))
            .unwrap()
    }
    fn op(&mut self, op: Op, ins: Vec<Option<ValueId>>) -> ValueId {
        self.k += 1;
        let (_, o) = self
            .g
            .add_node(
                format!("n{}", self.k),
                op,
                ins,
                vec![Some(format!("v{}", self.k))],
            )
            .unwrap();
        o[0].unwrap()
    }
    fn konst(&mut self, t: Tensor) -> ValueId {
        self.k += 1;
        self.g.add_const(format!("c{}", self.k), t).unwrap()
    }
}

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn chain8() -> (Graph, Vec<Tensor>) {
    let n = 16 << 20;
    let mut b = G::new();
    let x = b.input("x", &[n]);
    let half = b.konst(Tensor::scalar(0.5f32));
    let mut v = b.op(Op::Binary(BinaryOp::Mul), vec![Some(x), Some(half)]);
    v = b.op(Op::Binary(BinaryOp::Add), vec![Some(v), Some(half)]);
    v = b.op(Op::Unary(UnaryOp::Relu), vec![Some(v)]);
    v = b.op(Op::Unary(UnaryOp::Sigmoid), vec![Some(v)]);
    v = b.op(Op::Binary(BinaryOp::Mul), vec![Some(v), Some(x)]);
    v = b.op(Op::Unary(UnaryOp::Neg), vec![Some(v)]);
    v = b.op(Op::Unary(UnaryOp::Abs), vec![Some(v)]);
    v = b.op(Op::Binary(BinaryOp::Sub), vec![Some(v), Some(half)]);
    b.g.set_outputs(vec![v]);
    (b.g, vec![Tensor::from_vec(vec![n], rand(n, 1)).unwrap()])
}

fn gemm_bias_gelu() -> (Graph, Vec<Tensor>) {
    let n = 512;
    let mut b = G::new();
    let x = b.input("x", &[n, n]);
    let w = b.konst(Tensor::from_vec(vec![n, n], rand(n * n, 2)).unwrap());
    let bias = b.konst(Tensor::from_vec(vec![n], rand(n, 3)).unwrap());
    let m = b.op(Op::MatMul, vec![Some(x), Some(w)]);
    let a = b.op(Op::Binary(BinaryOp::Add), vec![Some(m), Some(bias)]);
    let y = b.op(
        Op::Activation(ActivationOp::Gelu { tanh: false }),
        vec![Some(a)],
    );
    b.g.set_outputs(vec![y]);
    (
        b.g,
        vec![Tensor::from_vec(vec![n, n], rand(n * n, 4)).unwrap()],
    )
}

fn row_op(op: Op, extra: bool) -> (Graph, Vec<Tensor>) {
    let (r, c) = (4096, 1024);
    let mut b = G::new();
    let x = b.input("x", &[r, c]);
    let mut ins = vec![Some(x)];
    if extra {
        ins.push(Some(
            b.konst(Tensor::from_vec(vec![c], rand(c, 5)).unwrap()),
        ));
        ins.push(Some(
            b.konst(Tensor::from_vec(vec![c], rand(c, 6)).unwrap()),
        ));
    }
    let y = b.op(op, ins);
    b.g.set_outputs(vec![y]);
    (
        b.g,
        vec![Tensor::from_vec(vec![r, c], rand(r * c, 7)).unwrap()],
    )
}

/// The opset-13 exporters' LayerNorm over the rows of [4096, 1024]: ReduceMean, Sub, Pow,
/// ReduceMean, Add ε, Sqrt, Div, Mul γ, Add β (-O2 recognises it as one LayerNormalization).
fn layernorm_decomposed() -> (Graph, Vec<Tensor>) {
    let (r, c) = (4096, 1024);
    let mut b = G::new();
    let x = b.input("x", &[r, c]);
    let g = b.konst(Tensor::from_vec(vec![c], rand(c, 5)).unwrap());
    let bt = b.konst(Tensor::from_vec(vec![c], rand(c, 6)).unwrap());
    let z = optc_passes::testing::decomposed_layer_norm(&mut b.g, x, g, bt, 1e-5).unwrap();
    b.g.set_outputs(vec![z]);
    (
        b.g,
        vec![Tensor::from_vec(vec![r, c], rand(r * c, 7)).unwrap()],
    )
}

fn attention(seq: usize) -> (Graph, Vec<Tensor>) {
    let (h, d) = (4, 64);
    let mut b = G::new();
    let q = b.input("q", &[1, h, seq, d]);
    let kt = b.input("kt", &[1, h, d, seq]);
    let v = b.input("v", &[1, h, seq, d]);
    let s = b.op(Op::MatMul, vec![Some(q), Some(kt)]);
    let p = b.op(
        Op::Softmax {
            axis: -1,
            legacy: false,
        },
        vec![Some(s)],
    );
    let y = b.op(Op::MatMul, vec![Some(p), Some(v)]);
    b.g.set_outputs(vec![y]);
    let n = h * seq * d;
    let t = |shape: Vec<usize>, seed| Tensor::from_vec(shape, rand(n, seed)).unwrap();
    (
        b.g,
        vec![
            t(vec![1, h, seq, d], 8),
            t(vec![1, h, d, seq], 9),
            t(vec![1, h, seq, d], 10),
        ],
    )
}

/// The same attention as one `FusedAttention` node (the fused kernel, whatever the
/// optimizer's cost model would choose).
fn attention_op(seq: usize) -> (Graph, Vec<Tensor>) {
    let (mut g, inputs) = attention(seq);
    let ins: Vec<Option<ValueId>> = g.inputs().iter().map(|&v| Some(v)).collect();
    let op = Op::FusedAttention(Box::new(optc::ir::ops::FusedAttention {
        score: None,
        nan_fill_zero: false,
        layout: None,
    }));
    let (_, o) = g
        .add_node("fa", op, ins, vec![Some("fa_out".into())])
        .unwrap();
    g.set_outputs(vec![o[0].unwrap()]);
    (g, inputs)
}

fn session(
    dev: &Device,
    g: &Graph,
    level: u8,
    inputs: &[Tensor],
) -> (Session, Vec<optc_runtime::HostTensor>, usize) {
    let mut o = Options::new(Target::Wgsl);
    o.opt_level = level;
    let (a, _) = optc::exec::compile_artifact(g, "bench", &o).unwrap();
    let host = optc::exec::manifest_inputs(g, &a.manifest, inputs).unwrap();
    let launches = a.manifest.launches.len();
    (Session::new(dev, &a).unwrap(), host, launches)
}

fn bench(c: &mut Criterion) {
    let dev = Device::open(None).expect("a wgpu adapter (scripts/setup-vulkan.sh)");
    let cases: Vec<(&str, (Graph, Vec<Tensor>))> = vec![
        ("chain8_16M", chain8()),
        ("gemm512_bias_gelu", gemm_bias_gelu()),
        (
            "softmax_4096x1024",
            row_op(
                Op::Softmax {
                    axis: -1,
                    legacy: false,
                },
                false,
            ),
        ),
        ("attention_s128", attention(128)),
        ("attention_s512", attention(512)),
        ("attention_fusedop_s128", attention_op(128)),
        ("attention_fusedop_s512", attention_op(512)),
        ("layernorm_decomposed_4096x1024", layernorm_decomposed()),
        (
            "layernorm_4096x1024",
            row_op(
                Op::Norm {
                    op: NormOp::LayerNormalization { axis: -1 },
                    epsilon: 1e-5,
                },
                true,
            ),
        ),
    ];
    for (name, (g, inputs)) in cases {
        let mut grp = c.benchmark_group(name);
        grp.sample_size(10)
            .measurement_time(Duration::from_secs(5))
            .warm_up_time(Duration::from_secs(1));
        for level in [0u8, 2] {
            let (mut s, host, launches) = session(&dev, &g, level, &inputs);
            s.run(&host).unwrap();
            grp.bench_function(format!("O{level}_{launches}launches"), |bch| {
                bch.iter(|| s.run(&host).unwrap())
            });
            // Device time only (timestamp queries: first launch's start to last one's end),
            // without the upload, submission and readback that dominate large elementwise
            // cases end to end.
            if s.profile(&host, 1).unwrap().median_device_us.is_some() {
                grp.bench_function(format!("O{level}_device"), |bch| {
                    bch.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| {
                                let p = s.profile(&host, 1).unwrap();
                                Duration::from_secs_f64(p.median_device_us.unwrap_or(0.0) * 1e-6)
                            })
                            .sum()
                    })
                });
            }
        }
        grp.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
