//! Any bytes as a script of TCP segments between two endpoints, fed to the TCP analysis in
//! order: its sequence arithmetic (wrap-around, retransmissions, FIN/RST in odd states, window
//! scaling) must not panic, and its per-process totals must account for every segment.
//!
//! Each 14-byte record is one segment: flags byte (bit 0 direction, then SYN, ACK, FIN, RST,
//! PSH, and bit 6 a window-scale option), option byte (the window scale), seq, ack, window,
//! payload length, time step in ms.
#![no_main]

use etherparse::{PacketBuilder, TcpOptionElement};
use libfuzzer_sys::fuzz_target;
use netmon_packet::tcp_analysis::TcpAnalyzer;
use netmon_packet::{Direction, LinkType, decode};

const A: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
const B: ([u8; 4], u16) = ([10, 0, 0, 2], 5000);

fn segment(r: &[u8]) -> Vec<u8> {
    let flags = r[0];
    let word = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    let ((sip, sp), (dip, dp)) = if flags & 1 == 0 { (A, B) } else { (B, A) };
    let window = u16::from_be_bytes([r[10], r[11]]);
    let mut b = PacketBuilder::ipv4(sip, dip, 64).tcp(sp, dp, word(2), window);
    if flags & 2 != 0 {
        b = b.syn();
    }
    if flags & 4 != 0 {
        b = b.ack(word(6));
    }
    if flags & 8 != 0 {
        b = b.fin();
    }
    if flags & 16 != 0 {
        b = b.rst();
    }
    if flags & 32 != 0 {
        b = b.psh();
    }
    if flags & 64 != 0 {
        b = b
            .options(&[TcpOptionElement::WindowScale(r[1])])
            .expect("one option fits");
    }
    let payload = vec![0u8; usize::from(r[12])];
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).expect("writing to a Vec");
    out
}

fuzz_target!(|data: &[u8]| {
    let mut tcp = TcpAnalyzer::new(4, 4);
    let mut ts_ns = 1_000_000_000u64;
    let mut segments = 0u64;
    for r in data.chunks_exact(14) {
        let bytes = segment(r);
        ts_ns += u64::from(r[13]) * 1_000_000;
        let meta = netmon_packet_fuzz::meta(ts_ns, Direction::Ingress, Some(7), bytes.len());
        let _ = tcp.ingest(&decode(&bytes, LinkType::RawIp), &meta);
        segments += 1;
    }
    if let Some(p) = tcp.process(7) {
        assert_eq!(p.totals.packets, segments, "every segment counted once");
        assert!(p.totals.retransmissions <= p.totals.packets);
        assert!(p.rtt.samples == 0 || p.rtt.min_ns <= p.rtt.max_ns);
    } else {
        assert_eq!(segments, 0, "a process that sent segments has totals");
    }
});
