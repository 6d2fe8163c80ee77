#!/usr/bin/env bash
# The kill loop, for as many rounds as you like (CI runs 20 as part of scripts/test.sh):
#   scripts/chaos.sh            # 200 rounds
#   scripts/chaos.sh 1000       # 1000 rounds (200 took 8 min here; 1000 take far longer than
#                               # 5x that: each rebuild replays a topic that keeps growing)
# `run` and `rebuild --force --promote` against the real broker (tansu) while an independent
# producer keeps sending; each round SIGKILLs one of them at a random moment. In the end every
# produced event must be in the current version exactly once (DuckDB), and every version's rows
# must match its stored offsets. The test is tests/it/chaos.rs; KAPPA_LAKE_TEST_SEED replays a
# run's random choices (the seed is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-200}"
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
start=$(date +%s)
KAPPA_LAKE_CHAOS_ROUNDS="$ROUNDS" cargo test --locked --features failpoints --test it \
  chaos::kill_loop_over_run_and_rebuild_promote_gives_exactly_once -- --exact --nocapture
echo "kill loop: $ROUNDS rounds passed in $(( $(date +%s) - start ))s"
