//! Maps shared by every program (names in netmon_common::maps), and the few helpers every hook
//! needs to update them. Plain hash maps, not LRU: an eviction would lose bytes silently, a
//! full map is counted instead.
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use netmon_common::{
    KernelEvent, PayloadStats, PidSockKey, SockOwner, SockTuple, TcpStats, UdpPeerKey,
    UdpPeerStats, WireStats, counter, event_kind,
};

/// 16 MiB: about 150k records (120 bytes each with the ring header), enough to ride out the
/// CPU starvation of a 2-core machine at 20k connections/s (14 records each) for ~0.5 s.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Per-socket maps hold every socket alive or closed within the last poll and release grace:
/// at 20k connections/s with both ends local that is 100k+ sockets. Entries are allocated as
/// they are added (BPF_F_NO_PREALLOC; tracing programs may use such maps since Linux 6.1), so
/// the room costs no memory until used; reading a map walks all its buckets, though, which is
/// why this is 2^18 and not more (idle `serve`: ~1% of a CPU, half of what 2^19 cost).
const SOCKETS: u32 = 262_144;
const NO_PREALLOC: u32 = 1;

#[map(name = "OWNERS")]
pub static OWNERS: HashMap<u64, SockOwner> = HashMap::with_max_entries(SOCKETS, NO_PREALLOC);

#[map(name = "PAYLOAD")]
pub static PAYLOAD: HashMap<PidSockKey, PayloadStats> =
    HashMap::with_max_entries(SOCKETS, NO_PREALLOC);

#[map(name = "WIRE")]
pub static WIRE: HashMap<u64, WireStats> = HashMap::with_max_entries(SOCKETS, NO_PREALLOC);

#[map(name = "TCP_STATS")]
pub static TCP_STATS: HashMap<u64, TcpStats> = HashMap::with_max_entries(SOCKETS, NO_PREALLOC);

#[map(name = "RELEASED")]
pub static RELEASED: HashMap<u64, u64> = HashMap::with_max_entries(SOCKETS, NO_PREALLOC);

/// Remotes of UDP sockets without a connected peer: a server socket answering many clients
/// needs an entry per client, so this is as large as the per-socket maps.
#[map(name = "UDP_PEERS")]
pub static UDP_PEERS: HashMap<UdpPeerKey, UdpPeerStats> =
    HashMap::with_max_entries(SOCKETS, NO_PREALLOC);

#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

const BPF_NOEXIST: u64 = 1;

/// Adds to a per-CPU counter; no atomics needed since each CPU owns its slot.
#[inline(always)]
pub fn bump(idx: u32, v: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        unsafe { *p += v };
    }
}

/// Atomic add on a u64 that lives in a shared (not per-CPU) map value.
#[inline(always)]
pub fn atomic_add(p: *mut u64, v: u64) {
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            p, v,
        )
    };
}

#[inline(always)]
pub fn emit(ev: &KernelEvent) {
    if EVENTS.output::<KernelEvent>(ev, 0).is_err() {
        bump(counter::RINGBUF_FULL, 1);
    }
}

/// An event stamped with the current task's identity.
#[inline(always)]
pub fn current_event(kind: u32, cookie: u64) -> KernelEvent {
    let pid_tgid = bpf_get_current_pid_tgid();
    KernelEvent {
        kind,
        tgid: (pid_tgid >> 32) as u32,
        pid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        cookie,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        ..KernelEvent::default()
    }
}

/// Offsets in `struct task_struct` of `real_parent` and `tgid`, set by user space from BTF
/// (0: unknown, the parent is then not recorded).
#[unsafe(no_mangle)]
static TASK_PARENT_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static TASK_TGID_OFFSET: u32 = 0;

/// The current process's parent (real_parent->tgid); 0 when the offsets are unknown.
#[inline(always)]
fn current_ppid() -> u32 {
    let parent_off = unsafe { core::ptr::read_volatile(&TASK_PARENT_OFFSET) };
    let tgid_off = unsafe { core::ptr::read_volatile(&TASK_TGID_OFFSET) };
    if parent_off == 0 || tgid_off == 0 {
        return 0;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let parent: *const u8 =
        unsafe { bpf_probe_read_kernel(task.add(parent_off as usize) as *const *const u8) }
            .unwrap_or(core::ptr::null());
    if parent.is_null() {
        return 0;
    }
    unsafe { bpf_probe_read_kernel(parent.add(tgid_off as usize) as *const u32) }.unwrap_or(0)
}

/// Records the current task as the owner of `cookie` unless someone already is, and tells user
/// space about a new owner. Must only be called in process context.
#[inline(always)]
pub fn record_owner(cookie: u64, origin: u8, netns: u64) {
    if cookie == 0 || unsafe { OWNERS.get(cookie) }.is_some() {
        return;
    }
    let mut ev = current_event(event_kind::SOCK_OWNER, cookie);
    ev.ppid = current_ppid();
    let owner = SockOwner {
        tgid: ev.tgid,
        pid: ev.pid,
        uid: ev.uid,
        origin,
        _pad: [0; 3],
        netns,
        comm: ev.comm,
        ppid: ev.ppid,
        _pad2: 0,
        cgroup_id: ev.cgroup_id,
    };
    match OWNERS.insert(cookie, owner, BPF_NOEXIST) {
        Ok(()) => {
            ev.arg0 = origin as u64;
            ev.arg1 = netns;
            emit(&ev);
        }
        // EEXIST: another CPU won the race, which is fine. Anything else: the map is full.
        Err(e) if e != -17 => bump(counter::OWNERS_FULL, 1),
        Err(_) => {}
    }
}

/// Adds exact payload bytes moved by the current process through `cookie`. `tx` picks the
/// direction. The first bytes of a process that shares a socket it does not own are announced
/// with SOCK_FLOW, so user space learns every process without scanning.
#[inline(always)]
pub fn account_payload(cookie: u64, tx: bool, bytes: u64, origin: u8) {
    if cookie == 0 {
        bump(counter::NO_COOKIE_BYTES, bytes);
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let key = PidSockKey {
        cookie,
        tgid,
        _pad: 0,
    };
    if let Some(p) = PAYLOAD.get_ptr_mut(key) {
        add_payload(p, tx, bytes);
        return;
    }
    let first = if tx {
        PayloadStats {
            tx_bytes: bytes,
            tx_calls: 1,
            ..PayloadStats::default()
        }
    } else {
        PayloadStats {
            rx_bytes: bytes,
            rx_calls: 1,
            ..PayloadStats::default()
        }
    };
    match PAYLOAD.insert(key, first, BPF_NOEXIST) {
        Ok(()) => {
            // The socket's owner (now, or made so just below) is announced by SOCK_OWNER:
            // only another process sharing the socket needs its own record. Two ring records
            // fewer per connection.
            if unsafe { OWNERS.get(cookie) }.is_some_and(|o| o.tgid != tgid) {
                let mut ev = current_event(event_kind::SOCK_FLOW, cookie);
                ev.arg0 = origin as u64;
                emit(&ev);
            }
        }
        // Another CPU created the entry between our lookup and insert: add to it.
        Err(-17) => {
            if let Some(p) = PAYLOAD.get_ptr_mut(key) {
                add_payload(p, tx, bytes);
            }
        }
        Err(_) => {
            bump(counter::PAYLOAD_FULL, 1);
            bump(counter::PAYLOAD_FULL_BYTES, bytes);
        }
    }
    // Accepted sockets never pass sock_create: the first process to move bytes owns them.
    record_owner(cookie, origin, 0);
}

/// What [`account_wire`] found.
pub enum WireEntry {
    /// The socket's first packet: its entry was created.
    Created,
    /// The entry, already there (or created by another CPU a moment ago).
    Existing(*mut WireStats),
    /// The map is full: counted as lost.
    Missing,
    /// The socket has ended: the packet went to its owner's LATE counters.
    Ended,
}

/// Adds one packet's L3 length to the socket's wire counters.
#[inline(always)]
pub fn account_wire(cookie: u64, tx: bool, len: u64, segs: u64) -> WireEntry {
    if let Some(p) = WIRE.get_ptr_mut(cookie) {
        add_wire(p, tx, len, segs);
        return WireEntry::Existing(p);
    }
    if crate::finish::late_packet(cookie, tx, len, segs) {
        return WireEntry::Ended;
    }
    let first = if tx {
        WireStats {
            tx_bytes: len,
            tx_packets: segs,
            ..WireStats::default()
        }
    } else {
        WireStats {
            rx_bytes: len,
            rx_packets: segs,
            ..WireStats::default()
        }
    };
    match WIRE.insert(cookie, first, BPF_NOEXIST) {
        Ok(()) => WireEntry::Created,
        Err(-17) => {
            // Lost the race to another CPU; count on its entry.
            match WIRE.get_ptr_mut(cookie) {
                Some(p) => {
                    add_wire(p, tx, len, segs);
                    WireEntry::Existing(p)
                }
                None => WireEntry::Missing,
            }
        }
        Err(_) => {
            bump(counter::WIRE_FULL, 1);
            bump(counter::WIRE_FULL_BYTES, len);
            WireEntry::Missing
        }
    }
}

/// Adds one datagram to what an unconnected UDP socket exchanged with `key`'s remote.
#[inline(always)]
pub fn account_udp_peer(key: &UdpPeerKey, tx: bool, payload: u64, len: u64, segs: u64) {
    if let Some(p) = UDP_PEERS.get_ptr_mut(key) {
        add_udp_peer(p, tx, payload, len, segs);
        return;
    }
    let mut first = UdpPeerStats::default();
    add_udp_peer(&raw mut first, tx, payload, len, segs);
    match UDP_PEERS.insert(key, first, BPF_NOEXIST) {
        Ok(()) => {}
        Err(-17) => {
            if let Some(p) = UDP_PEERS.get_ptr_mut(key) {
                add_udp_peer(p, tx, payload, len, segs);
            }
        }
        Err(_) => {
            bump(counter::UDP_PEERS_FULL, 1);
            bump(counter::UDP_PEERS_FULL_BYTES, payload);
        }
    }
}

#[inline(always)]
fn add_udp_peer(p: *mut UdpPeerStats, tx: bool, payload: u64, len: u64, segs: u64) {
    unsafe {
        if tx {
            atomic_add(&raw mut (*p).tx_bytes, payload);
            atomic_add(&raw mut (*p).tx_wire_bytes, len);
            atomic_add(&raw mut (*p).tx_packets, segs);
        } else {
            atomic_add(&raw mut (*p).rx_bytes, payload);
            atomic_add(&raw mut (*p).rx_wire_bytes, len);
            atomic_add(&raw mut (*p).rx_packets, segs);
        }
    }
}

#[inline(always)]
fn add_payload(p: *mut PayloadStats, tx: bool, bytes: u64) {
    unsafe {
        if tx {
            atomic_add(&raw mut (*p).tx_bytes, bytes);
            atomic_add(&raw mut (*p).tx_calls, 1);
        } else {
            atomic_add(&raw mut (*p).rx_bytes, bytes);
            atomic_add(&raw mut (*p).rx_calls, 1);
        }
    }
}

#[inline(always)]
fn add_wire(p: *mut WireStats, tx: bool, len: u64, segs: u64) {
    unsafe {
        add_packet(
            [&raw mut (*p).tx_bytes, &raw mut (*p).tx_packets],
            [&raw mut (*p).rx_bytes, &raw mut (*p).rx_packets],
            tx,
            len,
            segs,
        )
    }
}

/// Adds one packet of `len` bytes (`segs` segments) to the (bytes, packets) counters of its
/// direction: WIRE entries and, for ended sockets, their owner's LATE entry.
#[inline(always)]
pub fn add_packet(
    tx_counters: [*mut u64; 2],
    rx_counters: [*mut u64; 2],
    tx: bool,
    len: u64,
    segs: u64,
) {
    let [bytes, packets] = if tx { tx_counters } else { rx_counters };
    atomic_add(bytes, len);
    atomic_add(packets, segs);
}

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

/// A socket's addresses from the raw context fields cgroup_skb and sock_ops programs share:
/// host-order local port, network-order remote port, addresses as the kernel stores them.
#[inline(always)]
pub fn sock_tuple(
    family: u32,
    protocol: u16,
    local_port: u32,
    remote_port: u32,
    v4: (u32, u32),
    v6: ([u32; 4], [u32; 4]),
) -> Option<SockTuple> {
    let mut t = SockTuple {
        family: family as u16,
        protocol,
        local_port: local_port as u16,
        // The kernel shifts the network-order port into the upper 16 bits on little-endian
        // hosts (bpf_convert_ctx_access); older kernels left it in the lower half.
        remote_port: u16::from_be(if remote_port >> 16 != 0 {
            (remote_port >> 16) as u16
        } else {
            remote_port as u16
        }),
        ..SockTuple::default()
    };
    if family == AF_INET {
        t.local_addr[..4].copy_from_slice(&v4.0.to_ne_bytes());
        t.remote_addr[..4].copy_from_slice(&v4.1.to_ne_bytes());
    } else if family == AF_INET6 {
        for i in 0..4 {
            t.local_addr[i * 4..i * 4 + 4].copy_from_slice(&v6.0[i].to_ne_bytes());
            t.remote_addr[i * 4..i * 4 + 4].copy_from_slice(&v6.1[i].to_ne_bytes());
        }
    } else {
        return None;
    }
    Some(t)
}

/// [`sock_tuple`] from a context pointer (`__sk_buff` or `bpf_sock_ops`: both name the fields
/// alike). Every field is read with its own volatile load: the verifier only accepts context
/// accesses at a constant offset, and an optimiser that shares address arithmetic breaks that.
macro_rules! ctx_sock_tuple {
    ($ptr:expr, $protocol:expr) => {{
        let p = $ptr;
        let rd = |f: *const u32| unsafe { core::ptr::read_volatile(f) };
        unsafe {
            $crate::maps::sock_tuple(
                rd(&raw const (*p).family),
                $protocol,
                rd(&raw const (*p).local_port),
                rd(&raw const (*p).remote_port),
                (
                    rd(&raw const (*p).local_ip4),
                    rd(&raw const (*p).remote_ip4),
                ),
                (
                    [
                        rd(&raw const (*p).local_ip6[0]),
                        rd(&raw const (*p).local_ip6[1]),
                        rd(&raw const (*p).local_ip6[2]),
                        rd(&raw const (*p).local_ip6[3]),
                    ],
                    [
                        rd(&raw const (*p).remote_ip6[0]),
                        rd(&raw const (*p).remote_ip6[1]),
                        rd(&raw const (*p).remote_ip6[2]),
                        rd(&raw const (*p).remote_ip6[3]),
                    ],
                ),
            )
        }
    }};
}
pub(crate) use ctx_sock_tuple;
