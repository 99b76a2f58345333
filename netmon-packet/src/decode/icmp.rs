//! ICMP, ICMPv6 (with neighbour discovery) and IGMP, decoded with etherparse.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::icmpv6::{Icmpv6PayloadSlice, NdpOptionSlice, NdpOptionsIterator};
use etherparse::{Icmpv4Slice, Icmpv6Slice, IgmpSlice};

use super::transport::push_checksum;
use super::{IpCtx, be16, be32, checksum_ok, hex, mac};
use crate::packet::{Layer, Packet};

pub(super) fn icmpv4(pkt: &mut Packet, seg: &[u8], ctx: IpCtx) {
    let m = match Icmpv4Slice::from_slice(seg) {
        Ok(m) => m,
        Err(e) => return pkt.truncated("ICMP", "header", e.required_len, e.len),
    };
    let (t, code, rest) = (m.type_u8(), m.code_u8(), m.bytes5to8());
    let mut l = Layer::new("ICMP");
    l.push("Type", t);
    l.push("Code", code);
    l.push("Checksum", m.checksum());
    match t {
        0 | 8 | 13 | 14 => {
            l.push("Identifier", u16::from_be_bytes([rest[0], rest[1]]));
            l.push("Sequence", u16::from_be_bytes([rest[2], rest[3]]));
        }
        5 => l.push("Gateway", Ipv4Addr::from(rest)),
        3 if code == 4 => l.push("Next_Hop_MTU", u16::from_be_bytes([rest[2], rest[3]])),
        _ => {}
    }
    let bad = push_checksum(&mut l, ctx, || checksum_ok(None, 1, seg));
    pkt.layers.push(l);
    if bad {
        pkt.problem("ICMP", "bad checksum");
    }
    if ctx.cut {
        pkt.truncated("ICMP", "payload", ctx.declared_len, seg.len());
    }
}

pub(super) fn icmpv6(pkt: &mut Packet, seg: &[u8], ctx: IpCtx) {
    let m = match Icmpv6Slice::from_slice(seg) {
        Ok(m) => m,
        Err(e) => return pkt.truncated("ICMPv6", "header", e.required_len, e.len),
    };
    let (t, b5) = (m.type_u8(), m.bytes5to8());
    let mut l = Layer::new("ICMPv6");
    l.push("Type", t);
    l.push("Code", m.code_u8());
    l.push("Checksum", m.checksum());
    match t {
        128 | 129 => {
            l.push("Identifier", u16::from_be_bytes([b5[0], b5[1]]));
            l.push("Sequence", u16::from_be_bytes([b5[2], b5[3]]));
        }
        2 => l.push("MTU", u32::from_be_bytes(b5)),
        134 => {
            l.push("Cur_Hop_Limit", b5[0]);
            l.push("Managed", b5[1] & 0x80 != 0);
            l.push("Other_Config", b5[1] & 0x40 != 0);
            l.push("Router_Lifetime", u16::from_be_bytes([b5[2], b5[3]]));
        }
        136 => {
            l.push("Router", b5[0] & 0x80 != 0);
            l.push("Solicited", b5[0] & 0x40 != 0);
            l.push("Override", b5[0] & 0x20 != 0);
        }
        _ => {}
    }
    let mut truncated_nd = None;
    if (133..=137).contains(&t) {
        match m.payload_slice() {
            Ok(p) => nd_payload(&mut l, &p),
            Err(e) => truncated_nd = Some((e.required_len + 8, seg.len())),
        }
    }
    let bad = push_checksum(&mut l, ctx, || checksum_ok(Some(ctx.pseudo), 58, seg));
    pkt.layers.push(l);
    if bad {
        pkt.problem("ICMPv6", "bad checksum");
    }
    if let Some((need, have)) = truncated_nd {
        if ctx.cut {
            pkt.truncated("ICMPv6", "neighbour discovery body", need, have);
        } else {
            pkt.problem(
                "ICMPv6",
                format!("neighbour discovery body too short: need {need} bytes, have {have}"),
            );
        }
    } else if ctx.cut {
        pkt.truncated("ICMPv6", "payload", ctx.declared_len, seg.len());
    }
}

/// Target address and options of router/neighbour solicitations, advertisements and redirects.
fn nd_payload(l: &mut Layer, p: &Icmpv6PayloadSlice) {
    let options = match p {
        Icmpv6PayloadSlice::RouterSolicitation(s) => s.options_iterator(),
        Icmpv6PayloadSlice::RouterAdvertisement(a) => {
            l.push("Reachable_Time", a.reachable_time());
            l.push("Retrans_Timer", a.retrans_timer());
            a.options_iterator()
        }
        Icmpv6PayloadSlice::NeighborSolicitation(s) => {
            l.push("Target_Address", s.target_address());
            s.options_iterator()
        }
        Icmpv6PayloadSlice::NeighborAdvertisement(a) => {
            l.push("Target_Address", a.target_address());
            a.options_iterator()
        }
        Icmpv6PayloadSlice::Redirect(r) => {
            l.push("Target_Address", r.target_address());
            l.push("Redirect_Destination", r.destination_address());
            r.options_iterator()
        }
        _ => NdpOptionsIterator::from_slice(&[]),
    };
    for opt in options {
        let Ok(opt) = opt else { break };
        match opt {
            NdpOptionSlice::SourceLinkLayerAddress(o) => {
                l.push("Source_Link_Address", link_addr(o.link_layer_address()));
            }
            NdpOptionSlice::TargetLinkLayerAddress(o) => {
                l.push("Target_Link_Address", link_addr(o.link_layer_address()));
            }
            NdpOptionSlice::PrefixInformation(o) => {
                l.push("Prefix", Ipv6Addr::from(o.prefix()));
                l.push("Prefix_Length", o.prefix_length());
                l.push("Valid_Lifetime", o.valid_lifetime());
                l.push("Preferred_Lifetime", o.preferred_lifetime());
            }
            NdpOptionSlice::Mtu(o) => l.push("Option_MTU", o.mtu()),
            _ => {}
        }
    }
}

fn link_addr(b: &[u8]) -> crate::value::Value {
    match mac(b).filter(|_| b.len() == 6) {
        Some(m) => m.into(),
        None => hex(b).into(),
    }
}

pub(super) fn igmp(pkt: &mut Packet, seg: &[u8], ctx: IpCtx) {
    let m = match IgmpSlice::from_slice(seg) {
        Ok(m) => m,
        Err(e) => {
            if ctx.cut || e.required_len <= 8 {
                return pkt.truncated("IGMP", "message", e.required_len, e.len);
            }
            return pkt.problem(
                "IGMP",
                format!(
                    "message too short: need {} bytes, have {}",
                    e.required_len, e.len
                ),
            );
        }
    };
    let t = m.type_u8();
    let mut l = Layer::new("IGMP");
    l.push("Type", t);
    let version: u8 = match t {
        0x11 if seg.len() >= 12 => 3,
        0x11 if seg[1] == 0 => 1,
        0x12 => 1,
        0x22 => 3,
        _ => 2,
    };
    l.push("Version", version);
    l.push("Max_Response", m.max_resp_code_or_reserved());
    l.push("Checksum", m.checksum());
    match t {
        0x11 | 0x12 | 0x16 | 0x17 => {
            if let Some(g) = be32(seg, 4) {
                l.push("Group_Address", Ipv4Addr::from(g));
            }
            if t == 0x11
                && version == 3
                && let Some(n) = be16(seg, 10)
            {
                l.push("Number_Of_Sources", n);
            }
        }
        0x22 => {
            if let Some(n) = be16(seg, 6) {
                l.push("Number_Of_Records", n);
            }
        }
        _ => {}
    }
    let bad = push_checksum(&mut l, ctx, || checksum_ok(None, 2, seg));
    pkt.layers.push(l);
    if bad {
        pkt.problem("IGMP", "bad checksum");
    }
    if ctx.cut {
        pkt.truncated("IGMP", "message", ctx.declared_len, seg.len());
    }
}
