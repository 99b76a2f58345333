//! What sinks see: a self-contained, serialisable picture of one interval. Field names are a
//! contract with `--json` users and the end-to-end tests.
use serde::Serialize;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;

use crate::event::{Proto, TcpCounts};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Source time of the snapshot (ms since the source started).
    pub at_ms: u64,
    /// Time the rates cover.
    pub interval_ms: u64,
    /// The last snapshot of the run.
    pub r#final: bool,
    pub backend: String,
    pub processes: Vec<ProcessRow>,
    pub totals: Totals,
    pub unattributed: Vec<UnattributedRow>,
    pub lost: Vec<LostRow>,
    /// RSTs the kernel sent for segments that matched no socket (closed ports, scans).
    pub tcp_resets_without_socket: u64,
    pub dns: DnsStats,
    /// Per remote host across processes (only from an aggregator made `with_hosts`), the
    /// busiest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostRow>,
    /// The history recorder's counts, when one runs (set by the caller, not the aggregator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::history::HistoryStatus>,
}

/// One remote host: what every process on this machine exchanged with it since netmon
/// started (ended connections included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    pub remote: std::net::IpAddr,
    /// A name a process got this address for from DNS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// loopback, link-local, intranet, internet or a watched network's name.
    pub class: String,
    /// Payload bytes, cumulative.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Connections to or from it (live and ended), and processes that had one.
    pub connections: u64,
    pub processes: u64,
}

/// The bounded table of names learned from DNS replies.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DnsStats {
    /// Entries held.
    pub names: usize,
    /// Entries pushed out by newer ones since netmon started.
    pub evicted: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessRow {
    pub pid: u32,
    /// 0 for the first process netmon saw on this pid, 1 for the next one if it was reused...
    pub incarnation: u32,
    /// Parent process; 0 when unknown (and for pid 1, whose parent the kernel calls 0).
    pub ppid: u32,
    /// Real user id; null when unknown.
    pub uid: Option<u32>,
    /// The uid's name (`/etc/passwd`), or its digits when it has none; empty when the uid is
    /// unknown.
    pub user: String,
    /// Clock ticks after boot at which the process started; 0 when unknown.
    pub start_time: u64,
    pub comm: String,
    pub cmdline: String,
    pub exe: String,
    pub cgroup: String,
    /// systemd unit from the cgroup path (`nginx.service`); empty when none.
    pub unit: String,
    /// Container id (12 hex digits) from the cgroup path; empty when none.
    pub container: String,
    pub netns: u64,
    pub alive: bool,
    /// Exact payload since netmon started.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_rate: f64,
    pub rx_rate: f64,
    pub tx_wire_bytes: u64,
    pub rx_wire_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    /// Sockets this process owned since netmon started (closed ones included).
    pub opened: ConnectionsOpened,
    /// TCP retransmits, resets and RTT samples of the sockets it owned.
    pub tcp: TcpCounts,
    /// Connections to each `--watch-network`, by name.
    pub networks: BTreeMap<String, u64>,
    pub connections: Vec<ConnectionRow>,
    /// Live connections beyond the per-process limit (`--max-connections`): counted in the
    /// totals above, not listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub connections_not_listed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// TCP sockets that had a peer (connected or accepted) and UDP sockets of any kind.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ConnectionsOpened {
    pub tcp: u64,
    pub udp: u64,
}

impl ConnectionsOpened {
    pub fn add(&mut self, o: ConnectionsOpened) {
        self.tcp += o.tcp;
        self.udp += o.udp;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRow {
    pub cookie: u64,
    pub proto: Proto,
    /// Addresses are kept as values and written as text (`"10.0.0.1:443"`): at 100k sockets a
    /// snapshot's strings were tens of megabytes.
    #[serde(serialize_with = "display_opt")]
    pub local: Option<SocketAddr>,
    #[serde(serialize_with = "display_opt")]
    pub remote: Option<SocketAddr>,
    /// The name the process asked DNS for and got the remote address back (see DnsNames).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_name: Option<String>,
    pub state: Option<&'static str>,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_rate: f64,
    pub rx_rate: f64,
    pub tx_wire_bytes: u64,
    pub rx_wire_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    #[serde(skip)]
    pub tx_wire_rate: f64,
    #[serde(skip)]
    pub rx_wire_rate: f64,
    pub closed: bool,
    /// Snapshot number at which the socket closed (rows are hidden some snapshots later).
    #[serde(skip)]
    pub closed_since: Option<u64>,
    /// This process owns the socket (wire bytes are shown only for the owner).
    pub owner: bool,
    /// A UDP socket without a connected peer: the remotes it exchanged datagrams with, the
    /// busiest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerRow>,
}

/// One remote of a peerless UDP socket: the payload of the datagrams exchanged with it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRow {
    #[serde(serialize_with = "display")]
    pub remote: SocketAddr,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_rate: f64,
    pub rx_rate: f64,
}

impl Default for ConnectionRow {
    fn default() -> Self {
        ConnectionRow {
            cookie: 0,
            proto: Proto::Other,
            local: None,
            remote: None,
            remote_name: None,
            state: None,
            tx_bytes: 0,
            rx_bytes: 0,
            tx_rate: 0.0,
            rx_rate: 0.0,
            tx_wire_bytes: 0,
            rx_wire_bytes: 0,
            tx_packets: 0,
            rx_packets: 0,
            tx_wire_rate: 0.0,
            rx_wire_rate: 0.0,
            closed: false,
            closed_since: None,
            owner: false,
            peers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_rate: f64,
    pub rx_rate: f64,
    pub tx_wire_bytes: u64,
    pub rx_wire_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnattributedRow {
    pub reason: String,
    pub bytes: u64,
    pub packets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LostRow {
    pub source: String,
    pub count: u64,
}

impl ProcessRow {
    /// Adds a connection's bytes to the process, and the row itself unless it closed more than
    /// `closed_ttl` snapshots before `now`.
    pub(super) fn add(&mut self, c: ConnectionRow, closed_ttl: u64, now: u64, limit: usize) {
        self.tx_bytes += c.tx_bytes;
        self.rx_bytes += c.rx_bytes;
        self.tx_rate += c.tx_rate;
        self.rx_rate += c.rx_rate;
        self.tx_wire_bytes += c.tx_wire_bytes;
        self.rx_wire_bytes += c.rx_wire_bytes;
        self.tx_packets += c.tx_packets;
        self.rx_packets += c.rx_packets;
        if c.closed_since.is_none_or(|at| now <= at + closed_ttl) {
            self.connections.push(c);
            // Bounded while building, not only at the end: 100k idle sockets of one server
            // would otherwise be 100k rows (tens of megabytes) for a moment every interval.
            if self.connections.len() >= limit.saturating_mul(2) {
                self.limit_connections(limit);
            }
        }
    }

    /// Keeps the `limit` busiest connections listed and counts the rest.
    pub(super) fn limit_connections(&mut self, limit: usize) {
        if self.connections.len() > limit {
            self.sort_connections();
            self.connections_not_listed += (self.connections.len() - limit) as u64;
            self.connections.truncate(limit);
        }
    }

    /// Adds a live socket's connection count, TCP counters and watched-network hits.
    pub(super) fn add_socket_facts(
        &mut self,
        opened: &ConnectionsOpened,
        tcp: &TcpCounts,
        networks: &[u64],
    ) {
        self.opened.add(*opened);
        self.tcp.add(tcp);
        for (count, hit) in self.networks.values_mut().zip(networks) {
            *count += hit;
        }
    }

    pub(super) fn sort_connections(&mut self) {
        self.connections.sort_by(|a, b| {
            busiest_first(
                (a.tx_rate + a.rx_rate, a.tx_bytes + a.rx_bytes, a.cookie),
                (b.tx_rate + b.rx_rate, b.tx_bytes + b.rx_bytes, b.cookie),
            )
        });
    }
}

/// Rows ordered like nethogs: highest rate first, then most bytes, then a stable id.
pub(super) fn busiest_first(a: (f64, u64, u64), b: (f64, u64, u64)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2))
}

fn display<T: Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<T: Display, S: serde::Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
