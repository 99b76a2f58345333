//! The recorder: a thread that owns the history store, so SQLite's disk work never runs on the
//! aggregating loop. The loop hands it each interval's flow records, and host events as they
//! come, without waiting; what the store cannot take (the thread is behind, the disk is full,
//! the directory is read-only) is dropped and counted by reason, and netmon goes on serving.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        mpsc::{self, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use log::{info, warn};

use super::store::Store;
use super::{FlowRecord, HistoryStatus, Limits, when::now_ms};
use crate::events::{HostEvent, Kind};

/// Batches waiting for the thread (of at most a few thousand records each: the loop hands
/// them over as they accumulate); beyond, new ones are dropped (and counted): a few seconds of
/// records at tens of thousands of connections a second, some 40 MB at most.
const QUEUE_BATCHES: usize = 16;
/// Records written in one transaction at most: a thread that fell behind catches up in a few
/// larger commits rather than many small ones, without holding much more in memory.
const COALESCE_RECORDS: usize = 8_192;
/// How often retention runs and the store's size is read.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long to wait before opening a store that could not be opened again.
const REOPEN_AFTER: Duration = Duration::from_secs(30);

/// What the thread is handed: each kind is written in a transaction of its own.
enum Batch {
    Flows(Vec<FlowRecord>),
    Events(Vec<HostEvent>),
}

pub struct Recorder {
    tx: Option<SyncSender<Batch>>,
    status: Arc<Mutex<HistoryStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts the thread; the store is opened there (a failure is a warning and counted
    /// drops, not an error: history is not worth stopping the monitor for).
    pub fn start(db: PathBuf, limits: Limits, host: String) -> Recorder {
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        let status = Arc::new(Mutex::new(HistoryStatus {
            db: db.clone(),
            events: Kind::ALL
                .iter()
                .map(|k| (k.as_str().to_string(), 0))
                .collect(),
            ..HistoryStatus::default()
        }));
        let shared = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("netmon-history".into())
            .spawn(move || Writer::new(db, limits, host, shared).run(&rx))
            .ok();
        if thread.is_none() {
            warn!("could not start the history thread: no flow records will be kept");
        }
        Recorder {
            tx: thread.is_some().then_some(tx),
            status,
            thread,
        }
    }

    /// Hands records to the thread without waiting; when it is behind they are dropped and
    /// counted.
    pub fn submit(&self, flows: Vec<FlowRecord>) {
        if flows.is_empty() {
            return;
        }
        let n = flows.len() as u64;
        self.send(Batch::Flows(flows), n);
    }

    /// Hands host events to the thread without waiting (their host is set to the recorder's,
    /// like flow records'); they are counted by kind whether or not they can be recorded, and
    /// dropped and counted like flow records when the thread is behind.
    pub fn submit_events(&self, events: Vec<HostEvent>) {
        if events.is_empty() {
            return;
        }
        if let Ok(mut s) = self.status.lock() {
            for ev in &events {
                *s.events.entry(ev.kind.as_str().to_string()).or_default() += 1;
            }
        }
        let n = events.len() as u64;
        self.send(Batch::Events(events), n);
    }

    /// Counts a host event source that could not start or stopped (warned about by the
    /// caller).
    pub fn event_source_failed(&self) {
        if let Ok(mut s) = self.status.lock() {
            s.event_source_failures += 1;
        }
    }

    fn send(&self, batch: Batch, n: u64) {
        let reason = match &self.tx {
            Some(tx) => match tx.try_send(batch) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => "writer_behind",
                Err(TrySendError::Disconnected(_)) => "store_unavailable",
            },
            None => "store_unavailable",
        };
        drop_count(&self.status, reason, n);
    }

    /// Counts, sizes and drops as of now.
    pub fn status(&self) -> HistoryStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Writes what is queued and stops the thread.
    pub fn finish(mut self) -> HistoryStatus {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.status()
    }
}

fn drop_count(status: &Mutex<HistoryStatus>, reason: &str, n: u64) {
    if let Ok(mut s) = status.lock() {
        *s.dropped.entry(reason.to_string()).or_default() += n;
    }
}

/// The thread's side: the store (once it opens) and when to prune next.
struct Writer {
    db: PathBuf,
    limits: Limits,
    host: String,
    status: Arc<Mutex<HistoryStatus>>,
    store: Option<Store>,
    next_open: Instant,
    next_prune: Instant,
    /// The last error warned about, so a failing disk is one warning, not one per second.
    warned: Option<String>,
}

impl Writer {
    fn new(db: PathBuf, limits: Limits, host: String, status: Arc<Mutex<HistoryStatus>>) -> Writer {
        let now = Instant::now();
        Writer {
            db,
            limits,
            host,
            status,
            store: None,
            next_open: now,
            next_prune: now,
            warned: None,
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Batch>) {
        self.ensure_open();
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(first) = first {
                let (mut flows, mut events) = (Vec::new(), Vec::new());
                let mut next = Some(first);
                while let Some(b) = next.take() {
                    match b {
                        Batch::Flows(f) => flows.extend(f),
                        Batch::Events(e) => events.extend(e),
                    }
                    if flows.len() + events.len() < COALESCE_RECORDS {
                        next = rx.try_recv().ok();
                    }
                }
                if !flows.is_empty() {
                    self.write(flows);
                }
                if !events.is_empty() {
                    self.write_events(events);
                }
            }
            if Instant::now() >= self.next_prune {
                self.prune();
            }
        }
        self.prune();
    }

    fn ensure_open(&mut self) {
        if self.store.is_some() || Instant::now() < self.next_open {
            return;
        }
        match Store::open(&self.db) {
            Ok(opened) => {
                if let Some(old) = opened.moved_aside {
                    warn!(
                        "{} was not a readable netmon history database: moved to {} and \
                         started a new one",
                        self.db.display(),
                        old.display()
                    );
                }
                info!("recording flow history to {}", self.db.display());
                self.store = Some(opened.store);
                self.failing(None);
            }
            Err(e) => {
                self.next_open = Instant::now() + REOPEN_AFTER;
                self.failing(Some(e.to_string()));
            }
        }
    }

    fn write(&mut self, mut batch: Vec<FlowRecord>) {
        for f in &mut batch {
            f.host.clone_from(&self.host);
        }
        self.commit(&batch, Store::write, |s| &mut s.written);
    }

    fn write_events(&mut self, mut events: Vec<HostEvent>) {
        for ev in &mut events {
            ev.host.clone_from(&self.host);
        }
        self.commit(&events, Store::write_events, |s| &mut s.events_written);
    }

    /// Writes `items` with `write`, counting them as written (`written`) or dropped.
    fn commit<T>(
        &mut self,
        items: &[T],
        write: fn(&mut Store, &[T]) -> Result<(), super::store::StoreError>,
        written: fn(&mut HistoryStatus) -> &mut u64,
    ) {
        self.ensure_open();
        let n = items.len() as u64;
        let Some(store) = self.store.as_mut() else {
            drop_count(&self.status, "store_unavailable", n);
            return;
        };
        match write(store, items) {
            Ok(()) => {
                if let Ok(mut s) = self.status.lock() {
                    *written(&mut s) += n;
                }
                self.failing(None);
            }
            Err(e) => {
                drop_count(&self.status, "store_error", n);
                self.failing(Some(e.to_string()));
            }
        }
    }

    fn prune(&mut self) {
        self.next_prune = Instant::now() + PRUNE_EVERY;
        self.ensure_open();
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let now = now_ms();
        let pruned = store.prune(now, &self.limits).map_err(|e| e.to_string());
        // Not `stats`: its row counts read the whole store, every minute.
        let stats = store.health().map_err(|e| e.to_string());
        let err = pruned.as_ref().err().or(stats.as_ref().err()).cloned();
        if let Ok(s) = &stats
            && let Ok(mut st) = self.status.lock()
        {
            st.db_bytes = s.db_bytes;
            st.removed = s.removed;
            let oldest = match (s.oldest_flow_ms, s.oldest_rollup_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            st.oldest_age_secs = oldest.map(|o| (now - o).max(0) as f64 / 1000.0);
        }
        if err.is_some() {
            self.failing(err);
        }
    }

    /// Records the store's current failure (None: it works); warns once per new failure.
    fn failing(&mut self, why: Option<String>) {
        if let Ok(mut s) = self.status.lock() {
            s.failing.clone_from(&why);
        }
        match why {
            Some(w) if self.warned.as_ref() != Some(&w) => {
                warn!(
                    "history: {w}; flow records and events are dropped and counted until it works"
                );
                self.warned = Some(w);
            }
            Some(_) => {}
            None => {
                if self.warned.take().is_some() {
                    info!("history: recording again");
                }
            }
        }
    }
}

/// This machine's name, as flow records carry it.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Events seen by kind, every kind shown (as zero) so alerts can be written before the
/// first event.
pub fn all_event_kinds(status: &HistoryStatus) -> BTreeMap<String, u64> {
    let mut m = status.events.clone();
    for k in Kind::ALL {
        m.entry(k.as_str().to_string()).or_default();
    }
    m
}

/// The reasons records can be dropped for, all shown (as zero) so alerts can be written
/// before the first drop.
pub fn all_drop_reasons(status: &HistoryStatus) -> BTreeMap<String, u64> {
    let mut m = status.dropped.clone();
    for r in [
        "writer_behind",
        "store_error",
        "store_unavailable",
        "not_taken",
    ] {
        m.entry(r.to_string()).or_default();
    }
    m
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::events::model::{Link, Listener, What};

    fn link_up(ms: u64) -> HostEvent {
        HostEvent::new(
            What::LinkUp(Link {
                ifindex: 2,
                ifname: "d0".into(),
                link_kind: Some("dummy".into()),
                mac: None,
                up: true,
                carrier: true,
            }),
            "events-own-host",
            UNIX_EPOCH + Duration::from_millis(ms),
        )
    }

    fn listen(ms: u64) -> HostEvent {
        HostEvent::new(
            What::ListenStarted(Listener {
                pid: 1,
                comm: "sshd".into(),
                unit: "ssh.service".into(),
                proto: "tcp".into(),
                address: "0.0.0.0:22".into(),
                port: 22,
            }),
            "events-own-host",
            UNIX_EPOCH + Duration::from_millis(ms),
        )
    }

    /// Events are written by the thread with the recorder's host name, counted by kind (all
    /// kinds present from the start), and counted as written.
    #[test]
    fn events_are_recorded_and_counted_by_kind() {
        let dir = std::env::temp_dir().join(format!("netmon-rec-ev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("h.db");
        let r = Recorder::start(db.clone(), Limits::default(), "recorder-host".into());
        let start = r.status();
        assert_eq!(
            start.events.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["contact", "device", "listen", "net"]
        );
        assert!(start.events.values().all(|&n| n == 0));
        let now = now_ms() as u64;
        r.submit_events(vec![link_up(now - 2000), listen(now - 1000)]);
        r.submit_events(vec![link_up(now - 500)]);
        r.submit_events(Vec::new());
        let seen = r.status().events;
        assert_eq!((seen["net"], seen["listen"], seen["device"]), (2, 1, 0));
        let s = r.finish();
        assert_eq!(s.events_written, 3);
        assert_eq!(s.dropped.values().sum::<u64>(), 0, "{:?}", s.dropped);

        let store = Store::open_read(&db).unwrap();
        let now = now as i64;
        let got = store.events(now - 10_000, now, &[], None).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|e| e.host == "recorder-host"));
        assert_eq!(got[1].what.name(), "listen_started");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store that cannot be opened: events are still counted as seen, and dropped with the
    /// flow records' reason.
    #[test]
    fn events_for_an_unavailable_store_are_dropped_and_counted() {
        let r = Recorder::start(
            PathBuf::from("/dev/null/netmon/h.db"),
            Limits::default(),
            "h".into(),
        );
        r.submit_events(vec![link_up(1000), listen(2000)]);
        let s = r.finish();
        assert_eq!(s.events["net"] + s.events["listen"], 2);
        assert_eq!(s.events_written, 0);
        assert_eq!(
            s.dropped.get("store_unavailable"),
            Some(&2),
            "{:?}",
            s.dropped
        );
    }
}
