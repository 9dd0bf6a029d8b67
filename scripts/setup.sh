#!/usr/bin/env bash
# Installs the system packages the tests need: Mesa's software Vulkan driver (lavapipe), on which the wgpu
# backend is checked without a GPU. Idempotent; needs root (or sudo) and Debian/Ubuntu's apt.
set -euo pipefail

if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/setup.sh: install Mesa's Vulkan drivers (lavapipe) and the Vulkan loader with your package manager" >&2
    exit 1
fi
# Another apt may hold the lock for a while: retry.
for attempt in 1 2 3 4 5 6; do
    if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1; then
        exit 0
    fi
    echo "apt-get failed (attempt $attempt); retrying in 20 s" >&2
    sleep 20
done
exit 1
