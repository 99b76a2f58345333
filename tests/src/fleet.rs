//! Helpers for the fleet's root tests: a JetStream hub (Debian's nats-server, on a free port with
//! its own store, optionally inside a network namespace or from a config file), agents and
//! viewers run inside namespaces, a hub namespace joined to agent namespaces by veth pairs, and
//! cgroups that hold one agent's traffic. Everything is removed on drop, also when a test fails.
use std::{
    collections::BTreeSet,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    Guard, Lines, Netns, ip, netmon_bin,
    prom::{free_port, http_get},
};

/// Whether nats-server is installed; if not, says so (scripts/setup.sh installs it; the
/// vm-test guests have none, and these tests run on the host).
pub fn nats_installed() -> bool {
    let ok = Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!("nats-server not installed (scripts/setup.sh installs it): skipped");
    }
    ok
}

/// Runs `f` on a thread that has entered network namespace `ns` (None: this one), e.g. to
/// reach a server that listens inside it.
pub fn in_netns<T: Send + 'static>(ns: Option<&str>, f: impl FnOnce() -> T + Send + 'static) -> T {
    let Some(ns) = ns else {
        return f();
    };
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a namespace fd we hold; it changes only this thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("the thread in the namespace panicked")
}

/// A JetStream server; stopping and starting it again keeps its store.
pub struct Hub {
    pub port: u16,
    pub monitor: u16,
    pub dir: PathBuf,
    ns: Option<String>,
    /// Extra arguments (e.g. `-c FILE`) before the port and store flags.
    extra: Vec<String>,
    /// `-js -sd DIR` on the command line (else the config file's `jetstream` block).
    store_flags: bool,
    /// A cluster node: up once it serves (its health waits for the cluster's JetStream).
    clustered: bool,
    proc: Option<Guard>,
}

impl Hub {
    /// On loopback in this namespace; None (after saying why) without nats-server.
    pub fn start(dir: &Path) -> Option<Hub> {
        Self::start_with(dir, None, &["-a", "127.0.0.1"])
    }

    /// On every address of namespace `ns` (agents reach it over veth pairs).
    pub fn start_in(ns: &Netns, dir: &Path) -> Option<Hub> {
        Self::start_with(dir, Some(ns), &["-a", "0.0.0.0"])
    }

    /// With extra nats-server arguments (e.g. `-c FILE`): the port, monitor port and store
    /// directory are the test's.
    pub fn start_with(dir: &Path, ns: Option<&Netns>, extra: &[&str]) -> Option<Hub> {
        Self::launch(
            dir.join(format!("js-{}", free_port())),
            ns,
            extra,
            true,
            false,
        )
    }

    /// One node of a cluster on loopback, from config file `conf` (server_name, cluster
    /// block); up once it serves, before the cluster has formed.
    pub fn start_node(dir: &Path, conf: &Path) -> Option<Hub> {
        let conf = conf.to_str().expect("utf-8 path");
        let store = dir.join(format!("js-{}", free_port()));
        Self::launch(store, None, &["-c", conf, "-a", "127.0.0.1"], true, true)
    }

    /// From config file `conf` with its own `jetstream { store_dir }` (nats-server refuses
    /// `-sd` on top of it), on loopback; the port and monitoring port are the test's.
    pub fn start_with_store_in_config(conf: &Path, store: &Path) -> Option<Hub> {
        let conf = conf.to_str().expect("utf-8 path");
        let extra = ["-c", conf, "-a", "127.0.0.1"];
        Self::launch(store.to_path_buf(), None, &extra, false, false)
    }

    fn launch(
        dir: PathBuf,
        ns: Option<&Netns>,
        extra: &[&str],
        store_flags: bool,
        clustered: bool,
    ) -> Option<Hub> {
        if !nats_installed() {
            return None;
        }
        let mut h = Hub {
            port: free_port(),
            monitor: free_port(),
            dir,
            ns: ns.map(|n| n.name.clone()),
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
            store_flags,
            clustered,
            proc: None,
        };
        h.up();
        Some(h)
    }

    pub fn up(&mut self) {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nats-server"]);
                c
            }
            None => Command::new("nats-server"),
        };
        let child = cmd
            .args(&self.extra)
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .args(if self.store_flags {
                vec![
                    "-js".into(),
                    "-sd".into(),
                    self.dir.clone().into_os_string(),
                ]
            } else {
                vec![]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.proc = Some(Guard(child));
        let ok = wait_for(Duration::from_secs(10), || {
            if self.clustered {
                self.get("/varz").is_some()
            } else {
                self.healthy()
            }
        });
        assert!(ok, "nats-server did not come up");
    }

    /// Stops the server (SIGKILL).
    pub fn down(&mut self) {
        self.proc = None;
    }

    /// nats://127.0.0.1:PORT: the URL from inside the hub's namespace.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The URL for an agent that reaches the hub at `addr`.
    pub fn url_at(&self, addr: &str) -> String {
        format!("nats://{addr}:{}", self.port)
    }

    pub fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// GET on the server's monitoring port (inside its namespace).
    pub fn get(&self, path: &str) -> Option<String> {
        let addr = format!("127.0.0.1:{}", self.monitor).parse().unwrap();
        let path = path.to_string();
        match in_netns(self.ns(), move || http_get(addr, &path)) {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }

    pub fn healthy(&self) -> bool {
        self.get("/healthz").is_some()
    }

    /// Messages in stream `name`, as the server counts them.
    pub fn stream_messages(&self, name: &str) -> Option<u64> {
        let body = self.get("/jsz?streams=true")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == name)
            .and_then(|s| s["state"]["messages"].as_u64())
    }

    /// Messages in NETMON_FLOWS.
    pub fn flow_messages(&self) -> Option<u64> {
        self.stream_messages("NETMON_FLOWS")
    }
}

/// Polls `f` every 200 ms until it holds or `limit` passes; whether it held.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// `netmon` in namespace `ns` (None: this one), with no config file unless `config`.
pub fn netmon_cmd(ns: Option<&Netns>, config: Option<&Path>) -> Command {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(netmon_bin());
            c
        }
        None => Command::new(netmon_bin()),
    };
    cmd.arg("--config")
        .arg(config.unwrap_or(Path::new("/dev/null")));
    cmd
}

/// `netmon ARGS` in namespace `ns` (None: this one) with no config file, to completion (60 s
/// at most).
pub fn netmon_at(ns: Option<&Netns>, args: &[&str]) -> Output {
    netmon_with_config(ns, None, args)
}

/// `netmon --config FILE ARGS` (no config file when None), as [`netmon_at`].
pub fn netmon_with_config(ns: Option<&Netns>, config: Option<&Path>, args: &[&str]) -> Output {
    let child = netmon_cmd(ns, config)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting netmon");
    output_within(child, Duration::from_secs(60))
}

/// A child's output, killing it if it is still running after `limit`.
pub fn output_within(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("waiting for a child"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("a child ran longer than {limit:?} and was killed");
        }
    }
}

/// The JSON lines of a command's stdout.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `netmon hub init ARGS` (the hub given in ARGS) in `ns`; fails the test if it fails.
pub fn hub_init(ns: Option<&Netns>, args: &[&str]) {
    let mut all = vec!["hub", "init"];
    all.extend_from_slice(args);
    let out = netmon_at(ns, &all);
    assert!(
        out.status.success(),
        "hub init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `netmon serve --listen 127.0.0.1:0 ARGS` in namespace `ns`, once it serves: the process
/// (killed on drop) and its stderr after the first line.
pub fn agent_in(ns: Option<&Netns>, args: &[&str]) -> (Guard, Lines) {
    crate::serve_ready_with(netmon_cmd(ns, None), args)
}

/// SIGINT (the agent sends what it has and exits), then waits up to `limit`; SIGKILL after.
/// Returns the rest of its stderr.
pub fn interrupt(g: &mut Guard, err: &Lines, limit: Duration) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &g.0.id().to_string()])
        .status();
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if g.0.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = g.0.kill();
    let _ = g.0.wait();
    err.rest(Duration::from_millis(500)).join("\n")
}

fn open_db(db: &str) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("{db}: {e}"))
}

/// Flow records in an agent's own store (0 while the agent has not created it yet).
pub fn local_records(db: &str) -> u64 {
    if !Path::new(db).exists() {
        return 0;
    }
    open_db(db)
        .query_row("SELECT count(*) FROM flows", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as u64)
}

/// (sent, received) bytes of every flow record in an agent's own store.
pub fn local_bytes(db: &str) -> (u64, u64) {
    open_db(db)
        .query_row(
            "SELECT coalesce(sum(tx_bytes),0), coalesce(sum(rx_bytes),0) FROM flows",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .unwrap()
}

/// The sequence numbers (spool positions) of every flow record in an agent's own store.
pub fn local_seqs(db: &str) -> BTreeSet<u64> {
    let conn = open_db(db);
    let mut st = conn.prepare("SELECT id FROM flows").unwrap();
    st.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as u64)
        .collect()
}

/// The hub's namespace joined to `n` agent namespaces, one veth pair each: agent `i` (1-based)
/// has 10.231.i.2/24 on `a<i>`, the hub 10.231.i.1/24 on `h<i>`. Removed on drop (the veth
/// pairs go with their namespaces).
pub struct Topology {
    pub hub: Netns,
    pub agents: Vec<Netns>,
}

impl Topology {
    pub fn new(tag: &str, n: usize) -> Topology {
        let hub = Netns::new(&format!("{tag}-hub"));
        let mut agents = Vec::new();
        for i in 1..=n {
            let a = Netns::new(&format!("{tag}-a{i}"));
            let (dev, peer) = (format!("a{i}"), format!("h{i}"));
            ip(&[
                "-n", &a.name, "link", "add", &dev, "type", "veth", "peer", "name", &peer, "netns",
                &hub.name,
            ]);
            ip(&[
                "-n",
                &a.name,
                "addr",
                "add",
                &format!("10.231.{i}.2/24"),
                "dev",
                &dev,
            ]);
            ip(&[
                "-n",
                &hub.name,
                "addr",
                "add",
                &format!("10.231.{i}.1/24"),
                "dev",
                &peer,
            ]);
            ip(&["-n", &a.name, "link", "set", &dev, "up"]);
            ip(&["-n", &hub.name, "link", "set", &peer, "up"]);
            agents.push(a);
        }
        Topology { hub, agents }
    }

    /// The hub's address as agent `i` (1-based) reaches it.
    pub fn hub_addr(i: usize) -> String {
        format!("10.231.{i}.1")
    }

    /// `ip link set a<i> down|up` in agent `i`'s namespace.
    pub fn link(&self, i: usize, up: bool) {
        ip(&[
            "-n",
            &self.agents[i - 1].name,
            "link",
            "set",
            &format!("a{i}"),
            if up { "up" } else { "down" },
        ]);
    }
}
