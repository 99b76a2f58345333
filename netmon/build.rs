//! Embeds the eBPF object when `cargo xtask build-ebpf` has produced it, so an installed netmon is
//! one file. Without it the userspace crates still build on stable; the binary then says, in one
//! line, how to build the object.
//!
//! Also records what `netmon --version` reports beyond the crate version: the git revision of
//! the checkout and a short SHA-256 of the embedded object, so a bug report (or a package) names
//! exactly which kernel programs the binary carries.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use sha2::{Digest, Sha256};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(netmon_embedded_bpf)");
    println!("cargo::rerun-if-env-changed=NETMON_BPF_OBJ");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // Where `cargo xtask build-ebpf` put it: the workspace's target directory, which
    // CARGO_TARGET_DIR moves (relative paths are taken from the workspace root, as xtask does).
    let workspace = manifest.join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => workspace.join(d),
        _ => workspace.join("target"),
    };
    let obj = std::env::var_os("NETMON_BPF_OBJ")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("bpfel-unknown-none/release/netmon"));
    println!("cargo::rerun-if-changed={}", obj.display());
    let bpf_id = match std::fs::read(&obj) {
        Ok(bytes) => {
            println!("cargo::rustc-cfg=netmon_embedded_bpf");
            println!("cargo::rustc-env=NETMON_BPF_OBJ_PATH={}", obj.display());
            let digest = Sha256::digest(&bytes);
            // 12 hex digits (48 bits): enough to tell builds apart, short enough for one line.
            let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        }
        Err(_) => "not embedded".to_string(),
    };
    println!("cargo::rustc-env=NETMON_BPF_ID={bpf_id}");
    println!("cargo::rustc-env=NETMON_GIT_REV={}", git_rev(&manifest));
}

/// `git rev-parse --short HEAD`, or "unknown" outside a git checkout (a source tarball) or
/// without git. Re-runs when HEAD moves: HEAD itself (checkout), the branch it points to
/// (commit) and packed-refs (gc), each resolved through `--git-path` so worktrees work too.
fn git_rev(dir: &Path) -> String {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let Some(rev) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_string();
    };
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        // Only files that exist: cargo re-runs the script on every build for a missing one.
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && Path::new(&path).exists()
        {
            println!("cargo::rerun-if-changed={path}");
        }
    }
    rev
}
