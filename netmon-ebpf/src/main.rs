#![no_std]
#![no_main]

use aya_ebpf::{macros::cgroup_sock, programs::SockContext};

#[cgroup_sock(sock_create)]
pub fn sock_create(_ctx: SockContext) -> i32 {
    1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
