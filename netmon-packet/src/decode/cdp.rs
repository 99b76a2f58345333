//! Cisco Discovery Protocol (over 802.3 + LLC/SNAP, OUI 00:00:0c, PID 0x2000).
//!
//! Hand-written: no maintained Rust crate parses CDP. Header: version, TTL, checksum; then
//! type(2) length(2, header included) value TLVs.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, be32, text_or_hex};
use crate::packet::{Layer, Packet};

pub(super) fn cdp(pkt: &mut Packet, data: &[u8], cut: bool) {
    if data.len() < 4 {
        return pkt.truncated("CDP", "header", 4, data.len());
    }
    let mut layer = Layer::new("CDP");
    layer.push("Version", data[0]);
    layer.push("TTL", data[1]);
    layer.push("Checksum", u16::from_be_bytes([data[2], data[3]]));
    let mut rest = &data[4..];
    let mut problem = None;
    while !rest.is_empty() {
        let (Some(t), Some(len)) = (be16(rest, 0), be16(rest, 2)) else {
            problem = Some((4, rest.len()));
            break;
        };
        let len = usize::from(len);
        if len < 4 {
            pkt.problem(
                "CDP",
                format!("TLV 0x{t:04x} has length {len}, less than its header"),
            );
            break;
        }
        let Some(value) = rest.get(4..len) else {
            problem = Some((len, rest.len()));
            break;
        };
        tlv(&mut layer, t, value);
        rest = &rest[len..];
    }
    pkt.layers.push(layer);
    if let Some((need, have)) = problem {
        if cut {
            pkt.truncated("CDP", "TLV", need, have);
        } else {
            pkt.problem(
                "CDP",
                format!("TLV runs past the frame: need {need} bytes, have {have}"),
            );
        }
    }
}

fn tlv(layer: &mut Layer, t: u16, v: &[u8]) {
    match t {
        0x0001 => layer.push("Device_ID", text_or_hex(v)),
        0x0002 => {
            let addrs = addresses(v);
            if !addrs.is_empty() {
                layer.push("Addresses", addrs.join(","));
            }
        }
        0x0003 => layer.push("Port_ID", text_or_hex(v)),
        0x0004 => {
            if let Some(c) = be32(v, 0) {
                layer.push("Capabilities", c);
            }
        }
        0x0005 => layer.push("Software_Version", text_or_hex(v)),
        0x0006 => layer.push("Platform", text_or_hex(v)),
        0x000a => {
            if let Some(vlan) = be16(v, 0) {
                layer.push("Native_VLAN", vlan);
            }
        }
        0x000b => {
            if let Some(&d) = v.first() {
                layer.push("Duplex", if d == 1 { "full" } else { "half" });
            }
        }
        _ => {}
    }
}

/// The Addresses TLV: count(4), then per address: protocol type(1), protocol length(1),
/// protocol(n), address length(2), address. Only IPv4 (NLPID 0xcc) and IPv6 (802.2 SNAP
/// with EtherType 0x86dd) are shown.
fn addresses(v: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(count) = be32(v, 0) else { return out };
    let mut at = 4;
    for _ in 0..count.min(64) {
        let Some(&plen) = v.get(at + 1) else { break };
        let plen = usize::from(plen);
        let Some(proto) = v.get(at + 2..at + 2 + plen) else {
            break;
        };
        let Some(alen) = be16(v, at + 2 + plen) else {
            break;
        };
        let start = at + 4 + plen;
        let Some(addr) = v.get(start..start + usize::from(alen)) else {
            break;
        };
        if let Ok(a) = <[u8; 4]>::try_from(addr) {
            if proto == [0xcc] {
                out.push(Ipv4Addr::from(a).to_string());
            }
        } else if let Ok(a) = <[u8; 16]>::try_from(addr) {
            out.push(Ipv6Addr::from(a).to_string());
        }
        at = start + usize::from(alen);
    }
    out
}
