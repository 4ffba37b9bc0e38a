#!/usr/bin/env bash
# Benchmark: convergence after losing one of 3 DEAs (30 instances over 10
# apps, kill -9 the busiest DEA and its instances), median of 5 runs with
# default health-manager and heartbeat settings, on release binaries.
# RUNS, APPS, INSTANCES override 5, 10, 3.
#
# Changes to this machine: Debian packages the platform runs with, when
# missing, and a Rust check (scripts/lib.sh ensure_runtime, ensure_build:
# the same as scripts/setup.sh); target/release in the checkout. While it
# runs: a platform in a temp dir (as root with containers: cgroups, network
# namespaces, veths, a bridge, iptables chains, removed at the end;
# net.ipv4.ip_forward=1 left on).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
cargo build --release --workspace --bins --features integration/bench
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-converge
