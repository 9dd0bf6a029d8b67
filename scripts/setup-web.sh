#!/usr/bin/env bash
# Installs what the web build and its browser tests need: the wasm32 target, wasm-bindgen-cli of the
# exact version in Cargo.lock, Debian's Chromium, and playwright-core from npm (it drives that Chromium;
# no browser is downloaded). Idempotent; apt needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown

want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
    # Without --locked: the registry here lacks one locked dependency of the CLI; the version pin is
    # what matters (it must equal the wasm-bindgen crate in Cargo.lock).
    build=$(mktemp -d)
    CARGO_TARGET_DIR="$build" cargo install wasm-bindgen-cli --version "$want"
    rm -rf "$build"
fi

if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/setup-web.sh: install Chromium with your package manager (or set CHROMIUM=/path/to/chrome)" >&2
        exit 1
    fi
    # Another apt may hold the lock for a while: retry.
    ok=0
    for attempt in 1 2 3 4 5 6; do
        if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; then
            ok=1
            break
        fi
        echo "apt-get failed (attempt $attempt); retrying in 20 s" >&2
        sleep 20
    done
    [ "$ok" = 1 ] || exit 1
fi

(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
