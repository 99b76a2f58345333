//! `netmon events --follow --json --kind net` inside a network namespace this test creates:
//! interfaces (a dummy, or ifb where the kernel has no dummy driver, and a veth pair) are added,
//! addressed, brought up and down, the default route is added, replaced and removed, a neighbour
//! is added, and everything is deleted again. Each step's events must arrive within 1 s with the
//! right fields, and nothing else may arrive. A second test shrinks netmon's receive buffer so a
//! burst overruns it, and checks the resync still reports every link exactly once.
//!
//! A third runs `netmon serve --db` in a namespace and checks that an interface added there is
//! in the history store, read back by `netmon events --since`, and counted in
//! `netmon_events_total`.
//!
//! A fourth runs only in the `cargo xtask vm-test` guests: their host plugs a USB tablet and a
//! USB stick in through qemu and takes them out again, and netmon must report each.
//!
//! Everything lives in the test's namespace (deleted on drop, also when an assertion fails),
//! so no traffic or interface touches the host. The device test is the exception by nature
//! (uevents and mounts are the host's): it creates one loop device and one tmpfs mount of its
//! own, removed by drop guards, and ignores events about anything else.
use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use netmon_tests::{Guard, Lines, Netns, netmon_bin, privileged, stop};
use serde_json::{Value, json};

const ROOT: &str = "needs root: run under cargo xtask test";
/// How long a step's events may take to show.
const WITHIN: Duration = Duration::from_secs(1);

/// `ip -n NS args`, failing the test if it fails.
fn ip_in(ns: &Netns, args: &[&str]) {
    let ok = Command::new("ip")
        .args(["-n", &ns.name])
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip -n {} {args:?} failed", ns.name);
}

fn try_ip_in(ns: &Netns, args: &[&str]) -> bool {
    Command::new("ip")
        .args(["-n", &ns.name])
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A namespace without IPv6 link-local autoconfiguration: those addresses appear once duplicate
/// detection ends, a second or two after a link comes up, which would make "nothing else
/// arrives" a race. The test's own IPv6 address is added with nodad.
fn quiet_netns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-c"])
        .arg("echo 1 > /proc/sys/net/ipv6/conf/default/addr_gen_mode")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "disabling IPv6 link-local addresses in {} failed",
        ns.name
    );
    ns
}

/// The driver standing in for "a dummy interface": `dummy`, else `ifb` (same role: a local
/// link with no peer) on kernels built without the dummy driver, like this project's 6.18.
fn dummy_kind(ns: &Netns) -> &'static str {
    for kind in ["dummy", "ifb"] {
        if try_ip_in(ns, &["link", "add", "nmprobe", "type", kind]) {
            ip_in(ns, &["link", "del", "nmprobe"]);
            return kind;
        }
    }
    panic!("this kernel has neither the dummy nor the ifb driver");
}

/// netmon events in `ns`, started and ready (its "following" line seen on stderr).
fn events_in(ns: &Netns, extra: &[&str]) -> (Guard, Lines, Lines) {
    let mut g = Guard(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(netmon_bin())
            .args(["events", "--follow", "--json", "--kind", "net"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = Lines::new(g.0.stderr.take().unwrap());
    let out = Lines::new(g.0.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = err
            .next(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|| panic!("netmon events did not start"));
        if line.contains("netmon: following net events") {
            break;
        }
        eprintln!("netmon: {line}");
    }
    (g, out, err)
}

/// One expected event: its name and the fields it must have (others are not checked).
struct Want {
    event: &'static str,
    fields: Value,
}

fn want(event: &'static str, fields: Value) -> Want {
    Want { event, fields }
}

fn matches(line: &Value, w: &Want) -> bool {
    line["event"] == w.event
        && w.fields
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &line[k] == v)
}

/// Runs `ip args` in `ns`, then reads events until every one of `wants` arrived (in any
/// order), each within 1 s of the command. An event that matches none of them fails the test.
fn step(ns: &Netns, out: &Lines, args: &[&str], wants: Vec<Want>) {
    ip_in(ns, args);
    let start = Instant::now();
    let mut left = wants;
    while !left.is_empty() {
        let Some(line) = out.next(WITHIN.saturating_sub(start.elapsed())) else {
            let names: Vec<&str> = left.iter().map(|w| w.event).collect();
            panic!("ip {args:?}: no {names:?} within {WITHIN:?}");
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["kind"], "net", "{line}");
        assert!(
            v["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        let Some(i) = left.iter().position(|w| matches(&v, w)) else {
            panic!("ip {args:?}: unexpected event {line}");
        };
        left.remove(i);
    }
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn host_events_for_links_addresses_routes_and_neighbours() {
    assert!(privileged(), "{ROOT}");
    let ns = quiet_netns("hev");
    let kind = dummy_kind(&ns);
    let (netmon, out, err) = events_in(&ns, &[]);

    let link = |name: &str, k: &str, up: bool, carrier: bool| json!({"ifname": name, "link_kind": k, "up": up, "carrier": carrier});
    let addr = |a: &str, p: u8, dev: &str, fam: &str| json!({"address": a, "prefix_len": p, "ifname": dev, "family": fam});
    step(
        &ns,
        &out,
        &["link", "add", "nmd0", "type", kind],
        vec![want("link_added", link("nmd0", kind, false, false))],
    );
    step(
        &ns,
        &out,
        &[
            "link", "add", "nmv0", "type", "veth", "peer", "name", "nmv1",
        ],
        vec![
            want("link_added", link("nmv0", "veth", false, false)),
            want("link_added", link("nmv1", "veth", false, false)),
        ],
    );
    step(
        &ns,
        &out,
        &["addr", "add", "10.66.0.1/24", "dev", "nmd0"],
        vec![want("address_added", addr("10.66.0.1", 24, "nmd0", "ipv4"))],
    );
    step(
        &ns,
        &out,
        &["addr", "add", "fd66::1/64", "dev", "nmd0", "nodad"],
        vec![want("address_added", addr("fd66::1", 64, "nmd0", "ipv6"))],
    );
    step(
        &ns,
        &out,
        &["link", "set", "nmd0", "up"],
        vec![want("link_up", link("nmd0", kind, true, true))],
    );
    // One end of a veth up without its peer: up, but no carrier yet.
    step(
        &ns,
        &out,
        &["link", "set", "nmv0", "up"],
        vec![want("link_up", link("nmv0", "veth", true, false))],
    );
    step(
        &ns,
        &out,
        &["link", "set", "nmv1", "up"],
        vec![
            want("link_up", link("nmv1", "veth", true, true)),
            want("carrier_regained", link("nmv0", "veth", true, true)),
        ],
    );
    step(
        &ns,
        &out,
        &["addr", "add", "10.66.1.1/24", "dev", "nmv0"],
        vec![want("address_added", addr("10.66.1.1", 24, "nmv0", "ipv4"))],
    );
    step(
        &ns,
        &out,
        &["route", "add", "default", "via", "10.66.0.254"],
        vec![want(
            "default_route_added",
            json!({"family": "ipv4", "gateway": "10.66.0.254", "ifname": "nmd0", "table": 254, "metric": 0}),
        )],
    );
    step(
        &ns,
        &out,
        &["route", "replace", "default", "via", "10.66.1.254"],
        vec![want(
            "default_route_changed",
            json!({"family": "ipv4", "gateway": "10.66.1.254", "ifname": "nmv0",
                   "previous_gateway": "10.66.0.254", "previous_ifname": "nmd0"}),
        )],
    );
    step(
        &ns,
        &out,
        &[
            "-6", "route", "add", "default", "via", "fd66::fe", "dev", "nmd0",
        ],
        vec![want(
            "default_route_added",
            json!({"family": "ipv6", "gateway": "fd66::fe", "ifname": "nmd0", "metric": 1024}),
        )],
    );
    step(
        &ns,
        &out,
        &[
            "neigh",
            "add",
            "10.66.0.7",
            "lladdr",
            "02:00:00:00:00:07",
            "dev",
            "nmd0",
        ],
        vec![want(
            "neighbour_new",
            json!({"address": "10.66.0.7", "mac": "02:00:00:00:00:07", "ifname": "nmd0", "state": "permanent"}),
        )],
    );
    step(
        &ns,
        &out,
        &["link", "set", "nmv1", "down"],
        vec![
            want("link_down", link("nmv1", "veth", false, false)),
            want("carrier_lost", link("nmv0", "veth", true, false)),
        ],
    );
    step(
        &ns,
        &out,
        &["-4", "route", "del", "default"],
        vec![want(
            "default_route_removed",
            json!({"family": "ipv4", "gateway": "10.66.1.254", "ifname": "nmv0"}),
        )],
    );
    step(
        &ns,
        &out,
        &["addr", "del", "10.66.0.1/24", "dev", "nmd0"],
        vec![want(
            "address_removed",
            addr("10.66.0.1", 24, "nmd0", "ipv4"),
        )],
    );
    // Down: the kernel drops the link's IPv6 addresses (keep_addr_on_down is off) and the
    // IPv6 routes through it.
    step(
        &ns,
        &out,
        &["link", "set", "nmd0", "down"],
        vec![
            want("link_down", link("nmd0", kind, false, false)),
            want("address_removed", addr("fd66::1", 64, "nmd0", "ipv6")),
            want(
                "default_route_removed",
                json!({"family": "ipv6", "gateway": "fd66::fe", "ifname": "nmd0"}),
            ),
        ],
    );
    // Deleting an up veth takes it down first; its address goes with it, and its peer too.
    step(
        &ns,
        &out,
        &["link", "del", "nmv0"],
        vec![
            want("link_down", link("nmv0", "veth", false, false)),
            want("address_removed", addr("10.66.1.1", 24, "nmv0", "ipv4")),
            want("link_removed", json!({"ifname": "nmv0"})),
            want("link_removed", json!({"ifname": "nmv1"})),
        ],
    );
    step(
        &ns,
        &out,
        &["link", "del", "nmd0"],
        vec![want("link_removed", json!({"ifname": "nmd0"}))],
    );

    // Nothing else trickles in afterwards.
    let late = out.rest(Duration::from_millis(1500));
    assert!(late.is_empty(), "unexpected events: {late:#?}");
    let summary = stop(netmon, &err);
    eprintln!("{summary}");
    assert!(summary.contains("netmon: events: 26 events"), "{summary}");
    assert!(
        !summary.contains("unparseable") && !summary.contains("overrun"),
        "{summary}"
    );
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn overrun_is_counted_and_resynced_without_losing_a_link() {
    assert!(privileged(), "{ROOT}");
    let ns = quiet_netns("hevo");
    // The smallest buffer the kernel allows: one link message nearly fills it, so a burst of
    // link creations overruns it for sure.
    let (netmon, out, err) = events_in(&ns, &["--rtnetlink-rcvbuf", "1"]);
    const PAIRS: usize = 40;
    let batch = |verb: &str| -> String {
        (0..PAIRS)
            .map(|i| match verb {
                "add" => format!("link add nmo{i}a type veth peer name nmo{i}b\n"),
                _ => format!("link del nmo{i}a\n"),
            })
            .collect()
    };
    let run_batch = |cmds: String| {
        let mut c = Command::new("ip")
            .args(["-n", &ns.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(cmds.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success(), "ip -batch failed");
    };
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut collect = |wanted: &str, until: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.keys().filter(|(e, _)| e == wanted).count() < until {
            let Some(line) = out.next(deadline.saturating_duration_since(Instant::now())) else {
                break;
            };
            let v: Value = serde_json::from_str(&line).unwrap();
            let key = (
                v["event"].as_str().unwrap().to_string(),
                v["ifname"].as_str().unwrap_or_default().to_string(),
            );
            *seen.entry(key).or_default() += 1;
        }
    };
    run_batch(batch("add"));
    collect("link_added", 2 * PAIRS);
    run_batch(batch("del"));
    collect("link_removed", 2 * PAIRS);
    for i in 0..PAIRS {
        for end in ["a", "b"] {
            let name = format!("nmo{i}{end}");
            for ev in ["link_added", "link_removed"] {
                let n = seen.get(&(ev.to_string(), name.clone())).copied();
                assert_eq!(n, Some(1), "{ev} {name}: {n:?} times; all: {seen:?}");
            }
        }
    }
    let summary = stop(netmon, &err);
    eprintln!("{summary}");
    assert!(
        summary.contains("rtnetlink overruns"),
        "no overrun happened: {summary}"
    );
    assert!(summary.contains("resyncs"), "{summary}");
}

/// A loop device created through /dev/loop-control, removed on drop.
struct LoopDev(u32);

const LOOP_CTL_ADD: libc::c_ulong = 0x4C80;
const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;

fn loop_control(req: libc::c_ulong, n: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    // SAFETY: LOOP_CTL_ADD/REMOVE take the device number as the argument, no pointer.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), req, libc::c_ulong::from(n)) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl LoopDev {
    /// A loop device number no one uses, above the usual ones.
    fn new() -> LoopDev {
        let base = 200 + std::process::id() % 500;
        for n in base..base + 50 {
            match loop_control(LOOP_CTL_ADD, n) {
                Ok(()) => return LoopDev(n),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => panic!("LOOP_CTL_ADD {n}: {e}"),
            }
        }
        panic!("no free loop device number from {base}");
    }

    fn remove(self) {
        let n = self.0;
        std::mem::forget(self);
        loop_control(LOOP_CTL_REMOVE, n).unwrap();
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = loop_control(LOOP_CTL_REMOVE, self.0);
    }
}

/// A tmpfs mounted on a fresh directory, unmounted and removed on drop.
struct TmpMount {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl TmpMount {
    fn new(source: &str) -> TmpMount {
        let dir = std::env::temp_dir().join(format!("netmon test mnt {}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = TmpMount {
            dir,
            mounted: false,
        };
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", source])
            .arg(&m.dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a tmpfs on {} failed", m.dir.display());
        m.mounted = true;
        m
    }

    fn unmount(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "umount {} failed", self.dir.display());
        self.mounted = false;
    }
}

impl Drop for TmpMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Reads device events until one matching `w` arrives (within 1 s of `since`). Events about
/// other devices and mounts (the host's own life goes on) are skipped, but one about `ours`
/// that is not the expected one fails the test.
fn expect_device(out: &Lines, since: Instant, ours: &str, w: Want) {
    loop {
        let Some(line) = out.next(WITHIN.saturating_sub(since.elapsed())) else {
            panic!("no {} {} within {WITHIN:?}", w.event, w.fields);
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["kind"], "device", "{line}");
        if matches(&v, &w) {
            return;
        }
        assert!(
            !line.contains(ours),
            "unexpected event about {ours}: {line}"
        );
    }
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn device_events_for_a_loop_device_and_a_mount() {
    assert!(privileged(), "{ROOT}");
    if !std::path::Path::new("/dev/loop-control").exists() {
        eprintln!("skipping test - no /dev/loop-control (loop driver not loaded)");
        return;
    }
    let mut g = Guard(
        Command::new(netmon_bin())
            .args(["events", "--follow", "--json", "--kind", "device"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = Lines::new(g.0.stderr.take().unwrap());
    let out = Lines::new(g.0.stdout.take().unwrap());
    let line = err.next(Duration::from_secs(20)).unwrap_or_default();
    assert!(
        line.contains("following device events"),
        "netmon said: {line}"
    );

    let t = Instant::now();
    let dev = LoopDev::new();
    let name = format!("loop{}", dev.0);
    let fields = json!({"name": name, "devtype": "disk", "size_bytes": 0, "removable": false,
                        "devpath": format!("/devices/virtual/block/{name}")});
    expect_device(&out, t, &name, want("block_added", fields.clone()));

    let source = format!("netmon-test-{}", std::process::id());
    let t = Instant::now();
    let mut m = TmpMount::new(&source);
    let point = m.dir.to_str().unwrap().to_string();
    let mount = json!({"mount_point": point, "source": source, "fstype": "tmpfs"});
    expect_device(&out, t, &source, want("mounted", mount.clone()));
    let t = Instant::now();
    m.unmount();
    expect_device(&out, t, &source, want("unmounted", mount));

    let t = Instant::now();
    dev.remove();
    expect_device(&out, t, &name, want("block_removed", fields));
    let summary = stop(g, &err);
    eprintln!("{summary}");
    assert!(!summary.contains("malformed"), "{summary}");
}

/// `netmon serve` records host events: a link added in its namespace is in the store (read
/// back by `netmon events --since … --db`, with serve's host name) and counted in
/// `netmon_events_total{kind="net"}`.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn serve_records_host_events_in_the_store() {
    assert!(privileged(), "{ROOT}");
    let ns = quiet_netns("hevs");
    let kind = dummy_kind(&ns);
    ip_in(&ns, &["link", "set", "lo", "up"]);
    let dir = netmon_tests::prom::TempDir::new("hev-serve");
    let db = dir.0.join("h.db");
    let db = db.to_str().unwrap();
    let mut g = Guard(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(netmon_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:19742",
                "--host-name",
                "evhost",
                "--db",
                db,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = Lines::new(g.0.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = err
            .next(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|| panic!("netmon serve did not start"));
        if line.contains("serving /metrics") {
            break;
        }
        eprintln!("netmon: {line}");
    }
    // The sources take their baseline before serve says it serves.
    ip_in(&ns, &["link", "add", "nmstore0", "type", kind]);
    let metric = |name: &str| -> Option<f64> {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name, "curl", "-sf"])
            .arg("http://127.0.0.1:19742/metrics")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    // The vm-test guests have no curl: there the store alone is checked.
    let curl = Command::new("curl").arg("--version").output().is_ok();
    if !curl {
        eprintln!("no curl here: netmon_events_total not checked, the store is");
    }
    let counted = Instant::now() + Duration::from_secs(10);
    while curl && metric(r#"netmon_events_total{kind="net"}"#).unwrap_or(0.0) < 1.0 {
        assert!(
            Instant::now() < counted,
            "netmon_events_total{{kind=\"net\"}} stayed 0"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    if curl {
        assert_eq!(metric("netmon_event_source_failures_total"), Some(0.0));
    }
    // The recorder commits within a second of being handed the events.
    let mut found = None;
    let stored = Instant::now() + Duration::from_secs(10);
    while found.is_none() && Instant::now() < stored {
        std::thread::sleep(Duration::from_millis(300));
        let out = Command::new(netmon_bin())
            .args([
                "events", "--since", "5m", "--kind", "net", "--json", "--db", db,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        found = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["event"] == "link_added" && v["ifname"] == "nmstore0");
    }
    let ev = found.expect("link_added nmstore0 not in the store within 10 s");
    assert_eq!(ev["host"], "evhost");
    assert_eq!(ev["kind"], "net");
    let said = stop(g, &err);
    assert!(!said.contains("host events:"), "{said}");
}

/// A line straight to stderr, past libtest's capture, so that a passing run shows it too: the
/// vm-test host watches the console for the `NETMON-USB-` lines, and its report lists the
/// events.
fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Reads device events until every one of `wants` arrived (in any order) or `limit` passed,
/// passing each on to the host (`NETMON-USB-EVENT` lines) and keeping it in `seen`. USB and
/// block events that match none of them go to `unexpected`. Returns what did not arrive.
fn gather(
    out: &Lines,
    wants: Vec<Want>,
    limit: Duration,
    seen: &mut Vec<String>,
    unexpected: &mut Vec<String>,
) -> Vec<Want> {
    let start = Instant::now();
    let mut left = wants;
    while !left.is_empty() {
        let Some(line) = out.next(limit.saturating_sub(start.elapsed())) else {
            break;
        };
        say(&format!("NETMON-USB-EVENT {line}"));
        seen.push(line.clone());
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["kind"], "device", "{line}");
        if let Some(i) = left.iter().position(|w| matches(&v, w)) {
            left.remove(i);
        } else if v["event"]
            .as_str()
            .is_some_and(|e| e.starts_with("usb_") || e.starts_with("block_"))
        {
            unexpected.push(line);
        }
    }
    left
}

/// USB devices really plugged in and out, from outside the machine: only in the vm-test
/// guests, whose qemu has an xhci controller and whose host (xtask/src/vm/hotplug.rs) plugs a
/// usb-tablet and a usb-storage stick (serial NM0001, a 16 MiB image) in through QMP when this
/// test prints `NETMON-USB-READY` on the console, and takes them out on `NETMON-USB-UNPLUG`.
/// netmon must report each with the vendor, product and names qemu presents, the stick's disk
/// (sda), and then all three going away. scripts/vm/run.sh sets NETMON_VM_USB in those guests;
/// anywhere else the test passes after saying why it did nothing.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn usb_devices_plugged_in_and_out_by_the_vm_host() {
    assert!(privileged(), "{ROOT}");
    if std::env::var_os("NETMON_VM_USB").is_none() {
        eprintln!(
            "skipping test - only in the cargo xtask vm-test guests, where the host plugs USB \
             devices in through qemu"
        );
        return;
    }
    // The controller's root hubs (usb1, usb2) exist once the guest's init loaded xhci_pci.
    assert!(
        std::path::Path::new("/sys/bus/usb/devices/usb1").exists(),
        "no USB bus in this guest: the initramfs's xhci_pci did not load (see init's insmod lines \
         on the console)"
    );
    let mut g = Guard(
        Command::new(netmon_bin())
            .args(["events", "--follow", "--json", "--kind", "device"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = Lines::new(g.0.stderr.take().unwrap());
    let out = Lines::new(g.0.stdout.take().unwrap());
    let line = err.next(Duration::from_secs(20)).unwrap_or_default();
    assert!(
        line.contains("following device events"),
        "netmon said: {line}"
    );

    let tablet = json!({"vendor_id": "0627", "product_id": "0001", "manufacturer": "QEMU",
                        "product": "QEMU USB Tablet"});
    let stick = json!({"vendor_id": "46f4", "product_id": "0001", "product": "QEMU USB HARDDRIVE",
                       "serial": "NM0001"});
    let disk = json!({"name": "sda", "devtype": "disk", "size_bytes": 16 << 20});
    let mut seen = Vec::new();
    let mut unexpected = Vec::new();

    say("NETMON-USB-READY");
    // Under TCG the kernel enumerates a device about 1 s after qemu adds it; usb-storage waits
    // another second before it scans for the disk.
    let added = Duration::from_secs(25);
    let missing_added = gather(
        &out,
        vec![
            want("usb_added", tablet.clone()),
            want("usb_added", stick.clone()),
            want("block_added", disk.clone()),
        ],
        added,
        &mut seen,
        &mut unexpected,
    );
    // Out again, whatever arrived: the host takes them out after 20 s anyway.
    say("NETMON-USB-UNPLUG");
    let removed = Duration::from_secs(30);
    let missing_removed = gather(
        &out,
        vec![
            want("usb_removed", tablet),
            want("usb_removed", stick),
            want("block_removed", disk),
        ],
        removed,
        &mut seen,
        &mut unexpected,
    );
    let summary = stop(g, &err);
    eprintln!("{summary}");

    let names = |m: &[Want]| -> Vec<String> {
        m.iter()
            .map(|w| format!("{} {}", w.event, w.fields))
            .collect()
    };
    assert!(
        missing_added.is_empty(),
        "within {added:?} of the ready line: no {:?}{}; netmon reported {seen:#?}",
        names(&missing_added),
        if seen.is_empty() {
            " (nothing at all: the host plugs devices in on seeing that line on the console, \
             see xtask's `usb:` lines)"
        } else {
            ""
        },
    );
    assert!(
        missing_removed.is_empty(),
        "within {removed:?} of asking for removal: no {:?}; netmon reported {seen:#?}",
        names(&missing_removed)
    );
    assert!(unexpected.is_empty(), "unexpected events: {unexpected:#?}");
    assert!(!summary.contains("malformed"), "{summary}");
}
