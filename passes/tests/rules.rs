//! Property tests of every named rule: on random shapes and inputs, each rule fires and every
//! equality it adds holds on the reference interpreter (`testing::check_rules` evaluates every
//! e-node of every class).

use optc_ir::ops::{
    ActivationOp, BinaryOp, ConvAttrs, ConvLayout, NormOp, ReduceOp, UnaryOp, Window,
};
use optc_ir::{Graph, Op, Tensor, TensorType, ValueId};
use optc_passes::rules::{Rule, canon, einsum, fusion, layout};
use optc_passes::testing::{check_rules, decomposed_layer_norm};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rand_t(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn pos_t(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(0.5f32..2.0)).collect();
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

struct B {
    g: Graph,
    inputs: Vec<Tensor>,
    k: usize,
}

impl B {
    fn new() -> B {
        B {
            g: Graph::new(),
            inputs: Vec::new(),
            k: 0,
        }
    }
    fn input(&mut self, t: Tensor) -> ValueId {
        let v = self
            .g
            .add_input(
                format!("in{}", self.inputs.len()),
                TensorType::fixed(t.dtype(), t.shape()),
            )
            .unwrap();
        self.inputs.push(t);
        v
    }
    fn konst(&mut self, t: Tensor) -> ValueId {
        self.k += 1;
        self.g.add_const(format!("c{}", self.k), t).unwrap()
    }
    /// A constant 1-D i64 shape tensor holding `dims`.
    fn shape_const(&mut self, dims: &[usize]) -> ValueId {
        let d: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.konst(Tensor::from_vec(vec![d.len()], d).unwrap())
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
    /// The whole optimizer (-O3, wgsl) on the graph with outputs `outs`: the optimized graph's
    /// op names, its outputs and the original graph's, on the inputs.
    fn optimize(mut self, outs: Vec<ValueId>) -> (Vec<&'static str>, Vec<Tensor>, Vec<Tensor>) {
        self.g.set_outputs(outs);
        let opts = optc_passes::Options::new(3, "wgsl");
        let o = optc_passes::optimize(&self.g, &Default::default(), &opts).unwrap();
        let ops = o
            .graph
            .node_ids()
            .map(|n| o.graph.node(n).op.name())
            .collect();
        let got = optc_ir::run(&o.graph, &self.inputs).unwrap();
        let want = optc_ir::run(&self.g, &self.inputs).unwrap();
        (ops, got, want)
    }
    fn check(mut self, out: ValueId, rules: &[&dyn Rule], want: &[&str]) {
        self.g.set_outputs(vec![out]);
        let r = check_rules(&self.g, &self.inputs, rules, None, 1e-4).unwrap();
        for w in want {
            assert!(
                r.applied.get(*w).copied().unwrap_or(0) > 0,
                "rule {w} did not fire: {:?}",
                r.applied
            );
        }
        assert!(r.nodes_checked > 0);
    }
}

fn canon_rules() -> Vec<Box<dyn Rule>> {
    canon::rules()
}

/// The rules of the layout stage, as `optimize` runs it.
fn layout_stage_rules() -> Vec<Box<dyn Rule>> {
    let mut r = layout::sink_rules();
    r.extend(canon::rules());
    r
}

/// A 2-D Conv with square kernel `k`, symmetric padding `pad`, `group` groups, stride 1.
fn conv_op(k: usize, pad: usize, group: usize) -> Op {
    Op::Conv(ConvAttrs {
        window: Window {
            kernel_shape: vec![k, k],
            strides: vec![1, 1],
            pads: vec![pad; 4],
            dilations: vec![1, 1],
            auto_pad: Default::default(),
        },
        group,
        layout: Default::default(),
    })
}

fn refs(v: &[Box<dyn Rule>]) -> Vec<&dyn Rule> {
    v.iter().map(|r| r.as_ref()).collect()
}

/// `shape` with `k` size-1 dims inserted at random places.
fn with_units(rng: &mut StdRng, shape: &[usize], k: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    for _ in 0..k {
        let at = rng.random_range(0..=s.len());
        s.insert(at, 1);
    }
    s
}

fn perm(rng: &mut StdRng, r: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..r).collect();
    for i in (1..r).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn conv_chain_goes_channels_last(seed in 0u64..1000, c in 1usize..3, hw in 3usize..6, k in 1usize..4, residual in any::<bool>()) {
        // Conv → Clip → depthwise Conv (→ Add the first conv's output) → GlobalAveragePool:
        // every channels-last variant, sunk Clip/Add and cancelled transpose pair must compute
        // the same values.
        let c = 4 * c;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[1, 3, hw, hw]));
        let conv1 = conv_op(k, k / 2, 1);
        let w1 = b.konst(rand_t(&mut rng, &[c, 3, k, k]));
        let b1 = b.konst(rand_t(&mut rng, &[c]));
        let y = b.op(conv1, vec![Some(x), Some(w1), Some(b1)]);
        let lo = b.konst(Tensor::scalar(0.0f32));
        let hi = b.konst(Tensor::scalar(6.0f32));
        let y = b.op(Op::Clip, vec![Some(y), Some(lo), Some(hi)]);
        let w2 = b.konst(rand_t(&mut rng, &[c, 1, 3, 3]));
        let z = b.op(conv_op(3, 1, c), vec![Some(y), Some(w2), None]);
        let z = if residual { b.op(Op::Binary(BinaryOp::Add), vec![Some(y), Some(z)]) } else { z };
        let p = b.op(Op::GlobalAveragePool, vec![Some(z)]);
        let rs = layout_stage_rules();
        let mut want = vec!["conv-channels-last", "transpose-transpose", "global-pool-channels-last", "sink-transpose"];
        if !residual {
            want.pop();
        }
        b.check(p, &refs(&rs), &want);
    }

    #[test]
    fn remove_identity(seed in 0u64..1000, n in 1usize..6) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[n, 3]));
        let i = b.op(Op::Identity, vec![Some(x)]);
        let d = b.op(Op::Dropout, vec![Some(i)]);
        let y = b.op(Op::Unary(UnaryOp::Exp), vec![Some(d)]);
        let rs = canon_rules();
        b.check(y, &refs(&rs), &["remove-identity"]);
    }

    #[test]
    fn transpose_transpose(seed in 0u64..1000, r in 2usize..5) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let p1 = perm(&mut rng, r);
        let p2 = perm(&mut rng, r);
        let t1 = b.op(Op::Transpose { perm: Some(p1) }, vec![Some(x)]);
        let t2 = b.op(Op::Transpose { perm: Some(p2) }, vec![Some(t1)]);
        let rs = canon_rules();
        b.check(t2, &refs(&rs), &["transpose-transpose"]);
    }

    #[test]
    fn reshape_chain(seed in 0u64..1000, a in 1usize..5, c in 1usize..5) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[a, c, 2]));
        let s = b.konst(Tensor::from_vec(vec![2], vec![a as i64, (c * 2) as i64]).unwrap());
        let r1 = b.op(Op::Reshape { allowzero: false }, vec![Some(x), Some(s)]);
        let f = b.op(Op::Flatten { axis: 0 }, vec![Some(r1)]);
        let y = b.op(Op::Unary(UnaryOp::Neg), vec![Some(f)]);
        let rs = canon_rules();
        b.check(y, &refs(&rs), &["reshape-chain"]);
    }

    #[test]
    fn batchnorm_into_conv_and_affine(seed in 0u64..1000, cin in 1usize..4, cout in 1usize..5, k in 1usize..4, bias in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[1, cin, 5, 5]));
        let w = b.konst(rand_t(&mut rng, &[cout, cin, k, k]));
        let bb = bias.then(|| b.konst(rand_t(&mut rng, &[cout])));
        let conv = Op::Conv(ConvAttrs {
            window: Window { kernel_shape: vec![k, k], strides: vec![1, 1], pads: vec![0, 0, 0, 0], dilations: vec![1, 1], auto_pad: Default::default() },
            group: 1,
            layout: Default::default(),
        });
        let y = b.op(conv, vec![Some(x), Some(w), bb]);
        let s = b.konst(rand_t(&mut rng, &[cout]));
        let sh = b.konst(rand_t(&mut rng, &[cout]));
        let m = b.konst(rand_t(&mut rng, &[cout]));
        let v = b.konst(pos_t(&mut rng, &[cout]));
        let bn = b.op(Op::Norm { op: NormOp::BatchNormalization, epsilon: 1e-5 }, vec![Some(y), Some(s), Some(sh), Some(m), Some(v)]);
        let rs = canon_rules();
        b.check(bn, &refs(&rs), &["bn-into-conv", "bn-to-affine"]);
    }

    #[test]
    fn decomposed_layernorm_is_the_op(seed in 0u64..1000, r in 1usize..5, a_off in 0usize..4, gamma in 0u8..3, beta in any::<bool>(), pow in any::<bool>(), swap in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..5)).collect();
        let axis = a_off.min(r - 1);
        let norm = shape[axis..].to_vec();
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let axes: Vec<i64> = (axis..r).map(|a| if rng.random_bool(0.5) { a as i64 - r as i64 } else { a as i64 }).collect();
        let mean = |b: &mut B, v: ValueId| {
            let ax = b.konst(Tensor::from_vec(vec![axes.len()], axes.clone()).unwrap());
            b.op(Op::Reduce { op: ReduceOp::Mean, keepdims: true, noop_with_empty_axes: false }, vec![Some(v), Some(ax)])
        };
        let bin = |b: &mut B, op: BinaryOp, p: ValueId, q: ValueId, swap: bool| {
            let (p, q) = if swap { (q, p) } else { (p, q) };
            b.op(Op::Binary(op), vec![Some(p), Some(q)])
        };
        let m = mean(&mut b, x);
        let d = b.op(Op::Binary(BinaryOp::Sub), vec![Some(x), Some(m)]);
        let sq = if pow {
            let two = b.konst(Tensor::scalar(2.0f32));
            b.op(Op::Binary(BinaryOp::Pow), vec![Some(d), Some(two)])
        } else {
            b.op(Op::Binary(BinaryOp::Mul), vec![Some(d), Some(d)])
        };
        let var = mean(&mut b, sq);
        let eps = b.konst(Tensor::scalar(1e-5f32));
        let ve = bin(&mut b, BinaryOp::Add, var, eps, swap);
        let sd = b.op(Op::Unary(UnaryOp::Sqrt), vec![Some(ve)]);
        let mut y = b.op(Op::Binary(BinaryOp::Div), vec![Some(d), Some(sd)]);
        // γ: none, the normalized shape, or with leading unit dims up to x's rank.
        if gamma > 0 {
            let gs: Vec<usize> = if gamma == 1 { norm.clone() } else { vec![1; axis].into_iter().chain(norm.iter().copied()).collect() };
            let g = b.konst(rand_t(&mut rng, &gs));
            y = bin(&mut b, BinaryOp::Mul, y, g, swap);
        }
        if beta {
            let bt = b.konst(rand_t(&mut rng, &norm));
            y = bin(&mut b, BinaryOp::Add, y, bt, !swap);
        }
        let rs = canon_rules();
        b.check(y, &refs(&rs), &["decomposed-layernorm"]);
    }

    #[test]
    fn decomposed_gelu_is_the_op(seed in 0u64..1000, r in 1usize..5, tanh in any::<bool>(), assoc in 0u8..3, mul_form in any::<bool>(), swap in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..5)).collect();
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let s = gelu_parts(&mut b, x, tanh, mul_form, swap);
        let y = gelu_product(&mut b, x, s, assoc);
        let rs = canon_rules();
        b.check(y, &refs(&rs), &["decomposed-gelu"]);
    }

    #[test]
    fn decomposed_hardswish_is_the_op(seed in 0u64..1000, r in 1usize..5, form in 0u8..4, swap in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..5)).collect();
        let mut b = B::new();
        // Inputs across the clip's corners (-3 and 3).
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-5.0f32..5.0)).collect();
        let x = b.input(Tensor::from_vec(shape.clone(), v).unwrap());
        let y = hardswish_form(&mut b, x, form, swap);
        let rs = canon_rules();
        b.check(y, &refs(&rs), &["decomposed-hardswish"]);
    }

    #[test]
    fn decomposed_softmax_is_the_op(seed in 0u64..1000, r in 1usize..5, a_off in 0usize..4, negative in any::<bool>(), stable in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..5)).collect();
        let axis = a_off.min(r - 1);
        let ax = if negative { axis as i64 - r as i64 } else { axis as i64 };
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let y = softmax_form(&mut b, x, ax, stable);
        let rs = canon_rules();
        b.check(y, &refs(&rs), &["decomposed-softmax"]);
    }

    #[test]
    fn transpose_of_unit_dims_is_a_reshape(seed in 0u64..1000, r in 2usize..6) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| if rng.random_bool(0.5) { 1 } else { rng.random_range(2..4) }).collect();
        // A random permutation, then the non-unit dims put back in their original order.
        let mut p = perm(&mut rng, r);
        let slots: Vec<usize> = (0..r).filter(|&i| shape[p[i]] != 1).collect();
        let mut big: Vec<usize> = slots.iter().map(|&i| p[i]).collect();
        big.sort();
        for (&i, &d) in slots.iter().zip(&big) {
            p[i] = d;
        }
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let t = b.op(Op::Transpose { perm: Some(p) }, vec![Some(x)]);
        let y = b.op(Op::Unary(UnaryOp::Neg), vec![Some(t)]);
        let rs = layout::canon_rules();
        b.check(y, &refs(&rs), &["transpose-unit-dims"]);
    }

    #[test]
    fn transpose_moves_through_unit_reshape(seed in 0u64..1000, r in 2usize..5) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let s4 = with_units(&mut rng, &shape, 2);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let t0 = b.op(Op::Transpose { perm: Some(perm(&mut rng, r)) }, vec![Some(x)]);
        let mut tshape: Vec<usize> = s4.clone();
        // The reshape keeps t0's non-unit dims in order.
        let t0_shape: Vec<usize> = {
            let g = &b.g;
            g.value(t0).ty.shape.as_static().unwrap()
        };
        let mut it = t0_shape.iter().filter(|&&d| d != 1);
        for d in tshape.iter_mut() {
            if *d != 1 {
                *d = *it.next().unwrap();
            }
        }
        let dims = b.shape_const(&tshape);
        let re = b.op(Op::Reshape { allowzero: false }, vec![Some(t0), Some(dims)]);
        let t1 = b.op(Op::Transpose { perm: Some(perm(&mut rng, tshape.len())) }, vec![Some(re)]);
        let mut rs = layout::canon_rules();
        rs.extend(canon::rules());
        b.check(t1, &refs(&rs), &["transpose-through-unit-reshape"]);
    }

    #[test]
    fn gather_moves_through_transpose(seed in 0u64..1000, r in 2usize..5, neg in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let p = perm(&mut rng, r);
        let a = rng.random_range(0..r);
        let dim = shape[p[a]] as i64;
        let i = rng.random_range(0..dim);
        let t = b.op(Op::Transpose { perm: Some(p) }, vec![Some(x)]);
        // Negative axis and index on odd cases.
        let idx = b.konst(Tensor::scalar(if neg { i - dim } else { i }));
        let axis = if neg { a as i64 - r as i64 } else { a as i64 };
        let g = b.op(Op::Gather { axis }, vec![Some(t), Some(idx)]);
        let y = b.op(Op::Unary(UnaryOp::Neg), vec![Some(g)]);
        let mut rs = layout::canon_rules();
        rs.extend(canon::rules());
        b.check(y, &refs(&rs), &["gather-through-transpose"]);
    }

    #[test]
    fn gather_moves_through_unit_reshape(seed in 0u64..1000, r in 1usize..4) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(2..4)).collect();
        let s2 = with_units(&mut rng, &shape, 2);
        let big: Vec<usize> = (0..s2.len()).filter(|&i| s2[i] != 1).collect();
        let a = big[rng.random_range(0..big.len())];
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let dims = b.shape_const(&s2);
        let re = b.op(Op::Reshape { allowzero: false }, vec![Some(x), Some(dims)]);
        let idx = b.konst(Tensor::scalar(rng.random_range(0..s2[a]) as i64));
        let g = b.op(Op::Gather { axis: a as i64 }, vec![Some(re), Some(idx)]);
        let y = b.op(Op::Unary(UnaryOp::Neg), vec![Some(g)]);
        let mut rs = layout::canon_rules();
        rs.extend(canon::rules());
        b.check(y, &refs(&rs), &["gather-through-unit-reshape"]);
    }

    #[test]
    fn elementwise_sinks_below_reshape(seed in 0u64..1000, m in 1usize..4, n1 in 1usize..4, n2 in 2usize..4, k in 1usize..4) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let a = b.input(rand_t(&mut rng, &[m, k]));
        let w = b.konst(rand_t(&mut rng, &[k, n1 * n2]));
        let r = b.input(rand_t(&mut rng, &[1, m, n1, n2]));
        let mm = b.op(Op::MatMul, vec![Some(a), Some(w)]);
        let s = b.shape_const(&[1, m, n1, n2]);
        let rs4 = b.op(Op::Reshape { allowzero: false }, vec![Some(mm), Some(s)]);
        // A scalar of higher rank than the GEMM output, and a full-shape residual.
        let c = b.konst(rand_t(&mut rng, &[1, 1, 1, 1]));
        let mul = b.op(Op::Binary(BinaryOp::Mul), vec![Some(rs4), Some(c)]);
        let add = b.op(Op::Binary(BinaryOp::Add), vec![Some(r), Some(mul)]);
        let rs = layout::sink_rules();
        b.check(add, &refs(&rs), &["sink-reshape"]);
    }

    #[test]
    fn scalar_elementwise_sinks_below_transpose(seed in 0u64..1000, r in 2usize..5) {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape: Vec<usize> = (0..r).map(|_| rng.random_range(1..4)).collect();
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &shape));
        let e = b.op(Op::Unary(UnaryOp::Exp), vec![Some(x)]);
        let t = b.op(Op::Transpose { perm: Some(perm(&mut rng, r)) }, vec![Some(e)]);
        let c = b.konst(rand_t(&mut rng, &[]));
        let mul = b.op(Op::Binary(BinaryOp::Sub), vec![Some(c), Some(t)]);
        let y = b.op(Op::Unary(UnaryOp::Tanh), vec![Some(mul)]);
        let rs = layout::sink_rules();
        b.check(y, &refs(&rs), &["sink-transpose"]);
    }

    #[test]
    fn elementwise_chains_fuse(seed in 0u64..1000, n in 1usize..5, c in 1usize..4) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[n, c, 3]));
        let y = b.input(rand_t(&mut rng, &[c, 1]));
        let z = b.konst(rand_t(&mut rng, &[3]));
        let a = b.op(Op::Binary(BinaryOp::Mul), vec![Some(x), Some(y)]);
        let e = b.op(Op::Activation(ActivationOp::Gelu { tanh: false }), vec![Some(a)]);
        let s = b.op(Op::Binary(BinaryOp::Add), vec![Some(e), Some(z)]);
        let t = b.op(Op::Unary(UnaryOp::Tanh), vec![Some(y)]);
        let o = b.op(Op::Binary(BinaryOp::Sub), vec![Some(s), Some(t)]);
        let lo = b.konst(Tensor::scalar(-1.0f32));
        let cl = b.op(Op::Clip, vec![Some(o), Some(lo), None]);
        let rs = fusion::rules();
        b.check(cl, &refs(&rs), &["elementwise-as-program", "fuse-producer"]);
    }

    #[test]
    fn epilogues_fuse_into_anchors(seed in 0u64..1000, m in 1usize..5, k in 1usize..6, n in 1usize..6) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let a = b.input(rand_t(&mut rng, &[m, k]));
        let r = b.input(rand_t(&mut rng, &[m, n]));
        let w = b.konst(rand_t(&mut rng, &[k, n]));
        let bias = b.konst(rand_t(&mut rng, &[n]));
        let mm = b.op(Op::MatMul, vec![Some(a), Some(w)]);
        let ad = b.op(Op::Binary(BinaryOp::Add), vec![Some(mm), Some(bias)]);
        let re = b.op(Op::Unary(UnaryOp::Relu), vec![Some(ad)]);
        let res = b.op(Op::Binary(BinaryOp::Add), vec![Some(re), Some(r)]);
        let rs = fusion::rules();
        b.check(res, &refs(&rs), &["anchor-as-program", "fuse-producer"]);
    }

    #[test]
    fn attention_fuses(seed in 0u64..1000, h in 1usize..3, s in 1usize..6, t in 1usize..6, d in 1usize..5, dv in 1usize..5, masked in any::<bool>(), nan_step in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let q = b.input(rand_t(&mut rng, &[2, h, s, d]));
        let kt = b.input(rand_t(&mut rng, &[2, h, d, t]));
        let v = b.input(rand_t(&mut rng, &[2, h, t, dv]));
        let mut scores = b.op(Op::MatMul, vec![Some(q), Some(kt)]);
        if masked {
            // Per batch entry and key; batch 1 fully masked, batch 0 masked at random keys.
            let mask: Vec<f32> = (0..2 * t)
                .map(|k| if k >= t || rng.random_bool(0.3) { f32::NEG_INFINITY } else { 0.0 })
                .collect();
            let m = b.konst(Tensor::from_vec(vec![2, 1, 1, t], mask).unwrap());
            scores = b.op(Op::Binary(BinaryOp::Add), vec![Some(scores), Some(m)]);
        }
        let mut p = b.op(Op::Softmax { axis: -1, legacy: false }, vec![Some(scores)]);
        if nan_step {
            let nan = b.op(Op::Unary(UnaryOp::IsNaN), vec![Some(p)]);
            let z = b.konst(Tensor::scalar(0.0f32));
            p = b.op(Op::Where, vec![Some(nan), Some(z), Some(p)]);
        }
        let out = b.op(Op::MatMul, vec![Some(p), Some(v)]);
        let rs = fusion::rules();
        b.check(out, &refs(&rs), &["fuse-attention"]);
    }

    #[test]
    fn head_split_attention_fuses(seed in 0u64..1000, h in 1usize..3, s in 1usize..6, t in 1usize..6, d in 1usize..5, dv in 1usize..5, scale in any::<bool>(), nan_step in any::<bool>()) {
        let (b, out) = head_split_attention(seed, h, s, t, d, dv, scale, nan_step);
        let mut rs = fusion::rules();
        rs.extend(einsum::rules());
        b.check(out, &refs(&rs), &["fuse-attention"]);
    }

    #[test]
    fn contractions_absorb_transposes_and_scalar_factors(seed in 0u64..1000, n in 1usize..3, m in 1usize..4, k in 1usize..4, c in 1usize..4, ta in any::<bool>(), tb in any::<bool>(), to in any::<bool>(), scale in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        // An operand of shape `want`, given as a transpose of an input when `t`.
        let operand = |b: &mut B, rng: &mut StdRng, want: &[usize], t: bool| {
            if !t {
                return b.input(rand_t(rng, want));
            }
            let p = perm(rng, want.len());
            let mut xs = vec![0; want.len()];
            for (i, &pi) in p.iter().enumerate() {
                xs[pi] = want[i];
            }
            let x = b.input(rand_t(rng, &xs));
            b.op(Op::Transpose { perm: Some(p) }, vec![Some(x)])
        };
        let mut a = operand(&mut b, &mut rng, &[n, 2, m, k], ta);
        let bb = operand(&mut b, &mut rng, &[n, 2, k, c], tb);
        if scale {
            let s = b.konst(rand_t(&mut rng, &[1, 1]));
            a = b.op(Op::Binary(BinaryOp::Mul), vec![Some(s), Some(a)]);
        }
        let mut out = b.op(Op::MatMul, vec![Some(a), Some(bb)]);
        if to {
            let p = perm(&mut rng, 4);
            out = b.op(Op::Transpose { perm: Some(p) }, vec![Some(out)]);
        }
        let mut want = Vec::new();
        if ta || tb {
            want.push("einsum-through-transpose");
        }
        if to {
            want.push("transpose-into-einsum");
        }
        if scale {
            want.push("scalar-out-of-contraction");
        }
        let rs = einsum::rules();
        b.check(out, &refs(&rs), &want);
    }

    #[test]
    fn contractions_see_transposes_through_unit_reshapes(seed in 0u64..1000, h in 1usize..3, m in 1usize..4, k in 1usize..4, n in 1usize..4, b_side in any::<bool>()) {
        // ViT's head split: a = Reshape(Transpose(x, p), [1, h, m, k]).
        let mut rng = StdRng::seed_from_u64(seed);
        let mut b = B::new();
        let want = if b_side { [h, k, n] } else { [h, m, k] };
        let p = perm(&mut rng, 3);
        let mut xs = vec![0; 3];
        for (i, &pi) in p.iter().enumerate() {
            xs[pi] = want[i];
        }
        let x = b.input(rand_t(&mut rng, &xs));
        let t = b.op(Op::Transpose { perm: Some(p) }, vec![Some(x)]);
        let mut full = vec![1];
        full.extend(want);
        let dims = b.shape_const(&full);
        let split = b.op(Op::Reshape { allowzero: false }, vec![Some(t), Some(dims)]);
        let other = if b_side { [1, h, m, k] } else { [1, h, k, n] };
        let o = b.input(rand_t(&mut rng, &other));
        let args = if b_side { [o, split] } else { [split, o] };
        let out = b.op(Op::MatMul, vec![Some(args[0]), Some(args[1])]);
        let rs = einsum::rules();
        b.check(out, &refs(&rs), &["einsum-through-transpose"]);
    }
}

#[test]
fn whole_optimizer_folds_attention_transposes_and_scale_into_the_gemms() {
    // GPT-2's head split: Q, K and V are transposes of the projection, K is transposed again,
    // Q and K are scaled, and the context is transposed back. (Relu instead of Softmax, so
    // that the attention kernel does not take it all.)
    let mut rng = StdRng::seed_from_u64(7);
    let mut b = B::new();
    let (h, s, d) = (2, 5, 4);
    let heads = |b: &mut B, rng: &mut StdRng| {
        let x = b.input(rand_t(rng, &[1, s, h, d]));
        b.op(
            Op::Transpose {
                perm: Some(vec![0, 2, 1, 3]),
            },
            vec![Some(x)],
        )
    };
    let q = heads(&mut b, &mut rng);
    let k = heads(&mut b, &mut rng);
    let v = heads(&mut b, &mut rng);
    let sc = b.konst(Tensor::scalar(0.5f32));
    let q = b.op(Op::Binary(BinaryOp::Mul), vec![Some(q), Some(sc)]);
    let kt = b.op(
        Op::Transpose {
            perm: Some(vec![0, 1, 3, 2]),
        },
        vec![Some(k)],
    );
    let kt = b.op(Op::Binary(BinaryOp::Mul), vec![Some(kt), Some(sc)]);
    let scores = b.op(Op::MatMul, vec![Some(q), Some(kt)]);
    let p = b.op(Op::Unary(UnaryOp::Relu), vec![Some(scores)]);
    let ctx = b.op(Op::MatMul, vec![Some(p), Some(v)]);
    let out = b.op(
        Op::Transpose {
            perm: Some(vec![0, 2, 1, 3]),
        },
        vec![Some(ctx)],
    );
    let (ops, got, want) = b.optimize(vec![out]);
    // The score GEMM with the scales and the Relu in its epilogue, then the context GEMM.
    assert_eq!(ops, vec!["Fused", "Einsum"]);
    for (g, w) in got[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

#[test]
fn attention_with_a_nonzero_nan_fill_is_not_fused() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut b = B::new();
    let q = b.input(rand_t(&mut rng, &[2, 3, 4]));
    let kt = b.input(rand_t(&mut rng, &[2, 4, 5]));
    let v = b.input(rand_t(&mut rng, &[2, 5, 4]));
    let sc = b.op(Op::MatMul, vec![Some(q), Some(kt)]);
    let p = b.op(
        Op::Softmax {
            axis: -1,
            legacy: false,
        },
        vec![Some(sc)],
    );
    let nan = b.op(Op::Unary(UnaryOp::IsNaN), vec![Some(p)]);
    let z = b.konst(Tensor::scalar(0.5f32));
    let w = b.op(Op::Where, vec![Some(nan), Some(z), Some(p)]);
    let out = b.op(Op::MatMul, vec![Some(w), Some(v)]);
    b.g.set_outputs(vec![out]);
    let rs = fusion::rules();
    let r = check_rules(&b.g, &b.inputs, &refs(&rs), None, 1e-4).unwrap();
    assert_eq!(r.applied.get("fuse-attention"), None, "{:?}", r.applied);
}

#[test]
fn whole_optimizer_fuses_attention_into_one_kernel() {
    let (b, _, out) = attention_graph(11);
    let (ops, got, want) = b.optimize(vec![out]);
    assert_eq!(ops, vec!["FusedAttention"]);
    assert_eq!(got[0].to_f64_vec(), want[0].to_f64_vec());
}

#[test]
fn whole_optimizer_turns_a_decomposed_layernorm_into_one_op() {
    // The opset-13 export of LayerNorm over the last axis of [2, 5, 16], γ and β constant.
    let mut rng = StdRng::seed_from_u64(5);
    let mut b = B::new();
    let x = b.input(rand_t(&mut rng, &[2, 5, 16]));
    let g = b.konst(rand_t(&mut rng, &[16]));
    let bt = b.konst(rand_t(&mut rng, &[16]));
    let z = decomposed_layer_norm(&mut b.g, x, g, bt, 1e-5).unwrap();
    let (ops, got, want) = b.optimize(vec![z]);
    assert_eq!(ops, vec!["LayerNormalization"]);
    let (g, w) = (got[0].to_f64_vec(), want[0].to_f64_vec());
    for (a, e) in g.iter().zip(&w) {
        assert!((a - e).abs() <= 1e-5 * (1.0 + e.abs()), "{a} vs {e}");
    }
}

#[test]
fn attention_scores_with_another_consumer_are_still_computed() {
    // The probabilities are also a graph output: whichever form extraction picks for the
    // attention output, the softmax is still computed (and paid for) for the other consumer.
    let (b, p, out) = attention_graph(12);
    let (ops, got, want) = b.optimize(vec![out, p]);
    assert!(ops.contains(&"Softmax"), "{ops:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.to_f64_vec(), w.to_f64_vec());
    }
}

/// `MatMul(Softmax(Q·Kt), V)` on random inputs: the builder, the probabilities and the output.
fn attention_graph(seed: u64) -> (B, ValueId, ValueId) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = B::new();
    let q = b.input(rand_t(&mut rng, &[1, 2, 6, 4]));
    let kt = b.input(rand_t(&mut rng, &[1, 2, 4, 7]));
    let v = b.input(rand_t(&mut rng, &[1, 2, 7, 4]));
    let sc = b.op(Op::MatMul, vec![Some(q), Some(kt)]);
    let p = b.op(
        Op::Softmax {
            axis: -1,
            legacy: false,
        },
        vec![Some(sc)],
    );
    let out = b.op(Op::MatMul, vec![Some(p), Some(v)]);
    (b, p, out)
}

/// `1 + erf(x/√2)` (`x · (1/√2)` with `mul_form`) or the tanh form's `1 + tanh(√(2/π) · (x +
/// 0.044715 · x³))`, operands of the additions swapped with `swap`.
fn gelu_parts(b: &mut B, x: ValueId, tanh: bool, mul_form: bool, swap: bool) -> ValueId {
    let bin = |b: &mut B, op: BinaryOp, p: ValueId, q: ValueId, swap: bool| {
        let (p, q) = if swap { (q, p) } else { (p, q) };
        b.op(Op::Binary(op), vec![Some(p), Some(q)])
    };
    let inner = if tanh {
        let three = b.konst(Tensor::scalar(3.0f32));
        let cube = b.op(Op::Binary(BinaryOp::Pow), vec![Some(x), Some(three)]);
        let c = b.konst(Tensor::scalar(0.044715f32));
        let m = bin(b, BinaryOp::Mul, cube, c, swap);
        let w = bin(b, BinaryOp::Add, x, m, swap);
        let k = b.konst(Tensor::scalar((2.0f32 / std::f32::consts::PI).sqrt()));
        let z = bin(b, BinaryOp::Mul, w, k, !swap);
        b.op(Op::Unary(UnaryOp::Tanh), vec![Some(z)])
    } else {
        let z = if mul_form {
            let k = b.konst(Tensor::scalar(std::f32::consts::FRAC_1_SQRT_2));
            bin(b, BinaryOp::Mul, x, k, swap)
        } else {
            let k = b.konst(Tensor::scalar(std::f32::consts::SQRT_2));
            b.op(Op::Binary(BinaryOp::Div), vec![Some(x), Some(k)])
        };
        b.op(Op::Unary(UnaryOp::Erf), vec![Some(z)])
    };
    let one = b.konst(Tensor::scalar(1.0f32));
    bin(b, BinaryOp::Add, inner, one, swap)
}

/// `x · 0.5 · s` associated as the exporters do: `(x·s)·0.5` (torch.onnx, vit), `x·(0.5·s)`
/// (bert), `(x·0.5)·s` (gpt2).
fn gelu_product(b: &mut B, x: ValueId, s: ValueId, assoc: u8) -> ValueId {
    let half = b.konst(Tensor::scalar(0.5f32));
    let mul =
        |b: &mut B, p: ValueId, q: ValueId| b.op(Op::Binary(BinaryOp::Mul), vec![Some(p), Some(q)]);
    match assoc {
        0 => {
            let t = mul(b, x, s);
            mul(b, t, half)
        }
        1 => {
            let t = mul(b, half, s);
            mul(b, x, t)
        }
        _ => {
            let t = mul(b, x, half);
            mul(b, t, s)
        }
    }
}

/// HardSwish written out: `x · Clip(x + 3, 0, 6) / 6` (form 0), `(x · clip) · (1/6)` (1),
/// `x · (clip · (1/6))` (2), `x · HardSigmoid(x)` (3).
fn hardswish_form(b: &mut B, x: ValueId, form: u8, swap: bool) -> ValueId {
    let mul = |b: &mut B, p: ValueId, q: ValueId| {
        let (p, q) = if swap { (q, p) } else { (p, q) };
        b.op(Op::Binary(BinaryOp::Mul), vec![Some(p), Some(q)])
    };
    if form == 3 {
        let h = b.op(
            Op::Activation(ActivationOp::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            }),
            vec![Some(x)],
        );
        return mul(b, x, h);
    }
    let three = b.konst(Tensor::scalar(3.0f32));
    let a = b.op(Op::Binary(BinaryOp::Add), vec![Some(x), Some(three)]);
    let lo = b.konst(Tensor::scalar(0.0f32));
    let hi = b.konst(Tensor::scalar(6.0f32));
    let c = b.op(Op::Clip, vec![Some(a), Some(lo), Some(hi)]);
    match form {
        0 => {
            let p = mul(b, x, c);
            let six = b.konst(Tensor::scalar(6.0f32));
            b.op(Op::Binary(BinaryOp::Div), vec![Some(p), Some(six)])
        }
        1 => {
            let p = mul(b, x, c);
            let sixth = b.konst(Tensor::scalar(1.0f32 / 6.0));
            mul(b, p, sixth)
        }
        _ => {
            let sixth = b.konst(Tensor::scalar(1.0f32 / 6.0));
            let q = mul(b, c, sixth);
            mul(b, x, q)
        }
    }
}

/// Softmax over `axis` written out: `exp(x - max(x)) / sum(…)` (`stable`) or `exp(x) / sum(…)`.
fn softmax_form(b: &mut B, x: ValueId, axis: i64, stable: bool) -> ValueId {
    let reduce = |b: &mut B, op: ReduceOp, v: ValueId| {
        let ax = b.konst(Tensor::from_vec(vec![1], vec![axis]).unwrap());
        b.op(
            Op::Reduce {
                op,
                keepdims: true,
                noop_with_empty_axes: false,
            },
            vec![Some(v), Some(ax)],
        )
    };
    let z = if stable {
        let m = reduce(b, ReduceOp::Max, x);
        b.op(Op::Binary(BinaryOp::Sub), vec![Some(x), Some(m)])
    } else {
        x
    };
    let e = b.op(Op::Unary(UnaryOp::Exp), vec![Some(z)]);
    let s = reduce(b, ReduceOp::Sum, e);
    b.op(Op::Binary(BinaryOp::Div), vec![Some(e), Some(s)])
}

#[test]
fn whole_optimizer_recognises_decomposed_activations_and_softmax() {
    // Each written-out form becomes the one op (GELU both ways, HardSwish, Softmax), and the
    // values stay the reference's.
    type Build = Box<dyn Fn(&mut B, ValueId) -> ValueId>;
    let cases: Vec<(&str, Build)> = vec![
        (
            "Gelu",
            Box::new(|b, x| {
                let s = gelu_parts(b, x, false, false, false);
                gelu_product(b, x, s, 0)
            }),
        ),
        (
            "Gelu",
            Box::new(|b, x| {
                let s = gelu_parts(b, x, true, false, true);
                gelu_product(b, x, s, 2)
            }),
        ),
        ("HardSwish", Box::new(|b, x| hardswish_form(b, x, 0, false))),
        ("Softmax", Box::new(|b, x| softmax_form(b, x, -1, true))),
    ];
    for (want, build) in cases {
        let mut rng = StdRng::seed_from_u64(9);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[2, 3, 8]));
        let y = build(&mut b, x);
        let (ops, got, w) = b.optimize(vec![y]);
        assert_eq!(ops, vec![want]);
        for (a, e) in got[0].to_f64_vec().iter().zip(&w[0].to_f64_vec()) {
            assert!(
                (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "{want}: {a} vs {e}"
            );
        }
    }
}

/// torch's scaled-dot-product attention export: Q', K', V' `[2, s, h, d]` (the head split
/// without its transpose), `Q = Transpose(Q')` (times `1/√d` with `scale`), `Kt` = K' permuted
/// `[0, 2, 3, 1]`, a mask over the keys, Softmax, the optional `Where(IsNaN(p), 0, p)`, `P·V`,
/// and the head merge `Transpose(·, [0, 2, 1, 3])`.
#[allow(clippy::too_many_arguments)]
fn head_split_attention(
    seed: u64,
    h: usize,
    s: usize,
    t: usize,
    d: usize,
    dv: usize,
    scale: bool,
    nan_step: bool,
) -> (B, ValueId) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = B::new();
    let tr = |b: &mut B, x: ValueId, p: &[usize]| {
        b.op(
            Op::Transpose {
                perm: Some(p.to_vec()),
            },
            vec![Some(x)],
        )
    };
    let q0 = b.input(rand_t(&mut rng, &[2, s, h, d]));
    let k0 = b.input(rand_t(&mut rng, &[2, t, h, d]));
    let v0 = b.input(rand_t(&mut rng, &[2, t, h, dv]));
    let mut q = tr(&mut b, q0, &[0, 2, 1, 3]);
    if scale {
        let c = b.konst(Tensor::scalar(1.0 / (d as f32).sqrt()));
        q = b.op(Op::Binary(BinaryOp::Mul), vec![Some(q), Some(c)]);
    }
    let kt = tr(&mut b, k0, &[0, 2, 3, 1]);
    let v = tr(&mut b, v0, &[0, 2, 1, 3]);
    let sc = b.op(Op::MatMul, vec![Some(q), Some(kt)]);
    let mask: Vec<f32> = (0..2 * t)
        .map(|k| {
            if k >= t && k % 2 == 0 {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let m = b.konst(Tensor::from_vec(vec![2, 1, 1, t], mask).unwrap());
    let sc = b.op(Op::Binary(BinaryOp::Add), vec![Some(sc), Some(m)]);
    let mut p = b.op(
        Op::Softmax {
            axis: -1,
            legacy: false,
        },
        vec![Some(sc)],
    );
    if nan_step {
        let nan = b.op(Op::Unary(UnaryOp::IsNaN), vec![Some(p)]);
        let z = b.konst(Tensor::scalar(0.0f32));
        p = b.op(Op::Where, vec![Some(nan), Some(z), Some(p)]);
    }
    let y = b.op(Op::MatMul, vec![Some(p), Some(v)]);
    let out = tr(&mut b, y, &[0, 2, 1, 3]);
    (b, out)
}

#[test]
fn whole_optimizer_fuses_head_split_attention_in_place() {
    // The transposes of the head split and merge become the op's layout: one kernel, no copies.
    let (mut b, out) = head_split_attention(3, 2, 6, 8, 4, 4, true, true);
    b.g.set_outputs(vec![out]);
    let opts = optc_passes::Options::new(3, "wgsl");
    let o = optc_passes::optimize(&b.g, &Default::default(), &opts).unwrap();
    let ops: Vec<&Op> = o.graph.node_ids().map(|n| &o.graph.node(n).op).collect();
    assert_eq!(ops.len(), 1, "{ops:?}");
    let Op::FusedAttention(a) = ops[0] else {
        panic!("{ops:?}")
    };
    let l = a.layout.as_ref().expect("a layout");
    assert_eq!(
        (l.q.as_slice(), l.k.as_slice()),
        (&[0, 2, 1, 3][..], &[0, 2, 3, 1][..])
    );
    assert_eq!(
        (l.v.as_slice(), l.out.as_slice()),
        (&[0, 2, 1, 3][..], &[0, 2, 1, 3][..])
    );
    let got = optc_ir::run(&o.graph, &b.inputs).unwrap();
    let want = optc_ir::run(&b.g, &b.inputs).unwrap();
    for (g, w) in got[0].to_f64_vec().iter().zip(&want[0].to_f64_vec()) {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

#[test]
fn ilp_extraction_reuses_an_intermediate_the_greedy_one_recomputes() {
    // A = x1 + x2 is a graph output, Y = Exp(A) another. The greedy DAG extractor picks Y's
    // cheapest form on its own — one fused Add+Exp kernel reading x1 and x2, cheaper than an
    // Exp plus an Add — and then pays for the Add again for A. The integer program sees that A
    // is computed anyway and reads it (-O3: one input read instead of two); the values are the
    // same either way.
    let run = |level: u8| {
        let mut rng = StdRng::seed_from_u64(21);
        let mut b = B::new();
        let x1 = b.input(rand_t(&mut rng, &[64, 1024]));
        let x2 = b.input(rand_t(&mut rng, &[64, 1024]));
        let a = b.op(Op::Binary(BinaryOp::Add), vec![Some(x1), Some(x2)]);
        let y = b.op(Op::Unary(UnaryOp::Exp), vec![Some(a)]);
        b.g.set_outputs(vec![a, y]);
        let opts = optc_passes::Options::new(level, "wgsl");
        let o = optc_passes::optimize(&b.g, &Default::default(), &opts).unwrap();
        let mut ops: Vec<&str> = o
            .graph
            .node_ids()
            .map(|n| o.graph.node(n).op.name())
            .collect();
        ops.sort_unstable();
        let got = optc_ir::run(&o.graph, &b.inputs).unwrap();
        let want = optc_ir::run(&b.g, &b.inputs).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.to_f64_vec(), w.to_f64_vec());
        }
        let fusion = o.report.stages.last().unwrap().clone();
        (ops, fusion)
    };
    let (greedy_ops, greedy) = run(2);
    let (ilp_ops, ilp) = run(3);
    assert_eq!(greedy_ops, vec!["Add", "Fused"]);
    assert_eq!(greedy.extractor, "greedy");
    assert_eq!(greedy.ilp, None);
    assert_eq!(ilp_ops, vec!["Add", "Exp"]);
    assert_eq!(ilp.extractor, "ilp");
    assert_eq!(ilp.ilp.as_deref(), Some("optimal"));
    assert!(
        ilp.cost_us < ilp.greedy_cost_us,
        "{} vs {}",
        ilp.cost_us,
        ilp.greedy_cost_us
    );
    assert_eq!(ilp.greedy_cost_us, greedy.cost_us);
}

/// An inverted-residual block on a 7×7 plane (1×1 expand + ReLU6, depthwise 3×3 + ReLU6,
/// 1×1 project, residual Add, global pool), after a 1×1 stem: on wgsl every conv runs
/// channels-last (the stem reads the channels-first input, the pool reduces the channels-last
/// result), with no transpose left; on sm_89, whose cost model does not price layouts, all
/// stay channels-first. Values are checked against the original graph.
#[test]
fn whole_optimizer_runs_a_mobilenet_block_channels_last_on_wgsl_only() {
    let build = || {
        let mut rng = StdRng::seed_from_u64(11);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[1, 8, 7, 7]));
        let lo = b.konst(Tensor::scalar(0.0f32));
        let hi = b.konst(Tensor::scalar(6.0f32));
        let mut conv = |b: &mut B, x: ValueId, cin: usize, cout: usize, k: usize, group: usize| {
            let w = b.konst(rand_t(&mut rng, &[cout, cin / group, k, k]));
            let bias = b.konst(rand_t(&mut rng, &[cout]));
            b.op(conv_op(k, k / 2, group), vec![Some(x), Some(w), Some(bias)])
        };
        let stem = conv(&mut b, x, 8, 16, 1, 1);
        let e = conv(&mut b, stem, 16, 32, 1, 1);
        let e = b.op(Op::Clip, vec![Some(e), Some(lo), Some(hi)]);
        let d = conv(&mut b, e, 32, 32, 3, 32);
        let d = b.op(Op::Clip, vec![Some(d), Some(lo), Some(hi)]);
        let p = conv(&mut b, d, 32, 16, 1, 1);
        let r = b.op(Op::Binary(BinaryOp::Add), vec![Some(stem), Some(p)]);
        let out = b.op(Op::GlobalAveragePool, vec![Some(r)]);
        b.g.set_outputs(vec![out]);
        b
    };
    for target in ["wgsl", "sm_89"] {
        let b = build();
        let opts = optc_passes::Options::new(3, target);
        let o = optc_passes::optimize(&b.g, &Default::default(), &opts).unwrap();
        let mut layouts = Vec::new();
        let mut ops = Vec::new();
        for n in o.graph.node_ids() {
            let op = &o.graph.node(n).op;
            ops.push(op.name());
            let anchor = match op {
                Op::Fused(f) => f.anchor.as_ref(),
                op => Some(op),
            };
            if let Some(Op::Conv(a)) = anchor {
                layouts.push(a.layout);
            }
        }
        assert_eq!(layouts.len(), 4, "{target}: {ops:?}");
        assert!(!ops.contains(&"Transpose"), "{target}: {ops:?}");
        let last = |i, o| ConvLayout {
            input_last: i,
            output_last: o,
            weight_last: false,
        };
        if target == "wgsl" {
            assert_eq!(layouts[0], last(false, true), "{ops:?}");
            assert!(
                layouts[1..].iter().all(|&l| l == last(true, true)),
                "{layouts:?}"
            );
            assert!(ops.contains(&"ReduceMean"), "{ops:?}");
        } else {
            assert!(layouts.iter().all(|l| l.is_first()), "{layouts:?}");
        }
        let got = optc_ir::run(&o.graph, &b.inputs).unwrap();
        let want = optc_ir::run(&b.g, &b.inputs).unwrap();
        for (g, w) in got[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{target}: {g} vs {w}"
            );
        }
    }
}

/// The layout stage prices a Conv by the backend's cost factors ([`ConvCostFn`]): where the
/// channels-first form pays 10× (a made-up factor, to outweigh the input and output
/// transposes), the conv is stored channels-last; without it, channels-first — and both
/// compute the original values.
#[test]
fn the_backends_conv_factors_price_conv_layouts() {
    use optc_ir::ops::AutoPad;
    use optc_passes::cost::ConvCostFn;
    fn first_pays_ten(a: &ConvAttrs, _: &[usize], _: &[usize], _: &[usize]) -> (f64, f64) {
        if a.layout.input_last {
            (1.0, 1.0)
        } else {
            (1.0, 10.0)
        }
    }
    let input_last = |factors: Option<ConvCostFn>| {
        let mut rng = StdRng::seed_from_u64(11);
        let mut b = B::new();
        let x = b.input(rand_t(&mut rng, &[1, 16, 12, 12]));
        let w = b.konst(rand_t(&mut rng, &[32, 16, 1, 1]));
        let conv = Op::Conv(ConvAttrs {
            window: Window {
                kernel_shape: vec![1, 1],
                strides: vec![1, 1],
                dilations: vec![],
                pads: vec![0; 4],
                auto_pad: AutoPad::NotSet,
            },
            group: 1,
            layout: Default::default(),
        });
        let y = b.op(conv, vec![Some(x), Some(w)]);
        b.g.set_outputs(vec![y]);
        let mut opts = optc_passes::Options::new(3, "wgsl");
        opts.conv_factors = factors;
        let o = optc_passes::optimize(&b.g, &Default::default(), &opts).unwrap();
        let got = optc_ir::run(&o.graph, &b.inputs).unwrap();
        let want = optc_ir::run(&b.g, &b.inputs).unwrap();
        for (g, w) in got[0].to_f64_vec().iter().zip(want[0].to_f64_vec()) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
        }
        let convs: Vec<bool> = o
            .graph
            .node_ids()
            .filter_map(|n| match &o.graph.node(n).op {
                Op::Conv(a) => Some(a.layout.input_last),
                _ => None,
            })
            .collect();
        assert_eq!(convs.len(), 1, "one conv");
        convs[0]
    };
    assert!(!input_last(None));
    assert!(input_last(Some(first_pays_ten)));
}
