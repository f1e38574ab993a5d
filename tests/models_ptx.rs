//! The shared models (../shared/models) compiled to PTX for sm_89 at -O3 — fused elementwise
//! programs, GEMM/conv epilogues, layernorm, softmax and attention kernels included — and
//! executed by the test-only PTX interpreter (`optc-ptxsim`), the printed PTX itself, block by
//! block: every output must match onnxruntime's within max abs 1e-3 and relative L2 1e-4.
//! (resnet18 takes ~30 s to interpret; the models run in parallel.)

mod common;

use optc_runtime::Target;
use rayon::prelude::*;
use std::time::Instant;

/// All seven, the slowest first so that the two cores stay busy.
const MODELS: [&str; 7] = [
    "resnet18",
    "vit_tiny",
    "mobilenet_v2",
    "ppocr_cls",
    "gpt2_tiny",
    "bert_tiny",
    "mlp",
];

#[test]
fn shared_models_match_onnxruntime_on_the_ptx_interpreter() {
    let Some(dir) = common::models_dir() else {
        return;
    };
    let failures: Vec<String> = MODELS
        .par_iter()
        .with_max_len(1)
        .flat_map_iter(|&name| run_model(&dir.join(name)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compiles, interprets and compares one model; returns its failures.
fn run_model(dir: &std::path::Path) -> Vec<String> {
    let m = common::shared_model(dir);
    let name = &m.name;
    let artifact = optc::compile::compile(&m.model.graph, name, &m.options(Target::Sm89, 3))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .to_artifact();
    let host = optc::exec::manifest_inputs(&m.model.graph, &artifact.manifest, &m.inputs).unwrap();
    let start = Instant::now();
    let outs =
        optc_ptxsim::run_artifact(&artifact, &host).unwrap_or_else(|e| panic!("{name}: {e}"));
    let note = format!(
        "{} launches, {} kernels, interpreted in {:.0} ms",
        artifact.manifest.launches.len(),
        artifact.manifest.kernels.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    m.compare_outputs(&outs, &note)
}

/// With `--allow-tf32` the transformer models' GEMMs (fused linear layers, Gemms, attention
/// Einsums) run on tf32 tensor cores: outputs stay within tf32's error of onnxruntime's
/// (`Tolerance::TF32_MODEL`, the bound `optc verify --allow-tf32` applies).
#[test]
fn transformer_models_with_tf32_stay_within_tf32_error() {
    let Some(dir) = common::models_dir() else {
        return;
    };
    let failures: Vec<String> = ["bert_tiny", "gpt2_tiny", "mlp"]
        .par_iter()
        .flat_map_iter(|name| {
            let m = common::shared_model(&dir.join(name));
            let mut opts = m.options(Target::Sm89, optc::compile::DEFAULT_OPT_LEVEL);
            opts.allow_tf32 = true;
            let artifact = optc::compile::compile(&m.model.graph, name, &opts)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .to_artifact();
            let tf32 = artifact
                .sources
                .iter()
                .filter(|s| s.contains("tf32.tf32"))
                .count();
            assert!(tf32 > 0, "{name}: no tf32 kernel");
            let host =
                optc::exec::manifest_inputs(&m.model.graph, &artifact.manifest, &m.inputs).unwrap();
            let outs = optc_ptxsim::run_artifact(&artifact, &host)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            m.compare_outputs_within(
                &outs,
                optc::compare::Tolerance::TF32_MODEL,
                &format!("{tf32} tf32 kernels"),
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
