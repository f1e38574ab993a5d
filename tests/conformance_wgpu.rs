//! ONNX node conformance compiled to WGSL and run through wgpu (lavapipe in CI), checked against
//! the committed expectations (`tests/conformance/wgpu.expected`; any status change fails).
//! Re-bless with `OPTC_BLESS=1 cargo test --test conformance_wgpu`. Fails (does not skip) when
//! no adapter exists: CI installs lavapipe (`scripts/setup-vulkan.sh`).

mod common;

use optc::conformance::Backend;

#[test]
fn node_tests_on_wgpu_match_expectations() {
    let device = optc_runtime::wgpu_exec::Device::open(None)
        .unwrap_or_else(|e| panic!("{e}: install a Vulkan driver (scripts/setup-vulkan.sh)"));
    eprintln!("device: {:?}", device.info().name);
    common::check_node_tests(Backend::Wgpu(&device), "wgpu", 1290);
}
