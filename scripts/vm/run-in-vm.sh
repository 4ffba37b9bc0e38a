#!/usr/bin/env bash
# Runs one command as root inside a throw-away qemu virtual machine (KVM when
# the host has hardware virtualization, else emulated: see "boot" below)
# whose only cgroup hierarchy is a pure cgroup v2 (used by
# crates/dea/tests/cgroup_v2_vm.rs to test the DEA's cgroup v2 code on a host
# that is cgroup v1). Needs root; builds everything in a temp dir under
# $TMPDIR and leaves nothing behind (qemu is killed on timeout or signal).
#
#   scripts/vm/run-in-vm.sh [--timeout SECS] [--mem MB] [--cpus N] -- CMD [ARGS...]
#
# The guest boots a Debian kernel (/boot/vmlinuz-<ver> with its modules in
# /lib/modules/<ver>; DEA_VM_KERNEL=<ver> picks one) with a small initramfs
# built here at run time (busybox-static + the virtio/9p modules). Its root
# file system is the host's `/`, shared read-only over virtio-9p; /run, /tmp,
# /var/tmp and /dev/shm are tmpfs. cgroup2 is mounted at
# /sys/fs/cgroup (the kernel boots with cgroup_no_v1=all) with the memory,
# pids, cpu and io controllers enabled at the root. A 512 MB zram swap is
# added when the kernel has zram, so that swap limits matter. Kernel modules
# (bridge, veth, netfilter ...) load from the host's /lib/modules through the
# shared root.
#
# CMD runs in the current directory (as seen on the host) with a plain root
# environment; its output goes to this script's stdout/stderr (merged) and
# this script exits with its exit code. 124: timed out; 125: the VM did not
# boot or did not report (the console log is printed).
#
# Changes to this machine: none. It installs nothing (scripts/lib.sh
# ensure_vm_tools does, for scripts/test.sh) and removes its temp dir and
# qemu on exit; the guest sees the host's root file system read-only.
set -euo pipefail

timeout_s=120
mem_mb=2048
cpus=2
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_s="$2"; shift 2 ;;
    --mem) mem_mb="$2"; shift 2 ;;
    --cpus) cpus="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "run-in-vm: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: $0 [--timeout SECS] [--mem MB] [--cpus N] -- CMD [ARGS...]" >&2
  exit 2
fi

die() { echo "run-in-vm: $*" >&2; exit 125; }

[ "$(id -u)" -eq 0 ] || die "needs root (the guest's root file system is the host's, read as root)"
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || die "qemu-system-x86_64 missing (scripts/lib.sh ensure_vm_tools installs it)"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
  if [ -x "$b" ] && [[ "$(LC_ALL=C ldd "$b" 2>&1 || true)" == *"not a dynamic"* ]]; then
    busybox="$b"
    break
  fi
done
[ -n "$busybox" ] || die "a static busybox is missing (apt-get install busybox-static)"
command -v cpio >/dev/null || die "cpio missing"

# The newest Debian kernel whose modules are installed.
kver="${DEA_VM_KERNEL:-}"
if [ -z "$kver" ]; then
  for k in $(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -rV); do
    if [ -f "/lib/modules/$k/modules.dep" ]; then kver="$k"; break; fi
  done
fi
[ -n "$kver" ] && [ -f "/boot/vmlinuz-$kver" ] && [ -f "/lib/modules/$kver/modules.dep" ] \
  || die "no kernel with modules under /boot and /lib/modules (apt-get install linux-image-amd64)"
moddir="/lib/modules/$kver"

work=$(mktemp -d "${TMPDIR:-/tmp}/run-in-vm.XXXXXX")
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ]; then kill -KILL "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- initramfs ------------------------------------------------------------
ird="$work/initramfs"
share="$work/share"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules} "$share"
chmod 0755 "$share"
cp "$busybox" "$ird/bin/busybox"

# Modules (with their dependencies, in load order) to mount the 9p root.
declare -A seen=()
order=()
add_mod() { # $1: path relative to $moddir, as in modules.dep
  local m="$1" line deps d
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  line=$(grep -m1 "^$m:" "$moddir/modules.dep" || true)
  deps="${line#*:}"
  for d in $deps; do add_mod "$d"; done
  order+=("$m")
}
for name in virtio_pci 9pnet_virtio 9p; do
  line=$(grep -m1 -E "/${name}\.ko(\.(xz|zst|gz))?:" "$moddir/modules.dep" || true)
  if [ -n "$line" ]; then
    add_mod "${line%%:*}"
  elif ! grep -qE "/${name}\.ko" "$moddir/modules.builtin" 2>/dev/null; then
    die "kernel $kver has no module $name"
  fi
done
: > "$ird/modules/order"
for m in "${order[@]}"; do
  base=$(basename "$m")
  case "$m" in
    *.ko.xz) xz -dc "$moddir/$m" > "$ird/modules/${base%.xz}"; base="${base%.xz}" ;;
    *.ko.zst) zstd -qdc "$moddir/$m" > "$ird/modules/${base%.zst}"; base="${base%.zst}" ;;
    *.ko.gz) gzip -dc "$moddir/$m" > "$ird/modules/${base%.gz}"; base="${base%.gz}" ;;
    *) cp "$moddir/$m" "$ird/modules/$base" ;;
  esac
  echo "$base" >> "$ird/modules/order"
done

# Stage 1 (initramfs): modules, the 9p root, tmpfs and cgroup2 mounts, then
# switch_root to stage 2 (in the shared directory).
cat > "$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
fail() { echo "vm-init: $*" > /dev/ttyS0; echo o > /proc/sysrq-trigger; }
while read -r m; do
  /bin/busybox insmod "/modules/$m" || fail "insmod $m"
done < /modules/order
R=/newroot
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R \
  || fail "cannot mount the host root"
/bin/busybox mount -t proc proc $R/proc
/bin/busybox mount -t sysfs sys $R/sys
/bin/busybox mount -t devtmpfs dev $R/dev
/bin/busybox mkdir -p $R/dev/pts $R/dev/shm
/bin/busybox mount -t devpts devpts $R/dev/pts
/bin/busybox mount -t tmpfs -o mode=1777 shm $R/dev/shm
/bin/busybox mount -t tmpfs -o mode=0755 run $R/run
# The host's /tmp and /var/tmp are covered by tmpfs, but the trees the
# command comes from (a checkout under /tmp, say) stay visible: each path in
# /keep is bound back from a view of the host root taken before.
/bin/busybox mkdir -p /hostview
/bin/busybox mount -o bind $R /hostview || fail "cannot bind the host root"
for d in /tmp /var/tmp; do
  [ -d "$R$d" ] && /bin/busybox mount -t tmpfs -o mode=1777 tmp "$R$d"
done
while read -r p; do
  [ -n "$p" ] || continue
  /bin/busybox mkdir -p "$R$p" && /bin/busybox mount -o bind "/hostview$p" "$R$p" \
    || fail "cannot keep $p visible"
done < /keep
/bin/busybox umount /hostview
/bin/busybox mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "no cgroup2"
/bin/busybox mkdir -p $R/run/vm-share
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share $R/run/vm-share \
  || fail "cannot mount the shared directory"
/bin/busybox umount /proc /sys /dev 2>/dev/null
exec /bin/busybox switch_root $R /bin/sh /run/vm-share/stage2.sh
fail "switch_root failed"
EOF
chmod 0755 "$ird/init"
# Host trees under /tmp or /var/tmp that the guest must still see: the top
# directory (below /tmp or /var/tmp) of the working directory and of the
# command, e.g. /tmp/checkout for /tmp/checkout/target/debug/deps/test-….
: > "$ird/keep"
for p in "$PWD" "$@"; do
  case "$p" in
    /tmp/?*|/var/tmp/?*)
      top=$(printf '%s\n' "$p" | cut -d/ -f1-3)
      [ "${p#/var/tmp/}" != "$p" ] && top=$(printf '%s\n' "$p" | cut -d/ -f1-4)
      [ -d "$top" ] && ! grep -qxF "$top" "$ird/keep" && printf '%s\n' "$top" >> "$ird/keep"
      ;;
  esac
done
ln -s busybox "$ird/bin/sh"
(cd "$ird" && find . -print0 | cpio --null -o -H newc --quiet) > "$work/initramfs.cpio"

# Stage 2 (PID 1 on the host's root): controllers, swap, loopback, the
# command; then power off.
{
  echo '#!/bin/sh'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb'
  echo 'S=/run/vm-share'
  cat <<'EOF'
for c in memory pids cpu io; do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo "vm: controller $c unavailable" >> $S/setup.log
done
if modprobe zram num_devices=1 2>>$S/setup.log && [ -e /sys/block/zram0/disksize ]; then
  echo 512M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null 2>>$S/setup.log \
    && swapon /dev/zram0 2>>$S/setup.log || echo "vm: no zram swap" >> $S/setup.log
fi
ip link set lo up 2>>$S/setup.log
echo "booted after $(cut -d" " -f1 /proc/uptime)s" > $S/booted
EOF
  printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
  printf '('
  printf ' %q' "$@"
  printf ') > $S/output 2>&1 < /dev/null\n'
  cat <<'EOF'
echo $? > $S/rc.tmp && mv $S/rc.tmp $S/rc
sync
echo o > /proc/sysrq-trigger
sleep 10
EOF
} > "$share/stage2.sh"

# --- boot ---------------------------------------------------------------
console="$work/console.log"
start=$(date +%s)
# KVM needs hardware virtualization (kvm_intel/kvm_amd): a PVM-only /dev/kvm
# (kvm_pvm, as on nested sandboxes) runs only PVM-enabled guest kernels, and a
# stock Debian kernel hangs there; then qemu emulates the CPU (TCG).
mode="${DEA_VM_ACCEL:-auto}"
if [ "$mode" = auto ]; then
  mode=tcg
  if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then mode=kvm; fi
fi
case "$mode" in
  kvm) accel=(-machine q35,accel=kvm -cpu host) ;;
  tcg) accel=(-machine q35 -accel tcg,thread=multi -cpu max) ;;
  *) die "DEA_VM_ACCEL must be auto, kvm or tcg" ;;
esac
"$qemu" "${accel[@]}" -m "$mem_mb" -smp "$cpus" \
  -nodefaults -no-user-config -display none -no-reboot \
  -serial "file:$console" \
  -kernel "/boot/vmlinuz-$kver" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init cgroup_no_v1=all random.trust_cpu=on mitigations=off" \
  -fsdev local,id=root,path=/,security_model=passthrough,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
  -fsdev local,id=share,path="$share",security_model=passthrough,multidevs=remap \
  -device virtio-9p-pci,fsdev=share,mount_tag=share \
  -device virtio-rng-pci \
  -nic none </dev/null >"$work/qemu.log" 2>&1 &
qemu_pid=$!

timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ $(( $(date +%s) - start )) -ge "$timeout_s" ]; then
    timed_out=1
    kill -KILL "$qemu_pid" 2>/dev/null || true
    break
  fi
  sleep 0.2
done
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""
elapsed=$(( $(date +%s) - start ))

[ -f "$share/output" ] && cat "$share/output"
if [ -s "$share/setup.log" ]; then sed 's/^/[vm setup] /' "$share/setup.log" >&2; fi
if [ "$timed_out" -eq 1 ]; then
  echo "run-in-vm: timed out after ${timeout_s}s (kernel $kver); console:" >&2
  tail -n 40 "$console" >&2 || true
  exit 124
fi
if [ ! -f "$share/rc" ]; then
  echo "run-in-vm: the VM stopped without reporting (kernel $kver, ${elapsed}s); qemu and console:" >&2
  tail -n 20 "$work/qemu.log" >&2 || true
  tail -n 40 "$console" >&2 || true
  exit 125
fi
echo "run-in-vm: kernel $kver ($mode), $(cat "$share/booted" 2>/dev/null), ${elapsed}s in all, exit $(cat "$share/rc")" >&2
exit "$(cat "$share/rc")"
