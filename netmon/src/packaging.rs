//! What an installed netmon carries besides its own code, starting with the long version line.

/// `netmon --version`: the crate version, the git revision it was built from and a short
/// SHA-256 of the embedded eBPF object (both set by build.rs).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("NETMON_GIT_REV"),
    ", ebpf ",
    env!("NETMON_BPF_ID"),
    ")"
);
