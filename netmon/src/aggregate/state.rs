//! What the aggregator remembers about each socket and process between events: plain data, no
//! policy. Kept apart so the rules that change it (ingest, ownership, folding) and the view built
//! from it (view) can each be read against one definition of the state.
use crate::event::{Origin, Pid, Proto, TcpCounts, TcpState};

use super::counter::Counter;
use super::index;
use super::snapshot::ConnectionsOpened;

#[derive(Debug, Default)]
pub(super) struct Socket {
    pub(super) owner: Option<(Pid, Origin)>,
    /// Incarnation of the owner's pid when it became the owner.
    pub(super) owner_inc: u32,
    pub(super) proto: Option<Proto>,
    pub(super) local: Option<std::net::SocketAddr>,
    pub(super) remote: Option<std::net::SocketAddr>,
    pub(super) state: Option<TcpState>,
    pub(super) closed_at: Option<u64>,
    /// netns cookie from the kernel (owner records, accepts); None when only /proc saw it.
    pub(super) netns: Option<u64>,
    pub(super) kernel: bool,
    pub(super) wire: Wire,
    pub(super) tcp: TcpCounters,
    /// A TCP socket seen in SYN_SENT: this host opened the connection (not accepted it).
    pub(super) initiated: bool,
    /// The first process with payload through this socket, and whether others followed: what
    /// folding the socket away must collect from `Aggregator::payload` without scanning it.
    pub(super) payload_pid: Option<Pid>,
    pub(super) shared_payload: bool,
    /// A TCP socket this host accepted (the peer opened it).
    pub(super) accepted: bool,
    /// Aggregator time it was first seen, and when it ended (0: not yet).
    pub(super) born_ms: u64,
    pub(super) closed_ms: u64,
    /// History: end of the stretch its last flow record covered (`born_ms` before one), and
    /// what its records carried so far (absent until a long-lived one gives its first).
    pub(super) flow_at_ms: u64,
    pub(super) flow: Option<Box<super::flows::FlowMark>>,
    /// Re-created from a tombstone for counts that came after it was folded: its record is
    /// a later segment of a connection already recorded.
    pub(super) revived: bool,
    /// Looked at for contact events already.
    pub(super) contact_checked: bool,
    /// A UDP socket without a connected peer: what it exchanged with each remote.
    pub(super) peers: Option<Box<Peers>>,
}

/// Remotes of a UDP socket without a connected peer.
pub(super) type Peers = std::collections::HashMap<std::net::SocketAddr, Peer>;

/// What a peerless UDP socket exchanged with one remote: tx and rx payload, tx and rx wire
/// bytes, tx and rx packets (cumulative), what its flow records carried so far, and how many
/// records it had.
#[derive(Debug, Default, Clone)]
pub(super) struct Peer {
    pub(super) counts: [Counter; 6],
    pub(super) recorded: [u64; 6],
    pub(super) segment: u32,
}

impl Peer {
    /// Each count's growth since the last record.
    pub(super) fn unrecorded(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.counts[i].total().saturating_sub(self.recorded[i]))
    }
}

impl Socket {
    /// A socket first seen at `now_ms` (aggregator time).
    pub(super) fn born(now_ms: u64) -> Socket {
        Socket {
            born_ms: now_ms,
            flow_at_ms: now_ms,
            ..Socket::default()
        }
    }

    /// Marks it ended at the given interval and time, unless it already was.
    pub(super) fn close(&mut self, interval: u64, now_ms: u64) {
        if self.closed_at.is_none() {
            self.closed_at = Some(interval);
            self.closed_ms = now_ms;
        }
    }
}

/// Where the index files a socket; None until its addresses are known.
pub(super) fn ends(s: &Socket) -> Option<index::Ends> {
    Some((s.proto?, s.local?, s.remote))
}

/// A socket's TCP counters: the kernel's cumulative values, plus what earlier incarnations of
/// the map entry had counted when it was recreated (a value going down means a fresh entry).
/// Boxed and absent until the first stats arrive: most sockets never have any.
#[derive(Debug, Default, Clone)]
pub(super) struct TcpCounters {
    last: Option<Box<TcpCounts>>,
    carried: Option<Box<TcpCounts>>,
}

impl TcpCounters {
    pub(super) fn set(&mut self, c: &TcpCounts) {
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

    pub(super) fn totals(&self) -> TcpCounts {
        let mut t = self.carried.as_deref().cloned().unwrap_or_default();
        if let Some(l) = &self.last {
            t.add(l);
        }
        t
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct Wire {
    pub(super) tx_bytes: Counter,
    pub(super) rx_bytes: Counter,
    pub(super) tx_packets: Counter,
    pub(super) rx_packets: Counter,
}

impl Wire {
    /// The next rates are measured from here.
    pub(super) fn mark(&mut self) {
        self.tx_bytes.mark();
        self.rx_bytes.mark();
        self.tx_packets.mark();
        self.rx_packets.mark();
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct Payload {
    pub(super) tx: Counter,
    pub(super) rx: Counter,
    /// Incarnation of the pid that moved these bytes.
    pub(super) inc: u32,
}

/// Bytes of sockets that were closed and folded away, kept so process totals never shrink.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Retired {
    pub(super) tx_bytes: u64,
    pub(super) rx_bytes: u64,
    pub(super) tx_wire_bytes: u64,
    pub(super) rx_wire_bytes: u64,
    pub(super) tx_packets: u64,
    pub(super) rx_packets: u64,
}

/// Per-process counts of sockets folded away: connections, TCP behaviour, watched networks.
#[derive(Debug, Default, Clone)]
pub(super) struct RetiredSockets {
    pub(super) opened: ConnectionsOpened,
    pub(super) tcp: TcpCounts,
    /// Indexed like `Aggregator::networks`.
    pub(super) networks: Vec<u64>,
}

#[derive(Debug, Default)]
pub(super) struct Process {
    /// Incarnation of this pid: a pid reused by a new process starts a new one.
    pub(super) inc: u32,
    pub(super) start_time: u64,
    pub(super) ppid: Option<Pid>,
    pub(super) comm: String,
    pub(super) cmdline: String,
    pub(super) exe: String,
    pub(super) cgroup: String,
    pub(super) netns: u64,
    pub(super) uid: Option<u32>,
    pub(super) exited_at: Option<u64>,
    pub(super) retired: Retired,
    pub(super) retired_sockets: RetiredSockets,
    /// Payload totals (tx, rx) in the snapshot of the last interval that showed the process:
    /// its rates are measured from these, so bytes of sockets that ended and were folded away
    /// still count.
    pub(super) rate_mark: (u64, u64),
}
