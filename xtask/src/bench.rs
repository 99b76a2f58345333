//! `cargo xtask bench`: netmon against nethogs and bandwhich on the same machine, in one go.
//!
//! For every round (interleaved, tool order rotated per round so drift hits every tool alike),
//! every environment (loopback in a namespace; a veth pair between two namespaces) and every
//! workload (iperf3 TCP and UDP at full rate, loadgen's short-lived connections, sustained
//! connection churn, idle sockets) it runs the workload once with no monitor and once under each
//! tool, and records throughput, the tool's CPU and peak RSS, and what the tool attributed
//! against the workload's ground truth. The churn workload also runs netmon as `run` (table and
//! JSON to a pipe), samples its VmHWM early and at the end, checks bytes per process exactly and
//! compares loadgen's connection latency with the no-monitor run of the same round.
//! bench_report turns the samples into the Markdown tables, the plot and the target verdicts.
use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    bench_env::{
        BpfStats, Env, Proc, anon_rss_mib, bpf_prog_stats, catch_signals, check_stop, cpu_seconds,
        in_ns, json_line, pause, peak_rss_mib, rss_mib, which,
    },
    bench_report::{self, Churn, Sample},
    bench_tools::{Binaries, Running, Tool, Who},
};

#[derive(clap::Args)]
pub struct Args {
    /// Rounds of every (environment, workload, tool); medians and spread are over rounds.
    #[arg(long, default_value = "3")]
    rounds: usize,
    /// One tiny round (baseline and netmon, loopback only) that checks the whole pipeline,
    /// writing into a temporary directory unless --out is given.
    #[arg(long)]
    quick: bool,
    /// Short-lived connections per second for the loadgen workload.
    #[arg(long, default_value = "20000")]
    rate: f64,
    /// Where the table and plot go (default: bench-results/ in the workspace).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only the workloads whose label contains this (e.g. `short`, `churn`, `idle`,
    /// `iperf3 UDP`).
    #[arg(long)]
    only: Option<String>,
    /// Baseline and netmon only (no nethogs, no bandwhich): to measure a change quickly.
    #[arg(long)]
    netmon_only: bool,
    /// Seconds of the connection-churn workload (at --rate connections/s); shorter runs are
    /// for trying a change, the targets are meant for the default.
    #[arg(long, default_value = "60", value_parser = clap::value_parser!(u32).range(1..=600))]
    churn_secs: u32,
}

impl Args {
    /// The smoke run `cargo xtask test` does.
    pub fn quick() -> Args {
        Args {
            rounds: 1,
            quick: true,
            rate: 20_000.0,
            out: None,
            only: None,
            netmon_only: false,
            churn_secs: 60,
        }
    }
}

/// Workload sizes: full, or the seconds-long smoke run.
struct Sizes {
    secs: f64,
    rate: f64,
    conn_bytes: usize,
    idle: Vec<usize>,
    hold: Duration,
    churn_secs: u32,
    churn_rate: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    IperfTcp,
    IperfUdp,
    Conns,
    /// Sustained connections at the set rate for this many seconds.
    Churn(u32),
    Idle(usize),
}

impl Workload {
    pub fn label(self) -> String {
        match self {
            Workload::IperfTcp => "iperf3 TCP".into(),
            Workload::IperfUdp => "iperf3 UDP".into(),
            Workload::Conns => "short connections".into(),
            Workload::Churn(secs) => format!("connection churn {secs} s"),
            Workload::Idle(n) => format!("{}k idle sockets", n / 1000),
        }
    }
}

/// The workload's own account of what happened.
struct Truth {
    who: Who,
    /// Bytes the workload's processes sent + received (payload).
    bytes: f64,
    /// Sockets the workload held (idle workloads).
    sockets: u64,
    /// The tool's VmRSS while the idle sockets were held, in MiB (its largest sample), and
    /// its anonymous part at that sample.
    held_rss_mib: Option<f64>,
    held_anon_mib: Option<f64>,
    throughput: Option<f64>,
    unit: &'static str,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark needs root (namespaces, BPF, packet capture): run it with sudo");
    }
    catch_signals();
    let bins = prepare(root, args.quick)?;
    let sizes = if args.quick {
        Sizes {
            secs: 1.0,
            rate: 500.0,
            conn_bytes: 1000,
            idle: vec![1000],
            hold: Duration::from_millis(300),
            churn_secs: 1,
            churn_rate: 500.0,
        }
    } else {
        Sizes {
            secs: 4.0,
            rate: args.rate,
            conn_bytes: 1000,
            idle: vec![10_000, 100_000],
            hold: Duration::from_secs(3),
            churn_secs: args.churn_secs,
            churn_rate: args.rate,
        }
    };
    let rounds = if args.quick { 1 } else { args.rounds.max(1) };
    let mut tools = vec![Tool::Baseline, Tool::Netmon];
    let peers = !args.quick && !args.netmon_only;
    if peers {
        tools.extend([Tool::Nethogs, Tool::Bandwhich]);
    }
    // Churn also runs netmon's other outputs: printing a snapshot every interval is work serve
    // does not do. The smoke run keeps to serve so it stays seconds long.
    let mut churn_tools = vec![Tool::Baseline, Tool::Netmon];
    if !args.quick {
        churn_tools.extend([Tool::NetmonNoHistory, Tool::NetmonRun, Tool::NetmonJson]);
    }
    if peers {
        churn_tools.extend([Tool::Nethogs, Tool::Bandwhich]);
    }
    // The smoke run's table and plot are written (that is what it checks) and then removed.
    let quick_out = (args.quick && args.out.is_none()).then(|| {
        TempDir(std::env::temp_dir().join(format!("nmbench-quick-{}", std::process::id())))
    });
    let out_dir = match (&args.out, &quick_out) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.0.clone(),
        (None, None) => root.join("bench-results"),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let scratch = tempdir()?;
    let _stats = BpfStats::enable();
    let tag = std::process::id().to_string();
    let mut samples = Vec::new();
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let envs: Vec<fn(&str) -> Result<Env>> = if args.quick {
            vec![Env::loopback]
        } else {
            vec![Env::loopback, Env::veth]
        };
        for make_env in envs {
            let env = make_env(&tag)?;
            let mut workloads = vec![
                Workload::IperfTcp,
                Workload::IperfUdp,
                Workload::Conns,
                Workload::Churn(sizes.churn_secs),
            ];
            // Idle sockets only in the loopback namespace: both ends live in one namespace, and
            // the cost being measured is per socket, not per link.
            if env.loopback {
                workloads.extend(sizes.idle.iter().map(|&n| Workload::Idle(n)));
            }
            let wanted = |w: &Workload| {
                args.only
                    .as_deref()
                    .is_none_or(|o| w.label().to_lowercase().contains(&o.to_lowercase()))
            };
            for w in workloads.into_iter().filter(wanted) {
                let mut order = if matches!(w, Workload::Churn(_)) {
                    churn_tools.clone()
                } else {
                    tools.clone()
                };
                let n = order.len();
                order.rotate_left(round % n);
                for &tool in &order {
                    check_stop()?;
                    eprint!(
                        "bench: {:>4}s round {}/{rounds} {} {:<22} {:<17} ",
                        started.elapsed().as_secs(),
                        round + 1,
                        env.name,
                        w.label(),
                        tool.name()
                    );
                    let s = measure(tool, w, &env, &bins, &sizes, &scratch.0, round);
                    // Ctrl-C reaches the workload's processes too; say what really happened.
                    check_stop()?;
                    let s = s.with_context(|| {
                        format!("{} under {} on {}", w.label(), tool.name(), env.name)
                    })?;
                    eprintln!("{}", s.brief());
                    samples.push(s);
                }
            }
        }
    }
    let fleet = if args.quick
        || args
            .only
            .as_deref()
            .is_some_and(|o| !o.to_lowercase().contains("fleet"))
    {
        None
    } else {
        Some(fleet_run(&bins)?)
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "undated".into());
    let setup = format!(
        "{} round(s); {} s per throughput run; short connections: {} /s of {} bytes from 2 \
         processes; connection churn: {} /s for {} s; idle sockets: {}; kernel {}, {} CPUs (shared)",
        rounds,
        sizes.secs,
        sizes.rate,
        sizes.conn_bytes,
        sizes.churn_rate,
        sizes.churn_secs,
        sizes
            .idle
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let report = bench_report::write(
        &samples,
        &out_dir,
        &date,
        &setup,
        sizes.rate,
        sizes.churn_rate,
        fleet.as_deref(),
    )?;
    println!("{}", report.markdown);
    if !args.quick && args.out.is_none() {
        bench_report::update_page(&root.join("docs/benchmarks.md"), &report.table)?;
    }
    eprintln!(
        "bench: wrote {} and {}",
        report.md_path.display(),
        report.png_path.display()
    );
    Ok(())
}

/// The simulated fleet (fleet-bench: 200 agents of the real publishing code × 100 flows/s
/// into a nats-server it starts on loopback, 30 s): its printed figures and verdicts.
fn fleet_run(bins: &Binaries) -> Result<String> {
    let exe = bins.netmon.with_file_name("fleet-bench");
    eprintln!("bench: fleet: 200 agents x 100 flows/s for 30 s into one hub");
    let out = Command::new(&exe)
        .args(["--agents", "200", "--rate", "100", "--secs", "30"])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    crate::check(out.status, "fleet-bench")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

fn tempdir() -> Result<TempDir> {
    let d = std::env::temp_dir().join(format!("nmbench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(TempDir(d))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds netmon and loadgen, and installs the peers (full run only) once, saying so.
fn prepare(root: &Path, quick: bool) -> Result<Binaries> {
    crate::build_ebpf(root)?;
    let status = crate::release_bins_command(root).status()?;
    crate::check(status, "building netmon and loadgen")?;
    let mut apt = Vec::new();
    if which("iperf3").is_none() {
        apt.push("iperf3");
    }
    if !quick && which("nethogs").is_none() {
        apt.push("nethogs");
    }
    if !Path::new(bench_report::FONT).exists() {
        apt.push("fonts-dejavu-core");
    }
    if !apt.is_empty() {
        eprintln!("bench: installing {} (apt)", apt.join(" "));
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&apt)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!("apt-get install {} failed", apt.join(" "));
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let bw_root = PathBuf::from(home).join(".cache/netmon/bandwhich");
    let bandwhich = bw_root.join("bin/bandwhich");
    if !quick && !bandwhich.exists() {
        eprintln!(
            "bench: installing bandwhich from crates.io into {} (once; several minutes on 2 cores)",
            bw_root.display()
        );
        let status = crate::cargo()
            .args(["install", "bandwhich", "--locked", "--root"])
            .arg(&bw_root)
            .status()?;
        crate::check(status, "cargo install bandwhich")?;
    }
    let target = crate::target_dir(root).join("release");
    Ok(Binaries {
        netmon: target.join("netmon"),
        loadgen: target.join("loadgen"),
        nethogs: which("nethogs"),
        bandwhich: bandwhich.exists().then_some(bandwhich),
    })
}

fn measure(
    tool: Tool,
    w: Workload,
    env: &Env,
    bins: &Binaries,
    sizes: &Sizes,
    scratch: &Path,
    round: usize,
) -> Result<Sample> {
    if let Workload::Churn(secs) = w {
        return churn(tool, secs, env, bins, sizes, scratch, round);
    }
    let running = Running::start(tool, env, bins, scratch)?;
    let pid = running.pid();
    let cpu0 = pid.map(cpu_seconds);
    let (bytes0, pkts0) = env.iface_counters()?;
    let bpf0 = pid.map(bpf_prog_stats);
    let truth = workload(w, env, bins, sizes, pid)?;
    // The tools report once a second: let each see the end of the workload.
    pause(Duration::from_millis(1300))?;
    let (bytes1, pkts1) = env.iface_counters()?;
    let cpu = pid.zip(cpu0).map(|(p, c0)| cpu_seconds(p) - c0);
    let rss = pid.map(peak_rss_mib);
    let bpf = pid.zip(bpf0).map(|(p, (ns0, n0))| {
        let (ns1, n1) = bpf_prog_stats(p);
        (ns1.saturating_sub(ns0), n1.saturating_sub(n0))
    });
    let report = running.finish(&truth.who)?;
    let accuracy = match (tool, w) {
        (Tool::Baseline, _) => None,
        (t, Workload::Idle(_)) if t.is_netmon() => report
            .tracked_sockets
            .map(|t| t as f64 / truth.sockets.max(1) as f64),
        (_, Workload::Idle(_)) => None,
        _ => Some(report.attributed / truth.bytes.max(1.0)),
    };
    Ok(Sample {
        env: env.name,
        workload: w,
        tool,
        round,
        throughput: truth.throughput,
        unit: truth.unit,
        cpu_s: cpu,
        bytes: bytes1.saturating_sub(bytes0),
        packets: pkts1.saturating_sub(pkts0),
        rss_mib: rss,
        held_rss_mib: truth.held_rss_mib,
        held_anon_mib: truth.held_anon_mib,
        accuracy,
        unknown: report.unknown_share,
        bpf_ns_per_run: bpf
            .filter(|&(_, n)| n > 0)
            .map(|(ns, n)| ns as f64 / n as f64),
        lost: report.lost,
        churn: None,
    })
}

/// Connection churn at `sizes.churn_rate` for `secs`: the tool's CPU over the load only (stat
/// read just before the clients start and just after they end) per connection, its VmHWM early
/// in the load (10 s in, or half-way through a shorter run) and at the end, loss, bytes per
/// process against what loadgen's clients and server counted, and loadgen's latency.
fn churn(
    tool: Tool,
    secs: u32,
    env: &Env,
    bins: &Binaries,
    sizes: &Sizes,
    scratch: &Path,
    round: usize,
) -> Result<Sample> {
    let running = Running::start(tool, env, bins, scratch)?;
    let pid = running.pid();
    let loadgen = bins.loadgen.to_str().context("loadgen path")?;
    let mut server = Proc(
        in_ns(&env.server_ns, loadgen)
            .args(["serve", "7298", "2"])
            .arg(sizes.conn_bytes.to_string())
            // Its own watchdog: the load, the tool's start and end, and a margin.
            .arg((secs + 120).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting loadgen serve")?,
    );
    let mut server_out = std::io::BufReader::new(server.0.stdout.take().context("loadgen stdout")?);
    let ready = json_line(&mut server_out, "loadgen serve")?;
    let server_pid = ready["ready"].as_u64().context("loadgen serve: no pid")? as u32;
    let (bytes0, pkts0) = env.iface_counters()?;
    let bpf0 = pid.map(bpf_prog_stats);
    let cpu0 = pid.map(cpu_seconds);
    let started = Instant::now();
    let mut clients = Proc(
        in_ns(&env.client_ns, loadgen)
            .arg("connect")
            .arg(format!("{}:7298", env.server_ip))
            .arg(sizes.churn_rate.to_string())
            .arg(secs.to_string())
            .arg(sizes.conn_bytes.to_string())
            .arg("2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting loadgen connect")?,
    );
    let early_at = Duration::from_secs_f64((f64::from(secs) / 2.0).min(10.0));
    let mut hwm_early = None;
    // loadgen's own watchdog ends it; this loop only watches for the early sample and Ctrl-C.
    while clients.0.try_wait()?.is_none() {
        check_stop()?;
        if hwm_early.is_none() && started.elapsed() >= early_at {
            hwm_early = pid.map(peak_rss_mib);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = pid.zip(cpu0).map(|(p, c0)| cpu_seconds(p) - c0);
    let hwm_end = pid.map(peak_rss_mib);
    let bpf = pid.zip(bpf0).map(|(p, (ns0, n0))| {
        let (ns1, n1) = bpf_prog_stats(p);
        (ns1.saturating_sub(ns0), n1.saturating_sub(n0))
    });
    let (bytes1, pkts1) = env.iface_counters()?;
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = clients.0.stdout.take() {
        o.read_to_string(&mut out)?;
    }
    if let Some(mut e) = clients.0.stderr.take() {
        e.read_to_string(&mut err)?;
    }
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .with_context(|| format!("loadgen connect said {out:?} {err:?}"))?;
    // The tools report once a second: let each see the end of the workload.
    pause(Duration::from_millis(1300))?;
    let mut stdin = server.0.stdin.take().context("loadgen serve stdin")?;
    writeln!(stdin, "report").context("asking loadgen serve for its counts")?;
    let srv = json_line(&mut server_out, "loadgen serve report")?;
    let mut truth: Vec<(u32, u64, u64)> = v["clients"]
        .as_array()
        .context("loadgen: no clients")?
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            (n("pid") as u32, n("sent"), n("received"))
        })
        .collect();
    truth.push((
        server_pid,
        srv["sent"].as_u64().unwrap_or(0),
        srv["received"].as_u64().unwrap_or(0),
    ));
    // netmon sees every namespace. nethogs and bandwhich watch the client side's interface: on
    // veth the server's sockets live in the other namespace, so they are judged on the clients.
    let visible = if tool.is_netmon() || env.loopback {
        &truth[..]
    } else {
        &truth[..truth.len() - 1]
    };
    let who = Who {
        pids: visible.iter().map(|t| t.0).collect(),
        comm: "loadgen".into(),
    };
    let report = running.finish(&who)?;
    let truth_bytes: u64 = visible.iter().map(|t| t.1 + t.2).sum();
    let connections = v["connections"].as_u64().unwrap_or(0);
    let exact = report.per_pid.as_ref().map(|got| {
        truth
            .iter()
            .filter(|&&(pid, sent, received)| got.get(&pid) == Some(&(sent, received)))
            .count()
    });
    let lat = &v["latency_us"];
    Ok(Sample {
        env: env.name,
        workload: Workload::Churn(secs),
        tool,
        round,
        throughput: v["rate"].as_f64(),
        unit: "conn/s",
        cpu_s: cpu,
        bytes: bytes1.saturating_sub(bytes0),
        packets: pkts1.saturating_sub(pkts0),
        rss_mib: hwm_end,
        held_rss_mib: None,
        held_anon_mib: None,
        accuracy: (tool != Tool::Baseline && tool != Tool::NetmonRun)
            .then(|| report.attributed / (truth_bytes.max(1) as f64)),
        unknown: report.unknown_share,
        bpf_ns_per_run: bpf
            .filter(|&(_, n)| n > 0)
            .map(|(ns, n)| ns as f64 / n as f64),
        lost: report.lost,
        churn: Some(Churn {
            connections,
            latency_p50_us: lat["p50"].as_f64(),
            latency_p99_us: lat["p99"].as_f64(),
            hwm_early_mib: hwm_early,
            early_secs: early_at.as_secs_f64(),
            exact: exact.map(|e| (e, truth.len())),
            history: report.history,
            // Peers run no BPF programs: nothing to show, not zero.
            bpf_ns: bpf.filter(|&(_, n)| n > 0).map(|(ns, _)| ns),
        }),
    })
}

/// Runs the workload; `tool` is the monitor's pid (None for the baseline).
fn workload(
    w: Workload,
    env: &Env,
    bins: &Binaries,
    sizes: &Sizes,
    tool: Option<u32>,
) -> Result<Truth> {
    match w {
        Workload::IperfTcp | Workload::IperfUdp => iperf(w == Workload::IperfUdp, env, sizes),
        Workload::Conns => conns(env, bins, sizes),
        Workload::Churn(_) => unreachable!("churn is measured by churn()"),
        Workload::Idle(n) => idle(n, env, bins, sizes, tool),
    }
}

fn iperf(udp: bool, env: &Env, sizes: &Sizes) -> Result<Truth> {
    let port = "5299";
    let _server = Proc(
        in_ns(&env.server_ns, "iperf3")
            .args(["-s", "-1", "-p", port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting iperf3 -s")?,
    );
    pause(Duration::from_millis(300))?;
    let mut c = in_ns(&env.client_ns, "iperf3");
    c.args(["-c", env.server_ip, "-p", port, "-J", "-t"])
        .arg(sizes.secs.to_string());
    if udp {
        // -b 0: as fast as the sender can go; throughput is what the receiver got.
        c.args(["-u", "-b", "0"]);
    }
    let child = c.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let pid = child.id();
    let out = child.wait_with_output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let end = &v["end"];
    let sent = end["sum_sent"]["bytes"]
        .as_f64()
        .or_else(|| end["sum"]["bytes"].as_f64())
        .context("iperf3 reported no bytes")?;
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .or_else(|| {
            let s = &end["sum"];
            Some(s["bits_per_second"].as_f64()? * (1.0 - s["lost_percent"].as_f64()? / 100.0))
        })
        .context("iperf3 reported no throughput")?;
    Ok(Truth {
        who: Who {
            pids: vec![pid],
            comm: "iperf3".into(),
        },
        bytes: sent,
        sockets: 0,
        held_rss_mib: None,
        held_anon_mib: None,
        throughput: Some(bps),
        unit: "bit/s",
    })
}

fn conns(env: &Env, bins: &Binaries, sizes: &Sizes) -> Result<Truth> {
    let loadgen = bins.loadgen.to_str().context("loadgen path")?;
    let mut server = Proc(
        in_ns(&env.server_ns, loadgen)
            .args(["serve", "7299", "2"])
            .arg(sizes.conn_bytes.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting loadgen serve")?,
    );
    let mut out = std::io::BufReader::new(server.0.stdout.take().context("loadgen stdout")?);
    json_line(&mut out, "loadgen serve")?;
    let res = in_ns(&env.client_ns, loadgen)
        .arg("connect")
        .arg(format!("{}:7299", env.server_ip))
        .arg(sizes.rate.to_string())
        .arg(sizes.secs.to_string())
        .arg(sizes.conn_bytes.to_string())
        .arg("2")
        .output()
        .context("running loadgen connect")?;
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).with_context(|| {
        format!(
            "loadgen connect said {:?}",
            String::from_utf8_lossy(&res.stderr)
        )
    })?;
    let clients = v["clients"].as_array().context("loadgen: no clients")?;
    let mut pids = Vec::new();
    let mut bytes = 0.0;
    for c in clients {
        pids.push(c["pid"].as_u64().unwrap_or(0) as u32);
        bytes += c["sent"].as_f64().unwrap_or(0.0) + c["received"].as_f64().unwrap_or(0.0);
    }
    Ok(Truth {
        who: Who {
            pids,
            comm: "loadgen".into(),
        },
        bytes,
        sockets: 0,
        held_rss_mib: None,
        held_anon_mib: None,
        throughput: v["rate"].as_f64(),
        unit: "conn/s",
    })
}

fn idle(n: usize, env: &Env, bins: &Binaries, sizes: &Sizes, tool: Option<u32>) -> Result<Truth> {
    use std::io::Write;
    let loadgen = bins.loadgen.to_str().context("loadgen path")?;
    let mut p = Proc(
        in_ns(&env.server_ns, loadgen)
            .args(["idle", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting loadgen idle")?,
    );
    let mut out = std::io::BufReader::new(p.0.stdout.take().context("loadgen stdout")?);
    let ready = json_line(&mut out, "loadgen idle")?;
    // The monitor's memory while it holds the sockets: sampled through the hold (its first
    // interval after they opened is when it learns them), the largest sample kept.
    let (mut held_rss_mib, mut held_anon_mib): (Option<f64>, Option<f64>) = (None, None);
    let steps = 10;
    for _ in 0..steps {
        pause(sizes.hold / steps)?;
        if let Some(p) = tool {
            let (rss, anon) = (rss_mib(p), anon_rss_mib(p));
            if rss > held_rss_mib.unwrap_or(0.0) {
                (held_rss_mib, held_anon_mib) = (Some(rss), Some(anon));
            }
        }
    }
    let holders: Vec<u32> = ready["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_u64().map(|p| p as u32))
        .collect();
    if let Some(mut stdin) = p.0.stdin.take() {
        let _ = writeln!(stdin, "done");
    }
    let _ = p.0.wait();
    Ok(Truth {
        who: Who {
            pids: holders,
            comm: "loadgen".into(),
        },
        bytes: 0.0,
        sockets: ready["sockets"].as_u64().unwrap_or(0),
        held_rss_mib,
        held_anon_mib,
        throughput: None,
        unit: "",
    })
}
