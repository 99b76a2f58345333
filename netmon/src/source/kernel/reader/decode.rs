//! Ring records → events, with no state and no I/O: what a record says is decided here, what
//! the reader remembers because of it is decided in `state`. Pure, so every kind of record
//! can be checked without loading anything into the kernel.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use log::debug;
use netmon_common::{
    CaptureRecord, DnsRecord, KernelEvent, SockFinal, SockOwner, SockTuple, capture_hook,
    direction, event_kind, final_flags,
};

use crate::event::{Event, FinalOwner, Origin, PacketRecord, Proto, TcpCounts, TcpState};

/// `SockTuple`'s socket type for raw sockets (`arg0` of SOCK_TUPLE).
const SOCK_RAW: u64 = 3;

/// What the events ring carries: small records, and one larger one per socket end.
pub(super) enum Record {
    Event(KernelEvent),
    Final(Box<SockFinal>),
}

/// One item of the events ring → the record it holds; None for an item too short for its
/// kind (the kernel never sends one, but a truncated read must not be trusted).
pub(super) fn record(item: &[u8]) -> Option<Record> {
    // Both record types begin with their kind.
    let kind = item
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))?;
    // SAFETY (both reads): the item holds a whole record of the type (size checked);
    // read_unaligned because the ring gives no alignment guarantee for our types.
    if kind == event_kind::SOCK_FINAL && item.len() >= size_of::<SockFinal>() {
        Some(Record::Final(Box::new(unsafe {
            std::ptr::read_unaligned(item.as_ptr().cast::<SockFinal>())
        })))
    } else if item.len() >= size_of::<KernelEvent>() {
        Some(Record::Event(unsafe {
            std::ptr::read_unaligned(item.as_ptr().cast::<KernelEvent>())
        }))
    } else {
        None
    }
}

/// The events a [`KernelEvent`] stands for by itself. The process identity that SOCK_OWNER
/// and SOCK_FLOW may also bring is not here: it needs /proc and memory of pids already seen.
/// `owned`: whether some process is known to own the socket (a raw socket nobody owns is the
/// kernel's own).
pub(super) fn kernel_event(r: &KernelEvent, owned: bool, out: &mut Vec<Event>) {
    match r.kind {
        event_kind::SOCK_OWNER => out.push(Event::SocketOwner {
            cookie: r.cookie,
            pid: r.tgid,
            uid: r.uid,
            comm: comm(&r.comm),
            netns: r.arg1,
            origin: Origin::from_raw(r.arg0 as u8),
            ppid: r.ppid,
        }),
        // Only news of a process, which identity handles.
        event_kind::SOCK_FLOW => {}
        event_kind::SOCK_TUPLE => {
            if r.arg0 == SOCK_RAW && !owned {
                out.push(Event::KernelSocket { cookie: r.cookie });
            }
            if let Some((proto, local, remote)) = endpoints(&r.tuple) {
                out.push(Event::SocketEndpoints {
                    cookie: r.cookie,
                    proto,
                    local,
                    remote,
                });
            }
        }
        event_kind::SOCK_ACCEPTED => {
            if let Some((_, local, Some(remote))) = endpoints(&r.tuple) {
                out.push(Event::SocketAccepted {
                    cookie: r.cookie,
                    local,
                    remote,
                    netns: r.arg1,
                });
            }
        }
        event_kind::SOCK_STATE => out.push(Event::SocketState {
            cookie: r.cookie,
            state: TcpState::from_kernel(r.arg1 as u32),
        }),
        event_kind::SOCK_RELEASE => out.push(Event::SocketClosed { cookie: r.cookie }),
        event_kind::PROC_FORK => out.push(Event::ProcessForked {
            parent: r.tgid,
            child: r.arg0 as u32,
        }),
        event_kind::PROC_EXIT => out.push(Event::ProcessExited { pid: r.tgid }),
        other => debug!("unknown kernel event kind {other}"),
    }
}

/// An owner read back from the OWNERS map, as the SOCK_OWNER record that was lost would have
/// announced it.
pub(super) fn owner_event(cookie: u64, o: &SockOwner) -> Event {
    Event::SocketOwner {
        cookie,
        pid: o.tgid,
        uid: o.uid,
        comm: comm(&o.comm),
        netns: o.netns,
        origin: Origin::from_raw(o.origin),
        ppid: o.ppid,
    }
}

/// A socket's end: its last counters in one event, only the parts its flags say are filled.
pub(super) fn socket_final(f: &SockFinal) -> Event {
    let has = |flag: u32| f.flags & flag != 0;
    // No /proc lookup here: a process's sockets are released after its exit event, when its
    // pid may already name a zombie or someone else. Its identity came with its first
    // records; the kernel's account below fills in what is missing.
    let owner = has(final_flags::OWNER).then(|| {
        let o = &f.owner;
        FinalOwner {
            pid: o.tgid,
            uid: o.uid,
            comm: comm(&o.comm),
            netns: o.netns,
            origin: Origin::from_raw(o.origin),
            ppid: o.ppid,
        }
    });
    let payload = [final_flags::PAYLOAD0, final_flags::PAYLOAD1]
        .into_iter()
        .enumerate()
        .filter(|&(_, flag)| has(flag))
        .map(|(i, _)| {
            (
                f.payload_tgid[i],
                f.payload[i].tx_bytes,
                f.payload[i].rx_bytes,
            )
        })
        .collect();
    let wire = has(final_flags::WIRE).then(|| {
        let w = &f.wire;
        [w.tx_bytes, w.rx_bytes, w.tx_packets, w.rx_packets]
    });
    let tcp = has(final_flags::TCP).then(|| Box::new(TcpCounts::from_kernel(&f.tcp)));
    Event::SocketFinal {
        cookie: f.cookie,
        owner,
        payload,
        wire,
        tcp,
    }
}

/// One item of the capture ring → a packet with wall-clock time (`boot_offset_ns` turns
/// the kernel's CLOCK_MONOTONIC into it).
pub(super) fn packet(item: &[u8], boot_offset_ns: i128) -> Option<PacketRecord> {
    if item.len() < size_of::<CaptureRecord>() {
        return None;
    }
    // SAFETY: the item holds a whole CaptureRecord (size checked); read_unaligned because
    // the ring gives no alignment guarantee for our type.
    let r = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<CaptureRecord>()) };
    let n = (r.cap_len as usize).min(r.data.len());
    Some(PacketRecord {
        ts_ns: (r.ts_ns as i128 + boot_offset_ns).max(0) as u64,
        cookie: r.cookie,
        ifindex: r.ifindex,
        egress: r.direction == direction::EGRESS,
        hook: if r.hook == capture_hook::XDP {
            "xdp"
        } else {
            "tc"
        }
        .to_string(),
        orig_len: r.orig_len,
        pid: r.tgid,
        comm: comm(&r.comm),
        data: r.data[..n].to_vec(),
    })
}

/// One item of the DNS ring → the answer it carries, if it is a successful DNS reply, for
/// the process whose socket received it.
pub(super) fn dns(item: &[u8]) -> Option<Event> {
    if item.len() < size_of::<DnsRecord>() {
        return None;
    }
    // SAFETY: the item holds a whole DnsRecord (size checked); read_unaligned because the
    // ring gives no alignment guarantee for our type.
    let r = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<DnsRecord>()) };
    let n = (r.cap_len as usize).min(r.data.len());
    dns_answer(r.tgid, &r.data[..n])
}

/// A packet from its IP header → the answer it carries, if it is a successful DNS reply.
fn dns_answer(pid: u32, packet: &[u8]) -> Option<Event> {
    let pkt = netmon_packet::decode(packet, netmon_packet::LinkType::RawIp);
    let (name, addrs) = netmon_packet::dns_names::answered(pkt.dns.as_ref()?)?;
    Some(Event::DnsAnswer {
        pid,
        name: name.to_string(),
        addrs,
    })
}

pub(super) fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The socket's addresses, IPv4-mapped IPv6 shown as IPv4; no remote for unconnected sockets.
pub(super) fn endpoints(t: &SockTuple) -> Option<(Proto, SocketAddr, Option<SocketAddr>)> {
    let ip = |a: &[u8; 16]| -> Option<IpAddr> {
        match t.family {
            2 => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
            10 => {
                let v6 = Ipv6Addr::from(*a);
                Some(match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                })
            }
            _ => None,
        }
    };
    let local = SocketAddr::new(ip(&t.local_addr)?, t.local_port);
    let rip = ip(&t.remote_addr)?;
    let remote =
        (!rip.is_unspecified() || t.remote_port != 0).then(|| SocketAddr::new(rip, t.remote_port));
    Some((Proto::from_ipproto(t.protocol), local, remote))
}

#[cfg(test)]
pub(super) mod tests {
    use netmon_common::{
        COMM_LEN, MAX_SNAPLEN, PayloadStats, RTT_BUCKETS, TcpStats, WireStats, origin, rtt_bucket,
    };

    use super::*;

    /// A record's bytes as the ring hands them over.
    pub(in super::super) fn bytes<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: netmon_common's record types are repr(C) with explicit padding fields, so
        // every byte of a value is initialised.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    pub(in super::super) fn comm_of(s: &str) -> [u8; COMM_LEN] {
        let mut c = [0u8; COMM_LEN];
        c[..s.len()].copy_from_slice(s.as_bytes());
        c
    }

    /// A TCP/IPv4 tuple 10.0.0.1:40000 → 10.0.0.2:443.
    fn tcp_tuple() -> SockTuple {
        let mut t = SockTuple {
            family: 2,
            protocol: 6,
            local_port: 40000,
            remote_port: 443,
            ..Default::default()
        };
        t.local_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        t.remote_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        t
    }

    fn decoded(r: &KernelEvent, owned: bool) -> Vec<Event> {
        let mut out = Vec::new();
        kernel_event(r, owned, &mut out);
        out
    }

    #[test]
    fn each_kind_of_kernel_event_decodes() {
        let base = KernelEvent {
            tgid: 100,
            pid: 101,
            uid: 1000,
            cookie: 7,
            comm: comm_of("curl"),
            ppid: 99,
            ..Default::default()
        };
        let owner = KernelEvent {
            kind: event_kind::SOCK_OWNER,
            arg0: u64::from(origin::CONNECT),
            arg1: 4026531840,
            ..base
        };
        assert_eq!(
            decoded(&owner, false),
            [Event::SocketOwner {
                cookie: 7,
                pid: 100,
                uid: 1000,
                comm: "curl".into(),
                netns: 4026531840,
                origin: Origin::Connect,
                ppid: 99,
            }]
        );
        let flow = KernelEvent {
            kind: event_kind::SOCK_FLOW,
            ..base
        };
        assert_eq!(decoded(&flow, false), []);

        let tuple = KernelEvent {
            kind: event_kind::SOCK_TUPLE,
            tuple: tcp_tuple(),
            ..base
        };
        let endpoints = Event::SocketEndpoints {
            cookie: 7,
            proto: Proto::Tcp,
            local: "10.0.0.1:40000".parse().unwrap(),
            remote: Some("10.0.0.2:443".parse().unwrap()),
        };
        assert_eq!(decoded(&tuple, false), std::slice::from_ref(&endpoints));
        // A raw socket nobody owns is the kernel's; one a process owns is not.
        let raw = KernelEvent {
            arg0: SOCK_RAW,
            ..tuple
        };
        assert_eq!(
            decoded(&raw, false),
            [Event::KernelSocket { cookie: 7 }, endpoints.clone()]
        );
        assert_eq!(decoded(&raw, true), [endpoints]);

        let accepted = KernelEvent {
            kind: event_kind::SOCK_ACCEPTED,
            arg1: 5,
            ..tuple
        };
        assert_eq!(
            decoded(&accepted, false),
            [Event::SocketAccepted {
                cookie: 7,
                local: "10.0.0.1:40000".parse().unwrap(),
                remote: "10.0.0.2:443".parse().unwrap(),
                netns: 5,
            }]
        );
        // Accepted without a remote address says nothing.
        let mut listening = accepted;
        listening.tuple.remote_addr = [0; 16];
        listening.tuple.remote_port = 0;
        assert_eq!(decoded(&listening, false), []);

        let state = KernelEvent {
            kind: event_kind::SOCK_STATE,
            arg0: 1,
            arg1: 7,
            ..base
        };
        assert_eq!(
            decoded(&state, false),
            [Event::SocketState {
                cookie: 7,
                state: TcpState::Close,
            }]
        );
        let release = KernelEvent {
            kind: event_kind::SOCK_RELEASE,
            ..base
        };
        assert_eq!(decoded(&release, true), [Event::SocketClosed { cookie: 7 }]);
        let fork = KernelEvent {
            kind: event_kind::PROC_FORK,
            arg0: 123,
            ..base
        };
        assert_eq!(
            decoded(&fork, false),
            [Event::ProcessForked {
                parent: 100,
                child: 123,
            }]
        );
        let exit = KernelEvent {
            kind: event_kind::PROC_EXIT,
            ..base
        };
        assert_eq!(decoded(&exit, false), [Event::ProcessExited { pid: 100 }]);
        let unknown = KernelEvent { kind: 77, ..base };
        assert_eq!(decoded(&unknown, false), []);
    }

    #[test]
    fn ring_items_decode_by_kind_and_size() {
        let e = KernelEvent {
            kind: event_kind::SOCK_RELEASE,
            cookie: 9,
            ..Default::default()
        };
        let item = bytes(&e);
        assert!(matches!(record(&item), Some(Record::Event(r)) if r.cookie == 9));
        assert!(record(&item[..item.len() - 1]).is_none());
        assert!(record(&item[..3]).is_none());

        let f = SockFinal {
            kind: event_kind::SOCK_FINAL,
            cookie: 11,
            ..Default::default()
        };
        let item = bytes(&f);
        assert!(matches!(record(&item), Some(Record::Final(r)) if r.cookie == 11));
        // A final record cut short is read as the small record that fits, whose kind then
        // decodes to no event at all.
        let Some(Record::Event(cut)) = record(&item[..size_of::<KernelEvent>()]) else {
            panic!("a cut final record is read as a small one");
        };
        assert_eq!(decoded(&cut, false), []);
    }

    fn sock_final(flags: u32) -> SockFinal {
        let mut tcp = TcpStats {
            retransmits: 3,
            handshake_us: 100,
            ..Default::default()
        };
        tcp.rtt_buckets[4] = 2;
        SockFinal {
            kind: event_kind::SOCK_FINAL,
            flags,
            cookie: 5,
            owner: SockOwner {
                tgid: 200,
                uid: 0,
                origin: origin::SOCK_CREATE,
                netns: 1,
                comm: comm_of("nginx"),
                ppid: 1,
                ..Default::default()
            },
            payload_tgid: [200, 201],
            payload: [
                PayloadStats {
                    tx_bytes: 10,
                    rx_bytes: 20,
                    tx_calls: 1,
                    rx_calls: 2,
                },
                PayloadStats {
                    tx_bytes: 30,
                    rx_bytes: 40,
                    tx_calls: 3,
                    rx_calls: 4,
                },
            ],
            wire: WireStats {
                tx_bytes: 100,
                rx_bytes: 200,
                tx_packets: 3,
                rx_packets: 4,
                zero_window: 0,
            },
            tcp,
            ..Default::default()
        }
    }

    #[test]
    fn a_final_record_carries_only_the_parts_its_flags_name() {
        use final_flags::*;
        let all = socket_final(&sock_final(OWNER | WIRE | TCP | PAYLOAD0 | PAYLOAD1));
        let Event::SocketFinal {
            cookie,
            owner,
            payload,
            wire,
            tcp,
        } = all
        else {
            panic!("not a final event: {all:?}");
        };
        assert_eq!(cookie, 5);
        assert_eq!(
            owner,
            Some(FinalOwner {
                pid: 200,
                uid: 0,
                comm: "nginx".into(),
                netns: 1,
                origin: Origin::SockCreate,
                ppid: 1,
            })
        );
        assert_eq!(payload, [(200, 10, 20), (201, 30, 40)]);
        assert_eq!(wire, Some([100, 200, 3, 4]));
        let tcp = tcp.unwrap();
        assert_eq!(tcp.retransmits, 3);
        assert_eq!(tcp.rtt_buckets, [0, 0, 0, 0, 2]);

        // The releasing process only (another than the owner), nothing else.
        assert_eq!(
            socket_final(&sock_final(PAYLOAD1)),
            Event::SocketFinal {
                cookie: 5,
                owner: None,
                payload: vec![(201, 30, 40)],
                wire: None,
                tcp: None,
            }
        );
        assert_eq!(
            socket_final(&sock_final(0)),
            Event::SocketFinal {
                cookie: 5,
                owner: None,
                payload: vec![],
                wire: None,
                tcp: None,
            }
        );
    }

    #[test]
    fn tcp_counts_keep_buckets_up_to_the_last_sample() {
        let mut v = TcpStats::default();
        assert!(TcpCounts::from_kernel(&v).rtt_buckets.is_empty());
        assert!(TcpCounts::from_kernel(&v).handshake_buckets.is_empty());
        assert_eq!(TcpCounts::from_kernel(&v).handshake_count, 0);
        v.rtt_buckets[RTT_BUCKETS - 1] = 1;
        v.rtt_buckets[0] = 5;
        assert_eq!(TcpCounts::from_kernel(&v).rtt_buckets.len(), RTT_BUCKETS);
        // One handshake of 1000 µs: one sample in the bucket bounded by 1024 µs.
        v.handshake_us = 1000;
        let c = TcpCounts::from_kernel(&v);
        assert_eq!(c.handshake_count, 1);
        assert_eq!(c.handshake_sum_us, 1000);
        assert_eq!(c.handshake_buckets.len(), rtt_bucket(999) + 1);
        assert_eq!(c.handshake_buckets.iter().sum::<u64>(), 1);
        assert_eq!(*c.handshake_buckets.last().unwrap(), 1);
    }

    #[test]
    fn captured_packets_decode_with_wall_clock_time() {
        let mut r = CaptureRecord {
            ts_ns: 1_000,
            cookie: 3,
            ifindex: 2,
            orig_len: 1500,
            tgid: 42,
            cap_len: 4,
            direction: direction::EGRESS,
            hook: capture_hook::XDP,
            comm: comm_of("iperf"),
            data: [0; MAX_SNAPLEN],
        };
        r.data[..4].copy_from_slice(&[0x45, 0, 0, 20]);
        let p = packet(&bytes(&r), 5_000).unwrap();
        assert_eq!(
            p,
            PacketRecord {
                ts_ns: 6_000,
                cookie: 3,
                ifindex: 2,
                egress: true,
                hook: "xdp".into(),
                orig_len: 1500,
                pid: 42,
                comm: "iperf".into(),
                data: vec![0x45, 0, 0, 20],
            }
        );
        // A capture length beyond the snapshot is cut to it.
        r.cap_len = u16::MAX;
        r.hook = capture_hook::TC;
        let p = packet(&bytes(&r), 0).unwrap();
        assert_eq!(p.data.len(), MAX_SNAPLEN);
        assert_eq!(p.hook, "tc");
        assert!(packet(&bytes(&r)[..10], 0).is_none());
    }

    #[test]
    fn tuples_decode_with_mapped_addresses_as_v4() {
        let mut t = SockTuple {
            family: 10,
            protocol: 6,
            local_port: 8080,
            remote_port: 51000,
            ..Default::default()
        };
        t.local_addr[10] = 0xff;
        t.local_addr[11] = 0xff;
        t.local_addr[12..].copy_from_slice(&[127, 0, 0, 1]);
        t.remote_addr[15] = 1;
        let (p, l, r) = endpoints(&t).unwrap();
        assert_eq!(p, Proto::Tcp);
        assert_eq!(l.to_string(), "127.0.0.1:8080");
        assert_eq!(r.unwrap().to_string(), "[::1]:51000");
        let unconnected = SockTuple {
            family: 2,
            protocol: 17,
            local_port: 53,
            ..Default::default()
        };
        assert_eq!(endpoints(&unconnected).unwrap().2, None);
        assert!(
            endpoints(&SockTuple {
                family: 1,
                ..Default::default()
            })
            .is_none()
        );
    }

    #[test]
    fn comm_stops_at_nul() {
        assert_eq!(comm(&comm_of("curl")), "curl");
        assert_eq!(comm(b"exactly16bytes!!"), "exactly16bytes!!");
    }
}
