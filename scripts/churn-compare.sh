#!/usr/bin/env bash
# Two (or more) netmon binaries side by side under the same connection churn, interleaved
# round by round, so a change to the data path is judged against its predecessor in one run:
#
#   sudo scripts/churn-compare.sh [-s SECS] [-r RATE] [-n ROUNDS] NAME=PATH [NAME=PATH ...]
#   sudo scripts/churn-compare.sh -s 20 before=/tmp/old/netmon after=target/release/netmon
#
# Each round runs loadgen (RATE new TCP connections/s of 1000 bytes from 2 client processes to
# one server, for SECS) in a network namespace of its own: once with no monitor, then under
# `netmon serve` of each binary. Per run: netmon's user-space CPU per connection (utime+stime
# over the load only), its VmHWM, records it lost (netmon_events_lost_total), whether the two
# clients' and the server's payload bytes are exact (from /api/v1/processes), and loadgen's
# median connection latency. Everything it starts and the namespace are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=10 RATE=20000 ROUNDS=1
while getopts "s:r:n:" o; do
  case $o in
    s) SECS=$OPTARG ;; r) RATE=$OPTARG ;; n) ROUNDS=$OPTARG ;;
    *) echo "usage: $0 [-s SECS] [-r RATE] [-n ROUNDS] NAME=PATH ..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-s SECS] [-r RATE] [-n ROUNDS] NAME=PATH ..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "churn-compare: needs root (BPF, namespaces)" >&2; exit 1; }
for spec in "$@"; do
  bin=${spec#*=}
  [ -x "$bin" ] || { echo "churn-compare: $bin is not an executable" >&2; exit 2; }
done
LOADGEN=${LOADGEN:-target/release/loadgen}
[ -x "$LOADGEN" ] || cargo build --release -q -p netmon-tests --bin loadgen
NS="nmcmp-$$"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns delete "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up

# One load: prints loadgen's JSON line to $WORK/conn.json.
load() {
  ip netns exec "$NS" "$LOADGEN" connect "127.0.0.1:$PORT" "$RATE" "$SECS" 1000 2 > "$WORK/conn.json"
}

ip netns exec "$NS" "$LOADGEN" serve 0 4 1000 > "$WORK/serve.out" < /dev/null &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/serve.out" ] && break; sleep 0.1; done
SERVER=$(python3 -c "import json;print(json.loads(open('$WORK/serve.out').readline())['ready'])")
PORT=$(python3 -c "import json;print(json.loads(open('$WORK/serve.out').readline())['port'])")

echo "| round | netmon | conn/s | CPU µs/conn | VmHWM MiB | lost | exact (clients, server) | p50 latency µs |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
  load
  python3 - "$WORK/conn.json" "$round" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | none | {c['rate']/1000:.1f}k | – | – | – | – | {c['latency_us']['p50']:.1f} |")
PY
  for spec in "$@"; do
    name=${spec%%=*} bin=${spec#*=}
    "$bin" serve --listen 127.0.0.1:0 --interval 1 > /dev/null 2> "$WORK/nm.err" &
    NM=$!
    PIDS+=($NM)
    addr=""
    for _ in $(seq 100); do
      addr=$(sed -n 's|.*http://\(.*\)/metrics|\1|p' "$WORK/nm.err" | head -1)
      [ -n "$addr" ] && break
      sleep 0.1
    done
    [ -n "$addr" ] || { echo "churn-compare: $name did not start: $(cat "$WORK/nm.err")" >&2; exit 1; }
    sleep 1
    cpu0=$(awk '{print $14+$15}' "/proc/$NM/stat")
    load
    cpu1=$(awk '{print $14+$15}' "/proc/$NM/stat")
    sleep 2.5   # a couple of intervals: the last counts reach the endpoint
    hwm=$(awk '/VmHWM/{print $2}' "/proc/$NM/status")
    curl -s "http://$addr/api/v1/processes" > "$WORK/api.json"
    curl -s "http://$addr/metrics" > "$WORK/metrics.txt"
    kill -INT "$NM"; wait "$NM" 2>/dev/null || true
    python3 - "$WORK" "$round" "$name" "$cpu0" "$cpu1" "$hwm" "$SERVER" <<'PY'
import json, sys
work, rnd, name, cpu0, cpu1, hwm, server = sys.argv[1:]
c = json.load(open(f"{work}/conn.json"))
api = json.load(open(f"{work}/api.json"))
procs = {p["pid"]: p for p in (api["processes"] if isinstance(api, dict) else api)}
tick = 100  # USER_HZ
us = (int(cpu1) - int(cpu0)) * 1e6 / tick / max(c["connections"], 1)
lost = sum(float(l.rsplit(" ", 1)[1]) for l in open(f"{work}/metrics.txt")
           if l.startswith("netmon_events_lost_total"))
def exact(pid, tx, rx):
    p = procs.get(pid, {})
    return p.get("tx_bytes") == tx and p.get("rx_bytes") == rx
clients = sum(exact(x["pid"], x["sent"], x["received"]) for x in c["clients"])
sent = sum(x["sent"] for x in c["clients"]); recv = sum(x["received"] for x in c["clients"])
# The server lives across runs; a netmon started for this run counts this run's bytes only.
p = procs.get(int(server), {})
srv = (p.get("rx_bytes"), p.get("tx_bytes")) == (sent, recv)
print(f"| {rnd} | {name} | {c['rate']/1000:.1f}k | {us:.2f} | {int(hwm)/1024:.1f} | {lost:.0f} | "
      f"{clients}/{len(c['clients'])}, {'yes' if srv else 'no'} | {c['latency_us']['p50']:.1f} |")
PY
  done
done
