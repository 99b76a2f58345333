use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::*;
use crate::{
    aggregate::{ConnectionsOpened, LostRow, ProcessRow, UnattributedRow},
    event::TcpCounts,
};

fn proc(pid: u32, comm: &str, tx: u64, rx: u64) -> ProcessRow {
    ProcessRow {
        pid,
        comm: comm.into(),
        alive: true,
        tx_bytes: tx,
        rx_bytes: rx,
        tx_packets: tx / 1000,
        rx_packets: rx / 1000,
        ..ProcessRow::default()
    }
}

fn snapshot(processes: Vec<ProcessRow>) -> Snapshot {
    Snapshot {
        backend: "tp_btf".into(),
        processes,
        unattributed: vec![UnattributedRow {
            reason: "no_socket".into(),
            bytes: 120,
            packets: 2,
        }],
        lost: vec![LostRow {
            source: "ring_buffer".into(),
            count: 0,
        }],
        ..Snapshot::default()
    }
}

fn four() -> Vec<ProcessRow> {
    let mut nginx = proc(11, "nginx", 90_000, 3_000);
    nginx.unit = "nginx.service".into();
    nginx.exe = "/usr/sbin/nginx".into();
    nginx.netns = 4026531840;
    nginx.opened = ConnectionsOpened { tcp: 12, udp: 0 };
    nginx.tcp = TcpCounts {
        retransmits: 3,
        resets_sent: 1,
        resets_received: 2,
        rtt_count: 4,
        rtt_sum_us: 50 + 100 + 3000 + 2_000_000,
        // 50 µs → bucket 6 (≤64), 100 → 7, 3000 → 12, 2 s → 21.
        rtt_buckets: {
            let mut b = vec![0; netmon_common::RTT_BUCKETS];
            b[6] = 1;
            b[7] = 1;
            b[12] = 1;
            b[21] = 1;
            b
        },
        rto_timeouts: 2,
        rto_backoff_max: 2,
        // 30 µs (≤32, bucket 5) and 1.2 s, a SYN retransmitted once (≤2.097 s, bucket 21).
        handshake_count: 2,
        handshake_sum_us: 30 + 1_200_000,
        handshake_buckets: {
            let mut b = vec![0; 22];
            b[5] = 1;
            b[21] = 1;
            b
        },
        closes_local: 5,
        closes_remote: 6,
        zero_windows_sent: 7,
        zero_windows_received: 1,
    };
    vec![
        proc(10, "curl", 1_000, 50_000),
        nginx,
        proc(12, "sshd", 400, 200),
        proc(13, "dig", 60, 300),
    ]
}

fn opts(top_k: usize, pid_label: bool) -> MetricsOptions {
    MetricsOptions {
        top_k,
        pid_label,
        ttl: Duration::from_secs(300),
    }
}

fn render(state: &mut MetricsState, s: &Snapshot, at: Instant) -> String {
    let folded = state.update(s, at);
    render_metrics(&folded, s).unwrap()
}

/// Every sample line as (series with labels, value).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, series: &str) -> f64 {
    *samples(text)
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

const TX: &str = "netmon_process_network_transmit_bytes_total";

#[test]
fn top_k_keeps_the_busiest_and_the_rest_add_up_in_other() {
    let mut st = MetricsState::new(opts(2, false), vec![]);
    let text = render(&mut st, &snapshot(four()), Instant::now());
    let id = |c: &str, u: &str| format!("{{comm=\"{c}\",unit=\"{u}\",container=\"\"}}");
    assert_eq!(
        value(&text, &format!("{TX}{}", id("nginx", "nginx.service"))),
        90_000.0
    );
    assert_eq!(value(&text, &format!("{TX}{}", id("curl", ""))), 1_000.0);
    assert_eq!(value(&text, &format!("{TX}{}", id("other", ""))), 460.0);
    assert!(!text.contains("comm=\"sshd\""));
    let rx = "netmon_process_network_receive_bytes_total";
    assert_eq!(value(&text, &format!("{rx}{}", id("other", ""))), 500.0);
    assert_eq!(
        value(
            &text,
            "netmon_unattributed_bytes_total{reason=\"no_socket\"}"
        ),
        120.0
    );
    assert_eq!(value(&text, "netmon_other_processes"), 2.0);
    assert_eq!(value(&text, "netmon_tracked_processes"), 4.0);
    insta::assert_snapshot!("metrics_top2", text);
}

#[test]
fn tcp_counters_and_rtt_histogram() {
    let mut st = MetricsState::new(opts(50, false), vec![]);
    let text = render(&mut st, &snapshot(four()), Instant::now());
    let l = "comm=\"nginx\",unit=\"nginx.service\",container=\"\"";
    assert_eq!(
        value(
            &text,
            &format!("netmon_process_tcp_retransmits_total{{{l}}}")
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            &format!("netmon_process_tcp_resets_total{{{l},direction=\"received\"}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            &format!("netmon_process_connections_opened_total{{{l},proto=\"tcp\"}}")
        ),
        12.0
    );
    let h = "netmon_process_tcp_rtt_seconds";
    // Cumulative: ≤64 µs holds the 50 µs sample, ≤256 µs adds 100 µs, ≤4.096 ms adds 3 ms,
    // ≤2.097 s adds the 2 s one.
    for (le, n) in [
        ("0.000064", 1.0),
        ("0.000256", 2.0),
        ("0.001024", 2.0),
        ("0.004096", 3.0),
        ("1.048576", 3.0),
        ("4.194304", 4.0),
        ("+Inf", 4.0),
    ] {
        assert_eq!(
            value(&text, &format!("{h}_bucket{{{l},le=\"{le}\"}}")),
            n,
            "le={le}"
        );
    }
    assert_eq!(value(&text, &format!("{h}_count{{{l}}}")), 4.0);
    assert_eq!(value(&text, &format!("{h}_sum{{{l}}}")), 2.00315);
    assert!(text.contains(&format!(
        "netmon_process_info{{{l},exe=\"/usr/sbin/nginx\",netns=\"4026531840\"}} 1"
    )));
    let h = "netmon_process_tcp_handshake_seconds";
    for (le, n) in [
        ("0.000064", 1.0),
        ("1.048576", 1.0),
        ("4.194304", 2.0),
        ("+Inf", 2.0),
    ] {
        assert_eq!(
            value(&text, &format!("{h}_bucket{{{l},le=\"{le}\"}}")),
            n,
            "handshake le={le}"
        );
    }
    assert_eq!(value(&text, &format!("{h}_count{{{l}}}")), 2.0);
    assert_eq!(value(&text, &format!("{h}_sum{{{l}}}")), 1.20003);
    for (m, label, n) in [
        (
            "netmon_process_tcp_closes_total",
            "initiator=\"local\"",
            5.0,
        ),
        (
            "netmon_process_tcp_closes_total",
            "initiator=\"remote\"",
            6.0,
        ),
        (
            "netmon_process_tcp_zero_windows_total",
            "direction=\"sent\"",
            7.0,
        ),
        (
            "netmon_process_tcp_zero_windows_total",
            "direction=\"received\"",
            1.0,
        ),
    ] {
        assert_eq!(
            value(&text, &format!("{m}{{{l},{label}}}")),
            n,
            "{m} {label}"
        );
    }
}

#[test]
fn watched_networks_get_a_series_each() {
    let mut rows = four();
    rows[0].networks = BTreeMap::from([("intranet".to_string(), 2), ("lab".to_string(), 0)]);
    let mut st = MetricsState::new(opts(50, false), vec!["lab".into(), "intranet".into()]);
    let text = render(&mut st, &snapshot(rows), Instant::now());
    let m = "netmon_process_watched_network_connections_total";
    let l = "comm=\"curl\",unit=\"\",container=\"\"";
    assert_eq!(
        value(&text, &format!("{m}{{{l},network=\"intranet\"}}")),
        2.0
    );
    assert_eq!(value(&text, &format!("{m}{{{l},network=\"lab\"}}")), 0.0);
    let mut none = MetricsState::new(opts(50, false), vec![]);
    assert!(!render(&mut none, &snapshot(four()), Instant::now()).contains(m));
}

#[test]
fn pid_label_is_opt_in() {
    let mut st = MetricsState::new(opts(50, true), vec![]);
    let text = render(&mut st, &snapshot(four()), Instant::now());
    assert!(
        text.contains("comm=\"dig\",unit=\"\",container=\"\",pid=\"13\""),
        "{text}"
    );
    assert!(text.contains("comm=\"other\",unit=\"\",container=\"\",pid=\"\""));
    let mut plain = MetricsState::new(opts(50, false), vec![]);
    assert!(!render(&mut plain, &snapshot(four()), Instant::now()).contains("pid="));
}

#[test]
fn a_process_named_other_does_not_collide_with_the_fold() {
    let mut st = MetricsState::new(opts(50, false), vec![]);
    let text = render(
        &mut st,
        &snapshot(vec![proc(5, "other", 10, 0)]),
        Instant::now(),
    );
    assert_eq!(
        value(
            &text,
            &format!("{TX}{{comm=\"other_process\",unit=\"\",container=\"\"}}")
        ),
        10.0
    );
    assert_eq!(
        value(
            &text,
            &format!("{TX}{{comm=\"other\",unit=\"\",container=\"\"}}")
        ),
        0.0
    );
}

/// Processes come and go, grow at different speeds and trade places in the top-K: no series
/// ever goes down while it exists, "other" never goes down, and all series add up to every byte
/// ever moved.
#[test]
fn series_stay_monotonic_and_add_up_through_churn() {
    let mut st = MetricsState::new(
        MetricsOptions {
            top_k: 3,
            pid_label: true,
            ttl: Duration::from_secs(5),
        },
        vec![],
    );
    let t0 = Instant::now();
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    let mut ground_truth: BTreeMap<u32, u64> = BTreeMap::new();
    for step in 0u64..200 {
        // Each pid lives for a while, its rate depends on the pid, then it exits and is
        // dropped from snapshots a few steps later (as the aggregator forgets it).
        let mut rows = Vec::new();
        for pid in 1u32..=12 {
            let born = (pid as u64) * 7 % 40;
            let dies = born + 30 + (pid as u64 * 13) % 50;
            if step < born || step > dies + 3 {
                continue;
            }
            let live_steps = step.min(dies) - born;
            let rate = if (step / 25) % 2 == (pid as u64) % 2 {
                pid as u64 * 100
            } else {
                1
            };
            let total =
                ground_truth.get(&pid).copied().unwrap_or(0) + if step <= dies { rate } else { 0 };
            let _ = live_steps;
            ground_truth.insert(pid, total);
            let mut row = proc(pid, &format!("p{}", pid % 5), total, 0);
            row.alive = step <= dies;
            rows.push(row);
        }
        let text = render(&mut st, &snapshot(rows), t0 + Duration::from_secs(step));
        let now: BTreeMap<String, f64> = samples(&text)
            .into_iter()
            .filter(|(k, _)| k.starts_with(TX))
            .collect();
        let labelled = now.keys().filter(|k| !k.contains("comm=\"other\"")).count();
        assert!(labelled <= 3, "step {step}: {labelled} labelled series");
        for (k, v) in &now {
            if let Some(prev) = last.get(k) {
                assert!(v >= prev, "step {step}: {k} went from {prev} to {v}");
            }
        }
        let sum: f64 = now.values().sum();
        let truth: u64 = ground_truth.values().sum();
        assert_eq!(
            sum, truth as f64,
            "step {step}: series add up to every byte"
        );
        // A series that disappears may come back only from zero.
        last = now;
    }
}

#[test]
fn exited_processes_expire_after_the_ttl_and_fold_into_other() {
    let mut st = MetricsState::new(
        MetricsOptions {
            top_k: 5,
            pid_label: false,
            ttl: Duration::from_secs(10),
        },
        vec![],
    );
    let t0 = Instant::now();
    let mut dead = proc(20, "job", 700, 0);
    dead.alive = false;
    let at = |s| t0 + Duration::from_secs(s);
    let text = render(&mut st, &snapshot(vec![dead.clone()]), at(0));
    let job = format!("{TX}{{comm=\"job\",unit=\"\",container=\"\"}}");
    let other = format!("{TX}{{comm=\"other\",unit=\"\",container=\"\"}}");
    assert_eq!(value(&text, &job), 700.0);
    let text = render(&mut st, &snapshot(vec![dead.clone()]), at(9));
    assert_eq!(value(&text, &job), 700.0);
    let text = render(&mut st, &snapshot(vec![]), at(11));
    assert!(!text.contains("comm=\"job\""), "{text}");
    assert_eq!(value(&text, &other), 700.0);
    // The same name coming back starts a new series from its new bytes only.
    let text = render(&mut st, &snapshot(vec![proc(21, "job", 50, 0)]), at(12));
    assert_eq!(value(&text, &job), 50.0);
    assert_eq!(value(&text, &other), 700.0);
}

/// Host events seen, per kind: every kind from 0 once the recorder runs (so alerts on
/// `increase()` see the first event), none without history; removed events by age.
#[test]
fn host_events_per_kind_from_the_history_status() {
    let mut st = MetricsState::new(opts(2, false), Vec::new());
    let plain = render(&mut st, &snapshot(four()), Instant::now());
    assert!(!plain.contains("netmon_events_total"), "{plain}");

    let mut snap = snapshot(four());
    let mut h = crate::history::HistoryStatus::default();
    h.events.insert("net".into(), 3);
    h.removed.events_by_age = 5;
    snap.history = Some(h);
    let text = render(&mut st, &snap, Instant::now());
    assert_eq!(value(&text, r#"netmon_events_total{kind="net"}"#), 3.0);
    for k in ["device", "listen", "contact"] {
        assert_eq!(
            value(&text, &format!(r#"netmon_events_total{{kind="{k}"}}"#)),
            0.0
        );
    }
    assert!(
        text.contains("# TYPE netmon_events_total counter"),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"netmon_history_records_removed_total{table="events",reason="age"}"#
        ),
        5.0
    );
}

/// node_exporter's checkmetrics.sh: promtool (installed by scripts/setup.sh) lints the text.
#[test]
fn promtool_accepts_the_text() {
    let mut st = MetricsState::new(opts(2, true), vec!["intranet".into()]);
    let text = render(&mut st, &snapshot(four()), Instant::now());
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("NETMON_SKIP_PROMTOOL").is_some(),
            "promtool not found: run scripts/setup.sh (or set NETMON_SKIP_PROMTOOL=1)"
        );
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}
