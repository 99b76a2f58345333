//! TCP, UDP, Raw and ICMP: the v4 and v6 socket files of one protocol.
use super::{combine, owned_mark, part};
use crate::procnet::NetSnapshot;
use crate::procnet::sockets::{Protocol, SocketRow, TimerKind};
use crate::tui::view::{Cell, Column, Row, TabView, num, text};

pub(super) const SOCKET_COLUMNS: &[Column] = &[
    text("*", 1),
    text("PROTO", 6),
    text("LOCAL", 46),
    text("REMOTE", 46),
    text("STATE", 11),
    num("SEND-Q", 8),
    num("RECV-Q", 8),
    text("TIMER", 14),
    num("RETR", 4),
    num("UID", 6),
    num("INODE", 10),
];

/// `clock_t` ticks per second, which the socket files' timer column counts in.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100)
}

/// The v4 and v6 tables of one protocol, as one tab.
pub(super) fn sockets(net: &NetSnapshot, protocol: Protocol) -> TabView {
    let ticks = clock_ticks();
    let parts = net
        .sockets
        .iter()
        .filter(|s| s.kind.protocol == protocol)
        .map(|s| part(s.kind.file_name(), &s.table, |r| socket_row(r, ticks)))
        .collect();
    combine(SOCKET_COLUMNS, parts)
}

fn socket_row(r: &SocketRow, ticks: u64) -> Row {
    let timer = if r.timer.kind == TimerKind::None {
        "off".to_string()
    } else {
        format!(
            "{} {:.2}s",
            r.timer.kind,
            r.timer.expires_ms(ticks) as f64 / 1000.0
        )
    };
    let remote = if r.remote.port() == 0 && r.remote.ip().is_unspecified() {
        "*".to_string()
    } else {
        r.remote.to_string()
    };
    let row = Row::new(vec![
        owned_mark(r.owned),
        Cell::text(r.kind.file_name()),
        Cell::text(r.local.to_string()),
        Cell::text(remote),
        Cell::text(r.state.label(r.kind.protocol)),
        Cell::count(u64::from(r.tx_queue)),
        Cell::count(u64::from(r.rx_queue)),
        Cell::num(r.timer.expires_ticks as f64, timer),
        Cell::count(u64::from(r.retransmits)),
        Cell::count(u64::from(r.uid)),
        Cell::count(r.inode),
    ]);
    Row {
        owned: Some(r.owned),
        ..row
    }
}
