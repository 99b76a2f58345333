//! History end to end: connections whose bytes the test sets become flow records in the SQLite
//! store with exact bytes and the right class; `netmon flows` and `netmon report` give back the
//! exact sums; the store survives SIGKILL mid-load and a restart.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use netmon_tests::{Guard, Lines, load::Loopback, netmon_bin, privileged, scenario};
use serde_json::Value;

const ROOT: &str = "needs root: run under cargo xtask test";

/// A directory for one test's database, removed when the test ends (also when it fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("netmon-history-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn db(&self) -> String {
        self.0.join("netmon.db").to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("NETMON_KEEP_TEST_DB").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `netmon ARGS`, returning stdout; fails the test on a non-zero exit.
fn netmon(args: &[&str]) -> String {
    let out = Command::new(netmon_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "netmon {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// 40 children each send exactly 12,345 bytes to a server over loopback: each connection is
/// one flow record on each side with those bytes, and report's sums by process, port, class
/// and hour are exact.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn connections_become_flow_records_with_exact_bytes() {
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let dir = TempDir::new("exact");
    let db = dir.db();
    let o = scenario(
        "hist",
        &["children", "40", "12345"],
        &["--record", "--db", &db],
    );
    let bytes = o.truth_u64("bytes_each");
    let kids = o.truth_u64s("children");
    let server = o.truth_u64("server_pid");
    assert_eq!(o.truth_u64("server_received"), 40 * bytes);

    let flows = json_lines(&netmon(&["flows", "--db", &db, "--since", "10m", "--json"]));
    for &k in &kids {
        let mine: Vec<&Value> = flows.iter().filter(|f| u(f, "pid") == k).collect();
        assert_eq!(mine.len(), 1, "child {k}: {mine:?}");
        let f = mine[0];
        assert_eq!(
            (u(f, "tx_bytes"), u(f, "rx_bytes")),
            (bytes, 0),
            "child {k}: {f}"
        );
        assert_eq!(f["proto"], "tcp");
        assert_eq!(f["direction"], "out");
        assert_eq!(f["class"], "loopback");
        assert_eq!(f["ended"], true);
        assert_eq!(f["comm"], "trafficgen");
        assert!(u(f, "tx_wire_bytes") >= bytes, "{f}");
    }
    let served: Vec<&Value> = flows.iter().filter(|f| u(f, "pid") == server).collect();
    assert_eq!(served.len(), 40, "the server's accepted connections");
    assert!(served.iter().all(|f| f["direction"] == "in"));
    assert_eq!(
        served.iter().map(|f| u(f, "rx_bytes")).sum::<u64>(),
        40 * bytes
    );
    let port = served[0]["local"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();

    let total = 40 * bytes;
    let by = |what: &str, extra: &[&str]| {
        let mut args = vec![
            "report", "--db", &db, "--since", "10m", "--json", "--by", what,
        ];
        args.extend_from_slice(extra);
        json_lines(&netmon(&args))
    };
    let p = by("process", &[]);
    let row = p
        .iter()
        .find(|r| r["key"] == "trafficgen")
        .expect("trafficgen row");
    assert_eq!((u(row, "tx_bytes"), u(row, "rx_bytes")), (total, total));
    assert_eq!(u(row, "connections"), 80, "40 connections, both ends");
    let ports = by("port", &[]);
    let row = ports
        .iter()
        .find(|r| r["key"] == format!("{port}/tcp"))
        .unwrap_or_else(|| panic!("no {port}/tcp row: {ports:?}"));
    assert_eq!((u(row, "tx_bytes"), u(row, "connections")), (total, 80));
    let classes = by("class", &[]);
    assert_eq!(classes.len(), 1, "{classes:?}");
    assert_eq!(classes[0]["key"], "loopback");
    assert_eq!(u(&classes[0], "rx_bytes"), total);
    // One pid: only its own connection.
    let one = by("remote", &["--pid", &kids[0].to_string()]);
    assert_eq!(one.iter().map(|r| u(r, "tx_bytes")).sum::<u64>(), bytes);
    // By hour: the series adds up to the total.
    let hourly = by("process", &["--every", "1h"]);
    let row = hourly.iter().find(|r| r["key"] == "trafficgen").unwrap();
    let series: u64 = row["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u(b, "tx_bytes"))
        .sum();
    assert_eq!(series, total);
    // The table renders too (a sparkline per row with --every).
    let table = netmon(&["report", "--db", &db, "--since", "10m", "--every", "10m"]);
    assert!(table.contains("trafficgen"), "{table}");
}

/// `netmon serve` records by default; killed with SIGKILL while 200 connections a second
/// are recorded, its store passes SQLite's integrity check and keeps every record committed
/// before the kill; a restarted serve adds to the same history.
/// One UDP socket without a connected peer exchanges datagrams with three sockets on three
/// loopback addresses: its flow records are one per remote with exactly what its send_to and
/// recv_from returned for that remote, and each of the three has its record with the hub.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn a_peerless_udp_socket_gives_a_record_per_remote() {
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let dir = TempDir::new("udp-peers");
    let db = dir.db();
    let o = scenario("udppeer", &["udp-fanout", "3"], &["--record", "--db", &db]);
    let pid = o.truth_u64("pid");
    let hub = format!("127.0.0.1:{}", o.truth_u64("hub_port"));
    let ports = o.truth_u64s("peer_ports");
    let (to, from) = (o.truth_u64s("sent_to"), o.truth_u64s("received_from"));
    let flows = json_lines(&netmon(&["flows", "--db", &db, "--since", "10m", "--json"]));
    let mine: Vec<&Value> = flows
        .iter()
        .filter(|f| u(f, "pid") == pid && f["proto"] == "udp")
        .collect();
    let sums = |local: &str, remote: &str| {
        let of: Vec<&&Value> = mine
            .iter()
            .filter(|f| f["local"] == local && f["remote"] == remote)
            .collect();
        assert!(!of.is_empty(), "no record {local} -> {remote}: {mine:#?}");
        assert!(of.iter().all(|f| f["class"] == "loopback"), "{of:?}");
        (
            of.iter().map(|f| u(f, "tx_bytes")).sum::<u64>(),
            of.iter().map(|f| u(f, "rx_bytes")).sum::<u64>(),
        )
    };
    for (i, &port) in ports.iter().enumerate() {
        let peer = format!("127.0.0.{}:{port}", i + 2);
        assert_eq!(sums(&hub, &peer), (to[i], from[i]), "hub -> {peer}");
        assert_eq!(sums(&peer, &hub), (from[i], to[i]), "{peer} -> hub");
    }
    // Every byte of the hub's is under one of its remotes.
    let unfiled: u64 = mine
        .iter()
        .filter(|f| f["local"] == hub.as_str() && f["remote"].is_null())
        .map(|f| u(f, "tx_bytes") + u(f, "rx_bytes"))
        .sum();
    assert_eq!(unfiled, 0, "{mine:#?}");
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn the_store_survives_sigkill_and_a_restart() {
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let dir = TempDir::new("kill");
    let db = dir.db();
    let serve = |secs: &str| {
        netmon_tests::serve_ready(&["--interval", "0.2", "--db", &db, "--duration", secs])
    };
    let (mut g, _err) = serve("60");
    let load = Loopback::start(1_000);
    std::thread::sleep(Duration::from_secs(3));
    // Records written before the kill: what a reader sees now.
    let before = count_flows(&db);
    let _ = g.0.kill();
    let _ = g.0.wait();
    drop(load);
    assert!(before > 0, "nothing recorded in 3 s of load");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let after_kill = count_flows(&db);
    assert!(
        after_kill >= before,
        "records committed before the kill went missing: {before} then {after_kill}"
    );
    // A restart keeps the history and adds to it.
    let (mut g2, _err2) = serve("3");
    let load = Loopback::start(50);
    std::thread::sleep(Duration::from_secs(2));
    drop(load);
    // --duration ends it: it writes what it still holds and exits.
    let status = g2.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let after_restart = count_flows(&db);
    assert!(
        after_restart >= after_kill,
        "{after_kill} then {after_restart}"
    );
}

/// Flow records in the store, through the sqlite engine itself (not netmon's reader).
fn count_flows(db: &str) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        Path::new(db),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("SELECT count(*) FROM flows", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as u64)
}

/// `run --by host`: a client sends steadily to a server on loopback for 14 s; the 2-s and 10-s
/// rates of host 127.0.0.1 match the rate the client achieved (its own count over its own
/// time), and the cumulative bytes match exactly at the end.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn host_rates_match_a_known_steady_rate() {
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let o = scenario("hostrate", &["steady", "14", "2000"], &["--by", "host"]);
    let sent = o.truth_u64("client_sent");
    let rate = sent as f64 / 14.0;
    let lines: Vec<&Value> = o.lines.iter().collect();
    let host = |l: &Value| {
        l["host_rates"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["remote"] == "127.0.0.1").cloned())
    };
    // Snapshots from 11 s to 13 s into the traffic: both windows lie inside it.
    let t0 = lines
        .iter()
        .find_map(|l| host(l).map(|_| l["at_ms"].as_u64().unwrap()))
        .expect("no snapshot listed 127.0.0.1");
    let mid: Vec<Value> = lines
        .iter()
        .filter(|l| {
            let t = l["at_ms"].as_u64().unwrap_or(0);
            t >= t0 + 11_000 && t <= t0 + 13_000
        })
        .filter_map(|l| host(l))
        .collect();
    assert!(!mid.is_empty(), "no snapshot 11-13 s into the traffic");
    for h in &mid {
        for (i, window) in ["2 s", "10 s"].iter().enumerate() {
            let got = h["tx_rate"][i].as_f64().unwrap();
            assert!(
                (got / rate - 1.0).abs() < 0.15,
                "{window} rate {got:.0} B/s vs the client's {rate:.0} B/s: {h}"
            );
        }
    }
    let last = host(lines.last().unwrap()).expect("final snapshot lists 127.0.0.1");
    assert_eq!(last["tx_bytes"].as_u64(), Some(sent), "{last}");
}

/// A connection open across a restart of netmon: what it moved before the restart is
/// recorded when the first netmon stops, what it moved after by the second, and the records
/// add up to exactly what was sent: nothing twice, nothing lost.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn a_connection_open_across_a_restart_is_counted_once() {
    use std::io::{Read, Write};
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let dir = TempDir::new("restart");
    let db = dir.db();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", server_port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let (mut server, _) = listener.accept().unwrap();
    // What the server has read so far: each netmon must see the server read its part before it
    // stops (a slow machine, such as a qemu guest, reads well after the client wrote). The
    // server reads a part only once that part's netmon is attached: a recv already blocked
    // when netmon attaches is not counted by the kprobe and fentry rungs (docs/limits.md).
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = read.clone();
    let (go, parts) = std::sync::mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut target = 0;
        while let Ok(part) = parts.recv() {
            target += part;
            while seen.load(std::sync::atomic::Ordering::SeqCst) < target {
                match server.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => {
                        seen.fetch_add(k as u64, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        }
    });
    let (n1, n2) = (111_111u64, 222_222u64);
    let mut expected = 0;
    for n in [n1, n2] {
        let mut g = Guard(
            Command::new(netmon_bin())
                .args([
                    "run",
                    "--record",
                    "--db",
                    &db,
                    "--json",
                    "--interval",
                    "0.5",
                ])
                .args(["--duration", "60"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let out = Lines::new(g.0.stdout.take().unwrap());
        assert!(
            out.next(Duration::from_secs(20)).is_some(),
            "netmon printed nothing"
        );
        go.send(n).unwrap();
        client.write_all(&vec![7u8; n as usize]).unwrap();
        expected += n;
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while read.load(std::sync::atomic::Ordering::SeqCst) < expected {
            assert!(
                std::time::Instant::now() < end,
                "the server never read it all"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if n == n2 {
            client.shutdown(std::net::Shutdown::Both).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        }
        // SIGINT: netmon writes what it counted and exits.
        let _ = Command::new("kill")
            .args(["-INT", &g.0.id().to_string()])
            .status();
        let status = g.0.wait().unwrap();
        assert!(status.success(), "{status}");
    }
    drop(client);
    drop(go);
    reader.join().unwrap();
    assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), n1 + n2);
    let flows = json_lines(&netmon(&["flows", "--db", &db, "--since", "10m", "--json"]));
    let end = |f: &Value, k: &str| f[k].as_u64();
    let sum = |port: u16, dir: &str| -> u64 {
        flows
            .iter()
            .filter(|f| end(f, "local_port") == Some(u64::from(port)))
            .map(|f| u(f, dir))
            .sum()
    };
    assert_eq!(
        sum(client_port, "tx_bytes"),
        n1 + n2,
        "client side: {flows:?}"
    );
    assert_eq!(sum(server_port, "rx_bytes"), n1 + n2, "server side");
}
