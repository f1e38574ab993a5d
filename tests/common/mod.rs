//! Shared helpers of the integration tests: where the test data lives.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared ONNX models (`OPTC_MODELS`, default `../shared/models`).
pub fn models_dir() -> Option<PathBuf> {
    let p = std::env::var_os("OPTC_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "\n!!!!!!!! WARNING: the shared models folder {} is missing: model tests did NOT run.\n\
             !!!!!!!! Set OPTC_MODELS to the folder holding mlp/, resnet18/, ... (CI always has it).\n",
            p.display()
        );
        None
    }
}

/// The generated ONNX node tests (`OPTC_NODE_TESTS`, default `.cache/onnx-node`).
pub fn node_tests_dir() -> PathBuf {
    std::env::var_os("OPTC_NODE_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/onnx-node"))
}
