//! One line per packet like tcpdump's, and the JSON object for `--json` lines.

use std::fmt::Write as _;

use serde::Serialize;

use crate::dns::type_name;
use crate::meta::PacketMeta;
use crate::packet::{Layer, Packet, Problem};
use crate::value::Value;

/// `12:00:00.000001 eth0 out 1234/curl | IPv4 10.0.0.1 > 10.0.0.2 ttl 64 | TCP ...`
pub fn line(pkt: &Packet, meta: &PacketMeta) -> String {
    let mut s = String::with_capacity(160);
    let secs = meta.ts_ns / 1_000_000_000;
    let micros = (meta.ts_ns % 1_000_000_000) / 1000;
    let day = secs % 86_400;
    let _ = write!(
        s,
        "{:02}:{:02}:{:02}.{micros:06} {} {} ",
        day / 3600,
        day % 3600 / 60,
        day % 60,
        meta.ifname,
        meta.direction.as_str()
    );
    match (meta.pid, &meta.comm) {
        (Some(pid), Some(comm)) => {
            let _ = write!(s, "{pid}/{comm}");
        }
        (Some(pid), None) => {
            let _ = write!(s, "{pid}");
        }
        _ => s.push('-'),
    }
    s.push_str(&layers(pkt));
    s
}

/// Only the layers and problems: ` | IPv4 … | TCP … ! truncated at …`.
pub fn layers(pkt: &Packet) -> String {
    let mut s = String::with_capacity(128);
    for l in &pkt.layers {
        s.push_str(" | ");
        layer(&mut s, l);
    }
    for p in &pkt.problems {
        if p.truncated {
            // The reason already names the layer ("truncated at TCP payload: ...").
            let _ = write!(s, " ! {}", p.reason);
        } else {
            let _ = write!(s, " ! {}: {}", p.layer, p.reason);
        }
    }
    s
}

/// The object written per packet by `--json`: the metadata fields, then layers and problems.
#[derive(Serialize)]
pub struct JsonRecord<'a> {
    pub ts_ns: u64,
    pub ifindex: u32,
    pub ifname: &'a str,
    pub direction: crate::meta::Direction,
    pub pid: Option<u32>,
    pub comm: Option<&'a str>,
    pub cookie: Option<u64>,
    pub orig_len: u32,
    pub snap_len: u32,
    pub layers: &'a [Layer],
    pub problems: &'a [Problem],
    pub summary: String,
}

/// One JSON line (no trailing newline).
pub fn json_line(pkt: &Packet, meta: &PacketMeta) -> String {
    // Fields spelled out rather than `#[serde(flatten)]`, which buffers and was 5x slower.
    let rec = JsonRecord {
        ts_ns: meta.ts_ns,
        ifindex: meta.ifindex,
        ifname: &meta.ifname,
        direction: meta.direction,
        pid: meta.pid,
        comm: meta.comm.as_deref(),
        cookie: meta.cookie,
        orig_len: meta.orig_len,
        snap_len: meta.snap_len,
        layers: &pkt.layers,
        problems: &pkt.problems,
        summary: layers(pkt).trim_start_matches(" | ").to_string(),
    };
    serde_json::to_string(&rec).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn get<'a>(l: &'a Layer, f: &str) -> Option<&'a Value> {
    l.get(f)
}

fn num(l: &Layer, f: &str) -> u64 {
    l.num(f).unwrap_or(0)
}

fn flag(l: &Layer, f: &str) -> bool {
    l.get(f).and_then(Value::as_bool).unwrap_or(false)
}

/// Writes " name value" for each field present.
fn opt(s: &mut String, l: &Layer, pairs: &[(&str, &str)]) {
    for (label, field) in pairs {
        if let Some(v) = get(l, field) {
            let _ = write!(s, " {label} {v}");
        }
    }
}

fn show(l: &Layer, f: &str) -> String {
    get(l, f).map_or_else(|| "?".to_string(), ToString::to_string)
}

fn bad_checksum(s: &mut String, l: &Layer) {
    if get(l, "Checksum_Valid") == Some(&Value::Bool(false)) {
        s.push_str(" bad-cksum");
    }
}

fn layer(s: &mut String, l: &Layer) {
    let n = l.name;
    match n {
        "Ethernet" => {
            if let Some(len) = get(l, "Length") {
                let _ = write!(
                    s,
                    "802.3 {} > {} len {len}",
                    show(l, "Source_MAC"),
                    show(l, "Destination_MAC")
                );
            } else {
                let _ = write!(
                    s,
                    "Ethernet {} > {} type 0x{:04x}",
                    show(l, "Source_MAC"),
                    show(l, "Destination_MAC"),
                    num(l, "EtherType")
                );
            }
        }
        "VLAN" => {
            let _ = write!(s, "VLAN {} pcp {}", num(l, "VLAN_ID"), num(l, "Priority"));
        }
        "LLC" => {
            let _ = write!(
                s,
                "LLC dsap 0x{:02x} ssap 0x{:02x} ctl 0x{:02x}",
                num(l, "DSAP"),
                num(l, "SSAP"),
                num(l, "Control")
            );
        }
        "SNAP" => {
            let _ = write!(
                s,
                "SNAP oui 0x{:06x} pid 0x{:04x}",
                num(l, "OUI"),
                num(l, "Protocol_ID")
            );
        }
        "ARP" => match num(l, "Operation") {
            1 => {
                let _ = write!(
                    s,
                    "ARP who-has {} tell {}",
                    show(l, "Target_IP"),
                    show(l, "Sender_IP")
                );
            }
            2 => {
                let _ = write!(
                    s,
                    "ARP reply {} is-at {}",
                    show(l, "Sender_IP"),
                    show(l, "Sender_MAC")
                );
            }
            op => {
                let _ = write!(
                    s,
                    "ARP op {op} {} > {}",
                    show(l, "Sender_IP"),
                    show(l, "Target_IP")
                );
            }
        },
        "IPv4" => {
            let _ = write!(
                s,
                "IPv4 {} > {} ttl {} id {} len {}",
                show(l, "Source_Address"),
                show(l, "Destination_Address"),
                num(l, "TTL"),
                num(l, "Identification"),
                num(l, "Total_Length")
            );
            if flag(l, "Dont_Fragment") {
                s.push_str(" DF");
            }
            if flag(l, "More_Fragments") || num(l, "Fragment_Offset") != 0 {
                let _ = write!(
                    s,
                    " frag off {}{}",
                    num(l, "Fragment_Offset"),
                    if flag(l, "More_Fragments") { "+" } else { "" }
                );
            }
            opt(s, l, &[("options", "Options")]);
            bad_checksum(s, l);
        }
        "IPv6" => {
            let _ = write!(
                s,
                "IPv6 {} > {} hlim {} next {} len {}",
                show(l, "Source_Address"),
                show(l, "Destination_Address"),
                num(l, "Hop_Limit"),
                num(l, "Next_Header"),
                num(l, "Payload_Length")
            );
        }
        "IPv6_HopByHop" | "IPv6_DestOpts" => {
            let _ = write!(s, "{} {}", &n[5..], show(l, "Options"));
        }
        "IPv6_Routing" => {
            let _ = write!(
                s,
                "Routing type {} left {}",
                num(l, "Routing_Type"),
                num(l, "Segments_Left")
            );
        }
        "IPv6_Fragment" => {
            let _ = write!(
                s,
                "Fragment id {} off {}{}",
                num(l, "Identification"),
                num(l, "Fragment_Offset"),
                if flag(l, "More_Fragments") { "+" } else { "" }
            );
        }
        "TCP" => {
            let _ = write!(
                s,
                "TCP {} > {} [{}] seq {}",
                num(l, "Source_Port"),
                num(l, "Destination_Port"),
                show(l, "Flags"),
                num(l, "Sequence_Number")
            );
            if flag(l, "ACK") {
                let _ = write!(s, " ack {}", num(l, "Acknowledgment_Number"));
            }
            let _ = write!(s, " win {}", num(l, "Window_Size"));
            opt(s, l, &[("mss", "MSS"), ("wscale", "Window_Scale")]);
            if flag(l, "SACK_Permitted") {
                s.push_str(" sackOK");
            }
            opt(s, l, &[("sack", "SACK_Blocks"), ("ts", "Timestamp_Value")]);
            let _ = write!(s, " len {}", num(l, "Payload_Length"));
            bad_checksum(s, l);
        }
        "UDP" => {
            let _ = write!(
                s,
                "UDP {} > {} len {}",
                num(l, "Source_Port"),
                num(l, "Destination_Port"),
                num(l, "Payload_Length")
            );
            bad_checksum(s, l);
        }
        "ICMP" => {
            let (t, c) = (num(l, "Type"), num(l, "Code"));
            match t {
                0 => s.push_str("ICMP echo reply"),
                8 => s.push_str("ICMP echo request"),
                3 => {
                    let _ = write!(s, "ICMP unreachable code {c}");
                }
                11 => {
                    let _ = write!(s, "ICMP time exceeded code {c}");
                }
                _ => {
                    let _ = write!(s, "ICMP type {t} code {c}");
                }
            }
            opt(
                s,
                l,
                &[("id", "Identifier"), ("seq", "Sequence"), ("gw", "Gateway")],
            );
            bad_checksum(s, l);
        }
        "ICMPv6" => {
            let (t, c) = (num(l, "Type"), num(l, "Code"));
            match t {
                128 => s.push_str("ICMPv6 echo request"),
                129 => s.push_str("ICMPv6 echo reply"),
                133 => s.push_str("ICMPv6 router solicitation"),
                134 => {
                    let _ = write!(
                        s,
                        "ICMPv6 router advertisement lifetime {}",
                        num(l, "Router_Lifetime")
                    );
                }
                135 => {
                    let _ = write!(
                        s,
                        "ICMPv6 neighbor solicitation who-has {}",
                        show(l, "Target_Address")
                    );
                }
                136 => {
                    let _ = write!(
                        s,
                        "ICMPv6 neighbor advertisement {}",
                        show(l, "Target_Address")
                    );
                    let fl: String = [("Router", 'R'), ("Solicited", 'S'), ("Override", 'O')]
                        .iter()
                        .filter(|(f, _)| flag(l, f))
                        .map(|(_, c)| *c)
                        .collect();
                    if !fl.is_empty() {
                        let _ = write!(s, " [{fl}]");
                    }
                }
                137 => {
                    let _ = write!(s, "ICMPv6 redirect {}", show(l, "Target_Address"));
                }
                _ => {
                    let _ = write!(s, "ICMPv6 type {t} code {c}");
                }
            }
            opt(
                s,
                l,
                &[
                    ("id", "Identifier"),
                    ("seq", "Sequence"),
                    ("src-lladdr", "Source_Link_Address"),
                    ("tgt-lladdr", "Target_Link_Address"),
                    ("prefix", "Prefix"),
                    ("/", "Prefix_Length"),
                    ("mtu", "MTU"),
                ],
            );
            bad_checksum(s, l);
        }
        "IGMP" => {
            let kind = match num(l, "Type") {
                0x11 => "query",
                0x12 | 0x16 | 0x22 => "report",
                0x17 => "leave",
                _ => "type",
            };
            let _ = write!(s, "IGMPv{} {kind}", num(l, "Version"));
            if kind == "type" {
                let _ = write!(s, " {}", num(l, "Type"));
            }
            opt(
                s,
                l,
                &[("group", "Group_Address"), ("records", "Number_Of_Records")],
            );
            bad_checksum(s, l);
        }
        "DNS" => {
            let resp = flag(l, "Response");
            let _ = write!(
                s,
                "DNS {} 0x{:04x}",
                if resp { "response" } else { "query" },
                num(l, "Transaction_ID")
            );
            if let Some(q) = get(l, "Query_Name") {
                let _ = write!(s, " {} {q}", type_name(num(l, "Query_Type") as u16));
            }
            if resp {
                let rcode = num(l, "Rcode");
                if rcode != 0 {
                    let _ = write!(s, " rcode {rcode}");
                }
                opt(s, l, &[("->", "Answers")]);
            }
        }
        "LLDP" => {
            s.push_str("LLDP");
            opt(
                s,
                l,
                &[
                    ("chassis", "Chassis_ID"),
                    ("port", "Port_ID"),
                    ("ttl", "TTL"),
                    ("name", "System_Name"),
                ],
            );
        }
        "CDP" => {
            let _ = write!(s, "CDPv{}", num(l, "Version"));
            opt(
                s,
                l,
                &[
                    ("device", "Device_ID"),
                    ("port", "Port_ID"),
                    ("platform", "Platform"),
                    ("addr", "Addresses"),
                ],
            );
        }
        other => s.push_str(other),
    }
}
