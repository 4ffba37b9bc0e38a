#!/usr/bin/env bash
# Benchmark: density on one DEA (namespaces backend, as root). Pushes the
# fixture Python app, scales it to INSTANCES (default 200) and prints the
# DEA's RSS and the memory the platform adds per instance (DEA bookkeeping
# growth + container-init PSS) beyond the app itself. MEMORY sets the quota
# per instance (default 64M).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_base
cargo build --release --workspace --bins
PAAS_BIN_DIR="$PWD/target/release" exec target/release/bench-density
