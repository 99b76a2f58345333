//! Names from observed DNS replies, attached to the addresses they resolved to, per process.
//!
//! The key is (pid that received the reply, address): two processes resolving different names
//! to one CDN address each see their own name. The question's name is kept (what the process
//! asked for), not the end of a CNAME chain. Memory is bounded by an LRU cap; evictions counted.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::dns::DnsData;
use crate::meta::PacketMeta;
use crate::packet::Packet;

pub struct DnsNames {
    names: LruCache<(Option<u32>, IpAddr), String>,
    evicted: u64,
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
        let Some(msg) = &pkt.dns else { return 0 };
        if !msg.response || msg.rcode != 0 {
            return 0;
        }
        let Some(asked) = msg.questions.first() else {
            return 0;
        };
        let mut n = 0;
        for a in &msg.answers {
            if let DnsData::Addr(ip) = a.data {
                let key = (meta.pid, ip);
                if !self.names.contains(&key) && self.names.len() == self.names.cap().get() {
                    self.evicted += 1;
                }
                self.names.push(key, asked.name.clone());
                n += 1;
            }
        }
        n
    }

    /// The name `pid` resolved to `addr`; falls back to a reply no process was known for.
    pub fn lookup(&mut self, pid: Option<u32>, addr: IpAddr) -> Option<&str> {
        if self.names.contains(&(pid, addr)) {
            return self.names.get(&(pid, addr)).map(String::as_str);
        }
        self.names.get(&(None, addr)).map(String::as_str)
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
