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
    /// 0: always drawn. Otherwise left out when the terminal is too narrow for every column,
    /// the highest first, instead of squeezing every column until none is readable.
    pub shed: u8,
}

pub const fn text(name: &'static str, width: u16) -> Column {
    Column {
        name,
        width,
        numeric: false,
        shed: 0,
    }
}

pub const fn num(name: &'static str, width: u16) -> Column {
    Column {
        name,
        width,
        numeric: true,
        shed: 0,
    }
}

impl Column {
    /// Left out before columns with a lower `order` when the terminal is too narrow.
    pub const fn shed(self, order: u8) -> Column {
        Column {
            shed: order,
            ..self
        }
    }
}

/// Indexes of the columns drawn in `width` cells (one between columns): all when they fit,
/// else without the sheddable ones, highest `shed` first, until they fit or none is left.
pub fn fitting(columns: &[Column], width: u16) -> Vec<usize> {
    let need = |shown: &[usize]| -> usize {
        shown
            .iter()
            .map(|&i| usize::from(columns[i].width) + 1)
            .sum::<usize>()
            .saturating_sub(1)
    };
    let mut shown: Vec<usize> = (0..columns.len()).collect();
    let mut order: Vec<usize> = shown
        .iter()
        .copied()
        .filter(|&i| columns[i].shed > 0)
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(columns[i].shed));
    for drop in order {
        if need(&shown) <= usize::from(width) {
            break;
        }
        shown.retain(|&i| i != drop);
    }
    shown
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
    /// In a tree (`--tree`): the index of the row it sits under; None at the top level.
    pub parent: Option<usize>,
    /// Among rows under the same parent, a lower rank comes first whatever the sort (a
    /// process's connections before its child processes).
    pub rank: u8,
}

impl Row {
    pub fn new(cells: Vec<Cell>) -> Self {
        Row {
            cells,
            owned: None,
            parent: None,
            rank: 0,
        }
    }

    /// Placed under row `parent` (an index into the same tab's rows), with `rank` among its
    /// siblings.
    pub fn under(mut self, parent: Option<usize>, rank: u8) -> Self {
        self.parent = parent;
        self.rank = rank;
        self
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
    /// Rows form a tree (`Row::parent`): sorting and filtering keep it.
    pub tree: bool,
}

impl TabView {
    pub fn rows(columns: Vec<Column>, rows: Vec<Row>) -> Self {
        TabView {
            columns,
            body: Body::Rows(rows),
            note: None,
            tree: false,
        }
    }

    pub fn unavailable(columns: Vec<Column>, why: impl Into<String>) -> Self {
        TabView {
            columns,
            body: Body::Unavailable(why.into()),
            note: None,
            tree: false,
        }
    }

    pub fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// The rows' `parent` links form a tree to keep.
    pub fn as_tree(mut self, tree: bool) -> Self {
        self.tree = tree;
        self
    }

    /// Rows after the own-socket toggle, the filter (case-insensitive, any cell) and the sort.
    pub fn visible_rows(&self, filter: &str, show_all: bool, sort: Sort) -> Vec<&Row> {
        let Body::Rows(rows) = &self.body else {
            return Vec::new();
        };
        let needle = filter.to_lowercase();
        if self.tree {
            return tree_rows(
                rows,
                |r| {
                    (show_all || r.owned != Some(false))
                        && (needle.is_empty() || r.matches(&needle))
                },
                sort,
            );
        }
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

/// A tree's rows: those `wanted` and every row above one of them (so a match is shown where
/// it sits), each parent's rows sorted among themselves (rank first), depth first.
fn tree_rows(rows: &[Row], wanted: impl Fn(&Row) -> bool, sort: Sort) -> Vec<&Row> {
    let mut keep: Vec<bool> = rows.iter().map(&wanted).collect();
    for i in 0..rows.len() {
        if !keep[i] {
            continue;
        }
        let mut up = rows[i].parent;
        // Bounded by the row count, should the links ever form a cycle.
        for _ in 0..rows.len() {
            let Some(j) = up.filter(|&j| j < rows.len() && !keep[j]) else {
                break;
            };
            keep[j] = true;
            up = rows[j].parent;
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    let mut roots = Vec::new();
    for (i, r) in rows.iter().enumerate().filter(|&(i, _)| keep[i]) {
        match r.parent.filter(|&p| p < rows.len() && p != i && keep[p]) {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    let col = sort.column;
    let order = |a: &usize, b: &usize| {
        let (x, y) = (&rows[*a], &rows[*b]);
        x.rank.cmp(&y.rank).then_with(|| {
            let o = match col.map(|c| (x.cells.get(c), y.cells.get(c))) {
                Some((Some(p), Some(q))) => compare(&p.key, &q.key),
                Some((p, q)) => p.is_some().cmp(&q.is_some()),
                None => Ordering::Equal,
            };
            if sort.descending { o.reverse() } else { o }
        })
    };
    roots.sort_by(order);
    for c in &mut children {
        c.sort_by(order);
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut seen = vec![false; rows.len()];
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        out.push(&rows[i]);
        stack.extend(children[i].iter().rev());
    }
    out
}

fn compare(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Num(x), Key::Num(y)) => x.total_cmp(y),
        (Key::Text(x), Key::Text(y)) => x.cmp(y),
        (Key::Num(_), Key::Text(_)) => Ordering::Less,
        (Key::Text(_), Key::Num(_)) => Ordering::Greater,
    }
}
