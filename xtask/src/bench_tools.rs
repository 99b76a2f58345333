//! The monitors under test: how each is started, and what its own output says about the bytes of
//! the processes the workload ran (netmon: /api/v1/processes and /metrics; nethogs: `-t` trace
//! lines in total-bytes mode; bandwhich: `--raw` lines, which name processes but carry no PID).
use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::bench_env::{Env, Proc, in_ns};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    Baseline,
    Netmon,
    Nethogs,
    Bandwhich,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Baseline => "baseline",
            Tool::Netmon => "netmon",
            Tool::Nethogs => "nethogs",
            Tool::Bandwhich => "bandwhich",
        }
    }
}

pub struct Binaries {
    pub netmon: PathBuf,
    pub loadgen: PathBuf,
    pub nethogs: Option<PathBuf>,
    pub bandwhich: Option<PathBuf>,
}

/// The processes whose bytes the workload knows exactly.
pub struct Who {
    pub pids: Vec<u32>,
    pub comm: String,
}

/// What a tool reported at the end of one measurement.
#[derive(Default, Debug)]
pub struct Report {
    /// Bytes (sent + received) the tool gave to the workload's processes.
    pub attributed: f64,
    /// Share of all bytes the tool saw that it could give to no process.
    pub unknown_share: Option<f64>,
    /// netmon: ring-buffer records lost.
    pub lost: Option<u64>,
    /// netmon: TCP sockets it tied to the workload's processes.
    pub tracked_sockets: Option<u64>,
}

pub struct Running {
    pub tool: Tool,
    proc: Option<Proc>,
    out: PathBuf,
    http: Option<String>,
}

impl Running {
    /// Starts `tool` watching `env` and returns once it is attached.
    pub fn start(tool: Tool, env: &Env, bins: &Binaries, dir: &Path) -> Result<Running> {
        let out = dir.join(format!("{}.out", tool.name()));
        let file = || File::create(&out).context("creating a tool output file");
        let (proc, http) = match tool {
            Tool::Baseline => (None, None),
            Tool::Netmon => {
                // serve is what a deployment runs; it sees every namespace from the root one.
                let mut child = std::process::Command::new(&bins.netmon)
                    .args(["serve", "--listen", "127.0.0.1:0", "--interval", "1"])
                    .args(["--metrics-pid-label"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .context("starting netmon")?;
                let err = child.stderr.take().context("netmon stderr")?;
                let p = Proc(child);
                let mut lines = BufReader::new(err);
                let mut first = String::new();
                lines.read_line(&mut first)?;
                let addr = first
                    .trim()
                    .strip_prefix("netmon: serving /metrics on http://")
                    .and_then(|r| r.strip_suffix("/metrics"))
                    .with_context(|| format!("netmon did not start: {first:?}"))?
                    .to_string();
                // Keep draining so a chatty netmon never blocks on a full pipe.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut lines, &mut std::io::sink());
                });
                (Some(p), Some(addr))
            }
            Tool::Nethogs => {
                let bin = bins.nethogs.as_ref().context("nethogs not installed")?;
                let child = in_ns(&env.client_ns, bin.to_str().unwrap())
                    // -v 2: cumulative bytes per process; -C: UDP too; -a: loopback allowed.
                    .args(["-t", "-v", "2", "-C", "-a", "-d", "1", env.iface])
                    .stdout(file()?)
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting nethogs")?;
                (Some(Proc(child)), None)
            }
            Tool::Bandwhich => {
                let bin = bins.bandwhich.as_ref().context("bandwhich not installed")?;
                let child = in_ns(&env.client_ns, bin.to_str().unwrap())
                    .args(["--raw", "--no-resolve", "--interface", env.iface])
                    .stdout(file()?)
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting bandwhich")?;
                (Some(Proc(child)), None)
            }
        };
        let r = Running {
            tool,
            proc,
            out,
            http,
        };
        if matches!(tool, Tool::Nethogs | Tool::Bandwhich) {
            // Both open their capture and read /proc before the first refresh.
            crate::bench_env::pause(Duration::from_millis(1500))?;
            if let Some(p) = &r.proc
                && !Path::new(&format!("/proc/{}", p.pid())).exists()
            {
                bail!("{} exited at start", tool.name());
            }
        }
        Ok(r)
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Stops the tool and reads what it said about `who`.
    pub fn finish(mut self, who: &Who) -> Result<Report> {
        let report = match self.tool {
            Tool::Baseline => Report::default(),
            Tool::Netmon => {
                let addr = self.http.clone().unwrap_or_default();
                let procs: serde_json::Value =
                    serde_json::from_str(&http_get(&addr, "/api/v1/processes")?)
                        .context("parsing /api/v1/processes")?;
                let metrics = http_get(&addr, "/metrics")?;
                netmon_report(&procs, &metrics, who)
            }
            Tool::Nethogs | Tool::Bandwhich => {
                if let Some(p) = self.proc.as_mut() {
                    // SIGINT: both flush and leave their capture cleanly on it.
                    unsafe { libc::kill(p.pid() as i32, libc::SIGINT) };
                    p.stop(Duration::from_secs(3));
                }
                let text = std::fs::read_to_string(&self.out).unwrap_or_default();
                if self.tool == Tool::Nethogs {
                    nethogs_report(&text, who)
                } else {
                    bandwhich_report(&text, who)
                }
            }
        };
        if let Some(p) = self.proc.as_mut() {
            p.stop(Duration::from_secs(10));
        }
        Ok(report)
    }
}

fn http_get(addr: &str, path: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connecting {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let (head, rest) = body
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP response from {addr}{path}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(rest));
    }
    Ok(rest.to_string())
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Sum of a Prometheus counter family's samples whose labels contain `label` (or all of them).
fn metric_sum(text: &str, family: &str, label: Option<&str>) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter(|l| label.is_none_or(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn netmon_report(procs: &serde_json::Value, metrics: &str, who: &Who) -> Report {
    let mut attributed = 0.0;
    let mut tracked = 0;
    let mut wire = 0.0;
    for p in procs.as_array().into_iter().flatten() {
        let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
        wire += f("tx_wire_bytes") + f("rx_wire_bytes");
        let pid = p["pid"].as_u64().unwrap_or(0) as u32;
        if who.pids.contains(&pid) {
            attributed += f("tx_bytes") + f("rx_bytes");
            tracked += p["opened"]["tcp"].as_u64().unwrap_or(0);
        }
    }
    let unknown = metric_sum(metrics, "netmon_unattributed_bytes_total", None) as f64;
    Report {
        attributed,
        unknown_share: Some(if unknown + wire > 0.0 {
            unknown / (unknown + wire)
        } else {
            0.0
        }),
        lost: Some(metric_sum(
            metrics,
            "netmon_events_lost_total",
            Some("source=\"ring_buffer\""),
        )),
        tracked_sockets: Some(tracked),
    }
}

/// nethogs `-t -v 2`: blocks after "Refreshing:" of `program/pid/uid<TAB>sent<TAB>received`,
/// cumulative since start; the last block holds the totals.
fn nethogs_report(text: &str, who: &Who) -> Report {
    let last = text.rsplit("Refreshing:").next().unwrap_or("");
    let mut rows: HashMap<String, f64> = HashMap::new();
    for line in last.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 3 {
            continue;
        }
        let bytes =
            f[1].trim().parse::<f64>().unwrap_or(0.0) + f[2].trim().parse::<f64>().unwrap_or(0.0);
        *rows.entry(f[0].to_string()).or_default() += bytes;
    }
    let total: f64 = rows.values().sum();
    let unknown: f64 = rows
        .iter()
        .filter(|(k, _)| k.starts_with("unknown"))
        .map(|(_, v)| v)
        .sum();
    let attributed = rows
        .iter()
        .filter(|(k, _)| {
            let mut parts = k.rsplitn(3, '/');
            let _uid = parts.next();
            parts
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| who.pids.contains(&pid))
        })
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0; // an empty f64 sum is -0.0, which would print as "-0.0000"
    Report {
        attributed,
        unknown_share: Some(if total > 0.0 { unknown / total } else { 0.0 }),
        ..Report::default()
    }
}

/// bandwhich `--raw`: one `process: <ts> "name" up/down Bps: U/D connections: N` line per process
/// each second. It names processes, not PIDs, so the workload's bytes are those of its name.
fn bandwhich_report(text: &str, who: &Who) -> Report {
    let (mut total, mut unknown, mut attributed) = (0.0, 0.0, 0.0);
    for line in text.lines().filter(|l| l.starts_with("process: ")) {
        let Some((_, rest)) = line.split_once('"') else {
            continue;
        };
        let Some((name, rest)) = rest.split_once('"') else {
            continue;
        };
        let Some(rates) = rest
            .split_once("Bps: ")
            .and_then(|(_, r)| r.split_whitespace().next())
        else {
            continue;
        };
        let (up, down) = rates.split_once('/').unwrap_or((rates, "0"));
        let bytes = up.parse::<f64>().unwrap_or(0.0) + down.parse::<f64>().unwrap_or(0.0);
        total += bytes;
        if name == "<UNKNOWN>" {
            unknown += bytes;
        } else if name == who.comm {
            attributed += bytes;
        }
    }
    Report {
        attributed,
        unknown_share: Some(if total > 0.0 { unknown / total } else { 0.0 }),
        ..Report::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Who {
        Who {
            pids: vec![22749],
            comm: "iperf3".into(),
        }
    }

    #[test]
    fn nethogs_last_block_is_the_total() {
        let text = "Refreshing:\niperf3/22749/0\t100\t0\n\nRefreshing:\niperf3/22674/0\t810127\t0\n\
                    iperf3/22749/0\t1.91087e+09\t5\nunknown TCP/0/0\t1000\t0\n";
        let r = nethogs_report(text, &who());
        assert_eq!(r.attributed, 1.91087e9 + 5.0);
        let total = 810127.0 + 1.91087e9 + 5.0 + 1000.0;
        assert!((r.unknown_share.unwrap() - 1000.0 / total).abs() < 1e-12);
    }

    #[test]
    fn bandwhich_counts_by_name() {
        let text = "process: <1> \"<UNKNOWN>\" up/down Bps: 300/100 connections: 4\n\
                    process: <1> \"iperf3\" up/down Bps: 1000/0 connections: 1\n\
                    connection: <1> <lo>:1 => 127.0.0.1:5201 (tcp) up/down Bps: 9/9 process: \"iperf3\"\n\
                    process: <2> \"iperf3\" up/down Bps: 500/100 connections: 1\n";
        let r = bandwhich_report(text, &who());
        assert_eq!(r.attributed, 1600.0);
        assert_eq!(r.unknown_share, Some(400.0 / 2000.0));
    }

    #[test]
    fn netmon_counts_the_workload_pids_and_ring_buffer_loss() {
        let procs = serde_json::json!([
            {"pid": 22749, "tx_bytes": 10, "rx_bytes": 5, "tx_wire_bytes": 60, "rx_wire_bytes": 40,
             "opened": {"tcp": 2}},
            {"pid": 1, "tx_bytes": 1, "rx_bytes": 1, "tx_wire_bytes": 50, "rx_wire_bytes": 50,
             "opened": {"tcp": 9}}
        ]);
        let metrics = "# TYPE netmon_events_lost_total counter\n\
                       netmon_events_lost_total{source=\"ring_buffer\"} 7\n\
                       netmon_events_lost_total{source=\"owners_map\"} 3\n\
                       netmon_unattributed_bytes_total{reason=\"no_socket\"} 50\n";
        let r = netmon_report(&procs, metrics, &who());
        assert_eq!(r.attributed, 15.0);
        assert_eq!(r.lost, Some(7));
        assert_eq!(r.tracked_sockets, Some(2));
        assert_eq!(r.unknown_share, Some(50.0 / 250.0));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
