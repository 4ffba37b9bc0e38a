# Shared helpers for scripts/setup.sh and scripts/test.sh (Debian).
# shellcheck shell=bash

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
  # The java buildpack runs apps with the host's JDK; the tests build a jar
  # (javac, jar).
  ensure_cmd javac default-jdk-headless
  ensure_cmd jar default-jdk-headless
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

# A Debian kernel under /boot whose modules are installed.
have_vm_kernel() {
  local k
  for k in /boot/vmlinuz-*; do
    [ -f "$k" ] && [ -f "/lib/modules/${k#/boot/vmlinuz-}/modules.dep" ] && return 0
  done
  return 1
}

# What the cgroup v2 VM test (crates/dea/tests/cgroup_v2_vm.rs, through
# scripts/vm/run-in-vm.sh) needs: qemu, a Debian kernel with its modules, a
# static busybox, cpio and kmod. Root only (the test is skipped otherwise),
# and not with DEA_SKIP_VM_TESTS=1.
ensure_vm_tools() {
  if [ "$(id -u)" -ne 0 ] || [ "${DEA_SKIP_VM_TESTS:-}" = 1 ]; then return 0; fi
  local pkgs=()
  command -v qemu-system-x86_64 >/dev/null 2>&1 || pkgs+=(qemu-system-x86)
  dpkg -s busybox-static >/dev/null 2>&1 || pkgs+=(busybox-static)
  command -v cpio >/dev/null 2>&1 || pkgs+=(cpio)
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
