#!/usr/bin/env bash
# The web app's tests in a real browser: install the tools, build the app and its demo assets, then
# drive headless Chromium through tests/web/e2e.mjs (CPU fallback and WebGPU on SwiftShader).
# Screenshots and measured timings land in out/web-test/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-web.sh
scripts/build-web.sh
node tests/web/e2e.mjs
