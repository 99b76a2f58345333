//! The single owner of state: every event from every source lands here, and sinks only ever see
//! the [`Snapshot`]s it produces.
//!
//! Everything ingested is kept (a fork event may arrive after the child's first bytes); the
//! `--pid` filter is applied when a snapshot is taken. Counter events are cumulative, so each
//! counter keeps its last cumulative value and a running total of deltas.
mod counter;
mod index;
mod snapshot;

use std::collections::{BTreeMap, HashMap, HashSet};

use log::debug;

use self::counter::Counter;
pub use self::snapshot::{
    ConnectionRow, ConnectionsOpened, DnsStats, LostRow, ProcessRow, Snapshot, Totals,
    UnattributedRow,
};
use crate::event::{
    Cookie, Event, FinalOwner, LossSource, Origin, Pid, Proto, TcpCounts, TcpState,
    UnattributedReason,
};

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
struct Socket {
    owner: Option<(Pid, Origin)>,
    /// Incarnation of the owner's pid when it became the owner.
    owner_inc: u32,
    proto: Option<Proto>,
    local: Option<std::net::SocketAddr>,
    remote: Option<std::net::SocketAddr>,
    state: Option<TcpState>,
    closed_at: Option<u64>,
    /// netns cookie from the kernel (owner records, accepts); None when only /proc saw it.
    netns: Option<u64>,
    kernel: bool,
    wire: Wire,
    tcp: TcpCounters,
    /// A TCP socket seen in SYN_SENT: this host opened the connection (not accepted it).
    initiated: bool,
    /// The first process with payload through this socket, and whether others followed: what
    /// folding the socket away must collect from `Aggregator::payload` without scanning it.
    payload_pid: Option<Pid>,
    shared_payload: bool,
}

/// A socket's TCP counters: the kernel's cumulative values, plus what earlier incarnations of
/// the map entry had counted when it was recreated (a value going down means a fresh entry).
/// Boxed and absent until the first stats arrive: most sockets never have any.
#[derive(Debug, Default, Clone)]
struct TcpCounters {
    last: Option<Box<TcpCounts>>,
    carried: Option<Box<TcpCounts>>,
}

impl TcpCounters {
    fn set(&mut self, c: &TcpCounts) {
        if let Some(last) = &self.last
            && c.restarted_from(last)
        {
            self.carried.get_or_insert_default().add(last);
        }
        match &mut self.last {
            Some(l) => (**l).clone_from(c),
            None => self.last = Some(Box::new(c.clone())),
        }
    }

    fn totals(&self) -> TcpCounts {
        let mut t = self.carried.as_deref().cloned().unwrap_or_default();
        if let Some(l) = &self.last {
            t.add(l);
        }
        t
    }
}

#[derive(Debug, Default, Clone)]
struct Wire {
    tx_bytes: Counter,
    rx_bytes: Counter,
    tx_packets: Counter,
    rx_packets: Counter,
}

#[derive(Debug, Default, Clone)]
struct Payload {
    tx: Counter,
    rx: Counter,
    /// Incarnation of the pid that moved these bytes.
    inc: u32,
}

/// Bytes of sockets that were closed and folded away, kept so process totals never shrink.
#[derive(Debug, Default, Clone, Copy)]
struct Retired {
    tx_bytes: u64,
    rx_bytes: u64,
    tx_wire_bytes: u64,
    rx_wire_bytes: u64,
    tx_packets: u64,
    rx_packets: u64,
}

/// Per-process counts of sockets folded away: connections, TCP behaviour, watched networks.
#[derive(Debug, Default, Clone)]
struct RetiredSockets {
    opened: ConnectionsOpened,
    tcp: TcpCounts,
    /// Indexed like `Aggregator::networks`.
    networks: Vec<u64>,
}

#[derive(Debug, Default)]
struct Process {
    /// Incarnation of this pid: a pid reused by a new process starts a new one.
    inc: u32,
    start_time: u64,
    ppid: Option<Pid>,
    comm: String,
    cmdline: String,
    exe: String,
    cgroup: String,
    netns: u64,
    exited_at: Option<u64>,
    retired: Retired,
    retired_sockets: RetiredSockets,
    /// Payload totals (tx, rx) at the last snapshot that showed the process: its rates are
    /// measured from these, so bytes of sockets that ended and were folded away still count.
    rate_mark: (u64, u64),
}

/// Owners of sockets folded away, so packets that arrive after (a late FIN/ACK) still find their
/// process instead of counting as unattributed. Bounded: the oldest are forgotten first.
#[derive(Debug, Default)]
struct Tombstones {
    owners: HashMap<Cookie, (Pid, Origin)>,
    order: std::collections::VecDeque<Cookie>,
}

const MAX_TOMBSTONES: usize = 65_536;

impl Tombstones {
    fn bury(&mut self, cookie: Cookie, owner: (Pid, Origin)) {
        if self.owners.insert(cookie, owner).is_none() {
            self.order.push_back(cookie);
        }
        while self.order.len() > MAX_TOMBSTONES {
            if let Some(old) = self.order.pop_front() {
                self.owners.remove(&old);
            }
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
    prev_snapshot_ms: Option<u64>,
    snapshots: u64,
    /// Ended sockets stay as closed rows for `retention.closed_snapshots` (`--connections
    /// all`) instead of folding into their process at once.
    keep_closed_rows: bool,
    /// Connection rows listed per process in a snapshot (the busiest); the rest are counted.
    max_connections: usize,
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

    pub fn ingest(&mut self, ev: Event) {
        match ev {
            Event::Tick { at_ms } => self.now_ms = self.now_ms.max(at_ms),
            Event::SocketOwner {
                cookie,
                pid,
                comm,
                origin,
                ppid,
                netns,
                ..
            } => {
                // The kernel saw this pid create a socket after it exited: a new process.
                if origin != Origin::Procfs
                    && self
                        .processes
                        .get(&pid)
                        .is_some_and(|p| p.exited_at.is_some())
                {
                    self.new_incarnation(pid);
                }
                if ppid != 0 && ppid != pid {
                    self.children.entry(ppid).or_default().insert(pid);
                    self.processes
                        .entry(pid)
                        .or_default()
                        .ppid
                        .get_or_insert(ppid);
                }
                let s = self.sockets.entry(cookie).or_default();
                if origin != Origin::Procfs && netns != 0 {
                    s.netns = Some(netns);
                }
                // The kernel saw the socket being created; a later /proc scan only saw who
                // holds it now, which after fork may be someone else. An owner inferred from
                // the listener gives way to any process seen with the socket.
                let replace = match s.owner {
                    None | Some((_, Origin::Listener)) => true,
                    Some((_, Origin::Procfs)) => origin != Origin::Procfs,
                    Some(_) => false,
                };
                let p = self.processes.entry(pid).or_default();
                if replace {
                    s.owner = Some((pid, origin));
                    s.owner_inc = p.inc;
                }
                if p.comm.is_empty() {
                    p.comm = comm;
                }
            }
            Event::SocketEndpoints {
                cookie,
                proto,
                local,
                remote,
            } => self.set_endpoints(cookie, proto, local, remote),
            Event::SocketAccepted {
                cookie,
                local,
                remote,
                netns,
            } => {
                self.set_endpoints(cookie, Proto::Tcp, local, Some(remote));
                let listener = self.listener_owner(local, netns);
                let s = self.socket(cookie);
                if netns != 0 {
                    s.netns = Some(netns);
                }
                if s.owner.is_none()
                    && let Some((pid, inc)) = listener
                {
                    s.owner = Some((pid, Origin::Listener));
                    s.owner_inc = inc;
                }
            }
            Event::KernelSocket { cookie } => self.socket(cookie).kernel = true,
            Event::SocketState { cookie, state } => {
                let s = self.sockets.entry(cookie).or_default();
                s.state = Some(state);
                s.initiated |= state == TcpState::SynSent;
            }
            Event::Payload {
                cookie,
                pid,
                tx_bytes,
                rx_bytes,
                ..
            } => {
                let inc = self.processes.entry(pid).or_default().inc;
                let s = self.socket(cookie);
                match s.payload_pid {
                    None => s.payload_pid = Some(pid),
                    Some(p) if p != pid => s.shared_payload = true,
                    Some(_) => {}
                }
                let p = self
                    .payload
                    .entry((cookie, pid))
                    .or_insert_with(|| Payload {
                        inc,
                        ..Payload::default()
                    });
                p.tx.set(tx_bytes);
                p.rx.set(rx_bytes);
            }
            Event::Wire {
                cookie,
                tx_bytes,
                rx_bytes,
                tx_packets,
                rx_packets,
            } => {
                let w = &mut self.socket(cookie).wire;
                w.tx_bytes.set(tx_bytes);
                w.rx_bytes.set(rx_bytes);
                w.tx_packets.set(tx_packets);
                w.rx_packets.set(rx_packets);
            }
            Event::SocketClosed { cookie } => {
                let snaps = self.snapshots;
                let s = self.sockets.entry(cookie).or_default();
                s.closed_at.get_or_insert(snaps);
            }
            Event::Process {
                pid,
                ppid,
                comm,
                cmdline,
                exe,
                cgroup,
                netns,
                start_time,
                ..
            } => {
                if self.processes.get(&pid).is_some_and(|p| {
                    p.exited_at.is_some()
                        || (start_time != 0 && p.start_time != 0 && p.start_time != start_time)
                }) {
                    self.new_incarnation(pid);
                }
                let p = self.processes.entry(pid).or_default();
                if start_time != 0 {
                    p.start_time = start_time;
                }
                if ppid != 0 {
                    p.ppid = Some(ppid);
                    self.children.entry(ppid).or_default().insert(pid);
                }
                for (field, new) in [
                    (&mut p.comm, comm),
                    (&mut p.cmdline, cmdline),
                    (&mut p.exe, exe),
                    (&mut p.cgroup, cgroup),
                ] {
                    if !new.is_empty() {
                        *field = new;
                    }
                }
                if netns != 0 {
                    p.netns = netns;
                }
            }
            Event::TcpStats { cookie, stats } => self.socket(cookie).tcp.set(&stats),
            Event::SocketFinal {
                cookie,
                owner,
                payload,
                wire,
                tcp,
            } => self.end_socket(cookie, owner, payload, wire, tcp),
            Event::Late {
                pid,
                wire,
                resets_sent,
                resets_received,
            } => {
                let p = self.processes.entry(pid).or_default();
                let r = &mut p.retired;
                r.tx_wire_bytes += wire[0];
                r.rx_wire_bytes += wire[1];
                r.tx_packets += wire[2];
                r.rx_packets += wire[3];
                let tcp = &mut p.retired_sockets.tcp;
                tcp.resets_sent += resets_sent;
                tcp.resets_received += resets_received;
            }
            Event::ResetsWithoutSocket { count } => self.resets_without_socket = count,
            Event::DnsAnswer { pid, name, addrs } => {
                self.dns.learn((pid != 0).then_some(pid), &name, &addrs);
            }
            // Packets are decoded and printed by `netmon capture`, not aggregated.
            Event::Packet(_) | Event::CaptureStats(_) => {}
            Event::ProcessForked { parent, child } => {
                if parent != child {
                    self.children.entry(parent).or_default().insert(child);
                    self.processes.entry(child).or_default().ppid = Some(parent);
                }
            }
            Event::ProcessExited { pid } => {
                let snaps = self.snapshots;
                self.processes
                    .entry(pid)
                    .or_default()
                    .exited_at
                    .get_or_insert(snaps);
            }
            Event::Unattributed {
                reason,
                bytes,
                packets,
            } => {
                self.unattributed.insert(reason, (bytes, packets));
            }
            Event::Lost { source, count } => {
                self.lost.insert(source, count);
            }
        }
    }

    /// A socket's final counters: applied like any others, then the socket is folded into its
    /// process at once (or kept as a closed row with `with_closed_rows`).
    fn end_socket(
        &mut self,
        cookie: Cookie,
        owner: Option<FinalOwner>,
        payload: Vec<(Pid, u64, u64)>,
        wire: Option<[u64; 4]>,
        tcp: Option<TcpCounts>,
    ) {
        if let Some(o) = owner {
            // Not a SocketOwner event: the process may have exited by now, and that is no
            // reason to start a new incarnation of its pid.
            let inc = self.processes.entry(o.pid).or_default().inc;
            let s = self.socket(cookie);
            if matches!(s.owner, None | Some((_, Origin::Listener))) {
                s.owner = Some((o.pid, o.origin));
                s.owner_inc = inc;
            }
            if o.netns != 0 {
                s.netns.get_or_insert(o.netns);
            }
            let p = self.processes.entry(o.pid).or_default();
            if p.comm.is_empty() {
                p.comm = o.comm;
            }
            if o.ppid != 0 && o.ppid != o.pid {
                p.ppid.get_or_insert(o.ppid);
            }
        }
        for (pid, tx_bytes, rx_bytes) in payload {
            self.ingest(Event::Payload {
                cookie,
                pid,
                tx_bytes,
                rx_bytes,
                tx_calls: 0,
                rx_calls: 0,
            });
        }
        if let Some([tx_bytes, rx_bytes, tx_packets, rx_packets]) = wire {
            self.ingest(Event::Wire {
                cookie,
                tx_bytes,
                rx_bytes,
                tx_packets,
                rx_packets,
            });
        }
        let snaps = self.snapshots;
        let s = self.socket(cookie);
        if let Some(t) = tcp {
            s.tcp.set(&t);
        }
        s.closed_at.get_or_insert(snaps);
        if !self.keep_closed_rows {
            self.fold_socket(cookie);
        }
    }

    /// Moves a closed socket's counts into its owner's totals and forgets it; its owner is
    /// remembered a while for counts that arrive late.
    fn fold_socket(&mut self, cookie: Cookie) {
        let Some(s) = self.sockets.remove(&cookie) else {
            return;
        };
        // The payload entries of this socket: known without a scan unless it was shared.
        let keys: Vec<(Cookie, Pid)> = if s.shared_payload {
            self.payload
                .keys()
                .filter(|(c, _)| *c == cookie)
                .copied()
                .collect()
        } else {
            s.payload_pid.map(|p| (cookie, p)).into_iter().collect()
        };
        for key in keys {
            if let Some(pl) = self.payload.remove(&key) {
                let r = &mut self.process_at_mut(key.1, pl.inc).retired;
                r.tx_bytes += pl.tx.total();
                r.rx_bytes += pl.rx.total();
            }
        }
        if let Some(e) = ends(&s) {
            self.index.remove(cookie, e);
        }
        if let Some((owner, origin)) = s.owner {
            self.tombstones.bury(cookie, (owner, origin));
            let facts = self.socket_facts(&s);
            let p = self.process_at_mut(owner, s.owner_inc);
            let r = &mut p.retired;
            r.tx_wire_bytes += s.wire.tx_bytes.total();
            r.rx_wire_bytes += s.wire.rx_bytes.total();
            r.tx_packets += s.wire.tx_packets.total();
            r.rx_packets += s.wire.rx_packets.total();
            let rs = &mut p.retired_sockets;
            rs.opened.add(facts.opened);
            rs.tcp.add(&facts.tcp);
            if rs.networks.len() < facts.networks.len() {
                rs.networks.resize(facts.networks.len(), 0);
            }
            for (a, b) in rs.networks.iter_mut().zip(&facts.networks) {
                *a += b;
            }
        } else {
            // Nobody to fold into: its wire bytes stay counted as unattributed.
            let e = self
                .unattributed_folded
                .entry(if s.kernel {
                    UnattributedReason::KernelSocket
                } else {
                    UnattributedReason::UnknownOwner
                })
                .or_default();
            e.0 += s.wire.tx_bytes.total() + s.wire.rx_bytes.total();
            e.1 += s.wire.tx_packets.total() + s.wire.rx_packets.total();
        }
        debug!("socket {cookie} closed and folded into its process");
    }

    /// `pid` now names another process: the old one keeps its row (and bytes) as a past
    /// incarnation, the new one starts from nothing.
    fn new_incarnation(&mut self, pid: Pid) {
        let Some(old) = self.processes.remove(&pid) else {
            return;
        };
        debug!("pid {pid} reused: incarnation {} begins", old.inc + 1);
        let inc = old.inc + 1;
        self.past.insert((pid, old.inc), old);
        self.processes.insert(
            pid,
            Process {
                inc,
                ..Process::default()
            },
        );
        // Children recorded so far were the old process's.
        self.children.remove(&pid);
    }

    /// The process `pid` was in incarnation `inc`.
    fn process_at(&self, pid: Pid, inc: u32) -> Option<&Process> {
        match self.processes.get(&pid) {
            Some(p) if p.inc == inc => Some(p),
            _ => self.past.get(&(pid, inc)),
        }
    }

    fn process_at_mut(&mut self, pid: Pid, inc: u32) -> &mut Process {
        let fresh = || Process {
            inc,
            ..Process::default()
        };
        match self.processes.get(&pid) {
            Some(p) if p.inc != inc => self.past.entry((pid, inc)).or_insert_with(fresh),
            _ => self.processes.entry(pid).or_insert_with(fresh),
        }
    }

    /// The socket's entry, created on first sight; a socket folded away earlier gets its owner
    /// back from the tombstones.
    fn socket(&mut self, cookie: Cookie) -> &mut Socket {
        let tomb = &self.tombstones;
        let now = self.snapshots;
        self.sockets.entry(cookie).or_insert_with(|| {
            let owner = tomb.owners.get(&cookie).copied();
            Socket {
                owner,
                // A late count for a socket already folded away: fold it again soon.
                closed_at: owner.map(|_| now),
                ..Socket::default()
            }
        })
    }

    /// Who owns socket `cookie` (pid, comm), from the kernel's hooks, /proc or a tombstone.
    pub fn owner_of(&self, cookie: Cookie) -> Option<(Pid, String)> {
        let (pid, _) = self
            .sockets
            .get(&cookie)
            .and_then(|s| s.owner)
            .or_else(|| self.tombstones.owners.get(&cookie).copied())?;
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

    fn set_endpoints(
        &mut self,
        cookie: Cookie,
        proto: Proto,
        local: std::net::SocketAddr,
        remote: Option<std::net::SocketAddr>,
    ) {
        let s = self.sockets.entry(cookie).or_default();
        let before = ends(s);
        s.proto = Some(proto);
        s.local = Some(local);
        s.remote = remote;
        let after = (proto, local, remote);
        if before != Some(after) {
            if let Some(old) = before {
                self.index.remove(cookie, old);
            }
            self.index.insert(cookie, after);
        }
    }

    /// Owner (pid, incarnation) of the TCP listener an accepted connection to `local` came
    /// through: one on the same port and address (or the wildcard) in the same namespace. A
    /// listener whose namespace only /proc saw counts when no other process listens there.
    fn listener_owner(&self, local: std::net::SocketAddr, netns: u64) -> Option<(Pid, u32)> {
        let mut same_ns = None;
        let mut unknown_ns: Option<(Pid, u32)> = None;
        let mut ambiguous = false;
        for c in self.index.bound(Proto::Tcp, local.port()) {
            let Some(s) = self.sockets.get(&c) else {
                continue;
            };
            let (Some(l), None, None) = (s.local, s.remote, s.closed_at) else {
                continue;
            };
            if !(l.ip().is_unspecified() || l.ip().to_canonical() == local.ip().to_canonical()) {
                continue;
            }
            let Some((pid, origin)) = s.owner else {
                continue;
            };
            if origin == Origin::Listener {
                continue;
            }
            match s.netns {
                Some(n) if netns != 0 && n == netns => same_ns = Some((pid, s.owner_inc)),
                Some(_) if netns != 0 => {}
                _ => {
                    ambiguous |= unknown_ns.is_some_and(|(p, _)| p != pid);
                    unknown_ns = Some((pid, s.owner_inc));
                }
            }
        }
        same_ns.or(if ambiguous { None } else { unknown_ns })
    }

    /// Pids the snapshot shows; `None` means all.
    fn watched(&self) -> Option<HashSet<Pid>> {
        if self.filter.pids.is_empty() {
            return None;
        }
        let mut set: HashSet<Pid> = self.filter.pids.iter().copied().collect();
        if self.filter.follow_children {
            let mut stack: Vec<Pid> = set.iter().copied().collect();
            while let Some(p) = stack.pop() {
                for &c in self.children.get(&p).into_iter().flatten() {
                    if set.insert(c) {
                        stack.push(c);
                    }
                }
            }
        }
        Some(set)
    }

    /// `--comm` and `--cgroup`: a process whose identity is not known yet is not shown.
    fn selected_by_identity(&self, pid: Pid, inc: u32) -> bool {
        let f = &self.filter;
        if f.comms.is_empty() && f.cgroups.is_empty() {
            return true;
        }
        let Some(p) = self.process_at(pid, inc) else {
            return false;
        };
        (f.comms.is_empty() || f.comms.contains(&p.comm))
            && (f.cgroups.is_empty()
                || f.cgroups
                    .iter()
                    .any(|pat| crate::identity::cgroup_matches(pat, &p.cgroup)))
    }

    /// What a socket adds to its owner beyond bytes: whether it counts as an opened
    /// connection, its TCP counters, and the watched networks its peer is in.
    fn socket_facts(&self, s: &Socket) -> RetiredSockets {
        let mut opened = ConnectionsOpened::default();
        match s.proto {
            Some(Proto::Tcp) if s.remote.is_some() => opened.tcp = 1,
            Some(Proto::Udp) => opened.udp = 1,
            _ => {}
        }
        // "Connects to": TCP connections this host initiated, and connected UDP sockets; an
        // accepted connection from a watched range is not the process reaching out.
        let outbound = match s.proto {
            Some(Proto::Tcp) => s.initiated,
            Some(Proto::Udp) => true,
            _ => false,
        };
        let networks = self
            .networks
            .iter()
            .map(|n| u64::from(outbound && s.remote.is_some_and(|r| n.contains(r.ip()))))
            .collect();
        RetiredSockets {
            opened,
            tcp: s.tcp.totals(),
            networks,
        }
    }

    pub fn snapshot(&mut self) -> Snapshot {
        let interval_ms = self
            .prev_snapshot_ms
            .map_or(self.now_ms, |p| self.now_ms.saturating_sub(p));
        let secs = interval_ms as f64 / 1000.0;
        let rate = |c: &Counter| c.rate(secs);
        let watched = self.watched();
        let shows = |pid: Pid, inc: u32| {
            watched.as_ref().is_none_or(|w| w.contains(&pid)) && self.selected_by_identity(pid, inc)
        };

        // Rows by (pid, incarnation): a reused pid has one row per process.
        let mut rows: BTreeMap<(Pid, u32), ProcessRow> = BTreeMap::new();
        let networks = &self.networks;
        let row_for = |pid: Pid, inc: u32| -> ProcessRow {
            let p = self.process_at(pid, inc);
            let retired = p.map(|p| p.retired).unwrap_or_default();
            let text = |f: fn(&Process) -> &String| p.map(|p| f(p).clone()).unwrap_or_default();
            let cgroup = text(|p| &p.cgroup);
            let (unit, container) = crate::identity::unit_and_container(&cgroup);
            let sockets = p.map(|p| p.retired_sockets.clone()).unwrap_or_default();
            ProcessRow {
                pid,
                incarnation: inc,
                start_time: p.map_or(0, |p| p.start_time),
                comm: text(|p| &p.comm),
                cmdline: text(|p| &p.cmdline),
                exe: text(|p| &p.exe),
                cgroup,
                unit,
                container,
                netns: p.map_or(0, |p| p.netns),
                opened: sockets.opened,
                tcp: sockets.tcp,
                networks: networks
                    .iter()
                    .zip(sockets.networks.iter().chain(std::iter::repeat(&0)))
                    .map(|(n, &c)| (n.name.clone(), c))
                    .collect(),
                alive: p.is_none_or(|p| p.exited_at.is_none()),
                tx_bytes: retired.tx_bytes,
                rx_bytes: retired.rx_bytes,
                tx_wire_bytes: retired.tx_wire_bytes,
                rx_wire_bytes: retired.rx_wire_bytes,
                tx_packets: retired.tx_packets,
                rx_packets: retired.rx_packets,
                ..ProcessRow::default()
            }
        };

        let limit = self.max_connections;
        // Payload: exact bytes per (socket, process).
        for (&(cookie, pid), pl) in &self.payload {
            if !shows(pid, pl.inc) {
                continue;
            }
            let row = rows
                .entry((pid, pl.inc))
                .or_insert_with(|| row_for(pid, pl.inc));
            let sock = self.sockets.get(&cookie);
            let owner =
                sock.is_some_and(|s| s.owner.map(|(p, _)| p) == Some(pid) && s.owner_inc == pl.inc);
            let mut conn = connection_row(cookie, sock, owner, secs);
            conn.tx_bytes = pl.tx.total();
            conn.rx_bytes = pl.rx.total();
            conn.tx_rate = rate(&pl.tx);
            conn.rx_rate = rate(&pl.rx);
            row.add(conn, self.retention.closed_snapshots, self.snapshots, limit);
        }
        // Sockets owned by a shown process that moved no payload (yet): wire bytes only.
        for (&cookie, s) in &self.sockets {
            let Some((pid, _)) = s.owner else { continue };
            let inc = s.owner_inc;
            if !shows(pid, inc)
                || self
                    .payload
                    .get(&(cookie, pid))
                    .is_some_and(|pl| pl.inc == inc)
            {
                continue;
            }
            let row = rows.entry((pid, inc)).or_insert_with(|| row_for(pid, inc));
            let conn = connection_row(cookie, Some(s), true, secs);
            row.add(conn, self.retention.closed_snapshots, self.snapshots, limit);
        }
        // Connections opened, TCP behaviour and watched networks of every owned socket.
        for s in self.sockets.values() {
            let Some((pid, _)) = s.owner else { continue };
            let inc = s.owner_inc;
            if !shows(pid, inc) {
                continue;
            }
            let facts = self.socket_facts(s);
            let row = rows.entry((pid, inc)).or_insert_with(|| row_for(pid, inc));
            row.add_socket_facts(&facts.opened, &facts.tcp, &facts.networks);
        }
        // Processes whose sockets were all folded away keep their row (and totals) until the
        // process itself is forgotten.
        let all = self
            .processes
            .iter()
            .map(|(&pid, p)| (pid, p))
            .chain(self.past.iter().map(|(&(pid, _), p)| (pid, p)));
        for (pid, p) in all {
            let r = p.retired;
            // Connections that moved nothing still matter (a scan, refused connects).
            let opened = p.retired_sockets.opened;
            let moved = r.tx_bytes + r.rx_bytes + r.tx_wire_bytes + r.rx_wire_bytes > 0
                || opened.tcp + opened.udp > 0;
            if moved && shows(pid, p.inc) {
                rows.entry((pid, p.inc))
                    .or_insert_with(|| row_for(pid, p.inc));
            }
        }
        // Watched processes appear even before their first byte.
        if let Some(w) = &watched {
            for &pid in w {
                let inc = self.processes.get(&pid).map_or(0, |p| p.inc);
                if self.processes.contains_key(&pid) || self.filter.pids.contains(&pid) {
                    rows.entry((pid, inc)).or_insert_with(|| row_for(pid, inc));
                }
            }
        }

        let mut processes: Vec<ProcessRow> = rows.into_values().collect();
        // Two hash lookups a connection for its name: skipped while no DNS reply has been seen.
        let names = !self.dns.is_empty();
        for p in &mut processes {
            // From the process's totals, not the sum of its rows: sockets that ended within
            // the interval were folded away but their bytes moved in it.
            let mark = self
                .process_at(p.pid, p.incarnation)
                .map_or((0, 0), |x| x.rate_mark);
            let per_sec = |now: u64, then: u64| {
                if secs > 0.0 {
                    now.saturating_sub(then) as f64 / secs
                } else {
                    0.0
                }
            };
            p.tx_rate = per_sec(p.tx_bytes, mark.0);
            p.rx_rate = per_sec(p.rx_bytes, mark.1);
            p.sort_connections();
            p.limit_connections(limit);
            // Sockets keep their RTT buckets up to the last one used; rows show all of them.
            if !p.tcp.rtt_buckets.is_empty() {
                p.tcp.rtt_buckets.resize(netmon_common::RTT_BUCKETS, 0);
            }
            for c in p.connections.iter_mut().filter(|_| names) {
                // A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; DNS answered a.b.c.d.
                let ip = c.remote.map(|a| a.ip().to_canonical());
                if let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) {
                    c.remote_name = self.dns.lookup(Some(p.pid), ip).map(str::to_string);
                }
            }
        }
        processes.sort_by(|a, b| {
            snapshot::busiest_first(
                (a.tx_rate + a.rx_rate, a.tx_bytes + a.rx_bytes, a.pid as u64),
                (b.tx_rate + b.rx_rate, b.tx_bytes + b.rx_bytes, b.pid as u64),
            )
        });

        let mut totals = Totals::default();
        for p in &processes {
            totals.tx_bytes += p.tx_bytes;
            totals.rx_bytes += p.rx_bytes;
            totals.tx_rate += p.tx_rate;
            totals.rx_rate += p.rx_rate;
            totals.tx_wire_bytes += p.tx_wire_bytes;
            totals.rx_wire_bytes += p.rx_wire_bytes;
        }
        if watched.is_none() {
            totals.tx_bytes += self.forgotten.tx_bytes;
            totals.rx_bytes += self.forgotten.rx_bytes;
            totals.tx_wire_bytes += self.forgotten.tx_wire_bytes;
            totals.rx_wire_bytes += self.forgotten.rx_wire_bytes;
        }

        let snapshot = Snapshot {
            at_ms: self.now_ms,
            interval_ms,
            r#final: false,
            processes,
            totals,
            unattributed: self.unattributed_rows(),
            lost: self
                .lost
                .iter()
                .map(|(s, &count)| LostRow {
                    source: s.as_str().to_string(),
                    count,
                })
                .collect(),
            backend: String::new(),
            tcp_resets_without_socket: self.resets_without_socket,
            dns: DnsStats {
                names: self.dns.len(),
                evicted: self.dns.evicted(),
            },
        };

        for p in &snapshot.processes {
            if self.process_at(p.pid, p.incarnation).is_some() {
                self.process_at_mut(p.pid, p.incarnation).rate_mark = (p.tx_bytes, p.rx_bytes);
            }
        }
        for pl in self.payload.values_mut() {
            pl.tx.mark();
            pl.rx.mark();
        }
        for s in self.sockets.values_mut() {
            s.wire.tx_bytes.mark();
            s.wire.rx_bytes.mark();
            s.wire.tx_packets.mark();
            s.wire.rx_packets.mark();
        }
        self.prev_snapshot_ms = Some(self.now_ms);
        self.snapshots += 1;
        self.expire(watched.as_ref());
        snapshot
    }

    /// Kernel reasons plus wire bytes of sockets nobody owns, always listed.
    fn unattributed_rows(&self) -> Vec<UnattributedRow> {
        let mut map = self.unattributed.clone();
        for (&reason, &(bytes, packets)) in &self.unattributed_folded {
            let e = map.entry(reason).or_default();
            e.0 += bytes;
            e.1 += packets;
        }
        map.entry(UnattributedReason::UnknownOwner).or_default();
        for s in self.sockets.values().filter(|s| s.owner.is_none()) {
            let reason = if s.kernel {
                UnattributedReason::KernelSocket
            } else {
                UnattributedReason::UnknownOwner
            };
            let e = map.entry(reason).or_default();
            e.0 += s.wire.tx_bytes.total() + s.wire.rx_bytes.total();
            e.1 += s.wire.tx_packets.total() + s.wire.rx_packets.total();
        }
        map.entry(UnattributedReason::NoSocket).or_default();
        map.into_iter()
            .map(|(r, (bytes, packets))| UnattributedRow {
                reason: r.as_str().to_string(),
                bytes,
                packets,
            })
            .collect()
    }

    /// Folds closed sockets into their processes and forgets exited, unwatched processes, so
    /// memory stays bounded while every total stays monotonic.
    fn expire(&mut self, watched: Option<&HashSet<Pid>>) {
        let now = self.snapshots;
        let ttl = self.retention.closed_snapshots;
        let dead: Vec<Cookie> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.closed_at.is_some_and(|c| now > c + ttl))
            .map(|(&c, _)| c)
            .collect();
        if dead.is_empty() && self.processes.is_empty() && self.past.is_empty() {
            return;
        }
        for cookie in dead {
            self.fold_socket(cookie);
        }

        let ttl = self.retention.exited_snapshots;
        let expired = |p: &Process| p.exited_at.is_some_and(|e| now > e + ttl);
        let mut gone: Vec<(Pid, u32)> = self
            .processes
            .iter()
            .filter(|(pid, p)| expired(p) && watched.is_none_or(|w| !w.contains(pid)))
            .map(|(&pid, p)| (pid, p.inc))
            .collect();
        // A past incarnation has exited by definition; it goes after the same grace.
        gone.extend(
            self.past
                .iter()
                .filter(|(_, p)| p.exited_at.is_none_or(|e| now > e + ttl))
                .map(|(&k, _)| k),
        );
        if gone.is_empty() {
            return;
        }
        // Only forget a process once none of its sockets are left open.
        let busy: HashSet<(Pid, u32)> = self
            .payload
            .iter()
            .map(|(&(_, p), pl)| (p, pl.inc))
            .chain(
                self.sockets
                    .values()
                    .filter_map(|s| s.owner.map(|(p, _)| (p, s.owner_inc))),
            )
            .collect();
        for (pid, inc) in gone {
            if busy.contains(&(pid, inc)) {
                continue;
            }
            let removed = match self.processes.get(&pid) {
                Some(p) if p.inc == inc => {
                    self.children.remove(&pid);
                    self.processes.remove(&pid)
                }
                _ => self.past.remove(&(pid, inc)),
            };
            if let Some(p) = removed {
                let f = &mut self.forgotten;
                f.tx_bytes += p.retired.tx_bytes;
                f.rx_bytes += p.retired.rx_bytes;
                f.tx_wire_bytes += p.retired.tx_wire_bytes;
                f.rx_wire_bytes += p.retired.rx_wire_bytes;
            }
        }
    }
}

/// Where the index files a socket; None until its addresses are known.
fn ends(s: &Socket) -> Option<index::Ends> {
    Some((s.proto?, s.local?, s.remote))
}

fn connection_row(cookie: Cookie, s: Option<&Socket>, owner: bool, secs: f64) -> ConnectionRow {
    let mut row = ConnectionRow {
        cookie,
        owner,
        ..ConnectionRow::default()
    };
    if let Some(s) = s {
        row.proto = s.proto.unwrap_or(Proto::Other);
        row.local = s.local;
        row.remote = s.remote;
        row.state = s.state.map(TcpState::as_str);
        row.closed = s.closed_at.is_some();
        row.closed_since = s.closed_at;
        if owner {
            row.tx_wire_bytes = s.wire.tx_bytes.total();
            row.rx_wire_bytes = s.wire.rx_bytes.total();
            row.tx_packets = s.wire.tx_packets.total();
            row.rx_packets = s.wire.rx_packets.total();
            row.tx_wire_rate = s.wire.tx_bytes.rate(secs);
            row.rx_wire_rate = s.wire.rx_bytes.rate(secs);
        }
    }
    row
}

#[cfg(test)]
mod tests;
