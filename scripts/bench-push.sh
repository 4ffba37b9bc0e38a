#!/usr/bin/env bash
# Benchmark: what a newcomer gets after `cf dev start` (fresh state, default
# configuration): 20 pushes of the small fixture app, time to the first 200
# through the router (median, max); the Python fixture with dependencies
# from PyPI, staging time on the first push and on restage (medians of 5).
# PUSHES and RUNS change the counts. Release binaries.
#
# Changes to this machine: Debian packages the platform runs with, when
# missing, and a Rust check (scripts/lib.sh ensure_runtime, ensure_build:
# the same as scripts/setup.sh); target/release in the checkout. While it
# runs: a platform in a temp dir (as root with containers: cgroups, network
# namespaces, veths, a bridge, iptables chains, removed at the end;
# net.ipv4.ip_forward=1 left on). It downloads the Python fixture's
# dependencies from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
cargo build --release --workspace --bins --features integration/bench
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-push
