//! What the local report (from the store) and the fleet report (from the hub) share: the
//! name of a group, the sums kept per group, the series buckets of a range, and the rows made
//! from them. One definition, so the two reports cannot drift apart.
use std::collections::HashMap;

use super::{Bucket, By, ReportRow, store::bucket_of};

/// More series buckets than this per row is refused (a typo like `--every 1ms` over a month
/// would otherwise allocate billions).
pub const MAX_BUCKETS: i64 = 100_000;

/// The first and last series bucket of `(since, until]` in steps of `every_ms`, or why not.
pub fn series_span(since_ms: i64, until_ms: i64, every_ms: i64) -> Result<(i64, i64), String> {
    if every_ms <= 0 {
        return Err(format!(
            "the series step must be positive, not {every_ms} ms"
        ));
    }
    let (first, last) = (
        bucket_of(since_ms.saturating_add(1), every_ms),
        bucket_of(until_ms, every_ms),
    );
    let n = (last.saturating_sub(first) / every_ms).saturating_add(1);
    if n > MAX_BUCKETS {
        return Err(format!(
            "a series step of {every_ms} ms gives {n} buckets over this range; at most \
             {MAX_BUCKETS} are allowed"
        ));
    }
    Ok((first, last))
}

/// A row's name from the parts its grouping keeps (empty parts count as unknown): process
/// (comm, unit, container), remote (address, DNS name), port (port, protocol), and one part
/// for host, class, unit and container. `curl`, `curl (nginx.service)`,
/// `10.0.0.1 (example.org)`, `443/tcp`, `internet`, …
pub fn name(by: By, parts: [Option<&str>; 3]) -> String {
    let part = |i: usize| parts[i].filter(|s| !s.is_empty());
    let with = |main: &str, extra: Option<&str>| match extra {
        Some(x) => format!("{main} ({x})"),
        None => main.to_string(),
    };
    match by {
        By::Process => with(part(0).unwrap_or("unknown"), part(1).or(part(2))),
        By::Remote => with(part(0).unwrap_or("unknown"), part(1)),
        By::Port => format!(
            "{}/{}",
            part(0).unwrap_or("unknown"),
            part(1).unwrap_or("unknown")
        ),
        By::Host | By::Class => part(0).unwrap_or("unknown").to_string(),
        By::Unit | By::Container => part(0).unwrap_or("(none)").to_string(),
    }
}

/// The sums of one group.
#[derive(Debug, Default)]
pub struct Group {
    tx: u64,
    rx: u64,
    connections: u64,
    series: HashMap<i64, (u64, u64)>,
}

impl Group {
    /// Adds bytes and connections; `bucket`: the series bucket they fall in, when there is a
    /// series.
    pub fn add(&mut self, bucket: Option<i64>, tx: u64, rx: u64, connections: u64) {
        self.tx = self.tx.saturating_add(tx);
        self.rx = self.rx.saturating_add(rx);
        self.connections = self.connections.saturating_add(connections);
        if let Some(b) = bucket {
            let s = self.series.entry(b).or_default();
            s.0 = s.0.saturating_add(tx);
            s.1 = s.1.saturating_add(rx);
        }
    }
}

/// The rows of named groups, busiest first, at most `limit`; with `span` (step, first and
/// last bucket) every row has every bucket of the range, zeros included.
pub fn rows(
    groups: HashMap<String, Group>,
    span: Option<(i64, (i64, i64))>,
    limit: usize,
) -> Vec<ReportRow> {
    let mut rows: Vec<ReportRow> = groups
        .into_iter()
        .map(|(key, g)| ReportRow {
            key,
            tx_bytes: g.tx,
            rx_bytes: g.rx,
            connections: g.connections,
            series: span.map_or_else(Vec::new, |(every, (first, last))| {
                dense_series(first, last, every, |b| {
                    g.series.get(&b).copied().unwrap_or_default()
                })
            }),
        })
        .collect();
    busiest_first(&mut rows, limit);
    rows
}

/// Every bucket from `first` to `last` in steps of `every_ms`, with the sums `at` gives for
/// each start (zeros where there were none): report series are dense.
fn dense_series(
    first: i64,
    last: i64,
    every_ms: i64,
    at: impl Fn(i64) -> (u64, u64),
) -> Vec<Bucket> {
    let mut out = Vec::new();
    let mut b = first;
    while b <= last {
        let (tx_bytes, rx_bytes) = at(b);
        out.push(Bucket {
            start_ms: b,
            tx_bytes,
            rx_bytes,
        });
        match b.checked_add(every_ms) {
            Some(n) => b = n,
            None => break,
        }
    }
    out
}

/// Report rows the busiest (sent + received) first, ties by key, at most `limit`.
fn busiest_first(rows: &mut Vec<ReportRow>, limit: usize) {
    rows.sort_by(|a, b| {
        let (ta, tb) = (
            a.tx_bytes.saturating_add(a.rx_bytes),
            b.tx_bytes.saturating_add(b.rx_bytes),
        );
        tb.cmp(&ta).then_with(|| a.key.cmp(&b.key))
    });
    rows.truncate(limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            name(By::Process, [Some("nginx"), Some(""), Some("abc")]),
            "nginx (abc)"
        );
        assert_eq!(name(By::Process, [None, None, None]), "unknown");
        assert_eq!(name(By::Port, [Some("443"), Some("tcp"), None]), "443/tcp");
        assert_eq!(name(By::Unit, [Some(""), None, None]), "(none)");
    }
}
