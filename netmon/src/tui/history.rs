//! The History tab's data: rates over the last hour from the history store, per minute, for
//! the watched processes (`--pid`, one series each) or else the five busiest processes.
//!
//! [`HistorySource::load`] runs the queries (a plain function, so tests call it on a store
//! they fill); [`HistoryLoader`] runs it on a thread of its own, at most every
//! [`REFRESH`], so a slow disk never holds up the UI: the tab keeps showing the last result
//! until the next one arrives.
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::history::store::{HOUR_MS, MINUTE_MS, Store, StoreError, floor_to};
use crate::history::{Bucket, By, ReportQuery, ReportRow};

/// The time the chart covers, and its step.
pub const WINDOW_MS: i64 = HOUR_MS;
pub const STEP_MS: i64 = MINUTE_MS;
/// Processes charted without --pid.
pub const TOP: usize = 5;
/// Queries are at most this often (not every interval: each is an SQL query).
pub const REFRESH: Duration = Duration::from_secs(10);

/// What the History tab shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum HistoryView {
    /// No answer yet.
    #[default]
    Loading,
    /// Nothing to read: one line saying why and what to do.
    NoStore(String),
    /// The store could not be read (one line).
    Failed(String),
    Loaded(HistoryChart),
}

/// One answer: a series per process over `(since_ms, until_ms]` in buckets of `every_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryChart {
    pub db: PathBuf,
    pub since_ms: i64,
    pub until_ms: i64,
    pub every_ms: i64,
    /// One per watched pid (in --pid order), else the busiest processes first.
    pub series: Vec<Series>,
    /// Per watched pid rather than the busiest processes.
    pub by_pid: bool,
    /// Answered from per-minute roll-ups.
    pub from_rollups: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `curl`, `nginx (nginx.service)`, or with --pid `4242 curl`.
    pub label: String,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Connections that began in the range.
    pub connections: u64,
    /// Every bucket of the range, oldest first (zeros included).
    pub buckets: Vec<Bucket>,
}

impl Series {
    /// The highest per-second rate of one bucket, sent and received.
    pub fn peaks(&self, every_ms: i64) -> (f64, f64) {
        let per_s = |b: u64| b as f64 * 1000.0 / every_ms.max(1) as f64;
        self.buckets.iter().fold((0.0, 0.0), |(t, r), b| {
            (t.max(per_s(b.tx_bytes)), r.max(per_s(b.rx_bytes)))
        })
    }
}

/// Where the history is and what to ask it.
#[derive(Debug, Clone)]
pub struct HistorySource {
    pub db: PathBuf,
    /// Watched processes (`--pid`); empty: the busiest processes.
    pub pids: Vec<u32>,
    /// This run records into `db` (`--record`), so a missing file is only not written yet.
    pub recording: bool,
}

impl HistorySource {
    /// The last hour before `now_ms`, in whole minutes (the minute in progress is left out:
    /// its records are not all written yet).
    pub fn load(&self, now_ms: i64) -> HistoryView {
        let store = match Store::open_read(&self.db) {
            Ok(s) => s,
            Err(StoreError::Missing { .. }) if self.recording => {
                return HistoryView::NoStore(format!(
                    "no history at {} yet: this run's first records are written within a minute",
                    self.db.display()
                ));
            }
            Err(StoreError::Missing { .. }) => {
                return HistoryView::NoStore(format!(
                    "no history at {}: run with --record or start netmon serve",
                    self.db.display()
                ));
            }
            Err(e) => return HistoryView::Failed(e.to_string()),
        };
        let until_ms = floor_to(now_ms, STEP_MS);
        let since_ms = until_ms - WINDOW_MS;
        let query = |pid: Option<u32>, limit: usize| {
            store.report(&ReportQuery {
                since_ms,
                until_ms,
                by: By::Process,
                pid,
                comm: None,
                every_ms: Some(STEP_MS),
                limit,
            })
        };
        let mut chart = HistoryChart {
            db: self.db.clone(),
            since_ms,
            until_ms,
            every_ms: STEP_MS,
            series: Vec::new(),
            by_pid: !self.pids.is_empty(),
            from_rollups: false,
        };
        let empty = || empty_buckets(since_ms, until_ms, STEP_MS);
        if self.pids.is_empty() {
            let report = match query(None, TOP) {
                Ok(r) => r,
                Err(e) => return HistoryView::Failed(e.to_string()),
            };
            chart.from_rollups = report.from_rollups;
            chart.series = report
                .rows
                .into_iter()
                .map(|r| {
                    let mut s = series(r.key.clone(), &[r]);
                    if s.buckets.is_empty() {
                        s.buckets = empty();
                    }
                    s
                })
                .collect();
        } else {
            for &pid in &self.pids {
                // Every process name the pid had in the hour, as one series.
                let report = match query(Some(pid), usize::MAX) {
                    Ok(r) => r,
                    Err(e) => return HistoryView::Failed(e.to_string()),
                };
                chart.from_rollups |= report.from_rollups;
                let names: Vec<&str> = report.rows.iter().map(|r| r.key.as_str()).collect();
                let label = if names.is_empty() {
                    pid.to_string()
                } else {
                    format!("{pid} {}", names.join(", "))
                };
                let mut s = series(label, &report.rows);
                if s.buckets.is_empty() {
                    s.buckets = empty();
                }
                chart.series.push(s);
            }
        }
        HistoryView::Loaded(chart)
    }
}

/// Rows added up into one series (their buckets are the same steps).
fn series(label: String, rows: &[ReportRow]) -> Series {
    let mut s = Series {
        label,
        tx_bytes: 0,
        rx_bytes: 0,
        connections: 0,
        buckets: Vec::new(),
    };
    for r in rows {
        s.tx_bytes = s.tx_bytes.saturating_add(r.tx_bytes);
        s.rx_bytes = s.rx_bytes.saturating_add(r.rx_bytes);
        s.connections = s.connections.saturating_add(r.connections);
        if s.buckets.is_empty() {
            s.buckets = r.series.clone();
            continue;
        }
        for (b, add) in s.buckets.iter_mut().zip(&r.series) {
            b.tx_bytes = b.tx_bytes.saturating_add(add.tx_bytes);
            b.rx_bytes = b.rx_bytes.saturating_add(add.rx_bytes);
        }
    }
    s
}

/// The buckets of `(since, until]` (both multiples of `every`), all zero.
fn empty_buckets(since_ms: i64, until_ms: i64, every_ms: i64) -> Vec<Bucket> {
    (0..(until_ms - since_ms) / every_ms)
        .map(|i| Bucket {
            start_ms: since_ms + i * every_ms,
            ..Bucket::default()
        })
        .collect()
}

/// Runs [`HistorySource::load`] on a thread of its own when asked, at most every
/// [`REFRESH`], one query at a time. The thread ends when the loader is dropped.
pub struct HistoryLoader {
    requests: std_mpsc::Sender<i64>,
    results: mpsc::UnboundedReceiver<HistoryView>,
    last_asked: Option<Instant>,
    in_flight: bool,
}

impl HistoryLoader {
    pub fn start(source: HistorySource) -> Self {
        let (requests, asked) = std_mpsc::channel::<i64>();
        let (answer, results) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("netmon-history-view".into())
            .spawn(move || {
                for now_ms in asked {
                    if answer.send(source.load(now_ms)).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot read the history for the History tab: {e}");
        }
        HistoryLoader {
            requests,
            results,
            last_asked: None,
            in_flight: false,
        }
    }

    /// Asks for a fresh answer unless one is on its way or the last was asked less than
    /// [`REFRESH`] ago.
    pub fn refresh(&mut self, now: Instant) {
        if self.in_flight
            || self
                .last_asked
                .is_some_and(|t| now.duration_since(t) < REFRESH)
        {
            return;
        }
        if self.requests.send(crate::history::when::now_ms()).is_ok() {
            self.in_flight = true;
            self.last_asked = Some(now);
        }
    }

    /// The next answer; never resolves when the thread is gone. Cancel-safe.
    pub async fn next(&mut self) -> HistoryView {
        match self.results.recv().await {
            Some(v) => {
                self.in_flight = false;
                v
            }
            None => std::future::pending().await,
        }
    }
}
