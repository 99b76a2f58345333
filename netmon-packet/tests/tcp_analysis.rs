//! TCP analysis on synthetic sessions: client 10.0.0.1:40000, server 10.0.0.2:5000.

use std::net::IpAddr;

use etherparse::PacketBuilder;
use netmon_packet::tcp_analysis::{Close, ConnKey, Endpoint, State, TcpAnalyzer, TcpEvent};
use netmon_packet::{Direction, LinkType, PacketMeta, decode};

const MS: u64 = 1_000_000;

fn ep(ip: &str, port: u16) -> Endpoint {
    (ip.parse::<IpAddr>().unwrap(), port)
}

fn client() -> Endpoint {
    ep("10.0.0.1", 40000)
}

fn server() -> Endpoint {
    ep("10.0.0.2", 5000)
}

/// Builds, decodes and feeds segments; `c` = from the client.
struct Session {
    a: TcpAnalyzer,
    cport: u16,
    pid: Option<u32>,
    events: Vec<TcpEvent>,
}

impl Session {
    fn new() -> Self {
        Session {
            a: TcpAnalyzer::new(1000, 100),
            cport: 40000,
            pid: Some(4242),
            events: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn seg(
        &mut self,
        t_us: u64,
        c: bool,
        seq: u32,
        ack: Option<u32>,
        win: u16,
        flags: &str,
        len: usize,
    ) {
        let (sip, dip, sp, dp) = if c {
            ([10, 0, 0, 1], [10, 0, 0, 2], self.cport, 5000)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 5000, self.cport)
        };
        let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(sip, dip, 64)
            .tcp(sp, dp, seq, win);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'F' => b.fin(),
                'R' => b.rst(),
                'P' => b.psh(),
                _ => panic!("{f}"),
            };
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        let mut bytes = Vec::new();
        b.write(&mut bytes, &vec![b'x'; len]).unwrap();
        let meta = PacketMeta {
            ts_ns: t_us * 1000,
            ifindex: 1,
            ifname: "lo".into(),
            direction: if c {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            pid: self.pid,
            comm: Some("client".into()),
            cookie: None,
            orig_len: bytes.len() as u32,
            snap_len: bytes.len() as u32,
        };
        let pkt = decode(&bytes, LinkType::Ethernet);
        self.events.extend(self.a.ingest(&pkt, &meta));
    }

    fn handshake(&mut self) {
        self.seg(0, true, 100, None, 64240, "S", 0);
        self.seg(1000, false, 300, Some(101), 65160, "S", 0);
        self.seg(1200, true, 101, Some(301), 502, "", 0);
    }

    fn key(&self) -> ConnKey {
        ConnKey::new((client().0, self.cport), server())
    }
}

#[test]
fn handshake_data_and_graceful_close() {
    let mut s = Session::new();
    s.handshake();
    s.seg(2000, true, 101, Some(301), 502, "P", 10);
    s.seg(2500, false, 301, Some(111), 509, "", 0);
    s.seg(3000, true, 111, Some(301), 502, "F", 0);
    s.seg(3100, false, 301, Some(112), 509, "", 0);
    s.seg(3200, false, 301, Some(112), 509, "F", 0);
    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(
        c.state,
        State::Closing,
        "not closed before the last FIN is acked"
    );
    s.seg(3300, true, 112, Some(302), 502, "", 0);

    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(c.client, Some(client()));
    assert_eq!(c.state, State::Closed);
    assert_eq!(
        c.close,
        Some(Close::Graceful {
            initiator: client()
        })
    );
    assert_eq!(c.handshake_ns, Some(1200 * 1000));
    assert_eq!(c.rtt.samples, 2, "SYN→SYN-ACK and data→ACK");
    assert_eq!((c.rtt.min_ns, c.rtt.max_ns), (MS / 2, MS));
    let t = c.totals();
    assert_eq!(
        (
            t.packets,
            t.payload_bytes,
            t.retransmissions,
            t.dup_acks,
            t.zero_windows
        ),
        (9, 10, 0, 0, 0)
    );
    assert_eq!(c.half(server()).unwrap().window, 509);
    assert_eq!(c.pid, Some(4242));

    let p = s.a.process(4242).unwrap();
    assert_eq!(
        (p.connections, p.handshakes, p.graceful_closes, p.resets),
        (1, 1, 1, 0)
    );
    assert_eq!(p.totals.packets, 9);
    assert_eq!(p.rtt.samples, 2);

    let kinds: Vec<&str> = s
        .events
        .iter()
        .map(|e| match e {
            TcpEvent::Syn { .. } => "syn",
            TcpEvent::SynAck { .. } => "synack",
            TcpEvent::Established { .. } => "established",
            TcpEvent::RttSample { .. } => "rtt",
            TcpEvent::Fin { .. } => "fin",
            TcpEvent::Closed { .. } => "closed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "syn",
            "synack",
            "established",
            "rtt",
            "fin",
            "fin",
            "closed"
        ]
    );
}

#[test]
fn retransmission_and_duplicate_acks() {
    let mut s = Session::new();
    s.handshake();
    s.seg(2000, true, 101, Some(301), 502, "", 100);
    s.seg(2100, true, 201, Some(301), 502, "", 100); // lost
    s.seg(2200, true, 301, Some(301), 502, "", 100);
    s.seg(3000, false, 301, Some(201), 509, "", 0);
    s.seg(3100, false, 301, Some(201), 509, "", 0); // dup 1
    s.seg(3200, false, 301, Some(201), 509, "", 0); // dup 2
    s.seg(3300, true, 201, Some(301), 502, "", 100); // fast retransmit
    s.seg(4000, false, 301, Some(401), 509, "", 0);

    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(c.half(client()).unwrap().counters.retransmissions, 1);
    assert_eq!(c.half(server()).unwrap().counters.dup_acks, 2);
    assert_eq!(c.half(client()).unwrap().counters.payload_bytes, 400);
    assert!(s.events.contains(&TcpEvent::Retransmission {
        from: client(),
        seq: 201,
        len: 100
    }));
    assert!(s.events.contains(&TcpEvent::DupAck {
        from: server(),
        ack: 201,
        count: 2
    }));
    // Samples: SYN→SYN-ACK, 101..201 acked at 3000 (1 ms), 301..401 acked at 4000 (1.8 ms);
    // the retransmitted 201..301 gives none (Karn).
    assert_eq!(c.rtt.samples, 3);
    assert_eq!(c.rtt.last_ns, 1800 * 1000);
    let p = s.a.process(4242).unwrap();
    assert_eq!((p.totals.retransmissions, p.totals.dup_acks), (1, 2));
}

#[test]
fn syn_retransmission() {
    let mut s = Session::new();
    s.seg(0, true, 100, None, 64240, "S", 0);
    s.seg(1_000_000, true, 100, None, 64240, "S", 0);
    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(c.state, State::SynSent);
    assert_eq!(c.half(client()).unwrap().counters.retransmissions, 1);
}

#[test]
fn zero_window_and_reopen() {
    let mut s = Session::new();
    s.handshake();
    s.seg(2000, true, 101, Some(301), 502, "", 1000);
    s.seg(2100, false, 301, Some(1101), 0, "", 0);
    s.seg(2200, false, 301, Some(1101), 0, "", 0);
    s.seg(5000, false, 301, Some(1101), 300, "", 0);
    let c = s.a.connection(&s.key()).unwrap();
    let h = c.half(server()).unwrap();
    assert_eq!(
        h.counters.zero_windows, 1,
        "one event per zero-window period"
    );
    assert_eq!(h.window, 300);
    assert_eq!(
        h.counters.dup_acks, 0,
        "window changes are not duplicate ACKs; no data outstanding"
    );
    assert!(s.events.contains(&TcpEvent::ZeroWindow { from: server() }));
    assert!(s.events.contains(&TcpEvent::WindowOpened {
        from: server(),
        window: 300
    }));
}

#[test]
fn reset_from_server() {
    let mut s = Session::new();
    s.seg(0, true, 100, None, 64240, "S", 0);
    s.seg(500, false, 0, Some(101), 0, "R", 0);
    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(c.state, State::Reset);
    assert_eq!(c.close, Some(Close::Reset { by: server() }));
    assert_eq!(c.half(server()).unwrap().counters.resets_sent, 1);
    assert_eq!(
        c.half(server()).unwrap().counters.zero_windows,
        0,
        "a RST's window is not advertised"
    );
    assert_eq!(c.handshake_ns, None);
    let p = s.a.process(4242).unwrap();
    assert_eq!((p.handshakes, p.resets, p.graceful_closes), (0, 1, 0));
}

#[test]
fn reset_mid_stream_after_established() {
    let mut s = Session::new();
    s.handshake();
    s.seg(2000, true, 101, Some(301), 502, "P", 5);
    s.seg(2500, false, 301, Some(106), 0, "R", 0);
    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(c.close, Some(Close::Reset { by: server() }));
    assert_eq!(s.a.process(4242).unwrap().handshakes, 1);
}

#[test]
fn connection_cap_evicts_least_recent_and_counts() {
    let mut s = Session::new();
    s.a = TcpAnalyzer::new(2, 10);
    for port in [40001, 40002, 40003] {
        s.cport = port;
        s.handshake();
    }
    assert_eq!(s.a.connections().count(), 2);
    assert_eq!(s.a.evicted_connections(), 1);
    s.cport = 40001;
    assert!(s.a.connection(&s.key()).is_none(), "the oldest went");
    s.cport = 40003;
    assert!(s.a.connection(&s.key()).is_some());
    assert_eq!(
        s.a.process(4242).unwrap().connections,
        3,
        "process totals survive eviction"
    );
    assert_eq!(s.a.expire(u64::MAX), 2);
    assert_eq!(s.a.connections().count(), 0);
}

#[test]
fn non_tcp_is_ignored() {
    let mut a = TcpAnalyzer::new(10, 10);
    let bytes = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
        .udp(1, 2);
    let mut v = Vec::new();
    bytes.write(&mut v, b"x").unwrap();
    let meta = PacketMeta {
        ts_ns: 0,
        ifindex: 1,
        ifname: "lo".into(),
        direction: Direction::Ingress,
        pid: Some(1),
        comm: None,
        cookie: None,
        orig_len: 0,
        snap_len: 0,
    };
    assert!(a.ingest(&decode(&v, LinkType::Ethernet), &meta).is_empty());
    assert_eq!(a.connections().count(), 0);
    assert!(a.process(1).is_none());
}

#[test]
fn a_connection_is_counted_for_its_process_once_even_if_the_pid_comes_later() {
    let mut s = Session::new();
    s.pid = None;
    s.seg(0, true, 100, None, 64240, "S", 0);
    assert!(s.a.process(4242).is_none());
    s.pid = Some(4242);
    s.seg(1000, false, 300, Some(101), 65160, "S", 0);
    s.seg(1200, true, 101, Some(301), 502, "", 0);
    let p = s.a.process(4242).unwrap();
    assert_eq!((p.connections, p.handshakes), (1, 1));
    assert_eq!(
        p.totals.packets, 2,
        "packets before the pid was known stay unattributed"
    );
}

#[test]
fn retransmitted_syn_gives_no_rtt_sample_but_the_handshake_time_counts_from_the_first() {
    let mut s = Session::new();
    s.seg(0, true, 100, None, 64240, "S", 0);
    s.seg(1_000_000, true, 100, None, 64240, "S", 0);
    s.seg(1_001_000, false, 300, Some(101), 65160, "S", 0);
    s.seg(1_001_100, true, 101, Some(301), 502, "", 0);
    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(c.state, State::Established);
    assert_eq!(c.rtt.samples, 0);
    assert_eq!(c.handshake_ns, Some(1_001_100 * 1000));
}

#[test]
fn a_new_syn_on_a_closed_tuple_starts_a_new_connection() {
    let mut s = Session::new();
    s.seg(0, true, 100, None, 64240, "S", 0);
    s.seg(500, false, 0, Some(101), 0, "R", 0);
    s.seg(2000, true, 9000, None, 64240, "S", 0);
    let c = s.a.connection(&s.key()).unwrap();
    assert_eq!(c.state, State::SynSent);
    assert_eq!(c.close, None);
    assert_eq!(c.totals().packets, 1);
    assert_eq!(s.a.process(4242).unwrap().connections, 2);
}
