//! The view: a [`Snapshot`] built from the state, for the processes the filter selects. Rows
//! are keyed by (pid, incarnation) so a reused pid shows one row per process; process rates
//! come from the marks the last interval left (`Process::rate_mark`), connection rates from
//! the counters' marks. Building the view reads the state only; what moves on between two
//! snapshots is `Aggregator::advance`.
use std::collections::{BTreeMap, HashSet};

use super::Aggregator;
use super::snapshot::{
    self, ConnectionRow, DnsStats, LostRow, PeerRow, ProcessRow, Snapshot, Totals, UnattributedRow,
};
use super::state::{Process, Socket};
use crate::event::{Cookie, Pid, Proto, TcpState, UnattributedReason};

/// Rows under construction, by (pid, incarnation).
type Rows = BTreeMap<(Pid, u32), ProcessRow>;

impl Aggregator {
    /// Time the rates of the next snapshot cover.
    fn interval_ms(&self) -> u64 {
        self.interval_start_ms
            .map_or(self.now_ms, |p| self.now_ms.saturating_sub(p))
    }

    pub(super) fn build_snapshot(&self, watched: Option<&HashSet<Pid>>) -> Snapshot {
        let interval_ms = self.interval_ms();
        let secs = interval_ms as f64 / 1000.0;
        let mut rows = Rows::new();
        self.add_payload_connections(&mut rows, watched, secs);
        self.add_idle_sockets(&mut rows, watched, secs);
        self.add_live_socket_facts(&mut rows, watched);
        self.add_folded_processes(&mut rows, watched);
        self.add_watched_processes(&mut rows, watched);

        let mut processes: Vec<ProcessRow> = rows.into_values().collect();
        for p in &mut processes {
            self.finish_row(p, secs);
        }
        processes.sort_by(|a, b| {
            snapshot::busiest_first(
                (a.tx_rate + a.rx_rate, a.tx_bytes + a.rx_bytes, a.pid as u64),
                (b.tx_rate + b.rx_rate, b.tx_bytes + b.rx_bytes, b.pid as u64),
            )
        });
        let totals = self.totals(&processes, watched.is_none());

        Snapshot {
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
            hosts: self.host_rows(watched),
            history: None,
        }
    }

    /// Pids the snapshot shows; `None` means all.
    pub(super) fn watched(&self) -> Option<HashSet<Pid>> {
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

    /// Whether the process `pid` was in incarnation `inc` has a row.
    pub(super) fn shows(&self, watched: Option<&HashSet<Pid>>, pid: Pid, inc: u32) -> bool {
        watched.is_none_or(|w| w.contains(&pid))
            && !self.filter.exclude_pids.contains(&pid)
            && self.selected_by_identity(pid, inc)
    }

    /// `--comm` and `--cgroup`: a process whose identity is not known yet is not shown.
    /// `--exclude-comm` and `--exclude-cgroup`: one whose identity is not known yet is.
    pub(super) fn selected_by_identity(&self, pid: Pid, inc: u32) -> bool {
        let f = &self.filter;
        let p = self.process_at(pid, inc);
        let in_cgroup = |pats: &[String], p: &super::state::Process| {
            pats.iter()
                .any(|pat| crate::identity::cgroup_matches(pat, &p.cgroup))
        };
        if let Some(p) = p
            && (f.exclude_comms.contains(&p.comm) || in_cgroup(&f.exclude_cgroups, p))
        {
            return false;
        }
        if f.comms.is_empty() && f.cgroups.is_empty() {
            return true;
        }
        let Some(p) = p else {
            return false;
        };
        (f.comms.is_empty() || f.comms.contains(&p.comm))
            && (f.cgroups.is_empty() || in_cgroup(&f.cgroups, p))
    }

    /// Payload: exact bytes per (socket, process), one connection row each.
    fn add_payload_connections(&self, rows: &mut Rows, watched: Option<&HashSet<Pid>>, secs: f64) {
        for (&(cookie, pid), pl) in &self.payload {
            if !self.shows(watched, pid, pl.inc) {
                continue;
            }
            let sock = self.sockets.get(&cookie);
            let owner =
                sock.is_some_and(|s| s.owner.map(|(p, _)| p) == Some(pid) && s.owner_inc == pl.inc);
            let mut conn = connection_row(cookie, sock, owner, secs);
            conn.tx_bytes = pl.tx.total();
            conn.rx_bytes = pl.rx.total();
            conn.tx_rate = pl.tx.rate(secs);
            conn.rx_rate = pl.rx.rate(secs);
            self.add_connection(rows, (pid, pl.inc), conn);
        }
    }

    /// Sockets owned by a shown process that moved no payload (yet): wire bytes only.
    fn add_idle_sockets(&self, rows: &mut Rows, watched: Option<&HashSet<Pid>>, secs: f64) {
        for (&cookie, s) in &self.sockets {
            let Some((pid, _)) = s.owner else { continue };
            let inc = s.owner_inc;
            if !self.shows(watched, pid, inc)
                || self
                    .payload
                    .get(&(cookie, pid))
                    .is_some_and(|pl| pl.inc == inc)
            {
                continue;
            }
            let conn = connection_row(cookie, Some(s), true, secs);
            self.add_connection(rows, (pid, inc), conn);
        }
    }

    fn add_connection(&self, rows: &mut Rows, (pid, inc): (Pid, u32), conn: ConnectionRow) {
        let row = rows
            .entry((pid, inc))
            .or_insert_with(|| self.process_row(pid, inc));
        row.add(
            conn,
            self.retention.closed_snapshots,
            self.intervals,
            self.max_connections,
        );
    }

    /// Connections opened, TCP behaviour and watched networks of every owned socket.
    fn add_live_socket_facts(&self, rows: &mut Rows, watched: Option<&HashSet<Pid>>) {
        for s in self.sockets.values() {
            let Some((pid, _)) = s.owner else { continue };
            let inc = s.owner_inc;
            if !self.shows(watched, pid, inc) {
                continue;
            }
            let facts = self.socket_facts(s);
            let row = rows
                .entry((pid, inc))
                .or_insert_with(|| self.process_row(pid, inc));
            row.add_socket_facts(&facts.opened, &facts.tcp, &facts.networks);
        }
    }

    /// Processes whose sockets were all folded away keep their row (and totals) until the
    /// process itself is forgotten.
    fn add_folded_processes(&self, rows: &mut Rows, watched: Option<&HashSet<Pid>>) {
        let all = self
            .processes
            .iter()
            .map(|(&pid, p)| (pid, p))
            .chain(self.past.iter().map(|(&(pid, _), p)| (pid, p)));
        for (pid, p) in all {
            if moved_anything(p) && self.shows(watched, pid, p.inc) {
                rows.entry((pid, p.inc))
                    .or_insert_with(|| self.process_row(pid, p.inc));
            }
        }
    }

    /// Watched processes appear even before their first byte.
    fn add_watched_processes(&self, rows: &mut Rows, watched: Option<&HashSet<Pid>>) {
        let Some(w) = watched else { return };
        for &pid in w {
            let inc = self.processes.get(&pid).map_or(0, |p| p.inc);
            if self.processes.contains_key(&pid) || self.filter.pids.contains(&pid) {
                rows.entry((pid, inc))
                    .or_insert_with(|| self.process_row(pid, inc));
            }
        }
    }

    /// A process's row before its live sockets are added: identity and folded totals.
    fn process_row(&self, pid: Pid, inc: u32) -> ProcessRow {
        let p = self.process_at(pid, inc);
        let retired = p.map(|p| p.retired).unwrap_or_default();
        let text = |f: fn(&Process) -> &String| p.map(|p| f(p).clone()).unwrap_or_default();
        let cgroup = text(|p| &p.cgroup);
        let (unit, container) = crate::identity::unit_and_container(&cgroup);
        let sockets = p.map(|p| p.retired_sockets.clone()).unwrap_or_default();
        let uid = p.and_then(|p| p.uid);
        ProcessRow {
            pid,
            incarnation: inc,
            ppid: p.and_then(|p| p.ppid).unwrap_or(0),
            uid,
            user: uid.map(|u| self.users.name(u)).unwrap_or_default(),
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
            networks: self
                .networks
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
    }

    /// A row with all its connections: its rates, its listed connections and their names.
    fn finish_row(&self, p: &mut ProcessRow, secs: f64) {
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
        p.limit_connections(self.max_connections);
        // Sockets keep their RTT buckets up to the last one used; rows show all of them.
        if !p.tcp.rtt_buckets.is_empty() {
            p.tcp.rtt_buckets.resize(netmon_common::RTT_BUCKETS, 0);
        }
        // Two hash lookups a connection for its name: skipped while no DNS reply has been seen.
        if self.dns.is_empty() {
            return;
        }
        for c in &mut p.connections {
            // A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; DNS answered a.b.c.d.
            let ip = c.remote.map(|a| a.ip().to_canonical());
            if let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) {
                c.remote_name = self.dns.peek(Some(p.pid), ip).map(str::to_string);
            }
        }
    }

    /// Marks the names a snapshot showed as recently used, so the bounded table evicts names
    /// nobody is connected to first. Looked up in the order the rows were built, (pid,
    /// incarnation) then listed connection, so the table ends up as if the snapshot had used
    /// them itself.
    pub(super) fn keep_shown_names(&mut self, shown: &Snapshot) {
        if self.dns.is_empty() {
            return;
        }
        let mut rows: Vec<&ProcessRow> = shown.processes.iter().collect();
        rows.sort_by_key(|p| (p.pid, p.incarnation));
        for p in rows {
            for c in &p.connections {
                let ip = c.remote.map(|a| a.ip().to_canonical());
                if let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) {
                    self.dns.lookup(Some(p.pid), ip);
                }
            }
        }
    }

    /// Sums of the rows; with no `--pid` filter, forgotten processes' bytes too, so the
    /// all-process totals never go down.
    fn totals(&self, processes: &[ProcessRow], all: bool) -> Totals {
        let mut totals = Totals::default();
        for p in processes {
            totals.tx_bytes += p.tx_bytes;
            totals.rx_bytes += p.rx_bytes;
            totals.tx_rate += p.tx_rate;
            totals.rx_rate += p.rx_rate;
            totals.tx_wire_bytes += p.tx_wire_bytes;
            totals.rx_wire_bytes += p.rx_wire_bytes;
        }
        if all {
            totals.tx_bytes += self.forgotten.tx_bytes;
            totals.rx_bytes += self.forgotten.rx_bytes;
            totals.tx_wire_bytes += self.forgotten.tx_wire_bytes;
            totals.rx_wire_bytes += self.forgotten.rx_wire_bytes;
        }
        totals
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
}

/// Bytes moved or connections opened by sockets already folded away: a scan or refused
/// connects still matter.
fn moved_anything(p: &Process) -> bool {
    let r = p.retired;
    let opened = p.retired_sockets.opened;
    r.tx_bytes + r.rx_bytes + r.tx_wire_bytes + r.rx_wire_bytes > 0 || opened.tcp + opened.udp > 0
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
        if let Some(peers) = s.peers.as_deref().filter(|_| owner) {
            row.peers = peers
                .iter()
                .map(|(&remote, p)| PeerRow {
                    remote,
                    tx_bytes: p.counts[0].total(),
                    rx_bytes: p.counts[1].total(),
                    tx_rate: p.counts[0].rate(secs),
                    rx_rate: p.counts[1].rate(secs),
                })
                .collect();
            row.peers.sort_by(|a, b| {
                (b.tx_rate + b.rx_rate)
                    .total_cmp(&(a.tx_rate + a.rx_rate))
                    .then((b.tx_bytes + b.rx_bytes).cmp(&(a.tx_bytes + a.rx_bytes)))
                    .then(a.remote.cmp(&b.remote))
            });
        }
    }
    row
}
