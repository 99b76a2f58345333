//! What the benchmark runs in: network namespaces it creates (loopback, or a veth pair between
//! two), processes it starts, counters it reads from /proc and sysfs. Everything it creates is
//! removed on drop, also when a measurement fails or Ctrl-C arrives.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM only set a flag: the run stops between steps, so every guard still runs.
pub fn catch_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted; namespaces and processes removed");
    }
    Ok(())
}

/// Sleeps in small steps so an interrupt is seen quickly.
pub fn pause(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_stop()?;
        std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A network namespace with `lo` up; deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: String) -> Result<Netns> {
        // A namespace left by a killed earlier run would make `add` fail.
        let _ = Command::new("ip")
            .args(["netns", "delete", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Where a workload runs: its client side, its server side, and the interface the packet-capture
/// tools listen on (in the client's namespace, where they run).
pub struct Env {
    pub name: &'static str,
    pub client_ns: String,
    pub server_ns: String,
    pub server_ip: &'static str,
    pub iface: &'static str,
    /// Loopback carries every packet once (tx = rx); a veth end carries data one way, ACKs back.
    pub loopback: bool,
    _ns: Vec<Netns>,
}

impl Env {
    pub fn loopback(tag: &str) -> Result<Env> {
        let ns = Netns::new(format!("nmbench-{tag}-lo"))?;
        Ok(Env {
            name: "loopback",
            client_ns: ns.0.clone(),
            server_ns: ns.0.clone(),
            server_ip: "127.0.0.1",
            iface: "lo",
            loopback: true,
            _ns: vec![ns],
        })
    }

    pub fn veth(tag: &str) -> Result<Env> {
        let a = Netns::new(format!("nmbench-{tag}-a"))?;
        let b = Netns::new(format!("nmbench-{tag}-b"))?;
        ip(&[
            "-n", &a.0, "link", "add", "nmb0", "type", "veth", "peer", "name", "nmb1", "netns",
            &b.0,
        ])?;
        ip(&["-n", &a.0, "addr", "add", "10.77.0.1/24", "dev", "nmb0"])?;
        ip(&["-n", &b.0, "addr", "add", "10.77.0.2/24", "dev", "nmb1"])?;
        ip(&["-n", &a.0, "link", "set", "nmb0", "up"])?;
        ip(&["-n", &b.0, "link", "set", "nmb1", "up"])?;
        Ok(Env {
            name: "veth",
            client_ns: a.0.clone(),
            server_ns: b.0.clone(),
            server_ip: "10.77.0.2",
            iface: "nmb0",
            loopback: false,
            _ns: vec![a, b],
        })
    }

    /// (bytes, packets) the client-side interface has carried so far.
    pub fn iface_counters(&self) -> Result<(u64, u64)> {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.client_ns,
                "-s",
                "-j",
                "link",
                "show",
                "dev",
                self.iface,
            ])
            .output()
            .context("reading interface counters")?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("parsing `ip -s -j link show dev {}`", self.iface))?;
        let s = &v[0]["stats64"];
        let get = |dir: &str, k: &str| s[dir][k].as_u64().unwrap_or(0);
        Ok(if self.loopback {
            (get("tx", "bytes"), get("tx", "packets"))
        } else {
            (
                get("tx", "bytes") + get("rx", "bytes"),
                get("tx", "packets") + get("rx", "packets"),
            )
        })
    }
}

/// `ip netns exec NS program...` (ip execs the program, so the child's pid is the program's).
pub fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// A child killed and reaped on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process's CPU seconds so far (utime + stime, /proc/PID/stat fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // comm may hold spaces and parentheses; the fields after the last ')' are fixed.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Peak resident set (VmHWM) in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// Resident set now (VmRSS) in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// Anonymous resident memory (RssAnon: heap and stacks, not the binary or mapped BPF ring
/// buffers) in MiB.
pub fn anon_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "RssAnon:")
}

/// A /proc/PID/status line in kB, as MiB (0 when unreadable).
fn status_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// (run_time_ns, run_cnt) summed over the BPF programs `pid` holds open. /proc/PID/fdinfo of a
/// program fd carries the same counters `bpftool prog show` prints, but only for this process's
/// programs, so other netmon instances on the machine do not count.
pub fn bpf_prog_stats(pid: u32) -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (0, 0);
    };
    let mut seen = std::collections::HashSet::new();
    let (mut ns, mut cnt) = (0, 0);
    for e in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // Link fds name a prog_id too; only program fds have prog_type.
        if field("prog_type:").is_none() {
            continue;
        }
        if let Some(id) = field("prog_id:")
            && seen.insert(id)
        {
            ns += field("run_time_ns:").unwrap_or(0);
            cnt += field("run_cnt:").unwrap_or(0);
        }
    }
    (ns, cnt)
}

/// Turns kernel.bpf_stats_enabled on for the run and restores the old value on drop.
pub struct BpfStats(Option<String>);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn enable() -> BpfStats {
        let old = std::fs::read_to_string(BPF_STATS).ok();
        if std::fs::write(BPF_STATS, "1").is_err() {
            eprintln!("bench: cannot enable {BPF_STATS}: kernel-side cost will read 0");
        }
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(BPF_STATS, old.trim());
        }
    }
}

pub fn which(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).exists().then(|| program.into());
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|f| f.exists())
    })
}

/// One JSON line from a child's stdout (the programs used here carry their own watchdogs, so
/// a hung one ends and this returns).
pub fn json_line(out: &mut impl std::io::BufRead, what: &str) -> Result<serde_json::Value> {
    let mut line = String::new();
    out.read_line(&mut line)
        .with_context(|| format!("reading {what}"))?;
    serde_json::from_str(line.trim()).with_context(|| format!("{what} said {line:?}"))
}
