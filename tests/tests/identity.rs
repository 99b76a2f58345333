//! Who a process is, not only its pid: short-lived processes started inside a systemd-style
//! cgroup get its unit, from the cgroup id the kernel records with each socket, even when they
//! are gone before /proc could be read.
use netmon_tests::{Cgroup, privileged, scenario_in, scenario_with};

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn short_lived_processes_get_their_cgroups_unit() {
    assert!(privileged(), "needs root: run under cargo xtask test");
    let unit = format!("nmid-{}.service", std::process::id());
    let cg = Cgroup::new("nmid.slice", &unit);
    let o = scenario_in(
        "ident",
        &[],
        Some(&cg.dir),
        &[
            netmon_tests::trafficgen_bin().to_str().unwrap(),
            "children",
            "300",
            "1000",
        ],
        &[],
    );
    let kids = o.truth_u64s("children");
    assert_eq!(kids.len(), 300);
    let rows = o.snapshot["processes"].as_array().unwrap();
    let mut wrong = Vec::new();
    for &k in &kids {
        let row = rows.iter().find(|p| p["pid"] == k);
        let got = row.map(|p| (p["unit"].as_str().unwrap_or(""), p["tx_bytes"].as_u64()));
        if got != Some((unit.as_str(), Some(1000))) {
            wrong.push((k, got.map(|(u, b)| (u.to_string(), b))));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 300 children without their unit or bytes: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let cgroup = rows
        .iter()
        .find(|p| p["pid"] == kids[0])
        .map(|p| p["cgroup"].to_string())
        .unwrap_or_default();
    assert!(cgroup.contains(&format!("/nmid.slice/{unit}")), "{cgroup}");
}

/// A program the test starts as `nobody` shows the test's pid as its parent and `nobody` as its
/// user, and its forked children show it as theirs: three generations, from the kernel's
/// records and /proc.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn parent_and_user_of_every_row() {
    if !privileged() || !netmon_tests::require_tools(&["setpriv"]) {
        return;
    }
    let nobody = netmon_tests::passwd_name(65534);
    let gen_bin = netmon_tests::trafficgen_bin();
    // `ip netns exec` and setpriv both exec: the traffic program is the test's own child.
    let o = scenario_with(
        "parent",
        &[],
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            gen_bin.to_str().unwrap(),
            "children",
            "4",
            "1000",
        ],
        &[],
    );
    let kids = o.truth_u64s("children");
    assert_eq!(kids.len(), 4);
    // The watched program: its row is there from the start, traffic or not.
    let pid = o.truth_u64("parent_pid");
    let parent = o.process(pid).clone();
    let me = u64::from(std::process::id());
    assert_eq!(parent["ppid"], me, "{parent}");
    assert_eq!(
        (&parent["uid"], parent["user"].as_str()),
        (&65534.into(), Some(nobody.as_str()))
    );
    let server = o.truth_u64("server_pid");
    let received = o.process(server);
    assert_eq!(received["ppid"], pid, "{received}");
    assert_eq!(received["rx_bytes"], 4000, "{received}");
    for &k in &kids {
        let row = o.process(k);
        assert_eq!(row["ppid"], pid, "{row}");
        assert_eq!(row["user"].as_str(), Some(nobody.as_str()), "{row}");
        assert_eq!(row["tx_bytes"], 1000, "{row}");
    }
}
