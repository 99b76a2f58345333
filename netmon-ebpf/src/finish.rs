//! A socket's end: one ring record with everything the maps held for it, then its entries are
//! freed here, in the kernel. User space never has to keep a closed socket's entries alive for
//! a grace period, poll them once more and delete them one syscall at a time: at tens of
//! thousands of connections a second that was most of netmon's cost.
//!
//! The end is the later of two moments: the last process releases the socket (cgroup
//! sock_release) and, for TCP, the state reaches CLOSE (inet_sock_set_state). Before both, the
//! socket may still move bytes (FIN_WAIT, LAST_ACK; or a process that still holds a socket the
//! peer reset). Without the state tracepoint the released TCP socket stays in RELEASED and user
//! space frees it after its grace period, as before.
use aya_ebpf::maps::{HashMap, LruHashMap};
use netmon_common::{
    LateStats, PidSockKey, SockFinal, counter, event_kind, final_flags, maps as names,
};

use crate::maps::{
    EVENTS, OWNERS, PAYLOAD, RELEASED, TCP_STATS, WIRE, add_packet, atomic_add, bump,
    current_event, emit,
};

const BPF_NOEXIST: u64 = 1;

/// Sockets ended within the last moments (LRU: a marker, not a counter; see netmon_common).
#[aya_ebpf::macros::map(name = "ENDED")]
pub static ENDED: LruHashMap<u64, u32> = LruHashMap::with_max_entries(131_072, 0);

/// Per owner process: packets and resets of its sockets after their final record.
#[aya_ebpf::macros::map(name = "LATE")]
pub static LATE: HashMap<u32, LateStats> = HashMap::with_max_entries(16_384, 1);

// Keep the names user space opens and the ones declared here in step.
const _: () = assert!(names::ENDED.len() == 5 && names::LATE.len() == 4);

/// Sends the final record of `cookie` and frees its entries. `releaser` is the tgid that
/// released it (0: unknown). When the ring is full nothing is freed: the socket then stays in
/// RELEASED and user space frees it the slow way, so no count is lost with the record.
#[inline(always)]
pub fn finish(cookie: u64, releaser: u32) {
    let owner = unsafe { OWNERS.get(cookie) };
    let wire = WIRE.get_ptr(cookie);
    let tcp = TCP_STATS.get_ptr(cookie);
    let owner_tgid = owner.map_or(releaser, |o| o.tgid);
    let key0 = PidSockKey {
        cookie,
        tgid: owner_tgid,
        _pad: 0,
    };
    let key1 = PidSockKey {
        cookie,
        tgid: releaser,
        _pad: 0,
    };
    let p0 = PAYLOAD.get_ptr(key0);
    let p1 = if releaser != 0 && releaser != owner_tgid {
        PAYLOAD.get_ptr(key1)
    } else {
        None
    };
    if owner.is_none() && wire.is_none() && tcp.is_none() && p0.is_none() && p1.is_none() {
        // Nothing was counted: user space may still know the socket from /proc.
        emit(&current_event(event_kind::SOCK_RELEASE, cookie));
        let _ = RELEASED.remove(cookie);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<SockFinal>(0) else {
        bump(counter::RINGBUF_FULL, 1);
        if unsafe { RELEASED.get(cookie) }.is_none()
            && RELEASED.insert(cookie, releaser as u64, 0).is_err()
        {
            bump(counter::RELEASED_FULL, 1);
        }
        return;
    };
    let r = entry.as_mut_ptr();
    // Parts without a value are left as the ring had them: `flags` says which hold values.
    // Copied with the probe-read helper: a plain assignment of a 248-byte struct becomes a
    // memcpy call the BPF target cannot make.
    let mut flags = 0;
    unsafe {
        (*r).kind = event_kind::SOCK_FINAL;
        (*r).cookie = cookie;
        (*r).ts_ns = aya_ebpf::helpers::bpf_ktime_get_ns();
        (*r).payload_tgid = [owner_tgid, releaser];
        if let Some(o) = owner {
            copy(&raw mut (*r).owner, o);
            flags |= final_flags::OWNER;
        }
        if let Some(p) = p0 {
            copy(&raw mut (*r).payload[0], p);
            flags |= final_flags::PAYLOAD0;
        }
        if let Some(p) = p1 {
            copy(&raw mut (*r).payload[1], p);
            flags |= final_flags::PAYLOAD1;
        }
        if let Some(w) = wire {
            copy(&raw mut (*r).wire, w);
            flags |= final_flags::WIRE;
        }
        if let Some(t) = tcp {
            copy(&raw mut (*r).tcp, t);
            flags |= final_flags::TCP;
        }
        (*r).flags = flags;
    }
    entry.submit(0);
    // Marked before the entries go, so a packet in between finds LATE, not a fresh entry.
    let _ = ENDED.insert(cookie, owner_tgid, 0);
    let _ = OWNERS.remove(cookie);
    let _ = WIRE.remove(cookie);
    let _ = TCP_STATS.remove(cookie);
    let _ = PAYLOAD.remove(key0);
    if p1.is_some() {
        let _ = PAYLOAD.remove(key1);
    }
    let _ = RELEASED.remove(cookie);
}

#[inline(always)]
unsafe fn copy<T>(dst: *mut T, src: *const T) {
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            dst.cast(),
            core::mem::size_of::<T>() as u32,
            src.cast(),
        )
    };
}

/// The owner's LATE entry when `cookie` has ended; None for a live socket (or a full map,
/// counted).
#[inline(always)]
pub fn late(cookie: u64, bytes: u64) -> Option<*mut LateStats> {
    let tgid = unsafe { ENDED.get(cookie) }.copied()?;
    if let Some(p) = LATE.get_ptr_mut(tgid) {
        return Some(p);
    }
    match LATE.insert(tgid, LateStats::default(), BPF_NOEXIST) {
        Ok(()) | Err(-17) => {}
        Err(_) => {
            bump(counter::LATE_FULL, 1);
            bump(counter::LATE_FULL_BYTES, bytes);
            // Ended all the same: the packet must not create an entry nobody frees.
            return Some(core::ptr::null_mut());
        }
    }
    LATE.get_ptr_mut(tgid)
}

/// Adds a packet of an ended socket to its owner's LATE counters. True when the socket had
/// ended (the caller then leaves WIRE alone).
#[inline(always)]
pub fn late_packet(cookie: u64, tx: bool, len: u64, segs: u64) -> bool {
    let Some(p) = late(cookie, len) else {
        return false;
    };
    if p.is_null() {
        return true;
    }
    unsafe {
        add_packet(
            [&raw mut (*p).tx_bytes, &raw mut (*p).tx_packets],
            [&raw mut (*p).rx_bytes, &raw mut (*p).rx_packets],
            tx,
            len,
            segs,
        )
    };
    true
}

/// A reset sent or received by an ended socket. True when the socket had ended.
#[inline(always)]
pub fn late_reset(cookie: u64, sent: bool) -> bool {
    let Some(p) = late(cookie, 0) else {
        return false;
    };
    if !p.is_null() {
        unsafe {
            if sent {
                atomic_add(&raw mut (*p).resets_sent, 1);
            } else {
                atomic_add(&raw mut (*p).resets_received, 1);
            }
        }
    }
    true
}
