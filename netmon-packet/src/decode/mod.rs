//! Bytes → [`Packet`]: each module decodes one family of layers and hands the rest on.
//!
//! Decoding never panics and never gives up silently: a header that does not fit is reported as
//! "truncated at `<layer>`", a header that makes no sense as a problem of that layer, and whatever
//! was decoded before stays in the packet.

mod cdp;
mod icmp;
mod ip;
mod link;
mod llc;
mod lldp;
mod transport;

use etherparse::checksum::Sum16BitWords;

use crate::packet::{LinkType, Packet};

/// Decode one captured packet. `data` may be cut short by the snap length; what is present is
/// decoded and the packet says where it was truncated.
pub fn decode(data: &[u8], link: LinkType) -> Packet {
    let mut pkt = Packet::default();
    match link {
        LinkType::Ethernet => link::ethernet(&mut pkt, data),
        LinkType::RawIp => ip::raw(&mut pkt, data, 0),
    }
    pkt
}

/// Choices for [`decode_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Verify TCP/UDP/ICMP/ICMPv6/IGMP checksums. Turn off for packets captured on egress
    /// before the NIC: with checksum offload the kernel leaves them partial (only the
    /// pseudo-header sum), so they would all look bad. The IPv4 header checksum is always
    /// verified: the stack fills it in before the packet reaches TC.
    pub verify_transport_checksums: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            verify_transport_checksums: true,
        }
    }
}

/// [`decode`] with options.
pub fn decode_with(data: &[u8], link: LinkType, opts: DecodeOptions) -> Packet {
    let mut pkt = decode(data, link);
    if !opts.verify_transport_checksums {
        const L4: [&str; 5] = ["TCP", "UDP", "ICMP", "ICMPv6", "IGMP"];
        for l in pkt.layers.iter_mut().filter(|l| L4.contains(&l.name)) {
            l.fields.retain(|(f, _)| *f != "Checksum_Valid");
        }
        pkt.problems
            .retain(|p| !(L4.contains(&p.layer) && p.reason == "bad checksum"));
    }
    pkt
}

/// Bound on nested headers (VLAN tags, IPv6 extension headers, IP-in-IP) so hostile input
/// cannot make decoding loop or recurse deeply.
const MAX_NESTING: usize = 8;

/// Hand a payload to the decoder for its EtherType.
fn ether_payload(pkt: &mut Packet, ether_type: u16, data: &[u8], depth: usize) {
    match ether_type {
        0x0800 => ip::ipv4(pkt, data, depth),
        0x86dd => ip::ipv6(pkt, data, depth),
        0x0806 => link::arp(pkt, data),
        0x8100 | 0x88a8 | 0x9100 => link::vlan(pkt, data, depth),
        0x88cc => lldp::lldp(pkt, data),
        _ => {}
    }
}

/// What the transport layer needs from the IP layer below it.
#[derive(Clone, Copy, Debug)]
struct IpCtx {
    pseudo: Pseudo,
    /// The transport segment's length according to the IP header(s).
    declared_len: usize,
    /// Whether checksums over the segment can be computed: all of it was captured, it is not
    /// a fragment, and the pseudo-header destination is the one in the IP header.
    checksum_possible: bool,
    /// The segment was cut by the end of the captured bytes (not by fragmentation).
    cut: bool,
    depth: usize,
}

#[derive(Clone, Copy, Debug)]
enum Pseudo {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

/// Whether the Internet checksum over `segment` (checksum field included) plus the
/// pseudo-header for `proto` verifies; `pseudo` is None for ICMPv4 and IGMP, which have none.
fn checksum_ok(pseudo: Option<Pseudo>, proto: u8, segment: &[u8]) -> bool {
    let mut sum = Sum16BitWords::new();
    match pseudo {
        Some(Pseudo::V4 { src, dst }) => {
            sum = sum
                .add_4bytes(src)
                .add_4bytes(dst)
                .add_2bytes([0, proto])
                .add_2bytes((segment.len() as u16).to_be_bytes());
        }
        Some(Pseudo::V6 { src, dst }) => {
            sum = sum
                .add_16bytes(src)
                .add_16bytes(dst)
                .add_4bytes((segment.len() as u32).to_be_bytes())
                .add_4bytes([0, 0, 0, proto]);
        }
        None => {}
    }
    sum.add_slice(segment).ones_complement() == 0
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Printable text from a protocol string field; anything else is shown as hex.
fn text_or_hex(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
        _ => hex(b),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mac(b: &[u8]) -> Option<crate::value::Mac> {
    Some(crate::value::Mac(b.get(..6)?.try_into().ok()?))
}
