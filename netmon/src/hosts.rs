//! Per-remote-host rates, as iftop shows them: for each remote host, what every process of
//! this machine sent to and received from it per second, averaged over the last 2, 10 and
//! 40 seconds, next to the cumulative bytes.
//!
//! [`HostRates`] is fed each snapshot's [`HostRow`]s (cumulative since netmon started) and
//! keeps a short history of samples per host; a window's rate is the difference of the
//! cumulative bytes at its two edges divided by the time between them. [`hosts_table`] is
//! the plain table of `netmon run --by host`; the TUI's Hosts tab shows the same rows.
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::net::IpAddr;

use serde::Serialize;

use crate::aggregate::HostRow;
use crate::sink::human::{self, cut};

/// The averaging windows, shortest first.
pub const WINDOWS_MS: [u64; 3] = [2_000, 10_000, 40_000];
const LONGEST_MS: u64 = WINDOWS_MS[2];
/// Samples closer together than this are merged (the newer replaces the older), so a host
/// holds at most about 40 s / 250 ms samples however short the interval.
const MIN_SPACING_MS: u64 = 250;

/// One host's rates and totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRateRow {
    pub remote: IpAddr,
    pub name: Option<String>,
    pub class: String,
    /// Bytes per second over [`WINDOWS_MS`] (2 s, 10 s, 40 s).
    pub tx_rate: [f64; 3],
    pub rx_rate: [f64; 3],
    /// Cumulative payload bytes, as the last snapshot that listed the host said.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub connections: u64,
    pub processes: u64,
    /// How far back this host's samples reach (at most 40 s). A window longer than this is
    /// averaged over this much only: the host is new, or netmon just started.
    pub history_ms: u64,
    /// `history_ms` is shorter than the longest window.
    pub partial: bool,
}

impl HostRateRow {
    pub fn total_rate(&self, window: usize) -> f64 {
        self.tx_rate[window] + self.rx_rate[window]
    }
}

/// Cumulative bytes at one time. `tx`/`rx` only grow (see [`HostRates::update`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at_ms: u64,
    tx: u64,
    rx: u64,
}

#[derive(Debug, Clone)]
struct Host {
    /// Oldest first; the first one at or before `now - 40 s` once there is that much.
    samples: VecDeque<Sample>,
    /// What the last snapshot that listed it said (cumulative bytes, name, counts).
    last: HostRow,
    last_seen_ms: u64,
}

/// Rates per remote host from successive snapshots. Bounded: a host not listed for more
/// than 40 s is forgotten, and samples older than the longest window are dropped.
#[derive(Debug, Clone, Default)]
pub struct HostRates {
    hosts: HashMap<IpAddr, Host>,
    /// Time of the last update.
    now_ms: u64,
}

impl HostRates {
    pub fn new() -> Self {
        HostRates::default()
    }

    /// Takes one snapshot's hosts (`Snapshot::hosts`), at `at_ms` (`Snapshot::at_ms`).
    ///
    /// A host's first sample is only its starting point: what it moved before is in its
    /// cumulative bytes, not in its rates. A host listed with fewer bytes than before (the
    /// aggregator forgot it, then met it again) counts what it now shows as moved since its
    /// previous sample, never a negative amount. A host missing from a snapshot is taken as
    /// idle meanwhile. Time going backwards (a new source) starts over.
    pub fn update(&mut self, at_ms: u64, hosts: &[HostRow]) {
        if at_ms < self.now_ms {
            self.hosts.clear();
        }
        self.now_ms = at_ms;
        // IPv4-mapped IPv6 and IPv4 are the same peer; duplicates are added up.
        let mut merged: HashMap<IpAddr, HostRow> = HashMap::with_capacity(hosts.len());
        for h in hosts {
            let ip = h.remote.to_canonical();
            match merged.get_mut(&ip) {
                Some(m) => {
                    m.tx_bytes = m.tx_bytes.saturating_add(h.tx_bytes);
                    m.rx_bytes = m.rx_bytes.saturating_add(h.rx_bytes);
                    m.connections += h.connections;
                    m.processes += h.processes;
                    if m.name.is_none() {
                        m.name.clone_from(&h.name);
                    }
                }
                None => {
                    merged.insert(
                        ip,
                        HostRow {
                            remote: ip,
                            ..h.clone()
                        },
                    );
                }
            }
        }
        for (ip, row) in merged {
            match self.hosts.get_mut(&ip) {
                Some(host) => host.push(at_ms, row),
                None => {
                    let first = Sample {
                        at_ms,
                        tx: 0,
                        rx: 0,
                    };
                    self.hosts.insert(
                        ip,
                        Host {
                            samples: VecDeque::from([first]),
                            last: row,
                            last_seen_ms: at_ms,
                        },
                    );
                }
            }
        }
        let edge = at_ms.saturating_sub(LONGEST_MS);
        self.hosts.retain(|_, h| h.last_seen_ms >= edge);
        for h in self.hosts.values_mut() {
            // Keep one sample at or before the 40-s edge: the window's start.
            while h.samples.len() >= 2 && h.samples[1].at_ms <= edge {
                h.samples.pop_front();
            }
        }
    }

    /// Every host remembered, the busiest over 10 s first (then over 40 s, then the most
    /// bytes, then by address).
    pub fn rows(&self) -> Vec<HostRateRow> {
        let mut rows: Vec<HostRateRow> = self
            .hosts
            .iter()
            .map(|(ip, h)| h.row(*ip, self.now_ms))
            .collect();
        rows.sort_by(|a, b| {
            b.total_rate(1)
                .total_cmp(&a.total_rate(1))
                .then(b.total_rate(2).total_cmp(&a.total_rate(2)))
                .then((b.tx_bytes + b.rx_bytes).cmp(&(a.tx_bytes + a.rx_bytes)))
                .then(a.remote.cmp(&b.remote))
        });
        rows
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

impl Host {
    fn push(&mut self, at_ms: u64, row: HostRow) {
        let grew = |now: u64, before: u64| {
            // Fewer bytes than before: counted again from zero, so what it shows is new.
            if now >= before { now - before } else { now }
        };
        let last = *self.samples.back().expect("a host has a sample");
        let s = Sample {
            at_ms,
            tx: last
                .tx
                .saturating_add(grew(row.tx_bytes, self.last.tx_bytes)),
            rx: last
                .rx
                .saturating_add(grew(row.rx_bytes, self.last.rx_bytes)),
        };
        let n = self.samples.len();
        let too_close = n >= 2 && last.at_ms - self.samples[n - 2].at_ms < MIN_SPACING_MS;
        if at_ms == last.at_ms || too_close {
            *self.samples.back_mut().expect("non-empty") = s;
        } else {
            self.samples.push_back(s);
        }
        self.last = row;
        self.last_seen_ms = at_ms;
    }

    fn row(&self, ip: IpAddr, now_ms: u64) -> HostRateRow {
        let newest = *self.samples.back().expect("a host has a sample");
        let oldest = *self.samples.front().expect("a host has a sample");
        let rate = |window: u64| -> (f64, f64) {
            let edge = now_ms.saturating_sub(window);
            // The latest sample at or before the edge, else the oldest there is.
            let start = self
                .samples
                .iter()
                .rev()
                .find(|s| s.at_ms <= edge)
                .unwrap_or(&oldest);
            // A host not listed lately moved nothing since: its value now is its newest.
            let span = now_ms.saturating_sub(start.at_ms);
            if span == 0 {
                return (0.0, 0.0);
            }
            let per_s = |d: u64| d as f64 * 1000.0 / span as f64;
            (per_s(newest.tx - start.tx), per_s(newest.rx - start.rx))
        };
        let [r2, r10, r40] = WINDOWS_MS.map(rate);
        let history_ms = now_ms.saturating_sub(oldest.at_ms).min(LONGEST_MS);
        HostRateRow {
            remote: ip,
            name: self.last.name.clone(),
            class: self.last.class.clone(),
            tx_rate: [r2.0, r10.0, r40.0],
            rx_rate: [r2.1, r10.1, r40.1],
            tx_bytes: self.last.tx_bytes,
            rx_bytes: self.last.rx_bytes,
            connections: self.last.connections,
            processes: self.last.processes,
            history_ms,
            partial: history_ms < LONGEST_MS,
        }
    }
}

/// Width of each rate and the total column ("1023 KiB", "10.5 MiB").
const NUM: usize = 8;
const CLASS: usize = 10;
/// Below this width the NAME and CLASS columns go and HOST shows the name when known.
const WIDE: usize = 110;

/// The plain table of `netmon run --by host`: a title line (how much history the rates
/// have), two header lines, one line per row as given. Rates are bytes per second; TOTAL is
/// sent plus received since netmon started. Lines are at most `width` characters.
pub fn hosts_table(rows: &[HostRateRow], width: usize) -> String {
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(cut(text, width).trim_end());
        out.push('\n');
    };
    let history = rows.iter().map(|r| r.history_ms).max().unwrap_or(0);
    let mut title = format!(
        "{} remote host{}  rates per second over 2 s, 10 s, 40 s",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    if history < LONGEST_MS {
        let _ = write!(
            title,
            " (only {:.0} s of history yet: longer windows average over it)",
            history as f64 / 1000.0
        );
    }
    line(&title);
    let wide = width >= WIDE;
    let numbers = 7 * (NUM + 1);
    let addr_len = rows
        .iter()
        .map(|r| host_cell(r, wide).chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let (host_w, name_w) = if wide {
        let room = width - numbers - (CLASS + 1) - 1;
        let host_w = addr_len.min(room.saturating_sub(12)).max(4);
        (host_w, room - host_w - 1)
    } else {
        (width.saturating_sub(numbers).max(15), 0)
    };
    let prefix = |host: &str, name: &str, class: &str| {
        if wide {
            format!("{host:<host_w$} {name:<name_w$} {class:<CLASS$}")
        } else {
            format!("{host:<host_w$}")
        }
    };
    let rule = |label: &str| {
        let w = 3 * NUM + 2;
        let pad = w.saturating_sub(label.chars().count() + 2);
        format!(
            "{} {label} {}",
            "─".repeat(pad / 2),
            "─".repeat(pad - pad / 2)
        )
    };
    line(&format!(
        "{} {} {}",
        prefix("", "", ""),
        rule("SENT/s"),
        rule("RECEIVED/s")
    ));
    line(&format!(
        "{} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$}",
        prefix("HOST", "NAME", "CLASS"),
        "2s",
        "10s",
        "40s",
        "2s",
        "10s",
        "40s",
        "TOTAL"
    ));
    for r in rows {
        let host = host_cell(r, wide);
        let name = r.name.as_deref().unwrap_or("");
        let rate = |v: f64| human::bytes(v.max(0.0).round() as u64);
        line(&format!(
            "{} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$} {:>NUM$}",
            prefix(
                &cut(&host, host_w),
                &cut(name, name_w),
                &cut(&r.class, CLASS)
            ),
            rate(r.tx_rate[0]),
            rate(r.tx_rate[1]),
            rate(r.tx_rate[2]),
            rate(r.rx_rate[0]),
            rate(r.rx_rate[1]),
            rate(r.rx_rate[2]),
            human::bytes(r.tx_bytes.saturating_add(r.rx_bytes)),
        ));
    }
    out
}

/// The address; in the narrow table the name instead when there is one.
fn host_cell(r: &HostRateRow, wide: bool) -> String {
    match (&r.name, wide) {
        (Some(n), false) => n.clone(),
        _ => r.remote.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
