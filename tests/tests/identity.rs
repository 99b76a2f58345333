//! Who a process is, not only its pid: short-lived processes started inside a systemd-style
//! cgroup get its unit, from the cgroup id the kernel records with each socket, even when they
//! are gone before /proc could be read.
use netmon_tests::{Cgroup, privileged, scenario_in};

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
