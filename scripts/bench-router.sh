#!/usr/bin/env bash
# Router benchmark: the same small backend and the same load tool (wrk) at
# several concurrencies, measured (a) directly, (b) through nginx as a reverse
# proxy with a keepalive upstream, (c) through the router (release build)
# with the route registered over NATS; then the router again with 100,000
# routes registered. Prints requests/s, p50, p99 and the ratios.
#
# CPU layout on this 2-core machine (fair to both proxies): the proxy under
# test (nginx with worker_processes 1, or the router with worker_threads 1,
# its access-log thread and its nats-server) is pinned to CPU 1; wrk (1
# thread) and the backend (nginx, 1 worker, `return 200`) share CPU 0. Both
# proxies write an access log (nginx buffered to a file, the router to stdout
# redirected to a file); the router also publishes every line on NATS, as in
# production. Both keep backend connections alive, and both send the app the
# same headers (nginx is given the router's X-Forwarded-Host,
# X-Vcap-Request-Id and X-Cf-InstanceID), so the backend parses the same
# request from either.
#
# wrk and the backend run as SCHED_BATCH: on the CPU they share, a process
# woken by the proxy would otherwise preempt the other one at once, and the
# number of those switches (costly on this VM) depends on the proxy's timing
# rather than its work: measured with plain scheduling, wrk was preempted
# 0.22 times per request behind the router and 0.04 behind nginx, and the
# backend's CPU per request rose by a third. With SCHED_BATCH both proxies
# see the same ~0.07 switches per request. It applies to every set-up,
# direct ones included.
#
# CPU 0 (wrk and the backend: the instruments) is kept from halting while
# the script runs (its deeper idle states are disabled through cpuidle's
# sysfs and restored on exit; root only): on this VM a halted vCPU takes
# from tens of microseconds to milliseconds to wake, which the instruments
# would add to every proxied request. CPU 1, where the proxies run, keeps
# the machine's default idle behaviour: how a proxy waits is part of what is
# measured (the router busy-polls for `busy_poll_us` after activity, nginx
# sleeps in epoll_wait).
#
# A fifth set-up, the backend alone pinned to CPU 1 and measured directly,
# gives the p99 floor of a request that wakes the other CPU (which the
# proxies' p99 cannot go below on this machine).
#
# Latency pass, one CPU: nginx and a third router (busy_poll_us = 0: polling
# on a shared CPU would only take time from the others) pinned to CPU 0
# with wrk and the backend, all SCHED_BATCH. No request crosses CPUs, so the
# p99 over direct is what the proxy itself adds, without this VM's vCPU
# wake-up tail (the floor above, 1-2 ms). The p99 target is judged here.
#
# The set-ups run side by side (each proxy idle while another is
# measured) and are measured in turn, REPEAT times per concurrency; the run
# with the median requests/s is reported, so that noise from other work on
# the machine hits all of them alike. On a shared machine run it under
# `flock /tmp/paas-bench.lock` and look at the load averages it prints.
#
# Environment: DURATION per run (default 5s), REPEAT (default 5),
# CONCURRENCY (default "1 4 16 64"), ROUTES (default 100000).
#
# Changes to this machine: Debian packages when their command is missing:
# wrk, nginx (installing it also starts Debian's nginx service on port 80,
# where the init system runs services), nats-server, python3, curl, gcc,
# and a Rust check (scripts/lib.sh ensure_build); target/release in the
# checkout. While it runs, as root: CPU 0's idle states other than POLL
# disabled in /sys/devices/system/cpu/cpu0/cpuidle/state*/disable (restored
# on exit). Its nginx, nats-server and router processes and its temp dir
# (/tmp/bench-router.*) are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
ensure_cmd wrk wrk
ensure_cmd nginx nginx
ensure_cmd nats-server nats-server
ensure_cmd python3 python3
ensure_cmd curl curl
ensure_build

DURATION=${DURATION:-5s}
REPEAT=${REPEAT:-5}
CONCURRENCY=${CONCURRENCY:-"1 4 16 64"}
ROUTES=${ROUTES:-100000}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)

cargo build --release -p router >&2
ROUTER=$PWD/target/release/router

WORK=$(mktemp -d /tmp/bench-router.XXXXXX)
PIDS=()
# CPU 0's idle states other than polling, disabled for the run (see above).
IDLE_RESTORE=()
if [ -w /sys/devices/system/cpu/cpu0/cpuidle/state0/disable ]; then
  for st in /sys/devices/system/cpu/cpu0/cpuidle/state*; do
    [ "$(cat "$st/name")" = POLL ] && continue
    IDLE_RESTORE+=("$st/disable=$(cat "$st/disable")")
    echo 1 >"$st/disable"
  done
fi
cleanup() {
  for r in "${IDLE_RESTORE[@]}"; do echo "${r#*=}" >"${r%%=*}"; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for conf in "$WORK"/nginx-*.conf; do
    [ -f "$conf" ] && "$NGINX" -c "$conf" -p "$WORK" -s stop 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened" >&2; return 1
}

# SCHED_BATCH for wrk and the backend (see above); plain if chrt is missing.
BATCH=()
if chrt -b 0 true 2>/dev/null; then BATCH=(chrt -b 0); fi

BACKEND_PORT=$(free_port)
PROXY_PORT=$(free_port)
NATS_PORT=$(free_port)
NATS2_PORT=$(free_port)
ROUTER_PORT=$(free_port)
ROUTER2_PORT=$(free_port)

# Backend: nginx answering a small body on every path.
cat >"$WORK/nginx-backend.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 01;
pid $WORK/backend.pid;
error_log $WORK/backend-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$BACKEND_PORT backlog=4096;
    location / { return 200 "hello from the backend\n"; }
  }
}
EOF
"${BATCH[@]}" "$NGINX" -c "$WORK/nginx-backend.conf" -p "$WORK"
wait_port "$BACKEND_PORT"

# The same backend pinned to CPU 1 (where the proxies run), measured
# directly: the latency floor of anything that a request wakes on the other
# CPU (on a VM, a vCPU wake-up), against which the proxies' p99 is judged.
BACKEND1_PORT=$(free_port)
sed -e "s/worker_cpu_affinity 01;/worker_cpu_affinity 10;/" \
    -e "s#pid $WORK/backend.pid;#pid $WORK/backend1.pid;#" \
    -e "s#error_log $WORK/backend-error.log;#error_log $WORK/backend1-error.log;#" \
    -e "s/127.0.0.1:$BACKEND_PORT /127.0.0.1:$BACKEND1_PORT /" \
    "$WORK/nginx-backend.conf" >"$WORK/nginx-backend1.conf"
"${BATCH[@]}" "$NGINX" -c "$WORK/nginx-backend1.conf" -p "$WORK"
wait_port "$BACKEND1_PORT"

run_wrk() { # URL HOST CONNECTIONS -> "rps p50_ms p99_ms"
  "${BATCH[@]}" taskset -c 0 wrk -t1 -c"$3" -d"$DURATION" --latency -H "Host: $2" "$1" 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
errs = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
if not (rps and p50 and p99):
    sys.stderr.write(text); sys.exit(1)
print("%.0f %.3f %.3f %s" % (float(rps.group(1)), ms(*p50.groups()), ms(*p99.groups()), errs.group(1) if errs else "0"))
'
}

LOAD=$(cut -d" " -f1-3 /proc/loadavg)

# (b) nginx as reverse proxy, keepalive upstream.
cat >"$WORK/nginx-proxy.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 10;
pid $WORK/proxy.pid;
error_log $WORK/proxy-error.log;
events { worker_connections 4096; }
http {
  access_log $WORK/proxy-access.log combined buffer=64k flush=1s;
  keepalive_requests 1000000;
  upstream backend {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 256;
  }
  server {
    listen 127.0.0.1:$PROXY_PORT backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Request-Start \$msec;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Vcap-Request-Id \$request_id;
      proxy_set_header X-Cf-InstanceID "bench-0";
      proxy_buffering off;
    }
  }
}
EOF
"$NGINX" -c "$WORK/nginx-proxy.conf" -p "$WORK"
wait_port "$PROXY_PORT"
# The same proxy on CPU 0, for the one-CPU latency pass.
PROXY0_PORT=$(free_port)
sed -e "s/worker_cpu_affinity 10;/worker_cpu_affinity 01;/" \
    -e "s#$WORK/proxy#$WORK/proxy0#g" \
    -e "s/127.0.0.1:$PROXY_PORT /127.0.0.1:$PROXY0_PORT /" \
    "$WORK/nginx-proxy.conf" >"$WORK/nginx-proxy0.conf"
"${BATCH[@]}" "$NGINX" -c "$WORK/nginx-proxy0.conf" -p "$WORK"
wait_port "$PROXY0_PORT"

# (c) the router, one per private nats-server: one with the bench route
# only, one with ROUTES more.
start_router() { # NAME ROUTER_PORT NATS_PORT [CPU [EXTRA_TOML [SCHED...]]]
  local cpu=${4:-1} extra=${5:-}
  local sched=("${@:6}")
  taskset -c "$cpu" "$NATS_SERVER" -a 127.0.0.1 -p "$3" >"$WORK/nats-$1.log" 2>&1 &
  PIDS+=($!)
  wait_port "$3"
  cat >"$WORK/router-$1.toml" <<EOF
listen = "127.0.0.1:$2"
admin_listen = "127.0.0.1:0"
admin_addr_file = "$WORK/router-$1-admin"
nats_url = "nats://127.0.0.1:$3"
worker_threads = 1
prune_threshold_s = 3600
$extra
EOF
  RUST_LOG=warn "${sched[@]}" taskset -c "$cpu" "$ROUTER" --config "$WORK/router-$1.toml" >"$WORK/router-$1-access.log" 2>"$WORK/router-$1.log" &
  PIDS+=($!)
  eval "PID_$1=$!"
  wait_port "$2"
  for _ in $(seq 1 100); do [ -s "$WORK/router-$1-admin" ] && break; sleep 0.05; done
}

# Registers N extra routes plus bench.localhost over NATS (raw protocol),
# then waits until the router's /metrics shows them all.
register_routes() { # NAME NATS_PORT N
  python3 -c '
import json, socket, sys
nats_port, backend_port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", nats_port))
s.recv(4096)  # INFO
buf = [b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"bench\"}\r\n"]
def reg(uri, i):
    p = json.dumps({"host": "127.0.0.1", "port": backend_port, "uris": [uri],
                    "app_id": "bench-app-%d" % i, "instance_id": "bench-%d" % i,
                    "tags": {"component": "bench"}, "stale_threshold_s": 3600}).encode()
    return b"PUB router.register %d\r\n%s\r\n" % (len(p), p)
buf.append(reg("bench.localhost", 0))
for i in range(n):
    buf.append(reg("app-%d.bench.localhost" % i, i + 1))
    if len(buf) > 2000:
        s.sendall(b"".join(buf)); buf = []
buf.append(b"PING\r\n")
s.sendall(b"".join(buf))
data = b""
while b"PONG" not in data:
    data += s.recv(4096)
' "$2" "$BACKEND_PORT" "$3"
  local admin want
  admin=$(cat "$WORK/router-$1-admin")
  want=$(($3 + 1))
  for _ in $(seq 1 600); do
    if curl -fsS "http://$admin/metrics" | grep -qx "router_routes $want"; then return 0; fi
    sleep 0.1
  done
  echo "router $1 never reached $want routes" >&2; return 1
}

start_router one "$ROUTER_PORT" "$NATS_PORT"
start_router many "$ROUTER2_PORT" "$NATS2_PORT"
ROUTER0_PORT=$(free_port)
NATS0_PORT=$(free_port)
start_router cpu0 "$ROUTER0_PORT" "$NATS0_PORT" 0 "busy_poll_us = 0" "${BATCH[@]}"
register_routes cpu0 "$NATS0_PORT" 0
register_routes one "$NATS_PORT" 0
RSS_ONE=$(awk '/VmRSS/ {print $2}' "/proc/$PID_one/status")
T0=$(date +%s.%N)
register_routes many "$NATS2_PORT" "$ROUTES"
T1=$(date +%s.%N)
RSS_MANY=$(awk '/VmRSS/ {print $2}' "/proc/$PID_many/status")

declare -A URL=(
  [direct]="http://127.0.0.1:$BACKEND_PORT/"
  [direct-cpu1]="http://127.0.0.1:$BACKEND1_PORT/"
  [nginx]="http://127.0.0.1:$PROXY_PORT/"
  [router]="http://127.0.0.1:$ROUTER_PORT/"
  [router-many]="http://127.0.0.1:$ROUTER2_PORT/"
  [nginx-cpu0]="http://127.0.0.1:$PROXY0_PORT/"
  [router-cpu0]="http://127.0.0.1:$ROUTER0_PORT/"
)
SETUPS="direct direct-cpu1 nginx router router-many nginx-cpu0 router-cpu0"
for c in $CONCURRENCY; do
  for s in $SETUPS; do
    "${BATCH[@]}" taskset -c 0 wrk -t1 -c"$c" -d1s -H "Host: bench.localhost" "${URL[$s]}" >/dev/null 2>&1 || true
  done
  for r in $(seq 1 "$REPEAT"); do
    for s in $SETUPS; do
      line=$(run_wrk "${URL[$s]}" "bench.localhost" "$c")
      echo "$c $r $s $line" >>"$WORK/runs"
      echo "  c=$c run $r $s: $line" >&2
    done
  done
done
LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)

# Medians over the runs; ratios are medians of the ratios paired within a
# run (the set-ups run back to back, so drift on the machine cancels out).
python3 - "$WORK/runs" "$CONCURRENCY" "$ROUTES" <<PY
import statistics, sys
runs, conc, routes = sys.argv[1], [int(c) for c in sys.argv[2].split()], sys.argv[3]
data = {}
for line in open(runs):
    c, r, s, rps, p50, p99, errs = line.split()
    data[(int(c), int(r), s)] = (float(rps), float(p50), float(p99), int(errs))
reps = sorted({r for (_, r, _) in data})
def med(c, s, i):
    return statistics.median(data[(c, r, s)][i] for r in reps)
def ratio(c, a, b):
    return statistics.median(data[(c, r, a)][0] / data[(c, r, b)][0] for r in reps)
def errs(c, s):
    n = sum(data[(c, r, s)][3] for r in reps)
    return f" ({n} non-2xx!)" if n else ""
def cell(c, s):
    return f"{med(c, s, 0):8.0f} {med(c, s, 1):7.3f} {med(c, s, 2):7.3f}"
top = max(conc)
print()
print("Router benchmark ($(nproc) CPUs, load average before: $LOAD, after: $LOAD_AFTER; "
      "wrk -t1 -d$DURATION, $REPEAT runs, medians; wrk + backend on CPU 0${BATCH:+ as SCHED_BATCH}"
      "${IDLE_RESTORE:+, polling when idle})")
print()
print("Two CPUs: proxies pinned to CPU 1 with one worker (router: busy_poll_us = 50, the default)")
print(f"{'conns':<6} | {'direct rps/p50/p99 ms':<24} | {'nginx rps/p50/p99 ms':<24} | {'router rps/p50/p99 ms':<24} | router/nginx | p99 - direct")
for c in conc:
    print(f"{c:<6} | {cell(c, 'direct')} | {cell(c, 'nginx')} | {cell(c, 'router')} | {ratio(c, 'router', 'nginx'):12.2f} | "
          f"{med(c, 'router', 2) - med(c, 'direct', 2):+7.3f} ms{errs(c, 'router')}")
print()
print("p99 floor on CPU 1: the backend alone pinned to CPU 1, measured directly (a cross-CPU wake-up per request, as behind either proxy):")
for c in conc:
    f99 = med(c, 'direct-cpu1', 2)
    print(f"  c={c:<4} direct on CPU 1 {med(c, 'direct-cpu1', 0):8.0f} rps p50 {med(c, 'direct-cpu1', 1):.3f} p99 {f99:.3f} ms; "
          f"p99 above it: nginx {med(c, 'nginx', 2) - f99:+.3f} ms, router {med(c, 'router', 2) - f99:+.3f} ms")
print()
print(f"Router with {routes} routes registered (a second router, measured right after the first in each run) "
      "(registered and visible in $(calc "$T1 - $T0") s; RSS $RSS_ONE KiB -> $RSS_MANY KiB):")
for c in conc:
    print(f"  c={c:<4} router {med(c, 'router', 0):8.0f} rps -> {med(c, 'router-many', 0):8.0f} rps "
          f"(paired change {100 * (ratio(c, 'router-many', 'router') - 1):+.1f} %), p99 {med(c, 'router', 2):.3f} -> {med(c, 'router-many', 2):.3f} ms")
print()
print("One CPU (latency): nginx and the router (busy_poll_us = 0) pinned to CPU 0 with wrk and the backend, SCHED_BATCH")
print(f"{'conns':<6} | {'direct rps/p50/p99 ms':<24} | {'nginx rps/p50/p99 ms':<24} | {'router rps/p50/p99 ms':<24} | router/nginx | p99 - direct")
for c in conc:
    print(f"{c:<6} | {cell(c, 'direct')} | {cell(c, 'nginx-cpu0')} | {cell(c, 'router-cpu0')} | {ratio(c, 'router-cpu0', 'nginx-cpu0'):12.2f} | "
          f"{med(c, 'router-cpu0', 2) - med(c, 'direct', 2):+7.3f} ms{errs(c, 'router-cpu0')}")
print()
below = [c for c in conc if c != top]
tput = [c for c in conc if ratio(c, 'router', 'nginx') < 1.0]
p99 = [c for c in below if med(c, 'router-cpu0', 2) - med(c, 'direct', 2) > 1.0]
p99_two = [c for c in below if med(c, 'router', 2) - med(c, 'direct', 2) > 1.0]
many = [c for c in conc if abs(ratio(c, 'router-many', 'router') - 1) > 0.05]
yes = lambda bad: "yes" if not bad else "no (c=" + ",".join(map(str, bad)) + ")"
print("Targets:")
print(f"  router/nginx >= 1.0 at every concurrency (two CPUs): {yes(tput)}")
print(f"  router p99 within 1 ms of direct below saturation (c < {top}), one CPU: {yes(p99)}; two CPUs: {yes(p99_two)}")
print(f"  {routes} routes, throughput within 5 %: {yes(many)}")
PY
