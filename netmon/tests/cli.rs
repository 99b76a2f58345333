//! The real binary, driven without root: bad input gives one line and a distinct exit code.
use std::process::{Command, Output};

fn netmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("running netmon")
}

/// Asserts a clean failure: the exit code, one `netmon: error:` line mentioning `needle`, and
/// no sign of a panic.
fn assert_clean_error(args: &[&str], code: i32, needle: &str) {
    let out = netmon(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "netmon {args:?}: wrong exit code; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "netmon {args:?}: expected one line, got {stderr:?}"
    );
    assert!(
        lines[0].starts_with("netmon: error: "),
        "netmon {args:?}: {stderr:?}"
    );
    assert!(
        lines[0].contains(needle),
        "netmon {args:?}: {:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(
        !stderr.contains("panicked"),
        "netmon {args:?} panicked: {stderr}"
    );
    assert!(out.stdout.is_empty(), "netmon {args:?} printed to stdout");
}

#[test]
fn bad_pids_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--pid", "abc"], "not a number"),
        (&["run", "--pid", "0"], "idle task"),
        (&["run", "--pid", "-5"], "positive"),
        (&["run", "--pid=-5"], "positive"),
        (&["run", "--pid", "99999999999"], "maximum"),
        (&["run", "--pid", ""], "not a number"),
        (&["run", "--pid", "1.5"], "not a number"),
    ];
    for (args, needle) in cases {
        assert_clean_error(args, 2, needle);
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    assert_clean_error(&["run", "--interval", "0"], 2, "between");
    assert_clean_error(&["run", "--interval", "soon"], 2, "not a number");
    assert_clean_error(&["run", "--duration", "-1"], 2, "between");
    assert_clean_error(&["run", "--backend", "magic"], 2, "magic");
    assert_clean_error(&["run", "--follow-children"], 2, "--pid");
    assert_clean_error(&["frobnicate"], 2, "frobnicate");
    assert_clean_error(&["completions", "tcsh"], 2, "tcsh");
    assert_clean_error(&["completions"], 2, "SHELL");
}

#[test]
fn help_and_version_succeed() {
    let out = netmon(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("doctor"));
    let out = netmon(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("netmon "));
}

/// `--version` names the build exactly: crate version, git revision (or "unknown" outside a
/// checkout) and the embedded eBPF object's hash (or that there is none).
#[test]
fn long_version_names_revision_and_ebpf_object() {
    let out = netmon(&["--version"]);
    let line = String::from_utf8(out.stdout).unwrap();
    let want = format!("netmon {} (git ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&want), "{line:?}");
    let rest = line.trim_end().strip_prefix(&want).unwrap();
    let (rev, ebpf) = rest.split_once(", ebpf ").expect("an ebpf part");
    assert!(
        rev == "unknown" || (rev.len() >= 7 && rev.chars().all(|c| c.is_ascii_hexdigit())),
        "{line:?}"
    );
    let ebpf = ebpf.strip_suffix(')').expect("closing parenthesis");
    let hash_ok = ebpf
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 12 && h.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(hash_ok || ebpf == "not embedded", "{line:?}");
    // -V stays the short form, for scripts that parse it.
    let short = netmon(&["-V"]);
    assert_eq!(
        String::from_utf8(short.stdout).unwrap().trim_end(),
        format!("netmon {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_pid_that_does_not_exist_exits_3() {
    // PIDs are below the kernel's pid_max; find one that is free right now.
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let free = (2..max)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid");
    assert_clean_error(&["run", "--pid", &free.to_string()], 3, "no process");
}

#[test]
fn a_malformed_replay_file_is_one_line() {
    let dir = std::env::temp_dir().join(format!("netmon-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.jsonl");
    std::fs::write(&f, "{\"type\":\"tick\",\"at_ms\":1}\nnot json\n").unwrap();
    assert_clean_error(
        &["run", "--replay", f.to_str().unwrap(), "--once"],
        1,
        ":2:",
    );
    assert_clean_error(&["run", "--replay", "/nonexistent/x.jsonl"], 1, "reading");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The whole pipeline without root: a recorded stream through the real binary.
#[test]
fn replay_prints_json_and_table() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/two_procs.jsonl"
    );
    let out = netmon(&["run", "--replay", fixture, "--json", "--interval", "0.05"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["final"], true);
    assert_eq!(last["backend"], "replay");
    let curl = last["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 4242)
        .unwrap();
    assert_eq!(curl["rx_bytes"], 3_145_728);
    let out = netmon(&["run", "--replay", fixture]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("curl -o /dev/null"), "{text}");
    assert!(text.contains("unattributed: no_socket 80 B"), "{text}");
}

/// What the system's user database says `uid` is called (`getent passwd`), its digits when it
/// names nobody: the ground truth netmon's /etc/passwd reading must agree with.
fn passwd_name(uid: u32) -> String {
    let out = std::process::Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output();
    out.ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let line = String::from_utf8_lossy(&o.stdout).into_owned();
            line.split(':').next().map(str::to_string)
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `--tree` prints the table with processes under their parent; it has no meaning for
/// JSON, `--by host` or `serve`, which say so in one line.
#[test]
fn tree_prints_the_table_and_refuses_what_has_no_tree() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/two_procs.jsonl"
    );
    let out = netmon(&["run", "--replay", fixture, "--tree"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PPID USER"), "{text}");
    assert!(text.contains("curl -o /dev/null"), "{text}");
    assert_clean_error(&["run", "--tree", "--json"], 2, "--json");
    assert_clean_error(
        &["run", "--replay", fixture, "--tree", "--by", "host"],
        2,
        "--tree",
    );
    assert_clean_error(&["serve", "--replay", fixture, "--tree"], 2, "--tree");
}

/// `run --by host`: the fixture's one remote host (curl's 127.0.0.1:8080, resolved from
/// big.example.test) with its exact bytes, as a table and in each JSON line; the resolver's
/// UDP socket has no remote and the ownerless wire bytes no endpoints, so neither is a host.
#[test]
fn replay_by_host_prints_the_hosts_table_and_json() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/two_procs.jsonl"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(["run", "--replay", fixture, "--by", "host"])
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("1 remote host  rates per second over 2 s, 10 s, 40 s"),
        "{text}"
    );
    assert!(lines[2].starts_with("HOST "), "{text}");
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "127.0.0.1",
            "big.example.test",
            "loopback",
            "0",
            "B",
            "0",
            "B",
            "0",
            "B",
            "0",
            "B",
            "0",
            "B",
            "0",
            "B",
            "3.00",
            "MiB"
        ],
        "{text}"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert!(!text.contains("curl"), "no process table: {text}");

    let out = netmon(&[
        "run",
        "--replay",
        fixture,
        "--by",
        "host",
        "--json",
        "--interval",
        "0.05",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["final"], true);
    // The snapshot is all there, the host rates added.
    assert_eq!(last["processes"].as_array().unwrap().len(), 2, "{last}");
    let rates = last["host_rates"].as_array().unwrap();
    assert_eq!(rates.len(), 1, "{last}");
    let h = &rates[0];
    assert_eq!(h["remote"], "127.0.0.1");
    assert_eq!(h["name"], "big.example.test");
    assert_eq!(h["class"], "loopback");
    assert_eq!(h["tx_bytes"], 120);
    assert_eq!(h["rx_bytes"], 3_145_728);
    assert_eq!((&h["connections"], &h["processes"]), (&1.into(), &1.into()));
    assert_eq!(h["tx_rate"].as_array().unwrap().len(), 3);
    // The cumulative per-host rows come along.
    assert_eq!(last["hosts"][0]["rx_bytes"], 3_145_728);

    // Without --by host the lines are as before: no host rows.
    let out = netmon(&["run", "--replay", fixture, "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(last.get("hosts").is_none() && last.get("host_rates").is_none());
    assert_clean_error(&["run", "--by", "port"], 2, "port");
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `serve_replay` once the replay is done (a few intervals; the totals then stay).
fn served(extra: &[&str]) -> (std::process::Child, String) {
    let r = serve_replay(extra, "http");
    std::thread::sleep(std::time::Duration::from_millis(500));
    r
}

/// The `/api/v1/processes` row of pid 4242 (curl) of a serve_replay.
fn api_curl_row(addr: &str) -> serde_json::Value {
    let procs = http_get(addr, "/api/v1/processes");
    let body = procs.split("\r\n\r\n").nth(1).unwrap_or_default();
    let list: serde_json::Value = serde_json::from_str(body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 4242)
        .cloned()
        .unwrap()
}

/// Command lines reach the endpoint only when asked for: the fixture's curl was given a URL.
#[test]
fn the_endpoint_shows_command_lines_only_when_asked() {
    let (mut child, addr) = served(&[]);
    let hidden = api_curl_row(&addr);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(hidden["cmdline"], "", "{hidden}");
    assert_eq!(hidden["comm"], "curl", "the process is still named");
    let (mut child, addr) = served(&["--api-cmdlines"]);
    let shown = api_curl_row(&addr);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        shown["cmdline"],
        "curl -o /dev/null http://big.example.test:8080/big"
    );
}

/// `serve` from a recorded stream: the scrape endpoint answers with the ground truth.
#[test]
fn serve_exposes_metrics_health_and_processes() {
    let (mut child, addr) = served(&[]);
    let metrics = http_get(&addr, "/metrics");
    let health = http_get(&addr, "/healthz");
    let curl = api_curl_row(&addr);
    let missing = http_get(&addr, "/nope");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert_eq!(curl["rx_bytes"], 3_145_728);
    // Parent and user from the fixture's process record; the name is this machine's for
    // uid 1000 (its digits where none has it).
    assert_eq!(
        (&curl["ppid"], &curl["uid"]),
        (&1.into(), &1000.into()),
        "{curl}"
    );
    assert_eq!(curl["user"], passwd_name(1000), "{curl}");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for want in [
        "netmon_process_network_receive_bytes_total{comm=\"curl\",unit=\"\",container=\"\"} 3145728",
        "netmon_process_network_transmit_bytes_total{comm=\"resolved\",unit=\"\",container=\"\"} 300",
        "netmon_unattributed_bytes_total{reason=\"no_socket\"} 80",
        "backend=\"replay\"} 1",
    ] {
        assert!(metrics.contains(want), "missing {want:?} in\n{metrics}");
    }
}

#[test]
fn serve_on_a_taken_port_is_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/two_procs.jsonl"
    );
    assert_clean_error(
        &["serve", "--replay", fixture, "--listen", &addr],
        1,
        "already in use",
    );
    assert_clean_error(
        &["serve", "--listen", "not-an-address"],
        2,
        "not-an-address",
    );
}

/// Starts `serve` on a replay and returns it with the address it printed.
fn serve_replay(extra: &[&str], scheme: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/two_procs.jsonl"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(["serve", "--replay", fixture, "--listen", "127.0.0.1:0"])
        .args(["--interval", "0.05", "--duration", "20"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let prefix = format!("netmon: serving /metrics on {scheme}://");
    let addr = line
        .trim()
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, addr)
}

/// HTTP status code curl saw, and the body.
fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (installed by scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

/// `--web-config`: TLS with the given certificate and bcrypt basic auth, as Prometheus'
/// exporter toolkit configures them.
#[test]
fn web_config_serves_tls_and_checks_basic_auth() {
    let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let dir = std::env::temp_dir().join(format!("netmon-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let cfg = dir.join("web.yml");
    std::fs::write(
        &cfg,
        format!(
            "tls_server_config:\n  cert_file: {tls}/cert.pem\n  key_file: {tls}/key.pem\nbasic_auth_users:\n  prom: '{hash}'\n"
        ),
    )
    .unwrap();
    let (mut child, addr) = serve_replay(&["--web-config", cfg.to_str().unwrap()], "https");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let url = format!("https://{addr}/metrics");
    let ca = format!("{tls}/cert.pem");
    let ok = curl(&["--cacert", &ca, "-u", "prom:s3cret", &url]);
    let wrong = curl(&["--cacert", &ca, "-u", "prom:nope", &url]);
    let anonymous = curl(&["--cacert", &ca, &url]);
    let plain = curl(&[&format!("http://{addr}/metrics")]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ok.0, "200", "{ok:?}");
    assert!(
        ok.1.contains("netmon_process_network_receive_bytes_total{comm=\"curl\""),
        "{}",
        ok.1
    );
    assert_eq!(wrong.0, "401");
    assert_eq!(anonymous.0, "401");
    assert_ne!(
        plain.0, "200",
        "plain HTTP must not be served on a TLS port"
    );
}

#[test]
fn a_bad_web_config_is_one_line() {
    let dir = std::env::temp_dir().join(format!("netmon-badweb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/events/two_procs.jsonl"
    );
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/key.pem");
    let cases = [
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: k.pem\n",
            "cert_file",
        ),
        (
            &*format!("tls_server_config:\n  cert_file: {key}\n  key_file: {key}\n"),
            "no PEM certificate",
        ),
        ("basic_auth_users:\n  prom: hunter2\n", "bcrypt"),
        ("listen: 1\n", "unknown field"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = dir.join(format!("web{i}.yml"));
        std::fs::write(&f, text).unwrap();
        assert_clean_error(
            &[
                "serve",
                "--replay",
                fixture,
                "--web-config",
                f.to_str().unwrap(),
            ],
            2,
            want,
        );
    }
    assert_clean_error(
        &[
            "serve",
            "--replay",
            fixture,
            "--web-config",
            "/nonexistent/web.yml",
        ],
        2,
        "reading --web-config",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file of its own in the temp directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("netmon-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What `config init` prints passes `config check`, which prints the defaults.
#[test]
fn config_init_output_passes_config_check() {
    let out = netmon(&["config", "init"]);
    assert_eq!(out.status.code(), Some(0));
    let template = String::from_utf8(out.stdout).unwrap();
    assert!(template.starts_with("# netmon settings"), "{template}");
    assert_eq!(netmon(&["config", "init", "-"]).stdout, template.as_bytes());
    let file = TempFile::new("init.toml", &template);
    let out = netmon(&["config", "check", file.path()]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert!(out.stderr.is_empty(), "{}", text_of(&out));
    assert!(shown.contains("is valid"), "{shown}");
    assert!(shown.contains("\nlisten = \"127.0.0.1:9742\""), "{shown}");
    assert!(shown.contains("\nretention = \"30d\"\n"), "{shown}");
    // --config names the file to check too.
    let out = netmon(&["--config", file.path(), "config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_bad_config_file_is_one_line_and_exit_2() {
    let file = TempFile::new("bad.toml", "interval = 1\nlisen = \"0.0.0.0:9742\"\n");
    let want = format!(
        "{}:2: unknown key \"lisen\" (did you mean \"listen\"?)",
        file.path()
    );
    assert_clean_error(&["config", "check", file.path()], 2, &want);
    // serve and run read it (before anything else happens) ...
    assert_clean_error(&["--config", file.path(), "serve"], 2, &want);
    assert_clean_error(&["run", "--once", "--config", file.path()], 2, &want);
    let file = TempFile::new("span.toml", "\n[history]\nretention = \"30x\"\n");
    assert_clean_error(
        &["config", "check", file.path()],
        2,
        &format!(
            "{}:3: retention: \"30x\" is not a span like 30m, 6h, 2d or 1w",
            file.path()
        ),
    );
    let file = TempFile::new("syntax.toml", "interval = [\n");
    assert_clean_error(&["config", "check", file.path()], 2, "invalid TOML");
    // ... and a file named by --config must exist.
    assert_clean_error(
        &["--config", "/nonexistent/netmon.toml", "serve"],
        2,
        "config file /nonexistent/netmon.toml: no such file",
    );
    assert_clean_error(
        &["config", "check", "/nonexistent/netmon.toml"],
        2,
        "no such file",
    );
}

#[test]
fn config_init_keeps_an_existing_file() {
    let file = TempFile::new("keep.toml", "interval = 2\n");
    assert_clean_error(&["config", "init", file.path()], 2, "--force");
    assert_eq!(std::fs::read_to_string(&file.0).unwrap(), "interval = 2\n");
    let out = netmon(&["config", "init", "--force", file.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let written = std::fs::read_to_string(&file.0).unwrap();
    assert_eq!(written.as_bytes(), netmon(&["config", "init"]).stdout);
}

/// The real `serve` takes the file's settings where no flag is given: the file's listen
/// address loses to --listen (else it could not bind port 1), its api_cmdlines applies.
#[test]
fn serve_takes_the_file_where_no_flag_is_given() {
    let file = TempFile::new(
        "serve.toml",
        "listen = \"127.0.0.1:1\"\napi_cmdlines = true\n",
    );
    let (mut child, addr) = served(&["--config", file.path()]);
    let row = api_curl_row(&addr);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        row["cmdline"],
        "curl -o /dev/null http://big.example.test:8080/big"
    );
}
