//! TCP behaviour per socket: retransmissions and resets from tracepoints (they see every socket,
//! including those from before start), RTT samples and retransmission-timer expiries from the
//! sock_ops callbacks (only sockets that become established while netmon runs: the callbacks
//! must be switched on per socket), handshake times from sock_ops, FIN closes from the state
//! tracepoint (lifecycle.rs) and zero-window episodes from the cgroup_skb programs (skb.rs).
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::{btf_tracepoint, sock_ops},
    programs::{BtfTracePointContext, SockOpsContext},
};
use netmon_common::{
    KernelEvent, RTT_BUCKETS, TcpStats, WireStats, counter, event_kind, rtt_bucket, zero_window,
};

use crate::maps::{TCP_STATS, account_wire, atomic_add, bump, ctx_sock_tuple, emit};

const BPF_NOEXIST: u64 = 1;
const IPPROTO_TCP: u16 = 6;
const BPF_SOCK_OPS_TCP_CONNECT_CB: u32 = 3;
const BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB: u32 = 4;
const BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: u32 = 5;
const BPF_SOCK_OPS_RTO_CB: u32 = 8;
const BPF_SOCK_OPS_RTT_CB: u32 = 12;
const BPF_SOCK_OPS_RTO_CB_FLAG: u32 = 1;
const BPF_SOCK_OPS_RTT_CB_FLAG: u32 = 1 << 3;

/// The socket's stats entry, created zeroed on first use; None when the map is full.
#[inline(always)]
pub fn stats(cookie: u64) -> Option<*mut TcpStats> {
    if let Some(p) = TCP_STATS.get_ptr_mut(cookie) {
        return Some(p);
    }
    // An ended socket's entry was freed with its final record; a new one would never be.
    if unsafe { crate::finish::ENDED.get(cookie) }.is_some() {
        return None;
    }
    match TCP_STATS.insert(cookie, TcpStats::default(), BPF_NOEXIST) {
        Ok(()) | Err(-17) => TCP_STATS.get_ptr_mut(cookie),
        Err(_) => {
            bump(counter::TCP_STATS_FULL, 1);
            None
        }
    }
}

#[inline(always)]
fn sk_cookie(ctx: &BtfTracePointContext) -> u64 {
    let sk: *const core::ffi::c_void = ctx.arg(0);
    if sk.is_null() {
        return 0;
    }
    // Works for full, request and time-wait sockets alike: the cookie lives in sock_common,
    // and a time-wait socket keeps the cookie of the socket it replaced.
    unsafe { bpf_get_socket_cookie(sk as *mut _) }
}

#[inline(always)]
fn count_retransmit(ctx: &BtfTracePointContext) {
    let cookie = sk_cookie(ctx);
    if cookie == 0 {
        return;
    }
    if let Some(s) = stats(cookie) {
        atomic_add(unsafe { &raw mut (*s).retransmits }, 1);
    }
}

/// Kernels >= 6.14: `tcp_retransmit_skb(sk, skb, err)`; a failed attempt (err != 0) sent nothing.
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn netmon_tcp_retransmit_err(ctx: BtfTracePointContext) -> i32 {
    let err: i32 = ctx.arg(2);
    if err == 0 {
        count_retransmit(&ctx);
    }
    0
}

/// Older kernels: `tcp_retransmit_skb(sk, skb)`, fired only for segments really sent.
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn netmon_tcp_retransmit(ctx: BtfTracePointContext) -> i32 {
    count_retransmit(&ctx);
    0
}

/// `tcp_send_reset(sk, skb[, reason])`: `sk` is NULL when no socket matched the segment.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn netmon_tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    let cookie = sk_cookie(&ctx);
    if cookie == 0 {
        bump(counter::RST_NO_SOCKET, 1);
        return 0;
    }
    // An abortive close sends its reset after the state went to CLOSE and the record was sent.
    if crate::finish::late_reset(cookie, true) {
        return 0;
    }
    if let Some(s) = stats(cookie) {
        atomic_add(unsafe { &raw mut (*s).resets_sent }, 1);
    }
    0
}

/// `tcp_receive_reset(sk)`: the peer reset the connection.
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn netmon_tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    let cookie = sk_cookie(&ctx);
    if cookie == 0 {
        return 0;
    }
    if crate::finish::late_reset(cookie, false) {
        return 0;
    }
    if let Some(s) = stats(cookie) {
        atomic_add(unsafe { &raw mut (*s).resets_received }, 1);
    }
    0
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

/// Counts a zero-window episode when a segment's window drops to zero, once until a segment
/// with a window opens it again. Segments with SYN, FIN or RST are not window advertisements
/// that matter (Wireshark's `tcp.analysis.zero_window` leaves them out too).
#[inline(always)]
pub fn track_zero_window(cookie: u64, wire: *mut WireStats, tx: bool, window: u16, flags: u8) {
    let bit = if tx {
        zero_window::SENT
    } else {
        zero_window::RECEIVED
    };
    let state = unsafe { core::ptr::read_volatile(&raw const (*wire).zero_window) };
    if window != 0 {
        if state & bit != 0 {
            unsafe { (*wire).zero_window = state & !bit };
        }
        return;
    }
    if state & bit != 0 || flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 {
        return;
    }
    // Racy with the other direction's bit on another CPU; at worst one episode is counted twice.
    unsafe { (*wire).zero_window = state | bit };
    if let Some(s) = stats(cookie) {
        let field = if tx {
            unsafe { &raw mut (*s).zero_windows_sent }
        } else {
            unsafe { &raw mut (*s).zero_windows_received }
        };
        atomic_add(field, 1);
    }
}

/// A FIN close began on the socket: `local` when it sent the first FIN.
#[inline(always)]
pub fn count_fin_close(cookie: u64, local: bool) {
    if cookie == 0 {
        return;
    }
    if let Some(s) = stats(cookie) {
        let field = if local {
            unsafe { &raw mut (*s).closes_local }
        } else {
            unsafe { &raw mut (*s).closes_remote }
        };
        atomic_add(field, 1);
    }
}

/// An accepted connection: until its process moves a byte nothing else ties it to one (there
/// is no accept hook short of fexit), so user space gets its addresses to find its listener.
#[inline(always)]
fn emit_accepted(ctx: &SockOpsContext) {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if cookie == 0 {
        return;
    }
    let Some(tuple) = ctx_sock_tuple!(ctx.ops, IPPROTO_TCP) else {
        return;
    };
    // This record carries the addresses: with the socket's wire entry in place, its first
    // packet does not send them again (one ring record fewer per connection).
    account_wire(cookie, false, 0, 0);
    emit(&KernelEvent {
        kind: event_kind::SOCK_ACCEPTED,
        cookie,
        // The listener must be looked for in the same namespace (containers reuse ports).
        arg1: unsafe { bpf_get_netns_cookie(ctx.as_ptr()) },
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        tuple,
        ..Default::default()
    });
}

/// The handshake time at ESTABLISHED. Connecting side: since TCP_CONNECT_CB, so from the first
/// SYN to the SYN-ACK, retransmitted SYNs included. Accepting side: the kernel has just taken
/// its first RTT sample from the SYN-ACK and the ACK that completed the handshake (the SYN's
/// arrival is not kept), so the smoothed RTT is that time.
#[inline(always)]
fn record_handshake(ctx: &SockOpsContext, active: bool) {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if cookie == 0 {
        return;
    }
    let Some(s) = stats(cookie) else { return };
    let us = if active {
        let start = unsafe { (*s).connect_ns };
        if start == 0 {
            return;
        }
        let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
        now.saturating_sub(start) / 1000
    } else {
        (unsafe { (*ctx.ops).srtt_us } >> 3) as u64
    };
    // 0 means "none": a sub-microsecond handshake is recorded as 1 µs.
    unsafe { (*s).handshake_us = us.max(1) };
}

/// Turns the RTT callback on for each connection as it is established, then records each
/// smoothed RTT the kernel computes. sock_ops programs never change a socket's behaviour here.
#[sock_ops]
pub fn netmon_sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_CONNECT_CB => {
            // The SYN is about to be sent: the handshake's start on the connecting side.
            let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
            if cookie != 0
                && let Some(s) = stats(cookie)
            {
                unsafe { (*s).connect_ns = aya_ebpf::helpers::bpf_ktime_get_ns() };
            }
        }
        op @ (BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) => {
            let flags = ctx.cb_flags() | BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG;
            let _ = ctx.set_cb_flags(flags as i32);
            record_handshake(&ctx, op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB);
            if op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB {
                emit_accepted(&ctx);
            }
        }
        BPF_SOCK_OPS_RTO_CB => {
            // arg 0: icsk_retransmits, the timeouts in a row before this one.
            let in_a_row = ctx.arg(0) as u64 + 1;
            let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
            if cookie != 0
                && let Some(s) = stats(cookie)
            {
                unsafe {
                    atomic_add(&raw mut (*s).rto_timeouts, 1);
                    // Racy max, fine: only this socket's timer updates it.
                    if (*s).rto_backoff_max < in_a_row {
                        (*s).rto_backoff_max = in_a_row;
                    }
                }
            }
        }
        BPF_SOCK_OPS_RTT_CB => {
            // srtt_us is kept shifted left by 3 (tcp_sock.srtt_us).
            let srtt = unsafe { (*ctx.ops).srtt_us } >> 3;
            let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
            if cookie == 0 {
                return 1;
            }
            if let Some(s) = stats(cookie) {
                let b = rtt_bucket(srtt.saturating_sub(1));
                unsafe {
                    atomic_add(&raw mut (*s).rtt_count, 1);
                    atomic_add(&raw mut (*s).rtt_sum_us, srtt as u64);
                    if b < RTT_BUCKETS {
                        atomic_add(&raw mut (*s).rtt_buckets[b], 1);
                    }
                }
            }
        }
        _ => {}
    }
    1
}
