//! When map entries are freed. The kernel frees a socket's entries itself when it sends the
//! socket's final record; everything else is freed here, after a grace period counted in polls:
//! - sockets released (SOCK_RELEASE, or found in RELEASED when that record was lost) whose
//!   final record never came: their PAYLOAD, WIRE, TCP_STATS, RELEASED and OWNERS entries;
//! - LATE entries of processes that exited;
//! - PAYLOAD entries of sockets that already ended (`poll::Sent::payload` sweeps those, with
//!   the set of recently ended sockets kept here).
//!
//! The grace exists because the close handshake's last packets (FIN/ACK, sometimes seconds
//! later on a loaded or emulated machine) still land on a released socket's entries, and a
//! process's ended sockets still add to its LATE entry after it exited. Each poll sends values
//! before it frees, so the last values are never lost.
use crate::bounded::BoundedMap;
use std::{
    collections::{HashMap as StdHashMap, HashSet, hash_map::Entry},
    time::Duration,
};

use super::{
    super::KernelError,
    maps::{CookieMap, KernelMaps},
};
use crate::{event::Event, hashing::FastMap};

/// How long a released socket's map entries survive.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// Ended sockets remembered for sweeping their PAYLOAD leftovers: at most this many, the
/// oldest forgotten first (a leftover shows up within a poll or two of the end).
const ENDED_REMEMBERED: usize = 32_768;

pub(super) struct Expiry {
    /// Polls in [`RELEASE_GRACE`], at least 3.
    grace_polls: u64,
    /// Cookie → poll number after which its entries are deleted.
    released: FastMap<u64, u64>,
    /// Exited process → poll number after which its LATE entry is deleted.
    late_exited: StdHashMap<u32, u64>,
    /// Sockets whose final record arrived lately.
    ended: BoundedMap<u64, ()>,
}

impl Expiry {
    /// For maps polled every `poll`.
    pub(super) fn new(poll: Duration) -> Self {
        Expiry {
            grace_polls: (RELEASE_GRACE.as_millis() / poll.as_millis().max(1)).max(3) as u64,
            released: FastMap::default(),
            late_exited: StdHashMap::new(),
            ended: BoundedMap::new(ENDED_REMEMBERED),
        }
    }

    /// A socket was released at poll `now`: its entries go after the grace, unless its final
    /// record comes first. A second release of it does not push its end further out.
    pub(super) fn released(&mut self, cookie: u64, now: u64) {
        self.released
            .entry(cookie)
            .or_insert(now + self.grace_polls);
    }

    /// A process exited at poll `now` (a pid reused and exiting again restarts its grace).
    pub(super) fn exited(&mut self, tgid: u32, now: u64) {
        self.late_exited.insert(tgid, now + self.grace_polls);
    }

    /// A socket's final record arrived: the kernel freed its entries, so there is nothing to
    /// expire; leftovers in PAYLOAD are swept when seen.
    pub(super) fn ended(&mut self, cookie: u64) {
        self.released.remove(&cookie);
        self.ended.insert(cookie, ());
    }

    /// Sockets whose final record arrived lately.
    pub(super) fn recently_ended(&self) -> &BoundedMap<u64, ()> {
        &self.ended
    }

    /// Releases recorded in the RELEASED map whose ring record was lost: the socket still
    /// closes, and its entries are still freed after the grace period. RELEASED is optional.
    pub(super) fn poll_released(&mut self, maps: &impl KernelMaps, now: u64, out: &mut Vec<Event>) {
        let Ok(all) = maps.released() else {
            return;
        };
        let due = now + self.grace_polls;
        for cookie in all {
            if let Entry::Vacant(e) = self.released.entry(cookie) {
                e.insert(due);
                out.push(Event::SocketClosed { cookie });
            }
        }
    }

    /// Released sockets whose grace ended by poll `now`, no longer tracked here: the caller
    /// frees them with [`free_sockets`].
    pub(super) fn take_due_sockets(&mut self, now: u64) -> HashSet<u64> {
        let due: HashSet<u64> = self
            .released
            .iter()
            .filter(|&(_, &at)| now >= at)
            .map(|(&c, _)| c)
            .collect();
        for c in &due {
            self.released.remove(c);
        }
        due
    }

    /// Exited processes whose grace ended by poll `now`, no longer tracked here: the caller
    /// frees their LATE entries.
    pub(super) fn take_due_processes(&mut self, now: u64) -> Vec<u32> {
        let due: Vec<u32> = self
            .late_exited
            .iter()
            .filter(|&(_, &at)| now >= at)
            .map(|(&t, _)| t)
            .collect();
        for t in &due {
            self.late_exited.remove(t);
        }
        due
    }
}

/// Deletes expired sockets' entries: `payload` are their PAYLOAD keys. PAYLOAD, WIRE and
/// OWNERS must be there; TCP_STATS and RELEASED are optional.
pub(super) fn free_sockets(
    maps: &mut impl KernelMaps,
    cookies: &HashSet<u64>,
    payload: &[netmon_common::PidSockKey],
) -> Result<(), KernelError> {
    let cookies: Vec<u64> = cookies.iter().copied().collect();
    maps.delete_payload(payload)?;
    maps.delete_cookies(CookieMap::Wire, &cookies)?;
    let _ = maps.delete_cookies(CookieMap::TcpStats, &cookies);
    let _ = maps.delete_cookies(CookieMap::Released, &cookies);
    maps.delete_cookies(CookieMap::Owners, &cookies)
}
