//! How state ends without losing a byte: a socket that ended folds its counts into its owner's
//! totals (`Process::retired`) and is forgotten; a process that exited long enough ago is
//! forgotten too, its bytes kept in `Aggregator::forgotten`. This is what keeps memory bounded
//! by what is alive while every total stays monotonic.
use std::collections::HashSet;

use log::debug;

use super::Aggregator;
use super::snapshot::ConnectionsOpened;
use super::state::{Process, RetiredSockets, Socket, ends};
use crate::event::{Cookie, FinalOwner, Pid, Proto, TcpCounts, UnattributedReason};

impl Aggregator {
    /// A socket's final counters: applied like any others, then the socket is folded into its
    /// process at once (or kept as a closed row with `with_closed_rows`).
    pub(super) fn end_socket(
        &mut self,
        cookie: Cookie,
        owner: Option<FinalOwner>,
        payload: Vec<(Pid, u64, u64)>,
        wire: Option<[u64; 4]>,
        tcp: Option<Box<TcpCounts>>,
    ) {
        if let Some(o) = owner {
            self.adopt_final_owner(cookie, o);
        }
        for (pid, tx_bytes, rx_bytes) in payload {
            self.set_payload(cookie, pid, tx_bytes, rx_bytes);
        }
        if let Some(wire) = wire {
            self.set_wire(cookie, wire);
        }
        let (now, now_ms) = (self.intervals, self.now_ms);
        let s = self.socket(cookie);
        if let Some(t) = tcp {
            s.tcp.set(&t);
        }
        s.close(now, now_ms);
        if !self.keep_closed_rows {
            self.fold_socket(cookie);
        }
    }

    /// Moves a closed socket's counts into its owner's totals and forgets it; its owner is
    /// remembered a while for counts that arrive late.
    pub(super) fn fold_socket(&mut self, cookie: Cookie) {
        let Some(s) = self.sockets.remove(&cookie) else {
            return;
        };
        self.flow_ended(cookie, &s);
        self.host_folded(cookie, &s);
        self.notice_folded(cookie, &s);
        self.fold_payload(cookie, &s);
        if let Some(e) = ends(&s) {
            self.index.remove(cookie, e);
        }
        if let Some((owner, origin)) = s.owner {
            self.tombstones.0.insert(cookie, (owner, origin));
            self.fold_into_owner(&s, owner);
        } else {
            // Nobody to fold into: its wire bytes stay counted as unattributed.
            let e = self
                .unattributed_folded
                .entry(if s.kernel {
                    UnattributedReason::KernelSocket
                } else {
                    UnattributedReason::UnknownOwner
                })
                .or_default();
            e.0 += s.wire.tx_bytes.total() + s.wire.rx_bytes.total();
            e.1 += s.wire.tx_packets.total() + s.wire.rx_packets.total();
        }
        debug!("socket {cookie} closed and folded into its process");
    }

    /// Each process's payload through the socket goes to that process's totals.
    fn fold_payload(&mut self, cookie: Cookie, s: &Socket) {
        // The payload entries of this socket: known without a scan unless it was shared.
        let keys: Vec<(Cookie, Pid)> = if s.shared_payload {
            self.payload
                .keys()
                .filter(|(c, _)| *c == cookie)
                .copied()
                .collect()
        } else {
            s.payload_pid.map(|p| (cookie, p)).into_iter().collect()
        };
        for key in keys {
            if let Some(pl) = self.payload.remove(&key) {
                let r = &mut self.process_at_mut(key.1, pl.inc).retired;
                r.tx_bytes += pl.tx.total();
                r.rx_bytes += pl.rx.total();
            }
        }
    }

    /// Wire counts, the connection, its TCP counters and watched networks go to the owner.
    fn fold_into_owner(&mut self, s: &Socket, owner: Pid) {
        let facts = self.socket_facts(s);
        let p = self.process_at_mut(owner, s.owner_inc);
        let r = &mut p.retired;
        r.tx_wire_bytes += s.wire.tx_bytes.total();
        r.rx_wire_bytes += s.wire.rx_bytes.total();
        r.tx_packets += s.wire.tx_packets.total();
        r.rx_packets += s.wire.rx_packets.total();
        let rs = &mut p.retired_sockets;
        rs.opened.add(facts.opened);
        rs.tcp.add(&facts.tcp);
        if rs.networks.len() < facts.networks.len() {
            rs.networks.resize(facts.networks.len(), 0);
        }
        for (a, b) in rs.networks.iter_mut().zip(&facts.networks) {
            *a += b;
        }
    }

    /// What a socket adds to its owner beyond bytes: whether it counts as an opened
    /// connection, its TCP counters, and the watched networks its peer is in. The same for a
    /// live socket (added to its row) and a folded one (added to the process's totals).
    pub(super) fn socket_facts(&self, s: &Socket) -> RetiredSockets {
        let mut opened = ConnectionsOpened::default();
        match s.proto {
            Some(Proto::Tcp) if s.remote.is_some() => opened.tcp = 1,
            Some(Proto::Udp) => opened.udp = 1,
            _ => {}
        }
        // "Connects to": TCP connections this host initiated, and connected UDP sockets; an
        // accepted connection from a watched range is not the process reaching out.
        let outbound = match s.proto {
            Some(Proto::Tcp) => s.initiated,
            Some(Proto::Udp) => true,
            _ => false,
        };
        let networks = self
            .networks
            .iter()
            .map(|n| u64::from(outbound && s.remote.is_some_and(|r| n.contains(r.ip()))))
            .collect();
        RetiredSockets {
            opened,
            tcp: s.tcp.totals(),
            networks,
        }
    }

    /// Folds closed sockets into their processes and forgets exited, unwatched processes, so
    /// memory stays bounded while every total stays monotonic.
    pub(super) fn expire(&mut self, watched: Option<&HashSet<Pid>>) {
        let dead = self.sockets_past_retention();
        if dead.is_empty() && self.processes.is_empty() && self.past.is_empty() {
            return;
        }
        for cookie in dead {
            self.fold_socket(cookie);
        }
        let gone = self.processes_past_retention(watched);
        if gone.is_empty() {
            return;
        }
        // Only forget a process once none of its sockets are left open.
        let busy = self.processes_with_sockets();
        for key in gone {
            if !busy.contains(&key) {
                self.forget_process(key);
            }
        }
    }

    /// Closed sockets whose closed row has been shown long enough.
    fn sockets_past_retention(&self) -> Vec<Cookie> {
        let now = self.intervals;
        let ttl = self.retention.closed_snapshots;
        self.sockets
            .iter()
            .filter(|(_, s)| s.closed_at.is_some_and(|c| now > c + ttl))
            .map(|(&c, _)| c)
            .collect()
    }

    /// Exited processes (current and past incarnations) whose rows have been shown long
    /// enough; a watched process stays.
    fn processes_past_retention(&self, watched: Option<&HashSet<Pid>>) -> Vec<(Pid, u32)> {
        let now = self.intervals;
        let ttl = self.retention.exited_snapshots;
        let expired = |p: &Process| p.exited_at.is_some_and(|e| now > e + ttl);
        let mut gone: Vec<(Pid, u32)> = self
            .processes
            .iter()
            .filter(|(pid, p)| expired(p) && watched.is_none_or(|w| !w.contains(pid)))
            .map(|(&pid, p)| (pid, p.inc))
            .collect();
        // A past incarnation has exited by definition; it goes after the same grace.
        gone.extend(
            self.past
                .iter()
                .filter(|(_, p)| p.exited_at.is_none_or(|e| now > e + ttl))
                .map(|(&k, _)| k),
        );
        gone
    }

    /// Processes (pid, incarnation) that still own a socket or have payload in one.
    fn processes_with_sockets(&self) -> HashSet<(Pid, u32)> {
        self.payload
            .iter()
            .map(|(&(_, p), pl)| (p, pl.inc))
            .chain(
                self.sockets
                    .values()
                    .filter_map(|s| s.owner.map(|(p, _)| (p, s.owner_inc))),
            )
            .collect()
    }

    /// Drops a process; its bytes stay in the all-process totals.
    fn forget_process(&mut self, (pid, inc): (Pid, u32)) {
        let removed = match self.processes.get(&pid) {
            Some(p) if p.inc == inc => {
                self.children.remove(&pid);
                self.processes.remove(&pid)
            }
            _ => self.past.remove(&(pid, inc)),
        };
        if let Some(p) = removed {
            let f = &mut self.forgotten;
            f.tx_bytes += p.retired.tx_bytes;
            f.rx_bytes += p.retired.rx_bytes;
            f.tx_wire_bytes += p.retired.tx_wire_bytes;
            f.rx_wire_bytes += p.retired.rx_wire_bytes;
        }
    }
}
