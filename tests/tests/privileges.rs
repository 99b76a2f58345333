//! Without root netmon names the capabilities it lacks and how to grant them.
use std::process::Command;

use netmon_tests::{netmon_bin, privileged};

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn unprivileged_user_is_told_which_capabilities_are_missing() {
    if !privileged() {
        return;
    }
    // setpriv (util-linux) drops to nobody with no capabilities at all.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(netmon_bin())
        .args(["run", "--once"])
        .output()
        .expect("running setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "setcap"] {
        assert!(stderr.contains(cap), "{stderr}");
    }
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn root_without_net_admin_is_told_exactly_that() {
    if !privileged() {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-net_admin"])
        .arg(netmon_bin())
        .args(["run", "--once"])
        .output()
        .expect("running setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("netmon: error: missing capabilities CAP_NET_ADMIN:"),
        "{stderr}"
    );
}
