//! DNS replies for the per-process name table: cgroup_skb ingress hands each packet from port 53
//! (UDP, or a TCP segment with payload) to [`copy_reply`], which copies it into the DNS ring
//! with the receiving socket's cookie and owner. The receiving socket is the one that asked, so
//! names land on the right process even when several share a resolver.
use aya_ebpf::{
    EbpfContext, helpers::generated::bpf_skb_load_bytes, macros::map, maps::RingBuf,
    programs::SkBuffContext,
};
use netmon_common::{DNS_SNAPLEN, DnsRecord, counter};

use crate::maps::{OWNERS, bump};

/// 512 KiB: about 250 full-size replies between two reads of a 250 ms poll.
#[map(name = "DNS")]
static DNS: RingBuf = RingBuf::with_byte_size(512 * 1024, 0);

/// Set to 1 by user space when it reads the DNS ring (`run`, `serve`); other commands leave it
/// 0 so replies are not copied into a ring nobody drains.
#[unsafe(no_mangle)]
static DNS_ENABLED: u32 = 0;

const DNS_PORT: u16 = 53;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Copies the packet (cgroup_skb data starts at the IP header) if it comes from port 53.
#[inline(always)]
pub fn copy_reply(ctx: &SkBuffContext, cookie: u64) {
    if unsafe { core::ptr::read_volatile(&DNS_ENABLED) } == 0 {
        return;
    }
    let Ok(first) = ctx.load::<u8>(0) else { return };
    let (proto, l4) = match first >> 4 {
        4 => (
            ctx.load::<u8>(9).unwrap_or(0),
            ((first & 0x0f) as usize) * 4,
        ),
        // Extension headers before UDP/TCP are rare on replies; such a reply is not learned.
        6 => (ctx.load::<u8>(6).unwrap_or(0), 40),
        _ => return,
    };
    if proto != IPPROTO_UDP && proto != IPPROTO_TCP {
        return;
    }
    let Ok(sport) = ctx.load::<u16>(l4) else {
        return;
    };
    if u16::from_be(sport) != DNS_PORT {
        return;
    }
    let len = ctx.len();
    if proto == IPPROTO_TCP {
        // Handshake and bare ACK segments carry no message.
        let Ok(off) = ctx.load::<u8>(l4 + 12) else {
            return;
        };
        if len as usize <= l4 + ((off >> 4) as usize) * 4 {
            return;
        }
    }
    let Some(mut entry) = DNS.reserve::<DnsRecord>(0) else {
        bump(counter::DNS_RING_FULL, 1);
        return;
    };
    let rec = entry.as_mut_ptr();
    let want = if (len as usize) < DNS_SNAPLEN {
        len
    } else {
        DNS_SNAPLEN as u32
    };
    // In [1, DNS_SNAPLEN] whatever the optimiser does, so the verifier sees a bounded size.
    let n = (want.wrapping_sub(1) & (DNS_SNAPLEN as u32 - 1)) + 1;
    unsafe {
        (*rec).cookie = cookie;
        (*rec).tgid = OWNERS.get(cookie).map_or(0, |o| o.tgid);
        (*rec).len = len;
        (*rec).cap_len = 0;
        (*rec)._pad = 0;
        if bpf_skb_load_bytes(ctx.as_ptr(), 0, (*rec).data.as_mut_ptr() as *mut _, n) == 0 {
            (*rec).cap_len = n;
        }
    }
    entry.submit(0);
}
