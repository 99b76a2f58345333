//! Writing a batch: raw rows and roll-up upserts in one transaction, so roll-ups always equal
//! the sums of the raw rows that were written (until retention removes raw rows).
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hash};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::{HOUR_MS, MINUTE_MS, Store, StoreError, bucket_of, to_sql_bits, to_sql_count};
use crate::hashing::{FastMap, WordHasher};
use crate::history::FlowRecord;

/// Ids already known to be in the file, with the `last_until_ms` written for them. Processes
/// are found by a 128-bit digest of their identity, so a record of a known process costs no
/// copies of its strings (at tens of thousands of records a second, that is what counts).
#[derive(Default)]
pub(super) struct Cache {
    /// By digest: already uniform, so hashed cheaply (one lookup per record).
    procs: FastMap<u128, Known>,
    proc_keys: HashMap<ProcKey, Known>,
    remote_keys: HashMap<RemoteKey, Known>,
    /// `PRAGMA data_version` when the cache was last valid: it changes when another
    /// connection commits (which may have pruned rows whose ids we hold).
    data_version: Option<i64>,
}

/// Above this many entries a cache is dropped (and refilled from the file as needed).
const CACHE_MAX: usize = 100_000;

impl Cache {
    pub(super) fn clear(&mut self) {
        self.procs.clear();
        self.proc_keys.clear();
        self.remote_keys.clear();
        self.data_version = None;
    }
}

#[derive(Clone, Copy)]
struct Known {
    id: i64,
    /// End of the minute of the newest record referring to the row, as stored.
    until: i64,
}

/// A digest of the fields `fields` feeds: two SipHashes with different keys, so a collision
/// (which would file a record under another process or group) is out of reach in practice.
fn digest(fields: impl Fn(&mut std::collections::hash_map::DefaultHasher)) -> u128 {
    use std::hash::Hasher;
    let mut a = std::collections::hash_map::DefaultHasher::new();
    let mut b = std::collections::hash_map::DefaultHasher::new();
    b.write_u64(0x6e65_746d_6f6e_2121);
    fields(&mut a);
    fields(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The identity of a record's process, as `procs` keys it.
fn proc_digest(f: &FlowRecord) -> u128 {
    digest(|h| {
        (
            &f.host,
            f.pid,
            f.start_time,
            &f.comm,
            &f.cmdline,
            f.uid,
            &f.unit,
            &f.container,
        )
            .hash(h)
    })
}

/// The record's per-remote roll-up group.
fn remote_digest(f: &FlowRecord) -> u128 {
    digest(|h| {
        (
            &f.host,
            f.remote.map(|a| a.ip()),
            &f.remote_name,
            &f.class,
            &f.proto,
            &f.direction,
            f.service_port(),
        )
            .hash(h)
    })
}

/// Whether two records name the same process as `proc_digest` sees it.
fn same_proc(a: &FlowRecord, b: &FlowRecord) -> bool {
    a.pid == b.pid
        && a.start_time == b.start_time
        && a.uid == b.uid
        && a.comm == b.comm
        && a.host == b.host
        && a.unit == b.unit
        && a.container == b.container
        && a.cmdline == b.cmdline
}

/// Whether two records fall in the same per-remote group as `remote_digest` sees it.
fn same_remote(a: &FlowRecord, b: &FlowRecord) -> bool {
    a.remote.map(|r| r.ip()) == b.remote.map(|r| r.ip())
        && a.service_port() == b.service_port()
        && a.proto == b.proto
        && a.direction == b.direction
        && a.class == b.class
        && a.remote_name == b.remote_name
        && a.host == b.host
}

/// The digests of the last few distinct groups of a batch, by the index of a record that
/// stands for each: a batch's records come from a few processes and remotes, and comparing
/// fields with a recent record is far cheaper than hashing them (two SipHashes over the
/// command line) for every record.
struct Recent<const N: usize> {
    slots: [(usize, u128); N],
    len: usize,
    next: usize,
}

impl<const N: usize> Recent<N> {
    fn new() -> Self {
        Recent {
            slots: [(0, 0); N],
            len: 0,
            next: 0,
        }
    }

    fn digest(
        &mut self,
        flows: &[FlowRecord],
        i: usize,
        same: fn(&FlowRecord, &FlowRecord) -> bool,
        digest: fn(&FlowRecord) -> u128,
    ) -> u128 {
        if let Some(&(_, d)) = self.slots[..self.len]
            .iter()
            .find(|&&(j, _)| same(&flows[j], &flows[i]))
        {
            return d;
        }
        let d = digest(&flows[i]);
        self.slots[self.next] = (i, d);
        self.next = (self.next + 1) % N;
        self.len = (self.len + 1).min(N);
        d
    }
}

/// A process as the `procs` table identifies it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ProcIdent {
    host: String,
    pid: u32,
    start_time: u64,
    comm: String,
    cmdline: String,
    uid: Option<u32>,
    unit: String,
    container: String,
}

impl ProcIdent {
    fn of(f: &FlowRecord) -> ProcIdent {
        ProcIdent {
            host: f.host.clone(),
            pid: f.pid,
            start_time: f.start_time,
            comm: f.comm.clone(),
            cmdline: f.cmdline.clone(),
            uid: f.uid,
            unit: f.unit.clone(),
            container: f.container.clone(),
        }
    }
}

impl ProcKey {
    fn of(f: &FlowRecord) -> ProcKey {
        ProcKey {
            host: f.host.clone(),
            comm: f.comm.clone(),
            unit: f.unit.clone(),
            container: f.container.clone(),
            uid: f.uid,
        }
    }
}

impl RemoteKey {
    fn of(f: &FlowRecord) -> RemoteKey {
        RemoteKey {
            host: f.host.clone(),
            ip: f.remote.map(|a| a.ip().to_string()),
            name: f.remote_name.clone(),
            class: f.class.clone(),
            proto: f.proto.clone(),
            direction: f.direction.clone(),
            port: f.service_port(),
        }
    }
}

/// The per-process roll-up group (no pid, no command line).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct ProcKey {
    host: String,
    comm: String,
    unit: String,
    container: String,
    uid: Option<u32>,
}

/// The per-remote roll-up group.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct RemoteKey {
    host: String,
    ip: Option<String>,
    name: Option<String>,
    class: String,
    proto: String,
    direction: String,
    port: Option<u16>,
}

/// The counters a roll-up row sums.
#[derive(Clone, Copy, Default)]
struct Sums {
    tx: u64,
    rx: u64,
    tx_wire: u64,
    rx_wire: u64,
    tx_packets: u64,
    rx_packets: u64,
    connections: u64,
}

impl Sums {
    fn of(f: &FlowRecord) -> Sums {
        Sums {
            tx: f.tx_bytes,
            rx: f.rx_bytes,
            tx_wire: f.tx_wire_bytes,
            rx_wire: f.rx_wire_bytes,
            tx_packets: f.tx_packets,
            rx_packets: f.rx_packets,
            connections: u64::from(f.segment == 0),
        }
    }

    fn add(&mut self, o: &Sums) {
        self.tx = self.tx.saturating_add(o.tx);
        self.rx = self.rx.saturating_add(o.rx);
        self.tx_wire = self.tx_wire.saturating_add(o.tx_wire);
        self.rx_wire = self.rx_wire.saturating_add(o.rx_wire);
        self.tx_packets = self.tx_packets.saturating_add(o.tx_packets);
        self.rx_packets = self.rx_packets.saturating_add(o.rx_packets);
        self.connections = self.connections.saturating_add(o.connections);
    }
}

/// Rows looked up or inserted in the current transaction: they join the cache only after
/// the commit, so a rolled-back batch cannot leave ids in the cache that are not in the file.
struct Pending<K, S = RandomState> {
    /// id, `until` in the file, `until` needed by this batch.
    rows: HashMap<K, (i64, i64, i64), S>,
}

impl<K: Hash + Eq + Clone, S: BuildHasher + Default> Pending<K, S> {
    fn new() -> Self {
        Pending {
            rows: HashMap::default(),
        }
    }

    /// The id of `key`, from this batch, the cache or the file (inserting it if new).
    fn resolve(
        &mut self,
        cache: &HashMap<K, Known, S>,
        key: &K,
        until: i64,
        find: impl FnOnce(&K) -> rusqlite::Result<Option<(i64, i64)>>,
        insert: impl FnOnce(&K, i64) -> rusqlite::Result<i64>,
    ) -> rusqlite::Result<i64> {
        if let Some(p) = self.rows.get_mut(key) {
            p.2 = p.2.max(until);
            return Ok(p.0);
        }
        if let Some(k) = cache.get(key) {
            if until > k.until {
                self.rows.insert(key.clone(), (k.id, k.until, until));
            }
            return Ok(k.id);
        }
        let (id, stored) = match find(key)? {
            Some(found) => found,
            None => (insert(key, until)?, until),
        };
        self.rows
            .insert(key.clone(), (id, stored, stored.max(until)));
        Ok(id)
    }

    /// Raises `last_until_ms` where this batch has newer records.
    fn flush(&self, tx: &Transaction, table: &str) -> rusqlite::Result<()> {
        let mut up = tx.prepare_cached(&format!(
            "UPDATE {table} SET last_until_ms = max(last_until_ms, ?2) WHERE id = ?1"
        ))?;
        for &(id, stored, needed) in self.rows.values() {
            if needed > stored {
                up.execute(params![id, needed])?;
            }
        }
        Ok(())
    }

    fn commit(self, cache: &mut HashMap<K, Known, S>) {
        if cache.len() + self.rows.len() > CACHE_MAX {
            cache.clear();
        }
        for (k, (id, _, until)) in self.rows {
            cache.insert(k, Known { id, until });
        }
    }
}

const INSERT_FLOW: &str = "INSERT INTO flows (
    proc, flow_id, segment, netns, proto, direction, local_ip, local_port, remote_ip,
    remote_port, service_port, remote_name, class, opened_ms, from_ms, to_ms, ended, tx_bytes,
    rx_bytes, tx_wire_bytes, rx_wire_bytes, tx_packets, rx_packets, handshake_us,
    retransmits, rtt_us, closed_by)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)";

/// Adds to a roll-up row; sums saturate at i64::MAX instead of failing the batch.
fn upsert_sql(table: &str) -> String {
    let cols = [
        "tx_bytes",
        "rx_bytes",
        "tx_wire_bytes",
        "rx_wire_bytes",
        "tx_packets",
        "rx_packets",
        "connections",
    ];
    let set: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "{c} = CASE WHEN {c} > 9223372036854775807 - excluded.{c} \
                 THEN 9223372036854775807 ELSE {c} + excluded.{c} END"
            )
        })
        .collect();
    format!(
        "INSERT INTO {table} (bucket, key, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (bucket, key) DO UPDATE SET {}",
        cols.join(", "),
        set.join(", ")
    )
}

fn upsert(tx: &Transaction, table: &str, rows: &HashMap<(i64, i64), Sums>) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(&upsert_sql(table))?;
    for (&(bucket, key), s) in rows {
        st.execute(params![
            bucket,
            key,
            to_sql_count(s.tx),
            to_sql_count(s.rx),
            to_sql_count(s.tx_wire),
            to_sql_count(s.rx_wire),
            to_sql_count(s.tx_packets),
            to_sql_count(s.rx_packets),
            to_sql_count(s.connections),
        ])?;
    }
    Ok(())
}

/// Minute sums folded into hour sums: a minute `(s, s + 1 min]` lies in the hour starting at
/// `floor(s / 1 h)`, the same hour `bucket_of` gives its records.
fn by_hour(minutes: &HashMap<(i64, i64), Sums>) -> HashMap<(i64, i64), Sums> {
    let mut hours: HashMap<(i64, i64), Sums> = HashMap::new();
    for (&(m, key), s) in minutes {
        hours
            .entry((m.div_euclid(HOUR_MS).saturating_mul(HOUR_MS), key))
            .or_default()
            .add(s);
    }
    hours
}

impl Store {
    /// Writes a batch in ONE transaction: the raw rows, new process and roll-up key rows, and
    /// the per-minute and per-hour roll-up upserts. On error nothing of the batch is stored.
    pub fn write(&mut self, flows: &[FlowRecord]) -> Result<(), StoreError> {
        self.writable()?;
        if flows.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let e = |e| StoreError::sql(&path, e);
        let Store { conn, cache, .. } = self;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let dv: i64 = tx
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(e)?;
        if cache.data_version != Some(dv) {
            cache.clear();
        }
        let mut procs = Pending::<u128, BuildHasherDefault<WordHasher>>::new();
        let mut pkeys = Pending::<ProcKey>::new();
        let mut rkeys = Pending::<RemoteKey>::new();
        // Sums per (minute, process row) and (minute, remote group digest), each with the
        // index of a record that stands for its group: the groups' keys (strings) are built
        // once per group, not once per record.
        let mut by_proc: FastMap<(i64, i64), (Sums, usize)> = FastMap::default();
        let mut by_remote: FastMap<(i64, u128), (Sums, usize)> = FastMap::default();
        {
            let mut insert = tx.prepare_cached(INSERT_FLOW).map_err(e)?;
            let (mut recent_procs, mut recent_remotes) = (Recent::<8>::new(), Recent::<8>::new());
            for (i, f) in flows.iter().enumerate() {
                let minute = bucket_of(f.to_ms, MINUTE_MS);
                let until = minute.saturating_add(MINUTE_MS);
                let proc_digest = recent_procs.digest(flows, i, same_proc, proc_digest);
                let proc_id = procs
                    .resolve(
                        &cache.procs,
                        &proc_digest,
                        until,
                        |_| find_proc(&tx, &ProcIdent::of(f)),
                        |_, u| insert_proc(&tx, &ProcIdent::of(f), u),
                    )
                    .map_err(e)?;
                insert_flow(&mut insert, proc_id, f).map_err(e)?;
                let s = Sums::of(f);
                by_proc
                    .entry((minute, proc_id))
                    .or_insert((Sums::default(), i))
                    .0
                    .add(&s);
                by_remote
                    .entry((
                        minute,
                        recent_remotes.digest(flows, i, same_remote, remote_digest),
                    ))
                    .or_insert((Sums::default(), i))
                    .0
                    .add(&s);
            }
        }
        let mut proc_min: HashMap<(i64, ProcKey), Sums> = HashMap::new();
        for (&(minute, _), (s, i)) in &by_proc {
            proc_min
                .entry((minute, ProcKey::of(&flows[*i])))
                .or_default()
                .add(s);
        }
        let mut remote_min: HashMap<(i64, RemoteKey), Sums> = HashMap::new();
        for (&(minute, _), (s, i)) in &by_remote {
            remote_min
                .entry((minute, RemoteKey::of(&flows[*i])))
                .or_default()
                .add(s);
        }
        // Roll-up keys resolved once per group and minute, not once per record.
        let mut pmin: HashMap<(i64, i64), Sums> = HashMap::new();
        for ((minute, k), s) in &proc_min {
            let until = minute.saturating_add(MINUTE_MS);
            let id = pkeys
                .resolve(
                    &cache.proc_keys,
                    k,
                    until,
                    |k| find_proc_key(&tx, k),
                    |k, u| insert_proc_key(&tx, k, u),
                )
                .map_err(e)?;
            pmin.entry((*minute, id)).or_default().add(s);
        }
        let mut rmin: HashMap<(i64, i64), Sums> = HashMap::new();
        for ((minute, k), s) in &remote_min {
            let until = minute.saturating_add(MINUTE_MS);
            let id = rkeys
                .resolve(
                    &cache.remote_keys,
                    k,
                    until,
                    |k| find_remote_key(&tx, k),
                    |k, u| insert_remote_key(&tx, k, u),
                )
                .map_err(e)?;
            rmin.entry((*minute, id)).or_default().add(s);
        }
        upsert(&tx, "proc_minute", &pmin).map_err(e)?;
        upsert(&tx, "proc_hour", &by_hour(&pmin)).map_err(e)?;
        upsert(&tx, "remote_minute", &rmin).map_err(e)?;
        upsert(&tx, "remote_hour", &by_hour(&rmin)).map_err(e)?;
        procs.flush(&tx, "procs").map_err(e)?;
        pkeys.flush(&tx, "proc_keys").map_err(e)?;
        rkeys.flush(&tx, "remote_keys").map_err(e)?;
        tx.commit().map_err(e)?;
        procs.commit(&mut cache.procs);
        pkeys.commit(&mut cache.proc_keys);
        rkeys.commit(&mut cache.remote_keys);
        cache.data_version = Some(dv);
        Ok(())
    }
}

fn insert_flow(
    st: &mut rusqlite::CachedStatement,
    proc_id: i64,
    f: &FlowRecord,
) -> rusqlite::Result<()> {
    st.execute(params![
        proc_id,
        to_sql_bits(f.flow_id),
        f.segment,
        to_sql_bits(f.netns),
        f.proto,
        f.direction,
        f.local.map(|a| a.ip().to_string()),
        f.local.map(|a| a.port()),
        f.remote.map(|a| a.ip().to_string()),
        f.remote.map(|a| a.port()),
        f.service_port(),
        f.remote_name,
        f.class,
        f.opened_ms,
        f.from_ms,
        f.to_ms,
        f.ended,
        to_sql_count(f.tx_bytes),
        to_sql_count(f.rx_bytes),
        to_sql_count(f.tx_wire_bytes),
        to_sql_count(f.rx_wire_bytes),
        to_sql_count(f.tx_packets),
        to_sql_count(f.rx_packets),
        f.handshake_us.map(to_sql_count),
        to_sql_count(f.retransmits),
        f.rtt_us.map(to_sql_count),
        f.closed_by,
    ])?;
    Ok(())
}

fn find_proc(tx: &Transaction, k: &ProcIdent) -> rusqlite::Result<Option<(i64, i64)>> {
    tx.prepare_cached(
        "SELECT id, last_until_ms FROM procs WHERE pid = ?1 AND start_time = ?2 AND host = ?3
         AND comm = ?4 AND cmdline = ?5 AND uid IS ?6 AND unit = ?7 AND container = ?8",
    )?
    .query_row(
        params![
            k.pid,
            to_sql_bits(k.start_time),
            k.host,
            k.comm,
            k.cmdline,
            k.uid,
            k.unit,
            k.container
        ],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

fn insert_proc(tx: &Transaction, k: &ProcIdent, until: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO procs (host, pid, start_time, comm, cmdline, uid, unit, container,
         last_until_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        k.host,
        k.pid,
        to_sql_bits(k.start_time),
        k.comm,
        k.cmdline,
        k.uid,
        k.unit,
        k.container,
        until
    ])?;
    Ok(tx.last_insert_rowid())
}

fn find_proc_key(tx: &Transaction, k: &ProcKey) -> rusqlite::Result<Option<(i64, i64)>> {
    tx.prepare_cached(
        "SELECT id, last_until_ms FROM proc_keys WHERE comm = ?1 AND host = ?2 AND unit = ?3
         AND container = ?4 AND uid IS ?5",
    )?
    .query_row(params![k.comm, k.host, k.unit, k.container, k.uid], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

fn insert_proc_key(tx: &Transaction, k: &ProcKey, until: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO proc_keys (host, comm, unit, container, uid, last_until_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![k.host, k.comm, k.unit, k.container, k.uid, until])?;
    Ok(tx.last_insert_rowid())
}

fn find_remote_key(tx: &Transaction, k: &RemoteKey) -> rusqlite::Result<Option<(i64, i64)>> {
    tx.prepare_cached(
        "SELECT id, last_until_ms FROM remote_keys WHERE remote_ip IS ?1 AND host = ?2
         AND remote_name IS ?3 AND class = ?4 AND proto = ?5 AND direction = ?6
         AND service_port IS ?7",
    )?
    .query_row(
        params![k.ip, k.host, k.name, k.class, k.proto, k.direction, k.port],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

fn insert_remote_key(tx: &Transaction, k: &RemoteKey, until: i64) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO remote_keys (host, remote_ip, remote_name, class, proto, direction,
         service_port, last_until_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        k.host,
        k.ip,
        k.name,
        k.class,
        k.proto,
        k.direction,
        k.port,
        until
    ])?;
    Ok(tx.last_insert_rowid())
}
