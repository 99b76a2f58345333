//! Applying one event to the state. Everything is kept, whatever the filter (a fork event may
//! arrive after the child's first bytes); counter events are cumulative, so each counter keeps
//! its last value and a running total of deltas. Who owns what is decided in `ownership`, and a
//! socket's end is handed to `fold`.
use crate::event::{Cookie, Event, Origin, Pid, Proto, TcpState};

use super::Aggregator;
use super::state::{Payload, Socket, ends};

impl Aggregator {
    pub(super) fn apply(&mut self, ev: Event) {
        match ev {
            Event::Tick { at_ms } => self.now_ms = self.now_ms.max(at_ms),
            Event::SocketOwner {
                cookie,
                pid,
                uid,
                comm,
                origin,
                ppid,
                netns,
            } => {
                self.socket_seen(cookie, pid, comm, origin, ppid, netns);
                // The kernel's hooks read the creating task's uid; /proc only knows the
                // socket's, which fd passing can make someone else's.
                if origin != Origin::Procfs {
                    self.uid_seen(pid, uid, false);
                }
            }
            Event::SocketEndpoints {
                cookie,
                proto,
                local,
                remote,
            } => self.set_endpoints(cookie, proto, local, remote),
            Event::SocketAccepted {
                cookie,
                local,
                remote,
                netns,
            } => {
                self.set_endpoints(cookie, Proto::Tcp, local, Some(remote));
                if let Some(s) = self.sockets.get_mut(&cookie) {
                    s.accepted = true;
                }
                self.infer_owner_from_listener(cookie, local, netns);
            }
            Event::KernelSocket { cookie } => self.socket(cookie).kernel = true,
            Event::SocketState { cookie, state } => {
                let now_ms = self.now_ms;
                let s = self
                    .sockets
                    .entry(cookie)
                    .or_insert_with(|| Socket::born(now_ms));
                s.state = Some(state);
                s.initiated |= state == TcpState::SynSent;
                self.notice_state(cookie, state);
            }
            Event::Payload {
                cookie,
                pid,
                tx_bytes,
                rx_bytes,
                ..
            } => self.set_payload(cookie, pid, tx_bytes, rx_bytes),
            Event::Wire {
                cookie,
                tx_bytes,
                rx_bytes,
                tx_packets,
                rx_packets,
            } => self.set_wire(cookie, [tx_bytes, rx_bytes, tx_packets, rx_packets]),
            Event::SocketClosed { cookie } => {
                let (now, now_ms) = (self.intervals, self.now_ms);
                self.sockets
                    .entry(cookie)
                    .or_insert_with(|| Socket::born(now_ms))
                    .close(now, now_ms);
            }
            Event::Process {
                pid,
                ppid,
                comm,
                cmdline,
                exe,
                cgroup,
                netns,
                start_time,
                uid,
            } => {
                self.process_seen(pid, ppid, start_time, [comm, cmdline, exe, cgroup], netns);
                self.uid_seen(pid, uid, true);
            }
            Event::TcpStats { cookie, stats } => self.socket(cookie).tcp.set(&stats),
            Event::UdpPeer {
                cookie,
                remote,
                counts,
            } => {
                let peer = self
                    .socket(cookie)
                    .peers
                    .get_or_insert_default()
                    .entry(remote)
                    .or_default();
                // The first datagram sent there: maybe a first contact (see notices).
                let first_sent = peer.counts[4].total() == 0 && counts[4] > 0;
                for (c, v) in peer.counts.iter_mut().zip(counts) {
                    c.set(v);
                }
                if first_sent {
                    self.notice_peer(cookie, remote);
                }
            }
            Event::SocketFinal {
                cookie,
                owner,
                payload,
                wire,
                tcp,
            } => self.end_socket(cookie, owner, payload, wire, tcp),
            Event::Late {
                pid,
                wire,
                resets_sent,
                resets_received,
            } => self.late_counts(pid, wire, resets_sent, resets_received),
            Event::ResetsWithoutSocket { count } => self.resets_without_socket = count,
            Event::DnsAnswer { pid, name, addrs } => {
                self.dns.learn((pid != 0).then_some(pid), &name, &addrs);
            }
            // Packets are decoded and printed by `netmon capture`, not aggregated.
            Event::Packet(_) | Event::CaptureStats(_) => {}
            Event::ProcessForked { parent, child } => {
                if parent != child {
                    self.children.entry(parent).or_default().insert(child);
                    self.processes.entry(child).or_default().ppid = Some(parent);
                }
            }
            Event::ProcessExited { pid } => {
                let now = self.intervals;
                self.processes
                    .entry(pid)
                    .or_default()
                    .exited_at
                    .get_or_insert(now);
            }
            Event::Unattributed {
                reason,
                bytes,
                packets,
            } => {
                self.unattributed.insert(reason, (bytes, packets));
            }
            Event::Lost { source, count } => {
                self.lost.insert(source, count);
            }
        }
    }

    /// The kernel or /proc saw `pid` with socket `cookie`.
    fn socket_seen(
        &mut self,
        cookie: Cookie,
        pid: Pid,
        comm: String,
        origin: Origin,
        ppid: Pid,
        netns: u64,
    ) {
        // The kernel saw this pid create a socket after it exited: a new process.
        if origin != Origin::Procfs
            && self
                .processes
                .get(&pid)
                .is_some_and(|p| p.exited_at.is_some())
        {
            self.new_incarnation(pid);
        }
        if ppid != 0 && ppid != pid {
            self.children.entry(ppid).or_default().insert(pid);
            self.processes
                .entry(pid)
                .or_default()
                .ppid
                .get_or_insert(ppid);
        }
        self.claim_socket(cookie, pid, comm, origin, netns);
    }

    /// What is known about a process (empty text and zeros: not known); a different start time
    /// or an exited process on this pid means the pid was reused.
    fn process_seen(
        &mut self,
        pid: Pid,
        ppid: Pid,
        start_time: u64,
        [comm, cmdline, exe, cgroup]: [String; 4],
        netns: u64,
    ) {
        if self.processes.get(&pid).is_some_and(|p| {
            p.exited_at.is_some()
                || (start_time != 0 && p.start_time != 0 && p.start_time != start_time)
        }) {
            self.new_incarnation(pid);
        }
        let p = self.processes.entry(pid).or_default();
        if start_time != 0 {
            p.start_time = start_time;
        }
        if ppid != 0 {
            p.ppid = Some(ppid);
            self.children.entry(ppid).or_default().insert(pid);
        }
        for (field, new) in [
            (&mut p.comm, comm),
            (&mut p.cmdline, cmdline),
            (&mut p.exe, exe),
            (&mut p.cgroup, cgroup),
        ] {
            if !new.is_empty() {
                *field = new;
            }
        }
        if netns != 0 {
            p.netns = netns;
        }
    }

    /// A witness named `pid`'s uid: kept if none was known yet (or `sure`, from the process's
    /// own record), and its user's name looked up now, so snapshots only read.
    pub(super) fn uid_seen(&mut self, pid: Pid, uid: u32, sure: bool) {
        let p = self.processes.entry(pid).or_default();
        if sure || p.uid.is_none() {
            p.uid = Some(uid);
        }
        self.users.learn(uid);
    }

    /// Counts the kernel attributed to a process after its sockets were gone: straight into
    /// its folded totals.
    fn late_counts(&mut self, pid: Pid, wire: [u64; 4], resets_sent: u64, resets_received: u64) {
        let p = self.processes.entry(pid).or_default();
        let r = &mut p.retired;
        r.tx_wire_bytes += wire[0];
        r.rx_wire_bytes += wire[1];
        r.tx_packets += wire[2];
        r.rx_packets += wire[3];
        let tcp = &mut p.retired_sockets.tcp;
        tcp.resets_sent += resets_sent;
        tcp.resets_received += resets_received;
    }

    /// Exact bytes one process moved through one socket (cumulative).
    pub(super) fn set_payload(&mut self, cookie: Cookie, pid: Pid, tx_bytes: u64, rx_bytes: u64) {
        let inc = self.processes.entry(pid).or_default().inc;
        let s = self.socket(cookie);
        match s.payload_pid {
            None => s.payload_pid = Some(pid),
            Some(p) if p != pid => s.shared_payload = true,
            Some(_) => {}
        }
        let p = self
            .payload
            .entry((cookie, pid))
            .or_insert_with(|| Payload {
                inc,
                ..Payload::default()
            });
        p.tx.set(tx_bytes);
        p.rx.set(rx_bytes);
    }

    /// A socket's wire counters (cumulative).
    pub(super) fn set_wire(
        &mut self,
        cookie: Cookie,
        [tx_bytes, rx_bytes, tx_packets, rx_packets]: [u64; 4],
    ) {
        let w = &mut self.socket(cookie).wire;
        w.tx_bytes.set(tx_bytes);
        w.rx_bytes.set(rx_bytes);
        w.tx_packets.set(tx_packets);
        w.rx_packets.set(rx_packets);
    }

    fn set_endpoints(
        &mut self,
        cookie: Cookie,
        proto: Proto,
        local: std::net::SocketAddr,
        remote: Option<std::net::SocketAddr>,
    ) {
        let now_ms = self.now_ms;
        let s = self
            .sockets
            .entry(cookie)
            .or_insert_with(|| Socket::born(now_ms));
        let before = ends(s);
        s.proto = Some(proto);
        s.local = Some(local);
        s.remote = remote;
        let after = (proto, local, remote);
        if before != Some(after) {
            if let Some(old) = before {
                self.index.remove(cookie, old);
            }
            self.index.insert(cookie, after);
            if before.is_none_or(|b| b.2.is_some() != remote.is_some()) {
                self.notice_endpoints(cookie, proto, remote.is_some());
            }
        }
    }
}
