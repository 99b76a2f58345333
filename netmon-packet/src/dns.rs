//! DNS messages over UDP and TCP, parsed with simple-dns.
//!
//! simple-dns rather than hickory-proto: it parses a borrowed buffer without allocating per
//! label, has no async or resolver machinery and almost no dependencies, which suits decoding
//! header snapshots at packet rate; hickory-proto is a full resolver toolkit with a far larger
//! dependency tree for the same wire parsing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use simple_dns::rdata::RData;

use crate::packet::{Layer, Packet};

/// Ports whose payload is tried as DNS (DNS and multicast DNS).
pub(crate) fn is_dns_port(port: u16) -> bool {
    port == 53 || port == 5353
}

/// The parts of a DNS message netmon uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsMessage {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub questions: Vec<DnsQuestion>,
    pub answers: Vec<DnsAnswer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsQuestion {
    pub name: String,
    pub qtype: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsAnswer {
    pub name: String,
    pub ttl: u32,
    pub data: DnsData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DnsData {
    Addr(IpAddr),
    Cname(String),
    /// Another record type, by number.
    Other(u16),
}

/// Parse a DNS message (no TCP length prefix).
pub fn parse(bytes: &[u8]) -> Result<DnsMessage, String> {
    let p = simple_dns::Packet::parse(bytes).map_err(|e| e.to_string())?;
    let questions = p
        .questions
        .iter()
        .map(|q| DnsQuestion {
            name: q.qname.to_string(),
            qtype: u16::from(q.qtype),
        })
        .collect();
    let answers = p
        .answers
        .iter()
        .map(|rr| DnsAnswer {
            name: rr.name.to_string(),
            ttl: rr.ttl,
            data: match &rr.rdata {
                RData::A(a) => DnsData::Addr(Ipv4Addr::from(a.address).into()),
                RData::AAAA(a) => DnsData::Addr(Ipv6Addr::from(a.address).into()),
                RData::CNAME(c) => DnsData::Cname(c.0.to_string()),
                other => DnsData::Other(u16::from(other.type_code())),
            },
        })
        .collect();
    Ok(DnsMessage {
        id: p.id(),
        response: p.has_flags(simple_dns::PacketFlag::RESPONSE),
        opcode: p.opcode() as u8,
        rcode: p.rcode() as u8,
        questions,
        answers,
    })
}

/// Decode a DNS message carried by UDP; `full_len` is its length on the wire, which exceeds
/// `payload.len()` when the snap length cut it.
pub(crate) fn over_udp(pkt: &mut Packet, payload: &[u8], full_len: usize) {
    add(pkt, payload, "UDP", full_len);
}

/// Decode a DNS message carried by TCP (RFC 1035 4.2.2: a two-byte length prefix). Only a
/// segment that starts a message is decoded; reassembly across segments is out of scope.
pub(crate) fn over_tcp(pkt: &mut Packet, payload: &[u8], full_len: usize) {
    if full_len < 2 {
        return;
    }
    if payload.len() < 2 {
        return pkt.truncated("DNS", "length prefix", 2, payload.len());
    }
    let len = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
    let body = &payload[2..];
    if len > full_len - 2 {
        // The message continues in later segments: not decodable from this one.
        return pkt.problem(
            "DNS",
            format!("message of {len} bytes spans several TCP segments"),
        );
    }
    add(pkt, &body[..len.min(body.len())], "TCP", len);
}

fn add(pkt: &mut Packet, msg: &[u8], transport: &str, full_len: usize) {
    match parse(msg) {
        Ok(m) => {
            pkt.layers.push(layer(&m, transport));
            pkt.dns = Some(m);
            if msg.len() < full_len {
                pkt.truncated("DNS", "message", full_len, msg.len());
            }
        }
        Err(_) if msg.len() < full_len => pkt.truncated("DNS", "message", full_len, msg.len()),
        Err(e) => pkt.problem("DNS", format!("malformed message: {e}")),
    }
}

fn layer(m: &DnsMessage, transport: &str) -> Layer {
    let mut l = Layer::new("DNS");
    l.push("Transaction_ID", m.id);
    l.push("Response", m.response);
    l.push("Opcode", m.opcode);
    l.push("Rcode", m.rcode);
    l.push("Transport", transport);
    l.push("Question_Count", m.questions.len());
    l.push("Answer_Count", m.answers.len());
    if let Some(q) = m.questions.first() {
        l.push("Query_Name", q.name.clone());
        l.push("Query_Type", q.qtype);
    }
    if !m.answers.is_empty() {
        let answers: Vec<String> = m.answers.iter().map(answer_text).collect();
        l.push("Answers", answers.join(", "));
    }
    l
}

pub(crate) fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

fn answer_text(a: &DnsAnswer) -> String {
    match &a.data {
        DnsData::Addr(IpAddr::V4(ip)) => format!("{} A {ip}", a.name),
        DnsData::Addr(IpAddr::V6(ip)) => format!("{} AAAA {ip}", a.name),
        DnsData::Cname(c) => format!("{} CNAME {c}", a.name),
        DnsData::Other(t) => format!("{} {}", a.name, type_name(*t)),
    }
}
