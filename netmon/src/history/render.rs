//! What `netmon report` and `netmon flows` print: tables for people, JSON lines for jq and
//! SIEMs, CSV for spreadsheets. Pure: no I/O, no clock; the caller queries the store and
//! writes the returned text.
//!
//! Tables show times in local time ([`format_local`]); JSON and CSV in RFC 3339 UTC
//! ([`format_rfc3339`]). Widths count characters, not terminal cells.
use std::fmt::Write;

use serde::Serialize;

use super::when::{format_local, format_rfc3339};
use super::{Bucket, By, FlowRecord, ReportRow};
use crate::sink::human::{self, cut};

/// What a report covered, for its title line and its JSON and CSV fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportHeader {
    pub since_ms: i64,
    pub until_ms: i64,
    pub by: By,
    /// The sums came from the per-minute roll-ups (raw flows of the range were pruned).
    pub from_rollups: bool,
    /// Only raw flows could answer and retention removed them before `since_ms`, which is
    /// therefore later than asked.
    pub raw_gone: bool,
    /// The step of the rows' series, when they have one.
    pub every_ms: Option<i64>,
}

/// A time formatter: [`format_local`] for people; tests pass a fixed zone.
type TimeFmt = fn(i64) -> String;

/// Width of the SENT, RECEIVED and TOTAL columns ("1023 KiB", "16384 PiB").
const NUM: usize = 10;
const CONNS: usize = 7;
/// The narrowest table drawn; narrower terminals get lines cut at the given width.
const MIN_WIDTH: usize = 60;
/// A sparkline gets at least this many cells (or one per bucket when there are fewer).
const MIN_SPARK: usize = 12;
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Why a report starts later than asked: `--pid`, and `--comm` by remote, port or class, need
/// raw flows, which retention removed before the start shown.
const RAW_GONE: &str = "(later than asked: raw flows before it are gone, --raw-retention)";

/// The report as a table: a title line, one line per row (busiest first, as given), a totals
/// line. Every line is at most `width` characters; the group key is cut to make room.
pub fn report_table(rows: &[ReportRow], h: &ReportHeader, width: usize) -> String {
    report_table_in(rows, h, width, format_local)
}

fn report_table_in(rows: &[ReportRow], h: &ReportHeader, width: usize, fmt: TimeFmt) -> String {
    let range = format!("{} – {}", fmt(h.since_ms), fmt(h.until_ms));
    if rows.is_empty() {
        return format!(
            "{}\n",
            cut(
                &format!(
                    "no traffic recorded between {} and {}",
                    fmt(h.since_ms),
                    fmt(h.until_ms)
                ),
                width
            )
        );
    }
    let mut title = format!("netmon report  {range}  by {}", by_name(h.by));
    if let Some(every) = h.every_ms {
        let _ = write!(title, "  every {}", span(every));
    }
    // The roll-up note on a line of its own when it would be cut.
    const ROLLUPS: &str = "from per-minute roll-ups";
    let mut note = None;
    if h.from_rollups {
        if title.chars().count() + ROLLUPS.len() + 4 <= width {
            let _ = write!(title, "  ({ROLLUPS})");
        } else {
            note = Some(ROLLUPS.to_string());
        }
    }

    let buckets = rows.iter().map(|r| r.series.len()).max().unwrap_or(0);
    let table_w = width.max(MIN_WIDTH);
    // Key, then " SENT RECEIVED TOTAL CONNS", then "  sparkline".
    let numbers = 3 * (NUM + 1) + CONNS + 1;
    let budget = table_w.saturating_sub(numbers);
    let spark_gap = if buckets > 0 { 2 } else { 0 };
    let longest = rows
        .iter()
        .map(|r| r.key.chars().count())
        .chain([key_title(h.by).len(), "TOTAL".len()])
        .max()
        .unwrap_or(0);
    let (key_w, spark_w) = if buckets > 0 {
        let room = budget.saturating_sub(spark_gap);
        let key_w = longest.min(room.saturating_sub(buckets.min(MIN_SPARK)));
        (key_w, buckets.min(room - key_w))
    } else {
        (longest.min(budget), 0)
    };

    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(cut(&text, width).trim_end());
        out.push('\n');
    };
    line(title);
    if let Some(note) = note {
        line(note);
    }
    if h.raw_gone {
        line(RAW_GONE.to_string());
    }
    let mut head = format!(
        "{:<key_w$} {:>NUM$} {:>NUM$} {:>NUM$} {:>CONNS$}",
        key_title(h.by),
        "SENT",
        "RECEIVED",
        "TOTAL",
        "CONNS"
    );
    if spark_w > 0 {
        // What one cell covers, when every cell covers the same number of buckets.
        let label = match h.every_ms {
            Some(every) if buckets % spark_w == 0 => {
                format!("PER {}", span(every * (buckets / spark_w) as i64))
            }
            _ => "TRAFFIC".to_string(),
        };
        let _ = write!(head, "  {}", cut(&label, spark_w));
    }
    line(head);
    let row_line = |key: &str, tx: u64, rx: u64, conns: u64, series: &[Bucket]| {
        let mut l = format!(
            "{:<key_w$} {:>NUM$} {:>NUM$} {:>NUM$} {:>CONNS$}",
            cut(key, key_w),
            human::bytes(tx),
            human::bytes(rx),
            human::bytes(tx.saturating_add(rx)),
            conns
        );
        if spark_w > 0 {
            let _ = write!(l, "  {}", sparkline(series, spark_w));
        }
        l
    };
    for r in rows {
        line(row_line(
            &r.key,
            r.tx_bytes,
            r.rx_bytes,
            r.connections,
            &r.series,
        ));
    }
    let sum = |f: fn(&ReportRow) -> u64| rows.iter().map(f).fold(0u64, u64::saturating_add);
    let mut total_series: Vec<Bucket> = Vec::new();
    for r in rows {
        for (i, b) in r.series.iter().enumerate() {
            if i == total_series.len() {
                total_series.push(Bucket {
                    start_ms: b.start_ms,
                    ..Bucket::default()
                });
            }
            total_series[i].tx_bytes = total_series[i].tx_bytes.saturating_add(b.tx_bytes);
            total_series[i].rx_bytes = total_series[i].rx_bytes.saturating_add(b.rx_bytes);
        }
    }
    line(row_line(
        "TOTAL",
        sum(|r| r.tx_bytes),
        sum(|r| r.rx_bytes),
        sum(|r| r.connections),
        &total_series,
    ));
    out
}

/// The buckets merged into at most `cells` runs of adjacent buckets, each run as long as
/// the others give or take one; sums are kept, each run starts at its first bucket.
pub fn merge_buckets(series: &[Bucket], cells: usize) -> Vec<Bucket> {
    let n = series.len();
    if cells == 0 || n <= cells {
        return series.to_vec();
    }
    (0..cells)
        .map(|i| {
            let run = &series[i * n / cells..(i + 1) * n / cells];
            run.iter().fold(
                Bucket {
                    start_ms: run[0].start_ms,
                    ..Bucket::default()
                },
                |mut acc, b| {
                    acc.tx_bytes = acc.tx_bytes.saturating_add(b.tx_bytes);
                    acc.rx_bytes = acc.rx_bytes.saturating_add(b.rx_bytes);
                    acc
                },
            )
        })
        .collect()
}

/// Sent plus received per bucket as ▁…█ scaled to the series' own largest (merged) bucket;
/// a blank for a bucket with no traffic, ▁ for the smallest that had some.
pub fn sparkline(series: &[Bucket], cells: usize) -> String {
    let merged = merge_buckets(series, cells);
    let totals: Vec<u128> = merged
        .iter()
        .map(|b| u128::from(b.tx_bytes) + u128::from(b.rx_bytes))
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    totals
        .iter()
        .map(|&v| {
            if v == 0 {
                ' '
            } else {
                // 1..=8, rounding up so any traffic shows.
                let level = (v * 8).div_ceil(max).clamp(1, 8) as usize;
                SPARKS[level - 1]
            }
        })
        .collect()
}

#[derive(Serialize)]
struct JsonRow<'a> {
    since: String,
    until: String,
    by: By,
    key: &'a str,
    tx_bytes: u64,
    rx_bytes: u64,
    connections: u64,
    from_rollups: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw_gone: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    every_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<Vec<JsonBucket>>,
}

#[derive(Serialize)]
struct JsonBucket {
    start: String,
    tx_bytes: u64,
    rx_bytes: u64,
}

/// JSON lines, one per row, each complete on its own (range and grouping included); times
/// in RFC 3339. With `every_ms`, `series` is an array of `{start, tx_bytes, rx_bytes}`.
/// No rows: no lines.
pub fn report_json(rows: &[ReportRow], h: &ReportHeader) -> String {
    let mut out = String::new();
    for r in rows {
        let row = JsonRow {
            since: format_rfc3339(h.since_ms),
            until: format_rfc3339(h.until_ms),
            by: h.by,
            key: &r.key,
            tx_bytes: r.tx_bytes,
            rx_bytes: r.rx_bytes,
            connections: r.connections,
            from_rollups: h.from_rollups,
            raw_gone: h.raw_gone,
            every_ms: h.every_ms,
            series: h.every_ms.map(|_| {
                r.series
                    .iter()
                    .map(|b| JsonBucket {
                        start: format_rfc3339(b.start_ms),
                        tx_bytes: b.tx_bytes,
                        rx_bytes: b.rx_bytes,
                    })
                    .collect()
            }),
        };
        out.push_str(&serde_json::to_string(&row).expect("plain data serialises"));
        out.push('\n');
    }
    out
}

/// CSV (RFC 4180, `\n` line ends): a header, then one line per row; with `every_ms`, one
/// line per row and bucket, whose bytes are the bucket's (a row without buckets keeps one
/// line with its sums and an empty `bucket_start`).
pub fn report_csv(rows: &[ReportRow], h: &ReportHeader) -> String {
    let since = format_rfc3339(h.since_ms);
    let until = format_rfc3339(h.until_ms);
    let by = by_name(h.by);
    let mut out = String::new();
    let mut record = |fields: &[&str]| {
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    };
    if h.every_ms.is_some() {
        record(&[
            "since",
            "until",
            "by",
            "key",
            "bucket_start",
            "tx_bytes",
            "rx_bytes",
        ]);
        for r in rows {
            if r.series.is_empty() {
                let (tx, rx) = (r.tx_bytes.to_string(), r.rx_bytes.to_string());
                record(&[&since, &until, by, &r.key, "", &tx, &rx]);
            }
            for b in &r.series {
                let start = format_rfc3339(b.start_ms);
                let (tx, rx) = (b.tx_bytes.to_string(), b.rx_bytes.to_string());
                record(&[&since, &until, by, &r.key, &start, &tx, &rx]);
            }
        }
    } else {
        record(&[
            "since",
            "until",
            "by",
            "key",
            "tx_bytes",
            "rx_bytes",
            "connections",
        ]);
        for r in rows {
            let (tx, rx) = (r.tx_bytes.to_string(), r.rx_bytes.to_string());
            let conns = r.connections.to_string();
            record(&[&since, &until, by, &r.key, &tx, &rx, &conns]);
        }
    }
    out
}

/// A CSV field, quoted when it holds a comma, a quote, a line break or edge spaces.
fn csv_field(s: &str) -> String {
    let needs = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The flow table's column widths. From [`FLOW_WIDE`] columns on, everything; below it the
/// class column goes; below [`FLOW_NARROW`] the end time also loses its year and pid/comm
/// narrows. The address column takes what is left (at least [`FLOW_MIN_ADDR`]).
struct FlowLayout {
    time: usize,
    who: usize,
    /// 0: no class column.
    class: usize,
}
const FLOW_WIDE: usize = 140;
const FLOW_NARROW: usize = 100;
const FLOW_BYTES: usize = 8;
const FLOW_DUR: usize = 6;
const FLOW_CLOSE: usize = 8;
const FLOW_MIN_ADDR: usize = 12;

/// `netmon flows`: a header line, then one line per record, oldest first as given: end time
/// (local), pid/comm, proto, local → remote (name), class, sent, received, duration (of the
/// record's stretch; on a connection's last record, since it opened) and how it closed
/// (`open` on a periodic update). Lines are at most `width` characters.
pub fn flows_text(flows: &[FlowRecord], width: usize) -> String {
    flows_text_in(flows, width, format_local)
}

fn flows_text_in(flows: &[FlowRecord], width: usize, fmt: TimeFmt) -> String {
    let l = match width {
        FLOW_WIDE.. => FlowLayout {
            time: 19,
            who: 20,
            class: 10,
        },
        FLOW_NARROW.. => FlowLayout {
            time: 19,
            who: 16,
            class: 0,
        },
        _ => FlowLayout {
            time: 14,
            who: 12,
            class: 0,
        },
    };
    let short_time = l.time < 19;
    let fixed = (l.time + 1)
        + (l.who + 1)
        + (3 + 1)
        + 1
        + if l.class == 0 { 0 } else { l.class + 1 }
        + 2 * (FLOW_BYTES + 1)
        + (FLOW_DUR + 1)
        + FLOW_CLOSE;
    let addr_w = width.saturating_sub(fixed).max(FLOW_MIN_ADDR);
    let mut out = String::new();
    let mut line = |cols: [&str; 9]| {
        let [time, who, proto, addr, class, tx, rx, dur, close] = cols;
        let mut s = format!(
            "{:<tw$} {:<ww$} {:<3} {:<addr_w$} ",
            cut(time, l.time),
            cut(who, l.who),
            cut(proto, 3),
            cut(addr, addr_w),
            tw = l.time,
            ww = l.who,
        );
        if l.class > 0 {
            let _ = write!(s, "{:<cw$} ", cut(class, l.class), cw = l.class);
        }
        let _ = write!(
            s,
            "{tx:>FLOW_BYTES$} {rx:>FLOW_BYTES$} {dur:>FLOW_DUR$} {close}"
        );
        out.push_str(cut(&s, width).trim_end());
        out.push('\n');
    };
    line([
        "END",
        "PID/COMM",
        "PRO",
        "LOCAL → REMOTE (NAME)",
        "CLASS",
        "SENT",
        "RECEIVED",
        "DUR",
        "CLOSED",
    ]);
    for f in flows {
        let time = fmt(f.to_ms);
        let time = if short_time {
            // "MM-DD HH:MM:SS": the year goes first.
            time.get(5..).unwrap_or(&time).to_string()
        } else {
            time
        };
        let who = format!("{}/{}", f.pid, f.comm);
        let addr = flow_addresses(f, addr_w);
        let (tx, rx) = (human::bytes(f.tx_bytes), human::bytes(f.rx_bytes));
        let since = if f.ended { f.opened_ms } else { f.from_ms };
        let dur = duration(f.to_ms.saturating_sub(since));
        let close = closed(f);
        line([
            &time, &who, &f.proto, &addr, &f.class, &tx, &rx, &dur, close,
        ]);
    }
    out
}

/// `local → remote (name)`; the local address shrinks to its port when the whole does not fit.
fn flow_addresses(f: &FlowRecord, width: usize) -> String {
    let remote = match (f.remote, &f.remote_name) {
        (Some(r), Some(n)) => format!("{r} ({n})"),
        (Some(r), None) => r.to_string(),
        (None, _) => "*".to_string(),
    };
    let full = format!(
        "{} → {remote}",
        f.local.map_or_else(|| "*".to_string(), |a| a.to_string())
    );
    if full.chars().count() <= width {
        return full;
    }
    let port = f
        .local
        .map_or_else(|| "*".to_string(), |a| format!(":{}", a.port()));
    format!("{port} → {remote}")
}

/// How a flow record ends: `open` (a periodic update), the TCP closer, or `ended`.
fn closed(f: &FlowRecord) -> &str {
    if !f.ended {
        return "open";
    }
    match f.closed_by.as_deref() {
        Some("reset-sent") => "rst-sent",
        Some("reset-received") => "rst-recv",
        Some(other) => other,
        None => "ended",
    }
}

/// A duration as people read it: `850ms`, `12.3s`, `4m05s`, `2h03m`, `3d04h`.
fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

#[derive(Serialize)]
struct FlowJson<'a> {
    /// The end of the record's stretch: the event time a SIEM indexes.
    time: String,
    from: String,
    opened: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_port: Option<u16>,
    #[serde(flatten)]
    record: &'a FlowRecord,
}

/// One flow record as one JSON line (no line end): every field of [`FlowRecord`] (raw
/// `*_ms` times included), plus `time` (= `to_ms`), `from` and `opened` in RFC 3339, and the
/// addresses split into `*_ip` and `*_port`.
pub fn flow_json(f: &FlowRecord) -> String {
    let split = |a: Option<std::net::SocketAddr>| {
        (
            a.map(|a| a.ip().to_canonical().to_string()),
            a.map(|a| a.port()),
        )
    };
    let (local_ip, local_port) = split(f.local);
    let (remote_ip, remote_port) = split(f.remote);
    serde_json::to_string(&FlowJson {
        time: format_rfc3339(f.to_ms),
        from: format_rfc3339(f.from_ms),
        opened: format_rfc3339(f.opened_ms),
        local_ip,
        local_port,
        remote_ip,
        remote_port,
        record: f,
    })
    .expect("plain data serialises")
}

fn by_name(by: By) -> &'static str {
    match by {
        By::Process => "process",
        By::Remote => "remote",
        By::Host => "host",
        By::Unit => "unit",
        By::Container => "container",
        By::Port => "port",
        By::Class => "class",
    }
}

fn key_title(by: By) -> &'static str {
    match by {
        By::Process => "PROCESS",
        By::Remote => "REMOTE",
        By::Host => "HOST",
        By::Unit => "UNIT",
        By::Container => "CONTAINER",
        By::Port => "PORT",
        By::Class => "CLASS",
    }
}

/// A step as the largest unit that divides it: `1h`, `15m`, `90s`, `1500ms`.
fn span(ms: i64) -> String {
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests;
