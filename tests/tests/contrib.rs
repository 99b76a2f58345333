//! The shipped contrib/ files, checked without root: the alert rules load and their unit tests
//! pass under promtool, the dashboard and the rules name only metrics netmon exports, and the
//! systemd unit grants exactly the capabilities contrib/README.md explains.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use netmon_tests::prom::{TempDir, contrib_dir, netmon_identifiers};
use serde_json::Value;

/// Every metric netmon exports. Histograms add `_bucket`, `_sum` and `_count`.
const METRICS: &[&str] = &[
    "netmon_process_network_transmit_bytes_total",
    "netmon_process_network_receive_bytes_total",
    "netmon_process_network_transmit_packets_total",
    "netmon_process_network_receive_packets_total",
    "netmon_process_connections_opened_total",
    "netmon_process_tcp_retransmits_total",
    "netmon_process_tcp_rto_timeouts_total",
    "netmon_process_tcp_resets_total",
    "netmon_process_tcp_rtt_seconds",
    "netmon_process_tcp_handshake_seconds",
    "netmon_process_tcp_closes_total",
    "netmon_process_tcp_zero_windows_total",
    "netmon_process_watched_network_connections_total",
    "netmon_process_info",
    "netmon_unattributed_bytes_total",
    "netmon_events_lost_total",
    "netmon_tcp_resets_without_socket_total",
    "netmon_build_info",
    "netmon_tracked_processes",
    "netmon_other_processes",
    // Host events serve records; the alert rules use it, the dashboard does not (yet).
    "netmon_events_total",
];
const HISTOGRAMS: &[&str] = &[
    "netmon_process_tcp_rtt_seconds",
    "netmon_process_tcp_handshake_seconds",
];

fn is_exported(name: &str) -> bool {
    METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            name.strip_prefix(h)
                .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// promtool, or None when the caller opted out with NETMON_SKIP_PROMTOOL=1.
fn promtool() -> Option<PathBuf> {
    if std::env::var("NETMON_SKIP_PROMTOOL").as_deref() == Ok("1") {
        eprintln!("skipping promtool checks: NETMON_SKIP_PROMTOOL=1");
        return None;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None => panic!(
            "promtool not found: run scripts/setup.sh (Debian package prometheus), \
             or set NETMON_SKIP_PROMTOOL=1 to skip these checks"
        ),
    }
}

fn run_promtool(promtool: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(contrib_dir().join("prometheus"))
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_load_and_their_unit_tests_pass() {
    let Some(promtool) = promtool() else {
        return;
    };
    let checked = run_promtool(&promtool, &["check", "rules", "netmon-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = run_promtool(&promtool, &["test", "rules", "netmon-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    run_promtool(&promtool, &["check", "config", "prometheus.yml"]);
}

/// Every alert in the rules file has a test case that expects it to fire.
#[test]
fn every_alert_has_a_firing_test_case() {
    let rules = read(&contrib_dir().join("prometheus/netmon-alerts.yml"));
    let tests = read(&contrib_dir().join("prometheus/netmon-alerts.test.yml"));
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 7, "{alerts:?}");
    for a in alerts {
        // A case that expects this alert lists it with at least one exp_labels entry.
        let case = tests
            .split(&format!("alertname: {a}\n"))
            .skip(1)
            .any(|rest| {
                rest.lines()
                    .next()
                    .is_some_and(|l| l.trim() == "exp_alerts:")
            });
        assert!(
            case,
            "no test case in netmon-alerts.test.yml expects {a} to fire"
        );
    }
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn dashboard_and_rules_name_only_exported_metrics() {
    let path = contrib_dir().join("grafana/netmon-dashboard.json");
    let dash: Value = serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let mut texts = Vec::new();
    strings(&dash, &mut texts);
    let rules = read(&contrib_dir().join("prometheus/netmon-alerts.yml"));
    texts.push(&rules);

    let named: BTreeSet<String> = texts.iter().flat_map(|t| netmon_identifiers(t)).collect();
    let unknown: Vec<&String> = named.iter().filter(|n| !is_exported(n)).collect();
    assert!(
        unknown.is_empty(),
        "not metrics netmon exports: {unknown:?}"
    );
    // The dashboard shows every per-process and global metric, not a subset.
    for m in METRICS {
        assert!(
            named.iter().any(|n| n.starts_with(m)),
            "{m} appears in no dashboard panel or rule"
        );
    }
}

#[test]
fn dashboard_has_datasource_and_filter_variables() {
    let dash: Value =
        serde_json::from_str(&read(&contrib_dir().join("grafana/netmon-dashboard.json"))).unwrap();
    let schema = dash["schemaVersion"].as_u64().unwrap_or(0);
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let vars = dash["templating"]["list"].as_array().expect("templating");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for v in ["instance", "comm", "unit"] {
        assert_eq!(var(v)["type"], "query", "${v}");
    }
    // Every query goes to the chosen data source and honours the instance filter.
    let mut targets = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            targets += 1;
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains("instance=~\"$instance\""),
                "{}: {expr}",
                p["title"]
            );
        }
    }
    assert!(targets >= 15, "only {targets} queries");

    // Panels fit the 24-column grid without overlapping, and ids are unique (Grafana keys
    // panel links and edits by id).
    let mut cells = std::collections::HashSet::new();
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().expect("gridPos"));
        assert!(x + w <= 24, "{} overflows the grid: {g}", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    p["title"]
                );
            }
        }
    }
}

/// `KEY=A B C` of a unit file, as a set.
fn unit_list(unit: &str, key: &str) -> BTreeSet<String> {
    let prefix = format!("{key}=");
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    assert_eq!(lines.len(), 1, "{key}= should appear once");
    lines[0].split_whitespace().map(str::to_string).collect()
}

/// The first cells `| `CAP_X` |` of the table under "## Capabilities" in contrib/README.md.
fn readme_caps(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n## Capabilities\n")
        .nth(1)
        .expect("contrib/README.md has no \"## Capabilities\" section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `CAP_"))
        .filter_map(|l| l.split('`').next())
        .map(|c| format!("CAP_{c}"))
        .collect()
}

/// What netmon itself checks for at start (`missing.push("CAP_…")` in its preflight).
fn caps_netmon_requires() -> BTreeSet<String> {
    let src = read(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../netmon/src/source/kernel/system.rs"),
    );
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("missing.push(\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn unit_capabilities_match_the_readme() {
    let unit = read(&contrib_dir().join("systemd/netmon.service"));
    let ambient = unit_list(&unit, "AmbientCapabilities");
    let bounding = unit_list(&unit, "CapabilityBoundingSet");
    assert_eq!(ambient, bounding, "ambient and bounding sets differ");
    let readme = readme_caps(&read(&contrib_dir().join("README.md")));
    assert_eq!(
        ambient, readme,
        "unit vs contrib/README.md capability table"
    );
    let required = caps_netmon_requires();
    assert!(required.len() >= 3, "preflight parse found {required:?}");
    assert!(
        required.is_subset(&ambient),
        "netmon requires {required:?}, the unit grants {ambient:?}"
    );
    assert!(
        !ambient.contains("CAP_SYS_ADMIN"),
        "the point is not to need it"
    );
    assert_eq!(unit_list(&unit, "DynamicUser").len(), 1);
    assert!(unit.contains("\nDynamicUser=yes\n"));
    assert!(unit.contains("\nNoNewPrivileges=yes\n"));
}

/// systemd's own parser accepts the unit and the README's drop-in. Its ExecStart binary must
/// exist, so a copy points at this test executable instead of /usr/local/bin/netmon.
#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipping test - systemd-analyze not installed");
        return;
    };
    assert!(out.status.success());
    let unit = read(&contrib_dir().join("systemd/netmon.service"));
    assert!(
        unit.contains("ExecStart=/usr/local/bin/netmon serve"),
        "{unit}"
    );
    let exe = std::env::current_exe().unwrap();
    let copy = unit.replace("/usr/local/bin/netmon", &exe.display().to_string());
    let dir = TempDir::new("unit");
    let path = dir.0.join("netmon.service");
    std::fs::write(&path, copy).unwrap();
    // The README's TLS drop-in, as `systemctl edit` would place it, is checked with the unit.
    let readme = read(&contrib_dir().join("README.md"));
    let dropin = readme
        .split("```ini\n# systemctl edit netmon\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("contrib/README.md has no ```ini block for `systemctl edit netmon`");
    assert!(dropin.contains("LoadCredential="), "{dropin}");
    let dropin_dir = dir.0.join("netmon.service.d");
    std::fs::create_dir(&dropin_dir).unwrap();
    std::fs::write(
        dropin_dir.join("override.conf"),
        dropin.replace("/usr/local/bin/netmon", &exe.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("running systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify:\n{text}");
    // verify prints warnings (unknown keys, bad values) but still exits 0 for many of them.
    assert!(text.trim().is_empty(), "systemd-analyze verify:\n{text}");
}
