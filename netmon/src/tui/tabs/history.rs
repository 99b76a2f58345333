//! The History tab's table: one row per charted series (the watched processes, or the five
//! busiest), with what it moved over the hour and its busiest minute. The charts above it
//! are drawn by `render` from the same [`HistoryChart`].
use super::{bytes, rate};
use crate::tui::data::TuiData;
use crate::tui::history::{HistoryChart, HistoryView, Series};
use crate::tui::view::{Cell, Column, Row, TabView, num, text};

pub(crate) const HISTORY_COLUMNS: &[Column] = &[
    text("PROCESS", 40),
    num("SENT", 10),
    num("RECEIVED", 10),
    num("PEAK SENT/s", 12),
    num("PEAK RECV/s", 12),
    num("CONNS", 7),
];

pub(super) fn history(data: &TuiData) -> TabView {
    let columns = HISTORY_COLUMNS.to_vec();
    match &data.history {
        HistoryView::Loading => TabView::unavailable(columns, "reading the history…"),
        HistoryView::NoStore(why) | HistoryView::Failed(why) => {
            TabView::unavailable(columns, why.clone())
        }
        HistoryView::Loaded(chart) if chart.series.is_empty() => TabView::unavailable(
            columns,
            format!("no traffic in {} over the last hour", chart.db.display()),
        ),
        HistoryView::Loaded(chart) => TabView::rows(
            columns,
            chart.series.iter().map(|s| series_row(s, chart)).collect(),
        )
        .with_note(Some(note(chart))),
    }
}

/// `last hour per minute, busiest processes (from per-minute roll-ups)`.
fn note(chart: &HistoryChart) -> String {
    let mut n = format!(
        "last hour per minute, {}",
        if chart.by_pid {
            "watched processes"
        } else {
            "busiest processes"
        }
    );
    if chart.from_rollups {
        n.push_str(" (from per-minute roll-ups)");
    }
    n
}

fn series_row(s: &Series, chart: &HistoryChart) -> Row {
    let (peak_tx, peak_rx) = s.peaks(chart.every_ms);
    Row::new(vec![
        Cell::text(&s.label),
        bytes(s.tx_bytes),
        bytes(s.rx_bytes),
        rate(peak_tx),
        rate(peak_rx),
        Cell::count(s.connections),
    ])
}
