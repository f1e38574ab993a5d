//! The CLI contract: commands, `--json` output and exit codes (0 ok, 1 check failed, 2 bad
//! input, 3 no usable device).

use std::path::PathBuf;
use std::process::{Command, Output};

fn optc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_optc")).args(args).current_dir(root()).output().unwrap()
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
    assert!(text.starts_with("graph main(%0 \"image\": f32[batchx3x16x16])"), "{text}");
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
    // Re-running the saved outputs' model with the same seed is deterministic.
    let again = optc(&["run", "examples/tiny_cnn.onnx", "--shape", "batch=3", "--json"]);
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
    let o = optc(&["run", "examples/tiny_cnn.onnx", "--inputs", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'image'"), "{}", stderr(&o));
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
    let models = std::env::var_os("OPTC_MODELS").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/models"));
    if !models.is_dir() {
        eprintln!("WARNING: {} missing: conformance CLI test did not run", models.display());
        return;
    }
    let o = optc(&["conformance", models.to_str().unwrap(), "--filter", "mlp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().last(), Some("1 passed, 0 failed, 0 skipped"), "{out}");
    let o = optc(&["conformance", models.to_str().unwrap(), "--filter", "mlp", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], 1);
    assert_eq!(v["tests"][0]["name"], "mlp");
    assert_eq!(v["tests"][0]["status"], "passed");
    assert!(v["tests"][0]["op_types"].as_array().unwrap().contains(&"Gemm".into()));
}
