//! Per-connection TCP behaviour from decoded packets: handshake and its time, graceful close
//! or reset (and who sent it), retransmissions, duplicate ACKs, window and zero-window events,
//! RTT samples; summed per process. Memory is bounded: least recently seen connections and
//! processes are evicted past a cap, and evictions are counted.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;
use serde::Serialize;

use crate::meta::PacketMeta;
use crate::packet::Packet;
use crate::value::Value;

/// One end of a connection.
pub type Endpoint = (IpAddr, u16);

/// A connection independent of direction: the two endpoints in sorted order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl ConnKey {
    pub fn new(a: Endpoint, b: Endpoint) -> Self {
        if a <= b {
            ConnKey { lo: a, hi: b }
        } else {
            ConnKey { lo: b, hi: a }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// First packet seen was not a SYN: joined mid-stream.
    Unknown,
    SynSent,
    SynReceived,
    Established,
    /// One side has sent FIN.
    Closing,
    Closed,
    Reset,
}

/// Running RTT statistics in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RttStats {
    pub samples: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub sum_ns: u64,
    pub last_ns: u64,
}

impl RttStats {
    fn add(&mut self, ns: u64) {
        if self.samples == 0 || ns < self.min_ns {
            self.min_ns = ns;
        }
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.last_ns = ns;
        self.samples += 1;
    }
    pub fn mean_ns(&self) -> Option<u64> {
        self.sum_ns.checked_div(self.samples)
    }
}

/// Counters kept per connection direction, per connection and per process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub packets: u64,
    pub payload_bytes: u64,
    pub retransmissions: u64,
    pub dup_acks: u64,
    pub zero_windows: u64,
    pub resets_sent: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.packets += o.packets;
        self.payload_bytes += o.payload_bytes;
        self.retransmissions += o.retransmissions;
        self.dup_acks += o.dup_acks;
        self.zero_windows += o.zero_windows;
        self.resets_sent += o.resets_sent;
    }
}

/// Per-process totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessCounters {
    pub connections: u64,
    pub handshakes: u64,
    pub graceful_closes: u64,
    pub resets: u64,
    pub totals: Counters,
    pub rtt: RttStats,
}

/// One direction of a connection (packets sent by `endpoint`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Half {
    pub endpoint: Endpoint,
    pub counters: Counters,
    /// Last advertised window in bytes (scaled when both SYNs carried a window scale).
    pub window: u32,
    pub fin_sent: bool,
    /// The other side acknowledged this side's FIN.
    pub fin_acked: bool,
    #[serde(skip)]
    fin_end: Option<u32>,
    #[serde(skip)]
    max_end: Option<u32>,
    #[serde(skip)]
    last_ack: Option<(u32, u16)>,
    #[serde(skip)]
    wscale: Option<u8>,
    /// Sent segments awaiting an ACK: (end sequence, send time, retransmitted).
    #[serde(skip)]
    unacked: std::collections::VecDeque<(u32, u64, bool)>,
}

/// Bound on segments remembered per direction for RTT sampling.
const MAX_UNACKED: usize = 64;

impl Half {
    fn new(endpoint: Endpoint) -> Self {
        Half {
            endpoint,
            counters: Counters::default(),
            window: 0,
            fin_sent: false,
            fin_acked: false,
            fin_end: None,
            max_end: None,
            last_ack: None,
            wscale: None,
            unacked: Default::default(),
        }
    }
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Close {
    /// FIN exchange; `initiator` sent the first FIN.
    Graceful {
        initiator: Endpoint,
    },
    Reset {
        by: Endpoint,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Connection {
    pub key: ConnKey,
    /// The endpoint that sent the SYN, when the handshake was seen.
    pub client: Option<Endpoint>,
    pub state: State,
    pub halves: [Half; 2],
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// SYN → ACK of the SYN-ACK.
    pub handshake_ns: Option<u64>,
    pub rtt: RttStats,
    pub close: Option<Close>,
    /// The endpoint that sent the first FIN.
    pub first_fin: Option<Endpoint>,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// The process this connection was last counted for in the per-process totals.
    #[serde(skip)]
    counted_pid: Option<u32>,
    #[serde(skip)]
    syn_ts: Option<u64>,
    #[serde(skip)]
    synack_ts: Option<u64>,
    /// The SYN was sent more than once: its SYN-ACK gives no RTT sample (Karn).
    #[serde(skip)]
    syn_retransmitted: bool,
}

impl Connection {
    /// The totals of both directions.
    pub fn totals(&self) -> Counters {
        let mut c = self.halves[0].counters;
        c.add(&self.halves[1].counters);
        c
    }

    pub fn half(&self, endpoint: Endpoint) -> Option<&Half> {
        self.halves.iter().find(|h| h.endpoint == endpoint)
    }
}

/// Something worth a line in `netmon follow`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TcpEvent {
    Syn {
        from: Endpoint,
    },
    SynAck {
        from: Endpoint,
        rtt_ns: Option<u64>,
    },
    Established {
        handshake_ns: Option<u64>,
    },
    Retransmission {
        from: Endpoint,
        seq: u32,
        len: u32,
    },
    DupAck {
        from: Endpoint,
        ack: u32,
        count: u32,
    },
    ZeroWindow {
        from: Endpoint,
    },
    WindowOpened {
        from: Endpoint,
        window: u32,
    },
    Fin {
        from: Endpoint,
    },
    Closed {
        initiator: Endpoint,
    },
    Reset {
        by: Endpoint,
    },
    RttSample {
        ns: u64,
    },
}

/// The TCP fields the analysis reads, taken from a decoded packet.
struct Seg {
    src: Endpoint,
    dst: Endpoint,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    window: u16,
    wscale: Option<u8>,
    len: u32,
}

impl Seg {
    fn from_packet(pkt: &Packet) -> Option<Seg> {
        let (sip, dip) = pkt.ip_addrs()?;
        let t = pkt.layer("TCP")?;
        let flag = |f: &str| t.get(f).and_then(Value::as_bool).unwrap_or(false);
        let num = |f: &str| t.num(f);
        Some(Seg {
            src: (sip, num("Source_Port")? as u16),
            dst: (dip, num("Destination_Port")? as u16),
            seq: num("Sequence_Number")? as u32,
            ack: flag("ACK")
                .then(|| num("Acknowledgment_Number"))
                .flatten()
                .map(|a| a as u32),
            syn: flag("SYN"),
            fin: flag("FIN"),
            rst: flag("RST"),
            window: num("Window_Size")? as u16,
            wscale: num("Window_Scale").map(|w| w as u8),
            len: num("Payload_Length").unwrap_or(0) as u32,
        })
    }

    /// Sequence space the segment occupies (SYN and FIN count as one each).
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.len)
            .wrapping_add(u32::from(self.syn))
            .wrapping_add(u32::from(self.fin))
    }
}

/// `a` is before `b` in sequence space (RFC 793 modular comparison).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Feeds on decoded packets and keeps per-connection and per-process state.
pub struct TcpAnalyzer {
    conns: LruCache<ConnKey, Connection>,
    pids: LruCache<u32, ProcessCounters>,
    evicted_connections: u64,
    evicted_processes: u64,
}

impl TcpAnalyzer {
    /// At most `max_connections` connections and `max_processes` processes are remembered.
    pub fn new(max_connections: usize, max_processes: usize) -> Self {
        let one = NonZeroUsize::MIN;
        TcpAnalyzer {
            conns: LruCache::new(NonZeroUsize::new(max_connections).unwrap_or(one)),
            pids: LruCache::new(NonZeroUsize::new(max_processes).unwrap_or(one)),
            evicted_connections: 0,
            evicted_processes: 0,
        }
    }

    pub fn connection(&self, key: &ConnKey) -> Option<&Connection> {
        self.conns.peek(key)
    }

    /// Most recently seen first.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.conns.iter().map(|(_, c)| c)
    }

    pub fn process(&self, pid: u32) -> Option<&ProcessCounters> {
        self.pids.peek(&pid)
    }

    pub fn evicted_connections(&self) -> u64 {
        self.evicted_connections
    }

    pub fn evicted_processes(&self) -> u64 {
        self.evicted_processes
    }

    /// Drops connections not seen since `before_ns` (their counters stay in the process totals).
    pub fn expire(&mut self, before_ns: u64) -> usize {
        let mut n = 0;
        while let Some((_, c)) = self.conns.peek_lru() {
            if c.last_seen_ns >= before_ns {
                break;
            }
            self.conns.pop_lru();
            n += 1;
        }
        n
    }

    /// Updates state with one packet; non-TCP packets are ignored. Returns what happened.
    pub fn ingest(&mut self, pkt: &Packet, meta: &PacketMeta) -> Vec<TcpEvent> {
        let Some(seg) = Seg::from_packet(pkt) else {
            return Vec::new();
        };
        let key = ConnKey::new(seg.src, seg.dst);
        let now = meta.ts_ns;
        // A new SYN on a finished 4-tuple is a new connection (port reuse).
        let reused = seg.syn
            && seg.ack.is_none()
            && self
                .conns
                .peek(&key)
                .is_some_and(|c| matches!(c.state, State::Closed | State::Reset));
        if reused {
            self.conns.pop(&key);
        }
        if !self.conns.contains(&key) {
            let conn = Connection {
                key,
                client: None,
                state: State::Unknown,
                halves: [Half::new(key.lo), Half::new(key.hi)],
                pid: None,
                comm: None,
                handshake_ns: None,
                rtt: RttStats::default(),
                close: None,
                first_fin: None,
                first_seen_ns: now,
                last_seen_ns: now,
                counted_pid: None,
                syn_ts: None,
                synack_ts: None,
                syn_retransmitted: false,
            };
            if self.conns.push(key, conn).is_some() {
                self.evicted_connections += 1;
            }
        }
        let conn = self.conns.get_mut(&key).expect("inserted above");
        if meta.pid.is_some() {
            conn.pid = meta.pid;
            conn.comm.clone_from(&meta.comm);
        }
        let before = conn.totals();
        let rtt_before = conn.rtt.samples;
        let (events, outcome) = update(conn, &seg, now);
        let delta = diff(&conn.totals(), &before);
        let new_rtt = (conn.rtt.samples > rtt_before).then_some(conn.rtt.last_ns);
        let newly_counted = conn.pid.is_some() && conn.counted_pid != conn.pid;
        conn.counted_pid = conn.pid;
        if let Some(pid) = conn.pid {
            if !self.pids.contains(&pid)
                && self.pids.push(pid, ProcessCounters::default()).is_some()
            {
                self.evicted_processes += 1;
            }
            let p = self.pids.get_mut(&pid).expect("inserted above");
            p.totals.add(&delta);
            if newly_counted {
                p.connections += 1;
            }
            if let Some(ns) = new_rtt {
                p.rtt.add(ns);
            }
            match outcome {
                Outcome::Established => p.handshakes += 1,
                Outcome::Graceful => p.graceful_closes += 1,
                Outcome::Reset => p.resets += 1,
                Outcome::None => {}
            }
        }
        events
    }
}

fn diff(a: &Counters, b: &Counters) -> Counters {
    Counters {
        packets: a.packets - b.packets,
        payload_bytes: a.payload_bytes - b.payload_bytes,
        retransmissions: a.retransmissions - b.retransmissions,
        dup_acks: a.dup_acks - b.dup_acks,
        zero_windows: a.zero_windows - b.zero_windows,
        resets_sent: a.resets_sent - b.resets_sent,
    }
}

enum Outcome {
    None,
    Established,
    Graceful,
    Reset,
}

fn update(conn: &mut Connection, seg: &Seg, now: u64) -> (Vec<TcpEvent>, Outcome) {
    let mut ev = Vec::new();
    let mut outcome = Outcome::None;
    conn.last_seen_ns = now;
    let (me, other) = if seg.src == conn.key.lo {
        (0, 1)
    } else {
        (1, 0)
    };

    // Handshake.
    if seg.syn && seg.ack.is_none() {
        if conn.state == State::Unknown || conn.client.is_none() {
            conn.client = Some(seg.src);
            conn.state = State::SynSent;
            conn.syn_ts = Some(now);
            ev.push(TcpEvent::Syn { from: seg.src });
        } else if conn.state == State::SynSent && conn.client == Some(seg.src) {
            conn.syn_retransmitted = true;
        }
    } else if seg.syn && conn.state == State::SynSent && conn.client == Some(seg.dst) {
        conn.state = State::SynReceived;
        let rtt = conn.syn_ts.map(|t| now.saturating_sub(t));
        if conn.synack_ts.is_none()
            && !conn.syn_retransmitted
            && let Some(r) = rtt
        {
            conn.rtt.add(r);
        }
        conn.synack_ts = Some(now);
        ev.push(TcpEvent::SynAck {
            from: seg.src,
            rtt_ns: rtt,
        });
    } else if conn.state == State::SynReceived
        && conn.client == Some(seg.src)
        && seg.ack.is_some()
        && !seg.rst
    {
        conn.state = State::Established;
        conn.handshake_ns = conn.syn_ts.map(|t| now.saturating_sub(t));
        ev.push(TcpEvent::Established {
            handshake_ns: conn.handshake_ns,
        });
        outcome = Outcome::Established;
    }
    if seg.syn {
        let h = &mut conn.halves[me];
        h.wscale = seg.wscale;
    }

    // Retransmission: the segment occupies sequence space this side already sent.
    let occupies = seg.len > 0 || seg.syn || seg.fin;
    let end = seg.end();
    {
        let h = &mut conn.halves[me];
        h.counters.packets += 1;
        h.counters.payload_bytes += u64::from(seg.len);
        if occupies && !seg.rst {
            let keepalive = seg.len <= 1
                && !seg.syn
                && !seg.fin
                && h.max_end.is_some_and(|m| seg.seq == m.wrapping_sub(1));
            let retrans = h.max_end.is_some_and(|m| seq_lt(seg.seq, m)) && !keepalive;
            if retrans {
                h.counters.retransmissions += 1;
                ev.push(TcpEvent::Retransmission {
                    from: seg.src,
                    seq: seg.seq,
                    len: seg.len,
                });
                // Karn: a retransmitted range gives no RTT sample.
                for u in h.unacked.iter_mut() {
                    if !seq_lt(end, u.0) {
                        u.2 = true;
                    }
                }
            } else if seg.len > 0 && !seg.syn {
                // Only data segments give data→ACK samples; the SYN gives SYN→SYN-ACK.
                if h.unacked.len() == MAX_UNACKED {
                    h.unacked.pop_front();
                }
                h.unacked.push_back((end, now, false));
            }
            if h.max_end.is_none_or(|m| seq_lt(m, end)) {
                h.max_end = Some(end);
            }
        }
    }

    // ACK processing: RTT from data→ACK, duplicate ACKs.
    if let Some(ack) = seg.ack {
        let (mine, theirs) = if me == 0 {
            let (a, b) = conn.halves.split_at_mut(1);
            (&mut a[0], &mut b[0])
        } else {
            let (a, b) = conn.halves.split_at_mut(1);
            (&mut b[0], &mut a[0])
        };
        let mut sample = None;
        while let Some(&(end, ts, retx)) = theirs.unacked.front() {
            if seq_lt(ack, end) {
                break;
            }
            theirs.unacked.pop_front();
            if !retx {
                sample = Some(now.saturating_sub(ts));
            }
        }
        // The SYN's RTT is already counted from SYN→SYN-ACK.
        if let Some(ns) = sample.filter(|_| !seg.syn) {
            conn.rtt.add(ns);
            ev.push(TcpEvent::RttSample { ns });
        }
        let pure = seg.len == 0 && !seg.syn && !seg.fin && !seg.rst;
        let outstanding = theirs.max_end.is_some_and(|m| seq_lt(ack, m));
        if pure && outstanding && mine.last_ack == Some((ack, seg.window)) {
            mine.counters.dup_acks += 1;
            ev.push(TcpEvent::DupAck {
                from: seg.src,
                ack,
                count: mine.counters.dup_acks as u32,
            });
        }
        mine.last_ack = Some((ack, seg.window));
        if theirs.fin_end.is_some_and(|e| !seq_lt(ack, e)) {
            theirs.fin_acked = true;
        }
    }

    // Window: scaled only when both SYNs offered scaling, never on the SYN itself.
    if !seg.rst {
        let both = conn.halves[me].wscale.is_some() && conn.halves[other].wscale.is_some();
        let shift = if both && !seg.syn {
            conn.halves[me].wscale.unwrap_or(0).min(14)
        } else {
            0
        };
        let window = u32::from(seg.window) << shift;
        let h = &mut conn.halves[me];
        let was = h.window;
        let seen_before = h.counters.packets > 1;
        if window == 0 && (was != 0 || !seen_before) {
            h.counters.zero_windows += 1;
            ev.push(TcpEvent::ZeroWindow { from: seg.src });
        } else if window != 0 && was == 0 && seen_before {
            ev.push(TcpEvent::WindowOpened {
                from: seg.src,
                window,
            });
        }
        h.window = window;
    }

    // Close.
    if seg.rst {
        conn.halves[me].counters.resets_sent += 1;
        if conn.close.is_none() {
            conn.state = State::Reset;
            conn.close = Some(Close::Reset { by: seg.src });
            outcome = Outcome::Reset;
        }
        ev.push(TcpEvent::Reset { by: seg.src });
    } else if seg.fin && !conn.halves[me].fin_sent {
        conn.halves[me].fin_sent = true;
        conn.halves[me].fin_end = Some(end);
        conn.first_fin.get_or_insert(seg.src);
        ev.push(TcpEvent::Fin { from: seg.src });
        if conn.state != State::Reset {
            conn.state = State::Closing;
        }
    }
    if conn.close.is_none() && conn.halves.iter().all(|h| h.fin_sent && h.fin_acked) {
        let initiator = conn.first_fin.unwrap_or(seg.src);
        conn.state = State::Closed;
        conn.close = Some(Close::Graceful { initiator });
        ev.push(TcpEvent::Closed { initiator });
        outcome = Outcome::Graceful;
    }
    (ev, outcome)
}
