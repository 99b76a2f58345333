//! `net/{tcp,tcp6,udp,udp6,raw,raw6,icmp,icmp6}`: one row per socket.
//!
//! Hand-written: procfs-core's `TcpNetEntries`/`UdpNetEntries` drop the timer and retransmit
//! columns the TUI shows, have no raw or icmp tables, reject unknown states, and fail the whole
//! file on one bad line. All eight tables share one line format (the kernel's
//! `*_seq_show`/`__udp4_seq_show`/`raw_sock_seq_show`/`ping_v4_format_sock`), so one parser serves.
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;

use super::{Table, addr::socket_addr_from_hex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    /// The local "port" of a raw socket is its IP protocol number (1 = ICMP, 58 = ICMPv6).
    Raw,
    /// Ping sockets (`SOCK_DGRAM`, `IPPROTO_ICMP`); the local "port" is the echo identifier.
    Icmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

/// One of the eight socket files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketKind {
    pub protocol: Protocol,
    pub family: Family,
}

impl SocketKind {
    pub const ALL: [SocketKind; 8] = {
        use Family::*;
        use Protocol::*;
        [
            SocketKind {
                protocol: Tcp,
                family: V4,
            },
            SocketKind {
                protocol: Tcp,
                family: V6,
            },
            SocketKind {
                protocol: Udp,
                family: V4,
            },
            SocketKind {
                protocol: Udp,
                family: V6,
            },
            SocketKind {
                protocol: Raw,
                family: V4,
            },
            SocketKind {
                protocol: Raw,
                family: V6,
            },
            SocketKind {
                protocol: Icmp,
                family: V4,
            },
            SocketKind {
                protocol: Icmp,
                family: V6,
            },
        ]
    };

    /// The file under `net/`.
    pub fn file_name(self) -> &'static str {
        match (self.protocol, self.family) {
            (Protocol::Tcp, Family::V4) => "tcp",
            (Protocol::Tcp, Family::V6) => "tcp6",
            (Protocol::Udp, Family::V4) => "udp",
            (Protocol::Udp, Family::V6) => "udp6",
            (Protocol::Raw, Family::V4) => "raw",
            (Protocol::Raw, Family::V6) => "raw6",
            (Protocol::Icmp, Family::V4) => "icmp",
            (Protocol::Icmp, Family::V6) => "icmp6",
        }
    }
}

/// `sk_state`, which every table prints with TCP's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    BoundInactive,
    /// A state newer than this code; kept so the row still shows.
    Unknown(u8),
}

impl SocketState {
    pub fn from_code(code: u8) -> Self {
        use SocketState::*;
        match code {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            12 => NewSynRecv,
            13 => BoundInactive,
            other => Unknown(other),
        }
    }

    /// The name `ss` prints. A non-TCP socket in `Close` is merely unconnected, hence `UNCONN`.
    pub fn label(self, protocol: Protocol) -> &'static str {
        use SocketState::*;
        match self {
            Established => "ESTAB",
            SynSent => "SYN-SENT",
            SynRecv => "SYN-RECV",
            FinWait1 => "FIN-WAIT-1",
            FinWait2 => "FIN-WAIT-2",
            TimeWait => "TIME-WAIT",
            Close if protocol == Protocol::Tcp => "CLOSE",
            Close => "UNCONN",
            CloseWait => "CLOSE-WAIT",
            LastAck => "LAST-ACK",
            Listen => "LISTEN",
            Closing => "CLOSING",
            NewSynRecv => "NEW-SYN-RECV",
            BoundInactive => "BOUND-INACTIVE",
            Unknown(_) => "UNKNOWN",
        }
    }
}

/// Which timer is pending on a socket (the `tr` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    None,
    Retransmit,
    KeepAlive,
    TimeWait,
    ZeroWindowProbe,
    Unknown(u8),
}

impl TimerKind {
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => TimerKind::None,
            1 => TimerKind::Retransmit,
            2 => TimerKind::KeepAlive,
            3 => TimerKind::TimeWait,
            4 => TimerKind::ZeroWindowProbe,
            other => TimerKind::Unknown(other),
        }
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerKind::None => f.write_str("off"),
            TimerKind::Retransmit => f.write_str("on"),
            TimerKind::KeepAlive => f.write_str("keepalive"),
            TimerKind::TimeWait => f.write_str("timewait"),
            TimerKind::ZeroWindowProbe => f.write_str("probe"),
            TimerKind::Unknown(c) => write!(f, "timer{c}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer {
    pub kind: TimerKind,
    /// Time left in clock ticks (`USER_HZ`, 100 per second on Linux): the kernel converts
    /// jiffies with `jiffies_delta_to_clock_t`, which also clamps an overdue timer to 0.
    pub expires_ticks: u64,
}

impl Timer {
    /// Milliseconds left, for a given `sysconf(_SC_CLK_TCK)`.
    pub fn expires_ms(&self, ticks_per_sec: u64) -> u64 {
        if ticks_per_sec == 0 {
            return 0;
        }
        self.expires_ticks.saturating_mul(1000) / ticks_per_sec
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocketRow {
    pub kind: SocketKind,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: SocketState,
    pub tx_queue: u32,
    pub rx_queue: u32,
    pub timer: Timer,
    pub retransmits: u32,
    /// As mapped into the reader's user namespace (overflow uid 65534 when unmapped).
    pub uid: u32,
    /// 0 for sockets without a file: TIME_WAIT, request sockets, orphans.
    pub inode: u64,
    /// The inode is one of the watched process's own sockets.
    pub owned: bool,
}

/// Parses one socket file; lines that do not fit are counted, not fatal.
pub fn parse(text: &str, kind: SocketKind, own_inodes: &HashSet<u64>) -> Table<SocketRow> {
    let body = text
        .lines()
        .filter(|l| l.split_whitespace().next() != Some("sl"));
    Table::from_lines(body, |line| parse_line(line, kind, own_inodes))
}

fn parse_line(line: &str, kind: SocketKind, own_inodes: &HashSet<u64>) -> Option<SocketRow> {
    let mut f = line.split_whitespace();
    f.next()?.strip_suffix(':')?;
    let local = socket_addr_from_hex(f.next()?)?;
    let remote = socket_addr_from_hex(f.next()?)?;
    let state = SocketState::from_code(u8::from_str_radix(f.next()?, 16).ok()?);
    let (tx, rx) = f.next()?.split_once(':')?;
    let (tr, when) = f.next()?.split_once(':')?;
    let retransmits = u32::from_str_radix(f.next()?, 16).ok()?;
    let uid = f.next()?.parse().ok()?;
    let _timeout = f.next()?;
    let inode = f.next()?.parse().ok()?;
    Some(SocketRow {
        kind,
        local,
        remote,
        state,
        tx_queue: u32::from_str_radix(tx, 16).ok()?,
        rx_queue: u32::from_str_radix(rx, 16).ok()?,
        timer: Timer {
            kind: TimerKind::from_code(u8::from_str_radix(tr, 16).ok()?),
            expires_ticks: u64::from_str_radix(when, 16).ok()?,
        },
        retransmits,
        uid,
        inode,
        owned: own_inodes.contains(&inode),
    })
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const TCP4: SocketKind = SocketKind {
        protocol: Protocol::Tcp,
        family: Family::V4,
    };

    #[test]
    fn lines() {
        let own = HashSet::from([7]);
        let ok = "   1: 0100007F:A47C 0100007F:9BAF 01 0000000A:00000014 01:0000011E 00000003  1000        0 7 1 0000 20 4 30 10 -1";
        let row = parse_line(ok, TCP4, &own).unwrap();
        assert_eq!(row.local.to_string(), "127.0.0.1:42108");
        assert_eq!(row.remote.to_string(), "127.0.0.1:39855");
        assert_eq!(row.state, SocketState::Established);
        assert_eq!((row.tx_queue, row.rx_queue), (10, 20));
        assert_eq!(
            row.timer,
            Timer {
                kind: TimerKind::Retransmit,
                expires_ticks: 0x11E
            }
        );
        assert_eq!(row.timer.expires_ms(100), 2860);
        assert_eq!(
            (row.retransmits, row.uid, row.inode, row.owned),
            (3, 1000, 7, true)
        );

        let bad = [
            "",
            "   1: 0100007F:A47C",
            "   1: 0100007F:A47C 0100007F:9BAF 01 0000000A:00000014 01:0000011E 00000003  1000        0",
            "   1: 0100007F:A47C 0100007F:9BAF 01 0000000A00000014 01:0000011E 00000003  1000 0 7",
            "   1: 0100007F:A47C 0100007F:9BAF ZZ 0000000A:00000014 01:0000011E 00000003  1000 0 7",
            "   1: 0100007F:A47C 0100007F:9BAF 01 0000000A:00000014 01:0000011E 00000003  -1 0 7",
            "   1 0100007F:A47C 0100007F:9BAF 01 0000000A:00000014 01:0000011E 00000003  1000 0 7",
        ];
        for line in bad {
            assert_eq!(parse_line(line, TCP4, &own), None, "{line:?}");
        }
    }

    #[test]
    fn states_and_labels() {
        let cases = [
            (1, Protocol::Tcp, "ESTAB"),
            (7, Protocol::Tcp, "CLOSE"),
            (7, Protocol::Udp, "UNCONN"),
            (1, Protocol::Udp, "ESTAB"),
            (10, Protocol::Tcp, "LISTEN"),
            (6, Protocol::Tcp, "TIME-WAIT"),
            (13, Protocol::Tcp, "BOUND-INACTIVE"),
            (0xEE, Protocol::Tcp, "UNKNOWN"),
        ];
        for (code, proto, want) in cases {
            assert_eq!(SocketState::from_code(code).label(proto), want, "{code}");
        }
    }
}
