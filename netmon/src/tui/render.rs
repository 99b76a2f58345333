//! Draws one frame: status line, exit banner, tab bar, the current tab's table, and a footer
//! with the command line, a message or the key help. Shared by every tab.
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Row as TableRow, Table, Tabs,
};

use super::data::TuiData;
use super::history::{HistoryChart, HistoryView};
use super::state::{Mode, State, Tab, format_interval};
use super::tabs;
use super::view::{Body, TabView, fitting};

const HELP: &str = "q quit  Tab/←→/1-0/h/H tabs  / filter  s sort  S reverse  a own/all sockets  :set N or +/- interval  ↑↓ PgUp PgDn scroll";

pub fn draw(frame: &mut Frame, state: &mut State, data: &TuiData) {
    let banner = u16::from(data.exited);
    let [status, banner_area, tab_bar, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(status_line(state, data)), status);
    if data.exited {
        frame.render_widget(
            Paragraph::new(exit_banner(data)).style(
                Style::new()
                    .fg(Color::White)
                    .bg(Color::Red)
                    .add_modifier(Modifier::BOLD),
            ),
            banner_area,
        );
    }
    let titles = Tab::ALL
        .iter()
        .map(|t| format!("{} {}", t.key(), t.title()));
    frame.render_widget(
        Tabs::new(titles)
            .select(state.tab.index())
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)),
        tab_bar,
    );
    let view = tabs::build(state.tab, data);
    match (&data.history, &view.body) {
        (HistoryView::Loaded(chart), Body::Rows(rows)) if state.tab == Tab::History => {
            draw_history(frame, body, state, &view, rows.len(), chart);
        }
        _ => draw_table(frame, body, state, &view),
    }
    frame.render_widget(Paragraph::new(footer_line(state)), footer);
}

fn status_line(state: &State, data: &TuiData) -> Line<'static> {
    let h = &data.header;
    let who = match h.pids.as_slice() {
        [] => "all processes (sockets of netmon's own netns)".to_string(),
        [pid] => format!("pid {pid} ({})", h.comm),
        pids => format!(
            "pids {} ({})",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            h.comm
        ),
    };
    let mut parts = vec![
        format!("netmon  {who}"),
        format!(
            "backend {}",
            if h.backend.is_empty() {
                "-"
            } else {
                &h.backend
            }
        ),
        format!("interval {}", format_interval(state.interval)),
        h.namespace.clone(),
        if state.show_all {
            "all sockets"
        } else {
            "own sockets"
        }
        .to_string(),
    ];
    if !state.filter.is_empty() {
        parts.push(format!("filter \"{}\"", state.filter));
    }
    if let Some(e) = &data.net_error {
        parts.push(e.clone());
    }
    Line::from(parts.join("  │  ")).style(Style::new().add_modifier(Modifier::BOLD))
}

fn exit_banner(data: &TuiData) -> String {
    let pids: Vec<String> = data.header.pids.iter().map(u32::to_string).collect();
    format!(
        " process {} exited: final totals below; press q to quit (exit code 4)",
        pids.join(", ")
    )
}

fn footer_line(state: &State) -> Line<'static> {
    match (&state.mode, &state.message) {
        (Mode::Filter, _) => Line::from(format!("/{}█", state.filter)),
        (Mode::Command(buf), _) => Line::from(format!(":{buf}█")),
        (Mode::Normal, Some(m)) => Line::from(m.clone()),
        (Mode::Normal, None) => Line::from(HELP).style(Style::new().fg(Color::DarkGray)),
    }
}

fn draw_table(frame: &mut Frame, area: Rect, state: &mut State, view: &TabView) {
    let sort = state.sort();
    let rows = view.visible_rows(&state.filter, state.show_all, sort);
    let total = match &view.body {
        Body::Rows(r) => r.len(),
        Body::Unavailable(_) => 0,
    };
    let mut title = format!(" {} ", state.tab.title());
    if matches!(view.body, Body::Rows(_)) {
        title.push_str(&format!("─ {} of {} rows ", rows.len(), total));
    }
    if let Some(c) = sort.column.and_then(|c| view.columns.get(c)) {
        let dir = if sort.descending { "↓" } else { "↑" };
        title.push_str(&format!("─ sort {}{dir} ", c.name));
    }
    if let Some(note) = &view.note {
        title.push_str(&format!("─ {note} "));
    }
    let block = Block::new().borders(Borders::TOP).title(title);
    if let Body::Unavailable(why) = &view.body {
        frame.render_widget(
            Paragraph::new(why.as_str())
                .alignment(Alignment::Center)
                .block(block),
            area,
        );
        return;
    }
    // One line for the block's border, one for the header row.
    state.page = usize::from(area.height.saturating_sub(2)).max(1);
    state.clamp_scroll(rows.len());
    let shown = fitting(&view.columns, area.width);
    let header = TableRow::new(shown.iter().map(|&i| view.columns[i].name))
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let body = rows.iter().skip(state.scroll()).take(state.page).map(|r| {
        let cells = shown.iter().filter_map(|&i| {
            let (cell, col) = (r.cells.get(i)?, &view.columns[i]);
            let line = Line::from(Span::raw(cell.text.clone()));
            Some(if col.numeric {
                line.alignment(Alignment::Right)
            } else {
                line
            })
        });
        let style = if r.owned == Some(true) {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        TableRow::new(cells).style(style)
    });
    let widths = shown
        .iter()
        .map(|&i| Constraint::Length(view.columns[i].width));
    frame.render_widget(Table::new(body, widths).header(header).block(block), area);
}

/// Series colours, in the table's order (the legend names them).
const SERIES_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::LightGreen,
    Color::LightMagenta,
    Color::LightRed,
    Color::LightBlue,
];
/// Below this many lines for the charts they are left out (the table stays).
const MIN_CHART_HEIGHT: u16 = 6;

/// The History tab: its table (a row per series) on top, under it the sent and received
/// rates per minute over the hour, one line per series.
fn draw_history(
    frame: &mut Frame,
    area: Rect,
    state: &mut State,
    view: &TabView,
    rows: usize,
    chart: &HistoryChart,
) {
    // The table's border and header, and its rows.
    let table_height = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2);
    let [table, charts] =
        Layout::vertical([Constraint::Length(table_height), Constraint::Fill(1)]).areas(area);
    draw_table(frame, table, state, view);
    if charts.height < MIN_CHART_HEIGHT {
        return;
    }
    // The legend is a column of its own: inside a chart it would hide part of the lines.
    let widest = chart
        .series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0);
    let legend_width = u16::try_from(widest + 4).unwrap_or(u16::MAX).min(32);
    let [sent, received, legend] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(legend_width),
    ])
    // A column between them, so an axis label never touches the line before it.
    .spacing(1)
    .areas(charts);
    draw_rates(frame, sent, chart, "sent per second", |b| b.tx_bytes);
    draw_rates(frame, received, chart, "received per second", |b| {
        b.rx_bytes
    });
    let lines: Vec<Line> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Line::from(vec![
                Span::styled("━━ ", Style::new().fg(series_color(i))),
                Span::raw(s.label.clone()),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::TOP)),
        legend,
    );
}

fn series_color(i: usize) -> Color {
    SERIES_COLORS[i % SERIES_COLORS.len()]
}

/// One chart: a line per series, x the minutes before the hour's end, y bytes per second.
fn draw_rates(
    frame: &mut Frame,
    area: Rect,
    chart: &HistoryChart,
    title: &str,
    bytes: fn(&crate::history::Bucket) -> u64,
) {
    let step_s = chart.every_ms as f64 / 1000.0;
    let points: Vec<Vec<(f64, f64)>> = chart
        .series
        .iter()
        .map(|s| {
            s.buckets
                .iter()
                .map(|b| {
                    let end = b.start_ms + chart.every_ms - chart.until_ms;
                    (end as f64 / 60_000.0, bytes(b) as f64 / step_s)
                })
                .collect()
        })
        .collect();
    let top = points
        .iter()
        .flatten()
        .map(|&(_, y)| y)
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let span = (chart.until_ms - chart.since_ms) as f64 / 60_000.0;
    let datasets = chart
        .series
        .iter()
        .zip(&points)
        .enumerate()
        .map(|(i, (s, p))| {
            Dataset::default()
                .name(s.label.clone())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(series_color(i)))
                .data(p)
        })
        .collect();
    let label = |v: f64| crate::sink::human::rate(v);
    let widget = Chart::new(datasets)
        .block(
            Block::new()
                .borders(Borders::TOP)
                .title(format!(" {title} ")),
        )
        .x_axis(Axis::default().bounds([-span, 0.0]).labels([
            format!("-{span:.0} min"),
            format!("-{:.0}", span / 2.0),
            "now".into(),
        ]))
        .y_axis(Axis::default().bounds([0.0, top]).labels([
            label(0.0),
            label(top / 2.0),
            label(top),
        ]))
        .legend_position(None);
    frame.render_widget(widget, area);
}
