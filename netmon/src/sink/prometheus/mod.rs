//! Prometheus text exposition: per-process series folded by [`MetricsState`] (bounded, monotonic)
//! plus netmon's own counters from the [`Snapshot`]. Families are built directly (like
//! ebpf_exporter's const metrics) since the values already are cumulative totals.
//!
//! Processes are labelled by identity (`comm`, systemd `unit`, `container`); `pid` only when
//! asked for, since it churns.
mod fold;

use prometheus::{
    Encoder, TextEncoder,
    proto::{self, MetricFamily, MetricType},
};

pub use self::fold::{Folded, GroupKey, MetricsOptions, MetricsState, Series, Values};
use self::fold::{
    HANDSHAKE_BUCKET0, NETWORK0, OPENED_TCP, OPENED_UDP, RTT_BUCKET0, RX_BYTES, RX_PACKETS, TCP0,
    TX_BYTES, TX_PACKETS, tcp_index,
};
use crate::{
    aggregate::Snapshot,
    tcp_counts::{Exported, TCP_COUNTERS},
};

/// RTT and handshake histogram bounds exported, as bucket indexes: `2^i` µs for every other power of two
/// from 64 µs to 4.2 s (finer buckets exist in the kernel; ten keep the series count sane).
const RTT_EXPORTED: [usize; 9] = [6, 8, 10, 12, 14, 16, 18, 20, 22];

fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut l = proto::LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn counter(labels: Vec<proto::LabelPair>, v: u64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(v as f64);
    let mut m = proto::Metric::default();
    m.set_label(labels);
    m.set_counter(c);
    m
}

fn gauge(labels: Vec<proto::LabelPair>, v: f64) -> proto::Metric {
    let mut g = proto::Gauge::default();
    g.set_value(v);
    let mut m = proto::Metric::default();
    m.set_label(labels);
    m.set_gauge(g);
    m
}

/// Identity labels of a series; `pid` only when the series carries one ("" for other).
fn identity(k: &GroupKey) -> Vec<proto::LabelPair> {
    let mut l = vec![
        label("comm", &k.comm),
        label("unit", &k.unit),
        label("container", &k.container),
    ];
    if let Some(pid) = k.pid {
        let text = if pid == 0 {
            String::new()
        } else {
            pid.to_string()
        };
        l.push(label("pid", &text));
    }
    l
}

fn with(mut l: Vec<proto::LabelPair>, name: &str, value: &str) -> Vec<proto::LabelPair> {
    l.push(label(name, value));
    l
}

const OPENED: &str = "netmon_process_connections_opened_total";
const OPENED_HELP: &str =
    "Sockets the process opened: TCP with a peer (connected or accepted), UDP of any kind";

/// The per-process counters that are not TCP's, with where each lives in [`Values`].
const PROCESS_COUNTERS: [(usize, Exported); 6] = [
    (
        TX_BYTES,
        Exported {
            family: "netmon_process_network_transmit_bytes_total",
            help: "Payload bytes the process sent (exact, what send returned), since netmon started",
            label: None,
        },
    ),
    (
        RX_BYTES,
        Exported {
            family: "netmon_process_network_receive_bytes_total",
            help: "Payload bytes the process received (exact, what recv returned), since netmon started",
            label: None,
        },
    ),
    (
        TX_PACKETS,
        Exported {
            family: "netmon_process_network_transmit_packets_total",
            help: "IP packets sent on sockets the process owns",
            label: None,
        },
    ),
    (
        RX_PACKETS,
        Exported {
            family: "netmon_process_network_receive_packets_total",
            help: "IP packets received on sockets the process owns",
            label: None,
        },
    ),
    (
        OPENED_TCP,
        Exported {
            family: OPENED,
            help: OPENED_HELP,
            label: Some(("proto", "tcp")),
        },
    ),
    (
        OPENED_UDP,
        Exported {
            family: OPENED,
            help: OPENED_HELP,
            label: Some(("proto", "udp")),
        },
    ),
];

/// Every exported per-process counter family, in order of first appearance: its name, help,
/// and each of its values as (extra label, index in [`Values`]).
type CounterFamily = (
    &'static str,
    &'static str,
    Vec<(Option<(&'static str, &'static str)>, usize)>,
);

fn counter_families() -> Vec<CounterFamily> {
    let tcp = TCP_COUNTERS
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((TCP0 + i, t.exported?)));
    let mut out: Vec<CounterFamily> = Vec::new();
    for (idx, e) in PROCESS_COUNTERS.into_iter().chain(tcp) {
        match out.iter_mut().find(|(name, _, _)| *name == e.family) {
            Some((_, _, values)) => values.push((e.label, idx)),
            None => out.push((e.family, e.help, vec![(e.label, idx)])),
        }
    }
    out
}

/// Where one log2-microsecond histogram lives in [`Values`].
struct HistogramAt {
    count: usize,
    sum_us: usize,
    bucket0: usize,
}

fn rtt() -> HistogramAt {
    HistogramAt {
        count: tcp_index("rtt_count"),
        sum_us: tcp_index("rtt_sum_us"),
        bucket0: RTT_BUCKET0,
    }
}

fn handshake() -> HistogramAt {
    HistogramAt {
        count: tcp_index("handshake_count"),
        sum_us: tcp_index("handshake_sum_us"),
        bucket0: HANDSHAKE_BUCKET0,
    }
}

fn histogram(s: &Series, at: &HistogramAt) -> proto::Metric {
    let mut buckets = Vec::new();
    let mut cumulative = 0;
    let mut next = 0;
    for &bound in &RTT_EXPORTED {
        while next <= bound {
            cumulative += s.values.get(at.bucket0 + next);
            next += 1;
        }
        let mut b = proto::Bucket::default();
        b.set_cumulative_count(cumulative);
        b.set_upper_bound((1u64 << bound) as f64 / 1e6);
        buckets.push(b);
    }
    let mut h = proto::Histogram::default();
    h.set_sample_count(s.values.get(at.count));
    h.set_sample_sum(s.values.get(at.sum_us) as f64 / 1e6);
    h.set_bucket(buckets);
    let mut m = proto::Metric::default();
    m.set_label(identity(&s.key));
    m.set_histogram(h);
    m
}

/// The `/metrics` body: the folded per-process series plus netmon's own counters.
pub fn render_metrics(f: &Folded, s: &Snapshot) -> Result<String, prometheus::Error> {
    let (rtt, handshake) = (rtt(), handshake());
    let mut fams = Vec::new();
    for (name, help, values) in counter_families() {
        let metrics = f
            .series
            .iter()
            .flat_map(|sr| {
                let id = identity(&sr.key);
                values.iter().map(move |&(label, idx)| {
                    let labels = match label {
                        Some((key, value)) => with(id.clone(), key, value),
                        None => id.clone(),
                    };
                    counter(labels, sr.values.get(idx))
                })
            })
            .collect();
        fams.push(family(name, help, MetricType::COUNTER, metrics));
    }
    let mut networks = Vec::new();
    for sr in &f.series {
        let id = identity(&sr.key);
        for (i, n) in f.networks.iter().enumerate() {
            networks.push(counter(
                with(id.clone(), "network", n),
                sr.values.get(NETWORK0 + i),
            ));
        }
    }
    if !f.networks.is_empty() {
        fams.push(family(
            "netmon_process_watched_network_connections_total",
            "Connections the process opened to a --watch-network address range",
            MetricType::COUNTER,
            networks,
        ));
    }
    fams.push(family(
        "netmon_process_tcp_rtt_seconds",
        "Smoothed TCP round-trip time, one sample per RTT measurement (connections established while netmon runs)",
        MetricType::HISTOGRAM,
        f.series.iter().map(|sr| histogram(sr, &rtt)).collect(),
    ));
    fams.push(family(
        "netmon_process_tcp_handshake_seconds",
        "TCP handshake time, one sample per connection established while netmon runs: SYN to SYN-ACK where the process connected, SYN-ACK to ACK where it accepted",
        MetricType::HISTOGRAM,
        f.series.iter().map(|sr| histogram(sr, &handshake)).collect(),
    ));
    fams.push(family(
        "netmon_process_info",
        "Identity of the processes behind each series (for joins); always 1",
        MetricType::GAUGE,
        f.series
            .iter()
            .filter(|sr| sr.key.comm != "other" || !sr.exe.is_empty())
            .map(|sr| {
                let l = with(identity(&sr.key), "exe", &sr.exe);
                let ns = if sr.netns == 0 {
                    String::new()
                } else {
                    sr.netns.to_string()
                };
                gauge(with(l, "netns", &ns), 1.0)
            })
            .collect(),
    ));
    fams.push(family(
        "netmon_unattributed_bytes_total",
        "Bytes the kernel saw but netmon could not give to a process, by reason",
        MetricType::COUNTER,
        s.unattributed
            .iter()
            .map(|u| counter(vec![label("reason", &u.reason)], u.bytes))
            .collect(),
    ));
    fams.push(family(
        "netmon_events_lost_total",
        "Kernel records lost, by where they were lost",
        MetricType::COUNTER,
        s.lost
            .iter()
            .map(|l| counter(vec![label("source", &l.source)], l.count))
            .collect(),
    ));
    fams.push(family(
        "netmon_tcp_resets_without_socket_total",
        "TCP resets the kernel sent for segments that matched no socket (closed ports, scans)",
        MetricType::COUNTER,
        vec![counter(Vec::new(), s.tcp_resets_without_socket)],
    ));
    fams.push(family(
        "netmon_tracked_processes",
        "Processes netmon currently has a row for",
        MetricType::GAUGE,
        vec![gauge(Vec::new(), f.tracked_processes as f64)],
    ));
    fams.push(family(
        "netmon_other_processes",
        "Processes whose traffic is summed under comm=\"other\" (beyond --metrics-top-k)",
        MetricType::GAUGE,
        vec![gauge(Vec::new(), f.other_processes as f64)],
    ));
    if let Some(h) = &s.history {
        history_families(&mut fams, h);
    }
    fams.push(family(
        "netmon_build_info",
        "netmon's version and payload backend; always 1",
        MetricType::GAUGE,
        vec![gauge(
            vec![
                label("version", env!("CARGO_PKG_VERSION")),
                label("backend", &s.backend),
            ],
            1.0,
        )],
    ));
    fams.retain(|f| !f.get_metric().is_empty());
    let mut out = Vec::new();
    TextEncoder::new().encode(&fams, &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The history recorder's counts: what it wrote, dropped (by reason) and removed, the host
/// events it was handed (by kind), and how big and how old the store is.
fn history_families(fams: &mut Vec<MetricFamily>, h: &crate::history::HistoryStatus) {
    fams.push(family(
        "netmon_history_records_written_total",
        "Flow records committed to the history store",
        MetricType::COUNTER,
        vec![counter(Vec::new(), h.written)],
    ));
    fams.push(family(
        "netmon_history_records_dropped_total",
        "Flow records and host events not stored, by reason (writer_behind, store_error, store_unavailable, not_taken)",
        MetricType::COUNTER,
        crate::history::recorder::all_drop_reasons(h)
            .iter()
            .map(|(r, &n)| counter(vec![label("reason", r)], n))
            .collect(),
    ));
    let r = &h.removed;
    fams.push(family(
        "netmon_history_records_removed_total",
        "Rows retention removed from the history store, by table and reason (age or size)",
        MetricType::COUNTER,
        [
            ("flows", "age", r.flows_by_age),
            ("flows", "size", r.flows_by_size),
            ("rollups", "age", r.rollups_by_age),
            ("rollups", "size", r.rollups_by_size),
            ("events", "age", r.events_by_age),
        ]
        .iter()
        .map(|&(t, why, n)| counter(vec![label("table", t), label("reason", why)], n))
        .collect(),
    ));
    fams.push(family(
        "netmon_events_total",
        "Host events seen (recorded in the history store or not), by kind (device, net, listen, contact)",
        MetricType::COUNTER,
        crate::history::recorder::all_event_kinds(h)
            .iter()
            .map(|(k, &n)| counter(vec![label("kind", k)], n))
            .collect(),
    ));
    fams.push(family(
        "netmon_event_source_failures_total",
        "Host event sources (device, net) that could not start or stopped",
        MetricType::COUNTER,
        vec![counter(Vec::new(), h.event_source_failures)],
    ));
    fams.push(family(
        "netmon_history_database_bytes",
        "Size of the history database file",
        MetricType::GAUGE,
        vec![gauge(Vec::new(), h.db_bytes as f64)],
    ));
    fams.push(family(
        "netmon_history_oldest_record_age_seconds",
        "Age of the oldest record the history store keeps",
        MetricType::GAUGE,
        h.oldest_age_secs
            .map(|a| gauge(Vec::new(), a))
            .into_iter()
            .collect(),
    ));
    fams.push(family(
        "netmon_history_failing",
        "1 while the history store cannot be written (records are dropped and counted)",
        MetricType::GAUGE,
        vec![gauge(Vec::new(), f64::from(u8::from(h.failing.is_some())))],
    ));
}

#[cfg(test)]
mod tests;
