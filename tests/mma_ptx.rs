//! MatMul on tensor cores: f16 compiled for sm_89 (the driver picks the `mma.sync` template,
//! `kernels/src/lower/mma.rs`), the printed PTX executed by the test-only PTX interpreter and
//! compared with the reference interpreter on random inputs — tile-aligned and ragged shapes,
//! batched operands and a 2-D weight — and assembled by ptxas for every sm target; f32 on tf32
//! only when allowed (`allow_tf32`), within tf32's error of the reference.

mod common;

use optc::exec::{from_host, to_host};
use optc_codegen::{PtxTarget, ptxas};
use optc_ir::{DType, Op};
use optc_runtime::Target;

/// `(A shape, B shape, B is a constant weight, optimisation level)`.
const CASES: [(&[usize], &[usize], bool, u8); 6] = [
    (&[16, 16], &[16, 8], false, 0),
    (&[32, 64], &[64, 64], false, 0),
    (&[33, 70], &[70, 41], false, 0),
    (&[2, 3, 17, 24], &[2, 3, 24, 9], false, 0),
    (&[2, 5, 40], &[40, 72], true, 2),
    (&[1, 1], &[1, 1], false, 0),
];

#[test]
fn f16_matmul_on_tensor_cores_matches_the_reference() {
    let ptxas = ptxas::find(&common::root());
    if ptxas.is_none() {
        eprintln!(
            "!!!!!!!! ptxas not found (scripts/setup-ptxas.sh): tensor-core kernels NOT assembled"
        );
    }
    let tmp = std::env::temp_dir().join(format!("optc-mma-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (case, &(sa, sb, weight, level)) in CASES.iter().enumerate() {
        let a = common::rand(sa, 11 + case as u64).cast(DType::F16);
        let b = common::rand(sb, 23 + case as u64).cast(DType::F16);
        let consts: &[usize] = if weight { &[1] } else { &[] };
        let (g, feeds) = common::graph(&[a, b], consts, &[(Op::MatMul, vec![0, 1])]);
        let want = optc_ir::run(&g, &feeds).unwrap().remove(0);
        let mut opts = optc::compile::Options::new(Target::Sm89);
        opts.opt_level = level;
        let artifact = optc::compile::compile(&g, "mma", &opts)
            .unwrap_or_else(|e| panic!("case {case}: {e}"))
            .to_artifact();
        let mma: Vec<&String> = artifact
            .sources
            .iter()
            .filter(|s| s.contains("mma.sync.aligned.m16n8k16"))
            .collect();
        assert_eq!(mma.len(), 1, "case {case}: one tensor-core kernel expected");
        let host: Vec<_> = feeds.iter().map(|t| to_host(t).unwrap()).collect();
        let got = optc_ptxsim::run_artifact(&artifact, &host)
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        let got = from_host(&got[0]).unwrap();
        // f32 accumulation, one rounding to f16 at the end: within an f16 ulp or two of the
        // reference.
        let k = sa[sa.len() - 1] as f64;
        common::assert_close(&format!("case {case}"), &got, &want, 2e-3, 2e-3 * k.sqrt());
        if let Some(bin) = &ptxas {
            for (t, pt) in [
                (Target::Sm80, PtxTarget::Sm80),
                (Target::Sm86, PtxTarget::Sm86),
                (Target::Sm89, PtxTarget::Sm89),
                (Target::Sm90, PtxTarget::Sm90),
            ] {
                let mut opts = optc::compile::Options::new(t);
                opts.opt_level = level;
                let art = optc::compile::compile(&g, "mma", &opts)
                    .unwrap()
                    .to_artifact();
                let src = art.sources.iter().find(|s| s.contains("mma.sync")).unwrap();
                let file = tmp.join(format!("mma{case}.ptx"));
                std::fs::write(&file, src).unwrap();
                ptxas::assemble(bin, std::slice::from_ref(&file), pt, &tmp.join("mma.cubin"))
                    .unwrap_or_else(|e| panic!("case {case}: {e}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn f32_matmul_on_tf32_tensor_cores_with_allow_tf32() {
    for (case, (sa, sb)) in [
        (&[16usize, 8][..], &[8usize, 8][..]),
        (&[37, 50], &[50, 70]),
        (&[2, 19, 33], &[2, 33, 12]),
    ]
    .into_iter()
    .enumerate()
    {
        let a = common::rand(sa, 5 + case as u64);
        let b = common::rand(sb, 9 + case as u64);
        let (g, feeds) = common::graph(&[a, b], &[], &[(Op::MatMul, vec![0, 1])]);
        let want = optc_ir::run(&g, &feeds).unwrap().remove(0);
        let mut opts = optc::compile::Options::new(Target::Sm89);
        opts.opt_level = 0;
        opts.allow_tf32 = true;
        let artifact = optc::compile::compile(&g, "tf32", &opts)
            .unwrap()
            .to_artifact();
        assert!(
            artifact
                .sources
                .iter()
                .any(|s| s.contains("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32")),
            "case {case}: no tf32 kernel"
        );
        let host: Vec<_> = feeds.iter().map(|t| to_host(t).unwrap()).collect();
        let got = from_host(&optc_ptxsim::run_artifact(&artifact, &host).unwrap()[0]).unwrap();
        // Operands rounded to 10 mantissa bits (relative 2^-11 each): products off by ~1e-3
        // relative; the sum of K of them by ~1e-3·sqrt(K)·|a||b| (inputs in [-2, 2)).
        let k = sa[sa.len() - 1] as f64;
        common::assert_close(
            &format!("tf32 case {case}"),
            &got,
            &want,
            0.0,
            4e-3 * 4.0 * k.sqrt(),
        );
        // Not the exact f32 result: tf32 rounding is really applied.
        assert_ne!(got.to_f64_vec(), want.to_f64_vec(), "case {case}");
        if let Some(bin) = ptxas::find(&common::root()) {
            let dir = std::env::temp_dir().join(format!("optc-tf32-{}-{case}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let src = artifact
                .sources
                .iter()
                .find(|s| s.contains("tf32"))
                .unwrap();
            let file = dir.join("tf32.ptx");
            std::fs::write(&file, src).unwrap();
            ptxas::assemble(
                &bin,
                std::slice::from_ref(&file),
                PtxTarget::Sm89,
                &dir.join("t.cubin"),
            )
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // wgsl refuses the flag.
    let (g, _) = common::graph(
        &[common::rand(&[4, 4], 1), common::rand(&[4, 4], 2)],
        &[],
        &[(Op::MatMul, vec![0, 1])],
    );
    let mut opts = optc::compile::Options::new(Target::Wgsl);
    opts.allow_tf32 = true;
    let e = optc::compile::compile(&g, "tf32", &opts).unwrap_err();
    assert!(e.to_string().contains("--allow-tf32"), "{e}");
}

#[test]
fn f32_and_broadcast_matmuls_keep_the_portable_template() {
    // f32 operands, and an A broadcast over B's batch: no tensor-core kernel.
    for (dt, sa, sb) in [
        (DType::F32, &[16usize, 16][..], &[16usize, 8][..]),
        (DType::F16, &[16, 16], &[3, 16, 8]),
    ] {
        let a = common::rand(sa, 1).cast(dt);
        let b = common::rand(sb, 2).cast(dt);
        let (g, feeds) = common::graph(&[a, b], &[], &[(Op::MatMul, vec![0, 1])]);
        let mut opts = optc::compile::Options::new(Target::Sm89);
        opts.opt_level = 0;
        let artifact = optc::compile::compile(&g, "mm", &opts)
            .unwrap()
            .to_artifact();
        assert!(
            artifact.sources.iter().all(|s| !s.contains("mma.sync")),
            "{dt:?} {sa:?}×{sb:?}"
        );
        let want = optc_ir::run(&g, &feeds).unwrap().remove(0);
        let host: Vec<_> = feeds.iter().map(|t| to_host(t).unwrap()).collect();
        let got = from_host(&optc_ptxsim::run_artifact(&artifact, &host).unwrap()[0]).unwrap();
        common::assert_close("portable", &got, &want, 2e-3, 1e-2);
    }
}
