//! `netmon serve` under real scrapers: Debian's Prometheus reads exact per-process bytes from
//! it, the systemd unit's capabilities (and nothing more) are enough to run it, 10,000
//! short-lived processes stay within top-K series with exact sums and bounded memory, and wrk
//! hammering the endpoints neither fails nor stalls the event pipeline.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use netmon_tests::{
    privileged,
    prom::{
        Prometheus, Sample, Serve, TempDir, Traffic, contrib_dir, http_get, require_tool, snmp,
        wait_for,
    },
};
use serde_json::Value;

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Sum of one metric over every series.
fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// The value netmon's /metrics has for `name{pid=...}`.
fn for_pid(samples: &[Sample], name: &str, pid: u64) -> Option<f64> {
    let pid = pid.to_string();
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("pid") == Some(&pid))
        .map(|s| s.value)
}

/// `promtool check metrics` on a real /metrics body: the lint Prometheus itself applies.
fn promtool_check_metrics(body: &str) {
    use std::io::Write;
    let mut child = Command::new(require_tool("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "promtool check metrics:\n{text}"
    );
}

/// Every PromQL expression of the shipped dashboard, with its variables filled in.
fn dashboard_queries() -> Vec<(String, String)> {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(contrib_dir().join("grafana/netmon-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$comm", ".*")
                .replace("$unit", ".*");
            out.push((p["title"].as_str().unwrap_or("").to_string(), expr));
        }
    }
    out
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn prometheus_reads_exact_transmit_bytes_from_serve() {
    if !privileged() {
        return;
    }
    // top-k well above what this host runs, so the test's process keeps its own series
    // whatever else moves bytes meanwhile.
    let serve = Serve::start(
        "e2e",
        &[],
        &[
            "--interval",
            "0.2",
            "--metrics-pid-label",
            "--metrics-top-k",
            "100000",
        ],
    );
    let prom = Prometheus::start(serve.addr);
    let up = wait_for(Duration::from_secs(20), || {
        (prom.scalar("up{job=\"netmon\"}") == Some(1.0)).then_some(())
    });
    assert!(
        up.is_some(),
        "Prometheus never scraped netmon: {}",
        prom.log()
    );

    const N: u64 = 3_210_987;
    let mut traffic = Traffic::start("e2e", &["tcp", "4", &N.to_string(), "0"]);
    traffic.say("go");
    let truth = traffic.result(Duration::from_secs(60));
    traffic.wait();
    assert_eq!(u64_of(&truth, "client_sent"), N, "trafficgen itself");
    assert_eq!(u64_of(&truth, "server_received"), N, "trafficgen itself");
    let (client, server) = (u64_of(&truth, "client_pid"), u64_of(&truth, "server_pid"));

    let tx = format!("netmon_process_network_transmit_bytes_total{{pid=\"{client}\"}}");
    let rx = format!("netmon_process_network_receive_bytes_total{{pid=\"{server}\"}}");
    let mut last = (None, None);
    let exact = wait_for(Duration::from_secs(20), || {
        last = (prom.scalar(&tx), prom.scalar(&rx));
        (last == (Some(N as f64), Some(N as f64))).then_some(())
    });
    let metrics = serve.metrics();
    assert!(
        exact.is_some(),
        "through Prometheus: client tx {:?}, server rx {:?}, want {N} each; netmon's /metrics: \
         tx {:?}, rx {:?}",
        last.0,
        last.1,
        for_pid(
            &metrics,
            "netmon_process_network_transmit_bytes_total",
            client
        ),
        for_pid(
            &metrics,
            "netmon_process_network_receive_bytes_total",
            server
        ),
    );
    eprintln!("Prometheus: {tx} = {N}, {rx} = {N}");

    // Prometheus ingested every family, and its own linter finds nothing wrong with them.
    let ingested = prom
        .query("count by (__name__) ({job=\"netmon\", __name__=~\"netmon_.*\"})")
        .unwrap();
    let names: BTreeSet<&str> = ingested
        .iter()
        .filter_map(|r| r["metric"]["__name__"].as_str())
        .collect();
    eprintln!("families in Prometheus: {names:?}");
    for want in [
        "netmon_process_network_transmit_bytes_total",
        "netmon_process_network_receive_bytes_total",
        "netmon_build_info",
    ] {
        assert!(names.contains(want), "{want} not ingested: {names:?}");
    }
    promtool_check_metrics(&serve.get("/metrics"));

    // Every dashboard query is valid PromQL for this Prometheus.
    let queries = dashboard_queries();
    assert!(!queries.is_empty());
    for (title, q) in &queries {
        if let Err(e) = prom.query(q) {
            panic!("dashboard panel {title:?}: {e}\n{q}");
        }
    }
    eprintln!("{} dashboard queries evaluated", queries.len());
}

/// The capability list of contrib/systemd/netmon.service, for setpriv (`+bpf,+perfmon,…`).
fn unit_caps() -> Vec<String> {
    let unit = std::fs::read_to_string(contrib_dir().join("systemd/netmon.service")).unwrap();
    unit.lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities= in the unit")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

/// Capability numbers (linux/capability.h) of the names the unit uses.
fn cap_number(name: &str) -> u32 {
    match name {
        "dac_read_search" => 2,
        "net_admin" => 12,
        "sys_ptrace" => 19,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("capability {other} has no number here; add it"),
    }
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::trim))
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
        .to_string()
}

/// The file-system side of the unit's sandbox, for `sh -c`: ProtectSystem=strict (all but
/// /dev, /proc and /sys read-only), ProtectKernelTunables and ProtectControlGroups (/sys with
/// cgroupfs, bpffs and tracefs, and /proc/sys read-only), PrivateTmp and ProtectHome. Runs
/// "$@" in the mount namespace `unshare --mount --propagation private` gave it, so nothing
/// leaks out. Only `-o` mount options, which util-linux and busybox (the vm-test guests) share.
const SANDBOX: &str = r#"set -e
ro_tree() {
  top=$1; shift
  awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
    case "$m" in "$top"|"${top%/}"/*) ;; *) continue ;; esac
    skip=
    for ex in "$@"; do case "$m" in "$ex"|"$ex"/*) skip=1 ;; esac; done
    [ -n "$skip" ] || mount -o remount,bind,ro "$m" "$m"
  done
}
# The netmon binary may live under /tmp or a home directory (a CI clone): keep its directory
# visible through the masks, as the unit would see an installed /usr/bin/netmon.
bin_dir=${NETMON_BIN_DIR:?}
cd "$bin_dir"
mount -o rbind / /
ro_tree / /dev /proc /sys
ro_tree /sys
mount -o bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys /proc/sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
for h in /home /root /run/user; do if [ -d "$h" ]; then mount -t tmpfs tmpfs "$h"; fi; done
# The shell's working directory is still the hidden one: bind it back (-c: no path lookup).
if [ ! -x "$bin_dir/netmon" ]; then mkdir -p "$bin_dir"; mount -c --bind /proc/self/cwd "$bin_dir"; fi
cd /
exec "$@"
"#;

/// What the systemd unit does, without systemd: a non-root user (nobody, as DynamicUser would
/// allocate one) holding exactly the unit's capabilities, optionally inside the unit's
/// read-only file-system sandbox. netmon must load, serve, and count a root process's traffic
/// exactly.
fn serve_as_the_unit_would(tag: &str, sandbox: bool, backend: &str) {
    let caps = unit_caps();
    let list = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    require_tool("setpriv", "util-linux");
    let mut wrapper: Vec<String> = Vec::new();
    if sandbox {
        require_tool("unshare", "util-linux");
        // unshare execs (no fork), so the child's pid ends up being netmon's.
        let bin_dir = netmon_tests::netmon_bin()
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        for a in [
            "env",
            &format!("NETMON_BIN_DIR={bin_dir}"),
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            SANDBOX,
            "sh",
        ] {
            wrapper.push(a.into());
        }
    }
    wrapper.extend([
        "setpriv".to_string(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        format!("--inh-caps={list}"),
        format!("--ambient-caps={list}"),
        format!("--bounding-set={list}"),
    ]);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let serve = Serve::start(
        tag,
        &wrapper,
        &[
            "--interval",
            "0.2",
            "--metrics-pid-label",
            "--metrics-top-k",
            "100000",
            "--backend",
            backend,
        ],
    );

    let uid = status_field(serve.pid(), "Uid");
    assert!(uid.split_whitespace().all(|u| u == "65534"), "Uid {uid}");
    let want: u64 = caps.iter().map(|c| 1u64 << cap_number(c)).sum();
    for field in ["CapEff", "CapBnd"] {
        let got = u64::from_str_radix(&status_field(serve.pid(), field), 16).unwrap();
        assert_eq!(
            got, want,
            "{field} {got:#x}, unit grants {caps:?} = {want:#x}"
        );
    }
    eprintln!("netmon serve runs as uid 65534 with {caps:?} only");
    if sandbox {
        // The sandbox took: what netmon reads is read-only in its mount namespace. Paths
        // through /proc/PID/root resolve in netmon's own root and mounts; access(2) answers
        // EROFS there even to root.
        let cgroup2 = std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            .expect("a cgroup2 mount");
        let mut writable = Vec::new();
        for p in [
            "/",
            "/usr",
            "/sys/kernel/tracing",
            "/proc/sys/net",
            &cgroup2,
        ] {
            let through = format!("/proc/{}/root{p}", serve.pid());
            assert!(Path::new(&through).exists(), "{through} missing");
            let c = std::ffi::CString::new(through).unwrap();
            // SAFETY: access(2) reads a NUL-terminated path we own.
            if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
                writable.push(p.to_string());
            }
        }
        assert!(writable.is_empty(), "writable in the sandbox: {writable:?}");
        let tmp = std::ffi::CString::new(format!("/proc/{}/root/tmp", serve.pid())).unwrap();
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::access(tmp.as_ptr(), libc::W_OK) },
            0,
            "the probe itself: /tmp is a private tmpfs and writable"
        );
    }

    let (send, answer) = (1_234_567u64, 76_543u64);
    let mut traffic = Traffic::start(
        "caps",
        &["tcp", "4", &send.to_string(), &answer.to_string()],
    );
    traffic.say("go");
    let truth = traffic.result(Duration::from_secs(60));
    traffic.wait();
    let (client, server) = (u64_of(&truth, "client_pid"), u64_of(&truth, "server_pid"));
    let want = [
        (
            client,
            u64_of(&truth, "client_sent"),
            u64_of(&truth, "client_received"),
        ),
        (
            server,
            u64_of(&truth, "server_sent"),
            u64_of(&truth, "server_received"),
        ),
    ];
    assert_eq!((want[0].1, want[1].1), (send, answer), "trafficgen itself");
    let mut got = Vec::new();
    let exact = wait_for(Duration::from_secs(15), || {
        got = want
            .iter()
            .map(|&(pid, _, _)| {
                serve
                    .process(pid)
                    .map(|p| (pid, u64_of(&p, "tx_bytes"), u64_of(&p, "rx_bytes")))
            })
            .collect();
        got.iter()
            .zip(&want)
            .all(|(g, w)| *g == Some(*w))
            .then_some(())
    });
    assert!(
        exact.is_some(),
        "(pid, tx, rx) netmon {got:?}, truth {want:?}; stderr: {}",
        serve.stderr()
    );
    let metrics = serve.metrics();
    assert_eq!(
        for_pid(
            &metrics,
            "netmon_process_network_transmit_bytes_total",
            client
        ),
        Some(send as f64)
    );
    // CAP_SYS_PTRACE at work: the exe and netns of a root process, read by uid 65534.
    let info = metrics
        .iter()
        .find(|s| {
            s.name == "netmon_process_info" && s.labels.get("pid") == Some(&client.to_string())
        })
        .unwrap_or_else(|| panic!("no netmon_process_info for pid {client}"));
    assert!(
        info.labels["exe"].ends_with("/trafficgen"),
        "exe not readable: {:?}",
        info.labels
    );
    assert!(
        !info.labels["netns"].is_empty(),
        "netns not readable: {:?}",
        info.labels
    );
    let build = metrics
        .iter()
        .find(|s| s.name == "netmon_build_info")
        .expect("netmon_build_info");
    if backend != "auto" {
        assert_eq!(build.labels["backend"], backend.replace('-', "_"));
    }
    eprintln!(
        "exact under uid 65534, sandbox {sandbox}, backend {}",
        build.labels["backend"]
    );
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn serve_runs_as_non_root_with_only_the_unit_capabilities() {
    if !privileged() {
        return;
    }
    serve_as_the_unit_would("caps", false, "auto");
}

/// The classic tracepoint rung reads tracefs (mode 0700 root): CAP_DAC_READ_SEARCH must carry
/// it, also with /sys read-only.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn serve_works_inside_the_unit_sandbox() {
    if !privileged() {
        return;
    }
    let tracepoint = "/sys/kernel/tracing/events/sock/sock_send_length";
    let backend = if std::path::Path::new(tracepoint).exists() {
        "tracepoint"
    } else {
        eprintln!("{tracepoint} missing (kernel < 6.3): auto backend");
        "auto"
    };
    serve_as_the_unit_would("sandbox", true, backend);
}

/// Per per-process family: how many processes (identity label sets: comm, unit, container,
/// pid) and how many series it has, and how many combinations of its other labels (proto,
/// direction, network; histogram buckets folded into one series).
#[derive(Debug, Default)]
struct Cardinality {
    processes: usize,
    series: usize,
    dimensions: usize,
}

fn cardinality_per_family(samples: &[Sample]) -> BTreeMap<String, Cardinality> {
    type Labels = Vec<(String, String)>;
    let mut sets: BTreeMap<String, [BTreeSet<Labels>; 3]> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name.starts_with("netmon_process_"))
    {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suf| s.name.strip_suffix(suf))
            .filter(|base| base.ends_with("_seconds"))
            .unwrap_or(&s.name)
            .to_string();
        let pick = |identity: bool| -> Labels {
            s.labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .filter(|(k, _)| {
                    ["comm", "unit", "container", "pid"].contains(&k.as_str()) == identity
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let all: Labels = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let e = sets.entry(family).or_default();
        e[0].insert(pick(true));
        e[1].insert(all);
        e[2].insert(pick(false));
    }
    sets.into_iter()
        .map(|(k, [p, s, d])| {
            let c = Cardinality {
                processes: p.len(),
                series: s.len(),
                dimensions: d.len(),
            };
            (k, c)
        })
        .collect()
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn ten_thousand_short_lived_processes_stay_within_top_k() {
    if !privileged() {
        return;
    }
    const COUNT: u64 = 10_000;
    const BYTES: u64 = 1_000;
    const TOP_K: usize = 20;
    // 100 MB for the state of 10,000 processes, plus the 16 MiB event ring, which user space
    // maps twice (the kernel's ring buffer layout), so up to 32 MiB count once read (it was
    // 4 MiB when the bound was set), plus
    // 12 MiB of allocator slack: peaks of 113-132 MB were seen depending on how many of the
    // processes were alive at once on a loaded machine.
    const MAX_HWM_KB: u64 = 144 * 1024;
    let started = Instant::now();
    let mut traffic = Traffic::start("swarm", &["swarm", &COUNT.to_string(), &BYTES.to_string()]);
    let parent = traffic.pid.to_string();
    // pid labels make every top-K process its own series: the bound is then real. The memory
    // bound below is the exporter's; what recording history adds under churn is measured by
    // the bench (`serve` against `serve --no-history`), so history is off here.
    let serve = Serve::start(
        "swarm",
        &[],
        &[
            "--no-history",
            "--pid",
            &parent,
            "--follow-children",
            "--interval",
            "0.2",
            "--metrics-pid-label",
            "--metrics-top-k",
            &TOP_K.to_string(),
        ],
    );
    traffic.say("go");
    let truth = traffic.result(Duration::from_secs(240));
    let sent = u64_of(&truth, "children_sent");
    let received = u64_of(&truth, "server_received");
    assert_eq!(sent, COUNT * BYTES, "trafficgen itself: {truth}");
    assert_eq!(received, sent, "trafficgen itself: {truth}");
    eprintln!(
        "{COUNT} processes sent {sent} bytes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut last = (0.0, 0.0);
    let exact = wait_for(Duration::from_secs(30), || {
        let m = serve.metrics();
        last = (
            sum(&m, "netmon_process_network_transmit_bytes_total"),
            sum(&m, "netmon_process_network_receive_bytes_total"),
        );
        (last == (sent as f64, received as f64)).then_some(m)
    });
    let metrics = exact.unwrap_or_else(|| {
        let m = serve.metrics();
        let gaps: Vec<String> = m
            .iter()
            .filter(|s| {
                (s.name == "netmon_events_lost_total"
                    || s.name == "netmon_unattributed_bytes_total")
                    && s.value > 0.0
            })
            .map(|s| format!("{}{:?} {}", s.name, s.labels, s.value))
            .collect();
        panic!(
            "sum over all series: tx {}, rx {}; truth {sent} each; losses netmon reports: \
             {gaps:?}; stderr: {}",
            last.0,
            last.1,
            serve.stderr()
        )
    });

    let families = cardinality_per_family(&metrics);
    eprintln!("per-process families with --metrics-top-k {TOP_K}:");
    for (family, c) in &families {
        eprintln!(
            "  {family}: {} processes, {} series ({} label combinations besides identity)",
            c.processes, c.series, c.dimensions
        );
    }
    assert!(
        families.contains_key("netmon_process_network_transmit_bytes_total"),
        "{families:?}"
    );
    for (family, c) in &families {
        assert!(
            c.processes <= TOP_K + 1,
            "{family}: {} processes have series, more than top-K {TOP_K} + other",
            c.processes
        );
        assert!(c.series <= c.processes * c.dimensions, "{family}: {c:?}");
    }
    let other = metrics.iter().any(|s| {
        s.name == "netmon_process_network_transmit_bytes_total"
            && s.labels.get("comm").map(String::as_str) == Some("other")
    });
    assert!(other, "10,000 processes and no comm=\"other\" series");

    let hwm = serve.status_kb("VmHWM").expect("VmHWM of netmon");
    let rss = serve.status_kb("VmRSS").expect("VmRSS of netmon");
    eprintln!(
        "netmon memory after {COUNT} processes: VmHWM {} MB, VmRSS {} MB; test took {:.1} s",
        hwm / 1024,
        rss / 1024,
        started.elapsed().as_secs_f64()
    );
    assert!(
        hwm <= MAX_HWM_KB,
        "netmon peaked at {hwm} kB (> {MAX_HWM_KB})"
    );
    traffic.say("exit");
    traffic.wait();
}

/// wrk's summary: requests/s, latency line, and every error it reports.
struct WrkReport {
    requests: u64,
    text: String,
}

fn wrk(url: &str, secs: u64) -> std::process::Child {
    Command::new(require_tool("wrk", "wrk"))
        .args(["-t1", "-c4", &format!("-d{secs}s"), "--latency", url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running wrk")
}

fn wrk_report(child: std::process::Child) -> WrkReport {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "  1234 requests in 5.00s, 12.34MB read"
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk output:\n{text}"));
    WrkReport { requests, text }
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn concurrent_scrapers_neither_fail_nor_stall_the_pipeline() {
    if !privileged() {
        return;
    }
    let serve = Serve::start(
        "wrk",
        &[],
        &[
            "--interval",
            "0.2",
            "--metrics-pid-label",
            "--metrics-top-k",
            "100000",
        ],
    );
    // About 1 MB/s for 9 s: traffic flows before, during and after the load.
    let mut traffic = Traffic::start("wrk", &["steady", "9", "10000"]);
    traffic.say("go");
    std::thread::sleep(Duration::from_secs(1));

    let metrics = wrk(&format!("http://{}/metrics", serve.addr), 5);
    let api = wrk(&format!("http://{}/api/v1/processes", serve.addr), 5);
    // While wrk runs, the sender's count must keep growing: snapshots still flow. The sender
    // is trafficgen's one forked child (other tests on this host may run trafficgens too).
    let sender: u64 = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", traffic.pid))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .expect("trafficgen's sender child");
    std::thread::sleep(Duration::from_secs(1));
    let sender_tx = || serve.process(sender).and_then(|p| p["tx_bytes"].as_u64());
    let during_a = sender_tx();
    std::thread::sleep(Duration::from_secs(2));
    let during_b = sender_tx();

    let reports = [
        ("/metrics", wrk_report(metrics)),
        ("/api/v1/processes", wrk_report(api)),
    ];
    for (path, r) in &reports {
        eprintln!("wrk {path}:\n{}", r.text);
        assert!(r.requests > 0, "{path}: no requests completed");
        assert!(
            !r.text.contains("Non-2xx") && !r.text.contains("Socket errors"),
            "{path}: wrk saw errors:\n{}",
            r.text
        );
    }

    let truth = traffic.result(Duration::from_secs(30));
    traffic.wait();
    let client = u64_of(&truth, "client_pid");
    let sent = u64_of(&truth, "client_sent");
    assert_eq!(u64_of(&truth, "server_received"), sent, "trafficgen itself");
    assert_eq!(sender, client, "the forked child is the sender");
    match (during_a, during_b) {
        (Some(a), Some(b)) => {
            assert!(b > a, "tx stuck at {a} while wrk ran: the pipeline stalled");
            eprintln!("during load the sender's tx grew {a} -> {b} in 2 s");
        }
        other => panic!("sender not visible while wrk ran: {other:?}"),
    }
    let mut last = None;
    let exact = wait_for(Duration::from_secs(10), || {
        last = serve.process(client).map(|p| u64_of(&p, "tx_bytes"));
        (last == Some(sent)).then_some(())
    });
    assert!(
        exact.is_some(),
        "after the load: netmon tx {last:?}, truth {sent}"
    );
    let m = serve.metrics();
    assert_eq!(
        for_pid(&m, "netmon_process_network_transmit_bytes_total", client),
        Some(sent as f64)
    );
}

// The stateful exporter's metrics: watched networks, TCP behaviour, top-K folding.

const WATCH: [&str; 4] = [
    "--watch-network",
    "lo=127.0.0.0/8",
    "--watch-network",
    "ten=10.0.0.0/8",
];

/// `name{pid="P", extra...}` of netmon's /metrics.
fn value(samples: &[Sample], name: &str, pid: u64, extra: &[(&str, &str)]) -> Option<f64> {
    let pid = pid.to_string();
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.get("pid") == Some(&pid)
                && extra
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
}

fn serve_with_watched_networks(tag: &str) -> Serve {
    let mut args = vec![
        "--interval",
        "0.2",
        "--metrics-pid-label",
        "--metrics-top-k",
        "100000",
    ];
    args.extend(WATCH);
    Serve::start(tag, &[], &args)
}

/// Waits until netmon's /metrics shows every `(pid, family, value)` (final counts from the
/// ground truth), then returns the whole scrape.
fn settled(serve: &Serve, want: &[(u64, &str, u64)]) -> Vec<Sample> {
    let mut last = Vec::new();
    wait_for(Duration::from_secs(15), || {
        let m = serve.metrics();
        last = want
            .iter()
            .map(|&(pid, name, _)| value(&m, name, pid, &[]))
            .collect();
        last.iter()
            .zip(want)
            .all(|(got, w)| *got == Some(w.2 as f64))
            .then_some(m)
    })
    .unwrap_or_else(|| panic!("netmon {last:?}, truth {want:?}; {}", serve.stderr()))
}

const TX: &str = "netmon_process_network_transmit_bytes_total";
const RX: &str = "netmon_process_network_receive_bytes_total";

/// A lossy TCP transfer (nftables drops one TCP packet in 20 on input in the test's namespace):
/// bytes stay exact, retransmits are counted within what the namespace's own MIB saw, the one
/// connection is opened once, to a watched network, with RTT samples, and the process has an
/// identity series.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn tcp_health_metrics_follow_the_kernel_counters() {
    if !privileged() {
        return;
    }
    let serve = serve_with_watched_networks("health");
    let (send, answer) = (20_000_000u64, 200_000u64);
    let mut traffic = Traffic::start(
        "health",
        &["tcp", "4", &send.to_string(), &answer.to_string()],
    );
    require_tool("nft", "nftables");
    let nft = |rule: &str| {
        let ok = Command::new("ip")
            .args(["netns", "exec", &traffic.ns.name, "nft", rule])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "nft {rule} in {}", traffic.ns.name);
    };
    // The table lives in the namespace and goes with it. Drops on input, not output: TCP
    // sees a locally dropped output packet as a failed send and sends it again later without
    // counting a retransmit. ~300 data segments make a run without any retransmit unlikely
    // (0.95^300).
    nft("add table inet nmprom");
    nft("add chain inet nmprom in { type filter hook input priority 0; }");
    nft("add rule inet nmprom in meta l4proto tcp numgen random mod 20 == 0 drop");
    traffic.say("go");
    let truth = traffic.result(Duration::from_secs(90));
    traffic.wait();
    let (client, server) = (u64_of(&truth, "client_pid"), u64_of(&truth, "server_pid"));
    // Payload stays exact under loss.
    let m = settled(
        &serve,
        &[
            (client, TX, u64_of(&truth, "client_sent")),
            (client, RX, u64_of(&truth, "client_received")),
            (server, TX, u64_of(&truth, "server_sent")),
            (server, RX, u64_of(&truth, "server_received")),
        ],
    );

    let retrans_segs = snmp(&traffic.ns, "Tcp", "RetransSegs");
    assert!(retrans_segs > 0, "dropping 5% caused no retransmit");
    let retransmits: f64 = [client, server]
        .iter()
        .filter_map(|&p| value(&m, "netmon_process_tcp_retransmits_total", p, &[]))
        .fold(0.0, |a, b| a + b);
    // The tracepoint fires per retransmitted skb, the MIB counts segments: an skb may carry
    // several, so netmon's count lies in (0, RetransSegs].
    assert!(
        retransmits > 0.0 && retransmits <= retrans_segs as f64,
        "netmon {retransmits} retransmits, namespace RetransSegs {retrans_segs}"
    );
    eprintln!("retransmits: netmon {retransmits}, RetransSegs {retrans_segs}");

    let active_opens = snmp(&traffic.ns, "Tcp", "ActiveOpens");
    assert_eq!(
        value(
            &m,
            "netmon_process_connections_opened_total",
            client,
            &[("proto", "tcp")]
        ),
        Some(active_opens as f64),
        "client connections opened vs ActiveOpens"
    );
    assert_eq!(
        value(
            &m,
            "netmon_process_watched_network_connections_total",
            client,
            &[("network", "lo")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &m,
            "netmon_process_watched_network_connections_total",
            client,
            &[("network", "ten")]
        )
        .unwrap_or(0.0)
            == 0.0,
        "a connection to 127.0.0.1 counted for 10.0.0.0/8"
    );

    let count = value(&m, "netmon_process_tcp_rtt_seconds_count", client, &[]).unwrap_or(0.0);
    let sum = value(&m, "netmon_process_tcp_rtt_seconds_sum", client, &[]).unwrap_or(0.0);
    assert!(count >= 1.0, "no RTT sample for the client");
    assert!(
        sum > 0.0 && sum / count < 1.0,
        "mean RTT {} s on loopback",
        sum / count
    );
    let inf = value(
        &m,
        "netmon_process_tcp_rtt_seconds_bucket",
        client,
        &[("le", "+Inf")],
    );
    assert_eq!(inf, Some(count), "+Inf bucket equals _count");

    let info = m
        .iter()
        .find(|s| {
            s.name == "netmon_process_info"
                && s.labels.get("pid").map(String::as_str) == Some(&client.to_string())
        })
        .unwrap_or_else(|| panic!("no netmon_process_info for pid {client}"));
    assert_eq!(info.value, 1.0);
    assert_eq!(info.labels["comm"], "trafficgen");
    assert!(
        info.labels["exe"].ends_with("/trafficgen"),
        "{:?}",
        info.labels
    );
    let ns_inode = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(format!("/run/netns/{}", traffic.ns.name)).unwrap(),
    );
    assert!(
        info.labels["netns"].contains(&ns_inode.to_string()),
        "netns {:?}, namespace inode {ns_inode}",
        info.labels["netns"]
    );
    for key in ["unit", "container"] {
        assert!(
            info.labels.contains_key(key),
            "{key} missing: {:?}",
            info.labels
        );
    }

    // Per-process series carry the identity labels, globals exist.
    for s in m.iter().filter(|s| s.name.starts_with("netmon_process_")) {
        for key in ["comm", "unit", "container", "pid"] {
            assert!(
                s.labels.contains_key(key),
                "{} lacks {key}: {:?}",
                s.name,
                s.labels
            );
        }
    }
    let tracked = m
        .iter()
        .find(|s| s.name == "netmon_tracked_processes")
        .expect("netmon_tracked_processes");
    assert!(tracked.value >= 1.0);
    assert!(m.iter().any(|s| s.name == "netmon_other_processes"));
}

/// An aborted connection: one RST sent by the client, one received by the server, as the
/// namespace's own counters say.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn tcp_resets_are_counted_per_direction() {
    if !privileged() {
        return;
    }
    let serve = serve_with_watched_networks("reset");
    let mut traffic = Traffic::start("reset", &["reset", "5000"]);
    traffic.say("go");
    let truth = traffic.result(Duration::from_secs(30));
    traffic.wait();
    assert_eq!(
        truth["server_saw_reset"], true,
        "trafficgen itself: {truth}"
    );
    let out_rsts = snmp(&traffic.ns, "Tcp", "OutRsts");
    assert_eq!(out_rsts, 1, "the namespace sent {out_rsts} RSTs");
    let (client, server) = (u64_of(&truth, "client_pid"), u64_of(&truth, "server_pid"));
    let m = settled(
        &serve,
        &[
            (client, TX, u64_of(&truth, "client_sent")),
            (server, RX, u64_of(&truth, "server_received")),
        ],
    );
    assert_eq!(
        value(
            &m,
            "netmon_process_tcp_resets_total",
            client,
            &[("direction", "sent")]
        ),
        Some(out_rsts as f64)
    );
    assert_eq!(
        value(
            &m,
            "netmon_process_tcp_resets_total",
            server,
            &[("direction", "received")]
        ),
        Some(1.0)
    );
}

/// A connected UDP socket counts as one connection opened, with proto="udp".
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn udp_sockets_count_as_connections_opened() {
    if !privileged() {
        return;
    }
    let serve = serve_with_watched_networks("udp");
    let mut traffic = Traffic::start("udp", &["udp", "4", "connected", "30000", "1200", "5000"]);
    traffic.say("go");
    let truth = traffic.result(Duration::from_secs(30));
    traffic.wait();
    let client = u64_of(&truth, "client_pid");
    let m = settled(&serve, &[(client, TX, u64_of(&truth, "client_sent"))]);
    assert_eq!(
        value(
            &m,
            "netmon_process_connections_opened_total",
            client,
            &[("proto", "udp")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "netmon_process_watched_network_connections_total",
            client,
            &[("network", "lo")]
        ),
        Some(1.0)
    );
}

/// A systemd syscall group (`@system-service`) expanded to syscall names, groups within groups
/// included, as this host's systemd defines them.
fn syscall_group(group: &str, out: &mut BTreeSet<String>) {
    let list = Command::new("systemd-analyze")
        .args(["syscall-filter", group])
        .output()
        .expect("running systemd-analyze");
    assert!(
        list.status.success(),
        "systemd-analyze syscall-filter {group}"
    );
    for entry in String::from_utf8_lossy(&list.stdout).lines().skip(1) {
        let entry = entry.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        if entry.starts_with('@') {
            syscall_group(entry, out);
        } else {
            out.insert(entry.to_string());
        }
    }
}

/// Kills a pid (not a child of ours) on drop.
struct KillPid(i32);

impl Drop for KillPid {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid we looked up and a valid signal.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// Every system call `netmon serve` makes while it loads, scans /proc, counts traffic and
/// answers scrapes is in the unit's SystemCallFilter= (the filter itself needs systemd as PID
/// 1; strace shows what it would have to allow).
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn every_syscall_serve_makes_is_in_the_unit_filter() {
    if !privileged() {
        return;
    }
    require_tool("strace", "strace");
    require_tool("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(contrib_dir().join("systemd/netmon.service")).unwrap();
    let mut allowed = BTreeSet::new();
    for entry in unit
        .lines()
        .find_map(|l| l.strip_prefix("SystemCallFilter="))
        .expect("SystemCallFilter= in the unit")
        .split_whitespace()
    {
        if entry.starts_with('@') {
            syscall_group(entry, &mut allowed);
        } else {
            allowed.insert(entry.to_string());
        }
    }
    assert!(
        allowed.contains("bpf") && allowed.len() > 100,
        "{allowed:?}"
    );

    let backends: &[&str] =
        if Path::new("/sys/kernel/tracing/events/sock/sock_send_length").exists() {
            &["auto", "tracepoint"]
        } else {
            &["auto"]
        };
    for backend in backends {
        let trace = netmon_tests::prom::TempDir::new(&format!("strace-{backend}"));
        let file = trace.0.join("strace.out");
        let file_arg = file.display().to_string();
        let serve = Serve::start(
            &format!("strace-{backend}"),
            &["strace", "-f", "-qq", "-o", &file_arg],
            &["--interval", "0.2", "--backend", backend],
        );
        // strace's one child is netmon; it must not outlive the test.
        let netmon: i32 =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", serve.pid()))
                .unwrap()
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .expect("netmon under strace");
        let _netmon = KillPid(netmon);

        let mut traffic = Traffic::start(&format!("sc-{backend}"), &["tcp", "4", "100000", "100"]);
        traffic.say("go");
        traffic.result(Duration::from_secs(30));
        traffic.wait();
        std::thread::sleep(Duration::from_millis(500));
        serve.get("/metrics");
        serve.get("/api/v1/processes");
        // SIGTERM: the shutdown path (final drain, unload) is traced too.
        // SAFETY: kill(2) on the pid found above.
        unsafe { libc::kill(netmon, libc::SIGTERM) };
        let gone = wait_for(Duration::from_secs(10), || {
            (!Path::new(&format!("/proc/{netmon}")).exists()).then_some(())
        });
        assert!(gone.is_some(), "netmon did not stop on SIGTERM");

        let text = std::fs::read_to_string(&file).unwrap();
        let used: BTreeSet<String> = text
            .lines()
            .filter_map(|l| {
                // "PID name(args…" or "PID <... name resumed>…"
                let rest = l.split_once(' ')?.1.trim_start();
                let rest = rest.strip_prefix("<... ").unwrap_or(rest);
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()).then_some(name)
            })
            .collect();
        assert!(used.contains("bpf"), "strace saw no bpf(2): {used:?}");
        let refused: Vec<&String> = used.difference(&allowed).collect();
        eprintln!(
            "backend {backend}: {} distinct syscalls, none outside the filter: {}",
            used.len(),
            refused.is_empty()
        );
        assert!(
            refused.is_empty(),
            "backend {backend}: netmon calls {refused:?}, which SystemCallFilter= refuses"
        );
    }
}

/// Exited processes fold into comm="other" after --metrics-ttl; Prometheus must never see a
/// counter go down on the way: the total over all series stays flat, "other" never resets.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn expired_processes_fold_into_other_without_a_counter_reset() {
    if !privileged() {
        return;
    }
    const COUNT: u64 = 50;
    const BYTES: u64 = 1_000;
    let mut traffic = Traffic::start("ttl", &["swarm", &COUNT.to_string(), &BYTES.to_string()]);
    let parent = traffic.pid.to_string();
    let serve = Serve::start(
        "ttl",
        &[],
        &[
            "--pid",
            &parent,
            "--follow-children",
            "--interval",
            "0.2",
            "--metrics-pid-label",
            "--metrics-top-k",
            "1000",
            "--metrics-ttl",
            "4",
        ],
    );
    let prom = Prometheus::start(serve.addr);
    let up = wait_for(Duration::from_secs(20), || {
        (prom.scalar("up{job=\"netmon\"}") == Some(1.0)).then_some(())
    });
    assert!(
        up.is_some(),
        "Prometheus never scraped netmon: {}",
        prom.log()
    );
    let started = Instant::now();
    traffic.say("go");
    let truth = traffic.result(Duration::from_secs(60));
    let sent = u64_of(&truth, "children_sent");
    assert_eq!(sent, COUNT * BYTES, "trafficgen itself: {truth}");
    let parent_pid = traffic.pid.to_string();
    let is_child = |s: &Sample| {
        s.name == TX
            && s.labels.get("comm").map(String::as_str) == Some("trafficgen")
            && s.labels.get("pid") != Some(&parent_pid)
            && s.value == BYTES as f64
    };

    // Within the TTL every child has its own series ...
    let own = wait_for(Duration::from_secs(3), || {
        let m = serve.metrics();
        (m.iter().filter(|s| is_child(s)).count() as u64 == COUNT).then_some(())
    });
    assert!(
        own.is_some(),
        "not all {COUNT} children had their own series"
    );
    // ... and after it they are summed under "other", with nothing lost.
    let folded = wait_for(Duration::from_secs(20), || {
        let m = serve.metrics();
        let other: f64 = m
            .iter()
            .filter(|s| s.name == TX && s.labels.get("comm").map(String::as_str) == Some("other"))
            .map(|s| s.value)
            .sum();
        (m.iter().all(|s| !is_child(s)) && other == sent as f64).then_some(m)
    });
    let m =
        folded.unwrap_or_else(|| panic!("children never folded into other: {}", serve.stderr()));
    assert_eq!(sum(&m, TX), sent as f64, "sum over series after folding");

    // Prometheus saw it the same way: same total, and no reset anywhere on the way.
    let total = "sum(netmon_process_network_transmit_bytes_total{job=\"netmon\"})";
    let seen = wait_for(Duration::from_secs(10), || {
        (prom.scalar(total) == Some(sent as f64)).then_some(())
    });
    assert!(
        seen.is_some(),
        "Prometheus total {:?}, truth {sent}",
        prom.scalar(total)
    );
    let window = started.elapsed().as_secs() + 5;
    let series = prom.range(total, window).unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(
        series[0].windows(2).all(|w| w[1] >= w[0]),
        "the total went down: {:?}",
        series[0]
    );
    let resets = format!(
        "sum(resets(netmon_process_network_transmit_bytes_total{{job=\"netmon\",comm=\"other\"}}[{window}s]))"
    );
    assert_eq!(prom.scalar(&resets), Some(0.0), "{resets}");
    eprintln!(
        "{COUNT} children folded into other after the TTL; total {sent} in Prometheus, flat: {:?}",
        series[0].iter().rev().take(5).collect::<Vec<_>>()
    );
    traffic.say("exit");
    traffic.wait();
}

/// `curl` over TLS trusting the test certificate: the HTTP status code ("000" when TLS or the
/// connection fails).
fn curl_tls(cert: &Path, addr: SocketAddr, user: Option<&str>, path: &str) -> String {
    let mut cmd = Command::new(require_tool("curl", "curl"));
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
    ])
    .arg("--cacert")
    .arg(cert);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    let out = cmd
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The scrape path a fleet would use across machines: HTTPS with basic auth from a
/// --web-config file, as in contrib/prometheus/prometheus.yml. The right password scrapes, a
/// wrong one is a down target (what NetmonDown alerts on), and nothing is served in the clear.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("tls");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../netmon/tests/fixtures/tls");
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(fixtures.join(f), dir.0.join(f)).unwrap();
    }
    let cert = dir.0.join("cert.pem");
    let mut raw = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut raw))
        .unwrap();
    let password: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let hash = bcrypt::hash(&password, 4).unwrap();
    let web_config = dir.0.join("web-config.yml");
    std::fs::write(
        &web_config,
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.0.join("right.pass"), &password).unwrap();
    std::fs::write(dir.0.join("wrong.pass"), format!("{password}x")).unwrap();
    let creds = format!("prometheus:{password}");

    let serve = Serve::start_probed(
        "tls",
        &[],
        &[
            "--interval",
            "0.2",
            "--web-config",
            &web_config.display().to_string(),
        ],
        |addr| curl_tls(&cert, addr, Some(&creds), "/healthz") == "200",
    );
    assert_eq!(curl_tls(&cert, serve.addr, Some(&creds), "/metrics"), "200");
    assert_eq!(curl_tls(&cert, serve.addr, None, "/metrics"), "401");
    let wrong = format!("prometheus:{password}x");
    assert_eq!(curl_tls(&cert, serve.addr, Some(&wrong), "/metrics"), "401");
    assert!(
        !matches!(http_get(serve.addr, "/metrics"), Ok((200, _))),
        "/metrics answered over plain HTTP"
    );

    let job = |name: &str, pass: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
             basic_auth:\n      username: prometheus\n      password_file: {}\n    \
             static_configs:\n      - targets: [\"{}\"]\n",
            cert.display(),
            dir.0.join(pass).display(),
            serve.addr
        )
    };
    let prom = Prometheus::start_with_jobs(&format!(
        "{}{}",
        job("netmon", "right.pass"),
        job("netmon-wrong-password", "wrong.pass")
    ));
    let mut last = (None, None);
    let settled = wait_for(Duration::from_secs(20), || {
        last = (
            prom.scalar("up{job=\"netmon\"}"),
            prom.scalar("up{job=\"netmon-wrong-password\"}"),
        );
        (last == (Some(1.0), Some(0.0))).then_some(())
    });
    assert!(
        settled.is_some(),
        "up (right password, wrong password) = {last:?}, want (1, 0): {}",
        prom.log()
    );
    assert_eq!(
        prom.scalar("count(netmon_build_info{job=\"netmon\"})"),
        Some(1.0)
    );
    eprintln!("Prometheus scrapes netmon over TLS with basic auth; a wrong password is up=0");
}

/// The shipped rules against the real metrics: a process connecting to a watched network
/// (loopback standing in for the intranet) makes Prometheus fire NetmonIntranetConnection with
/// the process's identity and the network's name, through the "new series" branch of the rule.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn shipped_rule_fires_for_a_connection_to_a_watched_network() {
    if !privileged() {
        return;
    }
    // Held open after its work, so `--pid` keeps netmon serving; the filter keeps other tests'
    // loopback connections on this host out of the alert.
    let mut traffic = Traffic::start("alert", &["swarm", "3", "1000"]);
    let parent = traffic.pid.to_string();
    let serve = Serve::start(
        "alert",
        &[],
        &[
            "--pid",
            &parent,
            "--follow-children",
            "--interval",
            "0.2",
            "--watch-network",
            "intranet=127.0.0.0/8",
            "--watch-network",
            "elsewhere=192.0.2.0/24",
        ],
    );
    let prom = Prometheus::start_with(
        &Prometheus::job(serve.addr),
        &[contrib_dir().join("prometheus/netmon-alerts.yml")],
    );
    let up = wait_for(Duration::from_secs(20), || {
        (prom.scalar("up{job=\"netmon\"}") == Some(1.0)).then_some(())
    });
    assert!(
        up.is_some(),
        "Prometheus never scraped netmon: {}",
        prom.log()
    );
    // Nothing connected yet: no such alert.
    std::thread::sleep(Duration::from_secs(2));
    let early: Vec<Value> = prom
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "NetmonIntranetConnection")
        .collect();
    assert!(early.is_empty(), "fired before any connection: {early:?}");

    traffic.say("go");
    traffic.result(Duration::from_secs(30));
    let firing = wait_for(Duration::from_secs(20), || {
        prom.alerts().into_iter().find(|a| {
            a["labels"]["alertname"] == "NetmonIntranetConnection"
                && a["labels"]["comm"] == "trafficgen"
                && a["state"] == "firing"
        })
    })
    .unwrap_or_else(|| panic!("NetmonIntranetConnection never fired: {:?}", prom.alerts()));
    assert_eq!(firing["labels"]["network"], "intranet", "{firing}");
    assert_eq!(firing["labels"]["job"], "netmon", "{firing}");
    assert_eq!(firing["labels"]["severity"], "warning", "{firing}");
    assert_eq!(
        firing["annotations"]["summary"],
        "trafficgen has new connections with watched network intranet"
    );
    let elsewhere = prom
        .alerts()
        .into_iter()
        .any(|a| a["labels"]["network"] == "elsewhere");
    assert!(!elsewhere, "a loopback connection fired for 192.0.2.0/24");
    eprintln!(
        "fired: {} ({})",
        firing["annotations"]["summary"], firing["annotations"]["description"]
    );
    traffic.say("exit");
    traffic.wait();
}
