//! The one-line and JSON forms of every fixture.

mod fixtures;

use netmon_packet::summary::{json_line, line};
use netmon_packet::{Direction, LinkType, PacketMeta, decode};

fn meta(len: usize) -> PacketMeta {
    PacketMeta {
        // 2026-11-25 12:34:56.789012 UTC
        ts_ns: 1_795_610_096_789_012_345,
        ifindex: 2,
        ifname: "veth0".into(),
        direction: Direction::Egress,
        pid: Some(1234),
        comm: Some("curl".into()),
        cookie: Some(77),
        orig_len: len as u32,
        snap_len: len as u32,
    }
}

#[test]
fn one_line_per_fixture() {
    let lines: Vec<String> = fixtures::all()
        .iter()
        .map(|(name, bytes)| {
            format!(
                "{name}: {}",
                line(&decode(bytes, LinkType::Ethernet), &meta(bytes.len()))
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn problems_are_shown_on_the_line() {
    let mut bytes = fixtures::tcp_segment(true, 1, Some(1), 502, "P", &[b'x'; 300]);
    bytes[14 + 10] ^= 1;
    let mut m = meta(bytes.len());
    m.pid = None;
    m.comm = None;
    m.direction = Direction::Ingress;
    insta::assert_snapshot!(line(&decode(&bytes[..100], LinkType::Ethernet), &m));
}

#[test]
fn json_line_has_meta_layers_and_problems() {
    let bytes = fixtures::tcp_syn();
    let json: serde_json::Value = serde_json::from_str(&json_line(
        &decode(&bytes, LinkType::Ethernet),
        &meta(bytes.len()),
    ))
    .unwrap();
    assert_eq!(json["pid"], 1234);
    assert_eq!(json["comm"], "curl");
    assert_eq!(json["direction"], "egress");
    assert_eq!(json["layers"][2]["layer"], "TCP");
    assert_eq!(json["layers"][2]["fields"]["MSS"], 1460);
    assert_eq!(json["layers"][1]["fields"]["Source_Address"], "10.0.0.1");
    assert_eq!(
        json["layers"][0]["fields"]["Source_MAC"],
        "02:00:00:00:00:0a"
    );
    insta::assert_json_snapshot!(json);
}
