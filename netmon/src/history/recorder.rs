//! The recorder: a thread that owns the history store, so SQLite's disk work never runs on the
//! aggregating loop. The loop hands it each interval's flow records without waiting; what the
//! store cannot take (the thread is behind, the disk is full, the directory is read-only) is
//! dropped and counted by reason, and netmon goes on serving.
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

/// Batches waiting for the thread; beyond, new ones are dropped (and counted): a few seconds
/// of records at one batch per interval.
const QUEUE_BATCHES: usize = 16;
/// Batches written in one transaction at most: a thread that fell behind catches up in a
/// few large commits rather than many small ones.
const COALESCE_RECORDS: usize = 65_536;
/// How often retention runs and the store's size is read.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long to wait before opening a store that could not be opened again.
const REOPEN_AFTER: Duration = Duration::from_secs(30);

pub struct Recorder {
    tx: Option<SyncSender<Vec<FlowRecord>>>,
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
        let reason = match &self.tx {
            Some(tx) => match tx.try_send(flows) {
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

    fn run(mut self, rx: &mpsc::Receiver<Vec<FlowRecord>>) {
        self.ensure_open();
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(mut batch) = first {
                while batch.len() < COALESCE_RECORDS {
                    match rx.try_recv() {
                        Ok(more) => batch.extend(more),
                        Err(_) => break,
                    }
                }
                self.write(batch);
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
        self.ensure_open();
        let n = batch.len() as u64;
        let Some(store) = self.store.as_mut() else {
            drop_count(&self.status, "store_unavailable", n);
            return;
        };
        for f in &mut batch {
            f.host.clone_from(&self.host);
        }
        match store.write(&batch) {
            Ok(()) => {
                if let Ok(mut s) = self.status.lock() {
                    s.written += n;
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
        let stats = store.stats().map_err(|e| e.to_string());
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
                warn!("history: {w}; flow records are dropped and counted until it works");
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
