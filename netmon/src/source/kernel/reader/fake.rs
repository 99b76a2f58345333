//! In-memory maps for tests: what the kernel would hold, set by the test, and what the reader
//! deleted visible afterwards. Ordered maps so that events come in a fixed order.
use std::collections::{BTreeMap, BTreeSet};

use netmon_common::{
    IfaceStats, LateStats, PayloadStats, PidSockKey, SockOwner, TcpStats, UdpPeerKey, UdpPeerStats,
    WireStats, counter,
};

use super::{
    super::KernelError,
    maps::{CookieMap, KernelMaps},
};

#[derive(Default)]
pub(super) struct FakeMaps {
    /// PAYLOAD, keyed (cookie, tgid).
    pub payload: BTreeMap<(u64, u32), PayloadStats>,
    pub wire: BTreeMap<u64, WireStats>,
    pub tcp: BTreeMap<u64, TcpStats>,
    pub late: BTreeMap<u32, LateStats>,
    /// UDP_PEERS, keyed (cookie, address bytes, port, family).
    pub udp_peers: BTreeMap<(u64, [u8; 16], u16, u16), UdpPeerStats>,
    /// RELEASED: cookie → release time.
    pub released: BTreeMap<u64, u64>,
    pub owners: BTreeMap<u64, SockOwner>,
    /// COUNTERS, summed over CPUs; `counter::COUNT` long when read.
    pub counters: Vec<u64>,
    pub interfaces: BTreeMap<u64, IfaceStats>,
    /// Maps that are absent (by name), as when their programs did not load.
    pub missing: BTreeSet<&'static str>,
}

impl FakeMaps {
    fn check(&self, name: &'static str) -> Result<(), KernelError> {
        if self.missing.contains(name) {
            return Err(KernelError::Map {
                map: name,
                reason: "missing".into(),
            });
        }
        Ok(())
    }
}

impl KernelMaps for FakeMaps {
    fn for_each_payload(
        &self,
        f: &mut dyn FnMut(PidSockKey, PayloadStats),
    ) -> Result<(), KernelError> {
        self.check(netmon_common::maps::PAYLOAD)?;
        for (&(cookie, tgid), &v) in &self.payload {
            f(
                PidSockKey {
                    cookie,
                    tgid,
                    _pad: 0,
                },
                v,
            );
        }
        Ok(())
    }

    fn for_each_wire(&self, f: &mut dyn FnMut(u64, WireStats)) -> Result<(), KernelError> {
        self.check(netmon_common::maps::WIRE)?;
        self.wire.iter().for_each(|(&k, &v)| f(k, v));
        Ok(())
    }

    fn for_each_tcp(&self, f: &mut dyn FnMut(u64, TcpStats)) -> Result<(), KernelError> {
        self.check(netmon_common::maps::TCP_STATS)?;
        self.tcp.iter().for_each(|(&k, &v)| f(k, v));
        Ok(())
    }

    fn for_each_udp_peer(
        &self,
        f: &mut dyn FnMut(UdpPeerKey, UdpPeerStats),
    ) -> Result<(), KernelError> {
        self.check(netmon_common::maps::UDP_PEERS)?;
        for (&(cookie, addr, port, family), &v) in &self.udp_peers {
            f(
                UdpPeerKey {
                    cookie,
                    addr,
                    port,
                    family,
                    _pad: 0,
                },
                v,
            );
        }
        Ok(())
    }

    fn late(&self) -> Result<Vec<(u32, LateStats)>, KernelError> {
        self.check(netmon_common::maps::LATE)?;
        Ok(self.late.iter().map(|(&k, &v)| (k, v)).collect())
    }

    fn released(&self) -> Result<Vec<u64>, KernelError> {
        self.check(netmon_common::maps::RELEASED)?;
        Ok(self.released.keys().copied().collect())
    }

    fn owners(&self) -> Result<Vec<(u64, SockOwner)>, KernelError> {
        self.check(netmon_common::maps::OWNERS)?;
        Ok(self.owners.iter().map(|(&k, &v)| (k, v)).collect())
    }

    fn counters(&self) -> Result<Vec<u64>, KernelError> {
        self.check(netmon_common::maps::COUNTERS)?;
        let mut v = self.counters.clone();
        v.resize(counter::COUNT as usize, 0);
        Ok(v)
    }

    fn interfaces(&self) -> Result<Vec<(u64, IfaceStats)>, KernelError> {
        self.check(netmon_common::maps::IFACE_STATS)?;
        Ok(self.interfaces.iter().map(|(&k, &v)| (k, v)).collect())
    }

    fn delete_payload(&mut self, keys: &[PidSockKey]) -> Result<(), KernelError> {
        self.check(netmon_common::maps::PAYLOAD)?;
        for k in keys {
            self.payload.remove(&(k.cookie, k.tgid));
        }
        Ok(())
    }

    fn delete_cookies(&mut self, map: CookieMap, cookies: &[u64]) -> Result<(), KernelError> {
        self.check(map.name())?;
        for c in cookies {
            match map {
                CookieMap::Wire => self.wire.remove(c).map(drop),
                CookieMap::TcpStats => self.tcp.remove(c).map(drop),
                CookieMap::Released => self.released.remove(c).map(drop),
                CookieMap::Owners => self.owners.remove(c).map(drop),
            };
        }
        Ok(())
    }

    fn delete_late(&mut self, tgids: &[u32]) -> Result<(), KernelError> {
        self.check(netmon_common::maps::LATE)?;
        for t in tgids {
            self.late.remove(t);
        }
        Ok(())
    }

    fn delete_udp_peers(&mut self, keys: &[UdpPeerKey]) -> Result<(), KernelError> {
        self.check(netmon_common::maps::UDP_PEERS)?;
        for k in keys {
            self.udp_peers.remove(&(k.cookie, k.addr, k.port, k.family));
        }
        Ok(())
    }
}
