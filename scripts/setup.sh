#!/usr/bin/env bash
# Installs everything netmon's build and tests need on a fresh Debian machine that has only
# stable + nightly Rust. Idempotent: a second run takes well under a second.
# Prints `export BPF_LINKER_DIR=...` as its last line for `eval "$(scripts/setup.sh | grep ^export)"`.
set -euo pipefail
say() { printf 'setup: %s\n' "$*" >&2; }

CACHE="${NETMON_CACHE:-$HOME/.cache/netmon}"
NIGHTLY="${NETMON_EBPF_TOOLCHAIN:-nightly}"
BPF_LINKER_VERSION=0.13.0
APT_PACKAGES=(iproute2 iperf3 bpftool python3 procps tmux prometheus wrk tshark nftables strace curl systemd util-linux lintian man-db dpkg-dev nats-server prometheus-alertmanager openssl)

if ! command -v rustup >/dev/null; then
  say "rustup is missing: install Rust from https://rustup.rs first"; exit 1
fi
if ! rustup toolchain list | grep -q "^${NIGHTLY}"; then
  say "installing Rust toolchain $NIGHTLY (the eBPF crate needs nightly)"
  rustup toolchain install "$NIGHTLY" --profile minimal >&2
fi
if ! rustup component list --toolchain "$NIGHTLY" --installed | grep -q '^rust-src'; then
  say "adding rust-src to $NIGHTLY (needed for -Z build-std=core)"
  rustup component add rust-src --toolchain "$NIGHTLY" >&2
fi

# bpf-linker is linked against the nightly's own libLLVM (Debian 12 has no LLVM new enough to read
# nightly bitcode), so the cache key is that exact libLLVM: a nightly update triggers a rebuild.
NL="$(rustc +"$NIGHTLY" --print sysroot)/lib"
LLVM_SO="$(cd "$NL" && ls libLLVM-*-rust-*.so | head -1)"
LLVM_LIB="${LLVM_SO#lib}"; LLVM_LIB="${LLVM_LIB%.so}"
LLVM_MAJOR="$(echo "$LLVM_LIB" | sed -E 's/^LLVM-([0-9]+)-.*/\1/')"
ROOT="$CACHE/bpf-linker-$BPF_LINKER_VERSION-$LLVM_LIB"
if ! "$ROOT/bin/bpf-linker" --version >/dev/null 2>&1; then
  say "building bpf-linker $BPF_LINKER_VERSION against $LLVM_LIB into $ROOT (about a minute, once)"
  RUSTFLAGS="-L $NL -l dylib=$LLVM_LIB -C link-arg=-Wl,-rpath,$NL" \
    cargo +"$NIGHTLY" install bpf-linker --version "$BPF_LINKER_VERSION" --locked \
      --no-default-features --features "llvm-$LLVM_MAJOR,no-llvm-linking" --root "$ROOT" >&2
fi

if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || say "could not mount bpffs (not fatal)"
  mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || say "could not mount tracefs (not fatal)"
else
  say "not root: skipping Debian packages (${APT_PACKAGES[*]}) and bpffs/tracefs mounts"
fi
echo "export BPF_LINKER_DIR=$ROOT/bin"
