//! The only contract between netmon's kernel programs and its user space.
//!
//! Every type is `#[repr(C)]`, `Copy` and padded explicitly so both sides agree on the layout
//! byte for byte. Counters in maps are cumulative; user space computes deltas and rates.
#![no_std]

pub const COMM_LEN: usize = 16;

/// Names of the maps user space opens.
pub mod maps {
    /// `RingBuf` of [`crate::KernelEvent`].
    pub const EVENTS: &str = "EVENTS";
    /// `HashMap<u64 cookie, SockOwner>`: who owns a socket.
    pub const OWNERS: &str = "OWNERS";
    /// `HashMap<PidSockKey, PayloadStats>`: exact payload bytes per (socket, process).
    pub const PAYLOAD: &str = "PAYLOAD";
    /// `HashMap<u64 cookie, WireStats>`: L3 bytes and packets per socket from cgroup_skb.
    pub const WIRE: &str = "WIRE";
    /// `HashMap<u64 cookie, u64 tgid>`: TCP sockets released by their last process (the
    /// value) but not CLOSE yet; their final record goes out when they reach CLOSE. Also how
    /// user space frees them the slow way when that record cannot be sent.
    pub const RELEASED: &str = "RELEASED";
    /// `PerCpuArray<u64>` indexed by [`crate::counter`].
    pub const COUNTERS: &str = "COUNTERS";
    /// `HashMap<u64 cookie, TcpStats>`: retransmits, resets and RTT samples per TCP socket.
    pub const TCP_STATS: &str = "TCP_STATS";
    /// `RingBuf` of [`crate::CaptureRecord`]: packet header snapshots for `netmon capture`.
    pub const CAPTURE: &str = "CAPTURE";
    /// `Array<CaptureConfig>` with one entry: what the capture programs copy and skip.
    pub const CAPTURE_CONFIG: &str = "CAPTURE_CONFIG";
    /// `HashMap<u64 (ifindex << 1 | egress), IfaceStats>`: every packet the capture programs saw.
    pub const IFACE_STATS: &str = "IFACE_STATS";
    /// `RingBuf` of [`crate::DnsRecord`]: DNS replies as the asking socket received them.
    pub const DNS: &str = "DNS";
    /// `LruHashMap<u64 cookie, u32 owner tgid>`: sockets whose final record was sent and whose
    /// entries were freed. Packets the kernel still sends for them (the RST of an abortive
    /// close goes out after the state is CLOSE) are counted in `LATE`, not in a new entry
    /// nobody would ever free. An eviction only sends such a packet back to `WIRE`.
    pub const ENDED: &str = "ENDED";
    /// `HashMap<u32 tgid, LateStats>`: what ended sockets still did, per owner process.
    pub const LATE: &str = "LATE";
    /// `HashMap<UdpPeerKey, UdpPeerStats>`: what a UDP socket without a connected peer
    /// exchanged with each remote (a DNS server and its clients). User space deletes a
    /// socket's entries after its end.
    pub const UDP_PEERS: &str = "UDP_PEERS";
}

/// Indexes into the `COUNTERS` per-CPU array: things the kernel saw but could not record or
/// attribute. User space sums the CPUs and shows every one of them.
pub mod counter {
    /// A ring-buffer reservation failed (consumer too slow): events lost.
    pub const RINGBUF_FULL: u32 = 0;
    /// An OWNERS insert failed (map full).
    pub const OWNERS_FULL: u32 = 1;
    /// A PAYLOAD insert failed (map full): bytes below were not recorded per process.
    pub const PAYLOAD_FULL: u32 = 2;
    /// A WIRE insert failed (map full).
    pub const WIRE_FULL: u32 = 3;
    /// cgroup_skb packets without a socket (forwarded, kernel-generated RST, time-wait ACK).
    pub const NO_SOCKET_BYTES: u32 = 4;
    pub const NO_SOCKET_PACKETS: u32 = 5;
    /// Payload bytes whose socket had no cookie yet (kprobe / classic tracepoint rungs).
    pub const NO_COOKIE_BYTES: u32 = 6;
    /// Payload bytes lost because PAYLOAD was full.
    pub const PAYLOAD_FULL_BYTES: u32 = 7;
    /// Wire bytes lost because WIRE was full.
    pub const WIRE_FULL_BYTES: u32 = 8;
    /// A TCP_STATS insert failed (map full): that socket's retransmits/resets/RTT are missing.
    pub const TCP_STATS_FULL: u32 = 9;
    /// RSTs the kernel sent with no socket at all (a closed port answering a SYN or stray segment).
    pub const RST_NO_SOCKET: u32 = 10;
    /// Capture: packets not copied because of `--sample` (1 in N kept).
    pub const CAPTURE_SAMPLED_OUT: u32 = 11;
    /// Capture: packets not copied because the per-CPU rate limit was reached.
    pub const CAPTURE_RATE_LIMITED: u32 = 12;
    /// Capture: packets a copy was wanted for but the ring buffer was full.
    pub const CAPTURE_RING_FULL: u32 = 13;
    /// Capture: packets the in-kernel filter rejected (not a loss: the user asked for that).
    pub const CAPTURE_FILTERED: u32 = 14;
    /// Capture: netmon's own packets, skipped unless --include-self.
    pub const CAPTURE_SELF: u32 = 15;
    /// A RELEASED insert failed (map full): that socket's entries are freed only if its
    /// final record arrives.
    pub const RELEASED_FULL: u32 = 16;
    /// A DNS reply was received but the DNS ring was full: its names are not learned.
    pub const DNS_RING_FULL: u32 = 17;
    /// A LATE entry could not be created (map full): wire bytes of ended sockets not
    /// attributed; the bytes themselves are in `LATE_FULL_BYTES`.
    pub const LATE_FULL: u32 = 18;
    pub const LATE_FULL_BYTES: u32 = 19;
    /// A UDP_PEERS entry could not be created (map full): that datagram's bytes are in its
    /// socket's totals but not under its remote.
    pub const UDP_PEERS_FULL: u32 = 20;
    pub const UDP_PEERS_FULL_BYTES: u32 = 21;
    /// Datagrams of unconnected UDP sockets whose remote could not be read (IPv6 extension
    /// headers): in the socket's totals, not under a remote.
    pub const UDP_PEERS_UNPARSED_BYTES: u32 = 22;
    pub const COUNT: u32 = 24;
}

/// Which hook recorded a fact; lets `doctor` and the tests tell the ladder's rungs apart.
pub mod origin {
    pub const SOCK_CREATE: u8 = 1;
    pub const POST_BIND: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const SENDMSG: u8 = 4;
    pub const RECVMSG: u8 = 5;
    pub const TP_BTF: u8 = 6;
    pub const TRACEPOINT: u8 = 7;
    pub const FENTRY: u8 = 8;
    pub const KPROBE: u8 = 9;
    pub const PROCFS: u8 = 10;
}

/// Kinds of [`KernelEvent`].
pub mod event_kind {
    /// First sight of a socket's owner (`tgid`, `pid`, `uid`, `comm`; `arg0` = origin, `arg1` = netns cookie).
    pub const SOCK_OWNER: u32 = 1;
    /// First payload bytes of a process through a socket another process owns (fork-shared).
    pub const SOCK_FLOW: u32 = 2;
    /// First packet of a socket in cgroup_skb: `tuple` is filled.
    pub const SOCK_TUPLE: u32 = 3;
    /// TCP state change: `arg0` = old state, `arg1` = new state (kernel TCP_* numbers); `tuple` filled.
    pub const SOCK_STATE: u32 = 4;
    /// The socket was released (closed by its last owner); counters are final soon after.
    pub const SOCK_RELEASE: u32 = 5;
    /// A task forked: `tgid` = parent tgid, `arg0` = child pid.
    pub const PROC_FORK: u32 = 6;
    /// A process (thread group leader) exited: `tgid`.
    pub const PROC_EXIT: u32 = 7;
    /// A TCP connection was accepted (sock_ops passive established, softirq: no process):
    /// `tuple` filled, `arg1` = netns cookie. User space gives it to the owner of the listener
    /// on its port until a process moves bytes.
    pub const SOCK_ACCEPTED: u32 = 8;
    /// A socket's end: one [`crate::SockFinal`] record (not a `KernelEvent`) with everything
    /// the maps held for it; the kernel freed those entries when it sent the record.
    pub const SOCK_FINAL: u32 = 9;
}

/// A socket's addresses as seen from the socket: local first. Addresses are in network byte
/// order; IPv4 uses the first 4 bytes of the array. Ports are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct SockTuple {
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
    /// IPPROTO_TCP (6), IPPROTO_UDP (17), ...
    pub protocol: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

/// Who owns a socket, recorded in process context (never from softirq).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SockOwner {
    pub tgid: u32,
    pub pid: u32,
    pub uid: u32,
    pub origin: u8,
    pub _pad: [u8; 3],
    pub netns: u64,
    pub comm: [u8; COMM_LEN],
    /// The owner's parent process (real_parent->tgid), 0 when unknown: lets user space place
    /// a child under its parent even when the fork event was lost.
    pub ppid: u32,
    pub _pad2: u32,
    /// The owner's cgroup v2 id (the cgroup directory's inode): names the systemd unit or
    /// container even when the process is gone before /proc is read.
    pub cgroup_id: u64,
}

/// Key of the PAYLOAD map: one socket as used by one process.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct PidSockKey {
    pub cookie: u64,
    pub tgid: u32,
    pub _pad: u32,
}

/// Exact payload (what sendmsg/recvmsg returned), cumulative.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PayloadStats {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_calls: u64,
    pub rx_calls: u64,
}

/// L3 bytes (headers included) and packets (GSO segments counted) per socket, cumulative.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct WireStats {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    /// TCP only: bit 0 set while the last segment sent advertised a zero window, bit 1 the
    /// same for the last one received, so a zero-window episode is counted once.
    pub zero_window: u64,
}

/// A UDP socket without a connected peer and one remote it exchanged datagrams with.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct UdpPeerKey {
    pub cookie: u64,
    /// Network byte order; IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
    pub _pad: u32,
}

/// Datagrams exchanged with one remote, cumulative: payload (UDP data) and L3 bytes.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct UdpPeerStats {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_wire_bytes: u64,
    pub rx_wire_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
}

impl UdpPeerStats {
    /// tx and rx payload, tx and rx wire bytes, tx and rx packets: the order user space
    /// carries them in.
    pub fn counts(&self) -> [u64; 6] {
        [
            self.tx_bytes,
            self.rx_bytes,
            self.tx_wire_bytes,
            self.rx_wire_bytes,
            self.tx_packets,
            self.rx_packets,
        ]
    }
}

/// [`WireStats::zero_window`] bits.
pub mod zero_window {
    pub const SENT: u64 = 1;
    pub const RECEIVED: u64 = 2;
    /// UDP only: the socket has entries in UDP_PEERS, to be read when it ends.
    pub const UDP_PEERS: u64 = 4;
}

/// Log2 buckets of smoothed RTT in microseconds: bucket `i` holds samples of at most `2^i` µs
/// (and more than `2^(i-1)`), so a Prometheus `le` bound of `2^i` µs is exact; the last bucket
/// also takes everything larger. Index with `rtt_bucket(us - 1)`.
pub const RTT_BUCKETS: usize = 24;

/// TCP behaviour of one socket, cumulative.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct TcpStats {
    /// Segments retransmitted (tcp_retransmit_skb, successful ones where the kernel says).
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// RTT samples (sock_ops RTT callback: one per ACK that measured the RTT).
    pub rtt_count: u64,
    pub rtt_sum_us: u64,
    pub rtt_buckets: [u64; RTT_BUCKETS],
    /// Retransmission timer expiries (sock_ops RTO callback): each doubles the RTO.
    pub rto_timeouts: u64,
    /// Most consecutive expiries seen (the RTO was doubled that many times in a row).
    pub rto_backoff_max: u64,
    /// When the connect began (sock_ops TCP_CONNECT_CB, boot-time ns); 0 for accepted sockets.
    pub connect_ns: u64,
    /// Handshake time, 0 until established while netmon ran: connecting side SYN to SYN-ACK
    /// (SYN retransmissions included), accepting side SYN-ACK to its ACK.
    pub handshake_us: u64,
    /// FIN closes: this socket sent the first FIN (ESTABLISHED -> FIN_WAIT1) or received it
    /// (ESTABLISHED -> CLOSE_WAIT).
    pub closes_local: u64,
    pub closes_remote: u64,
    /// Times the window this socket advertised, or its peer advertised, went to zero.
    pub zero_windows_sent: u64,
    pub zero_windows_received: u64,
}

/// The number of significant bits of `us`, capped at the last bucket; `rtt_bucket(x - 1)` is
/// the bucket whose upper bound `2^i` is the smallest power of two at least `x`.
/// Written as a fixed ladder of comparisons because the eBPF side has no count-leading-zeros.
#[inline(always)]
pub fn rtt_bucket(us: u32) -> usize {
    let mut v = us;
    let mut bits = 0usize;
    if v >= 1 << 16 {
        v >>= 16;
        bits += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        bits += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        bits += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        bits += 2;
    }
    if v >= 1 << 1 {
        v >>= 1;
        bits += 1;
    }
    if v >= 1 {
        bits += 1;
    }
    if bits >= RTT_BUCKETS {
        RTT_BUCKETS - 1
    } else {
        bits
    }
}

/// Bytes of a DNS reply (from its IP header) a [`DnsRecord`] carries: a power of two (the
/// kernel masks the copy length with it), above the 1232-byte EDNS size resolvers now use.
pub const DNS_SNAPLEN: usize = 2048;

/// A DNS reply (UDP or TCP from port 53) as the receiving socket's cgroup_skb ingress saw it:
/// the socket's owner is the process that asked.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsRecord {
    pub cookie: u64,
    /// Owner of `cookie` from the OWNERS map (0 when unknown).
    pub tgid: u32,
    /// Length of the packet from its IP header.
    pub len: u32,
    pub cap_len: u32,
    pub _pad: u32,
    pub data: [u8; DNS_SNAPLEN],
}

/// Largest header snapshot a capture record carries.
pub const MAX_SNAPLEN: usize = 256;

/// Capture direction, in [`CaptureRecord::direction`].
pub mod direction {
    pub const INGRESS: u8 = 0;
    pub const EGRESS: u8 = 1;
}

/// Which program took a capture record, in [`CaptureRecord::hook`].
pub mod capture_hook {
    pub const TC: u8 = 1;
    pub const XDP: u8 = 2;
}

/// A simple filter the kernel can evaluate before copying: every non-zero part must match.
/// Addresses in network byte order (IPv4 in the first 4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct KernelFilter {
    /// 0: off (every packet passes).
    pub enabled: u8,
    /// IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6); 0 any.
    pub ip_proto: u8,
    /// 4 or 6 when an address is given (or only that family is wanted); 0 any.
    pub family: u8,
    /// Prefix length of `addr`; 0 with family set means "any address of this family".
    pub prefix_len: u8,
    /// Source or destination port (host order); 0 any.
    pub port: u16,
    pub _pad: [u8; 2],
    /// Source or destination address within the prefix.
    pub addr: [u8; 16],
}

/// What the capture programs do; user space writes it once before attaching.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Bytes copied from the start of each packet (<= MAX_SNAPLEN); 0 disables capture.
    pub snaplen: u32,
    /// Keep 1 packet in `sample` (0 or 1: all).
    pub sample: u32,
    /// Packets per second per CPU copied at most (0: no limit).
    pub rate_per_cpu: u32,
    /// netmon's own tgid: its sockets' packets are skipped unless `include_self`.
    pub self_tgid: u32,
    pub include_self: u8,
    pub _pad: [u8; 7],
    pub filter: KernelFilter,
}

/// Packets and bytes per interface and direction, as the capture programs saw them.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct IfaceStats {
    pub packets: u64,
    pub bytes: u64,
}

/// One captured packet: metadata, then the first `cap_len` bytes of the frame.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CaptureRecord {
    pub ts_ns: u64,
    /// Socket cookie when the hook knows the socket (TC egress of local traffic), else 0.
    pub cookie: u64,
    pub ifindex: u32,
    /// Length of the whole packet.
    pub orig_len: u32,
    /// Owner of `cookie` from the OWNERS map (0 when unknown).
    pub tgid: u32,
    pub cap_len: u16,
    pub direction: u8,
    pub hook: u8,
    pub comm: [u8; COMM_LEN],
    pub data: [u8; MAX_SNAPLEN],
}

/// [`SockFinal::flags`]: which parts of the record hold values.
pub mod final_flags {
    pub const OWNER: u32 = 1;
    pub const WIRE: u32 = 2;
    pub const TCP: u32 = 4;
    /// `payload[0]` (the owner's) and `payload[1]` (the releasing process's, when another).
    pub const PAYLOAD0: u32 = 8;
    pub const PAYLOAD1: u32 = 16;
}

/// The last word on a socket, sent once when it ends (released by its last process and, for
/// TCP, in state CLOSE): its owner and final counters, after which the kernel frees its
/// entries. A short connection thus costs user space one record and no map polling. Starts
/// with `kind` like [`KernelEvent`] so the reader can tell the two apart.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SockFinal {
    /// [`event_kind::SOCK_FINAL`].
    pub kind: u32,
    /// [`final_flags`].
    pub flags: u32,
    pub cookie: u64,
    pub ts_ns: u64,
    pub owner: SockOwner,
    pub payload_tgid: [u32; 2],
    pub payload: [PayloadStats; 2],
    pub wire: WireStats,
    pub tcp: TcpStats,
}

/// Counters of ended sockets, per owner process (the `LATE` map).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct LateStats {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
}

/// One ring-buffer record. Fixed size so the reader never has to guess.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct KernelEvent {
    pub kind: u32,
    pub tgid: u32,
    pub pid: u32,
    pub uid: u32,
    pub cookie: u64,
    /// bpf_ktime_get_ns()
    pub ts_ns: u64,
    pub arg0: u64,
    pub arg1: u64,
    pub comm: [u8; COMM_LEN],
    pub tuple: SockTuple,
    /// Parent tgid of the current task, filled for SOCK_OWNER (process context only).
    pub ppid: u32,
    pub _pad: u32,
    /// cgroup v2 id of the current task, filled for SOCK_OWNER.
    pub cgroup_id: u64,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, contain only integers and have explicit padding.
    unsafe impl aya::Pod for SockTuple {}
    unsafe impl aya::Pod for SockOwner {}
    unsafe impl aya::Pod for PidSockKey {}
    unsafe impl aya::Pod for PayloadStats {}
    unsafe impl aya::Pod for WireStats {}
    unsafe impl aya::Pod for KernelEvent {}
    unsafe impl aya::Pod for TcpStats {}
    unsafe impl aya::Pod for UdpPeerKey {}
    unsafe impl aya::Pod for UdpPeerStats {}
    unsafe impl aya::Pod for SockFinal {}
    unsafe impl aya::Pod for LateStats {}
    unsafe impl aya::Pod for KernelFilter {}
    unsafe impl aya::Pod for CaptureConfig {}
    unsafe impl aya::Pod for IfaceStats {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<SockTuple>(), 40);
        assert_eq!(size_of::<SockOwner>(), 56);
        assert_eq!(size_of::<PidSockKey>(), 16);
        assert_eq!(size_of::<PayloadStats>(), 32);
        assert_eq!(size_of::<WireStats>(), 40);
        assert_eq!(size_of::<UdpPeerKey>(), 32);
        assert_eq!(size_of::<UdpPeerStats>(), 48);
        assert_eq!(size_of::<KernelEvent>(), 40 + 16 + 40 + 8 + 8 + 8);
        assert_eq!(size_of::<TcpStats>(), 8 * (13 + RTT_BUCKETS));
        assert_eq!(
            size_of::<SockFinal>(),
            24 + 56 + 8 + 2 * 32 + 40 + size_of::<TcpStats>()
        );
        assert_eq!(size_of::<LateStats>(), 48);
        assert_eq!(size_of::<KernelFilter>(), 24);
        assert_eq!(size_of::<CaptureConfig>(), 24 + 24);
        assert_eq!(
            size_of::<CaptureRecord>(),
            8 + 8 + 12 + 4 + 16 + MAX_SNAPLEN
        );
    }

    #[test]
    fn rtt_buckets_count_significant_bits() {
        assert_eq!(rtt_bucket(0), 0);
        assert_eq!(rtt_bucket(1), 1);
        assert_eq!(rtt_bucket(2), 2);
        assert_eq!(rtt_bucket(3), 2);
        assert_eq!(rtt_bucket(4), 3);
        assert_eq!(rtt_bucket(1023), 10);
        assert_eq!(rtt_bucket(1024), 11);
        assert_eq!(rtt_bucket((1 << 22) - 1), 22);
        assert_eq!(rtt_bucket(1 << 22), 23);
        assert_eq!(rtt_bucket(u32::MAX), 23);
        for us in [5u32, 100, 70_000, 3_000_000] {
            let b = rtt_bucket(us);
            assert!(us < (1u32 << b) && us >= (1u32 << (b - 1)), "{us} in {b}");
        }
    }
}
