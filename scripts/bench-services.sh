#!/usr/bin/env bash
# Benchmark (issue 15): create-service + bind-service + restart until the
# app answers with its data, per backend (RUNS=20 runs; median and p99),
# beside `cf restart` alone and the broker alone, and the broker's RSS; on
# release binaries (crates/integration/src/bin/bench-services.rs).
#
# Changes to this machine: Debian packages the platform runs with, when
# missing (scripts/lib.sh ensure_runtime, ensure_build, as scripts/setup.sh),
# RabbitMQ's management plugin enabled (ensure_rabbitmq_management);
# target/release in the checkout. While it runs: a platform in a temp dir
# (as root with containers, as cf dev start runs it: network namespaces,
# veths, a bridge, iptables chains, removed at the end) and databases, users, keys and vhosts on this
# machine's PostgreSQL, MariaDB, Redis and RabbitMQ, each deleted again.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
ensure_rabbitmq_management
cargo build --release --workspace --bins --features integration/bench
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-services
