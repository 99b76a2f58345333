//! The one shape every tab takes before it is drawn: columns and rows of text, each cell with a
//! key to sort by. Filtering, sorting and the own-socket toggle work on this shape, so they are
//! written once for all tabs.
use std::cmp::Ordering;

use super::state::Sort;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// Width in cells; a tab's columns fit 160 cells (the end-to-end test's terminal).
    pub width: u16,
    /// Right-aligned (numbers).
    pub numeric: bool,
}

pub const fn text(name: &'static str, width: u16) -> Column {
    Column {
        name,
        width,
        numeric: false,
    }
}

pub const fn num(name: &'static str, width: u16) -> Column {
    Column {
        name,
        width,
        numeric: true,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Num(f64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub key: Key,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        let text = s.into();
        Cell {
            key: Key::Text(text.to_lowercase()),
            text,
        }
    }

    /// A number shown as `shown` (e.g. `1.50 KiB`) but sorted by `value`.
    pub fn num(value: f64, shown: impl Into<String>) -> Self {
        Cell {
            text: shown.into(),
            key: Key::Num(value),
        }
    }

    pub fn count(v: u64) -> Self {
        Cell::num(v as f64, v.to_string())
    }

    /// A value that is not there (e.g. a column that does not apply to this row); sorts last.
    pub fn none() -> Self {
        Cell::num(f64::NEG_INFINITY, "-")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cells: Vec<Cell>,
    /// `Some(true)`: a socket of the watched process; `Some(false)`: another socket of its
    /// namespace; `None`: the row is not a socket (an interface, a route, a counter).
    pub owned: Option<bool>,
}

impl Row {
    pub fn new(cells: Vec<Cell>) -> Self {
        Row { cells, owned: None }
    }

    fn matches(&self, needle: &str) -> bool {
        self.cells
            .iter()
            .any(|c| c.text.to_lowercase().contains(needle))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Rows(Vec<Row>),
    /// Why there is nothing to show, e.g. "not available on this kernel".
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TabView {
    pub columns: Vec<Column>,
    pub body: Body,
    /// Shown after the tab's title: a partly missing source ("tcp6: not available on this kernel").
    pub note: Option<String>,
}

impl TabView {
    pub fn rows(columns: Vec<Column>, rows: Vec<Row>) -> Self {
        TabView {
            columns,
            body: Body::Rows(rows),
            note: None,
        }
    }

    pub fn unavailable(columns: Vec<Column>, why: impl Into<String>) -> Self {
        TabView {
            columns,
            body: Body::Unavailable(why.into()),
            note: None,
        }
    }

    pub fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// Rows after the own-socket toggle, the filter (case-insensitive, any cell) and the sort.
    pub fn visible_rows(&self, filter: &str, show_all: bool, sort: Sort) -> Vec<&Row> {
        let Body::Rows(rows) = &self.body else {
            return Vec::new();
        };
        let needle = filter.to_lowercase();
        let mut out: Vec<&Row> = rows
            .iter()
            .filter(|r| show_all || r.owned != Some(false))
            .filter(|r| needle.is_empty() || r.matches(&needle))
            .collect();
        if let Some(col) = sort.column.filter(|&c| c < self.columns.len()) {
            // Stable, so rows that tie keep the tab's natural order.
            out.sort_by(|a, b| {
                let o = match (a.cells.get(col), b.cells.get(col)) {
                    (Some(x), Some(y)) => compare(&x.key, &y.key),
                    (x, y) => x.is_some().cmp(&y.is_some()),
                };
                if sort.descending { o.reverse() } else { o }
            });
        }
        out
    }
}

fn compare(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Num(x), Key::Num(y)) => x.total_cmp(y),
        (Key::Text(x), Key::Text(y)) => x.cmp(y),
        (Key::Num(_), Key::Text(_)) => Ordering::Less,
        (Key::Text(_), Key::Num(_)) => Ordering::Greater,
    }
}
