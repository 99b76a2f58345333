//! The agent in `netmon serve --hub URL`: publishes the history store's flow records to the
//! hub in order, each with its (host, boot, seq) as `Nats-Msg-Id`, and moves the store's
//! acknowledged mark only on JetStream's ack. While the hub is unreachable the store keeps
//! recording (bounded by its own limits); on reconnect the agent resends from the mark,
//! oldest first, a bounded batch at a time so heartbeats and summaries are never starved.
//!
//! It runs on its own thread with its own runtime: a slow hub or a slow disk never holds up
//! the aggregating loop, which only hands it a process summary each interval.
use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use async_nats::{HeaderMap, jetstream};
use log::{info, warn};
use serde::Serialize;
use tokio::sync::watch;

use super::{FleetEvent, FleetFlow, Heartbeat, HubArgs, Kind, ProcessSummary, msg_id, subject};
use crate::history::{store::Store, when::now_ms};

/// Records published before waiting for their acks: enough to fill the pipe to a remote hub,
/// few enough that a batch is quick to resend.
const BATCH: usize = 256;
/// Batches sent before heartbeats and summaries get their turn during a long replay.
const BATCHES_PER_TURN: usize = 8;
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const SPOOL_POLL: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Who this agent is on the hub.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub hub: HubArgs,
    pub site: String,
    pub host: String,
    pub db: PathBuf,
    pub backend: String,
}

/// What the agent has done, for metrics and the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentStatus {
    pub connected: bool,
    /// Flow records the hub acknowledged (duplicates included: a resend the server had).
    pub published: u64,
    pub duplicates: u64,
    /// The store's acknowledged mark, and records after it (waiting for the hub).
    pub acked_seq: u64,
    pub spooled: u64,
    /// Records retention removed from the store before the hub had them.
    pub expired: u64,
    pub reconnects: u64,
    /// Events the hub acknowledged.
    pub events_published: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub struct Agent {
    summaries: watch::Sender<Option<ProcessSummary>>,
    stop: watch::Sender<bool>,
    status: Arc<Mutex<AgentStatus>>,
    thread: Option<JoinHandle<()>>,
    done: std::sync::mpsc::Receiver<()>,
    db: PathBuf,
}

impl Agent {
    pub fn start(opts: AgentOptions) -> Agent {
        let (summaries, summary_rx) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        let status = Arc::new(Mutex::new(AgentStatus::default()));
        let shared = Arc::clone(&status);
        let (done_tx, done) = std::sync::mpsc::channel();
        let db = opts.db.clone();
        let thread = std::thread::Builder::new()
            .name("netmon-hub".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(run(opts, shared, summary_rx, stop_rx)),
                    Err(e) => warn!("hub agent: no runtime: {e}"),
                }
                let _ = done_tx.send(());
            })
            .ok();
        Agent {
            summaries,
            stop,
            status,
            thread,
            done,
            db,
        }
    }

    /// The latest process summary, published at the agent's next turn.
    pub fn summary(&self, s: ProcessSummary) {
        self.summaries.send_replace(Some(s));
    }

    pub fn status(&self) -> AgentStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Asks the agent to stop (after sending what the store has, if the hub is there) and
    /// waits at most `grace` for it.
    pub fn finish(mut self, grace: Duration) -> AgentStatus {
        let _ = self.stop.send(true);
        if self.done.recv_timeout(grace).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
        // What the hub has not acknowledged, from the store itself (the agent may never have
        // reached the hub to count it).
        if let Ok(store) = Store::open_read(&self.db)
            && let (Ok(last), Ok(mark)) = (store.last_seq(), store.hub_mark())
        {
            set(&self.status, |s| s.spooled = last.saturating_sub(mark));
        }
        self.status()
    }
}

fn set<F: FnOnce(&mut AgentStatus)>(status: &Mutex<AgentStatus>, f: F) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

async fn run(
    opts: AgentOptions,
    status: Arc<Mutex<AgentStatus>>,
    mut summaries: watch::Receiver<Option<ProcessSummary>>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut backoff = Duration::from_secs(1);
    let mut warned: Option<String> = None;
    loop {
        let result =
            match super::connect_watched(&opts.hub, &format!("netmon agent {}", opts.host)).await {
                Ok((client, errors)) => {
                    info!(
                        "hub: connected to {}",
                        opts.hub.hub.as_deref().unwrap_or("")
                    );
                    set(&status, |s| s.connected = true);
                    backoff = Duration::from_secs(1);
                    let r = connected(
                        &opts,
                        &client,
                        errors,
                        &status,
                        &mut summaries,
                        &mut stop,
                        started,
                    )
                    .await;
                    // Flush what was published without an ack wait (heartbeats) before leaving.
                    let _ = client.flush().await;
                    set(&status, |s| {
                        s.connected = false;
                        s.reconnects += 1;
                    });
                    r
                }
                Err(e) => Err(e),
            };
        match result {
            Ok(()) => return,
            Err(e) => {
                let why = e.to_string().replace('\n', " ");
                if warned.as_ref() != Some(&why) {
                    warn!(
                        "hub: {why}; recording goes on locally, retrying in up to {}s",
                        MAX_BACKOFF.as_secs()
                    );
                    warned = Some(why.clone());
                }
                set(&status, |s| s.last_error = Some(why));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: the spool, heartbeats and summaries until stop (Ok) or a failure
/// (Err: reconnect after a back-off).
async fn connected(
    opts: &AgentOptions,
    client: &async_nats::Client,
    errors: super::ServerErrors,
    status: &Mutex<AgentStatus>,
    summaries: &mut watch::Receiver<Option<ProcessSummary>>,
    stop: &mut watch::Receiver<bool>,
    started: Instant,
) -> Result<()> {
    let js = jetstream::new(client.clone());
    let store = open_spool(&opts.db)?;
    let boot = store.spool_id()?;
    let mut spool = Spool {
        store,
        boot,
        mark: 0,
        event_mark: 0,
        errors,
    };
    spool.mark = spool.store.hub_mark()?;
    spool.event_mark = spool.store.event_hub_mark()?;
    set(status, |s| s.acked_seq = spool.mark);
    let machine_id = std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut poll = tokio::time::interval(SPOOL_POLL);
    loop {
        tokio::select! {
            _ = stop.changed() => {
                // Last chance: what the store has now goes out if the hub takes it quickly.
                let _ = tokio::time::timeout(
                    Duration::from_secs(3),
                    spool.send(&js, opts, status, usize::MAX),
                ).await;
                let left = spool.store.last_seq()?.saturating_sub(spool.mark);
                set(status, |s| s.spooled = left);
                return Ok(());
            }
            _ = heartbeat.tick() => {
                let spooled = spool.store.last_seq()?.saturating_sub(spool.mark);
                set(status, |s| s.spooled = spooled);
                let hb = Heartbeat {
                    site: opts.site.clone(),
                    host: opts.host.clone(),
                    machine_id: machine_id.clone(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    kernel: kernel.clone(),
                    backend: opts.backend.clone(),
                    uptime_secs: started.elapsed().as_secs(),
                    at_ms: now_ms(),
                    every_secs: HEARTBEAT_EVERY.as_secs(),
                    spooled,
                };
                client
                    .publish(subject(&opts.site, &opts.host, Kind::Heartbeat), serde_json::to_vec(&hb)?.into())
                    .await
                    .context("publishing the heartbeat")?;
            }
            Ok(()) = summaries.changed() => {
                let s = summaries.borrow_and_update().clone();
                if let Some(mut s) = s {
                    s.site.clone_from(&opts.site);
                    s.host.clone_from(&opts.host);
                    client
                        .publish(subject(&opts.site, &opts.host, Kind::Processes), serde_json::to_vec(&s)?.into())
                        .await
                        .context("publishing the process summary")?;
                }
            }
            _ = poll.tick() => {
                // Events first: a device plugged in during a long replay is news now.
                spool.send_events(&js, opts, status).await?;
                spool.send(&js, opts, status, BATCHES_PER_TURN).await?;
            }
        }
    }
}

/// Opens the store read-write (the mark lives in it); the recorder may not have created it
/// yet, which is a retry like an unreachable hub.
fn open_spool(db: &std::path::Path) -> Result<Store> {
    if !db.exists() {
        return Err(anyhow!("no history database at {} yet", db.display()));
    }
    Ok(Store::open(db)?.store)
}

struct Spool {
    store: Store,
    boot: String,
    mark: u64,
    /// The events' own acknowledged mark (events are numbered apart from flow records).
    event_mark: u64,
    /// What the server refused on this connection (a publish it refuses is never answered).
    errors: super::ServerErrors,
}

impl Spool {
    /// Publishes the events after the events' mark (all of them: there are few), each with
    /// its (host, boot, e+seq) as message id, and moves the mark once all are acknowledged.
    async fn send_events(
        &mut self,
        js: &jetstream::Context,
        opts: &AgentOptions,
        status: &Mutex<AgentStatus>,
    ) -> Result<()> {
        let subj = subject(&opts.site, &opts.host, Kind::Events);
        loop {
            let batch = self.store.events_after(self.event_mark, BATCH)?;
            let Some(&(last, _)) = batch.last() else {
                return Ok(());
            };
            let n = batch.len() as u64;
            let mut acks = Vec::with_capacity(batch.len());
            for (seq, ev) in batch {
                let (pid, comm) = ev
                    .what
                    .process()
                    .map_or((None, None), |(p, c)| (Some(p), Some(c.to_string())));
                let e = FleetEvent {
                    site: opts.site.clone(),
                    host: opts.host.clone(),
                    boot: self.boot.clone(),
                    seq,
                    kind: ev.kind.as_str().to_string(),
                    at_ms: crate::history::store::at_ms_of(&ev, now_ms()),
                    summary: ev.to_string(),
                    pid,
                    comm,
                    detail: serde_json::to_value(&ev)?,
                };
                let mut headers = HeaderMap::new();
                let id = msg_id(&opts.host, &self.boot, seq);
                headers.insert("Nats-Msg-Id", format!("e{id}").as_str());
                let ack = js
                    .publish_with_headers(subj.clone(), headers, serde_json::to_vec(&e)?.into())
                    .await
                    .map_err(|e| self.hub_error("publishing events", e))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await
                    .map_err(|e| self.hub_error("publishing events", e))?;
            }
            self.event_mark = last;
            self.store.set_event_hub_mark(last)?;
            set(status, |s| s.events_published += n);
        }
    }

    /// Publishes up to `batches` batches after the mark, each pipelined and then awaited in
    /// order; the mark moves (and is saved) after each fully acknowledged batch.
    async fn send(
        &mut self,
        js: &jetstream::Context,
        opts: &AgentOptions,
        status: &Mutex<AgentStatus>,
        batches: usize,
    ) -> Result<()> {
        let subj = subject(&opts.site, &opts.host, Kind::Flows);
        for _ in 0..batches {
            let batch = self.store.spooled_after(self.mark, BATCH)?;
            let Some(&(first, _)) = batch.first() else {
                return Ok(());
            };
            if first > self.mark + 1 {
                let gone = first - self.mark - 1;
                warn!(
                    "hub: {gone} flow records expired from the local store before the hub \
                     acknowledged them"
                );
                set(status, |s| s.expired += gone);
            }
            let mut acks = Vec::with_capacity(batch.len());
            for (seq, flow) in batch {
                let f = FleetFlow {
                    site: opts.site.clone(),
                    boot: self.boot.clone(),
                    seq,
                    flow,
                };
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", f.msg_id().as_str());
                let ack = js
                    .publish_with_headers(subj.clone(), headers, serde_json::to_vec(&f)?.into())
                    .await
                    .map_err(|e| self.hub_error("publishing flow records", e))?;
                acks.push((seq, ack));
            }
            let (mut n, mut dups, mut last) = (0u64, 0u64, self.mark);
            for (seq, ack) in acks {
                let a = ack
                    .await
                    .map_err(|e| self.hub_error("publishing flow records", e))?;
                n += 1;
                dups += u64::from(a.duplicate);
                last = seq;
            }
            self.mark = last;
            self.store.set_hub_mark(last)?;
            set(status, |s| {
                s.published += n;
                s.duplicates += dups;
                s.acked_seq = last;
                s.last_error = None;
            });
        }
        Ok(())
    }
}

impl Spool {
    /// A failed publish as one line: "no responders" means nobody stores these subjects (say
    /// what to do); a time-out after the server refused the subject says so.
    fn hub_error(&self, what: &str, e: impl std::fmt::Display) -> anyhow::Error {
        let text = e.to_string();
        if text.contains("no responders") {
            return anyhow!("the hub has no netmon streams (run `netmon hub init --hub URL` once)");
        }
        let e = self.errors.explain(what, text);
        if e.to_string().contains("Permissions Violation") {
            anyhow!(
                "{e} (this agent's hub user may not publish as this site and host: check --site \
                 and --host-name against the hub's permissions)"
            )
        } else {
            e
        }
    }
}
