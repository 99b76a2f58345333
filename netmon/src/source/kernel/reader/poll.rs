//! Map polling with change detection: the maps hold cumulative counters, and an unchanged
//! value is not sent again. At 100k idle sockets and four polls a second, sending every value
//! every time would bury the aggregator in events that say nothing new.
//!
//! What was last sent is kept as a digest (8 bytes a socket, not the value: TCP stats are 248
//! bytes), except LATE, whose values are needed to send growth.
use crate::bounded::BoundedMap;
use std::collections::HashMap as StdHashMap;

use netmon_common::{LateStats, PidSockKey, UdpPeerKey, UdpPeerStats, counter};

use super::{super::KernelError, maps::KernelMaps};
use crate::event::{CaptureStats, Event, LossSource, TcpCounts, UnattributedReason};
use crate::hashing::{FastMap, digest};

/// What was last sent of each polled value.
pub(super) struct Sent {
    payload: FastMap<(u64, u32), u64>,
    wire: FastMap<u64, u64>,
    tcp: FastMap<u64, u64>,
    udp_peers: StdHashMap<UdpPeerKey, u64>,
    /// The COUNTERS array as last sent; all `u64::MAX` at first so the first poll sends it.
    counters: Vec<u64>,
    late: StdHashMap<u32, LateStats>,
    capture: CaptureStats,
}

impl Default for Sent {
    fn default() -> Self {
        Sent {
            payload: FastMap::default(),
            wire: FastMap::default(),
            tcp: FastMap::default(),
            udp_peers: StdHashMap::new(),
            counters: vec![u64::MAX; counter::COUNT as usize],
            late: StdHashMap::new(),
            capture: CaptureStats::default(),
        }
    }
}

impl Sent {
    /// PAYLOAD entries that changed. An entry of a socket that `ended` (its final record came)
    /// is sent once more and deleted: a third process moved bytes through the shared socket
    /// after the kernel's final account, and nothing else would ever free that entry.
    pub(super) fn payload(
        &mut self,
        maps: &mut impl KernelMaps,
        ended: &BoundedMap<u64, ()>,
        out: &mut Vec<Event>,
    ) -> Result<(), KernelError> {
        let mut swept = Vec::new();
        let sent = &mut self.payload;
        maps.for_each_payload(&mut |k, v| {
            if ended.contains(&k.cookie) {
                sent.remove(&(k.cookie, k.tgid));
                swept.push(k);
            } else {
                let d = digest(&v);
                if sent.insert((k.cookie, k.tgid), d) == Some(d) {
                    return;
                }
            }
            out.push(Event::Payload {
                cookie: k.cookie,
                pid: k.tgid,
                tx_bytes: v.tx_bytes,
                rx_bytes: v.rx_bytes,
                tx_calls: v.tx_calls,
                rx_calls: v.rx_calls,
            });
        })?;
        if !swept.is_empty() {
            maps.delete_payload(&swept)?;
        }
        Ok(())
    }

    /// WIRE entries that changed.
    pub(super) fn wire(
        &mut self,
        maps: &impl KernelMaps,
        out: &mut Vec<Event>,
    ) -> Result<(), KernelError> {
        let sent = &mut self.wire;
        maps.for_each_wire(&mut |cookie, v| {
            let d = digest(&v);
            if sent.insert(cookie, d) == Some(d) {
                return;
            }
            out.push(Event::Wire {
                cookie,
                tx_bytes: v.tx_bytes,
                rx_bytes: v.rx_bytes,
                tx_packets: v.tx_packets,
                rx_packets: v.rx_packets,
            });
        })
    }

    /// TCP_STATS entries that changed. TCP statistics are optional (the map exists, but its
    /// programs may not have attached): an unreadable map is not an error.
    pub(super) fn tcp(&mut self, maps: &impl KernelMaps, out: &mut Vec<Event>) {
        let sent = &mut self.tcp;
        let _ = maps.for_each_tcp(&mut |cookie, v| {
            let d = digest(&v);
            if sent.insert(cookie, d) == Some(d) {
                return;
            }
            out.push(Event::TcpStats {
                cookie,
                stats: Box::new(TcpCounts::from_kernel(&v)),
            });
        });
    }

    /// UDP_PEERS entries that changed. With `only`, just that socket's entries, which are
    /// then deleted: it ended, and the kernel cannot find them to free them. Entries of
    /// sockets that `ended` earlier are deleted. The map is optional: unreadable, nothing is
    /// sent.
    pub(super) fn udp_peers(
        &mut self,
        maps: &mut impl KernelMaps,
        only: Option<u64>,
        ended: &BoundedMap<u64, ()>,
        out: &mut Vec<Event>,
    ) {
        let mut gone = Vec::new();
        let sent = &mut self.udp_peers;
        let _ = maps.for_each_udp_peer(&mut |k, v| {
            if only.is_some_and(|c| c != k.cookie) {
                return;
            }
            let last = if only.is_some() {
                gone.push(k);
                sent.remove(&k)
            } else if ended.contains(&k.cookie) {
                // Its socket's end read it already (a UDP socket sends nothing after it).
                gone.push(k);
                sent.remove(&k);
                return;
            } else {
                sent.insert(k, digest(&v))
            };
            if last == Some(digest(&v)) {
                return;
            }
            if let Some(ev) = udp_peer_event(&k, &v) {
                out.push(ev);
            }
        });
        if !gone.is_empty() {
            let _ = maps.delete_udp_peers(&gone);
        }
    }

    /// UDP_PEERS keys sent for these expiring sockets, forgotten here: what to delete.
    pub(super) fn take_udp_peer_keys(
        &mut self,
        cookies: &std::collections::HashSet<u64>,
    ) -> Vec<UdpPeerKey> {
        let mut keys = Vec::new();
        self.udp_peers.retain(|k, _| {
            let due = cookies.contains(&k.cookie);
            if due {
                keys.push(*k);
            }
            !due
        });
        keys
    }

    /// Growth of each process's LATE counters since last sent (the aggregator adds them to
    /// the process, whose ended sockets are gone). False when LATE could not be read: then
    /// nothing of it may be freed either, or growth since the last poll would be lost.
    pub(super) fn late(&mut self, maps: &impl KernelMaps, out: &mut Vec<Event>) -> bool {
        let Ok(all) = maps.late() else {
            return false;
        };
        for (tgid, v) in all {
            let last = self.late.entry(tgid).or_default();
            if *last == v {
                continue;
            }
            let d = |now: u64, then: u64| now.saturating_sub(then);
            out.push(Event::Late {
                pid: tgid,
                wire: [
                    d(v.tx_bytes, last.tx_bytes),
                    d(v.rx_bytes, last.rx_bytes),
                    d(v.tx_packets, last.tx_packets),
                    d(v.rx_packets, last.rx_packets),
                ],
                resets_sent: d(v.resets_sent, last.resets_sent),
                resets_received: d(v.resets_received, last.resets_received),
            });
            *last = v;
        }
        true
    }

    /// The COUNTERS array (`now`, summed over CPUs) as loss and unattributed events, all of
    /// them whenever any counter changed: they are cumulative and cheap, and the aggregator
    /// keeps the latest of each.
    pub(super) fn counters(&mut self, now: Vec<u64>, out: &mut Vec<Event>) {
        if now == self.counters {
            return;
        }
        let c = |i: u32| now.get(i as usize).copied().unwrap_or(0);
        let unattributed = [
            (
                UnattributedReason::NoSocket,
                c(counter::NO_SOCKET_BYTES),
                c(counter::NO_SOCKET_PACKETS),
            ),
            (UnattributedReason::NoCookie, c(counter::NO_COOKIE_BYTES), 0),
            (
                UnattributedReason::PayloadMapFull,
                c(counter::PAYLOAD_FULL_BYTES),
                0,
            ),
            (
                UnattributedReason::WireMapFull,
                c(counter::WIRE_FULL_BYTES) + c(counter::LATE_FULL_BYTES),
                0,
            ),
        ];
        for (reason, bytes, packets) in unattributed {
            out.push(Event::Unattributed {
                reason,
                bytes,
                packets,
            });
        }
        for (source, idx) in [
            (LossSource::RingBuffer, counter::RINGBUF_FULL),
            (LossSource::OwnersMap, counter::OWNERS_FULL),
            (LossSource::PayloadMap, counter::PAYLOAD_FULL),
            (LossSource::WireMap, counter::WIRE_FULL),
            (LossSource::TcpStatsMap, counter::TCP_STATS_FULL),
            (LossSource::CaptureRing, counter::CAPTURE_RING_FULL),
            (LossSource::ReleasedMap, counter::RELEASED_FULL),
            (LossSource::DnsRing, counter::DNS_RING_FULL),
            (LossSource::LateMap, counter::LATE_FULL),
            (LossSource::UdpPeersMap, counter::UDP_PEERS_FULL),
        ] {
            out.push(Event::Lost {
                source,
                count: c(idx),
            });
        }
        out.push(Event::ResetsWithoutSocket {
            count: c(counter::RST_NO_SOCKET),
        });
        self.counters = now;
    }

    /// The capture programs' counters and per-interface totals, when they changed. Both maps
    /// are optional here: what cannot be read counts as zero.
    pub(super) fn capture(&mut self, maps: &impl KernelMaps, out: &mut Vec<Event>) {
        let mut stats = CaptureStats::default();
        for (key, v) in maps.interfaces().unwrap_or_default() {
            stats
                .interfaces
                .push(((key >> 1) as u32, key & 1 == 1, v.packets, v.bytes));
        }
        stats.interfaces.sort();
        if let Ok(now) = maps.counters() {
            let c = |i: u32| now.get(i as usize).copied().unwrap_or(0);
            stats.sampled_out = c(counter::CAPTURE_SAMPLED_OUT);
            stats.rate_limited = c(counter::CAPTURE_RATE_LIMITED);
            stats.ring_full = c(counter::CAPTURE_RING_FULL);
            stats.filtered = c(counter::CAPTURE_FILTERED);
            stats.self_skipped = c(counter::CAPTURE_SELF);
        }
        if stats != self.capture {
            self.capture = stats.clone();
            out.push(Event::CaptureStats(stats));
        }
    }

    /// PAYLOAD keys sent for these sockets: the entries to delete when they expire (every
    /// entry read is in here, so none is missed).
    pub(super) fn payload_keys(&self, cookies: &std::collections::HashSet<u64>) -> Vec<PidSockKey> {
        self.payload
            .keys()
            .filter(|(c, _)| cookies.contains(c))
            .map(|&(cookie, tgid)| PidSockKey {
                cookie,
                tgid,
                _pad: 0,
            })
            .collect()
    }

    /// Forgets what was sent for a socket that ended or expired: a later value under the same
    /// key is news again, and the tables hold live sockets only.
    pub(super) fn forget_socket(&mut self, cookie: u64, payload_tgids: &[u32]) {
        for &tgid in payload_tgids {
            self.payload.remove(&(cookie, tgid));
        }
        self.wire.remove(&cookie);
        self.tcp.remove(&cookie);
        // UDP_PEERS digests go where their entries are deleted (`udp_peers`,
        // `take_udp_peer_keys`), not here: a scan of them per ended socket.
    }

    /// Forgets a process whose LATE entry was freed.
    pub(super) fn forget_process(&mut self, tgid: u32) {
        self.late.remove(&tgid);
    }

    /// Values kept, for tests that check nothing is kept forever.
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.payload.len()
            + self.wire.len()
            + self.tcp.len()
            + self.late.len()
            + self.udp_peers.len()
    }
}

/// An entry of UDP_PEERS as an event; None for an address family it cannot be.
fn udp_peer_event(k: &UdpPeerKey, v: &UdpPeerStats) -> Option<Event> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let ip = match k.family {
        2 => IpAddr::V4(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3])),
        10 => {
            let v6 = Ipv6Addr::from(k.addr);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(Event::UdpPeer {
        cookie: k.cookie,
        remote: SocketAddr::new(ip, k.port),
        counts: v.counts(),
    })
}
