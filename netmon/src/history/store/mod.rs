//! The history store: one SQLite file (WAL) holding raw flow records and per-minute and
//! per-hour roll-ups, written by the daemon and read by `netmon flows` / `netmon report`.
//!
//! - `schema`: opening, identity checks (application_id, user_version), moving an unreadable
//!   file aside, migrations.
//! - `write`: one transaction per batch: raw rows plus roll-up upserts.
//! - `query`: `flows` and `report` (which source answers, and how edges are treated).
//! - `retention`: pruning by age and size, persistent removal counters, `stats`.
//! - `events`: host events (written, read by range or by sequence number for the agent).
//!
//! Times are Unix milliseconds. A record belongs to the range `(since, until]` when
//! `since < to_ms <= until`; roll-up buckets follow the same convention (see `bucket_of`).
mod events;
mod query;
mod retention;
mod schema;
mod spool;
mod write;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode};

use super::ReportRow;

pub use events::at_ms_of;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;

/// The history database, open for writing ([`Store::open`]) or reading ([`Store::open_read`]).
pub struct Store {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    /// Ids of process rows and roll-up keys already in the file, so a batch does not look
    /// them up again. Cleared whenever they may have become stale (prune, another writer).
    cache: write::Cache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// What [`Store::open`] gives.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    /// Set when an unreadable or foreign file was found at the path and moved aside (to this
    /// path, with its `-wal` and `-shm`) so that a fresh store could be started.
    pub moved_aside: Option<PathBuf>,
}

/// A `netmon report` answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    /// True when answered from per-minute roll-ups (minute-granular edges): the range was
    /// widened to whole minutes because raw records no longer cover an edge (or `every_ms`
    /// is not a whole number of minutes and raw records do not cover the range).
    pub from_rollups: bool,
    /// The grouping or filter needs raw records (`--pid`; `--comm` by remote, port or
    /// class) and retention removed them up to this time: the rows cover only after it.
    pub raw_gone_until: Option<i64>,
}

/// Every failure of the store, as one line naming the database path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no history database at {}: `netmon serve` records one (or `netmon run --record`)",
        .path.display()
    )]
    Missing { path: PathBuf },
    #[error("history database {}: cannot {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("history database {} is not writable (read-only file, directory or file system): {why}", .path.display())]
    ReadOnly { path: PathBuf, why: String },
    #[error("history database {}: disk full: {why}", .path.display())]
    DiskFull { path: PathBuf, why: String },
    #[error("history database {} is locked by another writer (waited {}s): {source}", .path.display(), BUSY_WAIT.as_secs())]
    Busy {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "history database {} has schema version {found}, newer than this netmon's {supported}: \
         use a newer netmon or another --db",
        .path.display()
    )]
    Newer {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{} is not a netmon history database: {why}", .path.display())]
    NotHistory { path: PathBuf, why: String },
    #[error("history database {}: {why}", .path.display())]
    Query { path: PathBuf, why: String },
    #[error("history database {}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// How long a writer waits for another one (a second `netmon` on the same file, a prune in
/// progress) before giving up; readers never wait for the writer in WAL mode.
pub(crate) const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl StoreError {
    /// Classifies an SQLite error: the ones a user can act on get their own variant.
    pub(crate) fn sql(path: &Path, e: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy { path, source: e }
            }
            Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => StoreError::ReadOnly {
                path,
                why: e.to_string(),
            },
            Some(ErrorCode::DiskFull) => StoreError::DiskFull {
                path,
                why: e.to_string(),
            },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::NotHistory {
                path,
                why: e.to_string(),
            },
            _ => StoreError::Sqlite { path, source: e },
        }
    }

    pub(crate) fn io(path: &Path, action: &'static str, e: std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                StoreError::ReadOnly {
                    path,
                    why: format!("cannot {action}: {e}"),
                }
            }
            std::io::ErrorKind::StorageFull => StoreError::DiskFull {
                path,
                why: format!("cannot {action}: {e}"),
            },
            _ => StoreError::Io {
                path,
                action,
                source: e,
            },
        }
    }
}

impl Store {
    /// Opens (creating it and its directories, mode 0750, when missing) the database for
    /// writing. An unreadable, corrupt or foreign file is moved aside and a fresh store
    /// started; a file from a newer netmon is refused.
    pub fn open(path: &Path) -> Result<Opened, StoreError> {
        let (conn, moved_aside) = schema::open_write(path)?;
        Ok(Opened {
            store: Store {
                conn,
                path: path.to_path_buf(),
                read_only: false,
                cache: write::Cache::default(),
            },
            moved_aside,
        })
    }

    /// Opens an existing database for reading only: never creates anything, never blocks or
    /// is blocked by the writer.
    pub fn open_read(path: &Path) -> Result<Store, StoreError> {
        let conn = schema::open_read(path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            read_only: true,
            cache: write::Cache::default(),
        })
    }

    /// The path the store was opened with (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA integrity_check` says "ok" (reads the whole file: slow on a large store).
    pub fn integrity_ok(&self) -> Result<bool, StoreError> {
        let first: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(first == "ok")
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::sql(&self.path, e)
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
                why: "opened for reading only".into(),
            });
        }
        Ok(())
    }
}

/// The bucket of width `width` that holds time `t`, as its start: buckets are `(start,
/// start + width]`, the same half-open convention as a query range `(since, until]`, so a
/// range whose ends are multiples of `width` is exactly a set of whole buckets. A record
/// whose stretch ends at 12:01:00.000 is in the 12:00 minute; one ending at 12:01:00.001 in
/// the 12:01 minute.
pub(crate) fn bucket_of(t: i64, width: i64) -> i64 {
    t.saturating_sub(1)
        .div_euclid(width.max(1))
        .saturating_mul(width.max(1))
}

/// `t` rounded down / up to a multiple of `width`.
pub(crate) fn floor_to(t: i64, width: i64) -> i64 {
    t.div_euclid(width.max(1)).saturating_mul(width.max(1))
}

pub(crate) fn ceil_to(t: i64, width: i64) -> i64 {
    let f = floor_to(t, width);
    if f == t { f } else { f.saturating_add(width) }
}

/// Counters are u64 in records and i64 in SQLite: larger values (never seen in practice)
/// are stored as i64::MAX rather than failing the whole batch.
pub(crate) fn to_sql_count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Identities (socket cookie, netns inode, start time) keep all 64 bits: stored as the i64
/// with the same bits, so they round-trip exactly.
pub(crate) fn to_sql_bits(v: u64) -> i64 {
    v as i64
}

pub(crate) fn from_sql_bits(v: i64) -> u64 {
    v as u64
}
