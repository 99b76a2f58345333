//! ARP, Traffic (`dev`) and Routing (`route`, `ipv6_route`).
use std::collections::HashMap;

use super::{bytes, combine, opt_rate, part};
use crate::procnet::NetSnapshot;
use crate::tui::data::TuiData;
use crate::tui::view::{Cell, Column, Row, TabView, num, text};

pub(super) const ARP_COLUMNS: &[Column] = &[
    text("IP ADDRESS", 16),
    text("HW TYPE", 8),
    text("FLAGS", 6),
    text("STATE", 11),
    text("HW ADDRESS", 18),
    text("DEVICE", 16),
];

pub(super) fn arp(net: &NetSnapshot, _: &TuiData) -> TabView {
    let rows = part("arp", &net.arp, |r| {
        let hw = match r.hw_type.bits() {
            1 => "ether".to_string(),
            b => format!("{b:#x}"),
        };
        Row::new(vec![
            Cell::text(r.ip.to_string()),
            Cell::text(hw),
            Cell::text(format!("{:#x}", r.flags.bits())),
            Cell::text(r.state()),
            Cell::text(r.hw_address_string().unwrap_or_else(|| "-".into())),
            Cell::text(&r.device),
        ])
    });
    combine(ARP_COLUMNS, vec![rows])
}

pub(super) const TRAFFIC_COLUMNS: &[Column] = &[
    text("IFACE", 12),
    num("RX BYTES", 10),
    num("RX PKTS", 9),
    num("ERRS", 5),
    num("DROP", 5),
    num("FIFO", 5),
    num("FRAME", 5),
    num("COMPR", 5),
    num("MCAST", 5),
    num("TX BYTES", 10),
    num("TX PKTS", 9),
    num("ERRS", 5),
    num("DROP", 5),
    num("FIFO", 5),
    num("COLLS", 5),
    num("CARR", 5),
    num("COMPR", 5),
    num("RX/s", 11),
    num("TX/s", 11),
];

pub(super) fn traffic(net: &NetSnapshot, data: &TuiData) -> TabView {
    let deltas: HashMap<&str, _> = data
        .net_delta
        .iter()
        .flat_map(|d| d.interfaces.iter())
        .map(|d| (d.name.as_str(), d))
        .collect();
    let rows = part("dev", &net.interfaces, |i| {
        let d = deltas.get(i.name.as_str());
        let c = Cell::count;
        Row::new(vec![
            Cell::text(&i.name),
            bytes(i.rx.bytes),
            c(i.rx.packets),
            c(i.rx.errs),
            c(i.rx.drop),
            c(i.rx.fifo),
            c(i.rx.frame),
            c(i.rx.compressed),
            c(i.rx.multicast),
            bytes(i.tx.bytes),
            c(i.tx.packets),
            c(i.tx.errs),
            c(i.tx.drop),
            c(i.tx.fifo),
            c(i.tx.colls),
            c(i.tx.carrier),
            c(i.tx.compressed),
            opt_rate(d.and_then(|d| d.rx_bytes_per_sec)),
            opt_rate(d.and_then(|d| d.tx_bytes_per_sec)),
        ])
    });
    combine(TRAFFIC_COLUMNS, vec![rows])
}

pub(super) const ROUTING_COLUMNS: &[Column] = &[
    text("FAM", 4),
    text("DESTINATION", 30),
    text("GATEWAY", 26),
    text("FLAGS", 6),
    num("METRIC", 10),
    text("IFACE", 12),
    text("SOURCE", 22),
    num("MTU", 6),
    num("WINDOW", 6),
    num("IRTT", 5),
    num("REF", 4),
    num("USE", 8),
];

pub(super) fn routing(net: &NetSnapshot, _: &TuiData) -> TabView {
    let v4 = part("route", &net.routes_v4, |r| {
        let dest = match r.prefix_len {
            Some(p) => format!("{}/{p}", r.destination),
            None => format!("{}/{}", r.destination, r.mask),
        };
        let gw = if r.gateway.is_unspecified() {
            "-".to_string()
        } else {
            r.gateway.to_string()
        };
        Row::new(vec![
            Cell::text("v4"),
            Cell::text(dest),
            Cell::text(gw),
            Cell::text(r.flags.to_string()),
            Cell::count(u64::from(r.metric)),
            Cell::text(&r.iface),
            Cell::text("-"),
            Cell::count(u64::from(r.mtu)),
            Cell::count(u64::from(r.window)),
            Cell::count(u64::from(r.irtt)),
            Cell::none(),
            Cell::none(),
        ])
    });
    let v6 = part("ipv6_route", &net.routes_v6, |r| {
        let gw = if r.next_hop.is_unspecified() {
            "-".to_string()
        } else {
            r.next_hop.to_string()
        };
        let src = if r.source_prefix_len == 0 {
            "-".to_string()
        } else {
            format!("{}/{}", r.source, r.source_prefix_len)
        };
        Row::new(vec![
            Cell::text("v6"),
            Cell::text(format!("{}/{}", r.destination, r.destination_prefix_len)),
            Cell::text(gw),
            Cell::text(r.flags.to_string()),
            Cell::count(u64::from(r.metric)),
            Cell::text(&r.iface),
            Cell::text(src),
            Cell::none(),
            Cell::none(),
            Cell::none(),
            Cell::count(u64::from(r.refcnt)),
            Cell::count(u64::from(r.use_count)),
        ])
    });
    combine(ROUTING_COLUMNS, vec![v4, v6])
}
