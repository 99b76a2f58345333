//! `netmon capture` on a live veth pair between two namespaces this test creates: crafted frames
//! sent from one side (tests/scripts/craft.py over AF_PACKET) are decoded on the other, field by
//! field, with the right interface and direction; a TCP exchange is attributed to the process on
//! the capturing side.
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use netmon_tests::{Guard, Lines, Netns, netmon_bin, privileged, require_tools};
use serde_json::Value;

const ROOT: &str = "needs root: run under cargo xtask test";

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

fn mac(ns: &Netns, dev: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "cat",
            &format!("/sys/class/net/{dev}/address"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Two namespaces joined by a veth pair: vA (10.77.0.1, fd77::1) and vB (10.77.0.2, fd77::2).
fn veth_pair(tag: &str) -> (Netns, Netns) {
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

fn script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
        .display()
        .to_string()
}

fn layer<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["layers"]
        .as_array()?
        .iter()
        .find(|l| l["layer"] == name)
        .map(|l| &l["fields"])
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
    let mut netmon = Guard(
        Command::new("ip")
            .args(["netns", "exec", &b.name])
            .arg(netmon_bin())
            .args([
                "capture",
                "-i",
                "vB",
                "--json",
                "--snaplen",
                "256",
                "--duration",
                "30",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = Lines::new(netmon.0.stderr.take().unwrap());
    let started = err.next(Duration::from_secs(20)).unwrap_or_default();
    assert!(
        started.contains("capturing on vB"),
        "netmon said: {started}"
    );
    let out = Lines::new(netmon.0.stdout.take().unwrap());

    // A TCP server on B (the capturing side) and a client on A.
    let mut server = Guard(
        Command::new("ip")
            .args(["netns", "exec", &b.name, "python3", "-c"])
            .arg(
                "import os,socket\n\
                 l=socket.socket(); l.bind(('10.77.0.2',7000)); l.listen()\n\
                 print(os.getpid(), flush=True)\n\
                 c,_=l.accept(); n=0\n\
                 while True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\n\
                 c.sendall(b'got %d' % n); c.close()\n",
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let server_out = Lines::new(server.0.stdout.take().unwrap());
    let server_pid: u64 = server_out
        .next(Duration::from_secs(10))
        .and_then(|l| l.trim().parse().ok())
        .expect("server pid");
    let client = Command::new("ip")
        .args(["netns", "exec", &a.name, "python3", "-c"])
        .arg(
            "import socket\n\
             c=socket.create_connection(('10.77.0.2',7000)); c.sendall(b'x'*3000); c.shutdown(socket.SHUT_WR)\n\
             print(c.recv(100).decode())\n",
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&client.stdout).trim(), "got 3000");
    let _ = server.0.wait();

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
    let _ = Command::new("kill")
        .args(["-INT", &netmon.0.id().to_string()])
        .status();
    let summary = err.rest(Duration::from_secs(10)).join("\n");
    let _ = netmon.0.wait();
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
