//! `netmon capture`, `netmon interfaces`, `netmon routes`: the packet path's commands.
//!
//! The kernel source runs with the capture programs attached; socket events feed an
//! aggregator that is used only to attribute packets: egress packets carry their socket's
//! cookie, received ones are matched to a socket by their addresses.
use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
    net::SocketAddr,
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result};
use netmon_common::CaptureConfig;
mod filters;
mod session;

use self::session::{Session, SessionOptions, summary_text};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    aggregate::{Aggregator, Filter},
    cli::{CaptureArgs, FollowArgs, ListArgs},
    error::{AppError, Exit},
    event::Event,
    netinfo,
    source::kernel::{KernelOptions, KernelSource, capture::CaptureSpec},
};

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
    let filters = filters::Filters::load(&args.filters, args.filter_file.as_deref())?;
    run(args, filters, None)
}

/// `netmon follow CONN`: one connection's packets and TCP events as they happen, then its
/// summary (handshake, close, retransmissions, duplicate ACKs, zero windows, RTT).
pub fn follow(args: FollowArgs) -> Result<ExitCode> {
    let expr = follow_filter(&args.conn)
        .map_err(|e| AppError::new(Exit::Usage, format!("{:?}: {e}", args.conn)))?;
    let filters = filters::Filters::load(&[expr], None)?;
    let mut capture = args.capture;
    capture.tcp_events = true;
    run(capture, filters, Some(args.conn))
}

/// `PORT`, `ADDR:PORT` or `ADDR:PORT-ADDR:PORT` (IPv6 in brackets) as a filter expression.
pub fn follow_filter(conn: &str) -> Result<String, String> {
    // The two ends are split at a '-' right after a port number ("…:443-[fd00::2]:5000").
    let split = conn
        .char_indices()
        .filter(|&(i, c)| c == '-' && i > 0 && conn.as_bytes()[i - 1].is_ascii_digit())
        .map(|(i, _)| i)
        .next();
    let ends: Vec<&str> = match split {
        Some(i) => vec![&conn[..i], &conn[i + 1..]],
        None => vec![conn],
    };
    let mut parts = vec!["tcp".to_string()];
    for end in ends {
        if let Ok(port) = end.parse::<u16>() {
            parts.push(format!("tcp.port == {port}"));
            continue;
        }
        let sa: SocketAddr = end
            .parse()
            .map_err(|_| "expected PORT, ADDR:PORT or ADDR:PORT-ADDR:PORT".to_string())?;
        parts.push(format!("ip.addr == {}", sa.ip()));
        parts.push(format!("tcp.port == {}", sa.port()));
    }
    Ok(parts.join(" and "))
}

fn run(args: CaptureArgs, filters: filters::Filters, follow: Option<String>) -> Result<ExitCode> {
    let ifaces = chosen_interfaces(&args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(capture_async(args, ifaces, filters, follow))
}

async fn capture_async(
    args: CaptureArgs,
    ifaces: Vec<netinfo::InterfaceInfo>,
    filters: filters::Filters,
    follow: Option<String>,
) -> Result<ExitCode> {
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
            filter: filters.kernel(),
            ..CaptureConfig::default()
        },
    };
    let in_kernel = spec.config.filter.enabled != 0;
    let mut session = Session::new(
        SessionOptions {
            json: args.json,
            quiet: args.quiet,
            pids: args.pids.clone(),
            include_self: args.include_self,
            count: args.count,
            tcp_events: args.tcp_events,
            write: args.write.clone(),
            snaplen: args.snaplen,
        },
        filters,
        names.clone(),
    )?;
    let kernel = KernelSource::load(&KernelOptions {
        backend: crate::cli::BackendChoice::Auto,
        poll: Duration::from_millis(100),
        capture: Some(spec),
    })?;
    for how in kernel.capture_attachment() {
        eprintln!("netmon: capturing on {how}");
    }
    if in_kernel {
        eprintln!("netmon: the filter runs in the kernel (packets it rejects are not copied)");
    }
    let (tx, mut rx) = mpsc::channel::<Vec<Event>>(1024);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let initial = crate::source::procfs::ProcfsSource::new(std::path::PathBuf::from("/proc"))
        .initial_events();
    let task = tokio::spawn(async move {
        if let Err(e) = kernel.run(tx, stop_rx).await {
            eprintln!("netmon: error: kernel source stopped: {e}");
        }
    });
    let mut agg = Aggregator::new(Filter::default())
        .with_packet_lookup()
        // Packets are read after the socket's end record: they must still find the socket.
        .with_closed_rows();
    for ev in initial {
        agg.ingest(ev);
    }

    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let deadline = (!args.duration.is_zero()).then(|| tokio::time::Instant::now() + args.duration);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut done = false;
    while !done {
        tokio::select! {
            evs = rx.recv() => match evs {
                Some(evs) => {
                    for ev in evs {
                        match ev {
                            Event::Packet(p) => session.push(p),
                            Event::CaptureStats(s) => session.tally.kernel = s,
                            ev => agg.ingest(ev),
                        }
                    }
                }
                None => done = true,
            },
            _ = tick.tick() => done = session.drain(&agg, false)?,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => done = true,
            _ = sigint.recv() => done = true,
            _ = sigterm.recv() => done = true,
        }
    }
    let _ = stop.send(true);
    // The source's final poll brings the last packets and counters.
    let drain = async {
        while let Some(evs) = rx.recv().await {
            for ev in evs {
                match ev {
                    Event::Packet(p) => session.push(p),
                    Event::CaptureStats(s) => session.tally.kernel = s,
                    ev => agg.ingest(ev),
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
    task.abort();
    if args.count.is_none_or(|c| session.tally.shown < c) {
        session.drain(&agg, true)?;
    }
    session.flush()?;
    if follow.is_some() {
        eprint!("{}", follow_summary(&session));
    }
    eprint!("{}", summary_text(&session.tally, &names));
    Ok(ExitCode::SUCCESS)
}

/// What the analyzer knows of the followed connection(s).
fn follow_summary(session: &Session) -> String {
    let mut s = String::new();
    for c in session.tcp.connections() {
        let t = c.totals();
        let ep = |(ip, port): (std::net::IpAddr, u16)| SocketAddr::new(ip, port).to_string();
        let [a, b] = &c.halves;
        s.push_str(&format!(
            "netmon: connection {} <-> {} ({}): state {:?}",
            ep(a.endpoint),
            ep(b.endpoint),
            match (&c.pid, &c.comm) {
                (Some(p), Some(n)) => format!("{p}/{n}"),
                (Some(p), None) => p.to_string(),
                _ => "no local process".into(),
            },
            c.state
        ));
        if let Some(ns) = c.handshake_ns {
            s.push_str(&format!(", handshake {:.3} ms", ns as f64 / 1e6));
        }
        match &c.close {
            Some(netmon_packet::tcp_analysis::Close::Graceful { initiator }) => {
                s.push_str(&format!(", closed gracefully by {}", ep(*initiator)))
            }
            Some(netmon_packet::tcp_analysis::Close::Reset { by }) => {
                s.push_str(&format!(", reset by {}", ep(*by)))
            }
            None => {}
        }
        s.push_str(&format!(
            "; {} packets, {} payload bytes, {} retransmissions, {} duplicate ACKs, {} zero windows",
            t.packets, t.payload_bytes, t.retransmissions, t.dup_acks, t.zero_windows
        ));
        if let Some(mean) = c.rtt.mean_ns() {
            s.push_str(&format!(", mean RTT {:.3} ms", mean as f64 / 1e6));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::follow_filter;

    #[test]
    fn connections_become_filters() {
        assert_eq!(follow_filter("5000").unwrap(), "tcp and tcp.port == 5000");
        assert_eq!(
            follow_filter("10.0.0.1:40000-10.0.0.2:5000").unwrap(),
            "tcp and ip.addr == 10.0.0.1 and tcp.port == 40000 and ip.addr == 10.0.0.2 and tcp.port == 5000"
        );
        assert_eq!(
            follow_filter("[fd00::1]:443").unwrap(),
            "tcp and ip.addr == fd00::1 and tcp.port == 443"
        );
        assert_eq!(
            follow_filter("[fd00::1]:443-[fd00::2]:5000").unwrap(),
            "tcp and ip.addr == fd00::1 and tcp.port == 443 and ip.addr == fd00::2 and tcp.port == 5000"
        );
        assert!(follow_filter("10.0.0.1").is_err());
        assert!(follow_filter("x:1-y:2").is_err());
    }
}
