//! Helpers for the Prometheus tests: a `netmon serve` and a real Prometheus on loopback ports,
//! a minimal HTTP client, the text exposition format, and trafficgen runs that outlive one
//! call. Every process and directory is removed on drop.
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Guard, Lines, Netns, netmon_bin, trafficgen_bin};

/// The repository's `contrib/` directory.
pub fn contrib_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contrib")
}

/// A loopback port nobody listens on right now (the kernel picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}

/// A directory under the system temp dir, removed with everything in it on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("nmprom-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("creating a temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Percent-encodes a URL query value (RFC 3986 unreserved characters stay as they are).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` over HTTP/1.0 (so the answer is never chunked); returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header from {addr}{path}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line from {addr}{path}: {head}"))?;
    Ok((status, body.to_string()))
}

/// Polls `f` every 100 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One sample of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses `name{a="b",c="d"} value` lines; comments and blank lines are skipped. Label values
/// may contain escaped quotes and commas.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_sample)
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (n, v) = line.split_once(' ')?;
            return Some(Sample {
                name: n.to_string(),
                labels: BTreeMap::new(),
                value: parse_value(v)?,
            });
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.char_indices().peekable();
    let end = loop {
        let (i, c) = chars.next()?;
        if c == '}' {
            break i;
        }
        if c == ',' || c == ' ' {
            continue;
        }
        let key_start = i;
        let mut key_end = i;
        for (j, c) in chars.by_ref() {
            if c == '=' {
                key_end = j;
                break;
            }
        }
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            let (_, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.insert(rest[key_start..key_end].to_string(), value);
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(&rest[end + 1..])?,
    })
}

fn parse_value(v: &str) -> Option<f64> {
    // A timestamp may follow the value.
    match v.split_whitespace().next()? {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        n => n.parse().ok(),
    }
}

/// `netmon serve` on a free loopback port, killed on drop.
pub struct Serve {
    pub addr: SocketAddr,
    child: Guard,
    stderr_path: PathBuf,
    _dir: TempDir,
}

impl Serve {
    /// Starts `netmon serve --listen <free port> ARGS` (optionally through `wrapper`, e.g.
    /// setpriv) and waits until /healthz answers.
    pub fn start(tag: &str, wrapper: &[&str], args: &[&str]) -> Serve {
        Serve::start_probed(tag, wrapper, args, |addr| {
            matches!(http_get(addr, "/healthz"), Ok((200, _)))
        })
    }

    /// Like [`Serve::start`], with the caller's own "is it up" probe (e.g. over TLS).
    pub fn start_probed(
        tag: &str,
        wrapper: &[&str],
        args: &[&str],
        ready: impl Fn(SocketAddr) -> bool,
    ) -> Serve {
        let dir = TempDir::new(&format!("serve-{tag}"));
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let stderr_path = dir.0.join("stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(netmon_bin());
                c
            }
            None => Command::new(netmon_bin()),
        };
        let child = cmd
            .args(["serve", "--listen", &addr.to_string()])
            // History goes to this test's directory (removed with it), never /var/lib.
            .arg("--db")
            .arg(dir.0.join("netmon.db"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting netmon serve");
        let mut serve = Serve {
            addr,
            child: Guard(child),
            stderr_path,
            _dir: dir,
        };
        let up = wait_for(Duration::from_secs(20), || {
            if let Ok(Some(status)) = serve.child.0.try_wait() {
                panic!(
                    "netmon serve exited with {status}: {}",
                    serve.stderr().trim()
                );
            }
            ready(addr).then_some(())
        });
        assert!(
            up.is_some(),
            "netmon serve did not come up within 20 s: {}",
            serve.stderr()
        );
        serve
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// GET that must answer 200.
    pub fn get(&self, path: &str) -> String {
        match http_get(self.addr, path) {
            Ok((200, body)) => body,
            Ok((code, body)) => panic!("GET {path}: HTTP {code}: {body}"),
            Err(e) => panic!("GET {path}: {e}; netmon stderr: {}", self.stderr()),
        }
    }

    pub fn metrics(&self) -> Vec<Sample> {
        parse_metrics(&self.get("/metrics"))
    }

    /// The `/api/v1/processes` row of `pid`, if netmon has one.
    pub fn process(&self, pid: u64) -> Option<Value> {
        let v: Value = serde_json::from_str(&self.get("/api/v1/processes")).ok()?;
        let rows = match &v {
            Value::Array(a) => a,
            other => other["processes"].as_array()?,
        };
        rows.iter().find(|p| p["pid"] == pid).cloned()
    }

    /// A `/proc/<netmon>/status` field in kB (VmHWM, VmRSS).
    pub fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }
}

/// Debian's Prometheus on a free loopback port with a throw-away TSDB, scraping `target`
/// every second as job `netmon`.
pub struct Prometheus {
    pub addr: SocketAddr,
    // Held for its Drop: kills Prometheus.
    _child: Guard,
    dir: TempDir,
}

/// An external program on PATH (or in /usr/sbin, /sbin), or a failure naming the package that
/// provides it. Root tests fail rather than skip without their tools: a skipped run would look
/// like a passed one.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found: install Debian's {package} (scripts/setup.sh does); under \
                 `cargo xtask vm-test` it must be among the guest's host tools"
            )
        })
}

impl Prometheus {
    pub fn start(target: SocketAddr) -> Prometheus {
        Prometheus::start_with_jobs(&Prometheus::job(target))
    }

    /// The plain scrape job `netmon` for `target`.
    pub fn job(target: SocketAddr) -> String {
        format!("  - job_name: netmon\n    static_configs:\n      - targets: [\"{target}\"]\n")
    }

    /// Alerts Prometheus currently holds (pending or firing), from /api/v1/alerts.
    pub fn alerts(&self) -> Vec<Value> {
        http_get(self.addr, "/api/v1/alerts")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v["data"]["alerts"].as_array().cloned())
            .unwrap_or_default()
    }

    /// `jobs`: the YAML list under `scrape_configs:` (items indented two spaces).
    pub fn start_with_jobs(jobs: &str) -> Prometheus {
        Prometheus::start_with(jobs, &[])
    }

    /// Scrape jobs as for [`Prometheus::start_with_jobs`], plus rule files to evaluate every
    /// second.
    pub fn start_with(jobs: &str, rule_files: &[PathBuf]) -> Prometheus {
        let bin = require_tool("prometheus", "prometheus");
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        let rules: String = rule_files
            .iter()
            .map(|r| format!("  - {}\n", r.display()))
            .collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n{rules}scrape_configs:\n{jobs}"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.0.join("log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let p = Prometheus {
            addr,
            _child: Guard(child),
            dir,
        };
        let ready = wait_for(Duration::from_secs(30), || {
            matches!(http_get(addr, "/-/ready"), Ok((200, _))).then_some(())
        });
        assert!(
            ready.is_some(),
            "prometheus not ready within 30 s: {}",
            p.log()
        );
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("log")).unwrap_or_default()
    }

    /// An instant query through the HTTP API; Err carries Prometheus' error text.
    pub fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let (code, body) = http_get(self.addr, &format!("/api/v1/query?query={}", url_encode(q)))?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {code}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {code}: {}", v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// A range query over the last `secs` seconds at 1 s steps: each series' values in order.
    pub fn range(&self, q: &str, secs: u64) -> Result<Vec<Vec<f64>>, String> {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={end}&step=1",
            url_encode(q),
            end.saturating_sub(secs)
        );
        let (code, body) = http_get(self.addr, &path)?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {code}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {code}: {}", v["error"]));
        }
        Ok(v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| {
                series["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|pair| pair[1].as_str()?.parse().ok())
                    .collect()
            })
            .collect())
    }

    /// The value of a query that returns exactly one sample.
    pub fn scalar(&self, q: &str) -> Option<f64> {
        match self.query(q).ok()?.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

/// A trafficgen run in a network namespace of its own, driven step by step: `go` starts the
/// work, `result` waits for its JSON line, dropping kills it and deletes the namespace.
pub struct Traffic {
    // Fields drop in order: the process dies before its namespace goes.
    child: Guard,
    out: Lines,
    pub pid: u64,
    pub ns: Netns,
}

impl Traffic {
    pub fn start(tag: &str, args: &[&str]) -> Traffic {
        let ns = Netns::new(&format!("nmprom-{tag}"));
        let bin = trafficgen_bin();
        let mut program = vec![bin.to_str().unwrap()];
        program.extend_from_slice(args);
        let (child, out, pid) = crate::start_ready(&ns, &program);
        Traffic {
            child,
            out,
            pid,
            ns,
        }
    }

    /// Sends one line on trafficgen's stdin (`go`, or the line a swarm waits for to exit).
    pub fn say(&mut self, line: &str) {
        writeln!(self.child.0.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    pub fn result(&self, timeout: Duration) -> Value {
        let line = self
            .out
            .next(timeout)
            .expect("trafficgen gave no result in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    pub fn wait(&mut self) {
        let _ = self.child.0.wait();
    }
}

/// A counter of the namespace's /proc/net/snmp, e.g. `snmp(ns, "Tcp", "RetransSegs")`.
pub fn snmp(ns: &Netns, group: &str, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat", "/proc/net/snmp"])
        .output()
        .expect("reading /proc/net/snmp in the namespace");
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{group}:");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(rows.len() >= 2, "no {group} rows in /proc/net/snmp");
    rows[0]
        .split_whitespace()
        .zip(rows[1].split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("{group} {name} not in /proc/net/snmp"))
}

/// Every `netmon_[a-z_]+` identifier in `text`.
pub fn netmon_identifiers(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].find("netmon_") {
        let start = i + off;
        let glued = start > 0 && {
            let b = bytes[start - 1];
            b.is_ascii_alphanumeric() || b == b'_'
        };
        let mut end = start + "netmon_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if !glued {
            out.push(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines() {
        let text = "# HELP x y\n# TYPE x counter\n\
                    netmon_build_info{backend=\"tp_btf\",version=\"0.1.0\"} 1\n\
                    plain 2.5\n\
                    odd{comm=\"a \\\"b\\\", c\",pid=\"7\"} 12 1700000000\n\
                    h_bucket{le=\"+Inf\"} 3\n";
        let s = parse_metrics(text);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "netmon_build_info");
        assert_eq!(s[0].labels["backend"], "tp_btf");
        assert_eq!(s[1].value, 2.5);
        assert!(s[1].labels.is_empty());
        assert_eq!(s[2].labels["comm"], "a \"b\", c");
        assert_eq!(s[2].labels["pid"], "7");
        assert_eq!(s[2].value, 12.0);
        assert_eq!(s[3].labels["le"], "+Inf");
    }

    #[test]
    fn identifiers() {
        let ids = netmon_identifiers(
            "rate(netmon_process_tcp_rtt_seconds_bucket{a=\"b\"}[5m]) / x_netmon_no + netmon_up2",
        );
        assert_eq!(ids, ["netmon_process_tcp_rtt_seconds_bucket", "netmon_up"]);
    }

    #[test]
    fn query_encoding() {
        assert_eq!(url_encode("a{pid=\"1\"}"), "a%7Bpid%3D%221%22%7D");
    }
}
