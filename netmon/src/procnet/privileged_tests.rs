//! Cross-checks the live parsers against iproute2 inside a namespace this test creates.
//! Run as root: `cargo test -p netmon --lib procnet -- --ignored`.
use std::collections::{HashMap, HashSet};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use super::counters::Value;
use super::{NetRoot, NetSnapshot};

/// Deletes the namespace even when an assertion panics.
struct NetnsGuard(String);

impl NetnsGuard {
    fn add(name: String) -> Self {
        run("ip", &["netns", "add", &name]);
        let guard = NetnsGuard(name);
        run("ip", &["-n", &guard.0, "link", "set", "lo", "up"]);
        guard
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn have(cmd: &str) -> bool {
    Command::new(cmd).arg("-V").output().is_ok()
}

/// Makes some loopback traffic, then reads /proc/thread-self/net and asks iproute2, all from a
/// thread inside the namespace, where nothing else sends a packet between the reads.
fn in_netns(name: &str) -> (NetSnapshot, String, String) {
    let ns = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    std::io::Write::write_all(&mut client, &[7; 5000]).unwrap();
    let mut buf = [0; 5000];
    std::io::Read::read_exact(&mut server, &mut buf).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        // port 9 is closed: Udp NoPorts and ICMP port unreachable
        udp.send_to(b"x", "127.0.0.1:9").unwrap();
    }
    drop((client, server, listener));
    std::thread::sleep(std::time::Duration::from_millis(300));

    let snap = NetSnapshot::capture(&NetRoot::current(), &HashSet::new(), 0).unwrap();
    let link = run("ip", &["-s", "-j", "link", "show", "lo"]);
    let nstat = run("nstat", &["-asz", "--json"]);
    (snap, link, nstat)
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn live_parsers_match_iproute2_in_a_fresh_netns() {
    if !have("ip") || !have("nstat") {
        eprintln!("skipping test - iproute2 (ip, nstat) not installed");
        return;
    }
    let guard = NetnsGuard::add(format!("netmon-procnet-{}", std::process::id()));
    let name = guard.0.clone();
    let (snap, link, nstat) = std::thread::spawn(move || in_netns(&name)).join().unwrap();

    let link: serde_json::Value = serde_json::from_str(&link).unwrap();
    let stats = &link[0]["stats64"];
    let lo = snap.interfaces.get().unwrap();
    let [lo] = &lo.rows[..] else {
        panic!("a fresh netns has only lo: {lo:?}")
    };
    let ours = [
        ("rx bytes", lo.rx.bytes, &stats["rx"]["bytes"]),
        ("rx packets", lo.rx.packets, &stats["rx"]["packets"]),
        ("rx errors", lo.rx.errs, &stats["rx"]["errors"]),
        ("rx multicast", lo.rx.multicast, &stats["rx"]["multicast"]),
        ("tx bytes", lo.tx.bytes, &stats["tx"]["bytes"]),
        ("tx packets", lo.tx.packets, &stats["tx"]["packets"]),
        ("tx errors", lo.tx.errs, &stats["tx"]["errors"]),
        ("tx collisions", lo.tx.colls, &stats["tx"]["collisions"]),
    ];
    for (what, got, want) in ours {
        assert_eq!(Some(got), want.as_u64(), "lo {what}");
    }
    assert!(lo.rx.bytes >= 5000, "the test's own traffic: {lo:?}");

    let nstat: serde_json::Value = serde_json::from_str(&nstat).unwrap();
    let kernel: HashMap<&str, u64> = nstat["kernel"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_u64()?)))
        .collect();
    let snmp = snap.snmp.get().unwrap();
    let mut compared = 0;
    for section in &snmp.sections {
        for (name, value) in &section.counters {
            let key = format!("{}{name}", section.name);
            if let (Value::Counter(ours), Some(theirs)) = (value, kernel.get(key.as_str())) {
                assert_eq!(ours, theirs, "{key}");
                compared += 1;
            }
        }
    }
    assert!(
        compared > 50,
        "only {compared} snmp counters matched nstat names"
    );
    assert_eq!(snmp.get_u64("Udp", "NoPorts"), Some(3));
    assert_eq!(snmp.get_u64("Tcp", "ActiveOpens"), Some(1));
    assert_eq!(snap.analysis().icmp_in_type3.get(), Some(&3));
}
