//! Every tab drawn into ratatui's `TestBackend` from the procnet fixture trees and a fake
//! aggregator snapshot; key handling as tables; filter, sort and the own-socket toggle on rows.
#![cfg(target_endian = "little")]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend, buffer::Buffer};

use super::data::{Header, TuiData};
use super::history::{HistoryChart, HistorySource, HistoryView, Series};
use super::render::draw;
use super::state::{Action, Mode, Sort, State, Tab};
use super::tabs::build;
use super::view::Body;
use crate::aggregate::{ConnectionRow, ProcessRow, Snapshot};
use crate::event::Proto;
use crate::history::{Bucket, FlowRecord};
use crate::procnet::counters::Value;
use crate::procnet::{NetRoot, NetSnapshot, delta};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/procnet")
        .join(name)
}

/// Two of the fixture's sockets are the watched process's: the client of 127.0.0.1:40001
/// (32967) and the UDP socket on :40003 (32972). The rest are its namespace's.
const OWN: [u64; 2] = [32967, 32972];

fn capture(dir: &str, at_ms: u64) -> NetSnapshot {
    let root = NetRoot::new(fixture(dir), Some(fixture(&format!("{dir}/sys"))));
    NetSnapshot::capture(&root, &HashSet::from(OWN), at_ms).unwrap()
}

/// The live fixture as the previous interval, and one second later with known traffic added:
/// lo +4096 B received / +1024 B sent, Tcp InSegs +10, IcmpMsg InType3 +1, cpu0 processed +7.
fn live_pair() -> (NetSnapshot, NetSnapshot) {
    let prev = capture("live", 1_000);
    let mut cur = capture("live", 2_000);
    if let Some(t) = cur.interfaces.get().cloned() {
        let mut t = t;
        let lo = t.rows.iter_mut().find(|i| i.name == "lo").unwrap();
        lo.rx.bytes += 4096;
        lo.tx.bytes += 1024;
        cur.interfaces = crate::procnet::Availability::Available(t);
    }
    if let crate::procnet::Availability::Available(snmp) = &mut cur.snmp {
        for s in &mut snmp.sections {
            for (name, v) in &mut s.counters {
                let bump = match (s.name.as_str(), name.as_str()) {
                    ("Tcp", "InSegs") => 10,
                    ("IcmpMsg", "InType3") => 1,
                    _ => 0,
                };
                if let Value::Counter(c) = v {
                    *c += bump;
                }
            }
        }
    }
    if let crate::procnet::Availability::Available(t) = &mut cur.softnet {
        t.rows[0].processed += 7;
    }
    (prev, cur)
}

fn conn(cookie: u64, local: &str, remote: &str, tx: u64, rx: u64) -> ConnectionRow {
    ConnectionRow {
        cookie,
        proto: Proto::Tcp,
        local: local.parse().ok(),
        remote: remote.parse().ok(),
        state: Some("ESTABLISHED"),
        tx_bytes: tx,
        rx_bytes: rx,
        tx_rate: tx as f64 / 2.0,
        rx_rate: rx as f64 / 2.0,
        tx_wire_bytes: tx + 52 * 3,
        rx_wire_bytes: rx + 52 * 4,
        tx_packets: 3,
        rx_packets: 4,
        owner: true,
        ..ConnectionRow::default()
    }
}

/// What the aggregator would say about the fixture's client: 1000 B sent on 32967, a second
/// connection (32970) that received 3 MiB.
fn procs() -> Snapshot {
    let connections = vec![
        conn(
            901,
            "127.0.0.1:34130",
            "127.0.0.1:40002",
            0,
            3 * 1024 * 1024,
        ),
        conn(900, "127.0.0.1:35542", "127.0.0.1:40001", 1000, 0),
    ];
    let mut p = ProcessRow {
        pid: 4242,
        ppid: 4000,
        uid: Some(1000),
        user: "alice".into(),
        comm: "client".into(),
        cmdline: "client --fixture".into(),
        alive: true,
        ..ProcessRow::default()
    };
    for c in &connections {
        p.tx_bytes += c.tx_bytes;
        p.rx_bytes += c.rx_bytes;
        p.tx_rate += c.tx_rate;
        p.rx_rate += c.rx_rate;
        p.tx_wire_bytes += c.tx_wire_bytes;
        p.rx_wire_bytes += c.rx_wire_bytes;
    }
    p.connections = connections;
    Snapshot {
        interval_ms: 2000,
        backend: "tp_btf".into(),
        processes: vec![p],
        ..Snapshot::default()
    }
}

fn data() -> TuiData {
    let (prev, cur) = live_pair();
    TuiData {
        header: Header {
            pids: vec![4242],
            comm: "client".into(),
            backend: "tp_btf".into(),
            namespace: "/proc/4242/net".into(),
        },
        net_delta: Some(delta(&prev, &cur)),
        net: Some(cur),
        net_error: None,
        procs: procs(),
        cookie_inodes: HashMap::from([(900, 32967), (901, 32970)]),
        exited: false,
        tree: false,
        hosts: crate::hosts::tests::sample_rates(),
        history: sample_history(),
    }
}

/// Two processes over an hour ending at minute `U`: curl sent 60 B/s for the last ten
/// minutes and received a 600 KiB burst 30 minutes before; sshd 1 KiB/s both ways from 50
/// to 41 minutes before.
fn sample_history() -> HistoryView {
    const U: i64 = 1_764_960_000_000;
    let buckets = |f: &dyn Fn(i64) -> (u64, u64)| -> Vec<Bucket> {
        (0..60)
            .map(|i| {
                let (tx, rx) = f(60 - i);
                Bucket {
                    start_ms: U - (60 - i) * 60_000,
                    tx_bytes: tx,
                    rx_bytes: rx,
                }
            })
            .collect()
    };
    let curl = buckets(&|ago| {
        (
            if ago <= 10 { 3600 } else { 0 },
            if ago == 30 { 614_400 } else { 0 },
        )
    });
    let sshd = buckets(&|ago| {
        if (41..=50).contains(&ago) {
            (61_440, 61_440)
        } else {
            (0, 0)
        }
    });
    HistoryView::Loaded(HistoryChart {
        db: "/var/lib/netmon/netmon.db".into(),
        since_ms: U - 3_600_000,
        until_ms: U,
        every_ms: 60_000,
        series: vec![
            Series {
                label: "curl".into(),
                tx_bytes: 36_000,
                rx_bytes: 614_400,
                connections: 3,
                buckets: curl,
            },
            Series {
                label: "sshd (ssh.service)".into(),
                tx_bytes: 614_400,
                rx_bytes: 614_400,
                connections: 1,
                buckets: sshd,
            },
        ],
        by_pid: false,
        from_rollups: false,
    })
}

fn screen(state: &mut State, data: &TuiData, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| draw(f, state, data)).unwrap();
    text(term.backend().buffer())
}

fn text(buf: &Buffer) -> String {
    let area = buf.area;
    (0..area.height)
        .map(|y| {
            let line: String = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn state() -> State {
    State::new(Duration::from_secs(1), true)
}

#[test]
fn every_tab_renders() {
    let data = data();
    for tab in Tab::ALL {
        let mut s = state();
        s.tab = tab;
        // The whole namespace, so the snapshots show every fixture row.
        s.show_all = true;
        let shot = screen(&mut s, &data, 160, 30);
        assert!(shot.contains(&format!("{} ─", tab.title())), "{shot}");
        insta::assert_snapshot!(format!("tab_{}", tab.title().to_lowercase()), shot);
    }
}

#[test]
fn netmon_tab_joins_connections_to_the_socket_table() {
    let v = build(Tab::Netmon, &data());
    let rows = v.visible_rows("", true, Sort::default());
    let cells = |i: usize| -> Vec<&str> { rows[i].cells.iter().map(|c| c.text.as_str()).collect() };
    // Process total, then the connections in the aggregator's order.
    assert_eq!(
        &cells(0)[1..7],
        ["4242", "4000", "alice", "client", "all", "2 connection(s)"]
    );
    assert_eq!(cells(0)[9..11], ["1000 B", "3.00 MiB"]);
    // cookie 900 → inode 32967 → tcp row 1 of the fixture: ESTAB, owned.
    let c900 = rows
        .iter()
        .find(|r| r.cells[6].text == "127.0.0.1:35542")
        .unwrap();
    let c: Vec<&str> = c900.cells.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(c[0], "*");
    assert_eq!(c[1..4], ["4242", "4000", "alice"]);
    assert_eq!(c[8], "ESTAB");
    assert_eq!(c[9], "1000 B");
    assert_eq!(c[15], "32967");
    assert_eq!(c[16], "0/0");
    // cookie 901 → 32970: in the namespace but not the process's own fd (OWN), so no mark.
    let c901 = rows.iter().find(|r| r.cells[15].text == "32970").unwrap();
    assert_eq!(c901.cells[0].text, "");
    assert_eq!(c901.cells[10].text, "3.00 MiB");
}

/// A peerless UDP socket's remotes are rows beneath it, each with its own bytes.
#[test]
fn netmon_tab_lists_a_udp_sockets_remotes() {
    let mut d = data();
    let mut udp = conn(902, "0.0.0.0:53", "0.0.0.0:0", 300, 700);
    udp.proto = Proto::Udp;
    udp.remote = None;
    udp.peers = vec![
        crate::aggregate::PeerRow {
            remote: "10.0.1.1:40001".parse().unwrap(),
            tx_bytes: 100,
            rx_bytes: 200,
            tx_rate: 0.0,
            rx_rate: 0.0,
        },
        crate::aggregate::PeerRow {
            remote: "10.0.1.2:40002".parse().unwrap(),
            tx_bytes: 200,
            rx_bytes: 500,
            tx_rate: 0.0,
            rx_rate: 0.0,
        },
    ];
    d.procs.processes[0].connections.push(udp);
    let v = build(Tab::Netmon, &d);
    let rows = v.visible_rows("", true, Sort::default());
    let peers: Vec<Vec<&str>> = rows
        .iter()
        .filter(|r| r.cells[7].text.starts_with("<->"))
        .map(|r| {
            [7, 9, 10]
                .iter()
                .map(|&i| r.cells[i].text.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        peers,
        [
            ["<-> 10.0.1.1:40001", "100 B", "200 B"],
            ["<-> 10.0.1.2:40002", "200 B", "500 B"],
        ]
    );
}

#[test]
fn without_sock_diag_the_join_falls_back_to_addresses() {
    let mut d = TuiData {
        cookie_inodes: HashMap::new(),
        ..data()
    };
    // The listener, which has no remote; and a socket of another netns, which joins nothing.
    let mut listener = conn(902, "127.0.0.1:40001", "", 0, 0);
    listener.remote = None;
    let elsewhere = conn(903, "10.1.1.1:5000", "10.1.1.2:80", 0, 0);
    d.procs.processes[0]
        .connections
        .extend([listener, elsewhere]);
    let v = build(Tab::Netmon, &d);
    assert_eq!(
        v.note.as_deref(),
        Some("rates over 2.0 s, no sock_diag map: joined by address")
    );
    let rows = v.visible_rows("", true, Sort::default());
    let joined: Vec<(&str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| {
            (
                r.cells[6].text.as_str(),
                r.cells[8].text.as_str(),
                r.cells[15].text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        joined,
        [
            ("127.0.0.1:34130", "ESTAB", "32970"),
            ("127.0.0.1:35542", "ESTAB", "32967"),
            ("127.0.0.1:40001", "LISTEN", "32966"),
            ("10.1.1.1:5000", "ESTABLISHED", "-"),
        ]
    );
}

#[test]
fn socket_tabs_mark_own_rows_and_toggle_the_namespace() {
    let data = data();
    let inodes = |tab: Tab, show_all: bool| -> Vec<String> {
        build(tab, &data)
            .visible_rows("", show_all, Sort::default())
            .iter()
            .map(|r| format!("{}{}", r.cells[0].text, r.cells[10].text))
            .collect()
    };
    assert_eq!(inodes(Tab::Tcp, false), ["*32967"]);
    assert_eq!(
        inodes(Tab::Tcp, true),
        ["32966", "*32967", "32968", "32970", "32969", "32971"]
    );
    assert_eq!(inodes(Tab::Udp, false), ["*32972"]);
    assert_eq!(inodes(Tab::Raw, true), ["32962", "32963"]);
    assert_eq!(inodes(Tab::Icmp, true), ["32975", "32976"]);
    assert!(inodes(Tab::Icmp, false).is_empty());
}

#[test]
fn ipv4_mapped_v6_shows_as_v4() {
    let v = build(Tab::Tcp, &data());
    let rows = v.visible_rows("32971", true, Sort::default());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].cells[1].text, "tcp6");
    assert_eq!(rows[0].cells[2].text, "127.0.0.1:40002");
    assert_eq!(rows[0].cells[3].text, "127.0.0.1:34130");
}

#[test]
fn filter_narrows_rows_case_insensitively() {
    let v = build(Tab::Tcp, &data());
    let locals = |f: &str| -> Vec<String> {
        v.visible_rows(f, true, Sort::default())
            .iter()
            .map(|r| r.cells[2].text.clone())
            .collect()
    };
    assert_eq!(locals("LISTEN"), ["127.0.0.1:40001", "[::]:40002"]);
    assert_eq!(
        locals(":40002"),
        ["127.0.0.1:34130", "[::]:40002", "127.0.0.1:40002"],
        "the remote of 32970 matches too"
    );
    assert!(locals("no such row").is_empty());
    let stats = build(Tab::Stats, &data());
    let insegs = stats.visible_rows("insegs", true, Sort::default());
    let names: Vec<(&str, &str)> = insegs
        .iter()
        .map(|r| (r.cells[1].text.as_str(), r.cells[2].text.as_str()))
        .collect();
    assert_eq!(names, [("Tcp", "InSegs")]);
}

#[test]
fn sort_by_numbers_not_text_and_reverse() {
    let v = build(Tab::Traffic, &data());
    let names = |column: usize, descending: bool| -> Vec<String> {
        v.visible_rows(
            "",
            true,
            Sort {
                column: Some(column),
                descending,
            },
        )
        .iter()
        .map(|r| r.cells[0].text.clone())
        .collect()
    };
    // RX BYTES: veth-cap 296 < lo 2004 + 4096 (as text "6.00 KiB" < "296 B" would be wrong).
    assert_eq!(names(1, false), ["veth-cap", "lo"]);
    assert_eq!(names(1, true), ["lo", "veth-cap"]);
    assert_eq!(names(0, false), ["lo", "veth-cap"]);
    let rx_rate: Vec<String> = v
        .visible_rows("lo", true, Sort::default())
        .iter()
        .map(|r| r.cells[17].text.clone())
        .collect();
    assert_eq!(rx_rate, ["4.00 KiB/s"]);
}

#[test]
fn deltas_reach_stats_and_analysis() {
    let data = data();
    let stats = build(Tab::Stats, &data);
    let insegs = stats.visible_rows("InSegs", true, Sort::default());
    let c: Vec<&str> = insegs[0].cells.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(c, ["snmp", "Tcp", "InSegs", "18", "10", "10.0"]);
    let analysis = build(Tab::Analysis, &data);
    let find = |needle: &str| -> Vec<String> {
        let rows = analysis.visible_rows(needle, true, Sort::default());
        rows[0].cells[1..3].iter().map(|c| c.text.clone()).collect()
    };
    assert_eq!(find("InType3"), ["3", "1"]);
    assert_eq!(find("cpu0 processed")[1], "7");
    assert_eq!(find("RTO min"), ["200", "-"]);
    assert_eq!(find("ip_forward")[0], "on");
}

#[test]
fn missing_files_say_not_available() {
    let edge =
        NetSnapshot::capture(&NetRoot::new(fixture("edge"), None), &HashSet::new(), 0).unwrap();
    let data = TuiData {
        net: Some(edge),
        ..data()
    };
    // No raw or raw6 in the edge tree: the whole tab says so.
    let raw = build(Tab::Raw, &data);
    assert_eq!(
        raw.body,
        Body::Unavailable("not available on this kernel".into())
    );
    let mut s = state();
    s.tab = Tab::Raw;
    let shot = screen(&mut s, &data, 100, 8);
    assert!(shot.contains("not available on this kernel"), "{shot}");
    // tcp is missing but tcp6 is there: rows plus a note.
    let tcp = build(Tab::Tcp, &data);
    assert_eq!(
        tcp.note.as_deref(),
        Some("tcp: not available on this kernel")
    );
    assert!(matches!(tcp.body, Body::Rows(ref r) if !r.is_empty()));
    // No snmp6 file, no IcmpMsg in snmp, no MPTcpExt in netstat, and Udp/UdpLite malformed
    // (dropped by the parser): one row each says so.
    let stats = build(Tab::Stats, &data);
    let missing: Vec<(&str, &str)> = stats
        .visible_rows("not available", true, Sort::default())
        .iter()
        .map(|r| (r.cells[0].text.as_str(), r.cells[1].text.as_str()))
        .collect();
    assert_eq!(
        missing,
        [
            ("snmp", "IcmpMsg"),
            ("snmp", "Udp"),
            ("snmp", "UdpLite"),
            ("snmp6", "*"),
            ("netstat", "MPTcpExt")
        ]
    );
    // No sysctl root: forwarding from the sysctl is unavailable, snmp's is not consulted here.
    let a = build(Tab::Analysis, &data);
    let fwd = a.visible_rows("ip_forward", true, Sort::default());
    assert_eq!(fwd[0].cells[1].text, "not available on this kernel");
}

#[test]
fn exited_banner_and_status_line() {
    let mut d = data();
    d.exited = true;
    let mut s = state();
    s.filter = "40001".into();
    let shot = screen(&mut s, &d, 160, 12);
    let lines: Vec<&str> = shot.lines().collect();
    assert!(lines[0].contains("pid 4242 (client)"), "{shot}");
    assert!(lines[0].contains("backend tp_btf"), "{shot}");
    assert!(lines[0].contains("interval 1s"), "{shot}");
    assert!(lines[0].contains("filter \"40001\""), "{shot}");
    assert!(lines[1].contains("process 4242 exited"), "{shot}");
    insta::assert_snapshot!("exited_filtered", shot);
}

#[test]
fn hosts_tab_rows_from_snapshots() {
    // As `Tui::update` does: every snapshot's hosts go through the rates.
    let mut d = data();
    d.hosts = crate::hosts::HostRates::default();
    let v = build(Tab::Hosts, &d);
    assert!(matches!(v.body, Body::Unavailable(_)), "{v:?}");
    for t in 0..=3u64 {
        let snap = Snapshot {
            at_ms: t * 1000,
            hosts: vec![crate::aggregate::HostRow {
                remote: "192.0.2.7".parse().unwrap(),
                name: Some("api.example.com".into()),
                class: "internet".into(),
                tx_bytes: 2048 * t,
                rx_bytes: 0,
                connections: 3,
                processes: 1,
            }],
            ..Snapshot::default()
        };
        d.hosts.update(snap.at_ms, &snap.hosts);
    }
    let v = build(Tab::Hosts, &d);
    let Body::Rows(rows) = &v.body else {
        panic!("{v:?}")
    };
    let cells: Vec<&str> = rows[0].cells.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        cells,
        [
            "192.0.2.7",
            "api.example.com",
            "internet",
            "2.00 KiB/s",
            "2.00 KiB/s",
            "2.00 KiB/s",
            "0 B/s",
            "0 B/s",
            "0 B/s",
            "6.00 KiB",
            "3",
            "1"
        ]
    );
    assert_eq!(
        v.note.as_deref(),
        Some("per second over 2 s, 10 s, 40 s (only 3 s of history yet)")
    );

    // Sorted by a rate column as a number, not as text.
    let v = build(Tab::Hosts, &data());
    let sort = Sort {
        column: Some(4),
        descending: true,
    };
    let names: Vec<&str> = v
        .visible_rows("", true, sort)
        .iter()
        .map(|r| r.cells[0].text.as_str())
        .collect();
    assert_eq!(names, ["2001:db8:ffff::1234", "93.184.216.34", "10.1.2.3"]);
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

#[test]
fn keys() {
    use KeyCode::{BackTab, Char, Enter, Esc, Left, Right};
    // (keys typed from a fresh state, the tab after them, the last action)
    let cases: &[(&[KeyEvent], Tab, Action)] = &[
        (&[key(KeyCode::Tab)], Tab::Tcp, Action::Redraw),
        (&[key(BackTab)], Tab::History, Action::Redraw),
        (&[key(Right), key(Right)], Tab::Udp, Action::Redraw),
        (&[key(Left)], Tab::History, Action::Redraw),
        (&[key(Left), key(Left)], Tab::Hosts, Action::Redraw),
        (&[key(Char('h'))], Tab::Hosts, Action::Redraw),
        (&[key(Char('h')), key(Right)], Tab::History, Action::Redraw),
        (&[key(Char('H'))], Tab::History, Action::Redraw),
        (&[key(Char('H')), key(Right)], Tab::Netmon, Action::Redraw),
        (
            &[key(Char('/')), key(Char('H'))],
            Tab::Netmon,
            Action::Redraw,
        ),
        (
            &[key(Char('/')), key(Char('h'))],
            Tab::Netmon,
            Action::Redraw,
        ),
        (&[key(Char('4'))], Tab::Arp, Action::Redraw),
        (&[key(Char('9'))], Tab::Routing, Action::Redraw),
        (&[key(Char('0'))], Tab::Analysis, Action::Redraw),
        (&[key(Char('1'))], Tab::Netmon, Action::Redraw),
        (&[key(Char('q'))], Tab::Netmon, Action::Quit),
        (&[key(Esc)], Tab::Netmon, Action::Quit),
        (&[ctrl('c')], Tab::Netmon, Action::Quit),
        (&[ctrl('d')], Tab::Netmon, Action::Quit),
        // Ctrl+C quits from the filter line too; q there is text.
        (
            &[key(Char('/')), key(Char('q'))],
            Tab::Netmon,
            Action::Redraw,
        ),
        (&[key(Char('/')), ctrl('c')], Tab::Netmon, Action::Quit),
        (&[key(Char('x'))], Tab::Netmon, Action::None),
        (
            &[key(Char(':')), key(Char('q')), key(Enter)],
            Tab::Netmon,
            Action::Quit,
        ),
    ];
    for (keys, tab, action) in cases {
        let mut s = state();
        let mut last = Action::None;
        for k in *keys {
            last = s.handle_key(*k, 5);
        }
        assert_eq!((s.tab, last), (*tab, *action), "{keys:?}");
    }
}

fn typed(s: &mut State, text: &str) -> Action {
    let mut last = Action::None;
    for c in text.chars() {
        last = s.handle_key(key(KeyCode::Char(c)), 5);
    }
    last
}

#[test]
fn interval_commands() {
    let mut s = state();
    typed(&mut s, ":set 2");
    assert_eq!(s.mode, Mode::Command("set 2".into()));
    let a = s.handle_key(key(KeyCode::Enter), 5);
    assert_eq!(a, Action::SetInterval(Duration::from_secs(2)));
    assert_eq!(
        (s.interval, &s.mode),
        (Duration::from_secs(2), &Mode::Normal)
    );
    assert_eq!(
        typed(&mut s, "+"),
        Action::SetInterval(Duration::from_secs(5))
    );
    assert_eq!(
        typed(&mut s, "-"),
        Action::SetInterval(Duration::from_secs(2))
    );
    assert_eq!(
        typed(&mut s, "--"),
        Action::SetInterval(Duration::from_millis(500))
    );
    typed(&mut s, ":set 0.25");
    s.handle_key(key(KeyCode::Enter), 5);
    assert_eq!(s.interval, Duration::from_millis(250));
    assert_eq!(
        typed(&mut s, "+"),
        Action::SetInterval(Duration::from_millis(500))
    );
    // Bad values leave the interval alone and say why.
    for bad in [":set 0", ":set abc", ":set", ":frobnicate"] {
        typed(&mut s, bad);
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 5),
            Action::Redraw,
            "{bad}"
        );
        assert_eq!(s.interval, Duration::from_millis(500), "{bad}");
        assert!(s.message.is_some(), "{bad}");
    }
    // The ends of the ladder stop.
    let mut s = State::new(Duration::from_secs(60), true);
    assert_eq!(typed(&mut s, "+"), Action::None);
    let mut s = State::new(Duration::from_millis(100), true);
    assert_eq!(typed(&mut s, "-"), Action::None);
}

#[test]
fn filter_editing() {
    let mut s = state();
    typed(&mut s, "/estx");
    assert_eq!((s.mode.clone(), s.filter.as_str()), (Mode::Filter, "estx"));
    s.handle_key(key(KeyCode::Backspace), 5);
    s.handle_key(key(KeyCode::Enter), 5);
    assert_eq!((s.mode.clone(), s.filter.as_str()), (Mode::Normal, "est"));
    // Esc with a filter clears it rather than quitting; the next Esc quits.
    assert_eq!(s.handle_key(key(KeyCode::Esc), 5), Action::Redraw);
    assert!(s.filter.is_empty());
    assert_eq!(s.handle_key(key(KeyCode::Esc), 5), Action::Quit);
    // Esc while typing drops the filter.
    let mut s = state();
    typed(&mut s, "/abc");
    s.handle_key(key(KeyCode::Esc), 5);
    assert_eq!((s.mode.clone(), s.filter.as_str()), (Mode::Normal, ""));
}

#[test]
fn sort_scroll_and_toggle_keys() {
    let mut s = state();
    let cols = |s: &State| (s.sort().column, s.sort().descending);
    assert_eq!(cols(&s), (None, false));
    for want in [Some(0), Some(1), Some(2), None, Some(0)] {
        s.handle_key(key(KeyCode::Char('s')), 3);
        assert_eq!(s.sort().column, want);
    }
    s.handle_key(key(KeyCode::Char('S')), 3);
    assert_eq!(cols(&s), (Some(0), true));
    // Sort is per tab.
    s.handle_key(key(KeyCode::Tab), 3);
    assert_eq!(cols(&s), (None, false));

    assert!(!s.show_all);
    s.handle_key(key(KeyCode::Char('a')), 3);
    assert!(s.show_all);
    assert!(State::new(Duration::from_secs(1), false).show_all);

    s.page = 10;
    s.handle_key(key(KeyCode::PageDown), 3);
    s.handle_key(key(KeyCode::Down), 3);
    assert_eq!(s.scroll(), 11);
    s.clamp_scroll(15);
    assert_eq!(s.scroll(), 5);
    s.handle_key(key(KeyCode::PageUp), 3);
    s.handle_key(key(KeyCode::Up), 3);
    assert_eq!(s.scroll(), 0);
}

#[test]
fn scrolling_shows_later_rows() {
    let data = data();
    let mut s = state();
    s.tab = Tab::Stats;
    let first = screen(&mut s, &data, 120, 10);
    assert!(first.contains("Forwarding"), "{first}");
    s.handle_key(key(KeyCode::PageDown), 6);
    let second = screen(&mut s, &data, 120, 10);
    assert!(!second.contains("Forwarding"), "{second}");
    s.handle_key(key(KeyCode::End), 6);
    let last = screen(&mut s, &data, 120, 10);
    assert!(last.contains("MPTcpExt"), "{last}");
}

/// A `/proc` with one process, 4242, whose `net` is the live fixture and whose fds hold two of
/// its sockets, and a child 4243 holding a third; removed on drop.
struct FakeProc(PathBuf);

impl FakeProc {
    /// `tag` keeps tests that run in parallel apart.
    fn new(tag: &str) -> FakeProc {
        use std::os::unix::fs::symlink;
        let root = std::env::temp_dir().join(format!("nmtui-proc-{}-{tag}", std::process::id()));
        let pid = root.join("4242");
        std::fs::create_dir_all(pid.join("fd")).unwrap();
        symlink(fixture("live/net"), pid.join("net")).unwrap();
        for (fd, inode) in [(3, 32967), (4, 32972)] {
            symlink(format!("socket:[{inode}]"), pid.join(format!("fd/{fd}"))).unwrap();
        }
        symlink("/dev/null", pid.join("fd/0")).unwrap();
        // A child, 4243, holding 32970; it has no children of its own.
        std::fs::create_dir_all(pid.join("task/4242")).unwrap();
        std::fs::write(pid.join("task/4242/children"), "4243 ").unwrap();
        let child = root.join("4243");
        std::fs::create_dir_all(child.join("fd")).unwrap();
        std::fs::create_dir_all(child.join("task/4243")).unwrap();
        std::fs::write(child.join("task/4243/children"), "").unwrap();
        symlink("socket:[32970]", child.join("fd/3")).unwrap();
        FakeProc(root)
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn collector_marks_own_sockets_and_keeps_the_last_snapshot_when_the_process_goes() {
    use super::data::Collector;
    let proc = FakeProc::new("gone");
    let c = Collector::new(&proc.0, &[4242], false);
    let mut d = TuiData::default();
    c.refresh(&mut d);
    assert!(d.net_delta.is_none(), "one snapshot has no interval yet");
    let own: Vec<u64> = d
        .net
        .as_ref()
        .unwrap()
        .socket_rows()
        .filter(|r| r.owned)
        .map(|r| r.inode)
        .collect();
    assert_eq!(own, OWN);
    // Not netmon's namespace (there is no ns link to compare): no sysctl is read.
    let a = build(Tab::Analysis, &d);
    let fwd = a.visible_rows("ip_forward", true, Sort::default());
    assert_eq!(fwd[0].cells[1].text, "not available on this kernel");
    c.refresh(&mut d);
    assert!(d.net_delta.is_some());

    std::fs::remove_dir_all(proc.0.join("4242")).unwrap();
    c.refresh(&mut d);
    let err = d.net_error.clone().unwrap();
    assert!(err.contains("4242/net is gone"), "{err}");
    assert!(d.net.is_some(), "the last snapshot stays");
    let mut s = state();
    let shot = screen(&mut s, &d, 200, 6);
    assert!(
        shot.lines()
            .next()
            .unwrap()
            .contains("is gone; showing the last values"),
        "{shot}"
    );
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut d = data();
    d.exited = true;
    for tab in Tab::ALL {
        for (w, h) in [(1, 1), (10, 3), (40, 5), (20, 40)] {
            let mut s = state();
            s.tab = tab;
            s.handle_key(key(KeyCode::End), 3);
            let shot = screen(&mut s, &d, w, h);
            assert_eq!(shot.split('\n').count(), usize::from(h), "{tab:?} {w}x{h}");
        }
    }
}

#[test]
fn follow_children_marks_the_childrens_sockets_too() {
    use super::data::Collector;
    let proc = FakeProc::new("children");
    let owned = |follow: bool| -> Vec<u64> {
        let mut d = TuiData::default();
        Collector::new(&proc.0, &[4242], follow).refresh(&mut d);
        let mut v: Vec<u64> = d
            .net
            .unwrap()
            .socket_rows()
            .filter(|r| r.owned)
            .map(|r| r.inode)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(owned(false), [32967, 32972]);
    assert_eq!(owned(true), [32967, 32970, 32972]);
}

/// A history store in a directory of its own, removed when dropped.
struct TempStore(PathBuf);

impl TempStore {
    fn new(tag: &str) -> TempStore {
        let dir = std::env::temp_dir().join(format!("nmtui-hist-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempStore(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("netmon.db")
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The end of the charted hour in the store tests (a whole minute), and "now" 25 s later.
const HOUR_END: i64 = 1_764_960_000_000;
const NOW: i64 = HOUR_END + 25_000;
const MIN: i64 = 60_000;

fn record(
    flow_id: u64,
    segment: u32,
    pid: u32,
    comm: &str,
    to_ms: i64,
    tx: u64,
    rx: u64,
) -> FlowRecord {
    FlowRecord {
        host: "testhost".into(),
        flow_id,
        segment,
        pid,
        start_time: 7,
        comm: comm.into(),
        cmdline: comm.into(),
        uid: Some(1000),
        proto: "tcp".into(),
        direction: "out".into(),
        local: "10.0.0.1:40000".parse().ok(),
        remote: "192.0.2.1:443".parse().ok(),
        class: "internet".into(),
        opened_ms: to_ms - 1000,
        from_ms: to_ms - 1000,
        to_ms,
        ended: true,
        tx_bytes: tx,
        rx_bytes: rx,
        ..FlowRecord::default()
    }
}

/// Known records: curl (pid 4242) 6 KiB sent / 600 KiB received 30 minutes before the end of
/// the hour and 1 KiB sent 5 minutes before (one connection); sshd (pid 900) 117.2 KiB /
/// 58.6 KiB 50 minutes before; four small processes (600, 500, 400 and 300 B sent); and two
/// curl records outside the hour (61 minutes before, and in the minute in progress) that
/// must not count.
fn filled_store(tag: &str) -> TempStore {
    let dir = TempStore::new(tag);
    let mut flows = vec![
        record(
            1,
            0,
            4242,
            "curl",
            HOUR_END - 30 * MIN + 10_000,
            6144,
            614_400,
        ),
        record(1, 1, 4242, "curl", HOUR_END - 5 * MIN + 1, 1024, 0),
        record(
            2,
            0,
            900,
            "sshd",
            HOUR_END - 50 * MIN + 30_000,
            120_000,
            60_000,
        ),
        record(3, 0, 4242, "curl", HOUR_END - 61 * MIN, 999_999, 999_999),
        record(4, 0, 4242, "curl", HOUR_END + 10_000, 888_888, 888_888),
    ];
    for (i, (comm, tx)) in [("w600", 600), ("w500", 500), ("w400", 400), ("w300", 300)]
        .into_iter()
        .enumerate()
    {
        let pid = 5000 + i as u32;
        flows.push(record(
            10 + i as u64,
            0,
            pid,
            comm,
            HOUR_END - 20 * MIN,
            tx,
            0,
        ));
    }
    crate::history::store::Store::open(&dir.db())
        .unwrap()
        .store
        .write(&flows)
        .unwrap();
    dir
}

fn loaded(v: &HistoryView) -> &HistoryChart {
    match v {
        HistoryView::Loaded(c) => c,
        other => panic!("not loaded: {other:?}"),
    }
}

/// The cells of the History table's row that starts with `label`, as shown on the screen.
fn shown_row<'a>(shot: &'a str, label: &str) -> Vec<&'a str> {
    let line = shot
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{shot}"));
    line[label.len()..]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn history_tab_charts_the_busiest_processes_from_the_store() {
    let dir = filled_store("top");
    let view = HistorySource {
        db: dir.db(),
        pids: vec![],
        recording: false,
    }
    .load(NOW);
    let chart = loaded(&view);
    assert_eq!(
        (chart.since_ms, chart.until_ms),
        (HOUR_END - 60 * MIN, HOUR_END)
    );
    let labels: Vec<&str> = chart.series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["curl", "sshd", "w600", "w500", "w400"]);
    for s in &chart.series {
        assert_eq!(s.buckets.len(), 60, "{}", s.label);
        let tx: u64 = s.buckets.iter().map(|b| b.tx_bytes).sum();
        let rx: u64 = s.buckets.iter().map(|b| b.rx_bytes).sum();
        assert_eq!((tx, rx), (s.tx_bytes, s.rx_bytes), "{}", s.label);
    }
    let curl = &chart.series[0];
    assert_eq!(
        (curl.tx_bytes, curl.rx_bytes, curl.connections),
        (7168, 614_400, 1)
    );
    // Each record in the minute that holds its end.
    let at = |s: &Series, ago: i64| {
        let b = s
            .buckets
            .iter()
            .find(|b| b.start_ms == HOUR_END - ago * MIN)
            .unwrap();
        (b.tx_bytes, b.rx_bytes)
    };
    assert_eq!(at(curl, 30), (6144, 614_400));
    assert_eq!(at(curl, 5), (1024, 0));
    assert_eq!(at(&chart.series[1], 50), (120_000, 60_000));

    let mut d = data();
    d.history = view.clone();
    let mut s = state();
    s.tab = Tab::History;
    let shot = screen(&mut s, &d, 160, 30);
    insta::assert_snapshot!("history_from_store", shot);
    assert!(
        shot.contains(" History ─ 5 of 5 rows ─ last hour per minute, busiest processes ─"),
        "{shot}"
    );
    assert_eq!(
        shown_row(&shot, "curl"),
        ["7.00 KiB", "600 KiB", "102 B/s", "10.0 KiB/s", "1"]
    );
    assert_eq!(
        shown_row(&shot, "sshd"),
        ["117 KiB", "58.6 KiB", "1.95 KiB/s", "1000 B/s", "1"]
    );
    assert_eq!(
        shown_row(&shot, "w400"),
        ["400 B", "0 B", "7 B/s", "0 B/s", "1"]
    );
    assert!(!shot.contains("w300"), "only the five busiest: {shot}");
    for title in [" sent per second ", " received per second "] {
        assert!(shot.contains(title), "{shot}");
    }
    assert!(shot.contains("-60 min") && shot.contains("now"), "{shot}");
    // The busiest minute is the top of the received chart's axis.
    assert!(shot.contains("10.0 KiB/s"), "{shot}");
}

#[test]
fn history_tab_charts_the_watched_pids() {
    let dir = filled_store("pids");
    let view = HistorySource {
        db: dir.db(),
        pids: vec![4242, 31337],
        recording: false,
    }
    .load(NOW);
    let chart = loaded(&view);
    assert!(chart.by_pid);
    let sums: Vec<(&str, u64, u64, usize)> = chart
        .series
        .iter()
        .map(|s| (s.label.as_str(), s.tx_bytes, s.rx_bytes, s.buckets.len()))
        .collect();
    // A watched pid with nothing recorded is charted as zeros.
    assert_eq!(
        sums,
        [("4242 curl", 7168, 614_400, 60), ("31337", 0, 0, 60)]
    );
    let mut d = data();
    d.history = view.clone();
    let mut s = state();
    s.tab = Tab::History;
    let shot = screen(&mut s, &d, 160, 30);
    assert!(
        shot.contains("last hour per minute, watched processes"),
        "{shot}"
    );
    assert_eq!(
        shown_row(&shot, "4242 curl"),
        ["7.00 KiB", "600 KiB", "102 B/s", "10.0 KiB/s", "1"]
    );
    assert_eq!(
        shown_row(&shot, "31337"),
        ["0 B", "0 B", "0 B/s", "0 B/s", "0"]
    );
}

#[test]
fn history_tab_without_a_store_says_so_in_one_line() {
    let dir = TempStore::new("none");
    let db = dir.db();
    let source = |recording| HistorySource {
        db: db.clone(),
        pids: vec![],
        recording,
    };
    let want = format!(
        "no history at {}: run with --record or start netmon serve",
        db.display()
    );
    assert_eq!(source(false).load(NOW), HistoryView::NoStore(want.clone()));
    // Nothing was created by looking.
    assert!(!db.exists());
    let mut d = data();
    d.history = source(false).load(NOW);
    let mut s = state();
    s.tab = Tab::History;
    let shot = screen(&mut s, &d, 160, 30);
    let lines: Vec<&str> = shot.lines().filter(|l| l.contains("no history")).collect();
    assert_eq!(lines.len(), 1, "{shot}");
    assert_eq!(lines[0].trim(), want);
    assert!(!shot.contains("per second"), "no chart: {shot}");
    // Recording: the file is on its way.
    let HistoryView::NoStore(why) = source(true).load(NOW) else {
        panic!("not NoStore")
    };
    assert!(
        why.starts_with(&format!("no history at {} yet", db.display())),
        "{why}"
    );
    // An empty hour says so too.
    let empty = filled_store("empty-hour");
    let v = HistorySource {
        db: empty.db(),
        pids: vec![],
        recording: false,
    }
    .load(NOW + 10 * 3_600_000);
    assert_eq!(loaded(&v).series, []);
    d.history = v;
    let shot = screen(&mut s, &d, 160, 30);
    assert!(shot.contains("no traffic in "), "{shot}");
}

/// The loader answers on its own thread, and asks again only after `REFRESH`.
#[test]
fn history_loader_asks_at_most_every_ten_seconds() {
    use super::history::{HistoryLoader, REFRESH};
    use std::time::Instant;
    let dir = TempStore::new("loader");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut loader = HistoryLoader::start(HistorySource {
            db: dir.db(),
            pids: vec![],
            recording: false,
        });
        let t0 = Instant::now();
        loader.refresh(t0);
        let first = tokio::time::timeout(Duration::from_secs(10), loader.next())
            .await
            .expect("an answer");
        assert!(matches!(first, HistoryView::NoStore(_)), "{first:?}");
        // Too soon: no query, so no answer.
        loader.refresh(t0 + REFRESH - Duration::from_millis(1));
        let none = tokio::time::timeout(Duration::from_millis(200), loader.next()).await;
        assert!(none.is_err(), "asked again within 10 s: {none:?}");
        loader.refresh(t0 + REFRESH);
        let again = tokio::time::timeout(Duration::from_secs(10), loader.next()).await;
        assert!(again.is_ok(), "not asked again after 10 s");
    });
}

/// `--tree`: the fake three-level tree of the table's test, in the netmon tab; a sort orders
/// siblings only, a process's connections stay before its children, and a filter keeps the
/// rows above a match.
#[test]
fn tree_sorts_among_siblings_and_keeps_the_path_to_a_match() {
    let d = TuiData {
        procs: crate::sink::tests::tree_snapshot(),
        tree: true,
        cookie_inodes: HashMap::new(),
        ..data()
    };
    let v = build(Tab::Netmon, &d);
    let shown = |filter: &str, column: Option<usize>, descending: bool| -> Vec<String> {
        v.visible_rows(filter, true, Sort { column, descending })
            .iter()
            .map(|r| format!("{} {}", r.cells[1].text, r.cells[4].text))
            .collect()
    };
    // Column 10 is RX.
    assert_eq!(
        shown("", Some(10), true),
        [
            "500 dnsmasq",
            "900 sshd",
            "1200 └─ bash",
            "1200    bash",
            "1300   └─ curl",
            "1301   └─ wget"
        ]
    );
    assert_eq!(
        shown("", Some(10), false),
        [
            "900 sshd",
            "1200 └─ bash",
            "1200    bash",
            "1301   └─ wget",
            "1300   └─ curl",
            "500 dnsmasq"
        ]
    );
    // By COMM: the name, not the drawn indentation.
    assert_eq!(
        shown("", Some(4), false)[..2],
        ["500 dnsmasq".to_string(), "900 sshd".to_string()]
    );
    assert_eq!(
        shown("wget", None, false),
        ["900 sshd", "1200 └─ bash", "1301   └─ wget"]
    );
    let mut s = state();
    s.show_all = true;
    insta::assert_snapshot!("netmon_tree", screen(&mut s, &d, 160, 14));
}

#[test]
fn narrow_terminals_shed_inode_and_queues_first() {
    let v = build(Tab::Netmon, &data());
    let names = |w: u16| -> Vec<&str> {
        super::view::fitting(&v.columns, w)
            .into_iter()
            .map(|i| v.columns[i].name)
            .collect()
    };
    assert!(names(177).contains(&"Q S/R") && names(177).contains(&"INODE"));
    assert!(!names(176).contains(&"Q S/R") && names(176).contains(&"INODE"));
    assert!(!names(168).contains(&"INODE"));
    assert_eq!(names(168).len(), v.columns.len() - 2);
    assert_eq!(
        names(20).len(),
        v.columns.len() - 2,
        "only sheddable columns go"
    );
}
