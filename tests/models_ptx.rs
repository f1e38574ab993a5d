//! The shared models (../shared/models) compiled to PTX for sm_89 at -O3 — fused elementwise
//! programs, GEMM/conv epilogues, layernorm, softmax and attention kernels included — and
//! executed by the test-only PTX interpreter (`optc-ptxsim`), the printed PTX itself, block by
//! block: every output must match onnxruntime's within max abs 1e-3 and relative L2 1e-4.
//! (resnet18 takes ~30 s to interpret; the models run in parallel.)

mod common;

use optc::compare::{Tolerance, compare};
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
        .flat_map_iter(|&name| run_model(&dir, name))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compiles, interprets and compares one model; returns its failures.
fn run_model(dir: &std::path::Path, name: &str) -> Vec<String> {
    let mut failures = Vec::new();
    {
        let t = dir.join(name);
        let model = optc::model::load(&t.join("model.onnx")).unwrap();
        let set = t.join("test_data_set_0");
        let inputs = optc::model::read_inputs(&model.graph, &set).unwrap();
        let expected = optc::model::read_outputs(&set, model.graph.outputs().len()).unwrap();
        let mut opts = optc::compile::Options::new(Target::Sm89);
        opts.opt_level = 3;
        opts.input_shapes = Some(inputs.iter().map(|x| x.shape().to_vec()).collect());
        let artifact = optc::compile::compile(&model.graph, name, &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_artifact();
        let host: Vec<_> = inputs
            .iter()
            .zip(model.graph.inputs())
            .filter(|(_, v)| model.graph.const_value(**v).is_none())
            .map(|(x, _)| optc::exec::to_host(x).unwrap())
            .collect();
        let start = Instant::now();
        let outs =
            optc_ptxsim::run_artifact(&artifact, &host).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ms = start.elapsed().as_secs_f64() * 1e3;
        for (i, (o, e)) in outs.iter().zip(&expected).enumerate() {
            let a = optc::exec::from_host(o).unwrap();
            let d = compare(&a, e, Tolerance::DEVICE_MODEL)
                .unwrap_or_else(|m| panic!("{name} output {i}: {m}"));
            eprintln!(
                "{name} output {i}: max abs {:.2e}, rel l2 {:.2e} ({} launches, {} kernels, interpreted in {ms:.0} ms)",
                d.max_abs_err,
                d.rel_l2_err,
                artifact.manifest.launches.len(),
                artifact.manifest.kernels.len(),
            );
            if !d.within(Tolerance::DEVICE_MODEL) {
                failures.push(format!("{name} output {i}: {d:?}"));
            }
        }
    }
    failures
}
