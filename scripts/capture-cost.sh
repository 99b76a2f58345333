#!/usr/bin/env bash
# What `netmon capture` costs, with the filter evaluated in the kernel and in user space:
# loopback TCP throughput in a throwaway namespace, interleaved rounds of
#   baseline | capture -f 'udp.port == 9' (kernel pre-filter: nothing copied)
#            | capture -f 'pid == 1'     (user-space filter: every packet copied, then dropped)
# and netmon's CPU seconds per GB moved. Prints medians and ratios. Run as root.
#   usage: scripts/capture-cost.sh [ROUNDS=3] [SECONDS=4] [NETMON=target/release/netmon]
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-4}
NETMON=$(realpath "${3:-target/release/netmon}")
NS=nmcapcost-$$
command -v iperf3 >/dev/null || { echo "iperf3 missing: run scripts/setup.sh" >&2; exit 1; }
[ -x "$NETMON" ] || { echo "$NETMON missing: run cargo xtask build" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
# Started through ip directly (not the in_ns function): $! must be iperf3 itself, or cleanup
# would kill a subshell and leave the server running.
ip netns exec "$NS" iperf3 -s -B 127.0.0.1 -p 5301 >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

run_iperf() { # prints "Gbit/s bytes"
  in_ns iperf3 -c 127.0.0.1 -p 5301 -t "$SECS" -J 2>/dev/null |
    python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]["sum_received"]; print("%.2f %d" % (e["bits_per_second"]/1e9, e["bytes"]))'
}
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; } # utime+stime, USER_HZ=100

declare -A gbps cpu_gb
for r in $(seq "$ROUNDS"); do
  read -r g _ < <(run_iperf); gbps[base]+="$g "
  for mode in kernel user; do
    if [ "$mode" = kernel ]; then f='udp.port == 9'; else f='pid == 1'; fi
    ip netns exec "$NS" "$NETMON" capture -i lo --quiet -f "$f" >/dev/null 2>&1 &
    nm=$!; pids+=("$nm")
    sleep 1.5   # attached
    c0=$(cpu_s "$nm")
    read -r g bytes < <(run_iperf)
    c1=$(cpu_s "$nm")
    kill -INT "$nm"; wait "$nm" 2>/dev/null || true
    gbps[$mode]+="$g "
    cpu_gb[$mode]+="$(python3 -c "print('%.3f' % (($c1-$c0)/($bytes/1e9)))") "
  done
  echo "after round $r (Gbit/s): baseline ${gbps[base]}| kernel filter ${gbps[kernel]}| user filter ${gbps[user]}" >&2
done

median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${gbps[base]}"); mk=$(median "${gbps[kernel]}"); mu=$(median "${gbps[user]}")
ck=$(median "${cpu_gb[kernel]}"); cu=$(median "${cpu_gb[user]}")
echo "| loopback TCP, ${ROUNDS}x${SECS}s | median Gbit/s | ratio to baseline | netmon CPU s/GB |"
echo "|---|---|---|---|"
echo "| no capture | $mb | 1.000 | - |"
echo "| capture, filter in the kernel | $mk | $(python3 -c "print('%.3f' % ($mk/$mb))") | $ck |"
echo "| capture, filter in user space | $mu | $(python3 -c "print('%.3f' % ($mu/$mb))") | $cu |"
