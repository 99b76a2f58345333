//! Fleet: agents (`netmon serve --hub URL`) publish their flow records, events, a process
//! summary and a heartbeat to NATS JetStream; any number of viewers (`netmon fleet …`) read
//! them live and from the streams' history.
//!
//! - this file: subjects, stream names and the messages on the wire (the contract between
//!   agents and viewers), and connecting to the hub;
//! - `agent`: the publisher in `serve` (the history store is its spool);
//! - `hub`: `netmon hub init` (streams);
//! - `view`: the viewers `fleet report`, `fleet flows`, `fleet top`, `fleet events`.
//!
//! Exactly once: each flow record carries (host, boot, seq), published with that as its
//! `Nats-Msg-Id`, so the server drops a resend within its duplicate window; viewers also drop
//! an id they have seen, so a replay beyond the window is harmless.
pub mod agent;
pub mod hub;
pub mod view;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::history::FlowRecord;

/// Streams `netmon hub init` creates.
pub const FLOWS_STREAM: &str = "NETMON_FLOWS";
pub const EVENTS_STREAM: &str = "NETMON_EVENTS";
/// Heartbeats and process summaries: only the recent past matters (fleet top, agent down).
pub const STATE_STREAM: &str = "NETMON_STATE";

/// What an agent publishes, each under `netmon.<site>.<host>.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Flows,
    Events,
    Processes,
    Heartbeat,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Flows => "flows",
            Kind::Events => "events",
            Kind::Processes => "processes",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

/// `netmon.<site>.<host>.<kind>`; site and host are made safe as subject tokens.
pub fn subject(site: &str, host: &str, kind: Kind) -> String {
    format!("netmon.{}.{}.{}", token(site), token(host), kind.as_str())
}

/// Every agent's subjects of one kind (for streams and subscriptions).
pub fn all_subjects(kind: Kind) -> String {
    format!("netmon.*.*.{}", kind.as_str())
}

/// A subject token: no dots, spaces or wildcards; never empty.
pub fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { "_".into() } else { t }
}

/// A flow record on the wire: the record and where it comes from, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetFlow {
    pub site: String,
    /// The store the record was spooled in (one per agent installation, kept across
    /// restarts): with `seq`, the record's identity.
    pub boot: String,
    /// Position in that store's spool; increasing, never reused.
    pub seq: u64,
    #[serde(flatten)]
    pub flow: FlowRecord,
}

impl FleetFlow {
    /// The `Nats-Msg-Id`: (host, boot, seq).
    pub fn msg_id(&self) -> String {
        msg_id(&self.flow.host, &self.boot, self.seq)
    }
}

pub fn msg_id(host: &str, boot: &str, seq: u64) -> String {
    format!("{host}/{boot}/{seq}")
}

/// Sent every few seconds: the agent is alive, and what it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub site: String,
    pub host: String,
    pub machine_id: String,
    pub version: String,
    pub kernel: String,
    pub backend: String,
    pub uptime_secs: u64,
    pub at_ms: i64,
    /// Seconds until the next one: a viewer marks the agent down after a few missed.
    pub every_secs: u64,
    /// Flow records spooled but not yet acknowledged by the hub.
    pub spooled: u64,
}

/// Each interval: the agent's busiest processes and its totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub site: String,
    pub host: String,
    pub at_ms: i64,
    pub interval_ms: u64,
    pub processes: Vec<ProcessRate>,
    pub tx_rate: f64,
    pub rx_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRate {
    pub pid: u32,
    pub comm: String,
    pub tx_rate: f64,
    pub rx_rate: f64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// An event at the centre: what happened on which host (device, net, listen, contact, or
/// `agent-down` made by viewers from missed heartbeats), with the event's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetEvent {
    pub site: String,
    pub host: String,
    pub boot: String,
    pub seq: u64,
    pub kind: String,
    pub at_ms: i64,
    /// One line for people.
    pub summary: String,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub comm: Option<String>,
    /// The event as the local `netmon events --json` prints it.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// The busiest processes of a snapshot, as an agent publishes them each interval (site and
/// host are the agent's to fill).
pub fn summary_of(s: &crate::aggregate::Snapshot) -> ProcessSummary {
    ProcessSummary {
        site: String::new(),
        host: String::new(),
        at_ms: crate::history::when::now_ms(),
        interval_ms: s.interval_ms,
        processes: s
            .processes
            .iter()
            .take(20)
            .map(|p| ProcessRate {
                pid: p.pid,
                comm: p.comm.clone(),
                tx_rate: p.tx_rate,
                rx_rate: p.rx_rate,
                tx_bytes: p.tx_bytes,
                rx_bytes: p.rx_bytes,
            })
            .collect(),
        tx_rate: s.totals.tx_rate,
        rx_rate: s.totals.rx_rate,
    }
}

/// How to reach the hub: `--hub` and its credentials, shared by agents and viewers.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HubArgs {
    /// The NATS server (JetStream): nats://HOST:PORT or tls://HOST:PORT; a cluster's servers
    /// as a comma-separated list (the client moves to another when one fails).
    #[arg(long, value_name = "URL[,URL...]")]
    pub hub: Option<String>,
    /// User name for the hub (with --hub-password).
    #[arg(long, value_name = "NAME", requires = "hub_password")]
    pub hub_user: Option<String>,
    /// Password for the hub.
    #[arg(long, value_name = "PASSWORD", requires = "hub_user")]
    pub hub_password: Option<String>,
    /// NATS credentials file (JWT and nkey seed).
    #[arg(long, value_name = "FILE")]
    pub hub_creds: Option<PathBuf>,
    /// CA certificate(s) to verify the hub's TLS certificate (PEM); turns TLS on.
    #[arg(long, value_name = "FILE")]
    pub hub_ca: Option<PathBuf>,
}

/// `serve`'s fleet flags: the hub and who this agent is there.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// `serve`: the site label of this host on the hub (subjects netmon.SITE.HOST.*).
    #[arg(long, default_value = "default", value_name = "NAME", value_parser = crate::cli::non_empty)]
    pub site: String,
    /// The host name flow records and the hub carry (default: this machine's name).
    #[arg(long, value_name = "NAME", value_parser = crate::cli::non_empty)]
    pub host_name: Option<String>,
}

/// What to say when no hub is given, on the command line or in the config file.
pub const NO_HUB: &str =
    "no hub given (--hub nats://HOST:PORT, or url in the config file's [hub] section)";

/// `--hub`'s servers: one URL or a comma-separated list, each checked here so a typo is one
/// line naming it (a usage error, exit 2).
pub fn server_list(url: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    use crate::error::{AppError, Exit};
    let list: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if list.is_empty() {
        return Err(AppError::new(Exit::Usage, NO_HUB).into());
    }
    list.into_iter()
        .map(|u| {
            u.parse::<async_nats::ServerAddr>().map_err(|e| {
                AppError::new(
                    Exit::Usage,
                    format!("hub URL {u:?}: {}", e.to_string().replace('\n', " ")),
                )
                .into()
            })
        })
        .collect()
}

/// The last error the hub sent on a connection (`-ERR`, e.g. a permissions violation). The
/// server says why it refused a publish only this way: the publish itself just gets no
/// answer, so a timed-out request is explained with it.
#[derive(Debug, Clone, Default)]
pub struct ServerErrors(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl ServerErrors {
    fn set(&self, e: String) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(e);
        }
    }

    /// The last error, taken (each is told once).
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut l| l.take())
    }

    /// `e` as one line, with the server's own refusal when it sent one: "the hub refused
    /// this: Permissions Violation for Publish to ..." instead of a bare time-out.
    pub fn explain(&self, what: &str, e: impl std::fmt::Display) -> anyhow::Error {
        let e = e.to_string().replace('\n', " ");
        match self.take() {
            Some(refused) if refused.to_ascii_lowercase().contains("permission") => {
                anyhow::anyhow!("{what}: the hub refused: {refused}")
            }
            _ => anyhow::anyhow!("{what}: {e}"),
        }
    }
}

/// A client error as one line, each part once: async-nats says "authorization violation:
/// nats: authorization violation".
fn reason(e: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in e.split('\n').flat_map(|l| l.split(": ")).map(str::trim) {
        if !p.is_empty() && p != "nats" && !parts.contains(&p) {
            parts.push(p);
        }
    }
    parts.join(": ")
}

/// Connects to the hub; retries are the caller's (agents back off, viewers fail).
pub async fn connect(h: &HubArgs, name: &str) -> anyhow::Result<async_nats::Client> {
    connect_watched(h, name).await.map(|(c, _)| c)
}

/// [`connect`], keeping the errors the server sends on the connection.
pub async fn connect_watched(
    h: &HubArgs,
    name: &str,
) -> anyhow::Result<(async_nats::Client, ServerErrors)> {
    let url = h.hub.as_deref().ok_or_else(|| anyhow::anyhow!(NO_HUB))?;
    let servers = server_list(url)?;
    let errors = ServerErrors::default();
    let seen = errors.clone();
    let mut o = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(std::time::Duration::from_secs(5))
        .event_callback(move |ev| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = ev {
                    let e = e.to_string();
                    log::debug!("hub: {e}");
                    seen.set(
                        e.trim_start_matches("nats: ")
                            .trim_matches('\'')
                            .to_string(),
                    );
                }
            }
        });
    if let (Some(u), Some(p)) = (&h.hub_user, &h.hub_password) {
        o = o.user_and_password(u.clone(), p.clone());
    }
    if let Some(c) = &h.hub_creds {
        o = o
            .credentials_file(c)
            .await
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", c.display()))?;
    }
    if let Some(ca) = &h.hub_ca {
        o = o.add_root_certificates(ca.clone()).require_tls(true);
    }
    let client = o
        .connect(servers)
        .await
        .map_err(|e| anyhow::anyhow!("hub {url}: {}", reason(&e.to_string())))?;
    Ok((client, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_urls_are_one_or_a_list() {
        assert_eq!(server_list("nats://127.0.0.1:4222").unwrap().len(), 1);
        let l = server_list("nats://a:4222, nats://b:4223,tls://c:4224").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].port(), 4223);
        assert!(server_list(" , ").is_err());
        let e = server_list("nats://a:4222,http://b:1")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("hub URL \"http://b:1\""), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn a_refusal_explains_a_time_out_once() {
        let errs = ServerErrors::default();
        let e = errs.explain(
            "publishing flow records",
            "timed out: didn't receive ack in time",
        );
        assert_eq!(
            e.to_string(),
            "publishing flow records: timed out: didn't receive ack in time"
        );
        errs.set("Permissions Violation for Publish to \"netmon.a.b.flows\"".into());
        let e = errs.explain("publishing flow records", "timed out");
        assert_eq!(
            e.to_string(),
            "publishing flow records: the hub refused: Permissions Violation for Publish to \"netmon.a.b.flows\""
        );
        assert_eq!(errs.take(), None);
        errs.set("Slow Consumer".into());
        assert!(
            !errs
                .explain("x", "timed out")
                .to_string()
                .contains("refused")
        );
    }

    #[test]
    fn connect_errors_say_each_part_once() {
        assert_eq!(
            reason("authorization violation: nats: authorization violation"),
            "authorization violation"
        );
        assert_eq!(
            reason("IO error: invalid peer certificate: UnknownIssuer"),
            "IO error: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(reason("timed out\nagain"), "timed out: again");
    }

    #[test]
    fn subjects_are_safe() {
        assert_eq!(
            subject("lab 1", "pc01.example.org", Kind::Flows),
            "netmon.lab_1.pc01_example_org.flows"
        );
        assert_eq!(subject("", "h", Kind::Heartbeat), "netmon._.h.heartbeat");
        assert_eq!(all_subjects(Kind::Events), "netmon.*.*.events");
    }

    #[test]
    fn flows_round_trip_with_their_identity() {
        let f = FleetFlow {
            site: "lab".into(),
            boot: "b1".into(),
            seq: 42,
            flow: FlowRecord {
                host: "pc01".into(),
                tx_bytes: 7,
                ..FlowRecord::default()
            },
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<FleetFlow>(&text).unwrap(), f);
        assert_eq!(f.msg_id(), "pc01/b1/42");
    }
}
