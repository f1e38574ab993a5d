//! GEMMs on tensor cores (`kernels/src/lower/mma.rs`), compiled for sm_89, the printed PTX
//! executed by the test-only PTX interpreter and compared with the reference interpreter on
//! random inputs: f16 (and bf16) MatMuls of tile-aligned, ragged, batched and broadcast shapes,
//! on the simple kernel and on the shared-memory pipeline (`cp.async` + `ldmatrix`, every
//! operand orientation, several K slices), and at -O2
//! a fused linear layer (bias + Relu epilogue), a Gemm with transB, alpha and beta·C, and a
//! batched MatMul the optimizer turns into an Einsum; f32 on tf32 only when allowed. Every
//! tensor-core kernel is assembled by ptxas for sm_80, sm_86, sm_89 and sm_90.
//!
//! Tolerances are derived, per element, from `mag = Σ_k |a_ik|·|b_kj|` (the same graph on the
//! operands' absolute values): f32 accumulation in another order differs by at most
//! ~K·2⁻²⁴·mag ≤ 2⁻¹⁶·mag here; an f16 or bf16 result adds one final rounding on each side
//! (≤ 2u·|want|, u = 2⁻¹¹ for f16, 2⁻⁸ for bf16) and the reference's rounding after each earlier
//! op (≤ (ops − 1)·u·mag); tf32 rounds each operand to 10 mantissa bits (≤ 2⁻¹¹ relative each,
//! so ≤ 2⁻¹⁰·mag for a product of two).

mod common;

use optc::exec::{from_host, to_host};
use optc_codegen::{PtxTarget, ptxas};
use optc_ir::ops::{AutoPad, BinaryOp, ConvAttrs, UnaryOp, Window};
use optc_ir::{DType, Graph, Op, Tensor};
use optc_runtime::Target;

const F16_MMA: &str = "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32";
const BF16_MMA: &str = "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32";
const TF32_MMA: &str = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32";
const S8_MMA: &str = "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32";
const U8_MMA: &str = "mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32";

/// One graph over `ins` (those at `consts` as constants), as [`common::graph`] builds it.
struct Case {
    name: &'static str,
    ins: Vec<Tensor>,
    consts: Vec<usize>,
    nodes: Vec<(Op, Vec<usize>)>,
    level: u8,
}

impl Case {
    fn matmul(name: &'static str, sa: &[usize], sb: &[usize], dt: DType, seed: u64) -> Case {
        Case {
            name,
            ins: vec![
                common::rand(sa, seed).cast(dt),
                common::rand(sb, seed + 1).cast(dt),
            ],
            consts: vec![],
            nodes: vec![(Op::MatMul, vec![0, 1])],
            level: 0,
        }
    }

    fn graph(&self, ins: &[Tensor]) -> (Graph, Vec<Tensor>) {
        common::graph(ins, &self.consts, &self.nodes)
    }

    /// Compiles the case for `target`, with tf32 allowed or not.
    fn compile(&self, target: Target, tf32: bool) -> optc_runtime::Artifact {
        let (g, _) = self.graph(&self.ins);
        let mut opts = optc::compile::Options::new(target);
        opts.opt_level = self.level;
        opts.allow_tf32 = tf32;
        optc::compile::compile(&g, self.name, &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
            .to_artifact()
    }

    /// Runs the sm_89 artifact in the PTX interpreter and checks it against the reference
    /// within the derived bound; asserts the kernel `mma` appears in exactly one kernel.
    fn check(&self, tf32: bool, mma: &str) {
        let name = self.name;
        let artifact = self.compile(Target::Sm89, tf32);
        let n = artifact.sources.iter().filter(|s| s.contains(mma)).count();
        assert_eq!(n, 1, "{name}: one tensor-core kernel expected");
        let (g, feeds) = self.graph(&self.ins);
        let want = optc_ir::run(&g, &feeds).unwrap().remove(0);
        let abs: Vec<Tensor> = self.ins.iter().map(abs).collect();
        let (ga, feeds_abs) = self.graph(&abs);
        let mag = optc_ir::run(&ga, &feeds_abs)
            .unwrap()
            .remove(0)
            .to_f64_vec();
        let host: Vec<_> = feeds.iter().map(|t| to_host(t).unwrap()).collect();
        let got =
            optc_ptxsim::run_artifact(&artifact, &host).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = from_host(&got[0]).unwrap();
        assert_eq!(got.shape(), want.shape(), "{name}");
        let (gv, wv) = (got.to_f64_vec(), want.to_f64_vec());
        // An f16/bf16 result (unit roundoff u = 2⁻¹¹ / 2⁻⁸) is rounded once at the end by both
        // the reference and the device (≤ 2u·|want|); the reference also rounds after each
        // earlier op, an intermediate no larger than `mag` (a bias add can cancel what the
        // MatMul rounded): ≤ (ops − 1)·u·mag more.
        let unit = match want.dtype() {
            DType::F16 => 2f64.powi(-11),
            DType::BF16 => 2f64.powi(-8),
            _ => 0.0,
        };
        let earlier = unit * (self.nodes.len() - 1) as f64;
        for (k, ((a, w), m)) in gv.iter().zip(&wv).zip(&mag).enumerate() {
            let bound = if tf32 { 2f64.powi(-10) * m } else { 0.0 }
                + 2f64.powi(-16) * m
                + 2.0 * unit * w.abs()
                + earlier * m
                + 2f64.powi(-24);
            assert!(
                (a - w).abs() <= bound,
                "{name}: element {k}: got {a}, want {w} (bound {bound:.3e})"
            );
        }
        if tf32 {
            // Not the exact f32 result: tf32 rounding is really applied.
            assert_ne!(gv, wv, "{name}");
        }
    }
}

/// `Conv(x, w[, bias])` with `kernel`, `strides`, `dilations`, `pads` (one per axis:
/// symmetric; or ONNX's begins then ends) and `group`,
/// at `level` (-O2 fuses a trailing Relu into its epilogue).
#[allow(clippy::too_many_arguments)]
fn conv(
    name: &'static str,
    dt: DType,
    x: &[usize],
    w: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
    group: usize,
    relu: bool,
) -> Case {
    let rank = x.len() - 2;
    let attrs = ConvAttrs {
        window: Window {
            kernel_shape: w[2..].to_vec(),
            strides: strides.to_vec(),
            dilations: dilations.to_vec(),
            pads: if pads.len() == rank {
                pads.iter().chain(pads).copied().collect()
            } else {
                pads.to_vec()
            },
            auto_pad: AutoPad::NotSet,
        },
        group,
        layout: Default::default(),
    };
    assert!(pads.len() == rank || pads.len() == 2 * rank);
    let mut nodes = vec![(Op::Conv(attrs), vec![0, 1, 2])];
    if relu {
        nodes.push((Op::Unary(UnaryOp::Relu), vec![3]));
    }
    Case {
        name,
        ins: vec![
            common::rand(x, 101).cast(dt),
            common::rand(w, 102).cast(dt),
            common::rand(&[w[0]], 103).cast(dt),
        ],
        consts: vec![1, 2],
        nodes,
        level: if relu { 2 } else { 0 },
    }
}

/// Convs whose im2col matrix feeds the tensor cores (dense, strided, dilated, grouped, 1-D,
/// 3-D; a 1×1 stride-1 conv is a plain strided GEMM).
fn conv_cases(dt: DType) -> Vec<Case> {
    vec![
        conv(
            "conv3x3",
            dt,
            &[1, 8, 9, 9],
            &[16, 8, 3, 3],
            &[1, 1],
            &[1, 1],
            &[1, 1],
            1,
            false,
        ),
        conv(
            "conv-stride2-relu",
            dt,
            &[2, 6, 11, 10],
            &[20, 6, 3, 3],
            &[2, 2],
            &[1, 1],
            &[1, 1],
            1,
            true,
        ),
        conv(
            "conv-dilated",
            dt,
            &[1, 4, 12, 12],
            &[8, 4, 3, 3],
            &[1, 1],
            &[2, 2],
            &[2, 2],
            1,
            false,
        ),
        conv(
            "conv-grouped",
            dt,
            &[1, 8, 7, 7],
            &[12, 4, 3, 3],
            &[1, 1],
            &[1, 1],
            &[0, 0],
            2,
            false,
        ),
        // Height 1 and a 1-tall kernel, but padded at the end only: the output has 2 rows and
        // the second reads only padding (the axis is not a unit axis to skip).
        conv(
            "conv-unit-height-end-pad",
            dt,
            &[1, 8, 1, 6],
            &[16, 8, 1, 3],
            &[1, 1],
            &[1, 1],
            &[0, 1, 1, 1],
            1,
            false,
        ),
        conv(
            "conv1d",
            dt,
            &[2, 5, 30],
            &[9, 5, 5],
            &[1],
            &[1],
            &[2],
            1,
            false,
        ),
        conv(
            "conv3d",
            dt,
            &[1, 3, 5, 6, 6],
            &[8, 3, 3, 3, 3],
            &[1, 1, 1],
            &[1, 1, 1],
            &[1, 1, 1],
            1,
            false,
        ),
    ]
}

#[test]
fn convs_on_tensor_cores_match_the_reference() {
    for case in conv_cases(DType::F16) {
        // The im2col matrix is gathered through registers into the shared-memory pipeline.
        let art = case.compile(Target::Sm89, false);
        let has = |what: &str| art.sources.iter().any(|s| s.contains(what));
        assert!(
            has("ldmatrix.sync.aligned") && has("mma.sync"),
            "{}",
            case.name
        );
        case.check(false, F16_MMA);
    }
    for case in conv_cases(DType::BF16) {
        case.check(false, BF16_MMA);
    }
    for case in conv_cases(DType::F32) {
        case.check(true, TF32_MMA);
    }
}

/// `|t|`, same dtype.
fn abs(t: &Tensor) -> Tensor {
    let v: Vec<f32> = t.to_f64_vec().iter().map(|x| x.abs() as f32).collect();
    Tensor::from_vec(t.shape().to_vec(), v)
        .unwrap()
        .cast(t.dtype())
}

/// A linear layer at -O2: `Relu(x · W + bias)` with W and bias constant, fused into the GEMM's
/// epilogue.
fn linear(name: &'static str, dt: DType) -> Case {
    Case {
        name,
        ins: vec![
            common::rand(&[2, 5, 40], 31).cast(dt),
            common::rand(&[40, 72], 32).cast(dt),
            common::rand(&[72], 33).cast(dt),
        ],
        consts: vec![1, 2],
        nodes: vec![
            (Op::MatMul, vec![0, 1]),
            (Op::Binary(BinaryOp::Add), vec![3, 2]),
            (Op::Unary(UnaryOp::Relu), vec![4]),
        ],
        level: 2,
    }
}

fn f16_cases() -> Vec<Case> {
    let h = DType::F16;
    let mut einsum = Case::matmul("batched-einsum", &[4, 20, 32], &[4, 32, 24], h, 41);
    einsum.level = 2;
    vec![
        Case::matmul("aligned", &[16, 16], &[16, 8], h, 11),
        Case::matmul("square", &[32, 64], &[64, 64], h, 13),
        Case::matmul("ragged", &[33, 70], &[70, 41], h, 15),
        Case::matmul("batched", &[2, 3, 17, 24], &[2, 3, 24, 9], h, 17),
        Case::matmul("broadcast-a", &[16, 16], &[3, 16, 8], h, 19),
        Case::matmul("one", &[1, 1], &[1, 1], h, 21),
        linear("linear-relu", h),
        Case {
            name: "gemm-transb-alpha-beta",
            ins: vec![
                common::rand(&[24, 40], 51).cast(h),
                common::rand(&[56, 40], 52).cast(h),
                common::rand(&[56], 53).cast(h),
            ],
            consts: vec![],
            nodes: vec![(
                Op::Gemm {
                    alpha: 0.5,
                    beta: 2.0,
                    trans_a: false,
                    trans_b: true,
                },
                vec![0, 1, 2],
            )],
            level: 2,
        },
        einsum,
        // The shared-memory pipeline (cp.async + ldmatrix): operands whose 16-byte chunks are
        // aligned and K, or the contiguous rows, a multiple of 8.
        Case::matmul("staged-multi-slice", &[40, 136], &[136, 72], h, 81),
        Case::matmul("staged-two-by-two", &[128, 96], &[96, 128], h, 83),
        Case::matmul("staged-batched", &[3, 24, 40], &[3, 40, 16], h, 85),
        Case::matmul("staged-broadcast-b", &[2, 16, 32], &[32, 8], h, 87),
        staged_gemm("staged-trans-a", true, false),
        staged_gemm("staged-trans-b", false, true),
        staged_gemm("staged-trans-ab", true, true),
    ]
}

/// `Gemm(A, B)` of 48 × 24 over K = 72 with the operands stored transposed as asked: a
/// transposed A is staged row-major (`ldmatrix.trans`), a transposed B K-major.
fn staged_gemm(name: &'static str, trans_a: bool, trans_b: bool) -> Case {
    let (m, n, k) = (48, 24, 72);
    let sa: &[usize] = if trans_a { &[k, m] } else { &[m, k] };
    let sb: &[usize] = if trans_b { &[n, k] } else { &[k, n] };
    Case {
        name,
        ins: vec![
            common::rand(sa, 91).cast(DType::F16),
            common::rand(sb, 92).cast(DType::F16),
        ],
        consts: vec![],
        nodes: vec![(
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a,
                trans_b,
            },
            vec![0, 1],
        )],
        level: 0,
    }
}

#[test]
fn f16_gemms_on_tensor_cores_match_the_reference() {
    for case in f16_cases() {
        // Every f16 GEMM takes the shared-memory pipeline (ldmatrix); operands whose 16-byte
        // chunks are aligned are copied by cp.async, the others gathered through registers.
        let art = case.compile(Target::Sm89, false);
        let has = |what: &str| art.sources.iter().any(|s| s.contains(what));
        assert!(has("ldmatrix.sync.aligned"), "{}", case.name);
        // K = 70 or 1: neither operand chunks ("batched" chunks A, K = 24, but not B, N = 9).
        let gathered = ["ragged", "one"].contains(&case.name);
        assert_eq!(has("cp.async.cg"), !gathered, "{}", case.name);
        case.check(false, F16_MMA);
    }
}

#[test]
fn bf16_gemms_on_tensor_cores_match_the_reference() {
    let b = DType::BF16;
    let mut einsum = Case::matmul("bf16-batched-einsum", &[3, 20, 40], &[3, 40, 24], b, 71);
    einsum.level = 2;
    let cases = [
        Case::matmul("bf16-aligned", &[16, 16], &[16, 8], b, 73),
        Case::matmul("bf16-ragged", &[33, 70], &[70, 41], b, 75),
        Case::matmul("bf16-batched", &[2, 17, 24], &[2, 24, 9], b, 77),
        linear("bf16-linear-relu", b),
        einsum,
    ];
    for case in &cases {
        // bf16 is stored as 16 bits on sm targets: aligned operands are copied by cp.async
        // like f16, the rest gathered (each value widened exactly), and the result rounded to
        // bf16 on store.
        let art = case.compile(Target::Sm89, false);
        let has = |what: &str| art.sources.iter().any(|s| s.contains(what));
        assert!(has("ldmatrix.sync.aligned"), "{}", case.name);
        assert!(has("cvt.rn.bf16.f32"), "{}", case.name);
        // K = 70: neither operand chunks ("bf16-batched" chunks A, K = 24, but not B, N = 9).
        assert_eq!(
            has("cp.async.cg"),
            case.name != "bf16-ragged",
            "{}",
            case.name
        );
        let info = &art.manifest.outputs[0];
        assert_eq!(info.device, optc_runtime::DeviceType::Bf16, "{}", case.name);
        case.check(false, BF16_MMA);
    }
}

#[test]
fn f32_gemms_on_tf32_tensor_cores_only_with_allow_tf32() {
    let s = DType::F32;
    let cases = [
        Case::matmul("tf32-aligned", &[16, 8], &[8, 8], s, 61),
        Case::matmul("tf32-ragged", &[37, 50], &[50, 70], s, 63),
        Case::matmul("tf32-batched", &[2, 19, 33], &[2, 33, 12], s, 65),
        linear("tf32-linear-relu", s),
    ];
    for case in &cases {
        case.check(true, TF32_MMA);
        // Without the flag f32 stays exact: the portable template, no tensor cores.
        let portable = case.compile(Target::Sm89, false);
        assert!(
            portable.sources.iter().all(|s| !s.contains("mma.sync")),
            "{}",
            case.name
        );
    }
    // wgsl refuses the flag.
    let (g, _) = cases[0].graph(&cases[0].ins);
    let mut opts = optc::compile::Options::new(Target::Wgsl);
    opts.allow_tf32 = true;
    let e = optc::compile::compile(&g, "tf32", &opts).unwrap_err();
    assert!(e.to_string().contains("--allow-tf32"), "{e}");
}

/// Random bytes of `dt` (I8 or U8), full range, as a tensor of `shape`.
fn bytes(shape: &[usize], dt: DType, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 24) as u8
    };
    match dt {
        DType::I8 => Tensor::from_vec(shape.to_vec(), (0..n).map(|_| next() as i8).collect()),
        _ => Tensor::from_vec(shape.to_vec(), (0..n).map(|_| next()).collect::<Vec<u8>>()),
    }
    .unwrap()
}

/// Zero points of a MatMulInteger case: none, scalar, or per row of A / per column of B.
#[derive(Clone, Copy)]
enum Zp {
    None,
    Scalar,
    PerRowCol,
}

/// MatMulInteger of two s8 or two u8 operands, with random full-range zero points as asked.
fn matmul_integer(name: &'static str, sa: &[usize], sb: &[usize], dt: DType, zp: Zp) -> Case {
    let mut ins = vec![bytes(sa, dt, 1), bytes(sb, dt, 2)];
    let mut args = vec![0, 1];
    let mut consts = vec![];
    let (m, n) = (sa[sa.len() - 2], sb[sb.len() - 1]);
    let lens = match zp {
        Zp::None => None,
        Zp::Scalar => Some((1, 1)),
        Zp::PerRowCol => Some((m, n)),
    };
    if let Some((la, lb)) = lens {
        ins.push(bytes(&[la], dt, 3));
        ins.push(bytes(&[lb], dt, 4));
        args.extend([2, 3]);
        consts = vec![2, 3];
    }
    Case {
        name,
        ins,
        consts,
        nodes: vec![(Op::MatMulInteger, args)],
        level: 0,
    }
}

/// QLinearMatMul with per-tensor scales and zero points (constants) over full-range bytes.
fn qlinear_matmul(name: &'static str, sa: &[usize], sb: &[usize], dt: DType) -> Case {
    let sc = |v: f32| Tensor::scalar(v);
    let z = |seed: u64| bytes(&[1], dt, seed).reshape(vec![]).unwrap();
    Case {
        name,
        ins: vec![
            bytes(sa, dt, 5),
            sc(0.02),
            z(6),
            bytes(sb, dt, 7),
            sc(0.03),
            z(8),
            sc(1.5),
            z(9),
        ],
        consts: vec![1, 2, 4, 5, 6, 7],
        nodes: vec![(Op::QLinearMatMul, (0..8).collect())],
        level: 0,
    }
}

fn int8_cases() -> Vec<(Case, &'static str)> {
    let (s8, u8_) = (DType::I8, DType::U8);
    vec![
        (
            matmul_integer("s8-aligned", &[16, 32], &[32, 8], s8, Zp::None),
            S8_MMA,
        ),
        (
            matmul_integer("s8-ragged", &[33, 70], &[70, 41], s8, Zp::None),
            S8_MMA,
        ),
        (
            matmul_integer("s8-scalar-zps", &[2, 17, 40], &[2, 40, 9], s8, Zp::Scalar),
            S8_MMA,
        ),
        (
            matmul_integer("s8-row-col-zps", &[37, 50], &[50, 21], s8, Zp::PerRowCol),
            S8_MMA,
        ),
        (
            matmul_integer("u8-ragged", &[20, 100], &[100, 24], u8_, Zp::None),
            U8_MMA,
        ),
        (
            matmul_integer("u8-broadcast-zps", &[3, 16, 64], &[64, 16], u8_, Zp::Scalar),
            U8_MMA,
        ),
        (
            matmul_integer("u8-row-col-zps", &[19, 33], &[33, 40], u8_, Zp::PerRowCol),
            U8_MMA,
        ),
        (
            qlinear_matmul("qlinear-u8", &[24, 72], &[72, 20], u8_),
            U8_MMA,
        ),
        (
            qlinear_matmul("qlinear-s8", &[2, 9, 40], &[2, 40, 12], s8),
            S8_MMA,
        ),
    ]
}

/// Integer GEMMs are exact: the tensor-core result (zero points subtracted by the kernel from
/// the row and column sums it gathers) must equal the reference bit for bit (|sums| < 2^31
/// here), including full-range bytes; QLinearMatMul's requantization runs after it.
#[test]
fn int8_matmuls_on_tensor_cores_are_exact() {
    for (case, mma) in int8_cases() {
        let artifact = case.compile(Target::Sm89, false);
        let n = artifact.sources.iter().filter(|s| s.contains(mma)).count();
        assert_eq!(n, 1, "{}: one tensor-core kernel expected", case.name);
        let (g, feeds) = case.graph(&case.ins);
        let want = optc_ir::run(&g, &feeds).unwrap().remove(0);
        let host: Vec<_> = feeds.iter().map(|t| to_host(t).unwrap()).collect();
        let got = optc_ptxsim::run_artifact(&artifact, &host)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let got = from_host(&got[0]).unwrap();
        assert_eq!(got.shape(), want.shape(), "{}", case.name);
        assert_eq!(got.to_f64_vec(), want.to_f64_vec(), "{}", case.name);
    }
    // Mixed s8 × u8 keeps the portable kernel.
    let mut mixed = matmul_integer("mixed", &[4, 32], &[32, 8], DType::I8, Zp::None);
    mixed.ins[1] = bytes(&[32, 8], DType::U8, 2);
    let art = mixed.compile(Target::Sm89, false);
    assert!(art.sources.iter().all(|s| !s.contains("mma.sync")));
}

#[test]
fn tensor_core_kernels_assemble_for_every_sm_target() {
    let Some(bin) = ptxas::find(&common::root()) else {
        panic!("ptxas not found: run scripts/setup-ptxas.sh (or set OPTC_PTXAS)");
    };
    let tmp = std::env::temp_dir().join(format!("optc-mma-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let tf32 = Case::matmul("tf32", &[37, 50], &[50, 70], DType::F32, 63);
    let bf16 = linear("bf16-linear", DType::BF16);
    let all: Vec<(Case, bool)> = f16_cases()
        .into_iter()
        .chain(conv_cases(DType::F16))
        .chain(conv_cases(DType::BF16).into_iter().take(1))
        .map(|c| (c, false))
        .chain([(tf32, true), (bf16, false)])
        .chain(int8_cases().into_iter().map(|(c, _)| (c, false)))
        .chain(
            conv_cases(DType::F32)
                .into_iter()
                .take(2)
                .map(|c| (c, true)),
        )
        .collect();
    for (case, allow) in &all {
        for (t, pt) in [
            (Target::Sm80, PtxTarget::Sm80),
            (Target::Sm86, PtxTarget::Sm86),
            (Target::Sm89, PtxTarget::Sm89),
            (Target::Sm90, PtxTarget::Sm90),
        ] {
            let art = case.compile(t, *allow);
            let src = art.sources.iter().find(|s| s.contains("mma.sync")).unwrap();
            let file = tmp.join(format!("{}.ptx", case.name));
            std::fs::write(&file, src).unwrap();
            ptxas::assemble(
                &bin,
                std::slice::from_ref(&file),
                pt,
                &tmp.join("mma.cubin"),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
