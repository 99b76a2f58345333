//! History: every connection becomes one or more flow records, kept in an embedded SQLite
//! store, and read back by `netmon flows` and `netmon report`.
//!
//! - [`FlowRecord`]: what one connection moved in one stretch of time. A connection gives one
//!   record when it ends; a long-lived one also gives one at least every minute, each with the
//!   bytes of its own stretch only, so sums over any time range are plain sums.
//! - `store`: the SQLite file (schema, writing, roll-ups, retention, queries).
//! - `when`: times on the command line (`6h`, RFC 3339, dates); `render`: report output.
pub mod cmd;
pub mod group;
pub mod recorder;
pub mod render;
pub mod store;
pub mod when;

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::aggregate::WatchedNetwork;

/// What one connection moved between `from_ms` and `to_ms` (Unix milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Host name of the machine that saw the flow.
    pub host: String,
    /// The connection: the kernel's socket cookie, unique on this host until it reboots.
    pub flow_id: u64,
    /// 0 for a connection's first record, then 1, 2, … for its periodic updates.
    pub segment: u32,
    /// The process that owned the socket; `start_time` (clock ticks after boot, from
    /// /proc/PID/stat, 0 when unknown) tells a reused pid from the first one.
    pub pid: u32,
    pub start_time: u64,
    pub comm: String,
    pub cmdline: String,
    pub uid: Option<u32>,
    /// systemd unit and container id from the process's cgroup; empty when none.
    pub unit: String,
    pub container: String,
    /// Network namespace inode; 0 when unknown.
    pub netns: u64,
    /// "tcp" or "udp".
    pub proto: String,
    /// Who opened it: this host ("out") or the peer ("in"); "" when unknown.
    pub direction: String,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    /// The name the process looked up in DNS and got the remote address from.
    pub remote_name: Option<String>,
    /// The remote's class (see [`classify`]).
    pub class: String,
    /// When netmon first saw the connection.
    pub opened_ms: i64,
    /// The stretch this record covers: after `from_ms`, up to and including `to_ms`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The connection ended at `to_ms` (its last record).
    pub ended: bool,
    /// Payload (what the process sent and received) and wire counts in this stretch.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_wire_bytes: u64,
    pub rx_wire_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    /// TCP only: handshake time, retransmits in this stretch, mean RTT of its samples.
    pub handshake_us: Option<u64>,
    pub retransmits: u64,
    pub rtt_us: Option<u64>,
    /// TCP only, on the last record: "local" or "remote" (who sent the first FIN),
    /// "reset-sent" or "reset-received".
    pub closed_by: Option<String>,
}

impl FlowRecord {
    /// The port that names the service: the remote's for a connection this host opened, the
    /// local one for a connection it accepted.
    pub fn service_port(&self) -> Option<u16> {
        match self.direction.as_str() {
            "in" => self.local.map(|a| a.port()),
            _ => self.remote.map(|a| a.port()),
        }
    }
}

/// The class of a remote address: a `--watch-network`'s name when it is in one (the first by
/// name), else "loopback", "link-local", "intranet" (private ranges: RFC 1918, CGNAT
/// 100.64/10, IPv6 unique-local) or "internet".
pub fn classify(ip: IpAddr, watched: &[WatchedNetwork]) -> String {
    if let Some(n) = watched.iter().find(|n| n.contains(ip)) {
        return n.name.clone();
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let class = match ip {
        IpAddr::V4(a) if a.is_loopback() || a.is_unspecified() => "loopback",
        IpAddr::V4(a) if a.is_link_local() => "link-local",
        IpAddr::V4(a) if a.is_private() || (a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64) => {
            "intranet"
        }
        IpAddr::V6(a) if a.is_loopback() || a.is_unspecified() => "loopback",
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => "link-local",
        IpAddr::V6(a) if a.segments()[0] & 0xfe00 == 0xfc00 => "intranet",
        _ => "internet",
    };
    class.to_string()
}

/// What `netmon report` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// comm (and systemd unit or container when there is one).
    Process,
    /// Remote address (with its DNS name when known).
    Remote,
    /// The host that recorded the flows.
    Host,
    Unit,
    Container,
    /// Service port: the remote's for outgoing connections, the local one for accepted ones.
    Port,
    /// Remote class: loopback, link-local, intranet, internet or a watched network's name.
    Class,
}

/// One `netmon report`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    /// Records whose stretch ends in `since_ms < to_ms <= until_ms`.
    pub since_ms: i64,
    pub until_ms: i64,
    pub by: By,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Also a series per row, in buckets of this many ms (aligned to the Unix epoch).
    pub every_ms: Option<i64>,
    /// Rows returned, the busiest (tx + rx) first.
    pub limit: usize,
}

/// One row of a report: a group's sums over the range.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportRow {
    /// The group, as text (`curl`, `10.0.0.1 (example.org)`, `443/tcp`, `intranet`, …).
    pub key: String,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Connections that began in the range (records with segment 0).
    pub connections: u64,
    /// With `every_ms`: one bucket per step from the first to the last bucket of the range
    /// (empty buckets included, as zeros), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Bucket>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Start of the bucket, Unix ms.
    pub start_ms: i64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// Which raw flow records `netmon flows` prints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowQuery {
    /// Records whose stretch ends in `since_ms < to_ms <= until_ms`, oldest first.
    pub since_ms: i64,
    pub until_ms: i64,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// At most this many (the oldest first); None: all.
    pub limit: Option<usize>,
}

/// How much history is kept. Raw flows may go sooner than the per-minute roll-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Roll-ups (and everything else) older than this are removed.
    pub max_age_ms: i64,
    /// Raw flow records older than this are removed (at most `max_age_ms`).
    pub raw_max_age_ms: i64,
    /// When the database file grows past this, the oldest raw flows go first, then the
    /// oldest roll-ups, until it fits.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        const DAY: i64 = 86_400_000;
        Limits {
            max_age_ms: 30 * DAY,
            raw_max_age_ms: 7 * DAY,
            max_bytes: 1 << 30,
        }
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub flows_by_age: u64,
    pub flows_by_size: u64,
    pub rollups_by_age: u64,
    pub rollups_by_size: u64,
    /// Host events older than `max_age_ms`.
    pub events_by_age: u64,
}

/// What the store holds, for metrics and `netmon report` headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreStats {
    pub flows: u64,
    pub rollup_rows: u64,
    /// Size of the database file (pages in use times page size, WAL not included).
    pub db_bytes: u64,
    /// `to_ms` of the oldest raw flow and of the oldest roll-up; None when empty.
    pub oldest_flow_ms: Option<i64>,
    pub oldest_rollup_ms: Option<i64>,
    /// Host events kept, and `at_ms` of the oldest; None when there is none.
    pub events: u64,
    pub oldest_event_ms: Option<i64>,
    /// Everything retention removed since the store was created.
    pub removed: Pruned,
}

/// The part of [`StoreStats`] that needs no row counts (see `Store::health`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreHealth {
    pub db_bytes: u64,
    pub oldest_flow_ms: Option<i64>,
    pub oldest_rollup_ms: Option<i64>,
    pub removed: Pruned,
}

/// The recorder's state as the exporter and the API show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistoryStatus {
    pub db: std::path::PathBuf,
    /// Flow records committed to the store since netmon started.
    pub written: u64,
    /// Flow records and host events not stored, by reason (`writer_behind`, `store_error`,
    /// `store_unavailable`, `not_taken`).
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Host events handed to the recorder since netmon started, recorded or not, by kind
    /// (`device`, `net`, `listen`, `contact`).
    pub events: std::collections::BTreeMap<String, u64>,
    /// Host events committed to the store since netmon started.
    pub events_written: u64,
    /// Host event sources (device, net) that could not start or stopped since netmon started.
    pub event_source_failures: u64,
    pub db_bytes: u64,
    /// Age of the oldest record kept (raw flows or roll-ups), in seconds.
    pub oldest_age_secs: Option<f64>,
    /// What retention removed, since the store was created.
    pub removed: Pruned,
    /// The last error the store gave, if it is failing now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let c = |s: &str| classify(s.parse().unwrap(), &[]);
        assert_eq!(c("127.0.0.1"), "loopback");
        assert_eq!(c("::1"), "loopback");
        assert_eq!(c("::ffff:127.0.0.1"), "loopback");
        assert_eq!(c("169.254.1.1"), "link-local");
        assert_eq!(c("fe80::1"), "link-local");
        assert_eq!(c("10.1.2.3"), "intranet");
        assert_eq!(c("192.168.0.1"), "intranet");
        assert_eq!(c("172.16.0.1"), "intranet");
        assert_eq!(c("100.64.0.1"), "intranet");
        assert_eq!(c("fd00::1"), "intranet");
        assert_eq!(c("8.8.8.8"), "internet");
        assert_eq!(c("2001:db8::1"), "internet");
        let lab = crate::cli::parse_watch_network("lab=10.9.0.0/16").unwrap();
        assert_eq!(
            classify("10.9.0.1".parse().unwrap(), std::slice::from_ref(&lab)),
            "lab"
        );
        assert_eq!(classify("10.8.0.1".parse().unwrap(), &[lab]), "intranet");
    }

    #[test]
    fn service_port() {
        let mut f = FlowRecord {
            local: Some("10.0.0.1:443".parse().unwrap()),
            remote: Some("10.0.0.2:50000".parse().unwrap()),
            direction: "in".into(),
            ..Default::default()
        };
        assert_eq!(f.service_port(), Some(443));
        f.direction = "out".into();
        assert_eq!(f.service_port(), Some(50000));
    }
}
