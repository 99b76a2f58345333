#!/usr/bin/env bash
# `netmon capture` on a live veth pair, end to end, in two namespaces this script creates and
# removes (also on failure or Ctrl-C): hand-built frames of every protocol netmon decodes
# (tests/scripts/craft.py) and a TCP transfer between two python3 processes cross vA -> vB;
# netmon, in B, prints one line per packet with its process and writes a pcapng file, which
# tshark then reads back with the process comments.
#
# Usage (as root, after `cargo xtask build`): scripts/capture-demo.sh [OUT.pcapng]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
netmon=${NETMON_BIN:-$here/target/release/netmon}
out=${1:-/tmp/netmon-demo.pcapng}
a=nmdemo-a-$$
b=nmdemo-b-$$
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

[ -x "$netmon" ] || { echo "capture-demo: $netmon missing: run cargo xtask build" >&2; exit 1; }
ip netns add "$a"
ip netns add "$b"
ip -n "$a" link add vA type veth peer name vB netns "$b"
ip -n "$a" addr add 10.77.0.1/24 dev vA
ip -n "$b" addr add 10.77.0.2/24 dev vB
ip -n "$a" addr add fd77::1/64 dev vA nodad
ip -n "$b" addr add fd77::2/64 dev vB nodad
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set vA up
ip -n "$b" link set vB up

ip netns exec "$b" "$netmon" capture -i vB --write "$out" --duration 8 &
pids+=($!)
sleep 2

mac() { ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
ip netns exec "$a" python3 "$here/tests/scripts/craft.py" vA "$(mac "$a" vA)" "$(mac "$b" vB)" >/dev/null

# A short TCP exchange: a server in B and a client in A, 3000 bytes each way.
ip netns exec "$b" timeout 5 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.2", 8080)); s.listen(1)
c, _ = s.accept(); n = 0
while n < 3000: n += len(c.recv(65536))
c.sendall(b"y" * 3000); c.close()' &
pids+=($!)
sleep 0.5
ip netns exec "$a" timeout 5 python3 -c '
import socket
c = socket.create_connection(("10.77.0.2", 8080)); c.sendall(b"x" * 3000); n = 0
while n < 3000:
    d = c.recv(65536)
    if not d: break
    n += len(d)
c.close()'
wait "${pids[0]}" || true
echo
echo "== packets tshark reads from $out: $(tshark -r "$out" 2>/dev/null | wc -l)"
echo "== its TCP packets, with the comment netmon wrote (the process on this host's end)"
tshark -r "$out" -Y tcp -T fields -e frame.number -e frame.comment -e _ws.col.Info 2>/dev/null
