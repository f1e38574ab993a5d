//! ONNX node conformance compiled to PTX for sm_89 and executed by the test-only PTX interpreter
//! (`optc-ptxsim`: the printed PTX itself, block-cooperatively), checked against the committed
//! expectations (`tests/conformance/ptxsim.expected`; any status change fails). Re-bless with
//! `OPTC_BLESS=1 cargo test --test conformance_ptx`.

mod common;

use optc::conformance::{ArtifactRunner, Backend};
use optc_runtime::{Artifact, HostTensor, Target};

struct PtxInterpreter;

impl ArtifactRunner for PtxInterpreter {
    fn target(&self) -> Target {
        Target::Sm89
    }

    fn run(&self, artifact: &Artifact, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, String> {
        optc_ptxsim::run_artifact(artifact, inputs).map_err(|e| e.to_string())
    }
}

#[test]
fn node_tests_on_the_ptx_interpreter_match_expectations() {
    common::check_node_tests(Backend::Runner(&PtxInterpreter), "ptxsim", 1290);
}
