//! Sinks rendered from a recorded event stream through the real replay reader and aggregator.
use std::path::Path;

use super::{
    json::render_json,
    table::{TableOptions, render_table},
};
use crate::{
    aggregate::{Aggregator, ConnectionRow, Filter, ProcessRow, Snapshot},
    source::replay::read_events,
    users::UserNames,
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(name)
}

/// Replays the fixture, taking a snapshot at every tick; users are named from the fixture
/// passwd file (uids 0, 101 and 1000), not the machine's.
fn snapshots(name: &str, filter: Filter) -> Vec<Snapshot> {
    let passwd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/passwd");
    let mut agg = Aggregator::new(filter).with_user_names(UserNames::from_file(passwd));
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
    let who: Vec<(u32, u32, Option<u32>, &str)> = last
        .processes
        .iter()
        .map(|p| (p.pid, p.ppid, p.uid, p.user.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            (4242, 1, Some(1000), "alice"),
            (77, 1, Some(101), "systemd-resolve")
        ]
    );
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

/// A peerless UDP socket lists its remotes, busiest first, each with its own bytes and rate;
/// the table shows five beneath the socket and counts the rest.
#[test]
fn a_udp_server_lists_its_remotes() {
    let s = snapshots("udp_server.jsonl", Filter::default());
    let named = &s[1].processes[0];
    let peers = &named.connections[0].peers;
    assert_eq!(peers.len(), 7);
    // Client 7 alone moved bytes in the last second: it leads; the others by bytes.
    assert_eq!(peers[0].remote.to_string(), "10.0.1.7:40007");
    assert_eq!((peers[0].tx_bytes, peers[0].rx_bytes), (2100, 1700));
    assert_eq!(peers[0].rx_rate, 1000.0);
    assert_eq!(peers[1].remote.to_string(), "10.0.1.6:40006");
    assert_eq!((peers[1].tx_bytes, peers[1].rx_bytes), (1800, 600));
    let sum: u64 = peers.iter().map(|p| p.rx_bytes).sum();
    assert_eq!(sum, named.rx_bytes, "every received byte is under a remote");
    let text = render_table(&s[1], &TableOptions::default());
    insta::assert_snapshot!("table_udp_server", text);
    let v: serde_json::Value = serde_json::from_str(&render_json(&s[1])).unwrap();
    assert_eq!(
        v["processes"][0]["connections"][0]["peers"][0]["remote"],
        "10.0.1.7:40007"
    );
}

/// A fake snapshot, busiest first: `curl` (pid 1300) under `bash` (1200) under `sshd` (900),
/// `wget` (1301) a sibling of curl, `dnsmasq` (500) whose parent (77) has no row, and `bash`
/// with a connection of its own.
pub(crate) fn tree_snapshot() -> Snapshot {
    let row = |pid: u32, ppid: u32, comm: &str, user: &str, rx: u64| ProcessRow {
        pid,
        ppid,
        uid: Some(1000),
        user: user.into(),
        comm: comm.into(),
        cmdline: format!("{comm} --fake"),
        alive: true,
        rx_bytes: rx,
        rx_rate: rx as f64,
        ..ProcessRow::default()
    };
    let mut bash = row(1200, 900, "bash", "alice", 300);
    bash.connections.push(ConnectionRow {
        cookie: 7,
        proto: crate::event::Proto::Tcp,
        local: "127.0.0.1:5000".parse().ok(),
        remote: "127.0.0.1:6000".parse().ok(),
        state: Some("ESTABLISHED"),
        rx_bytes: 300,
        rx_rate: 300.0,
        owner: true,
        ..ConnectionRow::default()
    });
    let processes = vec![
        row(1300, 1200, "curl", "alice", 5000),
        row(500, 77, "dnsmasq", "nobody", 4000),
        row(1301, 1200, "wget", "alice", 2000),
        bash,
        row(900, 1, "sshd", "root", 100),
    ];
    Snapshot {
        interval_ms: 1000,
        backend: "fake".into(),
        totals: crate::aggregate::Totals {
            rx_bytes: 11_400,
            rx_rate: 11_400.0,
            ..Default::default()
        },
        processes,
        ..Snapshot::default()
    }
}

#[test]
fn tree_table_groups_children_under_their_parent() {
    let text = render_table(
        &tree_snapshot(),
        &TableOptions {
            tree: true,
            ..TableOptions::default()
        },
    );
    // The pid and the COMM column (15 characters from the 26th) of each process line.
    let rows: Vec<String> = text
        .lines()
        .filter(|l| l.contains("--fake"))
        .map(|l| {
            let pid = l.split_whitespace().next().unwrap();
            let comm: String = l.chars().skip(25).take(15).collect();
            format!("{pid} {}", comm.trim_end())
        })
        .collect();
    assert_eq!(
        rows,
        [
            "500 dnsmasq",
            "900 sshd",
            "1200 └─ bash",
            "1300   └─ curl",
            "1301   └─ wget",
        ],
        "{text}"
    );
    insta::assert_snapshot!("table_tree_w120", text);
}
