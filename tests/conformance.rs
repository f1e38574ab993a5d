//! ONNX node conformance through the reference interpreter, checked against the committed
//! expectations (`tests/conformance/reference.expected`): any test whose status changed fails,
//! improvements included, so the file is always current. Re-bless with
//! `OPTC_BLESS=1 cargo test --test conformance` after an intended change.

mod common;

use optc::conformance::Backend;

#[test]
fn node_tests_match_expectations() {
    common::check_node_tests(Backend::Reference, "reference", 1300);
}
