#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests and the end-to-end
# tests against a real nats-server, SQLite, Postgres and the real binaries.
#
# Changes to this machine:
# - apt-get update, then Debian packages whose command is missing
#   (scripts/lib.sh): what scripts/setup.sh installs (the platform under
#   test runs with it: ensure_runtime, ensure_build), and for the tests only
#   openssl and the JDK's javac/jar (ensure_test_tools),
#   postgresql and postgresql-client (ensure_postgres); as root, unless DEA_SKIP_VM_TESTS=1,
#   for the cgroup v2 VM test: qemu-system-x86, busybox-static, cpio,
#   xz-utils, kmod and linux-image-amd64 (a kernel under /boot and
#   /lib/modules; installed without recommends and with INITRD=No; its
#   bootloader hook may run) (ensure_vm_tools). Installing postgresql starts
#   its cluster; installing nginx starts Debian's nginx service (port 80),
#   where the init system runs services.
# - Rust is not installed: without cargo and a rustc >= the rust-version of
#   Cargo.toml it stops and says what to install.
# - Postgres, unless one already answers on 127.0.0.1:5432: `host all all
#   127.0.0.1/32 trust` inserted as the first line of
#   /etc/postgresql/<newest>/main/pg_hba.conf (once), and that cluster
#   started (or restarted); `host all all 10.254.0.0/16 scram-sha-256`
#   appended to it (once, then a reload) so that containers may log in to
#   bound databases with their password.
# - MariaDB, Redis and RabbitMQ (ensure_services): installed from Debian
#   when missing, started (`service NAME start`) when their port is closed;
#   MariaDB's root given an empty password over TCP when it has none that
#   works; RabbitMQ's management plugin enabled. The service broker's
#   tests make databases, users, keys and vhosts there and delete them.
# - target/debug in the checkout.
# - While they run, as root, the tests make containers (bridges, network
#   namespaces, veths, iptables chains PAAS-*, cgroups paas-*, /run/paas),
#   a test namespace and veth of their own, the operator lab's simulated
#   hosts (bridges plab<N>, namespaces plab<N>-<host> with a
#   /etc/netns/plab<N>-<host>/resolv.conf each, iptables rules commented
#   PAAS-lab in FORWARD and nat POSTROUTING), and qemu VMs (scripts/vm/
#   run-in-vm.sh, in a temp dir); all removed at the end. The DEA sets
#   net.ipv4.ip_forward=1 and the last DEA to stop puts the old value back.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
ensure_test_tools
ensure_vm_tools
ensure_postgres
ensure_services
cargo fmt --all -- --check
# --all-features: the benchmarks' binaries too (integration/bench).
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo build --workspace --bins
# With cargo-nextest (on this machine and CI) every test binary's tests share
# the two cores at once instead of one binary after another; then the doc
# tests, which nextest does not run. Without it, plain cargo test.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace
  cargo test --workspace --doc
else
  cargo test --workspace
fi
