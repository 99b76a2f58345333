//! Embeds the eBPF object when `cargo xtask build-ebpf` has produced it, so an installed netmon is
//! one file. Without it the userspace crates still build on stable; the binary then says, in one
//! line, how to build the object.
use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(netmon_embedded_bpf)");
    println!("cargo::rerun-if-env-changed=NETMON_BPF_OBJ");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let obj = std::env::var_os("NETMON_BPF_OBJ")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/bpfel-unknown-none/release/netmon"));
    println!("cargo::rerun-if-changed={}", obj.display());
    if obj.is_file() {
        println!("cargo::rustc-cfg=netmon_embedded_bpf");
        println!("cargo::rustc-env=NETMON_BPF_OBJ_PATH={}", obj.display());
    }
}
