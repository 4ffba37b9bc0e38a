#!/usr/bin/env bash
# Benchmark: resource matching (issue 14). After a fresh `cf dev start`, a
# new 50 MB app (the pyapp fixture and 5 random files of 10 MB) is pushed,
# then pushed again unchanged: the time of each `cf push` and the bytes the
# controller received, and the ratios. RUNS (1) repeats it with new files
# (medians). Release binaries (in $CARGO_TARGET_DIR when set, else
# target/).
#
# Changes to this machine: Debian packages the platform runs with, when
# missing, and a Rust check (scripts/lib.sh ensure_runtime, ensure_build);
# the release build. While it runs: a platform in a temp dir (as root with
# containers: cgroups, network namespaces, veths, a bridge, iptables
# chains, removed at the end; net.ipv4.ip_forward=1 left on) and 50 MB of
# random files in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
cargo build --release --workspace --bins --features integration/bench
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
PAAS_BIN_DIR="$target" exec "$target/bench-resources"
