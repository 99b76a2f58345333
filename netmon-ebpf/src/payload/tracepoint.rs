//! Rung 3: the classic tracepoints sock/sock_send_length and sock_recv_length. Field offsets
//! come from the tracepoint's tracefs `format` file, read by user space. Classic tracepoints
//! may not call bpf_get_socket_cookie, so the cookie is read from the socket itself.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use netmon_common::origin;

use super::{MSG_PEEK, is_inet, stored_cookie};
use crate::maps::account_payload;

#[unsafe(no_mangle)]
static TP_SK_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static TP_RET_OFFSET: u32 = 0;
#[unsafe(no_mangle)]
static TP_FLAGS_OFFSET: u32 = 0;

#[inline(always)]
fn handle(ctx: &TracePointContext, tx: bool) -> u32 {
    let (sk_off, ret_off, flags_off) = unsafe {
        (
            core::ptr::read_volatile(&TP_SK_OFFSET),
            core::ptr::read_volatile(&TP_RET_OFFSET),
            core::ptr::read_volatile(&TP_FLAGS_OFFSET),
        )
    };
    if ret_off == 0 {
        return 0;
    }
    let sk: u64 = unsafe { ctx.read_at(sk_off as usize) }.unwrap_or(0);
    let ret: i32 = unsafe { ctx.read_at(ret_off as usize) }.unwrap_or(0);
    let flags: i32 = unsafe { ctx.read_at(flags_off as usize) }.unwrap_or(0);
    let sk = sk as *const u8;
    if ret <= 0 || (!tx && flags & MSG_PEEK != 0) || !is_inet(sk) {
        return 0;
    }
    account_payload(stored_cookie(sk), tx, ret as u64, origin::TRACEPOINT);
    0
}

#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn netmon_tp_send(ctx: TracePointContext) -> u32 {
    handle(&ctx, true)
}

#[tracepoint(category = "sock", name = "sock_recv_length")]
pub fn netmon_tp_recv(ctx: TracePointContext) -> u32 {
    handle(&ctx, false)
}
