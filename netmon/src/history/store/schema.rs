//! Opening the file: identity checks, moving an unreadable file aside, pragmas, migrations.
//!
//! The file says it is ours with `application_id` (the bytes "NMON") and which schema it has
//! with `user_version`; both are set in the transaction that creates the schema, so a file
//! left half-initialised by a crash is seen as foreign and moved aside, never half-used.
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::{BUSY_WAIT, StoreError};

/// "NMON" in the SQLite header, so `file(1)`-like tools and we can tell the file apart.
pub(crate) const APPLICATION_ID: i64 = 0x4E4D_4F4E;
/// The schema this code writes; `MIGRATIONS[v]` takes a file from version v to v + 1.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const MIGRATIONS: &[&str] = &[V1];

/// Version 1.
///
/// - `procs`: process identity, normalised out of `flows` so command lines are stored once
///   per process. `last_until_ms` is the end of the minute of its newest record, so retention
///   can drop process rows no flow refers to without an index on `flows.proc`.
/// - `flows`: one row per FlowRecord; addresses as text + integer port so `sqlite3` users
///   can query them; `service_port` precomputed; indexed by `to_ms` (every query and every
///   pruning is a `to_ms` range).
/// - `proc_keys` / `remote_keys`: the roll-up groups; `*_minute` / `*_hour`: sums per bucket
///   `(bucket, bucket + width]` and group. Per-process roll-ups leave out the pid (short-lived
///   processes would multiply rows); per-remote ones keep the service port, class and
///   direction. Hourly tables make month-long reports read ~60x fewer rows.
/// - `meta`: removal counters and how far raw records may have been pruned; the spool's id
///   and how far the hub acknowledged it (fleet).
/// - `flows.id` is AUTOINCREMENT: it is the record's sequence number in the spool, and must
///   never be handed out again even after retention emptied the table.
/// - `events`: host events (devices, interfaces, listeners, contacts), one row each, with
///   the event's JSON as printed and the fields queries select on as columns; `seq` is
///   AUTOINCREMENT for the same reason as `flows.id` (the agent publishes events by seq).
/// - Views join the ids back for people using the `sqlite3` tool.
const V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    pid INTEGER,
    comm TEXT,
    json TEXT NOT NULL
);
CREATE INDEX events_at_ms ON events (at_ms);

CREATE TABLE procs (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    comm TEXT NOT NULL,
    cmdline TEXT NOT NULL,
    uid INTEGER,
    unit TEXT NOT NULL,
    container TEXT NOT NULL,
    last_until_ms INTEGER NOT NULL
);
CREATE INDEX procs_pid ON procs (pid, start_time);

CREATE TABLE flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    proc INTEGER NOT NULL,
    flow_id INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    netns INTEGER NOT NULL,
    proto TEXT NOT NULL,
    direction TEXT NOT NULL,
    local_ip TEXT,
    local_port INTEGER,
    remote_ip TEXT,
    remote_port INTEGER,
    service_port INTEGER,
    remote_name TEXT,
    class TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL,
    rx_bytes INTEGER NOT NULL,
    tx_wire_bytes INTEGER NOT NULL,
    rx_wire_bytes INTEGER NOT NULL,
    tx_packets INTEGER NOT NULL,
    rx_packets INTEGER NOT NULL,
    handshake_us INTEGER,
    retransmits INTEGER NOT NULL,
    rtt_us INTEGER,
    closed_by TEXT
);
CREATE INDEX flows_to_ms ON flows (to_ms);

CREATE TABLE proc_keys (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    comm TEXT NOT NULL,
    unit TEXT NOT NULL,
    container TEXT NOT NULL,
    uid INTEGER,
    last_until_ms INTEGER NOT NULL
);
CREATE INDEX proc_keys_ident ON proc_keys (comm, host, unit, container, uid);

CREATE TABLE remote_keys (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    remote_ip TEXT,
    remote_name TEXT,
    class TEXT NOT NULL,
    proto TEXT NOT NULL,
    direction TEXT NOT NULL,
    service_port INTEGER,
    last_until_ms INTEGER NOT NULL
);
CREATE INDEX remote_keys_ident
    ON remote_keys (remote_ip, host, remote_name, class, proto, direction, service_port);

CREATE TABLE proc_minute (
    bucket INTEGER NOT NULL, key INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL, rx_bytes INTEGER NOT NULL,
    tx_wire_bytes INTEGER NOT NULL, rx_wire_bytes INTEGER NOT NULL,
    tx_packets INTEGER NOT NULL, rx_packets INTEGER NOT NULL,
    connections INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE proc_hour (
    bucket INTEGER NOT NULL, key INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL, rx_bytes INTEGER NOT NULL,
    tx_wire_bytes INTEGER NOT NULL, rx_wire_bytes INTEGER NOT NULL,
    tx_packets INTEGER NOT NULL, rx_packets INTEGER NOT NULL,
    connections INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE remote_minute (
    bucket INTEGER NOT NULL, key INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL, rx_bytes INTEGER NOT NULL,
    tx_wire_bytes INTEGER NOT NULL, rx_wire_bytes INTEGER NOT NULL,
    tx_packets INTEGER NOT NULL, rx_packets INTEGER NOT NULL,
    connections INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE remote_hour (
    bucket INTEGER NOT NULL, key INTEGER NOT NULL,
    tx_bytes INTEGER NOT NULL, rx_bytes INTEGER NOT NULL,
    tx_wire_bytes INTEGER NOT NULL, rx_wire_bytes INTEGER NOT NULL,
    tx_packets INTEGER NOT NULL, rx_packets INTEGER NOT NULL,
    connections INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;

CREATE VIEW flow_records AS
    SELECT f.*, p.host, p.pid, p.start_time, p.comm, p.cmdline, p.uid, p.unit, p.container
    FROM flows f JOIN procs p ON p.id = f.proc;
CREATE VIEW process_minutes AS
    SELECT r.bucket AS minute_ms, k.host, k.comm, k.unit, k.container, k.uid, r.tx_bytes,
           r.rx_bytes, r.tx_wire_bytes, r.rx_wire_bytes, r.tx_packets, r.rx_packets,
           r.connections
    FROM proc_minute r JOIN proc_keys k ON k.id = r.key;
CREATE VIEW remote_minutes AS
    SELECT r.bucket AS minute_ms, k.host, k.remote_ip, k.remote_name, k.class, k.proto,
           k.direction, k.service_port, r.tx_bytes, r.rx_bytes, r.tx_wire_bytes,
           r.rx_wire_bytes, r.tx_packets, r.rx_packets, r.connections
    FROM remote_minute r JOIN remote_keys k ON k.id = r.key;
";

/// What is at the path.
enum Probe {
    /// Ours (at `user_version` ≤ ours) or an empty file: usable.
    Usable(Connection),
    /// Not a database, corrupt, or another application's: move aside.
    Unusable(String),
}

pub(super) fn open_write(path: &Path) -> Result<(Connection, Option<PathBuf>), StoreError> {
    create_parent(path)?;
    create_file(path)?;
    let mut moved_aside = None;
    let mut conn = match probe(path)? {
        Probe::Usable(conn) => conn,
        Probe::Unusable(why) => {
            log::warn!(
                "history database {}: {why}; moving it aside and starting a fresh one",
                path.display()
            );
            let aside = move_aside(path)?;
            moved_aside = Some(aside);
            create_file(path)?;
            connect(path, false)?
        }
    };
    prepare(&mut conn, path)?;
    Ok((conn, moved_aside))
}

pub(super) fn open_read(path: &Path) -> Result<Connection, StoreError> {
    match fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(StoreError::io(path, "read it", e)),
    }
    let conn = connect(path, true)?;
    let (app, version) = identity(&conn).map_err(|e| StoreError::sql(path, e))?;
    let not_ours = |why: &str| StoreError::NotHistory {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    if app != APPLICATION_ID {
        return Err(not_ours(if app == 0 && version == 0 {
            "empty, or not yet initialised by a writer"
        } else {
            "another application's SQLite file"
        }));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        // Only a writer may migrate; with one version there is nothing older to read.
        return Err(not_ours(&format!(
            "schema version {version}; open it once with `netmon serve` to upgrade it"
        )));
    }
    Ok(conn)
}

fn create_parent(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    // 0750: flows name processes, users and remote hosts; not for every local user.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| StoreError::io(path, "create its directory", e))
}

/// Creates the file ourselves (mode 0640) so that a read-only directory or file system is
/// reported as such, not as SQLite's "unable to open database file".
fn create_file(path: &Path) -> Result<(), StoreError> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::io(path, "open it for writing", e))
}

fn connect(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::sql(path, e))?;
    conn.busy_timeout(BUSY_WAIT)
        .map_err(|e| StoreError::sql(path, e))?;
    // A batch uses ~14 statements and reports a dozen more: keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn identity(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let app = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok((app, version))
}

/// Errors that mean "these bytes are not a usable database", as opposed to errors of the
/// moment (busy, permissions, I/O) after which the file must be left alone.
fn unreadable(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

fn probe(path: &Path) -> Result<Probe, StoreError> {
    let conn = connect(path, false)?;
    let (app, version) = match identity(&conn) {
        Ok(v) => v,
        Err(e) if unreadable(&e) => return Ok(Probe::Unusable(e.to_string())),
        Err(e) => return Err(StoreError::sql(path, e)),
    };
    if app == 0 && version == 0 {
        let tables: i64 =
            match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)) {
                Ok(n) => n,
                Err(e) if unreadable(&e) => return Ok(Probe::Unusable(e.to_string())),
                Err(e) => return Err(StoreError::sql(path, e)),
            };
        return Ok(if tables == 0 {
            Probe::Usable(conn)
        } else {
            Probe::Unusable("another application's SQLite file".into())
        });
    }
    if app != APPLICATION_ID {
        return Ok(Probe::Unusable(format!(
            "another application's SQLite file (application_id {app:#x})"
        )));
    }
    if version > SCHEMA_VERSION {
        // Written by a newer netmon: keep it for that netmon, do not destroy it.
        return Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        return Ok(Probe::Unusable("netmon file without a schema".into()));
    }
    match conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
        Ok(s) if s == "ok" => Ok(Probe::Usable(conn)),
        Ok(s) => Ok(Probe::Unusable(format!("quick_check: {s}"))),
        Err(e) if unreadable(&e) => Ok(Probe::Unusable(e.to_string())),
        Err(e) => Err(StoreError::sql(path, e)),
    }
}

/// Renames the file and its `-wal` / `-shm` to `PATH.corrupt-<unix secs>` (plus `-wal`,
/// `-shm`, so `sqlite3` opens the set together); `.N` is added if that name is taken.
pub(super) fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.corrupt-{secs}", path.display());
    let mut aside = PathBuf::from(&base);
    let mut n = 1;
    while aside.exists() {
        aside = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            fs::rename(&from, &to).map_err(|e| StoreError::io(path, "move it aside", e))?;
        }
    }
    fs::rename(path, &aside).map_err(|e| StoreError::io(path, "move it aside", e))?;
    Ok(aside)
}

/// Pragmas, then the schema created or migrated in one immediate transaction (a second
/// writer opening at the same moment waits, then finds the schema done).
fn prepare(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let e = |e| StoreError::sql(path, e);
    // auto_vacuum only takes effect before the first table exists, and must come before the
    // switch to WAL; INCREMENTAL lets retention give pages back to the file system.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(e)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(e)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Query {
            path: path.to_path_buf(),
            why: format!("cannot switch to WAL mode (journal_mode is {mode})"),
        });
    }
    // NORMAL: consistent after any crash, durable across process crashes, no fsync per
    // commit (may lose the last commits on power loss).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(e)?;
    // Checkpoint every ~40 MiB of WAL rather than SQLite's 4 MiB: the daemon rewrites the
    // same few roll-up and index pages every second, and a page is copied into the file once
    // per checkpoint however often it changed, so rarer checkpoints write (and fsync) less.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .map_err(e)?;
    // After a large prune the WAL is truncated back to this instead of staying large.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(e)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(e)?;
    let (_, version) = identity(&tx).map_err(e)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let from = usize::try_from(version).unwrap_or(0);
    for step in MIGRATIONS.iter().skip(from) {
        tx.execute_batch(step).map_err(e)?;
    }
    if from < MIGRATIONS.len() {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(e)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(e)?;
    }
    tx.commit().map_err(e)
}
