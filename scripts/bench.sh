#!/usr/bin/env bash
# End-to-end benchmark on a fresh machine: installs what it needs (a Python venv with DuckDB,
# Polars and confluent-kafka, the tansu broker on SeaweedFS), builds the release binary, starts the
# broker on loopback and runs scripts/bench.py, which prints the table with the DuckDB ratio
# and writes target/bench/results.{md,json}. Extra arguments go to bench.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${KAPPA_LAKE_TEST_VENV:-$PWD/target/test-venv}"
START=$(date +%s)

phase() {
  local name="$1"; shift
  local start; start=$(date +%s)
  echo "=== ${name} ==="
  "$@"
  echo "=== ${name}: $(( $(date +%s) - start ))s ==="
}

python_venv() {
  command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "duckdb==1.4.4" polars
}

phase "python venv (duckdb, polars)" python_venv
source scripts/services.sh
phase "services install (tansu, seaweedfs, confluent-kafka)" services_install "$VENV"
trap services_stop EXIT
phase "services start" services_start
# Without the `sql` feature (DataFusion): the benchmark uses no transform, and a release build
# with it takes ~45 min here instead of ~15.
phase "cargo build --release" cargo build --release --locked --no-default-features --bin kappa-lake
phase "benchmark" "$VENV/bin/python" scripts/bench.py \
  --bin target/release/kappa-lake --python "$VENV/bin/python" \
  --brokers "$KAPPA_LAKE_TEST_BROKERS" "$@"
echo "=== bench total: $(( $(date +%s) - START ))s ==="
