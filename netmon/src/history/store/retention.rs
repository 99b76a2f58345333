//! Retention (by age, then by size) and what the store holds.
//!
//! Deletions run in chunks of their own transactions so a large first prune neither holds
//! the write lock for long nor grows the WAL without bound; each chunk updates the removal
//! counters in `meta` in the same transaction, so the totals stay exact across crashes.
use rusqlite::{Transaction, TransactionBehavior, params};

use super::{HOUR_MS, MINUTE_MS, Store, StoreError};
use crate::history::{Limits, Pruned, StoreHealth, StoreStats};

/// Raw rows deleted per transaction.
const CHUNK: i64 = 50_000;
/// Roll-up time deleted per transaction when pruning by age.
const DAY_MS: i64 = 86_400_000;

const ROLLUP_TABLES: [(&str, i64); 4] = [
    ("proc_minute", MINUTE_MS),
    ("proc_hour", HOUR_MS),
    ("remote_minute", MINUTE_MS),
    ("remote_hour", HOUR_MS),
];

fn bump(tx: &Transaction, key: &str, by: u64) -> rusqlite::Result<()> {
    if by == 0 {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        params![key, i64::try_from(by).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}

/// Records that raw flows with `to_ms <= t` may be gone (the planner then takes edges before
/// `t` from roll-ups).
fn raw_gone_until(tx: &Transaction, t: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('raw_gone_until', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [t],
    )?;
    Ok(())
}

/// Deletes the oldest raw flows matching `to_ms < before` (at most `limit`); returns how many
/// and the newest `to_ms` removed.
fn delete_oldest_flows(
    tx: &Transaction,
    before: Option<i64>,
    limit: i64,
) -> rusqlite::Result<(u64, Option<i64>)> {
    let newest: Option<i64> = tx.query_row(
        "SELECT max(to_ms) FROM
         (SELECT to_ms FROM flows WHERE ?1 IS NULL OR to_ms < ?1 ORDER BY to_ms LIMIT ?2)",
        params![before, limit],
        |r| r.get(0),
    )?;
    let Some(newest) = newest else {
        return Ok((0, None));
    };
    let n = tx.execute(
        "DELETE FROM flows WHERE id IN
         (SELECT id FROM flows WHERE ?1 IS NULL OR to_ms < ?1 ORDER BY to_ms LIMIT ?2)",
        params![before, limit],
    )?;
    Ok((n as u64, Some(newest)))
}

/// Deletes roll-up rows whose bucket starts before `start_before(width)` in every table.
fn delete_rollups(tx: &Transaction, start_before: impl Fn(i64) -> i64) -> rusqlite::Result<u64> {
    let mut n = 0;
    for (table, width) in ROLLUP_TABLES {
        n += tx.execute(
            &format!("DELETE FROM {table} WHERE bucket < ?1"),
            [start_before(width)],
        )? as u64;
    }
    Ok(n)
}

/// Process and key rows nothing refers to any more. A row's `last_until_ms` is at or after
/// the `to_ms` / bucket of everything referring to it, so rows whose `last_until_ms` is not
/// after the oldest remaining reference cannot be referred to.
fn delete_orphans(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM procs WHERE last_until_ms <
         IFNULL((SELECT min(to_ms) FROM flows), 9223372036854775807)",
        [],
    )?;
    for family in ["proc", "remote"] {
        tx.execute(
            &format!(
                "DELETE FROM {family}_keys WHERE last_until_ms <= min(
                   IFNULL((SELECT min(bucket) FROM {family}_minute), 9223372036854775807),
                   IFNULL((SELECT min(bucket) FROM {family}_hour), 9223372036854775807))"
            ),
            [],
        )?;
    }
    Ok(())
}

/// Gives free pages back to the file system (auto_vacuum = INCREMENTAL). The pragma frees
/// one page per result row, so every row must be stepped through.
fn incremental_vacuum(tx: &Transaction) -> rusqlite::Result<()> {
    let mut st = tx.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = st.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn db_bytes(tx: &rusqlite::Connection) -> rusqlite::Result<u64> {
    let pages: i64 = tx.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let size: i64 = tx.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or(0))
}

fn count(conn: &rusqlite::Connection, table: &str) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn oldest_rollup(conn: &rusqlite::Connection) -> rusqlite::Result<Option<i64>> {
    let mut oldest: Option<i64> = None;
    for (table, _) in ROLLUP_TABLES {
        let m: Option<i64> =
            conn.query_row(&format!("SELECT min(bucket) FROM {table}"), [], |r| {
                r.get(0)
            })?;
        oldest = match (oldest, m) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(oldest)
}

impl Store {
    /// Removes raw flows older than `raw_max_age_ms`, roll-ups and host events older than
    /// `max_age_ms`, then, while the file is larger than `max_bytes`, the oldest raw flows and
    /// then the oldest roll-ups. Returns what this pass removed; `stats().removed` keeps the totals.
    pub fn prune(&mut self, now_ms: i64, limits: &Limits) -> Result<Pruned, StoreError> {
        self.writable()?;
        let mut out = Pruned::default();
        let r = self.prune_inner(now_ms, limits, &mut out);
        // Ids cached for writing may belong to rows just deleted.
        self.cache.clear();
        r.map(|()| out)
    }

    fn prune_inner(
        &mut self,
        now_ms: i64,
        limits: &Limits,
        out: &mut Pruned,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let e = |e| StoreError::sql(&path, e);
        let max_age = limits.max_age_ms.max(0);
        let raw_age = limits.raw_max_age_ms.clamp(0, max_age);
        let raw_before = now_ms.saturating_sub(raw_age);
        let roll_before = now_ms.saturating_sub(max_age);

        // By age: raw flows.
        loop {
            let tx = self.immediate()?;
            let (n, newest) = delete_oldest_flows(&tx, Some(raw_before), CHUNK).map_err(e)?;
            if let Some(t) = newest {
                raw_gone_until(&tx, t).map_err(e)?;
            }
            bump(&tx, "removed_flows_by_age", n).map_err(e)?;
            out.flows_by_age += n;
            tx.commit().map_err(e)?;
            if n < CHUNK as u64 {
                break;
            }
        }
        // By age: host events (kept as long as roll-ups).
        loop {
            let tx = self.immediate()?;
            let n = tx
                .execute(
                    "DELETE FROM events WHERE seq IN
                     (SELECT seq FROM events WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
                    params![roll_before, CHUNK],
                )
                .map_err(e)? as u64;
            bump(&tx, "removed_events_by_age", n).map_err(e)?;
            out.events_by_age += n;
            tx.commit().map_err(e)?;
            if n < CHUNK as u64 {
                break;
            }
        }
        // By age: roll-ups, a day at a time from the oldest.
        let oldest = oldest_rollup(&self.conn).map_err(e)?;
        if let Some(mut t) = oldest {
            while t < roll_before {
                t = t.saturating_add(DAY_MS).min(roll_before);
                let tx = self.immediate()?;
                // Rows wholly older than `t`: `bucket + width < t`, as strict as raw flows'
                // `to_ms < before`.
                let n = delete_rollups(&tx, |w| t.saturating_sub(w)).map_err(e)?;
                bump(&tx, "removed_rollups_by_age", n).map_err(e)?;
                out.rollups_by_age += n;
                tx.commit().map_err(e)?;
            }
        }
        {
            let tx = self.immediate()?;
            delete_orphans(&tx).map_err(e)?;
            incremental_vacuum(&tx).map_err(e)?;
            tx.commit().map_err(e)?;
        }

        // By size: the oldest raw flows first, then the oldest roll-ups, an estimated
        // excess at a time, giving pages back after each step.
        let mut flows = count(&self.conn, "flows").map_err(e)?;
        let mut rollups = 0;
        for (table, _) in ROLLUP_TABLES {
            rollups += count(&self.conn, table).map_err(e)?;
        }
        // Bytes one raw flow takes, learnt from the first step (which removes a sixteenth).
        // Flows are written about in time order, so the oldest fill whole pages and the
        // estimate holds; when they do not, no step takes more than an eighth of what is
        // left, so the overshoot stays small.
        let mut per_flow: Option<u64> = None;
        for _ in 0..100_000 {
            let size = db_bytes(&self.conn).map_err(e)?;
            if size <= limits.max_bytes {
                break;
            }
            if flows + rollups == 0 {
                break;
            }
            let excess = size - limits.max_bytes;
            let want = match per_flow {
                // 5% more than the estimate, so the last step rarely falls just short.
                Some(b) => excess / b.max(1) + excess / b.max(1) / 20,
                None => flows / 16,
            }
            .min(flows / 8)
            .max(256);
            let last_size = size;
            let tx = self.immediate()?;
            if flows > 0 {
                let limit = i64::try_from(want).unwrap_or(CHUNK).min(CHUNK * 4);
                let (n, newest) = delete_oldest_flows(&tx, None, limit).map_err(e)?;
                if let Some(t) = newest {
                    raw_gone_until(&tx, t).map_err(e)?;
                }
                bump(&tx, "removed_flows_by_size", n).map_err(e)?;
                out.flows_by_size += n;
                flows = flows.saturating_sub(n);
                if n == 0 {
                    flows = 0;
                }
                delete_orphans(&tx).map_err(e)?;
                incremental_vacuum(&tx).map_err(e)?;
                let freed = last_size.saturating_sub(db_bytes(&tx).map_err(e)?);
                if n > 0 && freed > 0 {
                    per_flow = Some(freed / n);
                }
            } else {
                // The oldest hour of roll-ups (minute and hour rows alike).
                let Some(oldest) = oldest_rollup(&tx).map_err(e)? else {
                    break;
                };
                let next_hour = super::floor_to(oldest, HOUR_MS).saturating_add(HOUR_MS);
                let n = delete_rollups(&tx, |_| next_hour).map_err(e)?;
                bump(&tx, "removed_rollups_by_size", n).map_err(e)?;
                out.rollups_by_size += n;
                rollups = rollups.saturating_sub(n);
                if n == 0 {
                    rollups = 0;
                }
                delete_orphans(&tx).map_err(e)?;
                incremental_vacuum(&tx).map_err(e)?;
            }
            tx.commit().map_err(e)?;
        }
        if *out != Pruned::default() {
            // Copy the shrunken file back from the WAL now (PASSIVE: never waits for
            // readers); the file is truncated when the whole WAL was copied.
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(e)?;
        }
        Ok(())
    }

    fn immediate(&mut self) -> Result<Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sql(&path, e))
    }

    /// Counts, size, oldest times and the removal totals.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let e = |e| self.err(e);
        // One read transaction, so the figures agree with each other.
        let tx = self.conn.unchecked_transaction().map_err(e)?;
        let mut rollup_rows = 0;
        for (table, _) in ROLLUP_TABLES {
            rollup_rows += count(&tx, table).map_err(e)?;
        }
        let h = self.health_in(&tx)?;
        let stats = StoreStats {
            flows: count(&tx, "flows").map_err(e)?,
            rollup_rows,
            db_bytes: h.db_bytes,
            oldest_flow_ms: h.oldest_flow_ms,
            oldest_rollup_ms: h.oldest_rollup_ms,
            events: count(&tx, "events").map_err(e)?,
            oldest_event_ms: tx
                .query_row("SELECT min(at_ms) FROM events", [], |r| r.get(0))
                .map_err(e)?,
            removed: h.removed,
        };
        tx.finish().map_err(e)?;
        Ok(stats)
    }

    /// What the daemon watches each minute: size, oldest record, what retention removed. Unlike
    /// [`Store::stats`] it counts no rows, so it costs the same on a store of any size.
    pub fn health(&self) -> Result<StoreHealth, StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let h = self.health_in(&tx)?;
        tx.finish().map_err(|e| self.err(e))?;
        Ok(h)
    }

    fn health_in(&self, tx: &rusqlite::Connection) -> Result<StoreHealth, StoreError> {
        let e = |e| self.err(e);
        let removed = |k: &str| -> Result<u64, StoreError> {
            Ok(self.meta(k)?.map_or(0, super::from_sql_count))
        };
        Ok(StoreHealth {
            db_bytes: db_bytes(tx).map_err(e)?,
            // min() over an indexed column (or a primary key's first one) is one lookup.
            oldest_flow_ms: tx
                .query_row("SELECT min(to_ms) FROM flows", [], |r| r.get(0))
                .map_err(e)?,
            oldest_rollup_ms: oldest_rollup(tx).map_err(e)?,
            removed: Pruned {
                flows_by_age: removed("removed_flows_by_age")?,
                flows_by_size: removed("removed_flows_by_size")?,
                rollups_by_age: removed("removed_rollups_by_age")?,
                rollups_by_size: removed("removed_rollups_by_size")?,
                events_by_age: removed("removed_events_by_age")?,
            },
        })
    }
}
