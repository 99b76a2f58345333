//! The bad-input matrix: every flag of `run`, `serve` and `doctor` fed values that are
//! not numbers, negative, zero or huge, plus unknown backends, malformed networks, unreadable or
//! malformed config and replay files and a taken port. Each case must end in exactly one
//! `netmon: error:` line naming the problem, a non-zero exit code, nothing on stdout and no panic
//! or backtrace (RUST_BACKTRACE=1 is set so a panic could not hide one).
//!
//! Needs no root: every case fails before netmon touches the kernel (replay stands in for it
//! where a case needs to get past flag parsing). The table is printed so CI logs show it.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use netmon_tests::netmon_bin;

/// One row of the matrix.
struct Case {
    args: Vec<String>,
    code: i32,
    /// Part of the message the user must see.
    says: &'static str,
}

fn case(args: &[&str], code: i32, says: &'static str) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        says,
    }
}

/// A scratch directory removed on drop (also when an assertion fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        // One directory per test: tests run in parallel threads of one process.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nmbad-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, contents: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../netmon/tests/fixtures/events/two_procs.jsonl")
        .to_str()
        .unwrap()
        .to_string()
}

/// Flags `run` and `serve` share, each with values that must be refused.
fn shared_flag_cases(cmd: &str) -> Vec<Case> {
    let c = |rest: &[&str], code, says| {
        let mut a = vec![cmd];
        a.extend_from_slice(rest);
        case(&a, code, says)
    };
    vec![
        c(&["--pid", "abc"], 2, "not a number"),
        c(&["--pid", "-5"], 2, "positive"),
        c(&["--pid=-1"], 2, "positive"),
        c(&["--pid", "0"], 2, "idle task"),
        c(&["--pid", "99999999999"], 2, "maximum PID"),
        c(&["--pid", "1.5"], 2, "not a number"),
        c(&["--pid", ""], 2, "not a number"),
        c(&["--pid", "1", "--pid", "x"], 2, "'x'"),
        c(&["--pid"], 2, "a value is required for '--pid"),
        c(&["--interval", "soon"], 2, "not a number of seconds"),
        c(&["--interval", "-1"], 2, "between 0.05 and 3600"),
        c(&["--interval", "0"], 2, "between 0.05 and 3600"),
        c(&["--interval", "1e9"], 2, "between 0.05 and 3600"),
        c(&["--interval", "nan"], 2, "between 0.05 and 3600"),
        c(&["--interval", "inf"], 2, "between 0.05 and 3600"),
        c(&["--duration", "x"], 2, "not a number of seconds"),
        c(&["--duration", "-3"], 2, "between 0 and 31536000"),
        c(&["--duration", "1e12"], 2, "between 0 and 31536000"),
        c(&["--backend", "magic"], 2, "possible values"),
        c(&["--backend", ""], 2, "possible values"),
        c(&["--listen", "nope"], 2, "'--listen <ADDR>'"),
        c(&["--listen", "127.0.0.1:99999"], 2, "'--listen <ADDR>'"),
        c(&["--listen", "localhost:9742"], 2, "'--listen <ADDR>'"),
        c(&["--metrics-top-k", "abc"], 2, "'--metrics-top-k <N>'"),
        c(&["--metrics-top-k", "-1"], 2, "'-1'"),
        c(
            &["--metrics-top-k", "99999999999999999999999"],
            2,
            "too large",
        ),
        c(&["--metrics-ttl", "abc"], 2, "not a number of seconds"),
        c(&["--metrics-ttl", "-1"], 2, "'-1'"),
        c(
            &["--metrics-ttl", "99999999999"],
            2,
            "between 0 and 31536000",
        ),
        c(&["--watch-network", "foo"], 2, "NAME=CIDR"),
        c(&["--watch-network", "=10.0.0.0/8"], 2, "must be letters"),
        c(&["--watch-network", "a b=10.0.0.0/8"], 2, "must be letters"),
        c(
            &["--watch-network", "x=1.2.3.4/99"],
            2,
            "not an address range",
        ),
        c(
            &["--watch-network", "x=10.0.0.0/8,zzz"],
            2,
            "\"zzz\" is not an address range",
        ),
        c(&["--watch-network", "x="], 2, "no address ranges"),
        c(&["--once", "--once"], 2, "cannot be used multiple times"),
        c(&["--follow-children"], 2, "--pid"),
        c(
            &["--no-such-flag"],
            2,
            "unexpected argument '--no-such-flag'",
        ),
    ]
}

fn file_cases(s: &Scratch) -> Vec<Case> {
    let fx = fixture();
    let not_json = s.file(
        "not_json.jsonl",
        b"{\"type\":\"tick\",\"at_ms\":1}\nnot json\n",
    );
    let unknown = s.file("unknown.jsonl", b"{\"type\":\"nope\"}\n");
    let binary = s.file("binary.jsonl", b"\xff\xfe\x00\n");
    let yaml_garbage = s.file("garbage.yml", b"garbage: [\n");
    let yaml_field = s.file("field.yml", b"listen: 1\n");
    let plain_pw = s.file("plain.yml", b"basic_auth_users:\n  prom: hunter2\n");
    let no_cert = s.file(
        "nocert.yml",
        b"tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.pem\n",
    );
    let dir = s.0.to_str().unwrap().to_string();
    let web = |f: &str| {
        vec!["serve", "--replay", &fx, "--web-config", f]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let owned = |args: Vec<String>, code, says| Case { args, code, says };
    vec![
        case(
            &["run", "--once", "--replay", "/nonexistent/x.jsonl"],
            1,
            "reading /nonexistent/x.jsonl",
        ),
        case(&["run", "--once", "--replay", &dir], 1, "Is a directory"),
        case(
            &["run", "--once", "--replay", &not_json],
            1,
            "not_json.jsonl:2: not a netmon event",
        ),
        case(
            &["run", "--once", "--replay", &unknown],
            1,
            "unknown variant `nope`",
        ),
        case(&["run", "--once", "--replay", &binary], 1, "valid UTF-8"),
        owned(
            web("/nonexistent/web.yml"),
            2,
            "reading --web-config /nonexistent/web.yml",
        ),
        owned(web(&dir), 2, "Is a directory"),
        owned(web(&yaml_garbage), 2, "unknown field `garbage`"),
        owned(web(&yaml_field), 2, "unknown field `listen`"),
        owned(web(&plain_pw), 2, "bcrypt"),
        owned(web(&no_cert), 2, "cert_file"),
    ]
}

fn doctor_cases() -> Vec<Case> {
    vec![
        case(&["doctor", "extra"], 2, "unexpected argument 'extra'"),
        case(&["doctor", "--pid", "1"], 2, "unexpected argument '--pid'"),
        case(&["doctor", "--json=x"], 2, "'--json'"),
        case(&["frobnicate"], 2, "unrecognized subcommand 'frobnicate'"),
        case(&["--verbose=x"], 2, "'x'"),
    ]
}

/// The fleet's commands: a bad hub URL (one or in a list) is a usage error naming it, an
/// unreachable hub a failure naming it; serve checks --hub before it loads anything.
fn fleet_cases(s: &Scratch) -> Vec<Case> {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dead = format!("nats://127.0.0.1:{port}");
    let conf = s.file("hub.toml", b"[hub]\nurl = \"http://hub:4222\"\n");
    vec![
        case(
            &["fleet", "report", "--hub", "http://x:1"],
            2,
            "hub URL \"http://x:1\"",
        ),
        case(
            &["fleet", "flows", "--hub", "nats://a:1,bogus url"],
            2,
            "hub URL \"bogus url\"",
        ),
        case(&["fleet", "events", "--hub", ","], 2, "no hub given"),
        case(
            &["fleet", "top", "--once", "--hub", &dead],
            1,
            "Connection refused",
        ),
        case(
            &["hub", "init", "--hub", "nats://hub:port"],
            2,
            "hub URL \"nats://hub:port\"",
        ),
        case(&["hub", "init", "--hub", &dead], 1, "Connection refused"),
        case(
            &["--config", &conf, "fleet", "report"],
            2,
            "hub URL \"http://hub:4222\"",
        ),
        case(
            &[
                "serve",
                "--hub",
                "http://x:1",
                "--record",
                "--db",
                &s.file("a.db", b""),
                "--replay",
                &fixture(),
            ],
            2,
            "hub URL",
        ),
    ]
}

/// The packet path's commands: every case fails before anything is attached.
fn capture_cases(s: &Scratch) -> Vec<Case> {
    let empty = s.file("empty-filter.json", b"{\"TCP\": }");
    let bad_line = s.file("filters.txt", b"# comment\ntcp\nudp.dport ==\n");
    let mut v = vec![
        case(
            &["capture", "-i", "nosuch0"],
            2,
            "no interface named \"nosuch0\"",
        ),
        case(&["capture", "--snaplen", "0"], 2, "0 is not in 1..=256"),
        case(&["capture", "--snaplen", "257"], 2, "257 is not in 1..=256"),
        case(&["capture", "--snaplen", "x"], 2, "'--snaplen <SNAPLEN>'"),
        case(&["capture", "--sample", "0"], 2, "0 is not in 1..=1000000"),
        case(
            &["capture", "--sample", "-3"],
            2,
            "unexpected argument '-3'",
        ),
        case(
            &["capture", "--rate-limit", "lots"],
            2,
            "'--rate-limit <PPS>'",
        ),
        case(&["capture", "--count", "0"], 2, "'--count <N>'"),
        case(&["capture", "--duration", "-1"], 2, "between 0 and"),
        case(&["capture", "--pid", "0"], 2, "idle task"),
        case(
            &["capture", "-f", "tcp.dport =="],
            2,
            "--filter #1: column 13: expected a value after '=='",
        ),
        case(
            &["capture", "-f", "nosuchfield == 1"],
            2,
            "unknown field 'nosuchfield'",
        ),
        case(&["capture", "-f", "tcp and (udp"], 2, "--filter #1: column"),
        case(&["capture", "-f", "{\"TCP\": 5}"], 2, "--filter #1"),
        case(
            &["capture", "--filter-file", "/nonexistent/f.json"],
            2,
            "reading --filter-file /nonexistent/f.json",
        ),
        case(
            &["follow", "garbage"],
            2,
            "expected PORT, ADDR:PORT or ADDR:PORT-ADDR:PORT",
        ),
        case(
            &["follow", "10.0.0.1:80-10.0.0.2"],
            2,
            "expected PORT, ADDR:PORT or ADDR:PORT-ADDR:PORT",
        ),
        case(&["follow"], 2, "<CONN>"),
        case(&["interfaces", "extra"], 2, "unexpected argument 'extra'"),
        case(&["routes", "--json=x"], 2, "'--json'"),
    ];
    v.push(Case {
        args: vec!["capture".into(), "--filter-file".into(), empty],
        code: 2,
        says: "--filter-file",
    });
    v.push(Case {
        args: vec!["capture".into(), "--filter-file".into(), bad_line],
        code: 2,
        says: "line 3: column",
    });
    v
}

/// A bad-input run taking longer than this has hung.
const HANG_SECS: u64 = 30;

/// Runs one case; returns the stderr line or a description of what went wrong.
fn check(c: &Case) -> Result<String, String> {
    // Bad input must not hang either: coreutils' timeout kills a run that does (exit 137).
    let out = Command::new("timeout")
        .args(["-s", "KILL", &HANG_SECS.to_string()])
        .arg(netmon_bin())
        .args(&c.args)
        .env("RUST_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running netmon: {e}"))?;
    if out.status.code() == Some(137) {
        return Err(format!("hung: killed after {HANG_SECS} s"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if stderr.contains("panicked") || stderr.contains("stack backtrace") {
        return Err(format!("panicked: {stderr}"));
    }
    if out.status.code() != Some(c.code) {
        return Err(format!(
            "exit {:?}, want {}; stderr: {stderr:?}",
            out.status.code(),
            c.code
        ));
    }
    if lines.len() != 1 || !lines[0].starts_with("netmon: error: ") {
        return Err(format!("want one `netmon: error:` line, got {stderr:?}"));
    }
    if !lines[0].contains(c.says) {
        return Err(format!("{:?} does not say {:?}", lines[0], c.says));
    }
    if !out.stdout.is_empty() {
        return Err(format!(
            "printed to stdout: {:?}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(lines[0].to_string())
}

/// Runs every case, prints the table, and fails listing every case that broke (not just the
/// first), so one CI log shows the whole state of the matrix.
fn run_matrix(cases: &[Case]) {
    let mut failures = Vec::new();
    println!("| exit | args | message part | netmon said |");
    println!("|---|---|---|---|");
    for c in cases {
        let args = c.args.join(" ");
        match check(c) {
            Ok(line) => println!("| {} | `{args}` | {} | {line} |", c.code, c.says),
            Err(e) => {
                println!("| {} | `{args}` | {} | FAILED: {e} |", c.code, c.says);
                failures.push(format!("netmon {args}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn run_flags() {
    run_matrix(&shared_flag_cases("run"));
}

#[test]
fn serve_flags() {
    run_matrix(&shared_flag_cases("serve"));
}

#[test]
fn doctor_and_top_level() {
    run_matrix(&doctor_cases());
}

#[test]
fn capture_follow_interfaces_routes() {
    let s = Scratch::new();
    run_matrix(&capture_cases(&s));
}

#[test]
fn replay_and_web_config_files() {
    let s = Scratch::new();
    run_matrix(&file_cases(&s));
}

#[test]
fn fleet_hub_urls() {
    let s = Scratch::new();
    run_matrix(&fleet_cases(&s));
}

#[test]
fn a_taken_port() {
    // Held for the whole case, so the port is certainly in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let fx = fixture();
    run_matrix(&[
        case(
            &["serve", "--replay", &fx, "--listen", &addr],
            1,
            "already in use",
        ),
        case(
            &["run", "--replay", &fx, "--listen", &addr, "--duration", "5"],
            1,
            "already in use",
        ),
    ]);
}
