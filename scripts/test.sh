#!/usr/bin/env bash
# The project's test command (README.md): generates the ONNX node tests if needed, then runs
# formatting, lint and the whole test suite. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/gen-node-tests.sh
export OPTC_NODE_TESTS="${OPTC_NODE_TESTS:-$PWD/.cache/onnx-node}"

cargo fmt --all -- --check </dev/null
cargo clippy --workspace --all-targets --locked -- -D warnings </dev/null
cargo test --workspace --locked </dev/null
