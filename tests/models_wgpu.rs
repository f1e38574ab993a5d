//! The shared models (../shared/models) compiled to WGSL, written to an artifact file, reloaded
//! from that file alone and run on the first wgpu adapter (lavapipe in CI): every output must
//! match onnxruntime's within max abs 1e-3 and relative L2 1e-4. Fails (does not skip) when no
//! adapter exists.

mod common;

use optc_runtime::wgpu_exec::{Device, Session};
use optc_runtime::{Artifact, Target};

#[test]
fn shared_models_compile_reload_and_match_onnxruntime_on_wgpu() {
    let Some(models) = common::shared_models() else {
        return;
    };
    let device = Device::open(None)
        .unwrap_or_else(|e| panic!("{e}: install a Vulkan driver (scripts/setup-vulkan.sh)"));
    let tmp = std::env::temp_dir().join(format!("optc-models-wgpu-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut failures = Vec::new();
    for m in models {
        let name = &m.name;
        let compiled = match optc::compile::compile(
            &m.model.graph,
            name,
            &m.options(Target::Wgsl, optc::compile::DEFAULT_OPT_LEVEL),
        ) {
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
        let host =
            optc::exec::manifest_inputs(&m.model.graph, &artifact.manifest, &m.inputs).unwrap();
        let outs = session.run(&host).unwrap();
        let note = format!("{} kernels launched", artifact.manifest.launches.len());
        failures.extend(m.compare_outputs(&outs, &note));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
