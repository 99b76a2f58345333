//! The plain table: one line per process, its connections indented beneath, totals, and a
//! footer that always shows what could not be attributed or was lost. Pure: same snapshot and
//! options, same text.
use std::fmt::Write;

use super::human::{bytes, cut, rate};
use crate::aggregate::{ConnectionRow, PeerRow, ProcessRow, Snapshot};

#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Terminal width; lines are cut to it.
    pub width: usize,
    /// Connections shown per process (the rest are summarised in one line).
    pub max_connections_per_process: Option<usize>,
    /// Show connections whose socket is closed (still within the aggregator's retention).
    pub show_closed: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            width: 120,
            max_connections_per_process: None,
            show_closed: true,
        }
    }
}

/// Moves the cursor home and clears the screen, for live refresh on a terminal.
pub fn clear_screen_sequence() -> &'static str {
    "\x1b[H\x1b[2J"
}

const NUM: usize = 10;

pub fn render_table(s: &Snapshot, opts: &TableOptions) -> String {
    let width = opts.width.max(40);
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
    line(format!(
        "{:>7} {:<15} {:>NUM$} {:>NUM$} {:>12} {:>12}  {}",
        "PID", "COMM", "TX", "RX", "TX/s", "RX/s", "CMDLINE / CONNECTION"
    ));
    for p in &s.processes {
        line(process_line(p));
        let conns: Vec<&ConnectionRow> = p
            .connections
            .iter()
            .filter(|c| opts.show_closed || !c.closed)
            .collect();
        let shown = opts.max_connections_per_process.unwrap_or(usize::MAX);
        for c in conns.iter().take(shown) {
            line(connection_line(c));
            for p in c.peers.iter().take(PEERS_SHOWN) {
                line(peer_line(p));
            }
            if c.peers.len() > PEERS_SHOWN {
                line(format!(
                    "{:>7} {:<15} ... {} more remote(s)",
                    "",
                    "",
                    c.peers.len() - PEERS_SHOWN
                ));
            }
        }
        if conns.len() > shown {
            line(format!(
                "{:>7} ... {} more connection(s)",
                "",
                conns.len() - shown
            ));
        }
    }
    line(format!(
        "{:>7} {:<15} {:>NUM$} {:>NUM$} {:>12} {:>12}  wire tx {} rx {}",
        "",
        "TOTAL",
        bytes(s.totals.tx_bytes),
        bytes(s.totals.rx_bytes),
        rate(s.totals.tx_rate),
        rate(s.totals.rx_rate),
        bytes(s.totals.tx_wire_bytes),
        bytes(s.totals.rx_wire_bytes),
    ));
    // Never cut what was lost or unattributed: one line each, wrapped rather than truncated.
    for l in footer(s) {
        for chunk in wrap(&l, width) {
            line(chunk);
        }
    }
    out
}

fn process_line(p: &ProcessRow) -> String {
    let cmd = if p.cmdline.is_empty() {
        format!("[{}]", p.comm)
    } else {
        p.cmdline.clone()
    };
    format!(
        "{:>7} {:<15} {:>NUM$} {:>NUM$} {:>12} {:>12}  {}{}",
        p.pid,
        cut(&p.comm, 15),
        bytes(p.tx_bytes),
        bytes(p.rx_bytes),
        rate(p.tx_rate),
        rate(p.rx_rate),
        if p.alive { "" } else { "(exited) " },
        cmd
    )
}

/// Remotes listed under a peerless UDP socket (the busiest); the rest are counted.
const PEERS_SHOWN: usize = 5;

/// A remote of a peerless UDP socket, beneath its socket's line.
fn peer_line(p: &PeerRow) -> String {
    format!(
        "{:>7} {:<15} {:>NUM$} {:>NUM$} {:>12} {:>12}      <-> {}",
        "",
        "",
        bytes(p.tx_bytes),
        bytes(p.rx_bytes),
        rate(p.tx_rate),
        rate(p.rx_rate),
        p.remote
    )
}

fn connection_line(c: &ConnectionRow) -> String {
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
    format!(
        "{:>7} {:<15} {:>NUM$} {:>NUM$} {:>12} {:>12}  {} -> {} {}{}",
        "",
        format!("  {proto}"),
        bytes(c.tx_bytes),
        bytes(c.rx_bytes),
        rate(c.tx_rate),
        rate(c.rx_rate),
        c.local.map_or_else(|| "*".to_string(), |a| a.to_string()),
        remote,
        state,
        wire
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
