#!/usr/bin/env bash
# Generate the ONNX backend *node* tests (onnx backend-test layout:
#   <out>/test_<name>/model.onnx
#   <out>/test_<name>/test_data_set_0/{input,output}_<i>.pb)
# from a pinned `onnx` pip package, for the conformance harness.
#
# Usage: scripts/gen-node-tests.sh [OUT_DIR]
#   OUT_DIR defaults to $OPTC_NODE_TESTS, else <repo>/.cache/onnx-node.
#   PYTHON (default python3) is the interpreter the venv is made from.
#
# The Python packages go into <repo>/.venv (made with `python3 -m venv`); nothing is
# installed outside it. A stamp file in OUT_DIR records a finished run; a rerun with
# the same pinned versions exits at once. Delete OUT_DIR to force regeneration.
set -euo pipefail

# Pins. numpy 2.4.x has CPython 3.11 wheels and satisfies onnx 1.23.2's numpy>=1.23.2;
# onnx's other dependencies are pinned too so that every run installs the same set.
ONNX_VERSION=1.23.2
NUMPY_VERSION=2.4.6
PINS=(
  "onnx==${ONNX_VERSION}"
  "numpy==${NUMPY_VERSION}"
  "protobuf==7.36.2"
  "ml_dtypes==0.6.0"
  "typing_extensions==4.16.0"
)

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${REPO}/.venv"
PYTHON="${PYTHON:-python3}"

OUT="${1:-${OPTC_NODE_TESTS:-${REPO}/.cache/onnx-node}}"
mkdir -p "$(dirname "${OUT}")"
OUT="$(cd "$(dirname "${OUT}")" && pwd)/$(basename "${OUT}")"
STAMP="${OUT}/.optc-node-tests.stamp"
STAMP_KEY="onnx==${ONNX_VERSION} numpy==${NUMPY_VERSION}"

count_tests() {
  find "$1" -mindepth 1 -maxdepth 1 -type d -name 'test_*' | wc -l | tr -d ' '
}

up_to_date() {
  [[ -f "${STAMP}" ]] && [[ "$(head -n 1 "${STAMP}")" == "${STAMP_KEY}" ]]
}

if up_to_date; then
  echo "gen-node-tests: ${OUT} is up to date (${STAMP_KEY}): $(count_tests "${OUT}") node tests"
  exit 0
fi

# One run at a time per repo (the venv and the staging folder are shared).
mkdir -p "${REPO}/.cache"
exec 9>"${REPO}/.cache/.gen-node-tests.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if up_to_date; then # another run finished it while we waited
  echo "gen-node-tests: ${OUT} is up to date (${STAMP_KEY}): $(count_tests "${OUT}") node tests"
  exit 0
fi

if [[ -e "${OUT}" && ! -d "${OUT}" ]]; then
  echo "gen-node-tests: refusing to replace ${OUT}: it is not a folder" >&2
  exit 1
fi
if [[ -d "${OUT}" ]]; then
  # Only replace a folder that holds nothing but generated tests (and our stamp),
  # never one that a mistyped OUT_DIR points at by accident.
  stray="$(find "${OUT}" -mindepth 1 -maxdepth 1 ! -name 'test_*' ! -name '.optc-node-tests.stamp' -print -quit)"
  if [[ -n "${stray}" ]]; then
    echo "gen-node-tests: refusing to replace ${OUT}: it holds something that is not a node test:" >&2
    echo "${stray}" >&2
    exit 1
  fi
fi

# --- venv with the pinned packages -------------------------------------------
if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "gen-node-tests: creating venv ${VENV}"
  "${PYTHON}" -m venv "${VENV}"
fi
VPY="${VENV}/bin/python"

# Quick check (no pip run) whether every pin is installed at its version.
if ! "${VPY}" - "${PINS[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
then
  echo "gen-node-tests: installing ${PINS[*]} into ${VENV}"
  "${VPY}" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "${PINS[@]}"
fi

# --- generate ------------------------------------------------------------------
# Written to a staging folder beside OUT and moved into place only when complete,
# so an interrupted run never leaves a half-written OUT with a stamp.
STAGING="${OUT}.partial"
rm -rf "${STAGING}"
trap 'rm -rf "${STAGING}"' EXIT
mkdir -p "${STAGING}"

echo "gen-node-tests: generating node tests with onnx ${ONNX_VERSION} into ${OUT}"
"${VPY}" "${SCRIPT_DIR}/gen_node_tests.py" "${STAGING}"

N="$(count_tests "${STAGING}/node")"
printf '%s\ntests=%s\n' "${STAMP_KEY}" "${N}" >"${STAGING}/node/.optc-node-tests.stamp"

rm -rf "${OUT}" # checked above: only old tests and our stamp
mv "${STAGING}/node" "${OUT}"

echo "gen-node-tests: generated ${N} node tests in ${OUT}"
