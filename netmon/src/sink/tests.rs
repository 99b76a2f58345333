//! Sinks rendered from a recorded event stream through the real replay reader and aggregator.
use std::path::Path;

use super::{
    json::render_json,
    table::{TableOptions, render_table},
};
use crate::{
    aggregate::{Aggregator, Filter, Snapshot},
    source::replay::read_events,
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(name)
}

/// Replays the fixture, taking a snapshot at every tick.
fn snapshots(name: &str, filter: Filter) -> Vec<Snapshot> {
    let mut agg = Aggregator::new(filter);
    let mut out = Vec::new();
    for ev in read_events(&fixture(name)).unwrap() {
        let tick = matches!(ev, crate::event::Event::Tick { .. });
        agg.ingest(ev);
        if tick {
            let mut s = agg.snapshot_and_advance();
            s.backend = "replay".into();
            out.push(s);
        }
    }
    out
}

#[test]
fn ground_truth_of_the_two_process_fixture() {
    let s = snapshots("two_procs.jsonl", Filter::default());
    let last = &s[1];
    let curl = last.processes.iter().find(|p| p.pid == 4242).unwrap();
    assert_eq!(curl.rx_bytes, 3_145_728);
    assert_eq!(
        curl.rx_rate, 2_097_152.0,
        "2 MiB arrived in the second second"
    );
    assert_eq!(curl.tx_wire_bytes, 1200);
    assert!(curl.connections[0].closed);
    assert_eq!(
        curl.connections[0].remote_name.as_deref(),
        Some("big.example.test")
    );
    assert_eq!(last.processes[0].pid, 4242, "busiest first");
    let u: Vec<(&str, u64)> = last
        .unattributed
        .iter()
        .map(|u| (u.reason.as_str(), u.bytes))
        .collect();
    assert_eq!(u, [("no_socket", 80), ("unknown_owner", 52)]);
}

#[test]
fn table_snapshots() {
    let s = snapshots("two_procs.jsonl", Filter::default());
    for width in [120, 72] {
        let text = render_table(
            &s[1],
            &TableOptions {
                width,
                ..TableOptions::default()
            },
        );
        insta::assert_snapshot!(format!("table_two_procs_w{width}"), text);
    }
    let one = snapshots(
        "two_procs.jsonl",
        Filter {
            pids: vec![77],
            follow_children: false,
            ..Filter::default()
        },
    );
    insta::assert_snapshot!(
        "table_pid_77",
        render_table(&one[0], &TableOptions::default())
    );
}

#[test]
fn json_snapshot() {
    let s = snapshots("two_procs.jsonl", Filter::default());
    let line = render_json(&s[1]);
    assert!(!line.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    insta::assert_json_snapshot!("json_two_procs", v);
}
