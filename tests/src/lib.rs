//! Harness for netmon's end-to-end tests: finds the binaries, runs a trafficgen scenario inside a
//! network namespace of its own while netmon watches it, and hands back both sides' numbers.
//! Everything it creates (processes, the namespace) is removed on drop, also when a test panics.
use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

pub mod fleet;
pub mod load;
pub mod prom;

/// Root tests run only under `cargo xtask test` (which sets this); elsewhere they say so and
/// pass. Under xtask a failure to get privileges is a failure, never a skip.
pub fn privileged() -> bool {
    if std::env::var("NETMON_PRIVILEGED_TESTS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipping: needs root; run under `cargo xtask test`");
    false
}

fn target_dir_bin(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    for profile in ["release", "debug"] {
        let p = root.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    root.join("release").join(name)
}

pub fn netmon_bin() -> PathBuf {
    std::env::var_os("NETMON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir_bin("netmon"))
}

/// Starts `program` (trafficgen's protocol) in `ns` and waits for its `{"ready":PID}`: the
/// process, its stdout lines after that one, and PID (`ip netns exec` execs the program, so it
/// is the child's own pid). It waits on stdin for its go.
pub fn start_ready(ns: &Netns, program: &[&str]) -> (Guard, Lines, u64) {
    start_ready_after(&[], ns, program)
}

/// [`start_ready`] with `prefix` run first, which execs the rest (e.g. a shell that moves
/// itself into a cgroup: the pid stays the program's).
pub fn start_ready_after(prefix: &[&str], ns: &Netns, program: &[&str]) -> (Guard, Lines, u64) {
    let mut all: Vec<&str> = prefix.to_vec();
    all.extend_from_slice(&["ip", "netns", "exec", &ns.name]);
    all.extend_from_slice(program);
    let mut child = Guard(
        Command::new(all[0])
            .args(&all[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the traffic program"),
    );
    let out = Lines::new(child.0.stdout.take().unwrap());
    let pid = out
        .next(Duration::from_secs(10))
        .and_then(|l| serde_json::from_str::<Value>(&l).ok())
        .and_then(|v| v["ready"].as_u64())
        .unwrap_or_else(|| panic!("{program:?} never said ready"));
    (child, out, pid)
}

/// The name /etc/passwd gives `uid`, as `ps` shows it (its digits when none).
pub fn passwd_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid.to_string())
        .map_or_else(|| uid.to_string(), |f| f[0].to_string())
}

pub fn trafficgen_bin() -> PathBuf {
    test_bin("trafficgen")
}

/// One of this package's binaries (trafficgen, dnsprobe...), wherever the run put them.
pub fn test_bin(name: &str) -> PathBuf {
    std::env::var_os("NETMON_TEST_BIN_DIR")
        .map(|d| PathBuf::from(d).join(name))
        .unwrap_or_else(|| target_dir_bin(name))
}

/// Whether every tool a test needs is on PATH. On a real machine scripts/setup.sh installs them,
/// so a missing one fails the test with what to run. In the vm-test guests (NETMON_VM_GUEST set
/// by scripts/vm/run.sh), which carry only ip, ss, nstat, tc, bpftool and setpriv, the test is
/// skipped with a message instead: it runs on the host in the same CI run.
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("NETMON_VM_GUEST").is_some() {
        eprintln!(
            "skipping test - {} not in the vm-test guest (runs on the host)",
            missing.join(", ")
        );
        return false;
    }
    panic!("{} not installed: run scripts/setup.sh", missing.join(", "));
}

/// A network namespace with `lo` up, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("netmon-test-{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed");
        let ns = Netns { name };
        let ok = Command::new("ip")
            .args(["-n", &ns.name, "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "bringing lo up in {} failed", ns.name);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// One counter of the namespace's /proc/net/snmp or netstat (`file`), e.g. `Tcp:` `RetransSegs`.
fn mib_counter(ns: &Netns, file: &str, section: &str, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat", file])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with(section)).collect();
    if rows.len() < 2 {
        return 0;
    }
    let names = rows[0].split_whitespace();
    let values = rows[1].split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn retrans_segs(ns: &Netns) -> u64 {
    mib_counter(ns, "/proc/net/snmp", "Tcp:", "RetransSegs")
}

/// A child process killed (and reaped) on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's stdout, read on a thread so every wait can have a timeout.
pub struct Lines(mpsc::Receiver<String>);

impl Lines {
    /// Lines of a child's stdout or stderr (anything readable), read on a thread.
    pub fn new(out: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.0.recv_timeout(timeout).ok()
    }

    /// Every remaining line until the writer closes (or `timeout` passes).
    pub fn rest(&self, timeout: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut v = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.0.recv_timeout(left) {
                Ok(l) => v.push(l),
                Err(_) => break,
            }
        }
        v
    }
}

/// What one scenario produced: trafficgen's ground truth, netmon's final snapshot and exit code.
pub struct Outcome {
    /// TCP segments the test's namespace retransmitted (they are on the wire twice).
    pub tcp_retrans_segs: u64,
    /// Retransmissions the kernel attempted but could not send (`TcpExt: TCPRetransFail`).
    pub tcp_retrans_fail: u64,
    /// Times the namespace's TCP advertised a zero window after a non-zero one
    /// (`TcpExt: TCPToZeroWindowAdv`).
    pub tcp_to_zero_window_adv: u64,
    pub truth: Value,
    pub snapshot: Value,
    /// Every JSON line netmon printed, in order (the last is `snapshot`).
    pub lines: Vec<Value>,
    pub netmon_exit: Option<i32>,
    pub netmon_stderr: String,
}

impl Outcome {
    pub fn process(&self, pid: u64) -> &Value {
        self.snapshot["processes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["pid"] == pid))
            .unwrap_or_else(|| {
                panic!(
                    "pid {pid} not in netmon's final snapshot\ntruth: {}\nsnapshot: {}",
                    self.truth, self.snapshot
                )
            })
    }

    /// (tx_bytes, rx_bytes) netmon counted for `pid`.
    pub fn bytes(&self, pid: u64) -> (u64, u64) {
        let p = self.process(pid);
        (
            p["tx_bytes"].as_u64().unwrap(),
            p["rx_bytes"].as_u64().unwrap(),
        )
    }

    /// An array of numbers in the ground truth (child pids, ports).
    pub fn truth_u64s(&self, key: &str) -> Vec<u64> {
        self.truth[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing in {}", self.truth))
            .iter()
            .map(|v| v.as_u64().expect("a number"))
            .collect()
    }

    pub fn truth_u64(&self, key: &str) -> u64 {
        self.truth[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} missing in {}", self.truth))
    }

    pub fn unattributed(&self, reason: &str) -> u64 {
        self.snapshot["unattributed"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["reason"] == reason))
            .and_then(|u| u["bytes"].as_u64())
            .unwrap_or(0)
    }
}

/// Runs `trafficgen args` in a fresh netns while `netmon run --pid <it> --follow-children`
/// watches, and returns both sides once trafficgen exits and netmon prints its final totals.
pub fn scenario(tag: &str, args: &[&str], extra_netmon: &[&str]) -> Outcome {
    let bin = trafficgen_bin();
    let mut program = vec![bin.to_str().expect("utf-8 path")];
    program.extend_from_slice(args);
    scenario_with(tag, &[], &program, extra_netmon)
}

/// Like [`scenario`], for any program speaking trafficgen's protocol (prints `{"ready":PID}`,
/// waits for a line on stdin, does its traffic, prints its ground truth as one JSON line).
/// `setup` commands run inside the namespace first (e.g. `tc qdisc add dev lo root netem ...`).
pub fn scenario_with(
    tag: &str,
    setup: &[&[&str]],
    program: &[&str],
    extra_netmon: &[&str],
) -> Outcome {
    scenario_in(tag, setup, None, program, extra_netmon)
}

/// Like [`scenario_with`], with the traffic program moved into the cgroup v2 directory
/// `cgroup` (when given) before it is told to start: its children are born there.
pub fn scenario_in(
    tag: &str,
    setup: &[&[&str]],
    cgroup: Option<&std::path::Path>,
    program: &[&str],
    extra_netmon: &[&str],
) -> Outcome {
    scenario_full(tag, setup, cgroup, &[], program, extra_netmon)
}

/// Like [`scenario_with`], with netmon started through `wrapper` (e.g. `setpriv ...` to run it
/// as another user with some capabilities).
pub fn scenario_as(
    tag: &str,
    wrapper: &[&str],
    program: &[&str],
    extra_netmon: &[&str],
) -> Outcome {
    scenario_full(tag, &[], None, wrapper, program, extra_netmon)
}

fn scenario_full(
    tag: &str,
    setup: &[&[&str]],
    cgroup: Option<&std::path::Path>,
    wrapper: &[&str],
    program: &[&str],
    extra_netmon: &[&str],
) -> Outcome {
    let ns = Netns::new(tag);
    for cmd in setup {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(*cmd)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "setup command {cmd:?} failed in {}", ns.name);
    }
    let (mut traffic, gen_out, pid) = start_ready(&ns, program);
    if let Some(dir) = cgroup {
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .expect("moving the traffic program into its cgroup");
    }
    let pid = pid.to_string();

    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(netmon_bin());
            c
        }
        None => Command::new(netmon_bin()),
    };
    let mut netmon = Guard(
        cmd.args(["run", "--pid", &pid, "--follow-children", "--json"])
            .args(["--interval", "0.2", "--duration", "60"])
            .args(extra_netmon)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting netmon"),
    );
    let nm_out = Lines::new(netmon.0.stdout.take().unwrap());
    // The first snapshot means every program is attached.
    let first = nm_out.next(Duration::from_secs(20));
    if first.is_none() {
        let _ = netmon.0.kill();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut netmon.0.stderr.take().unwrap(), &mut err);
        panic!("netmon printed nothing within 20 s; stderr: {err}");
    }
    writeln!(traffic.0.stdin.as_mut().unwrap(), "go").unwrap();
    let truth: Value = serde_json::from_str(
        &gen_out
            .next(Duration::from_secs(60))
            .expect("trafficgen gave no result"),
    )
    .unwrap();
    let _ = traffic.0.wait();
    let lines = nm_out.rest(Duration::from_secs(30));
    let status = netmon.0.wait().ok();
    let mut netmon_stderr = String::new();
    if let Some(mut e) = netmon.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut netmon_stderr);
    }
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("\"final\":true"))
        .unwrap_or_else(|| panic!("no final snapshot from netmon; stderr: {netmon_stderr}"));
    Outcome {
        tcp_retrans_segs: retrans_segs(&ns),
        tcp_retrans_fail: mib_counter(&ns, "/proc/net/netstat", "TcpExt:", "TCPRetransFail"),
        tcp_to_zero_window_adv: mib_counter(
            &ns,
            "/proc/net/netstat",
            "TcpExt:",
            "TCPToZeroWindowAdv",
        ),
        truth,
        snapshot: serde_json::from_str(last).unwrap(),
        lines: lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        netmon_exit: status.and_then(|s| s.code()),
        netmon_stderr,
    }
}

// Capture tests (tests/tests/capture.rs, capture_hooks.rs): a veth pair between two namespaces,
// `netmon capture` in one of them.

/// Runs `ip args`, failing the test if it fails.
pub fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

/// Two namespaces joined by a veth pair: vA (10.77.0.1, fd77::1) and vB (10.77.0.2, fd77::2).
pub fn veth_pair(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(&format!("{tag}-a"));
    let b = Netns::new(&format!("{tag}-b"));
    ip(&[
        "-n", &a.name, "link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", &b.name,
    ]);
    for (ns, dev, v4, v6) in [
        (&a, "vA", "10.77.0.1/24", "fd77::1/64"),
        (&b, "vB", "10.77.0.2/24", "fd77::2/64"),
    ] {
        ip(&["-n", &ns.name, "addr", "add", v4, "dev", dev]);
        ip(&["-n", &ns.name, "addr", "add", v6, "dev", dev, "nodad"]);
        ip(&["-n", &ns.name, "link", "set", dev, "up"]);
    }
    (a, b)
}

/// Starts netmon with `args` in B and waits until it captures on vB. Returns netmon, its stdout
/// and stderr, and its first stderr line (`netmon: capturing on vB: <how it attached>`).
pub fn netmon_in(b: &Netns, args: &[&str]) -> (Guard, Lines, Lines, String) {
    let mut g = Guard(
        Command::new("ip")
            .args(["netns", "exec", &b.name])
            .arg(netmon_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = Lines::new(g.0.stderr.take().unwrap());
    let first = err.next(Duration::from_secs(20)).unwrap_or_default();
    assert!(first.contains("capturing on vB"), "netmon said: {first}");
    let out = Lines::new(g.0.stdout.take().unwrap());
    (g, out, err, first)
}

/// Starts `netmon serve --listen 127.0.0.1:0 ARGS` and returns once it serves (its first
/// stderr line), with the rest of its stderr.
pub fn serve_ready(args: &[&str]) -> (Guard, Lines) {
    serve_ready_with(Command::new(netmon_bin()), args)
}

/// [`serve_ready`] with `netmon` as `cmd` starts it (e.g. inside a namespace, with a config).
pub fn serve_ready_with(mut cmd: Command, args: &[&str]) -> (Guard, Lines) {
    let mut g = Guard(
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting netmon serve"),
    );
    let err = Lines::new(g.0.stderr.take().unwrap());
    let first = err.next(Duration::from_secs(20)).unwrap_or_default();
    assert!(first.contains("serving /metrics"), "netmon said: {first}");
    (g, err)
}

/// Stops netmon with SIGINT (as Ctrl-C would) and returns the rest of its stderr: the summary.
pub fn stop(mut g: Guard, err: &Lines) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &g.0.id().to_string()])
        .status();
    let text = err.rest(Duration::from_secs(10)).join("\n");
    let _ = g.0.wait();
    text
}

/// The fields of layer `name` in one `netmon capture --json` line.
pub fn layer<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["layers"]
        .as_array()?
        .iter()
        .find(|l| l["layer"] == name)
        .map(|l| &l["fields"])
}

/// The number right before `what` in netmon's end-of-capture summary.
pub fn summary_count(summary: &str, what: &str) -> u64 {
    let before = summary
        .split(what)
        .next()
        .filter(|b| b.len() < summary.len())
        .unwrap_or_else(|| panic!("no '{what}' in {summary}"));
    before
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before '{what}' in {summary}"))
}

/// `loadgen connect`'s report: (pid, sent, received) of each client process.
pub fn loadgen_clients(report: &Value) -> Vec<(u64, u64, u64)> {
    report["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["pid"].as_u64().unwrap_or(0),
                c["sent"].as_u64().unwrap_or(0),
                c["received"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A cgroup v2 directory the test creates and removes (after its processes exited).
pub struct Cgroup {
    pub dir: PathBuf,
    /// Its path as `--cgroup` takes it (from the hierarchy's root, with a leading slash).
    pub pattern: String,
}

impl Cgroup {
    /// `<root>/<parent>/<name>`.
    pub fn new(parent: &str, name: &str) -> Cgroup {
        let rel = format!("{parent}/{name}");
        let dir = cgroup2_root().join(&rel);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        Cgroup {
            dir,
            pattern: format!("/{rel}"),
        }
    }

    /// `program` started in namespace `ns` inside this cgroup (as [`crate::start_ready`]): a
    /// shell moves itself in and execs `ip netns exec` (which hides the cgroup file system
    /// behind a /sys of the namespace's own), which execs the program: the pid stays the
    /// program's, and even what it does before saying ready (a bind, a listen) happens here.
    pub fn start_ready(&self, ns: &Netns, program: &[&str]) -> (Guard, Lines, u64) {
        let join = format!(
            "echo $$ > '{}/cgroup.procs' && exec \"$@\"",
            self.dir.display()
        );
        start_ready_after(&["sh", "-c", &join, "sh"], ns, program)
    }

    /// Moves process `pid` in (its children are born there).
    pub fn add(&self, pid: u64) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.dir.display()));
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The parent goes with its last child.
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on
/// hybrid hosts).
pub fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(PathBuf::from)
        .expect("a cgroup2 mount")
}
