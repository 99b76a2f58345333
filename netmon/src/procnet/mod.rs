//! Everything netmon's tabbed TUI shows about one process's network namespace, read from
//! `/proc/<pid>/net/*` and a few `/proc/sys/net` sysctls: pure parsers plus a snapshot/delta layer.
//!
//! - [`sockets`]: tcp, udp, raw and icmp (ping) tables, v4 and v6, own-socket marking.
//! - [`arp`], [`route`] (v4 and v6), [`dev`] (interfaces), [`softnet`] (per CPU).
//! - [`counters`]: `snmp`, `netstat` (header/values pairs) and `snmp6` (name value lines).
//! - [`analysis`]: the few values the TUI highlights (forwarding, ICMP, TCP RTO, UDP health).
//! - [`snapshot`]: [`NetSnapshot::capture`] reads all of the above; [`delta`] compares two.
//!
//! Two promises hold across the module, because a TUI must keep drawing whatever the kernel gives it:
//! a missing or unreadable file is an [`Availability::Unavailable`], never an error, and a malformed
//! line is dropped and counted in `skipped_lines`, never a panic. The only error is a root directory
//! that has gone (the process exited), see [`ProcNetError`].
//!
//! Hex addresses in the socket and route tables are the kernel's in-memory words printed with
//! `%08X`, so they are decoded in the host's byte order; fixtures captured on a little-endian
//! machine (all of `tests/fixtures/procnet`) only decode right on one.
pub mod addr;
pub mod analysis;
pub mod arp;
pub mod counters;
pub mod delta;
pub mod dev;
pub mod route;
pub mod snapshot;
pub mod sockets;
pub mod softnet;

#[cfg(test)]
mod privileged_tests;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

pub use analysis::Analysis;
pub use delta::{NetDelta, delta};
pub use snapshot::NetSnapshot;

/// The only failure that stops a snapshot: there is nothing left to read.
#[derive(Debug, thiserror::Error)]
pub enum ProcNetError {
    #[error("{} is gone (has the process exited?)", path.display())]
    RootGone { path: PathBuf },
}

/// Why a view has no data. Shown to the user in place of the table, so it says what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The file or the line in it does not exist: the kernel lacks the feature (IPv6 off, no MPTCP).
    #[error("not on this kernel")]
    NotOnThisKernel,
    #[error("permission denied")]
    PermissionDenied,
    /// The file has content, but none of it could be understood.
    #[error("malformed")]
    Malformed,
    #[error("unreadable ({0})")]
    Unreadable(io::ErrorKind),
}

/// A value or the reason there is none; `Option` with a reason the TUI can print.
#[derive(Debug, Clone, PartialEq)]
pub enum Availability<T> {
    Available(T),
    Unavailable(Unavailable),
}

impl<T> Availability<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Availability::Available(v) => Some(v),
            Availability::Unavailable(_) => None,
        }
    }

    pub fn as_ref(&self) -> Availability<&T> {
        match self {
            Availability::Available(v) => Availability::Available(v),
            Availability::Unavailable(r) => Availability::Unavailable(*r),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Availability<U> {
        match self {
            Availability::Available(v) => Availability::Available(f(v)),
            Availability::Unavailable(r) => Availability::Unavailable(r),
        }
    }

    pub fn and_then<U>(self, f: impl FnOnce(T) -> Availability<U>) -> Availability<U> {
        match self {
            Availability::Available(v) => f(v),
            Availability::Unavailable(r) => Availability::Unavailable(r),
        }
    }

    /// Turns "present but absent inside" (a missing section or counter) into `NotOnThisKernel`.
    pub fn and_then_opt<U>(self, f: impl FnOnce(T) -> Option<U>) -> Availability<U> {
        self.and_then(|v| {
            f(v).map_or(
                Availability::Unavailable(Unavailable::NotOnThisKernel),
                Availability::Available,
            )
        })
    }

    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available(_))
    }
}

/// Parsed rows of one file and how many lines were dropped as malformed.
#[derive(Debug, Clone, PartialEq)]
pub struct Table<T> {
    pub rows: Vec<T>,
    pub skipped_lines: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: Vec::new(),
            skipped_lines: 0,
        }
    }
}

impl<T> Table<T> {
    /// Parses each non-blank line with `parse`, counting the `None`s instead of failing.
    pub(crate) fn from_lines<'a>(
        lines: impl Iterator<Item = &'a str>,
        mut parse: impl FnMut(&'a str) -> Option<T>,
    ) -> Self {
        let mut table = Table::default();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            match parse(line) {
                Some(row) => table.rows.push(row),
                None => table.skipped_lines += 1,
            }
        }
        table
    }
}

/// Where one namespace's files live.
///
/// `/proc/<pid>/net` always shows the namespace of `<pid>`, but `/proc/sys/net` shows the namespace
/// of whoever opens it. So the sysctl root is separate: `None` unless the caller knows it reads
/// the right namespace (it has entered it with setns, or it is the caller's own). Where it is
/// `None`, [`Analysis::ip_forwarding`] still has snmp's `Ip: Forwarding`, which is per-namespace.
#[derive(Debug, Clone)]
pub struct NetRoot {
    root: PathBuf,
    sys_root: Option<PathBuf>,
}

impl NetRoot {
    /// `root` holds `net/<file>` (`/proc/<pid>` or a fixture dir); `sys_root` holds
    /// `net/ipv4/ip_forward` (`/proc/sys` or a fixture dir).
    pub fn new(root: impl Into<PathBuf>, sys_root: Option<PathBuf>) -> Self {
        NetRoot {
            root: root.into(),
            sys_root,
        }
    }

    /// `/proc/<pid>`, without sysctls: the caller's `/proc/sys` may be another namespace's.
    pub fn pid(pid: u32) -> Self {
        NetRoot::new(format!("/proc/{pid}"), None)
    }

    /// The caller's own namespace, sysctls included.
    pub fn current() -> Self {
        NetRoot::new("/proc/thread-self", Some(PathBuf::from("/proc/sys")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn net_dir(&self) -> PathBuf {
        self.root.join("net")
    }

    pub(crate) fn read_net(&self, name: &str) -> Availability<String> {
        read_text(&self.net_dir().join(name))
    }

    pub(crate) fn read_sys(&self, rel: &str) -> Availability<String> {
        match &self.sys_root {
            Some(sys) => read_text(&sys.join(rel)),
            None => Availability::Unavailable(Unavailable::NotOnThisKernel),
        }
    }
}

/// Reads a whole file; lossy because an interface name may hold any byte but '/' and ':'.
pub(crate) fn read_text(path: &Path) -> Availability<String> {
    match std::fs::read(path) {
        Ok(bytes) => Availability::Available(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => Availability::Unavailable(match e.kind() {
            io::ErrorKind::NotFound => Unavailable::NotOnThisKernel,
            io::ErrorKind::PermissionDenied => Unavailable::PermissionDenied,
            kind => Unavailable::Unreadable(kind),
        }),
    }
}
