//! Any bytes as the body of an LLDP frame (EtherType 0x88cc), so every input reaches the
//! hand-written TLV parser instead of first having to guess a valid Ethernet header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmon_packet::{Direction, LinkType, decode, summary};

const HEADER: [u8; 14] = [
    0x01, 0x80, 0xc2, 0, 0, 0x0e, 0x02, 0, 0, 0, 0, 0x0a, 0x88, 0xcc,
];

fuzz_target!(|data: &[u8]| {
    let mut frame = HEADER.to_vec();
    frame.extend_from_slice(data);
    let pkt = decode(&frame, LinkType::Ethernet);
    assert!(pkt.layer("LLDP").is_some(), "EtherType 0x88cc is always LLDP");
    let meta = netmon_packet_fuzz::meta(0, Direction::Ingress, None, frame.len());
    let _ = summary::line(&pkt, &meta);
    let _ = summary::json_line(&pkt, &meta);
});
