//! Link Layer Discovery Protocol (IEEE 802.1AB, EtherType 0x88cc).
//!
//! Hand-written: no maintained Rust crate parses LLDP frames. Each TLV has a 7-bit type and a
//! 9-bit length, then the value; type 0 ends the frame.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, hex, mac, text_or_hex};
use crate::packet::{Layer, Packet};

pub(super) fn lldp(pkt: &mut Packet, data: &[u8]) {
    let mut layer = Layer::new("LLDP");
    let mut rest = data;
    let mut cut = None;
    let mut ended = false;
    while !rest.is_empty() {
        let Some(h) = be16(rest, 0) else {
            cut = Some((2, rest.len()));
            break;
        };
        let (t, len) = ((h >> 9) as u8, usize::from(h & 0x1ff));
        let Some(v) = rest.get(2..2 + len) else {
            cut = Some((2 + len, rest.len()));
            break;
        };
        if t == 0 {
            ended = true;
            break;
        }
        tlv(&mut layer, t, v);
        rest = &rest[2 + len..];
    }
    pkt.layers.push(layer);
    if let Some((need, have)) = cut {
        pkt.truncated("LLDP", "TLV", need, have);
    } else if !ended {
        // Ends on a TLV boundary without the End TLV: most likely cut there by the snap length.
        pkt.problems.push(crate::packet::Problem {
            layer: "LLDP",
            reason: "truncated at LLDP TLVs: no End Of LLDPDU TLV".into(),
            truncated: true,
        });
    }
}

fn tlv(layer: &mut Layer, t: u8, v: &[u8]) {
    match t {
        1 => {
            if let Some((&sub, id)) = v.split_first() {
                layer.push("Chassis_ID_Subtype", sub);
                layer.push("Chassis_ID", id_value(sub, 4, id));
            }
        }
        2 => {
            if let Some((&sub, id)) = v.split_first() {
                layer.push("Port_ID_Subtype", sub);
                layer.push("Port_ID", id_value(sub, 3, id));
            }
        }
        3 => {
            if let Some(ttl) = be16(v, 0) {
                layer.push("TTL", ttl);
            }
        }
        4 => layer.push("Port_Description", text_or_hex(v)),
        5 => layer.push("System_Name", text_or_hex(v)),
        6 => layer.push("System_Description", text_or_hex(v)),
        7 => {
            if let (Some(cap), Some(en)) = (be16(v, 0), be16(v, 2)) {
                layer.push("Capabilities", cap);
                layer.push("Enabled_Capabilities", en);
            }
        }
        8 => {
            // Address string length (subtype included), subtype (IANA: 1 IPv4, 2 IPv6), address.
            if let Some((&slen, rest)) = v.split_first() {
                let alen = usize::from(slen).saturating_sub(1);
                if let (Some(&sub), Some(addr)) = (rest.first(), rest.get(1..1 + alen)) {
                    let shown = match (sub, addr.len()) {
                        (1, 4) => Ipv4Addr::from(<[u8; 4]>::try_from(addr).unwrap_or_default())
                            .to_string(),
                        (2, 16) => Ipv6Addr::from(<[u8; 16]>::try_from(addr).unwrap_or_default())
                            .to_string(),
                        _ => hex(addr),
                    };
                    layer.push("Management_Address", shown);
                }
            }
        }
        _ => {}
    }
}

/// Chassis and port IDs: the "MAC address" subtype is shown as a MAC, the "network address"
/// subtype (5) as an IP when its family is known, everything else as text.
fn id_value(subtype: u8, mac_subtype: u8, id: &[u8]) -> String {
    if subtype == mac_subtype
        && let Some(m) = mac(id).filter(|_| id.len() == 6)
    {
        return m.to_string();
    }
    if subtype == 5 {
        match id.split_first() {
            Some((1, a)) if a.len() == 4 => {
                return Ipv4Addr::from(<[u8; 4]>::try_from(a).unwrap_or_default()).to_string();
            }
            Some((2, a)) if a.len() == 16 => {
                return Ipv6Addr::from(<[u8; 16]>::try_from(a).unwrap_or_default()).to_string();
            }
            _ => {}
        }
    }
    text_or_hex(id)
}
