//! The events every source produces and the aggregator consumes.
//!
//! Sources (kernel, procfs, replay) only translate their origin into these; all state lives in
//! the aggregator. Counter events carry cumulative values, so a source may re-send them (e.g.
//! each time it polls a map) and the aggregator turns them into deltas and rates. The enum is
//! serde-tagged so a recorded stream (JSON lines) replays exactly (`source::replay`).
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use crate::tcp_counts::TcpCounts;

/// Kernel socket cookie: unique per socket for the life of the machine (not per netns).
pub type Cookie = u64;
/// A process id (thread-group id).
pub type Pid = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Other,
}

impl Proto {
    pub fn from_ipproto(p: u16) -> Self {
        match p {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            _ => Proto::Other,
        }
    }
}

/// Which hook or scan told us a fact (mirrors `netmon_common::origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    SockCreate,
    PostBind,
    Connect,
    Sendmsg,
    Recvmsg,
    TpBtf,
    Tracepoint,
    Fentry,
    Kprobe,
    Procfs,
    /// Inferred: an accepted connection given to the owner of its listener.
    Listener,
    Unknown,
}

impl Origin {
    pub fn from_raw(v: u8) -> Self {
        use netmon_common::origin as o;
        match v {
            o::SOCK_CREATE => Origin::SockCreate,
            o::POST_BIND => Origin::PostBind,
            o::CONNECT => Origin::Connect,
            o::SENDMSG => Origin::Sendmsg,
            o::RECVMSG => Origin::Recvmsg,
            o::TP_BTF => Origin::TpBtf,
            o::TRACEPOINT => Origin::Tracepoint,
            o::FENTRY => Origin::Fentry,
            o::KPROBE => Origin::Kprobe,
            o::PROCFS => Origin::Procfs,
            _ => Origin::Unknown,
        }
    }
}

/// TCP states as the kernel numbers them (include/net/tcp_states.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    Unknown,
}

impl TcpState {
    pub fn from_kernel(v: u32) -> Self {
        use TcpState::*;
        match v {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            12 => NewSynRecv,
            _ => Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        use TcpState::*;
        match self {
            Established => "ESTABLISHED",
            SynSent => "SYN_SENT",
            SynRecv => "SYN_RECV",
            FinWait1 => "FIN_WAIT1",
            FinWait2 => "FIN_WAIT2",
            TimeWait => "TIME_WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE_WAIT",
            LastAck => "LAST_ACK",
            Listen => "LISTEN",
            Closing => "CLOSING",
            NewSynRecv => "NEW_SYN_RECV",
            Unknown => "UNKNOWN",
        }
    }
}

/// Why bytes could not be given to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnattributedReason {
    /// Packets with no socket at all (forwarded, kernel RSTs, time-wait ACKs).
    NoSocket,
    /// Payload seen before the socket had a cookie (kprobe / classic tracepoint rungs).
    NoCookie,
    /// A socket whose owner no hook and no /proc scan revealed.
    UnknownOwner,
    /// The kernel's own control sockets (TIME_WAIT ACKs, RSTs): no process sent these.
    KernelSocket,
    /// The per-process payload map was full.
    PayloadMapFull,
    /// The per-socket wire map was full.
    WireMapFull,
}

impl UnattributedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnattributedReason::NoSocket => "no_socket",
            UnattributedReason::NoCookie => "no_cookie",
            UnattributedReason::UnknownOwner => "unknown_owner",
            UnattributedReason::KernelSocket => "kernel_socket",
            UnattributedReason::PayloadMapFull => "payload_map_full",
            UnattributedReason::WireMapFull => "wire_map_full",
        }
    }
}

/// Where records were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossSource {
    /// Kernel ring buffer full (user space too slow).
    RingBuffer,
    /// A kernel map could not take a new entry.
    OwnersMap,
    PayloadMap,
    WireMap,
    /// The per-socket TCP statistics map was full.
    TcpStatsMap,
    /// The packet-capture ring buffer was full (`netmon capture`).
    CaptureRing,
    /// The released-sockets map was full (their entries are freed only if the event arrived).
    ReleasedMap,
    /// The DNS-reply ring buffer was full: those replies' names were not learned.
    DnsRing,
    /// The per-process map of ended sockets' late packets was full.
    LateMap,
    /// The map of peerless UDP sockets' remotes was full: those datagrams count for their
    /// socket and process, but their flow records carry no remote.
    UdpPeersMap,
    /// The source → aggregator channel was full.
    Channel,
}

impl LossSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LossSource::RingBuffer => "ring_buffer",
            LossSource::OwnersMap => "owners_map",
            LossSource::PayloadMap => "payload_map",
            LossSource::WireMap => "wire_map",
            LossSource::TcpStatsMap => "tcp_stats_map",
            LossSource::CaptureRing => "capture_ring",
            LossSource::ReleasedMap => "released_map",
            LossSource::DnsRing => "dns_ring",
            LossSource::LateMap => "late_map",
            LossSource::UdpPeersMap => "udp_peers_map",
            LossSource::Channel => "channel",
        }
    }
}

/// A socket's owner as carried by [`Event::SocketFinal`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalOwner {
    pub pid: Pid,
    pub uid: u32,
    pub comm: String,
    pub netns: u64,
    pub origin: Origin,
    pub ppid: Pid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Time has passed. `at_ms` is monotonic milliseconds since the source started; the
    /// aggregator computes rates from it, so tests control time through the events themselves.
    Tick {
        at_ms: u64,
    },
    /// A socket belongs to a process. The first owner seen wins for wire bytes; payload bytes
    /// are always split by the process that moved them (`Payload`).
    SocketOwner {
        cookie: Cookie,
        pid: Pid,
        uid: u32,
        comm: String,
        /// netns cookie (kernel) or netns inode (procfs); 0 when unknown.
        netns: u64,
        origin: Origin,
        /// The owner's parent process; 0 when unknown.
        #[serde(default)]
        ppid: Pid,
    },
    /// A socket's protocol and addresses, local first.
    SocketEndpoints {
        cookie: Cookie,
        proto: Proto,
        local: SocketAddr,
        remote: Option<SocketAddr>,
    },
    SocketState {
        cookie: Cookie,
        state: TcpState,
    },
    /// A TCP connection was accepted (in softirq: no process is known yet). Until a process
    /// moves a byte on it, it belongs to the owner of the listener on its port and namespace.
    SocketAccepted {
        cookie: Cookie,
        local: SocketAddr,
        remote: SocketAddr,
        /// netns cookie; 0 when unknown.
        netns: u64,
    },
    /// A socket the kernel uses for itself (a per-netns raw control socket): its packets are
    /// nobody's, and are shown as such rather than as an owner netmon missed.
    KernelSocket {
        cookie: Cookie,
    },
    /// Cumulative exact payload moved by `pid` through socket `cookie`.
    Payload {
        cookie: Cookie,
        pid: Pid,
        tx_bytes: u64,
        rx_bytes: u64,
        tx_calls: u64,
        rx_calls: u64,
    },
    /// Cumulative L3 bytes (headers included) and packets of socket `cookie`.
    Wire {
        cookie: Cookie,
        tx_bytes: u64,
        rx_bytes: u64,
        tx_packets: u64,
        rx_packets: u64,
    },
    /// The socket was released; its counters will not grow (much) further.
    SocketClosed {
        cookie: Cookie,
    },
    /// The socket ended: its last counters, all at once (the kernel forgot it when it sent
    /// them). Counts for the same cookie after this start from zero again.
    SocketFinal {
        cookie: Cookie,
        /// The owner as the kernel recorded it, when it did.
        owner: Option<FinalOwner>,
        /// Payload per process that moved bytes: (pid, tx, rx), cumulative.
        payload: Vec<(Pid, u64, u64)>,
        /// Wire bytes and packets: tx, rx bytes, tx, rx packets.
        wire: Option<[u64; 4]>,
        // Boxed, like TcpStats's: the largest part, and most events are far smaller (every
        // event moves through vectors and a channel at the size of the largest variant).
        tcp: Option<Box<TcpCounts>>,
    },
    /// What ended sockets of a process still sent and received (an abortive close's reset
    /// leaves after the final record): growth since the last such event for the process.
    Late {
        pid: Pid,
        /// tx, rx bytes, tx, rx packets.
        wire: [u64; 4],
        resets_sent: u64,
        resets_received: u64,
    },
    /// Identity of a process (from /proc, or from the kernel for short-lived ones).
    Process {
        pid: Pid,
        ppid: Pid,
        comm: String,
        cmdline: String,
        uid: u32,
        /// Executable path; empty when unknown (kernel-only or unreadable).
        #[serde(default)]
        exe: String,
        /// cgroup v2 path (`/system.slice/nginx.service`); empty when unknown.
        #[serde(default)]
        cgroup: String,
        /// Network namespace inode; 0 when unknown.
        #[serde(default)]
        netns: u64,
        /// Clock ticks after boot at which it started (/proc stat); 0 when unknown. A pid seen
        /// again with another start time is another process.
        #[serde(default)]
        start_time: u64,
    },
    ProcessForked {
        parent: Pid,
        child: Pid,
    },
    ProcessExited {
        pid: Pid,
    },
    /// What a UDP socket without a connected peer exchanged with one remote, cumulative:
    /// payload (UDP data) and L3 bytes, and datagrams, each way.
    UdpPeer {
        cookie: Cookie,
        remote: SocketAddr,
        /// tx bytes, rx bytes, tx wire bytes, rx wire bytes, tx packets, rx packets.
        counts: [u64; 6],
    },
    /// Cumulative TCP behaviour of socket `cookie` (retransmits, resets, RTT samples).
    TcpStats {
        cookie: Cookie,
        #[serde(flatten)]
        stats: Box<TcpCounts>,
    },
    /// One captured packet (`netmon capture`): header snapshot and where it was seen.
    Packet(PacketRecord),
    /// Capture programs' cumulative counters: what they skipped, and per-interface totals.
    CaptureStats(CaptureStats),
    /// A DNS reply received by a socket of `pid` (0: owner unknown): `name` resolves to `addrs`.
    DnsAnswer {
        pid: Pid,
        name: String,
        addrs: Vec<std::net::IpAddr>,
    },
    /// Cumulative RSTs the kernel sent for segments that matched no socket.
    ResetsWithoutSocket {
        count: u64,
    },
    /// Cumulative bytes/packets the kernel saw but could not attribute.
    Unattributed {
        reason: UnattributedReason,
        bytes: u64,
        packets: u64,
    },
    /// Cumulative number of records lost at `source`.
    Lost {
        source: LossSource,
        count: u64,
    },
}

/// A captured packet as the kernel handed it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRecord {
    /// Wall-clock nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Socket cookie where the hook knew the socket (TC egress of local traffic), else 0.
    pub cookie: Cookie,
    pub ifindex: u32,
    /// Sent (egress) or received (ingress).
    pub egress: bool,
    /// "tc" or "xdp".
    pub hook: String,
    pub orig_len: u32,
    /// Owner the kernel found for `cookie` (0 when none).
    pub pid: Pid,
    pub comm: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStats {
    pub sampled_out: u64,
    pub rate_limited: u64,
    pub ring_full: u64,
    pub filtered: u64,
    pub self_skipped: u64,
    /// (ifindex, egress, packets, bytes) for every interface and direction seen.
    pub interfaces: Vec<(u32, bool, u64, u64)>,
}
