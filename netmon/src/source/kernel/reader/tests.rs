//! The reader's state against in-memory maps: what a poll sends, when entries are freed, and
//! what a socket's end clears. Ground truth is what each test put in the maps.
use std::time::Duration;

use netmon_common::{
    IfaceStats, KernelEvent, LateStats, PayloadStats, SockFinal, SockOwner, TcpStats, UdpPeerStats,
    WireStats, counter, event_kind, final_flags, maps as map_names,
};

use super::{
    decode::{
        Record,
        tests::{bytes, comm_of},
    },
    fake::FakeMaps,
    identity::Identity,
    state::State,
};
use crate::{
    event::{CaptureStats, Event, LossSource, Origin, UnattributedReason},
    source::{kernel::cgroups::CgroupPaths, procfs::ProcfsSource},
};

/// One poll a second: a grace of 2 s is then the minimum of 3 polls.
const GRACE_POLLS: usize = 3;

fn state(capturing: bool) -> State<FakeMaps> {
    // No /proc to read: every process is described from the kernel's record.
    let identity = Identity::new(
        ProcfsSource::new("/nonexistent/netmon-reader-test"),
        CgroupPaths::new(None),
    );
    State::new(
        FakeMaps::default(),
        Duration::from_secs(1),
        capturing,
        identity,
    )
}

/// Everything a poll sends but its tick. `full`: the last poll before stopping.
fn poll_all(s: &mut State<FakeMaps>, full: bool) -> Vec<Event> {
    let mut out = Vec::new();
    s.poll(&mut out, full).expect("polling the fake maps");
    assert!(
        matches!(out.pop(), Some(Event::Tick { .. })),
        "a poll ends with a tick"
    );
    out
}

/// What a poll sends about sockets and processes: the kernel-wide counters left out.
fn poll_with(s: &mut State<FakeMaps>, full: bool) -> Vec<Event> {
    poll_all(s, full)
        .into_iter()
        .filter(|e| {
            !matches!(
                e,
                Event::Lost { .. } | Event::Unattributed { .. } | Event::ResetsWithoutSocket { .. }
            )
        })
        .collect()
}

fn poll(s: &mut State<FakeMaps>) -> Vec<Event> {
    poll_with(s, false)
}

fn record(s: &mut State<FakeMaps>, kind: u32, cookie: u64, tgid: u32) -> Vec<Event> {
    let mut out = Vec::new();
    s.record(
        Record::Event(KernelEvent {
            kind,
            cookie,
            tgid,
            pid: tgid,
            uid: 1000,
            comm: comm_of("app"),
            ppid: 1,
            ..Default::default()
        }),
        &mut out,
    );
    out
}

fn payload(tx: u64, rx: u64) -> PayloadStats {
    PayloadStats {
        tx_bytes: tx,
        rx_bytes: rx,
        tx_calls: 1,
        rx_calls: 1,
    }
}

fn wire(tx: u64, rx: u64) -> WireStats {
    WireStats {
        tx_bytes: tx,
        rx_bytes: rx,
        tx_packets: 1,
        rx_packets: 1,
        zero_window: 0,
    }
}

fn payload_event(cookie: u64, pid: u32, v: PayloadStats) -> Event {
    Event::Payload {
        cookie,
        pid,
        tx_bytes: v.tx_bytes,
        rx_bytes: v.rx_bytes,
        tx_calls: v.tx_calls,
        rx_calls: v.rx_calls,
    }
}

fn wire_event(cookie: u64, v: WireStats) -> Event {
    Event::Wire {
        cookie,
        tx_bytes: v.tx_bytes,
        rx_bytes: v.rx_bytes,
        tx_packets: v.tx_packets,
        rx_packets: v.rx_packets,
    }
}

fn tcp(retransmits: u64) -> TcpStats {
    TcpStats {
        retransmits,
        ..Default::default()
    }
}

fn is_tcp(e: &Event) -> bool {
    matches!(e, Event::TcpStats { .. })
}

#[test]
fn a_changed_value_is_sent_once_and_an_unchanged_one_not_again() {
    let mut s = state(false);
    let m = s.maps_mut();
    m.payload.insert((1, 10), payload(100, 200));
    m.wire.insert(1, wire(150, 260));
    m.tcp.insert(1, tcp(0));
    assert_eq!(
        poll(&mut s),
        [
            payload_event(1, 10, payload(100, 200)),
            wire_event(1, wire(150, 260))
        ]
    );
    assert_eq!(poll(&mut s), []);

    s.maps_mut().wire.insert(1, wire(151, 260));
    assert_eq!(poll(&mut s), [wire_event(1, wire(151, 260))]);
    s.maps_mut().payload.insert((1, 10), payload(100, 201));
    // The fourth poll also reads TCP_STATS, for the first time.
    let fourth = poll(&mut s);
    assert_eq!(fourth.len(), 2, "{fourth:?}");
    assert_eq!(fourth[0], payload_event(1, 10, payload(100, 201)));
    assert!(matches!(&fourth[1], Event::TcpStats { cookie: 1, stats } if stats.retransmits == 0));

    // TCP_STATS is read every fourth poll only: a change waits for it.
    s.maps_mut().tcp.insert(1, tcp(2));
    for _ in 0..3 {
        assert_eq!(poll(&mut s), []);
    }
    let eighth = poll(&mut s);
    assert!(
        matches!(&eighth[..], [Event::TcpStats { cookie: 1, stats }] if stats.retransmits == 2),
        "{eighth:?}"
    );
    assert_eq!(poll(&mut s), []);
    // The last poll reads it whatever the count.
    s.maps_mut().tcp.insert(1, tcp(3));
    assert!(poll_with(&mut s, true).iter().any(is_tcp));
}

#[test]
fn a_released_socket_is_freed_after_the_grace_with_its_last_values_sent_first() {
    let mut s = state(false);
    let m = s.maps_mut();
    for cookie in [1, 2] {
        m.payload.insert((cookie, 10), payload(100, 200));
        m.wire.insert(cookie, wire(150, 260));
        m.tcp.insert(cookie, tcp(0));
        m.owners.insert(cookie, SockOwner::default());
    }
    poll(&mut s);
    assert_eq!(
        record(&mut s, event_kind::SOCK_RELEASE, 1, 10),
        [Event::SocketClosed { cookie: 1 }]
    );
    // The kernel notes the release in RELEASED too; the socket is not closed twice.
    s.maps_mut().released.insert(1, 0);
    for _ in 1..GRACE_POLLS {
        assert_eq!(poll(&mut s), []);
        assert!(s.maps().wire.contains_key(&1) && s.maps().owners.contains_key(&1));
    }
    // The close handshake's last packets, counted during the grace.
    s.maps_mut().payload.insert((1, 10), payload(100, 201));
    s.maps_mut().wire.insert(1, wire(202, 312));
    let last = poll(&mut s);
    assert_eq!(
        &last[..2],
        [
            payload_event(1, 10, payload(100, 201)),
            wire_event(1, wire(202, 312))
        ]
    );
    let m = s.maps();
    assert!(!m.payload.contains_key(&(1, 10)));
    assert!(!m.wire.contains_key(&1));
    assert!(!m.tcp.contains_key(&1));
    assert!(!m.released.contains_key(&1));
    assert!(!m.owners.contains_key(&1));
    // The live socket keeps its entries.
    assert!(m.payload.contains_key(&(2, 10)) && m.wire.contains_key(&2));
    assert!(m.tcp.contains_key(&2) && m.owners.contains_key(&2));
    assert_eq!(poll(&mut s), []);

    // Nothing is kept for it: the other socket's payload, wire and TCP digests only.
    assert_eq!(s.kept(), 3);
}

#[test]
fn a_release_whose_record_was_lost_is_found_in_the_released_map() {
    let mut s = state(false);
    s.maps_mut().released.insert(5, 0);
    s.maps_mut().wire.insert(5, wire(1, 1));
    s.maps_mut().owners.insert(5, SockOwner::default());
    let first = poll(&mut s);
    assert_eq!(
        first,
        [wire_event(5, wire(1, 1)), Event::SocketClosed { cookie: 5 }]
    );
    for _ in 1..GRACE_POLLS {
        assert_eq!(poll(&mut s), []);
        assert!(s.maps().wire.contains_key(&5));
    }
    assert_eq!(poll(&mut s), []);
    let m = s.maps();
    assert!(m.released.is_empty() && m.wire.is_empty() && m.owners.is_empty());
}

fn sock_final(cookie: u64, flags: u32) -> Record {
    Record::Final(Box::new(SockFinal {
        kind: event_kind::SOCK_FINAL,
        flags,
        cookie,
        payload_tgid: [10, 11],
        payload: [payload(500, 600), payload(7, 8)],
        wire: wire(700, 800),
        tcp: tcp(4),
        owner: SockOwner {
            tgid: 10,
            comm: comm_of("app"),
            ..Default::default()
        },
        ..Default::default()
    }))
}

#[test]
fn a_final_record_is_one_event_and_clears_what_was_kept_for_its_socket() {
    let mut s = state(false);
    assert_eq!(record(&mut s, event_kind::SOCK_OWNER, 1, 10).len(), 2);
    let m = s.maps_mut();
    m.payload.insert((1, 10), payload(100, 200));
    m.payload.insert((1, 11), payload(1, 2));
    m.wire.insert(1, wire(150, 260));
    m.tcp.insert(1, tcp(1));
    assert_eq!(poll_with(&mut s, true).len(), 4);
    assert!(s.kept() > 0);
    record(&mut s, event_kind::SOCK_RELEASE, 1, 10);

    // The kernel freed the socket's entries when it sent the record.
    let m = s.maps_mut();
    m.payload.clear();
    m.wire.clear();
    m.tcp.clear();
    let mut out = Vec::new();
    s.record(
        sock_final(
            1,
            final_flags::OWNER | final_flags::PAYLOAD0 | final_flags::PAYLOAD1 | final_flags::WIRE,
        ),
        &mut out,
    );
    let [
        Event::SocketFinal {
            cookie: 1,
            owner: Some(owner),
            payload,
            wire: Some(w),
            tcp: None,
        },
    ] = &out[..]
    else {
        panic!("one final event with owner, payload and wire only: {out:?}");
    };
    assert_eq!(owner.pid, 10);
    assert_eq!(payload, &[(10, 500, 600), (11, 7, 8)]);
    assert_eq!(w, &[700, 800, 1, 1]);
    assert_eq!(s.kept(), 0, "digests and ownership of the socket dropped");

    // Its digests are gone: the same wire value under that cookie would be news again.
    s.maps_mut().wire.insert(1, wire(150, 260));
    assert_eq!(poll(&mut s), [wire_event(1, wire(150, 260))]);
    // And its release no longer expires anything: the kernel already freed what it had.
    for _ in 0..GRACE_POLLS + 1 {
        poll(&mut s);
    }
    assert!(s.maps().wire.contains_key(&1));
}

#[test]
fn a_payload_entry_of_an_ended_socket_is_read_once_sent_and_deleted() {
    let mut s = state(false);
    s.maps_mut().payload.insert((2, 20), payload(1, 1));
    poll(&mut s);
    let mut out = Vec::new();
    s.record(sock_final(1, final_flags::PAYLOAD0), &mut out);
    // A third process moved bytes through the shared socket after the final account.
    s.maps_mut().payload.insert((1, 12), payload(30, 0));
    assert_eq!(poll(&mut s), [payload_event(1, 12, payload(30, 0))]);
    assert!(!s.maps().payload.contains_key(&(1, 12)));
    assert!(
        s.maps().payload.contains_key(&(2, 20)),
        "a live socket's entry stays"
    );
    assert_eq!(poll(&mut s), []);
}

fn peer(tx: u64, rx: u64) -> UdpPeerStats {
    UdpPeerStats {
        tx_bytes: tx,
        rx_bytes: rx,
        tx_wire_bytes: tx + 28,
        rx_wire_bytes: rx + 28,
        tx_packets: 1,
        rx_packets: 1,
    }
}

fn peer_event(cookie: u64, remote: &str, v: UdpPeerStats) -> Event {
    Event::UdpPeer {
        cookie,
        remote: remote.parse().unwrap(),
        counts: v.counts(),
    }
}

/// A peerless UDP socket's remotes are polled like the other counters (IPv4, and IPv6 with
/// an IPv4-mapped address shown as IPv4); when the socket ends, its remotes' last values come
/// just before its final event and their entries are deleted, another socket's staying.
#[test]
fn udp_remotes_are_polled_and_read_and_freed_when_their_socket_ends() {
    let mut s = state(false);
    let mut v6 = [0u8; 16];
    v6[10] = 0xff;
    v6[11] = 0xff;
    v6[12..].copy_from_slice(&[10, 0, 0, 2]);
    let mut v4 = [0u8; 16];
    v4[..4].copy_from_slice(&[10, 0, 0, 1]);
    let m = s.maps_mut();
    m.udp_peers.insert((1, v4, 5353, 2), peer(10, 20));
    m.udp_peers.insert((1, v6, 53, 10), peer(30, 40));
    m.udp_peers.insert((2, v4, 123, 2), peer(1, 1));
    assert_eq!(
        poll(&mut s),
        [
            // The fake's order: by cookie, then address bytes (the mapped one's start with 0).
            peer_event(1, "10.0.0.2:53", peer(30, 40)),
            peer_event(1, "10.0.0.1:5353", peer(10, 20)),
            peer_event(2, "10.0.0.1:123", peer(1, 1)),
        ]
    );
    assert_eq!(poll(&mut s), [], "unchanged: not sent again");
    // More datagrams to one remote before the socket ends, unseen by any poll.
    s.maps_mut()
        .udp_peers
        .insert((1, v4, 5353, 2), peer(15, 20));
    let mut out = Vec::new();
    let mut f = sock_final(1, final_flags::WIRE);
    if let Record::Final(f) = &mut f {
        f.wire.zero_window = netmon_common::zero_window::UDP_PEERS;
    }
    s.record(f, &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], peer_event(1, "10.0.0.1:5353", peer(15, 20)));
    assert!(matches!(out[1], Event::SocketFinal { cookie: 1, .. }));
    let left: Vec<_> = s.maps().udp_peers.keys().map(|k| k.0).collect();
    assert_eq!(left, [2], "the ended socket's entries are freed");
    assert_eq!(poll(&mut s), []);
}

fn late(tx: u64, resets_sent: u64) -> LateStats {
    LateStats {
        tx_bytes: tx,
        rx_bytes: tx * 2,
        tx_packets: 1,
        rx_packets: 2,
        resets_sent,
        resets_received: 0,
    }
}

fn late_event(pid: u32, tx: u64, rx: u64, txp: u64, rxp: u64, resets_sent: u64) -> Event {
    Event::Late {
        pid,
        wire: [tx, rx, txp, rxp],
        resets_sent,
        resets_received: 0,
    }
}

#[test]
fn late_counters_are_sent_as_growth_and_freed_after_the_process_exited() {
    let mut s = state(false);
    s.maps_mut().late.insert(20, late(100, 1));
    s.maps_mut().late.insert(21, late(5, 0));
    assert_eq!(
        poll(&mut s),
        [
            late_event(20, 100, 200, 1, 2, 1),
            late_event(21, 5, 10, 1, 2, 0)
        ]
    );
    assert_eq!(poll(&mut s), []);
    s.maps_mut().late.insert(20, late(160, 1));
    assert_eq!(poll(&mut s), [late_event(20, 60, 120, 0, 0, 0)]);

    assert_eq!(
        record(&mut s, event_kind::PROC_EXIT, 0, 20),
        [Event::ProcessExited { pid: 20 }]
    );
    for _ in 1..GRACE_POLLS {
        assert_eq!(poll(&mut s), []);
        assert!(s.maps().late.contains_key(&20));
    }
    // Its ended sockets' last packets, during the grace: sent before the entry goes.
    s.maps_mut().late.insert(20, late(170, 2));
    assert_eq!(poll(&mut s), [late_event(20, 10, 20, 0, 0, 1)]);
    assert!(!s.maps().late.contains_key(&20));
    assert!(
        s.maps().late.contains_key(&21),
        "a live process's entry stays"
    );

    // The pid, reused: its counters start from nothing.
    s.maps_mut().late.insert(20, late(3, 0));
    assert_eq!(poll(&mut s), [late_event(20, 3, 6, 1, 2, 0)]);
}

#[test]
fn late_entries_stay_while_the_map_cannot_be_read() {
    let mut s = state(false);
    s.maps_mut().late.insert(20, late(100, 0));
    poll(&mut s);
    record(&mut s, event_kind::PROC_EXIT, 0, 20);
    s.maps_mut().missing.insert(map_names::LATE);
    for _ in 0..GRACE_POLLS + 1 {
        poll(&mut s);
    }
    // Readable again: the growth is still sent, then the entry freed.
    s.maps_mut().missing.clear();
    s.maps_mut().late.insert(20, late(150, 0));
    assert_eq!(poll(&mut s), [late_event(20, 50, 100, 0, 0, 0)]);
    assert!(s.maps().late.is_empty());
}

#[test]
fn counters_are_sent_only_when_they_change() {
    let mut s = state(false);
    let mut c = vec![0u64; counter::COUNT as usize];
    c[counter::NO_SOCKET_BYTES as usize] = 1000;
    c[counter::NO_SOCKET_PACKETS as usize] = 10;
    c[counter::NO_COOKIE_BYTES as usize] = 7;
    c[counter::PAYLOAD_FULL_BYTES as usize] = 3;
    c[counter::WIRE_FULL_BYTES as usize] = 40;
    c[counter::LATE_FULL_BYTES as usize] = 2;
    c[counter::OWNERS_FULL as usize] = 5;
    c[counter::LATE_FULL as usize] = 1;
    c[counter::RST_NO_SOCKET as usize] = 9;
    c[counter::UDP_PEERS_FULL as usize] = 4;
    s.maps_mut().counters = c.clone();
    let unattributed = |reason, bytes, packets| Event::Unattributed {
        reason,
        bytes,
        packets,
    };
    let lost = |source, count| Event::Lost { source, count };
    let want = |resets| {
        vec![
            unattributed(UnattributedReason::NoSocket, 1000, 10),
            unattributed(UnattributedReason::NoCookie, 7, 0),
            unattributed(UnattributedReason::PayloadMapFull, 3, 0),
            // Wire bytes lost for a full WIRE or a full LATE map alike.
            unattributed(UnattributedReason::WireMapFull, 42, 0),
            lost(LossSource::RingBuffer, 0),
            lost(LossSource::OwnersMap, 5),
            lost(LossSource::PayloadMap, 0),
            lost(LossSource::WireMap, 0),
            lost(LossSource::TcpStatsMap, 0),
            lost(LossSource::CaptureRing, 0),
            lost(LossSource::ReleasedMap, 0),
            lost(LossSource::DnsRing, 0),
            lost(LossSource::LateMap, 1),
            lost(LossSource::UdpPeersMap, 4),
            Event::ResetsWithoutSocket { count: resets },
        ]
    };
    assert_eq!(poll_all(&mut s, false), want(9));
    assert_eq!(poll_all(&mut s, false), []);
    c[counter::RST_NO_SOCKET as usize] = 11;
    s.maps_mut().counters = c;
    assert_eq!(poll_all(&mut s, false), want(11));
    assert_eq!(poll_all(&mut s, false), []);
}

#[test]
fn after_ring_losses_owners_are_recovered_from_the_map() {
    let mut s = state(false);
    let owner = |tgid, comm: &str| SockOwner {
        tgid,
        uid: 1000,
        origin: netmon_common::origin::CONNECT,
        netns: 9,
        comm: comm_of(comm),
        ppid: 1,
        ..Default::default()
    };
    // The record for socket 1 arrived; the one for socket 2 was lost.
    record(&mut s, event_kind::SOCK_OWNER, 1, 30);
    s.maps_mut().owners.insert(1, owner(30, "app"));
    s.maps_mut().owners.insert(2, owner(31, "lost"));
    assert_eq!(poll(&mut s), [], "no losses, no recovery");
    let mut c = vec![0u64; counter::COUNT as usize];
    c[counter::RINGBUF_FULL as usize] = 1;
    s.maps_mut().counters = c;
    assert_eq!(
        poll(&mut s),
        [
            Event::Process {
                pid: 31,
                ppid: 1,
                comm: "lost".into(),
                cmdline: String::new(),
                uid: 1000,
                exe: String::new(),
                cgroup: String::new(),
                netns: 0,
                start_time: 0,
            },
            Event::SocketOwner {
                cookie: 2,
                pid: 31,
                uid: 1000,
                comm: "lost".into(),
                netns: 9,
                origin: Origin::Connect,
                ppid: 1,
            }
        ]
    );
    // Recovered once; the map is read again only after new losses.
    assert_eq!(poll(&mut s), []);
}

#[test]
fn a_pid_is_described_once_until_it_exits() {
    let mut s = state(false);
    let first = record(&mut s, event_kind::SOCK_OWNER, 1, 40);
    assert!(
        matches!(&first[..], [Event::Process { pid: 40, comm, uid: 1000, ppid: 1, .. }, Event::SocketOwner { cookie: 1, pid: 40, .. }] if comm == "app"),
        "{first:?}"
    );
    assert_eq!(record(&mut s, event_kind::SOCK_OWNER, 2, 40).len(), 1);
    assert_eq!(record(&mut s, event_kind::SOCK_FLOW, 2, 40), []);
    record(&mut s, event_kind::PROC_EXIT, 0, 40);
    // The pid, reused by another process.
    let again = record(&mut s, event_kind::SOCK_FLOW, 3, 40);
    assert!(
        matches!(&again[..], [Event::Process { pid: 40, .. }]),
        "{again:?}"
    );
}

#[test]
fn missing_optional_maps_are_no_error_and_missing_core_maps_are() {
    let mut s = state(false);
    s.maps_mut().wire.insert(1, wire(1, 1));
    for name in [map_names::TCP_STATS, map_names::LATE, map_names::RELEASED] {
        s.maps_mut().missing.insert(name);
    }
    assert_eq!(poll_with(&mut s, true), [wire_event(1, wire(1, 1))]);
    for name in [map_names::PAYLOAD, map_names::WIRE, map_names::COUNTERS] {
        let mut s = state(false);
        s.maps_mut().missing.insert(name);
        assert!(s.poll(&mut Vec::new(), false).is_err(), "{name}");
    }
}

#[test]
fn capture_counters_are_sent_when_they_change() {
    let mut s = state(true);
    let mut c = vec![0u64; counter::COUNT as usize];
    c[counter::CAPTURE_SAMPLED_OUT as usize] = 4;
    c[counter::CAPTURE_SELF as usize] = 2;
    s.maps_mut().counters = c;
    // ifindex 3 egress, ifindex 2 ingress.
    s.maps_mut().interfaces.insert(
        3 << 1 | 1,
        IfaceStats {
            packets: 5,
            bytes: 500,
        },
    );
    s.maps_mut().interfaces.insert(
        2 << 1,
        IfaceStats {
            packets: 1,
            bytes: 60,
        },
    );
    let want = Event::CaptureStats(CaptureStats {
        sampled_out: 4,
        self_skipped: 2,
        interfaces: vec![(2, false, 1, 60), (3, true, 5, 500)],
        ..Default::default()
    });
    assert_eq!(poll(&mut s), [want]);
    assert_eq!(poll(&mut s), []);
    // Without capture they are not polled at all.
    let mut s = state(false);
    s.maps_mut().interfaces.insert(2, IfaceStats::default());
    assert_eq!(poll(&mut s), []);
}

#[test]
fn a_ring_item_goes_from_bytes_to_events() {
    let mut s = state(false);
    let e = KernelEvent {
        kind: event_kind::PROC_FORK,
        tgid: 1,
        arg0: 2,
        ..Default::default()
    };
    let mut out = Vec::new();
    s.record(super::decode::record(&bytes(&e)).unwrap(), &mut out);
    assert_eq!(
        out,
        [Event::ProcessForked {
            parent: 1,
            child: 2
        }]
    );
}
