//! `netmon capture`'s kernel hooks on every kernel vm-test boots (no python3: the traffic is
//! trafficgen's `listen`/`connect` between two namespaces joined by a veth pair): TC through TCX
//! links from 6.6 and through a clsact qdisc with netlink filters before, XDP on request, a
//! kernel-side filter; each packet names the process, interface and direction, and nothing is
//! left attached once netmon exits.
use std::{io::Write, process::Command, time::Duration};

use netmon_tests::{
    Guard, Lines, Netns, layer, netmon_in, privileged, start_ready, stop, summary_count,
    trafficgen_bin, veth_pair,
};
use serde_json::Value;

const ROOT: &str = "needs root: run under cargo xtask test";
const A: &str = "10.77.0.1";
const B: &str = "10.77.0.2";

/// Whether the running kernel (`uname -r`) is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let out = Command::new("uname").arg("-r").output().unwrap();
    let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    assert!(version.0 > 0, "kernel release {release:?}");
    version >= (major, minor)
}

/// The method netmon must report: TCX links from 6.6, a clsact qdisc before.
fn expected_tc_method() -> &'static str {
    if kernel_at_least(6, 6) {
        "TCX"
    } else {
        "clsact"
    }
}

/// stdout of `ip netns exec NS cmd...` (iproute2's tc and ip: the guests have them).
fn run_in(ns: &Netns, cmd: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What tc shows on vB: (qdiscs, ingress filters, egress filters).
fn tc_state(b: &Netns) -> (String, String, String) {
    (
        run_in(b, &["tc", "qdisc", "show", "dev", "vB"]),
        run_in(b, &["tc", "filter", "show", "dev", "vB", "ingress"]),
        run_in(b, &["tc", "filter", "show", "dev", "vB", "egress"]),
    )
}

/// BPF links of `pid` of one type (`tcx`, `xdp`), from /proc/PID/fdinfo: what the kernel says
/// netmon holds, independent of what netmon prints.
fn bpf_links(pid: u32, link_type: &str) -> usize {
    let want = format!("link_type:\t{link_type}\n");
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains(&want)))
        .count()
}

/// A trafficgen in `ns` that said ready (a `listen` one has bound its port by then).
struct Gen {
    guard: Guard,
    out: Lines,
    pid: u64,
}

impl Gen {
    fn start(ns: &Netns, args: &[&str]) -> Gen {
        let bin = trafficgen_bin();
        let mut program = vec![bin.to_str().unwrap()];
        program.extend_from_slice(args);
        let (guard, out, pid) = start_ready(ns, &program);
        Gen { guard, out, pid }
    }

    fn go(&mut self) {
        writeln!(self.guard.0.stdin.as_mut().unwrap(), "go").unwrap();
    }

    /// The result line (what its syscalls moved); the process is reaped.
    fn result(mut self) -> Value {
        let line = self
            .out
            .next(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("trafficgen {} gave no result", self.pid));
        let _ = self.guard.0.wait();
        serde_json::from_str(&line).unwrap()
    }
}

/// One TCP connection to `server_ip:port`: a `listen` trafficgen in `server_ns` answering with
/// `answer` bytes, a `connect` one in `client_ns` sending `send` bytes. Returns both results
/// (`pid`, `sent`, `received`).
fn transfer(
    server_ns: &Netns,
    client_ns: &Netns,
    server_ip: &str,
    port: u16,
    send: u64,
    answer: u64,
) -> (Value, Value) {
    let port = port.to_string();
    let mut server = Gen::start(
        server_ns,
        &["listen", server_ip, &port, &answer.to_string()],
    );
    let mut client = Gen::start(client_ns, &["connect", server_ip, &port, &send.to_string()]);
    let pids = (server.pid, client.pid);
    server.go();
    client.go();
    let (c, s) = (client.result(), server.result());
    assert_eq!(s["received"], send, "server {s}, client {c}");
    assert_eq!(c["received"], answer, "server {s}, client {c}");
    assert_eq!(
        (s["pid"].as_u64(), c["pid"].as_u64()),
        (Some(pids.0), Some(pids.1))
    );
    (s, c)
}

/// Every line netmon printed (those until none came for 2 s: everything sent has arrived; then
/// Ctrl-C and the rest) and its summary.
fn finish(nm: Guard, out: &Lines, err: &Lines) -> (Vec<Value>, String) {
    let parse =
        |l: String| -> Value { serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")) };
    let mut lines = Vec::new();
    while let Some(l) = out.next(Duration::from_secs(2)) {
        lines.push(parse(l));
    }
    let summary = stop(nm, err);
    lines.extend(out.rest(Duration::from_secs(2)).into_iter().map(parse));
    assert!(!summary.contains("panicked"), "{summary}");
    (lines, summary)
}

/// The TCP lines of one connection (either port `port`).
fn tcp_lines(lines: &[Value], port: u16) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| {
            layer(l, "TCP")
                .is_some_and(|f| f["Source_Port"] == port || f["Destination_Port"] == port)
        })
        .collect()
}

/// TCP payload bytes of `lines` in one direction.
fn payload(lines: &[&Value], direction: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l["direction"] == direction)
        .filter_map(|l| layer(l, "TCP").and_then(|f| f["Payload_Length"].as_u64()))
        .sum()
}

/// Every line of a connection names `pid` (comm trafficgen) and vB; a packet leaving B is egress
/// and one arriving there is ingress; both directions are there; returns the payload seen
/// (ingress, egress).
fn check_connection(lines: &[Value], port: u16, pid: u64) -> (u64, u64) {
    let conn = tcp_lines(lines, port);
    assert!(
        conn.len() >= 6,
        "handshake, data, close on port {port}: {} lines",
        conn.len()
    );
    for l in &conn {
        let what = &l["summary"];
        assert_eq!(l["pid"].as_u64(), Some(pid), "port {port}: {what}");
        assert_eq!(l["comm"], "trafficgen", "{what}");
        assert_eq!(l["ifname"], "vB", "{what}");
        let src = &layer(l, "IPv4").unwrap_or_else(|| panic!("not IPv4: {l}"))["Source_Address"];
        let expected = if *src == B { "egress" } else { "ingress" };
        assert_eq!(l["direction"], expected, "from {src}: {what}");
    }
    for d in ["ingress", "egress"] {
        assert!(
            conn.iter().any(|l| l["direction"] == d),
            "no {d} on port {port}"
        );
    }
    (payload(&conn, "ingress"), payload(&conn, "egress"))
}

/// `netmon: vB in: N packets, M bytes` from the summary.
fn iface_totals(summary: &str, dir: &str) -> (u64, u64) {
    let prefix = format!("netmon: vB {dir}: ");
    let line = summary
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' in {summary}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// The packets and bytes the kernel counted on vB per direction cover the lines shown.
fn assert_totals_cover(summary: &str, lines: &[Value]) {
    for (dir, name) in [("in", "ingress"), ("out", "egress")] {
        let (packets, bytes) = iface_totals(summary, dir);
        let mine: Vec<&Value> = lines.iter().filter(|l| l["direction"] == name).collect();
        let len: u64 = mine.iter().filter_map(|l| l["orig_len"].as_u64()).sum();
        assert!(
            packets >= mine.len() as u64 && bytes >= len && len > 0,
            "vB {dir}: {packets} packets, {bytes} bytes counted; {} lines of {len} bytes",
            mine.len()
        );
    }
}

/// Seen payload is at least what was sent (every segment came by once) and not wildly more.
fn assert_payload(seen: u64, sent: u64, what: &str) {
    assert!(
        seen >= sent && seen <= sent + sent / 2,
        "{what}: {seen} payload bytes captured, {sent} sent"
    );
}

/// No netmon program on vB once it has gone: no filter, no clsact it added, no XDP.
fn assert_nothing_left(b: &Netns, before: &str) {
    let (qdisc, ingress, egress) = tc_state(b);
    assert_eq!(qdisc, before, "qdiscs changed");
    assert!(!qdisc.contains("clsact"), "clsact left: {qdisc}");
    assert!(ingress.trim().is_empty(), "ingress filter left: {ingress}");
    assert!(egress.trim().is_empty(), "egress filter left: {egress}");
    let link = run_in(b, &["ip", "link", "show", "vB"]);
    for xdp in [" xdp ", " xdpgeneric ", "prog/xdp"] {
        assert!(!link.contains(xdp), "XDP left: {link}");
    }
}

/// TC on vB with the attach method of this kernel: a transfer each way between A and B, every
/// packet with its process, interface and direction, payload totals matching what was sent,
/// and no filter or qdisc left after Ctrl-C.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn hooks_tc_attributes_a_veth_transfer_and_detaches() {
    assert!(privileged(), "{ROOT}");
    let method = expected_tc_method();
    let (a, b) = veth_pair("hooks-tc");
    let (qdisc_before, _, _) = tc_state(&b);
    assert!(!qdisc_before.contains("clsact"), "{qdisc_before}");

    let (nm, out, err, attach) =
        netmon_in(&b, &["capture", "-i", "vB", "--json", "--duration", "120"]);
    assert!(
        attach.contains(&format!("TC ingress+egress ({method})")),
        "expected {method} on this kernel: {attach}"
    );
    let (qdisc, ingress, egress) = tc_state(&b);
    let tcx = bpf_links(nm.0.id(), "tcx");
    if method == "TCX" {
        assert_eq!(tcx, 2, "TCX links for ingress and egress");
        assert!(!qdisc.contains("clsact"), "TCX needs no qdisc: {qdisc}");
        assert!(ingress.trim().is_empty() && egress.trim().is_empty());
    } else {
        assert_eq!(tcx, 0);
        assert!(qdisc.contains("clsact"), "{qdisc}");
        assert!(ingress.contains("netmon_tc_ingress"), "{ingress}");
        assert!(egress.contains("netmon_tc_egress"), "{egress}");
    }

    // A → B: the listener on B receives (ingress, by addresses) and answers (egress, by its
    // socket); B → A: the client on B sends (egress) and receives the answer (ingress).
    let (b_server, a_client) = transfer(&b, &a, B, 7000, 100_000, 20_000);
    let (a_server, b_client) = transfer(&a, &b, A, 7001, 50_000, 30_000);
    let (lines, summary) = finish(nm, &out, &err);
    eprintln!("{attach}\n{summary}");
    assert_nothing_left(&b, &qdisc_before);

    let (b_in, b_out) = check_connection(&lines, 7000, b_server["pid"].as_u64().unwrap());
    assert_payload(b_in, a_client["sent"].as_u64().unwrap(), "A → B:7000");
    assert_payload(b_out, b_server["sent"].as_u64().unwrap(), "B:7000 → A");
    let (c_in, c_out) = check_connection(&lines, 7001, b_client["pid"].as_u64().unwrap());
    assert_payload(c_out, b_client["sent"].as_u64().unwrap(), "B → A:7001");
    assert_payload(c_in, a_server["sent"].as_u64().unwrap(), "A:7001 → B");
    assert_ne!(b_server["pid"], b_client["pid"]);

    // Nothing sampled, limited or lost: every packet captured is a line, and the interface
    // totals the kernel counted cover them.
    assert_eq!(summary_count(&summary, "packets shown"), lines.len() as u64);
    assert_eq!(summary_count(&summary, "captured;"), lines.len() as u64);
    assert_eq!(summary_count(&summary, "(capture ring full)"), 0);
    assert_totals_cover(&summary, &lines);
    for l in &lines {
        assert_eq!(l["ifname"], "vB", "{l}");
    }
}

/// `--xdp`: received packets come through XDP (native "driver" mode where veth has it, else
/// generic), sent ones through TC; the XDP program is on vB while netmon runs and gone after.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn hooks_xdp_sees_received_packets_and_detaches() {
    assert!(privileged(), "{ROOT}");
    let method = expected_tc_method();
    let (a, b) = veth_pair("hooks-xdp");
    let (qdisc_before, _, _) = tc_state(&b);
    let (nm, out, err, attach) = netmon_in(
        &b,
        &[
            "capture",
            "-i",
            "vB",
            "--xdp",
            "--json",
            "--duration",
            "120",
        ],
    );
    let mode = attach
        .split("XDP (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no XDP mode in: {attach}"))
        .to_string();
    assert!(attach.ends_with("ingress, TC egress"), "{attach}");
    // ip shows "xdp" (driver) or "xdpgeneric" before the qdisc, and the program.
    let link = run_in(&b, &["ip", "link", "show", "vB"]);
    let shown_as = match mode.as_str() {
        "driver" => " xdp ",
        "generic" => " xdpgeneric ",
        other => panic!("unknown XDP mode {other}: {attach}"),
    };
    assert!(
        link.contains(shown_as) && link.contains("prog/xdp"),
        "{mode} XDP on vB: {link}"
    );
    assert_eq!(bpf_links(nm.0.id(), "xdp"), 1, "one XDP link");
    let (_, ingress, egress) = tc_state(&b);
    assert!(
        !ingress.contains("netmon"),
        "no TC ingress with XDP: {ingress}"
    );
    if method == "TCX" {
        assert_eq!(bpf_links(nm.0.id(), "tcx"), 1, "a TCX link for egress");
    } else {
        assert!(egress.contains("netmon_tc_egress"), "{egress}");
    }

    let (server, client) = transfer(&b, &a, B, 7000, 100_000, 20_000);
    let (lines, summary) = finish(nm, &out, &err);
    eprintln!("{attach}\n{summary}");
    assert_nothing_left(&b, &qdisc_before);

    let (seen_in, seen_out) = check_connection(&lines, 7000, server["pid"].as_u64().unwrap());
    assert_payload(
        seen_in,
        client["sent"].as_u64().unwrap(),
        "A → B:7000 (XDP)",
    );
    assert_payload(
        seen_out,
        server["sent"].as_u64().unwrap(),
        "B:7000 → A (TC)",
    );
    assert_totals_cover(&summary, &lines);
}

/// A filter of ports and addresses runs in the kernel: the other connection's packets are
/// counted as filtered there and never reach user space, which filters out nothing. (With
/// `tcp.port == 7000` alone, IPv6 packets behind an extension header, such as the MLD reports
/// every interface sends, would go up for user space to decide: the kernel part passes what it
/// cannot parse. The address range makes it IPv4 only, which the kernel decides exactly.)
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn hooks_kernel_filter_drops_other_traffic_in_the_kernel() {
    assert!(privileged(), "{ROOT}");
    let (a, b) = veth_pair("hooks-filter");
    let (nm, out, err, _) = netmon_in(
        &b,
        &[
            "capture",
            "-i",
            "vB",
            "--json",
            "-f",
            "tcp.port == 7000 and ip.src in 10.77.0.0/24",
            "--duration",
            "120",
        ],
    );
    let said = err.next(Duration::from_secs(5)).unwrap_or_default();
    assert!(said.contains("runs in the kernel"), "{said}");
    let (server, client) = transfer(&b, &a, B, 7000, 30_000, 10_000);
    transfer(&a, &b, A, 7001, 30_000, 10_000);
    let (lines, summary) = finish(nm, &out, &err);
    eprintln!("{summary}");

    let kept = tcp_lines(&lines, 7000).len();
    assert_eq!(kept, lines.len(), "only port 7000 is shown");
    let (seen_in, _) = check_connection(&lines, 7000, server["pid"].as_u64().unwrap());
    assert_payload(seen_in, client["sent"].as_u64().unwrap(), "A → B:7000");
    // Port 7001's handshake, data and close (and ARP, IPv6 neighbour discovery and MLD) stayed
    // in the kernel; user space had nothing left to filter.
    let in_kernel = summary_count(&summary, "filtered in the kernel");
    assert!(in_kernel >= 10, "{summary}");
    assert_eq!(summary_count(&summary, "by the filter"), 0, "{summary}");
    assert_eq!(summary_count(&summary, "packets shown"), lines.len() as u64);
    let (packets_in, _) = iface_totals(&summary, "in");
    let (packets_out, _) = iface_totals(&summary, "out");
    assert!(
        packets_in + packets_out >= lines.len() as u64 + in_kernel,
        "{summary}"
    );
}
