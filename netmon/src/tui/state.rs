//! What the user has chosen (tab, filter, sort, scroll, interval) and how keys change it. Pure:
//! no terminal, no clock, so every key can be tested as a table.
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::cli::parse_interval;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Netmon,
    Tcp,
    Udp,
    Arp,
    Traffic,
    Stats,
    Raw,
    Icmp,
    Routing,
    Analysis,
    /// Per remote host across processes, iftop-like; key `h` (after the ten digit tabs).
    Hosts,
    /// Rates over the last hour from the history store; key `H`.
    History,
}

impl Tab {
    /// In tab-bar order; digit `1` is the first, `0` the tenth, `h` the Hosts tab, `H` the
    /// History tab.
    pub const ALL: [Tab; 12] = [
        Tab::Netmon,
        Tab::Tcp,
        Tab::Udp,
        Tab::Arp,
        Tab::Traffic,
        Tab::Stats,
        Tab::Raw,
        Tab::Icmp,
        Tab::Routing,
        Tab::Analysis,
        Tab::Hosts,
        Tab::History,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Netmon => "netmon",
            Tab::Tcp => "TCP",
            Tab::Udp => "UDP",
            Tab::Arp => "ARP",
            Tab::Traffic => "Traffic",
            Tab::Stats => "Stats",
            Tab::Raw => "Raw",
            Tab::Icmp => "ICMP",
            Tab::Routing => "Routing",
            Tab::Analysis => "Analysis",
            Tab::Hosts => "Hosts",
            Tab::History => "History",
        }
    }

    /// The key that selects the tab, as the tab bar shows it.
    pub fn key(self) -> char {
        match self {
            Tab::Hosts => 'h',
            Tab::History => 'H',
            t => char::from(b'0' + ((t.index() + 1) % 10) as u8),
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }

    fn offset(self, by: isize) -> Tab {
        let n = Tab::ALL.len() as isize;
        Tab::ALL[(self.index() as isize + by).rem_euclid(n) as usize]
    }
}

/// Interval steps for `+`/`-`; `:set` takes any value the `--interval` flag accepts.
const INTERVAL_STEPS_MS: [u64; 9] = [100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing after `/`; the filter applies as it is typed.
    Filter,
    /// Typing after `:`; the buffer holds what follows the colon.
    Command(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    /// Column index in the current tab; `None` keeps the tab's natural order.
    pub column: Option<usize>,
    pub descending: bool,
}

/// What the caller must do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Redraw,
    Quit,
    /// Redraw and restart the refresh timer with the new interval.
    SetInterval(Duration),
}

#[derive(Debug, Clone)]
pub struct State {
    pub tab: Tab,
    pub mode: Mode,
    pub filter: String,
    /// Per tab, because columns differ between tabs.
    pub sort: [Sort; Tab::ALL.len()],
    pub scroll: [usize; Tab::ALL.len()],
    /// Rows visible in the table, set by the renderer; used for PgUp/PgDn.
    pub page: usize,
    /// Show every socket of the namespace, not only the watched process's.
    pub show_all: bool,
    pub interval: Duration,
    /// A one-line reply to the last command (an error or a confirmation).
    pub message: Option<String>,
}

impl State {
    /// `watching`: a PID was given, so the socket tabs start with its own sockets only.
    pub fn new(interval: Duration, watching: bool) -> Self {
        State {
            tab: Tab::Netmon,
            mode: Mode::Normal,
            filter: String::new(),
            sort: [Sort::default(); Tab::ALL.len()],
            scroll: [0; Tab::ALL.len()],
            page: 10,
            show_all: !watching,
            interval,
            message: None,
        }
    }

    pub fn sort(&self) -> Sort {
        self.sort[self.tab.index()]
    }

    pub fn scroll(&self) -> usize {
        self.scroll[self.tab.index()]
    }

    /// Keeps the current tab's scroll within `rows` (called once the rows are known).
    pub fn clamp_scroll(&mut self, rows: usize) {
        let max = rows.saturating_sub(self.page.max(1));
        let s = &mut self.scroll[self.tab.index()];
        *s = (*s).min(max);
    }

    /// `columns`: how many columns the current tab has, for cycling the sort column.
    pub fn handle_key(&mut self, key: KeyEvent, columns: usize) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c' | 'd')) {
            return Action::Quit;
        }
        match self.mode.clone() {
            Mode::Normal => self.normal_key(key, columns),
            Mode::Filter => self.filter_key(key),
            Mode::Command(buf) => self.command_key(key, buf),
        }
    }

    fn normal_key(&mut self, key: KeyEvent, columns: usize) -> Action {
        self.message = None;
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            // Esc first undoes a filter, so it never quits by surprise while one is shown.
            KeyCode::Esc if !self.filter.is_empty() => self.filter.clear(),
            KeyCode::Esc => return Action::Quit,
            KeyCode::Tab | KeyCode::Right => self.tab = self.tab.offset(1),
            KeyCode::BackTab | KeyCode::Left => self.tab = self.tab.offset(-1),
            KeyCode::Char(c @ '0'..='9') => {
                let i = (c as usize - '0' as usize + 9) % 10;
                self.tab = Tab::ALL[i];
            }
            KeyCode::Char('h') => self.tab = Tab::Hosts,
            KeyCode::Char('H') => self.tab = Tab::History,
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Char(':') => self.mode = Mode::Command(String::new()),
            KeyCode::Char('+') => return self.step_interval(1),
            KeyCode::Char('-') => return self.step_interval(-1),
            KeyCode::Char('s') => {
                let s = &mut self.sort[self.tab.index()];
                s.column = match s.column {
                    None if columns > 0 => Some(0),
                    Some(c) if c + 1 < columns => Some(c + 1),
                    _ => None,
                };
            }
            KeyCode::Char('S') => {
                let s = &mut self.sort[self.tab.index()];
                s.descending = !s.descending;
            }
            KeyCode::Char('a') => self.show_all = !self.show_all,
            KeyCode::Up => self.scroll_by(-1),
            KeyCode::Down => self.scroll_by(1),
            KeyCode::PageUp => self.scroll_by(-(self.page.max(1) as isize)),
            KeyCode::PageDown => self.scroll_by(self.page.max(1) as isize),
            KeyCode::Home => self.scroll[self.tab.index()] = 0,
            KeyCode::End => self.scroll[self.tab.index()] = usize::MAX,
            _ => return Action::None,
        }
        Action::Redraw
    }

    fn filter_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Esc => {
                self.filter.clear();
                self.mode = Mode::Normal;
            }
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) => self.filter.push(c),
            _ => return Action::None,
        }
        self.scroll[self.tab.index()] = 0;
        Action::Redraw
    }

    fn command_key(&mut self, key: KeyEvent, mut buf: String) -> Action {
        match key.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                return self.run_command(buf.trim());
            }
            KeyCode::Backspace => {
                if buf.pop().is_none() {
                    self.mode = Mode::Normal;
                } else {
                    self.mode = Mode::Command(buf);
                }
            }
            KeyCode::Char(c) => {
                buf.push(c);
                self.mode = Mode::Command(buf);
            }
            _ => return Action::None,
        }
        Action::Redraw
    }

    fn run_command(&mut self, cmd: &str) -> Action {
        let mut words = cmd.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("set"), Some(secs), None) => match parse_interval(secs) {
                Ok(d) => self.set_interval(d),
                Err(e) => {
                    self.message = Some(format!("interval {secs:?}: {e}"));
                    Action::Redraw
                }
            },
            (Some("q" | "quit"), None, None) => Action::Quit,
            _ => {
                self.message = Some(format!("unknown command {cmd:?} (try :set 2)"));
                Action::Redraw
            }
        }
    }

    fn set_interval(&mut self, d: Duration) -> Action {
        self.interval = d;
        self.message = Some(format!("interval {}", format_interval(d)));
        Action::SetInterval(d)
    }

    /// `+` lengthens the interval to the next step, `-` shortens it.
    fn step_interval(&mut self, dir: i8) -> Action {
        let ms = self.interval.as_millis() as u64;
        let next = if dir > 0 {
            INTERVAL_STEPS_MS.iter().find(|&&s| s > ms)
        } else {
            INTERVAL_STEPS_MS.iter().rev().find(|&&s| s < ms)
        };
        match next {
            Some(&s) => self.set_interval(Duration::from_millis(s)),
            None => Action::None,
        }
    }

    fn scroll_by(&mut self, by: isize) {
        let s = &mut self.scroll[self.tab.index()];
        *s = s.saturating_add_signed(by);
    }
}

/// `1s`, `0.5s`, `2.25s`: as short as the value allows.
pub fn format_interval(d: Duration) -> String {
    let s = format!("{:.2}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}s")
}
