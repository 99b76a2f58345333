//! What netmon learns from /proc and sock_diag: process identity, socket ownership through the
//! fd links, and the sockets that existed before netmon started.
//!
//! - [`process`]: `ProcessInfo` (stat/status through the procfs crate), liveness, the process tree.
//! - [`sockets`]: `/proc/PID/fd` socket inodes → pids, and each process's netns inode.
//! - [`diag`]: a handwritten `NETLINK_SOCK_DIAG` dump, optionally inside another netns.
//! - [`ProcfsSource`]: joins them into start-up [`Event`]s.
//!
//! The join rests on two kernel facts, checked by the root test `diag::tests::cookie_and_inode_match_the_fd`:
//! sock_diag's `idiag_cookie` equals `SO_COOKIE` (= `bpf_get_socket_cookie`, the key the kernel
//! hooks use), and its `idiag_inode` equals the inode in `/proc/PID/fd/N -> socket:[INODE]`.
//! So an fd scan plus a dump attributes sockets opened before netmon, under the same cookie.
//!
//! Cost of [`ProcfsSource::initial_events`], measured by `tests::initial_events_timing`
//! (`cargo test -p netmon --lib source::procfs -- --include-ignored --nocapture`, as root, 2 cores,
//! kernel 6.18, debug build): with 601 loopback TCP sockets (300 connections and a listener) held
//! by the test process, 80 processes and 1-2 netns, the fd scan + sock_diag dumps + join take
//! 8-14 ms and yield 1804 events.
pub mod diag;
pub mod process;
pub mod sockets;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use diag::{DiagError, DiagSocket, dump_sockets, dump_sockets_in_netns};
pub use process::{
    Liveness, ProcError, ProcessInfo, all_pids, children, descendants, liveness, read_process,
};
pub use sockets::{netns_inode, scan_socket_owners, socket_inodes};

use crate::event::{Event, Origin, Proto};

/// The default proc mount.
pub const PROC_ROOT: &str = "/proc";

/// Reads /proc (or a tree mounted or copied elsewhere, for tests and containers).
#[derive(Debug, Clone)]
pub struct ProcfsSource {
    root: PathBuf,
}

impl Default for ProcfsSource {
    fn default() -> Self {
        ProcfsSource::new(PROC_ROOT)
    }
}

/// A socket found in the namespace with inode `netns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetnsSocket {
    pub netns: u64,
    pub socket: DiagSocket,
}

impl ProcfsSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcfsSource { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `Event::Process` for `pid`, or None when it is gone or unreadable (logged at debug).
    pub fn process_event(&self, pid: u32) -> Option<Event> {
        match read_process(&self.root, pid) {
            Ok(p) => Some(process_event_of(&p)),
            Err(e) => {
                log::debug!("no process event for pid {pid}: {e}");
                None
            }
        }
    }

    /// Every socket that exists now and that some process holds, as events: per socket, an
    /// `Event::Process` for each owner not yet described, an `Event::SocketOwner` per owner
    /// (origin `Procfs`, netns = the netns inode the socket was found in), `Event::SocketEndpoints`,
    /// and `Event::SocketState` for TCP. Ordered by cookie. Runs once at start-up, after the
    /// kernel hooks are attached: a socket opened between the fd scan and the dump is skipped
    /// here and left to them.
    ///
    /// `SocketOwner::uid` is the owning process's real uid (what the kernel hooks report), not
    /// the socket's. Entering other namespaces needs CAP_SYS_ADMIN; without it only the current
    /// netns is listed (one info log line). Never fails: unreadable processes and failed dumps
    /// are logged and skipped.
    pub fn initial_events(&self) -> Vec<Event> {
        let started = Instant::now();
        let owners = scan_socket_owners(&self.root);
        let scanned = started.elapsed();
        let sockets = self.dump_all_netns();
        let dumped = started.elapsed();
        let mut cache = HashMap::new();
        let events = join_events(&sockets, &owners, |pid| {
            cache
                .entry(pid)
                .or_insert_with(|| match read_process(&self.root, pid) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        log::debug!("socket owner pid {pid} unreadable: {e}");
                        None
                    }
                })
                .clone()
        });
        log::debug!(
            "procfs start-up scan: {} socket inodes held, {} sockets dumped, {} events in {:?} \
             (fd scan {:?}, sock_diag {:?})",
            owners.len(),
            sockets.len(),
            events.len(),
            started.elapsed(),
            scanned,
            dumped - scanned,
        );
        events
    }

    /// Dumps each distinct netns of the running processes once; when entering a namespace
    /// fails (no CAP_SYS_ADMIN, or every candidate pid vanished), falls back to the current one.
    fn dump_all_netns(&self) -> Vec<NetnsSocket> {
        let mut by_netns: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for pid in all_pids(&self.root) {
            match netns_inode(&self.root, pid) {
                Ok(ns) => by_netns.entry(ns).or_default().push(pid),
                Err(e) => log::debug!("netns of pid {pid}: {e}"),
            }
        }

        let mut out = Vec::new();
        let mut dumped: HashSet<u64> = HashSet::new();
        let mut failed = 0usize;
        for (&ns, pids) in &by_netns {
            // Any member pid will do; try a few in case the first ones exit meanwhile.
            let mut last_err = None;
            for &pid in pids.iter().take(3) {
                let path = self.root.join(pid.to_string()).join("ns").join("net");
                match dump_sockets_in_netns(&path) {
                    Ok(list) => {
                        out.extend(
                            list.into_iter()
                                .map(|socket| NetnsSocket { netns: ns, socket }),
                        );
                        dumped.insert(ns);
                        last_err = None;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            if let Some(e) = last_err {
                log::debug!("sock_diag in netns {ns}: {e}");
                failed += 1;
            }
        }

        if failed > 0 || by_netns.is_empty() {
            if failed > 0 {
                log::info!(
                    "could not enter {failed} of {} network namespaces (needs CAP_SYS_ADMIN): \
                     sockets that existed before start in those are not listed",
                    by_netns.len()
                );
            }
            let current = current_netns();
            if current.is_some_and(|ns| dumped.contains(&ns)) {
                return out;
            }
            match dump_sockets() {
                Ok(list) => {
                    let netns = current.unwrap_or(0);
                    out.extend(list.into_iter().map(|socket| NetnsSocket { netns, socket }));
                }
                Err(e) => log::warn!("listing existing sockets through sock_diag: {e}"),
            }
        }
        out
    }
}

/// The netns inode of the calling thread, from the real /proc whatever root is being scanned.
fn current_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

fn process_event_of(p: &ProcessInfo) -> Event {
    Event::Process {
        pid: p.pid,
        ppid: p.ppid,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        uid: p.uid,
        exe: p.exe.clone(),
        cgroup: p.cgroup.clone(),
        netns: p.netns,
        start_time: p.start_time,
    }
}

/// Joins dumped sockets with the fd scan. Pure (processes come from `lookup`) so fixtures can
/// drive it. Sockets seen in two namespaces' dumps (same cookie) are reported once; sockets
/// with no owning pid (inode 0 for time-wait, or held by nobody we could read) are skipped.
pub(crate) fn join_events(
    sockets: &[NetnsSocket],
    owners: &HashMap<u64, Vec<u32>>,
    mut lookup: impl FnMut(u32) -> Option<ProcessInfo>,
) -> Vec<Event> {
    let mut sorted: Vec<&NetnsSocket> = sockets.iter().collect();
    sorted.sort_by_key(|s| s.socket.cookie);
    sorted.dedup_by_key(|s| s.socket.cookie);

    let mut described: HashSet<u32> = HashSet::new();
    let mut events = Vec::new();
    let mut unowned = 0usize;
    for NetnsSocket { netns, socket } in sorted {
        let Some(pids) = owners.get(&socket.inode).filter(|_| socket.inode != 0) else {
            unowned += 1;
            continue;
        };
        let before = events.len();
        for &pid in pids {
            let Some(p) = lookup(pid) else { continue };
            if described.insert(pid) {
                events.push(process_event_of(&p));
            }
            events.push(Event::SocketOwner {
                cookie: socket.cookie,
                pid,
                uid: p.uid,
                comm: p.comm.clone(),
                netns: *netns,
                origin: Origin::Procfs,
                ppid: p.ppid,
            });
        }
        if events.len() == before {
            unowned += 1;
            continue;
        }
        events.push(Event::SocketEndpoints {
            cookie: socket.cookie,
            proto: socket.proto,
            local: socket.local,
            remote: socket.remote,
        });
        if socket.proto == Proto::Tcp {
            events.push(Event::SocketState {
                cookie: socket.cookie,
                state: socket.state,
            });
        }
    }
    if unowned > 0 {
        log::debug!("procfs: {unowned} sockets with no readable owner skipped");
    }
    events
}

#[cfg(test)]
mod tests;
