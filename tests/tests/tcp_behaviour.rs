//! Retransmits, resets, RTT samples and connections per process, against what the kernel's own
//! counters and a script with a known outcome say (tests/scripts/tcp_behaviour.py).
use std::path::PathBuf;

use netmon_tests::{Outcome, privileged, require_tools, scenario_with};
use serde_json::Value;

const ROOT: &str = "needs root: run under cargo xtask test";

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/tcp_behaviour.py")
        .display()
        .to_string()
}

fn tcp(o: &Outcome) -> (&Value, &Value) {
    let pid = o.truth["pid"].as_u64().unwrap_or_default();
    let p = o.process(pid);
    (&p["tcp"], &p["opened"])
}

fn run(tag: &str, setup: &[&[&str]], args: &[&str]) -> Outcome {
    let s = script();
    let mut program = vec!["python3", s.as_str()];
    program.extend_from_slice(args);
    let mut o = scenario_with(tag, setup, &program, &[]);
    // The script's pid is the one it announced; keep it next to its ground truth.
    let pid = o.snapshot["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["comm"] == "python3"))
        .map(|p| p["pid"].clone())
        .unwrap_or(Value::Null);
    o.truth["pid"] = pid;
    o
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn resets_rtt_and_connections_are_counted_per_process() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3"]) {
        return;
    }
    let o = run("tcp-rst", &[], &["resets"]);
    assert_eq!(o.truth["refused"], true, "{}", o.truth);
    let (t, opened) = tcp(&o);
    assert_eq!(t["resets_sent"], o.truth["resets_sent"], "{t}");
    assert_eq!(t["resets_received"], o.truth["resets_received"], "{t}");
    // Machine-wide (every namespace), so other traffic may add to it; ours is at least there.
    assert!(
        o.snapshot["tcp_resets_without_socket"].as_u64()
            >= o.truth["resets_without_socket"].as_u64(),
        "RST for the closed port: {}",
        o.snapshot["tcp_resets_without_socket"]
    );
    assert_eq!(opened["tcp"], o.truth["tcp_opened"], "{opened}");
    let count = t["rtt_count"].as_u64().unwrap();
    assert!(count > 10, "RTT samples: {t}");
    let buckets: Vec<u64> = t["rtt_buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(buckets.iter().sum::<u64>(), count, "{t}");
    // The bulk client's last RTT callback recorded the srtt TCP_INFO reports afterwards, so
    // its bucket (i holds samples of at most 2^i µs, > 2^(i-1)) has a sample.
    let srtt = o.truth["client_srtt_us"].as_u64().unwrap();
    let b = (64 - srtt.saturating_sub(1).leading_zeros()) as usize;
    eprintln!("RTT: {count} samples, client srtt {srtt} µs, buckets {buckets:?}");
    assert!(
        buckets[b.min(23)] > 0,
        "srtt {srtt} µs: bucket {b} empty in {buckets:?}"
    );
    // Loopback: no sample above 65.536 ms (bucket 16).
    assert_eq!(buckets[17..].iter().sum::<u64>(), 0, "{buckets:?}");
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn retransmits_match_the_kernels_count() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3", "nft"]) {
        return;
    }
    // Drop 5% of arriving data segments (not handshakes or ACKs). At input, not output: a
    // segment dropped on its way out is not lost, TCP just sends it again as new data.
    let o = run(
        "tcp-loss",
        &[
            &["nft", "add", "table", "inet", "nmloss"],
            &[
                "nft",
                "add",
                "chain",
                "inet",
                "nmloss",
                "in",
                "{ type filter hook input priority 0 ; }",
            ],
            &[
                "nft", "add", "rule", "inet", "nmloss", "in", "meta", "l4proto", "tcp", "meta",
                "length", ">", "500", "numgen", "random", "mod", "100", "<", "5", "drop",
            ],
        ],
        &["loss"],
    );
    let sent = o.truth["sent"].as_u64().unwrap();
    let received: u64 = o.truth["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap())
        .sum();
    assert_eq!(received, sent, "every byte arrived despite the loss");
    let (t, _) = tcp(&o);
    let seen = t["retransmits"].as_u64().unwrap();
    assert!(
        o.tcp_retrans_segs > 0,
        "5% loss on 2000 segments retransmitted nothing"
    );
    assert!(seen > 0, "{t}");
    eprintln!(
        "retransmits: netmon {seen}, kernel RetransSegs {} (failed {})",
        o.tcp_retrans_segs, o.tcp_retrans_fail
    );
    // One segment per retransmission (1000-byte writes, TCP_NODELAY, 64 KiB MSS on lo); the
    // kernel's RetransSegs also counts attempts that failed to send, netmon does not.
    assert_eq!(
        seen,
        o.tcp_retrans_segs - o.tcp_retrans_fail,
        "netmon {t} vs RetransSegs {} - TCPRetransFail {}",
        o.tcp_retrans_segs,
        o.tcp_retrans_fail
    );
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn a_stalled_connection_shows_rto_expiries_and_their_doubling() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3", "nft"]) {
        return;
    }
    let o = run("tcp-stall", &[], &["stall"]);
    let received: u64 = o.truth["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap())
        .sum();
    assert_eq!(
        received,
        o.truth["sent"].as_u64().unwrap(),
        "the data got through after"
    );
    let (t, _) = tcp(&o);
    // 1.5 s of silence with a 200 ms minimum RTO: expiries at ~200, 600 and 1400 ms, each
    // doubling the timer; at least two in a row whatever the scheduling.
    let timeouts = t["rto_timeouts"].as_u64().unwrap();
    let in_a_row = t["rto_backoff_max"].as_u64().unwrap();
    eprintln!("RTO: {timeouts} expiries, {in_a_row} in a row");
    assert!(timeouts >= 2, "{t}");
    assert!(in_a_row >= 2, "{t}");
    assert!(
        t["retransmits"].as_u64().unwrap() >= timeouts,
        "each expiry retransmits: {t}"
    );
}

/// The samples of a bucketed histogram (bucket i: at most 2^i µs, more than 2^(i-1)).
fn buckets(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().map(|b| b.as_u64().unwrap_or_default()).collect())
        .unwrap_or_default()
}

fn bucket_of(us: u64) -> usize {
    (64 - us.saturating_sub(1).leading_zeros()) as usize
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn handshakes_closes_and_zero_windows_belong_to_each_side() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3", "nft"]) {
        return;
    }
    let s = script();
    let o = scenario_with("tcp-life", &[], &["python3", s.as_str(), "lifecycle"], &[]);
    let t = &o.truth;
    let n = t["connections"].as_u64().unwrap();
    let client = &o.process(t["client_pid"].as_u64().unwrap())["tcp"];
    let server = &o.process(t["server_pid"].as_u64().unwrap())["tcp"];
    eprintln!("client {client}\nserver {server}\ntruth {t}");

    // Who sent the first FIN, seen from both ends; the reset connection is neither.
    assert_eq!(client["closes_local"], t["client_first"], "{client}");
    assert_eq!(client["closes_remote"], t["server_first"], "{client}");
    assert_eq!(server["closes_local"], t["server_first"], "{server}");
    assert_eq!(server["closes_remote"], t["client_first"], "{server}");

    // One handshake sample per connection on each side.
    for (side, tcp) in [("client", client), ("server", server)] {
        assert_eq!(tcp["handshake_count"].as_u64(), Some(n), "{side}: {tcp}");
        assert_eq!(
            buckets(&tcp["handshake_buckets"]).iter().sum::<u64>(),
            n,
            "{side}: {tcp}"
        );
    }
    // The dropped SYN: exactly one client handshake above 2^19 µs, no longer than the connect
    // the script timed around it; the server's side of it (SYN-ACK to ACK) stays short.
    let slow = t["slow_connect_us"].as_u64().unwrap();
    assert!(slow > 900_000, "the SYN was not retransmitted: {slow} µs");
    let cb = buckets(&client["handshake_buckets"]);
    let long: Vec<usize> = (20..cb.len()).filter(|&i| cb[i] > 0).collect();
    assert_eq!(cb[20..].iter().sum::<u64>(), 1, "{cb:?}");
    assert!(long[0] <= bucket_of(slow), "{cb:?} vs connect {slow} µs");
    assert!(
        buckets(&server["handshake_buckets"]).len() <= 20,
        "{server}"
    );
    assert!(
        client["handshake_sum_us"].as_u64().unwrap() > 500_000,
        "{client}"
    );

    // The server stopped reading: its window went to zero, the client saw it go to zero.
    let adv = o.tcp_to_zero_window_adv;
    eprintln!("zero windows: kernel TCPToZeroWindowAdv {adv}");
    assert!(adv >= 1, "the receive window never closed");
    assert_eq!(server["zero_windows_sent"].as_u64(), Some(adv), "{server}");
    assert_eq!(
        client["zero_windows_received"].as_u64(),
        Some(adv),
        "{client}"
    );
    assert_eq!(client["zero_windows_sent"], 0, "{client}");
    assert_eq!(server["zero_windows_received"], 0, "{server}");
}
