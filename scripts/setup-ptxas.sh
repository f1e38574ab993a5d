#!/usr/bin/env bash
# Installs NVIDIA's PTX assembler (ptxas) from the pinned `nvidia-cuda-nvcc-cu12` pip wheel into
# the repo's venv (<repo>/.venv, made with `python3 -m venv` when absent; the node-test
# generator shares it), and prints the path of the ptxas binary on stdout.
#
# No GPU and no driver are needed: ptxas is a plain x86-64 executable. The PTX tests
# (tests/ptxas.rs) find it through $OPTC_PTXAS or at
# .venv/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas, and fail when it is missing.
#
# Usage: scripts/setup-ptxas.sh        (PYTHON, default python3, makes the venv)
set -euo pipefail

NVCC_VERSION=12.9.86

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${SCRIPT_DIR}/.." && pwd)"
VENV="${REPO}/.venv"
PYTHON="${PYTHON:-python3}"

find_ptxas() {
  local p
  for p in "${VENV}"/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas; do
    if [[ -x "${p}" ]]; then
      echo "${p}"
      return 0
    fi
  done
  return 1
}

installed_version() {
  "${VENV}/bin/python" - <<'EOF' 2>/dev/null
from importlib.metadata import version
print(version("nvidia-cuda-nvcc-cu12"))
EOF
}

# One run at a time per repo (the venv is shared with scripts/gen-node-tests.sh).
mkdir -p "${REPO}/.cache"
exec 9>"${REPO}/.cache/.venv.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

if [[ ! -x "${VENV}/bin/python" ]]; then
  echo "setup-ptxas: creating venv ${VENV}" >&2
  "${PYTHON}" -m venv "${VENV}"
fi

if ! find_ptxas >/dev/null || [[ "$(installed_version)" != "${NVCC_VERSION}" ]]; then
  echo "setup-ptxas: installing nvidia-cuda-nvcc-cu12==${NVCC_VERSION} into ${VENV}" >&2
  "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "nvidia-cuda-nvcc-cu12==${NVCC_VERSION}" >&2
fi

PTXAS="$(find_ptxas)" || {
  echo "setup-ptxas: ptxas not found under ${VENV} after installing nvidia-cuda-nvcc-cu12" >&2
  exit 1
}
"${PTXAS}" --version >&2
echo "${PTXAS}"
