//! Rung 4: kprobes on the protocol send/receive functions, for kernels without BTF tracing
//! (or with it locked down). The entry probe stashes the socket per thread, the return probe
//! accounts the return value. The cookie is read from the socket (BTF offset from user space).
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{kprobe, kretprobe, map},
    maps::HashMap,
    programs::{ProbeContext, RetProbeContext},
};
use netmon_common::origin;

use super::{MSG_PEEK, is_inet, stored_cookie};
use crate::maps::account_payload;

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Pending {
    sk: u64,
    peek: u64,
}

/// Entry → return hand-over, keyed by pid_tgid (one call in flight per thread).
#[map(name = "KPROBE_PENDING")]
static PENDING: HashMap<u64, Pending> = HashMap::with_max_entries(16_384, 0);

#[inline(always)]
fn enter(ctx: &ProbeContext, flags_arg: Option<usize>) -> u32 {
    let sk: u64 = ctx.arg(0).unwrap_or(0);
    let peek = match flags_arg {
        Some(n) => ctx.arg::<i32>(n).unwrap_or(0) & MSG_PEEK != 0,
        None => false,
    };
    let _ = PENDING.insert(
        bpf_get_current_pid_tgid(),
        Pending {
            sk,
            peek: peek as u64,
        },
        0,
    );
    0
}

#[inline(always)]
fn exit(ctx: &RetProbeContext, tx: bool) -> u32 {
    let key = bpf_get_current_pid_tgid();
    let Some(p) = (unsafe { PENDING.get(key) }).copied() else {
        return 0;
    };
    let _ = PENDING.remove(key);
    let ret: i32 = ctx.ret::<i32>();
    let sk = p.sk as *const u8;
    if ret > 0 && p.peek == 0 && is_inet(sk) {
        account_payload(stored_cookie(sk), tx, ret as u64, origin::KPROBE);
    }
    0
}

#[kprobe(function = "tcp_sendmsg")]
pub fn netmon_kp_tcp_sendmsg(ctx: ProbeContext) -> u32 {
    enter(&ctx, None)
}
#[kretprobe(function = "tcp_sendmsg")]
pub fn netmon_krp_tcp_sendmsg(ctx: RetProbeContext) -> u32 {
    exit(&ctx, true)
}
#[kprobe(function = "udp_sendmsg")]
pub fn netmon_kp_udp_sendmsg(ctx: ProbeContext) -> u32 {
    enter(&ctx, None)
}
#[kretprobe(function = "udp_sendmsg")]
pub fn netmon_krp_udp_sendmsg(ctx: RetProbeContext) -> u32 {
    exit(&ctx, true)
}
#[kprobe(function = "udpv6_sendmsg")]
pub fn netmon_kp_udpv6_sendmsg(ctx: ProbeContext) -> u32 {
    enter(&ctx, None)
}
#[kretprobe(function = "udpv6_sendmsg")]
pub fn netmon_krp_udpv6_sendmsg(ctx: RetProbeContext) -> u32 {
    exit(&ctx, true)
}
#[kprobe(function = "tcp_recvmsg")]
pub fn netmon_kp_tcp_recvmsg(ctx: ProbeContext) -> u32 {
    enter(&ctx, Some(3))
}
#[kretprobe(function = "tcp_recvmsg")]
pub fn netmon_krp_tcp_recvmsg(ctx: RetProbeContext) -> u32 {
    exit(&ctx, false)
}
#[kprobe(function = "udp_recvmsg")]
pub fn netmon_kp_udp_recvmsg(ctx: ProbeContext) -> u32 {
    enter(&ctx, Some(3))
}
#[kretprobe(function = "udp_recvmsg")]
pub fn netmon_krp_udp_recvmsg(ctx: RetProbeContext) -> u32 {
    exit(&ctx, false)
}
#[kprobe(function = "udpv6_recvmsg")]
pub fn netmon_kp_udpv6_recvmsg(ctx: ProbeContext) -> u32 {
    enter(&ctx, Some(3))
}
#[kretprobe(function = "udpv6_recvmsg")]
pub fn netmon_krp_udpv6_recvmsg(ctx: RetProbeContext) -> u32 {
    exit(&ctx, false)
}
