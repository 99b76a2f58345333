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
    /// `PerCpuArray<u64>` indexed by [`crate::counter`].
    pub const COUNTERS: &str = "COUNTERS";
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
    pub const COUNT: u32 = 16;
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
    /// First payload bytes of a (cookie, tgid) pair: lets user space learn every PAYLOAD key.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<SockTuple>(), 40);
        assert_eq!(size_of::<SockOwner>(), 40);
        assert_eq!(size_of::<PidSockKey>(), 16);
        assert_eq!(size_of::<PayloadStats>(), 32);
        assert_eq!(size_of::<WireStats>(), 32);
        assert_eq!(size_of::<KernelEvent>(), 40 + 16 + 40 + 8);
    }
}
