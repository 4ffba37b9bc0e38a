#!/usr/bin/env bash
# Benchmark: density on one DEA (namespaces backend, as root). Pushes the
# fixture Python app, scales it to INSTANCES (default 200) and prints the
# DEA's RSS and the memory the platform adds per instance (DEA bookkeeping
# growth + container-init PSS) beyond the app itself. MEMORY sets the quota
# per instance (default 64M).
#
# Changes to this machine: Debian packages the platform runs with, when
# missing, and a Rust check (scripts/lib.sh ensure_runtime, ensure_build:
# the same as scripts/setup.sh); target/release in the checkout. While it
# runs: a platform in a temp dir with its containers (cgroups, network
# namespaces, veths, a bridge, iptables chains, removed at the end) and
# net.ipv4.ip_forward=1 (left on).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
cargo build --release --workspace --bins --features integration/bench
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-density
