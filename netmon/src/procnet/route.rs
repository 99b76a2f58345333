//! `net/route` (IPv4) and `net/ipv6_route`.
//!
//! IPv4 lines go through procfs-core's `RouteEntries`, one at a time so a bad line costs only
//! itself. procfs-core has no `ipv6_route` parser, so that one is hand-written here.
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use procfs::FromBufRead;
use procfs::net::RouteEntries;

use super::Table;
use super::addr::{ipv6_from_be_hex, prefix_len};

/// `RTF_*` bits from `include/uapi/linux/route.h` and `ipv6_route.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RouteFlags(pub u32);

impl RouteFlags {
    pub const UP: u32 = 0x0001;
    pub const GATEWAY: u32 = 0x0002;
    pub const HOST: u32 = 0x0004;
    pub const REINSTATE: u32 = 0x0008;
    pub const DYNAMIC: u32 = 0x0010;
    pub const MODIFIED: u32 = 0x0020;
    pub const REJECT: u32 = 0x0200;
    pub const ADDRCONF: u32 = 0x0004_0000;
    pub const NONEXTHOP: u32 = 0x0020_0000;
    pub const CACHE: u32 = 0x0100_0000;
    pub const LOCAL: u32 = 0x8000_0000;

    /// Letters in net-tools `route` order; bits without a letter are left out.
    const LETTERS: [(u32, char); 10] = [
        (Self::UP, 'U'),
        (Self::GATEWAY, 'G'),
        (Self::HOST, 'H'),
        (Self::REINSTATE, 'R'),
        (Self::DYNAMIC, 'D'),
        (Self::MODIFIED, 'M'),
        (Self::ADDRCONF, 'A'),
        (Self::CACHE, 'C'),
        (Self::REJECT, '!'),
        (Self::NONEXTHOP, 'n'),
    ];

    pub fn contains(self, bit: u32) -> bool {
        self.0 & bit == bit
    }
}

impl fmt::Display for RouteFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in Self::LETTERS {
            if self.contains(bit) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route4 {
    pub iface: String,
    pub destination: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub mask: Ipv4Addr,
    /// `None` for a non-contiguous mask.
    pub prefix_len: Option<u8>,
    pub flags: RouteFlags,
    pub metric: u32,
    pub mtu: u32,
    pub window: u32,
    pub irtt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6 {
    pub destination: Ipv6Addr,
    pub destination_prefix_len: u8,
    pub source: Ipv6Addr,
    pub source_prefix_len: u8,
    pub next_hop: Ipv6Addr,
    pub metric: u32,
    pub refcnt: u32,
    pub use_count: u32,
    pub flags: RouteFlags,
    pub iface: String,
}

pub fn parse_v4(text: &str) -> Table<Route4> {
    Table::from_lines(text.lines().skip(1), parse_v4_line)
}

fn parse_v4_line(line: &str) -> Option<Route4> {
    // The crate's parser skips a header line.
    let entries = RouteEntries::from_buf_read(format!("\n{line}\n").as_bytes()).ok()?;
    let e = entries.0.into_iter().next()?;
    Some(Route4 {
        iface: e.iface,
        destination: e.destination,
        gateway: e.gateway,
        mask: e.mask,
        prefix_len: prefix_len(e.mask),
        flags: RouteFlags(u32::from(e.flags)),
        metric: e.metrics,
        mtu: e.mtu,
        window: e.window,
        irtt: e.irtt,
    })
}

/// No header line in this file.
pub fn parse_v6(text: &str) -> Table<Route6> {
    Table::from_lines(text.lines(), parse_v6_line)
}

fn parse_v6_line(line: &str) -> Option<Route6> {
    let mut f = line.split_whitespace();
    let hex32 = |s: &str| u32::from_str_radix(s, 16).ok();
    let hex8 = |s: &str| u8::from_str_radix(s, 16).ok();
    Some(Route6 {
        destination: ipv6_from_be_hex(f.next()?)?,
        destination_prefix_len: hex8(f.next()?).filter(|&p| p <= 128)?,
        source: ipv6_from_be_hex(f.next()?)?,
        source_prefix_len: hex8(f.next()?).filter(|&p| p <= 128)?,
        next_hop: ipv6_from_be_hex(f.next()?)?,
        metric: hex32(f.next()?)?,
        refcnt: hex32(f.next()?)?,
        use_count: hex32(f.next()?)?,
        flags: RouteFlags(hex32(f.next()?)?),
        iface: f.next()?.to_owned(),
    })
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn flag_letters() {
        let cases = [
            (0x0001, "U"),
            (0x0003, "UG"),
            (0x0007, "UGH"),
            (0x0005, "UH"),
            (0x0000, ""),
            (0x0200, "!"),
            (0x0020_0200, "!n"),
            (0x8020_0001, "Un"),
            (0x0004_0003, "UGA"),
            (0x0100_0001, "UC"),
            (0x0000_0019, "URD"),
        ];
        for (bits, want) in cases {
            assert_eq!(RouteFlags(bits).to_string(), want, "{bits:#x}");
        }
    }

    /// destination, gateway, mask, prefix length, flags, metric
    type V4Want<'a> = (&'a str, &'a str, &'a str, Option<u8>, &'a str, u32);

    #[test]
    fn v4_lines() {
        let cases: &[(&str, Option<V4Want>)] = &[
            (
                "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
                Some(("0.0.0.0", "192.0.2.1", "0.0.0.0", Some(0), "UG", 0)),
            ),
            (
                "eth0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
                Some(("192.0.2.0", "0.0.0.0", "255.255.255.0", Some(24), "U", 100)),
            ),
            (
                "eth0\t0100000A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t1500\t0\t0   extra",
                Some(("10.0.0.1", "0.0.0.0", "255.255.255.255", Some(32), "UH", 0)),
            ),
            (
                "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FF00FF\t0\t0\t0",
                Some(("10.0.0.0", "0.0.0.0", "255.0.255.0", None, "U", 0)),
            ),
            (
                "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0",
                None,
            ),
            (
                "eth0\t0000000G\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0",
                None,
            ),
            ("eth0", None),
        ];
        for (line, want) in cases {
            let got = parse_v4_line(line).map(|r| {
                (
                    r.destination.to_string(),
                    r.gateway.to_string(),
                    r.mask.to_string(),
                    r.prefix_len,
                    r.flags.to_string(),
                    r.metric,
                )
            });
            let want = want.map(|(d, g, m, p, f, metric)| {
                (
                    d.to_owned(),
                    g.to_owned(),
                    m.to_owned(),
                    p,
                    f.to_owned(),
                    metric,
                )
            });
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn v6_lines() {
        let r = parse_v6_line("00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd990000000000000000000000000001 00000400 00000001 00000000 00000003 veth-cap").unwrap();
        assert_eq!(r.destination, Ipv6Addr::UNSPECIFIED);
        assert_eq!(r.destination_prefix_len, 0);
        assert_eq!(r.next_hop.to_string(), "fd99::1");
        assert_eq!((r.metric, r.refcnt, r.use_count), (1024, 1, 0));
        assert_eq!(
            (r.flags.to_string().as_str(), r.iface.as_str()),
            ("UG", "veth-cap")
        );

        for bad in [
            "",
            "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001",
            "00000000000000000000000000000001 81 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001 lo",
            "0000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001 lo",
        ] {
            assert_eq!(parse_v6_line(bad), None, "{bad}");
        }
    }
}
