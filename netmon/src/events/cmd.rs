//! `netmon events`: with `--follow`, starts the sources the chosen kinds need, prints each
//! event as it arrives, hands it to `--exec`, and stops on Ctrl-C or SIGTERM; without it, prints
//! the events the history store kept for a time range.
//!
//! Live sources (device, net) are blocking netlink and poll loops, each on a thread of its own;
//! they stamp their events (time, host) when they see them and send them to the async loop,
//! which owns the sinks and the signals. Every source opens its socket and takes its baseline
//! before netmon says it is following, so start-up failures are one-line errors and nothing
//! after the line is missed. Listen and contact events come only from `netmon serve`: with
//! `--follow` they are read from the store as serve records them.
//!
//! `serve` (and `run --record`) start the same live sources with [`start_for_recorder`] and
//! hand what they see to the history recorder.
use std::{
    path::Path,
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
};

use super::{
    device::DeviceSource,
    exec::ExecRunner,
    model::{HostEvent, Kind, What, hostname},
    mounts::MountWatch,
    net::NetSource,
    print::Printer,
    stats::Stats,
};
use crate::{
    cli::EventsArgs,
    error::{AppError, Exit},
    history::{
        store::{Store, StoreError},
        when,
    },
};

/// Events in flight between the source threads and the printer. A full channel blocks the
/// sources, whose kernel sockets then buffer (and, past that, overrun and resync).
const CHANNEL: usize = 4096;
/// How often `--follow` looks in the store for listen and contact events.
const STORE_POLL: Duration = Duration::from_millis(500);
/// Events read from the store per query.
const STORE_BATCH: usize = 1024;

pub enum Msg {
    // Boxed: an event is ten times the size of the other variant.
    Event(Box<HostEvent>),
    /// A source thread ended; with the reason when it failed.
    Stopped {
        source: &'static str,
        error: Option<String>,
    },
}

fn spawn_source<F>(name: &'static str, tx: &mpsc::Sender<Msg>, host: &str, body: F) -> Result<()>
where
    F: FnOnce(&mut dyn FnMut(What) -> bool) -> Result<(), String> + Send + 'static,
{
    let tx = tx.clone();
    let host = host.to_string();
    std::thread::Builder::new()
        .name(format!("events-{name}"))
        .spawn(move || {
            let mut emit = |w: What| {
                let ev = HostEvent::new(w, &host, SystemTime::now());
                tx.blocking_send(Msg::Event(Box::new(ev))).is_ok()
            };
            let error = body(&mut emit).err();
            let _ = tx.blocking_send(Msg::Stopped {
                source: name,
                error,
            });
        })
        .with_context(|| format!("starting the {name} event thread"))?;
    Ok(())
}

/// Starts the live source of `kind` (device: uevents and mounts; net: rtnetlink), sending its
/// events, stamped with `host`, to `tx`. Listen and contact have no source of their own here
/// (the aggregator makes them): nothing is started for them.
pub fn start_live(
    kind: Kind,
    host: &str,
    rtnetlink_rcvbuf: usize,
    stats: &Arc<Stats>,
    tx: &mpsc::Sender<Msg>,
) -> Result<()> {
    match kind {
        Kind::Net => {
            let src = NetSource::open(rtnetlink_rcvbuf).context("starting network events")?;
            log::info!("events: {} links known at start", src.links());
            let st = stats.clone();
            spawn_source("net", tx, host, move |emit| {
                src.run(&st, emit)
                    .map_err(|e| crate::error::one_line(&e.into()))
            })
        }
        Kind::Device => {
            let devices =
                DeviceSource::open(Path::new("/sys")).context("starting device events")?;
            let (usb, block) = devices.known();
            log::info!("events: {usb} USB devices and {block} block devices present at start");
            let mounts = MountWatch::open(Path::new("/proc/self/mountinfo"), stats)
                .context("reading /proc/self/mountinfo")?;
            let st = stats.clone();
            spawn_source("device", tx, host, move |emit| {
                devices
                    .run(&st, emit)
                    .map_err(|e| format!("reading uevents: {e}"))
            })?;
            let st = stats.clone();
            spawn_source("mount", tx, host, move |emit| {
                mounts
                    .run(&st, emit)
                    .map_err(|e| format!("watching /proc/self/mountinfo: {e}"))
            })
        }
        Kind::Listen | Kind::Contact => Ok(()),
    }
}

/// The live sources `serve` runs for its recorder.
pub struct RecorderSources {
    pub rx: mpsc::Receiver<Msg>,
    /// Sources that could not start, with the reason (already warned about).
    pub failed: Vec<(&'static str, String)>,
    pub stats: Arc<Stats>,
}

/// Starts the device and net sources for `serve`; one that cannot start (no netlink
/// permission, no /sys) is a one-line warning and listed in `failed`, never an error.
pub fn start_for_recorder(host: &str) -> RecorderSources {
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(CHANNEL);
    let mut failed = Vec::new();
    for kind in [Kind::Device, Kind::Net] {
        if let Err(e) = start_live(kind, host, super::net::DEFAULT_RCVBUF, &stats, &tx) {
            let why = crate::error::one_line(&e);
            log::warn!(
                "host events: {} events are not recorded: {why}",
                kind.as_str()
            );
            failed.push((kind.as_str(), why));
        }
    }
    RecorderSources { rx, failed, stats }
}

/// Reads listen and contact events (`kinds`) from the store as serve writes them, from the
/// newest sequence number at start: a thread polling every 500 ms.
fn spawn_store_tail(store: Store, kinds: Vec<Kind>, tx: &mpsc::Sender<Msg>) -> Result<()> {
    let mut seq = store.last_event_seq()?;
    let tx = tx.clone();
    std::thread::Builder::new()
        .name("events-store".into())
        .spawn(move || {
            let mut full = false;
            loop {
                // A burst larger than a batch is read on without waiting.
                if !full {
                    std::thread::sleep(STORE_POLL);
                }
                let got = match store.events_after(seq, STORE_BATCH) {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = tx.blocking_send(Msg::Stopped {
                            source: "history store",
                            error: Some(e.to_string()),
                        });
                        return;
                    }
                };
                full = got.len() == STORE_BATCH;
                for (q, ev) in got {
                    seq = q;
                    if kinds.contains(&ev.kind)
                        && tx.blocking_send(Msg::Event(Box::new(ev))).is_err()
                    {
                        return;
                    }
                }
            }
        })
        .context("starting the history store reader")?;
    Ok(())
}

/// The store for reading; a missing file is a one-line failure (exit 1).
fn open_store(db: &Path) -> Result<Store> {
    Store::open_read(db).map_err(|e| match e {
        StoreError::Missing { .. } => AppError::new(Exit::Failure, e.to_string()).into(),
        e => anyhow::Error::from(e),
    })
}

/// `netmon events` without `--follow`: the events kept in the store for the range.
fn past(args: &EventsArgs) -> Result<ExitCode> {
    if args.exec.exec.is_some() {
        return Err(AppError::new(
            Exit::Usage,
            "--exec runs for events as they happen: add --follow",
        )
        .into());
    }
    let (since_ms, until_ms) =
        crate::history::cmd::time_range(&args.since, &args.until, when::now_ms())?;
    let store = open_store(&args.db)?;
    let events = store.events(since_ms, until_ms, &args.kind, None)?;
    let mut printer = Printer::new(std::io::stdout().lock(), args.json);
    for ev in &events {
        printer.print(ev).context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: EventsArgs) -> Result<ExitCode> {
    if !args.follow {
        return past(&args);
    }
    let kinds: Vec<Kind> = if args.kind.is_empty() {
        vec![Kind::Device, Kind::Net]
    } else {
        let mut k = args.kind.clone();
        k.sort_by_key(|k| k.as_str());
        k.dedup();
        k
    };
    let host = hostname();
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel(CHANNEL);

    let stored: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|k| matches!(k, Kind::Listen | Kind::Contact))
        .collect();
    if !stored.is_empty() {
        let store = open_store(&args.db)?;
        spawn_store_tail(store, stored, &tx)?;
    }
    for &kind in &kinds {
        start_live(kind, &host, args.rtnetlink_rcvbuf, &stats, &tx)?;
    }
    drop(tx);

    let exec = args.exec.runner(stats.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Handlers before the "following" line: a script that stops netmon as soon as it reads
    // that line must get the summary, not the default action of the signal.
    let signals = {
        let _rt = rt.enter();
        (
            signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
        )
    };
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    eprintln!(
        "netmon: following {} events on {host}; Ctrl-C to stop",
        names.join(" and ")
    );
    let result = rt.block_on(follow(rx, signals, args.json, exec.as_ref(), &stats));
    if let Some(x) = exec {
        x.stop();
    }
    eprintln!("netmon: events: {}", stats.summary());
    result
}

async fn follow(
    mut rx: mpsc::Receiver<Msg>,
    (mut sigint, mut sigterm): (Signal, Signal),
    json: bool,
    exec: Option<&ExecRunner>,
    stats: &Stats,
) -> Result<ExitCode> {
    let mut printer = Printer::new(std::io::stdout().lock(), json);
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(Msg::Event(ev)) => {
                    printer.print(&ev).context("writing to stdout")?;
                    stats.count(&stats.shown);
                    if let Some(x) = exec {
                        x.submit(&ev, stats);
                    }
                }
                Some(Msg::Stopped { source, error }) => {
                    let why = error.unwrap_or_else(|| "it ended".to_string());
                    return Err(AppError::new(
                        Exit::Failure,
                        format!("the {source} event source stopped: {why}"),
                    )
                    .into());
                }
                None => return Ok(ExitCode::SUCCESS),
            },
            _ = sigint.recv() => return Ok(ExitCode::SUCCESS),
            _ = sigterm.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}
