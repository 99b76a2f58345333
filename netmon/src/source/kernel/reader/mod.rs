//! Turns the kernel's ring buffer and maps into events: records as they arrive, counters every
//! poll (only those that changed), and a final poll on stop so no byte is left behind.
use std::{
    collections::{HashMap as StdHashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
};
use log::debug;
use netmon_common::{
    CaptureRecord, DnsRecord, IfaceStats, KernelEvent, LateStats, PayloadStats, PidSockKey,
    SockFinal, SockOwner, SockTuple, TcpStats, WireStats, capture_hook, counter, direction,
    event_kind, final_flags, maps,
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{mpsc, watch},
};

use super::{
    KernelError, batch,
    hashing::{FastMap, digest},
};
use crate::{
    event::{
        CaptureStats, Event, FinalOwner, LossSource, Origin, PacketRecord, Proto, TcpCounts,
        TcpState, UnattributedReason,
    },
    source::procfs::ProcfsSource,
};

const SOCK_RAW: u64 = 3;

/// How long a released socket's map entries survive: the close handshake's last packets
/// (FIN/ACK, sometimes seconds later on a loaded or emulated machine) still land on them.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// How long the reader lets ring records gather when they come in large batches.
const RING_BATCH: Duration = Duration::from_millis(10);
/// TCP_STATS is read every this many polls.
const TCP_POLLS: u64 = 4;
/// Records in one drain that make the ring count as busy.
const BUSY_BATCH: usize = 256;

pub struct Reader {
    ebpf: Ebpf,
    ring: AsyncFd<RingBuf<aya::maps::MapData>>,
    /// Packet snapshots, when capturing.
    capture: Option<AsyncFd<RingBuf<aya::maps::MapData>>>,
    /// DNS replies, unless capturing.
    dns: Option<AsyncFd<RingBuf<aya::maps::MapData>>>,
    /// Added to bpf_ktime_get_ns() (CLOCK_MONOTONIC) to get wall-clock time.
    boot_offset_ns: i128,
    sent_capture: CaptureStats,
    poll: Duration,
    started: Instant,
    procfs: ProcfsSource,
    known_pids: HashSet<u32>,
    cgroups: super::cgroups::CgroupPaths,
    /// Cookies a process owns: a raw socket among them is a user's, not the kernel's.
    owned: HashSet<u64>,
    /// Digests of the values last sent, so only changes are sent (8 bytes a socket, not 32).
    sent_payload: FastMap<(u64, u32), u64>,
    sent_wire: FastMap<u64, u64>,
    /// A hash of each socket's last TCP stats sent (the stats are 248 bytes; thousands of
    /// sockets would otherwise be kept twice).
    sent_tcp: FastMap<u64, u64>,
    sent_counters: Vec<u64>,
    /// Cookie → poll number after which its entries are deleted.
    released: FastMap<u64, u64>,
    /// Sockets whose final record arrived lately: a PAYLOAD entry of theirs that is still
    /// there (a third process moved bytes through a shared socket) is read once and freed.
    ended: super::recent::Recent,
    /// LATE counters last sent per process, and processes that exited: their entries are freed
    /// once the release grace has passed.
    sent_late: StdHashMap<u32, LateStats>,
    late_exited: StdHashMap<u32, u64>,
    /// Ring-buffer losses seen so far: when they grow, owners are recovered from the map.
    ring_lost: u64,
    polls: u64,
    grace_polls: u64,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |e| KernelError::Map {
        map,
        reason: e.to_string(),
    }
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
    let ring = RingBuf::try_from(ring).map_err(map_err(name))?;
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
        let ring = async_ring(&mut ebpf, maps::EVENTS)?;
        let (capture, dns) = if capturing {
            (Some(async_ring(&mut ebpf, maps::CAPTURE)?), None)
        } else {
            (None, Some(async_ring(&mut ebpf, maps::DNS)?))
        };
        Ok(Reader {
            ebpf,
            ring,
            capture,
            dns,
            boot_offset_ns: boot_offset_ns(),
            sent_capture: CaptureStats::default(),
            poll,
            started: Instant::now(),
            procfs: ProcfsSource::default(),
            known_pids: HashSet::new(),
            cgroups: super::cgroups::CgroupPaths::new(super::system::cgroup2_root()),
            owned: HashSet::new(),
            sent_payload: FastMap::default(),
            sent_wire: FastMap::default(),
            sent_tcp: FastMap::default(),
            sent_counters: vec![u64::MAX; counter::COUNT as usize],
            released: FastMap::default(),
            ended: super::recent::Recent::new(65_536),
            sent_late: StdHashMap::new(),
            late_exited: StdHashMap::new(),
            ring_lost: 0,
            polls: 0,
            grace_polls: (RELEASE_GRACE.as_millis() / poll.as_millis().max(1)).max(3) as u64,
        })
    }

    pub async fn run(
        mut self,
        tx: mpsc::Sender<Event>,
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
                    let records = drain(guard.get_inner_mut());
                    guard.clear_ready();
                    busy = records.len() >= BUSY_BATCH;
                    for r in records {
                        self.record(r, &mut out);
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
                _ = ticker.tick() => self.poll_maps(&mut out, false)?,
                _ = stop.changed() => {
                    let records = drain(self.ring.get_mut());
                    for r in records {
                        self.record(r, &mut out);
                    }
                    if let Some(c) = self.capture.as_mut() {
                        let packets = drain_packets(c.get_mut(), self.boot_offset_ns);
                        out.extend(packets.into_iter().map(Event::Packet));
                    }
                    if let Some(d) = self.dns.as_mut() {
                        drain_dns(d.get_mut(), &mut out);
                    }
                    self.poll_maps(&mut out, true)?;
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

    fn record(&mut self, r: Record, out: &mut Vec<Event>) {
        match r {
            Record::Event(e) => self.translate(&e, out),
            Record::Final(f) => self.finish(&f, out),
        }
    }

    /// A socket's end: its last counters in one event; what was kept to send only changes is
    /// dropped, and the socket is remembered for a while so leftovers can be swept.
    fn finish(&mut self, f: &SockFinal, out: &mut Vec<Event>) {
        let cookie = f.cookie;
        let has = |flag: u32| f.flags & flag != 0;
        // No /proc lookup here: a process's sockets are released after its exit event, when
        // its pid may already name a zombie or someone else. Its identity came with its first
        // records; the kernel's account below fills in what is missing.
        let owner = has(final_flags::OWNER).then(|| {
            let o = &f.owner;
            FinalOwner {
                pid: o.tgid,
                uid: o.uid,
                comm: comm(&o.comm),
                netns: o.netns,
                origin: Origin::from_raw(o.origin),
                ppid: o.ppid,
            }
        });
        let mut payload = Vec::new();
        for (i, flag) in [final_flags::PAYLOAD0, final_flags::PAYLOAD1]
            .into_iter()
            .enumerate()
        {
            let tgid = f.payload_tgid[i];
            if has(flag) {
                payload.push((tgid, f.payload[i].tx_bytes, f.payload[i].rx_bytes));
            }
            self.sent_payload.remove(&(cookie, tgid));
        }
        let wire = has(final_flags::WIRE).then(|| {
            let w = &f.wire;
            [w.tx_bytes, w.rx_bytes, w.tx_packets, w.rx_packets]
        });
        let tcp = has(final_flags::TCP).then(|| tcp_counts(&f.tcp));
        self.owned.remove(&cookie);
        self.sent_wire.remove(&cookie);
        self.sent_tcp.remove(&cookie);
        self.released.remove(&cookie);
        self.ended.insert(cookie);
        out.push(Event::SocketFinal {
            cookie,
            owner,
            payload,
            wire,
            tcp,
        });
    }

    fn translate(&mut self, r: &KernelEvent, out: &mut Vec<Event>) {
        match r.kind {
            event_kind::SOCK_OWNER => {
                self.owned.insert(r.cookie);
                self.learn_pid(r.tgid, r, out);
                out.push(Event::SocketOwner {
                    cookie: r.cookie,
                    pid: r.tgid,
                    uid: r.uid,
                    comm: comm(&r.comm),
                    netns: r.arg1,
                    origin: Origin::from_raw(r.arg0 as u8),
                    ppid: r.ppid,
                });
            }
            event_kind::SOCK_FLOW => self.learn_pid(r.tgid, r, out),
            event_kind::SOCK_TUPLE => {
                if r.arg0 == SOCK_RAW && !self.owned.contains(&r.cookie) {
                    out.push(Event::KernelSocket { cookie: r.cookie });
                }
                if let Some((proto, local, remote)) = endpoints(&r.tuple) {
                    out.push(Event::SocketEndpoints {
                        cookie: r.cookie,
                        proto,
                        local,
                        remote,
                    });
                }
            }
            event_kind::SOCK_ACCEPTED => {
                if let Some((_, local, Some(remote))) = endpoints(&r.tuple) {
                    out.push(Event::SocketAccepted {
                        cookie: r.cookie,
                        local,
                        remote,
                        netns: r.arg1,
                    });
                }
            }
            event_kind::SOCK_STATE => {
                out.push(Event::SocketState {
                    cookie: r.cookie,
                    state: TcpState::from_kernel(r.arg1 as u32),
                });
            }
            event_kind::SOCK_RELEASE => {
                out.push(Event::SocketClosed { cookie: r.cookie });
                self.released
                    .entry(r.cookie)
                    .or_insert(self.polls + self.grace_polls);
            }
            event_kind::PROC_FORK => out.push(Event::ProcessForked {
                parent: r.tgid,
                child: r.arg0 as u32,
            }),
            event_kind::PROC_EXIT => {
                // The pid may be reused: its next owner must be looked up afresh.
                self.known_pids.remove(&r.tgid);
                self.late_exited
                    .insert(r.tgid, self.polls + self.grace_polls);
                out.push(Event::ProcessExited { pid: r.tgid });
            }
            other => debug!("unknown kernel event kind {other}"),
        }
    }

    /// Identity of a pid seen for the first time: from /proc while it still exists, else what
    /// the kernel recorded (short-lived processes are often gone by now).
    fn learn_pid(&mut self, pid: u32, r: &KernelEvent, out: &mut Vec<Event>) {
        if !self.known_pids.insert(pid) {
            return;
        }
        // Gone already: what the kernel recorded.
        let mut ev = self
            .procfs
            .process_event(pid)
            .unwrap_or_else(|| Event::Process {
                pid,
                ppid: r.ppid,
                comm: comm(&r.comm),
                cmdline: String::new(),
                uid: r.uid,
                exe: String::new(),
                cgroup: String::new(),
                netns: 0,
                start_time: 0,
            });
        // Gone, or exiting while /proc was read (the cgroup file goes first): the cgroup the
        // kernel named by its id.
        if let Event::Process { cgroup, .. } = &mut ev
            && cgroup.is_empty()
        {
            *cgroup = self.cgroups.path(r.cgroup_id).unwrap_or_default();
        }
        out.push(ev);
    }

    fn poll_maps(&mut self, out: &mut Vec<Event>, full: bool) -> Result<(), KernelError> {
        self.polls += 1;
        self.poll_payload(out)?;
        self.poll_wire(out)?;
        // TCP behaviour (retransmits, RTT) changes slowly and its entries are the largest: read
        // once per TCP_POLLS polls (about once per interval), and at the end.
        if full || self.polls.is_multiple_of(TCP_POLLS) {
            self.poll_tcp(out);
        }
        self.poll_late(out);
        self.poll_released(out);
        self.poll_counters(out)?;
        if self.capture.is_some() {
            self.poll_capture(out);
        }
        self.forget_released()?;
        out.push(Event::Tick {
            at_ms: self.started.elapsed().as_millis() as u64,
        });
        Ok(())
    }

    fn poll_payload(&mut self, out: &mut Vec<Event>) -> Result<(), KernelError> {
        let mut swept = Vec::new();
        let (ended, sent) = (&self.ended, &mut self.sent_payload);
        let map = get_map(&self.ebpf, maps::PAYLOAD)?;
        batch::for_each(map, |k: PidSockKey, v: PayloadStats| {
            if ended.contains(k.cookie) {
                // Final already: these counts are the last, and nobody else frees the entry.
                sent.remove(&(k.cookie, k.tgid));
                swept.push(k);
            } else {
                let d = digest(&v);
                if sent.insert((k.cookie, k.tgid), d) == Some(d) {
                    return;
                }
            }
            out.push(Event::Payload {
                cookie: k.cookie,
                pid: k.tgid,
                tx_bytes: v.tx_bytes,
                rx_bytes: v.rx_bytes,
                tx_calls: v.tx_calls,
                rx_calls: v.rx_calls,
            });
        })
        .map_err(map_err(maps::PAYLOAD))?;
        if !swept.is_empty() {
            let mut payload: HashMap<&mut MapData, PidSockKey, PayloadStats> =
                HashMap::try_from(self.map_mut(maps::PAYLOAD)?).map_err(map_err(maps::PAYLOAD))?;
            for k in swept {
                let _ = payload.remove(&k);
            }
        }
        Ok(())
    }

    /// Growth of each process's LATE counters since last sent; entries of processes gone for
    /// the release grace are freed (their last growth was sent just before).
    fn poll_late(&mut self, out: &mut Vec<Event>) {
        let Some(Ok(all)) = self
            .ebpf
            .map(maps::LATE)
            .map(batch::read_all::<u32, LateStats>)
        else {
            return;
        };
        for (tgid, v) in all {
            let last = self.sent_late.entry(tgid).or_default();
            if *last == v {
                continue;
            }
            let d = |now: u64, then: u64| now.saturating_sub(then);
            out.push(Event::Late {
                pid: tgid,
                wire: [
                    d(v.tx_bytes, last.tx_bytes),
                    d(v.rx_bytes, last.rx_bytes),
                    d(v.tx_packets, last.tx_packets),
                    d(v.rx_packets, last.rx_packets),
                ],
                resets_sent: d(v.resets_sent, last.resets_sent),
                resets_received: d(v.resets_received, last.resets_received),
            });
            *last = v;
        }
        let polls = self.polls;
        let due: Vec<u32> = self
            .late_exited
            .iter()
            .filter(|&(_, &at)| polls >= at)
            .map(|(&t, _)| t)
            .collect();
        if due.is_empty() {
            return;
        }
        if let Some(m) = self.ebpf.map_mut(maps::LATE)
            && let Ok(mut late) = HashMap::<&mut MapData, u32, LateStats>::try_from(m)
        {
            for t in &due {
                let _ = late.remove(t);
            }
        }
        for t in due {
            self.late_exited.remove(&t);
            self.sent_late.remove(&t);
        }
    }

    fn poll_wire(&mut self, out: &mut Vec<Event>) -> Result<(), KernelError> {
        let sent = &mut self.sent_wire;
        let map = get_map(&self.ebpf, maps::WIRE)?;
        batch::for_each(map, |cookie: u64, v: WireStats| {
            let d = digest(&v);
            if sent.insert(cookie, d) == Some(d) {
                return;
            }
            out.push(Event::Wire {
                cookie,
                tx_bytes: v.tx_bytes,
                rx_bytes: v.rx_bytes,
                tx_packets: v.tx_packets,
                rx_packets: v.rx_packets,
            });
        })
        .map_err(map_err(maps::WIRE))
    }

    /// Releases recorded in the RELEASED map whose ring event was lost: the socket still
    /// closes, and its entries are still freed after the grace period.
    fn poll_released(&mut self, out: &mut Vec<Event>) {
        let Some(Ok(all)) = self
            .ebpf
            .map(maps::RELEASED)
            .map(batch::read_all::<u64, u64>)
        else {
            return;
        };
        let due = self.polls + self.grace_polls;
        for (cookie, _) in all {
            if let std::collections::hash_map::Entry::Vacant(e) = self.released.entry(cookie) {
                e.insert(due);
                out.push(Event::SocketClosed { cookie });
            }
        }
    }

    /// After ring-buffer losses, owners whose SOCK_OWNER record was lost are read from the
    /// OWNERS map, so their sockets are not left unattributed.
    fn recover_owners(&mut self, out: &mut Vec<Event>) {
        let Some(Ok(all)) = self
            .ebpf
            .map(maps::OWNERS)
            .map(batch::read_all::<u64, SockOwner>)
        else {
            return;
        };
        let missing: Vec<(u64, SockOwner)> = all
            .into_iter()
            .filter(|(c, _)| !self.owned.contains(c))
            .collect();
        if !missing.is_empty() {
            debug!(
                "recovered {} socket owners lost with ring-buffer records",
                missing.len()
            );
        }
        for (cookie, o) in missing {
            self.owned.insert(cookie);
            let ev = KernelEvent {
                tgid: o.tgid,
                uid: o.uid,
                comm: o.comm,
                ppid: o.ppid,
                cgroup_id: o.cgroup_id,
                ..KernelEvent::default()
            };
            self.learn_pid(o.tgid, &ev, out);
            out.push(Event::SocketOwner {
                cookie,
                pid: o.tgid,
                uid: o.uid,
                comm: comm(&o.comm),
                netns: o.netns,
                origin: Origin::from_raw(o.origin),
                ppid: o.ppid,
            });
        }
    }

    /// TCP statistics are optional (the map exists, but its programs may not have attached):
    /// a missing map is not an error.
    fn poll_tcp(&mut self, out: &mut Vec<Event>) {
        let Some(map) = self.ebpf.map(maps::TCP_STATS) else {
            return;
        };
        let sent = &mut self.sent_tcp;
        let _ = batch::for_each(map, |cookie: u64, v: TcpStats| {
            let d = digest(&v);
            if sent.insert(cookie, d) == Some(d) {
                return;
            }
            out.push(Event::TcpStats {
                cookie,
                stats: tcp_counts(&v),
            });
        });
    }

    fn poll_capture(&mut self, out: &mut Vec<Event>) {
        let mut stats = CaptureStats::default();
        if let Some(m) = self.ebpf.map(maps::IFACE_STATS)
            && let Ok(map) = HashMap::<&MapData, u64, IfaceStats>::try_from(m)
        {
            for (key, v) in map.iter().flatten() {
                stats
                    .interfaces
                    .push(((key >> 1) as u32, key & 1 == 1, v.packets, v.bytes));
            }
            stats.interfaces.sort();
        }
        if let Some(m) = self.ebpf.map(maps::COUNTERS)
            && let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(m)
        {
            let c = |i: u32| arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0);
            stats.sampled_out = c(counter::CAPTURE_SAMPLED_OUT);
            stats.rate_limited = c(counter::CAPTURE_RATE_LIMITED);
            stats.ring_full = c(counter::CAPTURE_RING_FULL);
            stats.filtered = c(counter::CAPTURE_FILTERED);
            stats.self_skipped = c(counter::CAPTURE_SELF);
        }
        if stats != self.sent_capture {
            self.sent_capture = stats.clone();
            out.push(Event::CaptureStats(stats));
        }
    }

    fn poll_counters(&mut self, out: &mut Vec<Event>) -> Result<(), KernelError> {
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(get_map(&self.ebpf, maps::COUNTERS)?)
                .map_err(map_err(maps::COUNTERS))?;
        let mut now = vec![0u64; counter::COUNT as usize];
        for (i, slot) in now.iter_mut().enumerate() {
            if let Ok(per_cpu) = arr.get(&(i as u32), 0) {
                *slot = per_cpu.iter().sum();
            }
        }
        let ring_lost = now[counter::RINGBUF_FULL as usize];
        if ring_lost > self.ring_lost {
            self.ring_lost = ring_lost;
            self.recover_owners(out);
        }
        if now == self.sent_counters {
            return Ok(());
        }
        let c = |i: u32| now[i as usize];
        let unattributed = [
            (
                UnattributedReason::NoSocket,
                c(counter::NO_SOCKET_BYTES),
                c(counter::NO_SOCKET_PACKETS),
            ),
            (UnattributedReason::NoCookie, c(counter::NO_COOKIE_BYTES), 0),
            (
                UnattributedReason::PayloadMapFull,
                c(counter::PAYLOAD_FULL_BYTES),
                0,
            ),
            (
                UnattributedReason::WireMapFull,
                c(counter::WIRE_FULL_BYTES) + c(counter::LATE_FULL_BYTES),
                0,
            ),
        ];
        for (reason, bytes, packets) in unattributed {
            out.push(Event::Unattributed {
                reason,
                bytes,
                packets,
            });
        }
        for (source, idx) in [
            (LossSource::RingBuffer, counter::RINGBUF_FULL),
            (LossSource::OwnersMap, counter::OWNERS_FULL),
            (LossSource::PayloadMap, counter::PAYLOAD_FULL),
            (LossSource::WireMap, counter::WIRE_FULL),
            (LossSource::TcpStatsMap, counter::TCP_STATS_FULL),
            (LossSource::CaptureRing, counter::CAPTURE_RING_FULL),
            (LossSource::ReleasedMap, counter::RELEASED_FULL),
            (LossSource::DnsRing, counter::DNS_RING_FULL),
            (LossSource::LateMap, counter::LATE_FULL),
        ] {
            out.push(Event::Lost {
                source,
                count: c(idx),
            });
        }
        out.push(Event::ResetsWithoutSocket {
            count: c(counter::RST_NO_SOCKET),
        });
        self.sent_counters = now;
        Ok(())
    }

    /// Deletes released sockets' entries once their final counters have been sent, so the
    /// maps hold live sockets only.
    fn forget_released(&mut self) -> Result<(), KernelError> {
        let due: HashSet<u64> = self
            .released
            .iter()
            .filter(|&(_, &at)| self.polls >= at)
            .map(|(&c, _)| c)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let keys: Vec<(u64, u32)> = self
            .sent_payload
            .keys()
            .filter(|(c, _)| due.contains(c))
            .copied()
            .collect();
        {
            let mut payload: HashMap<&mut MapData, PidSockKey, PayloadStats> =
                HashMap::try_from(self.map_mut(maps::PAYLOAD)?).map_err(map_err(maps::PAYLOAD))?;
            for &(cookie, tgid) in &keys {
                let _ = payload.remove(&PidSockKey {
                    cookie,
                    tgid,
                    _pad: 0,
                });
            }
        }
        {
            let mut wire: HashMap<&mut MapData, u64, WireStats> =
                HashMap::try_from(self.map_mut(maps::WIRE)?).map_err(map_err(maps::WIRE))?;
            for c in &due {
                let _ = wire.remove(c);
            }
        }
        if let Some(m) = self.ebpf.map_mut(maps::TCP_STATS)
            && let Ok(mut tcp) = HashMap::<&mut MapData, u64, TcpStats>::try_from(m)
        {
            for c in &due {
                let _ = tcp.remove(c);
            }
        }
        if let Some(m) = self.ebpf.map_mut(maps::RELEASED)
            && let Ok(mut rel) = HashMap::<&mut MapData, u64, u64>::try_from(m)
        {
            for c in &due {
                let _ = rel.remove(c);
            }
        }
        {
            let mut owners: HashMap<&mut MapData, u64, SockOwner> =
                HashMap::try_from(self.map_mut(maps::OWNERS)?).map_err(map_err(maps::OWNERS))?;
            for c in &due {
                let _ = owners.remove(c);
            }
        }
        for k in keys {
            self.sent_payload.remove(&k);
        }
        for c in due {
            self.owned.remove(&c);
            self.sent_wire.remove(&c);
            self.sent_tcp.remove(&c);
            self.released.remove(&c);
        }
        Ok(())
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, KernelError> {
        self.ebpf.map_mut(name).ok_or(KernelError::Map {
            map: name,
            reason: "missing".into(),
        })
    }
}

fn tcp_counts(v: &TcpStats) -> TcpCounts {
    TcpCounts {
        retransmits: v.retransmits,
        resets_sent: v.resets_sent,
        resets_received: v.resets_received,
        rtt_count: v.rtt_count,
        rtt_sum_us: v.rtt_sum_us,
        // Up to the last bucket with samples: a socket's RTTs fall in a few low buckets, and
        // the aggregator keeps these for every socket.
        rtt_buckets: v.rtt_buckets[..v
            .rtt_buckets
            .iter()
            .rposition(|&b| b > 0)
            .map_or(0, |i| i + 1)]
            .to_vec(),
        rto_timeouts: v.rto_timeouts,
        rto_backoff_max: v.rto_backoff_max,
        handshake_count: u64::from(v.handshake_us > 0),
        handshake_sum_us: v.handshake_us,
        handshake_buckets: one_sample_buckets(v.handshake_us),
        closes_local: v.closes_local,
        closes_remote: v.closes_remote,
        zero_windows_sent: v.zero_windows_sent,
        zero_windows_received: v.zero_windows_received,
    }
}

/// A histogram of one sample of `us` (none when 0), as long as its bucket.
fn one_sample_buckets(us: u64) -> Vec<u64> {
    if us == 0 {
        return Vec::new();
    }
    let b = netmon_common::rtt_bucket(u32::try_from(us - 1).unwrap_or(u32::MAX));
    let mut v = vec![0; b + 1];
    v[b] = 1;
    v
}

fn get_map<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a aya::maps::Map, KernelError> {
    ebpf.map(name).ok_or(KernelError::Map {
        map: name,
        reason: "missing".into(),
    })
}

/// What the events ring carries: small records, and one larger one per socket end.
enum Record {
    Event(KernelEvent),
    Final(Box<SockFinal>),
}

fn drain(ring: &mut RingBuf<MapData>) -> Vec<Record> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        // Both record types begin with their kind.
        let Some(kind) = item
            .get(..4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        else {
            continue;
        };
        // SAFETY (both reads): the kernel wrote a whole record of the type (size checked);
        // read_unaligned because the ring gives no alignment guarantee for our types.
        if kind == event_kind::SOCK_FINAL && item.len() >= size_of::<SockFinal>() {
            out.push(Record::Final(Box::new(unsafe {
                std::ptr::read_unaligned(item.as_ptr().cast::<SockFinal>())
            })));
        } else if item.len() >= size_of::<KernelEvent>() {
            out.push(Record::Event(unsafe {
                std::ptr::read_unaligned(item.as_ptr().cast::<KernelEvent>())
            }));
        }
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
        if item.len() < size_of::<CaptureRecord>() {
            continue;
        }
        // SAFETY: the kernel wrote a whole CaptureRecord (size checked); read_unaligned
        // because the ring gives no alignment guarantee for our type.
        let r = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<CaptureRecord>()) };
        let n = (r.cap_len as usize).min(r.data.len());
        out.push(PacketRecord {
            ts_ns: (r.ts_ns as i128 + boot_offset_ns).max(0) as u64,
            cookie: r.cookie,
            ifindex: r.ifindex,
            egress: r.direction == direction::EGRESS,
            hook: if r.hook == capture_hook::XDP {
                "xdp"
            } else {
                "tc"
            }
            .to_string(),
            orig_len: r.orig_len,
            pid: r.tgid,
            comm: comm(&r.comm),
            data: r.data[..n].to_vec(),
        });
    }
    out
}

/// Decodes the DNS replies the kernel copied; each successful one becomes a [`Event::DnsAnswer`]
/// for the process whose socket received it.
fn drain_dns(ring: &mut RingBuf<MapData>, out: &mut Vec<Event>) {
    while let Some(item) = ring.next() {
        if item.len() < size_of::<DnsRecord>() {
            continue;
        }
        // SAFETY: the kernel wrote a whole DnsRecord (size checked); read_unaligned because
        // the ring gives no alignment guarantee for our type.
        let r = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<DnsRecord>()) };
        let n = (r.cap_len as usize).min(r.data.len());
        if let Some(ev) = dns_answer(r.tgid, &r.data[..n]) {
            out.push(ev);
        }
    }
}

/// A packet from its IP header → the answer it carries, if it is a successful DNS reply.
fn dns_answer(pid: u32, packet: &[u8]) -> Option<Event> {
    let pkt = netmon_packet::decode(packet, netmon_packet::LinkType::RawIp);
    let (name, addrs) = netmon_packet::dns_names::answered(pkt.dns.as_ref()?)?;
    Some(Event::DnsAnswer {
        pid,
        name: name.to_string(),
        addrs,
    })
}

/// Sends a poll's events with one channel reservation per chunk rather than one per event:
/// at tens of thousands of connections a second the per-send wakeups were a real cost.
async fn send_all(tx: &mpsc::Sender<Event>, events: Vec<Event>) -> bool {
    const CHUNK: usize = 1024;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let n = events.len().min(CHUNK).min(tx.max_capacity());
        let Ok(permits) = tx.reserve_many(n).await else {
            return false;
        };
        for (permit, ev) in permits.zip(events.by_ref()) {
            permit.send(ev);
        }
    }
    true
}

fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The socket's addresses, IPv4-mapped IPv6 shown as IPv4; no remote for unconnected sockets.
pub fn endpoints(t: &SockTuple) -> Option<(Proto, SocketAddr, Option<SocketAddr>)> {
    let ip = |a: &[u8; 16]| -> Option<IpAddr> {
        match t.family {
            2 => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
            10 => {
                let v6 = Ipv6Addr::from(*a);
                Some(match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                })
            }
            _ => None,
        }
    };
    let local = SocketAddr::new(ip(&t.local_addr)?, t.local_port);
    let rip = ip(&t.remote_addr)?;
    let remote =
        (!rip.is_unspecified() || t.remote_port != 0).then(|| SocketAddr::new(rip, t.remote_port));
    Some((Proto::from_ipproto(t.protocol), local, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_decode_with_mapped_addresses_as_v4() {
        let mut t = SockTuple {
            family: 10,
            protocol: 6,
            local_port: 8080,
            remote_port: 51000,
            ..Default::default()
        };
        t.local_addr[10] = 0xff;
        t.local_addr[11] = 0xff;
        t.local_addr[12..].copy_from_slice(&[127, 0, 0, 1]);
        t.remote_addr[15] = 1;
        let (p, l, r) = endpoints(&t).unwrap();
        assert_eq!(p, Proto::Tcp);
        assert_eq!(l.to_string(), "127.0.0.1:8080");
        assert_eq!(r.unwrap().to_string(), "[::1]:51000");
        let unconnected = SockTuple {
            family: 2,
            protocol: 17,
            local_port: 53,
            ..Default::default()
        };
        assert_eq!(endpoints(&unconnected).unwrap().2, None);
        assert!(
            endpoints(&SockTuple {
                family: 1,
                ..Default::default()
            })
            .is_none()
        );
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(b"curl");
        assert_eq!(comm(&c), "curl");
        assert_eq!(comm(b"exactly16bytes!!"), "exactly16bytes!!");
    }
}
