//! Any bytes as the payload of an 802.3 frame: the hand-written LLC, SNAP and CDP parsers (and
//! whatever a SNAP EtherType hands on to) must not panic, and the length field must be honoured.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon_packet::{Direction, LinkType, decode, summary};

fuzz_target!(|data: &[u8]| {
    // 802.3 length field: the payload length, at most 1500 (a larger value is an EtherType).
    let len = data.len().min(1500) as u16;
    let mut frame = vec![0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc, 0x02, 0, 0, 0, 0, 0x0a];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(data);
    let pkt = decode(&frame, LinkType::Ethernet);
    assert!(
        pkt.layers.first().is_some_and(|l| l.name == "Ethernet"),
        "the 802.3 header itself always decodes"
    );
    let meta = netmon_packet_fuzz::meta(0, Direction::Egress, None, frame.len());
    let _ = summary::line(&pkt, &meta);
    let _ = summary::json_line(&pkt, &meta);
});
