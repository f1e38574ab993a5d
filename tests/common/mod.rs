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

/// Runs every generated node test on `backend` and checks the statuses against
/// `tests/conformance/<file>.expected` (rewritten, with the per-op table, under `OPTC_BLESS`).
/// Also requires at least `min_pass` passes.
pub fn check_node_tests(backend: optc::conformance::Backend<'_>, file: &str, min_pass: usize) {
    use optc::conformance::{self, Status};
    let dir = node_tests_dir();
    assert!(
        dir.is_dir(),
        "ONNX node tests not found at {}: run scripts/gen-node-tests.sh (scripts/test.sh does) or set OPTC_NODE_TESTS",
        dir.display()
    );
    let results = conformance::run_all(&dir, backend, None, &|_| {}).unwrap();
    let (p, f, s) = conformance::totals(&results);
    eprintln!("node tests ({file}): {p} passed, {f} failed, {s} skipped");
    let expect_path = root().join(format!("tests/conformance/{file}.expected"));
    if std::env::var_os("OPTC_BLESS").is_some() {
        std::fs::write(&expect_path, conformance::expectations(&results)).unwrap();
        std::fs::write(
            expect_path.with_extension("md"),
            conformance::per_op_markdown(&results),
        )
        .unwrap();
        return;
    }
    let text = std::fs::read_to_string(&expect_path).expect("expectations file");
    let expected = conformance::parse_expectations(&text);
    let diffs = conformance::regressions(&results, &expected);
    let reasons: std::collections::BTreeMap<&str, &str> = results
        .iter()
        .map(|r| (r.name.as_str(), r.reason.as_deref().unwrap_or("")))
        .collect();
    let lines: Vec<String> = diffs
        .iter()
        .map(|(n, e, a)| {
            format!(
                "{n}: expected {}, got {} {}",
                e.map_or("(absent)", Status::as_str),
                a.map_or("(absent)", Status::as_str),
                reasons.get(n.as_str()).unwrap_or(&"")
            )
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{} conformance changes (re-bless with OPTC_BLESS=1 if intended):\n{}",
        diffs.len(),
        lines.join("\n")
    );
    assert!(p >= min_pass, "only {p} node tests pass on {file}");
}
