//! Turns the kernel's ring buffers and maps into events: records as they arrive, counters every
//! poll (only those that changed), and a final poll on stop so no byte is left behind.
//!
//! A record or a poll goes through these parts, each testable without root:
//! - `decode`: ring records → events (pure);
//! - `state`: what is remembered between records and polls, and the order of a poll;
//! - `poll`: map values → events, only those that changed since last sent;
//! - `expiry`: when released sockets' and exited processes' entries are freed;
//! - `identity`: who a pid is (/proc, else the kernel's record), which sockets have an owner;
//! - `maps`: the BPF maps behind a trait, with the aya-backed implementation (`fake` in tests).
//!
//! This file holds what needs the kernel: the rings, registered with tokio, and the loop that
//! feeds their records and the poll ticker to `state`.
mod decode;
mod expiry;
#[cfg(test)]
mod fake;
mod identity;
mod maps;
mod poll;
mod state;
#[cfg(test)]
mod tests;

use std::time::Duration;

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use netmon_common::maps as map_names;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{mpsc, watch},
};

use self::{decode::Record, identity::Identity, maps::AyaMaps, state::State};
use super::KernelError;
use crate::{
    event::{Event, PacketRecord},
    source::procfs::ProcfsSource,
};

/// How long the reader lets ring records gather when they come in large batches.
const RING_BATCH: Duration = Duration::from_millis(10);
/// Records read from the ring in one pass at most.
const MAX_DRAIN: usize = 4096;
/// Records in one drain that make the ring count as busy.
const BUSY_BATCH: usize = 256;

pub struct Reader {
    state: State<AyaMaps>,
    ring: AsyncFd<RingBuf<MapData>>,
    /// Packet snapshots, when capturing.
    capture: Option<AsyncFd<RingBuf<MapData>>>,
    /// DNS replies, unless capturing.
    dns: Option<AsyncFd<RingBuf<MapData>>>,
    /// Added to bpf_ktime_get_ns() (CLOCK_MONOTONIC) to get wall-clock time.
    boot_offset_ns: i128,
    poll: Duration,
}

/// A ring buffer map taken out of the object and registered with the runtime.
fn async_ring(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<AsyncFd<RingBuf<MapData>>, KernelError> {
    let ring = ebpf.take_map(name).ok_or(KernelError::Map {
        map: name,
        reason: "missing".into(),
    })?;
    let ring = RingBuf::try_from(ring).map_err(|e| KernelError::Map {
        map: name,
        reason: e.to_string(),
    })?;
    // SAFETY: the ring buffer fd stays open as long as the AsyncFd owns the RingBuf.
    unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| KernelError::Read(std::io::Error::other(e.to_string())))
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC, to turn kernel timestamps into wall-clock time.
fn boot_offset_ns() -> i128 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
    };
    now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC)
}

impl Reader {
    pub fn new(mut ebpf: Ebpf, poll: Duration, capturing: bool) -> Result<Self, KernelError> {
        let ring = async_ring(&mut ebpf, map_names::EVENTS)?;
        let (capture, dns) = if capturing {
            (Some(async_ring(&mut ebpf, map_names::CAPTURE)?), None)
        } else {
            (None, Some(async_ring(&mut ebpf, map_names::DNS)?))
        };
        let identity = Identity::new(
            ProcfsSource::default(),
            super::cgroups::CgroupPaths::new(super::system::cgroup2_root()),
        );
        Ok(Reader {
            state: State::new(AyaMaps::new(ebpf), poll, capturing, identity),
            ring,
            capture,
            dns,
            boot_offset_ns: boot_offset_ns(),
            poll,
        })
    }

    pub async fn run(
        mut self,
        tx: mpsc::Sender<Vec<Event>>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), KernelError> {
        let mut ticker = tokio::time::interval(self.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut busy = false;
        loop {
            let mut out = Vec::new();
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard.map_err(KernelError::Read)?;
                    let records = drain(guard.get_inner_mut(), MAX_DRAIN);
                    // A drain that stopped at its bound left records behind: the ring stays
                    // ready and is read again at once. Otherwise it was emptied.
                    let backlog = records.len() == MAX_DRAIN;
                    if !backlog {
                        guard.clear_ready();
                    }
                    busy = !backlog && records.len() >= BUSY_BATCH;
                    for r in records {
                        self.state.record(r, &mut out);
                    }
                }
                guard = readable(&mut self.capture) => {
                    let mut guard = guard.map_err(KernelError::Read)?;
                    let packets = drain_packets(guard.get_inner_mut(), self.boot_offset_ns);
                    guard.clear_ready();
                    out.extend(packets.into_iter().map(Event::Packet));
                }
                guard = readable(&mut self.dns) => {
                    let mut guard = guard.map_err(KernelError::Read)?;
                    drain_dns(guard.get_inner_mut(), &mut out);
                    guard.clear_ready();
                }
                _ = ticker.tick() => self.state.poll(&mut out, false)?,
                _ = stop.changed() => {
                    let records = drain(self.ring.get_mut(), usize::MAX);
                    for r in records {
                        self.state.record(r, &mut out);
                    }
                    if let Some(c) = self.capture.as_mut() {
                        let packets = drain_packets(c.get_mut(), self.boot_offset_ns);
                        out.extend(packets.into_iter().map(Event::Packet));
                    }
                    if let Some(d) = self.dns.as_mut() {
                        drain_dns(d.get_mut(), &mut out);
                    }
                    self.state.poll(&mut out, true)?;
                    send_all(&tx, out).await;
                    return Ok(());
                }
            }
            if !send_all(&tx, out).await {
                return Ok(());
            }
            if busy {
                // Records come faster than they are read: let the next ones gather, so there
                // is one wake-up per batch and not per record (at tens of thousands of
                // connections a second the wake-ups cost more than the records; the ring holds
                // seconds' worth). A quiet ring is read at once: a short-lived process must
                // still be found in /proc.
                busy = false;
                tokio::time::sleep(RING_BATCH).await;
            }
        }
    }
}

/// Up to `max` records: what one pass turns into events and sends before reading more, so a
/// burst (100k sockets closing at once) never sits in memory as a whole.
fn drain(ring: &mut RingBuf<MapData>, max: usize) -> Vec<Record> {
    let mut out = Vec::new();
    while out.len() < max {
        let Some(item) = ring.next() else { break };
        out.extend(decode::record(&item));
    }
    out
}

/// Waits for an optional ring (capture, DNS) when there is one, forever otherwise.
async fn readable(
    ring: &mut Option<AsyncFd<RingBuf<MapData>>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, RingBuf<MapData>>> {
    match ring {
        Some(r) => r.readable_mut().await,
        None => std::future::pending().await,
    }
}

fn drain_packets(ring: &mut RingBuf<MapData>, boot_offset_ns: i128) -> Vec<PacketRecord> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        out.extend(decode::packet(&item, boot_offset_ns));
    }
    out
}

/// The DNS replies the kernel copied; each successful one becomes an [`Event::DnsAnswer`].
fn drain_dns(ring: &mut RingBuf<MapData>, out: &mut Vec<Event>) {
    while let Some(item) = ring.next() {
        out.extend(decode::dns(&item));
    }
}

/// Sends a pass's events as one message: at tens of thousands of connections a second a
/// channel operation (and wake-up) per event was a real cost.
async fn send_all(tx: &mpsc::Sender<Vec<Event>>, events: Vec<Event>) -> bool {
    events.is_empty() || tx.send(events).await.is_ok()
}
