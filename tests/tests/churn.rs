//! Connection churn: a hundred thousand short TCP connections in a few seconds, as a busy web
//! front end sees them, against ground truth loadgen counts itself. Every byte must land on the
//! process that moved it and no ring record, map entry or event may be lost. No timing is
//! asserted: the count is whatever the machine achieved, the bytes must be exact.
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use netmon_tests::{Guard, Lines, Netns, loadgen_clients, netmon_bin, privileged, test_bin};
use serde_json::Value;

const RATE: &str = "20000";
const SECS: &str = "5";
const BYTES: u64 = 1000;

fn process(snapshot: &Value, pid: u64) -> Option<&Value> {
    snapshot["processes"]
        .as_array()?
        .iter()
        .find(|p| p["pid"].as_u64() == Some(pid))
}

fn bytes(snapshot: &Value, pid: u64) -> (u64, u64) {
    process(snapshot, pid).map_or((0, 0), |p| {
        (
            p["tx_bytes"].as_u64().unwrap_or(0),
            p["rx_bytes"].as_u64().unwrap_or(0),
        )
    })
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn a_hundred_thousand_connections_exact_and_nothing_lost() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("churn");
    let loadgen = test_bin("loadgen");
    let mut netmon = Guard(
        Command::new(netmon_bin())
            .args(["run", "--json", "--interval", "0.5", "--duration", "90"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting netmon"),
    );
    let snapshots = Lines::new(netmon.0.stdout.take().unwrap());
    assert!(
        snapshots.next(Duration::from_secs(20)).is_some(),
        "netmon printed no snapshot within 20 s"
    );

    let mut server = Guard(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(&loadgen)
            .args(["serve", "0", "4", &BYTES.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting loadgen serve"),
    );
    let server_out = Lines::new(server.0.stdout.take().unwrap());
    let ready: Value = serde_json::from_str(
        &server_out
            .next(Duration::from_secs(10))
            .expect("loadgen serve never said ready"),
    )
    .unwrap();
    let server_pid = ready["ready"].as_u64().unwrap();
    let port = ready["port"].as_u64().unwrap();

    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&loadgen)
        .args(["connect", &format!("127.0.0.1:{port}"), RATE, SECS])
        .args([&BYTES.to_string(), "2"])
        .output()
        .expect("running loadgen connect");
    assert!(out.status.success(), "loadgen connect: {out:?}");
    let truth: Value = serde_json::from_slice(&out.stdout).unwrap();
    let connections = truth["connections"].as_u64().unwrap();
    assert_eq!(truth["failed"], 0, "{truth}");
    assert!(connections > 0, "{truth}");
    let clients = loadgen_clients(&truth);
    let sent: u64 = clients.iter().map(|c| c.1).sum();
    let received: u64 = clients.iter().map(|c| c.2).sum();
    assert_eq!(sent, connections * BYTES, "loadgen itself: {truth}");
    eprintln!("{connections} connections, {sent} bytes sent, {received} answered");

    // Each client's bytes, and the server's (it received everything the clients sent and
    // answered one byte per connection), as netmon ends up counting them.
    let want: Vec<(u64, (u64, u64))> = clients
        .iter()
        .map(|&(pid, tx, rx)| (pid, (tx, rx)))
        .chain([(server_pid, (received, sent))])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let Some(line) = snapshots.next(Duration::from_secs(5)) else {
            break;
        };
        last = serde_json::from_str(&line).unwrap();
        if want.iter().all(|&(pid, b)| bytes(&last, pid) == b) {
            break;
        }
    }
    let _ = server.0.kill();
    unsafe { libc::kill(netmon.0.id() as i32, libc::SIGTERM) };
    let _ = netmon.0.wait();
    for &(pid, b) in &want {
        assert_eq!(
            bytes(&last, pid),
            b,
            "pid {pid}: netmon's (tx, rx) vs truth; process row: {:?}",
            process(&last, pid)
        );
    }
    let opened = process(&last, server_pid).unwrap()["opened"]["tcp"]
        .as_u64()
        .unwrap();
    assert_eq!(opened, connections, "connections the server accepted");
    let lost: Vec<&Value> = last["lost"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["count"].as_u64() != Some(0))
        .collect();
    assert!(lost.is_empty(), "netmon lost: {lost:?}");
    for reason in ["payload_map_full", "wire_map_full"] {
        let u = last["unattributed"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["reason"] == reason)
            .map_or(0, |u| u["bytes"].as_u64().unwrap_or(0));
        assert_eq!(u, 0, "{reason}");
    }
    // Folded, not kept: the table lists live connections only.
    let rows = process(&last, server_pid).unwrap()["connections"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        rows < 100,
        "{rows} connection rows for the server after the churn"
    );
}
