//! Names from DNS replies in `netmon run`: each process's connection is shown with the name that
//! process asked for, learned in the kernel from the reply its own socket received (UDP and TCP,
//! A and AAAA), and an address nobody resolved gets no name.
use netmon_tests::{privileged, scenario_with, test_bin};
use serde_json::Value;

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn each_connection_carries_the_name_its_process_resolved() {
    assert!(privileged(), "needs root: run under cargo xtask test");
    let probe = test_bin("dnsprobe");
    let out = scenario_with("dns", &[], &[probe.to_str().unwrap()], &[]);
    let clients = out.truth["clients"].as_array().expect("clients in truth");
    assert_eq!(clients.len(), 5, "{}", out.truth);
    for c in clients {
        let pid = c["pid"].as_u64().unwrap();
        let remote = c["remote"].as_str().unwrap();
        let sent = c["sent"].as_u64().unwrap();
        let p = out.process(pid);
        let conns = p["connections"].as_array().unwrap();
        // The socket it connected with: same remote, exactly the bytes it sent.
        let conn = conns
            .iter()
            .find(|k| k["proto"] == "tcp" && same_addr(&k["remote"], remote))
            .unwrap_or_else(|| panic!("no connection to {remote} for pid {pid}: {p}"));
        assert_eq!(conn["tx_bytes"].as_u64(), Some(sent), "{conn}");
        let want = (c["how"] != "none").then(|| c["name"].as_str().unwrap());
        assert_eq!(
            conn["remote_name"].as_str(),
            want,
            "pid {pid} ({}) connection {conn}; names {}; netmon said {}",
            c["name"],
            out.snapshot["dns"],
            out.netmon_stderr
        );
    }
    // Two processes resolved different names to 127.0.0.2: each kept its own.
    let names: Vec<&str> = clients[..2]
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["probe.netmon.test", "other.netmon.test"]);
    // The server received queries, not replies: its sockets learned nothing, and the table of
    // names held what was answered: each (asker, address) once, and one fallback entry per
    // address (the two names of 127.0.0.2 share one: the later answer).
    let dns = &out.snapshot["dns"];
    assert_eq!(dns["names"].as_u64(), Some(7), "{dns}");
    assert_eq!(dns["evicted"].as_u64(), Some(0), "{dns}");
    let lost = out.snapshot["lost"].as_array().unwrap();
    let dns_lost = lost.iter().find(|l| l["source"] == "dns_ring");
    assert_eq!(dns_lost.and_then(|l| l["count"].as_u64()), Some(0));
}

/// "127.0.0.2:5000" and the dual-stack form "[::ffff:127.0.0.2]:5000" are the same peer.
fn same_addr(shown: &Value, want: &str) -> bool {
    let Some(shown) = shown.as_str() else {
        return false;
    };
    let canon = |s: &str| -> Option<std::net::SocketAddr> {
        let a: std::net::SocketAddr = s.parse().ok()?;
        Some(std::net::SocketAddr::new(a.ip().to_canonical(), a.port()))
    };
    canon(shown).is_some() && canon(shown) == canon(want)
}
