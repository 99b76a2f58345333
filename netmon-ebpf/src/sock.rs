//! cgroup socket hooks at the cgroup-v2 root: who owns a socket. They run in the calling
//! process's context, so the pid is right (unlike cgroup_skb, which often runs in softirq).
//! Every hook allows the operation: netmon observes, it never filters.
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::{cgroup_sock, cgroup_sock_addr},
    programs::{SockAddrContext, SockContext},
};
use netmon_common::{counter, event_kind, origin};

use crate::maps::{RELEASED, bump, current_event, emit, record_owner};

const ALLOW: i32 = 1;

#[inline(always)]
fn own_sock(ctx: &SockContext, origin: u8) -> i32 {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let netns = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    record_owner(cookie, origin, netns);
    ALLOW
}

#[inline(always)]
fn own_addr(ctx: &SockAddrContext, origin: u8) -> i32 {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let netns = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    record_owner(cookie, origin, netns);
    ALLOW
}

#[cgroup_sock(sock_create)]
pub fn netmon_sock_create(ctx: SockContext) -> i32 {
    own_sock(&ctx, origin::SOCK_CREATE)
}

#[cgroup_sock(post_bind4)]
pub fn netmon_post_bind4(ctx: SockContext) -> i32 {
    own_sock(&ctx, origin::POST_BIND)
}

#[cgroup_sock(post_bind6)]
pub fn netmon_post_bind6(ctx: SockContext) -> i32 {
    own_sock(&ctx, origin::POST_BIND)
}

#[cgroup_sock_addr(connect4)]
pub fn netmon_connect4(ctx: SockAddrContext) -> i32 {
    own_addr(&ctx, origin::CONNECT)
}

#[cgroup_sock_addr(connect6)]
pub fn netmon_connect6(ctx: SockAddrContext) -> i32 {
    own_addr(&ctx, origin::CONNECT)
}

// sendmsg/recvmsg hooks fire for unconnected UDP only: they catch sockets created before
// netmon started that never connect.
#[cgroup_sock_addr(sendmsg4)]
pub fn netmon_sendmsg4(ctx: SockAddrContext) -> i32 {
    own_addr(&ctx, origin::SENDMSG)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn netmon_sendmsg6(ctx: SockAddrContext) -> i32 {
    own_addr(&ctx, origin::SENDMSG)
}

#[cgroup_sock_addr(recvmsg4)]
pub fn netmon_recvmsg4(ctx: SockAddrContext) -> i32 {
    own_addr(&ctx, origin::RECVMSG)
}

#[cgroup_sock_addr(recvmsg6)]
pub fn netmon_recvmsg6(ctx: SockAddrContext) -> i32 {
    own_addr(&ctx, origin::RECVMSG)
}

/// The last close of a socket: user space reads its final counters and then forgets it.
#[cgroup_sock(sock_release)]
pub fn netmon_sock_release(ctx: SockContext) -> i32 {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if cookie != 0 {
        let ev = current_event(event_kind::SOCK_RELEASE, cookie);
        // The map is the reliable record (the event may be lost when the ring is full).
        if RELEASED.insert(cookie, ev.ts_ns, 0).is_err() {
            bump(counter::RELEASED_FULL, 1);
        }
        emit(&ev);
    }
    ALLOW
}
