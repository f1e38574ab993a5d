//! The CLI contract: commands, `--json` output and exit codes (0 ok, 1 check failed, 2 bad
//! input, 3 no usable device).

use std::path::PathBuf;
use std::process::{Command, Output};

fn optc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_optc"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("optc-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn inspect_json_reports_ops_params_and_flops() {
    let o = optc(&["inspect", "examples/tiny_cnn.onnx", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stage"], "import");
    assert_eq!(v["nodes"], 7);
    assert_eq!(v["ops"]["Conv"], 1);
    assert_eq!(v["ops"]["Gemm"], 1);
    // conv 8x3x3x3 + 8, bn 4x8, fc 4x8 + 4
    assert_eq!(v["params"], 216 + 8 + 32 + 32 + 4);
    assert_eq!(v["inputs"][0]["shape"], "[batchx3x16x16]");
    assert_eq!(v["kernels"], serde_json::Value::Null);
}

#[test]
fn inspect_prints_the_graph_text() {
    let o = optc(&["inspect", "examples/tiny_cnn.onnx"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("graph main(%0 \"image\": f32[batchx3x16x16])"),
        "{text}"
    );
    assert!(text.contains("= Softmax("), "{text}");
}

#[test]
fn run_writes_outputs_that_read_back() {
    let dir = tmp("run");
    let o = optc(&[
        "run",
        "examples/tiny_cnn.onnx",
        "--shape",
        "batch=3",
        "--output-dir",
        dir.to_str().unwrap(),
        "--npy",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([3, 4]));
    let (_, probs) = optc::io::load_tensor(&dir.join("output_0.npy")).unwrap();
    let (_, pb) = optc::io::load_tensor(&dir.join("output_0.pb")).unwrap();
    assert_eq!(probs, pb);
    // Softmax rows sum to one.
    for row in probs.view::<f32>().chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
    // The same seed gives the same random inputs, hence the same outputs.
    let again = optc(&[
        "run",
        "examples/tiny_cnn.onnx",
        "--shape",
        "batch=3",
        "--json",
    ]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["outputs"], w["outputs"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_inputs_exit_2_with_a_message_naming_the_problem() {
    let o = optc(&["run", "no/such/model.onnx"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no/such/model.onnx"), "{}", stderr(&o));

    let dir = tmp("bad");
    let junk = dir.join("junk.onnx");
    std::fs::write(&junk, [0x12u8, 0xff, 0x07, 0x33, 0x99, 0x01]).unwrap();
    let o = optc(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));

    // An input of the wrong shape names the input.
    let x = optc::ir::Tensor::from_vec(vec![1, 3, 8, 8], vec![0f32; 192]).unwrap();
    optc::io::save_tensor(&dir.join("image.npy"), "image", &x).unwrap();
    let o = optc(&[
        "run",
        "examples/tiny_cnn.onnx",
        "--inputs",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'image'"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn allow_tf32_compiles_f32_matmuls_to_tf32_tensor_cores_and_is_refused_for_wgsl() {
    let dir = tmp("tf32");
    let model = node_test("test_matmul_2d").join("model.onnx");
    let out = dir.join("m.optc");
    let emit = dir.join("k");
    let o = optc(&[
        "compile",
        model.to_str().unwrap(),
        "--target",
        "sm_89",
        "--allow-tf32",
        "-o",
        out.to_str().unwrap(),
        "--emit-dir",
        emit.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ptx: String = std::fs::read_dir(&emit)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(ptx.contains("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"));
    let o = optc(&[
        "compile",
        model.to_str().unwrap(),
        "--target",
        "wgsl",
        "--allow-tf32",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--allow-tf32"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unavailable_backend_exits_3() {
    let o = optc(&["run", "examples/tiny_cnn.onnx", "--backend", "cuda"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("cuda"));
}

#[test]
fn conformance_prints_the_summary_line_and_json() {
    let models = std::env::var_os("OPTC_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models"));
    if !models.is_dir() {
        eprintln!(
            "WARNING: {} missing: conformance CLI test did not run",
            models.display()
        );
        return;
    }
    let o = optc(&["conformance", models.to_str().unwrap(), "--filter", "mlp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().last(),
        Some("1 passed, 0 failed, 0 skipped"),
        "{out}"
    );
    let o = optc(&[
        "conformance",
        models.to_str().unwrap(),
        "--filter",
        "mlp",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], 1);
    assert_eq!(v["tests"][0]["name"], "mlp");
    assert_eq!(v["tests"][0]["status"], "passed");
    assert!(
        v["tests"][0]["op_types"]
            .as_array()
            .unwrap()
            .contains(&"Gemm".into())
    );
}

/// A generated ONNX node test folder (`scripts/gen-node-tests.sh` makes them).
fn node_test(name: &str) -> PathBuf {
    let dir = std::env::var_os("OPTC_NODE_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/onnx-node"))
        .join(name);
    assert!(
        dir.is_dir(),
        "{} missing: run scripts/gen-node-tests.sh",
        dir.display()
    );
    dir
}

#[test]
fn compiled_artifact_runs_without_the_model_and_matches_expected_outputs() {
    let t = node_test("test_softsign_example");
    let dir = tmp("artifact");
    let art = dir.join("softsign.optc");
    let o = optc(&[
        "compile",
        t.join("model.onnx").to_str().unwrap(),
        "--target",
        "wgsl",
        "-o",
        art.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target"], "wgsl");
    assert_eq!(v["kernels"], 1);
    assert!(v["artifact_bytes"].as_u64().unwrap() > 0);
    // The artifact alone (a copy in another folder) is enough to run.
    let alone = tmp("artifact-alone").join("m.optc");
    std::fs::copy(&art, &alone).unwrap();
    let out = dir.join("out");
    let o = optc(&[
        "run",
        alone.to_str().unwrap(),
        "--inputs",
        t.join("test_data_set_0").to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_, got) = optc::io::load_tensor(&out.join("output_0.pb")).unwrap();
    let (_, want) = optc::io::load_tensor(&t.join("test_data_set_0/output_0.pb")).unwrap();
    let d = optc::compare::compare(&got, &want, optc::compare::Tolerance::NODE).unwrap();
    assert_eq!(d.mismatches, 0, "{d:?}");
    // inspect reads the artifact's kernels and memory plan.
    let o = optc(&["inspect", alone.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stage"], "kernels");
    assert_eq!(v["kernels"], 1);
    assert!(v["arena_bytes"].as_u64().unwrap() >= v["live_peak_bytes"].as_u64().unwrap());
}

#[test]
fn corrupt_artifacts_and_missing_devices_exit_with_their_codes() {
    let t = node_test("test_relu");
    let dir = tmp("corrupt");
    let art = dir.join("relu.optc");
    let o = optc(&[
        "compile",
        t.join("model.onnx").to_str().unwrap(),
        "--target",
        "wgsl",
        "-o",
        art.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut bytes = std::fs::read(&art).unwrap();
    let last = bytes.len() - 1;
    bytes[last / 2] ^= 0x40;
    let bad = dir.join("flipped.optc");
    std::fs::write(&bad, &bytes).unwrap();
    let o = optc(&["run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("flipped.optc"), "{}", stderr(&o));
    let short = dir.join("short.optc");
    std::fs::write(&short, &bytes[..40]).unwrap();
    let o = optc(&["run", short.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = optc(&["run", art.to_str().unwrap(), "--device", "no-such-adapter"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-adapter"), "{}", stderr(&o));
    let o = optc(&["compile", t.to_str().unwrap(), "--target", "sm_99"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("sm_99"), "{}", stderr(&o));
}

#[test]
fn unsupported_nodes_are_named_and_exit_2() {
    let t = node_test("test_nonzero_example");
    let o = optc(&[
        "compile",
        t.to_str().unwrap(),
        "--target",
        "wgsl",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("NonZero") && e.contains("cannot be compiled"),
        "{e}"
    );
}

#[test]
fn verify_and_bench_on_the_device_report_json() {
    let t = node_test("test_sigmoid");
    let data = t.join("test_data_set_0");
    let o = optc(&[
        "verify",
        t.to_str().unwrap(),
        "--target",
        "wgsl",
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["outputs"][0]["max_abs_err"].as_f64().unwrap() < 1e-5);
    let o = optc(&[
        "bench",
        t.to_str().unwrap(),
        "--target",
        "wgsl",
        "--runs",
        "20",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backend"], "wgpu");
    assert_eq!(v["runs"], 20);
    assert!(v["median_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["kernels"].as_array().unwrap().len(), 1);
}

#[test]
fn ptx_targets_compile_emit_ptx_and_refuse_to_run() {
    let t = node_test("test_softsign_example");
    let dir = tmp("ptx");
    let art = dir.join("softsign.optc");
    let emit = dir.join("kernels");
    let o = optc(&[
        "compile",
        t.join("model.onnx").to_str().unwrap(),
        "--target",
        "sm_89",
        "-o",
        art.to_str().unwrap(),
        "--emit-dir",
        emit.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target"], "sm_89");
    assert_eq!(v["kernels"], 1);
    let mut names: Vec<String> = std::fs::read_dir(&emit)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[1], "manifest.json");
    assert!(names[0].ends_with(".ptx"), "{names:?}");
    let src = std::fs::read_to_string(emit.join(&names[0])).unwrap();
    assert!(src.contains(".target sm_89\n"), "{src}");
    // The artifact records its target (running it: `cuda_runs_or_exits_3_naming_what_is_missing`).
    let o = optc(&["inspect", art.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target"], "sm_89");
    // wgpu cannot run it, and --cuda-graph needs CUDA: bad usage, exit code 2.
    let o = optc(&["run", art.to_str().unwrap(), "--backend", "wgpu"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("sm_89 artifact"), "{}", stderr(&o));
    let o = optc(&[
        "run",
        t.to_str().unwrap(),
        "--target",
        "wgsl",
        "--cuda-graph",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--cuda-graph"), "{}", stderr(&o));
    // Lowering refusals name the real target.
    let o = optc(&[
        "compile",
        node_test("test_gridsample").to_str().unwrap(),
        "--target",
        "sm_90a",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unsupported on sm_90a"),
        "{}",
        stderr(&o)
    );
}

/// `--shape` sizes a dim by symbol or by `INPUT.AXIS`; a key that sizes nothing, and a later
/// dim left at 1, are pointed out on stderr.
#[test]
fn shape_sizes_dims_by_symbol_or_position() {
    let dir = tmp("shape");
    let art = dir.join("t.optc");
    let a = art.to_str().unwrap();
    let emit = dir.join("k");
    let e = emit.to_str().unwrap();
    let input_shape = |args: &[&str]| {
        let mut all = vec![
            "compile",
            "examples/tiny_cnn.onnx",
            "--target",
            "wgsl",
            "-o",
            a,
            "--emit-dir",
            e,
        ];
        all.extend(args);
        let o = optc(&all);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let m = std::fs::read(emit.join("manifest.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        (v["inputs"][0]["shape"].clone(), stderr(&o))
    };
    // The input is image[batch x 3 x 16 x 16].
    let (s, _) = input_shape(&["--shape", "batch=3"]);
    assert_eq!(s, serde_json::json!([3, 3, 16, 16]));
    let (s, _) = input_shape(&["--shape", "image.0=5"]);
    assert_eq!(s, serde_json::json!([5, 3, 16, 16]));
    let (s, err) = input_shape(&["--shape", "imgae.0=5", "--shape", "image.2=7"]);
    assert_eq!(s, serde_json::json!([1, 3, 16, 16]));
    assert!(
        err.contains("--shape imgae.0 sizes no dynamic dim"),
        "{err}"
    );
    assert!(
        err.contains("--shape image.2 sizes no dynamic dim"),
        "{err}"
    );
}

/// The shared models folder (`$OPTC_MODELS`, else `../shared/models` beside the checkout).
fn shared_model(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("OPTC_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models"));
    let p = dir.join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "WARNING: shared model {} not found; the CUDA CLI test uses examples/tiny_cnn.onnx only",
            p.display()
        );
        None
    }
}

/// `run`/`verify`/`bench` of sm_XX artifacts and targets go to the CUDA executor. Where the
/// machine has an NVIDIA driver and GPU they must succeed; where it has none (CI) each must exit
/// with code 3 and say what is missing and what could not run — never panic.
#[cfg(feature = "cuda")]
#[test]
fn cuda_runs_or_exits_3_naming_what_is_missing() {
    let cuda = optc_runtime::cuda_exec::CudaDevice::open(None);
    let dir = tmp("cuda");
    let mut models = vec![root().join("examples/tiny_cnn.onnx")];
    models.extend(shared_model("mlp"));
    for (k, model) in models.iter().enumerate() {
        let m = model.to_str().unwrap();
        let art = dir.join(format!("m{k}.optc"));
        let a = art.to_str().unwrap();
        let o = optc(&[
            "compile", m, "--target", "sm_89", "-o", a, "--shape", "batch=2",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        // (arguments, what the message names, the target it needs; None = the GPU's own).
        let sm89 = Some(optc_runtime::Target::Sm89);
        let cases: Vec<(Vec<&str>, &str, Option<optc_runtime::Target>)> = vec![
            (
                vec!["run", m, "--target", "sm_89", "--shape", "batch=2"],
                "for sm_89",
                sm89,
            ),
            (
                vec!["run", m, "--backend", "cuda", "--shape", "batch=2"],
                "--backend cuda",
                None,
            ),
            (vec!["run", a, "--json"], "sm_89 artifact", sm89),
            (vec!["run", a, "--cuda-graph"], "sm_89 artifact", sm89),
            (
                vec!["bench", a, "--runs", "20", "--json"],
                "sm_89 artifact",
                sm89,
            ),
            (
                vec![
                    "bench",
                    m,
                    "--target",
                    "sm_90",
                    "--cuda-graph",
                    "--shape",
                    "batch=2",
                ],
                "for sm_90",
                Some(optc_runtime::Target::Sm90),
            ),
            (
                vec!["verify", m, "--target", "sm_80", "--shape", "batch=2"],
                "for sm_80",
                Some(optc_runtime::Target::Sm80),
            ),
        ];
        for (args, what, needs) in cases {
            let o = optc(&args);
            let e = stderr(&o);
            assert!(!e.contains("panicked"), "{args:?}: {e}");
            match &cuda {
                Ok(d) => {
                    // A GPU older than the target refuses it (exit 3, naming both).
                    let info = d.info();
                    let runs = needs.is_none_or(|t| {
                        optc_runtime::cuda_exec::check_capability(
                            t,
                            &info.name,
                            info.compute_capability,
                        )
                        .is_ok()
                    });
                    let code = if runs { 0 } else { 3 };
                    assert_eq!(o.status.code(), Some(code), "{args:?}: {e}");
                }
                Err(err) => {
                    assert_eq!(o.status.code(), Some(3), "{args:?}: {e}");
                    assert!(e.contains(&err.to_string()), "{args:?}: {e}");
                    assert!(
                        e.contains("cannot run") && e.contains(what),
                        "{args:?}: {e}"
                    );
                }
            }
        }
        if cuda.is_ok() {
            let o = optc(&[
                "bench",
                m,
                "--backend",
                "cuda",
                "--runs",
                "20",
                "--json",
                "--cuda-graph",
                "--shape",
                "batch=2",
            ]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["backend"], "cuda");
            assert_eq!(v["cuda_graph"], true);
            assert!(v["jit_ms"].as_f64().unwrap() > 0.0, "{v}");
            assert!(v["device_ms"].as_f64().unwrap() > 0.0, "{v}");
        }
    }
    // conformance --backend cuda compiles each test for the GPU's own target.
    let t = node_test("test_relu");
    let o = optc(&["conformance", t.to_str().unwrap(), "--backend", "cuda"]);
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    match &cuda {
        Ok(_) => assert_eq!(o.status.code(), Some(0), "{e}"),
        Err(err) => {
            assert_eq!(o.status.code(), Some(3), "{e}");
            assert!(
                e.contains(&err.to_string()) && e.contains("cannot run conformance tests"),
                "{e}"
            );
        }
    }
    if let Err(e) = &cuda {
        // This machine has no CUDA: the reason is one of the two the executor reports.
        assert!(
            matches!(
                e,
                optc_runtime::RuntimeError::NoDriver(_) | optc_runtime::RuntimeError::NoDevice(_)
            ),
            "{e}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
