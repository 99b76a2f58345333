//! cgroup_skb ingress/egress at the cgroup-v2 root: wire bytes (L3 length, headers included)
//! and packets per socket cookie, and the socket's 5-tuple on its first packet.
//! The pid is never taken here: these run in softirq context as often as not. Received DNS
//! replies are also handed to dns.rs from here.
use aya_ebpf::{
    EbpfContext, helpers::generated::bpf_get_socket_cookie, macros::cgroup_skb,
    programs::SkBuffContext,
};
use netmon_common::{UdpPeerKey, counter, event_kind, zero_window};

use crate::maps::{WireEntry, account_udp_peer, account_wire, bump, ctx_sock_tuple, emit};

#[cgroup_skb(egress)]
pub fn netmon_skb_egress(ctx: SkBuffContext) -> i32 {
    count(&ctx, true);
    1
}

#[cgroup_skb(ingress)]
pub fn netmon_skb_ingress(ctx: SkBuffContext) -> i32 {
    count(&ctx, false);
    1
}

#[inline(always)]
fn count(ctx: &SkBuffContext, tx: bool) {
    let len = ctx.len() as u64;
    let skb = ctx.skb.skb;
    // A GSO super-packet leaves as several packets on the wire.
    let segs = unsafe { core::ptr::read_volatile(&raw const (*skb).gso_segs) }.max(1) as u64;
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if cookie == 0 {
        bump(counter::NO_SOCKET_BYTES, len);
        bump(counter::NO_SOCKET_PACKETS, segs);
        return;
    }
    let entry = account_wire(cookie, tx, len, segs);
    match entry {
        WireEntry::Created => emit_tuple(ctx, cookie),
        WireEntry::Existing(wire) => {
            // A socket's first packet is never a zero-window one worth counting (a SYN or the
            // first packet of a connection older than netmon), so only known sockets are read.
            if let Some((window, flags)) = tcp_window(ctx) {
                crate::tcp::track_zero_window(cookie, wire, tx, window, flags);
            }
        }
        WireEntry::Missing | WireEntry::Ended => {}
    }
    // A socket without a peer (the socket's remote port is 0): who each datagram went to or
    // came from, so a server's traffic is known per client. Its WIRE entry is marked, so
    // user space reads these entries when the socket ends.
    if unsafe { core::ptr::read_volatile(&raw const (*skb).remote_port) } == 0
        && udp_peer(ctx, cookie, tx, len, segs)
    {
        let wire = match entry {
            WireEntry::Existing(w) => Some(w),
            WireEntry::Created => crate::maps::WIRE.get_ptr_mut(cookie),
            WireEntry::Missing | WireEntry::Ended => None,
        };
        if let Some(w) = wire {
            // UDP sockets never use the zero-window bits: a plain write cannot clobber them.
            let flags = unsafe { core::ptr::read_volatile(&raw const (*w).zero_window) };
            if flags & zero_window::UDP_PEERS == 0 {
                unsafe { (*w).zero_window = flags | zero_window::UDP_PEERS };
            }
        }
    }
    if !tx {
        crate::dns::copy_reply(ctx, cookie);
    }
}

/// Counts a UDP datagram under its remote (the destination when sent, the source when
/// received). Anything but UDP over IPv4, or over IPv6 without extension headers, is left
/// alone; the latter's bytes are counted as unparsed. True when it was counted.
#[inline(always)]
fn udp_peer(ctx: &SkBuffContext, cookie: u64, tx: bool, len: u64, segs: u64) -> bool {
    let Ok(first) = ctx.load::<u8>(0) else {
        return false;
    };
    let mut key = UdpPeerKey {
        cookie,
        ..UdpPeerKey::default()
    };
    let l4 = match first >> 4 {
        4 => {
            if ctx.load::<u8>(9).ok() != Some(17) {
                return false;
            }
            let Ok(a) = ctx.load::<[u8; 4]>(if tx { 16 } else { 12 }) else {
                return false;
            };
            key.family = 2;
            key.addr[..4].copy_from_slice(&a);
            u64::from(first & 0x0f) * 4
        }
        6 => match ctx.load::<u8>(6) {
            Ok(17) => {
                let Ok(a) = ctx.load::<[u8; 16]>(if tx { 24 } else { 8 }) else {
                    return false;
                };
                key.family = 10;
                key.addr = a;
                40
            }
            // UDP behind extension headers, or not UDP at all: only the first is ours.
            Ok(6) | Ok(58) | Err(_) => return false,
            Ok(_) => {
                bump(counter::UDP_PEERS_UNPARSED_BYTES, len);
                return false;
            }
        },
        _ => return false,
    };
    let Ok(ports) = ctx.load::<[u8; 4]>(l4 as usize) else {
        return false;
    };
    key.port = if tx {
        u16::from_be_bytes([ports[2], ports[3]])
    } else {
        u16::from_be_bytes([ports[0], ports[1]])
    };
    // Payload: the L3 length less the IP header and a UDP header per segment (a GSO or GRO
    // datagram train carries one per segment).
    let payload = len.saturating_sub(l4 + 8 * segs);
    account_udp_peer(&key, tx, payload, len, segs);
    true
}

/// The socket's own view of its addresses (from `skb->sk`), so local is local on both paths.
#[inline(always)]
fn emit_tuple(ctx: &SkBuffContext, cookie: u64) {
    let skb = ctx.skb.skb;
    let Some(t) = ctx_sock_tuple!(skb, ip_protocol(ctx)) else {
        return;
    };
    let ev = netmon_common::KernelEvent {
        kind: event_kind::SOCK_TUPLE,
        cookie,
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        arg0: sock_type(skb) as u64,
        tuple: t,
        ..Default::default()
    };
    emit(&ev);
}

/// SOCK_STREAM, SOCK_DGRAM, SOCK_RAW… of the packet's socket; 0 when it is not a full socket.
/// The kernel sends TIME_WAIT ACKs and RSTs from per-netns raw control sockets no process
/// owns; user space tells those apart from sockets whose owner it missed.
#[inline(always)]
fn sock_type(skb: *mut aya_ebpf::bindings::__sk_buff) -> u32 {
    let sk = unsafe { core::ptr::read_volatile(&raw const (*skb).__bindgen_anon_2.sk) };
    if sk.is_null() {
        return 0;
    }
    let full = unsafe { aya_ebpf::helpers::generated::bpf_sk_fullsock(sk) };
    if full.is_null() {
        return 0;
    }
    unsafe { core::ptr::read_volatile(&raw const (*full).type_) }
}

/// The raw window and flags byte of a TCP segment; None for anything else. IPv6 extension
/// headers before TCP are not walked (TCP segments practically never carry them).
#[inline(always)]
fn tcp_window(ctx: &SkBuffContext) -> Option<(u16, u8)> {
    let first: u8 = ctx.load(0).ok()?;
    let (proto, l4) = match first >> 4 {
        4 => (ctx.load::<u8>(9).ok()?, usize::from(first & 0x0f) * 4),
        6 => (ctx.load::<u8>(6).ok()?, 40),
        _ => return None,
    };
    if proto != 6 {
        return None;
    }
    // Bytes 12..16 of the TCP header: data offset, flags, window.
    let w: [u8; 4] = ctx.load(l4 + 12).ok()?;
    Some((u16::from_be_bytes([w[2], w[3]]), w[1]))
}

/// The L4 protocol from the packet's IP header (cgroup_skb data starts at the network header).
#[inline(always)]
fn ip_protocol(ctx: &SkBuffContext) -> u16 {
    let first: u8 = ctx.load(0).unwrap_or(0);
    match first >> 4 {
        4 => ctx.load::<u8>(9).unwrap_or(0) as u16,
        6 => ctx.load::<u8>(6).unwrap_or(0) as u16,
        _ => 0,
    }
}
