//! The fleet agent against a real hub (Debian's nats-server, started here on a free loopback
//! port with its own store): every flow record in the agent's local history reaches the hub's
//! stream exactly once, also when the hub is stopped under traffic and restarted, and when the
//! agent is killed mid-replay and restarted. Counted by the server itself (its monitoring
//! endpoint), not by netmon's viewers.
use std::{
    process::{Command, Stdio},
    time::Duration,
};

use netmon_tests::{
    Guard, Lines,
    fleet::{Hub, local_records, wait_for},
    load::Loopback,
    netmon_bin, privileged,
    prom::TempDir,
};

const ROOT: &str = "needs root: run under cargo xtask test";

/// `netmon serve --hub` recording into `db` until `secs` pass (or it is killed).
fn agent(hub: &Hub, db: &str, secs: &str) -> (Guard, Lines) {
    let url = hub.url();
    netmon_tests::serve_ready(&[
        "--interval",
        "0.5",
        "--db",
        db,
        "--duration",
        secs,
        "--hub",
        &url,
        "--site",
        "test",
        "--host-name",
        "agent1",
    ])
}

fn hub_init(hub: &Hub) {
    netmon_tests::fleet::hub_init(None, &["--hub", &hub.url()]);
}

/// The hub stops for 20 s under traffic and comes back: the agent keeps recording, resends
/// from its mark, and the stream ends with exactly the agent's local records.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn every_record_reaches_the_hub_once_across_a_hub_outage() {
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let dir = TempDir::new("fleet-outage");
    let Some(mut hub) = Hub::start(&dir.0) else {
        return;
    };
    hub_init(&hub);
    let db = dir.0.join("agent.db").to_str().unwrap().to_string();
    let (mut g, _err) = agent(&hub, &db, "70");
    let load = Loopback::start(100);
    // The agent publishes each interval once connected; a loaded machine may take a while.
    assert!(
        wait_for(Duration::from_secs(30), || hub
            .flow_messages()
            .is_some_and(|n| n > 0)),
        "nothing reached the hub in 30 s of traffic"
    );
    let before = hub.flow_messages().unwrap_or(0);
    hub.down();
    std::thread::sleep(Duration::from_secs(20));
    hub.up();
    std::thread::sleep(Duration::from_secs(3));
    drop(load);
    // SIGINT: the agent sends what it has and exits.
    let _ = Command::new("kill")
        .args(["-INT", &g.0.id().to_string()])
        .status();
    let _ = g.0.wait();
    let local = local_records(&db);
    // The agent's back-off may still be running; restarting it finishes the replay.
    if hub.flow_messages() != Some(local) {
        let (mut g2, _e2) = agent(&hub, &db, "3");
        let _ = g2.0.wait();
    }
    let local = local_records(&db);
    let got = hub.flow_messages().unwrap_or(0);
    assert!(
        local > before,
        "the store stopped recording during the outage"
    );
    assert_eq!(
        got, local,
        "the hub holds {got} flow records, the agent recorded {local}"
    );
}

/// The hub is away while the agent records; it comes back, and the agent is SIGKILLed while
/// replaying. Restarted, it finishes: nothing lost, nothing twice.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn an_agent_killed_mid_replay_loses_and_repeats_nothing() {
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let dir = TempDir::new("fleet-kill");
    let Some(mut hub) = Hub::start(&dir.0) else {
        return;
    };
    hub_init(&hub);
    hub.down();
    let db = dir.0.join("agent.db").to_str().unwrap().to_string();
    let (mut g, _err) = agent(&hub, &db, "60");
    let load = Loopback::start(500);
    std::thread::sleep(Duration::from_secs(6));
    drop(load);
    std::thread::sleep(Duration::from_secs(1));
    hub.up();
    // Kill it as soon as the replay has begun but before it ends.
    let began = wait_for(Duration::from_secs(40), || {
        hub.flow_messages().is_some_and(|n| n > 0)
    });
    assert!(began, "the agent never reconnected");
    let _ = g.0.kill();
    let _ = g.0.wait();
    let mid = hub.flow_messages().unwrap_or(0);
    let (mut g2, _e2) = agent(&hub, &db, "6");
    let _ = g2.0.wait();
    let local = local_records(&db);
    let got = hub.flow_messages().unwrap_or(0);
    eprintln!("replay: {mid} records on the hub when the agent was killed, {local} in its store");
    assert_eq!(
        got, local,
        "the hub holds {got} flow records, the agent recorded {local}"
    );
}

/// A process in one namespace connects five times to a server that started listening in
/// another, on a private address: the agent records one listen event and one contact event
/// (not five), and both reach the hub, where `fleet events` shows them with the agent's host.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn listen_and_intranet_contact_events_reach_the_hub() {
    if !privileged() {
        eprintln!("{ROOT}");
        return;
    }
    let dir = TempDir::new("fleet-events");
    let Some(hub) = Hub::start(&dir.0) else {
        return;
    };
    hub_init(&hub);
    let (a, b) = netmon_tests::veth_pair("fev");
    let db = dir.0.join("agent.db").to_str().unwrap().to_string();
    let (mut g, _err) = agent(&hub, &db, "30");
    // Listening after start-up is news; what listened before is not.
    std::thread::sleep(Duration::from_millis(1500));
    // `ip netns exec` execs the program: the child's pid is the server's.
    let server = Guard(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &b.name,
                "python3",
                "-m",
                "http.server",
                "8080",
            ])
            .args(["--bind", "10.77.0.2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let client = Command::new("ip")
        .args(["netns", "exec", &a.name, "python3", "-c"])
        .arg(
            "import urllib.request as u\n\
             for _ in range(5): u.urlopen('http://10.77.0.2:8080/', timeout=5).read()",
        )
        .status()
        .unwrap();
    assert!(client.success(), "the client failed: {client}");
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-INT", &g.0.id().to_string()])
        .status();
    let _ = g.0.wait();

    let local = Command::new(netmon_bin())
        .args(["events", "--db", &db, "--since", "5m", "--json"])
        .args(["--kind", "listen,contact"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&local.stdout).to_string();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let contacts: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "contact" && e["remote"] == "10.77.0.2:8080")
        .collect();
    assert_eq!(
        contacts.len(),
        1,
        "one contact for five connections: {text}"
    );
    assert_eq!(contacts[0]["network"], "intranet");
    assert_eq!(contacts[0]["comm"], "python3");
    assert!(
        events.iter().any(|e| e["event"] == "listen_started"
            && e["port"] == 8080
            && e["comm"] == "python3"
            && e["pid"] == server.0.id()),
        "no listen event for the server (pid {}): {text}",
        server.0.id()
    );

    let hubbed = Command::new(netmon_bin())
        .args([
            "fleet",
            "events",
            "--hub",
            &hub.url(),
            "--since",
            "5m",
            "--json",
        ])
        .args(["--kind", "contact"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&hubbed.stdout).to_string();
    assert!(
        text.lines()
            .any(|l| l.contains("\"agent1\"") && l.contains("10.77.0.2:8080")),
        "fleet events did not show the contact: {text} {}",
        String::from_utf8_lossy(&hubbed.stderr)
    );
}
