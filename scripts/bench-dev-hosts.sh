#!/usr/bin/env bash
# Benchmark (issue 17): `cf dev start --hosts N` from nothing until the API
# answers through the load balancer (N network namespaces, their agents,
# HAProxy, the deployer's first deploy of the whole platform on a fresh
# database), and `cf dev stop` removing all of it; the peer, measured in
# the same run, in turn: the single-host `cf dev start` and `cf dev stop`.
# Prints each run, the medians and the ratios.
#
# Usage (root): scripts/bench-dev-hosts.sh [RUNS (3)] [HOSTS (3)]
# PROFILE=debug measures the debug build (faster to build).
#
# Changes to this machine: Debian packages the platform runs with, when
# missing (scripts/lib.sh ensure_runtime, ensure_build, ensure_postgres);
# target/<profile> in the checkout. While it runs: the simulated hosts
# (bridge plab<N>, namespaces, iptables rules commented PAAS-lab), the
# single-host platform's processes and containers, a Postgres database per
# run (dropped), a temp dir; all removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
runs="${1:-3}"
hosts="${2:-3}"
if [ "$(id -u)" != 0 ]; then
  echo "bench-dev-hosts: simulated hosts need root" >&2
  exit 2
fi
ensure_runtime
ensure_build
ensure_postgres
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release --workspace --bins
else
  cargo build --workspace --bins
fi
cf="$PWD/target/$profile/cf"
work="$(mktemp -d /tmp/bench-dev-hosts.XXXXXX)"
export CF_HOME="$work/home"
mkdir -p "$CF_HOME"
db=""
cleanup() {
  "$cf" dev stop --dir "$work/hosts" >/dev/null 2>&1 || true
  "$cf" dev stop --dir "$work/single" >/dev/null 2>&1 || true
  [ -n "$db" ] && psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/hs" >"$work/hd" >"$work/ss" >"$work/sd"
echo "run  hosts-start  hosts-stop  single-start  single-stop   (seconds)"
for i in $(seq "$runs"); do
  db="bench_dev_hosts_$$_$i"
  port="$(free_port)"
  t0="$(now)"
  "$cf" dev start --hosts "$hosts" --dir "$work/hosts" --router-port "$port" \
    --database-url "postgres://postgres@127.0.0.1:5432/$db" >"$work/hosts.log" 2>&1 ||
    { cat "$work/hosts.log" >&2; exit 1; }
  t1="$(now)"
  "$cf" dev stop --dir "$work/hosts" >/dev/null
  t2="$(now)"
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  db=""
  rm -rf "$work/hosts"
  port="$(free_port)"
  t3="$(now)"
  "$cf" dev start --dir "$work/single" --router-port "$port" >"$work/single.log" 2>&1 ||
    { cat "$work/single.log" >&2; exit 1; }
  t4="$(now)"
  "$cf" dev stop --dir "$work/single" >/dev/null
  t5="$(now)"
  rm -rf "$work/single"
  hs="$(secs "$t0" "$t1")" hd="$(secs "$t1" "$t2")" ss="$(secs "$t3" "$t4")" sd="$(secs "$t4" "$t5")"
  echo "$hs" >>"$work/hs"; echo "$hd" >>"$work/hd"; echo "$ss" >>"$work/ss"; echo "$sd" >>"$work/sd"
  printf '%3s  %11s  %10s  %12s  %11s\n' "$i" "$hs" "$hd" "$ss" "$sd"
done
hs="$(median <"$work/hs")" hd="$(median <"$work/hd")" ss="$(median <"$work/ss")" sd="$(median <"$work/sd")"
printf 'median  %s hosts: start %s s, stop %s s; one host: start %s s, stop %s s\n' "$hosts" "$hs" "$hd" "$ss" "$sd"
awk -v a="$hs" -v b="$ss" -v c="$hd" -v d="$sd" \
  'BEGIN { printf "ratio   start %.2fx, stop %.2fx (simulated hosts / one host)\n", a / b, c / d }'
