//! `netmon hub init`: creates or updates the streams agents publish to. Idempotent, so it can
//! run from deployment scripts every time; agents need no rights to manage streams.
use std::{process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use async_nats::jetstream::{self, stream};
use log::warn;

use super::{EVENTS_STREAM, FLOWS_STREAM, HubArgs, Kind, STATE_STREAM, all_subjects};

#[derive(Debug, clap::Args)]
pub struct HubInitArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Copies of each stream in a NATS cluster (1 for a single server).
    #[arg(long, default_value = "1", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=5))]
    pub replicas: u16,
    /// Keep flow records and events this long.
    #[arg(long, default_value = "30d", value_name = "SPAN", value_parser = crate::history::when::parse_span_ms)]
    pub max_age: i64,
    /// Largest size of the flow stream; the oldest records go first beyond it.
    #[arg(long, default_value = "10GiB", value_name = "SIZE", value_parser = crate::history::when::parse_size)]
    pub max_bytes: u64,
}

/// The smallest flow stream `hub init` falls back to on a hub short of disk.
const MIN_STREAM_BYTES: i64 = 64 << 20;

/// How long the server remembers message ids to drop resends: longer than an agent is
/// expected to be cut off; beyond it, viewers drop what they have seen.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);
/// Heartbeats and process summaries are kept this long (fleet top, agent down).
const STATE_MAX_AGE: Duration = Duration::from_secs(3600);

/// The three streams, as `hub init` wants them.
pub fn stream_configs(a: &HubInitArgs) -> Vec<stream::Config> {
    let age = Duration::from_millis(a.max_age.max(1) as u64);
    let base =
        |name: &str, subjects: Vec<String>, max_age: Duration, max_bytes: i64| stream::Config {
            name: name.to_string(),
            subjects,
            max_age,
            max_bytes,
            storage: stream::StorageType::File,
            num_replicas: usize::from(a.replicas),
            duplicate_window: DUPLICATE_WINDOW.min(max_age),
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        };
    vec![
        base(
            FLOWS_STREAM,
            vec![all_subjects(Kind::Flows)],
            age,
            a.max_bytes.min(i64::MAX as u64) as i64,
        ),
        base(EVENTS_STREAM, vec![all_subjects(Kind::Events)], age, -1),
        base(
            STATE_STREAM,
            vec![all_subjects(Kind::Heartbeat), all_subjects(Kind::Processes)],
            STATE_MAX_AGE,
            -1,
        ),
    ]
}

/// A stream the hub would not create: the server's refusal (a user without the right to
/// manage streams, e.g. a viewer's) says why better than the request's time-out.
fn refused(errors: &super::ServerErrors, name: &str, e: impl std::fmt::Display) -> anyhow::Error {
    let e = errors.explain(&format!("creating stream {name}"), e);
    if e.to_string().contains("the hub refused") {
        anyhow::anyhow!("{e} (hub init needs a hub user allowed to manage streams)")
    } else {
        e
    }
}

pub fn init(args: &HubInitArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let (client, errors) = super::connect_watched(&args.hub, "netmon hub init").await?;
        let js = jetstream::new(client);
        for mut cfg in stream_configs(args) {
            let name = cfg.name.clone();
            let asked = cfg.max_bytes;
            let info = loop {
                match js.create_or_update_stream(cfg.clone()).await {
                    Ok(info) => break info,
                    // The server reserves a stream's whole size up front and refuses one
                    // larger than what its disk has room for: a small hub gets a smaller
                    // flow stream (oldest records go first beyond it), and says so.
                    Err(e)
                        if e.to_string().contains("insufficient storage")
                            && cfg.max_bytes > MIN_STREAM_BYTES =>
                    {
                        cfg.max_bytes = (cfg.max_bytes / 2).max(MIN_STREAM_BYTES);
                    }
                    Err(e) => return Err(refused(&errors, &name, e)),
                }
            };
            if cfg.max_bytes < asked {
                warn!(
                    "hub init: the hub has no room for {name} at {} MiB: made it {} MiB (the \
                     oldest records go first beyond it; --max-bytes sets it)",
                    asked >> 20,
                    cfg.max_bytes >> 20
                );
            }
            println!(
                "{name}: subjects {}, {} messages, {} bytes, replicas {}",
                info.config.subjects.join(" "),
                info.state.messages,
                info.state.bytes,
                info.config.num_replicas
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
