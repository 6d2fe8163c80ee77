#!/usr/bin/env bash
# Fuzzes the decoders (tests/fuzz): JSON, raw Avro and the Confluent wire format, each for
# SECONDS (default 60). Installs cargo-fuzz if it is missing. Runs on stable Rust: without a
# sanitizer (`-s none`, safe Rust) cargo-fuzz needs no nightly flags; libFuzzer's coverage
# instrumentation is stable.
#
# A crash stops the script with the input under target/fuzz-artifacts/<target>/. To keep it as
# a regression test, copy it to tests/fuzz/regressions/<target>/: every input there is run
# first, each time.
#
#   scripts/fuzz.sh [SECONDS]     build, then fuzz each target for SECONDS (default 60)
#   scripts/fuzz.sh --build       only build the targets (scripts/test.sh builds first, then
#                                 fuzzes beside the test build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
if [ "${1:-}" = "--build" ]; then
  build_only=true
fi
seconds="${1:-60}"
targets=(json_decoder json_differential avro_decoder confluent_wire)
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
fuzz=(cargo fuzz run --fuzz-dir tests/fuzz --sanitizer none --release --target-dir target/fuzz)
cargo fuzz build --fuzz-dir tests/fuzz --sanitizer none --release --target-dir target/fuzz
if $build_only; then
  exit 0
fi
for t in "${targets[@]}"; do
  regressions="tests/fuzz/regressions/$t"
  if compgen -G "$regressions/*" >/dev/null; then
    echo "fuzz $t: regression inputs"
    "${fuzz[@]}" "$t" "$regressions"/* -- -runs=1
  fi
  corpus="target/fuzz-corpus/$t"
  artifacts="target/fuzz-artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz $t: ${seconds}s"
  if ! "${fuzz[@]}" "$t" "$corpus" -- -max_total_time="$seconds" -artifact_prefix="$artifacts/" \
      -print_final_stats=1 >"target/fuzz-$t.log" 2>&1; then
    tail -40 "target/fuzz-$t.log" >&2
    echo "fuzz $t: crashed; the input is in $artifacts/ (copy it to $regressions/ to keep it)" >&2
    exit 1
  fi
  grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "target/fuzz-$t.log" || true
done
