#!/usr/bin/env bash
# Container benchmark: create+start+destroy (median, p99) with and without the
# warm pool next to `unshare ... true`, then density (per-instance memory).
# Usage: scripts/bench-containers.sh [RUNS=100] [DENSITY=200]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
cargo build --release -q -p dea --bins --examples
exec target/release/examples/bench_containers "${1:-100}" "${2:-200}"
