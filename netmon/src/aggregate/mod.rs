//! The single owner of state: every event from every source lands here, and sinks only ever see
//! the [`Snapshot`]s it produces.
//!
//! Everything ingested is kept (a fork event may arrive after the child's first bytes); the
//! `--pid` filter is applied when a snapshot is taken. Counter events are cumulative, so each
//! counter keeps its last cumulative value and a running total of deltas.
//!
//! Time moves in intervals: [`Aggregator::snapshot`] only reads, so it can be taken as often
//! as wanted; [`Aggregator::advance`] ends an interval (rates are measured per interval, and
//! closed sockets and exited processes are kept for a number of intervals).
//!
//! This file holds the [`Aggregator`], its configuration and its public API; the work is in:
//! - `state`: what is remembered about each socket and process;
//! - `ingest`: applying one event to that state;
//! - `ownership`: who owns a socket, which process a pid means, tombstones;
//! - `fold`: ended sockets folded into their process, exited processes forgotten;
//! - `view`: the snapshot built from the state (rows, rates, totals);
//! - `snapshot`: the snapshot's types; `counter`, `index`: building blocks.
mod counter;
mod flows;
mod fold;
mod hosts;
mod index;
mod ingest;
mod notices;
mod ownership;
mod snapshot;
mod state;
mod view;

use std::collections::{BTreeMap, HashMap, HashSet};

pub use self::flows::{FLOW_CHUNK, FLOW_UPDATE_MS};
use self::ownership::Tombstones;
pub use self::snapshot::{
    ConnectionRow, ConnectionsOpened, DnsStats, HostRow, LostRow, PeerRow, ProcessRow, Snapshot,
    Totals, UnattributedRow,
};
use self::state::{Payload, Process, Retired, Socket};
use crate::event::{Cookie, Event, LossSource, Pid, Proto, UnattributedReason};
// The tests build events from these through `use super::*`.
#[cfg(test)]
use crate::event::{FinalOwner, Origin, TcpState};

/// Which processes a snapshot shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Empty: every process.
    pub pids: Vec<u32>,
    /// Also every descendant of `pids`, learned from fork events and parent pids.
    pub follow_children: bool,
    /// Empty: any name. Otherwise the process's comm must be one of these.
    pub comms: Vec<String>,
    /// Empty: any cgroup. Otherwise one pattern must match (see `identity::cgroup_matches`).
    pub cgroups: Vec<String>,
    /// Processes left out whatever else selects them: by pid, by comm, by cgroup pattern.
    pub exclude_pids: Vec<u32>,
    pub exclude_comms: Vec<String>,
    pub exclude_cgroups: Vec<String>,
}

/// A named set of address ranges: connections to them are counted per process
/// (`--watch-network intranet=10.0.0.0/8,192.168.0.0/16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedNetwork {
    pub name: String,
    pub ranges: Vec<ipnet::IpNet>,
}

impl WatchedNetwork {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(&ip))
    }
}

/// How long rows outlive their socket or process, in snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Closed sockets stay visible for this many snapshots, then fold into their process.
    pub closed_snapshots: u64,
    /// Exited, unwatched processes stay visible for this many snapshots, then are forgotten
    /// (their bytes stay in the totals).
    pub exited_snapshots: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            closed_snapshots: 5,
            exited_snapshots: 10,
        }
    }
}

#[derive(Debug, Default)]
pub struct Aggregator {
    tombstones: Tombstones,
    filter: Filter,
    retention: Retention,
    sockets: HashMap<Cookie, Socket>,
    /// Sockets by address: for captured packets without a cookie and for accepted connections.
    index: index::SocketIndex,
    payload: HashMap<(Cookie, Pid), Payload>,
    processes: HashMap<Pid, Process>,
    /// Earlier incarnations of reused pids, kept (with their own rows) until forgotten.
    past: HashMap<(Pid, u32), Process>,
    children: HashMap<Pid, HashSet<Pid>>,
    unattributed: BTreeMap<UnattributedReason, (u64, u64)>,
    /// Wire bytes and packets of ended sockets nobody owned, by reason.
    unattributed_folded: BTreeMap<UnattributedReason, (u64, u64)>,
    lost: BTreeMap<LossSource, u64>,
    resets_without_socket: u64,
    /// Names from DNS replies, per process that asked (bounded).
    dns: netmon_packet::dns_names::DnsNames,
    networks: Vec<WatchedNetwork>,
    /// Bytes of forgotten processes, so the all-process totals stay monotonic.
    forgotten: Retired,
    now_ms: u64,
    /// `now_ms` when the last interval ended: the next rates cover the time since.
    interval_start_ms: Option<u64>,
    /// Intervals ended ([`Aggregator::advance`]): the clock that closed sockets and exited
    /// processes age by.
    intervals: u64,
    /// Ended sockets stay as closed rows for `retention.closed_snapshots` (`--connections
    /// all`) instead of folding into their process at once.
    keep_closed_rows: bool,
    /// Connection rows listed per process in a snapshot (the busiest); the rest are counted.
    max_connections: usize,
    /// Flow records for the history store, when asked for ([`Aggregator::with_flows`]).
    flows: flows::Flows,
    /// Per-remote-host totals, when asked for ([`Aggregator::with_hosts`]).
    hosts: hosts::Hosts,
    /// Listen and contact events, when asked for ([`Aggregator::with_notices`]).
    notices: notices::Notices,
    /// Names for the uids of processes, learned as their uids arrive (digits by default).
    users: crate::users::UserNames,
}

impl Aggregator {
    pub fn new(filter: Filter) -> Self {
        Aggregator {
            filter,
            max_connections: usize::MAX,
            ..Default::default()
        }
    }

    /// List at most `n` connections per process (the busiest), counting the others.
    pub fn with_connection_limit(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Keep what [`Aggregator::socket_for`] needs to find connected sockets by their ends.
    pub fn with_packet_lookup(mut self) -> Self {
        self.index.by_ends = true;
        self
    }

    /// Keep ended sockets as closed connection rows (for the retention) instead of folding
    /// them into their process's totals as soon as their final counters arrive.
    pub fn with_closed_rows(mut self) -> Self {
        self.keep_closed_rows = true;
        self
    }

    /// Name users from this passwd file (the default shows uids as digits).
    pub fn with_user_names(mut self, users: crate::users::UserNames) -> Self {
        self.users = users;
        self
    }

    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Count connections to these networks per process.
    pub fn with_networks(mut self, mut networks: Vec<WatchedNetwork>) -> Self {
        // Sorted by name: rows keep their counts in a map ordered the same way.
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        self.networks = networks;
        self
    }

    /// Applies one event from any source.
    pub fn ingest(&mut self, ev: Event) {
        self.apply(ev);
    }

    /// The state as sinks see it. Reads only: taking it twice gives the same snapshot, and
    /// nothing moves on until [`Aggregator::advance`].
    pub fn snapshot(&self) -> Snapshot {
        self.build_snapshot(self.watched().as_ref())
    }

    /// Ends the interval: the next rates are measured from here, closed sockets and exited
    /// processes age by one interval and those past their retention are folded or forgotten.
    ///
    /// A process's next rate is measured from its totals in the snapshot of this interval, so
    /// the snapshot is built here too; a caller that wants it as well calls
    /// [`Aggregator::snapshot_and_advance`], which builds it once.
    pub fn advance(&mut self) {
        let shown = self.snapshot();
        self.close_interval(&shown);
    }

    /// [`Aggregator::snapshot`] then [`Aggregator::advance`]: what a caller that publishes
    /// every interval wants.
    pub fn snapshot_and_advance(&mut self) -> Snapshot {
        let shown = self.snapshot();
        self.close_interval(&shown);
        shown
    }

    /// What happens between two intervals, given the snapshot of the one that ends.
    fn close_interval(&mut self, shown: &Snapshot) {
        // From the rows' totals, not the live counters: bytes of sockets that end and are
        // folded away within the next interval still count in its rate.
        for p in &shown.processes {
            if self.process_at(p.pid, p.incarnation).is_some() {
                self.process_at_mut(p.pid, p.incarnation).rate_mark = (p.tx_bytes, p.rx_bytes);
            }
        }
        self.keep_shown_names(shown);
        for pl in self.payload.values_mut() {
            pl.tx.mark();
            pl.rx.mark();
        }
        for s in self.sockets.values_mut() {
            s.wire.mark();
            for p in s.peers.iter_mut().flat_map(|p| p.values_mut()) {
                p.counts.iter_mut().for_each(counter::Counter::mark);
            }
        }
        self.flow_updates();
        self.notice_interval();
        self.interval_start_ms = Some(self.now_ms);
        self.intervals += 1;
        self.expire(self.watched().as_ref());
    }

    /// Who owns socket `cookie` (pid, comm), from the kernel's hooks, /proc or a tombstone.
    pub fn owner_of(&self, cookie: Cookie) -> Option<(Pid, String)> {
        let (pid, _) = self
            .sockets
            .get(&cookie)
            .and_then(|s| s.owner)
            .or_else(|| self.tombstones.0.get(&cookie).copied())?;
        let comm = self
            .processes
            .get(&pid)
            .map(|p| p.comm.clone())
            .unwrap_or_default();
        Some((pid, comm))
    }

    /// The socket a packet belongs to, from its addresses as seen by the host (`local` is the
    /// host's end): a connected socket with exactly these ends, else a listening or
    /// unconnected one bound to `local` or to the wildcard address on its port. Connected
    /// sockets are found only if the aggregator was made [`Aggregator::with_packet_lookup`].
    pub fn socket_for(
        &self,
        proto: Proto,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    ) -> Option<Cookie> {
        if let Some(c) = self.index.connected(proto, local, remote) {
            return Some(c);
        }
        self.index.bound(proto, local.port()).find(|c| {
            self.sockets.get(c).is_some_and(|s| {
                s.closed_at.is_none()
                    && s.local
                        .is_some_and(|l| l.ip() == local.ip() || l.ip().is_unspecified())
            })
        })
    }
}

#[cfg(test)]
mod tests;
