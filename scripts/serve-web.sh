#!/usr/bin/env bash
# Serves the web app (index.html + dist/) on 127.0.0.1 only. 127.0.0.1 is a secure context, so WebGPU
# is available. PORT defaults to 8123.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8123}"
if [ ! -f dist/lookalike_web_bg.wasm ]; then
    echo "serve-web: dist/ is empty; run scripts/build-web.sh first" >&2
    exit 1
fi
echo "serving http://127.0.0.1:$PORT/ (Ctrl-C to stop)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1
