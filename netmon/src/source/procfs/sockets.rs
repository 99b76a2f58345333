//! Socket inode → process, from the `/proc/PID/fd/*` links, and each process's netns.
//!
//! Link targets are parsed with the procfs crate's `FDTarget`; the directory walk is handwritten
//! because `procfs::process::Process::fd()` would first open every process with `O_PATH`, an extra
//! syscall per process on the start-up path, for nothing this module uses.
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::str::FromStr;

use procfs::process::FDTarget;

use super::process::{ProcError, all_pids};

/// Socket inodes held open by `pid`, ascending and without repeats (dup'ed fds share one inode).
pub fn socket_inodes(root: &Path, pid: u32) -> Result<Vec<u64>, ProcError> {
    let dir = root.join(pid.to_string()).join("fd");
    let entries = std::fs::read_dir(&dir).map_err(|e| ProcError::from_io(pid, &dir, e))?;
    let mut inodes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ProcError::from_io(pid, &dir, e))?;
        let target = match std::fs::read_link(entry.path()) {
            Ok(t) => t,
            // The fd was closed between readdir and readlink.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // Not a symlink: only in hand-made trees; there is no fd behind it.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(e) => return Err(ProcError::from_io(pid, &entry.path(), e)),
        };
        if let Some(inode) = target.to_str().and_then(socket_inode_of_link) {
            inodes.push(inode);
        }
    }
    inodes.sort_unstable();
    inodes.dedup();
    Ok(inodes)
}

/// `socket:[12345]` → 12345; any other link target → None.
pub(crate) fn socket_inode_of_link(target: &str) -> Option<u64> {
    match FDTarget::from_str(target) {
        Ok(FDTarget::Socket(inode)) => Some(inode),
        _ => None,
    }
}

/// The inode of the network namespace `pid` lives in (`/proc/PID/ns/net` → `net:[N]`).
pub fn netns_inode(root: &Path, pid: u32) -> Result<u64, ProcError> {
    let path = root.join(pid.to_string()).join("ns").join("net");
    let target = std::fs::read_link(&path).map_err(|e| ProcError::from_io(pid, &path, e))?;
    let text = target.to_string_lossy();
    match FDTarget::from_str(&text) {
        Ok(FDTarget::Net(inode)) => Ok(inode),
        _ => Err(ProcError::Malformed {
            pid,
            path,
            reason: format!("link target {text:?} is not net:[INODE]"),
        }),
    }
}

/// Every socket inode held by any process under `root` → the pids holding it (ascending). A socket
/// inherited across fork or passed over a unix socket has several owners. Processes that vanish or
/// deny access are skipped (debug log): a scan of a live system always races with exits.
pub fn scan_socket_owners(root: &Path) -> HashMap<u64, Vec<u32>> {
    let mut owners: HashMap<u64, Vec<u32>> = HashMap::new();
    // all_pids is ascending, so each owner list comes out ascending too.
    for pid in all_pids(root) {
        match socket_inodes(root, pid) {
            Ok(inodes) => {
                for inode in inodes {
                    owners.entry(inode).or_default().push(pid);
                }
            }
            Err(e) => log::debug!("skipping pid {pid} in the socket scan: {e}"),
        }
    }
    owners
}
