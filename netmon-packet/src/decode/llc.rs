//! IEEE 802.2 LLC and SNAP headers inside 802.3 frames.
//!
//! Hand-written: etherparse stops at 802.3 (it only knows Ethernet II), and no maintained crate
//! parses LLC/SNAP on its own. The formats are three to eight fixed bytes.

use super::{cdp, ether_payload};
use crate::packet::{Layer, Packet};

const SNAP_SAP: u8 = 0xaa;
const CISCO_OUI: u32 = 0x00_00_0c;
const CDP_PID: u16 = 0x2000;

/// `cut`: the frame's bytes end before its 802.3 length says they should.
pub(super) fn llc(pkt: &mut Packet, data: &[u8], cut: bool) {
    if data.len() < 3 {
        return pkt.truncated("LLC", "header", 3, data.len());
    }
    let (dsap, ssap, c0) = (data[0], data[1], data[2]);
    // Unnumbered frames have a one-byte control field, I- and S-frames two.
    let ctl_len = if c0 & 0b11 == 0b11 { 1 } else { 2 };
    if data.len() < 2 + ctl_len {
        return pkt.truncated("LLC", "header", 2 + ctl_len, data.len());
    }
    let control = if ctl_len == 1 {
        u16::from(c0)
    } else {
        u16::from_be_bytes([c0, data[3]])
    };
    let mut layer = Layer::new("LLC");
    layer.push("DSAP", dsap);
    layer.push("SSAP", ssap);
    layer.push("Control", control);
    pkt.layers.push(layer);
    let rest = &data[2 + ctl_len..];
    if dsap != SNAP_SAP || ssap != SNAP_SAP {
        return;
    }
    if rest.len() < 5 {
        return pkt.truncated("SNAP", "header", 5, rest.len());
    }
    let oui = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]);
    let pid = u16::from_be_bytes([rest[3], rest[4]]);
    let mut snap = Layer::new("SNAP");
    snap.push("OUI", oui);
    snap.push("Protocol_ID", pid);
    pkt.layers.push(snap);
    let rest = &rest[5..];
    match (oui, pid) {
        // RFC 1042: OUI 0 means the PID is an EtherType.
        (0, ether_type) => ether_payload(pkt, ether_type, rest, 0),
        (CISCO_OUI, CDP_PID) => cdp::cdp(pkt, rest, cut),
        _ => {}
    }
}
