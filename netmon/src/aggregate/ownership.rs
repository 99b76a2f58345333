//! Who a socket belongs to, and which process a pid means. Owners come from several witnesses
//! of different strength (the kernel saw the socket created, /proc saw who holds it now, a
//! listener implies who accepted it), pids are reused by new processes (incarnations), and
//! packets keep arriving after a socket was folded away (tombstones). These rules decide every
//! row a byte lands in, so they live in one place.

use log::debug;

use super::Aggregator;
use super::state::{Process, Socket};
use crate::{
    bounded::BoundedMap,
    event::{Cookie, FinalOwner, Origin, Pid, Proto},
};

/// Owners of sockets folded away, so packets that arrive after (a late FIN/ACK) still find their
/// process instead of counting as unattributed. Bounded: the oldest are forgotten first.
#[derive(Debug)]
pub(super) struct Tombstones(pub(super) BoundedMap<Cookie, (Pid, Origin)>);

/// Late counts arrive within a poll or two of a socket's end (ended sockets' packets are
/// counted per process in the kernel), so this covers more than a second at 20k connections/s.
const MAX_TOMBSTONES: usize = 32_768;

impl Default for Tombstones {
    fn default() -> Self {
        Tombstones(BoundedMap::new(MAX_TOMBSTONES))
    }
}

/// Whether a process seen with a socket (by `origin`) takes it over from its current owner.
/// The kernel saw the socket being created; a later /proc scan only saw who holds it now,
/// which after fork may be someone else. An owner inferred from the listener gives way to any
/// process seen with the socket.
fn takes_over(current: Option<(Pid, Origin)>, origin: Origin) -> bool {
    match current {
        None | Some((_, Origin::Listener)) => true,
        Some((_, Origin::Procfs)) => origin != Origin::Procfs,
        Some(_) => false,
    }
}

impl Aggregator {
    /// A process was seen with socket `cookie`: it may become the owner.
    pub(super) fn claim_socket(
        &mut self,
        cookie: Cookie,
        pid: Pid,
        comm: String,
        origin: Origin,
        netns: u64,
    ) {
        let now_ms = self.now_ms;
        let s = self
            .sockets
            .entry(cookie)
            .or_insert_with(|| Socket::born(now_ms));
        if origin != Origin::Procfs && netns != 0 {
            s.netns = Some(netns);
        }
        let replace = takes_over(s.owner, origin);
        let p = self.processes.entry(pid).or_default();
        if replace {
            s.owner = Some((pid, origin));
            s.owner_inc = p.inc;
        }
        if p.comm.is_empty() {
            p.comm = comm;
        }
    }

    /// The owner the kernel reported with a socket's final counters: taken unless a stronger
    /// witness already named one.
    pub(super) fn adopt_final_owner(&mut self, cookie: Cookie, o: FinalOwner) {
        // Not a SocketOwner event: the process may have exited by now, and that is no
        // reason to start a new incarnation of its pid.
        let inc = self.processes.entry(o.pid).or_default().inc;
        let s = self.socket(cookie);
        if matches!(s.owner, None | Some((_, Origin::Listener))) {
            s.owner = Some((o.pid, o.origin));
            s.owner_inc = inc;
        }
        if o.netns != 0 {
            s.netns.get_or_insert(o.netns);
        }
        let p = self.processes.entry(o.pid).or_default();
        if p.comm.is_empty() {
            p.comm = o.comm;
        }
        if o.ppid != 0 && o.ppid != o.pid {
            p.ppid.get_or_insert(o.ppid);
        }
        self.uid_seen(o.pid, o.uid, false);
    }

    /// An accepted connection nobody claimed yet belongs to whoever owns its listener.
    pub(super) fn infer_owner_from_listener(
        &mut self,
        cookie: Cookie,
        local: std::net::SocketAddr,
        netns: u64,
    ) {
        let listener = self.listener_owner(local, netns);
        let s = self.socket(cookie);
        if netns != 0 {
            s.netns = Some(netns);
        }
        if s.owner.is_none()
            && let Some((pid, inc)) = listener
        {
            s.owner = Some((pid, Origin::Listener));
            s.owner_inc = inc;
        }
    }

    /// Owner (pid, incarnation) of the TCP listener an accepted connection to `local` came
    /// through: one on the same port and address (or the wildcard) in the same namespace. A
    /// listener whose namespace only /proc saw counts when no other process listens there.
    fn listener_owner(&self, local: std::net::SocketAddr, netns: u64) -> Option<(Pid, u32)> {
        let mut same_ns = None;
        let mut unknown_ns: Option<(Pid, u32)> = None;
        let mut ambiguous = false;
        for c in self.index.bound(Proto::Tcp, local.port()) {
            let Some(s) = self.sockets.get(&c) else {
                continue;
            };
            let (Some(l), None, None) = (s.local, s.remote, s.closed_at) else {
                continue;
            };
            if !(l.ip().is_unspecified() || l.ip().to_canonical() == local.ip().to_canonical()) {
                continue;
            }
            let Some((pid, origin)) = s.owner else {
                continue;
            };
            if origin == Origin::Listener {
                continue;
            }
            match s.netns {
                Some(n) if netns != 0 && n == netns => same_ns = Some((pid, s.owner_inc)),
                Some(_) if netns != 0 => {}
                _ => {
                    ambiguous |= unknown_ns.is_some_and(|(p, _)| p != pid);
                    unknown_ns = Some((pid, s.owner_inc));
                }
            }
        }
        same_ns.or(if ambiguous { None } else { unknown_ns })
    }

    /// `pid` now names another process: the old one keeps its row (and bytes) as a past
    /// incarnation, the new one starts from nothing.
    pub(super) fn new_incarnation(&mut self, pid: Pid) {
        let Some(old) = self.processes.remove(&pid) else {
            return;
        };
        debug!("pid {pid} reused: incarnation {} begins", old.inc + 1);
        let inc = old.inc + 1;
        self.past.insert((pid, old.inc), old);
        self.processes.insert(
            pid,
            Process {
                inc,
                ..Process::default()
            },
        );
        // Children recorded so far were the old process's.
        self.children.remove(&pid);
    }

    /// The process `pid` was in incarnation `inc`.
    pub(super) fn process_at(&self, pid: Pid, inc: u32) -> Option<&Process> {
        match self.processes.get(&pid) {
            Some(p) if p.inc == inc => Some(p),
            _ => self.past.get(&(pid, inc)),
        }
    }

    pub(super) fn process_at_mut(&mut self, pid: Pid, inc: u32) -> &mut Process {
        let fresh = || Process {
            inc,
            ..Process::default()
        };
        match self.processes.get(&pid) {
            Some(p) if p.inc != inc => self.past.entry((pid, inc)).or_insert_with(fresh),
            _ => self.processes.entry(pid).or_insert_with(fresh),
        }
    }

    /// The socket's entry, created on first sight; a socket folded away earlier gets its owner
    /// back from the tombstones.
    pub(super) fn socket(&mut self, cookie: Cookie) -> &mut Socket {
        let tomb = &self.tombstones;
        let (now, now_ms) = (self.intervals, self.now_ms);
        self.sockets.entry(cookie).or_insert_with(|| {
            let owner = tomb.0.get(&cookie).copied();
            let mut s = Socket {
                owner,
                revived: owner.is_some(),
                ..Socket::born(now_ms)
            };
            // A late count for a socket already folded away: fold it again soon.
            if owner.is_some() {
                s.close(now, now_ms);
            }
            s
        })
    }
}
