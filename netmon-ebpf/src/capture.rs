//! `netmon capture`: TC (ingress and egress) and XDP (ingress) programs that count every packet
//! per interface and copy a header snapshot of the ones wanted into the CAPTURE ring buffer.
//!
//! The in-kernel filter is a conservative pre-filter: it drops a packet only when it can tell
//! for sure that it does not match (user space applies the full filter afterwards), so packets
//! it cannot parse (IPv6 extension headers, fragments) go up rather than being lost.
use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, xdp_action},
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_get_socket_cookie, bpf_skb_load_bytes, bpf_xdp_load_bytes},
    },
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
};
use netmon_common::{
    CaptureConfig, CaptureRecord, IfaceStats, KernelFilter, MAX_SNAPLEN, capture_hook, counter,
    direction,
};

use crate::maps::{OWNERS, atomic_add, bump};

/// 8 MiB: about 27k full-size records between two reads.
#[map(name = "CAPTURE")]
static CAPTURE: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

#[map(name = "CAPTURE_CONFIG")]
static CAPTURE_CONFIG: Array<CaptureConfig> = Array::with_max_entries(1, 0);

#[map(name = "IFACE_STATS")]
static IFACE_STATS: HashMap<u64, IfaceStats> = HashMap::with_max_entries(1024, 0);

/// Per-CPU sampling sequence and rate-limit window.
#[repr(C)]
#[derive(Clone, Copy)]
struct CpuState {
    seq: u64,
    window_start_ns: u64,
    in_window: u64,
}

#[map(name = "CAPTURE_CPU")]
static CAPTURE_CPU: PerCpuArray<CpuState> = PerCpuArray::with_max_entries(1, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const BPF_NOEXIST: u64 = 1;

/// Reads bytes of a packet whatever hook holds it.
trait Frame {
    fn len(&self) -> u32;
    /// Copies `n` (1..=MAX_SNAPLEN) bytes from `off` to `dst`; false when the packet is shorter.
    fn copy(&self, off: u32, dst: *mut u8, n: u32) -> bool;

    #[inline(always)]
    fn load<T: Copy + Default>(&self, off: u32) -> Option<T> {
        let mut v = T::default();
        self.copy(off, &raw mut v as *mut u8, size_of::<T>() as u32)
            .then_some(v)
    }
}

struct Tc<'a>(&'a TcContext);
struct Xdp<'a>(&'a XdpContext);

impl Frame for Tc<'_> {
    fn len(&self) -> u32 {
        self.0.len()
    }
    #[inline(always)]
    fn copy(&self, off: u32, dst: *mut u8, n: u32) -> bool {
        unsafe { bpf_skb_load_bytes(self.0.as_ptr(), off, dst as *mut _, n) == 0 }
    }
}

impl Frame for Xdp<'_> {
    fn len(&self) -> u32 {
        (self.0.data_end() - self.0.data()) as u32
    }
    #[inline(always)]
    fn copy(&self, off: u32, dst: *mut u8, n: u32) -> bool {
        unsafe { bpf_xdp_load_bytes(self.0.ctx, off, dst as *mut _, n) == 0 }
    }
}

#[classifier]
pub fn netmon_tc_ingress(ctx: TcContext) -> i32 {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    capture(&Tc(&ctx), ifindex, direction::INGRESS, capture_hook::TC, 0);
    TC_ACT_OK
}

#[classifier]
pub fn netmon_tc_egress(ctx: TcContext) -> i32 {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    capture(
        &Tc(&ctx),
        ifindex,
        direction::EGRESS,
        capture_hook::TC,
        cookie,
    );
    TC_ACT_OK
}

#[xdp]
pub fn netmon_xdp(ctx: XdpContext) -> u32 {
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    capture(
        &Xdp(&ctx),
        ifindex,
        direction::INGRESS,
        capture_hook::XDP,
        0,
    );
    xdp_action::XDP_PASS
}

#[inline(always)]
fn capture<F: Frame>(f: &F, ifindex: u32, dir: u8, hook: u8, cookie: u64) {
    let len = f.len();
    count_iface(ifindex, dir, len);
    let Some(cfg) = CAPTURE_CONFIG.get(0) else {
        return;
    };
    if cfg.snaplen == 0 {
        return;
    }
    let (tgid, comm) = owner(cookie);
    if tgid != 0 && tgid == cfg.self_tgid && cfg.include_self == 0 {
        bump(counter::CAPTURE_SELF, 1);
        return;
    }
    if cfg.filter.enabled != 0 && !prefilter(f, &cfg.filter) {
        bump(counter::CAPTURE_FILTERED, 1);
        return;
    }
    if !admit(cfg) {
        return;
    }
    let Some(mut entry) = CAPTURE.reserve::<CaptureRecord>(0) else {
        bump(counter::CAPTURE_RING_FULL, 1);
        return;
    };
    let rec = entry.as_mut_ptr();
    let want = if len < cfg.snaplen { len } else { cfg.snaplen };
    // In [1, MAX_SNAPLEN] by construction, so the verifier sees a non-zero bounded size
    // whatever the optimiser does to the comparisons (a 0 becomes 256 and the copy fails).
    let mut n = (want.wrapping_sub(1) & (MAX_SNAPLEN as u32 - 1)) + 1;
    unsafe {
        (*rec).ts_ns = bpf_ktime_get_ns();
        (*rec).cookie = cookie;
        (*rec).ifindex = ifindex;
        (*rec).orig_len = len;
        (*rec).tgid = tgid;
        (*rec).direction = dir;
        (*rec).hook = hook;
        (*rec).comm = comm;
        if n == 0 || !f.copy(0, (*rec).data.as_mut_ptr(), n) {
            n = 0;
        }
        (*rec).cap_len = n as u16;
    }
    entry.submit(0);
}

#[inline(always)]
fn count_iface(ifindex: u32, dir: u8, len: u32) {
    let key = ((ifindex as u64) << 1) | dir as u64;
    if let Some(p) = IFACE_STATS.get_ptr_mut(key) {
        unsafe {
            atomic_add(&raw mut (*p).packets, 1);
            atomic_add(&raw mut (*p).bytes, len as u64);
        }
        return;
    }
    let first = IfaceStats {
        packets: 1,
        bytes: len as u64,
    };
    if IFACE_STATS.insert(key, first, BPF_NOEXIST).is_err()
        && let Some(p) = IFACE_STATS.get_ptr_mut(key)
    {
        unsafe {
            atomic_add(&raw mut (*p).packets, 1);
            atomic_add(&raw mut (*p).bytes, len as u64);
        }
    }
}

#[inline(always)]
fn owner(cookie: u64) -> (u32, [u8; 16]) {
    if cookie == 0 {
        return (0, [0; 16]);
    }
    match unsafe { OWNERS.get(cookie) } {
        Some(o) => (o.tgid, o.comm),
        None => (0, [0; 16]),
    }
}

/// Sampling (1 in N) and the per-CPU rate limit; skipped packets are counted.
#[inline(always)]
fn admit(cfg: &CaptureConfig) -> bool {
    let Some(st) = CAPTURE_CPU.get_ptr_mut(0) else {
        return true;
    };
    unsafe {
        (*st).seq += 1;
        if cfg.sample > 1 && (*st).seq % cfg.sample as u64 != 0 {
            bump(counter::CAPTURE_SAMPLED_OUT, 1);
            return false;
        }
        if cfg.rate_per_cpu > 0 {
            let now = bpf_ktime_get_ns();
            if now - (*st).window_start_ns >= 1_000_000_000 {
                (*st).window_start_ns = now;
                (*st).in_window = 0;
            }
            if (*st).in_window >= cfg.rate_per_cpu as u64 {
                bump(counter::CAPTURE_RATE_LIMITED, 1);
                return false;
            }
            (*st).in_window += 1;
        }
    }
    true
}

/// False only when the packet certainly does not match the filter.
#[inline(always)]
fn prefilter<F: Frame>(f: &F, flt: &KernelFilter) -> bool {
    let mut off = 12u32;
    let Some(mut proto) = f.load::<u16>(off).map(u16::from_be) else {
        return true;
    };
    off = ETH_HLEN as u32;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let Some(inner) = f.load::<u16>(off + 2).map(u16::from_be) else {
            return true;
        };
        proto = inner;
        off += 4;
    }
    let (family, ip_proto, l4, src, dst) = match proto {
        ETH_P_IP => {
            let Some(vihl) = f.load::<u8>(off) else {
                return true;
            };
            let Some(p) = f.load::<u8>(off + 9) else {
                return true;
            };
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            let (Some(s4), Some(d4)) = (f.load::<[u8; 4]>(off + 12), f.load::<[u8; 4]>(off + 16))
            else {
                return true;
            };
            s[..4].copy_from_slice(&s4);
            d[..4].copy_from_slice(&d4);
            (4u8, p, off + ((vihl & 0x0f) as u32) * 4, s, d)
        }
        ETH_P_IPV6 => {
            let Some(p) = f.load::<u8>(off + 6) else {
                return true;
            };
            let (Some(s), Some(d)) = (f.load::<[u8; 16]>(off + 8), f.load::<[u8; 16]>(off + 24))
            else {
                return true;
            };
            (6u8, p, off + 40, s, d)
        }
        // Not IP: only a filter that asks for nothing IP-specific could match, and such a
        // filter is not enabled in the kernel.
        _ => return false,
    };
    if flt.family != 0 && flt.family != family {
        return false;
    }
    if flt.ip_proto != 0 && flt.ip_proto != ip_proto {
        // IPv6 extension headers hide the real protocol: let user space decide.
        return family == 6 && is_ipv6_extension(ip_proto);
    }
    if flt.prefix_len > 0 && !in_prefix(&src, flt) && !in_prefix(&dst, flt) {
        return false;
    }
    if flt.port != 0 {
        if !(ip_proto == 6 || ip_proto == 17) {
            return family == 6 && is_ipv6_extension(ip_proto);
        }
        let (Some(sp), Some(dp)) = (f.load::<u16>(l4), f.load::<u16>(l4 + 2)) else {
            return true;
        };
        if u16::from_be(sp) != flt.port && u16::from_be(dp) != flt.port {
            return false;
        }
    }
    true
}

#[inline(always)]
fn is_ipv6_extension(p: u8) -> bool {
    matches!(p, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140)
}

#[inline(always)]
fn in_prefix(a: &[u8; 16], flt: &KernelFilter) -> bool {
    let bits = flt.prefix_len as usize;
    let mut i = 0;
    while i < 16 {
        let start = i * 8;
        if start >= bits {
            break;
        }
        let take = if bits - start >= 8 { 8 } else { bits - start };
        let mask: u8 = 0xffu8 << (8 - take);
        if (a[i] ^ flt.addr[i]) & mask != 0 {
            return false;
        }
        i += 1;
    }
    true
}
