//! The settings the file holds: one entry per flag of `serve`, with the flag's own parser.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{CommandFactory, Parser, ValueEnum};
use toml::{Spanned, de::DeValue};

use super::Problem;
use crate::cli::{self, BackendChoice, Cli, Command, ConnectionsShown, RunArgs};

/// Where a key goes: the top of the file, the `[history]` or the `[hub]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Top,
    History,
    Hub,
}

impl Section {
    /// In the template's order.
    pub const ALL: [Section; 3] = [Section::Top, Section::History, Section::Hub];

    /// The `[name]` of a section; "" for the top.
    pub fn name(self) -> &'static str {
        match self {
            Section::Top => "",
            Section::History => "history",
            Section::Hub => "hub",
        }
    }

    /// What the template says above the section.
    pub fn doc(self) -> &'static str {
        match self {
            Section::Top => "",
            Section::History => {
                "Where flow records are kept and for how long (serve, and run with record = true)."
            }
            Section::Hub => {
                "The fleet hub (NATS JetStream) serve publishes flow records, a process summary\n\
                 and heartbeats to; without url, serve publishes nothing."
            }
        }
    }
}

/// Which commands take a setting from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Both,
    /// Only `serve`: `listen` (an interactive `run` must not take the daemon's port) and
    /// `enabled` (the history switch of the daemon).
    Serve,
    /// Only `run`: `record`.
    Run,
}

/// One setting of the file.
pub struct Opt {
    pub section: Section,
    pub key: &'static str,
    /// The clap id of the flag it stands for (a field of `RunArgs` or `HistoryArgs`).
    pub flag: &'static str,
    pub scope: Scope,
    /// A table of its own (`[watch_network]`) rather than a key = value line.
    pub table: bool,
    /// What the template says about it.
    pub doc: &'static str,
    /// Parses the value with the flag's parser and sets it.
    pub set: fn(&mut RunArgs, &Spanned<Val>) -> Result<(), Problem>,
    /// The setting in `args` as TOML (for a table, its `key = value` lines); None when unset.
    pub show: fn(&RunArgs) -> Option<String>,
}

impl std::fmt::Debug for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opt({})", self.key)
    }
}

/// `serve`'s flags the file does not hold, and why: they pick processes for one session, change
/// the output of one run, or exist for tests. A new flag must be added to [`OPTIONS`] or here
/// (a test checks).
pub const EXCLUDED_FLAGS: &[(&str, &str)] = &[
    ("pids", "PIDs change between boots"),
    ("follow_children", "goes with --pid"),
    ("once", "one snapshot, for a session"),
    ("json", "output of a session"),
    ("no_tui", "output of a session"),
    ("tree", "output of a session"),
    ("by", "the view of an interactive session"),
    ("exit_on_death", "goes with --pid"),
    ("duration", "length of a session"),
    ("replay", "hidden, for tests"),
    ("procfs_root", "hidden, for tests"),
    ("record_events", "hidden, for tests"),
];

/// A TOML value, owned, with the spans of array elements and table keys kept for errors.
#[derive(Debug, Clone)]
pub enum Val {
    Str(String),
    /// Decimal digits (hex, octal and binary integers converted).
    Int(String),
    Float(String),
    Bool(bool),
    Datetime(String),
    Array(Vec<Spanned<Val>>),
    Table(Vec<(Spanned<String>, Spanned<Val>)>),
}

impl Val {
    pub fn from_de(v: &Spanned<DeValue<'_>>) -> Spanned<Val> {
        let val = match v.get_ref() {
            DeValue::String(s) => Val::Str(s.to_string()),
            DeValue::Integer(i) => Val::Int(
                i128::from_str_radix(i.as_str(), i.radix())
                    .map_or_else(|_| i.to_string(), |n| n.to_string()),
            ),
            DeValue::Float(f) => Val::Float(f.as_str().to_string()),
            DeValue::Boolean(b) => Val::Bool(*b),
            DeValue::Datetime(d) => Val::Datetime(d.to_string()),
            DeValue::Array(a) => Val::Array(a.iter().map(Val::from_de).collect()),
            DeValue::Table(t) => Val::Table(
                t.iter()
                    .map(|(k, v)| {
                        (
                            Spanned::new(k.span(), k.get_ref().to_string()),
                            Val::from_de(v),
                        )
                    })
                    .collect(),
            ),
        };
        Spanned::new(v.span(), val)
    }

    /// What was found instead, for "expected X, found Y".
    pub fn found(&self) -> String {
        match self {
            Val::Str(s) => format!("the string {s:?}"),
            Val::Int(i) => format!("the number {i}"),
            Val::Float(f) => format!("the number {f}"),
            Val::Bool(b) => format!("{b}"),
            Val::Datetime(d) => format!("the date-time {d}"),
            Val::Array(_) => "a list".into(),
            Val::Table(_) => "a table".into(),
        }
    }
}

fn expected(v: &Spanned<Val>, what: &str) -> Problem {
    Problem::new(format!("expected {what}, found {}", v.get_ref().found()))
}

fn text<'a>(v: &'a Spanned<Val>, what: &str) -> Result<&'a str, Problem> {
    match v.get_ref() {
        Val::Str(s) => Ok(s),
        _ => Err(expected(v, what)),
    }
}

/// A number of seconds: a TOML integer or float, given to the flag's parser as written.
fn seconds(v: &Spanned<Val>) -> Result<&str, Problem> {
    match v.get_ref() {
        Val::Int(s) | Val::Float(s) => Ok(s),
        _ => Err(expected(v, "a number of seconds like 1 or 0.5")),
    }
}

fn whole<'a>(v: &'a Spanned<Val>, what: &str) -> Result<&'a str, Problem> {
    match v.get_ref() {
        Val::Int(s) => Ok(s),
        _ => Err(expected(v, what)),
    }
}

fn count(v: &Spanned<Val>) -> Result<usize, Problem> {
    let t = whole(v, "a whole number")?;
    t.parse::<usize>()
        .map_err(|_| Problem::new(format!("{t} is not a whole number of 0 or more")))
}

fn boolean(v: &Spanned<Val>) -> Result<bool, Problem> {
    match v.get_ref() {
        Val::Bool(b) => Ok(*b),
        _ => Err(expected(v, "true or false")),
    }
}

/// An absolute path: a relative one would depend on the directory the daemon starts in.
fn path(v: &Spanned<Val>) -> Result<PathBuf, Problem> {
    let t = text(v, "a path (a string)")?;
    if !t.starts_with('/') {
        return Err(Problem::new(format!("{t:?} is not an absolute path")));
    }
    Ok(PathBuf::from(t))
}

fn list<T>(
    v: &Spanned<Val>,
    what: &str,
    each: impl Fn(&Spanned<Val>) -> Result<T, Problem>,
) -> Result<Vec<T>, Problem> {
    let Val::Array(items) = v.get_ref() else {
        return Err(expected(v, what));
    };
    items
        .iter()
        .map(|item| {
            each(item).map_err(|p| Problem {
                span: p.span.or_else(|| Some(item.span())),
                message: p.message,
            })
        })
        .collect()
}

fn names(v: &Spanned<Val>, example: &str) -> Result<Vec<String>, Problem> {
    list(v, &format!("a list like {example}"), |item| {
        Ok(cli::non_empty(text(item, "a string")?)?)
    })
}

fn enum_value<E: ValueEnum>(v: &Spanned<Val>) -> Result<E, Problem> {
    let choices = enum_names::<E>().join(", ");
    let t = text(v, &format!("one of {choices} (a string)"))?;
    E::from_str(t, false).map_err(|_| Problem::new(format!("{t:?} is not one of {choices}")))
}

fn enum_names<E: ValueEnum>() -> Vec<String> {
    E::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .filter(|p| !p.is_hide_set())
        .map(|p| p.get_name().to_string())
        .collect()
}

fn enum_name<E: ValueEnum>(e: &E) -> String {
    e.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// `[watch_network]`: NAME = ["CIDR", ...], each entry parsed as `--watch-network NAME=CIDRS`.
fn watch_networks(v: &Spanned<Val>) -> Result<Vec<crate::aggregate::WatchedNetwork>, Problem> {
    let Val::Table(entries) = v.get_ref() else {
        return Err(expected(
            v,
            "a table of NAME = [address ranges] ([watch_network])",
        ));
    };
    entries
        .iter()
        .map(|(name, ranges)| {
            let at = |m: String| Problem::at(ranges.span(), format!("{}: {m}", name.get_ref()));
            let cidrs = list(
                ranges,
                "a list of address ranges like [\"10.0.0.0/8\"]",
                |r| {
                    let t = text(r, "an address range (a string)")?;
                    if t.contains(',') {
                        return Err(Problem::new(format!(
                            "{t:?} is not one address range: write each as its own string"
                        )));
                    }
                    Ok(t.to_string())
                },
            )
            .map_err(|p| Problem {
                span: p.span.or_else(|| Some(ranges.span())),
                message: format!("{}: {}", name.get_ref(), p.message),
            })?;
            if cidrs.is_empty() {
                return Err(at("no address ranges".into()));
            }
            cli::parse_watch_network(&format!("{}={}", name.get_ref(), cidrs.join(","))).map_err(
                |m| {
                    Problem::at(name.span().start..ranges.span().end, {
                        format!("{}: {m}", name.get_ref())
                    })
                },
            )
        })
        .collect()
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quoted_list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| quote(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// Seconds as a TOML number: `1`, `0.5`.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// Milliseconds as the largest whole unit `parse_span_ms` reads back (`30d`, `6h`); weeks
/// are left as days, the way people write retention (`7d`, not `1w`).
pub fn span_text(ms: i64) -> String {
    for (unit, per) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)] {
        if ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{}s", ms / 1000)
}

/// Bytes as the largest whole unit `parse_size` reads back (`1GiB`, `500MB`).
pub fn size_text(bytes: u64) -> String {
    for (unit, per) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ] {
        if bytes >= per && bytes.is_multiple_of(per) {
            return format!("{}{unit}", bytes / per);
        }
    }
    format!("{bytes}B")
}

/// `serve`'s flags with their built-in defaults (what the file's values apply to).
pub fn default_run_args() -> RunArgs {
    match Cli::try_parse_from(["netmon", "serve"]).map(|c| c.command) {
        Ok(Command::Serve(args)) => args,
        other => panic!("`netmon serve` without flags does not parse: {other:?}"),
    }
}

/// The long name of a `serve` flag (`watch-network` for `watch_networks`).
pub fn flag_long(id: &str) -> Option<String> {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve")?;
    serve
        .get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_long().map(str::to_string))
}

macro_rules! opt {
    ($section:ident, $key:literal, $flag:literal, $scope:ident, $doc:expr, $set:expr, $show:expr) => {
        Opt {
            section: Section::$section,
            key: $key,
            flag: $flag,
            scope: Scope::$scope,
            table: false,
            doc: $doc,
            set: $set,
            show: $show,
        }
    };
}

/// Every setting, in the template's order: top-level keys, `[watch_network]`, `[history]`.
pub static OPTIONS: &[Opt] = &[
    opt!(
        Top,
        "listen",
        "listen",
        Serve,
        "Address of /metrics, /healthz and /api/v1/processes. `netmon run` serves only with\n\
         --listen on its command line, so it never takes the daemon's port.",
        |a, v| {
            let t = text(v, "an address like \"127.0.0.1:9742\"")?;
            a.listen = Some(t.parse::<SocketAddr>().map_err(|_| {
                Problem::new(format!(
                    "{t:?} is not an address like 127.0.0.1:9742 or [::1]:9742"
                ))
            })?);
            Ok(())
        },
        |a| a.listen.map(|l| quote(&l.to_string()))
    ),
    opt!(
        Top,
        "interval",
        "interval",
        Both,
        "Refresh interval, in seconds (0.05 to 3600; 0.5 is half a second).",
        |a, v| {
            a.interval = cli::parse_interval(seconds(v)?)?;
            Ok(())
        },
        |a| Some(secs(a.interval))
    ),
    opt!(
        Top,
        "backend",
        "backend",
        Both,
        "Which kernel programs account payload bytes: auto (the best that loads), fentry,\n\
         tp-btf, tracepoint, kprobe or cgroup (see `netmon doctor`).",
        |a, v| {
            a.backend = enum_value::<BackendChoice>(v)?;
            Ok(())
        },
        |a| Some(quote(&enum_name(&a.backend)))
    ),
    opt!(
        Top,
        "connections",
        "connections",
        Both,
        "Connections listed per process: \"live\" ones, or \"all\" (ended ones stay listed as\n\
         closed for a few intervals; costs memory at high connection rates). Default: \"live\",\n\
         \"all\" with --pid.",
        |a, v| {
            a.connections = Some(enum_value::<ConnectionsShown>(v)?);
            Ok(())
        },
        |a| a.connections.map(|c| quote(&enum_name(&c)))
    ),
    opt!(
        Top,
        "max_connections",
        "max_connections",
        Both,
        "Connections listed per process, the busiest first; the others are counted as\n\
         connections_not_listed. Default: 100 for serve (its API), all for run.",
        |a, v| {
            a.max_connections = Some(count(v)?);
            Ok(())
        },
        |a| a.max_connections.map(|n| n.to_string())
    ),
    opt!(
        Top,
        "metrics_top_k",
        "metrics_top_k",
        Both,
        "Processes with their own metric series; the rest are summed under comm=\"other\"\n\
         (0: everything in \"other\").",
        |a, v| {
            a.metrics_top_k = count(v)?;
            Ok(())
        },
        |a| Some(a.metrics_top_k.to_string())
    ),
    opt!(
        Top,
        "metrics_pid_label",
        "metrics_pid_label",
        Both,
        "Add a pid label to per-process metrics (more series).",
        |a, v| {
            a.metrics_pid_label = boolean(v)?;
            Ok(())
        },
        |a| Some(a.metrics_pid_label.to_string())
    ),
    opt!(
        Top,
        "metrics_ttl",
        "metrics_ttl",
        Both,
        "Exited processes keep their own metric series this long, in seconds, then fold into\n\
         comm=\"other\".",
        |a, v| {
            a.metrics_ttl = cli::parse_duration_secs(seconds(v)?)?;
            Ok(())
        },
        |a| Some(secs(a.metrics_ttl))
    ),
    opt!(
        Top,
        "api_cmdlines",
        "api_cmdlines",
        Both,
        "Include command lines in /api/v1/processes. A command line can hold secrets, and the\n\
         endpoint shows it to anyone who can reach the port.",
        |a, v| {
            a.api_cmdlines = boolean(v)?;
            Ok(())
        },
        |a| Some(a.api_cmdlines.to_string())
    ),
    opt!(
        Top,
        "web_config",
        "web_config",
        Both,
        "TLS and basic-auth settings for the endpoint (docs/metrics.md, \"Securing the\n\
         endpoint\"), an absolute path. Not set by default (plain HTTP), e.g.\n\
         web_config = \"/etc/netmon/web-config.yml\"",
        |a, v| {
            a.web_config = Some(path(v)?);
            Ok(())
        },
        |a| a
            .web_config
            .as_ref()
            .map(|p| quote(&p.display().to_string()))
    ),
    opt!(
        Top,
        "comm",
        "comms",
        Both,
        "Only processes with these names (comm), e.g. comm = [\"nginx\", \"postgres\"].",
        |a, v| {
            a.comms = names(v, "[\"nginx\", \"postgres\"]")?;
            Ok(())
        },
        |a| Some(quoted_list(&a.comms))
    ),
    opt!(
        Top,
        "cgroup",
        "cgroups",
        Both,
        "Only processes in these cgroups: a path prefix (/system.slice), a unit\n\
         (nginx.service) or a container id, e.g. cgroup = [\"/system.slice\"].",
        |a, v| {
            a.cgroups = names(v, "[\"/system.slice\", \"nginx.service\"]")?;
            Ok(())
        },
        |a| Some(quoted_list(&a.cgroups))
    ),
    opt!(
        Top,
        "exclude_pid",
        "exclude_pids",
        Both,
        "Leave these processes out of the table, TUI, JSON and metrics, e.g. [1234].",
        |a, v| {
            a.exclude_pids = list(v, "a list of PIDs like [1234]", |item| {
                Ok(cli::parse_pid(whole(item, "a PID (a number)")?)?)
            })?;
            Ok(())
        },
        |a| {
            let pids: Vec<String> = a.exclude_pids.iter().map(u32::to_string).collect();
            Some(format!("[{}]", pids.join(", ")))
        }
    ),
    opt!(
        Top,
        "exclude_comm",
        "exclude_comms",
        Both,
        "Leave processes with these names (comm) out, e.g. [\"backup\"].",
        |a, v| {
            a.exclude_comms = names(v, "[\"backup\"]")?;
            Ok(())
        },
        |a| Some(quoted_list(&a.exclude_comms))
    ),
    opt!(
        Top,
        "exclude_cgroup",
        "exclude_cgroups",
        Both,
        "Leave processes in these cgroups out (a path prefix, a unit or a container id).",
        |a, v| {
            a.exclude_cgroups = names(v, "[\"/user.slice\"]")?;
            Ok(())
        },
        |a| Some(quoted_list(&a.exclude_cgroups))
    ),
    Opt {
        section: Section::Top,
        key: "watch_network",
        flag: "watch_networks",
        scope: Scope::Both,
        table: true,
        doc: "Count connections to these address ranges per process, one NAME = [ranges] line\n\
              per network, e.g.\n\
              intranet = [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"]",
        set: |a, v| {
            a.watch_networks = watch_networks(v)?;
            Ok(())
        },
        show: |a| {
            let lines: Vec<String> = a
                .watch_networks
                .iter()
                .map(|n| format!("{} = {}", n.name, quoted_list(&n.ranges)))
                .collect();
            Some(lines.join("\n"))
        },
    },
    opt!(
        History,
        "db",
        "db",
        Both,
        "The history database (SQLite), an absolute path.",
        |a, v| {
            a.history.db = path(v)?;
            Ok(())
        },
        |a| Some(quote(&a.history.db.display().to_string()))
    ),
    opt!(
        History,
        "enabled",
        "no_history",
        Serve,
        "Record flow records into the history database (false: like --no-history).",
        |a, v| {
            a.history.no_history = !boolean(v)?;
            Ok(())
        },
        |a| Some((!a.history.no_history).to_string())
    ),
    opt!(
        History,
        "events",
        "no_events",
        Both,
        "Record host events (devices, mounts, interfaces, addresses, routes, listeners, first\n\
         contacts with the intranet) into the history database with the flows (false: like\n\
         --no-events).",
        |a, v| {
            a.history.no_events = !boolean(v)?;
            Ok(())
        },
        |a| Some((!a.history.no_events).to_string())
    ),
    opt!(
        History,
        "new_remotes",
        "new_remotes",
        Both,
        "Also record a contact event for each process's first connection to any remote never\n\
         seen before, not only to the intranet and watched networks (like --new-remotes).",
        |a, v| {
            a.history.new_remotes = boolean(v)?;
            Ok(())
        },
        |a| Some(a.history.new_remotes.to_string())
    ),
    opt!(
        History,
        "record",
        "record",
        Run,
        "Also record flow records when running `netmon run` (like --record).",
        |a, v| {
            a.history.record = boolean(v)?;
            Ok(())
        },
        |a| Some(a.history.record.to_string())
    ),
    opt!(
        History,
        "retention",
        "retention",
        Both,
        "Keep history this long (per-minute roll-ups): a span like \"30m\", \"6h\", \"30d\" or \"1w\".",
        |a, v| {
            a.history.retention =
                crate::history::when::parse_span_ms(text(v, "a span like \"30d\" (a string)")?)?;
            Ok(())
        },
        |a| Some(quote(&span_text(a.history.retention)))
    ),
    opt!(
        History,
        "raw_retention",
        "raw_retention",
        Both,
        "Keep raw flow records this long (at most retention), a span like \"7d\".",
        |a, v| {
            a.history.raw_retention =
                crate::history::when::parse_span_ms(text(v, "a span like \"7d\" (a string)")?)?;
            Ok(())
        },
        |a| Some(quote(&span_text(a.history.raw_retention)))
    ),
    opt!(
        History,
        "max_db_size",
        "max_db_size",
        Both,
        "Largest size of the history database; the oldest records go first beyond it. A size\n\
         like \"500MiB\", \"1GiB\" or \"2GB\" (powers of 1024 and 1000), or a number of bytes.",
        |a, v| {
            let t = match v.get_ref() {
                Val::Int(s) | Val::Str(s) => s.as_str(),
                _ => return Err(expected(v, "a size like \"1GiB\"")),
            };
            a.history.max_db_size = crate::history::when::parse_size(t)?;
            Ok(())
        },
        |a| Some(quote(&size_text(a.history.max_db_size)))
    ),
    opt!(
        Hub,
        "url",
        "hub",
        Serve,
        "The hub, nats://HOST:PORT or tls://HOST:PORT, e.g.\n\
         url = \"nats://hub.example.org:4222\"",
        |a, v| {
            a.fleet.hub.hub = Some(cli::non_empty(text(v, "a URL like \"nats://hub:4222\"")?)?);
            Ok(())
        },
        |a| a.fleet.hub.hub.as_deref().map(quote)
    ),
    opt!(
        Hub,
        "user",
        "hub_user",
        Serve,
        "User name on the hub (with password), e.g.\n\
         user = \"agent-lab1\"",
        |a, v| {
            a.fleet.hub.hub_user = Some(text(v, "a user name (a string)")?.to_string());
            Ok(())
        },
        |a| a.fleet.hub.hub_user.as_deref().map(quote)
    ),
    opt!(
        Hub,
        "password",
        "hub_password",
        Serve,
        "Password on the hub (keep this file readable by root only when set), e.g.\n\
         password = \"s3cret\"",
        |a, v| {
            a.fleet.hub.hub_password = Some(text(v, "a password (a string)")?.to_string());
            Ok(())
        },
        |a| a.fleet.hub.hub_password.as_deref().map(quote)
    ),
    opt!(
        Hub,
        "creds",
        "hub_creds",
        Serve,
        "NATS credentials file (JWT and nkey seed), an absolute path, e.g.\n\
         creds = \"/etc/netmon/hub.creds\"",
        |a, v| {
            a.fleet.hub.hub_creds = Some(path(v)?);
            Ok(())
        },
        |a| a
            .fleet
            .hub
            .hub_creds
            .as_ref()
            .map(|p| quote(&p.display().to_string()))
    ),
    opt!(
        Hub,
        "ca",
        "hub_ca",
        Serve,
        "CA certificate(s) that verify the hub's TLS certificate (PEM), an absolute path, e.g.\n\
         ca = \"/etc/netmon/hub-ca.pem\"",
        |a, v| {
            a.fleet.hub.hub_ca = Some(path(v)?);
            Ok(())
        },
        |a| a
            .fleet
            .hub
            .hub_ca
            .as_ref()
            .map(|p| quote(&p.display().to_string()))
    ),
    opt!(
        Hub,
        "site",
        "site",
        Serve,
        "This host's site label on the hub (subjects netmon.SITE.HOST.*).",
        |a, v| {
            a.fleet.site = cli::non_empty(text(v, "a name (a string)")?)?;
            Ok(())
        },
        |a| Some(quote(&a.fleet.site))
    ),
    opt!(
        Hub,
        "host_name",
        "host_name",
        Serve,
        "The host name flow records and the hub carry (default: this machine's name), e.g.\n\
         host_name = \"pc01\"",
        |a, v| {
            a.fleet.host_name = Some(cli::non_empty(text(v, "a name (a string)")?)?);
            Ok(())
        },
        |a| a.fleet.host_name.as_deref().map(quote)
    ),
];
