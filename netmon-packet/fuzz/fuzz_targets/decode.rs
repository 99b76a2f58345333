//! Any bytes, as Ethernet or raw IP (chosen by the first byte): decoding, the one-line summary,
//! the JSON line, a filter and the TCP analysis must not panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use netmon_packet::tcp_analysis::TcpAnalyzer;
use netmon_packet::{Direction, Filter, LinkType, decode, summary};

static FILTER: LazyLock<Filter> = LazyLock::new(|| {
    Filter::parse("(tcp.port == 53 or udp) and ip.src in 10.0.0.0/8 or dns.qname == x or not arp")
        .expect("valid filter")
});

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else { return };
    let link = if sel & 1 == 0 { LinkType::Ethernet } else { LinkType::RawIp };
    let pkt = decode(bytes, link);
    let meta = netmon_packet_fuzz::meta(u64::from(sel) * 1_000, Direction::Ingress, Some(1), bytes.len());
    let _ = summary::line(&pkt, &meta);
    let _ = summary::json_line(&pkt, &meta);
    let _ = FILTER.matches(&pkt, &meta);
    let mut tcp = TcpAnalyzer::new(4, 4);
    let _ = tcp.ingest(&pkt, &meta);
    let _ = tcp.ingest(&pkt, &meta);
});
