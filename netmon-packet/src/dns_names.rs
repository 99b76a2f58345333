//! Names from observed DNS replies, attached to the addresses they resolved to, per process.
//!
//! The key is (pid that received the reply, address): two processes resolving different names
//! to one CDN address each see their own name. The question's name is kept (what the process
//! asked for), not the end of a CNAME chain. Memory is bounded by an LRU cap; evictions counted.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::dns::{DnsData, DnsMessage};
use crate::meta::PacketMeta;
use crate::packet::Packet;

#[derive(Debug)]
pub struct DnsNames {
    names: LruCache<(Option<u32>, IpAddr), String>,
    evicted: u64,
}

/// Entries kept by default: a name and its fallback take two, so about 8k addresses (under
/// 2 MB with the key, the name and the LRU links).
pub const DEFAULT_CAPACITY: usize = 16_384;

impl Default for DnsNames {
    fn default() -> Self {
        DnsNames::new(DEFAULT_CAPACITY)
    }
}

impl DnsNames {
    pub fn new(capacity: usize) -> Self {
        DnsNames {
            names: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            evicted: 0,
        }
    }

    /// Learns from a packet if it is a successful DNS reply; returns how many addresses it named.
    pub fn ingest(&mut self, pkt: &Packet, meta: &PacketMeta) -> usize {
        match pkt.dns.as_ref().and_then(answered) {
            Some((name, addrs)) => self.learn(meta.pid, name, &addrs),
            None => 0,
        }
    }

    /// Records that `pid` (None: a process not known) resolved `name` to `addrs`. Every name is
    /// also kept under no process, the fallback for processes that resolve through another
    /// (systemd-resolved over D-Bus, a caching daemon): a process's own answer still wins.
    pub fn learn(&mut self, pid: Option<u32>, name: &str, addrs: &[IpAddr]) -> usize {
        for &ip in addrs {
            let keys = [Some((pid, ip)), pid.is_some().then_some((None, ip))];
            for key in keys.into_iter().flatten() {
                // push hands back the entry it replaced: this key's, or the one evicted.
                if self
                    .names
                    .push(key, name.to_string())
                    .is_some_and(|(old, _)| old != key)
                {
                    self.evicted += 1;
                }
            }
        }
        addrs.len()
    }

    /// The name `pid` resolved to `addr`; falls back to a reply no process was known for.
    pub fn lookup(&mut self, pid: Option<u32>, addr: IpAddr) -> Option<&str> {
        if self.names.contains(&(pid, addr)) {
            return self.names.get(&(pid, addr)).map(String::as_str);
        }
        self.names.get(&(None, addr)).map(String::as_str)
    }

    /// What [`DnsNames::lookup`] answers, without marking the entry as recently used: for
    /// readers that must not change the table (a snapshot of it).
    pub fn peek(&self, pid: Option<u32>, addr: IpAddr) -> Option<&str> {
        self.names
            .peek(&(pid, addr))
            .or_else(|| self.names.peek(&(None, addr)))
            .map(String::as_str)
    }

    /// The name of this packet's remote address as its process resolved it, for capture
    /// lines: the destination of an egress packet, the source of an ingress one.
    pub fn remote_name(&mut self, pkt: &Packet, meta: &PacketMeta) -> Option<&str> {
        let (src, dst) = pkt.ip_addrs()?;
        let remote = match meta.direction {
            crate::meta::Direction::Egress => dst,
            crate::meta::Direction::Ingress => src,
        };
        self.lookup(meta.pid, remote)
    }

    /// Entries held (a name learned by a known process counts twice: its own and the fallback).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// The question's name and the addresses of a successful reply; None for queries, errors and
/// replies without addresses.
pub fn answered(msg: &DnsMessage) -> Option<(&str, Vec<IpAddr>)> {
    if !msg.response || msg.rcode != 0 {
        return None;
    }
    let asked = msg.questions.first()?;
    let addrs: Vec<IpAddr> = msg
        .answers
        .iter()
        .filter_map(|a| match a.data {
            DnsData::Addr(ip) => Some(ip),
            _ => None,
        })
        .collect();
    (!addrs.is_empty()).then_some((asked.name.as_str(), addrs))
}
