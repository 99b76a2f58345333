//! What the reader remembers between records and polls, and the order of a poll. Generic over
//! the maps so that the whole of it runs against the in-memory fake in tests.
use std::time::{Duration, Instant};

use netmon_common::{KernelEvent, SockFinal, counter, event_kind, final_flags, zero_window};

use super::{
    super::KernelError,
    decode::{self, Record},
    expiry::{self, Expiry},
    identity::Identity,
    maps::KernelMaps,
    poll::Sent,
};
use crate::event::Event;

/// TCP_STATS is read every this many polls.
const TCP_POLLS: u64 = 4;

pub(super) struct State<M> {
    maps: M,
    /// Polls so far: the clock of expiry.
    polls: u64,
    started: Instant,
    /// Whether the capture programs run (their counters are then polled too).
    capturing: bool,
    sent: Sent,
    expiry: Expiry,
    identity: Identity,
    /// Ring-buffer losses seen so far: when they grow, owners are recovered from the map.
    ring_lost: u64,
}

impl<M: KernelMaps> State<M> {
    /// For maps polled every `poll`.
    pub(super) fn new(maps: M, poll: Duration, capturing: bool, identity: Identity) -> Self {
        State {
            maps,
            polls: 0,
            started: Instant::now(),
            capturing,
            sent: Sent::default(),
            expiry: Expiry::new(poll),
            identity,
            ring_lost: 0,
        }
    }

    /// One record of the events ring.
    pub(super) fn record(&mut self, r: Record, out: &mut Vec<Event>) {
        match r {
            Record::Event(e) => self.kernel_event(&e, out),
            Record::Final(f) => self.socket_final(&f, out),
        }
    }

    /// A socket's end: its last counters in one event. What was kept to send only changes is
    /// dropped, and the socket is remembered for a while so leftovers can be swept.
    fn socket_final(&mut self, f: &SockFinal, out: &mut Vec<Event>) {
        // A UDP socket without a peer: what it exchanged with each remote goes first, read
        // now, since only its end tells that its entries can go.
        if f.flags & final_flags::WIRE != 0 && f.wire.zero_window & zero_window::UDP_PEERS != 0 {
            self.sent.udp_peers(
                &mut self.maps,
                Some(f.cookie),
                self.expiry.recently_ended(),
                out,
            );
        }
        out.push(decode::socket_final(f));
        self.sent.forget_socket(f.cookie, &f.payload_tgid);
        self.identity.forget_socket(f.cookie);
        self.expiry.ended(f.cookie);
    }

    fn kernel_event(&mut self, r: &KernelEvent, out: &mut Vec<Event>) {
        match r.kind {
            event_kind::SOCK_OWNER => {
                self.identity.set_owned(r.cookie);
                self.identity.learn_pid(r.tgid, r, out);
            }
            event_kind::SOCK_FLOW => self.identity.learn_pid(r.tgid, r, out),
            event_kind::SOCK_RELEASE => self.expiry.released(r.cookie, self.polls),
            event_kind::PROC_EXIT => {
                self.identity.exited(r.tgid);
                self.expiry.exited(r.tgid, self.polls);
            }
            _ => {}
        }
        decode::kernel_event(r, self.identity.owns(r.cookie), out);
    }

    /// Reads the maps: the values that changed, then what expired is freed (after its last
    /// values were sent above), then a tick. `full`: the last poll before stopping, which also
    /// reads what is otherwise read only now and then.
    pub(super) fn poll(&mut self, out: &mut Vec<Event>, full: bool) -> Result<(), KernelError> {
        self.polls += 1;
        self.sent
            .payload(&mut self.maps, self.expiry.recently_ended(), out)?;
        self.sent.wire(&self.maps, out)?;
        self.sent
            .udp_peers(&mut self.maps, None, self.expiry.recently_ended(), out);
        // TCP behaviour (retransmits, RTT) changes slowly and its entries are the largest: read
        // once per TCP_POLLS polls (about once per interval), and at the end.
        if full || self.polls.is_multiple_of(TCP_POLLS) {
            self.sent.tcp(&self.maps, out);
        }
        if self.sent.late(&self.maps, out) {
            let due = self.expiry.take_due_processes(self.polls);
            if !due.is_empty() {
                // LATE is optional: its bookkeeping goes all the same.
                let _ = self.maps.delete_late(&due);
                for t in due {
                    self.sent.forget_process(t);
                }
            }
        }
        self.expiry.poll_released(&self.maps, self.polls, out);
        let counters = self.maps.counters()?;
        let ring_lost = counters
            .get(counter::RINGBUF_FULL as usize)
            .copied()
            .unwrap_or(0);
        if ring_lost > self.ring_lost {
            self.ring_lost = ring_lost;
            self.identity.recover_owners(&self.maps, out);
        }
        self.sent.counters(counters, out);
        if self.capturing {
            self.sent.capture(&self.maps, out);
        }
        self.free_released()?;
        out.push(Event::Tick {
            at_ms: self.started.elapsed().as_millis() as u64,
        });
        Ok(())
    }

    /// Deletes released sockets' entries once their grace is over, so the maps (and the
    /// tables of what was sent) hold live sockets only.
    fn free_released(&mut self) -> Result<(), KernelError> {
        let due = self.expiry.take_due_sockets(self.polls);
        if due.is_empty() {
            return Ok(());
        }
        let payload = self.sent.payload_keys(&due);
        expiry::free_sockets(&mut self.maps, &due, &payload)?;
        // Optional, like the map.
        let _ = self
            .maps
            .delete_udp_peers(&self.sent.take_udp_peer_keys(&due));
        for k in &payload {
            self.sent.forget_socket(k.cookie, &[k.tgid]);
        }
        for &c in &due {
            self.sent.forget_socket(c, &[]);
            self.identity.forget_socket(c);
        }
        Ok(())
    }
}

#[cfg(test)]
impl<M> State<M> {
    pub(super) fn maps(&self) -> &M {
        &self.maps
    }

    pub(super) fn maps_mut(&mut self) -> &mut M {
        &mut self.maps
    }

    /// Per-socket and per-process values kept: none once everything ended and expired.
    pub(super) fn kept(&self) -> usize {
        self.sent.kept() + self.identity.kept_sockets()
    }
}
