//! Throughput figures: packets/s decoded for a mix of every fixture, and the cost of a filter
//! evaluation, a summary line and a TCP-analysis step. `cargo bench -p netmon-packet`.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::hint::black_box;
use std::time::{Duration, Instant};

use netmon_packet::tcp_analysis::TcpAnalyzer;
use netmon_packet::{Direction, Filter, LinkType, PacketMeta, decode, summary};

/// Runs `f` over the packet mix until `budget` passes; returns nanoseconds per packet.
fn per_packet(budget: Duration, n: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < budget {
        f();
        rounds += 1;
    }
    start.elapsed().as_nanos() as f64 / (rounds as f64 * n as f64)
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("NMPKT_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    );
    let mix: Vec<Vec<u8>> = fixtures::all().into_iter().map(|(_, b)| b).collect();
    let n = mix.len();
    let meta = PacketMeta {
        ts_ns: 0,
        ifindex: 1,
        ifname: "eth0".into(),
        direction: Direction::Ingress,
        pid: Some(1234),
        comm: Some("curl".into()),
        cookie: None,
        orig_len: 100,
        snap_len: 100,
    };
    let decoded: Vec<_> = mix.iter().map(|b| decode(b, LinkType::Ethernet)).collect();

    let ns = per_packet(budget, n, || {
        for b in &mix {
            black_box(decode(black_box(b), LinkType::Ethernet));
        }
    });
    println!(
        "decode ({n}-packet mix of every protocol): {:>8.0} ns/packet  {:>10.0} packets/s",
        ns,
        1e9 / ns
    );

    let snap: Vec<Vec<u8>> = mix.iter().map(|b| b[..b.len().min(64)].to_vec()).collect();
    let ns = per_packet(budget, n, || {
        for b in &snap {
            black_box(decode(black_box(b), LinkType::Ethernet));
        }
    });
    println!(
        "decode (same mix cut to 64 bytes):        {:>8.0} ns/packet  {:>10.0} packets/s",
        ns,
        1e9 / ns
    );

    for text in [
        "tcp",
        "tcp.dport == 5000 and ip.src in 10.0.0.0/8 and pid == 1234",
        "(udp.port == 53 or dns.qname == \"example.com\") and not iface == lo",
        r#"{"IPv4":{"Source_Address":"10.0.0.1"},"TCP":{"Destination_Port":5000}}"#,
        r#"[{"AF_Packet":{"Interface_Name":"lo"},"IPv4":{}},{"ARP":{}},{"LLDP":{"System_Name":"switch1"}}]"#,
    ] {
        let f = Filter::parse(text).expect("valid filter");
        let ns = per_packet(budget, n, || {
            for p in &decoded {
                black_box(f.matches(black_box(p), &meta));
            }
        });
        println!("filter {text}: {ns:.0} ns/packet");
    }

    let ns = per_packet(budget, n, || {
        for p in &decoded {
            black_box(summary::line(black_box(p), &meta));
        }
    });
    println!("summary line: {ns:.0} ns/packet");

    let ns = per_packet(budget, n, || {
        for p in &decoded {
            black_box(summary::json_line(black_box(p), &meta));
        }
    });
    println!("JSON line: {ns:.0} ns/packet");

    let mut tcp = TcpAnalyzer::new(65_536, 4096);
    let tcp_pkts: Vec<_> = (0..1000u32)
        .map(|i| {
            decode(
                &fixtures::tcp_segment(
                    i % 2 == 0,
                    1 + i * 100,
                    Some(1 + i * 100),
                    502,
                    "",
                    &[0; 100],
                ),
                LinkType::Ethernet,
            )
        })
        .collect();
    let ns = per_packet(budget, tcp_pkts.len(), || {
        for p in &tcp_pkts {
            black_box(tcp.ingest(black_box(p), &meta));
        }
    });
    println!("tcp_analysis ingest: {ns:.0} ns/packet");
}
