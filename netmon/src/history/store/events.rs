//! Host events in the store: written by the recorder as they arrive, read back by `netmon
//! events --since` (a time range) and by the fleet agent (by sequence number, after the hub's
//! mark, like the flow spool).
//!
//! Each row keeps the event's JSON exactly as `netmon events --json` prints it, so what is read
//! back is the event as it was seen; `at_ms`, `kind`, `event`, `pid` and `comm` are copies for
//! queries (and for people using `sqlite3`).
use rusqlite::{TransactionBehavior, params};

use super::{Store, StoreError};
use crate::events::{HostEvent, Kind};
use crate::history::when;

const EVENT_HUB_MARK: &str = "event_hub_acked_seq";

/// The event's time in Unix ms; `fallback` when `time` is not RFC 3339 (never from netmon's
/// own sources, which always stamp one).
pub fn at_ms_of(ev: &HostEvent, fallback: i64) -> i64 {
    when::parse_time_ms(&ev.time, fallback).unwrap_or(fallback)
}

fn to_sql_seq(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn event_row(r: &rusqlite::Row<'_>, col: usize) -> rusqlite::Result<HostEvent> {
    let text: String = r.get(col)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Store {
    /// Writes the events in one transaction, in the order given.
    pub fn write_events(&mut self, events: &[HostEvent]) -> Result<(), StoreError> {
        self.writable()?;
        if events.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let e = |e| StoreError::sql(&path, e);
        let now = when::now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (at_ms, host, kind, event, pid, comm, json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(e)?;
            for ev in events {
                let json = serde_json::to_string(ev).map_err(|err| StoreError::Query {
                    path: path.clone(),
                    why: format!("encoding an event: {err}"),
                })?;
                let process = ev.what.process();
                insert
                    .execute(params![
                        at_ms_of(ev, now),
                        ev.host,
                        ev.kind.as_str(),
                        ev.what.name(),
                        process.map(|(pid, _)| pid),
                        process.map(|(_, comm)| comm),
                        json
                    ])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Events with `since_ms < at_ms <= until_ms` of these kinds (all when empty), oldest
    /// first, at most `limit` (the oldest).
    pub fn events(
        &self,
        since_ms: i64,
        until_ms: i64,
        kinds: &[Kind],
        limit: Option<usize>,
    ) -> Result<Vec<HostEvent>, StoreError> {
        let mut sql = String::from("SELECT json FROM events WHERE at_ms > ?1 AND at_ms <= ?2");
        if !kinds.is_empty() {
            // Kind names are our own fixed words: no quoting concern.
            let list: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
            sql.push_str(&format!(" AND kind IN ({})", list.join(", ")));
        }
        sql.push_str(" ORDER BY at_ms, seq LIMIT ?3");
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![since_ms, until_ms, limit], |r| event_row(r, 0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Events after sequence number `seq`, in the order written, at most `limit`, with their
    /// sequence numbers.
    pub fn events_after(
        &self,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, HostEvent)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, json FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                params![to_sql_seq(seq), i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, event_row(r, 1)?)),
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The newest event's sequence number (0 when none was ever written).
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        self.last_seq_of("events")
    }

    /// How far the hub has acknowledged this store's events.
    pub fn event_hub_mark(&self) -> Result<u64, StoreError> {
        self.mark(EVENT_HUB_MARK)
    }

    pub fn set_event_hub_mark(&self, seq: u64) -> Result<(), StoreError> {
        self.set_mark(EVENT_HUB_MARK, seq)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::events::model::{Contact, Link, Listener, What};
    use crate::history::Limits;

    /// at_ms, kind, event, pid, comm.
    type Columns = (i64, String, String, Option<u32>, Option<String>);

    fn link(name: &str) -> Link {
        Link {
            ifindex: 3,
            ifname: name.into(),
            link_kind: Some("dummy".into()),
            mac: None,
            up: false,
            carrier: false,
        }
    }

    fn at(ms: i64, what: What) -> HostEvent {
        HostEvent::new(
            what,
            "h1",
            UNIX_EPOCH + Duration::from_millis(ms.try_into().unwrap()),
        )
    }

    fn listener() -> Listener {
        Listener {
            pid: 42,
            comm: "nginx".into(),
            unit: "nginx.service".into(),
            proto: "tcp".into(),
            address: "0.0.0.0:80".into(),
            port: 80,
        }
    }

    fn contact() -> Contact {
        Contact {
            pid: 7,
            comm: "curl".into(),
            unit: String::new(),
            network: "intranet".into(),
            proto: "tcp".into(),
            remote: "10.0.0.5:443".into(),
            remote_name: Some("git.lan".into()),
            suppressed: 2,
        }
    }

    struct Tmp(std::path::PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(tag: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("netmon-ev-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Tmp(dir)
    }

    /// Events come back as they were written (JSON round trip), selected by range and kind,
    /// oldest first; the columns hold the process of the events that have one.
    #[test]
    fn write_and_read_back_by_range_and_kind() {
        let dir = tmp("range");
        let path = dir.0.join("h.db");
        let mut s = Store::open(&path).unwrap().store;
        let t = 1_800_000_000_000;
        let evs = vec![
            at(t + 3000, What::LinkAdded(link("d0"))),
            at(t + 1000, What::ListenStarted(listener())),
            at(t + 2000, What::Contact(contact())),
            at(t + 4000, What::LinkRemoved(link("d0"))),
        ];
        s.write_events(&evs).unwrap();
        s.write_events(&[]).unwrap();

        let all = s.events(t, t + 4000, &[], None).unwrap();
        assert_eq!(
            all,
            vec![
                evs[1].clone(),
                evs[2].clone(),
                evs[0].clone(),
                evs[3].clone()
            ]
        );
        // (since, until]: the event at `since` is out, the one at `until` in.
        let edge = s.events(t + 1000, t + 3000, &[], None).unwrap();
        assert_eq!(edge, vec![evs[2].clone(), evs[0].clone()]);
        let net = s.events(t, t + 10_000, &[Kind::Net], None).unwrap();
        assert_eq!(net, vec![evs[0].clone(), evs[3].clone()]);
        let proc_kinds = s
            .events(t, t + 10_000, &[Kind::Contact, Kind::Listen], None)
            .unwrap();
        assert_eq!(proc_kinds.len(), 2);
        assert!(
            s.events(t, t + 10_000, &[Kind::Device], None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.events(t, t + 10_000, &[], Some(1)).unwrap(),
            vec![evs[1].clone()]
        );

        let cols: Vec<Columns> = s
            .conn
            .prepare("SELECT at_ms, kind, event, pid, comm FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            cols[0],
            (t + 3000, "net".into(), "link_added".into(), None, None)
        );
        assert_eq!(
            cols[1],
            (
                t + 1000,
                "listen".into(),
                "listen_started".into(),
                Some(42),
                Some("nginx".into())
            )
        );
        assert_eq!(cols[2].3, Some(7));

        // A reader sees the same.
        let mut r = Store::open_read(&path).unwrap();
        assert_eq!(r.events(t, t + 4000, &[], None).unwrap(), all);
        assert!(matches!(
            r.write_events(&evs),
            Err(StoreError::ReadOnly { .. })
        ));
    }

    /// Sequence numbers follow writes and are never reused after retention removed every
    /// event; the hub mark persists; retention removes events by age and counts them.
    #[test]
    fn sequence_mark_and_retention() {
        let dir = tmp("seq");
        let path = dir.0.join("h.db");
        let now = when::now_ms();
        {
            let mut s = Store::open(&path).unwrap().store;
            assert_eq!(s.last_event_seq().unwrap(), 0);
            s.write_events(&[
                at(now - 10 * 86_400_000, What::LinkUp(link("old"))),
                at(now - 1000, What::LinkUp(link("a"))),
                at(now - 500, What::LinkDown(link("a"))),
            ])
            .unwrap();
            assert_eq!(s.last_event_seq().unwrap(), 3);
            let after = s.events_after(1, 10).unwrap();
            assert_eq!(
                after.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
                vec![2, 3]
            );
            assert_eq!(after[1].1.what.name(), "link_down");
            assert_eq!(s.events_after(0, 1).unwrap().len(), 1);
            s.set_event_hub_mark(2).unwrap();
            // The flow spool's mark is a different one.
            assert_eq!(s.hub_mark().unwrap(), 0);
        }
        let mut s = Store::open(&path).unwrap().store;
        assert_eq!(s.event_hub_mark().unwrap(), 2);
        let limits = Limits {
            max_age_ms: 86_400_000,
            raw_max_age_ms: 86_400_000,
            max_bytes: 1 << 30,
        };
        let p = s.prune(now, &limits).unwrap();
        assert_eq!(p.events_by_age, 1);
        let st = s.stats().unwrap();
        assert_eq!((st.events, st.removed.events_by_age), (2, 1));
        assert_eq!(st.oldest_event_ms, Some(now - 1000));
        // Everything expires; the next event still gets a new number.
        let p = s.prune(now + 10 * 86_400_000, &limits).unwrap();
        assert_eq!(p.events_by_age, 2);
        assert!(s.events_after(0, 10).unwrap().is_empty());
        s.write_events(&[at(now, What::LinkUp(link("b")))]).unwrap();
        assert_eq!(s.last_event_seq().unwrap(), 4);
        assert_eq!(s.stats().unwrap().removed.events_by_age, 3);
    }
}
