#!/usr/bin/env bash
# The project's test command (README.md): generates the ONNX node tests if needed, then runs
# formatting, lint and the whole test suite. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/gen-node-tests.sh
export OPTC_NODE_TESTS="${OPTC_NODE_TESTS:-$PWD/.cache/onnx-node}"

# Where /dev/null is a regular file (it has been on CI; see .ci/run), whatever an earlier step's
# build scripts wrote there is read back as stdin by cargo's `rustc -` target-info probe. Empty it
# before each cargo step.
fresh_null() { [[ -c /dev/null ]] || : >/dev/null; }

fresh_null && cargo fmt --all -- --check </dev/null
fresh_null && cargo clippy --workspace --all-targets --locked -- -D warnings </dev/null
# API docs build without warnings (broken intra-doc links, unescaped brackets, private links).
fresh_null && RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --locked </dev/null
fresh_null && cargo test --workspace --locked </dev/null
