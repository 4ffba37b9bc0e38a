#!/usr/bin/env bash
# Benchmark (issue 17): `paas deploy` upgrading a 6-host platform (max in
# flight 1 and 2) and rolling a crashing release back by itself, median of
# RUNS=3, failed requests of a steady client through HAProxy per run; the
# first deploy from nothing as the peer
# (crates/integration/src/bin/bench-upgrade.rs).
#
# Changes to this machine: Debian packages the platform and the tests run
# with, when missing (scripts/lib.sh ensure_runtime (haproxy among them),
# ensure_build, ensure_postgres, ensure_test_tools); target/<profile> in
# the checkout. While it runs (root): six simulated hosts (a bridge
# plab<N>, a network namespace each, iptables rules commented PAAS-lab;
# docs/operations.md "The test lab") with their agents and components, a
# Postgres database, HAProxy, the DEAs' containers, all removed at the end.
# PROFILE=debug measures the debug build (faster to build).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
ensure_postgres
ensure_test_tools
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release --workspace --bins --features integration/bench
else
  cargo build --workspace --bins --features integration/bench
fi
PAAS_BIN_DIR="$PWD/target/$profile" exec "target/$profile/bench-upgrade"
