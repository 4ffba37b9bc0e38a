# Shared helpers for scripts/setup.sh and scripts/test.sh (Debian).
# shellcheck shell=bash

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# ensure_cmd COMMAND PACKAGE: installs PACKAGE when COMMAND is missing.
ensure_cmd() {
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
    echo "==> installing $2"
    apt_install "$2"
  fi
}

ensure_base() {
  ensure_cmd nats-server nats-server
  ensure_cmd python3 python3
  ensure_cmd node nodejs
  ensure_cmd curl curl
  ensure_cmd cc gcc
  ensure_cmd pkg-config pkg-config
  ensure_cmd pg_isready postgresql-client
  ensure_cmd openssl openssl
  ensure_cmd wrk wrk
  ensure_cmd nginx nginx
  ensure_cmd iptables iptables
  ensure_cmd ip iproute2
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "==> installing Debian's rust toolchain (cargo); the code needs Rust >= 1.85"
      apt_install cargo rustc
    fi
  fi
}

# A Postgres on 127.0.0.1:5432 with trust auth for user postgres (tests use it).
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
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
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 0.2
  done
  echo "postgres did not come up on 127.0.0.1:5432" >&2
  return 1
}
