//! Rates from samples with known times and cumulative bytes, so every expected rate is exact.
use super::*;

fn host(ip: &str, tx: u64, rx: u64) -> HostRow {
    HostRow {
        remote: ip.parse().unwrap(),
        name: None,
        class: "internet".into(),
        tx_bytes: tx,
        rx_bytes: rx,
        connections: 1,
        processes: 1,
    }
}

fn row(r: &HostRates, ip: &str) -> HostRateRow {
    let ip: IpAddr = ip.parse().unwrap();
    r.rows()
        .into_iter()
        .find(|h| h.remote == ip)
        .unwrap_or_else(|| panic!("{ip} not in the rows"))
}

/// Sent bytes of a host that sends 1000 B/s for 50 s, then 5000 B/s.
fn steady_then_step(t: u64) -> u64 {
    if t <= 50 {
        1000 * t
    } else {
        50_000 + 5000 * (t - 50)
    }
}

#[test]
fn steady_rate_then_a_step() {
    let mut r = HostRates::new();
    for t in 0..=50 {
        r.update(t * 1000, &[host("10.0.0.1", steady_then_step(t), 2 * t)]);
    }
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate, [1000.0, 1000.0, 1000.0]);
    assert_eq!(h.rx_rate, [2.0, 2.0, 2.0]);
    assert_eq!((h.history_ms, h.partial), (40_000, false));
    assert_eq!(h.tx_bytes, 50_000);

    for t in 51..=52 {
        r.update(t * 1000, &[host("10.0.0.1", steady_then_step(t), 2 * t)]);
    }
    let h = row(&r, "10.0.0.1");
    // 2 s: all at the new rate; 10 s: 8 s at 1000 and 2 s at 5000; 40 s: 38 and 2.
    assert_eq!(h.tx_rate[0], 5000.0);
    assert_eq!(h.tx_rate[1], (8.0 * 1000.0 + 2.0 * 5000.0) / 10.0);
    assert_eq!(h.tx_rate[2], (38.0 * 1000.0 + 2.0 * 5000.0) / 40.0);
    assert_eq!(h.tx_bytes, 60_000);

    for t in 53..=100 {
        r.update(t * 1000, &[host("10.0.0.1", steady_then_step(t), 2 * t)]);
    }
    assert_eq!(row(&r, "10.0.0.1").tx_rate, [5000.0, 5000.0, 5000.0]);
}

#[test]
fn shorter_history_averages_over_what_exists() {
    let mut r = HostRates::new();
    for t in 0..=5 {
        r.update(t * 1000, &[host("10.0.0.1", 1000 * t, 0)]);
    }
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate, [1000.0, 1000.0, 1000.0]);
    assert_eq!((h.history_ms, h.partial), (5_000, true));

    // One sample: nothing to average yet.
    let mut r = HostRates::new();
    r.update(7_000, &[host("10.0.0.1", 123_456, 0)]);
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate, [0.0; 3]);
    assert_eq!((h.history_ms, h.partial), (0, true));
}

#[test]
fn a_host_first_seen_late_starts_from_its_bytes_then() {
    // Already 1 GB when first listed: that is its cumulative, not a rate.
    let mut r = HostRates::new();
    r.update(0, &[host("10.0.0.2", 0, 0)]);
    r.update(
        1_000,
        &[host("10.0.0.2", 0, 0), host("10.0.0.1", 1_000_000_000, 0)],
    );
    assert_eq!(row(&r, "10.0.0.1").tx_rate, [0.0; 3]);
    r.update(2_000, &[host("10.0.0.1", 1_000_000_500, 0)]);
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate, [500.0; 3]);
    assert_eq!(h.tx_bytes, 1_000_000_500);
    assert_eq!(h.history_ms, 1_000);
}

#[test]
fn a_host_that_vanishes_and_returns() {
    let mut r = HostRates::new();
    for t in 0..=10 {
        r.update(t * 1000, &[host("10.0.0.1", 1000 * t, 0)]);
    }
    // Not listed from 11 s to 14 s: taken as idle.
    for t in 11..=14 {
        r.update(t * 1000, &[]);
    }
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate[0], 0.0, "idle for the last 2 s");
    assert_eq!(
        h.tx_rate[1],
        6_000.0 / 10.0,
        "4..10 s of the 10 s moved bytes"
    );
    assert_eq!(h.tx_bytes, 10_000, "cumulative as last listed");

    // Back at 15 s with fewer bytes (the aggregator started it over at 0): 3000 new bytes
    // since it was last seen at 10 s, never a negative rate.
    r.update(15_000, &[host("10.0.0.1", 3000, 0)]);
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate[0], 3000.0 / 5.0, "from the sample at 10 s");
    assert_eq!(h.tx_rate[1], (5000.0 + 3000.0) / 10.0);
    assert_eq!(h.tx_rate[2], (10_000.0 + 3000.0) / 15.0);
    assert_eq!(h.tx_bytes, 3000);
    r.update(16_000, &[host("10.0.0.1", 4000, 0)]);
    assert_eq!(row(&r, "10.0.0.1").tx_rate[0], 4000.0 / 6.0);

    // Gone for more than 40 s: forgotten, and when it returns its bytes are a new start.
    for t in 17..=57 {
        r.update(t * 1000, &[host("10.0.0.9", 0, 0)]);
    }
    assert_eq!(r.len(), 1, "10.0.0.1 dropped after 40 s unseen");
    r.update(
        58_000,
        &[host("10.0.0.9", 0, 0), host("10.0.0.1", 9_000_000, 0)],
    );
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate, [0.0; 3]);
    assert_eq!(h.tx_bytes, 9_000_000);
}

#[test]
fn exactly_forty_seconds_unseen_is_kept() {
    let mut r = HostRates::new();
    r.update(0, &[host("10.0.0.1", 0, 0)]);
    r.update(40_000, &[]);
    assert_eq!(r.len(), 1);
    r.update(40_001, &[]);
    assert!(r.is_empty());
}

#[test]
fn short_intervals_stay_exact_and_bounded() {
    let mut r = HostRates::new();
    for i in 0..=1000u64 {
        r.update(i * 100, &[host("10.0.0.1", 100 * i, 10 * i)]);
    }
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate, [1000.0; 3]);
    assert_eq!(h.rx_rate, [100.0; 3]);
    let samples = r.hosts.values().next().unwrap().samples.len() as u64;
    assert!(samples <= LONGEST_MS / MIN_SPACING_MS + 2, "{samples}");
}

#[test]
fn time_going_backwards_starts_over() {
    let mut r = HostRates::new();
    r.update(5_000, &[host("10.0.0.1", 5000, 0)]);
    r.update(6_000, &[host("10.0.0.1", 6000, 0)]);
    r.update(1_000, &[host("10.0.0.1", 100, 0)]);
    let h = row(&r, "10.0.0.1");
    assert_eq!(h.tx_rate, [0.0; 3]);
    assert_eq!(h.history_ms, 0);
}

#[test]
fn mapped_and_plain_ipv4_are_one_host() {
    let mut r = HostRates::new();
    r.update(0, &[host("10.0.0.1", 0, 0), host("::ffff:10.0.0.1", 0, 0)]);
    r.update(
        1_000,
        &[host("10.0.0.1", 300, 0), host("::ffff:10.0.0.1", 700, 0)],
    );
    let rows = r.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].tx_rate[0], 1000.0);
    assert_eq!(rows[0].connections, 2);
}

/// Three hosts after 60 s at known rates, for the table and the TUI tab.
pub(crate) fn sample_rates() -> HostRates {
    let mut r = HostRates::new();
    for t in 0..=60u64 {
        let mut a = host("93.184.216.34", 2_000 * t, 3 * 1024 * 1024 * t);
        a.name = Some("example.org".into());
        a.connections = 4;
        a.processes = 2;
        let mut b = host("10.1.2.3", 512 * t, 256 * t);
        b.class = "intranet".into();
        b.name = Some("db.internal.example.net".into());
        // Quiet for its first 50 s, then 10 KiB/s up.
        let mut c = host("2001:db8:ffff::1234", 10 * 1024 * t.saturating_sub(50), 0);
        c.tx_bytes += 5_000_000_000;
        r.update(t * 1000, &[a, b, c]);
    }
    r
}

#[test]
fn busiest_first_by_ten_seconds() {
    let rows = sample_rates().rows();
    let order: Vec<String> = rows.iter().map(|r| r.remote.to_string()).collect();
    assert_eq!(order, ["93.184.216.34", "2001:db8:ffff::1234", "10.1.2.3"]);
    assert_eq!(rows[1].tx_rate, [10_240.0, 10_240.0, 2_560.0]);
}

#[test]
fn tables() {
    let rows = sample_rates().rows();
    for width in [80, 120] {
        let t = hosts_table(&rows, width);
        assert!(t.lines().all(|l| l.chars().count() <= width), "{t}");
        insta::assert_snapshot!(format!("hosts_w{width}"), t);
    }
    let mut r = HostRates::new();
    r.update(0, &[host("192.0.2.1", 0, 0)]);
    r.update(3_000, &[host("192.0.2.1", 3_000, 300)]);
    insta::assert_snapshot!("hosts_partial", hosts_table(&r.rows(), 120));
}
