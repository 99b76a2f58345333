//! Stats (every snmp, snmp6 and netstat counter with its delta) and Analysis (the values worth a
//! look, with their deltas).
use std::collections::HashMap;

use super::why;
use crate::procnet::counters::{CounterTable, Value};
use crate::procnet::delta::{CounterDelta, NetDelta};
use crate::procnet::{Availability, NetSnapshot, Unavailable};
use crate::tui::data::TuiData;
use crate::tui::view::{Cell, Column, Row, TabView, num, text};

pub(super) const STATS_COLUMNS: &[Column] = &[
    text("FILE", 8),
    text("SECTION", 10),
    text("COUNTER", 30),
    num("VALUE", 20),
    num("DELTA", 12),
    num("PER SEC", 12),
];

/// A counter file's name, its table, its deltas and the sections expected in it.
type CounterFile<'a> = (
    &'a str,
    &'a Availability<CounterTable>,
    &'a [CounterDelta],
    &'a [&'a str],
);

pub(super) fn stats(net: &NetSnapshot, data: &TuiData) -> TabView {
    let deltas = |f: fn(&NetDelta) -> &Vec<CounterDelta>| {
        data.net_delta.as_ref().map_or(&[][..], |d| f(d).as_slice())
    };
    // Each file with the sections the seed showed from it: one the kernel lacks gets a row
    // saying so.
    let files: [CounterFile; 3] = [
        (
            "snmp",
            &net.snmp,
            deltas(|d| &d.snmp),
            &["Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "UdpLite"],
        ),
        (
            "snmp6",
            &net.snmp6,
            deltas(|d| &d.snmp6),
            &["Ip6", "Icmp6", "Udp6", "UdpLite6"],
        ),
        (
            "netstat",
            &net.netstat,
            deltas(|d| &d.netstat),
            &["TcpExt", "IpExt", "MPTcpExt"],
        ),
    ];
    if let (true, Availability::Unavailable(u)) =
        (files.iter().all(|f| !f.1.is_available()), files[0].1)
    {
        return TabView::unavailable(STATS_COLUMNS.to_vec(), why(*u));
    }
    let mut rows = Vec::new();
    for (file, table, deltas, expected) in files {
        let deltas: HashMap<(&str, &str), &CounterDelta> = deltas
            .iter()
            .map(|d| ((d.section.as_str(), d.name.as_str()), d))
            .collect();
        match table {
            Availability::Available(t) => {
                for s in &t.sections {
                    for (name, v) in &s.counters {
                        let d = deltas.get(&(s.name.as_str(), name.as_str()));
                        rows.push(counter_row(file, &s.name, name, *v, d.copied()));
                    }
                }
                for missing in expected.iter().filter(|s| t.section(s).is_none()) {
                    rows.push(missing_row(file, missing, Unavailable::NotOnThisKernel));
                }
            }
            Availability::Unavailable(u) => rows.push(missing_row(file, "*", *u)),
        }
    }
    TabView::rows(STATS_COLUMNS.to_vec(), rows)
}

fn counter_row(file: &str, section: &str, name: &str, v: Value, d: Option<&CounterDelta>) -> Row {
    let value = match v {
        Value::Counter(c) => Cell::count(c),
        Value::Signed(s) => Cell::num(s as f64, s.to_string()),
    };
    Row::new(vec![
        Cell::text(file),
        Cell::text(section),
        Cell::text(name),
        value,
        d.map_or_else(Cell::none, |d| Cell::count(d.step.delta)),
        d.and_then(|d| d.per_sec)
            .map_or_else(Cell::none, |r| Cell::num(r, format!("{r:.1}"))),
    ])
}

fn missing_row(file: &str, section: &str, u: Unavailable) -> Row {
    Row::new(vec![
        Cell::text(file),
        Cell::text(section),
        Cell::text(why(u)),
        Cell::none(),
        Cell::none(),
        Cell::none(),
    ])
}

pub(super) const ANALYSIS_COLUMNS: &[Column] = &[
    text("CHECK", 40),
    num("VALUE", 16),
    num("DELTA", 12),
    text("MEANING", 60),
];

pub(super) fn analysis(net: &NetSnapshot, data: &TuiData) -> TabView {
    let a = net.analysis();
    let snmp_delta = |section: &str, name: &str| {
        data.net_delta
            .as_ref()
            .and_then(|d| {
                d.snmp
                    .iter()
                    .find(|c| c.section == section && c.name == name)
            })
            .map(|c| c.step.delta)
    };
    let delta_cell = |d: Option<u64>| d.map_or_else(Cell::none, Cell::count);
    let avail = |v: Availability<String>| match v {
        Availability::Available(s) => Cell::text(s),
        Availability::Unavailable(u) => Cell::text(why(u)),
    };
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    let row = |check: &str, value: Cell, delta: Cell, meaning: &str| {
        Row::new(vec![Cell::text(check), value, delta, Cell::text(meaning)])
    };
    let counter = |check: &str, v: Availability<u64>, d: Option<u64>, meaning: &str| {
        let value = match v {
            Availability::Available(n) => Cell::count(n),
            Availability::Unavailable(u) => Cell::text(why(u)),
        };
        row(check, value, delta_cell(d), meaning)
    };
    let mut rows = vec![
        row(
            "IP forwarding (net.ipv4.ip_forward)",
            avail(a.ip_forward_sysctl.clone().map(on_off)),
            Cell::none(),
            "sysctl; readable only for netmon's own namespace",
        ),
        row(
            "IP forwarding (snmp Ip: Forwarding)",
            avail(a.ip_forwarding.clone().map(on_off)),
            Cell::none(),
            "the same setting as the namespace's snmp reports it",
        ),
        counter(
            "ICMP InMsgs",
            a.icmp_in_msgs.clone(),
            snmp_delta("Icmp", "InMsgs"),
            "ICMP messages received",
        ),
        counter(
            "ICMP InType3 (destination unreachable)",
            a.icmp_in_type3.clone(),
            snmp_delta("IcmpMsg", "InType3"),
            "a peer or router refused or could not route a packet",
        ),
        row(
            "TCP RTO algorithm",
            avail(
                a.tcp_rto
                    .clone()
                    .map(|r| format!("{:?}", r.algorithm).to_lowercase()),
            ),
            Cell::none(),
            "Linux reports 'other' for its Van Jacobson RTO",
        ),
        counter(
            "TCP RTO min (ms)",
            a.tcp_rto.clone().map(|r| r.min_ms),
            None,
            "retransmission timeout floor",
        ),
        counter(
            "TCP RTO max (ms)",
            a.tcp_rto.clone().map(|r| r.max_ms),
            None,
            "retransmission timeout ceiling",
        ),
        counter(
            "UDP InDatagrams",
            a.udp.clone().map(|u| u.in_datagrams),
            snmp_delta("Udp", "InDatagrams"),
            "datagrams delivered to sockets",
        ),
        counter(
            "UDP NoPorts",
            a.udp.clone().map(|u| u.no_ports),
            snmp_delta("Udp", "NoPorts"),
            "datagrams to a port nobody listens on",
        ),
        counter(
            "UDP InErrors",
            a.udp.clone().map(|u| u.in_errors),
            snmp_delta("Udp", "InErrors"),
            "datagrams dropped (buffer full, bad checksum)",
        ),
    ];
    match &net.softnet {
        Availability::Available(t) => {
            for cpu in &t.rows {
                let d = data
                    .net_delta
                    .as_ref()
                    .and_then(|d| d.softnet.iter().find(|s| s.cpu == cpu.cpu));
                let fields: [(&str, u32, Option<u32>, &str); 3] = [
                    (
                        "processed",
                        cpu.processed,
                        d.map(|d| d.processed),
                        "packets taken from the backlog",
                    ),
                    (
                        "dropped",
                        cpu.dropped,
                        d.map(|d| d.dropped),
                        "backlog full: packets lost",
                    ),
                    (
                        "time_squeeze",
                        cpu.time_squeeze,
                        d.map(|d| d.time_squeeze),
                        "NAPI ran out of budget or time",
                    ),
                ];
                for (name, v, dv, meaning) in fields {
                    rows.push(row(
                        &format!("softnet cpu{} {name}", cpu.cpu),
                        Cell::count(u64::from(v)),
                        delta_cell(dv.map(u64::from)),
                        meaning,
                    ));
                }
            }
        }
        Availability::Unavailable(u) => {
            rows.push(row("softnet_stat", Cell::text(why(*u)), Cell::none(), ""))
        }
    }
    TabView::rows(ANALYSIS_COLUMNS.to_vec(), rows)
}
