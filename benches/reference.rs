//! Reference-path speed: importing + verifying resnet18, and running it on the reference
//! interpreter at batch 1. Reads the shared models (`OPTC_MODELS`, default `../shared/models`).
//!
//! `cargo bench --bench reference`; compare with onnxruntime single-thread via
//! `scripts/ort-bench.py` (see README).

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::PathBuf;
use std::time::Duration;

fn models() -> Option<PathBuf> {
    let p = std::env::var_os("OPTC_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/models"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("WARNING: {} missing: reference benches did not run", p.display());
        None
    }
}

fn bench(c: &mut Criterion) {
    let Some(dir) = models() else { return };
    let resnet = dir.join("resnet18/model.onnx");
    let mut g = c.benchmark_group("resnet18");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("import+verify", |b| b.iter(|| optc::model::load(&resnet).unwrap()));
    let model = optc::model::load(&resnet).unwrap();
    let inputs = optc::model::read_inputs(&model.graph, &dir.join("resnet18/test_data_set_0")).unwrap();
    g.bench_function("reference run", |b| b.iter(|| optc::ir::run(&model.graph, &inputs).unwrap()));
    g.finish();
    for name in ["mobilenet_v2", "vit_tiny", "bert_tiny", "gpt2_tiny"] {
        let model = optc::model::load(&dir.join(name).join("model.onnx")).unwrap();
        let inputs = optc::model::read_inputs(&model.graph, &dir.join(name).join("test_data_set_0")).unwrap();
        let mut g = c.benchmark_group(name);
        g.sample_size(10).measurement_time(Duration::from_secs(4));
        g.bench_function("reference run", |b| b.iter(|| optc::ir::run(&model.graph, &inputs).unwrap()));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
