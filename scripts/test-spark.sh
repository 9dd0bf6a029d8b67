#!/usr/bin/env bash
# The Python package (crates/lookalike-py, PyO3 + maturin) tested for real: build the wheel, install
# it with pyarrow and pyspark in a virtual environment, and check in Spark local mode that a pool's
# top K equals `lookalike score` (tests/spark/test_spark.py). Java 17+ must be on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lookalike-target}"

# The CLI as `cargo test --release --workspace` built it (same profile and features: no rebuild).
bin="$CARGO_TARGET_DIR/release/lookalike"
if [ ! -x "$bin" ]; then
    cargo test --release --workspace --no-run
fi
if ! command -v java >/dev/null 2>&1; then
    echo "test-spark: java is missing (pyspark needs Java 17 or newer)" >&2
    exit 1
fi

venv="$CARGO_TARGET_DIR/py-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q "maturin>=1.5,<2" "pyspark>=4.0" "pyarrow>=12" numpy "pandas>=2.2,<3"

work="$(mktemp -d)"
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
# maturin builds the extension with the workspace's release profile; the feature pins in
# crates/lookalike-py/Cargo.toml keep burn from compiling again.
"$venv/bin/maturin" build --release -m crates/lookalike-py/Cargo.toml --out "$work/wheels"
"$venv/bin/pip" install -q --force-reinstall --no-deps "$work"/wheels/lookalike-*.whl
"$venv/bin/python" tests/spark/test_spark.py --bin "$bin" --work "$work/run"
