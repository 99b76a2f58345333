//! Reading: raw records (`flows`) and grouped sums (`report`).
//!
//! Which source answers a report:
//! - Raw records give exact sums for any range, but a month of them is tens of millions of
//!   rows. Roll-ups give the same sums for whole buckets: buckets are `(start, start + width]`
//!   like the query range, so a range with whole-minute ends is exactly a set of minute rows.
//! - So a range is cut into a head `(since, first whole minute]`, a middle of whole minutes
//!   (whole hours from the hourly tables, the rest from the minute tables) and a tail
//!   `(last whole minute, until]`. Head and tail come from raw records when raw records still
//!   cover them (exact); otherwise from the minute that holds them (the range is widened to
//!   whole minutes and `from_rollups` is set).
//! - Raw records alone answer a query the roll-ups cannot: a pid filter (roll-ups have no
//!   pid), or a comm filter with a grouping from the per-remote roll-ups.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use rusqlite::types::Value;
use rusqlite::{Row, params};

use super::{
    HOUR_MS, MINUTE_MS, Report, Store, StoreError, ceil_to, floor_to, from_sql_bits, from_sql_count,
};
use crate::history::group::{self, Group};
use crate::history::{By, FlowQuery, FlowRecord, ReportQuery};

/// One part of a report's range and where it is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece {
    /// Raw records with `since < to_ms <= until`.
    Raw(i64, i64),
    /// Roll-up rows of this width with `since <= bucket < until` (both multiples of it).
    Rollup { width: i64, since: i64, until: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub pieces: Vec<Piece>,
    /// The range actually answered (wider than asked when edges come from roll-ups).
    pub since: i64,
    pub until: i64,
    pub from_rollups: bool,
    /// Only raw records can answer, and they are gone before `since` (later than asked).
    pub raw_gone: bool,
}

/// Which roll-up tables can answer a grouping (None: only raw records can).
fn rollup_family(by: By, comm_filter: bool) -> Option<&'static str> {
    match by {
        By::Process | By::Host | By::Unit | By::Container => Some("proc"),
        // The per-remote roll-ups do not know the process.
        By::Remote | By::Port | By::Class if !comm_filter => Some("remote"),
        By::Remote | By::Port | By::Class => None,
    }
}

/// The three columns a grouping needs, from `flows f JOIN procs p` (raw) or from the roll-up
/// key table (`k`); their values are turned into the row's key by `key_text`.
fn dims(by: By, raw: bool) -> [&'static str; 3] {
    match (by, raw) {
        (By::Process, true) => ["p.comm", "p.unit", "p.container"],
        (By::Process, false) => ["k.comm", "k.unit", "k.container"],
        (By::Host, true) => ["p.host", "NULL", "NULL"],
        (By::Host, false) => ["k.host", "NULL", "NULL"],
        (By::Unit, true) => ["p.unit", "NULL", "NULL"],
        (By::Unit, false) => ["k.unit", "NULL", "NULL"],
        (By::Container, true) => ["p.container", "NULL", "NULL"],
        (By::Container, false) => ["k.container", "NULL", "NULL"],
        (By::Remote, true) => ["f.remote_ip", "f.remote_name", "NULL"],
        (By::Remote, false) => ["k.remote_ip", "k.remote_name", "NULL"],
        (By::Port, true) => ["f.service_port", "f.proto", "NULL"],
        (By::Port, false) => ["k.service_port", "k.proto", "NULL"],
        (By::Class, true) => ["f.class", "NULL", "NULL"],
        (By::Class, false) => ["k.class", "NULL", "NULL"],
    }
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::Text(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A report row's key from the dimension values a query selected (see `group::name`).
fn key_text(by: By, d: &[Value; 3]) -> String {
    let port;
    let parts: [Option<&str>; 3] = match (by, &d[0]) {
        (By::Port, Value::Integer(p)) => {
            port = p.to_string();
            [Some(port.as_str()), text(&d[1]), None]
        }
        (By::Port, _) => [None, text(&d[1]), None],
        _ => [text(&d[0]), text(&d[1]), text(&d[2])],
    };
    group::name(by, parts)
}

/// SQL for the series bucket (start) of a time `t`, `?e` the step: `bucket_of` in SQL,
/// correct for negative times too (SQLite's % truncates toward zero).
fn series_sql(t: &str, e: &str) -> String {
    format!("CASE WHEN {e} IS NULL THEN 0 ELSE (({t}) - 1) - (((({t}) - 1) % {e}) + {e}) % {e} END")
}

impl Store {
    /// Raw records with `since < to_ms <= until`, filtered, oldest first, at most `limit`.
    pub fn flows(&self, q: &FlowQuery) -> Result<Vec<FlowRecord>, StoreError> {
        let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "{SELECT_FLOWS}
                 WHERE f.to_ms > ?1 AND f.to_ms <= ?2
                   AND (?3 IS NULL OR p.pid = ?3) AND (?4 IS NULL OR p.comm = ?4)
                 ORDER BY f.to_ms, f.id LIMIT ?5"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                params![q.since_ms, q.until_ms, q.pid, q.comm, limit],
                flow_record,
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Sums per group over `since < to_ms <= until`, busiest first; see the module comment
    /// for which source answers.
    pub fn report(&self, q: &ReportQuery) -> Result<Report, StoreError> {
        if let Some(e) = q.every_ms
            && e <= 0
        {
            return Err(self.bad(format!("the series step must be positive, not {e} ms")));
        }
        if q.until_ms <= q.since_ms || q.limit == 0 {
            return Ok(Report::default());
        }
        let plan = self.plan(q)?;
        self.run(q, &plan)
    }

    fn bad(&self, why: String) -> StoreError {
        StoreError::Query {
            path: self.path.clone(),
            why,
        }
    }

    /// Flows with `to_ms` after this may all be in the file (older ones may have been pruned).
    pub(super) fn raw_complete_after(&self) -> Result<i64, StoreError> {
        self.meta("raw_gone_until").map(|v| v.unwrap_or(i64::MIN))
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub(super) fn plan(&self, q: &ReportQuery) -> Result<Plan, StoreError> {
        let (since, until) = (q.since_ms, q.until_ms);
        let raw_only = |from_rollups| Plan {
            pieces: vec![Piece::Raw(since, until)],
            since,
            until,
            from_rollups,
            raw_gone: false,
        };
        let raw_from = self.raw_complete_after()?;
        if q.pid.is_some() || rollup_family(q.by, q.comm.is_some()).is_none() {
            // Roll-ups do not know pids (nor the process behind a remote): the raw records
            // that are left answer, and the report says from when.
            if since < raw_from {
                let from = raw_from.min(until);
                return Ok(Plan {
                    pieces: vec![Piece::Raw(from, until)],
                    since: from,
                    until,
                    from_rollups: false,
                    raw_gone: true,
                });
            }
            return Ok(raw_only(false));
        }
        let raw_covers = |t: i64| t >= raw_from;
        let minutes_ok = q.every_ms.is_none_or(|e| e % MINUTE_MS == 0);
        let hours_ok = q.every_ms.is_none_or(|e| e % HOUR_MS == 0);
        let (a, b) = (ceil_to(since, MINUTE_MS), floor_to(until, MINUTE_MS));
        if raw_covers(since) && (!minutes_ok || a >= b) {
            return Ok(raw_only(false));
        }
        if !minutes_ok || a >= b {
            // Less than a whole minute, or a step that cuts minutes, and raw records are gone:
            // the minutes that hold the range (a minute's bytes go to the step holding its end).
            let (s, u) = (floor_to(since, MINUTE_MS), ceil_to(until, MINUTE_MS));
            return Ok(Plan {
                pieces: vec![Piece::Rollup {
                    width: MINUTE_MS,
                    since: s,
                    until: u,
                }],
                since: s,
                until: u,
                from_rollups: true,
                raw_gone: false,
            });
        }
        let mut plan = Plan {
            pieces: Vec::new(),
            since,
            until,
            from_rollups: false,
            raw_gone: false,
        };
        let minutes = |s, u| Piece::Rollup {
            width: MINUTE_MS,
            since: s,
            until: u,
        };
        if since < a {
            if raw_covers(since) {
                plan.pieces.push(Piece::Raw(since, a));
            } else {
                plan.pieces.push(minutes(a.saturating_sub(MINUTE_MS), a));
                plan.since = a.saturating_sub(MINUTE_MS);
                plan.from_rollups = true;
            }
        }
        let (ha, hb) = (ceil_to(a, HOUR_MS), floor_to(b, HOUR_MS));
        if hours_ok && ha < hb {
            if a < ha {
                plan.pieces.push(minutes(a, ha));
            }
            plan.pieces.push(Piece::Rollup {
                width: HOUR_MS,
                since: ha,
                until: hb,
            });
            if hb < b {
                plan.pieces.push(minutes(hb, b));
            }
        } else {
            plan.pieces.push(minutes(a, b));
        }
        if b < until {
            if raw_covers(b) {
                plan.pieces.push(Piece::Raw(b, until));
            } else {
                plan.pieces.push(minutes(b, b.saturating_add(MINUTE_MS)));
                plan.until = b.saturating_add(MINUTE_MS);
                plan.from_rollups = true;
            }
        }
        Ok(plan)
    }

    pub(super) fn run(&self, q: &ReportQuery, plan: &Plan) -> Result<Report, StoreError> {
        let span = match q.every_ms {
            Some(e) => Some((
                e,
                group::series_span(plan.since, plan.until, e).map_err(|m| self.bad(m))?,
            )),
            None => None,
        };
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut keys = None; // loaded once, by the first roll-up piece that needs them
        for piece in &plan.pieces {
            match *piece {
                Piece::Raw(s, u) => self.raw_into(q, s, u, &mut groups)?,
                Piece::Rollup {
                    width,
                    since,
                    until,
                } => self.rollup_into(q, width, since, until, &mut keys, &mut groups)?,
            }
        }
        let rows = group::rows(groups, span, q.limit);
        Ok(Report {
            rows,
            from_rollups: plan.from_rollups,
            raw_gone_until: plan.raw_gone.then_some(plan.since),
        })
    }

    fn raw_into(
        &self,
        q: &ReportQuery,
        since: i64,
        until: i64,
        groups: &mut HashMap<String, Group>,
    ) -> Result<(), StoreError> {
        let d = dims(q.by, true);
        let sql = format!(
            "SELECT {}, {}, {}, {}, SUM(f.tx_bytes), SUM(f.rx_bytes), SUM(f.segment = 0)
             FROM flows f JOIN procs p ON p.id = f.proc
             WHERE f.to_ms > ?1 AND f.to_ms <= ?2
               AND (?3 IS NULL OR p.pid = ?3) AND (?4 IS NULL OR p.comm = ?4)
             GROUP BY 1, 2, 3, 4",
            d[0],
            d[1],
            d[2],
            series_sql("f.to_ms", "?5")
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = st
            .query(params![since, until, q.pid, q.comm, q.every_ms])
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = (|| -> rusqlite::Result<_> {
                Ok((
                    [r.get::<_, Value>(0)?, r.get(1)?, r.get(2)?],
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })()
            .map_err(|e| self.err(e))?;
            let (dv, bucket, tx, rx, conns) = row;
            groups.entry(key_text(q.by, &dv)).or_default().add(
                q.every_ms.map(|_| bucket),
                from_sql_count(tx),
                from_sql_count(rx),
                from_sql_count(conns),
            );
        }
        Ok(())
    }

    /// Roll-up rows are summed per (key id, series bucket) here rather than by SQL's
    /// GROUP BY, which would sort them: a month of per-remote hours is ~1 M rows.
    fn rollup_into(
        &self,
        q: &ReportQuery,
        width: i64,
        since: i64,
        until: i64,
        keys: &mut Option<HashMap<i64, String>>,
        groups: &mut HashMap<String, Group>,
    ) -> Result<(), StoreError> {
        let Some(family) = rollup_family(q.by, q.comm.is_some()) else {
            return Err(self.bad("this grouping needs raw records".into()));
        };
        let table = format!(
            "{family}_{}",
            if width == HOUR_MS { "hour" } else { "minute" }
        );
        let sql = format!(
            "SELECT key, {}, tx_bytes, rx_bytes, connections FROM {table}
             WHERE bucket >= ?1 AND bucket < ?2",
            series_sql(&format!("bucket + {width}"), "?3")
        );
        let mut sums: HashMap<(i64, i64), (i64, i64, i64)> = HashMap::new();
        {
            let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let mut rows = st
                .query(params![since, until, q.every_ms])
                .map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let (key, bucket, tx, rx, c): (i64, i64, i64, i64, i64) = (|| {
                    Ok::<_, rusqlite::Error>((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                })()
                .map_err(|e| self.err(e))?;
                let s = sums.entry((key, bucket)).or_default();
                s.0 = s.0.saturating_add(tx);
                s.1 = s.1.saturating_add(rx);
                s.2 = s.2.saturating_add(c);
            }
        }
        if sums.is_empty() {
            return Ok(());
        }
        if keys.is_none() {
            *keys = Some(self.key_texts(q, family)?);
        }
        let Some(keys) = keys.as_ref() else {
            return Ok(());
        };
        for ((key, bucket), (tx, rx, c)) in sums {
            // A key filtered out by comm (or missing: never, keys outlive their rows).
            let Some(text) = keys.get(&key) else { continue };
            groups.entry(text.clone()).or_default().add(
                q.every_ms.map(|_| bucket),
                from_sql_count(tx),
                from_sql_count(rx),
                from_sql_count(c),
            );
        }
        Ok(())
    }

    /// Key id → row key text for a roll-up family, with the comm filter applied.
    fn key_texts(&self, q: &ReportQuery, family: &str) -> Result<HashMap<i64, String>, StoreError> {
        let d = dims(q.by, false);
        let comm = if family == "proc" { "k.comm" } else { "NULL" };
        let sql = format!(
            "SELECT k.id, {}, {}, {} FROM {family}_keys k WHERE ?1 IS NULL OR {comm} = ?1",
            d[0], d[1], d[2]
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([&q.comm], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    [r.get::<_, Value>(1)?, r.get(2)?, r.get(3)?],
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, dv) = row.map_err(|e| self.err(e))?;
            out.insert(id, key_text(q.by, &dv));
        }
        Ok(out)
    }
}

fn sock(ip: Option<String>, port: Option<u16>) -> Option<SocketAddr> {
    let ip: IpAddr = ip?.parse().ok()?;
    Some(SocketAddr::new(ip, port.unwrap_or(0)))
}

fn opt_count(v: Option<i64>) -> Option<u64> {
    v.map(from_sql_count)
}

/// Every column [`flow_record`] reads, in its order, then the record's sequence number
/// (column 33).
pub(super) const SELECT_FLOWS: &str = "SELECT p.host, f.flow_id, f.segment, p.pid, p.start_time,
        p.comm, p.cmdline, p.uid, p.unit, p.container, f.netns, f.proto, f.direction,
        f.local_ip, f.local_port, f.remote_ip, f.remote_port, f.remote_name, f.class,
        f.opened_ms, f.from_ms, f.to_ms, f.ended, f.tx_bytes, f.rx_bytes, f.tx_wire_bytes,
        f.rx_wire_bytes, f.tx_packets, f.rx_packets, f.handshake_us, f.retransmits, f.rtt_us,
        f.closed_by, f.id
    FROM flows f JOIN procs p ON p.id = f.proc";

pub(super) fn flow_record(r: &Row) -> rusqlite::Result<FlowRecord> {
    Ok(FlowRecord {
        host: r.get(0)?,
        flow_id: from_sql_bits(r.get(1)?),
        segment: r.get(2)?,
        pid: r.get(3)?,
        start_time: from_sql_bits(r.get(4)?),
        comm: r.get(5)?,
        cmdline: r.get(6)?,
        uid: r.get(7)?,
        unit: r.get(8)?,
        container: r.get(9)?,
        netns: from_sql_bits(r.get(10)?),
        proto: r.get(11)?,
        direction: r.get(12)?,
        local: sock(r.get(13)?, r.get(14)?),
        remote: sock(r.get(15)?, r.get(16)?),
        remote_name: r.get(17)?,
        class: r.get(18)?,
        opened_ms: r.get(19)?,
        from_ms: r.get(20)?,
        to_ms: r.get(21)?,
        ended: r.get(22)?,
        tx_bytes: from_sql_count(r.get(23)?),
        rx_bytes: from_sql_count(r.get(24)?),
        tx_wire_bytes: from_sql_count(r.get(25)?),
        rx_wire_bytes: from_sql_count(r.get(26)?),
        tx_packets: from_sql_count(r.get(27)?),
        rx_packets: from_sql_count(r.get(28)?),
        handshake_us: opt_count(r.get(29)?),
        retransmits: from_sql_count(r.get(30)?),
        rtt_us: opt_count(r.get(31)?),
        closed_by: r.get(32)?,
    })
}
