//! `netmon fleet flows` and `netmon fleet report`: the flow records of every agent, read from
//! the hub's NETMON_FLOWS, printed like the local `netmon flows` and `netmon report`.
//!
//! A record counts once: the server drops a resend within its duplicate window, and
//! [`Selection`] and [`Sums`] drop an identity (host, boot, seq) seen before, so a replay beyond
//! that window does not count twice. Sums are exact (raw records, no roll-ups).
use std::{collections::HashMap, io::Write, process::ExitCode};

use anyhow::Result;
use async_nats::jetstream;

use super::{Dedup, FleetFlowsArgs, FleetRangeArgs, FleetReportArgs, decode, filter_subject};
use crate::error::{AppError, Exit};
use crate::fleet::{FLOWS_STREAM, FleetFlow, Kind};
use crate::history::{
    By, FlowRecord, ReportQuery, ReportRow,
    cmd::time_range,
    group::{self, Group},
    render,
    render::ReportHeader,
    store::bucket_of,
    when,
};

/// A report row's key for a record, named as the local report names its groups.
pub fn report_key(by: By, f: &FlowRecord) -> String {
    let (ip, port);
    let parts: [Option<&str>; 3] = match by {
        By::Process => [Some(&f.comm), Some(&f.unit), Some(&f.container)],
        By::Remote => {
            ip = f.remote.map(|a| a.ip().to_string());
            [ip.as_deref(), f.remote_name.as_deref(), None]
        }
        By::Port => {
            port = f.service_port().map(|p| p.to_string());
            [port.as_deref(), Some(&f.proto), None]
        }
        By::Host => [Some(&f.host), None, None],
        By::Class => [Some(&f.class), None, None],
        By::Unit => [Some(&f.unit), None, None],
        By::Container => [Some(&f.container), None, None],
    };
    group::name(by, parts)
}

/// A report's sums, one record at a time (pure: no I/O, no clock).
pub struct Sums {
    q: ReportQuery,
    groups: HashMap<String, Group>,
    pub dedup: Dedup,
}

impl Sums {
    pub fn new(q: ReportQuery) -> Sums {
        Sums {
            q,
            groups: HashMap::new(),
            dedup: Dedup::default(),
        }
    }

    /// Counts a record when its stretch ends in the range and its identity is new.
    pub fn add(&mut self, f: &FleetFlow) {
        let r = &f.flow;
        if r.to_ms <= self.q.since_ms || r.to_ms > self.q.until_ms {
            return;
        }
        if self.q.comm.as_ref().is_some_and(|c| *c != r.comm)
            || self.q.pid.is_some_and(|p| p != r.pid)
        {
            return;
        }
        if !self.dedup.first(&r.host, &f.boot, f.seq) {
            return;
        }
        self.groups
            .entry(report_key(self.q.by, r))
            .or_default()
            .add(
                self.q.every_ms.map(|e| bucket_of(r.to_ms, e)),
                r.tx_bytes,
                r.rx_bytes,
                u64::from(r.segment == 0),
            );
    }

    /// The rows, busiest (sent + received) first, at most the query's limit; with a series
    /// step, every row has every bucket of the range (zeros included).
    pub fn rows(self) -> Vec<ReportRow> {
        let span = self.q.every_ms.and_then(|e| {
            group::series_span(self.q.since_ms, self.q.until_ms, e)
                .ok()
                .map(|s| (e, s))
        });
        group::rows(self.groups, span, self.q.limit)
    }
}

/// The report of some records: its rows and how many duplicates were dropped.
pub fn aggregate<'a>(
    flows: impl IntoIterator<Item = &'a FleetFlow>,
    q: &ReportQuery,
) -> (Vec<ReportRow>, u64) {
    let mut s = Sums::new(q.clone());
    for f in flows {
        s.add(f);
    }
    let dropped = s.dedup.dropped;
    (s.rows(), dropped)
}

/// `fleet flows`: the records in the range, each once, oldest (`to_ms`) first.
#[derive(Default)]
pub struct Selection {
    since_ms: i64,
    until_ms: i64,
    pub flows: Vec<FleetFlow>,
    pub dedup: Dedup,
}

impl Selection {
    pub fn new(since_ms: i64, until_ms: i64) -> Selection {
        Selection {
            since_ms,
            until_ms,
            ..Default::default()
        }
    }

    pub fn add(&mut self, f: FleetFlow) {
        if f.flow.to_ms <= self.since_ms || f.flow.to_ms > self.until_ms {
            return;
        }
        if self.dedup.first(&f.flow.host, &f.boot, f.seq) {
            self.flows.push(f);
        }
    }

    /// Oldest first (then by host and position), at most `limit`.
    pub fn finish(mut self, limit: Option<usize>) -> (Vec<FleetFlow>, u64) {
        self.flows.sort_by(|a, b| {
            (a.flow.to_ms, &a.flow.host, &a.boot, a.seq).cmp(&(
                b.flow.to_ms,
                &b.flow.host,
                &b.boot,
                b.seq,
            ))
        });
        if let Some(l) = limit {
            self.flows.truncate(l);
        }
        (self.flows, self.dedup.dropped)
    }
}

/// One record as a JSON line: the local `netmon flows --json` line plus `site`, `boot` and
/// `seq` (the record's identity on the hub).
pub fn fleet_flow_json(f: &FleetFlow) -> String {
    let local = render::flow_json(&f.flow);
    let head = serde_json::json!({ "site": f.site, "boot": f.boot, "seq": f.seq }).to_string();
    // Both are objects: splice the fields of the first in front of the second's.
    match (head.strip_suffix('}'), local.strip_prefix('{')) {
        (Some(h), Some(l)) if l != "}" => format!("{h},{l}"),
        _ => head,
    }
}

/// What reading NETMON_FLOWS saw besides the records.
#[derive(Debug, Default)]
struct ReadStats {
    malformed: u64,
    timed_out: bool,
}

/// Every record stored from a little before `since` up to the stream's end when this started,
/// to `take` (unfiltered: the caller selects the range and drops duplicates).
async fn read_flows(
    r: &FleetRangeArgs,
    since_ms: i64,
    mut take: impl FnMut(FleetFlow),
) -> Result<ReadStats> {
    let client = super::connect(&r.hub, "flows").await?;
    let js = jetstream::new(client);
    let mut stats = ReadStats::default();
    let replay = super::replay(
        &js,
        FLOWS_STREAM,
        filter_subject(r.site.as_deref(), r.host.as_deref(), Kind::Flows),
        since_ms.saturating_sub(super::CLOCK_MARGIN_MS),
        false,
        |m| {
            match decode::<FleetFlow>(m.payload) {
                Some(f) => take(f),
                None => stats.malformed += 1,
            }
            true
        },
    )
    .await?;
    stats.timed_out = replay.timed_out;
    Ok(stats)
}

/// Notes on stderr: duplicates dropped, malformed messages, an incomplete read.
fn notes(duplicates: u64, stats: &ReadStats) {
    if duplicates > 0 {
        eprintln!(
            "netmon: {duplicates} duplicate flow record{} dropped (sent again after the hub's \
             duplicate window)",
            if duplicates == 1 { "" } else { "s" }
        );
    }
    if stats.malformed > 0 {
        eprintln!(
            "netmon: {} malformed message{} on the flow subjects skipped",
            stats.malformed,
            if stats.malformed == 1 { "" } else { "s" }
        );
    }
    if stats.timed_out {
        eprintln!(
            "netmon: the hub sent nothing for {}s before the end of {FLOWS_STREAM}; the output \
             may be incomplete",
            super::IDLE.as_secs()
        );
    }
}

pub fn flows(args: &FleetFlowsArgs) -> Result<ExitCode> {
    let (since_ms, until_ms) = time_range(&args.range.since, &args.range.until, when::now_ms())?;
    let mut sel = Selection::new(since_ms, until_ms);
    let stats = super::runtime()?.block_on(read_flows(&args.range, since_ms, |f| sel.add(f)))?;
    let (flows, duplicates) = sel.finish(args.limit);
    notes(duplicates, &stats);
    let mut out = std::io::stdout().lock();
    if args.range.json {
        for f in &flows {
            writeln!(out, "{}", fleet_flow_json(f))?;
        }
    } else {
        let records: Vec<FlowRecord> = flows.into_iter().map(|f| f.flow).collect();
        out.write_all(render::flows_text(&records, crate::app::terminal_columns()).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn report(args: &FleetReportArgs) -> Result<ExitCode> {
    let (since_ms, until_ms) = time_range(&args.range.since, &args.range.until, when::now_ms())?;
    if let Some(e) = args.rows.every {
        group::series_span(since_ms, until_ms, e)
            .map_err(|m| AppError::new(Exit::Usage, format!("--every: {m}")))?;
    }
    let mut sums = Sums::new(ReportQuery {
        since_ms,
        until_ms,
        by: args.by,
        pid: None,
        comm: None,
        every_ms: args.rows.every,
        limit: args.rows.limit,
    });
    let stats = super::runtime()?.block_on(read_flows(&args.range, since_ms, |f| sums.add(&f)))?;
    let duplicates = sums.dedup.dropped;
    let rows = sums.rows();
    notes(duplicates, &stats);
    let header = ReportHeader {
        since_ms,
        until_ms,
        by: args.by,
        from_rollups: false,
        raw_gone: false,
        every_ms: args.rows.every,
    };
    crate::history::cmd::print_report(&rows, &header, args.range.json, args.rows.csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn flow(host: &str, boot: &str, seq: u64, to_ms: i64, tx: u64, rx: u64) -> FleetFlow {
        FleetFlow {
            site: "lab".into(),
            boot: boot.into(),
            seq,
            flow: FlowRecord {
                host: host.into(),
                comm: if seq.is_multiple_of(2) {
                    "curl"
                } else {
                    "sshd"
                }
                .into(),
                proto: "tcp".into(),
                direction: "out".into(),
                remote: Some("10.0.0.9:443".parse().unwrap()),
                class: "intranet".into(),
                segment: u32::from(seq.is_multiple_of(3)),
                from_ms: to_ms - MIN,
                to_ms,
                tx_bytes: tx,
                rx_bytes: rx,
                ..FlowRecord::default()
            },
        }
    }

    fn query(by: By, every_ms: Option<i64>) -> ReportQuery {
        ReportQuery {
            since_ms: 0,
            until_ms: 60 * MIN,
            by,
            pid: None,
            comm: None,
            every_ms,
            limit: 20,
        }
    }

    fn sums(rows: &[ReportRow]) -> Vec<(&str, u64, u64, u64)> {
        rows.iter()
            .map(|r| (r.key.as_str(), r.tx_bytes, r.rx_bytes, r.connections))
            .collect()
    }

    /// Two hosts; a record of each sent twice (a replay), one out of range.
    fn sample() -> Vec<FleetFlow> {
        vec![
            flow("a", "b1", 1, 5 * MIN, 100, 1000),
            flow("a", "b1", 2, 15 * MIN, 200, 2000),
            flow("a", "b1", 3, 25 * MIN, 300, 3000),
            flow("b", "b9", 1, 5 * MIN, 7, 70),
            flow("b", "b9", 2, 45 * MIN, 8, 80),
            // Replays: same identity, other bytes would be a bug upstream; they must not count.
            flow("a", "b1", 2, 15 * MIN, 200, 2000),
            flow("b", "b9", 1, 5 * MIN, 7, 70),
            // Out of range (after until, and at since exactly).
            flow("a", "b1", 4, 61 * MIN, 1, 1),
            flow("b", "b9", 3, 0, 1, 1),
            // Same seq, another boot of host a: another record.
            flow("a", "b2", 1, 30 * MIN, 5, 50),
        ]
    }

    #[test]
    fn sums_by_host_are_exact_with_duplicates_dropped() {
        let (rows, dropped) = aggregate(&sample(), &query(By::Host, None));
        assert_eq!(dropped, 2);
        // Connections: records with segment 0 (seq not a multiple of 3 here).
        assert_eq!(sums(&rows), vec![("a", 605, 6050, 3), ("b", 15, 150, 2)]);
    }

    #[test]
    fn by_process_port_and_limit() {
        let (rows, _) = aggregate(&sample(), &query(By::Process, None));
        assert_eq!(
            sums(&rows),
            vec![("sshd", 412, 4120, 3), ("curl", 208, 2080, 2)]
        );
        let (rows, _) = aggregate(&sample(), &query(By::Port, None));
        assert_eq!(sums(&rows), vec![("443/tcp", 620, 6200, 5)]);
        let mut q = query(By::Host, None);
        q.limit = 1;
        assert_eq!(aggregate(&sample(), &q).0.len(), 1);
    }

    #[test]
    fn every_gives_all_buckets() {
        let (rows, _) = aggregate(&sample(), &query(By::Host, Some(20 * MIN)));
        // (0, 60 min] in 20-minute buckets: starting at 0, 20 and 40 minutes.
        let a: Vec<(i64, u64)> = rows[0]
            .series
            .iter()
            .map(|b| (b.start_ms / MIN, b.tx_bytes))
            .collect();
        assert_eq!(a, vec![(0, 300), (20, 305), (40, 0)]);
        let b: Vec<(i64, u64)> = rows[1]
            .series
            .iter()
            .map(|b| (b.start_ms / MIN, b.rx_bytes))
            .collect();
        assert_eq!(b, vec![(0, 70), (20, 0), (40, 80)]);
        // Series sum to the row's totals.
        for r in &rows {
            assert_eq!(r.series.iter().map(|b| b.tx_bytes).sum::<u64>(), r.tx_bytes);
        }
        assert!(group::series_span(0, 100 * 86_400_000, 1).is_err());
        assert!(group::series_span(0, 1, 0).is_err());
    }

    #[test]
    fn keys_match_the_local_report() {
        let mut f = FlowRecord {
            comm: "nginx".into(),
            unit: "nginx.service".into(),
            remote: Some("[2001:db8::1]:50000".parse().unwrap()),
            remote_name: Some("example.org".into()),
            local: Some("10.0.0.1:443".parse().unwrap()),
            direction: "in".into(),
            proto: "tcp".into(),
            ..FlowRecord::default()
        };
        assert_eq!(report_key(By::Process, &f), "nginx (nginx.service)");
        assert_eq!(report_key(By::Remote, &f), "2001:db8::1 (example.org)");
        assert_eq!(report_key(By::Port, &f), "443/tcp");
        assert_eq!(report_key(By::Host, &f), "unknown");
        assert_eq!(report_key(By::Container, &f), "(none)");
        f.remote = None;
        f.direction = "out".into();
        assert_eq!(report_key(By::Remote, &f), "unknown (example.org)");
        assert_eq!(report_key(By::Port, &f), "unknown/tcp");
    }

    #[test]
    fn flows_are_selected_once_oldest_first() {
        let mut s = Selection::new(0, 60 * MIN);
        for f in sample().into_iter().rev() {
            s.add(f);
        }
        let (flows, dropped) = s.finish(None);
        assert_eq!(dropped, 2);
        let ids: Vec<String> = flows.iter().map(FleetFlow::msg_id).collect();
        assert_eq!(
            ids,
            ["a/b1/1", "b/b9/1", "a/b1/2", "a/b1/3", "a/b2/1", "b/b9/2"]
        );
        let mut s = Selection::new(0, 60 * MIN);
        sample().into_iter().for_each(|f| s.add(f));
        assert_eq!(s.finish(Some(2)).0.len(), 2);
    }

    #[test]
    fn json_line_carries_the_identity() {
        let f = flow("a", "b1", 7, 5 * MIN, 1, 2);
        let v: serde_json::Value = serde_json::from_str(&fleet_flow_json(&f)).unwrap();
        assert_eq!(v["site"], "lab");
        assert_eq!(v["boot"], "b1");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["host"], "a");
        assert_eq!(v["tx_bytes"], 1);
        assert_eq!(v["remote_port"], 443);
        assert_eq!(v["time"], "1970-01-01T00:05:00.000Z");
    }
}
