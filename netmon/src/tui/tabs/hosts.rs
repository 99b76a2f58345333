//! The Hosts tab: per remote host, what every process sent and received per second over the
//! last 2, 10 and 40 s (like iftop), and in total. The rates come from [`TuiData::hosts`],
//! fed each snapshot; the columns are those of the plain `hosts_table`.
use super::{bytes, rate};
use crate::hosts::HostRateRow;
use crate::tui::data::TuiData;
use crate::tui::view::{Cell, Column, Row, TabView, num, text};

const HOSTS_COLUMNS: &[Column] = &[
    text("HOST", 28),
    text("NAME", 24),
    text("CLASS", 10),
    num("SENT 2s", 10),
    num("SENT 10s", 10),
    num("SENT 40s", 10),
    num("RECV 2s", 10),
    num("RECV 10s", 10),
    num("RECV 40s", 10),
    num("TOTAL", 9),
    num("CONNS", 6),
    num("PROCS", 6),
];

pub(super) fn hosts(data: &TuiData) -> TabView {
    let rows = data.hosts.rows();
    if rows.is_empty() {
        return TabView::unavailable(
            HOSTS_COLUMNS.to_vec(),
            "no remote hosts yet: they appear once a process exchanges traffic with one",
        );
    }
    let history = rows.iter().map(|r| r.history_ms).max().unwrap_or(0);
    let mut note = "per second over 2 s, 10 s, 40 s".to_string();
    if rows.iter().all(|r| r.partial) {
        note.push_str(&format!(
            " (only {:.0} s of history yet)",
            history as f64 / 1000.0
        ));
    }
    TabView::rows(HOSTS_COLUMNS.to_vec(), rows.iter().map(host_row).collect()).with_note(Some(note))
}

fn host_row(r: &HostRateRow) -> Row {
    Row::new(vec![
        Cell::text(r.remote.to_string()),
        Cell::text(r.name.clone().unwrap_or_default()),
        Cell::text(&r.class),
        rate(r.tx_rate[0]),
        rate(r.tx_rate[1]),
        rate(r.tx_rate[2]),
        rate(r.rx_rate[0]),
        rate(r.rx_rate[1]),
        rate(r.rx_rate[2]),
        bytes(r.tx_bytes.saturating_add(r.rx_bytes)),
        Cell::count(r.connections),
        Cell::count(r.processes),
    ])
}
