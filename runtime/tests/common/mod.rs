//! Helpers shared by the runtime tests: small hand-built artifacts.
#![allow(dead_code)]

use optc_runtime::*;

pub fn loc(region: Region, offset: u64, bytes: u64) -> Location {
    Location {
        region,
        offset,
        bytes,
    }
}

pub fn arena(offset: u64, bytes: u64) -> Location {
    loc(Region::Arena, offset, bytes)
}

pub fn weights(offset: u64, bytes: u64) -> Location {
    loc(Region::Weights, offset, bytes)
}

pub fn tensor(
    name: &str,
    dtype: HostType,
    shape: &[u64],
    device: DeviceType,
    location: Location,
) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        device,
        location,
    }
}

pub fn manifest(target: Target) -> Manifest {
    Manifest {
        producer: "test".into(),
        model: "test".into(),
        target,
        requirements: Requirements::default(),
        inputs: vec![],
        outputs: vec![],
        kernels: vec![],
        launches: vec![],
        arena_bytes: 0,
        weights_bytes: 0,
        memory: MemoryStats::default(),
    }
}

pub fn kernel(name: &str, source: u32) -> KernelInfo {
    KernelInfo {
        name: name.into(),
        source,
        workgroup: [64, 1, 1],
    }
}

pub fn launch(kernel: u32, bindings: Vec<Location>, groups: u32, label: &str) -> Launch {
    Launch {
        kernel,
        bindings,
        grid: [groups, 1, 1],
        label: label.into(),
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub const ADD_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.x;
    if (i < arrayLength(&c)) {
        c[i] = a[i] + w[i];
    }
}
"#;

/// `c = a + w`: `a` an f32[4] input at arena 0, `w` in the weights at offset 256 (after 256
/// bytes of other weights), `c` an f32[4] output at arena 256.
pub fn add_artifact() -> Artifact {
    let mut m = manifest(Target::Wgsl);
    m.inputs = vec![tensor(
        "a",
        HostType::F32,
        &[4],
        DeviceType::F32,
        arena(0, 16),
    )];
    m.outputs = vec![tensor(
        "c",
        HostType::F32,
        &[4],
        DeviceType::F32,
        arena(256, 16),
    )];
    m.kernels = vec![kernel("add", 0)];
    m.launches = vec![launch(
        0,
        vec![arena(0, 16), weights(256, 16), arena(256, 16)],
        1,
        "Add_0 (Add)",
    )];
    m.arena_bytes = 272;
    let mut w = vec![0xEEu8; 256];
    w.extend(f32_bytes(&[10.0, 20.0, 30.0, 40.0]));
    m.weights_bytes = w.len() as u64;
    Artifact::new(m, vec![ADD_WGSL.to_string()], w)
}
