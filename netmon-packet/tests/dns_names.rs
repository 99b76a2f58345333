//! Names from DNS replies, per process, bounded.

mod fixtures;

use std::net::IpAddr;

use netmon_packet::dns_names::DnsNames;
use netmon_packet::{Direction, LinkType, PacketMeta, decode};

fn meta(pid: Option<u32>) -> PacketMeta {
    PacketMeta {
        ts_ns: 0,
        ifindex: 1,
        ifname: "lo".into(),
        direction: Direction::Ingress,
        pid,
        comm: None,
        cookie: None,
        orig_len: 0,
        snap_len: 0,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn each_process_sees_the_name_it_asked_for() {
    let mut names = DnsNames::new(100);
    let cdn = [93, 184, 216, 34];
    let r1 = decode(
        &fixtures::dns_udp_reply("example.com", &[cdn, [93, 184, 216, 35]]),
        LinkType::Ethernet,
    );
    let r2 = decode(
        &fixtures::dns_udp_reply("example.org", &[cdn]),
        LinkType::Ethernet,
    );
    assert_eq!(names.ingest(&r1, &meta(Some(1))), 2);
    assert_eq!(names.ingest(&r2, &meta(Some(2))), 1);
    assert_eq!(
        names.lookup(Some(1), ip("93.184.216.34")),
        Some("example.com")
    );
    assert_eq!(
        names.lookup(Some(1), ip("93.184.216.35")),
        Some("example.com")
    );
    assert_eq!(
        names.lookup(Some(2), ip("93.184.216.34")),
        Some("example.org")
    );
    // An address a process did not resolve itself gets the latest name any process got for
    // it (a process that resolves through systemd-resolved or nscd never sees a reply).
    assert_eq!(
        names.lookup(Some(2), ip("93.184.216.35")),
        Some("example.com")
    );
    assert_eq!(
        names.lookup(Some(3), ip("93.184.216.34")),
        Some("example.org")
    );
    assert_eq!(names.lookup(Some(3), ip("93.184.216.36")), None);

    let r3 = decode(
        &fixtures::dns_udp_reply("unowned.test", &[[192, 0, 2, 1]]),
        LinkType::Ethernet,
    );
    names.ingest(&r3, &meta(None));
    assert_eq!(
        names.lookup(Some(7), ip("192.0.2.1")),
        Some("unowned.test"),
        "falls back to an unattributed reply"
    );
}

#[test]
fn queries_and_errors_teach_nothing() {
    let mut names = DnsNames::new(10);
    let q = decode(&fixtures::dns_tcp_query("example.org"), LinkType::Ethernet);
    assert_eq!(names.ingest(&q, &meta(Some(1))), 0);
    let mut bytes = fixtures::dns_udp_reply("nx.test", &[[192, 0, 2, 9]]);
    // RCODE lives in the low nibble of the DNS header's fourth byte; the UDP checksum then no
    // longer matches, which the decoder flags but does not drop.
    let rcode_at = 14 + 20 + 8 + 3;
    bytes[rcode_at] |= 3;
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(p.dns.as_ref().unwrap().rcode, 3);
    assert_eq!(names.ingest(&p, &meta(Some(1))), 0);
    assert!(names.is_empty());
}

#[test]
fn bounded_with_evictions_counted() {
    // Each reply of a known process takes two entries: its own and the fallback.
    let mut names = DnsNames::new(6);
    for i in 0..5u8 {
        let p = decode(
            &fixtures::dns_udp_reply(&format!("h{i}.test"), &[[10, 9, 9, i]]),
            LinkType::Ethernet,
        );
        names.ingest(&p, &meta(Some(1)));
    }
    assert_eq!(names.len(), 6);
    assert_eq!(names.evicted(), 4);
    assert_eq!(names.lookup(Some(1), ip("10.9.9.0")), None);
    assert_eq!(names.lookup(Some(1), ip("10.9.9.1")), None);
    assert_eq!(names.lookup(Some(1), ip("10.9.9.2")), Some("h2.test"));
    assert_eq!(names.lookup(Some(1), ip("10.9.9.4")), Some("h4.test"));
}

#[test]
fn remote_name_of_later_packets_of_the_same_process() {
    let mut names = DnsNames::new(10);
    let reply = decode(
        &fixtures::dns_udp_reply("example.com", &[[10, 0, 0, 2]]),
        LinkType::Ethernet,
    );
    names.ingest(&reply, &meta(Some(5)));
    // The SYN fixture goes 10.0.0.1 > 10.0.0.2.
    let syn = decode(&fixtures::tcp_syn(), LinkType::Ethernet);
    let mut m = meta(Some(5));
    m.direction = Direction::Egress;
    assert_eq!(names.remote_name(&syn, &m), Some("example.com"));
    m.direction = Direction::Ingress;
    assert_eq!(
        names.remote_name(&syn, &m),
        None,
        "on ingress the remote end is the source, 10.0.0.1"
    );
    m.direction = Direction::Egress;
    m.pid = Some(6);
    assert_eq!(
        names.remote_name(&syn, &m),
        Some("example.com"),
        "another process that did not ask gets the fallback"
    );
    let other = decode(
        &fixtures::dns_udp_reply("mine.test", &[[10, 0, 0, 2]]),
        LinkType::Ethernet,
    );
    names.ingest(&other, &meta(Some(6)));
    assert_eq!(names.remote_name(&syn, &m), Some("mine.test"));
    m.pid = Some(5);
    assert_eq!(
        names.remote_name(&syn, &m),
        Some("example.com"),
        "its own answer wins over a later one of another process"
    );
}

#[test]
fn peek_answers_like_lookup_but_leaves_the_eviction_order() {
    let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
    let mut peeked = DnsNames::new(4);
    peeked.learn(Some(1), "a.test", &[a]);
    peeked.learn(None, "b.test", &[b]);
    assert_eq!(peeked.peek(Some(1), a), Some("a.test"));
    assert_eq!(peeked.peek(Some(2), a), Some("a.test"), "the fallback");
    assert_eq!(peeked.peek(Some(1), b), Some("b.test"));
    // `a`'s two entries are still the oldest: the next three names push them out.
    for (name, addr) in [
        ("c.test", "192.0.2.3"),
        ("d.test", "192.0.2.4"),
        ("e.test", "192.0.2.5"),
    ] {
        peeked.learn(None, name, &[ip(addr)]);
    }
    assert_eq!(peeked.peek(Some(1), a), None);

    let mut looked_up = DnsNames::new(4);
    looked_up.learn(Some(1), "a.test", &[a]);
    looked_up.learn(None, "b.test", &[b]);
    assert_eq!(looked_up.lookup(Some(1), a), Some("a.test"));
    for (name, addr) in [
        ("c.test", "192.0.2.3"),
        ("d.test", "192.0.2.4"),
        ("e.test", "192.0.2.5"),
    ] {
        looked_up.learn(None, name, &[ip(addr)]);
    }
    assert_eq!(
        looked_up.lookup(Some(1), a),
        Some("a.test"),
        "used, so kept"
    );
}
