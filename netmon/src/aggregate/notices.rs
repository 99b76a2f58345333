//! Socket events, as host events: a process starts or stops listening on a port, and a
//! process's first connection to a watched or intranet network. The sockets are the
//! aggregator's; the events wait in `Notices::out` until the caller takes them
//! ([`Aggregator::take_notices`]) and stamps them with the host and the time.
//!
//! Contact events are deduplicated per (process, network): the first in a window is reported,
//! repeats within it are counted and reported with the pair's next event.
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::Aggregator;
use super::state::Socket;
use crate::bounded::BoundedMap;
use crate::event::{Cookie, Pid, Proto, TcpState};
use crate::events::model::{Contact, Listener, What};
use crate::history::classify;

/// A (process, network) pair reports at most one contact per this many ms.
pub const CONTACT_WINDOW_MS: u64 = 600_000;
/// Pairs and remotes remembered; the oldest are forgotten first (then reported again).
const REMEMBERED: usize = 65_536;
/// Intervals a new listener may wait for its owner and address before it is given up.
const PATIENCE: u64 = 5;
const INTRANET: u16 = u16::MAX;
const LINK_LOCAL: u16 = u16::MAX - 1;
/// Events not taken after this many are dropped (and counted).
const MAX_OUT: usize = 16_384;

#[derive(Debug)]
pub(super) struct Notices {
    pub(super) enabled: bool,
    /// Ports the kernel hands out for outgoing connections: a UDP socket bound in this range
    /// is a client's, not a service.
    pub(super) ephemeral: (u16, u16),
    /// Also report the first contact with any remote never seen before.
    new_remotes: bool,
    /// Sockets that began listening (TCP) or were bound without a peer (UDP), with the
    /// interval they were seen in, until their owner and address are known.
    pending_listen: Vec<(Cookie, u64)>,
    listening: HashSet<Cookie>,
    /// Connections with a peer not looked at for contact yet.
    pending_contact: Vec<Cookie>,
    /// Remotes a UDP socket without a connected peer sent its first datagram to.
    pending_peer_contact: HashMap<Cookie, Vec<std::net::SocketAddr>>,
    /// (pid, incarnation, network id): a watched network's index, or `INTRANET`/`LINK_LOCAL`.
    contacts: BoundedMap<(Pid, u32, u16), Pair>,
    remotes: BoundedMap<IpAddr, ()>,
    out: Vec<What>,
    pub(super) dropped: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    reported_ms: u64,
    suppressed: u64,
}

impl Default for Notices {
    fn default() -> Self {
        Notices {
            enabled: false,
            ephemeral: (32_768, 60_999),
            new_remotes: false,
            pending_listen: Vec::new(),
            listening: HashSet::new(),
            pending_contact: Vec::new(),
            pending_peer_contact: HashMap::new(),
            contacts: BoundedMap::new(0),
            remotes: BoundedMap::new(0),
            out: Vec::new(),
            dropped: 0,
        }
    }
}

impl Aggregator {
    /// Report listen and contact events ([`Aggregator::take_notices`]). `ephemeral` is the
    /// kernel's local port range (ip_local_port_range).
    pub fn with_notices(mut self, ephemeral: (u16, u16), new_remotes: bool) -> Self {
        self.notices = Notices {
            enabled: true,
            ephemeral,
            new_remotes,
            contacts: BoundedMap::new(REMEMBERED),
            remotes: BoundedMap::new(if new_remotes { REMEMBERED } else { 0 }),
            ..Notices::default()
        };
        self
    }

    /// The events since the last call, oldest first.
    pub fn take_notices(&mut self) -> Vec<What> {
        std::mem::take(&mut self.notices.out)
    }

    /// Events dropped because nobody took them.
    pub fn notices_dropped(&self) -> u64 {
        self.notices.dropped
    }

    /// A TCP socket went to LISTEN. Sockets already listening when netmon started are not
    /// news: only states that arrive after the first interval count.
    pub(super) fn notice_state(&mut self, cookie: Cookie, state: TcpState) {
        if self.notices.enabled && state == TcpState::Listen && self.intervals > 0 {
            self.notices.pending_listen.push((cookie, self.intervals));
        }
    }

    /// A socket's ends became known: a peer makes it a contact candidate, a UDP socket without
    /// one may be a service.
    pub(super) fn notice_endpoints(&mut self, cookie: Cookie, proto: Proto, has_peer: bool) {
        if !self.notices.enabled {
            return;
        }
        if has_peer {
            self.notices.pending_contact.push(cookie);
        } else if proto == Proto::Udp && self.intervals > 0 {
            self.notices.pending_listen.push((cookie, self.intervals));
        }
    }

    /// A peerless UDP socket sent to `remote` for the first time: a contact candidate unless
    /// the socket is a service (answering its clients is not reaching out).
    pub(super) fn notice_peer(&mut self, cookie: Cookie, remote: std::net::SocketAddr) {
        let pending = &mut self.notices.pending_peer_contact;
        if self.notices.enabled && (pending.len() < MAX_OUT || pending.contains_key(&cookie)) {
            pending.entry(cookie).or_default().push(remote);
        }
    }

    /// Each interval: new listeners whose owner and address are known, and new connections.
    pub(super) fn notice_interval(&mut self) {
        if !self.notices.enabled {
            return;
        }
        let pending = std::mem::take(&mut self.notices.pending_listen);
        for (cookie, since) in pending {
            let Some(s) = self.sockets.get(&cookie) else {
                continue;
            };
            match self.listener(s) {
                Some(l) if self.notices.listening.insert(cookie) => {
                    self.push_notice(What::ListenStarted(l));
                }
                Some(_) => {}
                None if s.closed_at.is_none() && self.intervals <= since + PATIENCE => {
                    self.notices.pending_listen.push((cookie, since));
                }
                None => {}
            }
        }
        for (cookie, remotes) in std::mem::take(&mut self.notices.pending_peer_contact) {
            for remote in remotes {
                if let Some(c) = self
                    .sockets
                    .get(&cookie)
                    .and_then(|s| self.peer_candidate(s, remote))
                {
                    for w in self.contact_of(c) {
                        self.push_notice(w);
                    }
                }
            }
        }
        let pending = std::mem::take(&mut self.notices.pending_contact);
        for cookie in pending {
            let Some(s) = self.sockets.get(&cookie) else {
                continue;
            };
            if s.owner.is_none() && s.closed_at.is_none() {
                self.notices.pending_contact.push(cookie);
                continue;
            }
            if !s.contact_checked {
                let c = Candidate::of(s);
                if let Some(s) = self.sockets.get_mut(&cookie) {
                    s.contact_checked = true;
                }
                for w in self.contact_of(c) {
                    self.push_notice(w);
                }
            }
        }
    }

    /// A socket folds away: a listener stops; a connection not looked at yet is now.
    pub(super) fn notice_folded(&mut self, cookie: Cookie, s: &Socket) {
        if !self.notices.enabled {
            return;
        }
        if self.notices.listening.remove(&cookie)
            && let Some(l) = self.listener(s)
        {
            self.push_notice(What::ListenStopped(l));
        }
        if !s.contact_checked && s.remote.is_some() {
            for w in self.contact_of(Candidate::of(s)) {
                self.push_notice(w);
            }
        }
        // Remotes it first sent to since the last interval: looked at now, while it is known.
        let remotes = self
            .notices
            .pending_peer_contact
            .remove(&cookie)
            .unwrap_or_default();
        for remote in remotes {
            if let Some(c) = self.peer_candidate(s, remote) {
                for w in self.contact_of(c) {
                    self.push_notice(w);
                }
            }
        }
    }

    /// A remote a peerless UDP socket sent to, as a contact candidate; None when the socket is
    /// a service (it answers its clients: not reaching out).
    fn peer_candidate(&self, s: &Socket, remote: std::net::SocketAddr) -> Option<Candidate> {
        (s.remote.is_none() && self.listener(s).is_none()).then(|| Candidate {
            remote: Some(remote),
            ..Candidate::of(s)
        })
    }

    fn push_notice(&mut self, w: What) {
        if self.notices.out.len() >= MAX_OUT {
            self.notices.dropped += 1;
        } else {
            self.notices.out.push(w);
        }
    }

    /// The socket as a listener, once its owner and bound address are known (a UDP socket on
    /// an ephemeral port is a client's and never one).
    fn listener(&self, s: &Socket) -> Option<Listener> {
        let (pid, _) = s.owner?;
        let local = s.local?;
        let proto = match s.proto? {
            Proto::Tcp if s.remote.is_none() => "tcp",
            Proto::Udp if s.remote.is_none() => {
                let (lo, hi) = self.notices.ephemeral;
                if local.port() == 0 || (lo..=hi).contains(&local.port()) {
                    return None;
                }
                "udp"
            }
            _ => return None,
        };
        if !self.shown_for_notices(pid, s.owner_inc) {
            return None;
        }
        let p = self.process_at(pid, s.owner_inc);
        Some(Listener {
            pid,
            comm: p.map(|p| p.comm.clone()).unwrap_or_default(),
            unit: unit_of(p.map(|p| p.cgroup.as_str())),
            proto: proto.into(),
            address: local.to_string(),
            port: local.port(),
        })
    }

    /// Contact events for a connection this host opened: its watched or intranet network
    /// (first per process and window), and with --new-remotes a remote never seen before.
    fn contact_of(&mut self, s: Candidate) -> Vec<What> {
        let mut found = Vec::new();
        let outbound = match s.proto {
            Some(Proto::Tcp) => s.initiated,
            Some(Proto::Udp) => true,
            _ => false,
        };
        let (Some((pid, _)), Some(remote), true) = (s.owner, s.remote, outbound) else {
            return found;
        };
        if !self.shown_for_notices(pid, s.owner_inc) {
            return found;
        }
        let ip = remote.ip().to_canonical();
        let class = classify(ip, &self.networks);
        let network_id = match self.networks.iter().position(|n| n.name == class) {
            Some(i) => Some(i as u16),
            None if class == "intranet" => Some(INTRANET),
            None if class == "link-local" => Some(LINK_LOCAL),
            None => None,
        };
        let p = self.process_at(pid, s.owner_inc);
        let comm = p.map(|p| p.comm.clone()).unwrap_or_default();
        let unit = unit_of(p.map(|p| p.cgroup.as_str()));
        let remote_name = self.dns.peek(Some(pid), ip).map(str::to_string);
        let proto = if s.proto == Some(Proto::Tcp) {
            "tcp"
        } else {
            "udp"
        };
        let make = |network: String, suppressed: u64| {
            What::Contact(Contact {
                pid,
                comm: comm.clone(),
                unit: unit.clone(),
                network,
                proto: proto.into(),
                remote: remote.to_string(),
                remote_name: remote_name.clone(),
                suppressed,
            })
        };
        if let Some(id) = network_id {
            let key = (pid, s.owner_inc, id);
            let now = self.now_ms;
            let pair = self.notices.contacts.get(&key).copied();
            match pair {
                Some(p) if now.saturating_sub(p.reported_ms) < CONTACT_WINDOW_MS => {
                    self.notices.contacts.insert(
                        key,
                        Pair {
                            suppressed: p.suppressed + 1,
                            ..p
                        },
                    );
                }
                _ => {
                    found.push(make(class, pair.map_or(0, |p| p.suppressed)));
                    self.notices.contacts.insert(
                        key,
                        Pair {
                            reported_ms: now,
                            suppressed: 0,
                        },
                    );
                }
            }
        }
        if self.notices.new_remotes && !self.notices.remotes.contains(&ip) {
            self.notices.remotes.insert(ip, ());
            found.push(make("new-remote".into(), 0));
        }
        found
    }

    /// The process filters (--pid, --comm, --cgroup and exclusions) apply to events too.
    fn shown_for_notices(&self, pid: Pid, inc: u32) -> bool {
        self.shows(self.watched().as_ref(), pid, inc)
    }
}

/// What contact detection needs of a socket, copied so the aggregator can be updated while
/// looking at it.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    owner: Option<(Pid, crate::event::Origin)>,
    owner_inc: u32,
    proto: Option<Proto>,
    remote: Option<std::net::SocketAddr>,
    initiated: bool,
}

impl Candidate {
    fn of(s: &Socket) -> Candidate {
        Candidate {
            owner: s.owner,
            owner_inc: s.owner_inc,
            proto: s.proto,
            remote: s.remote,
            initiated: s.initiated,
        }
    }
}

fn unit_of(cgroup: Option<&str>) -> String {
    cgroup.map_or_else(String::new, |c| crate::identity::unit_and_container(c).0)
}
