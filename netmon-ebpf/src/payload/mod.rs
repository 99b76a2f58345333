//! Exact payload bytes per (socket, process): one file per rung of the fallback ladder. Every
//! rung ends in `maps::account_payload`; they differ only in where the hook sits and how the
//! socket's cookie is found.
//!
//! Struct offsets come from user space, which reads them from the kernel's BTF at load time
//! (`set_global`), so nothing here depends on one kernel's layout.
pub mod fentry;
pub mod kprobe;
pub mod tp_btf;
pub mod tracepoint;

use aya_ebpf::helpers::bpf_probe_read_kernel;

/// `offsetof(struct sock, __sk_common.skc_family)`.
#[unsafe(no_mangle)]
static SK_FAMILY_OFFSET: u32 = 0;
/// `offsetof(struct sock, __sk_common.skc_cookie)`.
#[unsafe(no_mangle)]
static SK_COOKIE_OFFSET: u32 = 0;

pub const MSG_PEEK: i32 = 2;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// True for IPv4/IPv6 sockets: unix and netlink sockets are not network traffic.
#[inline(always)]
pub fn is_inet(sk: *const u8) -> bool {
    let off = unsafe { core::ptr::read_volatile(&SK_FAMILY_OFFSET) };
    if sk.is_null() || off == 0 {
        return false;
    }
    let family: u16 =
        unsafe { bpf_probe_read_kernel(sk.add(off as usize) as *const u16) }.unwrap_or(0);
    family == AF_INET || family == AF_INET6
}

/// The socket's cookie as stored in the socket (0 until some hook has asked for it; the
/// cgroup hooks ask on socket creation and on every packet).
#[inline(always)]
pub fn stored_cookie(sk: *const u8) -> u64 {
    let off = unsafe { core::ptr::read_volatile(&SK_COOKIE_OFFSET) };
    if sk.is_null() || off == 0 {
        return 0;
    }
    unsafe { bpf_probe_read_kernel(sk.add(off as usize) as *const u64) }.unwrap_or(0)
}
