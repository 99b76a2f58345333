#!/usr/bin/env bash
# Makes the README's pictures from the real binary: docs/images/tui.png (`netmon run`, the live
# table) and docs/images/report.png (`netmon report` over the history that same run recorded).
#
# It starts loopback traffic of its own (python3 -m http.server on 127.0.0.1, two rate-limited
# curl downloads, a loop of short curl requests and a UDP sender, all bounded by `timeout`), runs netmon in a
# tmux server of its own with a fixed 150x30 window and colours, captures the pane with
# `tmux capture-pane -e -p` and renders it with scripts/ansi2png.py (Pillow and DejaVu Sans Mono).
# Everything it starts is stopped and its temporary directory removed on exit, also on failure
# or Ctrl-C. Idempotent: a second run overwrites the two files.
#
# Usage (as root, after `cargo xtask build`): scripts/screenshots.sh [OUTDIR]   (default docs/images)
# Installs with apt-get what it lacks: tmux, python3-pil, fonts-dejavu-core.
set -euo pipefail
say() { printf 'screenshots: %s\n' "$*" >&2; }
here=$(cd "$(dirname "$0")/.." && pwd)
netmon=${NETMON_BIN:-$here/target/release/netmon}
outdir=${1:-$here/docs/images}
cols=150
rows=30
secs=14          # how long `netmon run` records
shot_at=10       # when the table is captured
sock=netmon-shots-$$
tmp=$(mktemp -d /tmp/netmon-shots.XXXXXX)
pids=()

cleanup() {
    tmux -L "$sock" kill-server 2>/dev/null || true
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$sock"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { say "netmon needs root: run it with sudo"; exit 1; }
[ -x "$netmon" ] || { say "$netmon missing: run cargo xtask build first"; exit 1; }

need=()
command -v tmux >/dev/null || need+=(tmux)
command -v curl >/dev/null || need+=(curl)
/usr/bin/python3 -c 'import PIL' 2>/dev/null || need+=(python3-pil)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages to render the pictures: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
mkdir -p "$outdir"

# Traffic on 127.0.0.1 only, each piece bounded in time even if this script is killed hard.
mkdir "$tmp/www"
head -c 64M /dev/zero >"$tmp/www/big.bin"
head -c 200K /dev/urandom >"$tmp/www/page.bin"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 60 /usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 --directory "$tmp/www" \
    >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

# netmon first, so that it sees the clients' connections open.
tmux -L "$sock" -f /dev/null new-session -d -s tui -x "$cols" -y "$rows" \
    "TERM=xterm-256color $netmon run --record --db $tmp/history.db --duration $secs; touch $tmp/ended; sleep 30"
tmux -L "$sock" set-option -g status off
sleep 2
timeout 40 curl -s -o /dev/null --limit-rate 3M "http://127.0.0.1:$port/big.bin" &
pids+=($!)
timeout 40 curl -s -o /dev/null --limit-rate 700K "http://127.0.0.1:$port/big.bin" &
pids+=($!)
timeout 40 sh -c "while :; do curl -s -o /dev/null http://127.0.0.1:$port/page.bin; sleep 1.5; done" &
pids+=($!)
timeout 40 /usr/bin/python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    s.sendto(b'x' * 1200, ('127.0.0.1', 9))
    time.sleep(0.002)
" 2>/dev/null &
pids+=($!)

sleep "$shot_at"
tmux -L "$sock" capture-pane -t tui -e -p >"$tmp/tui.txt"
/usr/bin/python3 "$here/scripts/ansi2png.py" "$tmp/tui.txt" "$outdir/tui.png" \
    --cols "$cols" --rows "$rows" --title "sudo netmon run"
say "wrote $outdir/tui.png"

# netmon ends after --duration, writing the connections still open to the store.
for _ in $(seq 100); do [ -e "$tmp/ended" ] && break; sleep 0.2; done
[ -e "$tmp/ended" ] || { say "netmon run did not end after --duration $secs"; exit 1; }
# Shown as typed at a prompt, with the two groupings people use first.
cat >"$tmp/report.sh" <<EOS
for by in process port; do
    echo "\$ netmon report --since 1h --by \$by"
    $netmon report --db $tmp/history.db --since 1h --by "\$by"
    echo
done
sleep 30
EOS
tmux -L "$sock" new-session -d -s report -x "$cols" -y "$rows" "TERM=xterm-256color sh $tmp/report.sh"
sleep 1.5
tmux -L "$sock" capture-pane -t report -e -p >"$tmp/report.txt"
/usr/bin/python3 "$here/scripts/ansi2png.py" "$tmp/report.txt" "$outdir/report.png" \
    --cols "$cols" --rows "$rows" --trim \
    --title "netmon report"
say "wrote $outdir/report.png"
