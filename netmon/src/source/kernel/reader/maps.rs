//! The BPF maps the reader polls and frees, behind one trait: [`AyaMaps`] for the real ones,
//! and an in-memory fake (`fake.rs`) so that polling, change detection and expiry are tested
//! without root.
//!
//! Reads of per-socket maps stream entries through a callback (the batch reads of `batch`):
//! at 100k sockets a whole-map copy was tens of megabytes. Deletes take a list of keys and
//! ignore keys that are gone already: the kernel frees a socket's entries itself when it
//! sends the socket's final record, so a key may vanish between a read and a delete.
//!
//! Every method returns an error when its map is missing or of another type. Which of those
//! errors end the run and which only cost a feature is for the caller to say: reads of
//! PAYLOAD, WIRE and COUNTERS and deletes from PAYLOAD, WIRE and OWNERS are the core of
//! netmon; TCP_STATS, LATE, RELEASED, UDP_PEERS, IFACE_STATS and the owner recovery's read of
//! OWNERS are not.
use aya::{
    Ebpf,
    maps::{HashMap, Map, MapData, PerCpuArray},
};
use netmon_common::{
    IfaceStats, LateStats, PayloadStats, PidSockKey, SockOwner, TcpStats, UdpPeerKey, UdpPeerStats,
    WireStats, counter, maps,
};

use super::super::{KernelError, batch};

/// The maps keyed by socket cookie whose entries are freed together when a socket expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum CookieMap {
    Wire,
    TcpStats,
    Released,
    Owners,
}

impl CookieMap {
    pub(super) fn name(self) -> &'static str {
        match self {
            CookieMap::Wire => maps::WIRE,
            CookieMap::TcpStats => maps::TCP_STATS,
            CookieMap::Released => maps::RELEASED,
            CookieMap::Owners => maps::OWNERS,
        }
    }
}

pub(super) trait KernelMaps {
    /// Every PAYLOAD entry: exact payload per (socket, process).
    fn for_each_payload(
        &self,
        f: &mut dyn FnMut(PidSockKey, PayloadStats),
    ) -> Result<(), KernelError>;
    /// Every WIRE entry: bytes and packets on the wire per socket.
    fn for_each_wire(&self, f: &mut dyn FnMut(u64, WireStats)) -> Result<(), KernelError>;
    /// Every TCP_STATS entry. Entries handed over before an error stand.
    fn for_each_tcp(&self, f: &mut dyn FnMut(u64, TcpStats)) -> Result<(), KernelError>;
    /// Every UDP_PEERS entry: what unconnected UDP sockets exchanged with each remote.
    fn for_each_udp_peer(
        &self,
        f: &mut dyn FnMut(UdpPeerKey, UdpPeerStats),
    ) -> Result<(), KernelError>;
    /// The whole LATE map: counters of ended sockets per owner process.
    fn late(&self) -> Result<Vec<(u32, LateStats)>, KernelError>;
    /// The cookies in RELEASED: sockets released, whether or not their ring record arrived.
    fn released(&self) -> Result<Vec<u64>, KernelError>;
    /// The whole OWNERS map.
    fn owners(&self) -> Result<Vec<(u64, SockOwner)>, KernelError>;
    /// The COUNTERS array summed over CPUs, `counter::COUNT` long (an unreadable slot is 0).
    fn counters(&self) -> Result<Vec<u64>, KernelError>;
    /// IFACE_STATS (capture): key `ifindex << 1 | egress`. Unreadable entries are skipped.
    fn interfaces(&self) -> Result<Vec<(u64, IfaceStats)>, KernelError>;
    fn delete_payload(&mut self, keys: &[PidSockKey]) -> Result<(), KernelError>;
    fn delete_cookies(&mut self, map: CookieMap, cookies: &[u64]) -> Result<(), KernelError>;
    fn delete_late(&mut self, tgids: &[u32]) -> Result<(), KernelError>;
    fn delete_udp_peers(&mut self, keys: &[UdpPeerKey]) -> Result<(), KernelError>;
}

/// The maps of the loaded eBPF object. Owning the `Ebpf` also keeps its programs attached.
pub(super) struct AyaMaps {
    ebpf: Ebpf,
}

impl AyaMaps {
    pub(super) fn new(ebpf: Ebpf) -> Self {
        AyaMaps { ebpf }
    }

    fn map(&self, name: &'static str) -> Result<&Map, KernelError> {
        self.ebpf.map(name).ok_or_else(|| missing(name))
    }

    /// `HashMap::remove` of each key; a key already gone is not an error (see module docs).
    fn remove<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
        keys: &[K],
    ) -> Result<(), KernelError> {
        let map = self.ebpf.map_mut(name).ok_or_else(|| missing(name))?;
        let mut map = HashMap::<&mut MapData, K, V>::try_from(map).map_err(map_err(name))?;
        for k in keys {
            let _ = map.remove(k);
        }
        Ok(())
    }
}

fn missing(map: &'static str) -> KernelError {
    KernelError::Map {
        map,
        reason: "missing".into(),
    }
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |e| KernelError::Map {
        map,
        reason: e.to_string(),
    }
}

impl KernelMaps for AyaMaps {
    fn for_each_payload(
        &self,
        f: &mut dyn FnMut(PidSockKey, PayloadStats),
    ) -> Result<(), KernelError> {
        batch::for_each(self.map(maps::PAYLOAD)?, f).map_err(map_err(maps::PAYLOAD))
    }

    fn for_each_wire(&self, f: &mut dyn FnMut(u64, WireStats)) -> Result<(), KernelError> {
        batch::for_each(self.map(maps::WIRE)?, f).map_err(map_err(maps::WIRE))
    }

    fn for_each_tcp(&self, f: &mut dyn FnMut(u64, TcpStats)) -> Result<(), KernelError> {
        batch::for_each(self.map(maps::TCP_STATS)?, f).map_err(map_err(maps::TCP_STATS))
    }

    fn for_each_udp_peer(
        &self,
        f: &mut dyn FnMut(UdpPeerKey, UdpPeerStats),
    ) -> Result<(), KernelError> {
        batch::for_each(self.map(maps::UDP_PEERS)?, f).map_err(map_err(maps::UDP_PEERS))
    }

    fn late(&self) -> Result<Vec<(u32, LateStats)>, KernelError> {
        batch::read_all(self.map(maps::LATE)?).map_err(map_err(maps::LATE))
    }

    fn released(&self) -> Result<Vec<u64>, KernelError> {
        let all: Vec<(u64, u64)> =
            batch::read_all(self.map(maps::RELEASED)?).map_err(map_err(maps::RELEASED))?;
        Ok(all.into_iter().map(|(cookie, _)| cookie).collect())
    }

    fn owners(&self) -> Result<Vec<(u64, SockOwner)>, KernelError> {
        batch::read_all(self.map(maps::OWNERS)?).map_err(map_err(maps::OWNERS))
    }

    fn counters(&self) -> Result<Vec<u64>, KernelError> {
        let arr = PerCpuArray::<&MapData, u64>::try_from(self.map(maps::COUNTERS)?)
            .map_err(map_err(maps::COUNTERS))?;
        Ok((0..counter::COUNT)
            .map(|i| arr.get(&i, 0).map_or(0, |per_cpu| per_cpu.iter().sum()))
            .collect())
    }

    fn interfaces(&self) -> Result<Vec<(u64, IfaceStats)>, KernelError> {
        let map = HashMap::<&MapData, u64, IfaceStats>::try_from(self.map(maps::IFACE_STATS)?)
            .map_err(map_err(maps::IFACE_STATS))?;
        Ok(map.iter().flatten().collect())
    }

    fn delete_payload(&mut self, keys: &[PidSockKey]) -> Result<(), KernelError> {
        self.remove::<PidSockKey, PayloadStats>(maps::PAYLOAD, keys)
    }

    fn delete_cookies(&mut self, map: CookieMap, cookies: &[u64]) -> Result<(), KernelError> {
        match map {
            CookieMap::Wire => self.remove::<u64, WireStats>(map.name(), cookies),
            CookieMap::TcpStats => self.remove::<u64, TcpStats>(map.name(), cookies),
            CookieMap::Released => self.remove::<u64, u64>(map.name(), cookies),
            CookieMap::Owners => self.remove::<u64, SockOwner>(map.name(), cookies),
        }
    }

    fn delete_late(&mut self, tgids: &[u32]) -> Result<(), KernelError> {
        self.remove::<u32, LateStats>(maps::LATE, tgids)
    }

    fn delete_udp_peers(&mut self, keys: &[UdpPeerKey]) -> Result<(), KernelError> {
        self.remove::<UdpPeerKey, UdpPeerStats>(maps::UDP_PEERS, keys)
    }
}
