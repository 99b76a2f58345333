//! TCP (with options) and UDP, decoded with etherparse; checksums verified with the IP
//! pseudo-header when the whole segment was captured.

use etherparse::err::tcp::HeaderSliceError;
use etherparse::{TcpHeaderSlice, TcpOptionElement, UdpHeaderSlice};

use super::{IpCtx, MAX_NESTING, checksum_ok, icmp, ip};
use crate::dns;
use crate::packet::{Layer, Packet};

/// Hand an IP payload to the decoder for its protocol number.
pub(super) fn dispatch(pkt: &mut Packet, proto: u8, seg: &[u8], ctx: IpCtx, ip_name: &'static str) {
    match proto {
        6 => tcp(pkt, seg, ctx),
        17 => udp(pkt, seg, ctx),
        1 => icmp::icmpv4(pkt, seg, ctx),
        58 => icmp::icmpv6(pkt, seg, ctx),
        2 => icmp::igmp(pkt, seg, ctx),
        4 | 41 if ctx.depth + 1 >= MAX_NESTING => pkt.problem(ip_name, "too many nested headers"),
        4 => ip::ipv4(pkt, seg, ctx.depth + 1),
        41 => ip::ipv6(pkt, seg, ctx.depth + 1),
        _ => {
            if ctx.cut {
                pkt.truncated(ip_name, "payload", ctx.declared_len, seg.len());
            }
        }
    }
}

fn tcp(pkt: &mut Packet, seg: &[u8], ctx: IpCtx) {
    let h = match TcpHeaderSlice::from_slice(seg) {
        Ok(h) => h,
        Err(HeaderSliceError::Len(e)) => {
            return pkt.truncated("TCP", "header", e.required_len, e.len);
        }
        Err(HeaderSliceError::Content(e)) => {
            return pkt.problem("TCP", format!("bad header: {e}"));
        }
    };
    let hlen = h.slice().len();
    let payload_len = ctx.declared_len.saturating_sub(hlen);
    let mut l = Layer::new("TCP");
    l.push("Source_Port", h.source_port());
    l.push("Destination_Port", h.destination_port());
    l.push("Sequence_Number", h.sequence_number());
    l.push("Acknowledgment_Number", h.acknowledgment_number());
    l.push("Data_Offset", h.data_offset());
    l.push("Flags", flags_text(&h));
    l.push("SYN", h.syn());
    l.push("ACK", h.ack());
    l.push("FIN", h.fin());
    l.push("RST", h.rst());
    l.push("PSH", h.psh());
    l.push("URG", h.urg());
    l.push("ECE", h.ece());
    l.push("CWR", h.cwr());
    l.push("Window_Size", h.window_size());
    l.push("Checksum", h.checksum());
    l.push("Urgent_Pointer", h.urgent_pointer());
    let mut option_problem = None;
    for opt in h.options_iterator() {
        match opt {
            Ok(TcpOptionElement::MaximumSegmentSize(mss)) => l.push("MSS", mss),
            Ok(TcpOptionElement::WindowScale(ws)) => l.push("Window_Scale", ws),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => {
                l.push("SACK_Permitted", true);
            }
            Ok(TcpOptionElement::SelectiveAcknowledgement(_, more)) => {
                l.push("SACK_Blocks", 1 + more.iter().flatten().count());
            }
            Ok(TcpOptionElement::Timestamp(val, echo)) => {
                l.push("Timestamp_Value", val);
                l.push("Timestamp_Echo", echo);
            }
            Ok(TcpOptionElement::Noop) => {}
            Err(e) => {
                option_problem = Some(format!("bad option: {e}"));
                break;
            }
        }
    }
    l.push("Payload_Length", payload_len);
    let bad = push_checksum(&mut l, ctx, || checksum_ok(Some(ctx.pseudo), 6, seg));
    pkt.layers.push(l);
    if let Some(p) = option_problem {
        pkt.problem("TCP", p);
    }
    if bad {
        pkt.problem("TCP", "bad checksum");
    }
    let payload = &seg[hlen..];
    if payload_len > 0
        && (dns::is_dns_port(h.source_port()) || dns::is_dns_port(h.destination_port()))
    {
        dns::over_tcp(pkt, payload, payload_len);
    } else if ctx.cut {
        pkt.truncated("TCP", "payload", payload_len, payload.len());
    }
}

/// tcpdump's flag letters: S F R P . (ACK) U E W.
fn flags_text(h: &TcpHeaderSlice) -> String {
    let mut s = String::new();
    for (on, c) in [
        (h.syn(), 'S'),
        (h.fin(), 'F'),
        (h.rst(), 'R'),
        (h.psh(), 'P'),
        (h.urg(), 'U'),
        (h.ece(), 'E'),
        (h.cwr(), 'W'),
        (h.ack(), '.'),
    ] {
        if on {
            s.push(c);
        }
    }
    if s.is_empty() { "none".into() } else { s }
}

/// Adds `Checksum_Valid` when the checksum can be computed; returns whether it is bad.
pub(super) fn push_checksum(l: &mut Layer, ctx: IpCtx, verify: impl FnOnce() -> bool) -> bool {
    if !ctx.checksum_possible {
        return false;
    }
    let ok = verify();
    l.push("Checksum_Valid", ok);
    !ok
}

fn udp(pkt: &mut Packet, seg: &[u8], ctx: IpCtx) {
    let h = match UdpHeaderSlice::from_slice(seg) {
        Ok(h) => h,
        Err(e) => return pkt.truncated("UDP", "header", e.required_len, e.len),
    };
    let mut l = Layer::new("UDP");
    l.push("Source_Port", h.source_port());
    l.push("Destination_Port", h.destination_port());
    l.push("Length", h.length());
    l.push("Checksum", h.checksum());
    let udp_len = usize::from(h.length());
    let length_ok = (8..=ctx.declared_len).contains(&udp_len);
    let payload_len = if length_ok {
        udp_len - 8
    } else {
        ctx.declared_len.saturating_sub(8)
    };
    l.push("Payload_Length", payload_len);
    // IPv4 allows a zero checksum meaning "none computed".
    let no_checksum = h.checksum() == 0 && matches!(ctx.pseudo, super::Pseudo::V4 { .. });
    let bad = if no_checksum || !length_ok {
        false
    } else {
        push_checksum(&mut l, ctx, || {
            checksum_ok(Some(ctx.pseudo), 17, &seg[..udp_len])
        })
    };
    pkt.layers.push(l);
    if !length_ok {
        pkt.problem(
            "UDP",
            format!(
                "length {udp_len} does not fit the IP payload of {} bytes",
                ctx.declared_len
            ),
        );
    }
    if bad {
        pkt.problem("UDP", "bad checksum");
    }
    let payload = &seg[8..];
    let payload = &payload[..payload.len().min(payload_len)];
    if payload_len > 0
        && (dns::is_dns_port(h.source_port()) || dns::is_dns_port(h.destination_port()))
    {
        dns::over_udp(pkt, payload, payload_len);
    } else if ctx.cut {
        pkt.truncated("UDP", "payload", payload_len, payload.len());
    }
}
