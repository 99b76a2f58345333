//! The plain table: one line per process, its connections indented beneath, totals, and a
//! footer that always shows what could not be attributed or was lost. Pure: same snapshot and
//! options, same text.
use std::fmt::Write;

use super::human::{bytes, cut, rate};
use super::tree;
use crate::aggregate::{ConnectionRow, PeerRow, ProcessRow, Snapshot};

#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Terminal width; lines are cut to it.
    pub width: usize,
    /// Connections shown per process (the rest are summarised in one line).
    pub max_connections_per_process: Option<usize>,
    /// Show connections whose socket is closed (still within the aggregator's retention).
    pub show_closed: bool,
    /// Processes under their parent (`--tree`), siblings busiest first.
    pub tree: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            width: 120,
            max_connections_per_process: None,
            show_closed: true,
            tree: false,
        }
    }
}

/// Moves the cursor home and clears the screen, for live refresh on a terminal.
pub fn clear_screen_sequence() -> &'static str {
    "\x1b[H\x1b[2J"
}

/// Byte counts (`1023 KiB`, `9.99 MiB`) and rates (`9.99 MiB/s`) at their widest below PiB.
const NUM: usize = 9;
const RATE: usize = 10;
const COMM: usize = 15;
/// From this width on the PPID and USER columns are shown: they take 17 columns, and below
/// it they would leave the command line fewer than 16, or push the rates off an 80-column
/// terminal. Narrower tables keep the byte columns; `--json` and the TUI have both anyway.
const WITH_OWNER: usize = 100;
/// `ps` cuts user names to 8 columns too.
const USER: usize = 8;

/// The columns left of the command line: pid, parent and user (when wide enough), comm.
struct Who<'a> {
    pid: String,
    ppid: String,
    user: &'a str,
    comm: String,
}

fn columns(wide: bool, who: &Who, [tx, rx, txr, rxr]: [&str; 4], rest: &str) -> String {
    let owner = if wide {
        format!("{:>7} {:<USER$} ", who.ppid, cut(who.user, USER))
    } else {
        String::new()
    };
    format!(
        "{:>7} {owner}{:<COMM$} {tx:>NUM$} {rx:>NUM$} {txr:>RATE$} {rxr:>RATE$}  {rest}",
        who.pid,
        cut(&who.comm, COMM),
    )
}

pub fn render_table(s: &Snapshot, opts: &TableOptions) -> String {
    let width = opts.width.max(40);
    let wide = width >= WITH_OWNER;
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&cut(&text, width));
        out.push('\n');
    };
    line(format!(
        "netmon  backend {}  interval {:.1} s  {} process{}{}",
        if s.backend.is_empty() {
            "-"
        } else {
            &s.backend
        },
        s.interval_ms as f64 / 1000.0,
        s.processes.len(),
        if s.processes.len() == 1 { "" } else { "es" },
        if s.r#final { "  (final)" } else { "" },
    ));
    let head = Who {
        pid: "PID".into(),
        ppid: "PPID".into(),
        user: "USER",
        comm: "COMM".into(),
    };
    line(columns(
        wide,
        &head,
        ["TX", "RX", "TX/s", "RX/s"],
        "CMDLINE / CONNECTION",
    ));
    for tree::Placed { index, depth, .. } in tree::place(&s.processes, opts.tree) {
        let p = &s.processes[index];
        line(process_line(p, wide, depth));
        let conns: Vec<&ConnectionRow> = p
            .connections
            .iter()
            .filter(|c| opts.show_closed || !c.closed)
            .collect();
        let shown = opts.max_connections_per_process.unwrap_or(usize::MAX);
        // A connection sits one level below its process, in the tree as in the flat table.
        let indent = "  ".repeat(depth);
        for c in conns.iter().take(shown) {
            line(connection_line(c, wide, &indent));
            for p in c.peers.iter().take(PEERS_SHOWN) {
                line(peer_line(p, wide, &indent));
            }
            if c.peers.len() > PEERS_SHOWN {
                line(format!(
                    "{:>7} {indent}    ... {} more remote(s)",
                    "",
                    c.peers.len() - PEERS_SHOWN
                ));
            }
        }
        if conns.len() > shown {
            line(format!(
                "{:>7} {indent}... {} more connection(s)",
                "",
                conns.len() - shown
            ));
        }
    }
    let total = Who {
        pid: String::new(),
        ppid: String::new(),
        user: "",
        comm: "TOTAL".into(),
    };
    line(columns(
        wide,
        &total,
        [
            &bytes(s.totals.tx_bytes),
            &bytes(s.totals.rx_bytes),
            &rate(s.totals.tx_rate),
            &rate(s.totals.rx_rate),
        ],
        &format!(
            "wire tx {} rx {}",
            bytes(s.totals.tx_wire_bytes),
            bytes(s.totals.rx_wire_bytes)
        ),
    ));
    // Never cut what was lost or unattributed: one line each, wrapped rather than truncated.
    for l in footer(s) {
        for chunk in wrap(&l, width) {
            line(chunk);
        }
    }
    out
}

fn process_line(p: &ProcessRow, wide: bool, depth: usize) -> String {
    let cmd = if p.cmdline.is_empty() {
        format!("[{}]", p.comm)
    } else {
        p.cmdline.clone()
    };
    let who = Who {
        pid: p.pid.to_string(),
        // 0: not known (pid 1's parent is 0 too, and `ps` shows it as 0; so does --json).
        ppid: if p.ppid == 0 && p.pid != 1 {
            "-".into()
        } else {
            p.ppid.to_string()
        },
        user: if p.user.is_empty() { "-" } else { &p.user },
        comm: format!("{}{}", tree::prefix(depth), p.comm),
    };
    columns(
        wide,
        &who,
        [
            &bytes(p.tx_bytes),
            &bytes(p.rx_bytes),
            &rate(p.tx_rate),
            &rate(p.rx_rate),
        ],
        &format!("{}{cmd}", if p.alive { "" } else { "(exited) " }),
    )
}

/// Remotes listed under a peerless UDP socket (the busiest); the rest are counted.
const PEERS_SHOWN: usize = 5;

/// A remote of a peerless UDP socket, beneath its socket's line.
fn peer_line(p: &PeerRow, wide: bool, indent: &str) -> String {
    let who = Who {
        pid: String::new(),
        ppid: String::new(),
        user: "",
        comm: String::new(),
    };
    columns(
        wide,
        &who,
        [
            &bytes(p.tx_bytes),
            &bytes(p.rx_bytes),
            &rate(p.tx_rate),
            &rate(p.rx_rate),
        ],
        &format!("{indent}    <-> {}", p.remote),
    )
}

fn connection_line(c: &ConnectionRow, wide: bool, indent: &str) -> String {
    let proto = match c.proto {
        crate::event::Proto::Tcp => "tcp",
        crate::event::Proto::Udp => "udp",
        crate::event::Proto::Other => "?",
    };
    let state = if c.closed {
        "CLOSED"
    } else {
        c.state.unwrap_or("")
    };
    let wire = if c.owner && (c.tx_wire_bytes > 0 || c.rx_wire_bytes > 0) {
        format!(
            "  wire {}/{} ({}/{} pkts)",
            bytes(c.tx_wire_bytes),
            bytes(c.rx_wire_bytes),
            c.tx_packets,
            c.rx_packets
        )
    } else {
        String::new()
    };
    // The address stays (it is what the packets carry); the name the process asked DNS for
    // follows it, as `ss -r` would show it but without a reverse lookup.
    let remote = match (&c.remote, &c.remote_name) {
        (Some(r), Some(name)) => format!("{r} ({name})"),
        (Some(r), None) => r.to_string(),
        (None, _) => "*".to_string(),
    };
    let who = Who {
        pid: String::new(),
        ppid: String::new(),
        user: "",
        comm: format!("{indent}  {proto}"),
    };
    columns(
        wide,
        &who,
        [
            &bytes(c.tx_bytes),
            &bytes(c.rx_bytes),
            &rate(c.tx_rate),
            &rate(c.rx_rate),
        ],
        &format!(
            "{} -> {} {}{}",
            c.local.map_or_else(|| "*".to_string(), |a| a.to_string()),
            remote,
            state,
            wire
        ),
    )
}

fn footer(s: &Snapshot) -> [String; 3] {
    let mut u = String::from("unattributed:");
    if s.unattributed.is_empty() {
        u.push_str(" none");
    }
    for r in &s.unattributed {
        let _ = write!(u, " {} {} ({} pkts)", r.reason, bytes(r.bytes), r.packets);
    }
    let mut l = String::from("lost:");
    if s.lost.is_empty() {
        l.push_str(" none");
    }
    for r in &s.lost {
        let _ = write!(l, " {} {}", r.source, r.count);
    }
    let d = format!("dns names: {} held, {} evicted", s.dns.names, s.dns.evicted);
    [u, l, d]
}

/// Splits at spaces so that no piece is wider than `width` (a longer word is cut later).
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in s.split(' ') {
        let cur = lines.last_mut().expect("never empty");
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(format!("  {word}"));
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    lines
}
