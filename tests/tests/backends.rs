//! Rungs this kernel lacks fail with one line saying why, and `doctor` agrees with `run`.
use std::process::Command;

use netmon_tests::{netmon_bin, privileged};

fn kprobes_available() -> bool {
    std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn forcing_a_missing_rung_is_a_clear_error() {
    if !privileged() {
        return;
    }
    if kprobes_available() {
        eprintln!("skipping: this kernel has kprobes");
        return;
    }
    let out = Command::new(netmon_bin())
        .args(["run", "--once", "--backend", "kprobe"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("backend kprobe is not available here: kprobes unavailable"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn doctor_names_the_rung_run_uses() {
    if !privileged() {
        return;
    }
    let out = Command::new(netmon_bin())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rungs = report["rungs"].as_array().unwrap();
    let first_ok = rungs.iter().find(|r| r["ok"] == true).unwrap();
    assert_eq!(report["backend"], first_ok["name"]);
    // Every failed rung says why; every core hook attached.
    for r in rungs.iter().filter(|r| r["ok"] == false) {
        assert!(!r["detail"].as_str().unwrap().is_empty(), "{r}");
    }
    for h in report["core"].as_array().unwrap() {
        assert_eq!(h["ok"], true, "{h}");
    }
    if !kprobes_available() {
        let k = rungs.iter().find(|r| r["name"] == "kprobe").unwrap();
        assert!(
            k["detail"].as_str().unwrap().contains("CONFIG_KPROBES"),
            "{k}"
        );
    }
    // `run` picks the same rung.
    let run = Command::new(netmon_bin())
        .args(["run", "--once", "--json", "--interval", "0.1"])
        .output()
        .unwrap();
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&run.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["backend"], report["backend"]);
}

/// Every payload rung that works on this kernel (per `doctor`) gives exact bytes, not just
/// the one `auto` picks: TCP v4 and unconnected UDP v6, client and server side.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn every_working_rung_is_exact() {
    if !privileged() {
        return;
    }
    let out = Command::new(netmon_bin())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tried = Vec::new();
    for rung in report["rungs"].as_array().unwrap() {
        let name = rung["name"].as_str().unwrap();
        if rung["ok"] != true || name == "cgroup" {
            eprintln!("rung {name}: not tested here ({})", rung["detail"]);
            continue;
        }
        let flag = name.replace('_', "-");
        for (tag, args) in [
            ("t", vec!["tcp", "4", "654321", "12345"]),
            (
                "u",
                vec!["udp", "6", "unconnected", "120000", "1000", "9999"],
            ),
        ] {
            let o = netmon_tests::scenario(
                &format!("{}{tag}", &name[..2]),
                &args,
                &["--backend", &flag],
            );
            assert_eq!(o.snapshot["backend"], name);
            let (c, s) = (o.truth_u64("client_pid"), o.truth_u64("server_pid"));
            let want_c = (o.truth_u64("client_sent"), o.truth_u64("client_received"));
            let want_s = (o.truth_u64("server_sent"), o.truth_u64("server_received"));
            assert_eq!(o.bytes(c), want_c, "rung {name}, {args:?}, client");
            assert_eq!(o.bytes(s), want_s, "rung {name}, {args:?}, server");
        }
        tried.push(name.to_string());
    }
    eprintln!("exact on rungs: {tried:?}");
    assert!(!tried.is_empty(), "no payload rung works here");
}
