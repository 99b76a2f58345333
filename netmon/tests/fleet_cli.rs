//! The fleet viewers against a real hub: each test starts its own `nats-server` (JetStream, a
//! free port, a temporary directory; skipped with a message when it is not installed), runs
//! `netmon hub init`, publishes what agents would (flow records with a resend and a replay,
//! events, heartbeats, a process summary) and checks what `netmon fleet …` prints. No root.
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_nats::{HeaderMap, jetstream};
use netmon::fleet::{FleetEvent, FleetFlow, Heartbeat, ProcessRate, ProcessSummary};
use netmon::history::FlowRecord;

fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p != 14222 {
            return p;
        }
    }
}

fn installed(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process and a directory of its own, both gone on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "netmon-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn nats() -> Option<Server> {
    nats_with("")
}

/// A hub whose config file has `jetstream` settings `js` (e.g. a storage limit).
fn nats_with(js: &str) -> Option<Server> {
    if !installed("nats-server") {
        println!("nats-server is not installed: skipping");
        return None;
    }
    let port = free_port();
    let dir = temp_dir("nats");
    let conf = dir.join("hub.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  {js}\n}}\n",
            dir.join("js").display()
        ),
    )
    .unwrap();
    let child = Command::new("nats-server")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Server { child, dir, port };
    wait_for_port(port, "nats-server");
    Some(s)
}

fn url(s: &Server) -> String {
    format!("nats://127.0.0.1:{}", s.port)
}

fn netmon(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(args)
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    println!(
        "netmon {args:?} -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn flow(host: &str, seq: u64, ago_min: i64, tx: u64, rx: u64) -> FleetFlow {
    let to_ms = now_ms() - ago_min * 60_000;
    FleetFlow {
        site: "lab".into(),
        boot: format!("boot-{host}"),
        seq,
        flow: FlowRecord {
            host: host.into(),
            flow_id: seq,
            comm: "curl".into(),
            proto: "tcp".into(),
            direction: "out".into(),
            remote: Some("10.0.0.9:443".parse().unwrap()),
            class: "intranet".into(),
            opened_ms: to_ms - 60_000,
            from_ms: to_ms - 60_000,
            to_ms,
            ended: true,
            tx_bytes: tx,
            rx_bytes: rx,
            ..FlowRecord::default()
        },
    }
}

fn event(host: &str, seq: u64, kind: &str) -> FleetEvent {
    FleetEvent {
        site: "lab".into(),
        host: host.into(),
        boot: format!("boot-{host}"),
        seq,
        kind: kind.into(),
        at_ms: now_ms() - 60_000,
        summary: format!("{kind} on {host}"),
        pid: Some(42),
        comm: Some("nc".into()),
        detail: serde_json::json!({ "event": kind }),
    }
}

fn heartbeat(host: &str) -> Heartbeat {
    Heartbeat {
        site: "lab".into(),
        host: host.into(),
        machine_id: String::new(),
        version: "test".into(),
        kernel: "6.1".into(),
        backend: "ebpf".into(),
        uptime_secs: 10,
        at_ms: now_ms(),
        every_secs: 5,
        spooled: 0,
    }
}

/// What agents a and b would have published; returns how many acks said "duplicate".
fn publish(hub: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(hub).await.unwrap();
        let js = jetstream::new(client.clone());
        let mut duplicates = 0;
        let mut send = async |f: &FleetFlow, id: &str| {
            let mut h = HeaderMap::new();
            h.insert("Nats-Msg-Id", id);
            let ack = js
                .publish_with_headers(
                    format!("netmon.lab.{}.flows", f.flow.host),
                    h,
                    serde_json::to_vec(f).unwrap().into(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            duplicates += u64::from(ack.duplicate);
        };
        let a = [
            flow("a", 1, 50, 1000, 10_000),
            flow("a", 2, 30, 2000, 20_000),
            flow("a", 3, 10, 3000, 30_000),
        ];
        let b = [flow("b", 1, 40, 7, 70), flow("b", 2, 20, 8, 80)];
        for f in a.iter().chain(&b) {
            send(f, &f.msg_id()).await;
        }
        // A resend within the duplicate window (the server drops it)…
        send(&a[1], &a[1].msg_id()).await;
        // …and one beyond it, simulated with another message id (the viewers drop it).
        send(&b[0], "replayed-after-the-window").await;
        // Before --since 1h: not counted.
        let old = flow("a", 4, 90, 1, 1);
        send(&old, &old.msg_id()).await;

        let events = [event("a", 1, "listen"), event("b", 1, "net")];
        for e in events.iter().chain([&events[0]]) {
            js.publish(
                format!("netmon.lab.{}.events", e.host),
                serde_json::to_vec(e).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        for h in ["a", "b"] {
            client
                .publish(
                    format!("netmon.lab.{h}.heartbeat"),
                    serde_json::to_vec(&heartbeat(h)).unwrap().into(),
                )
                .await
                .unwrap();
        }
        let summary = ProcessSummary {
            site: "lab".into(),
            host: "a".into(),
            at_ms: now_ms(),
            interval_ms: 1000,
            processes: vec![ProcessRate {
                pid: 7,
                comm: "rsync".into(),
                tx_rate: 5.0 * 1024.0 * 1024.0,
                rx_rate: 0.0,
                tx_bytes: 1,
                rx_bytes: 0,
            }],
            tx_rate: 5.0 * 1024.0 * 1024.0,
            rx_rate: 0.0,
        };
        client
            .publish(
                "netmon.lab.a.processes",
                serde_json::to_vec(&summary).unwrap().into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
        duplicates
    })
}

#[test]
fn fleet_viewers_read_the_hub() {
    let Some(srv) = nats() else { return };
    let hub = url(&srv);
    // Before `hub init`: one line saying what to do.
    let out = netmon(&["fleet", "flows", "--hub", &hub]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("netmon hub init"));

    assert!(netmon(&["hub", "init", "--hub", &hub]).status.success());
    assert_eq!(publish(&hub), 1, "the server drops the resend");

    let out = netmon(&[
        "fleet", "report", "--hub", &hub, "--since", "1h", "--by", "host", "--json",
    ]);
    assert!(out.status.success());
    let rows = json_lines(&out);
    let sums: Vec<(&str, u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap(),
                r["tx_bytes"].as_u64().unwrap(),
                r["rx_bytes"].as_u64().unwrap(),
                r["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sums, vec![("a", 6000, 60_000, 3), ("b", 15, 150, 2)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 duplicate flow record dropped"));

    let out = netmon(&[
        "fleet", "report", "--hub", &hub, "--since", "1h", "--by", "port", "--every", "30m",
        "--csv",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(",443/tcp,"));

    let out = netmon(&["fleet", "flows", "--hub", &hub, "--since", "1h", "--json"]);
    let flows = json_lines(&out);
    assert_eq!(flows.len(), 5);
    assert!(flows.iter().all(|f| f["site"] == "lab"));
    // Oldest first.
    assert_eq!(flows[0]["host"], "a");
    assert_eq!(flows[0]["seq"], 1);
    let out = netmon(&[
        "fleet", "flows", "--hub", &hub, "--since", "2h", "--host", "b", "--json",
    ]);
    assert_eq!(json_lines(&out).len(), 2);
    let out = netmon(&[
        "fleet", "flows", "--hub", &hub, "--since", "2h", "--limit", "1",
    ]);
    // Header and one record.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    let out = netmon(&["fleet", "events", "--hub", &hub, "--since", "1h", "--json"]);
    assert!(out.status.success());
    let events = json_lines(&out);
    assert_eq!(events.len(), 2, "the repeated event is shown once");
    assert_eq!(events[0]["kind"], "listen");
    let out = netmon(&[
        "fleet", "events", "--hub", &hub, "--since", "1h", "--kind", "net",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("lab/b net"));

    let out = netmon(&["fleet", "top", "--hub", &hub, "--once"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 hosts, 0 down"), "{text}");
    assert!(text.contains("lab/a"));
    assert!(text.contains("lab/b"));
    assert!(text.contains("rsync 5.00 MiB/s"));

    // Bad times: exit 2, one line.
    let out = netmon(&["fleet", "report", "--hub", &hub, "--since", "yesterday-ish"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn unreachable_hub_is_one_line_and_exit_1() {
    let port = free_port();
    let hub = format!("nats://127.0.0.1:{port}");
    for args in [
        &["fleet", "flows", "--hub", &hub][..],
        &["fleet", "report", "--hub", &hub],
        &["fleet", "events", "--hub", &hub],
        &["fleet", "top", "--hub", &hub, "--once"],
    ] {
        let out = netmon(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("netmon: error: hub "), "{err}");
    }
    let out = netmon(&["fleet", "flows"]);
    assert_eq!(out.status.code(), Some(2));
}

/// GET on a local HTTP server, the body as text.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn events_reach_alertmanager() {
    const AM: &str = "prometheus-alertmanager";
    if !installed(AM) {
        println!("{AM} is not installed: skipping");
        return;
    }
    let Some(srv) = nats() else { return };
    let hub = url(&srv);
    assert!(netmon(&["hub", "init", "--hub", &hub]).status.success());
    publish(&hub);

    let dir = temp_dir("am");
    let cfg = dir.join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(AM)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _am = Server { child, dir, port };
    wait_for_port(port, AM);
    let am = format!("http://127.0.0.1:{port}");
    let out = netmon(&[
        "fleet",
        "events",
        "--hub",
        &hub,
        "--since",
        "1h",
        "--alertmanager",
        &am,
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("alertmanager"), "no failure to report: {err}");
    assert!(err.contains("1 duplicate dropped"), "{err}");
    let alerts = http_get(port, "/api/v2/alerts");
    assert!(
        alerts.contains("\"alertname\":\"netmon_listen\""),
        "{alerts}"
    );
    assert!(alerts.contains("\"alertname\":\"netmon_net\""), "{alerts}");
    assert!(alerts.contains("\"comm\":\"nc\""), "{alerts}");
    assert!(alerts.contains("listen on a"), "{alerts}");

    // A dead Alertmanager: warned once, counted, the events are still printed.
    drop(_am);
    let out = netmon(&[
        "fleet",
        "events",
        "--hub",
        &hub,
        "--since",
        "1h",
        "--alertmanager",
        &am,
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("alertmanager").count(), 2, "{err}");
    assert!(err.contains("2 failed"), "{err}");
}

/// Publishes one message with core NATS (heartbeats) or JetStream (events).
fn publish_one(hub: &str, subject: &str, payload: Vec<u8>, stored: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(hub).await.unwrap();
        if stored {
            jetstream::new(client.clone())
                .publish(subject.to_string(), payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        } else {
            client
                .publish(subject.to_string(), payload.into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
    });
}

#[test]
fn follow_prints_new_events_and_agent_down_and_up() {
    use std::io::{BufRead, BufReader};
    let Some(srv) = nats() else { return };
    let hub = url(&srv);
    assert!(netmon(&["hub", "init", "--hub", &hub]).status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(["fleet", "events", "--hub", &hub, "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no {what} event"))
    };
    // Give the viewer a moment to subscribe.
    std::thread::sleep(Duration::from_millis(700));
    let mut hb = heartbeat("z");
    hb.every_secs = 1;
    publish_one(
        &hub,
        "netmon.lab.z.heartbeat",
        serde_json::to_vec(&hb).unwrap(),
        false,
    );
    let mut ev = event("z", 9, "contact");
    ev.at_ms = now_ms();
    publish_one(
        &hub,
        "netmon.lab.z.events",
        serde_json::to_vec(&ev).unwrap(),
        true,
    );
    let got = next("contact");
    assert_eq!(got["kind"], "contact");
    assert_eq!(got["host"], "z");
    // Three missed one-second heartbeats.
    let down = next("agent-down");
    assert_eq!(down["kind"], "agent-down");
    assert_eq!(down["host"], "z");
    assert_eq!(down["site"], "lab");
    publish_one(
        &hub,
        "netmon.lab.z.heartbeat",
        serde_json::to_vec(&hb).unwrap(),
        false,
    );
    let up = next("agent-up");
    assert_eq!(up["kind"], "agent-up");
    // SIGTERM: a clean stop with its summary line.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fleet events: 3 events"), "{err}");
}

/// A hub with less disk than the flow stream's default size: hub init halves the size until
/// the server takes it, says so in one warning, and the stream works.
#[test]
fn hub_init_fits_the_flow_stream_to_a_small_hub() {
    let Some(s) = nats_with("max_file_store: 1GB") else {
        return;
    };
    let hub = url(&s);
    let out = netmon(&["hub", "init", "--hub", &hub]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = err.lines().filter(|l| l.contains("no room")).collect();
    assert_eq!(said.len(), 1, "one warning: {err}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let max = rt.block_on(async {
        let c = async_nats::connect(&hub).await.unwrap();
        let js = jetstream::new(c);
        let mut st = js.get_stream("NETMON_FLOWS").await.unwrap();
        st.info().await.unwrap().config.max_bytes
    });
    // Halved from 10 GiB until it fits in 1 GB, and the warning says the size it got.
    assert!(max > 0 && max < 1 << 30, "{max}");
    assert!(
        said[0].contains(&format!("made it {} MiB", max >> 20)),
        "{err}"
    );
}
