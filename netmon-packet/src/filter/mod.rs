//! Packet filters: the seed's nested JSON key-value format and an expression syntax, both
//! compiled to one tree evaluated against a decoded packet and its metadata.
//!
//! ```text
//! {"IPv4":{"Source_Address":"127.0.0.1"},"TCP":{"Destination_Port":5000}}
//! [{"AF_Packet":{"Interface_Name":"lo"},"IPv4":{}}, {"ARP":{}}]          (OR-ed)
//! tcp.dport == 5000 and ip.src in 10.0.0.0/8 and pid == 1234
//! (udp or icmp) and not iface == "lo"
//! ```

mod expr;
mod fields;
mod json;
mod kernel;

use std::cmp::Ordering;
use std::fmt;

use ipnet::IpNet;

pub use kernel::{AddrMatch, KernelFilter, PortMatch, Side};

use crate::meta::PacketMeta;
use crate::packet::Packet;
use crate::value::Value;
use fields::MetaField;

/// A compiled filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    node: Node,
}

/// A filter that could not be compiled: one line, with the column (1-based, in characters)
/// for the expression syntax.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FilterError {
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(f, "column {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl FilterError {
    pub(crate) fn at(column: usize, message: impl Into<String>) -> Self {
        FilterError {
            column: Some(column),
            message: message.into(),
        }
    }
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        FilterError {
            column: None,
            message: message.into(),
        }
    }
}

impl Filter {
    /// A JSON filter when the text starts with `{` or `[`, an expression otherwise.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        match text.trim_start().chars().next() {
            Some('{' | '[') => Filter::parse_json(text),
            _ => Filter::parse_expr(text),
        }
    }

    /// The expression syntax: `tcp.dport == 5000 and ip.src in 10.0.0.0/8`.
    pub fn parse_expr(text: &str) -> Result<Filter, FilterError> {
        expr::parse(text).map(|node| Filter { node })
    }

    /// The nested JSON format; an array holds several filters, any of which may match.
    pub fn parse_json(text: &str) -> Result<Filter, FilterError> {
        json::parse(text).map(|node| Filter { node })
    }

    /// Whether the packet passes.
    pub fn matches(&self, pkt: &Packet, meta: &PacketMeta) -> bool {
        self.node.eval(pkt, meta)
    }

    /// The filter as protocol/port/address tests the kernel can evaluate, when the whole
    /// filter has that shape; `None` means user space must evaluate it.
    pub fn kernel_part(&self) -> Option<KernelFilter> {
        kernel::extract(&self.node)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// What a comparison reads: any of several (layer, field) pairs, or a metadata field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Target {
    Fields(Vec<(&'static str, &'static str)>),
    Meta(MetaField),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    True,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// Any of these layers is present.
    Has(Vec<&'static str>),
    Cmp(Target, Op, Value),
    In(Target, IpNet),
}

impl Node {
    fn eval(&self, pkt: &Packet, meta: &PacketMeta) -> bool {
        match self {
            Node::True => true,
            Node::And(v) => v.iter().all(|n| n.eval(pkt, meta)),
            Node::Or(v) => v.iter().any(|n| n.eval(pkt, meta)),
            Node::Not(n) => !n.eval(pkt, meta),
            Node::Has(layers) => pkt.layers.iter().any(|l| layers.contains(&l.name)),
            Node::Cmp(target, Op::Ne, lit) => {
                // "Present and none equal": `tcp.port != 80` must not match a packet whose
                // other port differs, nor a packet without TCP.
                let mut present = false;
                let any_eq = values(target, pkt, meta, |v| {
                    present = true;
                    compare(v, lit) == Some(Ordering::Equal)
                });
                present && !any_eq
            }
            Node::Cmp(target, op, lit) => values(target, pkt, meta, |v| {
                compare(v, lit).is_some_and(|o| match op {
                    Op::Eq => o == Ordering::Equal,
                    Op::Lt => o == Ordering::Less,
                    Op::Le => o != Ordering::Greater,
                    Op::Gt => o == Ordering::Greater,
                    Op::Ge => o != Ordering::Less,
                    Op::Ne => unreachable!("handled above"),
                })
            }),
            Node::In(target, net) => values(target, pkt, meta, |v| {
                v.as_ip().is_some_and(|ip| net.contains(&ip))
            }),
        }
    }
}

/// Calls `test` on each value the target reads until one passes; returns whether one did.
fn values(
    target: &Target,
    pkt: &Packet,
    meta: &PacketMeta,
    mut test: impl FnMut(&Value) -> bool,
) -> bool {
    match target {
        Target::Meta(m) => m.get(meta).is_some_and(|v| test(&v)),
        Target::Fields(pairs) => pkt.layers.iter().any(|l| {
            pairs
                .iter()
                .filter(|(layer, _)| *layer == l.name)
                .any(|(_, field)| l.get(field).is_some_and(&mut test))
        }),
    }
}

fn compare(v: &Value, lit: &Value) -> Option<Ordering> {
    match (v, lit) {
        (Value::Num(a), Value::Num(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Ip(a), Value::Ip(b)) => Some(a.cmp(b)),
        (Value::Mac(a), Value::Mac(b)) => Some(a.0.cmp(&b.0)),
        // Case-insensitive (DNS names, interface names typed by hand), without allocating.
        (Value::Text(a), Value::Text(b)) => Some(
            a.bytes()
                .map(|c| c.to_ascii_lowercase())
                .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
        ),
        _ => None,
    }
}

/// Parse a literal for a field of `kind`; the error says what was expected.
pub(crate) fn literal(kind: fields::Kind, text: &str) -> Result<Value, String> {
    use fields::Kind;
    match kind {
        Kind::Num => parse_num(text)
            .map(Value::Num)
            .ok_or_else(|| format!("'{text}' is not a number")),
        Kind::Bool => match text {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("'{text}' is not true or false")),
        },
        Kind::Ip => text
            .parse()
            .map(Value::Ip)
            .map_err(|_| format!("'{text}' is not an IP address")),
        Kind::Mac => text
            .parse()
            .map(Value::Mac)
            .map_err(|()| format!("'{text}' is not a MAC address (aa:bb:cc:dd:ee:ff)")),
        Kind::Text => Ok(Value::Text(text.to_string())),
    }
}

/// Direction may be written in/out or ingress/egress; the packet side uses in/out.
pub(crate) fn normalize(target: &Target, text: String) -> String {
    match (target, text.to_ascii_lowercase().as_str()) {
        (Target::Meta(MetaField::Direction), "ingress") => "in".into(),
        (Target::Meta(MetaField::Direction), "egress") => "out".into(),
        _ => text,
    }
}

fn parse_num(t: &str) -> Option<u64> {
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}
