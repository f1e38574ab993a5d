#!/usr/bin/env bash
# Installs the software Vulkan driver (Mesa lavapipe) that the WGSL backend runs on when the
# machine has no GPU, then checks that a Vulkan ICD is present. Idempotent; needs root (CI runs as
# root) or sudo.
set -euo pipefail
if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  echo "setup-vulkan: lavapipe already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || {
  echo "setup-vulkan: lavapipe ICD missing after install" >&2
  exit 1
}
echo "setup-vulkan: lavapipe installed"
