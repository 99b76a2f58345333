//! The monitors under test: how each is started, and what its own output says about the bytes of
//! the processes the workload ran (netmon serve: /api/v1/processes and /metrics; netmon run: the
//! last plain table or JSON object it printed to a pipe; nethogs: `-t` trace lines in
//! total-bytes mode; bandwhich: `--raw` lines, which name processes but carry no PID).
use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::Stdio,
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::bench_env::{Env, Proc, in_ns};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    Baseline,
    /// `netmon serve`, what a deployment runs (recording its history).
    Netmon,
    /// `netmon serve --no-history`: what recording history costs is the difference.
    NetmonNoHistory,
    /// `netmon run` printing its plain table to a pipe.
    NetmonRun,
    /// `netmon run --json --interval 1` to a pipe.
    NetmonJson,
    Nethogs,
    Bandwhich,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Baseline => "baseline",
            Tool::Netmon => "netmon serve",
            Tool::NetmonNoHistory => "netmon serve --no-history",
            Tool::NetmonRun => "netmon run",
            Tool::NetmonJson => "netmon run --json",
            Tool::Nethogs => "nethogs",
            Tool::Bandwhich => "bandwhich",
        }
    }

    pub fn is_netmon(self) -> bool {
        matches!(
            self,
            Tool::Netmon | Tool::NetmonNoHistory | Tool::NetmonRun | Tool::NetmonJson
        )
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
    /// netmon: kernel records lost, summed over every place they can be lost.
    pub lost: Option<u64>,
    /// netmon: TCP sockets it tied to the workload's processes.
    pub tracked_sockets: Option<u64>,
    /// netmon (where its output carries exact bytes): (payload sent, received) per PID of the
    /// workload.
    pub per_pid: Option<HashMap<u32, (u64, u64)>>,
    /// netmon serve recording history: (flow records written, database bytes).
    pub history: Option<(u64, u64)>,
}

pub struct Running {
    pub tool: Tool,
    proc: Option<Proc>,
    out: PathBuf,
    http: Option<String>,
    /// netmon run: the thread draining its stdout, which returns the last table or JSON line.
    drain: Option<JoinHandle<String>>,
}

impl Running {
    /// Starts `tool` watching `env` and returns once it is attached.
    pub fn start(tool: Tool, env: &Env, bins: &Binaries, dir: &Path) -> Result<Running> {
        let out = dir.join(format!("{}.out", tool.name().replace([' ', '-'], "")));
        let file = || File::create(&out).context("creating a tool output file");
        let mut drain = None;
        let (proc, http) = match tool {
            Tool::Baseline => (None, None),
            Tool::NetmonRun | Tool::NetmonJson => {
                let json = tool == Tool::NetmonJson;
                let mut c = std::process::Command::new(&bins.netmon);
                c.args(["run", "--interval", "1"]);
                if json {
                    c.arg("--json");
                }
                // Its stderr goes to a file: a few lines at most, and what a failed start said.
                let err_path = out.with_extension("err");
                let mut child = c
                    .stdout(Stdio::piped())
                    .stderr(File::create(&err_path).context("creating netmon's stderr file")?)
                    .spawn()
                    .context("starting netmon run")?;
                let stdout = child.stdout.take().context("netmon stdout")?;
                let p = Proc(child);
                let (first_tx, first_rx) = mpsc::channel();
                drain = Some(std::thread::spawn(move || {
                    keep_last_output(stdout, json, first_tx)
                }));
                // The first snapshot is printed from the main loop, which starts only once the
                // kernel programs are attached.
                if first_rx.recv_timeout(Duration::from_secs(30)).is_err() {
                    let said = std::fs::read_to_string(&err_path).unwrap_or_default();
                    bail!(
                        "{} printed nothing within 30 s; stderr: {:?}",
                        tool.name(),
                        said.trim()
                    );
                }
                (Some(p), None)
            }
            Tool::Netmon | Tool::NetmonNoHistory => {
                // serve is what a deployment runs; it sees every namespace from the root one.
                let mut c = std::process::Command::new(&bins.netmon);
                c.args(["serve", "--listen", "127.0.0.1:0", "--interval", "1"]);
                if tool == Tool::Netmon {
                    // It records history, as deployed, into the run's own directory.
                    c.arg("--db").arg(dir.join("history.db"));
                } else {
                    c.arg("--no-history");
                }
                let mut child = c
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
            drain,
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
            Tool::Netmon | Tool::NetmonNoHistory => {
                let addr = self.http.clone().unwrap_or_default();
                let procs: serde_json::Value =
                    serde_json::from_str(&http_get(&addr, "/api/v1/processes")?)
                        .context("parsing /api/v1/processes")?;
                let metrics = http_get(&addr, "/metrics")?;
                let db = self.out.with_file_name("history.db");
                netmon_report(&procs, &metrics, who, &db)
            }
            Tool::NetmonRun | Tool::NetmonJson => {
                if let Some(p) = self.proc.as_mut() {
                    // SIGTERM ends `run` like Ctrl-C: it drains the kernel once more and prints
                    // the final snapshot.
                    p.stop(Duration::from_secs(10));
                }
                let last = self
                    .drain
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                if self.tool == Tool::NetmonJson {
                    let v: serde_json::Value = serde_json::from_str(&last)
                        .with_context(|| format!("netmon run --json's last line: {last:.200}"))?;
                    netmon_json_report(&v, who)
                } else {
                    netmon_table_report(&last)?
                }
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

/// Reads `netmon run`'s stdout to the end and returns the last JSON line or the last table (a
/// table starts at its `netmon  backend` header line); only that much is kept, so memory stays
/// flat however long the run. Says on `first` when the first output arrived.
fn keep_last_output(out: impl Read, json: bool, first: mpsc::Sender<()>) -> String {
    let mut lines = BufReader::new(out);
    let (mut last, mut current) = (String::new(), String::new());
    let mut line = String::new();
    let mut started = false;
    while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
        if !started {
            started = true;
            let _ = first.send(());
        }
        if json {
            if line.starts_with('{') {
                std::mem::swap(&mut last, &mut line);
            }
        } else {
            if line.starts_with("netmon  backend") {
                last = std::mem::take(&mut current);
            }
            current.push_str(&line);
        }
        line.clear();
    }
    if json { last } else { current }
}

/// Payload per workload PID and the workload's total, from netmon's process rows (JSON). A PID
/// may have more than one row (a reused PID); their bytes add up.
fn per_pid(processes: &serde_json::Value, who: &Who) -> (HashMap<u32, (u64, u64)>, f64, u64) {
    let mut by_pid: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut tracked = 0;
    for p in processes.as_array().into_iter().flatten() {
        let pid = p["pid"].as_u64().unwrap_or(0) as u32;
        if who.pids.contains(&pid) {
            let e = by_pid.entry(pid).or_default();
            e.0 += p["tx_bytes"].as_u64().unwrap_or(0);
            e.1 += p["rx_bytes"].as_u64().unwrap_or(0);
            tracked += p["opened"]["tcp"].as_u64().unwrap_or(0);
        }
    }
    let attributed = by_pid
        .values()
        .map(|&(tx, rx)| (tx + rx) as f64)
        .sum::<f64>()
        + 0.0;
    (by_pid, attributed, tracked)
}

fn share(unknown: f64, wire: f64) -> f64 {
    if unknown + wire > 0.0 {
        unknown / (unknown + wire)
    } else {
        0.0
    }
}

/// `db`: serve's history database (its size with its write-ahead log is what recording cost
/// in disk).
fn netmon_report(procs: &serde_json::Value, metrics: &str, who: &Who, db: &Path) -> Report {
    let history_file_bytes = || {
        ["", "-wal"]
            .iter()
            .filter_map(|ext| {
                std::fs::metadata(format!("{}{ext}", db.display()))
                    .ok()
                    .map(|m| m.len())
            })
            .sum::<u64>()
    };
    let wire: f64 = procs
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            p["tx_wire_bytes"].as_f64().unwrap_or(0.0) + p["rx_wire_bytes"].as_f64().unwrap_or(0.0)
        })
        .sum();
    let (by_pid, attributed, tracked) = per_pid(procs, who);
    let unknown = metric_sum(metrics, "netmon_unattributed_bytes_total", None) as f64;
    Report {
        attributed,
        unknown_share: Some(share(unknown, wire)),
        lost: Some(metric_sum(metrics, "netmon_events_lost_total", None)),
        tracked_sockets: Some(tracked),
        per_pid: Some(by_pid),
        history: metrics
            .contains("netmon_history_records_written_total")
            .then(|| {
                (
                    metric_sum(metrics, "netmon_history_records_written_total", None),
                    // The metric is refreshed once a minute; the file is now.
                    history_file_bytes(),
                )
            }),
    }
}

/// `netmon run --json`: the final object's processes, totals, unattributed and lost sections.
fn netmon_json_report(snap: &serde_json::Value, who: &Who) -> Report {
    let (by_pid, attributed, tracked) = per_pid(&snap["processes"], who);
    let sum = |k: &str, field: &str| -> f64 {
        snap[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r[field].as_f64())
            .sum()
    };
    let t = &snap["totals"];
    let wire =
        t["tx_wire_bytes"].as_f64().unwrap_or(0.0) + t["rx_wire_bytes"].as_f64().unwrap_or(0.0);
    Report {
        attributed,
        unknown_share: Some(share(sum("unattributed", "bytes"), wire)),
        lost: Some(sum("lost", "count") as u64),
        tracked_sockets: Some(tracked),
        per_pid: Some(by_pid),
        history: None,
    }
}

/// `netmon run`'s plain table: only its footer is exact (`lost: none` or `lost: SOURCE N ...`,
/// wrapped onto indented lines); its byte columns are rounded for reading (`1.23 MiB`), so it
/// gives no byte accuracy.
fn netmon_table_report(table: &str) -> Result<Report> {
    let mut lines = table.lines().skip_while(|l| !l.starts_with("lost:"));
    let first = lines
        .next()
        .with_context(|| format!("no `lost:` line in netmon run's last table: {table:.300}"))?;
    let mut text = first.to_string();
    text.extend(
        lines
            .take_while(|l| l.starts_with("  "))
            .map(|l| format!(" {l}")),
    );
    let lost = text
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok())
        .sum();
    Ok(Report {
        lost: Some(lost),
        ..Report::default()
    })
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
    fn netmon_counts_the_workload_pids_and_loss_from_every_source() {
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
        let r = netmon_report(
            &procs,
            metrics,
            &who(),
            Path::new("/nonexistent/history.db"),
        );
        assert_eq!(r.attributed, 15.0);
        assert_eq!(r.lost, Some(10));
        assert_eq!(r.per_pid.unwrap()[&22749], (10, 5));
        assert_eq!(r.tracked_sockets, Some(2));
        assert_eq!(r.unknown_share, Some(50.0 / 250.0));
    }

    #[test]
    fn netmon_json_gives_bytes_per_pid_and_loss() {
        let snap = serde_json::json!({
            "processes": [
                {"pid": 22749, "tx_bytes": 10, "rx_bytes": 5, "opened": {"tcp": 1}},
                {"pid": 22749, "tx_bytes": 1, "rx_bytes": 0, "opened": {"tcp": 1}},
                {"pid": 7, "tx_bytes": 100, "rx_bytes": 100}
            ],
            "totals": {"tx_wire_bytes": 150, "rx_wire_bytes": 50},
            "unattributed": [{"reason": "no_socket", "bytes": 50, "packets": 1}],
            "lost": [{"source": "ring_buffer", "count": 4}, {"source": "channel", "count": 1}]
        });
        let r = netmon_json_report(&snap, &who());
        assert_eq!(r.per_pid.unwrap()[&22749], (11, 5));
        assert_eq!(r.attributed, 16.0);
        assert_eq!(r.lost, Some(5));
        assert_eq!(r.unknown_share, Some(50.0 / 250.0));
    }

    #[test]
    fn netmon_table_loss_is_read_from_the_wrapped_footer() {
        let none =
            "netmon  backend x\n  TOTAL\nunattributed: none\nlost: none\ndns names: 0 held\n";
        assert_eq!(netmon_table_report(none).unwrap().lost, Some(0));
        let some = "lost: ring_buffer 12 released_map\n  3\ndns names: 0 held, 0 evicted\n";
        assert_eq!(netmon_table_report(some).unwrap().lost, Some(15));
        assert!(netmon_table_report("netmon  backend x\n").is_err());
    }

    #[test]
    fn only_the_last_output_is_kept() {
        let (tx, rx) = mpsc::channel();
        let text = "netmon  backend a\nlost: none\nnetmon  backend b\nlost: x 1\n";
        let last = keep_last_output(text.as_bytes(), false, tx);
        assert_eq!(last, "netmon  backend b\nlost: x 1\n");
        assert!(rx.try_recv().is_ok());
        let (tx, _rx) = mpsc::channel();
        let last = keep_last_output("{\"a\":1}\n{\"a\":2}\n".as_bytes(), true, tx);
        assert_eq!(last, "{\"a\":2}\n");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
