//! Fills a fresh temporary history store with synthetic flows, the way the daemon writes them
//! (one batch per second of traffic, retention run every hour of traffic), and prints what it
//! cost: write time per flow, database bytes per million flows, and how long month-long
//! reports take. Prints figures; it is not a timed test.
//!
//! `history-bench [--days D] [--flows-per-day N] [--quick]` (defaults: 30 days of 1,000,000
//! flows; `--quick`: 1 day of 100,000). `--batch-secs S` writes S seconds of traffic per
//! transaction (the daemon writes every second; larger batches fill a month faster).
//! Build with `--release` for meaningful figures.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use netmon::history::store::Store;
use netmon::history::{By, FlowRecord, Limits, ReportQuery};

const DAY_MS: i64 = 86_400_000;

struct Args {
    days: i64,
    flows_per_day: u64,
    /// Seconds of traffic per write transaction (the daemon: 1).
    batch_secs: i64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        days: 30,
        flows_per_day: 1_000_000,
        batch_secs: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--days" => a.days = i64::try_from(num("--days")?).map_err(|e| e.to_string())?,
            "--flows-per-day" => a.flows_per_day = num("--flows-per-day")?,
            "--batch-secs" => {
                a.batch_secs = i64::try_from(num("--batch-secs")?).map_err(|e| e.to_string())?
            }
            "--quick" => {
                a.days = 1;
                a.flows_per_day = 100_000;
            }
            "-h" | "--help" => {
                return Err("usage: history-bench [--days D] [--flows-per-day N] [--batch-secs S] [--quick]".into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.days < 1 || a.flows_per_day < 1 || a.batch_secs < 1 {
        return Err("--days, --flows-per-day and --batch-secs must be at least 1".into());
    }
    Ok(a)
}

/// Deterministic pseudo-random numbers (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// ~50 process names, ~2,000 remotes across every class, a few ports; skewed so that some
/// processes and remotes are much busier than others, as on a real host.
struct Mix {
    comms: Vec<String>,
    remotes: Vec<(IpAddr, Option<String>, String)>,
}

impl Mix {
    fn new(rng: &mut Rng) -> Mix {
        let comms = (0..50).map(|i| format!("proc{i:02}")).collect();
        let remotes = (0..2000u32)
            .map(|i| {
                let ip = match i % 20 {
                    0 => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 200) as u8)),
                    1 => IpAddr::V4(Ipv4Addr::new(169, 254, (i / 256) as u8, i as u8)),
                    2..=7 => IpAddr::V4(Ipv4Addr::new(10, 1, (i / 256) as u8, i as u8)),
                    8 => format!("2001:db8::{i:x}")
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    _ => IpAddr::V4(Ipv4Addr::new(
                        93,
                        (rng.below(200) + 1) as u8,
                        (i / 256) as u8,
                        i as u8,
                    )),
                };
                let name = (i % 3 != 0).then(|| format!("host{i}.example.net"));
                let class = if i % 40 == 3 {
                    "lab".to_string() // a --watch-network name
                } else {
                    netmon::history::classify(ip, &[])
                };
                (ip, name, class)
            })
            .collect();
        Mix { comms, remotes }
    }

    fn flow(&self, rng: &mut Rng, id: u64, to_ms: i64) -> FlowRecord {
        // Squaring a uniform pick skews towards the low indexes (busy ones).
        let skew = |rng: &mut Rng, n: u64| {
            let u = rng.below(n);
            (u * u / n) as usize
        };
        let c = skew(rng, self.comms.len() as u64);
        let (ip, name, class) = &self.remotes[skew(rng, self.remotes.len() as u64)];
        let port = [443u16, 443, 443, 80, 53, 22, 5432][rng.below(7) as usize];
        let incoming = rng.below(10) == 0;
        let segment = if rng.below(5) == 0 {
            rng.below(30) as u32 + 1
        } else {
            0
        };
        let (tx_bits, rx_bits) = (rng.below(22), rng.below(24));
        let tx = rng.below(1 << tx_bits);
        let rx = rng.below(1 << rx_bits);
        FlowRecord {
            host: "bench-host".into(),
            flow_id: id,
            segment,
            pid: 1000 + c as u32 * 10 + rng.below(3) as u32,
            start_time: 12345,
            comm: self.comms[c].clone(),
            cmdline: format!(
                "/usr/bin/{} --config /etc/{}.conf --verbose",
                self.comms[c], self.comms[c]
            ),
            uid: Some(1000 + (c % 5) as u32),
            unit: if c % 4 == 0 {
                format!("{}.service", self.comms[c])
            } else {
                String::new()
            },
            container: if c % 7 == 1 {
                format!("{c:012x}")
            } else {
                String::new()
            },
            netns: 4026531840,
            proto: if port == 53 { "udp" } else { "tcp" }.into(),
            direction: if incoming { "in" } else { "out" }.into(),
            local: Some(SocketAddr::new(
                "10.0.0.1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                if incoming {
                    port
                } else {
                    40000 + rng.below(20000) as u16
                },
            )),
            remote: Some(SocketAddr::new(
                *ip,
                if incoming {
                    40000 + rng.below(20000) as u16
                } else {
                    port
                },
            )),
            remote_name: name.clone(),
            class: class.clone(),
            opened_ms: to_ms - 60_000 * i64::from(segment) - 500,
            from_ms: to_ms - if segment > 0 { 60_000 } else { 500 },
            to_ms,
            ended: segment == 0 || rng.below(4) == 0,
            tx_bytes: tx,
            rx_bytes: rx,
            tx_wire_bytes: tx + tx / 20 + 120,
            rx_wire_bytes: rx + rx / 20 + 120,
            tx_packets: tx / 1400 + 2,
            rx_packets: rx / 1400 + 2,
            handshake_us: (port != 53).then(|| 200 + rng.below(5000)),
            retransmits: rng.below(50) / 45,
            rtt_us: (port != 53).then(|| 100 + rng.below(20000)),
            closed_by: (port != 53).then(|| "local".to_string()),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("history-bench: {e}");
            std::process::exit(2);
        }
    };
    let dir: PathBuf =
        std::env::temp_dir().join(format!("netmon-history-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let r = run(&a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        eprintln!("history-bench: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = dir.join("history.db");
    let mut store = Store::open(&db)?.store;
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mix = Mix::new(&mut rng);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start = (now - a.days * DAY_MS).div_euclid(DAY_MS) * DAY_MS;
    let end = start + a.days * DAY_MS;
    // What the daemon keeps by default, without the size cap (so the figures are per flow).
    let limits = Limits {
        max_bytes: u64::MAX,
        ..Limits::default()
    };
    println!(
        "history-bench: {} days x {} flows/day into {}",
        a.days,
        a.flows_per_day,
        db.display()
    );
    let per_second = a.flows_per_day as f64 / 86_400.0;
    let (mut owed, mut written, mut id) = (0.0f64, 0u64, 0u64);
    let (mut write_time, mut prune_time) = (Duration::ZERO, Duration::ZERO);
    let mut batch = Vec::new();
    let mut day1_bytes = None;
    let wall = Instant::now();
    for second in 0..a.days * 86_400 {
        let t = start + second * 1000;
        owed += per_second;
        if second % a.batch_secs == 0 {
            batch.clear();
        }
        while owed >= 1.0 {
            owed -= 1.0;
            id += 1;
            let to_ms = t + 1 + rng.below(999) as i64;
            batch.push(mix.flow(&mut rng, id, to_ms));
        }
        if (second + 1) % a.batch_secs == 0 && !batch.is_empty() {
            let w = Instant::now();
            store.write(&batch)?;
            write_time += w.elapsed();
            written += batch.len() as u64;
        }
        if (second + 1) % 3600 == 0 {
            let p = Instant::now();
            store.prune(t + 1000, &limits)?;
            prune_time += p.elapsed();
        }
        if second + 1 == 86_400 {
            let s = store.stats()?;
            day1_bytes = Some((s.db_bytes, written));
        }
        if (second + 1) % (86_400 * 5) == 0 {
            eprintln!(
                "  … day {} written ({:.0?})",
                (second + 1) / 86_400,
                wall.elapsed()
            );
        }
    }
    let stats = store.stats()?;
    println!("flows written:           {written}");
    println!(
        "write cost:              {:.2} µs/flow ({:.0?} in write, one transaction per {}-s batch of ~{:.1})",
        write_time.as_secs_f64() * 1e6 / written.max(1) as f64,
        write_time,
        a.batch_secs,
        per_second * a.batch_secs as f64
    );
    println!("retention (hourly):      {prune_time:.0?} in total");
    println!("wall time to fill:       {:.0?}", wall.elapsed());
    if let Some((bytes, n)) = day1_bytes {
        println!(
            "db bytes per 1M flows:   {:.1} MiB (after day 1: {:.1} MiB for {n} flows, roll-ups included)",
            bytes as f64 / n.max(1) as f64 * 1e6 / 1048576.0,
            bytes as f64 / 1048576.0
        );
    }
    println!(
        "store at the end:        {:.1} MiB, {} raw flows (7 days kept), {} roll-up rows",
        stats.db_bytes as f64 / 1048576.0,
        stats.flows,
        stats.rollup_rows
    );
    // Reports over the whole range, as `netmon report --since 30d` would ask (`until` now,
    // not on a minute edge).
    let q = |by, every_ms| ReportQuery {
        since_ms: start,
        until_ms: end - 17_345,
        by,
        pid: None,
        comm: None,
        every_ms,
        limit: 20,
    };
    for (label, query) in [
        ("by process", q(By::Process, None)),
        ("by remote", q(By::Remote, None)),
        ("by port", q(By::Port, None)),
        ("by process, every 1h", q(By::Process, Some(3_600_000))),
        (
            "by remote, comm filter",
            ReportQuery {
                comm: Some("proc00".into()),
                ..q(By::Remote, None)
            },
        ),
    ] {
        let t = Instant::now();
        let r = store.report(&query)?;
        println!(
            "report {label:<24} {:>10}  ({} rows, from_rollups {})",
            ms(t.elapsed()),
            r.rows.len(),
            r.from_rollups
        );
    }
    Ok(())
}
