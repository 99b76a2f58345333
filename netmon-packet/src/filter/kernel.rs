//! The part of a filter the kernel side can evaluate before copying a packet: one protocol,
//! one port, one address or prefix, all AND-ed. The lead maps it onto a BPF map.

use ipnet::IpNet;

use super::{Node, Op, Target};
use crate::value::Value;

/// Which end of the flow a port or address test reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
    Either,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMatch {
    pub port: u16,
    pub side: Side,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrMatch {
    pub net: IpNet,
    pub side: Side,
}

/// Tests that are all AND-ed; `None` fields are not tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelFilter {
    /// 4 or 6 when the filter names one IP version.
    pub ip_version: Option<u8>,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 2 IGMP).
    pub protocol: Option<u8>,
    pub port: Option<PortMatch>,
    pub addr: Option<AddrMatch>,
}

pub(super) fn extract(node: &Node) -> Option<KernelFilter> {
    let mut k = KernelFilter::default();
    let parts: &[Node] = match node {
        Node::And(v) => v,
        other => std::slice::from_ref(other),
    };
    for part in parts {
        add(&mut k, part)?;
    }
    if k == KernelFilter::default() {
        return None;
    }
    Some(k)
}

fn set<T: PartialEq>(slot: &mut Option<T>, v: T) -> Option<()> {
    match slot {
        Some(old) if *old != v => None,
        _ => {
            *slot = Some(v);
            Some(())
        }
    }
}

fn add(k: &mut KernelFilter, node: &Node) -> Option<()> {
    match node {
        Node::True => Some(()),
        Node::And(v) => v.iter().try_for_each(|n| add(k, n)),
        Node::Has(layers) => match layers.as_slice() {
            ["IPv4", "IPv6"] => Some(()),
            ["IPv4"] => set(&mut k.ip_version, 4),
            ["IPv6"] => set(&mut k.ip_version, 6),
            ["TCP"] => set(&mut k.protocol, 6),
            ["UDP"] => set(&mut k.protocol, 17),
            ["ICMP"] => set(&mut k.protocol, 1),
            ["ICMPv6"] => set(&mut k.protocol, 58),
            ["IGMP"] => set(&mut k.protocol, 2),
            _ => None,
        },
        Node::Cmp(Target::Fields(pairs), Op::Eq, Value::Num(n)) => {
            let proto = match pairs.first()?.0 {
                "TCP" => 6,
                "UDP" => 17,
                _ => return None,
            };
            let side = side(pairs, "Source_Port", "Destination_Port")?;
            set(&mut k.protocol, proto)?;
            set(
                &mut k.port,
                PortMatch {
                    port: u16::try_from(*n).ok()?,
                    side,
                },
            )
        }
        Node::Cmp(Target::Fields(pairs), Op::Eq, Value::Ip(ip)) => {
            let side = addr_side(pairs, k)?;
            set(&mut k.ip_version, if ip.is_ipv4() { 4 } else { 6 })?;
            set(
                &mut k.addr,
                AddrMatch {
                    net: IpNet::from(*ip),
                    side,
                },
            )
        }
        Node::In(Target::Fields(pairs), net) => {
            let side = addr_side(pairs, k)?;
            // A prefix of one family only ever matches that IP version.
            set(&mut k.ip_version, if net.addr().is_ipv4() { 4 } else { 6 })?;
            set(&mut k.addr, AddrMatch { net: *net, side })
        }
        _ => None,
    }
}

fn addr_side(pairs: &[(&str, &str)], k: &mut KernelFilter) -> Option<Side> {
    let layers: Vec<&str> = pairs.iter().map(|(l, _)| *l).collect();
    if layers.iter().all(|l| *l == "IPv4") {
        set(&mut k.ip_version, 4)?;
    } else if layers.iter().all(|l| *l == "IPv6") {
        set(&mut k.ip_version, 6)?;
    } else if !layers.iter().all(|l| *l == "IPv4" || *l == "IPv6") {
        return None;
    }
    side(pairs, "Source_Address", "Destination_Address")
}

fn side(pairs: &[(&str, &str)], src: &str, dst: &str) -> Option<Side> {
    let has = |f: &str| pairs.iter().any(|(_, x)| *x == f);
    if pairs.iter().any(|(_, x)| *x != src && *x != dst) {
        return None;
    }
    match (has(src), has(dst)) {
        (true, true) => Some(Side::Either),
        (true, false) => Some(Side::Source),
        (false, true) => Some(Side::Destination),
        _ => None,
    }
}
