#!/usr/bin/env bash
# The README's first command: builds optc and runs the main job on the bundled example model:
# inspect it, then run it on seeded random inputs with the reference interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p optc-tools
target/release/optc inspect examples/tiny_cnn.onnx
target/release/optc run examples/tiny_cnn.onnx --shape batch=2 --seed 7
