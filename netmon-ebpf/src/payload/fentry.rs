//! Rung 1: fexit on the protocol send/receive functions, which sees the return value and the
//! BTF-typed socket. `tcp_sendmsg(sk, msg, size)`, `udp(v6)_sendmsg(sk, msg, len)` and
//! `tcp/udp(v6)_recvmsg(sk, msg, len, flags, addr_len)` have had these signatures since 5.19.
use aya_ebpf::{helpers::generated::bpf_get_socket_cookie, macros::fexit, programs::FExitContext};
use netmon_common::origin;

use super::MSG_PEEK;
use crate::maps::account_payload;

#[inline(always)]
fn send(ctx: &FExitContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(3);
    if ret > 0 {
        let cookie = unsafe { bpf_get_socket_cookie(sk as *mut _) };
        account_payload(cookie, true, ret as u64, origin::FENTRY);
    }
    0
}

#[inline(always)]
fn recv(ctx: &FExitContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let flags: i32 = ctx.arg(3);
    let ret: i32 = ctx.arg(5);
    if ret > 0 && flags & MSG_PEEK == 0 {
        let cookie = unsafe { bpf_get_socket_cookie(sk as *mut _) };
        account_payload(cookie, false, ret as u64, origin::FENTRY);
    }
    0
}

#[fexit(function = "tcp_sendmsg")]
pub fn netmon_fexit_tcp_sendmsg(ctx: FExitContext) -> i32 {
    send(&ctx)
}

#[fexit(function = "udp_sendmsg")]
pub fn netmon_fexit_udp_sendmsg(ctx: FExitContext) -> i32 {
    send(&ctx)
}

#[fexit(function = "udpv6_sendmsg")]
pub fn netmon_fexit_udpv6_sendmsg(ctx: FExitContext) -> i32 {
    send(&ctx)
}

#[fexit(function = "tcp_recvmsg")]
pub fn netmon_fexit_tcp_recvmsg(ctx: FExitContext) -> i32 {
    recv(&ctx)
}

#[fexit(function = "udp_recvmsg")]
pub fn netmon_fexit_udp_recvmsg(ctx: FExitContext) -> i32 {
    recv(&ctx)
}

#[fexit(function = "udpv6_recvmsg")]
pub fn netmon_fexit_udpv6_recvmsg(ctx: FExitContext) -> i32 {
    recv(&ctx)
}
