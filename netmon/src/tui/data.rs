//! What the tabs show, and the one place that reads it: the namespace's `/proc/<pid>/net` files
//! (through [`crate::procnet`]), the watched process's socket inodes, the sock_diag cookie → inode
//! map that joins the eBPF connections to the socket tables, and the aggregator's snapshot.
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::aggregate::Snapshot;
use crate::hosts::HostRates;
use crate::procnet::{NetDelta, NetRoot, NetSnapshot, ProcNetError, delta};
use crate::source::procfs::{self, dump_sockets, dump_sockets_in_netns};

/// Who is watched, for the status line.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub pids: Vec<u32>,
    pub comm: String,
    pub backend: String,
    /// Where the socket tabs come from, e.g. `/proc/1234/net`.
    pub namespace: String,
}

/// Everything one frame needs. Built by [`Collector`] live, by hand in tests.
#[derive(Debug, Clone, Default)]
pub struct TuiData {
    pub header: Header,
    /// The last namespace snapshot that could be read; kept after the process exits.
    pub net: Option<NetSnapshot>,
    /// Change since the snapshot before `net`.
    pub net_delta: Option<NetDelta>,
    /// Why `net` is stale or missing.
    pub net_error: Option<String>,
    pub procs: Snapshot,
    /// Rates per remote host, fed from every snapshot's hosts (the Hosts tab).
    pub hosts: HostRates,
    /// The last hour from the history store (the History tab), refreshed in the background.
    pub history: super::history::HistoryView,
    /// Socket cookie → sockfs inode, from sock_diag in the watched namespace.
    pub cookie_inodes: HashMap<u64, u64>,
    /// Every watched process has exited: the frame shows final totals under a banner.
    pub exited: bool,
    /// `--tree`: the netmon tab shows processes under their parent.
    pub tree: bool,
}

/// Reads the namespace of the first watched PID, or netmon's own namespace when none is given
/// (the whole host, as plain `netmon run` shows every process).
pub struct Collector {
    proc_root: PathBuf,
    pids: Vec<u32>,
    follow_children: bool,
    root: NetRoot,
    /// `None`: netmon's own namespace.
    netns: Option<PathBuf>,
    started: Instant,
}

impl Collector {
    pub fn new(proc_root: &Path, pids: &[u32], follow_children: bool) -> Self {
        let (root, netns) = match pids.first() {
            Some(&pid) => {
                let dir = proc_root.join(pid.to_string());
                // /proc/sys shows the reader's namespace: use it only when that is the PID's.
                let ns = |p: u32| procfs::netns_inode(proc_root, p).ok();
                let same_ns = ns(pid).is_some() && ns(pid) == ns(std::process::id());
                let sys = same_ns.then(|| proc_root.join("sys"));
                (NetRoot::new(&dir, sys), Some(dir.join("ns/net")))
            }
            None => (
                NetRoot::new(proc_root.join("thread-self"), Some(proc_root.join("sys"))),
                None,
            ),
        };
        Collector {
            proc_root: proc_root.to_path_buf(),
            pids: pids.to_vec(),
            follow_children,
            root,
            netns,
            started: Instant::now(),
        }
    }

    pub fn header(&self, backend: &str) -> Header {
        let comm = self
            .pids
            .first()
            .and_then(|&p| procfs::read_process(&self.proc_root, p).ok())
            .map(|p| p.comm)
            .unwrap_or_default();
        Header {
            pids: self.pids.clone(),
            comm,
            backend: backend.to_string(),
            namespace: self.root.root().join("net").display().to_string(),
        }
    }

    /// Socket inodes of the watched processes (and their descendants with --follow-children).
    fn own_inodes(&self) -> HashSet<u64> {
        let mut pids = self.pids.clone();
        if self.follow_children {
            for &p in &self.pids {
                pids.extend(procfs::descendants(&self.proc_root, p));
            }
        }
        pids.iter()
            .filter_map(|&p| procfs::socket_inodes(&self.proc_root, p).ok())
            .flatten()
            .collect()
    }

    /// Re-reads the namespace into `data`. A namespace that has gone keeps the last snapshot.
    pub fn refresh(&self, data: &mut TuiData) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        match NetSnapshot::capture(&self.root, &self.own_inodes(), now_ms) {
            Ok(snap) => {
                data.net_delta = data.net.as_ref().map(|prev| delta(prev, &snap));
                data.net = Some(snap);
                data.net_error = None;
            }
            Err(ProcNetError::RootGone { path }) => {
                data.net_error = Some(format!(
                    "{} is gone; showing the last values",
                    path.display()
                ))
            }
        }
        let dump = match &self.netns {
            Some(ns) => dump_sockets_in_netns(ns),
            None => dump_sockets(),
        };
        match dump {
            Ok(sockets) => {
                data.cookie_inodes = sockets
                    .into_iter()
                    .filter(|s| s.inode != 0)
                    .map(|s| (s.cookie, s.inode))
                    .collect();
            }
            // Keep the last map: a closed socket's row still joins to what it was.
            Err(e) => log::debug!("sock_diag for the netmon tab: {e}"),
        }
    }
}
