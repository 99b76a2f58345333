//! Ethernet II / IEEE 802.3 framing, 802.1Q VLAN tags and ARP, decoded with etherparse.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{ArpPacketSlice, Ethernet2HeaderSlice, SingleVlanHeaderSlice};

use super::{MAX_NESTING, ether_payload, hex, llc};
use crate::packet::{Layer, Packet};
use crate::value::Mac;

/// Values up to this are an IEEE 802.3 length, not an EtherType.
const MAX_8023_LENGTH: u16 = 1500;

pub(super) fn ethernet(pkt: &mut Packet, data: &[u8]) {
    let eth = match Ethernet2HeaderSlice::from_slice(data) {
        Ok(h) => h,
        Err(e) => return pkt.truncated("Ethernet", "header", e.required_len, e.len),
    };
    let rest = &data[eth.slice().len()..];
    let type_or_len = eth.ether_type().0;
    let mut layer = Layer::new("Ethernet");
    layer.push("Destination_MAC", Mac(eth.destination()));
    layer.push("Source_MAC", Mac(eth.source()));
    if type_or_len <= MAX_8023_LENGTH {
        layer.push("Format", "802.3");
        layer.push("Length", type_or_len);
        pkt.layers.push(layer);
        let len = usize::from(type_or_len);
        if rest.len() < len {
            llc::llc(pkt, rest, true);
            // A cut on a TLV boundary looks complete to the layer decoders: say it here.
            if pkt.truncated_at().is_none() {
                let last = pkt.layers.last().map_or("Ethernet", |l| l.name);
                pkt.truncated(last, "payload", len, rest.len());
            }
        } else {
            // Bytes past the length are padding to the 60-byte minimum frame.
            llc::llc(pkt, &rest[..len], false);
        }
    } else {
        layer.push("Format", "Ethernet II");
        layer.push("EtherType", type_or_len);
        pkt.layers.push(layer);
        ether_payload(pkt, type_or_len, rest, 0);
    }
}

pub(super) fn vlan(pkt: &mut Packet, data: &[u8], depth: usize) {
    if depth >= MAX_NESTING {
        return pkt.problem("VLAN", "too many nested headers");
    }
    let tag = match SingleVlanHeaderSlice::from_slice(data) {
        Ok(h) => h,
        Err(e) => return pkt.truncated("VLAN", "header", e.required_len, e.len),
    };
    let mut layer = Layer::new("VLAN");
    layer.push("Priority", tag.priority_code_point().value());
    layer.push("DEI", tag.drop_eligible_indicator());
    layer.push("VLAN_ID", tag.vlan_identifier().value());
    layer.push("EtherType", tag.ether_type().0);
    pkt.layers.push(layer);
    ether_payload(
        pkt,
        tag.ether_type().0,
        &data[tag.slice().len()..],
        depth + 1,
    );
}

pub(super) fn arp(pkt: &mut Packet, data: &[u8]) {
    let arp = match ArpPacketSlice::from_slice(data) {
        Ok(a) => a,
        Err(e) => return pkt.truncated("ARP", "packet", e.required_len, e.len),
    };
    let mut layer = Layer::new("ARP");
    layer.push("Hardware_Type", arp.hw_addr_type().0);
    layer.push("Protocol_Type", arp.proto_addr_type().0);
    layer.push("Operation", arp.operation().0);
    push_hw(&mut layer, "Sender_MAC", arp.sender_hw_addr());
    push_proto(&mut layer, "Sender_IP", arp.sender_protocol_addr());
    push_hw(&mut layer, "Target_MAC", arp.target_hw_addr());
    push_proto(&mut layer, "Target_IP", arp.target_protocol_addr());
    pkt.layers.push(layer);
}

fn push_hw(layer: &mut Layer, name: &'static str, b: &[u8]) {
    match <[u8; 6]>::try_from(b) {
        Ok(m) => layer.push(name, Mac(m)),
        Err(_) => layer.push(name, hex(b)),
    }
}

fn push_proto(layer: &mut Layer, name: &'static str, b: &[u8]) {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        layer.push(name, Ipv4Addr::from(a));
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        layer.push(name, Ipv6Addr::from(a));
    } else {
        layer.push(name, hex(b));
    }
}
