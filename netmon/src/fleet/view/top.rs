//! `netmon fleet top`: every agent's rates and busiest processes, live, from the process
//! summaries and heartbeats agents publish (the last minute of NETMON_STATE at start, so hosts
//! show at once, then the subjects themselves).
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result};
use async_nats::jetstream;
use futures_util::StreamExt;

use super::live::{HostKey, Liveness, is_down};
use super::{FleetTopArgs, decode};
use crate::fleet::{Heartbeat, Kind, ProcessSummary, STATE_STREAM, all_subjects};
use crate::history::when::now_ms;
use crate::sink::human;

/// What `fleet top` knows.
#[derive(Debug, Default)]
pub struct Fleet {
    pub live: Liveness,
    pub summaries: BTreeMap<HostKey, ProcessSummary>,
}

impl Fleet {
    /// The newest summary per host wins (replays and live may interleave).
    pub fn summary(&mut self, s: ProcessSummary) {
        let key = (s.site.clone(), s.host.clone());
        match self.summaries.get(&key) {
            Some(old) if old.at_ms > s.at_ms => {}
            _ => {
                self.summaries.insert(key, s);
            }
        }
    }

    pub fn heartbeat(&mut self, hb: Heartbeat, seen_ms: i64) {
        self.live.heartbeat(hb, seen_ms);
    }
}

/// Processes shown per host.
const TOP: usize = 3;

/// One row per host: the busiest (sent + received per second) first, down hosts last; each
/// with its state (`up`, `DOWN 2m05s` when its heartbeats stopped, `?` with no heartbeat yet),
/// its totals and its [`TOP`] busiest processes. Lines are at most `width` characters.
pub fn table(f: &Fleet, now_ms: i64, width: usize) -> String {
    struct Row<'a> {
        name: String,
        state: String,
        down: bool,
        summary: Option<&'a ProcessSummary>,
        hb: Option<&'a Heartbeat>,
    }
    let keys: std::collections::BTreeSet<&HostKey> =
        f.live.hosts.keys().chain(f.summaries.keys()).collect();
    let mut rows: Vec<Row> = keys
        .into_iter()
        .map(|k| {
            let seen = f.live.hosts.get(k);
            let (state, down) = match seen {
                Some(s) if is_down(s.seen_ms, s.heartbeat.every_secs, now_ms) => (
                    format!("DOWN {}", ago(now_ms.saturating_sub(s.seen_ms))),
                    true,
                ),
                Some(_) => ("up".to_string(), false),
                None => ("?".to_string(), false),
            };
            Row {
                name: format!("{}/{}", k.0, k.1),
                state,
                down,
                summary: f.summaries.get(k),
                hb: seen.map(|s| &s.heartbeat),
            }
        })
        .collect();
    let total = |r: &Row| r.summary.map_or(0.0, |s| s.tx_rate + s.rx_rate);
    rows.sort_by(|a, b| {
        a.down
            .cmp(&b.down)
            .then_with(|| total(b).total_cmp(&total(a)))
            .then_with(|| a.name.cmp(&b.name))
    });
    let down = rows.iter().filter(|r| r.down).count();
    let name_w = rows
        .iter()
        .map(|r| r.name.chars().count())
        .chain([9])
        .max()
        .unwrap_or(9)
        .min(32);
    let mut out = String::new();
    let mut line = |s: String| {
        let cut: String = s.chars().take(width.max(20)).collect();
        out.push_str(cut.trim_end());
        out.push('\n');
    };
    line(format!(
        "netmon fleet top  {} host{}, {down} down",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
    ));
    line(format!(
        "{:<name_w$} {:<10} {:>11} {:>11} {:>7}  TOP PROCESSES (SENT/RECEIVED PER SECOND)",
        "SITE/HOST", "STATE", "SENT/s", "RECV/s", "SPOOLED"
    ));
    for r in &rows {
        let name: String = r.name.chars().take(name_w).collect();
        let (tx, rx, procs) = match r.summary {
            Some(s) if !r.down => {
                let mut p = s.processes.clone();
                p.sort_by(|a, b| (b.tx_rate + b.rx_rate).total_cmp(&(a.tx_rate + a.rx_rate)));
                let mut procs = String::new();
                for (i, p) in p.iter().take(TOP).enumerate() {
                    if i > 0 {
                        procs.push_str(", ");
                    }
                    let _ = write!(
                        procs,
                        "{} {}/{}",
                        p.comm,
                        human::rate(p.tx_rate),
                        human::rate(p.rx_rate)
                    );
                }
                (human::rate(s.tx_rate), human::rate(s.rx_rate), procs)
            }
            _ => ("-".into(), "-".into(), String::new()),
        };
        let spooled =
            r.hb.map_or_else(|| "-".to_string(), |h| h.spooled.to_string());
        line(format!(
            "{name:<name_w$} {:<10} {tx:>11} {rx:>11} {spooled:>7}  {procs}",
            r.state
        ));
    }
    if rows.is_empty() {
        line("no agents seen yet (heartbeats come every few seconds)".into());
    }
    out
}

/// `5s`, `2m05s`, `3h10m`, `2d04h`.
fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// How far back NETMON_STATE is read at start.
const STATE_BACK_MS: i64 = 60_000;
/// `--once`: live messages taken after the state's history before printing.
const ONCE_WAIT: Duration = Duration::from_secs(2);

/// Subscribes to the live subjects, then reads the last minute of NETMON_STATE into `fleet`
/// (a missing stream is only a warning: the live subjects still work).
pub(crate) async fn start(
    client: &async_nats::Client,
    fleet: &mut Fleet,
) -> Result<(async_nats::Subscriber, async_nats::Subscriber)> {
    let hb = client
        .subscribe(all_subjects(Kind::Heartbeat))
        .await
        .context("subscribing to heartbeats")?;
    let ps = client
        .subscribe(all_subjects(Kind::Processes))
        .await
        .context("subscribing to process summaries")?;
    let js = jetstream::new(client.clone());
    let r = super::replay(
        &js,
        STATE_STREAM,
        "netmon.*.*.*".into(),
        now_ms() - STATE_BACK_MS,
        false,
        |m| {
            apply(fleet, m.payload, m.published_ms);
            true
        },
    )
    .await;
    if let Err(e) = r {
        eprintln!(
            "netmon: {}; showing live heartbeats only",
            crate::error::one_line(&e)
        );
    }
    Ok((hb, ps))
}

/// A heartbeat or a process summary (told apart by their fields).
pub(crate) fn apply(fleet: &mut Fleet, payload: &[u8], seen_ms: i64) -> Option<Heartbeat> {
    if let Some(hb) = decode::<Heartbeat>(payload) {
        fleet.heartbeat(hb.clone(), seen_ms);
        return Some(hb);
    }
    if let Some(s) = decode::<ProcessSummary>(payload) {
        fleet.summary(s);
    }
    None
}

pub fn run(args: &FleetTopArgs) -> Result<ExitCode> {
    super::runtime()?.block_on(async {
        let client = super::connect(&args.hub, "top").await?;
        let mut fleet = Fleet::default();
        let (mut hb, mut ps) = start(&client, &mut fleet).await?;
        let tty = std::io::stdout().is_terminal();
        let mut tick = tokio::time::interval(if args.once { ONCE_WAIT } else { args.interval });
        if args.once {
            tick.tick().await;
        }
        loop {
            tokio::select! {
                Some(m) = hb.next() => { apply(&mut fleet, &m.payload, now_ms()); }
                Some(m) = ps.next() => { apply(&mut fleet, &m.payload, now_ms()); }
                _ = tick.tick() => {
                    let text = table(&fleet, now_ms(), crate::app::terminal_columns());
                    let mut out = std::io::stdout().lock();
                    if tty && !args.once {
                        out.write_all(b"\x1b[H\x1b[2J")?;
                    } else if !args.once {
                        out.write_all(b"\n")?;
                    }
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                    if args.once {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ProcessRate;
    use crate::fleet::view::live::heartbeat;

    fn summary(host: &str, at_ms: i64, procs: &[(&str, f64, f64)]) -> ProcessSummary {
        ProcessSummary {
            site: "lab".into(),
            host: host.into(),
            at_ms,
            interval_ms: 1000,
            processes: procs
                .iter()
                .enumerate()
                .map(|(i, (comm, tx, rx))| ProcessRate {
                    pid: i as u32 + 1,
                    comm: comm.to_string(),
                    tx_rate: *tx,
                    rx_rate: *rx,
                    tx_bytes: 0,
                    rx_bytes: 0,
                })
                .collect(),
            tx_rate: procs.iter().map(|p| p.1).sum(),
            rx_rate: procs.iter().map(|p| p.2).sum(),
        }
    }

    #[test]
    fn hosts_with_top_three_and_down() {
        let mut f = Fleet::default();
        f.heartbeat(heartbeat("lab", "pc01", 5), 100_000);
        f.heartbeat(heartbeat("lab", "pc02", 5), 80_000);
        f.summary(summary(
            "pc01",
            99_000,
            &[
                ("curl", 2048.0, 0.0),
                ("sshd", 10.0, 10.0),
                ("nginx", 0.0, 4096.0),
                ("cron", 1.0, 0.0),
            ],
        ));
        // An older summary does not replace a newer one.
        f.summary(summary("pc01", 50_000, &[("old", 1.0, 1.0)]));
        f.summary(summary("pc02", 79_000, &[("big", 1e9, 1e9)]));
        f.summary(summary("pc03", 99_000, &[("x", 1.0, 0.0)]));
        let t = table(&f, 101_000, 200);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "netmon fleet top  3 hosts, 1 down");
        assert!(lines[1].starts_with("SITE/HOST"));
        // pc01 first (busiest of those up), then pc03 (no heartbeat yet), pc02 down last.
        assert!(lines[2].starts_with("lab/pc01  up"), "{t}");
        assert!(lines[2].contains("nginx 0 B/s/4.00 KiB/s, curl 2.00 KiB/s/0 B/s, sshd"));
        assert!(!lines[2].contains("cron"));
        assert!(lines[3].starts_with("lab/pc03  ?"), "{t}");
        assert!(lines[4].starts_with("lab/pc02  DOWN 21s"), "{t}");
        assert!(!lines[4].contains("big"));
        assert_eq!(lines.len(), 5);
        // Narrow terminals cut lines.
        assert!(
            table(&f, 101_000, 40)
                .lines()
                .all(|l| l.chars().count() <= 40)
        );
        assert!(table(&Fleet::default(), 0, 80).contains("no agents seen yet"));
    }

    #[test]
    fn payloads_are_told_apart() {
        let mut f = Fleet::default();
        let hb = serde_json::to_vec(&heartbeat("s", "h", 5)).unwrap();
        assert!(apply(&mut f, &hb, 5).is_some());
        let s = serde_json::to_vec(&summary("h", 1, &[])).unwrap();
        assert!(apply(&mut f, &s, 5).is_none());
        assert!(apply(&mut f, b"junk", 5).is_none());
        assert_eq!(f.live.hosts.len(), 1);
        assert_eq!(f.summaries.len(), 1);
    }
}
