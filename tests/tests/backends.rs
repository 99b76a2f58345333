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
