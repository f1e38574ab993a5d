//! The wgpu executor on a real adapter (lavapipe on CI). These tests fail, not skip, when no
//! adapter exists.
#![cfg(feature = "wgpu")]

mod common;

use common::*;
use optc_runtime::*;

fn device() -> Device {
    Device::open(None).expect("a wgpu adapter (install Mesa lavapipe: scripts/setup-vulkan.sh)")
}

#[test]
fn add_with_weights_and_an_output_in_the_weights_region() {
    let mut a = add_artifact();
    a.manifest.outputs.push(tensor(
        "w_out",
        HostType::F32,
        &[4],
        DeviceType::F32,
        weights(256, 16),
    ));
    let dev = device();
    let mut s = Session::new(&dev, &a).unwrap();
    let out = s
        .run(&[HostTensor::from_f32(&[4], &[1.0, 2.0, 3.0, 4.0])])
        .unwrap();
    assert_eq!(out[0].to_f32().unwrap(), vec![11.0, 22.0, 33.0, 44.0]);
    assert_eq!(out[1].to_f32().unwrap(), vec![10.0, 20.0, 30.0, 40.0]);
    // A second run with new inputs reuses everything.
    let out = s
        .run(&[HostTensor::from_f32(&[4], &[-1.0, 0.5, 0.0, 100.0])])
        .unwrap();
    assert_eq!(out[0].to_f32().unwrap(), vec![9.0, 20.5, 30.0, 140.0]);
}

#[test]
fn artifact_loaded_from_a_mapped_file_runs() {
    let dir = std::env::temp_dir().join(format!("optc-rt-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("add.optc");
    add_artifact().write(&path).unwrap();
    let a = Artifact::load(&path).unwrap();
    assert!(a.weights.is_mapped());
    let mut s = Session::new(&device(), &a).unwrap();
    let out = s.run(&[HostTensor::from_f32(&[4], &[1.0; 4])]).unwrap();
    assert_eq!(out[0].to_f32().unwrap(), vec![11.0, 21.0, 31.0, 41.0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

const GT_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> x: array<i32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(64)
fn gt2(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.x;
    if (i < arrayLength(&y)) {
        y[i] = select(0u, 1u, x[i] > 2);
    }
}
"#;

/// `y = x > 2` with x an i64 input narrowed to i32 and y a bool stored as u32; the input is
/// also an output (read back and widened to i64).
fn gt_artifact() -> Artifact {
    let mut m = manifest(Target::Wgsl);
    m.inputs = vec![tensor(
        "x",
        HostType::I64,
        &[5],
        DeviceType::I32,
        arena(0, 20),
    )];
    m.outputs = vec![
        tensor("y", HostType::Bool, &[5], DeviceType::U32, arena(256, 20)),
        tensor(
            "x_again",
            HostType::I64,
            &[5],
            DeviceType::I32,
            arena(0, 20),
        ),
    ];
    m.kernels = vec![kernel("gt2", 0)];
    m.launches = vec![launch(
        0,
        vec![arena(0, 20), arena(256, 20)],
        1,
        "Greater_0",
    )];
    m.arena_bytes = 276;
    Artifact::new(m, vec![GT_WGSL.into()], Vec::new())
}

#[test]
fn i64_input_narrowed_and_bool_output() {
    let dev = device();
    let mut s = Session::new(&dev, &gt_artifact()).unwrap();
    let x = [-7i64, 2, 3, 1 << 30, -(1 << 31)];
    let out = s.run(&[HostTensor::from_i64(&[5], &x)]).unwrap();
    assert_eq!(
        out[0].to_bool().unwrap(),
        vec![false, false, true, true, false]
    );
    assert_eq!(out[0].data, vec![0, 0, 1, 1, 0]);
    assert_eq!(out[1].to_i64().unwrap(), x.to_vec());

    let e = s
        .run(&[HostTensor::from_i64(&[5], &[0, 0, 1 << 40, 0, 0])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("input 'x'") && e.contains("element 2"), "{e}");
    assert!(e.contains("1099511627776") && e.contains("i32"), "{e}");
}

#[test]
fn input_checks() {
    let dev = device();
    let mut s = Session::new(&dev, &gt_artifact()).unwrap();
    let e = s.run(&[]).unwrap_err().to_string();
    assert!(e.contains("takes 1 inputs, got 0"), "{e}");
    let e = s
        .run(&[HostTensor::from_i64(&[4], &[0; 4])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input 'x': expected i64 [5], got i64 [4]"),
        "{e}"
    );
    let e = s
        .run(&[HostTensor::from_i32(&[5], &[0; 5])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected i64 [5], got i32 [5]"), "{e}");
    let bad = HostTensor {
        dtype: HostType::I64,
        shape: vec![5],
        data: vec![0; 3],
    };
    assert!(s.run(&[bad]).is_err());
    assert!(HostTensor::new(HostType::I64, vec![5], vec![0; 3]).is_err());
}

const CHAIN_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn scale(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.x;
    if (i < arrayLength(&dst)) { dst[i] = src[i] * 2.0; }
}

@compute @workgroup_size(64)
fn inc(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.x;
    if (i < arrayLength(&dst)) { dst[i] = src[i] + 1.0; }
}
"#;

/// `c = a * 2 + 1` in two launches chained through the arena: a at 0, t at 512, c at 256.
fn chain_artifact(n: u64) -> Artifact {
    let bytes = n * 4;
    let slot = bytes.div_ceil(256) * 256;
    let mut m = manifest(Target::Wgsl);
    m.inputs = vec![tensor(
        "a",
        HostType::F32,
        &[n],
        DeviceType::F32,
        arena(0, bytes),
    )];
    m.outputs = vec![tensor(
        "c",
        HostType::F32,
        &[n],
        DeviceType::F32,
        arena(slot, bytes),
    )];
    m.kernels = vec![kernel("scale", 0), kernel("inc", 0)];
    let groups = n.div_ceil(64) as u32;
    m.launches = vec![
        launch(
            0,
            vec![arena(0, bytes), arena(2 * slot, bytes)],
            groups,
            "Mul_0 (Mul)",
        ),
        launch(
            1,
            vec![arena(2 * slot, bytes), arena(slot, bytes)],
            groups,
            "Add_1 (Add)",
        ),
    ];
    m.arena_bytes = 2 * slot + bytes;
    Artifact::new(m, vec![CHAIN_WGSL.into()], Vec::new())
}

#[test]
fn two_launches_chained_through_the_arena() {
    let dev = device();
    let mut s = Session::new(&dev, &chain_artifact(100)).unwrap();
    let a: Vec<f32> = (0..100).map(|i| i as f32 - 50.0).collect();
    let (out, timing) = s.run_timed(&[HostTensor::from_f32(&[100], &a)]).unwrap();
    let want: Vec<f32> = a.iter().map(|x| x * 2.0 + 1.0).collect();
    assert_eq!(out[0].to_f32().unwrap(), want);
    assert!(timing.total_us >= timing.submit_wait_us && timing.submit_wait_us > 0.0);
}

#[test]
fn profile_times_every_launch() {
    let dev = device();
    let mut s = Session::new(&dev, &chain_artifact(4096)).unwrap();
    let a = HostTensor::from_f32(&[4096], &vec![1.0; 4096]);
    let p = s.profile(&[a], 5).unwrap();
    assert_eq!(p.runs.len(), 5);
    assert_eq!(p.launches.len(), 2);
    assert_eq!(p.launches[0].kernel, "scale");
    assert_eq!(p.launches[1].label, "Add_1 (Add)");
    assert!(p.median_wall_ms > 0.0);
    if dev.info().timestamps {
        assert!(s.has_timestamps());
        for l in &p.launches {
            assert!(l.median_us.is_some_and(|t| t >= 0.0), "{l:?}");
        }
        assert!(p.median_device_us.is_some());
    }
    eprintln!("profile: {p:?}");
    // Results after profiling are still right.
    let out = s
        .run(&[HostTensor::from_f32(&[4096], &vec![2.0; 4096])])
        .unwrap();
    assert!(out[0].to_f32().unwrap().iter().all(|&v| v == 5.0));
}

const F16_WGSL: &str = r#"
enable f16;
@group(0) @binding(0) var<storage, read_write> x: array<f16>;
@group(0) @binding(1) var<storage, read_write> y: array<f16>;

@compute @workgroup_size(64)
fn dbl(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.x;
    if (i < 3u) { y[i] = x[i] * 2.0h; }
}
"#;

#[test]
fn f16_storage_with_f32_host_tensors_and_odd_sizes() {
    let dev = device();
    if !dev.info().f16 {
        panic!("the test device lacks shader-f16 (lavapipe has it)");
    }
    let mut m = manifest(Target::Wgsl);
    m.requirements.f16 = true;
    m.inputs = vec![tensor(
        "x",
        HostType::F32,
        &[3],
        DeviceType::F16,
        arena(0, 6),
    )];
    m.outputs = vec![tensor(
        "y",
        HostType::F32,
        &[3],
        DeviceType::F16,
        arena(256, 6),
    )];
    m.kernels = vec![kernel("dbl", 0)];
    m.launches = vec![launch(0, vec![arena(0, 8), arena(256, 8)], 1, "dbl")];
    m.arena_bytes = 264;
    let a = Artifact::new(m, vec![F16_WGSL.into()], Vec::new());
    let mut s = Session::new(&dev, &a).unwrap();
    let out = s
        .run(&[HostTensor::from_f32(&[3], &[1.5, -2.0, 0.25])])
        .unwrap();
    assert_eq!(out[0].to_f32().unwrap(), vec![3.0, -4.0, 0.5]);
}

#[test]
fn shader_errors_are_errors() {
    let dev = device();
    let mut a = add_artifact();
    a.sources[0] = "fn broken( {".into();
    a.manifest.kernels[0].name = "broken".into();
    match Session::new(&dev, &a) {
        Err(RuntimeError::Shader { kernel, message }) => {
            assert_eq!(kernel, "broken");
            assert!(!message.is_empty());
        }
        other => panic!("expected a shader error, got {other:?}"),
    }
    let mut a = add_artifact();
    a.manifest.kernels[0].name = "no_such_entry".into();
    let e = Session::new(&dev, &a).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::Shader { kernel, .. } if kernel == "no_such_entry"),
        "{e}"
    );
    // Bindings that do not match the shader's.
    let mut a = add_artifact();
    a.manifest.launches[0].bindings.pop();
    a.manifest.requirements.max_storage_buffers = 2;
    let e = Session::new(&dev, &a).unwrap_err().to_string();
    assert!(e.contains("launch 0 (Add_0 (Add))"), "{e}");
    // The device still works afterwards.
    let mut s = Session::new(&dev, &add_artifact()).unwrap();
    assert!(s.run(&[HostTensor::from_f32(&[4], &[0.0; 4])]).is_ok());
}

#[test]
fn arena_bound_read_only_and_read_write_is_an_error_not_a_panic() {
    let dev = device();
    let mut a = chain_artifact(64);
    a.sources[0] = CHAIN_WGSL.replacen("read_write> src", "read> src", 1);
    let r =
        Session::new(&dev, &a).and_then(|mut s| s.run(&[HostTensor::from_f32(&[64], &[0.0; 64])]));
    let e = r.unwrap_err().to_string();
    eprintln!("read-only + read-write arena binding: {e}");
    assert!(e.contains("device error"), "{e}");
}

#[test]
fn wrong_target_and_missing_limits() {
    let dev = device();
    let mut a = add_artifact();
    a.manifest.target = Target::Sm89;
    let e = Session::new(&dev, &a).unwrap_err().to_string();
    assert_eq!(e, "artifact was compiled for sm_89, not wgsl");
    let mut a = add_artifact();
    a.manifest.requirements.max_workgroup_threads = 1 << 20;
    let e = Session::new(&dev, &a).unwrap_err().to_string();
    assert!(
        e.contains("workgroup threads") && e.contains("1048576"),
        "{e}"
    );
}

#[test]
fn device_selection() {
    let all = Device::list();
    assert!(!all.is_empty(), "no adapter: install Mesa lavapipe");
    let d = Device::open(Some("0")).unwrap();
    assert_eq!(d.info().name, all[0].name);
    let needle = all[0].name[..3].to_uppercase();
    let d = Device::open(Some(&needle)).unwrap();
    assert!(d.info().name.to_uppercase().contains(&needle));
    match Device::open(Some("no-such-gpu-xyz")) {
        Err(RuntimeError::NoDevice(m)) => {
            assert!(
                m.contains("no-such-gpu-xyz") && m.contains(&all[0].name),
                "{m}"
            )
        }
        other => panic!("expected NoDevice, got {other:?}"),
    }
    assert!(matches!(
        Device::open(Some("99")),
        Err(RuntimeError::NoDevice(_))
    ));
}

#[test]
fn timings_report() {
    // Not an assertion of speed: prints the numbers for the record (`--nocapture`).
    let dev = device();
    let a = add_artifact();
    let t = std::time::Instant::now();
    let mut s = Session::new(&dev, &a).unwrap();
    let new_ms = t.elapsed().as_secs_f64() * 1e3;
    let x = [HostTensor::from_f32(&[4], &[1.0; 4])];
    let (_, first) = s.run_timed(&x).unwrap();
    let mut rest = Vec::new();
    for _ in 0..20 {
        rest.push(s.run_timed(&x).unwrap().1);
    }
    rest.sort_by(|a, b| a.total_us.total_cmp(&b.total_us));
    let m = rest[10];
    eprintln!(
        "device {:?}\nSession::new {new_ms:.2} ms (modules+pipelines {:.2} ms)\nfirst run {first:?}\nmedian run {m:?}",
        dev.info(),
        s.load_time().as_secs_f64() * 1e3
    );
}
