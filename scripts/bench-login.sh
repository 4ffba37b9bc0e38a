#!/usr/bin/env bash
# Benchmark: a login flood against the controller (600 wrong-password logins,
# 200 at a time, each from its own forwarded address, so that every one costs
# a password check): the controller's memory before, at its peak and 5 s
# after, and the time taken. LOGINS and CONCURRENCY change the counts;
# PAAS_BIN_DIR=<dir of another build's binaries> measures that build (the
# peer: the code before the change) with this run's client.
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
PAAS_BIN_DIR="${PAAS_BIN_DIR:-$PWD/target/release}" exec target/release/bench-login
