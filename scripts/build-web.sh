#!/usr/bin/env bash
# Builds the web app into dist/ (served with index.html from the repository root):
#   dist/lookalike_web.js, dist/lookalike_web_bg.wasm   the app (profile `web`, wasm32)
#   dist/demo.rec, dist/demo-none.rec, dist/demo.pool  the demo general models and candidate pool,
#                                                       made by the CLI from the bundled demo world
# Needs: the wasm32 target and wasm-bindgen-cli of the version in Cargo.lock (scripts/setup-web.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT=dist

want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
    echo "build-web: wasm-bindgen ${have:-(missing)} found, Cargo.lock has $want; run scripts/setup-web.sh" >&2
    echo "           (or: cargo install wasm-bindgen-cli --version $want)" >&2
    exit 1
fi

mkdir -p "$OUT"
t0=$(date +%s)
cargo build --profile web --target wasm32-unknown-unknown -p lookalike-web
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$OUT" --out-name lookalike_web \
    "$TARGET_DIR/wasm32-unknown-unknown/web/lookalike_web.wasm"
echo "build-web: wasm built in $(( $(date +%s) - t0 )) s"

# Demo assets: rebuilt when missing or older than the CLI that makes them.
cargo build --release -p lookalike-cli
cli="$TARGET_DIR/release/lookalike"
if [ ! -s "$OUT/demo.pool" ] || [ "$cli" -nt "$OUT/demo.pool" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$cli" prepare --out "$work/demo.lkd" --cold-threshold 200
    "$cli" pretrain --data "$work/demo.lkd" --out "$work/demo.rec" --precision f16
    "$cli" pretrain --data "$work/demo.lkd" --out "$work/demo-none.rec" --precision f16 --meta none
    "$cli" export-pool --data "$work/demo.lkd" --model "$work/demo.rec" --out "$work/demo.pool"
    mv "$work/demo.rec" "$work/demo-none.rec" "$OUT/"
    mv "$work/demo.pool" "$OUT/"
fi

wasm="$OUT/lookalike_web_bg.wasm"
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
echo "build-web: $wasm $(mb "$(stat -c %s "$wasm")") MB raw, $(mb "$(gzip -9 -c "$wasm" | wc -c)") MB gzipped;" \
    "demo.rec $(mb "$(stat -c %s "$OUT/demo.rec")") MB, demo.pool $(mb "$(stat -c %s "$OUT/demo.pool")") MB"
echo "build-web: serve with scripts/serve-web.sh, then open http://127.0.0.1:8123/"
