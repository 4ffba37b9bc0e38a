#!/usr/bin/env bash
# Benchmark: what a newcomer gets after `cf dev start` (fresh state, default
# configuration): 20 pushes of the small fixture app, time to the first 200
# through the router (median, max); the Python fixture with dependencies
# from PyPI, staging time on the first push and on restage (medians of 5).
# PUSHES and RUNS change the counts. Release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-push
