//! Fixture tests: `live/` was captured by `tests/fixtures/procnet/capture.sh` from a namespace
//! with known traffic, `edge/` is hand-made. Values asserted are the ones in those files.
#![cfg(target_endian = "little")]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use super::analysis::{RtoAlgorithm, TcpRto, UdpHealth};
use super::counters::Value;
use super::delta::{Step, delta};
use super::sockets::{Family, Protocol, SocketKind, SocketState, TimerKind};
use super::{Availability, NetRoot, NetSnapshot, ProcNetError, Unavailable};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/procnet")
        .join(name)
}

fn live_own_inodes() -> HashSet<u64> {
    std::fs::read_to_string(fixture("live/own_inodes"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn live() -> NetSnapshot {
    let root = NetRoot::new(fixture("live"), Some(fixture("live/sys")));
    NetSnapshot::capture(&root, &live_own_inodes(), 1_000).unwrap()
}

fn edge() -> NetSnapshot {
    let root = NetRoot::new(fixture("edge"), Some(fixture("edge/sys")));
    NetSnapshot::capture(&root, &HashSet::from([501]), 0).unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn kind(protocol: Protocol, family: Family) -> SocketKind {
    SocketKind { protocol, family }
}

fn unavailable<T>() -> Availability<T> {
    Availability::Unavailable(Unavailable::NotOnThisKernel)
}

/// (local, remote, state label, rx_queue, inode) of one table.
fn socket_summary(
    s: &NetSnapshot,
    k: SocketKind,
) -> Vec<(SocketAddr, SocketAddr, &'static str, u32, u64)> {
    let t = s.socket_table(k).unwrap().get().unwrap();
    assert_eq!(t.skipped_lines, 0, "{k:?}");
    t.rows
        .iter()
        .map(|r| {
            (
                r.local,
                r.remote,
                r.state.label(k.protocol),
                r.rx_queue,
                r.inode,
            )
        })
        .collect()
}

#[test]
fn live_sockets() {
    use Family::*;
    use Protocol::*;
    let s = live();
    let any4 = sa("0.0.0.0:0");
    let any6 = sa("[::]:0");
    let cases = [
        (
            kind(Tcp, V4),
            vec![
                (sa("127.0.0.1:40001"), any4, "LISTEN", 0, 32966),
                (
                    sa("127.0.0.1:35542"),
                    sa("127.0.0.1:40001"),
                    "ESTAB",
                    0,
                    32967,
                ),
                // the accepted side holds the 1000 bytes the capture script never read
                (
                    sa("127.0.0.1:40001"),
                    sa("127.0.0.1:35542"),
                    "ESTAB",
                    1000,
                    32968,
                ),
                (
                    sa("127.0.0.1:34130"),
                    sa("127.0.0.1:40002"),
                    "ESTAB",
                    0,
                    32970,
                ),
            ],
        ),
        (
            kind(Tcp, V6),
            vec![
                (sa("[::]:40002"), any6, "LISTEN", 0, 32969),
                // IPv4-mapped on a dual-stack listener, shown as IPv4
                (
                    sa("127.0.0.1:40002"),
                    sa("127.0.0.1:34130"),
                    "ESTAB",
                    0,
                    32971,
                ),
            ],
        ),
        // three unread 100-byte datagrams, charged at skb truesize (832 each)
        (
            kind(Udp, V4),
            vec![(sa("0.0.0.0:40003"), any4, "UNCONN", 2496, 32972)],
        ),
        (
            kind(Udp, V6),
            vec![(sa("[::1]:40004"), sa("[::1]:40005"), "ESTAB", 0, 32973)],
        ),
        // raw "port" = protocol: ICMP with the three echo replies queued, ICMPv6
        (
            kind(Raw, V4),
            vec![(sa("0.0.0.0:1"), any4, "UNCONN", 1664, 32962)],
        ),
        (
            kind(Raw, V6),
            vec![(sa("[::]:58"), any6, "UNCONN", 0, 32963)],
        ),
        (
            kind(Icmp, V4),
            vec![(sa("127.0.0.1:44545"), any4, "UNCONN", 0, 32975)],
        ),
        (
            kind(Icmp, V6),
            vec![(sa("[::1]:44546"), any6, "UNCONN", 0, 32976)],
        ),
    ];
    for (k, want) in cases {
        assert_eq!(socket_summary(&s, k), want, "{k:?}");
    }
    assert_eq!(s.socket_rows().count(), 12);
    assert!(
        s.socket_rows()
            .all(|r| r.owned && r.uid == 0 && r.retransmits == 0 && r.tx_queue == 0)
    );
    assert!(
        s.socket_rows()
            .all(|r| r.timer.kind == TimerKind::None && r.timer.expires_ticks == 0)
    );
}

#[test]
fn own_socket_marking_uses_the_given_set() {
    let root = NetRoot::new(fixture("live"), None);
    let s = NetSnapshot::capture(&root, &HashSet::from([32968, 32976, 1]), 0).unwrap();
    let owned: Vec<u64> = s
        .socket_rows()
        .filter(|r| r.owned)
        .map(|r| r.inode)
        .collect();
    assert_eq!(owned, [32968, 32976]);
}

#[test]
fn live_arp_routes_interfaces() {
    let s = live();
    let arp = s.arp.get().unwrap();
    assert_eq!(arp.skipped_lines, 0);
    let arp: Vec<_> = arp
        .rows
        .iter()
        .map(|r| {
            (
                r.ip.to_string(),
                r.hw_address_string(),
                r.state(),
                r.device.as_str(),
            )
        })
        .collect();
    assert_eq!(
        arp,
        [
            ("10.99.0.9".to_owned(), None, "INCOMPLETE", "veth-cap"),
            (
                "10.99.0.1".to_owned(),
                Some("02:00:00:00:99:01".to_owned()),
                "REACHABLE",
                "veth-cap"
            ),
        ]
    );

    let v4: Vec<_> = s
        .routes_v4
        .get()
        .unwrap()
        .rows
        .iter()
        .map(|r| {
            (
                r.destination.to_string(),
                r.prefix_len,
                r.gateway.to_string(),
                r.flags.to_string(),
                r.metric,
            )
        })
        .collect();
    let owned =
        |d: &str, p, g: &str, f: &str, m| (d.to_owned(), Some(p), g.to_owned(), f.to_owned(), m);
    assert_eq!(
        v4,
        [
            owned("0.0.0.0", 0, "10.99.0.1", "UG", 0),
            owned("10.99.0.0", 24, "0.0.0.0", "U", 0),
            owned("198.51.100.0", 24, "10.99.0.1", "UG", 7),
        ]
    );
    assert!(
        s.routes_v4
            .get()
            .unwrap()
            .rows
            .iter()
            .all(|r| r.iface == "veth-cap")
    );

    let v6 = s.routes_v6.get().unwrap();
    assert_eq!((v6.rows.len(), v6.skipped_lines), (7, 0));
    let default = &v6.rows[2];
    assert_eq!(
        (default.destination, default.destination_prefix_len),
        (Ipv6Addr::UNSPECIFIED, 0)
    );
    assert_eq!(default.next_hop, "fd99::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        (default.metric, default.flags.to_string().as_str()),
        (1024, "UG")
    );
    let lo = &v6.rows[3];
    assert_eq!(
        (lo.destination, lo.destination_prefix_len),
        (Ipv6Addr::LOCALHOST, 128)
    );
    assert_eq!(
        (lo.flags.0, lo.flags.to_string().as_str(), lo.iface.as_str()),
        (0x8020_0001, "Un", "lo")
    );
    let reject = &v6.rows[6];
    assert_eq!(
        (reject.metric, reject.flags.to_string().as_str()),
        (u32::MAX, "!n")
    );

    let dev: Vec<_> = s
        .interfaces
        .get()
        .unwrap()
        .rows
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.rx.bytes,
                i.rx.packets,
                i.tx.bytes,
                i.tx.packets,
                i.rx.errs + i.tx.errs,
            )
        })
        .collect();
    assert_eq!(
        dev,
        [
            ("lo", 2004, 15, 2004, 15, 0),
            ("veth-cap", 296, 5, 338, 6, 0)
        ]
    );
}

#[test]
fn live_counters_and_analysis() {
    let s = live();
    let snmp = s.snmp.get().unwrap();
    assert_eq!(snmp.skipped_lines, 0);
    let names: Vec<_> = snmp.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "UdpLite"]);
    let cases = [
        ("Ip", "Forwarding", 1),
        ("Ip", "InReceives", 18),
        ("Ip", "OutTransmits", 19),
        ("Icmp", "InMsgs", 5),
        ("Icmp", "InDestUnreachs", 2),
        ("Icmp", "InEchoReps", 3),
        ("Icmp", "OutEchos", 3),
        ("IcmpMsg", "InType0", 3),
        ("IcmpMsg", "InType3", 2),
        ("IcmpMsg", "OutType8", 3),
        ("Tcp", "ActiveOpens", 2),
        ("Tcp", "CurrEstab", 4),
        ("Udp", "NoPorts", 2),
        ("Udp", "OutDatagrams", 6),
    ];
    for (section, name, want) in cases {
        assert_eq!(snmp.get_u64(section, name), Some(want), "{section}.{name}");
    }
    assert_eq!(snmp.get("Tcp", "MaxConn"), Some(Value::Signed(-1)));
    assert_eq!(snmp.section("Tcp").unwrap().counters[0].0, "RtoAlgorithm");

    let netstat = s.netstat.get().unwrap();
    let sizes: Vec<_> = netstat
        .sections
        .iter()
        .map(|s| (s.name.as_str(), s.counters.len()))
        .collect();
    assert_eq!(sizes, [("TcpExt", 135), ("IpExt", 18), ("MPTcpExt", 76)]);
    assert_eq!(netstat.get_u64("TcpExt", "TCPPureAcks"), Some(3));
    assert_eq!(netstat.get_u64("IpExt", "InOctets"), Some(2106));
    assert_eq!(netstat.get_u64("IpExt", "OutOctets"), Some(2135));

    let snmp6 = s.snmp6.get().unwrap();
    let sizes: Vec<_> = snmp6.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(sizes, ["Ip6", "Icmp6", "Udp6", "UdpLite6"]);
    assert_eq!(
        snmp6
            .sections
            .iter()
            .map(|s| s.counters.len())
            .sum::<usize>(),
        87
    );
    assert_eq!(snmp6.get_u64("Ip6", "Ip6InOctets"), Some(96));
    assert_eq!(snmp6.get_u64("Icmp6", "Icmp6OutType143"), Some(1));

    let softnet: Vec<_> = s
        .softnet
        .get()
        .unwrap()
        .rows
        .iter()
        .map(|c| (c.cpu, c.processed, c.dropped, c.time_squeeze))
        .collect();
    assert_eq!(softnet, [(0, 0x2276, 0, 0), (1, 0x38ea, 0, 0)]);

    let a = s.analysis();
    assert_eq!(a.ip_forward_sysctl, Availability::Available(true));
    assert_eq!(a.ip_forwarding, Availability::Available(true));
    assert_eq!(a.icmp_in_msgs, Availability::Available(5));
    assert_eq!(a.icmp_in_type3, Availability::Available(2));
    assert_eq!(
        a.tcp_rto,
        Availability::Available(TcpRto {
            algorithm: RtoAlgorithm::Other,
            min_ms: 200,
            max_ms: 120_000
        })
    );
    assert_eq!(
        a.udp,
        Availability::Available(UdpHealth {
            in_datagrams: 0,
            no_ports: 2,
            in_errors: 0
        })
    );
    assert_eq!(s.skipped_lines(), 0);
}

#[test]
fn edge_sockets() {
    let s = edge();
    let t = s
        .socket_table(kind(Protocol::Tcp, Family::V6))
        .unwrap()
        .get()
        .unwrap();
    // the truncated row and the one with a broken address
    assert_eq!(t.skipped_lines, 2);
    let [v6, mapped, tw] = &t.rows[..] else {
        panic!("{:?}", t.rows)
    };
    assert_eq!(
        (v6.local, v6.remote),
        (sa("[fd99::2]:443"), sa("[fd99::1]:54321"))
    );
    assert_eq!(
        (v6.tx_queue, v6.rx_queue, v6.retransmits, v6.uid),
        (16, 32, 2, 1000)
    );
    assert_eq!(
        (v6.timer.kind, v6.timer.expires_ms(100)),
        (TimerKind::Retransmit, 1000)
    );
    assert!(v6.owned);
    assert_eq!(mapped.local.ip(), IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)));
    assert_eq!(mapped.remote, sa("10.99.0.1:50000"));
    assert_eq!(
        (mapped.state, mapped.state.label(Protocol::Tcp)),
        (SocketState::Unknown(14), "UNKNOWN")
    );
    assert!(!mapped.owned);
    assert_eq!(
        (tw.state, tw.timer.kind, tw.timer.expires_ticks, tw.inode),
        (SocketState::TimeWait, TimerKind::TimeWait, 3000, 0)
    );

    let udp = s
        .socket_table(kind(Protocol::Udp, Family::V4))
        .unwrap()
        .get()
        .unwrap();
    assert_eq!(
        (udp.rows.len(), udp.skipped_lines, udp.rows[0].uid),
        (1, 1, 101)
    );

    for k in [
        kind(Protocol::Tcp, Family::V4),
        kind(Protocol::Icmp, Family::V6),
        kind(Protocol::Raw, Family::V6),
    ] {
        assert_eq!(s.socket_table(k).unwrap(), &unavailable(), "{k:?}");
    }
}

#[test]
fn edge_tables() {
    let s = edge();
    let dev = s.interfaces.get().unwrap();
    assert_eq!(dev.skipped_lines, 1);
    let names: Vec<_> = dev.rows.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["lo", "verylongname0", "eth1"]);
    let big = &dev.rows[1];
    assert_eq!(
        (big.rx.bytes, big.rx.packets, big.rx.multicast),
        (u64::MAX, u64::MAX - 1, 6)
    );
    assert_eq!(
        (big.tx.bytes, big.tx.packets, big.tx.compressed),
        (u64::MAX, u64::MAX - 2, 12)
    );
    assert_eq!((dev.rows[2].tx.compressed, dev.rows[2].tx.colls), (16, 14));

    let arp = s.arp.get().unwrap();
    let ips: Vec<_> = arp.rows.iter().map(|r| r.ip.to_string()).collect();
    assert_eq!(
        (ips, arp.skipped_lines),
        (vec!["10.0.0.1".to_owned(), "10.0.0.4".to_owned()], 2)
    );
    assert_eq!(arp.rows[1].state(), "PERMANENT");

    let v4 = s.routes_v4.get().unwrap();
    assert_eq!((v4.rows.len(), v4.skipped_lines), (2, 1));
    assert_eq!(
        (v4.rows[0].gateway, v4.rows[0].metric),
        (Ipv4Addr::new(10, 0, 0, 1), 100)
    );
    assert_eq!(
        (
            v4.rows[1].prefix_len,
            v4.rows[1].flags.to_string().as_str(),
            v4.rows[1].mtu
        ),
        (Some(32), "UH", 1400)
    );

    let v6 = s.routes_v6.get().unwrap();
    assert_eq!((v6.rows.len(), v6.skipped_lines), (1, 1));
    assert_eq!(v6.rows[0].destination.to_string(), "2001:db8::");
    assert_eq!(
        (
            v6.rows[0].destination_prefix_len,
            v6.rows[0].flags.to_string().as_str()
        ),
        (32, "UGA")
    );

    let softnet: Vec<_> = s
        .softnet
        .get()
        .unwrap()
        .rows
        .iter()
        .map(|c| (c.cpu, c.processed, c.time_squeeze, c.received_rps))
        .collect();
    assert_eq!(softnet, [(0, 10, 2, Some(0)), (1, u32::MAX, 15, Some(0))]);
}

#[test]
fn edge_counters_and_analysis() {
    let s = edge();
    let snmp = s.snmp.get().unwrap();
    // Udp has 4 names and 3 values; UdpLite has a header and no values
    assert_eq!(snmp.skipped_lines, 3);
    let names: Vec<_> = snmp.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Ip", "Icmp", "Tcp"]);
    assert_eq!(snmp.get_u64("Ip", "InReceives"), Some(u64::MAX));
    assert_eq!(snmp.get_u64("Tcp", "NewCounterFromTheFuture"), Some(9));

    let netstat = s.netstat.get().unwrap();
    assert!(netstat.section("MPTcpExt").is_none());
    assert_eq!(netstat.get_u64("TcpExt", "DelayedACKs"), Some(u64::MAX));
    assert_eq!(s.snmp6, unavailable());

    let a = s.analysis();
    assert_eq!(a.ip_forward_sysctl, unavailable());
    assert_eq!(a.ip_forwarding, Availability::Available(false));
    assert_eq!(a.icmp_in_msgs, Availability::Available(7));
    // no IcmpMsg section: the kernel omits types it never counted
    assert_eq!(a.icmp_in_type3, Availability::Available(0));
    assert_eq!(
        a.tcp_rto,
        Availability::Available(TcpRto {
            algorithm: RtoAlgorithm::Other,
            min_ms: 200,
            max_ms: 120_000
        })
    );
    assert_eq!(a.udp, unavailable());

    // tcp6 2 + udp 1 + dev 1 + arp 2 + route 1 + ipv6_route 1 + snmp 3
    assert_eq!(s.skipped_lines(), 11);
}

#[test]
fn missing_root_is_the_only_error() {
    let root = NetRoot::new(fixture("no-such-dir"), None);
    let err = NetSnapshot::capture(&root, &HashSet::new(), 0).unwrap_err();
    assert!(matches!(err, ProcNetError::RootGone { .. }));
    assert!(
        err.to_string()
            .ends_with("no-such-dir/net is gone (has the process exited?)"),
        "{err}"
    );
}

#[test]
fn delta_between_snapshots() {
    let prev = live();
    let mut cur = live();
    cur.taken_at_ms = prev.taken_at_ms + 500;
    if let Availability::Available(t) = &mut cur.interfaces {
        t.rows[0].rx.bytes += 1000; // lo
        t.rows[1].tx.packets -= 1; // veth-cap went down: a reset
        t.rows.pop();
    }
    let Availability::Available(c) = &mut cur.snmp else {
        panic!("live snmp is available")
    };
    for s in &mut c.sections {
        for (name, v) in &mut s.counters {
            if s.name == "Tcp" && name == "ActiveOpens" {
                *v = Value::Counter(7);
            }
        }
    }
    let d = delta(&prev, &cur);
    assert_eq!(d.interval_ms, 500);
    // veth-cap vanished from cur, so only lo has an interval
    assert_eq!(d.interfaces.len(), 1);
    assert_eq!(
        d.interfaces[0].rx.bytes,
        Step {
            delta: 1000,
            reset: false
        }
    );
    assert_eq!(d.interfaces[0].rx_bytes_per_sec, Some(2000.0));
    assert_eq!(d.interfaces[0].tx_bytes_per_sec, Some(0.0));
    let opens = d
        .snmp
        .iter()
        .find(|c| c.section == "Tcp" && c.name == "ActiveOpens")
        .unwrap();
    assert_eq!(
        (opens.step, opens.per_sec),
        (
            Step {
                delta: 5,
                reset: false
            },
            Some(10.0)
        )
    );
    // MaxConn is signed: a setting, not a counter
    assert!(!d.snmp.iter().any(|c| c.name == "MaxConn"));
    assert_eq!(d.snmp.len(), 20 + 29 + 4 + 14 + 9 + 9);
    assert_eq!(d.netstat.len(), 135 + 18 + 76);
    assert_eq!(d.softnet.len(), 2);

    // counter reset: going back in time
    let back = delta(&cur, &prev);
    let opens = back
        .snmp
        .iter()
        .find(|c| c.section == "Tcp" && c.name == "ActiveOpens")
        .unwrap();
    assert_eq!(
        (opens.step, opens.per_sec),
        (
            Step {
                delta: 0,
                reset: true
            },
            None
        )
    );
    assert_eq!(back.interval_ms, 0);
}

#[test]
fn delta_near_u64_max() {
    let prev = edge();
    let mut cur = edge();
    cur.taken_at_ms = 2_000;
    if let Availability::Available(t) = &mut cur.interfaces {
        t.rows[0].rx.bytes = u64::MAX; // lo: 1000 → u64::MAX
        t.rows[1].rx.packets = u64::MAX; // verylongname0: MAX-1 → MAX
        t.rows[1].rx.bytes = 0; // MAX → 0: a reset, not a 1-byte wrap
    }
    let d = delta(&prev, &cur);
    let lo = &d.interfaces[0];
    assert_eq!(
        lo.rx.bytes,
        Step {
            delta: u64::MAX - 1000,
            reset: false
        }
    );
    assert_eq!(lo.rx_bytes_per_sec, Some((u64::MAX - 1000) as f64 / 2.0));
    let big = &d.interfaces[1];
    assert_eq!(
        big.rx.packets,
        Step {
            delta: 1,
            reset: false
        }
    );
    assert_eq!(
        big.rx.bytes,
        Step {
            delta: 0,
            reset: true
        }
    );
    assert_eq!(big.rx_packets_per_sec, Some(0.5));
}
