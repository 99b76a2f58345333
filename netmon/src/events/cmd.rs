//! `netmon events`: starts the sources the chosen kinds need, prints each event as it arrives,
//! hands it to `--exec`, and stops on Ctrl-C or SIGTERM.
//!
//! Sources are blocking netlink and poll loops, each on a thread of its own; they stamp their
//! events (time, host) when they see them and send them to the async loop, which owns the sinks
//! and the signals. Every source opens its socket and takes its baseline before netmon says it
//! is following, so start-up failures are one-line errors and nothing after the line is missed.
use std::{path::Path, process::ExitCode, sync::Arc, time::SystemTime};

use anyhow::{Context, Result};
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
};

use super::{
    device::DeviceSource,
    exec::{ExecConfig, ExecRunner},
    model::{HostEvent, Kind, What, hostname},
    mounts::MountWatch,
    net::NetSource,
    print::Printer,
    stats::Stats,
};
use crate::{
    cli::EventsArgs,
    error::{AppError, Exit},
};

/// Events in flight between the source threads and the printer. A full channel blocks the
/// sources, whose kernel sockets then buffer (and, past that, overrun and resync).
const CHANNEL: usize = 4096;

enum Msg {
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

pub fn run(args: EventsArgs) -> Result<ExitCode> {
    if !args.follow {
        return Err(AppError::new(
            Exit::Usage,
            "past events need the history store, which netmon does not have yet; \
             use --follow to watch events as they happen",
        )
        .into());
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

    if kinds.contains(&Kind::Net) {
        let src = NetSource::open(args.rtnetlink_rcvbuf).context("starting network events")?;
        log::info!("events: {} links known at start", src.links());
        let st = stats.clone();
        spawn_source("net", &tx, &host, move |emit| {
            src.run(&st, emit)
                .map_err(|e| crate::error::one_line(&e.into()))
        })?;
    }
    if kinds.contains(&Kind::Device) {
        let devices = DeviceSource::open(Path::new("/sys")).context("starting device events")?;
        let (usb, block) = devices.known();
        log::info!("events: {usb} USB devices and {block} block devices present at start");
        let mounts = MountWatch::open(Path::new("/proc/self/mountinfo"), &stats)
            .context("reading /proc/self/mountinfo")?;
        let st = stats.clone();
        spawn_source("device", &tx, &host, move |emit| {
            devices
                .run(&st, emit)
                .map_err(|e| format!("reading uevents: {e}"))
        })?;
        let st = stats.clone();
        spawn_source("mount", &tx, &host, move |emit| {
            mounts
                .run(&st, emit)
                .map_err(|e| format!("watching /proc/self/mountinfo: {e}"))
        })?;
    }
    drop(tx);

    let exec = args.exec.clone().map(|command| {
        ExecRunner::start(
            ExecConfig {
                command,
                timeout: args.exec_timeout,
                concurrency: args.exec_concurrency as usize,
            },
            stats.clone(),
        )
    });
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
