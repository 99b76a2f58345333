//! Per remote host across processes (the Hosts view, `run --by host`): what every process
//! exchanged with each remote address since netmon started. Ended connections are added up
//! when they fold, live ones at each snapshot, so the totals never go down.
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};

use super::Aggregator;
use super::snapshot::HostRow;
use super::state::Socket;
use crate::event::{Cookie, Pid};
use crate::history::classify;

/// Remote hosts remembered at most; beyond, ended connections to new hosts are added to one
/// "other hosts" row (address `::`), so no byte is dropped.
const MAX_HOSTS: usize = 65_536;
/// Distinct processes counted per host at most (the count is a lower bound beyond).
const MAX_PIDS: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Hosts {
    pub(super) enabled: bool,
    folded: HashMap<IpAddr, HostSum>,
}

#[derive(Debug, Default, Clone)]
struct HostSum {
    tx: u64,
    rx: u64,
    connections: u64,
    pids: Vec<Pid>,
}

impl HostSum {
    fn add(&mut self, tx: u64, rx: u64, connections: u64, pid: Option<Pid>) {
        self.tx += tx;
        self.rx += rx;
        self.connections += connections;
        if let Some(p) = pid
            && self.pids.len() < MAX_PIDS
            && !self.pids.contains(&p)
        {
            self.pids.push(p);
        }
    }
}

/// The row of hosts beyond `MAX_HOSTS`.
const OTHER: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

impl Aggregator {
    /// Keep per-remote-host totals and show them in snapshots (`Snapshot::hosts`).
    pub fn with_hosts(mut self) -> Self {
        self.hosts.enabled = true;
        self
    }

    /// A socket that folds away: its bytes stay with its remote host (each of its remotes,
    /// for a UDP socket without a connected peer).
    pub(super) fn host_folded(&mut self, cookie: Cookie, s: &Socket) {
        if !self.hosts.enabled {
            return;
        }
        // Out of `self` while the parts are added: they are read from `self`.
        let mut folded = std::mem::take(&mut self.hosts.folded);
        self.host_parts(cookie, s, self.watched().as_ref(), &mut |ip, part| {
            let full = folded.len() >= MAX_HOSTS;
            let key = if full && !folded.contains_key(&ip) {
                OTHER
            } else {
                ip
            };
            folded.entry(key).or_default().add_part(&part);
        });
        self.hosts.folded = folded;
    }

    /// The host rows of a snapshot: folded totals plus every live connection, busiest first.
    pub(super) fn host_rows(&self, watched: Option<&HashSet<Pid>>) -> Vec<HostRow> {
        if !self.hosts.enabled {
            return Vec::new();
        }
        let mut sums = self.hosts.folded.clone();
        for (&cookie, s) in &self.sockets {
            self.host_parts(cookie, s, watched, &mut |ip, part| {
                sums.entry(ip).or_default().add_part(&part);
            });
        }
        let mut rows: Vec<HostRow> = sums
            .into_iter()
            .map(|(ip, h)| HostRow {
                remote: ip,
                name: (ip != OTHER)
                    .then(|| self.dns.peek(h.pids.first().copied(), ip))
                    .flatten()
                    .map(str::to_string)
                    .or_else(|| (ip == OTHER).then(|| "other hosts".to_string())),
                class: if ip == OTHER {
                    "other".into()
                } else {
                    classify(ip, &self.networks)
                },
                tx_bytes: h.tx,
                rx_bytes: h.rx,
                connections: h.connections,
                processes: h.pids.len() as u64,
            })
            .collect();
        rows.sort_by(|a, b| {
            (b.tx_bytes + b.rx_bytes)
                .cmp(&(a.tx_bytes + a.rx_bytes))
                .then(a.remote.cmp(&b.remote))
        });
        rows
    }

    /// What a socket counts for each remote host, handed to `add`, if a shown process owns
    /// it (`watched`: see [`Aggregator::watched`]): its payload under its remote, or, for a
    /// UDP socket without a connected peer, each remote's datagrams under that remote.
    fn host_parts(
        &self,
        cookie: Cookie,
        s: &Socket,
        watched: Option<&HashSet<Pid>>,
        add: &mut dyn FnMut(IpAddr, Part),
    ) {
        let pid = s.owner.map(|(p, _)| p);
        if let Some(p) = pid
            && !self.shows(watched, p, s.owner_inc)
        {
            return;
        }
        let shown = |ip: IpAddr| Some(ip.to_canonical()).filter(|ip| !ip.is_unspecified());
        let part = |tx, rx| Part {
            tx,
            rx,
            connections: u64::from(!s.revived),
            pid,
        };
        match (s.remote, s.peers.as_deref()) {
            (Some(r), _) => {
                if let Some(ip) = shown(r.ip()) {
                    let (tx, rx) = self.socket_payload(cookie, s);
                    add(ip, part(tx, rx));
                }
            }
            (None, Some(peers)) => {
                for (addr, p) in peers {
                    if let Some(ip) = shown(addr.ip()) {
                        add(ip, part(p.counts[0].total(), p.counts[1].total()));
                    }
                }
            }
            (None, None) => {}
        }
    }
}

/// What one socket adds to one host.
struct Part {
    tx: u64,
    rx: u64,
    connections: u64,
    pid: Option<Pid>,
}

impl HostSum {
    fn add_part(&mut self, p: &Part) {
        self.add(p.tx, p.rx, p.connections, p.pid);
    }
}
