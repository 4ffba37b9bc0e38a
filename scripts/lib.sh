# Shared helpers for scripts/setup.sh, scripts/test.sh and the benchmark
# scripts (Debian). Each helper says what it installs or changes on the
# machine; each script's header lists what it calls.
# shellcheck shell=bash

# The checkout (this file is scripts/lib.sh).
LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt_updated=1
  fi
  # The lock timeout: another apt on the machine (a parallel setup) is waited
  # for instead of failing at once.
  $SUDO env DEBIAN_FRONTEND=noninteractive ${APT_ENV:-} \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}

# ensure_cmd COMMAND PACKAGE: installs PACKAGE when COMMAND is missing.
ensure_cmd() {
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
    echo "==> installing $2"
    apt_install "$2"
  fi
}

# ensure_pip: pip for the host's python3 (the python buildpack runs
# `python3 -m pip`); Debian's python3 has none without python3-pip.
ensure_pip() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "==> installing python3-pip"
    apt_install python3-pip
  fi
}

# What the platform needs to RUN (`cf dev start`, the DEA's built-in
# buildpacks at staging and run time, its containers): Debian packages,
# installed when their command is missing.
ensure_runtime() {
  ensure_cmd nats-server nats-server
  # python buildpack: python3 and pip (requirements from PyPI).
  ensure_cmd python3 python3
  ensure_pip
  # nodejs buildpack: node, and npm for dependencies from the npm registry.
  ensure_cmd node nodejs
  ensure_cmd npm npm
  # java buildpack: runs apps with the host's JDK (java; jar reads manifests).
  ensure_cmd java default-jdk-headless
  # staticfile buildpack: serves with the host's nginx.
  ensure_cmd nginx nginx
  # namespaces backend (containers as root): bridge, veths and rules.
  ensure_cmd iptables iptables
  ensure_cmd ip iproute2
  # disk limits that fail writes: an ext4 volume per container, on a loop
  # device (docs/containers.md).
  ensure_cmd mkfs.ext4 e2fsprogs
  ensure_cmd curl curl
  # The load balancer in front of the routers of `cf dev start --hosts N`
  # and the operator tests (docs/operations.md).
  if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
    echo "==> installing haproxy"
    apt_install haproxy
    # Debian starts its service; cf dev and the tests run their own.
    (systemctl disable --now haproxy || service haproxy stop) >/dev/null 2>&1 || true
  fi
}

# What building needs: a C compiler (the linker; ring and the bundled
# SQLite are C) and Rust (checked, not installed: see ensure_rust).
ensure_build() {
  ensure_cmd cc gcc
  ensure_rust
}

# The minimum Rust: rust-version of [workspace.package] in Cargo.toml (the
# only place it is written).
workspace_rust_version() {
  awk -F'"' '/^\[/ { s = ($0 == "[workspace.package]") }
    s && /^rust-version[[:space:]]*=/ { print $2; exit }' "$LIB_ROOT/Cargo.toml"
}

# version_ge A B: A >= B (dotted versions).
version_ge() {
  [ "$(printf '%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

# ensure_rust: cargo and a rustc at least the workspace's rust-version, on
# PATH or in ~/.cargo/bin (rustup's, added to PATH for this script). Installs
# nothing (Debian's rustc is older than the code needs): when they are
# missing or too old, stops with one message saying what to install.
ensure_rust() {
  local need have="" problem=""
  need=$(workspace_rust_version)
  if [ -z "$need" ]; then
    echo "error: no rust-version in [workspace.package] of $LIB_ROOT/Cargo.toml" >&2
    exit 1
  fi
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    case ":$PATH:" in
      *":$HOME/.cargo/bin:"*) ;;
      *) export PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
  fi
  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
    problem="cargo or rustc is missing (looked on PATH and in ~/.cargo/bin)"
  elif ! have=$(rustc --version 2>/dev/null) || [ -z "$have" ]; then
    problem="\`rustc --version\` fails ($(command -v rustc))"
  else
    have=${have#rustc }
    have=${have%% *}
    have=${have%%-*}
    if ! version_ge "$have" "$need"; then
      problem="found rustc $have ($(command -v rustc)), which is older"
    fi
  fi
  [ -z "$problem" ] && return 0
  cat >&2 <<EOF
error: building needs Rust >= $need (rust-version in Cargo.toml); $problem.
Install Rust with rustup (Debian's rustc packages are older):
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
(if rustup is already installed: rustup update stable), then re-run $0.
EOF
  exit 1
}

# What only the tests need (besides the runtime, ensure_postgres and
# ensure_vm_tools): openssl (the router's TLS tests make certificates with
# it), javac and jar (the java tests build jars; the runtime's JDK package).
ensure_test_tools() {
  ensure_cmd openssl openssl
  ensure_cmd javac default-jdk-headless
  ensure_cmd jar default-jdk-headless
}

# A Debian kernel under /boot whose modules are installed.
have_vm_kernel() {
  local k
  for k in /boot/vmlinuz-*; do
    [ -f "$k" ] && [ -f "/lib/modules/${k#/boot/vmlinuz-}/modules.dep" ] && return 0
  done
  return 1
}

# What the cgroup v2 VM test (crates/dea/tests/cgroup_v2_vm.rs, through
# scripts/vm/run-in-vm.sh) needs: qemu, a Debian kernel with its modules
# (installed under /boot and /lib/modules), a static busybox, cpio, xz (the
# kernel's compressed modules) and kmod. Root only (the test is skipped
# otherwise), and not with DEA_SKIP_VM_TESTS=1.
ensure_vm_tools() {
  if [ "$(id -u)" -ne 0 ] || [ "${DEA_SKIP_VM_TESTS:-}" = 1 ]; then return 0; fi
  local pkgs=()
  command -v qemu-system-x86_64 >/dev/null 2>&1 || pkgs+=(qemu-system-x86)
  dpkg -s busybox-static >/dev/null 2>&1 || pkgs+=(busybox-static)
  command -v cpio >/dev/null 2>&1 || pkgs+=(cpio)
  command -v xz >/dev/null 2>&1 || pkgs+=(xz-utils)
  [ -x /usr/sbin/modprobe ] || [ -x /sbin/modprobe ] || pkgs+=(kmod)
  have_vm_kernel || pkgs+=(linux-image-amd64)
  [ "${#pkgs[@]}" -eq 0 ] && return 0
  echo "==> installing ${pkgs[*]} (for the cgroup v2 VM test)"
  # INITRD=No: the kernel's hooks build no initramfs (the VM script builds
  # its own); a failing bootloader hook is fine as long as the kernel and its
  # modules are in place.
  if ! APT_ENV="INITRD=No" apt_install --no-install-recommends "${pkgs[@]}"; then
    if ! have_vm_kernel || ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
      echo "cannot install the VM test's tools (${pkgs[*]})" >&2
      return 1
    fi
    echo "==> a package hook failed, but the kernel and qemu are installed"
  fi
}

# A Postgres on 127.0.0.1:5432 with trust auth for user postgres (only the
# tests use it; the platform's default database is SQLite). Installs
# postgresql-client and postgresql when missing, inserts
# `host all all 127.0.0.1/32 trust` as the first line of the newest
# cluster's pg_hba.conf and starts (or restarts) that cluster.
ensure_postgres() {
  ensure_cmd pg_isready postgresql-client
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    ensure_postgres_containers_hba
    return 0
  fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "==> installing postgresql"
    apt_install postgresql
  fi
  local ver
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
    || $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
  for _ in $(seq 1 100); do
    if pg_isready -q -h 127.0.0.1 -p 5432; then
      ensure_postgres_containers_hba
      return 0
    fi
    sleep 0.2
  done
  echo "postgres did not come up on 127.0.0.1:5432" >&2
  return 1
}

# Containers reach the host's Postgres through the DEA's host services
# address (DNAT to 127.0.0.1, docs/containers.md "Host services"), from
# their own addresses (10.254.0.0/16): those may log in with a password
# only (the broker's roles have one; postgres has none). Appends
# `host all all 10.254.0.0/16 scram-sha-256` to the newest cluster's
# pg_hba.conf once, and reloads it.
ensure_postgres_containers_hba() {
  ls /etc/postgresql/*/main >/dev/null 2>&1 || return 0
  local ver hba
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q '^host all all 10.254.0.0/16 scram-sha-256' "$hba"; then
    echo 'host all all 10.254.0.0/16 scram-sha-256' | $SUDO tee -a "$hba" >/dev/null
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null 2>&1 || true
  fi
}

# RabbitMQ's management HTTP API on 127.0.0.1:15672 (the service broker
# manages vhosts, users and permissions through it). RabbitMQ itself is not
# installed here: when rabbitmq-plugins is missing or no broker answers on
# 127.0.0.1:5672 this does nothing (the service broker then skips its
# rabbitmq backend). Otherwise enables the `rabbitmq_management` plugin when
# it is not enabled (persisted in RabbitMQ's enabled_plugins file) and waits
# up to 30 s for the API to answer.
# port_open PORT: whether something listens on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ensure_server NAME PORT PACKAGE: the Debian service NAME answering on
# 127.0.0.1:PORT; installs PACKAGE when NAME's init script is missing, and
# starts it (service NAME start) when the port is closed; waits up to 60 s.
ensure_server() {
  local name=$1 port=$2 pkg=$3
  if port_open "$port"; then return 0; fi
  if [ ! -x "/etc/init.d/$name" ]; then
    echo "==> installing $pkg"
    apt_install "$pkg"
  fi
  if ! port_open "$port"; then
    echo "==> starting $name"
    $SUDO service "$name" start >/dev/null 2>&1 || $SUDO "/etc/init.d/$name" start >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 300); do
    port_open "$port" && return 0
    sleep 0.2
  done
  echo "$name did not come up on 127.0.0.1:$port" >&2
  return 1
}

# The servers the service broker's tests and `cf dev`'s broker use
# (docs/service-broker.md): MariaDB (:3306), Redis (:6379) and RabbitMQ
# (:5672, with its management API on :15672), installed from Debian when
# missing and started when down; Postgres is ensure_postgres. A fresh
# MariaDB lets root in over TCP without a password only through its
# unix_socket plugin for the OS root user; the tests connect as root over
# TCP, so root's password is set empty once when it is not.
ensure_services() {
  ensure_server mariadb 3306 mariadb-server
  ensure_cmd mysql mariadb-client
  if ! mysql -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    echo "==> letting MariaDB's root in over TCP without a password"
    $SUDO mysql -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('')" >/dev/null 2>&1 || true
  fi
  ensure_server redis-server 6379 redis-server
  ensure_cmd redis-cli redis-tools
  ensure_server rabbitmq-server 5672 rabbitmq-server
  ensure_rabbitmq_management
}

ensure_rabbitmq_management() {
  local plugins
  plugins=$(command -v rabbitmq-plugins || echo /usr/sbin/rabbitmq-plugins)
  [ -x "$plugins" ] || return 0
  if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return 0; fi
  if ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
    if ! $SUDO "$plugins" list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
      echo "==> enabling RabbitMQ's management plugin"
      $SUDO "$plugins" enable rabbitmq_management >/dev/null
    fi
  fi
  for _ in $(seq 1 150); do
    (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null && return 0
    sleep 0.2
  done
  echo "RabbitMQ's management API did not come up on 127.0.0.1:15672" >&2
  return 1
}
