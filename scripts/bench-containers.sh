#!/usr/bin/env bash
# Container benchmark: create+start+destroy (median, p99) with and without the
# warm pool next to `unshare ... true` (and, with and without the pool, the fallback
# without a user namespace), then density (per-instance memory).
# Usage: scripts/bench-containers.sh [RUNS=100] [DENSITY=200]   (as root)
# On a shared machine, serialize benchmarks:
#   flock /tmp/paas-bench.lock scripts/bench-containers.sh 100 200
#
# Changes to this machine: Debian packages the platform runs with, when
# missing, and a Rust check (scripts/lib.sh ensure_runtime, ensure_build:
# the same as scripts/setup.sh); target/release in the checkout. While it
# runs: containers (cgroups, network namespaces, veths, a bridge, iptables
# chains, removed at the end) and net.ipv4.ip_forward=1 (put back as it was
# when the last DEA or benchmark on the host stops).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
# Builds `dea-init` (the containers' PID 1) along with `dea`.
cargo build --release -q -p dea --bins --examples
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
exec target/release/examples/bench_containers "${1:-100}" "${2:-200}"
