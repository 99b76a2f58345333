//! Rung 2: BTF tracepoints `sock_send_length` / `sock_recv_length` (kernel >= 6.3). They fire
//! in the calling process after every send/recv with the exact return value, for accepted and
//! fork-shared sockets too.
use aya_ebpf::{
    helpers::generated::bpf_get_socket_cookie, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use netmon_common::origin;

use super::{MSG_PEEK, is_inet};
use crate::maps::account_payload;

#[inline(always)]
fn handle(ctx: &BtfTracePointContext, tx: bool) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    let flags: i32 = ctx.arg(2);
    if ret <= 0 || (!tx && flags & MSG_PEEK != 0) || !is_inet(sk) {
        return 0;
    }
    let cookie = unsafe { bpf_get_socket_cookie(sk as *mut _) };
    account_payload(cookie, tx, ret as u64, origin::TP_BTF);
    0
}

#[btf_tracepoint(function = "sock_send_length")]
pub fn netmon_tpbtf_send(ctx: BtfTracePointContext) -> i32 {
    handle(&ctx, true)
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn netmon_tpbtf_recv(ctx: BtfTracePointContext) -> i32 {
    handle(&ctx, false)
}
