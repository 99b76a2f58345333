//! Cross-check against an independent decoder: tshark reads a pcapng of every fixture and its
//! field values must equal ours. Skipped (with a message) when tshark is not installed.

mod fixtures;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use netmon_packet::pcapng::PcapngWriter;
use netmon_packet::{Direction, LinkType, Packet, PacketMeta, Value, decode};

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// (tshark field, our layer, our field)
const MAP: &[(&str, &str, &str)] = &[
    ("eth.src", "Ethernet", "Source_MAC"),
    ("eth.dst", "Ethernet", "Destination_MAC"),
    ("vlan.id", "VLAN", "VLAN_ID"),
    ("llc.dsap", "LLC", "DSAP"),
    ("llc.pid", "SNAP", "Protocol_ID"),
    ("arp.opcode", "ARP", "Operation"),
    ("arp.src.hw_mac", "ARP", "Sender_MAC"),
    ("arp.dst.proto_ipv4", "ARP", "Target_IP"),
    ("ip.src", "IPv4", "Source_Address"),
    ("ip.dst", "IPv4", "Destination_Address"),
    ("ip.ttl", "IPv4", "TTL"),
    ("ip.len", "IPv4", "Total_Length"),
    ("ipv6.src", "IPv6", "Source_Address"),
    ("ipv6.dst", "IPv6", "Destination_Address"),
    ("ipv6.hlim", "IPv6", "Hop_Limit"),
    ("ipv6.plen", "IPv6", "Payload_Length"),
    ("ipv6.fraghdr.ident", "IPv6_Fragment", "Identification"),
    ("ipv6.routing.type", "IPv6_Routing", "Routing_Type"),
    ("tcp.srcport", "TCP", "Source_Port"),
    ("tcp.dstport", "TCP", "Destination_Port"),
    ("tcp.seq_raw", "TCP", "Sequence_Number"),
    ("tcp.window_size_value", "TCP", "Window_Size"),
    ("tcp.len", "TCP", "Payload_Length"),
    ("tcp.options.mss_val", "TCP", "MSS"),
    ("tcp.options.wscale.shift", "TCP", "Window_Scale"),
    ("udp.srcport", "UDP", "Source_Port"),
    ("udp.dstport", "UDP", "Destination_Port"),
    ("udp.length", "UDP", "Length"),
    ("icmp.type", "ICMP", "Type"),
    ("icmp.ident", "ICMP", "Identifier"),
    ("icmp.seq", "ICMP", "Sequence"),
    ("icmpv6.type", "ICMPv6", "Type"),
    ("icmpv6.nd.ns.target_address", "ICMPv6", "Target_Address"),
    ("icmpv6.nd.na.target_address", "ICMPv6", "Target_Address"),
    ("icmpv6.nd.na.flag.s", "ICMPv6", "Solicited"),
    ("icmpv6.opt.src_linkaddr", "ICMPv6", "Source_Link_Address"),
    (
        "icmpv6.opt.target_linkaddr",
        "ICMPv6",
        "Target_Link_Address",
    ),
    ("igmp.version", "IGMP", "Version"),
    ("icmp.checksum", "ICMP", "Checksum"),
    ("tcp.checksum", "TCP", "Checksum"),
    ("tcp.ack_raw", "TCP", "Acknowledgment_Number"),
    ("ip.id", "IPv4", "Identification"),
    ("ip.flags.df", "IPv4", "Dont_Fragment"),
    ("igmp.type", "IGMP", "Type"),
    ("igmp.maddr", "IGMP", "Group_Address"),
    ("dns.id", "DNS", "Transaction_ID"),
    ("dns.qry.name", "DNS", "Query_Name"),
    ("dns.count.answers", "DNS", "Answer_Count"),
    ("lldp.tlv.system.name", "LLDP", "System_Name"),
    ("lldp.time_to_live", "LLDP", "TTL"),
    ("cdp.deviceid", "CDP", "Device_ID"),
    ("cdp.platform", "CDP", "Platform"),
    ("cdp.native_vlan", "CDP", "Native_VLAN"),
    ("ip.checksum.status", "IPv4", "Checksum_Valid"),
    ("tcp.checksum.status", "TCP", "Checksum_Valid"),
    ("udp.checksum.status", "UDP", "Checksum_Valid"),
    ("icmp.checksum.status", "ICMP", "Checksum_Valid"),
    ("icmpv6.checksum.status", "ICMPv6", "Checksum_Valid"),
    ("igmp.checksum.status", "IGMP", "Checksum_Valid"),
];

fn num(t: &str) -> Option<u64> {
    match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}

/// Whether tshark's text for a field means the same as our value.
fn same(theirs: &str, field: &str, ours: &Value) -> bool {
    if field.ends_with("checksum.status") {
        // tshark: 0 bad, 1 good, 2 unverified.
        return match theirs {
            "0" => ours == &Value::Bool(false),
            "1" => ours == &Value::Bool(true),
            _ => false,
        };
    }
    match ours {
        Value::Num(n) => num(theirs) == Some(*n),
        Value::Bool(b) => (theirs == "1" || theirs == "True") == *b,
        Value::Ip(ip) => theirs.parse::<IpAddr>().ok() == Some(*ip),
        Value::Mac(m) => theirs.eq_ignore_ascii_case(&m.to_string()),
        Value::Text(t) => theirs == t,
    }
}

fn ours<'a>(p: &'a Packet, layer: &str, field: &str) -> Option<&'a Value> {
    p.layer(layer)?.get(field)
}

#[test]
fn tshark_decodes_the_same_values() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("skipping test - tshark not on PATH (scripts/setup.sh installs it)");
        return;
    }
    let mut packets = fixtures::all();
    let mut bad = fixtures::tcp_segment(true, 5, Some(9), 100, "P", b"abc");
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    packets.push(("tcp_bad_checksum", bad));

    let file =
        TempFile(std::env::temp_dir().join(format!("nmpkt-tshark-{}.pcapng", std::process::id())));
    let mut w = PcapngWriter::new(Vec::new(), 65535).unwrap();
    for (_, bytes) in &packets {
        let meta = PacketMeta {
            ts_ns: 1,
            ifindex: 1,
            ifname: "nmpkt0".into(),
            direction: Direction::Ingress,
            pid: None,
            comm: None,
            cookie: None,
            orig_len: bytes.len() as u32,
            snap_len: bytes.len() as u32,
        };
        w.write_packet(&meta, LinkType::Ethernet, bytes).unwrap();
    }
    std::fs::write(&file.0, w.into_inner()).unwrap();

    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&file.0)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]);
    for proto in ["ip", "tcp", "udp"] {
        cmd.args(["-o", &format!("{proto}.check_checksum:TRUE")]);
    }
    for (f, _, _) in MAP {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), packets.len());

    let mut compared = 0;
    let mut mismatches = Vec::new();
    for ((name, bytes), row) in packets.iter().zip(rows) {
        let p = decode(bytes, LinkType::Ethernet);
        for ((field, layer, ofield), theirs) in MAP.iter().zip(row.split('|')) {
            if theirs.is_empty() {
                continue;
            }
            compared += 1;
            match ours(&p, layer, ofield) {
                Some(v) if same(theirs, field, v) => {}
                other => mismatches.push(format!(
                    "{name}: {field}={theirs} but {layer}.{ofield}={other:?}"
                )),
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(compared > 100, "only {compared} values compared");
    eprintln!("tshark agreed on {compared} field values");
}
