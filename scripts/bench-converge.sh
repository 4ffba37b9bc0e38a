#!/usr/bin/env bash
# Benchmark: convergence after losing one of 3 DEAs (30 instances over 10
# apps, kill -9 the busiest DEA and its instances), median of 5 runs with
# default health-manager and heartbeat settings, on release binaries.
# RUNS, APPS, INSTANCES override 5, 10, 3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-converge
