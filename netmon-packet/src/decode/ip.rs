//! IPv4 (with options) and IPv6 (with extension headers), decoded with etherparse.

use etherparse::err::ipv4::HeaderSliceError as V4Error;
use etherparse::err::ipv6::HeaderSliceError as V6Error;
use etherparse::{
    Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice,
};

use super::{IpCtx, MAX_NESTING, Pseudo, checksum_ok, transport};
use crate::packet::{Layer, Packet};

/// A packet with no link-layer header: the version nibble says which IP it is.
pub(super) fn raw(pkt: &mut Packet, data: &[u8], depth: usize) {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(pkt, data, depth),
        Some(6) => ipv6(pkt, data, depth),
        Some(v) => pkt.problem("IP", format!("unknown IP version {v}")),
        None => pkt.truncated("IP", "header", 1, 0),
    }
}

pub(super) fn ipv4(pkt: &mut Packet, data: &[u8], depth: usize) {
    let h = match Ipv4HeaderSlice::from_slice(data) {
        Ok(h) => h,
        Err(V4Error::Len(e)) => return pkt.truncated("IPv4", "header", e.required_len, e.len),
        Err(V4Error::Content(e)) => return pkt.problem("IPv4", content_reason(&e.to_string())),
    };
    let hlen = h.slice().len();
    let total = usize::from(h.total_len());
    let mut layer = Layer::new("IPv4");
    layer.push("Version", 4u8);
    layer.push("IHL", h.ihl());
    layer.push("DSCP", h.dcp().value());
    layer.push("ECN", h.ecn().value());
    layer.push("Total_Length", h.total_len());
    layer.push("Identification", h.identification());
    layer.push("Dont_Fragment", h.dont_fragment());
    layer.push("More_Fragments", h.more_fragments());
    layer.push("Fragment_Offset", h.fragments_offset().value());
    layer.push("TTL", h.ttl());
    layer.push("Protocol", h.protocol().0);
    layer.push("Header_Checksum", h.header_checksum());
    layer.push("Source_Address", h.source_addr());
    layer.push("Destination_Address", h.destination_addr());
    if !h.options().is_empty() {
        layer.push("Options", ipv4_options(h.options()));
    }
    let ok = checksum_ok(None, 0, h.slice());
    layer.push("Checksum_Valid", ok);
    pkt.layers.push(layer);
    if !ok {
        pkt.problem("IPv4", "bad header checksum");
    }
    if total < hlen {
        return pkt.problem(
            "IPv4",
            format!("total length {total} is less than the header length {hlen}"),
        );
    }
    let declared = total - hlen;
    let avail = &data[hlen..];
    let payload = &avail[..declared.min(avail.len())];
    let fragment = h.more_fragments() || h.fragments_offset().value() != 0;
    if h.fragments_offset().value() != 0 {
        // Only the first fragment carries the transport header.
        return;
    }
    let ctx = IpCtx {
        pseudo: Pseudo::V4 {
            src: h.source(),
            dst: h.destination(),
        },
        declared_len: declared,
        checksum_possible: !fragment && payload.len() == declared,
        cut: payload.len() < declared,
        depth,
    };
    transport::dispatch(pkt, h.protocol().0, payload, ctx, "IPv4");
}

/// Names of the IPv4 options present, in order ("nop,rr").
fn ipv4_options(mut o: &[u8]) -> String {
    let mut names = Vec::new();
    while let Some(&kind) = o.first() {
        let name = match kind {
            0 => break,
            1 => "nop".to_string(),
            7 => "rr".to_string(),
            68 => "ts".to_string(),
            130 => "sec".to_string(),
            131 => "lsrr".to_string(),
            137 => "ssrr".to_string(),
            148 => "ra".to_string(),
            k => format!("opt{k}"),
        };
        names.push(name);
        let len = if kind == 1 {
            1
        } else {
            usize::from(*o.get(1).unwrap_or(&0)).max(2)
        };
        o = o.get(len..).unwrap_or_default();
    }
    names.join(",")
}

fn content_reason(etherparse_text: &str) -> String {
    // etherparse's messages start with "IPv4 Header Error: "; the layer is already named.
    etherparse_text
        .split_once(": ")
        .map_or(etherparse_text, |(_, r)| r)
        .trim_end_matches('.')
        .to_string()
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;

pub(super) fn ipv6(pkt: &mut Packet, data: &[u8], depth: usize) {
    let h = match Ipv6HeaderSlice::from_slice(data) {
        Ok(h) => h,
        Err(V6Error::Len(e)) => return pkt.truncated("IPv6", "header", e.required_len, e.len),
        Err(V6Error::Content(e)) => return pkt.problem("IPv6", content_reason(&e.to_string())),
    };
    let mut layer = Layer::new("IPv6");
    layer.push("Version", 6u8);
    layer.push("Traffic_Class", h.traffic_class());
    layer.push("Flow_Label", h.flow_label().value());
    layer.push("Payload_Length", h.payload_length());
    layer.push("Next_Header", h.next_header().0);
    layer.push("Hop_Limit", h.hop_limit());
    layer.push("Source_Address", h.source_addr());
    layer.push("Destination_Address", h.destination_addr());
    pkt.layers.push(layer);

    let avail = &data[h.header_len()..];
    // A zero payload length means a jumbogram (length in a hop-by-hop option): use what is there.
    let declared = match h.payload_length() {
        0 => avail.len(),
        n => usize::from(n),
    };
    let mut rest = &avail[..declared.min(avail.len())];
    let mut declared = declared;
    let cut = rest.len() < declared;
    let mut next = h.next_header().0;
    let mut checksum_possible = !cut;
    for _ in 0..MAX_NESTING {
        let consumed = match next {
            HOP_BY_HOP | DEST_OPTS | ROUTING => {
                let name = match next {
                    HOP_BY_HOP => "IPv6_HopByHop",
                    DEST_OPTS => "IPv6_DestOpts",
                    _ => "IPv6_Routing",
                };
                let ext = match Ipv6RawExtHeaderSlice::from_slice(rest) {
                    Ok(e) => e,
                    Err(e) => return pkt.truncated(name, "header", e.required_len, e.len),
                };
                let mut layer = Layer::new(name);
                layer.push("Next_Header", ext.next_header().0);
                layer.push("Length", ext.slice().len());
                if next == ROUTING {
                    let body = ext.payload();
                    let segments_left = body.get(1).copied().unwrap_or(0);
                    layer.push("Routing_Type", body.first().copied().unwrap_or(0));
                    layer.push("Segments_Left", segments_left);
                    // The pseudo-header then uses the final destination, which is inside the
                    // routing header in a type-specific way: do not guess.
                    if segments_left > 0 {
                        checksum_possible = false;
                    }
                } else {
                    layer.push("Options", ipv6_options(ext.payload()));
                }
                pkt.layers.push(layer);
                next = ext.next_header().0;
                ext.slice().len()
            }
            FRAGMENT => {
                let frag = match Ipv6FragmentHeaderSlice::from_slice(rest) {
                    Ok(f) => f,
                    Err(e) => {
                        return pkt.truncated("IPv6_Fragment", "header", e.required_len, e.len);
                    }
                };
                let mut layer = Layer::new("IPv6_Fragment");
                layer.push("Next_Header", frag.next_header().0);
                layer.push("Fragment_Offset", frag.fragment_offset().value());
                layer.push("More_Fragments", frag.more_fragments());
                layer.push("Identification", frag.identification());
                pkt.layers.push(layer);
                if frag.fragment_offset().value() != 0 {
                    return;
                }
                if frag.more_fragments() {
                    checksum_possible = false;
                }
                next = frag.next_header().0;
                frag.slice().len()
            }
            _ => {
                let ctx = IpCtx {
                    pseudo: Pseudo::V6 {
                        src: h.source(),
                        dst: h.destination(),
                    },
                    declared_len: declared,
                    checksum_possible,
                    cut,
                    depth,
                };
                return transport::dispatch(pkt, next, rest, ctx, "IPv6");
            }
        };
        rest = &rest[consumed..];
        declared = declared.saturating_sub(consumed);
    }
    pkt.problem("IPv6", "too many extension headers");
}

/// Names of the hop-by-hop / destination options present ("router-alert,padn").
fn ipv6_options(mut o: &[u8]) -> String {
    let mut names = Vec::new();
    while let Some(&kind) = o.first() {
        names.push(match kind {
            0 => "pad1".to_string(),
            1 => "padn".to_string(),
            5 => "router-alert".to_string(),
            0xc2 => "jumbo".to_string(),
            k => format!("opt{k}"),
        });
        let len = if kind == 0 {
            1
        } else {
            2 + usize::from(*o.get(1).unwrap_or(&0))
        };
        o = o.get(len..).unwrap_or_default();
    }
    names.join(",")
}
