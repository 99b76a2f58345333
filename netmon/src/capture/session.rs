//! One capture run's packet handling: attribution to a process, decoding, filtering, TCP
//! analysis, DNS names, and the outputs (lines, JSON lines, pcapng). Packets wait a moment
//! before they are handled: the socket events that name their process (an accepted socket's
//! owner arrives with its first recv) may come just after the packet.
use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    io::{BufWriter, Write},
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use netmon_packet::{
    DecodeOptions, Direction, LinkType, Packet, PacketMeta, decode_with,
    dns_names::DnsNames,
    pcapng::PcapngWriter,
    summary,
    tcp_analysis::{TcpAnalyzer, TcpEvent},
};

use super::filters::Filters;
use crate::{
    aggregate::Aggregator,
    event::{CaptureStats, PacketRecord, Proto},
};

/// How long a packet waits for the socket events that attribute it.
pub const ATTRIBUTION_DELAY: Duration = Duration::from_millis(300);

/// What a session shows and where.
pub struct SessionOptions {
    pub json: bool,
    /// No per-packet lines (with --write).
    pub quiet: bool,
    pub pids: Vec<u32>,
    pub include_self: bool,
    pub count: Option<u64>,
    pub tcp_events: bool,
    pub write: Option<std::path::PathBuf>,
    pub snaplen: u32,
}

/// Counts kept while capturing, printed at the end.
#[derive(Debug, Default)]
pub struct Tally {
    pub seen: u64,
    pub shown: u64,
    pub filtered: u64,
    pub not_selected: u64,
    pub own: u64,
    pub kernel: CaptureStats,
}

pub struct Session {
    opts: SessionOptions,
    filters: Filters,
    names: HashMap<u32, String>,
    own_pid: u32,
    pending: VecDeque<(Instant, PacketRecord)>,
    out: BufWriter<std::io::Stdout>,
    pcap: Option<PcapngWriter<BufWriter<File>>>,
    pub tcp: TcpAnalyzer,
    dns: DnsNames,
    pub tally: Tally,
}

impl Session {
    pub fn new(
        opts: SessionOptions,
        filters: Filters,
        names: HashMap<u32, String>,
    ) -> Result<Session> {
        let pcap = match &opts.write {
            Some(path) => {
                let f = File::create(path)
                    .with_context(|| format!("creating --write file {}", path.display()))?;
                Some(PcapngWriter::new(BufWriter::new(f), opts.snaplen)?)
            }
            None => None,
        };
        Ok(Session {
            opts,
            filters,
            names,
            own_pid: std::process::id(),
            pending: VecDeque::new(),
            out: BufWriter::new(std::io::stdout()),
            pcap,
            tcp: TcpAnalyzer::new(65_536, 16_384),
            dns: DnsNames::default(),
            tally: Tally::default(),
        })
    }

    pub fn push(&mut self, p: PacketRecord) {
        self.tally.seen += 1;
        self.pending.push_back((Instant::now(), p));
    }

    /// Handles packets that have waited long enough (all of them with `all`); true once
    /// `--count` packets were shown.
    pub fn drain(&mut self, agg: &Aggregator, all: bool) -> Result<bool> {
        while let Some((at, _)) = self.pending.front() {
            if !all && at.elapsed() < ATTRIBUTION_DELAY {
                break;
            }
            let Some((_, p)) = self.pending.pop_front() else {
                break;
            };
            self.handle(&p, agg)?;
            if self.opts.count.is_some_and(|c| self.tally.shown >= c) {
                self.flush()?;
                return Ok(true);
            }
        }
        self.flush()?;
        Ok(false)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        if let Some(w) = self.pcap.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn handle(&mut self, p: &PacketRecord, agg: &Aggregator) -> Result<()> {
        // Partial checksums: a packet sent by this host (egress, or looped back) carries only
        // the pseudo-header sum until the NIC or the stack finishes it.
        let local = p.egress || self.names.get(&p.ifindex).is_some_and(|n| n == "lo");
        let pkt = decode_with(
            &p.data,
            LinkType::Ethernet,
            DecodeOptions {
                verify_transport_checksums: !local,
            },
        );
        let owner = attribute(p, &pkt, agg);
        if owner.as_ref().is_some_and(|(pid, _)| *pid == self.own_pid) && !self.opts.include_self {
            self.tally.own += 1;
            return Ok(());
        }
        if !self.opts.pids.is_empty()
            && !owner
                .as_ref()
                .is_some_and(|(pid, _)| self.opts.pids.contains(pid))
        {
            self.tally.not_selected += 1;
            return Ok(());
        }
        let meta = PacketMeta {
            ts_ns: p.ts_ns,
            ifindex: p.ifindex,
            ifname: self
                .names
                .get(&p.ifindex)
                .cloned()
                .unwrap_or_else(|| format!("if{}", p.ifindex)),
            direction: if p.egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            pid: owner.as_ref().map(|(pid, _)| *pid),
            comm: owner.map(|(_, c)| c).filter(|c| !c.is_empty()),
            cookie: (p.cookie != 0).then_some(p.cookie),
            orig_len: p.orig_len,
            snap_len: p.data.len() as u32,
        };
        self.dns.ingest(&pkt, &meta);
        // Only `--tcp-events` (and `follow`, which sets it) read the analysis.
        let events = if self.opts.tcp_events {
            self.tcp.ingest(&pkt, &meta)
        } else {
            Vec::new()
        };
        if !self.filters.matches(&pkt, &meta) {
            self.tally.filtered += 1;
            return Ok(());
        }
        self.tally.shown += 1;
        if let Some(w) = self.pcap.as_mut() {
            w.write_packet(&meta, LinkType::Ethernet, &p.data)?;
        }
        if self.opts.quiet {
            return Ok(());
        }
        let mut line = if self.opts.json {
            summary::json_line(&pkt, &meta)
        } else {
            summary::line(&pkt, &meta)
        };
        if !self.opts.json
            && let Some(name) = self.dns.remote_name(&pkt, &meta).map(str::to_string)
        {
            line.push_str(&format!(" [{name}]"));
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        if self.opts.tcp_events && !self.opts.json {
            for e in &events {
                if let Some(text) = describe(e) {
                    writeln!(self.out, "    tcp: {text}")?;
                }
            }
        }
        Ok(())
    }
}

/// One line for the TCP events a user follows; per-segment bookkeeping is left out.
pub fn describe(e: &TcpEvent) -> Option<String> {
    let ep = |(ip, port): &(std::net::IpAddr, u16)| SocketAddr::new(*ip, *port).to_string();
    Some(match e {
        TcpEvent::Syn { from } => format!("SYN from {}", ep(from)),
        TcpEvent::SynAck { from, rtt_ns } => match rtt_ns {
            Some(ns) => format!("SYN-ACK from {} after {:.3} ms", ep(from), *ns as f64 / 1e6),
            None => format!("SYN-ACK from {}", ep(from)),
        },
        TcpEvent::Established { handshake_ns } => match handshake_ns {
            Some(ns) => format!("established, handshake {:.3} ms", *ns as f64 / 1e6),
            None => "established".into(),
        },
        TcpEvent::Retransmission { from, seq, len } => {
            format!("retransmission by {} seq {seq} len {len}", ep(from))
        }
        TcpEvent::DupAck { from, ack, count } => {
            format!("duplicate ACK #{count} from {} ack {ack}", ep(from))
        }
        TcpEvent::ZeroWindow { from } => format!("zero window advertised by {}", ep(from)),
        TcpEvent::WindowOpened { from, window } => {
            format!("window reopened by {} to {window}", ep(from))
        }
        TcpEvent::Fin { from } => format!("FIN from {}", ep(from)),
        TcpEvent::Closed { initiator } => {
            format!("closed gracefully, {} closed first", ep(initiator))
        }
        TcpEvent::Reset { by } => format!("reset by {}", ep(by)),
        TcpEvent::RttSample { .. } => return None,
    })
}

/// The host's end and the peer's of a decoded packet, for matching it to a socket.
fn endpoints(pkt: &Packet, egress: bool) -> Option<(Proto, SocketAddr, SocketAddr)> {
    let (src, dst) = pkt.ip_addrs()?;
    let (proto, l4) = ["TCP", "UDP"]
        .iter()
        .zip([Proto::Tcp, Proto::Udp])
        .find_map(|(name, p)| pkt.layer(name).map(|l| (p, l)))?;
    let port = |f: &str| l4.get(f).and_then(|v| v.as_num()).map(|n| n as u16);
    let s = SocketAddr::new(src, port("Source_Port")?);
    let d = SocketAddr::new(dst, port("Destination_Port")?);
    Some(if egress { (proto, s, d) } else { (proto, d, s) })
}

/// The kernel's owner for the cookie, else the aggregator's, else the socket the addresses
/// name.
fn attribute(p: &PacketRecord, pkt: &Packet, agg: &Aggregator) -> Option<(u32, String)> {
    if p.pid != 0 {
        return Some((p.pid, p.comm.clone()));
    }
    if p.cookie != 0
        && let Some(o) = agg.owner_of(p.cookie)
    {
        return Some(o);
    }
    let (proto, local, remote) = endpoints(pkt, p.egress)?;
    agg.socket_for(proto, local, remote)
        .and_then(|c| agg.owner_of(c))
}

pub fn summary_text(t: &Tally, names: &HashMap<u32, String>) -> String {
    let k = &t.kernel;
    let mut s = format!(
        "netmon: {} packets shown of {} captured; not copied: {} sampled out, {} over the rate limit, {} filtered in the kernel, {} netmon's own; lost: {} (capture ring full); not shown: {} by the filter, {} of other processes, {} netmon's own\n",
        t.shown,
        t.seen,
        k.sampled_out,
        k.rate_limited,
        k.filtered,
        k.self_skipped,
        k.ring_full,
        t.filtered,
        t.not_selected,
        t.own
    );
    for (ifindex, egress, packets, bytes) in &k.interfaces {
        let Some(name) = names.get(ifindex) else {
            continue;
        };
        s.push_str(&format!(
            "netmon: {name} {}: {packets} packets, {bytes} bytes\n",
            if *egress { "out" } else { "in" }
        ));
    }
    s
}
