//! `netmon capture` on a live veth pair between two namespaces this test creates: crafted frames
//! sent from one side (tests/scripts/craft.py over AF_PACKET) are decoded on the other, field by
//! field, with the right interface and direction; a TCP exchange is attributed to the process on
//! the capturing side.
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use netmon_tests::{
    Guard, Lines, Netns, ip, layer, netmon_in, privileged, require_tools, stop, summary_count,
    veth_pair,
};
use serde_json::Value;

const ROOT: &str = "needs root: run under cargo xtask test";

/// `/sys/class/net/DEV/ATTR` as seen inside `ns`.
fn sysfs(ns: &Netns, dev: &str, attr: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat"])
        .arg(format!("/sys/class/net/{dev}/{attr}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn mac(ns: &Netns, dev: &str) -> String {
    sysfs(ns, dev, "address")
}

fn script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
        .display()
        .to_string()
}

fn find<'a>(lines: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    lines.iter().find(|l| pred(l)).unwrap_or_else(|| {
        let all: Vec<String> = lines.iter().map(|l| l["summary"].to_string()).collect();
        panic!("no {what} among {} lines:\n{}", lines.len(), all.join("\n"))
    })
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn capture_decodes_crafted_frames_and_attributes_tcp_on_a_veth_pair() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3"]) {
        return;
    }
    let (a, b) = veth_pair("cap");
    let (netmon, out, err, _) = netmon_in(
        &b,
        &[
            "capture",
            "-i",
            "vB",
            "--json",
            "--snaplen",
            "256",
            "--duration",
            "30",
        ],
    );
    // A TCP server on B (the capturing side) and a client on A.
    let (mut srv, server_pid) = server(&b, false);
    client(&a, 3000);
    let _ = srv.0.wait();

    let crafted = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.name,
            "python3",
            &script("craft.py"),
            "vA",
        ])
        .args([mac(&a, "vA"), mac(&b, "vB")])
        .output()
        .unwrap();
    assert!(
        crafted.status.success(),
        "{}",
        String::from_utf8_lossy(&crafted.stderr)
    );

    // Everything sent has arrived once a second passes without a new line.
    let mut lines: Vec<Value> = Vec::new();
    while let Some(l) = out.next(Duration::from_secs(2)) {
        lines.push(serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")));
    }
    let summary = stop(netmon, &err);
    assert!(summary.contains("packets shown"), "{summary}");

    for l in &lines {
        assert_eq!(l["ifname"], "vB", "{l}");
    }
    let from_a = |l: &Value| l["direction"] == "ingress";

    let arp = find(&lines, "ARP request", |l| {
        from_a(l)
            && layer(l, "ARP").is_some_and(|f| {
                f["Target_IP"] == "10.77.0.2"
                    && f["Operation"] == 1
                    && f["Sender_IP"] == "10.77.0.1"
            })
    });
    assert_eq!(layer(arp, "ARP").unwrap()["Sender_MAC"], mac(&a, "vA"));

    let echo = find(&lines, "ICMP echo", |l| {
        from_a(l) && layer(l, "ICMP").is_some_and(|f| f["Identifier"] == 0x4242)
    });
    let icmp = layer(echo, "ICMP").unwrap();
    assert_eq!(
        (icmp["Type"].as_u64(), icmp["Sequence"].as_u64()),
        (Some(8), Some(7))
    );
    assert_eq!(icmp["Checksum_Valid"], true);
    assert_eq!(layer(echo, "IPv4").unwrap()["Identification"], 0x1001);

    let dns = find(&lines, "DNS query", |l| layer(l, "DNS").is_some());
    let d = layer(dns, "DNS").unwrap();
    assert_eq!(d["Transaction_ID"], 0x1234, "{d}");
    assert!(d.to_string().contains("netmon.test"), "{d}");

    let bad = find(&lines, "bad UDP checksum", |l| {
        layer(l, "UDP").is_some_and(|f| f["Destination_Port"] == 9999)
    });
    assert_eq!(layer(bad, "UDP").unwrap()["Checksum_Valid"], false, "{bad}");
    assert!(bad["problems"].to_string().contains("checksum"), "{bad}");

    let v6 = find(&lines, "IPv6 hop-by-hop + fragment", |l| {
        layer(l, "IPv6_Fragment").is_some()
    });
    assert!(layer(v6, "IPv6_HopByHop").is_some(), "{v6}");
    assert_eq!(
        layer(v6, "IPv6_Fragment").unwrap()["Identification"],
        0xabcd,
        "{v6}"
    );
    assert_eq!(layer(v6, "IPv6").unwrap()["Source_Address"], "fd77::1");

    let lldp = find(&lines, "LLDP", |l| layer(l, "LLDP").is_some());
    assert!(lldp.to_string().contains("netmon-lldp"), "{lldp}");
    let cdp = find(&lines, "CDP over LLC/SNAP", |l| layer(l, "CDP").is_some());
    assert!(layer(cdp, "SNAP").is_some(), "{cdp}");
    assert!(cdp.to_string().contains("netmon-cdp1"), "{cdp}");

    // TCP: packets the server sent (egress, by socket cookie) and received (ingress, by
    // addresses) carry its pid; the client is in another namespace, on no local socket.
    let tcp: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            layer(l, "TCP")
                .is_some_and(|f| f["Source_Port"] == 7000 || f["Destination_Port"] == 7000)
        })
        .collect();
    assert!(
        tcp.len() >= 6,
        "handshake, data, close: {} TCP lines",
        tcp.len()
    );
    for l in &tcp {
        assert_eq!(l["pid"].as_u64(), Some(server_pid), "{}", l["summary"]);
    }
    assert!(tcp.iter().any(|l| l["direction"] == "egress"));
    assert!(tcp.iter().any(|l| l["direction"] == "ingress"));
    let data: u64 = tcp
        .iter()
        .filter(|l| l["direction"] == "ingress")
        .filter_map(|l| layer(l, "TCP").and_then(|f| f["Payload_Length"].as_u64()))
        .sum();
    assert_eq!(data, 3000, "payload the client sent, as seen arriving");
}

/// A TCP server on B (10.77.0.2:7000) that reads until EOF or, with `abort`, closes with an RST
/// after the first read; prints its pid.
fn server(b: &Netns, abort: bool) -> (Guard, u64) {
    let code = format!(
        "import os,socket,struct\n\
         l=socket.socket(); l.bind(('10.77.0.2',7000)); l.listen()\n\
         print(os.getpid(), flush=True)\n\
         c,_=l.accept(); n=0\n\
         while True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\n if {abort} and n>=20000: break\n\
         if {abort}: c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii',1,0))\n\
         else: c.sendall(b'got %d' % n)\n\
         c.close()\n",
        abort = if abort { "True" } else { "False" }
    );
    let mut g = Guard(
        Command::new("ip")
            .args(["netns", "exec", &b.name, "python3", "-c", &code])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = Lines::new(g.0.stdout.take().unwrap());
    let pid = out
        .next(Duration::from_secs(10))
        .and_then(|l| l.trim().parse().ok())
        .expect("server pid");
    (g, pid)
}

/// A client on A sending `bytes` in 1000-byte writes (TCP_NODELAY), tolerating a reset.
fn client(a: &Netns, bytes: usize) {
    let code = format!(
        "import socket,time\n\
         c=socket.create_connection(('10.77.0.2',7000)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n\
         try:\n for i in range({n}):\n  c.sendall(b'x'*1000); time.sleep(0.001)\n c.shutdown(socket.SHUT_WR); c.recv(100)\n\
         except OSError: pass\n",
        n = bytes / 1000
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &a.name, "python3", "-c", &code])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn pcapng_is_read_back_by_tshark_and_a_simple_filter_runs_in_the_kernel() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3", "tshark"]) {
        return;
    }
    let (a, b) = veth_pair("pcap");
    let dir = std::env::temp_dir().join(format!("netmon-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out.pcapng");
    let (nm, _out, err, _) = netmon_in(
        &b,
        &[
            "capture",
            "-i",
            "vB",
            "--quiet",
            "-f",
            "tcp.port == 7000",
            "-w",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        err.next(Duration::from_secs(5))
            .is_some_and(|l| l.contains("runs in the kernel"))
    );
    let (mut srv, server_pid) = server(&b, false);
    client(&a, 5000);
    let _ = srv.0.wait();
    let crafted = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.name,
            "python3",
            &script("craft.py"),
            "vA",
        ])
        .args([mac(&a, "vA"), mac(&b, "vB")])
        .output()
        .unwrap();
    assert!(crafted.status.success());
    std::thread::sleep(Duration::from_secs(1));
    let summary = stop(nm, &err);
    let shown: u64 = summary
        .split("netmon: ")
        .find_map(|s| s.split(" packets shown").next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary}"));
    // The crafted frames (ARP, ICMP, UDP, LLDP, CDP...) never reach user space.
    let kernel_filtered: u64 = summary
        .split(", ")
        .find_map(|s| {
            s.strip_suffix(" filtered in the kernel")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(kernel_filtered >= 7, "{summary}");

    let tshark = Command::new("tshark")
        .args([
            "-r",
            file.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.comment",
            "-e",
            "tcp.port",
            "-e",
            "frame.interface_name",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        tshark.status.success(),
        "{}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    let rows: Vec<String> = String::from_utf8_lossy(&tshark.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        rows.len() as u64,
        shown,
        "tshark read {} packets, netmon wrote {shown}",
        rows.len()
    );
    assert!(shown >= 10, "{summary}");
    for r in &rows {
        assert!(r.contains("7000"), "only the filtered connection: {r}");
        assert!(
            r.contains(&format!("pid={server_pid}")),
            "process in the comment: {r}"
        );
        assert!(r.ends_with("vB"), "interface block: {r}");
    }
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn follow_shows_retransmissions_and_the_reset() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3", "nft"]) {
        return;
    }
    let (a, b) = veth_pair("follow");
    // Every fifth data segment arriving at B is dropped: A must retransmit.
    for cmd in [
        vec!["add", "table", "inet", "nmdrop"],
        vec![
            "add",
            "chain",
            "inet",
            "nmdrop",
            "in",
            "{ type filter hook input priority 0 ; }",
        ],
        vec![
            "add", "rule", "inet", "nmdrop", "in", "tcp", "dport", "7000", "meta", "length", ">",
            "500", "numgen", "inc", "mod", "5", "==", "0", "drop",
        ],
    ] {
        let ok = Command::new("ip")
            .args(["netns", "exec", &b.name, "nft"])
            .args(&cmd)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "nft {cmd:?}");
    }
    let (nm, out, err, _) = netmon_in(&b, &["follow", "10.77.0.2:7000", "-i", "vB"]);
    let (mut srv, server_pid) = server(&b, true);
    client(&a, 40_000);
    let _ = srv.0.wait();
    let mut lines = Vec::new();
    while let Some(l) = out.next(Duration::from_secs(2)) {
        lines.push(l);
    }
    let summary = stop(nm, &err);
    let text = lines.join("\n");
    assert!(text.contains("tcp: established, handshake"), "{text}");
    assert!(text.contains("tcp: retransmission by 10.77.0.1:"), "{text}");
    assert!(text.contains("tcp: reset by 10.77.0.2:7000"), "{text}");
    assert!(text.contains(&format!("{server_pid}/python3")), "{text}");
    let conn = summary
        .lines()
        .find(|l| l.contains("netmon: connection"))
        .unwrap_or_else(|| panic!("no connection summary in {summary}"));
    assert!(conn.contains("reset by 10.77.0.2:7000"), "{conn}");
    let retrans: u64 = conn
        .split(", ")
        .find_map(|s| s.strip_suffix(" retransmissions")?.trim().parse().ok())
        .unwrap_or(0);
    assert!(retrans >= 1, "{conn}");
    eprintln!("{conn}");
}

fn iface_flags(ns: &Netns, dev: &str) -> u32 {
    u32::from_str_radix(sysfs(ns, dev, "flags").trim_start_matches("0x"), 16).unwrap()
}

/// XDP (native mode: veth has it) for received packets, 1-in-4 sampling counted, promiscuous mode
/// on while capturing and restored after.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn xdp_sampling_and_promiscuous_mode() {
    assert!(privileged(), "{ROOT}");
    if !require_tools(&["python3"]) {
        return;
    }
    const IFF_PROMISC: u32 = 0x100;
    let (a, b) = veth_pair("xdp");
    assert_eq!(iface_flags(&b, "vB") & IFF_PROMISC, 0);
    let (nm, out, err, _) = netmon_in(
        &b,
        &[
            "capture",
            "-i",
            "vB",
            "--xdp",
            "--promisc",
            "--sample",
            "4",
            "--json",
        ],
    );
    assert!(
        iface_flags(&b, "vB") & IFF_PROMISC != 0,
        "promiscuous while capturing"
    );
    let link = Command::new("ip")
        .args(["-n", &b.name, "link", "show", "vB"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("prog/xdp"), "an XDP program on vB: {link}");
    let (mut srv, _) = server(&b, false);
    client(&a, 200_000);
    let _ = srv.0.wait();
    let mut lines = Vec::new();
    while let Some(l) = out.next(Duration::from_secs(2)) {
        lines.push(serde_json::from_str::<Value>(&l).unwrap());
    }
    let summary = stop(nm, &err);
    assert_eq!(
        iface_flags(&b, "vB") & IFF_PROMISC,
        0,
        "promiscuous mode restored"
    );
    let link = Command::new("ip")
        .args(["-n", &b.name, "link", "show", "vB"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(!link.contains("prog/xdp"), "XDP detached: {link}");
    let shown = lines.len() as u64;
    let captured: u64 = summary
        .split("shown of ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let sampled_out = summary_count(&summary, "sampled out");
    // Every 4th packet per CPU is copied: 3 of 4 are counted as sampled out (within a few per
    // CPU where the per-CPU sequences start).
    let total = captured + sampled_out;
    assert!(total > 200, "{summary}");
    let share = captured as f64 / total as f64;
    assert!(
        (0.2..0.3).contains(&share),
        "kept {captured} of {total}: {summary}"
    );
    assert!(shown > 0);
    // Received packets came through XDP, sent ones through TC.
    let hooks: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["direction"].as_str().unwrap(),
                l["ifname"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(hooks.iter().any(|(d, _)| *d == "ingress"), "{hooks:?}");
    assert!(err_said(&summary, "vB in:"), "{summary}");
}

fn err_said(summary: &str, what: &str) -> bool {
    summary.lines().any(|l| l.contains(what))
}

/// The captured interface disappears mid-run: netmon goes on (its links went with the device),
/// and ends on Ctrl-C with its summary, exit 0, no panic.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn the_captured_interface_disappears() {
    assert!(privileged(), "{ROOT}");
    let (_a, b) = veth_pair("gone");
    let (mut nm, _out, err, _) = netmon_in(&b, &["capture", "-i", "vB", "--quiet"]);
    ip(&["-n", &b.name, "link", "del", "vB"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        nm.0.try_wait().unwrap().is_none(),
        "netmon stopped when vB went away"
    );
    let id = nm.0.id().to_string();
    let _ = Command::new("kill").args(["-INT", &id]).status();
    let summary = err.rest(Duration::from_secs(10)).join("\n");
    let status = nm.0.wait().unwrap();
    assert!(!summary.contains("panicked"), "{summary}");
    assert_eq!(status.code(), Some(0), "{summary}");
    assert!(summary.contains("packets shown"), "{summary}");
}
