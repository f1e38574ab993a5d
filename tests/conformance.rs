//! ONNX node conformance through the reference interpreter, checked against the committed
//! expectations (`tests/conformance/reference.expected`): any test whose status changed fails,
//! improvements included, so the file is always current. Re-bless with
//! `OPTC_BLESS=1 cargo test --test conformance` after an intended change.

mod common;

use optc::conformance::{self, Backend, Status};

#[test]
fn node_tests_match_expectations() {
    let dir = common::node_tests_dir();
    assert!(
        dir.is_dir(),
        "ONNX node tests not found at {}: run scripts/gen-node-tests.sh (scripts/test.sh does) or set OPTC_NODE_TESTS",
        dir.display()
    );
    let results = conformance::run_all(&dir, Backend::Reference, None, &|_| {}).unwrap();
    let (p, f, s) = conformance::totals(&results);
    eprintln!("node tests: {p} passed, {f} failed, {s} skipped");
    let expect_path = common::root().join("tests/conformance/reference.expected");
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
    assert!(p >= 1300, "only {p} node tests pass");
}
