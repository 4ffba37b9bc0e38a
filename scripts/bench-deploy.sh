#!/usr/bin/env bash
# Benchmark (issue 16): rolling restarts of 10 instances at max in flight
# 1, 3 and 10 beside a plain `cf restart` (the peer), and a crashing
# version's deployment until the app is fully back on the previous one;
# median of RUNS=5, failed requests of a steady client per run; on release
# binaries (crates/integration/src/bin/bench-deploy.rs).
#
# Changes to this machine: Debian packages the platform runs with, when
# missing (scripts/lib.sh ensure_runtime, ensure_build, as
# scripts/setup.sh); target/release in the checkout. While it runs: a
# platform in a temp dir (as root with containers, as cf dev start runs
# it: network namespaces, veths, a bridge, iptables chains, removed at the
# end).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
cargo build --release --workspace --bins --features integration/bench
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-deploy
