//! The netmon tab: the aggregator's connections, each joined to its socket-table row by
//! cookie → inode (sock_diag), under a total row per process. Where sock_diag has no answer
//! (no CAP_SYS_ADMIN to enter another namespace, or the socket is gone from its dump), the join
//! falls back to the protocol and both addresses, which the kernel source knows for every
//! TCP and connected UDP socket.
use std::collections::HashMap;
use std::net::SocketAddr;

use super::{bytes, owned_mark, rate};
use crate::aggregate::{ConnectionRow, PeerRow, ProcessRow};
use crate::event::Proto;
use crate::procnet::sockets::{Protocol, SocketRow};
use crate::sink::tree;
use crate::tui::data::TuiData;
use crate::tui::view::{Cell, Column, Row, TabView, num, text};

/// PPID and USER name the process; INODE and Q S/R, which the TCP and UDP tabs show too, give
/// way to them on a terminal narrower than all of these (177 cells).
const NETMON_COLUMNS: &[Column] = &[
    text("*", 1),
    num("PID", 7),
    num("PPID", 7),
    text("USER", 8),
    text("COMM", 10),
    text("PROTO", 5),
    text("LOCAL", 21),
    text("REMOTE", 21),
    text("STATE", 10),
    num("TX", 9),
    num("RX", 9),
    num("TX/s", 10),
    num("RX/s", 10),
    num("WIRE TX", 9),
    num("WIRE RX", 9),
    num("INODE", 8).shed(1),
    num("Q S/R", 7).shed(2),
];

/// The eBPF connections, each joined to its socket-table row by cookie → inode, under a total
/// row per process.
pub(super) fn netmon(data: &TuiData) -> TabView {
    let sockets: Vec<&SocketRow> = data
        .net
        .iter()
        .flat_map(|n| n.socket_rows())
        .filter(|r| r.inode != 0)
        .collect();
    let by_inode: HashMap<u64, &SocketRow> = sockets.iter().map(|r| (r.inode, *r)).collect();
    let by_addr: HashMap<AddrKey, &SocketRow> = sockets
        .iter()
        .map(|r| ((r.kind.protocol, r.local, r.remote), *r))
        .collect();
    let procs = &data.procs.processes;
    let placed = tree::place(procs, data.tree);
    let mut rows: Vec<Row> = Vec::new();
    // Row of each process, for its children's links (a parent is placed before them).
    let mut row_of = vec![0; procs.len()];
    for at in placed {
        let p = &procs[at.index];
        row_of[at.index] = rows.len();
        let parent = at.parent.map(|i| row_of[i]);
        // In a tree a process sorts among its siblings, after its parent's connections.
        rows.push(process_row(p, at.depth).under(parent, 1));
        let own = data.tree.then_some(row_of[at.index]);
        for c in &p.connections {
            let inode = data.cookie_inodes.get(&c.cookie).copied();
            let sock = match inode {
                Some(i) => by_inode.get(&i).copied(),
                None => addr_keys(c).find_map(|k| by_addr.get(&k).copied()),
            };
            let mut row = connection_row(p, c, inode.or(sock.map(|s| s.inode)), sock);
            // Lined up with its process's name, under the tree's branch.
            row.cells[4].text = format!(
                "{}{}",
                " ".repeat(tree::prefix(at.depth).chars().count()),
                p.comm
            );
            let indent = row.cells[4].text.clone();
            rows.push(row.under(own, 0));
            // A peerless UDP socket's remotes, each under its socket.
            let socket_row = data.tree.then_some(rows.len() - 1);
            for peer in &c.peers {
                let mut r = peer_row(p, c, peer);
                r.cells[4].text.clone_from(&indent);
                rows.push(r.under(socket_row, 0));
            }
        }
    }
    // The period the aggregator's rates really cover: proof that an interval change took effect.
    let mut notes = Vec::new();
    if data.procs.interval_ms > 0 {
        notes.push(format!(
            "rates over {:.1} s",
            data.procs.interval_ms as f64 / 1000.0
        ));
    }
    if data.cookie_inodes.is_empty() && !data.procs.processes.is_empty() {
        notes.push("no sock_diag map: joined by address".to_string());
    }
    let note = (!notes.is_empty()).then(|| notes.join(", "));
    TabView::rows(NETMON_COLUMNS.to_vec(), rows)
        .with_note(note)
        .as_tree(data.tree)
}

/// A process's parent as a cell: `-` when unknown (0 but not pid 1's, which really is 0).
fn ppid_cell(p: &ProcessRow) -> Cell {
    if p.ppid == 0 && p.pid != 1 {
        Cell::none()
    } else {
        Cell::count(u64::from(p.ppid))
    }
}

/// The user's name, sorted by name; `-` when the uid is unknown.
fn user_cell(p: &ProcessRow) -> Cell {
    if p.user.is_empty() {
        Cell::text("-")
    } else {
        Cell::text(&p.user)
    }
}

fn process_row(p: &ProcessRow, depth: usize) -> Row {
    // Sorted by the name, not by the tree's indentation drawn before it.
    let comm = Cell {
        text: format!("{}{}", tree::prefix(depth), p.comm),
        ..Cell::text(&p.comm)
    };
    Row::new(vec![
        Cell::text(""),
        Cell::count(u64::from(p.pid)),
        ppid_cell(p),
        user_cell(p),
        comm,
        Cell::text("all"),
        Cell::text(format!("{} connection(s)", p.connections.len())),
        Cell::text(""),
        Cell::text(if p.alive { "" } else { "exited" }),
        bytes(p.tx_bytes),
        bytes(p.rx_bytes),
        rate(p.tx_rate),
        rate(p.rx_rate),
        bytes(p.tx_wire_bytes),
        bytes(p.rx_wire_bytes),
        Cell::none(),
        Cell::none(),
    ])
}

fn connection_row(
    p: &ProcessRow,
    c: &ConnectionRow,
    inode: Option<u64>,
    sock: Option<&SocketRow>,
) -> Row {
    let state = match (sock, &c.state) {
        (Some(s), _) => s.state.label(s.kind.protocol).to_string(),
        (None, _) if c.closed => "closed".to_string(),
        (None, Some(st)) => st.to_string(),
        (None, None) => String::new(),
    };
    // Sorted by what is waiting in total; shown as send/receive queue like `ss`.
    let queues = sock.map_or_else(Cell::none, |s| {
        let total = u64::from(s.tx_queue) + u64::from(s.rx_queue);
        Cell::num(total as f64, format!("{}/{}", s.tx_queue, s.rx_queue))
    });
    Row::new(vec![
        owned_mark(sock.is_some_and(|s| s.owned)),
        Cell::count(u64::from(p.pid)),
        ppid_cell(p),
        user_cell(p),
        Cell::text(&p.comm),
        Cell::text(format!("{:?}", c.proto).to_lowercase()),
        Cell::text(shown_addr(c.local)),
        Cell::text(match (shown_addr(c.remote), &c.remote_name) {
            (addr, Some(name)) => format!("{name} ({addr})"),
            (addr, None) => addr,
        }),
        Cell::text(state),
        bytes(c.tx_bytes),
        bytes(c.rx_bytes),
        rate(c.tx_rate),
        rate(c.rx_rate),
        bytes(c.tx_wire_bytes),
        bytes(c.rx_wire_bytes),
        inode.map_or_else(Cell::none, Cell::count),
        queues,
    ])
}

/// One remote of a peerless UDP socket: its datagrams' payload each way.
fn peer_row(p: &ProcessRow, c: &ConnectionRow, peer: &PeerRow) -> Row {
    Row::new(vec![
        Cell::text(""),
        Cell::count(u64::from(p.pid)),
        ppid_cell(p),
        user_cell(p),
        Cell::text(&p.comm),
        Cell::text("udp"),
        Cell::text(shown_addr(c.local)),
        Cell::text(format!("<-> {}", peer.remote)),
        Cell::text("remote"),
        bytes(peer.tx_bytes),
        bytes(peer.rx_bytes),
        rate(peer.tx_rate),
        rate(peer.rx_rate),
        Cell::none(),
        Cell::none(),
        Cell::none(),
        Cell::none(),
    ])
}

/// Protocol, local and remote address, as the socket tables have them.
type AddrKey = (Protocol, SocketAddr, SocketAddr);

/// The keys a connection's socket-table row may have: an unconnected socket's remote is
/// absent here and the unspecified address of either family there.
fn addr_keys(c: &ConnectionRow) -> impl Iterator<Item = AddrKey> {
    let proto = match c.proto {
        Proto::Tcp => Some(Protocol::Tcp),
        Proto::Udp => Some(Protocol::Udp),
        Proto::Other => None,
    };
    let local = c.local.map(canonical);
    let remotes: Vec<SocketAddr> = match c.remote.map(canonical) {
        Some(r) => vec![r],
        None => vec![
            SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::from(([0u16; 8], 0)),
        ],
    };
    proto
        .zip(local)
        .into_iter()
        .flat_map(move |(p, l)| remotes.clone().into_iter().map(move |r| (p, l, r)))
}

/// An address as the socket tabs show it: IPv4-mapped IPv6 as the IPv4 peer it is.
fn shown_addr(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "-".to_string(), |a| canonical(a).to_string())
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mapped_addresses_read_as_v4() {
        let cases = [
            (Some("[::ffff:10.0.0.1]:443"), "10.0.0.1:443"),
            (Some("[::1]:80"), "[::1]:80"),
            (Some("127.0.0.1:80"), "127.0.0.1:80"),
            (None, "-"),
        ];
        for (a, want) in cases {
            let a = a.map(|a| a.parse().unwrap());
            assert_eq!(super::shown_addr(a), want, "{a:?}");
        }
    }
}
