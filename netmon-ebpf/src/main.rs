//! netmon's kernel programs. All state lives in maps (maps.rs); each file holds one hook family.
//! Programs only count and emit; anything user space can do, it does.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod capture;
mod dns;
mod finish;
mod lifecycle;
mod maps;
mod payload;
mod skb;
mod sock;
mod tcp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
