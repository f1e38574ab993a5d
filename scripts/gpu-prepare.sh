#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a lent GPU machine that has no Rust toolchain,
# within the device tool's 64 MiB carry limit:
#   .gpu/optc              the release binary, stripped (~24 MB; unstripped it is ~300 MB)
#   .gpu/onnx-node.tgz     the ONNX node tests for `optc conformance --backend cuda` (~7 MB)
# and the benchmark models under scripts/data (committed; regenerated if missing).
# Then, on the device machine (one call; see README "GPU check"):
#   OPTC_BIN=.gpu/optc scripts/gpu-check.sh        (carry: [".gpu"])
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p optc-tools
mkdir -p .gpu
cp target/release/optc .gpu/optc
strip .gpu/optc
scripts/gen-node-tests.sh
tar -czf .gpu/onnx-node.tgz -C "${OPTC_NODE_TESTS:-.cache/onnx-node}/.." "$(basename "${OPTC_NODE_TESTS:-.cache/onnx-node}")"
for f in scripts/data/matmul_f16_4096.onnx scripts/data/softmax_4096x1024.onnx scripts/data/layernorm_4096x1024.onnx; do
    [ -f "$f" ] || { .venv/bin/python scripts/make-matmul-f16.py && .venv/bin/python scripts/make-rowops.py; break; }
done
du -sh .gpu/optc .gpu/onnx-node.tgz
echo "gpu-prepare: carry [\".gpu\"] and run: OPTC_BIN=.gpu/optc scripts/gpu-check.sh"
