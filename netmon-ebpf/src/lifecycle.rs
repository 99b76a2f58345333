//! Socket and process lifecycle: TCP state changes, fork and exit. Tracepoints with BTF
//! arguments, so no struct offsets are hard-coded.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use netmon_common::event_kind;

use crate::maps::{RELEASED, current_event, emit};

const TCP_FIN_WAIT1: i32 = 4;
const TCP_CLOSE: i32 = 7;
const TCP_CLOSE_WAIT: i32 = 8;

/// bpf_get_socket_cookie accepts a BTF `struct sock *` in tracing programs.
#[inline(always)]
fn cookie_of(sk: *const core::ffi::c_void) -> u64 {
    unsafe { aya_ebpf::helpers::generated::bpf_get_socket_cookie(sk as *mut _) }
}

/// `inet_sock_set_state(const struct sock *sk, const int oldstate, const int newstate)`.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn netmon_inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let sk: *const core::ffi::c_void = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    let shown = shown_state(new);
    if !shown && new != TCP_FIN_WAIT1 {
        return 0;
    }
    let cookie = cookie_of(sk);
    // Who began a FIN close (FIN_WAIT1 is only counted, never sent to user space).
    if new == TCP_FIN_WAIT1 || new == TCP_CLOSE_WAIT {
        crate::tcp::count_fin_close(cookie, new == TCP_FIN_WAIT1);
    }
    if !shown {
        return 0;
    }
    // The process closed the socket before TCP finished with it (the usual order for whoever
    // closes first): now the socket has ended.
    if new == TCP_CLOSE
        && let Some(&releaser) = unsafe { RELEASED.get(cookie) }
    {
        crate::finish::finish(cookie, releaser as u32);
        return 0;
    }
    let mut ev = current_event(event_kind::SOCK_STATE, cookie);
    ev.arg0 = old as u64;
    ev.arg1 = new as u64;
    emit(&ev);
    0
}

/// States user space shows or uses: SYN_SENT (outbound connections), ESTABLISHED, CLOSE,
/// CLOSE_WAIT (the peer closed and the application has not: the state that piles up) and
/// LISTEN. The others (SYN_RECV, FIN_WAIT1/2, TIME_WAIT, LAST_ACK, CLOSING) pass in a moment
/// on the way to a close that SOCK_RELEASE reports anyway, and each would be one more ring
/// record per connection: at tens of thousands of connections a second, records are what
/// gets lost.
#[inline(always)]
fn shown_state(state: i32) -> bool {
    matches!(state, 1 | 2 | 7 | 8 | 10)
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`: runs in the
/// parent, so the current tgid is the parent process. The child's pid is `child->pid`, read
/// through the offset user space found in BTF (`CHILD_PID_OFFSET`).
#[btf_tracepoint(function = "sched_process_fork")]
pub fn netmon_sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let child: *const u8 = ctx.arg(1);
    let off = unsafe { core::ptr::read_volatile(&TASK_PID_OFFSET) };
    if off == 0 {
        return 0;
    }
    let child_pid: i32 =
        unsafe { bpf_probe_read_kernel(child.add(off as usize) as *const i32) }.unwrap_or(0);
    let child_tgid: i32 =
        unsafe { bpf_probe_read_kernel(child.add(off as usize + 4) as *const i32) }.unwrap_or(0);
    // A new thread shares its parent's tgid: not a new process.
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as i32;
    if child_pid <= 0 || child_tgid == parent_tgid {
        return 0;
    }
    let mut ev = current_event(event_kind::PROC_FORK, 0);
    ev.arg0 = child_pid as u64;
    emit(&ev);
    0
}

/// `sched_process_exit(struct task_struct *p)`: only the thread-group leader's exit ends the
/// process as user space sees it.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn netmon_sched_process_exit(_ctx: BtfTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if pid_tgid as u32 == (pid_tgid >> 32) as u32 {
        emit(&current_event(event_kind::PROC_EXIT, 0));
    }
    0
}

/// Offset of `pid` in `struct task_struct` (tgid follows it), set by user space from BTF.
#[unsafe(no_mangle)]
static TASK_PID_OFFSET: u32 = 0;
