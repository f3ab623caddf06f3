#!/usr/bin/env bash
# Runs every fuzz target (or those named) for FUZZ_SECONDS each (default 60), from a
# corpus seeded from pcaps/. A crash stops the run and leaves its input in
# fuzz/artifacts/TARGET/: turn it into a unit test with its bytes.
#
#   bash fuzz/run.sh                       # all targets, 60 s each
#   FUZZ_SECONDS=3600 bash fuzz/run.sh gro # one target for an hour
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo run -q -p uswitch-benches --bin seed-corpus
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(views offload gro vxlan forwarder control config cni docker)
cargo fuzz build -s none
for t in "${TARGETS[@]}"; do
    echo "fuzz: $t for ${FUZZ_SECONDS:-60} s"
    cargo fuzz run -s none "$t" -- -max_total_time="${FUZZ_SECONDS:-60}" -print_final_stats=1 2>&1 |
        grep -E "^(Done|stat::number_of_executed_units|stat::new_units_added)|SUMMARY|panicked|==[0-9]+==" || true
    # libFuzzer exits non-zero on a crash; pipefail would hide it behind grep.
    [ -z "$(ls -A "fuzz/artifacts/$t" 2>/dev/null)" ] || { echo "fuzz: $t crashed, see fuzz/artifacts/$t"; exit 1; }
done
