//! Prometheus text exposition of a [`Snapshot`], computed at scrape time (like ebpf_exporter's
//! `Collect`): the exporter keeps no second set of counters.
//!
//! Series stay bounded: the `top_k` busiest processes (by cumulative bytes) keep their own
//! labels, the rest are summed under `comm="other"`, so totals always add up. Processes are
//! labelled by `comm`; `pid` only when asked for, since it churns.
use std::collections::BTreeMap;

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::aggregate::Snapshot;

#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub top_k: usize,
    pub pid_label: bool,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            top_k: 50,
            pid_label: false,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    tx_bytes: u64,
    rx_bytes: u64,
    tx_packets: u64,
    rx_packets: u64,
}

/// The `/metrics` body for one snapshot.
pub fn render_metrics(s: &Snapshot, opts: &MetricsOptions) -> Result<String, prometheus::Error> {
    let mut labels = vec!["comm"];
    if opts.pid_label {
        labels.push("pid");
    }
    let counter =
        |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name, help), labels);
    let tx = counter(
        "netmon_process_network_transmit_bytes_total",
        "Payload bytes the process sent (exact, what send returned), since netmon started",
        &labels,
    )?;
    let rx = counter(
        "netmon_process_network_receive_bytes_total",
        "Payload bytes the process received (exact, what recv returned), since netmon started",
        &labels,
    )?;
    let txp = counter(
        "netmon_process_network_transmit_packets_total",
        "IP packets sent on sockets the process owns",
        &labels,
    )?;
    let rxp = counter(
        "netmon_process_network_receive_packets_total",
        "IP packets received on sockets the process owns",
        &labels,
    )?;
    let unattributed = counter(
        "netmon_unattributed_bytes_total",
        "Bytes the kernel saw but netmon could not give to a process, by reason",
        &["reason"],
    )?;
    let lost = counter(
        "netmon_events_lost_total",
        "Kernel records lost, by where they were lost",
        &["source"],
    )?;
    let build = IntGaugeVec::new(
        Opts::new(
            "netmon_build_info",
            "netmon's version and payload backend; always 1",
        ),
        &["version", "backend"],
    )?;

    // Busiest first by cumulative bytes, so a process keeps its own series while it matters.
    let mut procs: Vec<_> = s.processes.iter().collect();
    procs.sort_by_key(|p| std::cmp::Reverse(p.tx_bytes + p.rx_bytes));
    let mut series: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
    for (i, p) in procs.iter().enumerate() {
        let key = if i < opts.top_k {
            let mut k = vec![p.comm.clone()];
            if opts.pid_label {
                k.push(p.pid.to_string());
            }
            k
        } else {
            let mut k = vec!["other".to_string()];
            if opts.pid_label {
                k.push(String::new());
            }
            k
        };
        let e = series.entry(key).or_default();
        e.tx_bytes += p.tx_bytes;
        e.rx_bytes += p.rx_bytes;
        e.tx_packets += p.tx_packets;
        e.rx_packets += p.rx_packets;
    }
    for (key, v) in &series {
        let l: Vec<&str> = key.iter().map(String::as_str).collect();
        tx.with_label_values(&l).inc_by(v.tx_bytes);
        rx.with_label_values(&l).inc_by(v.rx_bytes);
        txp.with_label_values(&l).inc_by(v.tx_packets);
        rxp.with_label_values(&l).inc_by(v.rx_packets);
    }
    for u in &s.unattributed {
        unattributed
            .with_label_values(&[u.reason.as_str()])
            .inc_by(u.bytes);
    }
    for l in &s.lost {
        lost.with_label_values(&[l.source.as_str()]).inc_by(l.count);
    }
    build
        .with_label_values(&[env!("CARGO_PKG_VERSION"), s.backend.as_str()])
        .set(1);

    let registry = Registry::new();
    for c in [tx, rx, txp, rxp, unattributed, lost] {
        registry.register(Box::new(c))?;
    }
    registry.register(Box::new(build))?;
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{LostRow, ProcessRow, UnattributedRow};

    fn proc(pid: u32, comm: &str, tx: u64, rx: u64) -> ProcessRow {
        ProcessRow {
            pid,
            comm: comm.into(),
            tx_bytes: tx,
            rx_bytes: rx,
            tx_packets: tx / 1000,
            rx_packets: rx / 1000,
            ..ProcessRow::default()
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            backend: "tp_btf".into(),
            processes: vec![
                proc(10, "curl", 1_000, 50_000),
                proc(11, "nginx", 90_000, 3_000),
                proc(12, "sshd", 400, 200),
                proc(13, "dig", 60, 300),
            ],
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

    fn value(text: &str, series: &str) -> u64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    }

    #[test]
    fn top_k_keeps_the_busiest_and_the_rest_add_up_in_other() {
        let text = render_metrics(
            &snapshot(),
            &MetricsOptions {
                top_k: 2,
                pid_label: false,
            },
        )
        .unwrap();
        let tx = "netmon_process_network_transmit_bytes_total";
        assert_eq!(value(&text, &format!("{tx}{{comm=\"nginx\"}}")), 90_000);
        assert_eq!(value(&text, &format!("{tx}{{comm=\"curl\"}}")), 1_000);
        assert_eq!(value(&text, &format!("{tx}{{comm=\"other\"}}")), 460);
        assert!(!text.contains("comm=\"sshd\""));
        let rx = "netmon_process_network_receive_bytes_total";
        assert_eq!(value(&text, &format!("{rx}{{comm=\"other\"}}")), 500);
        assert_eq!(
            value(
                &text,
                "netmon_unattributed_bytes_total{reason=\"no_socket\"}"
            ),
            120
        );
        assert_eq!(
            value(&text, "netmon_events_lost_total{source=\"ring_buffer\"}"),
            0
        );
        insta::assert_snapshot!("metrics_top2", text);
    }

    #[test]
    fn pid_label_is_opt_in() {
        let text = render_metrics(
            &snapshot(),
            &MetricsOptions {
                top_k: 50,
                pid_label: true,
            },
        )
        .unwrap();
        assert!(text.contains("comm=\"dig\",pid=\"13\""), "{text}");
        let plain = render_metrics(&snapshot(), &MetricsOptions::default()).unwrap();
        assert!(!plain.contains("pid="));
    }

    /// node_exporter's checkmetrics.sh, when promtool is installed.
    #[test]
    fn promtool_accepts_the_text() {
        let text = render_metrics(&snapshot(), &MetricsOptions::default()).unwrap();
        let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("skipping: promtool not installed");
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
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
