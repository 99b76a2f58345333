#!/bin/sh
# One vm-test run: kernel facts, `netmon doctor`, then every root test binary.
# Runs as root inside each guest (started by scripts/vm/init) or on the host (`--kernel host`).
# $SHARE is the shared directory written by `cargo xtask vm-test` (xtask/src/vm.rs):
#   bin/        netmon and the other workspace binaries (NETMON_TEST_BIN_DIR)
#   tests/      the root test binaries
#   cwd/NAME    the package directory test NAME runs in (as under cargo test; the guest mounts
#               the source tree at its host path)
#   test-args   extra arguments for the test binaries, one per line
#   config      shell variables (VM_TIMEOUT, WORKSPACE: the source tree, SMOKE, USB_HOTPLUG: a
#               guest whose host plugs USB devices in when its test asks, see xtask/src/vm/hotplug.rs)
#   out/        results, read back by xtask: facts, doctor.txt/.rc, test-NAME.log/.rc
# In a guest this is busybox sh, which runs its own applets (ip, tc, ...) ahead of $PATH: call
# the host's iproute2 copies as /usr/local/bin/ip etc. here (binaries started by tests find them
# through $PATH as usual).
set -u
# Tests that need tools the guest lacks (python3, prometheus, tmux, ...) skip on seeing this.
# Only the root tests (--ignored) run here: the others do not depend on the kernel and run on
# the host.
export NETMON_VM_GUEST=1
: "${SHARE:?SHARE must point at the shared directory}"
out="$SHARE/out"
mkdir -p "$out"
[ -f "$SHARE/config" ] && . "$SHARE/config"
# The USB hot-plug test runs only where the host drives it (NETMON_VM_GUEST is also set here for
# --kernel host runs).
if [ -n "${USB_HOTPLUG:-}" ]; then export NETMON_VM_USB=1; fi

has() { if [ -e "$1" ]; then echo yes; else echo no; fi; }
{
    echo "kernel=$(uname -r)"
    echo "btf=$(has /sys/kernel/btf/vmlinux)"
    echo "kprobe_pmu=$(has /sys/bus/event_source/devices/kprobe/type)"
    echo "tp_sock_send_length=$(has /sys/kernel/tracing/events/sock/sock_send_length)"
    echo "cgroup2=$(awk '$3 == "cgroup2" { print $2; found = 1; exit } END { if (!found) print "no" }' /proc/mounts)"
} >"$out/facts"
echo "== facts"
cat "$out/facts"

if [ -n "${SMOKE:-}" ]; then
    echo "== smoke run: no binaries"
    exit 0
fi

if [ -x "$SHARE/bin/netmon" ]; then
    echo "== netmon doctor"
    {
        "$SHARE/bin/netmon" doctor
        echo $? >"$out/doctor.rc"
    } 2>&1 | tee "$out/doctor.txt"
fi

set --
if [ -f "$SHARE/test-args" ]; then
    while IFS= read -r a; do set -- "$@" "$a"; done <"$SHARE/test-args"
fi
status=0
for t in "$SHARE"/tests/*; do
    [ -x "$t" ] || continue
    name=${t##*/}
    cwd=$(cat "$SHARE/cwd/$name" 2>/dev/null)
    [ -n "$cwd" ] && [ -d "$cwd" ] || cwd=/tmp
    echo "== tests: $name"
    start=$(date +%s)
    {
        (
            cd "$cwd" &&
                # Both test packages sit one level below the workspace root; insta needs it
                # (there is no cargo in the guest to ask) and must not write (read-only tree).
                INSTA_WORKSPACE_ROOT="$(cd "$cwd/.." && pwd)" CI=true \
                NETMON_PRIVILEGED_TESTS=1 NETMON_BIN="$SHARE/bin/netmon" \
                    NETMON_TEST_BIN_DIR="$SHARE/bin" RUST_BACKTRACE=1 \
                    "$t" --ignored --test-threads=1 "$@"
        )
        echo $? >"$out/test-$name.rc"
    } 2>&1 | tee "$out/test-$name.log"
    echo "== tests: $name exit $(cat "$out/test-$name.rc") after $(($(date +%s) - start)) s"
    [ "$(cat "$out/test-$name.rc")" = 0 ] || status=1
done
exit $status
