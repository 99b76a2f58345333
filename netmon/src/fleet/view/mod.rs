//! The fleet viewers: `netmon fleet flows|report|top|events`. Any number of them read the hub
//! at once; none of them changes it (their consumers are ephemeral and ack nothing).
//!
//! - this file: their flags, connecting, and reading a stream's history up to where it ended
//!   when the viewer started (never waiting on an idle stream);
//! - `history`: `fleet flows` and `fleet report` (deduplication and sums are pure);
//! - `top`: `fleet top` (hosts' rates from process summaries, DOWN from heartbeats);
//! - `events`: `fleet events` (with agent-down/-up made from heartbeats, `--exec`,
//!   `--alertmanager`).
pub mod alert;
pub mod events;
pub mod history;
pub mod live;
pub mod top;

use std::{collections::HashSet, time::Duration};

use anyhow::{Context, Result, anyhow};
use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull},
};
use futures_util::StreamExt;

use super::{HubArgs, Kind, token};
use crate::error::{AppError, Exit};

/// `fleet flows` and `fleet report`: which records.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetRangeArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// From this time: a span ago (6h, 2d, 30m), a date (2026-12-07), a local time
    /// (2026-12-07 10:30) or RFC 3339.
    #[arg(long, value_name = "TIME", default_value = "1h")]
    pub since: String,
    /// Up to this time (same forms as --since).
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub until: String,
    /// Only this host (its name as agents publish it).
    #[arg(long, value_name = "NAME", value_parser = crate::cli::non_empty)]
    pub host: Option<String>,
    /// Only this site.
    #[arg(long, value_name = "NAME", value_parser = crate::cli::non_empty)]
    pub site: Option<String>,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct FleetFlowsArgs {
    #[command(flatten)]
    pub range: FleetRangeArgs,
    /// Print at most this many records (the oldest first).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct FleetReportArgs {
    #[command(flatten)]
    pub range: FleetRangeArgs,
    /// Group by this.
    #[arg(long, value_enum, default_value = "host")]
    pub by: crate::history::By,
    #[command(flatten)]
    pub rows: crate::cli::ReportRowsArgs,
}

#[derive(Debug, clap::Args)]
pub struct FleetTopArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Seconds between redraws.
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = crate::cli::parse_interval)]
    pub interval: Duration,
    /// Print one table after a few seconds (what the hub has) and exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, clap::Args)]
pub struct FleetEventsArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Keep printing new events (and agent-down / agent-up from heartbeats) until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// From this time (same forms as `fleet flows`); default 24h, or only new events with
    /// --follow.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only this host.
    #[arg(long, value_name = "NAME", value_parser = crate::cli::non_empty)]
    pub host: Option<String>,
    /// Only this site.
    #[arg(long, value_name = "NAME", value_parser = crate::cli::non_empty)]
    pub site: Option<String>,
    /// Only these kinds of event (comma-separated: device, net, listen, contact, agent-down,
    /// agent-up, …). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "KIND", value_parser = crate::cli::non_empty)]
    pub kind: Vec<String>,
    /// Print JSON lines instead of text lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub exec: crate::cli::ExecArgs,
    /// Also send each event printed to this Alertmanager (http://HOST:PORT) as an alert
    /// named netmon_KIND.
    #[arg(long, value_name = "URL", value_parser = alert::parse_url)]
    pub alertmanager: Option<alert::AmUrl>,
}

/// How far before `--since` a stream is read from: records reach the hub after the stretch
/// they cover ends, so a record's publication time is after its `to_ms` unless the agent's
/// clock is ahead of the server's; this margin covers such a skew.
pub const CLOCK_MARGIN_MS: i64 = 10 * 60_000;
/// A replay that gets nothing for this long stops (what it has is printed, with a warning).
pub const IDLE: Duration = Duration::from_secs(10);

/// `netmon fleet …`.
pub fn command(c: &crate::cli::FleetCommand) -> Result<std::process::ExitCode> {
    use crate::cli::FleetCommand as C;
    match c {
        C::Flows(a) => history::flows(a),
        C::Report(a) => history::report(a),
        C::Top(a) => top::run(a),
        C::Events(a) => events::run(a),
    }
}

/// A runtime for one viewer.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Connects a viewer: no --hub is a usage error, an unreachable hub a failure (one line).
pub(crate) async fn connect(h: &HubArgs, what: &str) -> Result<async_nats::Client> {
    let Some(url) = h.hub.as_deref() else {
        return Err(AppError::new(Exit::Usage, super::NO_HUB).into());
    };
    super::server_list(url)?;
    super::connect(h, &format!("netmon fleet {what}"))
        .await
        .map_err(|e| AppError::new(Exit::Failure, e.to_string()).into())
}

/// "stream not found" means `hub init` never ran there: say so.
pub(crate) fn no_stream(stream: &str, e: impl std::fmt::Display) -> anyhow::Error {
    let e = e.to_string();
    if e.contains("not found") || e.contains("no responders") {
        AppError::new(
            Exit::Failure,
            format!(
                "the hub has no {stream} stream: run `netmon hub init --hub URL` once to create \
                 the netmon streams"
            ),
        )
        .into()
    } else {
        anyhow!("reading stream {stream}: {}", e.replace('\n', " "))
    }
}

/// The subject a viewer reads: every agent's, or one site's and/or host's.
pub fn filter_subject(site: Option<&str>, host: Option<&str>, kind: Kind) -> String {
    format!(
        "netmon.{}.{}.{}",
        site.map_or_else(|| "*".to_string(), token),
        host.map_or_else(|| "*".to_string(), token),
        kind.as_str()
    )
}

/// (host, boot, seq) of the records and events already taken: a replay beyond the server's
/// duplicate window is dropped here.
#[derive(Debug, Default)]
pub struct Dedup {
    seen: HashSet<(String, String, u64)>,
    pub dropped: u64,
}

impl Dedup {
    /// True the first time an identity is offered.
    pub fn first(&mut self, host: &str, boot: &str, seq: u64) -> bool {
        // The common case (new) costs one allocation of the key, as the insert needs it.
        let fresh = self.seen.insert((host.to_string(), boot.to_string(), seq));
        if !fresh {
            self.dropped += 1;
        }
        fresh
    }
}

/// One message as a replay hands it on.
pub struct Delivered<'a> {
    pub payload: &'a [u8],
    /// When the server stored it (Unix ms).
    pub published_ms: i64,
    /// It was in the stream before the viewer started (history), not new.
    pub history: bool,
}

/// What a replay saw besides the messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub messages: u64,
    /// It stopped after [`IDLE`] without reaching the stream's end as of the start.
    pub timed_out: bool,
}

/// Reads `stream` (only `subject`) from the first message stored at or after `start_ms` up to
/// the last one stored when this was called, oldest first; with `follow`, then goes on with
/// new messages until `each` returns false or the connection fails. An ordered consumer
/// (ephemeral, no acks, recreated by the client on a gap).
///
/// A consumer that times out before it delivered anything is made again (twice at most): in
/// a three-node nats-server 2.9 cluster that has just lost a node, some new consumers never
/// delivered (the replay timed out after 10 s) while the next one read everything at once
/// (tests/tests/fleet_scale.rs, the cluster test).
pub(crate) async fn replay(
    js: &jetstream::Context,
    stream: &str,
    subject: String,
    start_ms: i64,
    follow: bool,
    mut each: impl FnMut(Delivered<'_>) -> bool,
) -> Result<Replay> {
    let mut attempt = 0;
    loop {
        let mut delivered = false;
        let mut counting = |d: Delivered<'_>| {
            delivered = true;
            each(d)
        };
        match replay_once(js, stream, subject.clone(), start_ms, follow, &mut counting).await {
            Err(e)
                if !delivered
                    && attempt < CONSUMER_TRIES - 1
                    && e.to_string().contains("timed out") =>
            {
                attempt += 1;
                log::debug!("{e}: a new consumer (try {})", attempt + 1);
            }
            r => return r,
        }
    }
}

/// Consumers a replay makes before it gives up (see [`replay`]).
const CONSUMER_TRIES: usize = 3;

/// One consumer's replay (see [`replay`]).
async fn replay_once(
    js: &jetstream::Context,
    stream: &str,
    subject: String,
    start_ms: i64,
    follow: bool,
    each: &mut impl FnMut(Delivered<'_>) -> bool,
) -> Result<Replay> {
    let mut s = js
        .get_stream(stream)
        .await
        .map_err(|e| no_stream(stream, e))?;
    let last = s
        .info()
        .await
        .map_err(|e| no_stream(stream, e))?
        .state
        .last_sequence;
    let mut out = Replay::default();
    if last == 0 && !follow {
        return Ok(out);
    }
    let start = async_nats::datetime::from_nanos(i128::from(start_ms.max(0)) * 1_000_000)
        .map_err(|e| anyhow!("start time {start_ms}: {e}"))?;
    let consumer = s
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy: DeliverPolicy::ByStartTime { start_time: start },
            ..Default::default()
        })
        .await
        .map_err(|e| {
            anyhow!(
                "reading stream {stream}: {}",
                e.to_string().replace('\n', " ")
            )
        })?;
    let mut history = consumer.cached_info().num_pending > 0 && last > 0;
    if !history && !follow {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(|e| {
        anyhow!(
            "reading stream {stream}: {}",
            e.to_string().replace('\n', " ")
        )
    })?;
    loop {
        let next = if history {
            match tokio::time::timeout(IDLE, messages.next()).await {
                Ok(n) => n,
                Err(_) => {
                    out.timed_out = true;
                    if !follow {
                        return Ok(out);
                    }
                    history = false;
                    continue;
                }
            }
        } else {
            messages.next().await
        };
        let m = match next {
            None => return Ok(out),
            Some(Err(e)) => {
                return Err(anyhow!(
                    "reading stream {stream}: {}",
                    e.to_string().replace('\n', " ")
                ));
            }
            Some(Ok(m)) => m,
        };
        let (seq, pending, published_ms) = match m.info() {
            Ok(i) => (
                i.stream_sequence,
                i.pending,
                (i.published.unix_timestamp_nanos() / 1_000_000) as i64,
            ),
            Err(_) => continue,
        };
        if history && seq > last {
            // Stored after the viewer started: the history is complete.
            if !follow {
                return Ok(out);
            }
            history = false;
        }
        out.messages += 1;
        if !each(Delivered {
            payload: &m.payload,
            published_ms,
            history,
        }) {
            return Ok(out);
        }
        if history && (seq >= last || pending == 0) {
            if !follow {
                return Ok(out);
            }
            history = false;
        }
    }
}

/// Decodes one message; a malformed one is counted by the caller and skipped.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Option<T> {
    serde_json::from_slice(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_subjects() {
        assert_eq!(filter_subject(None, None, Kind::Flows), "netmon.*.*.flows");
        assert_eq!(
            filter_subject(Some("lab 1"), Some("pc01.example.org"), Kind::Events),
            "netmon.lab_1.pc01_example_org.events"
        );
        assert_eq!(
            filter_subject(None, Some("h"), Kind::Flows),
            "netmon.*.h.flows"
        );
    }

    #[test]
    fn dedup_counts_repeats() {
        let mut d = Dedup::default();
        assert!(d.first("h", "b", 1));
        assert!(d.first("h", "b", 2));
        assert!(d.first("h", "b2", 1));
        assert!(d.first("g", "b", 1));
        assert!(!d.first("h", "b", 1));
        assert_eq!(d.dropped, 1);
    }
}
