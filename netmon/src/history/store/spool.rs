//! The store as the fleet agent's spool: every flow record has a sequence number (`flows.id`,
//! never reused), the store has an id of its own (the "boot" of (host, boot, seq)), and the
//! hub's acknowledged mark is kept in the file, so an agent that restarts or was killed
//! resends from where the hub stopped acknowledging.
use rusqlite::{OptionalExtension, params};

use super::query::{SELECT_FLOWS, flow_record};
use super::{Store, StoreError};
use crate::history::FlowRecord;

const SPOOL_ID: &str = "spool_id";
const HUB_MARK: &str = "hub_acked_seq";

impl Store {
    /// This store's id, made once (random) and kept: with a record's seq, its identity
    /// across agent restarts. Needs a read-write store the first time.
    pub fn spool_id(&self) -> Result<String, StoreError> {
        if let Some(v) = self.meta(SPOOL_ID)? {
            return Ok(format!("{v:016x}"));
        }
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, abs(random()))",
                params![SPOOL_ID],
            )
            .map_err(|e| self.err(e))?;
        let v = self.meta(SPOOL_ID)?.unwrap_or(0);
        Ok(format!("{v:016x}"))
    }

    /// Records after `seq`, oldest first, at most `limit`, with their sequence numbers.
    pub fn spooled_after(
        &self,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, FlowRecord)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "{SELECT_FLOWS} WHERE f.id > ?1 ORDER BY f.id LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                params![
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| Ok((r.get::<_, i64>(33)?.max(0) as u64, flow_record(r)?)),
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// The newest record's sequence number (0 when none was ever written).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.last_seq_of("flows")
    }

    /// The last sequence number an AUTOINCREMENT table handed out (0 when none).
    pub(super) fn last_seq_of(&self, table: &str) -> Result<u64, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                params![table],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// The oldest record still kept (None when empty): records between the hub's mark and
    /// this were removed by retention before the hub got them.
    pub fn first_seq(&self) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row("SELECT min(id) FROM flows", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(v.map(|v| v.max(0) as u64))
    }

    /// How far the hub has acknowledged this spool.
    pub fn hub_mark(&self) -> Result<u64, StoreError> {
        self.mark(HUB_MARK)
    }

    pub fn set_hub_mark(&self, seq: u64) -> Result<(), StoreError> {
        self.set_mark(HUB_MARK, seq)
    }

    /// A sequence number kept in `meta` under `key` (0 when never set).
    pub(super) fn mark(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self.meta(key)?.unwrap_or(0).max(0) as u64)
    }

    pub(super) fn set_mark(&self, key: &str, seq: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, i64::try_from(seq).unwrap_or(i64::MAX)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Limits, store::Store};

    fn flow(to_ms: i64, tx: u64) -> FlowRecord {
        FlowRecord {
            host: "h".into(),
            pid: 1,
            comm: "c".into(),
            proto: "tcp".into(),
            class: "loopback".into(),
            opened_ms: to_ms - 10,
            from_ms: to_ms - 10,
            to_ms,
            ended: true,
            tx_bytes: tx,
            ..FlowRecord::default()
        }
    }

    /// Sequence numbers follow writes, survive a reopen, and are never handed out again
    /// after retention emptied the table; the mark and the id persist.
    #[test]
    fn sequence_mark_and_id_persist() {
        let dir = std::env::temp_dir().join(format!("netmon-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("h.db");
        let now = crate::history::when::now_ms();
        let (id, third) = {
            let mut s = Store::open(&path).unwrap().store;
            assert_eq!(s.last_seq().unwrap(), 0);
            s.write(&[
                flow(now - 3000, 1),
                flow(now - 2000, 2),
                flow(now - 1000, 3),
            ])
            .unwrap();
            let got = s.spooled_after(1, 10).unwrap();
            assert_eq!(
                got.iter()
                    .map(|(q, f)| (*q, f.tx_bytes))
                    .collect::<Vec<_>>(),
                vec![(2, 2), (3, 3)]
            );
            assert_eq!(s.spooled_after(0, 1).unwrap().len(), 1);
            s.set_hub_mark(2).unwrap();
            (s.spool_id().unwrap(), got[1].1.clone())
        };
        let mut s = Store::open(&path).unwrap().store;
        assert_eq!(s.spool_id().unwrap(), id);
        assert_eq!(s.hub_mark().unwrap(), 2);
        assert_eq!(s.spooled_after(2, 10).unwrap()[0].1, third);
        // Everything expires; the next record still gets a new number.
        let limits = Limits {
            max_age_ms: 1,
            raw_max_age_ms: 1,
            max_bytes: 1 << 30,
        };
        s.prune(now + 10_000_000, &limits).unwrap();
        assert_eq!(s.first_seq().unwrap(), None);
        s.write(&[flow(now, 9)]).unwrap();
        assert_eq!(s.last_seq().unwrap(), 4);
        assert_eq!(s.first_seq().unwrap(), Some(4));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
