//! Who a process is, not only its pid: short-lived processes started inside a systemd-style
//! cgroup get its unit, from the cgroup id the kernel records with each socket, even when they
//! are gone before /proc could be read.
use std::path::PathBuf;

use netmon_tests::{privileged, scenario_in};

/// A cgroup the test creates under the v2 hierarchy and removes (after its processes exit).
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(PathBuf::from)
        .expect("a cgroup2 mount")
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn short_lived_processes_get_their_cgroups_unit() {
    assert!(privileged(), "needs root: run under cargo xtask test");
    let unit = format!("nmid-{}.service", std::process::id());
    let dir = cgroup2_root().join("nmid.slice").join(&unit);
    std::fs::create_dir_all(&dir).unwrap();
    let cg = Cgroup(dir);
    let o = scenario_in(
        "ident",
        &[],
        Some(&cg.0),
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
