//! Aggregator tests from hand-built event streams whose ground truth is computed by hand.
use std::net::SocketAddr;

use super::*;
use crate::event::{Event, TcpCounts};

fn owner(cookie: Cookie, pid: Pid) -> Event {
    Event::SocketOwner {
        cookie,
        pid,
        uid: 0,
        comm: format!("p{pid}"),
        netns: 0,
        origin: Origin::SockCreate,
        ppid: 0,
    }
}

fn payload(cookie: Cookie, pid: Pid, tx: u64, rx: u64) -> Event {
    Event::Payload {
        cookie,
        pid,
        tx_bytes: tx,
        rx_bytes: rx,
        tx_calls: 1,
        rx_calls: 1,
    }
}

fn wire(cookie: Cookie, tx: u64, rx: u64) -> Event {
    Event::Wire {
        cookie,
        tx_bytes: tx,
        rx_bytes: rx,
        tx_packets: tx / 100,
        rx_packets: rx / 100,
    }
}

fn endpoints(cookie: Cookie, proto: Proto, local: &str, remote: &str) -> Event {
    Event::SocketEndpoints {
        cookie,
        proto,
        local: local.parse::<SocketAddr>().unwrap(),
        remote: Some(remote.parse().unwrap()),
    }
}

fn feed(agg: &mut Aggregator, evs: impl IntoIterator<Item = Event>) {
    for e in evs {
        agg.ingest(e);
    }
}

fn process(s: &Snapshot, pid: Pid) -> &ProcessRow {
    s.processes
        .iter()
        .find(|p| p.pid == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in snapshot: {s:#?}"))
}

fn unattributed(s: &Snapshot, reason: &str) -> (u64, u64) {
    s.unattributed
        .iter()
        .find(|u| u.reason == reason)
        .map_or((0, 0), |u| (u.bytes, u.packets))
}

#[test]
fn two_processes_totals_and_rates() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            owner(1, 100),
            endpoints(1, Proto::Tcp, "127.0.0.1:40000", "127.0.0.1:80"),
            owner(2, 200),
            endpoints(2, Proto::Udp, "[::1]:5353", "[::1]:53"),
            payload(1, 100, 1000, 10),
            payload(2, 200, 50, 5000),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    assert_eq!(s.interval_ms, 1000);
    let a = process(&s, 100);
    assert_eq!((a.tx_bytes, a.rx_bytes), (1000, 10));
    assert_eq!((a.tx_rate, a.rx_rate), (1000.0, 10.0));
    assert_eq!(a.connections[0].local, "127.0.0.1:40000".parse().ok());
    assert_eq!(a.connections[0].proto, Proto::Tcp);
    let b = process(&s, 200);
    assert_eq!(b.connections[0].remote, "[::1]:53".parse().ok());
    // Busiest first: 5050 B/s beats 1010 B/s.
    assert_eq!(s.processes[0].pid, 200);
    assert_eq!((s.totals.tx_bytes, s.totals.rx_bytes), (1050, 5010));

    feed(
        &mut agg,
        [payload(1, 100, 3000, 10), Event::Tick { at_ms: 3000 }],
    );
    let s = agg.snapshot_and_advance();
    let a = process(&s, 100);
    assert_eq!(s.interval_ms, 2000);
    assert_eq!(a.tx_bytes, 3000);
    assert_eq!(a.tx_rate, 1000.0, "2000 B over 2 s");
    assert_eq!(process(&s, 200).rx_rate, 0.0);
    assert_eq!(s.processes[0].pid, 100);
}

#[test]
fn fork_shared_socket_splits_payload_and_gives_wire_to_the_owner() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            owner(10, 100),
            payload(10, 100, 500, 0),
            payload(10, 101, 300, 0),
            wire(10, 1000, 200),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let parent = process(&s, 100);
    let child = process(&s, 101);
    assert_eq!(parent.tx_bytes, 500);
    assert_eq!(child.tx_bytes, 300);
    assert_eq!(parent.tx_wire_bytes, 1000);
    assert_eq!(child.tx_wire_bytes, 0);
    assert!(parent.connections[0].owner);
    assert!(!child.connections[0].owner);
    assert_eq!(unattributed(&s, "unknown_owner"), (0, 0));
}

#[test]
fn follow_children_even_when_the_fork_arrives_after_the_bytes() {
    let mut agg = Aggregator::new(Filter {
        pids: vec![100],
        follow_children: true,
        ..Filter::default()
    });
    feed(
        &mut agg,
        [
            owner(20, 200),
            payload(20, 200, 77, 0),
            owner(30, 300),
            payload(30, 300, 999, 0),
            Event::ProcessForked {
                parent: 100,
                child: 150,
            },
            Event::Process {
                pid: 200,
                ppid: 150,
                comm: "grandchild".into(),
                cmdline: "grandchild --x".into(),
                uid: 0,
                exe: String::new(),
                cgroup: String::new(),
                netns: 0,
                start_time: 0,
            },
            Event::Tick { at_ms: 500 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let pids: Vec<Pid> = s.processes.iter().map(|p| p.pid).collect();
    assert!(pids.contains(&200), "{pids:?}");
    assert!(
        pids.contains(&100),
        "the watched pid is shown even before bytes"
    );
    assert!(!pids.contains(&300), "an unrelated process is filtered out");
    assert_eq!(process(&s, 200).cmdline, "grandchild --x");
    assert_eq!(s.totals.tx_bytes, 77);

    let mut plain = Aggregator::new(Filter {
        pids: vec![100],
        follow_children: false,
        ..Filter::default()
    });
    feed(
        &mut plain,
        [
            payload(20, 200, 77, 0),
            Event::ProcessForked {
                parent: 100,
                child: 200,
            },
        ],
    );
    assert_eq!(plain.snapshot_and_advance().totals.tx_bytes, 0);
}

#[test]
fn closed_sockets_leave_the_rows_but_not_the_totals() {
    let mut agg = Aggregator::new(Filter::default()).with_retention(Retention {
        closed_snapshots: 1,
        exited_snapshots: 1,
    });
    feed(
        &mut agg,
        [
            owner(1, 100),
            payload(1, 100, 400, 40),
            wire(1, 600, 100),
            owner(2, 100),
            payload(2, 100, 1, 1),
            Event::SocketClosed { cookie: 1 },
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    assert_eq!(process(&s, 100).connections.len(), 2);
    assert!(process(&s, 100).connections.iter().any(|c| c.closed));
    for at in [2000, 3000, 4000] {
        agg.ingest(Event::Tick { at_ms: at });
        let s = agg.snapshot_and_advance();
        let p = process(&s, 100);
        assert_eq!((p.tx_bytes, p.rx_bytes), (401, 41), "at {at}");
        assert_eq!(p.tx_wire_bytes, 600, "at {at}");
        assert_eq!(p.tx_rate, 0.0);
    }
    let s = agg.snapshot_and_advance();
    assert_eq!(process(&s, 100).connections.len(), 1, "closed row expired");
    assert_eq!(
        agg.payload.len(),
        1,
        "closed socket's state was folded away"
    );
}

#[test]
fn exited_processes_are_forgotten_but_totals_stay() {
    let mut agg = Aggregator::new(Filter::default()).with_retention(Retention {
        closed_snapshots: 0,
        exited_snapshots: 0,
    });
    feed(
        &mut agg,
        [
            owner(1, 100),
            payload(1, 100, 400, 0),
            Event::SocketClosed { cookie: 1 },
            Event::ProcessExited { pid: 100 },
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    assert!(!process(&s, 100).alive);
    for _ in 0..3 {
        agg.snapshot_and_advance();
    }
    let s = agg.snapshot_and_advance();
    assert!(s.processes.is_empty(), "{s:#?}");
    assert_eq!(s.totals.tx_bytes, 400);
    assert!(agg.processes.is_empty());
}

#[test]
fn a_watched_process_that_exited_stays() {
    let mut agg = Aggregator::new(Filter {
        pids: vec![100],
        follow_children: false,
        ..Filter::default()
    })
    .with_retention(Retention {
        closed_snapshots: 0,
        exited_snapshots: 0,
    });
    feed(
        &mut agg,
        [
            owner(1, 100),
            payload(1, 100, 9, 0),
            Event::SocketClosed { cookie: 1 },
            Event::ProcessExited { pid: 100 },
        ],
    );
    for _ in 0..4 {
        agg.snapshot_and_advance();
    }
    let s = agg.snapshot_and_advance();
    assert_eq!(process(&s, 100).tx_bytes, 9);
    assert!(!process(&s, 100).alive);
}

#[test]
fn unowned_wire_bytes_and_kernel_reasons_are_shown() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            wire(5, 300, 200),
            Event::Unattributed {
                reason: UnattributedReason::NoSocket,
                bytes: 120,
                packets: 2,
            },
            Event::Lost {
                source: LossSource::RingBuffer,
                count: 3,
            },
        ],
    );
    let s = agg.snapshot_and_advance();
    assert_eq!(unattributed(&s, "unknown_owner"), (500, 5));
    assert_eq!(unattributed(&s, "no_socket"), (120, 2));
    assert_eq!(s.lost[0].source, "ring_buffer");
    assert_eq!(s.lost[0].count, 3);
    // Once the owner is known the bytes are the owner's.
    agg.ingest(owner(5, 7));
    let s = agg.snapshot_and_advance();
    assert_eq!(unattributed(&s, "unknown_owner"), (0, 0));
    assert_eq!(process(&s, 7).tx_wire_bytes, 300);
}

#[test]
fn procfs_owner_never_overrides_the_kernel() {
    let mut agg = Aggregator::new(Filter::default());
    agg.ingest(owner(1, 100));
    agg.ingest(Event::SocketOwner {
        cookie: 1,
        pid: 999,
        uid: 0,
        comm: "late".into(),
        netns: 0,
        origin: Origin::Procfs,
        ppid: 0,
    });
    agg.ingest(wire(1, 10, 0));
    let s = agg.snapshot_and_advance();
    assert_eq!(process(&s, 100).tx_wire_bytes, 10);
    // The reverse: a procfs owner is replaced by the kernel's.
    let mut agg = Aggregator::new(Filter::default());
    agg.ingest(Event::SocketOwner {
        cookie: 1,
        pid: 999,
        uid: 0,
        comm: "scan".into(),
        netns: 0,
        origin: Origin::Procfs,
        ppid: 0,
    });
    agg.ingest(owner(1, 100));
    agg.ingest(wire(1, 10, 0));
    assert_eq!(process(&agg.snapshot_and_advance(), 100).tx_wire_bytes, 10);
}

#[test]
fn counter_reset_does_not_lose_or_invent_bytes() {
    let mut agg = Aggregator::new(Filter::default());
    feed(&mut agg, [owner(1, 100), payload(1, 100, 1000, 0)]);
    agg.snapshot_and_advance();
    agg.ingest(payload(1, 100, 30, 0));
    assert_eq!(process(&agg.snapshot_and_advance(), 100).tx_bytes, 1030);
}

#[test]
fn packets_after_a_socket_was_folded_away_still_find_its_owner() {
    let mut agg = Aggregator::new(Filter::default()).with_retention(Retention {
        closed_snapshots: 0,
        exited_snapshots: 100,
    });
    feed(
        &mut agg,
        [
            owner(1, 100),
            wire(1, 1000, 0),
            Event::SocketClosed { cookie: 1 },
        ],
    );
    agg.snapshot_and_advance();
    agg.snapshot_and_advance();
    assert!(agg.sockets.is_empty(), "folded away");
    // The kernel forgot it too, so the late FIN/ACK starts a fresh cumulative count.
    agg.ingest(wire(1, 60, 0));
    let s = agg.snapshot_and_advance();
    assert_eq!(unattributed(&s, "unknown_owner"), (0, 0));
    assert_eq!(process(&s, 100).tx_wire_bytes, 1060);
}

#[test]
fn kernel_control_sockets_are_their_own_reason() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            Event::KernelSocket { cookie: 9 },
            wire(9, 520, 0),
            wire(8, 100, 0),
        ],
    );
    let s = agg.snapshot_and_advance();
    assert_eq!(unattributed(&s, "kernel_socket"), (520, 5));
    assert_eq!(unattributed(&s, "unknown_owner"), (100, 1));
}

#[test]
fn a_process_whose_sockets_all_closed_keeps_its_row() {
    let mut agg = Aggregator::new(Filter::default()).with_retention(Retention {
        closed_snapshots: 0,
        exited_snapshots: 2,
    });
    feed(
        &mut agg,
        [
            owner(1, 100),
            payload(1, 100, 5, 7),
            Event::SocketClosed { cookie: 1 },
        ],
    );
    for _ in 0..4 {
        agg.snapshot_and_advance();
    }
    let s = agg.snapshot_and_advance();
    let p = process(&s, 100);
    assert_eq!((p.tx_bytes, p.rx_bytes), (5, 7));
    assert!(p.connections.is_empty());
}

/// Watched networks count connections the process made: TCP it initiated (SYN_SENT seen) and
/// connected UDP, not connections it accepted from the range; closed sockets keep counting.
#[test]
fn watched_networks_count_outbound_connections() {
    let intranet = WatchedNetwork {
        name: "intranet".into(),
        ranges: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let mut agg = Aggregator::new(Filter::default()).with_networks(vec![intranet]);
    feed(
        &mut agg,
        [
            owner(1, 50),
            endpoints(1, Proto::Tcp, "192.168.1.2:40000", "10.1.2.3:443"),
            Event::SocketState {
                cookie: 1,
                state: TcpState::SynSent,
            },
            owner(2, 50),
            endpoints(2, Proto::Tcp, "192.168.1.2:22", "10.9.9.9:51000"),
            owner(3, 50),
            endpoints(3, Proto::Udp, "192.168.1.2:53000", "10.5.5.5:53"),
            owner(4, 50),
            endpoints(4, Proto::Tcp, "192.168.1.2:40001", "8.8.8.8:443"),
            Event::SocketState {
                cookie: 4,
                state: TcpState::SynSent,
            },
            Event::Tick { at_ms: 100 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let p = process(&s, 50);
    assert_eq!(p.networks.get("intranet"), Some(&2), "{:?}", p.networks);
    assert_eq!(p.opened.tcp, 3);
    assert_eq!(p.opened.udp, 1);
    // Closing and folding the sockets away keeps the counts.
    for c in 1..=4 {
        agg.ingest(Event::SocketClosed { cookie: c });
    }
    for _ in 0..10 {
        agg.snapshot_and_advance();
    }
    let s = agg.snapshot_and_advance();
    let p = process(&s, 50);
    assert!(p.connections.is_empty(), "folded away");
    assert_eq!(p.networks.get("intranet"), Some(&2));
    assert_eq!((p.opened.tcp, p.opened.udp), (3, 1));
}

fn started(pid: Pid, comm: &str, start_time: u64) -> Event {
    Event::Process {
        pid,
        ppid: 1,
        comm: comm.into(),
        cmdline: format!("{comm} --run"),
        uid: 0,
        exe: String::new(),
        cgroup: String::new(),
        netns: 0,
        start_time,
    }
}

/// A pid the kernel hands to a new process after the old one exited: two rows, each with its
/// own bytes, instead of the new process's bytes on the old one's name.
#[test]
fn a_reused_pid_is_a_new_process() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            started(7, "first", 100),
            owner(1, 7),
            payload(1, 7, 1_000, 10),
            Event::Tick { at_ms: 100 },
        ],
    );
    agg.snapshot_and_advance();
    agg.ingest(Event::ProcessExited { pid: 7 });
    agg.ingest(Event::SocketClosed { cookie: 1 });
    // The old socket's last count arrives after the exit: still the first process's.
    agg.ingest(payload(1, 7, 1_500, 10));
    feed(
        &mut agg,
        [
            started(7, "second", 200),
            owner(2, 7),
            payload(2, 7, 30_000, 0),
            Event::Tick { at_ms: 200 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let rows: Vec<&ProcessRow> = s.processes.iter().filter(|p| p.pid == 7).collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let first = rows.iter().find(|p| p.comm == "first").unwrap();
    let second = rows.iter().find(|p| p.comm == "second").unwrap();
    assert_eq!(
        (first.tx_bytes, first.incarnation, first.start_time),
        (1_500, 0, 100)
    );
    assert!(!first.alive);
    assert_eq!(
        (second.tx_bytes, second.incarnation, second.start_time),
        (30_000, 1, 200)
    );
    assert!(second.alive);
    assert_eq!(s.totals.tx_bytes, 31_500);
    // The first one is forgotten in time; its bytes stay in the totals.
    for _ in 0..20 {
        agg.ingest(Event::Tick { at_ms: 300 });
        agg.snapshot_and_advance();
    }
    let s = agg.snapshot_and_advance();
    assert_eq!(s.processes.iter().filter(|p| p.pid == 7).count(), 1);
    assert_eq!(s.totals.tx_bytes, 31_500);
}

/// A /proc start time that changed is a new process even when the exit was not seen.
#[test]
fn a_new_start_time_is_a_new_process() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            started(9, "old", 10),
            owner(1, 9),
            payload(1, 9, 5, 0),
            started(9, "new", 20),
            owner(2, 9),
            payload(2, 9, 7, 0),
            Event::Tick { at_ms: 100 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let mut got: Vec<(String, u64)> = s
        .processes
        .iter()
        .filter(|p| p.pid == 9)
        .map(|p| (p.comm.clone(), p.tx_bytes))
        .collect();
    got.sort();
    assert_eq!(got, [("new".to_string(), 7), ("old".to_string(), 5)]);
}

fn dns(pid: Pid, name: &str, addrs: &[&str]) -> Event {
    Event::DnsAnswer {
        pid,
        name: name.to_string(),
        addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

fn remote_name(s: &Snapshot, pid: Pid, cookie: Cookie) -> Option<&str> {
    process(s, pid)
        .connections
        .iter()
        .find(|c| c.cookie == cookie)
        .and_then(|c| c.remote_name.as_deref())
}

#[test]
fn connections_carry_the_name_their_process_resolved() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            // Two processes resolve different names to one (CDN) address, a third asks nothing.
            dns(100, "a.example", &["192.0.2.10", "2001:db8::10"]),
            dns(200, "b.example", &["192.0.2.10"]),
            owner(1, 100),
            endpoints(1, Proto::Tcp, "10.0.0.1:40000", "192.0.2.10:443"),
            owner(2, 200),
            endpoints(2, Proto::Tcp, "10.0.0.1:40001", "192.0.2.10:443"),
            // A dual-stack socket sees the IPv4 peer as a mapped address.
            owner(3, 100),
            endpoints(3, Proto::Tcp, "[::]:40002", "[::ffff:192.0.2.10]:443"),
            owner(4, 100),
            endpoints(4, Proto::Tcp, "[::1]:40003", "[2001:db8::10]:443"),
            owner(5, 300),
            endpoints(5, Proto::Tcp, "10.0.0.1:40004", "192.0.2.10:443"),
            owner(6, 300),
            endpoints(6, Proto::Udp, "10.0.0.1:40005", "198.51.100.1:53"),
            payload(1, 100, 10, 0),
            payload(2, 200, 10, 0),
            payload(3, 100, 10, 0),
            payload(4, 100, 10, 0),
            payload(5, 300, 10, 0),
            payload(6, 300, 10, 0),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    assert_eq!(remote_name(&s, 100, 1), Some("a.example"));
    assert_eq!(remote_name(&s, 200, 2), Some("b.example"));
    assert_eq!(remote_name(&s, 100, 3), Some("a.example"));
    assert_eq!(remote_name(&s, 100, 4), Some("a.example"));
    // Process 300 asked nothing: the latest name any process got for the address.
    assert_eq!(remote_name(&s, 300, 5), Some("b.example"));
    assert_eq!(remote_name(&s, 300, 6), None);
    assert_eq!(s.dns.names, 5);
    assert_eq!(s.dns.evicted, 0);
}

#[test]
fn an_answer_of_an_unknown_process_is_a_fallback_only() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            dns(0, "nobody.example", &["192.0.2.20"]),
            owner(1, 100),
            endpoints(1, Proto::Tcp, "10.0.0.1:40000", "192.0.2.20:443"),
            payload(1, 100, 10, 0),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    assert_eq!(remote_name(&s, 100, 1), Some("nobody.example"));
    assert_eq!(s.dns.names, 1);
}

#[test]
fn packets_find_their_socket_by_ports_and_addresses() {
    let mut agg = Aggregator::new(Filter::default()).with_packet_lookup();
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    feed(
        &mut agg,
        [
            owner(1, 100),
            Event::SocketEndpoints {
                cookie: 1,
                proto: Proto::Tcp,
                local: addr("0.0.0.0:8080"),
                remote: None,
            },
            owner(2, 100),
            endpoints(2, Proto::Tcp, "10.0.0.1:8080", "10.0.0.9:5000"),
            owner(3, 200),
            endpoints(3, Proto::Udp, "10.0.0.1:8080", "10.0.0.9:5000"),
            // Re-bound from port 9000 to 9001: only the new port finds it.
            owner(4, 300),
            endpoints(4, Proto::Udp, "10.0.0.1:9000", "10.0.0.9:53"),
            endpoints(4, Proto::Udp, "10.0.0.1:9001", "10.0.0.9:53"),
        ],
    );
    let find = |agg: &Aggregator, p, l, r| agg.socket_for(p, addr(l), addr(r));
    assert_eq!(
        find(&agg, Proto::Tcp, "10.0.0.1:8080", "10.0.0.9:5000"),
        Some(2)
    );
    assert_eq!(
        find(&agg, Proto::Tcp, "10.0.0.1:8080", "10.0.0.8:6000"),
        Some(1),
        "a new peer reaches the listener"
    );
    assert_eq!(
        find(&agg, Proto::Udp, "10.0.0.1:8080", "10.0.0.9:5000"),
        Some(3)
    );
    assert_eq!(find(&agg, Proto::Udp, "10.0.0.1:9000", "10.0.0.9:53"), None);
    assert_eq!(
        find(&agg, Proto::Udp, "10.0.0.1:9001", "10.0.0.9:53"),
        Some(4)
    );
    assert_eq!(find(&agg, Proto::Tcp, "10.0.0.1:22", "10.0.0.9:5000"), None);
    // Once folded away, a socket is no longer found (its owner is, through the tombstones).
    feed(
        &mut agg,
        [
            Event::SocketClosed { cookie: 2 },
            Event::Tick { at_ms: 1000 },
        ],
    );
    for _ in 0..10 {
        agg.snapshot_and_advance();
    }
    assert_eq!(
        find(&agg, Proto::Tcp, "10.0.0.1:8080", "10.0.0.9:5000"),
        Some(1)
    );
    assert!(!agg.index.contains(2));
}

fn owner_in(cookie: Cookie, pid: Pid, origin: Origin, netns: u64) -> Event {
    Event::SocketOwner {
        cookie,
        pid,
        uid: 0,
        comm: format!("p{pid}"),
        netns,
        origin,
        ppid: 0,
    }
}

fn listen(cookie: Cookie, local: &str) -> Event {
    Event::SocketEndpoints {
        cookie,
        proto: Proto::Tcp,
        local: local.parse().unwrap(),
        remote: None,
    }
}

fn accepted(cookie: Cookie, local: &str, remote: &str, netns: u64) -> Event {
    Event::SocketAccepted {
        cookie,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        netns,
    }
}

fn owner_pid(agg: &Aggregator, cookie: Cookie) -> Option<Pid> {
    agg.owner_of(cookie).map(|(pid, _)| pid)
}

#[test]
fn accepted_connections_belong_to_their_listener_until_a_process_moves_bytes() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            // Two containers listen on port 80 of their own namespaces.
            owner_in(1, 100, Origin::SockCreate, 7),
            listen(1, "0.0.0.0:80"),
            owner_in(2, 200, Origin::SockCreate, 8),
            listen(2, "[::]:80"),
            // A listener on another address of the same port in namespace 7.
            owner_in(3, 300, Origin::SockCreate, 7),
            listen(3, "10.0.0.5:8080"),
            accepted(10, "10.0.0.1:80", "10.0.0.9:5000", 7),
            accepted(11, "172.17.0.2:80", "172.17.0.1:6000", 8),
            accepted(12, "10.0.0.5:8080", "10.0.0.9:5001", 7),
            accepted(13, "10.0.0.6:8080", "10.0.0.9:5002", 7),
            accepted(14, "10.0.0.1:443", "10.0.0.9:5003", 7),
        ],
    );
    assert_eq!(owner_pid(&agg, 10), Some(100));
    assert_eq!(
        owner_pid(&agg, 11),
        Some(200),
        "a v6 wildcard takes IPv4 too"
    );
    assert_eq!(owner_pid(&agg, 12), Some(300));
    assert_eq!(owner_pid(&agg, 13), None, "no listener on that address");
    assert_eq!(owner_pid(&agg, 14), None, "no listener on that port");
    // A worker that accepted it moves bytes: it becomes the owner.
    feed(&mut agg, [owner_in(10, 101, Origin::TpBtf, 7)]);
    assert_eq!(owner_pid(&agg, 10), Some(101));
    // Real evidence is never overridden by an inference.
    feed(&mut agg, [accepted(10, "10.0.0.1:80", "10.0.0.9:5000", 7)]);
    assert_eq!(owner_pid(&agg, 10), Some(101));

    feed(
        &mut agg,
        [
            payload(10, 101, 0, 10),
            wire(11, 0, 500),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let idle = process(&s, 200);
    assert_eq!(
        idle.connections.len(),
        2,
        "listener and accepted connection"
    );
    assert_eq!(idle.rx_wire_bytes, 500);
    assert_eq!(unattributed(&s, "unknown_owner"), (0, 0));
}

#[test]
fn listeners_only_proc_saw_are_used_when_unambiguous() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            owner_in(1, 100, Origin::Procfs, 4026531840),
            listen(1, "0.0.0.0:22"),
            accepted(10, "10.0.0.1:22", "10.0.0.9:5000", 7),
            // Two processes hold listeners on port 80 (two namespaces, /proc cannot tell
            // which one this is): nobody is guessed.
            owner_in(2, 200, Origin::Procfs, 4026532000),
            listen(2, "0.0.0.0:80"),
            owner_in(3, 300, Origin::Procfs, 4026532001),
            listen(3, "0.0.0.0:80"),
            accepted(11, "10.0.0.1:80", "10.0.0.9:5001", 7),
        ],
    );
    assert_eq!(owner_pid(&agg, 10), Some(100));
    assert_eq!(owner_pid(&agg, 11), None);
}

fn final_of(cookie: Cookie, pid: Pid, tx: u64, rx: u64, wire_tx: u64) -> Event {
    Event::SocketFinal {
        cookie,
        owner: Some(FinalOwner {
            pid,
            uid: 0,
            comm: format!("p{pid}"),
            netns: 7,
            origin: Origin::SockCreate,
            ppid: 0,
        }),
        payload: vec![(pid, tx, rx)],
        wire: Some([wire_tx, 0, wire_tx / 100, 0]),
        tcp: None,
    }
}

/// A short connection seen only through its final record: its bytes land in the process's
/// totals and rate at once, it leaves no row and no state behind, and it counts as opened.
#[test]
fn an_ended_socket_folds_into_its_process_at_once() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            owner(1, 100),
            endpoints(1, Proto::Tcp, "127.0.0.1:40000", "127.0.0.1:80"),
            payload(1, 100, 300, 3),
            // The final carries the whole cumulative count, polled values included.
            final_of(1, 100, 1000, 10, 1500),
            // Never seen before its end.
            final_of(2, 100, 500, 5, 800),
            owner(3, 100),
            payload(3, 100, 7, 0),
            Event::Tick { at_ms: 2000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let p = process(&s, 100);
    assert_eq!((p.tx_bytes, p.rx_bytes), (1507, 15));
    assert_eq!(p.tx_wire_bytes, 2300);
    assert_eq!((p.tx_rate, p.rx_rate), (1507.0 / 2.0, 15.0 / 2.0));
    assert_eq!(p.connections.len(), 1, "only the live socket is listed");
    assert_eq!(p.connections[0].cookie, 3);
    assert_eq!(
        p.opened.tcp, 1,
        "the socket with known ends was a TCP connection"
    );
    assert_eq!(agg.sockets.len(), 1);
    assert_eq!(agg.payload.len(), 1);
    // Nothing moved since: the rate falls to zero, the totals stay.
    agg.ingest(Event::Tick { at_ms: 3000 });
    let s = agg.snapshot_and_advance();
    let p = process(&s, 100);
    assert_eq!((p.tx_bytes, p.tx_rate), (1507, 0.0));
}

/// Counts for a cookie after its final come from a fresh kernel entry: they add to the
/// process, and so does what the ended socket still sent (its reset).
#[test]
fn counts_after_the_end_add_and_late_packets_reach_the_owner() {
    let mut agg = Aggregator::new(Filter::default());
    feed(
        &mut agg,
        [
            final_of(1, 100, 1000, 10, 1500),
            payload(1, 100, 4, 0),
            Event::Late {
                pid: 100,
                wire: [40, 0, 1, 0],
                resets_sent: 1,
                resets_received: 0,
            },
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let p = process(&s, 100);
    assert_eq!(p.tx_bytes, 1004);
    assert_eq!((p.tx_wire_bytes, p.tx_packets), (1540, 16));
    assert_eq!(p.tcp.resets_sent, 1);
}

/// `--connections all`: the ended socket stays listed as closed for the retention.
#[test]
fn closed_rows_are_kept_when_asked() {
    let mut agg = Aggregator::new(Filter::default())
        .with_closed_rows()
        .with_retention(Retention {
            closed_snapshots: 1,
            exited_snapshots: 1,
        });
    feed(
        &mut agg,
        [
            final_of(1, 100, 1000, 10, 1500),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let p = process(&s, 100);
    assert_eq!(p.connections.len(), 1);
    assert!(p.connections[0].closed);
    assert_eq!(p.tx_bytes, 1000);
    for at in [2000, 3000] {
        agg.ingest(Event::Tick { at_ms: at });
        agg.snapshot_and_advance();
    }
    let s = agg.snapshot_and_advance();
    assert!(process(&s, 100).connections.is_empty());
    assert_eq!(process(&s, 100).tx_bytes, 1000);
}

/// A server with more live connections than the limit: the busiest are listed, the rest are
/// counted, and the process totals still hold every connection's bytes.
#[test]
fn connections_beyond_the_limit_are_counted_not_listed() {
    let mut agg = Aggregator::new(Filter::default()).with_connection_limit(3);
    for cookie in 1..=10u64 {
        feed(
            &mut agg,
            [
                owner(cookie, 100),
                endpoints(
                    cookie,
                    Proto::Tcp,
                    "127.0.0.1:80",
                    &format!("127.0.0.1:{}", 40000 + cookie),
                ),
                payload(cookie, 100, cookie * 10, 0),
            ],
        );
    }
    agg.ingest(Event::Tick { at_ms: 1000 });
    let s = agg.snapshot_and_advance();
    let p = process(&s, 100);
    let listed: Vec<u64> = p.connections.iter().map(|c| c.cookie).collect();
    assert_eq!(listed, vec![10, 9, 8], "the busiest three");
    assert_eq!(p.connections_not_listed, 7);
    assert_eq!(p.tx_bytes, (1..=10).map(|c| c * 10).sum::<u64>());
}

/// Events that give a snapshot something of everything that moves between intervals: rates,
/// a closed socket past its retention, an exited process, a DNS name, a socket ended by its
/// final counters.
fn one_of_everything() -> Vec<Event> {
    vec![
        dns(100, "a.example", &["192.0.2.10"]),
        owner(1, 100),
        endpoints(1, Proto::Tcp, "10.0.0.1:40000", "192.0.2.10:443"),
        payload(1, 100, 1000, 100),
        wire(1, 1200, 200),
        owner(2, 200),
        endpoints(2, Proto::Udp, "10.0.0.1:5353", "192.0.2.53:53"),
        payload(2, 200, 50, 500),
        Event::Tick { at_ms: 1000 },
        payload(1, 100, 3000, 300),
        Event::SocketClosed { cookie: 2 },
        Event::ProcessExited { pid: 200 },
        owner(3, 100),
        Event::SocketFinal {
            cookie: 3,
            owner: None,
            payload: vec![(100, 70, 7)],
            wire: Some([100, 20, 1, 1]),
            tcp: None,
        },
        Event::Tick { at_ms: 2000 },
    ]
}

#[test]
fn taking_a_snapshot_changes_nothing() {
    let mut agg = Aggregator::new(Filter::default())
        .with_closed_rows()
        .with_retention(Retention {
            closed_snapshots: 0,
            exited_snapshots: 0,
        });
    let evs = one_of_everything();
    let (first, rest) = evs.split_at(9);
    feed(&mut agg, first.iter().cloned());
    agg.advance();
    feed(&mut agg, rest.iter().cloned());
    let a = agg.snapshot();
    let b = agg.snapshot();
    assert_eq!(format!("{a:#?}"), format!("{b:#?}"));
    // Rates still cover the interval and nothing expired: the snapshots moved nothing on.
    assert!(process(&a, 100).tx_rate > 0.0);
    assert!(a.processes.iter().any(|p| p.pid == 200 && !p.alive));
    assert_eq!(remote_name(&a, 100, 1), Some("a.example"));
    let c = agg.snapshot_and_advance();
    assert_eq!(format!("{a:#?}"), format!("{c:#?}"));
    assert_ne!(format!("{c:#?}"), format!("{:#?}", agg.snapshot()));
}

#[test]
fn advancing_alone_is_the_same_as_after_a_snapshot() {
    let make = || {
        Aggregator::new(Filter::default())
            .with_closed_rows()
            .with_retention(Retention {
                closed_snapshots: 1,
                exited_snapshots: 1,
            })
    };
    let (mut alone, mut after) = (make(), make());
    let mut at = 2000;
    for step in 0..4 {
        for agg in [&mut alone, &mut after] {
            feed(agg, one_of_everything());
            agg.ingest(Event::Tick { at_ms: at });
            agg.ingest(payload(1, 100, 3000 + 1000 * step, 300));
        }
        at += 1000;
        alone.advance();
        after.snapshot_and_advance();
        assert_eq!(
            format!("{:#?}", alone.snapshot()),
            format!("{:#?}", after.snapshot()),
            "step {step}"
        );
    }
}

/// `--exclude-pid/-comm/-cgroup`: the excluded processes have no row and are not in the
/// totals; a process whose identity is not known yet is shown.
#[test]
fn excluded_processes_are_left_out() {
    let mut agg = Aggregator::new(Filter {
        exclude_pids: vec![100],
        exclude_comms: vec!["p200".into()],
        exclude_cgroups: vec!["backup.service".into()],
        ..Filter::default()
    });
    let process = |pid: Pid, cgroup: &str| Event::Process {
        pid,
        ppid: 1,
        comm: format!("p{pid}"),
        cmdline: String::new(),
        uid: 0,
        exe: String::new(),
        cgroup: cgroup.into(),
        netns: 0,
        start_time: 0,
    };
    feed(
        &mut agg,
        [
            process(300, "/system.slice/backup.service"),
            process(400, "/system.slice/web.service"),
        ],
    );
    for pid in [100, 200, 300, 400, 500] {
        let cookie = u64::from(pid);
        feed(&mut agg, [owner(cookie, pid), payload(cookie, pid, 10, 1)]);
    }
    agg.ingest(Event::Tick { at_ms: 1000 });
    let s = agg.snapshot_and_advance();
    let pids: Vec<Pid> = s.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&400) && pids.contains(&500), "{pids:?}");
    assert_eq!(s.totals.tx_bytes, 20);
}

fn flows_of(agg: &mut Aggregator, wall_now_ms: i64) -> Vec<crate::history::FlowRecord> {
    agg.take_flows(wall_now_ms)
}

/// One interval ending at `at_ms` with these events: the flow records it gave (aggregator time
/// is wall time here).
fn interval_flows(
    agg: &mut Aggregator,
    at_ms: u64,
    evs: Vec<Event>,
) -> Vec<crate::history::FlowRecord> {
    agg.ingest(Event::Tick { at_ms });
    feed(agg, evs);
    agg.advance();
    flows_of(agg, at_ms as i64)
}

/// A short connection gives one record when it ends: its exact bytes, its owner's identity,
/// its remote's class and how it closed; the times are moved onto the wall clock.
#[test]
fn an_ended_connection_gives_one_flow_record() {
    let mut agg = Aggregator::new(Filter::default()).with_flows();
    feed(
        &mut agg,
        [
            Event::Tick { at_ms: 1_000 },
            Event::Process {
                pid: 100,
                ppid: 1,
                comm: "curl".into(),
                cmdline: "curl http://10.1.2.3/".into(),
                uid: 1000,
                exe: "/usr/bin/curl".into(),
                cgroup: "/system.slice/backup.service".into(),
                netns: 4026531840,
                start_time: 777,
            },
            owner(1, 100),
            Event::SocketState {
                cookie: 1,
                state: TcpState::SynSent,
            },
            endpoints(1, Proto::Tcp, "10.0.0.1:40000", "10.1.2.3:80"),
            payload(1, 100, 300, 3),
            Event::Tick { at_ms: 1_500 },
            Event::SocketFinal {
                cookie: 1,
                owner: None,
                payload: vec![(100, 1000, 10)],
                wire: Some([1500, 200, 15, 2]),
                tcp: Some(Box::new(TcpCounts {
                    closes_local: 1,
                    handshake_count: 1,
                    handshake_sum_us: 250,
                    ..TcpCounts::default()
                })),
            },
            Event::Tick { at_ms: 2_000 },
        ],
    );
    agg.advance();
    let f = flows_of(&mut agg, 1_000_000);
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = &f[0];
    assert_eq!((f.pid, f.start_time, f.uid), (100, 777, Some(1000)));
    assert_eq!(
        (f.comm.as_str(), f.unit.as_str()),
        ("curl", "backup.service")
    );
    assert_eq!((f.proto.as_str(), f.direction.as_str()), ("tcp", "out"));
    assert_eq!(f.remote, Some("10.1.2.3:80".parse().unwrap()));
    assert_eq!(f.class, "intranet");
    assert_eq!((f.tx_bytes, f.rx_bytes), (1000, 10));
    assert_eq!((f.tx_wire_bytes, f.rx_wire_bytes), (1500, 200));
    assert_eq!((f.tx_packets, f.rx_packets), (15, 2));
    assert_eq!((f.segment, f.ended), (0, true));
    assert_eq!(f.handshake_us, Some(250));
    assert_eq!(f.closed_by.as_deref(), Some("local"));
    // Aggregator time 2000 is wall time 1,000,000: it opened at 1000 and ended at 1500.
    assert_eq!(
        (f.opened_ms, f.from_ms, f.to_ms),
        (999_000, 999_000, 999_500)
    );
    assert!(flows_of(&mut agg, 1_000_000).is_empty(), "taken once");
}

/// A long-lived connection gives a record for each minute it moved bytes in (none for a
/// quiet one), and its records add up to exactly what it moved.
#[test]
fn a_long_lived_connection_gives_a_record_a_minute() {
    let mut agg = Aggregator::new(Filter::default()).with_flows();
    let mut all = Vec::new();
    let mut step = |agg: &mut Aggregator, at_ms: u64, evs: Vec<Event>| {
        all.extend(interval_flows(agg, at_ms, evs));
    };
    step(
        &mut agg,
        0,
        vec![
            owner(1, 100),
            endpoints(1, Proto::Tcp, "127.0.0.1:40000", "127.0.0.1:5432"),
            payload(1, 100, 100, 1),
        ],
    );
    step(&mut agg, 30_000, vec![payload(1, 100, 200, 2)]);
    step(&mut agg, 60_000, vec![payload(1, 100, 700, 7)]);
    // A quiet minute: no record.
    step(&mut agg, 90_000, vec![]);
    step(&mut agg, 120_000, vec![]);
    step(&mut agg, 150_000, vec![payload(1, 100, 900, 9)]);
    step(&mut agg, 180_000, vec![]);
    step(&mut agg, 190_000, vec![final_of(1, 100, 1000, 10, 0)]);
    let stretches: Vec<_> = all
        .iter()
        .map(|f| (f.segment, f.from_ms, f.to_ms, f.tx_bytes, f.ended))
        .collect();
    assert_eq!(
        stretches,
        vec![
            (0, 0, 60_000, 700, false),
            (1, 120_000, 180_000, 200, false),
            (2, 180_000, 190_000, 100, true),
        ]
    );
    assert_eq!(all.iter().map(|f| f.rx_bytes).sum::<u64>(), 10);
}

fn udp_peer(cookie: Cookie, remote: &str, tx: u64, rx: u64) -> Event {
    // Wire bytes: payload plus 28 bytes of IPv4 and UDP headers a datagram, 100-byte datagrams.
    let (txp, rxp) = (tx.div_ceil(100), rx.div_ceil(100));
    Event::UdpPeer {
        cookie,
        remote: remote.parse().unwrap(),
        counts: [tx, rx, tx + 28 * txp, rx + 28 * rxp, txp, rxp],
    }
}

fn unconnected(cookie: Cookie, local: &str) -> Event {
    Event::SocketEndpoints {
        cookie,
        proto: Proto::Udp,
        local: local.parse().unwrap(),
        remote: None,
    }
}

/// A UDP socket without a connected peer gives one record per remote it exchanged datagrams
/// with, each with that remote's bytes (a server on a service port: direction in), and
/// nothing without a remote when the remotes account for every byte.
#[test]
fn a_peerless_udp_socket_gives_a_record_per_remote() {
    let mut agg = Aggregator::new(Filter::default()).with_flows();
    feed(
        &mut agg,
        [
            Event::Tick { at_ms: 1_000 },
            owner(1, 100),
            unconnected(1, "0.0.0.0:53"),
            payload(1, 100, 300, 700),
            udp_peer(1, "10.0.0.9:40000", 100, 300),
            udp_peer(1, "8.8.8.8:50000", 200, 400),
            Event::Tick { at_ms: 1_500 },
            Event::SocketFinal {
                cookie: 1,
                owner: None,
                payload: vec![(100, 300, 700)],
                wire: Some([300 + 28 * 3, 700 + 28 * 7, 3, 7]),
                tcp: None,
            },
        ],
    );
    agg.advance();
    let f = flows_of(&mut agg, 1_000_000);
    let got: Vec<_> = f
        .iter()
        .map(|f| {
            (
                f.remote.map(|r| r.to_string()),
                f.class.as_str(),
                f.direction.as_str(),
                f.tx_bytes,
                f.rx_bytes,
                f.tx_packets,
                f.rx_packets,
                f.segment,
                f.ended,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                Some("8.8.8.8:50000".into()),
                "internet",
                "in",
                200,
                400,
                2,
                4,
                0,
                true
            ),
            (
                Some("10.0.0.9:40000".into()),
                "intranet",
                "in",
                100,
                300,
                1,
                3,
                0,
                true
            ),
        ]
    );
    assert!(f.iter().all(|f| f.proto == "udp" && f.pid == 100));
}

/// A long-lived peerless socket gives per-remote records a minute, each remote's records
/// adding up to what it exchanged; bytes no remote was found for stay in a record of their own.
#[test]
fn a_long_lived_peerless_socket_records_each_remote_a_minute() {
    let mut agg = Aggregator::new(Filter::default()).with_flows();
    let mut all = Vec::new();
    let mut step = |agg: &mut Aggregator, at_ms: u64, evs: Vec<Event>| {
        all.extend(interval_flows(agg, at_ms, evs));
    };
    step(
        &mut agg,
        0,
        vec![
            owner(1, 100),
            unconnected(1, "0.0.0.0:45000"),
            payload(1, 100, 100, 0),
            udp_peer(1, "127.0.0.1:7000", 100, 0),
        ],
    );
    step(
        &mut agg,
        60_000,
        vec![
            payload(1, 100, 300, 0),
            udp_peer(1, "127.0.0.1:7000", 150, 0),
            udp_peer(1, "127.0.0.2:7000", 150, 0),
        ],
    );
    // 50 bytes no remote was found for (a full map, say).
    step(
        &mut agg,
        130_000,
        vec![
            payload(1, 100, 450, 0),
            udp_peer(1, "127.0.0.2:7000", 250, 0),
        ],
    );
    step(&mut agg, 140_000, vec![final_of(1, 100, 450, 0, 0)]);
    let got: Vec<_> = all
        .iter()
        .map(|f| {
            (
                f.remote.map(|r| r.to_string()),
                f.direction.as_str(),
                f.tx_bytes,
                f.segment,
                f.ended,
            )
        })
        .collect();
    let r = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        [
            (r("127.0.0.1:7000"), "out", 150, 0, false),
            (r("127.0.0.2:7000"), "out", 150, 0, false),
            (r("127.0.0.2:7000"), "out", 100, 1, false),
            (None, "", 50, 1, false),
            (None, "", 0, 2, true),
        ]
    );
    assert_eq!(all.iter().map(|f| f.tx_bytes).sum::<u64>(), 450);
}

/// Records follow the process filters: `--pid` keeps the watched ones, `--exclude-comm`
/// leaves a process out, `--comm` leaves out connections of no known process; sockets that
/// are not connections give none.
#[test]
fn flow_records_follow_the_filters() {
    let mut agg = Aggregator::new(Filter {
        exclude_comms: vec!["p200".into()],
        ..Filter::default()
    })
    .with_flows();
    feed(
        &mut agg,
        [
            started(100, "p100", 1),
            started(200, "p200", 1),
            owner(1, 100),
            endpoints(1, Proto::Tcp, "127.0.0.1:1", "127.0.0.1:2"),
            final_of(1, 100, 5, 5, 0),
            owner(2, 200),
            endpoints(2, Proto::Tcp, "127.0.0.1:3", "127.0.0.1:4"),
            final_of(2, 200, 6, 6, 0),
            // A listener: not a connection.
            owner(3, 100),
            listen(3, "0.0.0.0:80"),
            final_of(3, 100, 0, 0, 0),
            Event::Tick { at_ms: 1000 },
        ],
    );
    agg.advance();
    let f = flows_of(&mut agg, 0);
    assert_eq!(f.iter().map(|f| f.flow_id).collect::<Vec<_>>(), vec![1]);

    let mut watched = Aggregator::new(Filter {
        pids: vec![200],
        ..Filter::default()
    })
    .with_flows();
    feed(
        &mut watched,
        [
            owner(1, 100),
            endpoints(1, Proto::Udp, "127.0.0.1:1", "127.0.0.1:53"),
            final_of(1, 100, 5, 5, 0),
            owner(2, 200),
            endpoints(2, Proto::Udp, "127.0.0.1:3", "127.0.0.1:53"),
            final_of(2, 200, 6, 6, 0),
        ],
    );
    watched.advance();
    let f = flows_of(&mut watched, 0);
    assert_eq!(f.iter().map(|f| f.pid).collect::<Vec<_>>(), vec![200]);
    assert_eq!(f[0].direction, "out");

    // --comm (as --cgroup) selects processes: a connection of no known process gives no
    // record; without a selecting filter it does (its bytes are kept, unattributed).
    for (comms, want) in [
        (vec!["p100".to_string()], vec![100]),
        (vec![], vec![0, 100]),
    ] {
        let mut agg = Aggregator::new(Filter {
            comms,
            ..Filter::default()
        })
        .with_flows();
        feed(
            &mut agg,
            [
                started(100, "p100", 1),
                owner(1, 100),
                endpoints(1, Proto::Tcp, "127.0.0.1:1", "127.0.0.1:2"),
                final_of(1, 100, 5, 5, 0),
                endpoints(2, Proto::Tcp, "127.0.0.1:3", "127.0.0.1:4"),
                // Wire bytes only, no owner ever learned.
                Event::SocketFinal {
                    cookie: 2,
                    owner: None,
                    payload: vec![],
                    wire: Some([600, 0, 6, 0]),
                    tcp: None,
                },
                Event::Tick { at_ms: 1000 },
            ],
        );
        agg.advance();
        let mut pids: Vec<u32> = flows_of(&mut agg, 0).iter().map(|f| f.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, want);
    }
}

/// Per remote host across processes: ended and live connections add up, processes are
/// counted once, the busiest host comes first, and an excluded process adds nothing.
#[test]
fn hosts_add_up_across_processes_and_ended_connections() {
    let mut agg = Aggregator::new(Filter {
        exclude_pids: vec![300],
        ..Filter::default()
    })
    .with_hosts();
    feed(
        &mut agg,
        [
            owner(1, 100),
            endpoints(1, Proto::Tcp, "10.0.0.1:40000", "10.0.0.9:443"),
            final_of(1, 100, 1000, 100, 0),
            owner(2, 200),
            endpoints(2, Proto::Tcp, "10.0.0.1:40001", "10.0.0.9:443"),
            payload(2, 200, 50, 5),
            owner(3, 100),
            endpoints(3, Proto::Udp, "10.0.0.1:5353", "8.8.8.8:53"),
            payload(3, 100, 20, 2000),
            owner(4, 300),
            endpoints(4, Proto::Tcp, "10.0.0.1:40002", "10.0.0.9:443"),
            payload(4, 300, 999, 999),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot_and_advance();
    let h: Vec<_> = s
        .hosts
        .iter()
        .map(|h| {
            (
                h.remote.to_string(),
                h.class.as_str(),
                h.tx_bytes,
                h.rx_bytes,
                h.connections,
                h.processes,
            )
        })
        .collect();
    assert_eq!(
        h,
        vec![
            ("8.8.8.8".into(), "internet", 20, 2000, 1, 1),
            ("10.0.0.9".into(), "intranet", 1050, 105, 2, 2),
        ]
    );
    // The live one ends: nothing counted twice.
    agg.ingest(final_of(2, 200, 60, 6, 0));
    let s = agg.snapshot();
    let h = s.hosts.iter().find(|h| h.remote.to_string() == "10.0.0.9");
    assert_eq!(h.map(|h| (h.tx_bytes, h.connections)), Some((1060, 2)));
    assert!(
        Aggregator::new(Filter::default())
            .snapshot()
            .hosts
            .is_empty()
    );
}

/// A UDP server's clients each appear as a host with their own bytes, live and after the
/// socket ended.
#[test]
fn a_peerless_udp_sockets_remotes_are_hosts() {
    let mut agg = Aggregator::new(Filter::default()).with_hosts();
    feed(
        &mut agg,
        [
            owner(1, 53),
            unconnected(1, "0.0.0.0:53"),
            payload(1, 53, 600, 150),
            udp_peer(1, "10.0.1.1:40001", 200, 50),
            udp_peer(1, "10.0.1.2:40002", 400, 100),
            Event::Tick { at_ms: 1000 },
        ],
    );
    let hosts = |agg: &Aggregator| -> Vec<(String, u64, u64, u64)> {
        agg.snapshot()
            .hosts
            .iter()
            .map(|h| (h.remote.to_string(), h.tx_bytes, h.rx_bytes, h.connections))
            .collect()
    };
    let want = vec![
        ("10.0.1.2".to_string(), 400, 100, 1),
        ("10.0.1.1".to_string(), 200, 50, 1),
    ];
    assert_eq!(hosts(&agg), want);
    agg.ingest(final_of(1, 53, 600, 150, 0));
    assert_eq!(hosts(&agg), want, "the same after it ended");
}

/// With closed rows kept (`--connections all`), an ended connection's record comes when its
/// row goes, or at the latest when netmon stops; a live one gives what it moved so far.
#[test]
fn stopping_flushes_closed_rows_and_live_connections_into_records() {
    let mut agg = Aggregator::new(Filter::default())
        .with_closed_rows()
        .with_flows();
    feed(
        &mut agg,
        [
            owner(1, 100),
            endpoints(1, Proto::Tcp, "127.0.0.1:1", "127.0.0.1:2"),
            final_of(1, 100, 5, 6, 0),
            owner(2, 100),
            endpoints(2, Proto::Tcp, "127.0.0.1:3", "127.0.0.1:4"),
            payload(2, 100, 7, 8),
            Event::Tick { at_ms: 1000 },
        ],
    );
    agg.advance();
    assert!(
        flows_of(&mut agg, 0).is_empty(),
        "row still shown, nothing live is due"
    );
    agg.flush_flows();
    let mut f: Vec<_> = flows_of(&mut agg, 0)
        .iter()
        .map(|f| (f.flow_id, f.tx_bytes, f.rx_bytes, f.ended))
        .collect();
    f.sort();
    assert_eq!(f, vec![(1, 5, 6, true), (2, 7, 8, false)]);
}

fn bound(cookie: Cookie, proto: Proto, local: &str) -> Event {
    Event::SocketEndpoints {
        cookie,
        proto,
        local: local.parse().unwrap(),
        remote: None,
    }
}

fn state(cookie: Cookie, state: TcpState) -> Event {
    Event::SocketState { cookie, state }
}

fn notice_names(agg: &mut Aggregator) -> Vec<String> {
    agg.take_notices()
        .iter()
        .map(|w| {
            let detail = match w {
                crate::events::What::ListenStarted(l) | crate::events::What::ListenStopped(l) => {
                    format!("{} {} {}", l.pid, l.proto, l.address)
                }
                crate::events::What::Contact(c) => {
                    format!("{} {} {} +{}", c.pid, c.network, c.remote, c.suppressed)
                }
                _ => String::new(),
            };
            format!("{} {detail}", w.name())
        })
        .collect()
}

/// A process that starts listening after netmon started gives listen_started once its owner
/// and address are known, and listen_stopped when the socket goes; listeners that were there
/// before, and UDP sockets on ephemeral (client) ports, give nothing.
#[test]
fn listeners_starting_and_stopping_are_events() {
    let mut agg = Aggregator::new(Filter::default()).with_notices((32768, 60999), false);
    feed(
        &mut agg,
        [
            owner(9, 100),
            state(9, TcpState::Listen),
            bound(9, Proto::Tcp, "0.0.0.0:22"),
            Event::Tick { at_ms: 1000 },
        ],
    );
    agg.advance();
    assert!(
        notice_names(&mut agg).is_empty(),
        "already listening at start"
    );
    feed(
        &mut agg,
        [
            owner(1, 100),
            state(1, TcpState::Listen),
            bound(1, Proto::Tcp, "0.0.0.0:8080"),
            owner(2, 100),
            bound(2, Proto::Udp, "0.0.0.0:5353"),
            owner(3, 100),
            bound(3, Proto::Udp, "0.0.0.0:40000"),
            Event::Tick { at_ms: 2000 },
        ],
    );
    agg.advance();
    assert_eq!(
        notice_names(&mut agg),
        vec![
            "listen_started 100 tcp 0.0.0.0:8080",
            "listen_started 100 udp 0.0.0.0:5353"
        ]
    );
    agg.ingest(final_of(1, 100, 0, 0, 0));
    assert_eq!(
        notice_names(&mut agg),
        vec!["listen_stopped 100 tcp 0.0.0.0:8080"]
    );
}

/// A UDP socket without a connected peer that sends to an intranet host reaches out like a
/// connection does (also when it ends before the interval); a service answering its clients
/// does not.
#[test]
fn sending_datagrams_to_the_intranet_is_a_contact_and_answering_is_not() {
    let mut agg = Aggregator::new(Filter::default()).with_notices((32768, 60999), false);
    feed(
        &mut agg,
        [
            owner(1, 100),
            unconnected(1, "0.0.0.0:41000"),
            udp_peer(1, "10.1.0.5:161", 60, 0),
            owner(2, 200),
            unconnected(2, "0.0.0.0:53"),
            udp_peer(2, "10.1.0.6:40000", 100, 50),
            owner(3, 300),
            unconnected(3, "0.0.0.0:42000"),
            udp_peer(3, "192.168.7.7:514", 90, 0),
            final_of(3, 300, 90, 0, 0),
            Event::Tick { at_ms: 1000 },
        ],
    );
    agg.advance();
    let mut got = notice_names(&mut agg);
    got.retain(|n| n.starts_with("contact"));
    assert_eq!(
        got,
        vec![
            "contact 300 intranet 192.168.7.7:514 +0",
            "contact 100 intranet 10.1.0.5:161 +0",
        ]
    );
}

/// First contact per (process, network): one event for many connections to the intranet,
/// repeats counted and reported with the pair's next event after the window; each process and
/// each watched network its own; accepted connections and internet remotes are no contact.
#[test]
fn first_contact_with_the_intranet_is_one_event_per_process_and_window() {
    let lab = crate::cli::parse_watch_network("lab=10.9.0.0/16").unwrap();
    let mut agg = Aggregator::new(Filter::default())
        .with_networks(vec![lab])
        .with_notices((32768, 60999), false);
    let connect = |cookie: Cookie, pid: Pid, remote: &str| {
        vec![
            owner(cookie, pid),
            state(cookie, TcpState::SynSent),
            endpoints(cookie, Proto::Tcp, "10.0.0.1:40000", remote),
        ]
    };
    let mut evs = Vec::new();
    evs.extend(connect(1, 100, "10.1.0.5:22"));
    evs.extend(connect(2, 100, "10.1.0.6:22"));
    evs.extend(connect(3, 200, "192.168.1.1:80"));
    evs.extend(connect(4, 100, "8.8.8.8:53"));
    evs.extend(connect(5, 100, "10.9.0.1:443"));
    evs.push(accepted(6, "10.0.0.1:22", "10.1.0.7:50000", 0));
    evs.push(Event::Tick { at_ms: 1000 });
    feed(&mut agg, evs);
    agg.advance();
    assert_eq!(
        notice_names(&mut agg),
        vec![
            "contact 100 intranet 10.1.0.5:22 +0",
            "contact 200 intranet 192.168.1.1:80 +0",
            "contact 100 lab 10.9.0.1:443 +0",
        ]
    );
    // Within the window: counted, not reported; after it: reported with the count.
    feed(&mut agg, connect(7, 100, "10.1.0.8:22"));
    agg.ingest(final_of(7, 100, 1, 1, 0));
    agg.ingest(Event::Tick { at_ms: 2000 });
    agg.advance();
    assert!(notice_names(&mut agg).is_empty());
    feed(&mut agg, connect(8, 100, "10.1.0.9:22"));
    agg.ingest(Event::Tick {
        at_ms: 2000 + super::notices::CONTACT_WINDOW_MS,
    });
    agg.advance();
    assert_eq!(
        notice_names(&mut agg),
        vec!["contact 100 intranet 10.1.0.9:22 +2"]
    );
}

/// Parent and user of every row, from each witness: /proc (the procfs fallback, read from the
/// fake proc tree), the kernel's owner records alone, and a socket's final owner. The fixture
/// passwd names uid 1000 `alice` and uid 0 `root`; 65534 is not in it and shows as digits.
#[test]
fn parent_and_user_from_proc_the_kernel_and_final_owners() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let procfs = crate::source::procfs::ProcfsSource::new(root.join("proc"));
    let mut agg = Aggregator::new(Filter::default())
        .with_user_names(crate::users::UserNames::from_file(root.join("passwd")));
    // /proc: 100 is python3 (ppid 1, uid 1000), 101 its child, 1 init (ppid 0, uid 0).
    for pid in [100, 101, 1] {
        agg.ingest(procfs.process_event(pid).expect("fixture process"));
    }
    let kernel_owner = |cookie, pid, uid, ppid, origin| Event::SocketOwner {
        cookie,
        pid,
        uid,
        comm: format!("p{pid}"),
        netns: 0,
        origin,
        ppid,
    };
    let mut final_owner = final_of(5, 700, 9, 9, 0);
    if let Event::SocketFinal { owner: Some(o), .. } = &mut final_owner {
        (o.uid, o.ppid) = (1000, 600);
    }
    feed(
        &mut agg,
        [
            // /proc saw the sockets' holders; a procfs record's uid is the socket's, not taken
            // over the process's own.
            kernel_owner(1, 100, 4242, 0, Origin::Procfs),
            payload(1, 100, 10, 0),
            owner(2, 101),
            payload(2, 101, 20, 0),
            owner(3, 1),
            payload(3, 1, 30, 0),
            // Only the kernel ever saw 500: its owner record names parent and uid.
            kernel_owner(4, 500, 65534, 400, Origin::SockCreate),
            payload(4, 500, 40, 0),
            // 700 is known from its socket's final counters alone.
            final_owner,
            Event::Tick { at_ms: 1000 },
        ],
    );
    let s = agg.snapshot();
    let who = |pid| {
        let p = process(&s, pid);
        (p.ppid, p.uid, p.user.clone())
    };
    assert_eq!(who(100), (1, Some(1000), "alice".to_string()));
    assert_eq!(who(101), (100, Some(1000), "alice".to_string()));
    assert_eq!(who(1), (0, Some(0), "root".to_string()));
    assert_eq!(who(500), (400, Some(65534), "65534".to_string()));
    assert_eq!(who(700), (600, Some(1000), "alice".to_string()));
}
