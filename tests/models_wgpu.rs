//! The shared models (../shared/models) compiled to WGSL, written to an artifact file, reloaded
//! from that file alone and run on the first wgpu adapter (lavapipe in CI): every output must
//! match onnxruntime's within max abs 1e-3 and relative L2 1e-4. Fails (does not skip) when no
//! adapter exists.

mod common;

use optc::compare::{Tolerance, compare};
use optc_runtime::wgpu_exec::{Device, Session};
use optc_runtime::{Artifact, Target};

#[test]
fn shared_models_compile_reload_and_match_onnxruntime_on_wgpu() {
    let Some(dir) = common::models_dir() else {
        return;
    };
    let device = Device::open(None)
        .unwrap_or_else(|e| panic!("{e}: install a Vulkan driver (scripts/setup-vulkan.sh)"));
    let tests = optc::conformance::discover(&dir).unwrap();
    assert_eq!(
        tests.len(),
        7,
        "expected the 7 shared models under {}",
        dir.display()
    );
    let tmp = std::env::temp_dir().join(format!("optc-models-wgpu-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut failures = Vec::new();
    for t in tests {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        let model = optc::model::load(&t.join("model.onnx")).unwrap();
        let set = t.join("test_data_set_0");
        let inputs = optc::model::read_inputs(&model.graph, &set).unwrap();
        let expected = optc::model::read_outputs(&set, model.graph.outputs().len()).unwrap();
        let mut opts = optc::compile::Options::new(Target::Wgsl);
        opts.input_shapes = Some(inputs.iter().map(|x| x.shape().to_vec()).collect());
        let compiled = match optc::compile::compile(&model.graph, &name, &opts) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        // Through a file: the run below sees only the artifact.
        let path = tmp.join(format!("{name}.optc"));
        compiled.to_artifact().write(&path).unwrap();
        drop(compiled);
        let artifact = Artifact::load(&path).unwrap();
        artifact.check_target(Target::Wgsl).unwrap();
        let mut session = Session::new(&device, &artifact).unwrap();
        let host: Vec<_> = inputs
            .iter()
            .zip(model.graph.inputs())
            .filter(|(_, v)| model.graph.const_value(**v).is_none())
            .map(|(x, _)| optc::exec::to_host(x).unwrap())
            .collect();
        let outs = session.run(&host).unwrap();
        for (i, (o, e)) in outs.iter().zip(&expected).enumerate() {
            let a = optc::exec::from_host(o).unwrap();
            let d = compare(&a, e, Tolerance::DEVICE_MODEL)
                .unwrap_or_else(|m| panic!("{name} output {i}: {m}"));
            eprintln!(
                "{name} output {i}: max abs {:.2e}, rel l2 {:.2e} ({} kernels launched)",
                d.max_abs_err,
                d.rel_l2_err,
                artifact.manifest.launches.len()
            );
            if !d.within(Tolerance::DEVICE_MODEL) {
                failures.push(format!("{name} output {i}: {d:?}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
