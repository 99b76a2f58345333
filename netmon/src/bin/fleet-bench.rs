//! A simulated fleet against one real hub: many agents in this one process, each the real
//! publishing code (`fleet::agent`) with its own history store as its spool and its own NATS
//! connection, fed synthetic flow records at a set rate; one viewer subscribed to every
//! agent's flows. Prints hub ingest, publish-to-viewer latency, the agents' CPU per 1,000
//! flows and bytes on the wire per flow, and checks that the hub holds each record once.
//! Figures, not a timed test.
//!
//! `fleet-bench [--agents N] [--rate FLOWS_PER_S_PER_AGENT] [--secs S]` (defaults: 200
//! agents, 100 flows/s each, 30 s). Starts its own `nats-server` (Debian's, with JetStream) on
//! loopback ports and removes it and its files at the end. Build with `--release`.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use netmon::fleet::{
    FLOWS_STREAM, FleetFlow, HubArgs, Kind,
    agent::{Agent, AgentOptions},
    all_subjects,
    hub::{HubInitArgs, stream_configs},
};
use netmon::history::{FlowRecord, store::Store, when::now_ms};

struct Args {
    agents: usize,
    rate: u64,
    secs: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        agents: 200,
        rate: 100,
        secs: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or(format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "--agents" => a.agents = num("--agents")? as usize,
            "--rate" => a.rate = num("--rate")?,
            "--secs" => a.secs = num("--secs")?,
            "-h" | "--help" => {
                return Err(
                    "usage: fleet-bench [--agents N] [--rate FLOWS_PER_S] [--secs S]".into(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The hub: a nats-server with JetStream in a scratch directory, stopped and removed on drop.
struct Hub {
    child: Child,
    port: u16,
    monitor: u16,
    dir: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Hub {
    fn start(dir: &Path) -> Result<Hub, String> {
        let (port, monitor) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor.to_string(), "-js", "-sd"])
            .arg(dir.join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start nats-server ({e}); install it with scripts/setup.sh")
            })?;
        let hub = Hub {
            child,
            port,
            monitor,
            dir: dir.to_path_buf(),
        };
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let end = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > end {
                return Err("nats-server did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(hub)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (messages in, bytes in) since the server started, from its monitoring endpoint.
    fn varz(&self) -> Result<(u64, u64), String> {
        let body = http_get(self.monitor, "/varz")?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        Ok((
            v["in_msgs"].as_u64().unwrap_or(0),
            v["in_bytes"].as_u64().unwrap_or(0),
        ))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain HTTP/1.0 GET on loopback (the monitoring endpoint); the body.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The CPU time (user + system) of this process's threads named `name`, in seconds.
fn threads_cpu(name: &str) -> f64 {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if head.split_once('(').map(|(_, c)| c) != Some(name) {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks as f64 / hz
}

/// One synthetic short connection of agent `agent`, ending now.
fn flow(agent: usize, id: u64) -> FlowRecord {
    let now = now_ms();
    FlowRecord {
        host: format!("agent{agent:03}"),
        flow_id: id,
        pid: 1000 + (id % 7) as u32,
        start_time: 4242,
        comm: [
            "nginx", "curl", "postgres", "sshd", "node", "java", "python3",
        ][(id % 7) as usize]
            .into(),
        cmdline: "/usr/sbin/nginx -g daemon off;".into(),
        uid: Some(33),
        proto: "tcp".into(),
        direction: if id.is_multiple_of(3) { "in" } else { "out" }.into(),
        local: Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(
                10,
                0,
                (agent / 250) as u8,
                (agent % 250) as u8 + 1,
            )),
            40000 + (id % 20000) as u16,
        )),
        remote: Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 9, (id % 200) as u8, 7)),
            443,
        )),
        class: "intranet".into(),
        opened_ms: now - 5,
        from_ms: now - 5,
        to_ms: now,
        ended: true,
        tx_bytes: 700 + id % 5000,
        rx_bytes: 20_000 + id % 90_000,
        tx_wire_bytes: 900 + id % 5000,
        rx_wire_bytes: 21_000 + id % 90_000,
        tx_packets: 6,
        rx_packets: 18,
        handshake_us: Some(180),
        rtt_us: Some(95),
        closed_by: Some("local".into()),
        ..FlowRecord::default()
    }
}

/// What the viewer saw: publish-to-viewer latency of each record (ms), by arrival.
#[derive(Default)]
struct Seen {
    latencies_ms: Vec<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleet-bench: {e}");
            std::process::exit(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("netmon-fleet-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let r = run(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        eprintln!("fleet-bench: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args, dir: &Path) -> Result<(), String> {
    let hub = Hub::start(&dir.join("hub"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let hub_args = HubArgs {
        hub: Some(hub.url()),
        ..HubArgs::default()
    };
    // The streams, as `netmon hub init` makes them.
    let init = HubInitArgs {
        hub: hub_args.clone(),
        replicas: 1,
        max_age: 86_400_000,
        max_bytes: 8 << 30,
    };
    let client = rt
        .block_on(netmon::fleet::connect(&hub_args, "fleet-bench"))
        .map_err(|e| format!("connecting to the hub: {e}"))?;
    // The JetStream context spawns onto the runtime it is made in.
    let _guard = rt.enter();
    let js = async_nats::jetstream::new(client);
    for cfg in stream_configs(&init) {
        rt.block_on(js.get_or_create_stream(cfg))
            .map_err(|e| format!("creating the streams: {e}"))?;
    }
    // The viewer, on its own thread and connection: every agent's flows as they reach the hub.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), String>>();
    let (viewer_seen, viewer_hub) = (Arc::clone(&seen), hub_args.clone());
    std::thread::Builder::new()
        .name("viewer".into())
        .spawn(move || {
            let Ok(vrt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                let _ = ready_tx.send(Err("no runtime for the viewer".into()));
                return;
            };
            vrt.block_on(async move {
                let sub = match netmon::fleet::connect(&viewer_hub, "fleet-bench viewer").await {
                    Ok(c) => c
                        .subscribe(all_subjects(Kind::Flows))
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let mut sub = match sub {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("the viewer: {e}")));
                        return;
                    }
                };
                while let Some(m) = sub.next().await {
                    let now = now_ms();
                    if let Ok(f) = serde_json::from_slice::<FleetFlow>(&m.payload)
                        && let Ok(mut s) = viewer_seen.lock()
                    {
                        s.latencies_ms
                            .push(u32::try_from((now - f.flow.to_ms).max(0)).unwrap_or(u32::MAX));
                    }
                }
            });
        })
        .map_err(|e| e.to_string())?;
    ready
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the viewer did not connect within 10 s".to_string())??;

    println!(
        "fleet-bench: {} agents x {} flows/s for {} s into {} (nats-server, JetStream, file storage)",
        a.agents,
        a.rate,
        a.secs,
        hub.url()
    );
    let mut stores = Vec::new();
    let mut agents = Vec::new();
    for i in 0..a.agents {
        let db = dir.join(format!("agent{i:03}.db"));
        stores.push(
            Store::open(&db)
                .map_err(|e| format!("agent {i}'s store: {e}"))?
                .store,
        );
        agents.push(Agent::start(AgentOptions {
            hub: hub_args.clone(),
            site: "bench".into(),
            host: format!("agent{i:03}"),
            db,
            backend: "bench".into(),
        }));
    }
    let wait_connected = Instant::now() + Duration::from_secs(30);
    while agents.iter().any(|g| !g.status().connected) {
        if Instant::now() > wait_connected {
            return Err("the agents did not all connect within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (msgs0, bytes0) = hub.varz()?;
    let cpu0 = threads_cpu("netmon-hub");
    // Ten writes a second per agent, as the daemon's recorder hands records over.
    let tick = Duration::from_millis(100);
    let per_tick = a.rate as f64 / 10.0;
    let started = Instant::now();
    let (mut written, mut id, mut owed) = (0u64, 0u64, 0.0f64);
    let mut next = started;
    while started.elapsed() < Duration::from_secs(a.secs) {
        owed += per_tick;
        let n = owed as u64;
        owed -= n as f64;
        for (i, store) in stores.iter_mut().enumerate() {
            let batch: Vec<FlowRecord> = (0..n).map(|k| flow(i, id + k)).collect();
            store
                .write(&batch)
                .map_err(|e| format!("agent {i}'s store: {e}"))?;
            written += n;
        }
        id += n;
        next += tick;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    // Every record on its way: wait for the viewer to have them all (bounded).
    let drain_end = Instant::now() + Duration::from_secs(60);
    while seen
        .lock()
        .map(|s| s.latencies_ms.len() as u64)
        .unwrap_or(0)
        < written
        && Instant::now() < drain_end
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let all_secs = started.elapsed().as_secs_f64();
    let cpu = threads_cpu("netmon-hub") - cpu0;
    let (msgs1, bytes1) = hub.varz()?;
    let mut stream = rt
        .block_on(js.get_stream(FLOWS_STREAM))
        .map_err(|e| e.to_string())?;
    let held = rt
        .block_on(stream.info())
        .map_err(|e| e.to_string())?
        .state
        .messages;
    let published: u64 = agents.iter().map(|g| g.status().published).sum();
    let duplicates: u64 = agents.iter().map(|g| g.status().duplicates).sum();
    for g in agents {
        g.finish(Duration::from_secs(5));
    }
    let mut lat = seen
        .lock()
        .map(|s| s.latencies_ms.clone())
        .unwrap_or_default();
    let viewed = lat.len() as u64;
    lat.sort_unstable();
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
    );
    let in_msgs = msgs1.saturating_sub(msgs0);
    let in_bytes = bytes1.saturating_sub(bytes0);
    println!(
        "flows written:           {written} ({:.0}/s over {load_secs:.1} s)",
        written as f64 / load_secs
    );
    println!(
        "hub ingest:              {held} flow records held ({:.0}/s until the last arrived, {all_secs:.1} s); acknowledged {published}, {duplicates} of them duplicates",
        held as f64 / all_secs
    );
    println!("viewer received:         {viewed}");
    println!(
        "publish-to-viewer:       p50 {p50} ms, p99 {p99} ms, max {max} ms (record written to the agent's store -> the viewer has it)"
    );
    println!(
        "agent CPU:               {:.1} ms per 1,000 flows ({cpu:.2} s over {} agent threads)",
        cpu * 1e6 / written.max(1) as f64,
        a.agents
    );
    println!(
        "bytes on the wire:       {:.0} per message into the hub ({in_msgs} messages, {:.1} MiB; flow records are most of them, with heartbeats and acks)",
        in_bytes as f64 / in_msgs.max(1) as f64,
        in_bytes as f64 / (1024.0 * 1024.0)
    );
    let verdicts = [
        (p99 < 1000, format!("publish-to-viewer p99 < 1 s: {p99} ms")),
        (
            held == written && viewed == written,
            format!(
                "each record at the hub once: {held} held and {viewed} seen of {written} written"
            ),
        ),
    ];
    for (pass, text) in verdicts {
        println!("{} {text}", if pass { "PASS" } else { "FAIL" });
    }
    Ok(())
}
