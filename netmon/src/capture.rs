//! `netmon capture`, `netmon interfaces`, `netmon routes`: the packet path's commands.
//!
//! The kernel source runs with the capture programs attached; socket events feed an
//! aggregator that is used only to attribute packets: egress packets carry their socket's
//! cookie, received ones are matched to a socket by their addresses.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    io::{BufWriter, Write},
    net::SocketAddr,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use netmon_common::CaptureConfig;
use netmon_packet::{
    decode::decode,
    meta::{Direction, PacketMeta},
    packet::{LinkType, Packet},
    summary,
};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    aggregate::{Aggregator, Filter},
    cli::{CaptureArgs, ListArgs},
    error::{AppError, Exit},
    event::{CaptureStats, Event, PacketRecord, Proto},
    netinfo,
    source::kernel::{KernelOptions, KernelSource, capture::CaptureSpec},
};

/// How long a packet waits for the socket events that attribute it.
const ATTRIBUTION_DELAY: Duration = Duration::from_millis(300);

pub fn interfaces(args: &ListArgs) -> Result<ExitCode> {
    let list = netinfo::interfaces_from(
        std::path::Path::new("/sys/class/net"),
        &netinfo::addresses(),
    )
    .context("reading /sys/class/net")?;
    let text = if args.json {
        serde_json::to_string_pretty(&list)? + "\n"
    } else {
        netinfo::render_interfaces(&list)
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

pub fn routes(args: &ListArgs) -> Result<ExitCode> {
    let list = netinfo::routes(&crate::procnet::NetRoot::current());
    let text = if args.json {
        serde_json::to_string_pretty(&list)? + "\n"
    } else {
        netinfo::render_routes(&list)
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Interfaces to capture on: the ones named (each must exist), or every one that is up.
fn chosen_interfaces(args: &CaptureArgs) -> Result<Vec<netinfo::InterfaceInfo>> {
    let all = netinfo::interfaces_from(std::path::Path::new("/sys/class/net"), &BTreeMap::new())
        .context("reading /sys/class/net")?;
    if args.interfaces.is_empty() {
        let up: Vec<_> = all.into_iter().filter(|i| i.up).collect();
        if up.is_empty() {
            return Err(AppError::new(Exit::Usage, "no interface is up to capture on").into());
        }
        return Ok(up);
    }
    let mut out = Vec::new();
    for name in &args.interfaces {
        match all.iter().find(|i| &i.name == name) {
            Some(i) => out.push(i.clone()),
            None => {
                let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
                return Err(AppError::new(
                    Exit::Usage,
                    format!(
                        "no interface named {name:?} (--interface); this host has: {}",
                        names.join(", ")
                    ),
                )
                .into());
            }
        }
    }
    Ok(out)
}

pub fn capture(args: CaptureArgs) -> Result<ExitCode> {
    let ifaces = chosen_interfaces(&args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(capture_async(args, ifaces))
}

/// Counts kept while capturing, printed at the end.
#[derive(Debug, Default)]
struct Tally {
    seen: u64,
    shown: u64,
    not_selected: u64,
    own: u64,
    kernel: CaptureStats,
}

async fn capture_async(args: CaptureArgs, ifaces: Vec<netinfo::InterfaceInfo>) -> Result<ExitCode> {
    let names: HashMap<u32, String> = ifaces.iter().map(|i| (i.index, i.name.clone())).collect();
    let spec = CaptureSpec {
        interfaces: ifaces.iter().map(|i| i.name.clone()).collect(),
        xdp: args.xdp,
        promisc: args.promisc,
        config: CaptureConfig {
            snaplen: args.snaplen,
            sample: args.sample,
            rate_per_cpu: args.rate_limit,
            self_tgid: std::process::id(),
            include_self: u8::from(args.include_self),
            ..CaptureConfig::default()
        },
    };
    let kernel = KernelSource::load(&KernelOptions {
        backend: crate::cli::BackendChoice::Auto,
        poll: Duration::from_millis(100),
        capture: Some(spec),
    })?;
    for how in kernel.capture_attachment() {
        eprintln!("netmon: capturing on {how}");
    }
    let (tx, mut rx) = mpsc::channel(65_536);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let initial = crate::source::procfs::ProcfsSource::new(std::path::PathBuf::from("/proc"))
        .initial_events();
    let ktx = tx.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = kernel.run(ktx, stop_rx).await {
            eprintln!("netmon: error: kernel source stopped: {e}");
        }
    });
    let mut agg = Aggregator::new(Filter::default());
    for ev in initial {
        agg.ingest(ev);
    }
    drop(tx);

    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut tally = Tally::default();
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let deadline = (!args.duration.is_zero()).then(|| tokio::time::Instant::now() + args.duration);
    let mut flush = tokio::time::interval(Duration::from_millis(100));
    let own_pid = std::process::id();
    // Packets wait a moment before they are attributed and printed: the socket events that
    // name their process (an accepted socket's owner, its addresses) may arrive just after.
    let mut pending: VecDeque<(Instant, PacketRecord)> = VecDeque::new();
    let mut print_ready = |pending: &mut VecDeque<(Instant, PacketRecord)>,
                           agg: &Aggregator,
                           tally: &mut Tally,
                           all: bool|
     -> Result<bool> {
        while let Some((at, _)) = pending.front() {
            if !all && at.elapsed() < ATTRIBUTION_DELAY {
                break;
            }
            let Some((_, p)) = pending.pop_front() else {
                break;
            };
            let Some(line) = render(&p, agg, &names, &args, own_pid, tally) else {
                continue;
            };
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            tally.shown += 1;
            if args.count.is_some_and(|c| tally.shown >= c) {
                out.flush()?;
                return Ok(true);
            }
        }
        out.flush()?;
        Ok(false)
    };
    'run: loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Packet(p)) => {
                    tally.seen += 1;
                    pending.push_back((Instant::now(), p));
                }
                Some(Event::CaptureStats(s)) => tally.kernel = s,
                Some(ev) => agg.ingest(ev),
                None => break 'run,
            },
            _ = flush.tick() => {
                if print_ready(&mut pending, &agg, &mut tally, false)? {
                    break 'run;
                }
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break 'run,
            _ = sigint.recv() => break 'run,
            _ = sigterm.recv() => break 'run,
        }
    }
    print_ready(&mut pending, &agg, &mut tally, true)?;
    drop(print_ready);
    out.flush()?;
    let _ = stop.send(true);
    // The source's final poll brings the last counters.
    let drain = async {
        while let Some(ev) = rx.recv().await {
            if let Event::CaptureStats(s) = ev {
                tally.kernel = s;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
    task.abort();
    eprint!("{}", summary_text(&tally, &names));
    Ok(ExitCode::SUCCESS)
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

fn render(
    p: &PacketRecord,
    agg: &Aggregator,
    names: &HashMap<u32, String>,
    args: &CaptureArgs,
    own_pid: u32,
    tally: &mut Tally,
) -> Option<String> {
    let link = LinkType::Ethernet;
    let pkt = decode(&p.data, link);
    // The kernel's owner for the cookie, else the aggregator's, else the socket the
    // addresses name.
    let owner = if p.pid != 0 {
        Some((p.pid, p.comm.clone()))
    } else if p.cookie != 0 {
        agg.owner_of(p.cookie)
    } else {
        None
    }
    .or_else(|| {
        let (proto, local, remote) = endpoints(&pkt, p.egress)?;
        agg.socket_for(proto, local, remote)
            .and_then(|c| agg.owner_of(c))
    });
    if let Some((pid, _)) = &owner {
        if *pid == own_pid && !args.include_self {
            tally.own += 1;
            return None;
        }
    }
    if !args.pids.is_empty()
        && !owner
            .as_ref()
            .is_some_and(|(pid, _)| args.pids.contains(pid))
    {
        tally.not_selected += 1;
        return None;
    }
    let meta = PacketMeta {
        ts_ns: p.ts_ns,
        ifindex: p.ifindex,
        ifname: names
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
    Some(if args.json {
        summary::json_line(&pkt, &meta)
    } else {
        summary::line(&pkt, &meta)
    })
}

fn summary_text(t: &Tally, names: &HashMap<u32, String>) -> String {
    let k = &t.kernel;
    let mut s = format!(
        "netmon: {} packets shown of {} captured; not copied: {} sampled out, {} over the rate limit, {} filtered in the kernel, {} netmon's own; lost: {} (capture ring full); {} not of the selected processes, {} own in user space\n",
        t.shown,
        t.seen,
        k.sampled_out,
        k.rate_limited,
        k.filtered,
        k.self_skipped,
        k.ring_full,
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
