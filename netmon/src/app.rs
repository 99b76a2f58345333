//! Wires sources to the aggregator and the aggregator to sinks. The only place that decides
//! which source runs (kernel or replay) and which sink prints.
use std::{
    fs::File,
    io::{BufWriter, IsTerminal, Write},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};
use log::debug;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{Instant, MissedTickBehavior},
};

use crate::{
    aggregate::{Aggregator, Filter, Snapshot},
    cli::{Cli, Command, RunArgs, RunView},
    error::{AppError, Exit, exit_code_of, is_broken_pipe, one_line},
    event::Event,
    hosts::{HostRates, hosts_table},
    sink::{
        http::Published,
        json::{render_json, render_json_with_hosts},
        prometheus::{MetricsOptions, MetricsState, render_metrics},
        table,
    },
    source::{
        kernel::{KernelOptions, KernelSource},
        procfs::{self, Liveness, ProcfsSource},
        replay,
    },
    tui::{Tui, UiEvent},
};

/// Capacity of the source → aggregator channel, in batches (a source sends what one pass
/// produced as one message; the kernel reader's passes are bounded). Sources block (never
/// drop) when it is full, and the kernel ring buffer absorbs the burst and counts what it
/// cannot.
const CHANNEL_CAPACITY: usize = 64;
/// Batches taken per wake-up of the aggregating loop.
const EVENT_BATCH: usize = 16;

pub fn main() -> ExitCode {
    // Parsed in two steps to keep the matches: they say which flags were given on the command
    // line, and only those override the config file.
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_exit(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_exit(e),
    };
    init_logging(cli.verbose);
    let sub_matches = matches.subcommand().map(|(_, m)| m);
    let result = match cli.command {
        Command::Run(args) => {
            crate::config::configure(args, cli.config.as_deref(), sub_matches, false)
                .and_then(|args| run(args, false))
        }
        Command::Serve(args) => {
            crate::config::configure(args, cli.config.as_deref(), sub_matches, true)
                .and_then(|args| run(args, true))
        }
        Command::Config(args) => crate::config::command(&args, cli.config.as_deref()),
        Command::Doctor(args) => crate::doctor::run(&args),
        Command::Events(args) => crate::events::run(args),
        Command::Capture(args) => crate::capture::capture(args),
        Command::Follow(args) => crate::capture::follow(args),
        Command::Interfaces(args) => crate::capture::interfaces(&args),
        Command::Routes(args) => crate::capture::routes(&args),
        Command::Flows(args) => crate::history::cmd::flows(&args),
        Command::Hub(crate::cli::HubCommand::Init(mut args)) => {
            crate::config::hub_from_config(&mut args.hub, cli.config.as_deref())
                .and_then(|()| crate::fleet::hub::init(&args))
        }
        Command::Fleet(mut c) => crate::config::hub_from_config(c.hub_mut(), cli.config.as_deref())
            .and_then(|()| crate::fleet::view::command(&c)),
        Command::Report(args) => crate::history::cmd::report(&args),
        Command::Completions(args) => {
            crate::packaging::completions(&args, &mut std::io::stdout().lock())
        }
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netmon: error: {}", one_line(&e));
            exit_code_of(&e).into()
        }
    }
}

/// Help and version go to stdout with 0; every other clap error becomes one line and exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Exit::Usage.into()
        }
        _ => {
            // clap's message may continue on indented lines (e.g. the missing flags): keep
            // them, but stop before the usage block, so it stays one line.
            let rendered = e.render().to_string();
            let parts: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let joined = parts.join(" ");
            let first = joined.strip_prefix("error: ").unwrap_or(&joined);
            let first = if first.is_empty() {
                "invalid arguments"
            } else {
                first
            };
            eprintln!("netmon: error: {first} (see 'netmon --help')");
            Exit::Usage.into()
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
}

/// `serving`: no table on stdout, keep serving after a replay ends (until --duration/Ctrl-C).
fn run(args: RunArgs, serving: bool) -> Result<ExitCode> {
    if args.tree && (serving || args.by == RunView::Host) {
        let why = if serving {
            "serve prints no table"
        } else {
            "--by host lists hosts, not processes"
        };
        return Err(AppError::new(Exit::Usage, format!("--tree groups processes: {why}")).into());
    }
    if args.replay.is_none() {
        if !args.procfs_root.is_dir() {
            return Err(AppError::new(
                Exit::Usage,
                format!("no proc filesystem at {}", args.procfs_root.display()),
            )
            .into());
        }
        for &pid in &args.pids {
            if procfs::liveness(&args.procfs_root, pid) == Liveness::Gone {
                return Err(AppError::new(
                    Exit::NoSuchProcess,
                    format!("no process with PID {pid} (check `ps -p {pid}`)"),
                )
                .into());
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let exit = rt.block_on(run_async(args, serving))?;
    Ok(exit.into())
}

/// Where events come from, and how to stop it so its last counters arrive.
struct Sources {
    backend: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Why a source stopped on its own (the kernel's reader failing mid-run): the run ends
    /// with that reason and exit code 1, not with stale numbers.
    failed: watch::Receiver<Option<String>>,
}

fn start_sources(args: &RunArgs, tx: mpsc::Sender<Vec<Event>>) -> Result<Sources> {
    let (stop, stop_rx) = watch::channel(false);
    let (fail, failed) = watch::channel(None);
    if let Some(path) = &args.replay {
        let events = replay::read_events(path)?;
        let task = tokio::spawn(replay::run(events, tx));
        return Ok(Sources {
            backend: "replay".into(),
            stop,
            tasks: vec![task],
            failed,
        });
    }
    let opts = KernelOptions {
        backend: args.backend,
        // Poll maps faster than we print so a snapshot is never a whole interval stale.
        poll: (args.interval / 4).clamp(Duration::from_millis(50), Duration::from_millis(250)),
        capture: None,
    };
    let kernel = KernelSource::load(&opts)?;
    let backend = kernel.backend().to_string();
    // Programs are attached before /proc is scanned, so a socket opened in between is seen by
    // one or the other (or both; the aggregator prefers the kernel's owner).
    let initial = ProcfsSource::new(args.procfs_root.clone()).initial_events();
    let ktx = tx.clone();
    let kernel_task = tokio::spawn(async move {
        if let Err(e) = kernel.run(ktx, stop_rx).await {
            let _ = fail.send(Some(format!("kernel source stopped: {e}")));
        }
    });
    let scan_task = tokio::spawn(async move {
        let _ = tx.send(initial).await;
    });
    Ok(Sources {
        backend,
        stop,
        tasks: vec![kernel_task, scan_task],
        failed,
    })
}

async fn run_async(args: RunArgs, serving: bool) -> Result<Exit> {
    // History and hub flags are checked, like the web config below, before the kernel programs
    // load. A replay (a test fixture) is recorded only when asked: it is not this host's traffic.
    let recording = if serving && args.replay.is_none() {
        !args.history.no_history
    } else {
        args.history.record
    };
    let host = args
        .fleet
        .host_name
        .clone()
        .unwrap_or_else(crate::history::recorder::host_name);
    if args.fleet.hub.hub.is_some() && !(serving && recording) {
        return Err(AppError::new(
            Exit::Usage,
            "--hub needs serve with its history store (the agent's spool): drop --no-history",
        )
        .into());
    }
    if let Some(url) = &args.fleet.hub.hub {
        crate::fleet::server_list(url)?;
    }
    // Read the web config and bind first: a bad file or a taken port is reported before the
    // kernel programs load.
    let web = match &args.web_config {
        Some(path) => crate::sink::web_config::WebConfig::load(path)
            .map_err(|e| AppError::new(Exit::Usage, e.to_string()))?,
        None => Default::default(),
    };
    let listener = match args.listen {
        Some(addr) => Some(crate::sink::http::bind(addr).await?),
        None => None,
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    let mut sources = start_sources(&args, tx)?;
    let mut recorder = match &args.record_events {
        Some(p) => Some(BufWriter::new(File::create(p).with_context(|| {
            format!("creating --record-events file {}", p.display())
        })?)),
        None => None,
    };
    let mut agg = Aggregator::new(Filter {
        pids: args.pids.clone(),
        follow_children: args.follow_children,
        comms: args.comms.clone(),
        cgroups: args.cgroups.clone(),
        exclude_pids: args.exclude_pids.clone(),
        exclude_comms: args.exclude_comms.clone(),
        exclude_cgroups: args.exclude_cgroups.clone(),
    })
    .with_networks(args.watch_networks.clone())
    .with_user_names(crate::users::UserNames::from_file("/etc/passwd"));
    // `resolve_defaults` has filled in both.
    agg = agg.with_connection_limit(args.max_connections.unwrap_or(usize::MAX));
    if args.connections == Some(crate::cli::ConnectionsShown::All) {
        agg = agg.with_closed_rows();
    }
    let mut out = Output::new(&args, serving);
    // Per-host totals cost a pass over the connections per snapshot: only for a view that
    // shows them (the UI's Hosts tab, `--by host`).
    if out.will_open_tui(&args) || out.host_rates.is_some() {
        agg = agg.with_hosts();
    }
    if recording {
        agg = agg.with_flows();
        if args.replay.is_none() && !args.history.no_events {
            agg = agg.with_notices(ephemeral_ports(), args.history.new_remotes);
            out.host = host.clone();
        }
        out.recorder = Some(crate::history::recorder::Recorder::start(
            args.history.db.clone(),
            history_limits(&args.history),
            host.clone(),
        ));
    }
    // Host events (devices, interfaces…) go to the store with the flows: not from a replay
    // (not this host), not with --no-events.
    let mut host_events =
        (out.recorder.is_some() && args.replay.is_none() && !args.history.no_events).then(|| {
            let started = crate::events::cmd::start_for_recorder(&host);
            if let Some(r) = &out.recorder {
                for _ in &started.failed {
                    r.event_source_failed();
                }
            }
            started
        });
    if args.fleet.hub.hub.is_some() {
        out.agent = Some(crate::fleet::agent::Agent::start(
            crate::fleet::agent::AgentOptions {
                hub: args.fleet.hub.clone(),
                site: args.fleet.site.clone(),
                host,
                db: args.history.db.clone(),
                backend: sources.backend.clone(),
            },
        ));
    }
    let _server = listener.map(|l| {
        let mut metrics = MetricsState::new(
            MetricsOptions {
                top_k: args.metrics_top_k,
                pid_label: args.metrics_pid_label,
                ttl: args.metrics_ttl,
            },
            args.watch_networks.iter().map(|n| n.name.clone()).collect(),
        );
        let first = publishable(&mut metrics, Snapshot::default(), args.api_cmdlines);
        let (publish, published) = watch::channel(first);
        out.publish = Some((publish, metrics));
        if let Ok(addr) = l.local_addr() {
            let scheme = if web.tls.is_some() { "https" } else { "http" };
            eprintln!("netmon: serving /metrics on {scheme}://{addr}/metrics");
        }
        AbortOnDrop(tokio::spawn(crate::sink::http::serve(
            l,
            published,
            web.clone(),
        )))
    });
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    out.start_tui(&args, &sources.backend)?;
    let mut ticker = new_ticker(args.interval);
    let deadline = (!args.duration.is_zero()).then(|| Instant::now() + args.duration);
    let replaying = args.replay.is_some();
    let mut source_done = false;
    let mut exited = false;

    // Events are taken a batch at a time: one wakeup of this loop per batch, not per event.
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    let mut host_batch = Vec::new();
    let ending = loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, EVENT_BATCH), if !source_done => match n {
                // A replay that ran out ends the run like --once would.
                0 if replaying && !serving => break Ending::Done,
                0 => source_done = true,
                _ => {
                    for ev in batch.drain(..).flatten() {
                        if let Some(w) = recorder.as_mut() {
                            replay::write_event(w, &ev).context("writing --record-events file")?;
                        }
                        agg.ingest(ev);
                    }
                    out.record_flows_early(&mut agg);
                }
            },
            n = recv_host_events(&mut host_events, &mut host_batch) => {
                if n == 0 {
                    host_events = None;
                }
                out.host_messages(host_batch.drain(..));
            }
            _ = ticker.tick() => {
                if args.once {
                    break Ending::Done;
                }
                out.emit(&mut agg, &sources.backend, false)?;
                if !replaying && !exited && watched_all_gone(&args) {
                    exited = true;
                    if !out.hold_after_exit(args.exit_on_death)? {
                        break Ending::WatchedExited;
                    }
                }
            }
            ui = out.ui_event() => match ui? {
                UiEvent::Quit if exited => break Ending::WatchedExited,
                UiEvent::Quit => break Ending::Done,
                UiEvent::Interval(d) => ticker = new_ticker(d),
                UiEvent::Nothing => {}
            },
            _ = sleep_until(deadline) => break Ending::Done,
            _ = sigint.recv() => break Ending::Done,
            _ = sigterm.recv() => break Ending::Done,
            Ok(()) = sources.failed.changed() => {
                if let Some(why) = sources.failed.borrow().clone() {
                    break Ending::SourceFailed(why);
                }
            }
        }
    };

    // Give the terminal back at once; the final totals are printed as a plain table below.
    out.tui = None;
    // Stop the sources and drain what they still send (the kernel source polls its maps one
    // last time), so the final totals include every byte up to now.
    let _ = sources.stop.send(true);
    let drain = async {
        while let Some(evs) = rx.recv().await {
            for ev in evs {
                if let Some(w) = recorder.as_mut() {
                    replay::write_event(w, &ev)?;
                }
                agg.ingest(ev);
            }
        }
        Ok::<(), std::io::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), drain).await {
        Ok(r) => r.context("writing --record-events file")?,
        Err(_) => debug!("sources did not finish within 5 s; printing what arrived"),
    }
    for t in sources.tasks {
        t.abort();
    }
    if let Some(mut w) = recorder {
        w.flush().context("writing --record-events file")?;
    }
    out.emit(&mut agg, &sources.backend, true)?;
    if let Some(h) = host_events.as_mut() {
        while let Ok(m) = h.rx.try_recv() {
            out.host_messages(std::iter::once(m));
        }
    }
    drop(host_events);
    if let Some(r) = out.recorder.take() {
        report_history(&r.finish());
    }
    // After the recorder: the last records are in the store, and the agent sends them if
    // the hub takes them within the grace.
    if let Some(a) = out.agent.take() {
        let s = a.finish(Duration::from_secs(5));
        if s.spooled > 0 || s.last_error.is_some() {
            eprintln!(
                "netmon: hub: {} flow records acknowledged, {} not yet: they stay in the store and are sent at the next start",
                s.published, s.spooled
            );
        }
    }
    Ok(match ending {
        Ending::Done => Exit::Ok,
        // The totals up to the failure are printed above; the reason is the last line.
        Ending::SourceFailed(why) => return Err(anyhow::anyhow!(why)),
        Ending::WatchedExited => {
            let pids: Vec<String> = args.pids.iter().map(u32::to_string).collect();
            eprintln!(
                "netmon: watched process {} exited; final totals above",
                pids.join(", ")
            );
            Exit::ProcessExited
        }
    })
}

/// The kernel's range of local ports for outgoing connections: a UDP socket bound in it is a
/// client's, not a service (Linux's default when the file cannot be read).
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// Retention from the flags: raw flows never outlive the roll-ups.
fn history_limits(h: &crate::cli::HistoryArgs) -> crate::history::Limits {
    crate::history::Limits {
        max_age_ms: h.retention,
        raw_max_age_ms: h.raw_retention.min(h.retention),
        max_bytes: h.max_db_size,
    }
}

/// At the end of a run: where the history went, and what could not be kept.
fn report_history(s: &crate::history::HistoryStatus) {
    let dropped: u64 = s.dropped.values().sum();
    if dropped > 0 {
        let why: Vec<String> = s
            .dropped
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        eprintln!(
            "netmon: history: {} flow records written to {}, {dropped} dropped ({})",
            s.written,
            s.db.display(),
            why.join(", ")
        );
    } else {
        debug!(
            "history: {} flow records written to {}",
            s.written,
            s.db.display()
        );
    }
}

/// The refresh timer; the first tick comes one period from now.
fn new_ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

enum Ending {
    Done,
    WatchedExited,
    SourceFailed(String),
}

/// The next messages of the host event sources (0 once every source has ended); never
/// resolves without sources.
async fn recv_host_events(
    sources: &mut Option<crate::events::cmd::RecorderSources>,
    into: &mut Vec<crate::events::cmd::Msg>,
) -> usize {
    match sources {
        Some(s) => s.rx.recv_many(into, 256).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// True when every explicitly watched PID has exited (zombies count as exited).
fn watched_all_gone(args: &RunArgs) -> bool {
    !args.pids.is_empty()
        && args
            .pids
            .iter()
            .all(|&p| procfs::liveness(&args.procfs_root, p) != Liveness::Alive)
}

/// Stops the HTTP server when the run ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Folds a snapshot into the metrics state and renders what the endpoint serves.
fn publishable(
    metrics: &mut MetricsState,
    mut snapshot: Snapshot,
    cmdlines: bool,
) -> Arc<Published> {
    let folded = metrics.update(&snapshot, std::time::Instant::now());
    let text = render_metrics(&folded, &snapshot).map_err(|e| e.to_string());
    if !cmdlines {
        crate::sink::http::hide_cmdlines(&mut snapshot);
    }
    Arc::new(Published {
        snapshot,
        metrics: text,
    })
}

/// Prints snapshots as a live table (terminal), plain tables (pipe) or JSON lines, and hands
/// them to the HTTP endpoint when there is one.
struct Output {
    json: bool,
    /// `--tree`: processes under their parent in the table.
    tree: bool,
    live: bool,
    width: usize,
    quiet: bool,
    publish: Option<(watch::Sender<Arc<Published>>, MetricsState)>,
    /// Command lines go to the HTTP endpoint only when asked (`--api-cmdlines`).
    api_cmdlines: bool,
    /// The tabbed UI, which then gets every snapshot but the last.
    tui: Option<Tui>,
    /// The history store's writer, when recording.
    recorder: Option<crate::history::recorder::Recorder>,
    /// The fleet agent, with --hub.
    agent: Option<crate::fleet::agent::Agent>,
    /// `--by host` without the UI: the rates per remote host, fed each snapshot, printed
    /// instead of the process table.
    host_rates: Option<HostRates>,
    /// The host name socket events (listen, contact) are stamped with; empty when they are
    /// not recorded.
    host: String,
}

impl Output {
    /// `serving`: nothing is printed (the snapshots only go to the endpoint).
    fn new(args: &RunArgs, serving: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        let mut out = Output {
            json: args.json,
            tree: args.tree,
            live: tty && !args.json && !args.once,
            width: terminal_width().unwrap_or(120),
            quiet: serving,
            publish: None,
            api_cmdlines: args.api_cmdlines,
            tui: None,
            recorder: None,
            agent: None,
            host_rates: None,
            host: String::new(),
        };
        if !serving && args.by == RunView::Host && !out.will_open_tui(args) {
            out.host_rates = Some(HostRates::new());
        }
        out
    }

    /// Where a live table would be drawn and the user did not opt out.
    fn will_open_tui(&self, args: &RunArgs) -> bool {
        self.live && !self.quiet && !args.no_tui
    }

    fn start_tui(&mut self, args: &RunArgs, backend: &str) -> Result<()> {
        if self.will_open_tui(args) {
            self.tui = Some(Tui::start(args, backend)?);
        }
        Ok(())
    }

    /// Whether the run goes on after the watched processes exited: the UI shows a banner and
    /// waits for a key, unless `--exit-on-death`.
    fn hold_after_exit(&mut self, exit_on_death: bool) -> Result<bool> {
        match &mut self.tui {
            Some(t) if !exit_on_death => t.mark_exited().map(|()| true),
            _ => Ok(false),
        }
    }

    /// The user's next action in the UI; never resolves without one.
    async fn ui_event(&mut self) -> Result<UiEvent> {
        match &mut self.tui {
            Some(t) => t.next_event().await,
            None => std::future::pending().await,
        }
    }

    /// Host events for the history store, from any producer (the device and net sources,
    /// the aggregator's listen and contact events); dropped when not recording.
    /// Hands ended connections' flow records to the writer as soon as a few thousand wait,
    /// not once an interval: at tens of thousands of connections a second an interval's
    /// records held at once were tens of megabytes.
    fn record_flows_early(&self, agg: &mut Aggregator) {
        if let Some(r) = &self.recorder
            && agg.flows_waiting() >= crate::aggregate::FLOW_CHUNK
        {
            r.submit(agg.take_flows(crate::history::when::now_ms()));
        }
    }

    fn record_host_events(&self, events: Vec<crate::events::HostEvent>) {
        if let Some(r) = &self.recorder {
            r.submit_events(events);
        }
    }

    /// What the host event sources sent: events to the store; a source that stopped is a
    /// warning and counted, and serving goes on.
    fn host_messages(&self, msgs: impl Iterator<Item = crate::events::cmd::Msg>) {
        use crate::events::cmd::Msg;
        let mut events = Vec::new();
        for m in msgs {
            match m {
                Msg::Event(ev) => events.push(*ev),
                Msg::Stopped { source, error } => {
                    let why = error.unwrap_or_else(|| "it ended".to_string());
                    log::warn!("host events: the {source} source stopped: {why}");
                    if let Some(r) = &self.recorder {
                        r.event_source_failed();
                    }
                }
            }
        }
        self.record_host_events(events);
    }

    fn emit(&mut self, agg: &mut Aggregator, backend: &str, last: bool) -> Result<()> {
        let r = self.emit_snapshot(agg, backend, last);
        // Each interval builds and frees megabytes (rows, text) when thousands of processes
        // are tracked: give the freed pages back so the resident size tracks the live state.
        crate::source::kernel::release_freed_memory();
        r
    }

    fn emit_snapshot(&mut self, agg: &mut Aggregator, backend: &str, last: bool) -> Result<()> {
        let mut snap: Snapshot = agg.snapshot_and_advance();
        snap.backend = backend.to_string();
        snap.r#final = last;
        if let Some(r) = &self.recorder {
            if last {
                agg.flush_flows();
            }
            r.submit(agg.take_flows(crate::history::when::now_ms()));
            let notices = agg.take_notices();
            if !notices.is_empty() {
                let now = std::time::SystemTime::now();
                self.record_host_events(
                    notices
                        .into_iter()
                        .map(|w| crate::events::HostEvent::new(w, &self.host, now))
                        .collect(),
                );
            }
            let mut status = r.status();
            let not_taken = agg.flows_dropped() + agg.notices_dropped();
            if not_taken > 0 {
                status.dropped.insert("not_taken".into(), not_taken);
            }
            snap.history = Some(status);
        }
        if let Some(a) = &self.agent {
            a.summary(crate::fleet::summary_of(&snap));
        }
        if let Some((tx, metrics)) = &mut self.publish {
            // Serving only: the snapshot goes to the endpoint without a copy.
            if self.quiet {
                drop(tx.send_replace(publishable(metrics, snap, self.api_cmdlines)));
                return Ok(());
            }
            drop(tx.send_replace(publishable(metrics, snap.clone(), self.api_cmdlines)));
        }
        if self.quiet {
            return Ok(());
        }
        if let Some(t) = &mut self.tui {
            return t.update(snap);
        }
        if self.live {
            self.width = terminal_width().unwrap_or(self.width);
        }
        let text = if let Some(rates) = &mut self.host_rates {
            rates.update(snap.at_ms, &snap.hosts);
            if self.json {
                render_json_with_hosts(&snap, &rates.rows())
            } else {
                hosts_table(&rates.rows(), self.width)
            }
        } else if self.json {
            render_json(&snap)
        } else {
            table::render_table(
                &snap,
                &table::TableOptions {
                    width: self.width,
                    max_connections_per_process: if self.live { Some(8) } else { None },
                    show_closed: true,
                    tree: self.tree,
                },
            )
        };
        let mut stdout = std::io::stdout().lock();
        if self.live && !last {
            stdout.write_all(table::clear_screen_sequence().as_bytes())?;
        }
        stdout.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
        Ok(())
    }
}

/// Columns to render for: the terminal's, `COLUMNS`, or 120 when neither is known.
pub fn terminal_columns() -> usize {
    terminal_width().unwrap_or(120)
}

fn terminal_width() -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}
