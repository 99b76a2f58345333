//! Table-driven tests of both filter syntaxes, their error messages and the kernel subset.

mod fixtures;

use netmon_packet::filter::{AddrMatch, Filter, KernelFilter, PortMatch, Side};
use netmon_packet::{Direction, LinkType, Packet, PacketMeta, decode};

fn meta(ifname: &str, pid: Option<u32>) -> PacketMeta {
    PacketMeta {
        ts_ns: 0,
        ifindex: 1,
        ifname: ifname.into(),
        direction: Direction::Ingress,
        pid,
        comm: pid.map(|_| "curl".to_string()),
        cookie: None,
        orig_len: 74,
        snap_len: 74,
    }
}

fn pkt(name: &str) -> Packet {
    let bytes = fixtures::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1;
    decode(&bytes, LinkType::Ethernet)
}

/// (filter, fixture, iface, pid, expected)
const CASES: &[(&str, &str, &str, Option<u32>, bool)] = &[
    // The seed's JSON format.
    (
        r#"{"IPv4":{"Source_Address":"10.0.0.1"},"TCP":{"Destination_Port":5000}}"#,
        "tcp_syn",
        "eth0",
        None,
        true,
    ),
    (
        r#"{"IPv4":{"Source_Address":"10.0.0.2"},"TCP":{"Destination_Port":5000}}"#,
        "tcp_syn",
        "eth0",
        None,
        false,
    ),
    (
        r#"{"IPv4":{"Source_Address":"10.0.0.1"},"TCP":{"Destination_Port":5001}}"#,
        "tcp_syn",
        "eth0",
        None,
        false,
    ),
    (
        r#"{"AF_Packet":{"Interface_Name":"lo"},"IPv4":{}}"#,
        "udp",
        "lo",
        None,
        true,
    ),
    (
        r#"{"AF_Packet":{"Interface_Name":"lo"},"IPv4":{}}"#,
        "udp",
        "eth0",
        None,
        false,
    ),
    (
        r#"{"AF_Packet":{"Interface_Name":"lo"},"IPv4":{}}"#,
        "arp",
        "lo",
        None,
        false,
    ),
    (
        r#"{"TCP":{"SYN":true,"MSS":1460}}"#,
        "tcp_syn",
        "eth0",
        None,
        true,
    ),
    (r#"{"ipv4":{"ttl":64}}"#, "tcp_syn", "eth0", None, true),
    (
        r#"[{"ARP":{}},{"UDP":{"Destination_Port":2000}}]"#,
        "arp",
        "eth0",
        None,
        true,
    ),
    (
        r#"[{"ARP":{}},{"UDP":{"Destination_Port":2000}}]"#,
        "udp",
        "eth0",
        None,
        true,
    ),
    (
        r#"[{"ARP":{}},{"UDP":{"Destination_Port":2000}}]"#,
        "tcp_syn",
        "eth0",
        None,
        false,
    ),
    (
        r#"{"AF_Packet":{"PID":1234}}"#,
        "udp",
        "eth0",
        Some(1234),
        true,
    ),
    (r#"{"AF_Packet":{"PID":1234}}"#, "udp", "eth0", None, false),
    (
        r#"{"Ethernet":{"Source_MAC":"02:00:00:00:00:0a"}}"#,
        "udp",
        "eth0",
        None,
        true,
    ),
    (
        r#"{"LLDP":{"System_Name":"switch1"}}"#,
        "lldp",
        "eth0",
        None,
        true,
    ),
    (r#"{"CDP":{"Native_VLAN":10}}"#, "cdp", "eth0", None, true),
    (
        r#"{"DNS":{"Query_Name":"EXAMPLE.com"}}"#,
        "dns_udp_reply",
        "eth0",
        None,
        true,
    ),
    (r#"{}"#, "arp", "eth0", None, true),
    // Expressions.
    (
        "tcp.dport == 5000 and ip.src in 10.0.0.0/8 and pid == 1234",
        "tcp_syn",
        "eth0",
        Some(1234),
        true,
    ),
    (
        "tcp.dport == 5000 and ip.src in 10.0.0.0/8 and pid == 1234",
        "tcp_syn",
        "eth0",
        Some(99),
        false,
    ),
    (
        "tcp.dport == 5000 and ip.src in 192.168.0.0/16",
        "tcp_syn",
        "eth0",
        None,
        false,
    ),
    ("tcp", "tcp_syn", "eth0", None, true),
    ("tcp", "udp", "eth0", None, false),
    ("udp or arp", "arp", "eth0", None, true),
    ("not arp", "arp", "eth0", None, false),
    ("!(udp || tcp)", "icmp_echo", "eth0", None, true),
    (
        "(udp or tcp) && ip.ttl >= 64",
        "tcp_syn",
        "eth0",
        None,
        true,
    ),
    ("ip.ttl > 64", "tcp_syn", "eth0", None, false),
    (
        "ip.ttl < 65 and ip.ttl <= 64",
        "tcp_syn",
        "eth0",
        None,
        true,
    ),
    ("tcp.port == 40000", "tcp_syn", "eth0", None, true),
    ("tcp.port != 40000", "tcp_syn", "eth0", None, false),
    ("tcp.port != 80", "tcp_syn", "eth0", None, true),
    ("tcp.port != 80", "udp", "eth0", None, false),
    ("tcp.syn and not tcp.ack", "tcp_syn", "eth0", None, true),
    ("tcp.flags == S", "tcp_syn", "eth0", None, true),
    ("tcp.mss == 0x5b4", "tcp_syn", "eth0", None, true),
    ("tcp.Window_Size == 64240", "tcp_syn", "eth0", None, true),
    ("ip.dst == 10.0.0.2", "tcp_syn", "eth0", None, true),
    ("ip6.src == fe80::a", "icmpv6_ns", "eth0", None, true),
    ("ip.src in fe80::/10", "icmpv6_ns", "eth0", None, true),
    ("ip.src in fe80::/10", "tcp_syn", "eth0", None, false),
    (
        "icmp6.type == 135 and icmp6.target == fe80::b",
        "icmpv6_ns",
        "eth0",
        None,
        true,
    ),
    (
        "eth.src == 02:00:00:00:00:0a",
        "tcp_syn",
        "eth0",
        None,
        true,
    ),
    (
        "vlan.id == 100 and udp.dport == 2000",
        "vlan",
        "eth0",
        None,
        true,
    ),
    (
        "dns.qname == \"example.com\" and dns.response",
        "dns_udp_reply",
        "eth0",
        None,
        true,
    ),
    ("dns and tcp", "dns_tcp_query", "eth0", None, true),
    ("igmp.group == 239.1.2.3", "igmp", "eth0", None, true),
    (
        "arp.op == 1 and arp.dst == 10.0.0.2",
        "arp",
        "eth0",
        None,
        true,
    ),
    ("iface == lo", "udp", "lo", None, true),
    ("iface == 'lo' and dir == in", "udp", "lo", None, true),
    ("dir == egress", "udp", "lo", None, false),
    (
        r#"{"AF_Packet":{"Direction":"ingress"}}"#,
        "udp",
        "lo",
        None,
        true,
    ),
    ("comm == curl", "udp", "lo", Some(1), true),
    ("comm == curl", "udp", "lo", None, false),
    ("lldp and lldp.name == switch1", "lldp", "eth0", None, true),
    ("cdp.device == sw1.example", "cdp", "eth0", None, true),
    ("snap and ip", "snap_ipv4", "eth0", None, true),
];

#[test]
fn filters_match_as_expected() {
    for &(text, fixture, iface, pid, want) in CASES {
        let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            f.matches(&pkt(fixture), &meta(iface, pid)),
            want,
            "{text} on {fixture}/{iface}/{pid:?}"
        );
    }
}

const ERRORS: &[(&str, &str)] = &[
    ("tcp.dport == ", "column 14: expected a value after '=='"),
    ("tcp.dport ==", "column 13: expected a value after '=='"),
    (
        "tcp.dport = 80",
        "column 11: '=' is not an operator; use '=='",
    ),
    ("", "column 1: empty filter"),
    (
        "tcp and",
        "column 8: expected a protocol or field name, found the end of the filter",
    ),
    (
        "(tcp or udp",
        "column 12: expected ')' to close the '(' at column 1, found the end of the filter",
    ),
    ("tcp)", "column 4: ')' without a matching '('"),
    (
        "tcp udp",
        "column 5: expected 'and', 'or' or the end after a complete condition, found 'udp'",
    ),
    (
        "ip.src == 10.0.0.300",
        "column 11: '10.0.0.300' is not an IP address (ip.src)",
    ),
    (
        "ip.src == 10.0.0.0/8",
        "column 11: '10.0.0.0/8' is a prefix: write 'ip.src in 10.0.0.0/8'",
    ),
    (
        "ip.src in 10.0.0.0/33",
        "column 11: '10.0.0.0/33' is not an address prefix (e.g. 10.0.0.0/8)",
    ),
    (
        "tcp.port in 10.0.0.0/8",
        "column 1: 'in' needs an address field, and 'tcp.port' is not one",
    ),
    (
        "tcp.dport == http",
        "column 14: 'http' is not a number (tcp.dport)",
    ),
    (
        "pid",
        "column 4: expected a comparison after 'pid' (e.g. pid == …)",
    ),
    ("comm == \"curl", "column 9: unterminated string"),
    ("tcp.dport $ 3", "column 11: unexpected character '$'"),
    (
        "eth.src == 1:2:3",
        "column 12: '1:2:3' is not a MAC address (aa:bb:cc:dd:ee:ff) (eth.src)",
    ),
    (
        "tcp.syn < true",
        "column 1: 'tcp.syn' can only be compared with == or !=",
    ),
];

#[test]
fn expression_errors_point_at_the_column() {
    for &(text, want) in ERRORS {
        let err = Filter::parse_expr(text).expect_err(text);
        assert_eq!(err.to_string(), want, "{text}");
    }
}

#[test]
fn unknown_names_list_the_valid_ones() {
    let e = Filter::parse_expr("tcp.foo == 1").unwrap_err().to_string();
    assert!(
        e.starts_with("column 1: unknown field 'tcp.foo'; fields of tcp: sport, dport, port,"),
        "{e}"
    );
    assert!(
        e.contains("or the full names: Source_Port, Destination_Port"),
        "{e}"
    );

    let e = Filter::parse_expr("tpc").unwrap_err().to_string();
    assert!(
        e.starts_with("column 1: unknown protocol or field 'tpc'; protocols: eth, ether, vlan"),
        "{e}"
    );
    assert!(
        e.contains("metadata: iface, ifname, ifindex, dir, direction, pid, comm"),
        "{e}"
    );

    let e = Filter::parse_expr("x.y == 1").unwrap_err().to_string();
    assert!(
        e.starts_with("column 1: unknown protocol 'x' in 'x.y'; protocols: eth"),
        "{e}"
    );

    let e = Filter::parse_json(r#"{"TCP":{"Dest_Port":1}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "unknown field 'TCP.Dest_Port'; valid fields of TCP: Source_Port, Destination_Port,"
        ),
        "{e}"
    );

    let e = Filter::parse_json(r#"{"IPv9":{}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("unknown layer 'IPv9'; valid layers: AF_Packet, Ethernet, VLAN"),
        "{e}"
    );

    let e = Filter::parse_json(r#"{"AF_Packet":{"Iface":"lo"}}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "unknown field 'AF_Packet.Iface'; valid fields of AF_Packet: Interface_Name, Interface_Index, Direction, PID, Comm, Length, Cookie"
    );
}

#[test]
fn json_errors() {
    let cases = [
        (
            r#"{"IPv4":{"Source_Address":"127.0.0.300"}}"#,
            "IPv4.Source_Address: '127.0.0.300' is not an IP address",
        ),
        (
            r#"{"TCP":{"Destination_Port":"x"}}"#,
            "TCP.Destination_Port: 'x' is not a number",
        ),
        (r#"{"TCP":5000}"#, "TCP: expected an object of field values"),
        (r#"[]"#, "empty JSON filter list"),
        (
            r#"[{"TCP":{}}, {"Nope":{}}]"#,
            "filter 2 of 2: unknown layer 'Nope'",
        ),
        (
            r#"{"TCP":{"Destination_Port":[1]}}"#,
            "TCP.Destination_Port: expected a string, number or boolean, not [1]",
        ),
        (
            r#"{"TCP":{"#,
            "invalid JSON filter: EOF while parsing an object at line 1 column 8",
        ),
    ];
    for (text, want) in cases {
        let e = Filter::parse_json(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{text}: {e}");
    }
}

#[test]
fn kernel_part_only_for_simple_filters() {
    let some = |t: &str| Filter::parse(t).unwrap().kernel_part();
    assert_eq!(
        some("tcp.dport == 5000 and ip.src in 10.0.0.0/8"),
        Some(KernelFilter {
            ip_version: Some(4),
            protocol: Some(6),
            port: Some(PortMatch {
                port: 5000,
                side: Side::Destination
            }),
            addr: Some(AddrMatch {
                net: "10.0.0.0/8".parse().unwrap(),
                side: Side::Source
            }),
        })
    );
    assert_eq!(
        some("udp.port == 53"),
        Some(KernelFilter {
            protocol: Some(17),
            port: Some(PortMatch {
                port: 53,
                side: Side::Either
            }),
            ..Default::default()
        })
    );
    assert_eq!(
        some("ip6 and ip.addr == fe80::1"),
        Some(KernelFilter {
            ip_version: Some(6),
            addr: Some(AddrMatch {
                net: "fe80::1/128".parse().unwrap(),
                side: Side::Either
            }),
            ..Default::default()
        })
    );
    assert_eq!(
        some(r#"{"IPv4":{"Source_Address":"127.0.0.1"},"TCP":{"Destination_Port":5000}}"#),
        Some(KernelFilter {
            ip_version: Some(4),
            protocol: Some(6),
            port: Some(PortMatch {
                port: 5000,
                side: Side::Destination
            }),
            addr: Some(AddrMatch {
                net: "127.0.0.1/32".parse().unwrap(),
                side: Side::Source
            }),
        })
    );
    assert_eq!(some("icmp").unwrap().protocol, Some(1));
    for not_simple in [
        "tcp or udp",
        "not tcp",
        "pid == 1",
        "tcp.dport > 1000",
        "tcp and udp",
        "tcp.dport == 1 and tcp.dport == 2",
        "dns",
        "tcp.flags == S",
        r#"[{"TCP":{}},{"UDP":{}}]"#,
        r#"{"AF_Packet":{"Interface_Name":"lo"},"IPv4":{}}"#,
    ] {
        assert_eq!(some(not_simple), None, "{not_simple}");
    }
}

/// Every field the decoder emits can be named in a JSON filter, with its own value matching.
#[test]
fn every_decoded_field_is_filterable_by_its_value() {
    let m = meta("eth0", None);
    for (name, bytes) in fixtures::all() {
        let p = decode(&bytes, LinkType::Ethernet);
        for layer in &p.layers {
            for (field, value) in &layer.fields {
                let json = serde_json::json!({ layer.name: { *field: value } }).to_string();
                let f = Filter::parse_json(&json).unwrap_or_else(|e| panic!("{name}: {json}: {e}"));
                assert!(
                    f.matches(&p, &m),
                    "{name}: {json} does not match its own packet"
                );
            }
        }
    }
}
