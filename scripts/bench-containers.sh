#!/usr/bin/env bash
# Container benchmark: create+start+destroy (median, p99) with and without the
# warm pool next to `unshare ... true`, then density (per-instance memory).
# Usage: scripts/bench-containers.sh [RUNS=100] [DENSITY=200]   (as root)
# On a shared machine, serialize benchmarks:
#   flock /tmp/paas-bench.lock scripts/bench-containers.sh 100 200
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
# Builds `dea-init` (the containers' PID 1) along with `dea`.
cargo build --release -q -p dea --bins --examples
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
exec target/release/examples/bench_containers "${1:-100}" "${2:-200}"
