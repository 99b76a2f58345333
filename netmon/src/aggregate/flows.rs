//! Flow records for the history store: a connection gives one when it ends (folded into its
//! process), and a long-lived one also gives one each [`FLOW_UPDATE_MS`] with what it moved
//! since the last. Each record carries only its own stretch, so sums over records are exact.
//!
//! Records are built here, where the socket's counters and its owner's identity still are, and
//! wait in `Flows::pending` until the caller takes them ([`Aggregator::take_flows`]). Their
//! times are in the aggregator's clock until taken: converting needs the wall clock, which
//! only the caller has.
use std::collections::HashSet;
use std::net::SocketAddr;

use super::Aggregator;
use super::state::Socket;
use crate::event::{Cookie, Pid, Proto, TcpCounts};
use crate::history::{FlowRecord, classify};

/// A connection open longer than this gives a record for each such stretch it moved bytes in,
/// so it shows up in the hour it moved them even if it stays open for a week.
pub const FLOW_UPDATE_MS: u64 = 60_000;

/// Records a caller should take as soon as this many wait (see [`Aggregator::flows_waiting`]).
pub const FLOW_CHUNK: usize = 4096;

/// Records not taken after this many are dropped (and counted): a writer that stopped taking
/// must not make the daemon grow without bound.
const MAX_PENDING: usize = 1 << 17;

#[derive(Debug, Default)]
pub(super) struct Flows {
    pub(super) enabled: bool,
    pending: Vec<FlowRecord>,
    /// Records dropped because nobody took them in time.
    pub(super) dropped: u64,
}

/// What a long-lived socket's earlier records already carried; absent until its first update
/// (most connections end before one).
#[derive(Debug, Default, Clone)]
pub(super) struct FlowMark {
    segment: u32,
    counts: Moved,
}

/// Cumulative counts of one connection, in the order records carry them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Moved {
    tx: u64,
    rx: u64,
    wire: [u64; 4],
    retransmits: u64,
    rtt_sum_us: u64,
    rtt_count: u64,
}

impl Moved {
    fn minus(&self, o: &Moved) -> Moved {
        Moved {
            tx: self.tx.saturating_sub(o.tx),
            rx: self.rx.saturating_sub(o.rx),
            wire: std::array::from_fn(|i| self.wire[i].saturating_sub(o.wire[i])),
            retransmits: self.retransmits.saturating_sub(o.retransmits),
            rtt_sum_us: self.rtt_sum_us.saturating_sub(o.rtt_sum_us),
            rtt_count: self.rtt_count.saturating_sub(o.rtt_count),
        }
    }

    fn is_zero(&self) -> bool {
        *self == Moved::default()
    }
}

impl Aggregator {
    /// Build flow records (see [`Aggregator::take_flows`]).
    pub fn with_flows(mut self) -> Self {
        self.flows.enabled = true;
        self
    }

    /// The flow records built since the last call, their times converted to Unix ms given the
    /// wall clock now. Records of processes the filter leaves out are not built.
    pub fn take_flows(&mut self, wall_now_ms: i64) -> Vec<FlowRecord> {
        let offset = wall_now_ms - self.now_ms as i64;
        let watched = self.watched();
        // A fresh buffer of the usual chunk: the taken one goes to the writer, and keeping its
        // capacity here would hold an interval's worth twice.
        let mut out = std::mem::replace(
            &mut self.flows.pending,
            Vec::with_capacity(if self.flows.enabled { FLOW_CHUNK } else { 0 }),
        );
        if let Some(w) = watched {
            out.retain(|f| w.contains(&f.pid));
        }
        for f in &mut out {
            f.opened_ms += offset;
            f.from_ms += offset;
            f.to_ms += offset;
        }
        out
    }

    /// Records built and not taken yet.
    pub fn flows_waiting(&self) -> usize {
        self.flows.pending.len()
    }

    /// Records dropped because they were not taken in time (see `MAX_PENDING`).
    pub fn flows_dropped(&self) -> u64 {
        self.flows.dropped
    }

    /// A socket that ends: its last record, with what it moved since its previous one.
    pub(super) fn flow_ended(&mut self, cookie: Cookie, s: &Socket) {
        if self.flows.enabled
            && let Some(r) = self.flow_record(cookie, s, true)
        {
            let (records, _) = self.by_peer(s, r);
            for r in records {
                self.push_flow(r);
            }
        }
    }

    /// Each interval: long-lived connections whose last record is older than
    /// [`FLOW_UPDATE_MS`] give one for what they moved since.
    pub(super) fn flow_updates(&mut self) {
        self.flow_updates_older_than(FLOW_UPDATE_MS);
    }

    /// When netmon stops, so history has every byte up to then: ended sockets still shown as
    /// closed rows fold now (giving their last record), and every live connection gives a
    /// record for what it moved since its last one (a restarted netmon counts the same
    /// connection from zero again, so nothing is counted twice).
    pub fn flush_flows(&mut self) {
        let closed: Vec<Cookie> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.closed_at.is_some())
            .map(|(&c, _)| c)
            .collect();
        for c in closed {
            self.fold_socket(c);
        }
        self.flow_updates_older_than(0);
    }

    fn flow_updates_older_than(&mut self, age_ms: u64) {
        if !self.flows.enabled {
            return;
        }
        let now = self.now_ms;
        let due: Vec<Cookie> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.closed_at.is_none() && is_connection(s))
            .filter(|(_, s)| now.saturating_sub(s.flow_at_ms) >= age_ms)
            .map(|(&c, _)| c)
            .collect();
        for cookie in due {
            let Some(s) = self.sockets.get(&cookie) else {
                continue;
            };
            let record = self.flow_record(cookie, s, false);
            let counts = self.moved(cookie, s);
            let (records, peers) = match record {
                Some(r) => self.by_peer(s, r),
                None => (Vec::new(), Vec::new()),
            };
            if let Some(s) = self.sockets.get_mut(&cookie) {
                s.flow_at_ms = now;
                if !records.is_empty() {
                    let m = s.flow.get_or_insert_default();
                    m.segment += 1;
                    m.counts = counts;
                }
                if let Some(all) = s.peers.as_deref_mut() {
                    for (addr, marks) in peers {
                        if let Some(p) = all.get_mut(&addr) {
                            p.recorded = marks;
                            p.segment += 1;
                        }
                    }
                }
            }
            for r in records {
                self.push_flow(r);
            }
        }
    }

    fn push_flow(&mut self, r: FlowRecord) {
        if self.flows.pending.len() >= MAX_PENDING {
            self.flows.dropped += 1;
        } else {
            self.flows.pending.push(r);
        }
    }

    /// The socket's counts since its previous record; None when there is nothing to say (an
    /// update that moved nothing, a socket that is not a connection, a process left out).
    fn flow_record(&self, cookie: Cookie, s: &Socket, ended: bool) -> Option<FlowRecord> {
        if !is_connection(s) {
            return None;
        }
        let owner = s.owner.map(|(p, _)| p);
        match owner {
            Some(pid)
                if self.filter.exclude_pids.contains(&pid)
                    || !self.selected_by_identity(pid, s.owner_inc) =>
            {
                return None;
            }
            // `--comm` and `--cgroup` select processes: a socket of no known process is not
            // one of theirs (as `--pid` already leaves it out).
            None if !self.filter.comms.is_empty() || !self.filter.cgroups.is_empty() => {
                return None;
            }
            _ => {}
        }
        let now = self.moved(cookie, s);
        let mark = s.flow.as_deref();
        let delta = now.minus(&mark.map(|m| m.counts).unwrap_or_default());
        if !ended && delta.is_zero() {
            return None;
        }
        let tcp = s.tcp.totals();
        let p = owner.and_then(|pid| self.process_at(pid, s.owner_inc));
        let cgroup = p.map(|p| p.cgroup.as_str()).unwrap_or_default();
        let (unit, container) = crate::identity::unit_and_container(cgroup);
        let remote = s.remote;
        let remote_ip = remote.map(|r| r.ip().to_canonical());
        let segment = mark.map_or(0, |m| m.segment) + u32::from(s.revived);
        Some(FlowRecord {
            host: String::new(),
            flow_id: cookie,
            segment,
            pid: owner.unwrap_or(0),
            start_time: p.map_or(0, |p| p.start_time),
            comm: p.map(|p| p.comm.clone()).unwrap_or_default(),
            cmdline: p.map(|p| p.cmdline.clone()).unwrap_or_default(),
            uid: p.and_then(|p| p.uid),
            unit,
            container,
            netns: s.netns.or(p.map(|p| p.netns)).unwrap_or(0),
            proto: match s.proto {
                Some(Proto::Tcp) => "tcp",
                Some(Proto::Udp) => "udp",
                _ => "other",
            }
            .into(),
            direction: match s.proto {
                Some(Proto::Tcp) if s.initiated => "out",
                Some(Proto::Tcp) if s.accepted => "in",
                Some(Proto::Udp) if remote.is_some() => "out",
                _ => "",
            }
            .into(),
            local: s.local,
            remote,
            remote_name: remote_ip.and_then(|ip| self.dns.peek(owner, ip).map(str::to_string)),
            class: remote_ip.map_or_else(String::new, |ip| classify(ip, &self.networks)),
            opened_ms: s.born_ms as i64,
            from_ms: s.flow_at_ms as i64,
            to_ms: if ended && s.closed_ms > 0 {
                s.closed_ms
            } else {
                self.now_ms
            } as i64,
            ended,
            tx_bytes: delta.tx,
            rx_bytes: delta.rx,
            tx_wire_bytes: delta.wire[0],
            rx_wire_bytes: delta.wire[1],
            tx_packets: delta.wire[2],
            rx_packets: delta.wire[3],
            handshake_us: (segment == 0 && tcp.handshake_count > 0)
                .then(|| tcp.handshake_sum_us / tcp.handshake_count),
            retransmits: delta.retransmits,
            rtt_us: (delta.rtt_count > 0).then(|| delta.rtt_sum_us / delta.rtt_count),
            closed_by: if ended { closed_by(&tcp) } else { None },
        })
    }

    /// A UDP socket without a connected peer gives one record per remote it exchanged
    /// datagrams with (what moved since that remote's last record), and `r`'s remainder
    /// without a remote only if something is left (bytes the kernel could not file under a
    /// remote). Any other socket gives `r`. Also returns the remotes recorded with their new
    /// marks.
    fn by_peer(&self, s: &Socket, r: FlowRecord) -> (Vec<FlowRecord>, Vec<(SocketAddr, [u64; 6])>) {
        let Some(peers) = s.peers.as_deref().filter(|_| s.remote.is_none()) else {
            return (vec![r], Vec::new());
        };
        let owner = s.owner.map(|(p, _)| p);
        // A socket bound outside the ephemeral range serves its remotes; any other one asked.
        let (lo, hi) = self.notices.ephemeral;
        let serves = s
            .local
            .is_some_and(|l| l.port() != 0 && !(lo..=hi).contains(&l.port()));
        let mut sorted: Vec<_> = peers.iter().collect();
        sorted.sort_by_key(|(a, _)| **a);
        let (mut records, mut marks) = (Vec::new(), Vec::new());
        let mut rest = [
            r.tx_bytes,
            r.rx_bytes,
            r.tx_wire_bytes,
            r.rx_wire_bytes,
            r.tx_packets,
            r.rx_packets,
        ];
        for (&addr, p) in sorted {
            let d = p.unrecorded();
            if d == [0; 6] {
                continue;
            }
            for (left, moved) in rest.iter_mut().zip(d) {
                *left = left.saturating_sub(moved);
            }
            let ip = addr.ip().to_canonical();
            records.push(FlowRecord {
                segment: p.segment,
                direction: if serves { "in" } else { "out" }.into(),
                remote: Some(addr),
                remote_name: self.dns.peek(owner, ip).map(str::to_string),
                class: classify(ip, &self.networks),
                tx_bytes: d[0],
                rx_bytes: d[1],
                tx_wire_bytes: d[2],
                rx_wire_bytes: d[3],
                tx_packets: d[4],
                rx_packets: d[5],
                ..r.clone()
            });
            marks.push((addr, std::array::from_fn(|i| p.recorded[i] + d[i])));
        }
        if records.is_empty() || rest != [0; 6] {
            let [tx, rx, tx_wire, rx_wire, tx_packets, rx_packets] = rest;
            records.push(if records.is_empty() {
                r
            } else {
                FlowRecord {
                    tx_bytes: tx,
                    rx_bytes: rx,
                    tx_wire_bytes: tx_wire,
                    rx_wire_bytes: rx_wire,
                    tx_packets,
                    rx_packets,
                    ..r
                }
            });
        }
        (records, marks)
    }

    /// The connection's cumulative counts: payload of every process through it, wire and TCP.
    fn moved(&self, cookie: Cookie, s: &Socket) -> Moved {
        let (tx, rx) = self.socket_payload(cookie, s);
        let tcp = s.tcp.totals();
        Moved {
            tx,
            rx,
            wire: [
                s.wire.tx_bytes.total(),
                s.wire.rx_bytes.total(),
                s.wire.tx_packets.total(),
                s.wire.rx_packets.total(),
            ],
            retransmits: tcp.retransmits,
            rtt_sum_us: tcp.rtt_sum_us,
            rtt_count: tcp.rtt_count,
        }
    }

    /// Payload (sent, received) of every process through the socket, found without a scan
    /// unless it was shared.
    pub(super) fn socket_payload(&self, cookie: Cookie, s: &Socket) -> (u64, u64) {
        let (mut tx, mut rx) = (0, 0);
        let mut add = |pid: Pid| {
            if let Some(pl) = self.payload.get(&(cookie, pid)) {
                tx += pl.tx.total();
                rx += pl.rx.total();
            }
        };
        if s.shared_payload {
            let pids: HashSet<Pid> = self
                .payload
                .keys()
                .filter(|(c, _)| *c == cookie)
                .map(|&(_, p)| p)
                .collect();
            pids.into_iter().for_each(&mut add);
        } else if let Some(p) = s.payload_pid {
            add(p);
        }
        (tx, rx)
    }
}

/// A TCP connection with a peer, or a UDP socket (connected or not): what history records.
fn is_connection(s: &Socket) -> bool {
    match s.proto {
        Some(Proto::Tcp) => s.remote.is_some(),
        Some(Proto::Udp) => true,
        _ => false,
    }
}

/// How a TCP connection ended, from its counters: a reset wins over a FIN exchange.
fn closed_by(t: &TcpCounts) -> Option<String> {
    let by = if t.resets_sent > 0 {
        "reset-sent"
    } else if t.resets_received > 0 {
        "reset-received"
    } else if t.closes_local > 0 {
        "local"
    } else if t.closes_remote > 0 {
        "remote"
    } else {
        return None;
    };
    Some(by.into())
}
