//! Report and flow output from fixture rows with known values. Tables are rendered in UTC
//! (the public functions use local time; one test checks they differ only in that).
use super::*;

/// 2026-12-07T00:00:00Z.
const DAY: i64 = 1_796_601_600_000;
const HOUR: i64 = 3_600_000;
const MIB: u64 = 1 << 20;

fn utc(ms: i64) -> String {
    format_rfc3339(ms)[..19].replace('T', " ")
}

fn header(every: bool, from_rollups: bool) -> ReportHeader {
    ReportHeader {
        since_ms: DAY,
        until_ms: DAY + 24 * HOUR,
        by: By::Process,
        from_rollups,
        raw_gone: false,
        every_ms: every.then_some(HOUR),
    }
}

/// 24 hourly buckets from `DAY`, with `f(hour)` MiB received in each.
fn series(f: impl Fn(u64) -> u64) -> Vec<Bucket> {
    (0..24)
        .map(|h| Bucket {
            start_ms: DAY + h as i64 * HOUR,
            tx_bytes: 0,
            rx_bytes: f(h) * MIB,
        })
        .collect()
}

fn row(key: &str, tx: u64, conns: u64, s: Vec<Bucket>) -> ReportRow {
    ReportRow {
        key: key.into(),
        tx_bytes: tx,
        rx_bytes: s.iter().map(|b| b.rx_bytes).sum(),
        connections: conns,
        series: s,
    }
}

/// Known shapes: a ramp (1..=24 MiB an hour), one burst at 02:00–04:00, a single spike at
/// noon, and a row with a long key (for cutting).
fn rows() -> Vec<ReportRow> {
    vec![
        row("curl", 2 * MIB, 120, series(|h| h + 1)),
        row(
            "backup-agent (backup-agent-nightly.service)",
            300 * MIB,
            3,
            series(|h| if (2..4).contains(&h) { 40 } else { 0 }),
        ),
        row(
            "nginx (nginx.service)",
            1024,
            9,
            series(|h| u64::from(h == 12)),
        ),
    ]
}

fn without_series() -> Vec<ReportRow> {
    rows()
        .into_iter()
        .map(|r| ReportRow {
            series: Vec::new(),
            ..r
        })
        .collect()
}

#[test]
fn merging_buckets_keeps_the_sums() {
    let s: Vec<Bucket> = (0..7)
        .map(|i| Bucket {
            start_ms: i * 10,
            tx_bytes: 1 << i,
            rx_bytes: 100 + i as u64,
        })
        .collect();
    let m = merge_buckets(&s, 3);
    // 7 into 3: runs of 2, 2 and 3 buckets.
    assert_eq!(
        m,
        [
            Bucket {
                start_ms: 0,
                tx_bytes: 1 + 2,
                rx_bytes: 100 + 101
            },
            Bucket {
                start_ms: 20,
                tx_bytes: 4 + 8,
                rx_bytes: 102 + 103
            },
            Bucket {
                start_ms: 40,
                tx_bytes: 16 + 32 + 64,
                rx_bytes: 104 + 105 + 106
            },
        ]
    );
    for cells in 1..=8 {
        let m = merge_buckets(&s, cells);
        assert_eq!(m.len(), cells.min(7));
        assert_eq!(m.iter().map(|b| b.tx_bytes).sum::<u64>(), 127);
        assert_eq!(m.iter().map(|b| b.rx_bytes).sum::<u64>(), 721);
    }
    // 24 hourly buckets into 12 cells: pairs.
    let ramp = series(|h| h + 1);
    let pairs = merge_buckets(&ramp, 12);
    assert_eq!(pairs[0].rx_bytes, 3 * MIB);
    assert_eq!(pairs[11].rx_bytes, (23 + 24) * MIB);
    assert_eq!(pairs[5].start_ms, DAY + 10 * HOUR);
}

#[test]
fn sparkline_shapes() {
    assert_eq!(
        sparkline(&series(|h| h / 3 + 1), 24),
        "▁▁▁▂▂▂▃▃▃▄▄▄▅▅▅▆▆▆▇▇▇███"
    );
    let burst = sparkline(&series(|h| if (2..4).contains(&h) { 40 } else { 0 }), 24);
    assert_eq!(burst, format!("  ██{}", " ".repeat(20)));
    // Scaled to the row's own maximum: a tiny row still reaches █.
    assert_eq!(
        sparkline(&series(|h| u64::from(h == 12)), 24),
        format!("{}█{}", " ".repeat(12), " ".repeat(11))
    );
    // Any traffic shows, however small next to the maximum.
    let s = [
        Bucket {
            rx_bytes: 1,
            ..Bucket::default()
        },
        Bucket::default(),
        Bucket {
            tx_bytes: 1_000_000,
            ..Bucket::default()
        },
    ];
    assert_eq!(sparkline(&s, 3), "▁ █");
    assert_eq!(sparkline(&[], 10), "");
}

#[test]
fn report_tables() {
    for width in [80, 120] {
        let t = report_table_in(&rows(), &header(true, false), width, utc);
        assert!(t.lines().all(|l| l.chars().count() <= width), "{t}");
        insta::assert_snapshot!(format!("report_series_w{width}"), t);
    }
    let t = report_table_in(&without_series(), &header(false, true), 80, utc);
    assert!(t.lines().all(|l| l.chars().count() <= 80), "{t}");
    insta::assert_snapshot!("report_rollups_w80", t);
    let t = report_table_in(&without_series(), &header(false, true), 120, utc);
    insta::assert_snapshot!("report_rollups_w120", t);
}

/// A report that starts later than asked (the raw flows it needs were pruned) says so under
/// its title, within the width, and in each JSON line.
#[test]
fn a_report_that_starts_late_says_why() {
    let h = ReportHeader {
        raw_gone: true,
        ..header(false, false)
    };
    let t = report_table_in(&without_series(), &h, 80, utc);
    assert_eq!(
        t.lines().nth(1),
        Some("(later than asked: raw flows before it are gone, --raw-retention)"),
        "{t}"
    );
    assert!(
        report_json(&without_series(), &h)
            .lines()
            .all(|l| l.contains("\"raw_gone\":true"))
    );
    assert!(!report_json(&without_series(), &header(false, false)).contains("raw_gone"));
}

#[test]
fn report_totals_add_up() {
    let t = report_table_in(&without_series(), &header(false, false), 120, utc);
    let total = t.lines().last().unwrap();
    // 2 MiB + 300 MiB + 1 KiB sent; 300 + 80 + 1 MiB received; 132 connections.
    assert!(total.starts_with("TOTAL"), "{total}");
    assert!(total.contains("302 MiB"), "{total}");
    assert!(total.contains("381 MiB"), "{total}");
    assert!(total.ends_with(" 132"), "{total}");
}

#[test]
fn empty_report_says_so() {
    let t = report_table_in(&[], &header(true, false), 120, utc);
    assert_eq!(
        t,
        "no traffic recorded between 2026-12-07 00:00:00 and 2026-12-08 00:00:00\n"
    );
    assert_eq!(report_json(&[], &header(false, false)), "");
}

#[test]
fn public_functions_use_local_time() {
    let h = header(false, false);
    assert_eq!(
        report_table(&[], &h, 200),
        format!(
            "no traffic recorded between {} and {}\n",
            format_local(h.since_ms),
            format_local(h.until_ms)
        )
    );
    assert_eq!(
        flows_text(&flows(), 140),
        flows_text_in(&flows(), 140, format_local)
    );
}

#[test]
fn report_json_lines() {
    let j = report_json(&rows()[2..], &header(true, true));
    assert_eq!(j.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(j.trim_end()).unwrap();
    assert_eq!(v["since"], "2026-12-07T00:00:00.000Z");
    assert_eq!(v["by"], "process");
    assert_eq!(v["series"].as_array().unwrap().len(), 24);
    assert_eq!(v["series"][12]["start"], "2026-12-07T12:00:00.000Z");
    assert_eq!(v["series"][12]["rx_bytes"], MIB);
    insta::assert_snapshot!(
        "report_json_no_series",
        report_json(&without_series(), &header(false, false))
    );
}

#[test]
fn report_csv_quotes_and_series() {
    let mut r = without_series();
    r[0].key = "worker, \"the second\"".into();
    r[1].key = " padded".into();
    let csv = report_csv(&r, &header(false, false));
    insta::assert_snapshot!("report_csv", csv);
    assert!(csv.contains(",\"worker, \"\"the second\"\"\","));

    let csv = report_csv(&rows()[2..], &header(true, false));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "since,until,by,key,bucket_start,tx_bytes,rx_bytes"
    );
    assert_eq!(lines.len(), 1 + 24);
    assert_eq!(
        lines[13],
        "2026-12-07T00:00:00.000Z,2026-12-08T00:00:00.000Z,process,nginx (nginx.service),\
         2026-12-07T12:00:00.000Z,0,1048576"
    );
}

fn flows() -> Vec<FlowRecord> {
    let base = FlowRecord {
        host: "web1".into(),
        pid: 4242,
        comm: "curl".into(),
        proto: "tcp".into(),
        direction: "out".into(),
        local: Some("10.0.0.5:51234".parse().unwrap()),
        remote: Some("93.184.216.34:443".parse().unwrap()),
        remote_name: Some("example.org".into()),
        class: "internet".into(),
        opened_ms: DAY + 10 * HOUR,
        ..FlowRecord::default()
    };
    vec![
        // A periodic update of a long download: a minute's stretch.
        FlowRecord {
            flow_id: 7,
            segment: 0,
            from_ms: DAY + 10 * HOUR,
            to_ms: DAY + 10 * HOUR + 60_000,
            tx_bytes: 900,
            rx_bytes: 5 * MIB,
            ..base.clone()
        },
        // Its last record: 3 m 25 s after it opened, closed by this host.
        FlowRecord {
            flow_id: 7,
            segment: 1,
            from_ms: DAY + 10 * HOUR + 60_000,
            to_ms: DAY + 10 * HOUR + 205_000,
            ended: true,
            closed_by: Some("local".into()),
            tx_bytes: 100,
            rx_bytes: 10 * MIB + 512 * 1024,
            ..base.clone()
        },
        // An accepted connection the peer reset.
        FlowRecord {
            flow_id: 8,
            pid: 812,
            comm: "nginx: worker process".into(),
            direction: "in".into(),
            local: Some("[2001:db8::5]:443".parse().unwrap()),
            remote: Some("[2001:db8:ffff::1234]:60000".parse().unwrap()),
            remote_name: None,
            opened_ms: DAY + 11 * HOUR,
            from_ms: DAY + 11 * HOUR,
            to_ms: DAY + 11 * HOUR + 850,
            ended: true,
            closed_by: Some("reset-received".into()),
            tx_bytes: 0,
            rx_bytes: 517,
            ..base.clone()
        },
        // A DNS query: UDP has no closer.
        FlowRecord {
            flow_id: 9,
            pid: 77,
            comm: "resolved".into(),
            proto: "udp".into(),
            local: Some("127.0.0.53:53".parse().unwrap()),
            remote: Some("10.0.0.1:53".parse().unwrap()),
            remote_name: None,
            class: "intranet".into(),
            opened_ms: DAY + 12 * HOUR,
            from_ms: DAY + 12 * HOUR,
            to_ms: DAY + 12 * HOUR + 30_000,
            ended: true,
            tx_bytes: 40,
            rx_bytes: 120,
            ..base
        },
    ]
}

#[test]
fn flow_tables() {
    for width in [80, 120, 160] {
        let t = flows_text_in(&flows(), width, utc);
        assert!(t.lines().all(|l| l.chars().count() <= width), "{t}");
        assert_eq!(t.lines().count(), 1 + flows().len());
        insta::assert_snapshot!(format!("flows_w{width}"), t);
    }
}

#[test]
fn durations() {
    assert_eq!(duration(850), "850ms");
    assert_eq!(duration(12_345), "12.3s");
    assert_eq!(duration(245_000), "4m05s");
    assert_eq!(duration(2 * 3_600_000 + 180_000), "2h03m");
    assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    assert_eq!(duration(-5), "0ms");
    assert_eq!(span(HOUR), "1h");
    assert_eq!(span(15 * 60_000), "15m");
    assert_eq!(span(90_000), "90s");
    assert_eq!(span(1500), "1500ms");
}

#[test]
fn flow_json_lines() {
    let f = &flows()[1];
    let j = flow_json(f);
    assert!(!j.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["time"], "2026-12-07T10:03:25.000Z");
    assert_eq!(v["to_ms"], f.to_ms);
    assert_eq!(v["opened"], "2026-12-07T10:00:00.000Z");
    assert_eq!(v["remote_ip"], "93.184.216.34");
    assert_eq!(v["remote_port"], 443);
    assert_eq!(v["remote"], "93.184.216.34:443");
    // Everything the record holds, under its own names.
    let back: FlowRecord = serde_json::from_value(v).unwrap();
    assert_eq!(&back, f);
    insta::assert_snapshot!("flow_json", j);
}
