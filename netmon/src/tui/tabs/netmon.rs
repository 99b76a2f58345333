//! The netmon tab: the aggregator's connections, each joined to its socket-table row by
//! cookie → inode (sock_diag), under a total row per process.
use std::collections::HashMap;

use super::{bytes, owned_mark, rate};
use crate::aggregate::{ConnectionRow, ProcessRow};
use crate::procnet::sockets::SocketRow;
use crate::tui::data::TuiData;
use crate::tui::view::{Cell, Column, Row, TabView, num, text};

const NETMON_COLUMNS: &[Column] = &[
    text("*", 1),
    num("PID", 7),
    text("COMM", 10),
    text("PROTO", 5),
    text("LOCAL", 21),
    text("REMOTE", 21),
    text("STATE", 10),
    num("TX", 9),
    num("RX", 9),
    num("TX/s", 10),
    num("RX/s", 10),
    num("WIRE TX", 9),
    num("WIRE RX", 9),
    num("INODE", 8),
    num("Q S/R", 7),
];

/// The eBPF connections, each joined to its socket-table row by cookie → inode, under a total
/// row per process.
pub(super) fn netmon(data: &TuiData) -> TabView {
    let by_inode: HashMap<u64, &SocketRow> = data
        .net
        .iter()
        .flat_map(|n| n.socket_rows())
        .filter(|r| r.inode != 0)
        .map(|r| (r.inode, r))
        .collect();
    let mut rows = Vec::new();
    for p in &data.procs.processes {
        rows.push(process_row(p));
        for c in &p.connections {
            let inode = data.cookie_inodes.get(&c.cookie).copied();
            let sock = inode.and_then(|i| by_inode.get(&i).copied());
            rows.push(connection_row(p, c, inode, sock));
        }
    }
    // The period the aggregator's rates really cover: proof that an interval change took effect.
    let mut notes = Vec::new();
    if data.procs.interval_ms > 0 {
        notes.push(format!(
            "rates over {:.1} s",
            data.procs.interval_ms as f64 / 1000.0
        ));
    }
    if data.cookie_inodes.is_empty() && !data.procs.processes.is_empty() {
        notes.push("no sock_diag map: socket columns empty".to_string());
    }
    let note = (!notes.is_empty()).then(|| notes.join(", "));
    TabView::rows(NETMON_COLUMNS.to_vec(), rows).with_note(note)
}

fn process_row(p: &ProcessRow) -> Row {
    Row::new(vec![
        Cell::text(""),
        Cell::count(u64::from(p.pid)),
        Cell::text(&p.comm),
        Cell::text("all"),
        Cell::text(format!("{} connection(s)", p.connections.len())),
        Cell::text(""),
        Cell::text(if p.alive { "" } else { "exited" }),
        bytes(p.tx_bytes),
        bytes(p.rx_bytes),
        rate(p.tx_rate),
        rate(p.rx_rate),
        bytes(p.tx_wire_bytes),
        bytes(p.rx_wire_bytes),
        Cell::none(),
        Cell::none(),
    ])
}

fn connection_row(
    p: &ProcessRow,
    c: &ConnectionRow,
    inode: Option<u64>,
    sock: Option<&SocketRow>,
) -> Row {
    let state = match (sock, &c.state) {
        (Some(s), _) => s.state.label(s.kind.protocol).to_string(),
        (None, _) if c.closed => "closed".to_string(),
        (None, Some(st)) => st.clone(),
        (None, None) => String::new(),
    };
    // Sorted by what is waiting in total; shown as send/receive queue like `ss`.
    let queues = sock.map_or_else(Cell::none, |s| {
        let total = u64::from(s.tx_queue) + u64::from(s.rx_queue);
        Cell::num(total as f64, format!("{}/{}", s.tx_queue, s.rx_queue))
    });
    Row::new(vec![
        owned_mark(sock.is_some_and(|s| s.owned)),
        Cell::count(u64::from(p.pid)),
        Cell::text(&p.comm),
        Cell::text(format!("{:?}", c.proto).to_lowercase()),
        Cell::text(c.local.as_deref().unwrap_or("-")),
        Cell::text(c.remote.as_deref().unwrap_or("-")),
        Cell::text(state),
        bytes(c.tx_bytes),
        bytes(c.rx_bytes),
        rate(c.tx_rate),
        rate(c.rx_rate),
        bytes(c.tx_wire_bytes),
        bytes(c.rx_wire_bytes),
        inode.map_or_else(Cell::none, Cell::count),
        queues,
    ])
}
