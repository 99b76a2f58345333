//! Command-line flags. Parsing and per-flag validation only; `app` wires the pieces.
use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aggregate::WatchedNetwork;

#[derive(Debug, Parser)]
#[command(
    name = "netmon",
    version,
    long_version = crate::packaging::LONG_VERSION,
    about = "Per-process network traffic from the kernel (eBPF)",
    propagate_version = true
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Read settings for `serve` and `run` from FILE instead of /etc/netmon/netmon.toml (which
    /// is read only when it exists); flags given on the command line override the file.
    /// `fleet` and `hub init` read its [hub] section when --hub is not given.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Live per-process (or per-PID) traffic table.
    Run(RunArgs),
    /// Long-running exporter: /metrics, /healthz, /api/v1/processes (default 127.0.0.1:9742).
    Serve(RunArgs),
    /// Which kernel hooks work here and which backend `run` would use.
    Doctor(DoctorArgs),
    /// Host events as they happen: USB and block devices, mounts, interfaces, addresses,
    /// default routes, new neighbours (with --follow).
    Events(EventsArgs),
    /// One line per packet, with the process that sent or received it (like tcpdump).
    Capture(CaptureArgs),
    /// One TCP connection's packets and events (handshake, retransmissions, duplicate ACKs,
    /// zero windows, close or reset) as they happen, then its summary.
    Follow(FollowArgs),
    /// Network interfaces: index, name, state, MTU, MAC, promiscuous, addresses.
    Interfaces(ListArgs),
    /// Default gateways and routes (IPv4 and IPv6).
    Routes(ListArgs),
    /// Flow records from the history store: one per connection (and one a minute for
    /// long-lived ones), oldest first.
    Flows(FlowsArgs),
    /// Top talkers from the history store over a time range, grouped by process, remote,
    /// port, class, unit, container or host; with --every, a series per row.
    Report(ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// The configuration file (/etc/netmon/netmon.toml): write a template, or check one.
    Config(ConfigArgs),
    /// The fleet hub (NATS JetStream): `hub init` creates the streams agents publish to.
    #[command(subcommand)]
    Hub(HubCommand),
    /// The fleet's flow records, reports, live rates and events, read from the hub.
    #[command(subcommand)]
    Fleet(FleetCommand),
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Every agent's flow records from the hub (each once), oldest first.
    Flows(crate::fleet::view::FleetFlowsArgs),
    /// Top talkers across the fleet over a time range, grouped by host, process, remote,
    /// class, port, unit or container; exact sums of the hub's flow records.
    Report(crate::fleet::view::FleetReportArgs),
    /// Every agent's rates and busiest processes, live; hosts whose heartbeats stopped are
    /// shown DOWN.
    Top(crate::fleet::view::FleetTopArgs),
    /// The agents' events from the hub (and new ones with --follow, with agent-down and
    /// agent-up from heartbeats); --exec and --alertmanager hooks.
    Events(crate::fleet::view::FleetEventsArgs),
}

impl FleetCommand {
    /// The viewer's connection flags (filled from the config file when --hub is not given).
    pub fn hub_mut(&mut self) -> &mut crate::fleet::HubArgs {
        match self {
            FleetCommand::Flows(a) => &mut a.range.hub,
            FleetCommand::Report(a) => &mut a.range.hub,
            FleetCommand::Top(a) => &mut a.hub,
            FleetCommand::Events(a) => &mut a.hub,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Create or update the streams (idempotent).
    Init(crate::fleet::hub::HubInitArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Write a commented template with every option and its default (to stdout without FILE
    /// or with -).
    Init(ConfigInitArgs),
    /// Check a configuration file (FILE, else --config, else /etc/netmon/netmon.toml) and print
    /// the settings `netmon serve` would use; exit 2 with one line naming the problem.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigInitArgs {
    /// Where to write the template; - or nothing for stdout.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Overwrite FILE when it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// The file to check (default: --config, else /etc/netmon/netmon.toml).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Where the history store is and how much of it is kept (`serve`, `run --record`).
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The history database (SQLite).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DB)]
    pub db: PathBuf,
    /// `serve`: do not record flow records into the history database.
    #[arg(long)]
    pub no_history: bool,
    /// Do not record host events (devices, mounts, interfaces, addresses, routes, listeners,
    /// contacts) into the history database.
    #[arg(long)]
    pub no_events: bool,
    /// Also record a contact event for each process's first connection to any remote never
    /// seen before (not only to the intranet and watched networks).
    #[arg(long)]
    pub new_remotes: bool,
    /// `run`: also record flow records into the history database.
    #[arg(long)]
    pub record: bool,
    /// Keep history this long (per-minute roll-ups; raw flows at most --raw-retention).
    #[arg(long, value_name = "SPAN", default_value = "30d", value_parser = crate::history::when::parse_span_ms)]
    pub retention: i64,
    /// Keep raw flow records this long (at most --retention).
    #[arg(long, value_name = "SPAN", default_value = "7d", value_parser = crate::history::when::parse_span_ms)]
    pub raw_retention: i64,
    /// Largest size of the history database; the oldest records go first beyond it.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = crate::history::when::parse_size)]
    pub max_db_size: u64,
}

pub const DEFAULT_DB: &str = "/var/lib/netmon/netmon.db";

/// Connections listed per process by `serve` (its API) when --max-connections is not given.
pub const SERVE_MAX_CONNECTIONS: usize = 100;

/// Which part of the history `flows` and `report` read.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// The history database (SQLite).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DB)]
    pub db: PathBuf,
    /// From this time: a span ago (6h, 2d, 30m), a date (2026-12-07), a local time
    /// (2026-12-07 10:30) or RFC 3339.
    #[arg(long, value_name = "TIME", default_value = "1h")]
    pub since: String,
    /// Up to this time (same forms as --since).
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub until: String,
    /// Only this process.
    #[arg(short, long, value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pid: Option<u32>,
    /// Only processes with this name (comm).
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    pub comm: Option<String>,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Print at most this many records.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Group by this.
    #[arg(long, value_enum, default_value = "process")]
    pub by: crate::history::By,
    #[command(flatten)]
    pub rows: ReportRowsArgs,
}

/// How a report's rows are shown (`report`, `fleet report`).
#[derive(Debug, Args)]
pub struct ReportRowsArgs {
    /// Also a series per row in steps of SPAN (1h, 10m, 1d), drawn as a sparkline.
    #[arg(long, value_name = "SPAN", value_parser = crate::history::when::parse_span_ms)]
    pub every: Option<i64>,
    /// Print CSV.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Rows shown, the busiest first.
    #[arg(long, value_name = "N", default_value = "20")]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// The connection: PORT, ADDR:PORT or ADDR:PORT-ADDR:PORT (IPv6 as [ADDR]:PORT).
    #[arg(value_name = "CONN")]
    pub conn: String,
    #[command(flatten)]
    pub capture: CaptureArgs,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Capture on this interface (repeatable). Default: every interface that is up.
    #[arg(short, long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Bytes copied from the start of each packet (1-256).
    #[arg(long, default_value = "128", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub snaplen: u32,
    /// Keep one packet in N (the rest are counted as sampled out).
    #[arg(long, default_value = "1", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sample: u32,
    /// Copy at most this many packets per second per CPU (0: no limit); the rest are counted.
    #[arg(long, default_value = "0", value_name = "PPS", value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub rate_limit: u32,
    /// Use XDP (driver mode, else generic) instead of TC for received packets.
    #[arg(long)]
    pub xdp: bool,
    /// Put the interfaces in promiscuous mode while capturing (restored on exit).
    #[arg(long)]
    pub promisc: bool,
    /// Also show netmon's own traffic (hidden by default).
    #[arg(long)]
    pub include_self: bool,
    /// Only packets of these processes (repeatable).
    #[arg(short, long = "pid", value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pids: Vec<u32>,
    /// Print JSON lines instead of text lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many packets were shown.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Show only packets matching EXPR (repeatable, OR-ed): `tcp.dport == 5000 and ip.src in
    /// 10.0.0.0/8 and pid == 1234`, or the JSON format `{"TCP":{"Destination_Port":5000}}`.
    #[arg(short, long = "filter", value_name = "EXPR")]
    pub filters: Vec<String>,
    /// Filters from FILE: a JSON filter or array of them, or one expression per line.
    #[arg(long, value_name = "FILE")]
    pub filter_file: Option<PathBuf>,
    /// Also write the packets shown to FILE in pcapng (the process in each packet's comment).
    #[arg(short, long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// No per-packet lines (with --write).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print TCP analysis events (handshake, retransmission, duplicate ACK, zero window,
    /// close, reset) under the packets.
    #[arg(long)]
    pub tcp_events: bool,
    /// Stop after this many seconds (0: until Ctrl-C).
    #[arg(long, default_value = "0", value_name = "SECS", value_parser = parse_duration_secs, allow_negative_numbers = true)]
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// Probe the kernel and take the best rung that loads.
    Auto,
    /// fentry/fexit on tcp/udp send and receive functions.
    Fentry,
    /// BTF tracepoints sock_send_length / sock_recv_length (kernel >= 6.3).
    TpBtf,
    /// Classic tracepoints sock/sock_send_length and sock_recv_length.
    Tracepoint,
    /// kprobes/kretprobes on tcp/udp send and receive functions.
    Kprobe,
    /// cgroup socket hooks and /proc only: wire bytes per socket, no exact payload.
    Cgroup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectionsShown {
    Live,
    All,
}

/// What `run` shows each interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RunView {
    /// Per process, with its connections.
    #[default]
    Process,
    /// Per remote host across processes, sent and received per second over 2, 10 and 40 s.
    Host,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Watch this process (repeatable). Without it: every process, busiest first.
    #[arg(short, long = "pid", value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pids: Vec<u32>,
    /// Also watch descendants of --pid, including those forked after start.
    #[arg(short = 'c', long, requires = "pids")]
    pub follow_children: bool,
    /// Refresh interval in seconds.
    #[arg(short, long, default_value = "1", value_name = "SECS", value_parser = parse_interval, allow_negative_numbers = true)]
    pub interval: Duration,
    /// Print one snapshot after one interval and exit.
    #[arg(long)]
    pub once: bool,
    /// Print JSON lines (one object per interval) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print the plain table even on a terminal, instead of opening the tabbed UI.
    #[arg(long)]
    pub no_tui: bool,
    /// Show processes under their parent, like `ps f` (table and tabbed UI); siblings stay
    /// sorted. A process whose parent has no row stands at the top level.
    #[arg(long, conflicts_with = "json")]
    pub tree: bool,
    /// `run`: what each interval shows: `process` (the per-process table) or `host` (per
    /// remote host, like iftop: the hosts table, the host rates in each --json line, the
    /// tabbed UI opened on its Hosts tab).
    #[arg(long, value_enum, default_value_t = RunView::Process, value_name = "VIEW")]
    pub by: RunView,
    /// In the tabbed UI, exit (code 4) as soon as every watched process has exited, instead of
    /// showing the final totals until a key is pressed.
    #[arg(long, requires = "pids")]
    pub exit_on_death: bool,
    /// Which kernel programs account payload bytes.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Stop after this many seconds (0 = run until Ctrl-C or the watched processes exit).
    #[arg(long, default_value = "0", value_name = "SECS", value_parser = parse_duration_secs, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Replay a recorded event stream (JSON lines) instead of reading the kernel.
    #[arg(long, value_name = "FILE", hide = true)]
    pub replay: Option<PathBuf>,
    /// Root of the proc filesystem (for tests on fixture trees).
    #[arg(long, value_name = "DIR", default_value = "/proc", hide = true)]
    pub procfs_root: PathBuf,
    /// Also serve /metrics, /healthz and /api/v1/processes on ADDR (`serve`: 127.0.0.1:9742).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Processes with their own metric series; the rest are summed under comm="other"
    /// (0: everything in "other").
    #[arg(long, default_value = "50", value_name = "N")]
    pub metrics_top_k: usize,
    /// Add a `pid` label to per-process metrics (more series).
    #[arg(long)]
    pub metrics_pid_label: bool,
    /// Only processes with this name (comm, repeatable).
    #[arg(long = "comm", value_name = "NAME", value_parser = non_empty)]
    pub comms: Vec<String>,
    /// Only processes in this cgroup: a path prefix (/system.slice), a unit (nginx.service) or
    /// a container id (repeatable).
    #[arg(long = "cgroup", value_name = "PATTERN", value_parser = non_empty)]
    pub cgroups: Vec<String>,
    /// Leave this process out of the table, TUI, JSON and metrics (repeatable).
    #[arg(long = "exclude-pid", value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub exclude_pids: Vec<u32>,
    /// Leave processes with this name (comm) out (repeatable).
    #[arg(long = "exclude-comm", value_name = "NAME", value_parser = non_empty)]
    pub exclude_comms: Vec<String>,
    /// Leave processes in this cgroup out: a path prefix, a unit or a container id, as for
    /// --cgroup (repeatable).
    #[arg(long = "exclude-cgroup", value_name = "PATTERN", value_parser = non_empty)]
    pub exclude_cgroups: Vec<String>,
    /// Count connections to these address ranges per process: NAME=CIDR[,CIDR...] (repeatable),
    /// e.g. intranet=10.0.0.0/8,192.168.0.0/16.
    #[arg(long = "watch-network", value_name = "NAME=CIDRS", value_parser = parse_watch_network)]
    pub watch_networks: Vec<WatchedNetwork>,
    /// Exited processes keep their own metric series this long, then fold into comm="other".
    #[arg(long, default_value = "300", value_name = "SECS", value_parser = parse_duration_secs)]
    pub metrics_ttl: Duration,
    /// Include processes' command lines in /api/v1/processes. Off by default: a command line
    /// can hold secrets, and the endpoint shows it to anyone who can reach the port, even
    /// where /proc is mounted with hidepid.
    #[arg(long)]
    pub api_cmdlines: bool,
    /// TLS and basic-auth settings for the HTTP endpoint (see docs/metrics.md, "Securing the
    /// endpoint").
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Connections listed per process: `live` ones (a connection that ended is folded into
    /// its process's totals and counts at once), or `all` (ended ones stay listed as closed
    /// for a few intervals; costs memory and time at high connection rates). Default: `all`
    /// with --pid, `live` otherwise.
    #[arg(long, value_enum)]
    pub connections: Option<ConnectionsShown>,
    /// Connections listed per process, the busiest first; the others are counted as
    /// `connections_not_listed`. Default: 100 for `serve` (its API), all for `run`.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Record every event the sources produce to FILE (JSON lines), for --replay.
    #[arg(long, value_name = "FILE", hide = true)]
    pub record_events: Option<PathBuf>,
    #[command(flatten)]
    pub history: HistoryArgs,
    #[command(flatten)]
    pub fleet: crate::fleet::AgentArgs,
}

impl RunArgs {
    /// Fills in the defaults that depend on the command (`serve` listens and lists at most
    /// [`SERVE_MAX_CONNECTIONS`]) or on other flags (closed connections stay listed with
    /// --pid), after the flags and the config file had their say.
    pub fn resolve_defaults(&mut self, serving: bool) {
        if serving && self.listen.is_none() {
            self.listen = crate::sink::http::DEFAULT_LISTEN.parse().ok();
        }
        self.max_connections.get_or_insert(if serving {
            SERVE_MAX_CONNECTIONS
        } else {
            usize::MAX
        });
        self.connections.get_or_insert(if self.pids.is_empty() {
            ConnectionsShown::Live
        } else {
            ConnectionsShown::All
        });
    }
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print events as they happen, until Ctrl-C or SIGTERM (device and net events from the
    /// kernel; listen and contact events from the history store as `netmon serve` records
    /// them). Without it: the events the history store kept for --since..--until.
    #[arg(short, long)]
    pub follow: bool,
    /// Only these kinds of event (comma-separated). Default: all; with --follow, device and
    /// net.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND")]
    pub kind: Vec<crate::events::Kind>,
    /// Past events from this time: a span ago (6h, 2d, 30m), a date (2026-12-07), a local
    /// time (2026-12-07 10:30) or RFC 3339.
    #[arg(
        long,
        value_name = "TIME",
        default_value = "1h",
        conflicts_with = "follow"
    )]
    pub since: String,
    /// Past events up to this time (same forms as --since).
    #[arg(
        long,
        value_name = "TIME",
        default_value = "now",
        conflicts_with = "follow"
    )]
    pub until: String,
    /// The history database (SQLite) past events, and listen and contact events with
    /// --follow, are read from.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DB)]
    pub db: PathBuf,
    /// Print JSON lines instead of text lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Receive buffer of the rtnetlink socket (tests force overruns with a small one).
    #[arg(long, default_value_t = crate::events::net::DEFAULT_RCVBUF, value_name = "BYTES", hide = true)]
    pub rtnetlink_rcvbuf: usize,
}

/// A command run per event (`netmon events`, `netmon fleet events`).
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Run `sh -c CMD` for each event, with the event's JSON on stdin (and NETMON_EVENT,
    /// NETMON_EVENT_KIND, and for fleet events NETMON_HOST and NETMON_SITE, in its
    /// environment).
    #[arg(long, value_name = "CMD", value_parser = non_empty)]
    pub exec: Option<String>,
    /// Kill an --exec command (and its children) after this many seconds.
    #[arg(long, default_value = "10", value_name = "SECS", requires = "exec", value_parser = parse_exec_timeout, allow_negative_numbers = true)]
    pub exec_timeout: Duration,
    /// Run at most this many --exec commands at a time (1-64).
    #[arg(long, default_value = "4", value_name = "N", requires = "exec", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub exec_concurrency: u32,
}

impl ExecArgs {
    /// The runner for --exec, when one was given; its failures are counted in `stats`.
    pub fn runner(
        &self,
        stats: std::sync::Arc<crate::events::stats::Stats>,
    ) -> Option<crate::events::exec::ExecRunner> {
        let command = self.exec.clone()?;
        Some(crate::events::exec::ExecRunner::start(
            crate::events::exec::ExecConfig {
                command,
                timeout: self.exec_timeout,
                concurrency: self.exec_concurrency as usize,
            },
            stats,
        ))
    }
}

/// An --exec timeout: more than zero (a zero timeout would kill every command at once), at
/// most a day (a hook that needs longer is a service, not a hook).
pub fn parse_exec_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err("must be more than 0 and at most 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A PID is a positive decimal number that fits the kernel's pid_t.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err("PIDs are positive numbers".into());
    }
    let n: u64 = t
        .parse()
        .map_err(|_| "not a number: a PID is a positive decimal number".to_string())?;
    match n {
        0 => Err("PID 0 is the kernel's idle task, not a process".into()),
        // PID_MAX_LIMIT is 2^22 on 64-bit kernels.
        n if n > 4_194_304 => Err("larger than the kernel's maximum PID (4194304)".into()),
        n => Ok(n as u32),
    }
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if !secs.is_finite() || !(0.05..=3600.0).contains(&secs) {
        return Err("must be between 0.05 and 3600 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_duration_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if !secs.is_finite() || !(0.0..=31_536_000.0).contains(&secs) {
        return Err("must be between 0 and 31536000 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A name or pattern that must say something: an empty one would select nothing, silently.
pub fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_string())
}

/// `NAME=CIDR[,CIDR...]`; a bare address counts as a single-host range.
pub fn parse_watch_network(s: &str) -> Result<WatchedNetwork, String> {
    let (name, list) = s
        .split_once('=')
        .ok_or("expected NAME=CIDR[,CIDR...], e.g. intranet=10.0.0.0/8")?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "network name {name:?} must be letters, digits, '_' or '-'"
        ));
    }
    let mut ranges = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net = match part.parse::<ipnet::IpNet>() {
            Ok(n) => n,
            Err(_) => part
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| format!("{part:?} is not an address range like 10.0.0.0/8"))?,
        };
        ranges.push(net.trunc());
    }
    if ranges.is_empty() {
        return Err(format!("network {name} has no address ranges"));
    }
    Ok(WatchedNetwork {
        name: name.to_string(),
        ranges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids() {
        assert_eq!(parse_pid("1234"), Ok(1234));
        assert_eq!(parse_pid(" 7 "), Ok(7));
        assert!(parse_pid("0").unwrap_err().contains("idle task"));
        assert!(parse_pid("-5").unwrap_err().contains("positive"));
        assert!(parse_pid("abc").unwrap_err().contains("not a number"));
        assert!(parse_pid("99999999999").unwrap_err().contains("maximum"));
        assert!(parse_pid("").unwrap_err().contains("not a number"));
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("nan").is_err());
        assert!(parse_interval("x").is_err());
        assert!(parse_duration_secs("0").is_ok());
        assert!(parse_duration_secs("-1").is_err());
    }

    #[test]
    fn watched_networks() {
        let n = parse_watch_network("intranet=10.0.0.0/8, 192.168.1.7").unwrap();
        assert_eq!(n.name, "intranet");
        assert!(n.contains("10.200.0.1".parse().unwrap()));
        assert!(n.contains("192.168.1.7".parse().unwrap()));
        assert!(!n.contains("192.168.1.8".parse().unwrap()));
        let v6 = parse_watch_network("ula=fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            parse_watch_network("10.0.0.0/8")
                .unwrap_err()
                .contains("NAME=CIDR")
        );
        assert!(
            parse_watch_network("x=10.0.0.0/33")
                .unwrap_err()
                .contains("address range")
        );
        assert!(
            parse_watch_network("bad name=10.0.0.0/8")
                .unwrap_err()
                .contains("letters")
        );
        assert!(
            parse_watch_network("x=")
                .unwrap_err()
                .contains("no address ranges")
        );
    }

    #[test]
    fn tui_flags() {
        assert!(Cli::try_parse_from(["netmon", "run", "--exit-on-death"]).is_err());
        let Command::Run(a) =
            Cli::try_parse_from(["netmon", "run", "-p", "1", "--exit-on-death", "--no-tui"])
                .unwrap()
                .command
        else {
            panic!("not run");
        };
        assert!(a.exit_on_death && a.no_tui);
    }

    #[test]
    fn follow_children_needs_a_pid() {
        assert!(Cli::try_parse_from(["netmon", "run", "--follow-children"]).is_err());
        assert!(Cli::try_parse_from(["netmon", "run", "-p", "1", "--follow-children"]).is_ok());
    }
}
