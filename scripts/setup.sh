#!/usr/bin/env bash
# Installs what the platform needs to run on a fresh Debian machine (when
# missing), builds it and starts it on this machine (`cf dev start`). Extra
# arguments go to `cf dev start` (e.g. --router-port 8081, --dir DIR). Test
# and benchmark tools are not installed here: scripts/test.sh and the
# scripts/bench-*.sh install what they need.
#
# Changes to this machine:
# - apt-get update, then Debian packages whose command is missing
#   (scripts/lib.sh ensure_runtime, ensure_build): nats-server, python3,
#   python3-pip, nodejs, npm, default-jdk-headless, nginx, iptables,
#   iproute2, e2fsprogs, curl, haproxy (its service stopped and disabled:
#   `cf dev start --hosts N` runs its own), gcc. Installing nginx also
#   starts Debian's nginx service (port 80) where the init system runs
#   services.
# - Rust is not installed: without cargo and a rustc >= the rust-version of
#   Cargo.toml (on PATH or in ~/.cargo/bin) it stops and says what to install.
# - RabbitMQ, when installed and running on 127.0.0.1:5672: its
#   rabbitmq_management plugin enabled (once; the service broker manages
#   vhosts and users through it). The database servers are not installed
#   or changed here: `cf dev start` starts the service broker for those of
#   PostgreSQL, MariaDB, Redis and RabbitMQ that answer on 127.0.0.1 and
#   says which it skipped (scripts/test.sh installs and starts all four).
# - target/release in the checkout; the symlink ~/.local/bin/cf.
# - `cf dev start`: ~/.cfdev (state, configs, logs, pids; $CF_HOME/.cfdev if
#   set, or --dir) and the platform's processes in the background until
#   `cf dev stop`. As root the DEA runs apps in containers: a bridge, network
#   namespaces, veths, iptables chains PAAS-*, cgroups paas-*, /run/paas,
#   an ext4 volume per container on a loop device under the DEA's state dir
#   (removed when the DEA stops; a crashed DEA's when a DEA starts again),
#   and net.ipv4.ip_forward=1 (left on). docs/containers.md lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_runtime
ensure_build
ensure_rabbitmq_management
cargo build --release --bins
mkdir -p "$HOME/.local/bin"
ln -sf "$PWD/target/release/cf" "$HOME/.local/bin/cf"
echo "==> cf linked at ~/.local/bin/cf"
exec target/release/cf dev start "$@"
