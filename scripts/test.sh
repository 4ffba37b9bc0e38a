#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests and the end-to-end
# tests against a real nats-server, SQLite, Postgres and the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_base
ensure_vm_tools
ensure_postgres
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace
