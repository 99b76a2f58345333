//! One row builder per tab: [`TuiData`] → [`TabView`]. Drawing, filtering and sorting are shared
//! (`view`, `render`), so each builder only says which columns a tab has and what goes in them.
use std::collections::HashMap;

use super::data::TuiData;
use super::state::Tab;
use super::view::{Cell, Column, Row, TabView, num, text};
use crate::aggregate::{ConnectionRow, ProcessRow};
use crate::procnet::counters::{CounterTable, Value};
use crate::procnet::delta::CounterDelta;
use crate::procnet::sockets::{Protocol, SocketRow, TimerKind};
use crate::procnet::{Availability, NetSnapshot, Table, Unavailable};
use crate::sink::human;

/// The words every tab uses for a missing source.
pub fn why(u: Unavailable) -> String {
    match u {
        Unavailable::NotOnThisKernel => "not available on this kernel".into(),
        other => format!("not available: {other}"),
    }
}

pub fn build(tab: Tab, data: &TuiData) -> TabView {
    match tab {
        Tab::Netmon => netmon(data),
        Tab::Tcp => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Tcp)),
        Tab::Udp => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Udp)),
        Tab::Raw => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Raw)),
        Tab::Icmp => with_net(data, SOCKET_COLUMNS, |n, _| sockets(n, Protocol::Icmp)),
        Tab::Arp => with_net(data, ARP_COLUMNS, arp),
        Tab::Traffic => with_net(data, TRAFFIC_COLUMNS, traffic),
        Tab::Stats => with_net(data, STATS_COLUMNS, stats),
        Tab::Routing => with_net(data, ROUTING_COLUMNS, routing),
        Tab::Analysis => with_net(data, ANALYSIS_COLUMNS, analysis),
    }
}

/// Runs `f` on the namespace snapshot, or says why there is none yet.
fn with_net(
    data: &TuiData,
    columns: &[Column],
    f: impl FnOnce(&NetSnapshot, &TuiData) -> TabView,
) -> TabView {
    match &data.net {
        Some(net) => f(net, data),
        None => TabView::unavailable(
            columns.to_vec(),
            data.net_error
                .as_deref()
                .unwrap_or("reading the namespace…"),
        ),
    }
}

/// The rows of one file, or why it is missing.
fn part<'a, T>(
    file: &'a str,
    t: &Availability<Table<T>>,
    row: impl Fn(&T) -> Row,
) -> (&'a str, Availability<Vec<Row>>) {
    (file, t.as_ref().map(|t| t.rows.iter().map(row).collect()))
}

/// Files shown as one table (tcp + tcp6, route + ipv6_route): the rows of those present, a note
/// naming those missing, and an unavailable tab only when none is there.
fn combine(columns: &[Column], parts: Vec<(&str, Availability<Vec<Row>>)>) -> TabView {
    let count = parts.len();
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (file, p) in parts {
        match p {
            Availability::Available(r) => rows.extend(r),
            Availability::Unavailable(u) => missing.push((file, u)),
        }
    }
    if let Some(&(_, u)) = missing.first().filter(|_| missing.len() == count) {
        return TabView::unavailable(columns.to_vec(), why(u));
    }
    let note = (!missing.is_empty()).then(|| {
        missing
            .iter()
            .map(|(f, u)| format!("{f}: {}", why(*u)))
            .collect::<Vec<_>>()
            .join(", ")
    });
    TabView::rows(columns.to_vec(), rows).with_note(note)
}

fn bytes(v: u64) -> Cell {
    Cell::num(v as f64, human::bytes(v))
}

fn rate(v: f64) -> Cell {
    Cell::num(v, human::rate(v))
}

fn opt_rate(v: Option<f64>) -> Cell {
    v.map_or_else(Cell::none, rate)
}

fn owned_mark(owned: bool) -> Cell {
    Cell::text(if owned { "*" } else { "" })
}

const NETMON_COLUMNS: &[Column] = &[
    text("*", 1),
    num("PID", 7),
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
    num("INODE", 8),
    num("Q S/R", 7),
];

/// The eBPF connections, each joined to its socket-table row by cookie → inode, under a total
/// row per process.
fn netmon(data: &TuiData) -> TabView {
    let by_inode: HashMap<u64, &SocketRow> = data
        .net
        .iter()
        .flat_map(|n| n.socket_rows())
        .filter(|r| r.inode != 0)
        .map(|r| (r.inode, r))
        .collect();
    let mut rows = Vec::new();
    for p in &data.procs.processes {
        rows.push(process_row(p));
        for c in &p.connections {
            let inode = data.cookie_inodes.get(&c.cookie).copied();
            let sock = inode.and_then(|i| by_inode.get(&i).copied());
            rows.push(connection_row(p, c, inode, sock));
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
        notes.push("no sock_diag map: socket columns empty".to_string());
    }
    let note = (!notes.is_empty()).then(|| notes.join(", "));
    TabView::rows(NETMON_COLUMNS.to_vec(), rows).with_note(note)
}

fn process_row(p: &ProcessRow) -> Row {
    Row::new(vec![
        Cell::text(""),
        Cell::count(u64::from(p.pid)),
        Cell::text(&p.comm),
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
        (None, Some(st)) => st.clone(),
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
        Cell::text(&p.comm),
        Cell::text(format!("{:?}", c.proto).to_lowercase()),
        Cell::text(c.local.as_deref().unwrap_or("-")),
        Cell::text(c.remote.as_deref().unwrap_or("-")),
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

const SOCKET_COLUMNS: &[Column] = &[
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
fn sockets(net: &NetSnapshot, protocol: Protocol) -> TabView {
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
    Row {
        cells: vec![
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
        ],
        owned: Some(r.owned),
    }
}

const ARP_COLUMNS: &[Column] = &[
    text("IP ADDRESS", 16),
    text("HW TYPE", 8),
    text("FLAGS", 6),
    text("STATE", 11),
    text("HW ADDRESS", 18),
    text("DEVICE", 16),
];

fn arp(net: &NetSnapshot, _: &TuiData) -> TabView {
    let rows = part("arp", &net.arp, |r| {
        let hw = match r.hw_type.bits() {
            1 => "ether".to_string(),
            b => format!("{b:#x}"),
        };
        Row::new(vec![
            Cell::text(r.ip.to_string()),
            Cell::text(hw),
            Cell::text(format!("{:#x}", r.flags.bits())),
            Cell::text(r.state()),
            Cell::text(r.hw_address_string().unwrap_or_else(|| "-".into())),
            Cell::text(&r.device),
        ])
    });
    combine(ARP_COLUMNS, vec![rows])
}

const TRAFFIC_COLUMNS: &[Column] = &[
    text("IFACE", 12),
    num("RX BYTES", 10),
    num("RX PKTS", 9),
    num("ERRS", 5),
    num("DROP", 5),
    num("FIFO", 5),
    num("FRAME", 5),
    num("COMPR", 5),
    num("MCAST", 5),
    num("TX BYTES", 10),
    num("TX PKTS", 9),
    num("ERRS", 5),
    num("DROP", 5),
    num("FIFO", 5),
    num("COLLS", 5),
    num("CARR", 5),
    num("COMPR", 5),
    num("RX/s", 11),
    num("TX/s", 11),
];

fn traffic(net: &NetSnapshot, data: &TuiData) -> TabView {
    let deltas: HashMap<&str, _> = data
        .net_delta
        .iter()
        .flat_map(|d| d.interfaces.iter())
        .map(|d| (d.name.as_str(), d))
        .collect();
    let rows = part("dev", &net.interfaces, |i| {
        let d = deltas.get(i.name.as_str());
        let c = Cell::count;
        Row::new(vec![
            Cell::text(&i.name),
            bytes(i.rx.bytes),
            c(i.rx.packets),
            c(i.rx.errs),
            c(i.rx.drop),
            c(i.rx.fifo),
            c(i.rx.frame),
            c(i.rx.compressed),
            c(i.rx.multicast),
            bytes(i.tx.bytes),
            c(i.tx.packets),
            c(i.tx.errs),
            c(i.tx.drop),
            c(i.tx.fifo),
            c(i.tx.colls),
            c(i.tx.carrier),
            c(i.tx.compressed),
            opt_rate(d.and_then(|d| d.rx_bytes_per_sec)),
            opt_rate(d.and_then(|d| d.tx_bytes_per_sec)),
        ])
    });
    combine(TRAFFIC_COLUMNS, vec![rows])
}

const STATS_COLUMNS: &[Column] = &[
    text("FILE", 8),
    text("SECTION", 10),
    text("COUNTER", 30),
    num("VALUE", 20),
    num("DELTA", 12),
    num("PER SEC", 12),
];

/// Sections the seed showed; one the kernel lacks gets a row saying so.
const EXPECTED_SECTIONS: [(&str, &[&str]); 3] = [
    ("snmp", &["Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "UdpLite"]),
    ("snmp6", &["Ip6", "Icmp6", "Udp6", "UdpLite6"]),
    ("netstat", &["TcpExt", "IpExt", "MPTcpExt"]),
];

fn stats(net: &NetSnapshot, data: &TuiData) -> TabView {
    let d = data.net_delta.as_ref();
    let files: [(&str, &Availability<CounterTable>, Vec<&CounterDelta>); 3] = [
        (
            "snmp",
            &net.snmp,
            d.map(|d| d.snmp.iter().collect()).unwrap_or_default(),
        ),
        (
            "snmp6",
            &net.snmp6,
            d.map(|d| d.snmp6.iter().collect()).unwrap_or_default(),
        ),
        (
            "netstat",
            &net.netstat,
            d.map(|d| d.netstat.iter().collect()).unwrap_or_default(),
        ),
    ];
    if let (true, Availability::Unavailable(u)) =
        (files.iter().all(|f| !f.1.is_available()), files[0].1)
    {
        return TabView::unavailable(STATS_COLUMNS.to_vec(), why(*u));
    }
    let mut rows = Vec::new();
    for ((file, table, deltas), (_, expected)) in files.iter().zip(EXPECTED_SECTIONS) {
        let deltas: HashMap<(&str, &str), &CounterDelta> = deltas
            .iter()
            .map(|d| ((d.section.as_str(), d.name.as_str()), *d))
            .collect();
        match table {
            Availability::Available(t) => {
                for s in &t.sections {
                    for (name, v) in &s.counters {
                        let d = deltas.get(&(s.name.as_str(), name.as_str()));
                        rows.push(counter_row(file, &s.name, name, *v, d.copied()));
                    }
                }
                for missing in expected.iter().filter(|s| t.section(s).is_none()) {
                    rows.push(missing_row(file, missing, Unavailable::NotOnThisKernel));
                }
            }
            Availability::Unavailable(u) => rows.push(missing_row(file, "*", *u)),
        }
    }
    TabView::rows(STATS_COLUMNS.to_vec(), rows)
}

fn counter_row(file: &str, section: &str, name: &str, v: Value, d: Option<&CounterDelta>) -> Row {
    let value = match v {
        Value::Counter(c) => Cell::count(c),
        Value::Signed(s) => Cell::num(s as f64, s.to_string()),
    };
    Row::new(vec![
        Cell::text(file),
        Cell::text(section),
        Cell::text(name),
        value,
        d.map_or_else(Cell::none, |d| Cell::count(d.step.delta)),
        d.and_then(|d| d.per_sec)
            .map_or_else(Cell::none, |r| Cell::num(r, format!("{r:.1}"))),
    ])
}

fn missing_row(file: &str, section: &str, u: Unavailable) -> Row {
    Row::new(vec![
        Cell::text(file),
        Cell::text(section),
        Cell::text(why(u)),
        Cell::none(),
        Cell::none(),
        Cell::none(),
    ])
}

const ROUTING_COLUMNS: &[Column] = &[
    text("FAM", 4),
    text("DESTINATION", 30),
    text("GATEWAY", 26),
    text("FLAGS", 6),
    num("METRIC", 10),
    text("IFACE", 12),
    text("SOURCE", 22),
    num("MTU", 6),
    num("WINDOW", 6),
    num("IRTT", 5),
    num("REF", 4),
    num("USE", 8),
];

fn routing(net: &NetSnapshot, _: &TuiData) -> TabView {
    let v4 = part("route", &net.routes_v4, |r| {
        let dest = match r.prefix_len {
            Some(p) => format!("{}/{p}", r.destination),
            None => format!("{}/{}", r.destination, r.mask),
        };
        let gw = if r.gateway.is_unspecified() {
            "-".to_string()
        } else {
            r.gateway.to_string()
        };
        Row::new(vec![
            Cell::text("v4"),
            Cell::text(dest),
            Cell::text(gw),
            Cell::text(r.flags.to_string()),
            Cell::count(u64::from(r.metric)),
            Cell::text(&r.iface),
            Cell::text("-"),
            Cell::count(u64::from(r.mtu)),
            Cell::count(u64::from(r.window)),
            Cell::count(u64::from(r.irtt)),
            Cell::none(),
            Cell::none(),
        ])
    });
    let v6 = part("ipv6_route", &net.routes_v6, |r| {
        let gw = if r.next_hop.is_unspecified() {
            "-".to_string()
        } else {
            r.next_hop.to_string()
        };
        let src = if r.source_prefix_len == 0 {
            "-".to_string()
        } else {
            format!("{}/{}", r.source, r.source_prefix_len)
        };
        Row::new(vec![
            Cell::text("v6"),
            Cell::text(format!("{}/{}", r.destination, r.destination_prefix_len)),
            Cell::text(gw),
            Cell::text(r.flags.to_string()),
            Cell::count(u64::from(r.metric)),
            Cell::text(&r.iface),
            Cell::text(src),
            Cell::none(),
            Cell::none(),
            Cell::none(),
            Cell::count(u64::from(r.refcnt)),
            Cell::count(u64::from(r.use_count)),
        ])
    });
    combine(ROUTING_COLUMNS, vec![v4, v6])
}

const ANALYSIS_COLUMNS: &[Column] = &[
    text("CHECK", 40),
    num("VALUE", 16),
    num("DELTA", 12),
    text("MEANING", 60),
];

fn analysis(net: &NetSnapshot, data: &TuiData) -> TabView {
    let a = net.analysis();
    let snmp_delta = |section: &str, name: &str| {
        data.net_delta
            .as_ref()
            .and_then(|d| {
                d.snmp
                    .iter()
                    .find(|c| c.section == section && c.name == name)
            })
            .map(|c| c.step.delta)
    };
    let delta_cell = |d: Option<u64>| d.map_or_else(Cell::none, Cell::count);
    let avail = |v: Availability<String>| match v {
        Availability::Available(s) => Cell::text(s),
        Availability::Unavailable(u) => Cell::text(why(u)),
    };
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    let row = |check: &str, value: Cell, delta: Cell, meaning: &str| {
        Row::new(vec![Cell::text(check), value, delta, Cell::text(meaning)])
    };
    let counter = |check: &str, v: Availability<u64>, d: Option<u64>, meaning: &str| {
        let value = match v {
            Availability::Available(n) => Cell::count(n),
            Availability::Unavailable(u) => Cell::text(why(u)),
        };
        row(check, value, delta_cell(d), meaning)
    };
    let mut rows = vec![
        row(
            "IP forwarding (net.ipv4.ip_forward)",
            avail(a.ip_forward_sysctl.clone().map(on_off)),
            Cell::none(),
            "sysctl; readable only for netmon's own namespace",
        ),
        row(
            "IP forwarding (snmp Ip: Forwarding)",
            avail(a.ip_forwarding.clone().map(on_off)),
            Cell::none(),
            "the same setting as the namespace's snmp reports it",
        ),
        counter(
            "ICMP InMsgs",
            a.icmp_in_msgs.clone(),
            snmp_delta("Icmp", "InMsgs"),
            "ICMP messages received",
        ),
        counter(
            "ICMP InType3 (destination unreachable)",
            a.icmp_in_type3.clone(),
            snmp_delta("IcmpMsg", "InType3"),
            "a peer or router refused or could not route a packet",
        ),
        row(
            "TCP RTO algorithm",
            avail(
                a.tcp_rto
                    .clone()
                    .map(|r| format!("{:?}", r.algorithm).to_lowercase()),
            ),
            Cell::none(),
            "Linux reports 'other' for its Van Jacobson RTO",
        ),
        counter(
            "TCP RTO min (ms)",
            a.tcp_rto.clone().map(|r| r.min_ms),
            None,
            "retransmission timeout floor",
        ),
        counter(
            "TCP RTO max (ms)",
            a.tcp_rto.clone().map(|r| r.max_ms),
            None,
            "retransmission timeout ceiling",
        ),
        counter(
            "UDP InDatagrams",
            a.udp.clone().map(|u| u.in_datagrams),
            snmp_delta("Udp", "InDatagrams"),
            "datagrams delivered to sockets",
        ),
        counter(
            "UDP NoPorts",
            a.udp.clone().map(|u| u.no_ports),
            snmp_delta("Udp", "NoPorts"),
            "datagrams to a port nobody listens on",
        ),
        counter(
            "UDP InErrors",
            a.udp.clone().map(|u| u.in_errors),
            snmp_delta("Udp", "InErrors"),
            "datagrams dropped (buffer full, bad checksum)",
        ),
    ];
    match &net.softnet {
        Availability::Available(t) => {
            for cpu in &t.rows {
                let d = data
                    .net_delta
                    .as_ref()
                    .and_then(|d| d.softnet.iter().find(|s| s.cpu == cpu.cpu));
                let fields: [(&str, u32, Option<u32>, &str); 3] = [
                    (
                        "processed",
                        cpu.processed,
                        d.map(|d| d.processed),
                        "packets taken from the backlog",
                    ),
                    (
                        "dropped",
                        cpu.dropped,
                        d.map(|d| d.dropped),
                        "backlog full: packets lost",
                    ),
                    (
                        "time_squeeze",
                        cpu.time_squeeze,
                        d.map(|d| d.time_squeeze),
                        "NAPI ran out of budget or time",
                    ),
                ];
                for (name, v, dv, meaning) in fields {
                    rows.push(row(
                        &format!("softnet cpu{} {name}", cpu.cpu),
                        Cell::count(u64::from(v)),
                        delta_cell(dv.map(u64::from)),
                        meaning,
                    ));
                }
            }
        }
        Availability::Unavailable(u) => {
            rows.push(row("softnet_stat", Cell::text(why(*u)), Cell::none(), ""))
        }
    }
    TabView::rows(ANALYSIS_COLUMNS.to_vec(), rows)
}
