//! The terminal UI end to end: the real `netmon run --pid P` in a tmux pane (160x50), driven by
//! send-keys and read back with capture-pane, on a trafficgen process that holds known sockets
//! in a namespace this test builds (a dummy interface with a permanent neighbour and a route, so
//! the ARP, Traffic and Routing tabs have ground truth too). Ends with the dying-process paths:
//! banner then a key (exit 4), and `--exit-on-death` (exit 4 without a key).
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netmon_tests::{Guard, Lines, Netns, netmon_bin, privileged, trafficgen_bin};
use serde_json::Value;

/// A tmux server of our own (`-S`), so nothing the developer runs in tmux is touched; killed
/// on drop, with every process in its panes, and its socket file removed.
struct Tmux {
    socket: std::path::PathBuf,
}

const SESSION: &str = "nmtui";

impl Tmux {
    fn new() -> Tmux {
        let t = Tmux {
            socket: std::env::temp_dir().join(format!("nmtui-{}.tmux", std::process::id())),
        };
        let ok = t
            .cmd(&["new-session", "-d", "-s", SESSION, "-x", "160", "-y", "50"])
            .args(["env", "PS1=nmtui$ ", "sh"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "tmux new-session failed (is tmux installed? scripts/setup.sh)"
        );
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(args);
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        c
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend_from_slice(keys);
        assert!(
            self.cmd(&args).status().unwrap().success(),
            "send-keys {keys:?}"
        );
    }

    /// Text typed as is (no key names).
    fn literal(&self, text: &str) {
        assert!(
            self.cmd(&["send-keys", "-t", SESSION, "-l", text])
                .status()
                .unwrap()
                .success()
        );
    }

    /// An empty pane (the shell prints RIS), so old output cannot satisfy the next wait.
    fn clear(&self) {
        self.literal("printf '\\033c'");
        self.keys(&["Enter"]);
        self.wait("a cleared pane", 5, |s| s.trim() == "nmtui$");
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", SESSION])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn query(&self, format: &str) -> String {
        let out = self
            .cmd(&["display-message", "-p", "-t", SESSION, format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Polls the pane until `ok` holds; panics with the last screen after `secs`.
    fn wait(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("waited {secs} s for {what}; the pane shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for(&self, needle: &str, secs: u64) -> String {
        self.wait(&format!("{needle:?}"), secs, |s| s.contains(needle))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn ip(ns: &Netns, args: &str) {
    let mut full = vec!["-n", ns.name.as_str()];
    full.extend(args.split_whitespace());
    let ok = Command::new("ip")
        .args(&full)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {full:?} failed");
}

/// The table line whose LOCAL column is `local`, split on whitespace.
fn row_with_local<'a>(screen: &'a str, local: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|t| {
            t.iter()
                .position(|&w| w == local)
                .is_some_and(|i| i > 0 && t[i - 1] == "tcp")
        })
}

/// (TX, RX) of a netmon-tab row: the two "n unit" pairs after LOCAL, REMOTE and STATE.
fn tx_rx(row: &[&str], local: &str) -> (String, String) {
    let i = row.iter().position(|&w| w == local).unwrap();
    let v = &row[i + 3..];
    (format!("{} {}", v[0], v[1]), format!("{} {}", v[2], v[3]))
}

fn title_line(screen: &str) -> &str {
    screen.lines().nth(2).unwrap_or("")
}

/// The "n of m rows" of the table title.
fn row_counts(screen: &str) -> (usize, usize) {
    let t: Vec<&str> = title_line(screen).split_whitespace().collect();
    let i = t
        .iter()
        .position(|&w| w == "of")
        .expect("no row count in the title");
    (t[i - 1].parse().unwrap(), t[i + 1].parse().unwrap())
}

/// The `rates over N s` of the netmon tab's title.
fn rates_period(screen: &str) -> Option<f64> {
    let t = title_line(screen);
    let rest = &t[t.find("rates over ")? + "rates over ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

const SEND: u64 = 3 * 1024 * 1024;

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn tui_on_a_live_process() {
    if !privileged() {
        return;
    }
    // scripts/setup.sh installs tmux; a machine without it fails here with what to run.
    if !netmon_tests::require_tools(&["tmux"]) {
        return;
    }
    let ns = Netns::new("tui");
    ip(&ns, "link add nmtui0 type veth peer name nmtui1");
    ip(&ns, "link set nmtui0 up");
    ip(&ns, "link set nmtui1 up");
    ip(&ns, "addr add 10.123.0.1/24 dev nmtui0");
    ip(
        &ns,
        "neigh add 10.123.0.2 lladdr 02:00:00:00:12:34 dev nmtui0 nud permanent",
    );
    ip(
        &ns,
        "route add 198.51.100.0/24 via 10.123.0.2 dev nmtui0 metric 7",
    );
    // Lets root open a ping socket, so the ICMP tab has one.
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-c"])
        .arg("echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "setting ping_group_range");

    let mut traffic = Guard(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(trafficgen_bin())
            .args(["hold", &SEND.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting trafficgen"),
    );
    let gen_out = Lines::new(traffic.0.stdout.take().unwrap());
    let ready: Value = serde_json::from_str(
        &gen_out
            .next(Duration::from_secs(10))
            .expect("no ready line"),
    )
    .unwrap();
    let pid = ready["ready"].as_u64().unwrap();

    let tmux = Tmux::new();
    tmux.wait_for("nmtui$", 10);
    let run = format!(
        "{} run --pid {pid} --interval 1; echo \"netmon exit=$?\"",
        netmon_bin().display()
    );
    tmux.literal(&run);
    tmux.keys(&["Enter"]);
    let first = tmux.wait_for(&format!("pid {pid} (trafficgen)"), 30);
    assert!(
        first.contains("1 netmon │ 2 TCP │ 3 UDP │ 4 ARP"),
        "{first}"
    );
    assert_eq!(
        tmux.query("#{alternate_on}"),
        "1",
        "the TUI uses the alternate screen"
    );

    // Traffic only now that netmon is attached, so its counts are the whole truth.
    writeln!(traffic.0.stdin.as_mut().unwrap(), "go").unwrap();
    let truth: Value = serde_json::from_str(
        &gen_out
            .next(Duration::from_secs(20))
            .expect("no result line"),
    )
    .unwrap();
    assert_eq!(truth["client_sent"], SEND, "{truth}");
    assert_eq!(truth["server_received"], SEND, "{truth}");
    let client = format!("127.0.0.1:{}", truth["client_port"]);
    let server = format!("127.0.0.1:{}", truth["server_port"]);
    let udp = format!("127.0.0.1:{}", truth["udp_port"]);
    assert_eq!(
        (&truth["raw"], &truth["ping"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{truth}"
    );

    // netmon tab: both ends of the connection, joined to the socket table (ESTAB, own mark).
    let shown = "3.00 MiB";
    let s = tmux.wait("the connection's bytes in the netmon tab", 15, |s| {
        row_with_local(s, &client).is_some_and(|r| tx_rx(&r, &client).0 == shown)
            && row_with_local(s, &server).is_some_and(|r| tx_rx(&r, &server).1 == shown)
    });
    let c = row_with_local(&s, &client).unwrap();
    assert_eq!(c[0], "*", "the client socket is the process's own: {c:?}");
    assert!(
        c.contains(&"ESTAB") && c.contains(&server.as_str()),
        "{c:?}"
    );
    println!("netmon tab: {}", c.join(" "));

    // Every other tab: its title and a row the test created.
    let tabs: [(&str, &str, String); 9] = [
        ("2", "TCP ─", server.clone()),
        ("3", "UDP ─", udp.clone()),
        ("4", "ARP ─", "10.123.0.2".into()),
        ("5", "Traffic ─", "nmtui0".into()),
        ("6", "Stats ─", "Forwarding".into()),
        ("7", "Raw ─", "0.0.0.0:1".into()),
        ("8", "ICMP ─", "icmp   127.0.0.1:".into()),
        ("9", "Routing ─", "198.51.100.0/24".into()),
        ("0", "Analysis ─", "TCP RTO min (ms)".into()),
    ];
    for (key, title, content) in &tabs {
        tmux.keys(&[key]);
        let s = tmux.wait(&format!("tab {title} with {content}"), 10, |s| {
            title_line(s).contains(title) && s.contains(content.as_str())
        });
        let line = s.lines().find(|l| l.contains(content.as_str())).unwrap();
        println!(
            "{title} {}",
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    tmux.keys(&["4"]);
    let arp = tmux.wait("the ARP tab", 5, |s| title_line(s).contains("ARP ─"));
    let neigh = arp.lines().find(|l| l.contains("10.123.0.2")).unwrap();
    assert!(
        neigh.contains("02:00:00:00:12:34") && neigh.contains("PERMANENT"),
        "{neigh}"
    );

    // The interval: `:set 2` and `+` change what is shown, and the rates really cover it.
    tmux.keys(&["1"]);
    tmux.literal(":set 2");
    tmux.keys(&["Enter"]);
    tmux.wait_for("interval 2s", 5);
    // The aggregator's clock advances with the kernel source's polls (every 250 ms here), so
    // the period between two snapshots is 2 s within one poll.
    tmux.wait("rates over about 2 s", 10, |s| {
        rates_period(s).is_some_and(|p| (1.7..=2.3).contains(&p))
    });
    tmux.keys(&["+"]);
    tmux.wait_for("interval 5s", 5);
    tmux.keys(&["-", "-"]);
    tmux.wait_for("interval 1s", 5);

    // Filter: the whole namespace's TCP sockets, then only those on the server port.
    tmux.keys(&["2", "a"]);
    let all = tmux.wait_for("all sockets", 5);
    let (shown_all, total) = row_counts(&all);
    assert_eq!(shown_all, total, "{all}");
    assert!(total >= 3, "listener, client and server: {all}");
    tmux.literal(&format!("/{}", truth["client_port"]));
    tmux.keys(&["Enter"]);
    let filtered = tmux.wait("the filtered title", 5, |s| {
        s.contains("filter \"") && row_counts(s).0 < total
    });
    let (n, _) = row_counts(&filtered);
    assert_eq!(
        n, 2,
        "the client socket and the server's view of it:\n{filtered}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait("the filter cleared", 5, |s| {
        !s.contains("filter \"") && row_counts(s).0 == total
    });

    // Resizing redraws at the new size, and back.
    for (w, h) in [(100, 20), (160, 50)] {
        assert!(
            tmux.cmd(&[
                "resize-window",
                "-t",
                SESSION,
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string()
            ])
            .status()
            .unwrap()
            .success()
        );
        let s = tmux.wait(&format!("a {w}x{h} frame"), 5, |s| {
            let lines: Vec<&str> = s.lines().collect();
            lines.len() == h
                && lines.iter().all(|l| l.chars().count() <= w)
                && title_line(s).contains("TCP ─")
                && lines[h - 1].starts_with("q quit")
        });
        assert!(
            s.lines().nth(1).unwrap().starts_with(" 1 netmon │ 2 TCP"),
            "{s}"
        );
    }

    // q leaves: the shell's screen is back, with the final totals and exit code 0.
    tmux.keys(&["q"]);
    let after = tmux.wait_for("netmon exit=0", 15);
    assert_eq!(
        tmux.query("#{alternate_on}"),
        "0",
        "terminal restored:\n{after}"
    );
    assert!(after.contains("nmtui$"), "{after}");

    // The dying-process path: banner, final totals stay, a key exits with 4.
    tmux.clear();
    tmux.literal(&run);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&format!("pid {pid} (trafficgen)"), 30);
    // This netmon started after the first transfer: it finds the sockets through /proc, and
    // counts the second transfer only.
    tmux.wait("the connection in the netmon tab", 15, |s| {
        row_with_local(s, &client).is_some()
    });
    writeln!(traffic.0.stdin.as_mut().unwrap(), "again").unwrap();
    let again: Value = serde_json::from_str(
        &gen_out
            .next(Duration::from_secs(20))
            .expect("no second result line"),
    )
    .unwrap();
    assert_eq!(again["client_sent"], SEND, "{again}");
    tmux.wait("the second transfer in the netmon tab", 15, |s| {
        row_with_local(s, &client).is_some_and(|r| tx_rx(&r, &client).0 == shown)
    });
    let _ = traffic.0.kill();
    let _ = traffic.0.wait();
    let banner = tmux.wait_for(&format!("process {pid} exited"), 15);
    assert!(
        row_with_local(&banner, &client).is_some_and(|r| tx_rx(&r, &client).0 == shown),
        "final totals stay on screen:\n{banner}"
    );
    assert_eq!(
        tmux.query("#{alternate_on}"),
        "1",
        "waits for a key:\n{banner}"
    );
    println!("banner: {}", banner.lines().nth(1).unwrap_or("").trim());
    tmux.keys(&["q"]);
    let after = tmux.wait_for("netmon exit=4", 15);
    assert_eq!(tmux.query("#{alternate_on}"), "0", "{after}");

    // --exit-on-death: the same ending without a key.
    let sleeper = Guard(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "sleep", "6"])
            .spawn()
            .expect("starting sleep"),
    );
    let spid = sleeper.0.id();
    tmux.clear();
    tmux.literal(&format!(
        "{} run --pid {spid} --exit-on-death; echo \"netmon exit=$?\"",
        netmon_bin().display()
    ));
    tmux.keys(&["Enter"]);
    tmux.wait_for(&format!("pid {spid} (sleep)"), 30);
    let after = tmux.wait_for("netmon exit=4", 20);
    assert_eq!(tmux.query("#{alternate_on}"), "0", "{after}");
}
