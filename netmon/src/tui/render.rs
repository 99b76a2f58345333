//! Draws one frame: status line, exit banner, tab bar, the current tab's table, and a footer
//! with the command line, a message or the key help. Shared by every tab.
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row as TableRow, Table, Tabs};

use super::data::TuiData;
use super::state::{Mode, State, Tab, format_interval};
use super::tabs;
use super::view::{Body, TabView};

const HELP: &str = "q quit  Tab/←→/1-0/h tabs  / filter  s sort  S reverse  a own/all sockets  :set N or +/- interval  ↑↓ PgUp PgDn scroll";

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
    draw_table(frame, body, state, &view);
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
    let header = TableRow::new(view.columns.iter().map(|c| c.name))
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let body = rows.iter().skip(state.scroll()).take(state.page).map(|r| {
        let cells = r.cells.iter().zip(&view.columns).map(|(cell, col)| {
            let line = Line::from(Span::raw(cell.text.clone()));
            if col.numeric {
                line.alignment(Alignment::Right)
            } else {
                line
            }
        });
        let style = if r.owned == Some(true) {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        TableRow::new(cells).style(style)
    });
    let widths = view.columns.iter().map(|c| Constraint::Length(c.width));
    frame.render_widget(Table::new(body, widths).header(header).block(block), area);
}
