//! cgroup socket hooks at the cgroup-v2 root: who owns a socket. They run in the calling
//! process's context, so the pid is right (unlike cgroup_skb, which often runs in softirq).
//! Every hook allows the operation: netmon observes, it never filters.
use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_current_pid_tgid,
    helpers::generated::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::{cgroup_sock, cgroup_sock_addr},
    programs::{SockAddrContext, SockContext},
};
use netmon_common::{counter, origin};

use crate::maps::{RELEASED, bump, record_owner};

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

const IPPROTO_TCP: u32 = 6;
const TCP_CLOSE: u32 = 7;

/// The last close of a socket. A TCP socket that is not CLOSE yet lives on (FIN_WAIT,
/// LAST_ACK): it is marked released (with the releasing process) and ends when its state
/// reaches CLOSE; the mark is also how user space frees it should that tracepoint be missing.
/// Anything else ends here.
#[cgroup_sock(sock_release)]
pub fn netmon_sock_release(ctx: SockContext) -> i32 {
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if cookie == 0 {
        return ALLOW;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let sk = ctx.sock;
    let protocol = unsafe { core::ptr::read_volatile(&raw const (*sk).protocol) };
    let state = unsafe { core::ptr::read_volatile(&raw const (*sk).state) };
    if protocol == IPPROTO_TCP && state != TCP_CLOSE {
        if RELEASED.insert(cookie, tgid as u64, 0).is_err() {
            bump(counter::RELEASED_FULL, 1);
        }
        return ALLOW;
    }
    crate::finish::finish(cookie, tgid);
    ALLOW
}
