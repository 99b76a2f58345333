//! One read of every view, stamped with the caller's clock so deltas need no wall time.
use std::collections::HashSet;

use super::analysis::{Analysis, parse_ip_forward};
use super::arp::{self, ArpRow};
use super::counters::{self, CounterTable};
use super::dev::{self, Interface};
use super::route::{self, Route4, Route6};
use super::sockets::{self, SocketKind, SocketRow};
use super::softnet::{self, SoftnetCpu};
use super::{Availability, NetRoot, ProcNetError, Table};

#[derive(Debug, Clone, PartialEq)]
pub struct SocketTable {
    pub kind: SocketKind,
    pub table: Availability<Table<SocketRow>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetSnapshot {
    /// Supplied by the caller (a monotonic clock in ms); only differences matter.
    pub taken_at_ms: u64,
    /// One entry per [`SocketKind::ALL`], in that order; `icmp6`, `raw6`… unavailable without IPv6.
    pub sockets: Vec<SocketTable>,
    pub arp: Availability<Table<ArpRow>>,
    pub routes_v4: Availability<Table<Route4>>,
    pub routes_v6: Availability<Table<Route6>>,
    pub interfaces: Availability<Table<Interface>>,
    /// Sections Ip, Icmp, IcmpMsg, Tcp, Udp, UdpLite.
    pub snmp: Availability<CounterTable>,
    /// Sections Ip6, Icmp6, Udp6, UdpLite6; unavailable when IPv6 is off.
    pub snmp6: Availability<CounterTable>,
    /// Sections TcpExt, IpExt, MPTcpExt (the last only with MPTCP).
    pub netstat: Availability<CounterTable>,
    /// Not per namespace: the kernel shows the host's CPUs everywhere.
    pub softnet: Availability<Table<SoftnetCpu>>,
    pub ip_forward: Availability<bool>,
}

impl NetSnapshot {
    /// Reads every file under `root`. Fails only when `root/net` has gone, so that a TUI can tell
    /// "the process exited" from "this kernel lacks a file".
    pub fn capture(
        root: &NetRoot,
        own_inodes: &HashSet<u64>,
        taken_at_ms: u64,
    ) -> Result<Self, ProcNetError> {
        let net = root.net_dir();
        if !net.is_dir() {
            return Err(ProcNetError::RootGone { path: net });
        }
        Ok(NetSnapshot {
            taken_at_ms,
            sockets: SocketKind::ALL
                .iter()
                .map(|&kind| SocketTable {
                    kind,
                    table: root
                        .read_net(kind.file_name())
                        .map(|t| sockets::parse(&t, kind, own_inodes)),
                })
                .collect(),
            arp: root.read_net("arp").map(|t| arp::parse(&t)),
            routes_v4: root.read_net("route").map(|t| route::parse_v4(&t)),
            routes_v6: root.read_net("ipv6_route").map(|t| route::parse_v6(&t)),
            interfaces: root.read_net("dev").map(|t| dev::parse(&t)),
            snmp: root
                .read_net("snmp")
                .map(|t| counters::parse_header_values(&t)),
            snmp6: root
                .read_net("snmp6")
                .map(|t| counters::parse_name_value(&t)),
            netstat: root
                .read_net("netstat")
                .map(|t| counters::parse_header_values(&t)),
            softnet: root.read_net("softnet_stat").map(|t| softnet::parse(&t)),
            ip_forward: root
                .read_sys("net/ipv4/ip_forward")
                .and_then(|t| parse_ip_forward(&t)),
        })
    }

    pub fn analysis(&self) -> Analysis {
        Analysis::new(&self.snmp, &self.ip_forward)
    }

    pub fn socket_table(&self, kind: SocketKind) -> Option<&Availability<Table<SocketRow>>> {
        self.sockets
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| &s.table)
    }

    /// Every available socket row, tables in [`SocketKind::ALL`] order.
    pub fn socket_rows(&self) -> impl Iterator<Item = &SocketRow> {
        self.sockets
            .iter()
            .filter_map(|s| s.table.get())
            .flat_map(|t| t.rows.iter())
    }

    /// Malformed lines dropped across all files, for a status-bar hint.
    pub fn skipped_lines(&self) -> usize {
        fn rows<T>(t: &Availability<Table<T>>) -> usize {
            t.get().map_or(0, |t| t.skipped_lines)
        }
        fn counters(t: &Availability<CounterTable>) -> usize {
            t.get().map_or(0, |t| t.skipped_lines)
        }
        self.sockets.iter().map(|s| rows(&s.table)).sum::<usize>()
            + rows(&self.arp)
            + rows(&self.routes_v4)
            + rows(&self.routes_v6)
            + rows(&self.interfaces)
            + rows(&self.softnet)
            + counters(&self.snmp)
            + counters(&self.snmp6)
            + counters(&self.netstat)
    }
}
