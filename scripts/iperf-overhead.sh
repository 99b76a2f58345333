#!/usr/bin/env bash
# Loopback TCP throughput with and without netmon attached, interleaved in one run so both see
# the same machine. Prints the median of each and their ratio.
#   usage: scripts/iperf-overhead.sh [ROUNDS=3] [SECONDS=5] [NETMON=target/release/netmon]
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-5}
NETMON=${3:-target/release/netmon}
PORT=${IPERF_PORT:-5299}
command -v iperf3 >/dev/null || { echo "iperf3 missing: apt-get install iperf3" >&2; exit 1; }
[ -x "$NETMON" ] || { echo "$NETMON missing: run cargo xtask build" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

iperf3 -s -B 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

gbps() { # one client run, prints Gbit/s received
  iperf3 -c 127.0.0.1 -p "$PORT" -t "$SECS" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}

base=(); with=()
for r in $(seq "$ROUNDS"); do
  base+=("$(gbps)")
  "$NETMON" run --json --interval 1 >/dev/null 2>&1 &
  nm=$!; pids+=("$nm")
  sleep 1.5   # attached once its first interval starts
  with+=("$(gbps)")
  kill -INT "$nm"; wait "$nm" 2>/dev/null || true
  echo "round $r: baseline ${base[-1]} Gbit/s, with netmon ${with[-1]} Gbit/s" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${base[@]}"); mw=$(median "${with[@]}")
echo "| loopback TCP, ${ROUNDS}x${SECS}s | median Gbit/s |"
echo "|---|---|"
echo "| baseline | $mb |"
echo "| with netmon | $mw |"
echo "| ratio | $(python3 -c "print('%.3f' % ($mw/$mb))") |"
