//! `netmon fleet events`: the agents' events from NETMON_EVENTS (each once), then with
//! `--follow` new ones as they come, plus `agent-down` / `agent-up` made here from heartbeats.
//! Each event printed can also run `--exec` (as the local `netmon events --exec`) and go to an
//! Alertmanager.
use std::{
    cell::RefCell,
    io::{StdoutLock, Write},
    process::ExitCode,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use async_nats::jetstream;
use futures_util::StreamExt;

use super::live::{Change, Liveness};
use super::{Dedup, FleetEventsArgs, alert, decode, filter_subject, token};
use crate::error::{AppError, Exit};
use crate::events::{exec::ExecRunner, stats::Stats};
use crate::fleet::{EVENTS_STREAM, FleetEvent, Heartbeat, Kind};
use crate::history::when::{self, format_rfc3339, now_ms};

/// Default range without --follow.
const DEFAULT_SINCE: &str = "24h";
/// How often heartbeats are checked for agents gone quiet.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One line for people: `TIME SITE/HOST KIND SUMMARY`.
pub fn event_line(ev: &FleetEvent) -> String {
    format!(
        "{} {}/{} {:<12} {}",
        format_rfc3339(ev.at_ms),
        ev.site,
        ev.host,
        ev.kind,
        ev.summary
    )
}

/// The event a viewer makes for a change in an agent's heartbeats.
pub fn synthesized(c: &Change, now_ms: i64) -> FleetEvent {
    let (site, host, kind, summary, detail) = match c {
        Change::Down {
            site,
            host,
            last_seen_ms,
        } => (
            site,
            host,
            "agent-down",
            format!(
                "no heartbeat from {host} for {}s: the agent, its host or its link to the hub \
                 is down",
                (now_ms - last_seen_ms).max(0) / 1000
            ),
            serde_json::json!({ "last_heartbeat": format_rfc3339(*last_seen_ms) }),
        ),
        Change::Up {
            site,
            host,
            down_since_ms,
        } => (
            site,
            host,
            "agent-up",
            format!(
                "heartbeats from {host} again after {}s",
                (now_ms - down_since_ms).max(0) / 1000
            ),
            serde_json::json!({ "down_since": format_rfc3339(*down_since_ms) }),
        ),
    };
    FleetEvent {
        site: site.clone(),
        host: host.clone(),
        boot: String::new(),
        seq: 0,
        kind: kind.to_string(),
        at_ms: now_ms,
        summary,
        pid: None,
        comm: None,
        detail,
    }
}

/// Which events are shown (pure).
#[derive(Debug, Default)]
pub struct Select {
    pub since_ms: i64,
    pub kinds: Vec<String>,
    pub host: Option<String>,
    pub site: Option<String>,
}

impl Select {
    pub fn wants(&self, ev: &FleetEvent) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
            && self
                .host
                .as_deref()
                .is_none_or(|h| h == ev.host || token(h) == token(&ev.host))
            && self
                .site
                .as_deref()
                .is_none_or(|s| s == ev.site || token(s) == token(&ev.site))
    }
}

/// Where events go: stdout, --exec, the Alertmanager.
struct Out<'a> {
    stdout: StdoutLock<'a>,
    json: bool,
    select: Select,
    dedup: Dedup,
    malformed: u64,
    exec: Option<&'a ExecRunner>,
    am: Option<&'a alert::Sender>,
    stats: &'a Stats,
    error: Option<anyhow::Error>,
}

impl Out<'_> {
    /// An event from the stream (`history`: stored before the viewer started).
    fn stored(&mut self, payload: &[u8], history: bool) -> bool {
        let Some(ev) = decode::<FleetEvent>(payload) else {
            self.malformed += 1;
            return true;
        };
        if history && ev.at_ms <= self.select.since_ms {
            return true;
        }
        if !self.select.wants(&ev) || !self.dedup.first(&ev.host, &ev.boot, ev.seq) {
            return true;
        }
        self.show(&ev)
    }

    /// An event made here.
    fn made(&mut self, ev: &FleetEvent) -> bool {
        if !self.select.wants(ev) {
            return true;
        }
        self.show(ev)
    }

    fn show(&mut self, ev: &FleetEvent) -> bool {
        let line = if self.json {
            serde_json::to_string(ev).unwrap_or_default()
        } else {
            event_line(ev)
        };
        if let Err(e) = writeln!(self.stdout, "{line}").and_then(|()| self.stdout.flush()) {
            self.error = Some(anyhow::Error::from(e).context("writing to stdout"));
            return false;
        }
        self.stats.count(&self.stats.shown);
        if let Some(x) = self.exec {
            let name = ev
                .detail
                .get("event")
                .and_then(|v| v.as_str())
                .unwrap_or(&ev.kind)
                .to_string();
            x.submit_json(
                serde_json::to_string(ev).unwrap_or_default(),
                vec![
                    ("NETMON_EVENT", name),
                    ("NETMON_EVENT_KIND", ev.kind.clone()),
                    ("NETMON_HOST", ev.host.clone()),
                    ("NETMON_SITE", ev.site.clone()),
                ],
                self.stats,
            );
        }
        if let Some(am) = self.am {
            am.send(ev);
        }
        true
    }
}

pub fn run(args: &FleetEventsArgs) -> Result<ExitCode> {
    let now = now_ms();
    let since_ms = match (&args.since, args.follow) {
        (Some(s), _) => when::parse_time_ms(s, now)
            .map_err(|e| AppError::new(Exit::Usage, format!("--since: {e}")))?,
        (None, true) => now,
        (None, false) => when::parse_time_ms(DEFAULT_SINCE, now).unwrap_or(now),
    };
    let stats = Arc::new(Stats::default());
    let exec = args.exec.runner(stats.clone());
    let select = Select {
        since_ms,
        kinds: args.kind.clone(),
        host: args.host.clone(),
        site: args.site.clone(),
    };
    let result = super::runtime()?.block_on(async {
        let client = super::connect(&args.hub, "events").await?;
        let am = args.alertmanager.clone().map(alert::Sender::start);
        let out = RefCell::new(Out {
            stdout: std::io::stdout().lock(),
            json: args.json,
            select,
            dedup: Dedup::default(),
            malformed: 0,
            exec: exec.as_ref(),
            am: am.as_ref(),
            stats: &stats,
            error: None,
        });
        let r = if args.follow {
            follow(&client, args, since_ms, &out).await
        } else {
            history(&client, args, since_ms, &out).await
        };
        // Taken apart here so that its borrow of the Alertmanager sender ends.
        let Out {
            dedup,
            malformed,
            error,
            ..
        } = out.into_inner();
        let dropped = dedup.dropped;
        let am_stats = match am {
            Some(a) => Some(a.finish(Duration::from_secs(10)).await),
            None => None,
        };
        let notes = notes(dropped, malformed, &stats, am_stats.as_deref());
        if args.follow || !notes.is_empty() {
            eprintln!(
                "netmon: fleet events: {} events{notes}",
                Stats::get(&stats.shown)
            );
        }
        match error {
            Some(e) => Err(e),
            None => r,
        }
    });
    if let Some(x) = exec {
        x.stop();
    }
    result
}

/// `; 2 duplicates dropped, …` (empty when nothing is worth saying).
fn notes(dropped: u64, malformed: u64, stats: &Stats, am: Option<&alert::AlertStats>) -> String {
    let mut parts = Vec::new();
    if dropped > 0 {
        let s = if dropped == 1 { "" } else { "s" };
        parts.push(format!("{dropped} duplicate{s} dropped"));
    }
    if malformed > 0 {
        let s = if malformed == 1 { "" } else { "s" };
        parts.push(format!("{malformed} malformed message{s} skipped"));
    }
    for (c, what) in [
        (&stats.exec_failed, "--exec failures"),
        (&stats.exec_timed_out, "--exec timeouts"),
        (&stats.exec_dropped, "--exec runs dropped (queue full)"),
    ] {
        if Stats::get(c) > 0 {
            parts.push(format!("{} {what}", Stats::get(c)));
        }
    }
    if let Some(a) = am {
        let (sent, failed, dropped) = (
            a.sent.load(Ordering::Relaxed),
            a.failed.load(Ordering::Relaxed),
            a.dropped.load(Ordering::Relaxed),
        );
        if failed + dropped > 0 {
            parts.push(format!(
                "alertmanager: {sent} posts sent, {failed} failed, {dropped} dropped"
            ));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

async fn history(
    client: &async_nats::Client,
    args: &FleetEventsArgs,
    since_ms: i64,
    out: &RefCell<Out<'_>>,
) -> Result<ExitCode> {
    let js = jetstream::new(client.clone());
    let r = super::replay(
        &js,
        EVENTS_STREAM,
        filter_subject(args.site.as_deref(), args.host.as_deref(), Kind::Events),
        since_ms.saturating_sub(super::CLOCK_MARGIN_MS),
        false,
        |m| out.borrow_mut().stored(m.payload, true),
    )
    .await?;
    if r.timed_out {
        eprintln!(
            "netmon: the hub sent nothing for {}s before the end of {EVENTS_STREAM}; the output \
             may be incomplete",
            super::IDLE.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn follow(
    client: &async_nats::Client,
    args: &FleetEventsArgs,
    since_ms: i64,
    out: &RefCell<Out<'_>>,
) -> Result<ExitCode> {
    // Heartbeats first (the last minute from the hub, then live), so that agents already
    // quiet are reported at once.
    let mut fleet = super::top::Fleet::default();
    let (mut hb, ps) = super::top::start(client, &mut fleet).await?;
    drop(ps);
    let mut live: Liveness = fleet.live;
    let report = |changes: Vec<Change>, live_out: &RefCell<Out<'_>>| {
        let now = now_ms();
        changes
            .iter()
            .all(|c| live_out.borrow_mut().made(&synthesized(c, now)))
    };
    if !report(live.check(now_ms()), out) {
        return Ok(ExitCode::SUCCESS);
    }
    let js = jetstream::new(client.clone());
    let events = super::replay(
        &js,
        EVENTS_STREAM,
        filter_subject(args.site.as_deref(), args.host.as_deref(), Kind::Events),
        since_ms.saturating_sub(super::CLOCK_MARGIN_MS),
        true,
        |m| out.borrow_mut().stored(m.payload, m.history),
    );
    tokio::pin!(events);
    let mut check = tokio::time::interval(CHECK_EVERY);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            r = &mut events => {
                r?;
                return Ok(ExitCode::SUCCESS);
            }
            Some(m) = hb.next() => {
                if let Some(h) = decode::<Heartbeat>(&m.payload)
                    && let Some(c) = live.heartbeat(h, now_ms())
                    && !report(vec![c], out)
                {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            _ = check.tick() => {
                if !report(live.check(now_ms()), out) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = sigterm.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, host: &str) -> FleetEvent {
        FleetEvent {
            site: "lab".into(),
            host: host.into(),
            boot: "b".into(),
            seq: 1,
            kind: kind.into(),
            at_ms: 1_000,
            summary: "s".into(),
            pid: None,
            comm: None,
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn selection() {
        let all = Select::default();
        assert!(all.wants(&ev("net", "a")));
        let s = Select {
            kinds: vec!["net".into(), "agent-down".into()],
            host: Some("pc01.example.org".into()),
            ..Select::default()
        };
        assert!(s.wants(&ev("net", "pc01.example.org")));
        assert!(s.wants(&ev("agent-down", "pc01_example_org")));
        assert!(!s.wants(&ev("device", "pc01.example.org")));
        assert!(!s.wants(&ev("net", "pc02")));
        let s = Select {
            site: Some("other".into()),
            ..Select::default()
        };
        assert!(!s.wants(&ev("net", "a")));
    }

    #[test]
    fn lines_and_made_events() {
        assert_eq!(
            event_line(&ev("net", "pc01")),
            "1970-01-01T00:00:01.000Z lab/pc01 net          s"
        );
        let down = synthesized(
            &Change::Down {
                site: "lab".into(),
                host: "pc01".into(),
                last_seen_ms: 1_000,
            },
            21_000,
        );
        assert_eq!(down.kind, "agent-down");
        assert_eq!(down.at_ms, 21_000);
        assert!(down.summary.contains("for 20s"), "{}", down.summary);
        assert_eq!(down.detail["last_heartbeat"], "1970-01-01T00:00:01.000Z");
        let up = synthesized(
            &Change::Up {
                site: "lab".into(),
                host: "pc01".into(),
                down_since_ms: 1_000,
            },
            61_000,
        );
        assert_eq!(up.kind, "agent-up");
        assert!(up.summary.contains("after 60s"));
    }
}
