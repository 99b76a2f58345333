//! Field-by-field decoding of packets built in code.

mod fixtures;

use std::net::IpAddr;

use fixtures::*;
use netmon_packet::{LinkType, Mac, Packet, Value, decode};

fn field(p: &Packet, layer: &str, name: &str) -> Value {
    p.layer(layer)
        .unwrap_or_else(|| panic!("no {layer} layer in {:?}", names(p)))
        .get(name)
        .unwrap_or_else(|| panic!("no {layer}.{name}"))
        .clone()
}

fn names(p: &Packet) -> Vec<&'static str> {
    p.layers.iter().map(|l| l.name).collect()
}

fn ip(s: &str) -> Value {
    Value::Ip(s.parse::<IpAddr>().unwrap())
}

fn n(v: u64) -> Value {
    Value::Num(v)
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn assert_fields(p: &Packet, layer: &str, expected: &[(&str, Value)]) {
    for (name, want) in expected {
        assert_eq!(&field(p, layer, name), want, "{layer}.{name}");
    }
}

#[test]
fn tcp_syn_with_options() {
    let bytes = tcp_syn();
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4", "TCP"]);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "Ethernet",
        &[
            ("Source_MAC", Value::Mac(Mac(MAC_A))),
            ("Destination_MAC", Value::Mac(Mac(MAC_B))),
            ("EtherType", n(0x0800)),
        ],
    );
    assert_fields(
        &p,
        "IPv4",
        &[
            ("Source_Address", ip("10.0.0.1")),
            ("Destination_Address", ip("10.0.0.2")),
            ("TTL", n(64)),
            ("Protocol", n(6)),
            ("IHL", n(5)),
            ("Total_Length", n(bytes.len() as u64 - 14)),
            ("Checksum_Valid", b(true)),
        ],
    );
    assert_fields(
        &p,
        "TCP",
        &[
            ("Source_Port", n(40000)),
            ("Destination_Port", n(5000)),
            ("Sequence_Number", n(1)),
            ("Window_Size", n(64240)),
            ("SYN", b(true)),
            ("ACK", b(false)),
            ("Flags", t("S")),
            ("MSS", n(1460)),
            ("SACK_Permitted", b(true)),
            ("Timestamp_Value", n(1000)),
            ("Timestamp_Echo", n(0)),
            ("Window_Scale", n(7)),
            ("Payload_Length", n(0)),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn raw_ip_link_type() {
    let bytes = tcp_syn();
    let p = decode(&bytes[14..], LinkType::RawIp);
    assert_eq!(names(&p), ["IPv4", "TCP"]);
    assert_eq!(field(&p, "TCP", "MSS"), n(1460));
}

#[test]
fn dns_reply_over_udp() {
    let p = decode(
        &dns_udp_reply("example.com", &[[93, 184, 216, 34], [93, 184, 216, 35]]),
        LinkType::Ethernet,
    );
    assert_eq!(names(&p), ["Ethernet", "IPv4", "UDP", "DNS"]);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "UDP",
        &[
            ("Source_Port", n(53)),
            ("Destination_Port", n(33333)),
            ("Checksum_Valid", b(true)),
        ],
    );
    assert_fields(
        &p,
        "DNS",
        &[
            ("Transaction_ID", n(0x1234)),
            ("Response", b(true)),
            ("Rcode", n(0)),
            ("Transport", t("UDP")),
            ("Question_Count", n(1)),
            ("Answer_Count", n(3)),
            ("Query_Name", t("example.com")),
            ("Query_Type", n(1)),
            (
                "Answers",
                t(
                    "example.com CNAME edge.example.com, edge.example.com A 93.184.216.34, edge.example.com A 93.184.216.35",
                ),
            ),
        ],
    );
    let dns = p.dns.as_ref().unwrap();
    assert_eq!(dns.answers[1].ttl, 60);
}

#[test]
fn dns_query_over_tcp() {
    let p = decode(&dns_tcp_query("example.org"), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4", "TCP", "DNS"]);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "DNS",
        &[
            ("Response", b(false)),
            ("Transport", t("TCP")),
            ("Query_Name", t("example.org")),
            ("Answer_Count", n(0)),
        ],
    );
    assert_fields(
        &p,
        "TCP",
        &[
            ("Destination_Port", n(53)),
            ("PSH", b(true)),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn icmp_echo() {
    let p = decode(&icmp_echo_request(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4", "ICMP"]);
    assert_fields(
        &p,
        "ICMP",
        &[
            ("Type", n(8)),
            ("Code", n(0)),
            ("Identifier", n(0x4242)),
            ("Sequence", n(7)),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn arp_request_fields() {
    let p = decode(&arp_request(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "ARP"]);
    assert_fields(
        &p,
        "ARP",
        &[
            ("Hardware_Type", n(1)),
            ("Protocol_Type", n(0x0800)),
            ("Operation", n(1)),
            ("Sender_MAC", Value::Mac(Mac(MAC_A))),
            ("Sender_IP", ip("10.0.0.1")),
            ("Target_MAC", Value::Mac(Mac([0; 6]))),
            ("Target_IP", ip("10.0.0.2")),
        ],
    );
}

#[test]
fn vlan_tag() {
    let p = decode(&vlan_udp(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "VLAN", "IPv4", "UDP"]);
    assert_fields(&p, "Ethernet", &[("EtherType", n(0x8100))]);
    assert_fields(
        &p,
        "VLAN",
        &[
            ("VLAN_ID", n(100)),
            ("Priority", n(5)),
            ("DEI", b(false)),
            ("EtherType", n(0x0800)),
        ],
    );
    assert_fields(
        &p,
        "UDP",
        &[
            ("Source_Port", n(1000)),
            ("Payload_Length", n(5)),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn icmpv6_neighbour_solicitation() {
    let p = decode(&icmpv6_ns(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv6", "ICMPv6"]);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "IPv6",
        &[
            ("Hop_Limit", n(255)),
            ("Next_Header", n(58)),
            ("Source_Address", ip("fe80::a")),
        ],
    );
    assert_fields(
        &p,
        "ICMPv6",
        &[
            ("Type", n(135)),
            ("Target_Address", ip("fe80::b")),
            ("Source_Link_Address", Value::Mac(Mac(MAC_A))),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn icmpv6_neighbour_advertisement() {
    let p = decode(&icmpv6_na(), LinkType::Ethernet);
    assert_fields(
        &p,
        "ICMPv6",
        &[
            ("Type", n(136)),
            ("Router", b(false)),
            ("Solicited", b(true)),
            ("Override", b(true)),
            ("Target_Address", ip("fe80::b")),
            ("Target_Link_Address", Value::Mac(Mac(MAC_B))),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn ipv6_hop_by_hop_and_fragment_headers() {
    let p = decode(&ipv6_hbh_frag_udp(), LinkType::Ethernet);
    assert_eq!(
        names(&p),
        ["Ethernet", "IPv6", "IPv6_HopByHop", "IPv6_Fragment", "UDP"]
    );
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "IPv6",
        &[("Next_Header", n(0)), ("Payload_Length", n(36))],
    );
    assert_fields(
        &p,
        "IPv6_HopByHop",
        &[
            ("Next_Header", n(44)),
            ("Length", n(8)),
            ("Options", t("router-alert,padn")),
        ],
    );
    assert_fields(
        &p,
        "IPv6_Fragment",
        &[
            ("Next_Header", n(17)),
            ("Fragment_Offset", n(0)),
            ("More_Fragments", b(false)),
            ("Identification", n(0xdeadbeef)),
        ],
    );
    assert_fields(
        &p,
        "UDP",
        &[
            ("Source_Port", n(1234)),
            ("Destination_Port", n(5678)),
            ("Payload_Length", n(12)),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn ipv6_routing_and_destination_options() {
    let p = decode(&ipv6_routing_destopts_tcp(), LinkType::Ethernet);
    assert_eq!(
        names(&p),
        ["Ethernet", "IPv6", "IPv6_Routing", "IPv6_DestOpts", "TCP"]
    );
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "IPv6_Routing",
        &[
            ("Next_Header", n(60)),
            ("Length", n(24)),
            ("Routing_Type", n(0)),
            ("Segments_Left", n(0)),
        ],
    );
    assert_fields(
        &p,
        "IPv6_DestOpts",
        &[
            ("Next_Header", n(6)),
            ("Length", n(8)),
            ("Options", t("padn")),
        ],
    );
    assert_fields(
        &p,
        "TCP",
        &[
            ("Source_Port", n(1111)),
            ("Destination_Port", n(22)),
            ("SYN", b(true)),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn ipv4_later_fragment_stops_before_transport() {
    let mut bytes = udp(b"0123456789", 1, 2);
    // Fragment offset 8 (units of 8 bytes), DF cleared: checksum recomputed by hand.
    bytes[14 + 6] = 0x00;
    bytes[14 + 7] = 0x08;
    bytes[14 + 10] = 0;
    bytes[14 + 11] = 0;
    let c = inet_checksum(&[&bytes[14..34]]);
    bytes[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4"]);
    assert_fields(
        &p,
        "IPv4",
        &[("Fragment_Offset", n(8)), ("Checksum_Valid", b(true))],
    );
    assert!(p.problems.is_empty(), "{:?}", p.problems);
}

#[test]
fn igmp_report_with_ipv4_router_alert_option() {
    let p = decode(&igmp_v2_report(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4", "IGMP"]);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "IPv4",
        &[
            ("IHL", n(6)),
            ("Options", t("ra")),
            ("TTL", n(1)),
            ("Checksum_Valid", b(true)),
        ],
    );
    assert_fields(
        &p,
        "IGMP",
        &[
            ("Type", n(0x16)),
            ("Version", n(2)),
            ("Group_Address", ip("239.1.2.3")),
            ("Checksum_Valid", b(true)),
        ],
    );
}

#[test]
fn lldp_tlvs() {
    let p = decode(&lldp(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "LLDP"]);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(
        &p,
        "LLDP",
        &[
            ("Chassis_ID_Subtype", n(4)),
            ("Chassis_ID", t("02:00:00:00:00:0a")),
            ("Port_ID_Subtype", n(5)),
            ("Port_ID", t("eth1")),
            ("TTL", n(120)),
            ("System_Name", t("switch1")),
            ("Capabilities", n(0x14)),
            ("Enabled_Capabilities", n(0x04)),
            ("Management_Address", t("192.0.2.1")),
        ],
    );
}

#[test]
fn cdp_over_llc_snap() {
    let p = decode(&cdp(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "LLC", "SNAP", "CDP"]);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_fields(&p, "Ethernet", &[("Format", t("802.3"))]);
    assert_fields(
        &p,
        "LLC",
        &[("DSAP", n(0xaa)), ("SSAP", n(0xaa)), ("Control", n(3))],
    );
    assert_fields(&p, "SNAP", &[("OUI", n(0x0c)), ("Protocol_ID", n(0x2000))]);
    assert_fields(
        &p,
        "CDP",
        &[
            ("Version", n(2)),
            ("TTL", n(180)),
            ("Device_ID", t("sw1.example")),
            ("Addresses", t("192.0.2.7")),
            ("Port_ID", t("GigabitEthernet0/1")),
            ("Platform", t("cisco WS-C2960")),
            ("Native_VLAN", n(10)),
        ],
    );
}

#[test]
fn llc_snap_rfc1042_carries_ipv4() {
    let p = decode(&snap_ipv4(), LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "LLC", "SNAP", "IPv4", "UDP"]);
    assert_fields(&p, "SNAP", &[("OUI", n(0)), ("Protocol_ID", n(0x0800))]);
    assert_fields(
        &p,
        "UDP",
        &[("Destination_Port", n(7001)), ("Checksum_Valid", b(true))],
    );
}

#[test]
fn bad_tcp_checksum_is_flagged_not_dropped() {
    let mut bytes = tcp_segment(true, 1, Some(1), 502, "P", b"data");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4", "TCP"]);
    assert_eq!(field(&p, "TCP", "Checksum_Valid"), b(false));
    assert_eq!(field(&p, "IPv4", "Checksum_Valid"), b(true));
    assert_eq!(p.problems.len(), 1);
    assert_eq!(
        (p.problems[0].layer, p.problems[0].reason.as_str()),
        ("TCP", "bad checksum")
    );
}

#[test]
fn bad_ipv4_and_udp_and_icmp_checksums() {
    let mut bytes = udp(b"x", 1, 2);
    bytes[14 + 10] ^= 0x01; // IPv4 header checksum
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(field(&p, "IPv4", "Checksum_Valid"), b(false));
    assert_eq!(field(&p, "UDP", "Checksum_Valid"), b(true));

    let mut bytes = udp(b"xyz", 1, 2);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(field(&p, "UDP", "Checksum_Valid"), b(false));

    let mut bytes = icmp_echo_request();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(field(&p, "ICMP", "Checksum_Valid"), b(false));

    let mut bytes = icmpv6_ns();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(field(&p, "ICMPv6", "Checksum_Valid"), b(false));
    assert!(
        p.problems
            .iter()
            .any(|pr| pr.layer == "ICMPv6" && pr.reason == "bad checksum")
    );
}

#[test]
fn udp_zero_checksum_over_ipv4_means_none() {
    let mut bytes = udp(b"x", 1, 2);
    bytes[14 + 20 + 6] = 0;
    bytes[14 + 20 + 7] = 0;
    let p = decode(&bytes, LinkType::Ethernet);
    assert!(p.layer("UDP").unwrap().get("Checksum_Valid").is_none());
    assert!(p.problems.is_empty());
}

#[test]
fn truncated_inside_tcp_header() {
    let bytes = tcp_syn();
    let p = decode(&bytes[..14 + 20 + 10], LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4"]);
    assert_eq!(p.truncated_at(), Some("TCP"));
    assert_eq!(
        p.problems[0].reason,
        "truncated at TCP header: need 20 bytes, have 10"
    );
}

#[test]
fn snaplen_cut_payload_decodes_headers_and_skips_checksum() {
    let bytes = tcp_segment(true, 1, Some(1), 502, "P", &[b'x'; 200]);
    let p = decode(&bytes[..128], LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet", "IPv4", "TCP"]);
    assert_eq!(field(&p, "TCP", "Payload_Length"), n(200));
    assert!(p.layer("TCP").unwrap().get("Checksum_Valid").is_none());
    assert_eq!(field(&p, "IPv4", "Checksum_Valid"), b(true));
    assert_eq!(p.truncated_at(), Some("TCP"));
    assert_eq!(p.problems.len(), 1);
    assert_eq!(
        p.problems[0].reason,
        "truncated at TCP payload: need 200 bytes, have 74"
    );
}

#[test]
fn truncated_dns_and_ethernet() {
    let bytes = dns_udp_reply("example.com", &[[1, 2, 3, 4]]);
    let p = decode(&bytes[..14 + 20 + 8 + 20], LinkType::Ethernet);
    assert_eq!(p.truncated_at(), Some("DNS"));
    assert!(p.layer("UDP").unwrap().get("Checksum_Valid").is_none());

    let p = decode(&bytes[..9], LinkType::Ethernet);
    assert!(p.layers.is_empty());
    assert_eq!(
        p.problems[0].reason,
        "truncated at Ethernet header: need 14 bytes, have 9"
    );
}

#[test]
fn malformed_ip_is_a_problem_not_a_panic() {
    let mut bytes = tcp_syn();
    bytes[14] = 0x43; // IHL 3
    let p = decode(&bytes, LinkType::Ethernet);
    assert_eq!(names(&p), ["Ethernet"]);
    assert_eq!(p.problems[0].layer, "IPv4");
    assert!(!p.problems[0].truncated);
}

#[test]
fn every_prefix_of_every_fixture_decodes_without_panic() {
    for (name, bytes) in all() {
        let full = decode(&bytes, LinkType::Ethernet);
        assert!(full.problems.is_empty(), "{name}: {:?}", full.problems);
        for cut in 0..bytes.len() {
            let p = decode(&bytes[..cut], LinkType::Ethernet);
            assert!(
                p.truncated_at().is_some(),
                "{name} cut at {cut} bytes is not reported as truncated: {:?}",
                p
            );
        }
    }
}

#[test]
fn transport_checksums_can_be_left_unverified_for_offloaded_egress() {
    let mut bytes = tcp_segment(true, 1, Some(1), 502, "P", b"data");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let opts = netmon_packet::DecodeOptions {
        verify_transport_checksums: false,
    };
    let p = netmon_packet::decode_with(&bytes, LinkType::Ethernet, opts);
    assert!(p.layer("TCP").unwrap().get("Checksum_Valid").is_none());
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(field(&p, "IPv4", "Checksum_Valid"), b(true));
}

#[test]
fn every_prefix_as_raw_ip_decodes_without_panic() {
    for (name, bytes) in all() {
        if !matches!(bytes[12..14], [0x08, 0x00] | [0x86, 0xdd]) {
            continue;
        }
        let ip = &bytes[14..];
        assert!(decode(ip, LinkType::RawIp).problems.is_empty(), "{name}");
        for cut in 0..ip.len() {
            let p = decode(&ip[..cut], LinkType::RawIp);
            assert!(
                p.truncated_at().is_some(),
                "{name} as raw IP cut at {cut}: {p:?}"
            );
        }
    }
}
