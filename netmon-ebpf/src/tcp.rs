//! TCP behaviour per socket: retransmissions and resets from tracepoints (they see every socket,
//! including those from before start), RTT samples and retransmission-timer expiries from the
//! sock_ops callbacks (only sockets that become established while netmon runs: the callbacks
//! must be switched on per socket).
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::{btf_tracepoint, sock_ops},
    programs::{BtfTracePointContext, SockOpsContext},
};
use netmon_common::{KernelEvent, RTT_BUCKETS, TcpStats, counter, event_kind, rtt_bucket};

use crate::maps::{TCP_STATS, account_wire, atomic_add, bump, ctx_sock_tuple, emit};

const BPF_NOEXIST: u64 = 1;
const IPPROTO_TCP: u16 = 6;
const BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB: u32 = 4;
const BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: u32 = 5;
const BPF_SOCK_OPS_RTO_CB: u32 = 8;
const BPF_SOCK_OPS_RTT_CB: u32 = 12;
const BPF_SOCK_OPS_RTO_CB_FLAG: u32 = 1;
const BPF_SOCK_OPS_RTT_CB_FLAG: u32 = 1 << 3;

/// The socket's stats entry, created zeroed on first use; None when the map is full.
#[inline(always)]
fn stats(cookie: u64) -> Option<*mut TcpStats> {
    if let Some(p) = TCP_STATS.get_ptr_mut(cookie) {
        return Some(p);
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
    if let Some(s) = stats(cookie) {
        atomic_add(unsafe { &raw mut (*s).resets_received }, 1);
    }
    0
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

/// Turns the RTT callback on for each connection as it is established, then records each
/// smoothed RTT the kernel computes. sock_ops programs never change a socket's behaviour here.
#[sock_ops]
pub fn netmon_sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        op @ (BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) => {
            let flags = ctx.cb_flags() | BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG;
            let _ = ctx.set_cb_flags(flags as i32);
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
