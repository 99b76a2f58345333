//! Store tests against ground truth built here: fake flows with known bytes, and sums
//! recomputed from those records.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::query::{Piece, Plan};
use super::*;
use crate::history::{By, FlowQuery, FlowRecord, Limits, Pruned, ReportQuery, ReportRow};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "netmon-store-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("sub").join("history.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const T0: i64 = 1_700_000_040_000;
const MIN: i64 = MINUTE_MS;

/// A base time on a whole hour, so tests can reason about minute and hour buckets.
fn base() -> i64 {
    floor_to(T0, HOUR_MS)
}

fn flow(comm: &str, remote: &str, to_ms: i64, tx: u64, rx: u64) -> FlowRecord {
    FlowRecord {
        host: "h1".into(),
        flow_id: 1,
        segment: 0,
        pid: 100,
        start_time: 5,
        comm: comm.into(),
        cmdline: format!("/usr/bin/{comm} --flag"),
        uid: Some(1000),
        unit: String::new(),
        container: String::new(),
        netns: 4026531840,
        proto: "tcp".into(),
        direction: "out".into(),
        local: Some("10.0.0.1:40000".parse().unwrap()),
        remote: Some(remote.parse().unwrap()),
        remote_name: None,
        class: "internet".into(),
        opened_ms: to_ms.saturating_sub(500),
        from_ms: to_ms.saturating_sub(500),
        to_ms,
        ended: true,
        tx_bytes: tx,
        rx_bytes: rx,
        tx_wire_bytes: tx.saturating_add(52),
        rx_wire_bytes: rx.saturating_add(52),
        tx_packets: 3,
        rx_packets: 4,
        handshake_us: Some(120),
        retransmits: 0,
        rtt_us: Some(300),
        closed_by: Some("local".into()),
    }
}

fn q(since: i64, until: i64, by: By) -> ReportQuery {
    ReportQuery {
        since_ms: since,
        until_ms: until,
        by,
        pid: None,
        comm: None,
        every_ms: None,
        limit: 1000,
    }
}

fn open(path: &Path) -> Store {
    let o = Store::open(path).unwrap();
    assert!(o.moved_aside.is_none());
    o.store
}

/// (key, tx, rx, connections) of each row.
fn sums(r: &Report) -> Vec<(String, u64, u64, u64)> {
    r.rows
        .iter()
        .map(|r| (r.key.clone(), r.tx_bytes, r.rx_bytes, r.connections))
        .collect()
}

fn row<'a>(r: &'a Report, key: &str) -> &'a ReportRow {
    r.rows
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no row {key} in {:?}", sums(r)))
}

/// A fixed mix of flows: three processes, three remotes, two ports, two classes, two hosts.
fn mix() -> Vec<FlowRecord> {
    let b = base();
    let mut v = Vec::new();
    let mut f = flow("curl", "93.184.216.34:443", b + 10 * MIN + 1, 100, 1000);
    f.remote_name = Some("example.org".into());
    v.push(f);
    let mut f = flow("curl", "93.184.216.34:443", b + 70 * MIN, 10, 20);
    f.remote_name = Some("example.org".into());
    f.pid = 101;
    v.push(f);
    let mut f = flow("nginx", "10.0.0.7:55000", b + 30 * MIN, 5000, 300);
    f.direction = "in".into();
    f.local = Some("10.0.0.1:80".parse().unwrap());
    f.class = "intranet".into();
    f.unit = "nginx.service".into();
    f.pid = 200;
    v.push(f);
    let mut f = flow("nginx", "10.0.0.8:55001", b + 90 * MIN + 123, 7000, 400);
    f.direction = "in".into();
    f.local = Some("10.0.0.1:80".parse().unwrap());
    f.class = "intranet".into();
    f.unit = "nginx.service".into();
    f.pid = 200;
    f.segment = 1; // a later segment: bytes count, the connection does not
    v.push(f);
    let mut f = flow("postgres", "10.0.0.7:5432", b + 150 * MIN, 1, 2);
    f.host = "h2".into();
    f.class = "intranet".into();
    f.container = "abc123".into();
    f.pid = 300;
    v.push(f);
    v
}

#[test]
fn report_sums_by_each_grouping() {
    let t = TempDir::new("groups");
    let mut s = open(&t.db());
    s.write(&mix()).unwrap();
    let b = base();
    let all = |by| s.report(&q(b, b + 4 * HOUR_MS, by)).unwrap();

    let r = all(By::Process);
    assert!(!r.from_rollups);
    assert_eq!(
        sums(&r),
        vec![
            ("nginx (nginx.service)".into(), 12000, 700, 1),
            ("curl".into(), 110, 1020, 2),
            ("postgres (abc123)".into(), 1, 2, 1),
        ]
    );
    let r = all(By::Remote);
    assert_eq!(row(&r, "93.184.216.34 (example.org)").tx_bytes, 110);
    assert_eq!(row(&r, "10.0.0.8").tx_bytes, 7000);
    assert_eq!(row(&r, "10.0.0.7").tx_bytes, 5001);
    assert_eq!(row(&r, "10.0.0.7").connections, 2);
    assert_eq!(r.rows.len(), 3);
    let r = all(By::Port);
    assert_eq!(
        sums(&r),
        vec![
            ("80/tcp".into(), 12000, 700, 1),
            ("443/tcp".into(), 110, 1020, 2),
            ("5432/tcp".into(), 1, 2, 1),
        ]
    );
    let r = all(By::Class);
    assert_eq!(
        sums(&r),
        vec![
            ("intranet".into(), 12001, 702, 2),
            ("internet".into(), 110, 1020, 2)
        ]
    );
    let r = all(By::Host);
    assert_eq!(
        sums(&r),
        vec![("h1".into(), 12110, 1720, 3), ("h2".into(), 1, 2, 1)]
    );
    let r = all(By::Unit);
    assert_eq!(
        sums(&r),
        vec![
            ("nginx.service".into(), 12000, 700, 1),
            ("(none)".into(), 111, 1022, 3)
        ]
    );
    let r = all(By::Container);
    assert_eq!(row(&r, "abc123").tx_bytes, 1);
    // limit: the busiest first.
    let mut lq = q(b, b + 4 * HOUR_MS, By::Process);
    lq.limit = 1;
    assert_eq!(s.report(&lq).unwrap().rows[0].key, "nginx (nginx.service)");
}

#[test]
fn pid_and_comm_filters() {
    let t = TempDir::new("filters");
    let mut s = open(&t.db());
    s.write(&mix()).unwrap();
    let b = base();
    let mut pq = q(b, b + 4 * HOUR_MS, By::Process);
    pq.pid = Some(101);
    assert_eq!(
        sums(&s.report(&pq).unwrap()),
        vec![("curl".into(), 10, 20, 1)]
    );
    pq.by = By::Remote;
    assert_eq!(
        sums(&s.report(&pq).unwrap()),
        vec![("93.184.216.34 (example.org)".into(), 10, 20, 1)]
    );
    let mut cq = q(b, b + 4 * HOUR_MS, By::Remote);
    cq.comm = Some("nginx".into());
    assert_eq!(
        sums(&s.report(&cq).unwrap()),
        vec![
            ("10.0.0.8".into(), 7000, 400, 0),
            ("10.0.0.7".into(), 5000, 300, 1)
        ]
    );
    // comm with a per-process grouping: answered from roll-ups, same answer.
    cq.by = By::Process;
    let plan = s.plan(&cq).unwrap();
    assert!(
        plan.pieces
            .iter()
            .all(|p| matches!(p, Piece::Rollup { .. }))
    );
    assert_eq!(
        sums(&s.report(&cq).unwrap()),
        vec![("nginx (nginx.service)".into(), 12000, 700, 1)]
    );
    cq.comm = Some("nothing".into());
    assert!(s.report(&cq).unwrap().rows.is_empty());
    // flows() filters too.
    let fq = FlowQuery {
        since_ms: b,
        until_ms: b + 4 * HOUR_MS,
        pid: Some(200),
        comm: Some("nginx".into()),
        limit: None,
    };
    assert_eq!(s.flows(&fq).unwrap().len(), 2);
}

#[test]
fn series_buckets_and_boundaries() {
    let t = TempDir::new("series");
    let mut s = open(&t.db());
    let b = base();
    // Records ending exactly on a bucket edge belong to the bucket that ends there.
    s.write(&[
        flow("a", "1.1.1.1:53", b + 10 * MIN, 1, 0), // (b, b+10m]  -> bucket b
        flow("a", "1.1.1.1:53", b + 10 * MIN + 1, 2, 0), // -> bucket b+10m
        flow("a", "1.1.1.1:53", b + 25 * MIN, 4, 0), // -> bucket b+20m
        flow("a", "1.1.1.1:53", b + 59 * MIN, 8, 0), // -> bucket b+50m
    ])
    .unwrap();
    for (since, until) in [
        (b, b + HOUR_MS),
        (b + 1, b + HOUR_MS - 1),
        (b - 5, b + 61 * MIN),
    ] {
        let mut rq = q(since, until, By::Process);
        rq.every_ms = Some(10 * MIN);
        let r = s.report(&rq).unwrap();
        assert!(!r.from_rollups);
        let row = &r.rows[0];
        let total: u64 = row.series.iter().map(|b| b.tx_bytes).sum();
        assert_eq!(total, row.tx_bytes);
        let first = bucket_of(since + 1, 10 * MIN);
        let last = bucket_of(until, 10 * MIN);
        assert_eq!(row.series.first().unwrap().start_ms, first);
        assert_eq!(row.series.last().unwrap().start_ms, last);
        assert_eq!(row.series.len() as i64, (last - first) / (10 * MIN) + 1);
        let at = |t: i64| {
            row.series
                .iter()
                .find(|x| x.start_ms == t)
                .unwrap()
                .tx_bytes
        };
        assert_eq!(at(b), 1);
        assert_eq!(at(b + 10 * MIN), 2);
        assert_eq!(at(b + 20 * MIN), 4);
        assert_eq!(at(b + 30 * MIN), 0);
        assert_eq!(at(b + 50 * MIN), 8);
    }
    // A step that is not a whole number of minutes: raw records answer exactly.
    let mut rq = q(b, b + HOUR_MS, By::Process);
    rq.every_ms = Some(7_000);
    let r = s.report(&rq).unwrap();
    assert_eq!(r.rows[0].series.iter().map(|b| b.tx_bytes).sum::<u64>(), 15);
    // Nonsense steps are errors, not panics.
    rq.every_ms = Some(0);
    assert!(matches!(s.report(&rq), Err(StoreError::Query { .. })));
    rq.every_ms = Some(1);
    assert!(matches!(s.report(&rq), Err(StoreError::Query { .. })));
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_flows(rng: &mut Rng, n: usize, start: i64, span: i64) -> Vec<FlowRecord> {
    let comms = ["curl", "nginx", "sshd", "chrome", "apt"];
    let units = ["", "", "nginx.service", "ssh.service"];
    let remotes = [
        "1.1.1.1",
        "8.8.8.8",
        "10.0.0.9",
        "2001:db8::1",
        "192.168.1.1",
    ];
    (0..n)
        .map(|i| {
            let to = start + rng.below(span as u64) as i64 + 1;
            let r = remotes[rng.below(5) as usize];
            let port = [443u16, 80, 53, 22][rng.below(4) as usize];
            let mut f = flow(
                comms[rng.below(5) as usize],
                &SocketAddr::new(r.parse().unwrap(), port).to_string(),
                to,
                rng.below(100_000),
                rng.below(100_000),
            );
            f.flow_id = i as u64;
            f.segment = rng.below(3) as u32;
            f.pid = 100 + rng.below(20) as u32;
            f.unit = units[rng.below(4) as usize].into();
            f.proto = if rng.below(4) == 0 { "udp" } else { "tcp" }.into();
            f.direction = if rng.below(3) == 0 { "in" } else { "out" }.into();
            f.class = crate::history::classify(f.remote.unwrap().ip(), &[]);
            if rng.below(2) == 0 {
                f.remote_name = Some(format!("{r}.example"));
            }
            f
        })
        .collect()
}

use std::net::SocketAddr;

/// Sums recomputed from the records: (key → (tx, rx, connections)).
fn brute(
    flows: &[FlowRecord],
    since: i64,
    until: i64,
    by: By,
) -> std::collections::BTreeMap<String, (u64, u64, u64)> {
    let mut m = std::collections::BTreeMap::new();
    for f in flows.iter().filter(|f| since < f.to_ms && f.to_ms <= until) {
        let key = match by {
            By::Process if !f.unit.is_empty() => format!("{} ({})", f.comm, f.unit),
            By::Process => f.comm.clone(),
            By::Remote => {
                let ip = f.remote.unwrap().ip().to_string();
                match &f.remote_name {
                    Some(n) => format!("{ip} ({n})"),
                    None => ip,
                }
            }
            By::Port => format!("{}/{}", f.service_port().unwrap(), f.proto),
            By::Class => f.class.clone(),
            By::Host => f.host.clone(),
            By::Unit if f.unit.is_empty() => "(none)".into(),
            By::Unit => f.unit.clone(),
            By::Container => "(none)".into(),
        };
        let e: &mut (u64, u64, u64) = m.entry(key).or_default();
        e.0 += f.tx_bytes;
        e.1 += f.rx_bytes;
        e.2 += u64::from(f.segment == 0);
    }
    m
}

fn as_map(r: &Report) -> std::collections::BTreeMap<String, (u64, u64, u64)> {
    r.rows
        .iter()
        .map(|r| (r.key.clone(), (r.tx_bytes, r.rx_bytes, r.connections)))
        .collect()
}

const ALL_BY: [By; 7] = [
    By::Process,
    By::Remote,
    By::Host,
    By::Unit,
    By::Container,
    By::Port,
    By::Class,
];

#[test]
fn exact_on_any_range_and_raw_equals_rollups_on_whole_minutes() {
    let t = TempDir::new("exact");
    let mut s = open(&t.db());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let b = base();
    let flows = random_flows(&mut rng, 3000, b, 5 * HOUR_MS);
    for batch in flows.chunks(97) {
        s.write(batch).unwrap();
    }
    for i in 0..40 {
        let since = b - MIN + rng.below(5 * HOUR_MS as u64) as i64;
        let until = since + rng.below(3 * HOUR_MS as u64) as i64;
        let (since, until) = if i % 2 == 0 {
            (floor_to(since, MIN), floor_to(until, MIN)) // whole minutes
        } else {
            (since, until)
        };
        for by in ALL_BY {
            let mut rq = q(since, until, by);
            let r = s.report(&rq).unwrap();
            assert!(!r.from_rollups);
            assert_eq!(
                as_map(&r),
                brute(&flows, since, until, by),
                "{by:?} {since} {until}"
            );
            // Forced raw: the same answer, series included.
            rq.every_ms = Some([MIN, 5 * MIN, HOUR_MS][i % 3]);
            let raw = s
                .run(
                    &rq,
                    &Plan {
                        pieces: vec![Piece::Raw(since, until)],
                        since,
                        until,
                        from_rollups: false,
                        raw_gone: false,
                    },
                )
                .unwrap();
            let planned = s.report(&rq).unwrap();
            assert_eq!(raw, planned, "{by:?} {since} {until}");
            if i % 2 == 0 && until - since >= 2 * HOUR_MS {
                // Whole minutes, long range: hourly roll-ups take part.
                let plan = s.plan(&rq).unwrap();
                assert!(
                    plan.pieces
                        .iter()
                        .any(|p| matches!(p, Piece::Rollup { width, .. } if *width == HOUR_MS))
                        || rq.every_ms != Some(HOUR_MS)
                        || floor_to(until, HOUR_MS) <= ceil_to(since, HOUR_MS)
                );
            }
        }
    }
}

#[test]
fn edges_from_rollups_once_raw_records_are_pruned() {
    let t = TempDir::new("edges");
    let mut s = open(&t.db());
    let b = base();
    s.write(&[
        flow("a", "1.1.1.1:443", b + 30_000, 1, 0),    // minute b
        flow("a", "1.1.1.1:443", b + 90_000, 10, 0),   // minute b+1m
        flow("a", "1.1.1.1:443", b + 150_000, 100, 0), // minute b+2m
    ])
    .unwrap();
    // Exact while raw records are there.
    let r = s.report(&q(b + 40_000, b + 140_000, By::Process)).unwrap();
    assert_eq!((r.rows[0].tx_bytes, r.from_rollups), (10, false));
    // Raw records kept 0 ms: all go; roll-ups stay.
    let p = s
        .prune(
            b + 200_000,
            &Limits {
                max_age_ms: HOUR_MS,
                raw_max_age_ms: 0,
                max_bytes: u64::MAX,
            },
        )
        .unwrap();
    assert_eq!(p.flows_by_age, 3);
    assert!(
        s.flows(&FlowQuery {
            since_ms: b,
            until_ms: b + HOUR_MS,
            ..Default::default()
        })
        .unwrap()
        .is_empty()
    );
    // The same range is now widened to the whole minutes that hold its edges.
    let r = s.report(&q(b + 40_000, b + 140_000, By::Process)).unwrap();
    assert_eq!((r.rows[0].tx_bytes, r.from_rollups), (111, true));
    // Whole-minute ranges stay exact.
    let r = s.report(&q(b + MIN, b + 2 * MIN, By::Process)).unwrap();
    assert_eq!((r.rows[0].tx_bytes, r.from_rollups), (10, false));
    // A pid filter can only use raw records.
    let mut pq = q(b, b + HOUR_MS, By::Process);
    pq.pid = Some(100);
    assert!(s.report(&pq).unwrap().rows.is_empty());
}

#[test]
fn flows_round_trip() {
    let t = TempDir::new("roundtrip");
    let mut s = open(&t.db());
    let b = base();
    let mut a = flow("curl", "[2001:db8::1]:443", b + 5, 1, 2);
    a.flow_id = u64::MAX - 7; // all 64 bits survive
    a.start_time = u64::MAX;
    a.netns = 1 << 63;
    a.remote_name = Some("ipv6.example".into());
    a.segment = 3;
    a.ended = false;
    a.closed_by = None;
    let c = FlowRecord {
        host: "h".into(),
        to_ms: b + 7,
        proto: "udp".into(),
        class: "loopback".into(),
        ..Default::default()
    };
    let mut d = flow("x", "[::ffff:1.2.3.4]:53", b + 6, 0, 0);
    d.uid = None;
    d.handshake_us = None;
    d.rtt_us = None;
    d.cmdline = "has 'quotes' and \"more\"; DROP TABLE flows;".into();
    let written = vec![a, d, c];
    s.write(&written).unwrap();
    let fq = FlowQuery {
        since_ms: b,
        until_ms: b + 10,
        ..Default::default()
    };
    assert_eq!(s.flows(&fq).unwrap(), written);
    let limited = s
        .flows(&FlowQuery {
            limit: Some(2),
            ..fq.clone()
        })
        .unwrap();
    assert_eq!(limited, written[..2]);
    // (since, until]: the record at `since` is out, the one at `until` in.
    let edge = s
        .flows(&FlowQuery {
            since_ms: b + 5,
            until_ms: b + 6,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(edge, written[1..2]);
}

#[test]
fn long_lived_connection_segments_sum() {
    let t = TempDir::new("segments");
    let mut s = open(&t.db());
    let b = base();
    // One connection over 10 minutes: a record per minute, each with its own bytes.
    let segs: Vec<FlowRecord> = (0..10)
        .map(|i| {
            let mut f = flow("ssh", "10.1.1.1:22", b + (i + 1) * MIN, 1000 + i as u64, 7);
            f.flow_id = 42;
            f.segment = i as u32;
            f.from_ms = b + i * MIN;
            f.opened_ms = b;
            f.ended = i == 9;
            f
        })
        .collect();
    for seg in &segs {
        s.write(std::slice::from_ref(seg)).unwrap(); // as the daemon: one batch each
    }
    let r = s.report(&q(b, b + 10 * MIN, By::Remote)).unwrap();
    assert_eq!(sums(&r), vec![("10.1.1.1".into(), 10_045, 70, 1)]);
    // Half the range: the segments that end in it.
    let r = s.report(&q(b + 5 * MIN, b + 10 * MIN, By::Remote)).unwrap();
    assert_eq!(sums(&r), vec![("10.1.1.1".into(), 5035, 35, 0)]);
    let mut sq = q(b, b + 10 * MIN, By::Process);
    sq.every_ms = Some(MIN);
    let r = s.report(&sq).unwrap();
    assert_eq!(
        r.rows[0]
            .series
            .iter()
            .map(|x| x.tx_bytes)
            .collect::<Vec<_>>(),
        (0..10).map(|i| 1000 + i).collect::<Vec<u64>>()
    );
    // One process row for all ten records.
    let n: i64 = s
        .conn
        .query_row("SELECT count(*) FROM procs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn retention_by_age_counts_persist() {
    let t = TempDir::new("age");
    let b = base();
    let day = 86_400_000;
    {
        let mut s = open(&t.db());
        // One flow per hour over 3 days, each from its own process.
        let flows: Vec<FlowRecord> = (0..72)
            .map(|h| {
                let mut f = flow("p", "1.1.1.1:443", b + h * HOUR_MS + 1000, 1, 1);
                f.pid = 1000 + h as u32;
                f
            })
            .collect();
        s.write(&flows).unwrap();
        let now = b + 3 * day;
        let limits = Limits {
            max_age_ms: 2 * day,
            raw_max_age_ms: day,
            max_bytes: u64::MAX,
        };
        let p = s.prune(now, &limits).unwrap();
        // Raw kept for the last day (flows at hours 48..71: to_ms >= now - 1 day).
        assert_eq!(p.flows_by_age, 48);
        // Roll-ups: rows wholly older than 2 days, i.e. ending before `now - 2 days`: the
        // 24 first flows' minute rows (both families), and the hour rows of the first 23
        // (the 24th hour ends exactly at the cutoff and could hold a record ending there,
        // which is not older, so it stays, as such a raw record would).
        assert_eq!(p.rollups_by_age, 24 * 2 + 23 * 2);
        assert_eq!((p.flows_by_size, p.rollups_by_size), (0, 0));
        let st = s.stats().unwrap();
        assert_eq!(st.flows, 24);
        assert_eq!(st.rollup_rows, 72 * 4 - 94);
        assert_eq!(st.oldest_flow_ms, Some(b + 48 * HOUR_MS + 1000));
        assert_eq!(st.oldest_rollup_ms, Some(b + 23 * HOUR_MS));
        assert_eq!(st.removed, p);
        // What the daemon reads each minute agrees, without counting rows.
        let h = s.health().unwrap();
        assert_eq!(
            (h.db_bytes, h.oldest_flow_ms, h.oldest_rollup_ms, h.removed),
            (
                st.db_bytes,
                st.oldest_flow_ms,
                st.oldest_rollup_ms,
                st.removed
            )
        );
        // Orphaned process rows are gone.
        let procs: i64 = s
            .conn
            .query_row("SELECT count(*) FROM procs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(procs, 24);
        // A second pass removes nothing more; the totals stay.
        assert_eq!(s.prune(now, &limits).unwrap(), Pruned::default());
        // The roll-ups still answer for the second day.
        let r = s.report(&q(b + day, b + 2 * day, By::Process)).unwrap();
        assert_eq!(r.rows[0].tx_bytes, 24);
        assert_eq!(r.raw_gone_until, None);
        // Only raw flows know the process behind a remote: the report says from when they
        // are left, and sums those (the 24 of the last day).
        let by_remote_of_p = ReportQuery {
            comm: Some("p".into()),
            ..q(b, now, By::Remote)
        };
        let r = s.report(&by_remote_of_p).unwrap();
        assert_eq!(r.raw_gone_until, Some(s.raw_complete_after().unwrap()));
        assert!(r.raw_gone_until.unwrap() > b + 47 * HOUR_MS);
        assert_eq!((r.rows[0].tx_bytes, r.rows[0].connections), (24, 24));
        // Writing again after a prune (cached ids dropped) works.
        s.write(&[flow("p", "1.1.1.1:443", now, 5, 5)]).unwrap();
        assert!(s.integrity_ok().unwrap());
    }
    let s = Store::open_read(&t.db()).unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.removed.flows_by_age, 48);
    assert_eq!(st.removed.rollups_by_age, 94);
    assert_eq!(st.flows, 25);
}

#[test]
fn retention_by_size_shrinks_the_file() {
    let t = TempDir::new("size");
    let b = base();
    let mut rng = Rng(7);
    let mut s = open(&t.db());
    let mut flows = random_flows(&mut rng, 20_000, b, 10 * HOUR_MS);
    flows.sort_by_key(|f| f.to_ms); // as the daemon writes them
    for batch in flows.chunks(500) {
        s.write(batch).unwrap();
    }
    let before = s.stats().unwrap();
    assert_eq!(before.flows, 20_000);
    let max = before.db_bytes / 3;
    let limits = Limits {
        max_age_ms: 365 * 86_400_000,
        raw_max_age_ms: 365 * 86_400_000,
        max_bytes: max,
    };
    let p = s.prune(b + 10 * HOUR_MS, &limits).unwrap();
    let after = s.stats().unwrap();
    // Close to the limit, not everything: the step size is learnt from the first step.
    assert!(after.db_bytes > max * 8 / 10, "{} of {max}", after.db_bytes);
    assert!(after.db_bytes <= max, "{} > {max}", after.db_bytes);
    assert!(p.flows_by_size > 0);
    assert_eq!(p.flows_by_age, 0);
    assert_eq!(after.flows + p.flows_by_size, 20_000);
    assert_eq!(after.rollup_rows + p.rollups_by_size, before.rollup_rows);
    // The oldest went first.
    let mut to: Vec<i64> = flows.iter().map(|f| f.to_ms).collect();
    to.sort();
    assert!(after.oldest_flow_ms.unwrap() >= to[p.flows_by_size as usize - 1]);
    // The file itself shrinks once the WAL is checkpointed.
    s.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let file = std::fs::metadata(t.db()).unwrap().len();
    assert!(file <= max, "file {file} > {max}");
    // Smaller than anything: everything goes, roll-ups last; no endless loop.
    let p2 = s
        .prune(
            b + 10 * HOUR_MS,
            &Limits {
                max_bytes: 0,
                ..limits
            },
        )
        .unwrap();
    let empty = s.stats().unwrap();
    assert_eq!((empty.flows, empty.rollup_rows), (0, 0));
    assert_eq!(p2.flows_by_size, after.flows);
    assert_eq!(p2.rollups_by_size, after.rollup_rows);
    drop(s);
    let s = open(&t.db());
    let st = s.stats().unwrap();
    assert_eq!(st.removed.flows_by_size, 20_000);
    assert_eq!(st.removed.rollups_by_size, before.rollup_rows);
    assert!(s.integrity_ok().unwrap());
}

#[test]
fn garbage_file_is_moved_aside() {
    let t = TempDir::new("garbage");
    let db = t.db();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, vec![0xA5u8; 10_000]).unwrap();
    let o = Store::open(&db).unwrap();
    let aside = o.moved_aside.clone().expect("moved aside");
    assert!(aside.to_string_lossy().contains(".corrupt-"));
    assert_eq!(std::fs::read(&aside).unwrap(), vec![0xA5u8; 10_000]);
    let mut s = o.store;
    s.write(&mix()).unwrap();
    assert_eq!(s.stats().unwrap().flows, 5);
}

#[test]
fn moving_aside_takes_wal_and_shm() {
    let t = TempDir::new("aside");
    std::fs::create_dir_all(&t.0).unwrap();
    let db = t.0.join("h.db");
    for (suffix, data) in [("", "main"), ("-wal", "wal"), ("-shm", "shm")] {
        std::fs::write(format!("{}{suffix}", db.display()), data).unwrap();
    }
    let first = schema::move_aside(&db).unwrap();
    std::fs::write(&db, "again").unwrap();
    let second = schema::move_aside(&db).unwrap();
    assert_ne!(first, second);
    for (suffix, data) in [("", "main"), ("-wal", "wal"), ("-shm", "shm")] {
        let p = format!("{}{suffix}", first.display());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), data);
        assert!(!PathBuf::from(format!("{}{suffix}", db.display())).exists());
    }
    assert_eq!(std::fs::read_to_string(&second).unwrap(), "again");
}

#[test]
fn corrupt_store_is_moved_aside() {
    let t = TempDir::new("corrupt");
    let db = t.db();
    {
        let mut s = open(&db);
        let mut rng = Rng(3);
        s.write(&random_flows(&mut rng, 3000, base(), HOUR_MS))
            .unwrap();
    } // closing the last connection checkpoints into the main file
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8 * 4096);
    for b in &mut bytes[2 * 4096..6 * 4096] {
        *b = 0x5A;
    }
    std::fs::write(&db, &bytes).unwrap();
    let o = Store::open(&db).unwrap();
    assert!(o.moved_aside.is_some());
    assert_eq!(o.store.stats().unwrap().flows, 0);
}

#[test]
fn foreign_sqlite_file_is_moved_aside_newer_refused() {
    let t = TempDir::new("foreign");
    let db = t.db();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos (name) VALUES ('cat');")
            .unwrap();
    }
    // A reader refuses it and leaves it alone.
    assert!(matches!(
        Store::open_read(&db),
        Err(StoreError::NotHistory { .. })
    ));
    let o = Store::open(&db).unwrap();
    let aside = o.moved_aside.expect("moved aside");
    let c = rusqlite::Connection::open(&aside).unwrap();
    let name: String = c
        .query_row("SELECT name FROM photos", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "cat");
    drop(o.store);

    // A newer netmon's file: refused by both, not moved.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let e = Store::open(&db).expect_err("refused");
    assert!(matches!(e, StoreError::Newer { found: 99, .. }), "{e}");
    assert!(e.to_string().contains(&db.display().to_string()));
    assert!(matches!(
        Store::open_read(&db),
        Err(StoreError::Newer { .. })
    ));
    assert!(db.exists());
}

#[test]
fn open_read_of_a_missing_file() {
    let t = TempDir::new("missing");
    let e = Store::open_read(&t.db()).expect_err("missing");
    assert!(matches!(e, StoreError::Missing { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains(&t.db().display().to_string()) && !msg.contains('\n'),
        "{msg}"
    );
    assert!(
        !t.db().exists() && !t.0.exists(),
        "open_read created something"
    );
}

#[test]
fn reader_reads_while_a_writer_holds_a_transaction() {
    let t = TempDir::new("concurrent");
    let mut w = open(&t.db());
    w.write(&mix()).unwrap();
    w.conn
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM flows;")
        .unwrap();
    let r = Store::open_read(&t.db()).unwrap();
    let b = base();
    let rep = r.report(&q(b, b + 4 * HOUR_MS, By::Host)).unwrap();
    assert_eq!(row(&rep, "h1").tx_bytes, 12110);
    assert_eq!(r.stats().unwrap().flows, 5);
    // A reader cannot write.
    let mut r2 = Store::open_read(&t.db()).unwrap();
    assert!(matches!(r2.write(&mix()), Err(StoreError::ReadOnly { .. })));
    w.conn.execute_batch("ROLLBACK").unwrap();
    // A second writer waits for the first rather than failing.
    let mut w2 = open(&t.db());
    w2.write(&mix()).unwrap();
    w.write(&mix()).unwrap();
    assert_eq!(r.stats().unwrap().flows, 15);
}

#[test]
fn reopen_keeps_data() {
    let t = TempDir::new("reopen");
    let b = base();
    {
        let mut s = open(&t.db());
        s.write(&mix()).unwrap();
    }
    {
        let mut s = open(&t.db());
        // Process rows are found again, not duplicated (nginx wrote two records).
        s.write(&mix()).unwrap();
        let n: i64 = s
            .conn
            .query_row("SELECT count(*) FROM procs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4);
    }
    let s = Store::open_read(&t.db()).unwrap();
    let r = s.report(&q(b, b + 4 * HOUR_MS, By::Host)).unwrap();
    assert_eq!(row(&r, "h1").tx_bytes, 2 * 12110);
    assert_eq!(s.stats().unwrap().flows, 10);
    assert!(s.integrity_ok().unwrap());
}

#[test]
fn odd_inputs_do_not_panic() {
    let t = TempDir::new("odd");
    let mut s = open(&t.db());
    let mut f = flow("x", "1.1.1.1:1", i64::MIN, u64::MAX, u64::MAX);
    f.from_ms = i64::MAX;
    let mut g = f.clone();
    g.to_ms = i64::MAX;
    s.write(&[f.clone(), f, g]).unwrap();
    s.write(&[]).unwrap();
    for (since, until) in [(i64::MIN, i64::MAX), (0, -5), (i64::MAX - 1, i64::MAX)] {
        for by in ALL_BY {
            let _ = s.report(&q(since, until, by)).unwrap();
        }
        let mut eq = q(since, until, By::Process);
        eq.every_ms = Some(i64::MAX);
        let _ = s.report(&eq);
    }
    let _ = s
        .prune(
            i64::MIN,
            &Limits {
                max_age_ms: i64::MAX,
                raw_max_age_ms: i64::MIN,
                max_bytes: 0,
            },
        )
        .unwrap();
    assert_eq!(s.stats().unwrap().flows, 0);
}
