//! Decoder for the rtnetlink messages netmon follows: links, addresses, routes, neighbours.
//!
//! Hand-written rather than netlink-packet-route + netlink-sys, like the sock_diag decoder in
//! `source/procfs/diag.rs`: netmon reads a handful of fixed headers and about a dozen attributes,
//! while netlink-packet-route models every attribute of every message (and has changed its API
//! in most minor releases), adding several crates to a build shared with the eBPF toolchain. A
//! pure function over a datagram also keeps the captured fixtures the unit tests, and every
//! length check here: a malformed message is an error to count and skip, never a panic.
//!
//! Layouts (include/uapi/linux/{netlink,rtnetlink,if_link,if_addr,neighbour}.h), host-endian:
//! - `nlmsghdr` (16): len u32, type u16, flags u16, seq u32, pid u32; messages 4-aligned
//! - `ifinfomsg` (16): family u8, pad u8, type u16, index i32, flags u32, change u32
//! - `ifaddrmsg` (8): family u8, prefixlen u8, flags u8, scope u8, index u32
//! - `rtmsg` (12): family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags u32
//! - `ndmsg` (12): family u8, pad u8, pad u16, ifindex i32, state u16, flags u8, type u8
//! - `rtattr` (4 + payload): len u16 (header included), type u16; 4-aligned
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_HDR_LEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWNEIGH: u16 = 28;
pub const RTM_DELNEIGH: u16 = 29;
pub const RTM_GETNEIGH: u16 = 30;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Attribute types carry two flag bits (nested, net byte order) above the type proper.
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const IFF_UP: u32 = 0x1;
pub const IFF_LOWER_UP: u32 = 0x1_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMsg {
    pub family: u8,
    pub index: u32,
    pub flags: u32,
    pub name: Option<String>,
    pub mac: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrMsg {
    pub family: u8,
    pub prefix_len: u8,
    pub index: u32,
    pub addr: Option<IpAddr>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMsg {
    pub family: u8,
    pub dst_len: u8,
    pub table: u32,
    pub rtype: u8,
    pub flags: u32,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub metric: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighMsg {
    pub family: u8,
    pub index: u32,
    pub state: u16,
    pub dst: Option<IpAddr>,
    pub lladdr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtMsg {
    NewLink(LinkMsg),
    DelLink(LinkMsg),
    NewAddr(AddrMsg),
    DelAddr(AddrMsg),
    NewRoute(RouteMsg),
    DelRoute(RouteMsg),
    NewNeigh(NeighMsg),
    DelNeigh(NeighMsg),
    /// End of a dump.
    Done,
    /// NLMSG_ERROR: 0 is an acknowledgement, otherwise a negative errno.
    Error(i32),
    Overrun,
    /// A type netmon does not follow.
    Other(u16),
}

/// One netlink message: its header fields and the decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nl {
    pub seq: u32,
    pub flags: u16,
    pub msg: Result<RtMsg, RtnlError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtnlError {
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("netlink message length {0} is shorter than its header")]
    BadLength(usize),
    #[error("attribute length {len} at offset {at} is invalid")]
    BadAttr { len: usize, at: usize },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn need(what: &'static str, n: usize, b: &[u8]) -> Result<(), RtnlError> {
    if b.len() < n {
        return Err(RtnlError::Truncated {
            what,
            need: n,
            have: b.len(),
        });
    }
    Ok(())
}

/// Splits a datagram into messages. A framing error (a length that cannot be trusted) ends the
/// datagram: it is returned last, after the messages before it.
pub fn parse_datagram(buf: &[u8]) -> (Vec<Nl>, Option<RtnlError>) {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < NLMSG_HDR_LEN {
            return (
                out,
                Some(RtnlError::Truncated {
                    what: "netlink header",
                    need: NLMSG_HDR_LEN,
                    have: rest.len(),
                }),
            );
        }
        let len = u32_at(rest, 0) as usize;
        if len < NLMSG_HDR_LEN {
            return (out, Some(RtnlError::BadLength(len)));
        }
        if len > rest.len() {
            return (
                out,
                Some(RtnlError::Truncated {
                    what: "netlink message",
                    need: len,
                    have: rest.len(),
                }),
            );
        }
        let kind = u16_at(rest, 4);
        let flags = u16_at(rest, 6);
        let seq = u32_at(rest, 8);
        let body = &rest[NLMSG_HDR_LEN..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        out.push(Nl {
            seq,
            flags,
            msg: parse_body(kind, body),
        });
    }
    (out, None)
}

fn parse_body(kind: u16, b: &[u8]) -> Result<RtMsg, RtnlError> {
    Ok(match kind {
        NLMSG_DONE => RtMsg::Done,
        NLMSG_OVERRUN => RtMsg::Overrun,
        NLMSG_ERROR => {
            need("nlmsgerr", 4, b)?;
            RtMsg::Error(u32_at(b, 0) as i32)
        }
        RTM_NEWLINK => RtMsg::NewLink(link(b)?),
        RTM_DELLINK => RtMsg::DelLink(link(b)?),
        RTM_NEWADDR => RtMsg::NewAddr(addr(b)?),
        RTM_DELADDR => RtMsg::DelAddr(addr(b)?),
        RTM_NEWROUTE => RtMsg::NewRoute(route(b)?),
        RTM_DELROUTE => RtMsg::DelRoute(route(b)?),
        RTM_NEWNEIGH => RtMsg::NewNeigh(neigh(b)?),
        RTM_DELNEIGH => RtMsg::DelNeigh(neigh(b)?),
        other => RtMsg::Other(other),
    })
}

/// The attributes in `b` as (type, payload), or the first bad length.
fn attrs(b: &[u8]) -> Result<Vec<(u16, &[u8])>, RtnlError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        if b.len() - at < 4 {
            return Err(RtnlError::BadAttr {
                len: b.len() - at,
                at,
            });
        }
        let len = usize::from(u16_at(b, at));
        if len < 4 || at + len > b.len() {
            return Err(RtnlError::BadAttr { len, at });
        }
        out.push((u16_at(b, at + 2) & NLA_TYPE_MASK, &b[at + 4..at + len]));
        at += len.next_multiple_of(4);
    }
    Ok(out)
}

/// A NUL-terminated string attribute.
fn text(p: &[u8]) -> String {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

pub fn mac(p: &[u8]) -> String {
    p.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip(p: &[u8]) -> Option<IpAddr> {
    match p.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(p[0], p[1], p[2], p[3]))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(p);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

fn u32_attr(p: &[u8]) -> Option<u32> {
    (p.len() >= 4).then(|| u32_at(p, 0))
}

fn link(b: &[u8]) -> Result<LinkMsg, RtnlError> {
    need("ifinfomsg", 16, b)?;
    let mut m = LinkMsg {
        family: b[0],
        index: u32_at(b, 4),
        flags: u32_at(b, 8),
        name: None,
        mac: None,
        kind: None,
    };
    for (t, p) in attrs(&b[16..])? {
        match t {
            IFLA_IFNAME => m.name = Some(text(p)),
            // Devices without a hardware address (ip tunnels, lo's all-zero one) have none.
            IFLA_ADDRESS if p.iter().any(|&x| x != 0) => m.mac = Some(mac(p)),
            IFLA_LINKINFO => {
                for (it, ip) in attrs(p)? {
                    if it == IFLA_INFO_KIND {
                        m.kind = Some(text(ip));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(m)
}

fn addr(b: &[u8]) -> Result<AddrMsg, RtnlError> {
    need("ifaddrmsg", 8, b)?;
    let mut m = AddrMsg {
        family: b[0],
        prefix_len: b[1],
        index: u32_at(b, 4),
        addr: None,
        label: None,
    };
    let mut address = None;
    let mut local = None;
    for (t, p) in attrs(&b[8..])? {
        match t {
            IFA_ADDRESS => address = ip(p),
            IFA_LOCAL => local = ip(p),
            IFA_LABEL => m.label = Some(text(p)),
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is always ours when present.
    m.addr = local.or(address);
    Ok(m)
}

fn route(b: &[u8]) -> Result<RouteMsg, RtnlError> {
    need("rtmsg", 12, b)?;
    let mut m = RouteMsg {
        family: b[0],
        dst_len: b[1],
        // The u8 header field holds tables below 256; RTA_TABLE, when present, is the truth.
        table: u32::from(b[4]),
        rtype: b[7],
        flags: u32_at(b, 8),
        gateway: None,
        oif: None,
        metric: 0,
    };
    for (t, p) in attrs(&b[12..])? {
        match t {
            RTA_GATEWAY => m.gateway = ip(p),
            RTA_OIF => m.oif = u32_attr(p),
            RTA_PRIORITY => m.metric = u32_attr(p).unwrap_or(0),
            RTA_TABLE => m.table = u32_attr(p).unwrap_or(m.table),
            _ => {}
        }
    }
    Ok(m)
}

fn neigh(b: &[u8]) -> Result<NeighMsg, RtnlError> {
    need("ndmsg", 12, b)?;
    let mut m = NeighMsg {
        family: b[0],
        index: u32_at(b, 4),
        state: u16_at(b, 8),
        dst: None,
        lladdr: None,
    };
    for (t, p) in attrs(&b[12..])? {
        match t {
            NDA_DST => m.dst = ip(p),
            NDA_LLADDR => m.lladdr = Some(mac(p)),
            _ => {}
        }
    }
    Ok(m)
}

/// A dump request (`NLM_F_REQUEST | NLM_F_DUMP`) for one RTM_GET* type, with the zeroed family
/// header the kernel expects for it (AF_UNSPEC: every family).
pub fn dump_request(kind: u16, seq: u32) -> Vec<u8> {
    let hdr_len = match kind {
        RTM_GETLINK => 16,
        RTM_GETADDR => 8,
        _ => 12,
    };
    let len = NLMSG_HDR_LEN + hdr_len;
    let mut v = vec![0u8; len];
    v[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    v[4..6].copy_from_slice(&kind.to_ne_bytes());
    v[6..8].copy_from_slice(&(0x1u16 | 0x300).to_ne_bytes());
    v[8..12].copy_from_slice(&seq.to_ne_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rtnetlink")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn one(name: &str) -> RtMsg {
        let (msgs, err) = parse_datagram(&fixture(name));
        assert_eq!(err, None);
        assert_eq!(msgs.len(), 1);
        msgs[0].msg.clone().unwrap()
    }

    #[test]
    fn captured_link_add() {
        let RtMsg::NewLink(l) = one("link_new_dum0.bin") else {
            panic!()
        };
        assert_eq!(l.name.as_deref(), Some("dum0"));
        assert_eq!(l.kind.as_deref(), Some("ifb"));
        assert_eq!(l.flags & IFF_UP, 0);
        assert!(l.mac.is_some());
    }

    #[test]
    fn captured_addresses() {
        let RtMsg::NewAddr(a) = one("addr_new_v4.bin") else {
            panic!()
        };
        assert_eq!(a.addr, Some("10.9.0.1".parse().unwrap()));
        assert_eq!((a.family, a.prefix_len), (AF_INET, 24));
        assert_eq!(a.label.as_deref(), Some("dum0"));
        let RtMsg::NewAddr(a) = one("addr_new_v6.bin") else {
            panic!()
        };
        assert_eq!(a.addr, Some("fd09::1".parse().unwrap()));
        assert_eq!(a.prefix_len, 64);
        let RtMsg::DelAddr(a) = one("addr_del_v4.bin") else {
            panic!()
        };
        assert_eq!(a.addr, Some("10.9.0.1".parse().unwrap()));
    }

    #[test]
    fn captured_default_routes() {
        let RtMsg::NewRoute(r) = one("route_new_default.bin") else {
            panic!()
        };
        assert_eq!(
            (r.family, r.dst_len, r.table, r.rtype),
            (AF_INET, 0, 254, 1)
        );
        assert_eq!(r.gateway, Some("10.9.0.254".parse().unwrap()));
        let RtMsg::NewRoute(r) = one("route_replace_default.bin") else {
            panic!()
        };
        assert_eq!(r.gateway, Some("10.9.0.253".parse().unwrap()));
        let RtMsg::DelRoute(r) = one("route_del_default.bin") else {
            panic!()
        };
        assert_eq!(r.gateway, Some("10.9.0.253".parse().unwrap()));
    }

    #[test]
    fn captured_neighbour() {
        let RtMsg::NewNeigh(n) = one("neigh_new.bin") else {
            panic!()
        };
        assert_eq!(n.dst, Some("10.9.0.7".parse().unwrap()));
        assert_eq!(n.lladdr.as_deref(), Some("02:00:00:00:00:07"));
        assert_eq!(n.state, 0x80);
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let good = fixture("link_new_dum0.bin");
        // Every truncation of a real message, and every single-byte corruption of its lengths.
        for i in 0..good.len() {
            let _ = parse_datagram(&good[..i]);
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            let _ = parse_datagram(&b);
        }
        let (m, e) = parse_datagram(&good[..10]);
        assert!(m.is_empty());
        assert!(matches!(e, Some(RtnlError::Truncated { .. })));
        let mut short = good.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(parse_datagram(&short).1, Some(RtnlError::BadLength(8)));
        // A body with a bad attribute length is one bad message; the next one still parses.
        let mut two = good.clone();
        two[16 + 16..16 + 18].copy_from_slice(&2u16.to_ne_bytes());
        two.extend_from_slice(&good);
        let (m, e) = parse_datagram(&two);
        assert_eq!(e, None);
        assert_eq!(m.len(), 2);
        assert!(m[0].msg.is_err());
        assert!(matches!(m[1].msg, Ok(RtMsg::NewLink(_))));
    }
}
