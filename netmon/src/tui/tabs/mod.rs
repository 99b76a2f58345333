//! One row builder per tab: [`TuiData`] → [`TabView`]. Drawing, filtering and sorting are shared
//! (`view`, `render`), so each builder only says which columns a tab has and what goes in them.
//!
//! - `netmon`: the eBPF connections joined to the socket tables.
//! - `sockets`: TCP, UDP, Raw, ICMP.
//! - `links`: ARP, Traffic (interfaces), Routing.
//! - `counters`: Stats and Analysis.
//! - `hosts`: per remote host rates (from the snapshots, not the namespace).
//! - `history`: the series of the History tab's charts (from the history store).
mod counters;
mod history;
mod hosts;
mod links;
mod netmon;
mod sockets;

use super::data::TuiData;
use super::state::Tab;
use super::view::{Cell, Column, Row, TabView};
use crate::procnet::sockets::Protocol;
use crate::procnet::{Availability, NetSnapshot, Table, Unavailable};
use crate::sink::human;
use counters::{ANALYSIS_COLUMNS, STATS_COLUMNS, analysis, stats};
use links::{ARP_COLUMNS, ROUTING_COLUMNS, TRAFFIC_COLUMNS, arp, routing, traffic};
use netmon::netmon;
use sockets::{SOCKET_COLUMNS, sockets};

/// The words every tab uses for a missing source.
pub fn why(u: Unavailable) -> String {
    match u {
        Unavailable::NotOnThisKernel => "not available on this kernel".into(),
        other => format!("not available: {other}"),
    }
}

pub fn build(tab: Tab, data: &TuiData) -> TabView {
    match tab {
        Tab::Netmon => netmon(data),
        Tab::Tcp => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Tcp)),
        Tab::Udp => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Udp)),
        Tab::Raw => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Raw)),
        Tab::Icmp => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Icmp)),
        Tab::Arp => with_net(data, ARP_COLUMNS, arp),
        Tab::Traffic => with_net(data, TRAFFIC_COLUMNS, traffic),
        Tab::Stats => with_net(data, STATS_COLUMNS, stats),
        Tab::Routing => with_net(data, ROUTING_COLUMNS, routing),
        Tab::Analysis => with_net(data, ANALYSIS_COLUMNS, analysis),
        Tab::Hosts => hosts::hosts(data),
        Tab::History => history::history(data),
    }
}

/// Runs `f` on the namespace snapshot, or says why there is none yet.
fn with_net(
    data: &TuiData,
    columns: &[Column],
    f: impl FnOnce(&NetSnapshot, &TuiData) -> TabView,
) -> TabView {
    match &data.net {
        Some(net) => f(net, data),
        None => TabView::unavailable(
            columns.to_vec(),
            data.net_error
                .as_deref()
                .unwrap_or("reading the namespace…"),
        ),
    }
}

/// The rows of one file, or why it is missing.
fn part<'a, T>(
    file: &'a str,
    t: &Availability<Table<T>>,
    row: impl Fn(&T) -> Row,
) -> (&'a str, Availability<Vec<Row>>) {
    (file, t.as_ref().map(|t| t.rows.iter().map(row).collect()))
}

/// Files shown as one table (tcp + tcp6, route + ipv6_route): the rows of those present, a note
/// naming those missing, and an unavailable tab only when none is there.
fn combine(columns: &[Column], parts: Vec<(&str, Availability<Vec<Row>>)>) -> TabView {
    let count = parts.len();
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (file, p) in parts {
        match p {
            Availability::Available(r) => rows.extend(r),
            Availability::Unavailable(u) => missing.push((file, u)),
        }
    }
    if let Some(&(_, u)) = missing.first().filter(|_| missing.len() == count) {
        return TabView::unavailable(columns.to_vec(), why(u));
    }
    let note = (!missing.is_empty()).then(|| {
        missing
            .iter()
            .map(|(f, u)| format!("{f}: {}", why(*u)))
            .collect::<Vec<_>>()
            .join(", ")
    });
    TabView::rows(columns.to_vec(), rows).with_note(note)
}

fn bytes(v: u64) -> Cell {
    Cell::num(v as f64, human::bytes(v))
}

fn rate(v: f64) -> Cell {
    Cell::num(v, human::rate(v))
}

fn opt_rate(v: Option<f64>) -> Cell {
    v.map_or_else(Cell::none, rate)
}

fn owned_mark(owned: bool) -> Cell {
    Cell::text(if owned { "*" } else { "" })
}
