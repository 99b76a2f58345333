//! The fleet at more than one host and under faults, against ground truth the test makes:
//! agents in network namespaces of their own reach a hub in another one over veth pairs, each
//! agent limited (`--cgroup`) to the traffic the test runs in its namespace, and told apart by
//! `--host-name`. The bytes expected come from trafficgen (what its calls returned); the
//! records expected from each agent's own store.
use std::{collections::BTreeSet, path::Path, time::Duration};

use netmon_tests::{
    Cgroup, Guard, Lines,
    fleet::{
        Hub, Topology, agent_in, hub_init, interrupt, json_lines, local_bytes, local_records,
        local_seqs, netmon_at, netmon_with_config, wait_for,
    },
    privileged,
    prom::TempDir,
    start_ready, trafficgen_bin,
};
use serde_json::Value;

const SITE: &str = "scale";

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// `fleet report --by host --json` in the hub's namespace: host → (sent, received).
fn report_by_host(topo: &Topology, hub: &Hub) -> Vec<(String, u64, u64)> {
    let out = netmon_at(
        Some(&topo.hub),
        &[
            "fleet",
            "report",
            "--hub",
            &hub.url(),
            "--site",
            SITE,
            "--since",
            "10m",
            "--by",
            "host",
            "--json",
        ],
    );
    json_lines(&out)
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("").to_string(),
                u(r, "tx_bytes"),
                u(r, "rx_bytes"),
            )
        })
        .collect()
}

/// An agent in agent namespace `i` of `topo`, publishing to the hub over its veth as `host`,
/// recording only `cgroup`'s processes.
fn agent(
    topo: &Topology,
    hub: &Hub,
    i: usize,
    host: &str,
    db: &str,
    cg: &Cgroup,
) -> (Guard, Lines) {
    agent_in(
        Some(&topo.agents[i - 1]),
        &[
            "--interval",
            "0.5",
            "--duration",
            "120",
            "--db",
            db,
            "--hub",
            &hub.url_at(&Topology::hub_addr(i)),
            "--site",
            SITE,
            "--host-name",
            host,
            "--cgroup",
            &cg.pattern,
        ],
    )
}

/// `fleet flows` prints each of the store's records once: the same (host, boot, seq) set.
fn each_record_once(ns: Option<&netmon_tests::Netns>, url: &str, host: &str, db: &str) {
    let out = netmon_at(
        ns,
        &[
            "fleet", "flows", "--hub", url, "--since", "10m", "--json", "--host", host,
        ],
    );
    let flows = json_lines(&out);
    let ids: BTreeSet<(String, String, u64)> = flows
        .iter()
        .map(|f| {
            (
                f["host"].as_str().unwrap().to_string(),
                f["boot"].as_str().unwrap().to_string(),
                u(f, "seq"),
            )
        })
        .collect();
    assert_eq!(ids.len(), flows.len(), "a record printed twice");
    let seqs: BTreeSet<u64> = ids.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(
        seqs,
        local_seqs(db),
        "the hub's identities vs the store's; fleet flows said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ids.iter()
            .map(|(h, b, _)| (h.clone(), b.clone()))
            .collect::<BTreeSet<_>>()
            .len(),
        1,
        "one host and boot"
    );
}

/// A hub namespace joined to `n` agent namespaces, and the hub in it with its streams (None,
/// having said why, without nats-server).
fn fleet_of(tag: &str, n: usize, dir: &TempDir) -> Option<(Topology, Hub)> {
    let topo = Topology::new(tag, n);
    let hub = Hub::start_in(&topo.hub, &dir.0)?;
    hub_init(Some(&topo.hub), &["--hub", &hub.url()]);
    Some((topo, hub))
}

fn db_in(dir: &Path, name: &str) -> String {
    dir.join(format!("{name}.db")).to_str().unwrap().to_string()
}

/// Three agents in three namespaces, a hub in a fourth: each agent's namespace sends a known
/// number of bytes to a server in the hub's namespace (an intranet address) and gets a known
/// answer. `fleet report --by host` gives each host exactly its bytes, the same as its own
/// store, and `fleet events` shows each host's contact with the intranet. A viewer with no
/// --hub reads the hub from the config file's [hub] section.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn three_agents_in_three_namespaces_report_their_own_bytes() {
    assert!(privileged(), "needs root: run under cargo xtask test");
    let dir = TempDir::new("fleet-three");
    let Some((topo, hub)) = fleet_of("f3", 3, &dir) else {
        return;
    };
    let parent = format!("netmon-fleet-{}", std::process::id());
    let cgroups: Vec<Cgroup> = (1..=3)
        .map(|i| Cgroup::new(&parent, &format!("a{i}")))
        .collect();
    let hosts: Vec<String> = (1..=3).map(|i| format!("fleet-h{i}")).collect();
    let mut agents: Vec<(Guard, Lines)> = (1..=3)
        .map(|i| {
            agent(
                &topo,
                &hub,
                i,
                &hosts[i - 1],
                &db_in(&dir.0, &hosts[i - 1]),
                &cgroups[i - 1],
            )
        })
        .collect();

    // Per host: a server in the hub's namespace, a client in the agent's, in the agent's cgroup.
    let tg = trafficgen_bin();
    let tg = tg.to_str().unwrap();
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for i in 1..=3usize {
        let addr = Topology::hub_addr(i);
        let port = (7100 + i).to_string();
        let (send, answer) = (1_000_003 * i as u64, 100_019 * i as u64);
        let server = start_ready(
            &topo.hub,
            &[tg, "listen", &addr, &port, &answer.to_string()],
        );
        let client = start_ready(
            &topo.agents[i - 1],
            &[tg, "connect", &addr, &port, &send.to_string()],
        );
        cgroups[i - 1].add(client.2);
        servers.push(server);
        clients.push(client);
    }
    for (g, _, _) in servers.iter_mut().chain(clients.iter_mut()) {
        use std::io::Write;
        writeln!(g.0.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let mut truth = Vec::new();
    for (i, (g, out, _)) in clients.iter_mut().enumerate() {
        let t: Value = serde_json::from_str(
            &out.next(Duration::from_secs(60))
                .expect("the client gave no result"),
        )
        .unwrap();
        let _ = g.0.wait();
        let s: Value =
            serde_json::from_str(&servers[i].1.next(Duration::from_secs(30)).unwrap()).unwrap();
        assert_eq!(u(&s, "received"), u(&t, "sent"), "server {i}: {s} {t}");
        truth.push((hosts[i].clone(), u(&t, "sent"), u(&t, "received")));
    }
    eprintln!("trafficgen (host, sent, received): {truth:?}");

    // The records reach the hub within seconds, or, for an agent whose first connection
    // failed on a loaded machine, after its back-off (up to 60 s): wait for the report to
    // reach the truth, then compare exactly.
    let mut got = Vec::new();
    wait_for(Duration::from_secs(90), || {
        got = report_by_host(&topo, &hub);
        got.len() >= 3 && truth.iter().all(|t| got.contains(t))
    });
    eprintln!("fleet report --by host: {got:?}");
    let mut want = truth.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "fleet report --by host (host, sent, received)");

    // Each agent's own store holds the same bytes (it recorded its cgroup only).
    for (i, h) in hosts.iter().enumerate() {
        let local = local_bytes(&db_in(&dir.0, h));
        assert_eq!(local, (truth[i].1, truth[i].2), "{h}'s own store");
    }

    // Each host's first contact with the intranet, from the hub.
    let out = netmon_at(
        Some(&topo.hub),
        &[
            "fleet",
            "events",
            "--hub",
            &hub.url(),
            "--since",
            "10m",
            "--json",
            "--kind",
            "contact",
        ],
    );
    let events = json_lines(&out);
    for (i, h) in hosts.iter().enumerate() {
        let remote = format!("{}:{}", Topology::hub_addr(i + 1), 7101 + i);
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["host"] == h.as_str() && e["detail"]["remote"] == remote.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{h}'s contact with {remote}: {events:?}");
        assert_eq!(mine[0]["detail"]["network"], "intranet", "{}", mine[0]);
        assert_eq!(mine[0]["comm"], "trafficgen", "{}", mine[0]);
    }
    // No agent published another's contact (each saw only its own cgroup).
    assert_eq!(
        events
            .iter()
            .filter(|e| e["site"] == SITE && e["detail"]["network"] == "intranet")
            .count(),
        3,
        "{events:?}"
    );

    // What a person at the hub sees, for the log.
    for args in [
        &[
            "fleet", "report", "--site", SITE, "--since", "10m", "--by", "host",
        ][..],
        &["fleet", "events", "--since", "10m", "--kind", "contact"][..],
    ] {
        let mut a = args.to_vec();
        let url = hub.url();
        a.extend(["--hub", &url]);
        let out = netmon_at(Some(&topo.hub), &a);
        eprintln!(
            "$ netmon {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // A viewer with no --hub: the [hub] section of its config file.
    let conf = dir.0.join("viewer.toml");
    std::fs::write(&conf, format!("[hub]\nurl = \"{}\"\n", hub.url())).unwrap();
    let out = netmon_with_config(
        Some(&topo.hub),
        Some(&conf),
        &[
            "fleet", "report", "--site", SITE, "--since", "10m", "--by", "host", "--json",
        ],
    );
    let mut from_file: Vec<(String, u64, u64)> = json_lines(&out)
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                u(r, "tx_bytes"),
                u(r, "rx_bytes"),
            )
        })
        .collect();
    from_file.sort();
    assert_eq!(
        from_file,
        want,
        "fleet report with the hub from {}: {}",
        conf.display(),
        String::from_utf8_lossy(&out.stderr)
    );

    for (g, err) in &mut agents {
        interrupt(g, err, Duration::from_secs(15));
    }
}

/// The agent's veth is cut for 20 s (`ip link set down`) while short connections run in its
/// namespace, then restored: every flow record of its store reaches the hub exactly once
/// (the server's message count, and the (host, boot, seq) of each record), and the bytes on
/// the hub equal both its store's and trafficgen's.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn a_cut_link_loses_and_repeats_no_record() {
    assert!(privileged(), "needs root: run under cargo xtask test");
    let dir = TempDir::new("fleet-cut");
    let Some((topo, hub)) = fleet_of("fc", 1, &dir) else {
        return;
    };
    let cg = Cgroup::new(&format!("netmon-fleet-{}", std::process::id()), "cut");
    let host = "fleet-cut";
    let db = db_in(&dir.0, host);
    let (mut g, err) = agent(&topo, &hub, 1, host, &db, &cg);

    let tg = trafficgen_bin();
    let (mut traffic, out, pid) = start_ready(
        &topo.agents[0],
        &[tg.to_str().unwrap(), "churn", "40", "40", "1000"],
    );
    cg.add(pid);
    {
        use std::io::Write;
        writeln!(traffic.0.stdin.as_mut().unwrap(), "go").unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(15), || hub
            .flow_messages()
            .is_some_and(|n| n > 0)),
        "nothing reached the hub before the cut"
    );
    topo.link(1, false);
    let at_cut = hub.flow_messages().unwrap_or(0);
    let local_at_cut = local_records(&db);
    // The cut itself lasts 20 s: that is the fault, not a wait for something.
    std::thread::sleep(Duration::from_secs(20));
    let during = hub.flow_messages().unwrap_or(0);
    let local_during = local_records(&db);
    topo.link(1, true);
    eprintln!(
        "cut: hub {at_cut} -> {during} records, store {local_at_cut} -> {local_during} during 20 s"
    );
    assert!(
        local_during > local_at_cut,
        "the agent stopped recording while cut off"
    );

    let truth: Value = serde_json::from_str(
        &out.next(Duration::from_secs(60))
            .expect("trafficgen gave no result"),
    )
    .unwrap();
    let _ = traffic.0.wait();
    eprintln!("trafficgen: {truth}");
    assert_eq!(u(&truth, "connections"), u(&truth, "accepted"));

    // Every connection is two records (both ends); once they are in the store, the hub
    // catches up after its reconnect (back-off included).
    let conns = u(&truth, "connections");
    let caught_up = wait_for(Duration::from_secs(90), || {
        let local = local_records(&db);
        local >= 2 * conns && hub.flow_messages() == Some(local)
    });
    let local = local_records(&db);
    let on_hub = hub.flow_messages().unwrap_or(0);
    eprintln!("after the cut: {on_hub} records on the hub, {local} in the store");
    assert!(
        caught_up,
        "the hub holds {on_hub} records, the store {local}"
    );

    each_record_once(Some(&topo.hub), &hub.url(), host, &db);

    // Bytes: hub = store = trafficgen.
    let report = report_by_host(&topo, &hub);
    eprintln!("fleet report --by host: {report:?}");
    let local = local_bytes(&db);
    assert_eq!(
        local,
        (u(&truth, "client_sent"), u(&truth, "server_received")),
        "the store vs trafficgen"
    );
    assert_eq!(report, vec![(host.to_string(), local.0, local.1)]);
    let tail = interrupt(&mut g, &err, Duration::from_secs(15));
    eprintln!("agent: {tail}");
}

/// A viewer that keeps printing (`fleet top` without a terminal prints a table each interval,
/// `fleet events --follow --json` a line per event), in the hub's namespace.
fn viewer(topo: &Topology, hub: &Hub, args: &[&str]) -> (Guard, Lines) {
    let mut g = Guard(
        netmon_tests::fleet::netmon_cmd(Some(&topo.hub), None)
            .args(["fleet"])
            .args(args)
            .args(["--hub", &hub.url()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting a viewer"),
    );
    let out = Lines::new(g.0.stdout.take().unwrap());
    (g, out)
}

/// Two `fleet top` and two `fleet events --follow` at once, all started before the agent: both
/// tops show the host up and then DOWN once it stops; both event viewers print the same
/// events (the agent's, among them its intranet contact, each once) and each makes its
/// agent-down.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn four_viewers_at_once_see_the_same() {
    assert!(privileged(), "needs root: run under cargo xtask test");
    let dir = TempDir::new("fleet-viewers");
    let Some((topo, hub)) = fleet_of("fv", 1, &dir) else {
        return;
    };
    let tops: Vec<(Guard, Lines)> = (0..2)
        .map(|_| viewer(&topo, &hub, &["top", "--interval", "1"]))
        .collect();
    let events: Vec<(Guard, Lines)> = (0..2)
        .map(|_| viewer(&topo, &hub, &["events", "--follow", "--json"]))
        .collect();
    let cg = Cgroup::new(&format!("netmon-fleet-{}", std::process::id()), "view");
    let host = "fleet-v";
    let (mut g, err) = agent(&topo, &hub, 1, host, &db_in(&dir.0, host), &cg);

    // Both tops show the host up (heartbeats reach every viewer).
    let mut top_seen: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    let row = format!("{SITE}/{host}");
    let saw = |state: &str, seen: &mut Vec<Vec<String>>| {
        wait_for(Duration::from_secs(30), || {
            for (i, (_, out)) in tops.iter().enumerate() {
                while let Some(l) = out.next(Duration::from_millis(10)) {
                    seen[i].push(l);
                }
            }
            seen.iter()
                .all(|s| s.iter().any(|l| l.starts_with(&row) && l.contains(state)))
        })
    };
    assert!(
        saw(" up ", &mut top_seen),
        "a top never showed {row} up: {top_seen:?}"
    );

    // A contact from the agent's namespace to the hub's (an intranet address).
    let tg = trafficgen_bin();
    let tg = tg.to_str().unwrap();
    let (mut far, far_out, _) =
        start_ready(&topo.hub, &[tg, "listen", "10.231.1.1", "7202", "500"]);
    let (mut client, client_out, _) = cg.start_ready(
        &topo.agents[0],
        &[tg, "connect", "10.231.1.1", "7202", "2000"],
    );
    for p in [&mut far, &mut client] {
        use std::io::Write;
        writeln!(p.0.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for out in [&far_out, &client_out] {
        assert!(
            out.next(Duration::from_secs(30)).is_some(),
            "trafficgen gave no result"
        );
    }

    // Each event viewer: the contact, then agent-down after the agent stops.
    let mut got: Vec<Vec<Value>> = vec![Vec::new(), Vec::new()];
    let collect = |got: &mut Vec<Vec<Value>>, want: &dyn Fn(&[Value]) -> bool| {
        wait_for(Duration::from_secs(40), || {
            for (i, (_, out)) in events.iter().enumerate() {
                while let Some(l) = out.next(Duration::from_millis(10)) {
                    if let Ok(v) = serde_json::from_str::<Value>(&l) {
                        got[i].push(v);
                    }
                }
            }
            got.iter().all(|g| want(g))
        })
    };
    let has =
        |evs: &[Value], kind: &str| evs.iter().any(|e| e["host"] == host && e["kind"] == kind);
    assert!(
        collect(&mut got, &|evs: &[Value]| has(evs, "contact")),
        "an events viewer missed the contact: {got:?}"
    );
    interrupt(&mut g, &err, Duration::from_secs(15));
    assert!(
        collect(&mut got, &|evs: &[Value]| has(evs, "agent-down")),
        "an events viewer made no agent-down: {got:?}"
    );
    assert!(
        saw("DOWN", &mut top_seen),
        "a top never showed {row} DOWN: {top_seen:?}"
    );

    // The same events in both, each once: (kind, boot, seq) of the agent's, and agent-down.
    let keys = |evs: &[Value]| -> Vec<String> {
        let mut k: Vec<String> = evs
            .iter()
            .filter(|e| e["host"] == host)
            .map(|e| format!("{} {} {} {}", e["kind"], e["boot"], e["seq"], e["summary"]))
            .collect();
        k.sort();
        k
    };
    let (a, b) = (keys(&got[0]), keys(&got[1]));
    eprintln!("events viewer 1: {a:#?}");
    let down = |k: &Vec<String>| k.iter().filter(|e| e.starts_with("\"agent-down\"")).count();
    assert_eq!(down(&a), 1, "{a:?}");
    assert_eq!(down(&b), 1, "{b:?}");
    let agent_only = |k: &Vec<String>| -> Vec<String> {
        k.iter()
            .filter(|e| !e.starts_with("\"agent-"))
            .cloned()
            .collect()
    };
    assert_eq!(
        agent_only(&a),
        agent_only(&b),
        "the two event viewers differ"
    );
    let contacts: Vec<&String> = a.iter().filter(|e| e.starts_with("\"contact\"")).collect();
    assert_eq!(contacts.len(), 1, "{a:?}");
    assert!(contacts[0].contains("10.231.1.1:7202"), "{a:?}");
    let mut ids = agent_only(&a);
    ids.dedup();
    assert_eq!(
        ids.len(),
        agent_only(&a).len(),
        "an event printed twice: {a:?}"
    );
    for (i, t) in top_seen.iter().enumerate() {
        let last = t.iter().rev().find(|l| l.starts_with(&row)).unwrap();
        eprintln!("top {}: {last}", i + 1);
    }
}

/// The client names connected to a node (its monitoring /connz).
fn client_names(node: &Hub) -> Vec<String> {
    node.get("/connz")
        .and_then(|b| serde_json::from_str::<Value>(&b).ok())
        .and_then(|v| v["connections"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// The JetStream meta leader a node knows (its monitoring /jsz).
fn meta_leader(node: &Hub) -> Option<String> {
    let v: Value = serde_json::from_str(&node.get("/jsz")?).ok()?;
    v["meta_cluster"]["leader"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// Three nats-server processes on loopback in one cluster (JetStream, routes, a store each),
/// streams with three replicas. The agent, given all three URLs, publishes under load; the
/// node it is connected to is killed: the agent moves to another, nothing is lost or stored
/// twice, and a `fleet events --follow` started before the kill (given all three URLs) goes
/// on and reports the agent down when it stops; `fleet report` against the two survivors
/// gives the store's exact bytes.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn a_three_node_cluster_survives_losing_a_node_under_load() {
    assert!(privileged(), "needs root: run under cargo xtask test");
    if !netmon_tests::fleet::nats_installed() {
        return;
    }
    let dir = TempDir::new("fleet-cluster");
    let routes: Vec<u16> = (0..3).map(|_| netmon_tests::prom::free_port()).collect();
    let mut nodes: Vec<Hub> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let others: Vec<String> = routes
            .iter()
            .filter(|r| *r != route)
            .map(|r| format!("nats-route://127.0.0.1:{r}"))
            .collect();
        let conf = dir.0.join(format!("n{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\ncluster {{\n  name: netmon-test\n  listen: 127.0.0.1:{route}\n  \
                 routes: [{}]\n}}\n",
                others.join(", ")
            ),
        )
        .unwrap();
        nodes.push(Hub::start_node(&dir.0, &conf).expect("nats-server"));
    }
    let all = nodes.iter().map(Hub::url).collect::<Vec<_>>().join(",");
    // The cluster elects its JetStream leader first: hub init succeeds once it has.
    let mut last = String::new();
    let ok = wait_for(Duration::from_secs(30), || {
        let out = netmon_at(None, &["hub", "init", "--hub", &all, "--replicas", "3"]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success()
    });
    assert!(ok, "hub init --replicas 3: {last}");
    eprintln!("hub init: {last}");
    assert!(last.contains("replicas 3"), "{last}");

    let follow = {
        let mut g = Guard(
            netmon_tests::fleet::netmon_cmd(None, None)
                .args(["fleet", "events", "--follow", "--json", "--hub", &all])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let out = Lines::new(g.0.stdout.take().unwrap());
        (g, out)
    };
    let db = db_in(&dir.0, "clustered");
    let (mut g, err) = agent_in(
        None,
        &[
            "--interval",
            "0.5",
            "--duration",
            "120",
            "--db",
            &db,
            "--hub",
            &all,
            "--site",
            SITE,
            "--host-name",
            "clustered",
        ],
    );
    let load = netmon_tests::load::Loopback::start(100);
    let counted = |n: &Hub| n.flow_messages().unwrap_or(0);
    assert!(
        wait_for(Duration::from_secs(20), || nodes
            .iter()
            .any(|n| counted(n) > 0)),
        "nothing reached the cluster"
    );
    // Kill the node the agent is connected to.
    let mut victim = None;
    wait_for(Duration::from_secs(10), || {
        victim = nodes.iter().position(|n| {
            client_names(n)
                .iter()
                .any(|c| c.starts_with("netmon agent"))
        });
        victim.is_some()
    });
    let victim = victim.expect("the agent is connected to no node");
    let before = counted(&nodes[victim]);
    let leader_before = meta_leader(&nodes[(victim + 1) % 3]);
    nodes[victim].down();
    eprintln!("killed node n{victim} with {before} records stored (meta leader {leader_before:?})");
    let survivors: Vec<&Hub> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, n)| n)
        .collect();
    assert!(
        wait_for(Duration::from_secs(60), || survivors
            .iter()
            .all(|n| counted(n) > before + 200)),
        "the cluster stored no 200 new records after the kill"
    );
    drop(load);
    interrupt(&mut g, &err, Duration::from_secs(20));
    let local = local_records(&db);
    assert!(
        wait_for(Duration::from_secs(20), || survivors
            .iter()
            .all(|n| counted(n) == local)),
        "the survivors hold {:?} records, the store {local}",
        survivors.iter().map(|n| counted(n)).collect::<Vec<_>>()
    );
    eprintln!("each survivor holds {local} records, as the store");
    // The stream API answers once the survivors agree on a JetStream meta leader (a new one
    // when the killed node led).
    let gone = format!("n{victim}");
    assert!(
        wait_for(Duration::from_secs(30), || survivors
            .iter()
            .all(|n| { meta_leader(n).is_some_and(|l| l != gone) })),
        "the survivors elected no JetStream meta leader"
    );
    eprintln!(
        "meta leader after the kill: {:?}",
        meta_leader(survivors[0])
    );
    let survivors_url = survivors
        .iter()
        .map(|n| n.url())
        .collect::<Vec<_>>()
        .join(",");
    each_record_once(None, &survivors_url, "clustered", &db);

    // The follower carried on: it reports the agent down.
    let (_fg, fout) = follow;
    let mut seen = Vec::new();
    let down = wait_for(Duration::from_secs(40), || {
        while let Some(l) = fout.next(Duration::from_millis(10)) {
            seen.push(l);
        }
        seen.iter()
            .any(|l| l.contains("\"agent-down\"") && l.contains("clustered"))
    });
    assert!(down, "fleet events --follow stopped: {seen:?}");

    let out = netmon_at(
        None,
        &[
            "fleet",
            "report",
            "--hub",
            &survivors_url,
            "--site",
            SITE,
            "--since",
            "10m",
            "--by",
            "host",
            "--json",
        ],
    );
    let rows = json_lines(&out);
    let (tx, rx) = local_bytes(&db);
    eprintln!("fleet report from the survivors: {rows:?}; the store: {tx} sent, {rx} received");
    assert_eq!(rows.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        (rows[0]["tx_bytes"].as_u64(), rows[0]["rx_bytes"].as_u64()),
        (Some(tx), Some(rx))
    );
}
