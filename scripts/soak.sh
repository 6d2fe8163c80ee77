#!/usr/bin/env bash
# The long variants of the suite's soaks, on their own (scripts/test.sh runs them shorter):
#   - the kill loop over `run` and `rebuild --promote` on the real broker: ROUNDS rounds
#     (default 1000; the suite runs 20)
#   - two Delta writers with forced conflicts for 5 minutes (the suite: 2)
#   - the broker down for 2 minutes under a running service (the suite: 45 s)
#   - 30 minutes of steady ingestion with automatic compaction beside a peer without it
#     (the suite: 90 s)
# Installs and starts what it needs, like scripts/test.sh; prints each soak's time.
#   scripts/soak.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-1000}"
VENV="${KAPPA_LAKE_TEST_VENV:-$PWD/target/test-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "duckdb==1.4.4" deltalake pyarrow
source scripts/services.sh
services_install "$VENV"
trap services_stop EXIT
services_start
export KAPPA_LAKE_TEST_PYTHON="$VENV/bin/python"
export KAPPA_LAKE_TEST_LOG_ARCHIVE="$PWD/target/soak-logs"
mkdir -p "$KAPPA_LAKE_TEST_LOG_ARCHIVE"
soak() {
  local name="$1"; shift
  local start; start=$(date +%s)
  echo "=== ${name} ==="
  env "$@"
  echo "=== ${name}: $(( $(date +%s) - start ))s ==="
}
test_it=(cargo test --locked --features failpoints --test it)
soak "kill loop, $ROUNDS rounds" KAPPA_LAKE_CHAOS_ROUNDS="$ROUNDS" "${test_it[@]}" \
  chaos::kill_loop_over_run_and_rebuild_promote_gives_exactly_once -- --exact --nocapture
soak "two writers with forced conflicts, 5 minutes" KAPPA_LAKE_TEST_CONTENTION_SECS=300 \
  "${test_it[@]}" kafka::two_writers_with_forced_conflicts_lose_nothing_and_duplicate_nothing \
  -- --exact --nocapture
soak "broker down for 2 minutes" KAPPA_LAKE_TEST_OUTAGE_SECS=120 "${test_it[@]}" \
  broker::broker_down_for_minutes_then_back_loses_and_duplicates_nothing -- --exact --nocapture
soak "steady ingestion with automatic compaction, 30 minutes" \
  KAPPA_LAKE_TEST_MAINTENANCE_SOAK_SECS=1800 "${test_it[@]}" \
  maintenance::a_steady_run_keeps_closed_partitions_compacted_and_its_log_bounded \
  -- --exact --nocapture
