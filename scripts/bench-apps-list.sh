#!/usr/bin/env bash
# Benchmark: GET /v3/apps latency (medians of 20) with 1 and with 1,000 apps
# across 50 spaces, for the admin and for a developer of one space, on the
# controller binary with its default SQLite store. RUNS, APPS and SPACES
# change the counts; PAAS_BIN_DIR=<dir of another build's binaries> measures
# that build (the peer: the code before the change) with this run's client.
#
# Changes to this machine: Debian packages the platform runs with, when
# missing, and a Rust check (scripts/lib.sh); target/release in the checkout.
# While it runs: a nats-server and a controller in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
cargo build --release -p integration -p cloud-controller --bins --features integration/bench
PAAS_BIN_DIR="${PAAS_BIN_DIR:-$PWD/target/release}" exec target/release/bench-apps-list
