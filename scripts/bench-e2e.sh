#!/usr/bin/env bash
# Benchmark: cf push → first 200 through the router (median of 5) and idle RSS
# of each component with one app running, on release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-e2e
