//! A socket's TCP counters, listed once. Each row of [`tcp_counters!`] below says where the
//! counter comes from in the kernel's [`netmon_common::TcpStats`], how two of them combine,
//! and which Prometheus series shows it; the struct, the kernel decoding, the sums, the JSON
//! field and the exposition all follow from that row. Adding a TCP counter is the kernel
//! field that counts it plus one row here.
use netmon_common::TcpStats;
use serde::{Deserialize, Serialize};

/// How two values of a counter combine (two sockets of a process, two map incarnations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    Sum,
    /// A high-water mark: the larger one.
    Max,
}

/// Where a counter is exported: a family of its own, or one value of a labelled family
/// (`label` = (name, value)), whose rows share the family's name and help.
#[derive(Debug, Clone, Copy)]
pub struct Exported {
    pub family: &'static str,
    pub help: &'static str,
    pub label: Option<(&'static str, &'static str)>,
}

/// One TCP counter: its name (the JSON field), how to read it from the kernel's record and
/// from [`TcpCounts`], and how it is merged and exported.
#[derive(Clone, Copy)]
pub struct TcpCounter {
    pub name: &'static str,
    pub kernel: fn(&TcpStats) -> u64,
    pub get: fn(&TcpCounts) -> u64,
    pub slot: fn(&mut TcpCounts) -> &mut u64,
    pub merge: Merge,
    /// None for the parts of a histogram (count, sum), exported with their buckets.
    pub exported: Option<Exported>,
}

const fn own(family: &'static str, help: &'static str) -> Option<Exported> {
    Some(Exported {
        family,
        help,
        label: None,
    })
}

const fn labelled(
    family: &'static str,
    help: &'static str,
    name: &'static str,
    value: &'static str,
) -> Option<Exported> {
    Some(Exported {
        family,
        help,
        label: Some((name, value)),
    })
}

const RESETS: &str = "netmon_process_tcp_resets_total";
const RESETS_HELP: &str =
    "TCP resets on sockets the process owns, sent by this host or received from the peer";
const CLOSES: &str = "netmon_process_tcp_closes_total";
const CLOSES_HELP: &str =
    "TCP connections of the process closed with a FIN, by who sent the first one";
const ZERO_WINDOWS: &str = "netmon_process_tcp_zero_windows_total";
const ZERO_WINDOWS_HELP: &str = "Times a receive window on the process's connections went to zero: sent = the process fell behind reading, received = its peer did";

/// Declares [`TcpCounts`] (the plain counters, then the two histograms' buckets) and
/// [`TCP_COUNTERS`] from one list of `name: from kernel, merge, exported;` rows.
macro_rules! tcp_counters {
    ($($(#[doc = $doc:literal])* $name:ident: $kernel:expr, $merge:ident, $exported:expr;)*) => {
        /// A socket's (or a process's) TCP counters: cumulative.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct TcpCounts {
            $($(#[doc = $doc])* #[serde(default)] pub $name: u64,)*
            /// `netmon_common::RTT_BUCKETS` log2 buckets of microseconds (bucket i: at most
            /// 2^i µs), only as long as the last used one.
            #[serde(default)]
            pub rtt_buckets: Vec<u64>,
            /// The handshake times in the same buckets.
            #[serde(default)]
            pub handshake_buckets: Vec<u64>,
        }

        /// Every counter of [`TcpCounts`] but the buckets, in declaration order.
        pub const TCP_COUNTERS: &[TcpCounter] = &[$(TcpCounter {
            name: stringify!($name),
            kernel: $kernel,
            get: |c| c.$name,
            slot: |c| &mut c.$name,
            merge: Merge::$merge,
            exported: $exported,
        },)*];
    };
}

tcp_counters! {
    /// Segments retransmitted.
    retransmits: |k| k.retransmits, Sum,
        own("netmon_process_tcp_retransmits_total", "TCP segments retransmitted on sockets the process owns");
    resets_sent: |k| k.resets_sent, Sum, labelled(RESETS, RESETS_HELP, "direction", "sent");
    resets_received: |k| k.resets_received, Sum,
        labelled(RESETS, RESETS_HELP, "direction", "received");
    /// RTT samples and their sum (the RTT histogram's count and sum).
    rtt_count: |k| k.rtt_count, Sum, None;
    rtt_sum_us: |k| k.rtt_sum_us, Sum, None;
    /// Retransmission-timer expiries; each doubles the RTO.
    rto_timeouts: |k| k.rto_timeouts, Sum,
        own("netmon_process_tcp_rto_timeouts_total", "TCP retransmission-timer expiries on the process's sockets (each doubles the RTO)");
    /// Most consecutive expiries (RTO doublings in a row); a maximum, not a sum.
    rto_backoff_max: |k| k.rto_backoff_max, Max, None;
    /// Handshakes completed while netmon ran (one per socket) and their time: connecting
    /// side SYN → SYN-ACK, accepting side SYN-ACK → ACK.
    handshake_count: |k| u64::from(k.handshake_us > 0), Sum, None;
    handshake_sum_us: |k| k.handshake_us, Sum, None;
    /// FIN closes this side began, and those the peer began.
    closes_local: |k| k.closes_local, Sum, labelled(CLOSES, CLOSES_HELP, "initiator", "local");
    closes_remote: |k| k.closes_remote, Sum, labelled(CLOSES, CLOSES_HELP, "initiator", "remote");
    /// Times the receive window this side advertised went to zero (its reader fell behind),
    /// and times the peer's did.
    zero_windows_sent: |k| k.zero_windows_sent, Sum,
        labelled(ZERO_WINDOWS, ZERO_WINDOWS_HELP, "direction", "sent");
    zero_windows_received: |k| k.zero_windows_received, Sum,
        labelled(ZERO_WINDOWS, ZERO_WINDOWS_HELP, "direction", "received");
}

impl TcpCounts {
    /// The kernel's record of one socket.
    pub fn from_kernel(k: &TcpStats) -> Self {
        let mut c = TcpCounts::default();
        for t in TCP_COUNTERS {
            *(t.slot)(&mut c) = (t.kernel)(k);
        }
        // Up to the last bucket with samples: a socket's RTTs fall in a few low buckets, and
        // the aggregator keeps these for every socket.
        let used = k
            .rtt_buckets
            .iter()
            .rposition(|&b| b > 0)
            .map_or(0, |i| i + 1);
        c.rtt_buckets = k.rtt_buckets[..used].to_vec();
        c.handshake_buckets = one_sample_buckets(k.handshake_us);
        c
    }

    pub fn add(&mut self, o: &TcpCounts) {
        for t in TCP_COUNTERS {
            let (a, b) = ((t.slot)(self), (t.get)(o));
            *a = match t.merge {
                Merge::Sum => *a + b,
                Merge::Max => (*a).max(b),
            };
        }
        add_buckets(&mut self.rtt_buckets, &o.rtt_buckets);
        add_buckets(&mut self.handshake_buckets, &o.handshake_buckets);
    }

    /// Some count went down: the kernel's entry for the socket was recreated.
    pub fn restarted_from(&self, last: &TcpCounts) -> bool {
        TCP_COUNTERS
            .iter()
            .any(|t| t.merge == Merge::Sum && (t.get)(self) < (t.get)(last))
    }
}

/// A histogram of one sample of `us` (none when 0).
fn one_sample_buckets(us: u64) -> Vec<u64> {
    if us == 0 {
        return Vec::new();
    }
    let b = netmon_common::rtt_bucket(u32::try_from(us - 1).unwrap_or(u32::MAX));
    let mut v = vec![0; b + 1];
    v[b] = 1;
    v
}

/// Element-wise sum of two bucket lists, each only as long as its last used bucket.
fn add_buckets(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_reads_its_own_kernel_field() {
        // Distinct values per kernel field: a row reading another field's value shows.
        let k = TcpStats {
            retransmits: 1,
            resets_sent: 2,
            resets_received: 3,
            rtt_count: 4,
            rtt_sum_us: 5,
            rto_timeouts: 6,
            rto_backoff_max: 7,
            handshake_us: 900,
            closes_local: 10,
            closes_remote: 11,
            zero_windows_sent: 12,
            zero_windows_received: 13,
            ..TcpStats::default()
        };
        let c = TcpCounts::from_kernel(&k);
        let got: Vec<_> = TCP_COUNTERS.iter().map(|t| (t.name, (t.get)(&c))).collect();
        assert_eq!(
            got,
            [
                ("retransmits", 1),
                ("resets_sent", 2),
                ("resets_received", 3),
                ("rtt_count", 4),
                ("rtt_sum_us", 5),
                ("rto_timeouts", 6),
                ("rto_backoff_max", 7),
                ("handshake_count", 1),
                ("handshake_sum_us", 900),
                ("closes_local", 10),
                ("closes_remote", 11),
                ("zero_windows_sent", 12),
                ("zero_windows_received", 13),
            ]
        );
        // 900 µs falls in the bucket of at most 1,024 µs.
        assert_eq!(c.handshake_buckets.len(), 11);
        assert_eq!(c.handshake_buckets[10], 1);
    }

    #[test]
    fn sums_add_and_high_water_marks_take_the_larger() {
        let mut a = TcpCounts {
            retransmits: 2,
            rto_backoff_max: 3,
            rtt_buckets: vec![1, 0, 2],
            ..TcpCounts::default()
        };
        let b = TcpCounts {
            retransmits: 5,
            rto_backoff_max: 1,
            rtt_buckets: vec![0, 0, 0, 4],
            ..TcpCounts::default()
        };
        a.add(&b);
        assert_eq!(a.retransmits, 7);
        assert_eq!(a.rto_backoff_max, 3);
        assert_eq!(a.rtt_buckets, [1, 0, 2, 4]);
        // A high-water mark going down is no restart; a sum going down is.
        let lower_max = TcpCounts {
            rto_backoff_max: 1,
            ..a.clone()
        };
        assert!(!lower_max.restarted_from(&a));
        let lower_sum = TcpCounts {
            retransmits: 1,
            ..a.clone()
        };
        assert!(lower_sum.restarted_from(&a));
    }

    #[test]
    fn a_labelled_family_has_one_help_and_distinct_label_values() {
        type Label = (&'static str, &'static str);
        let mut seen: Vec<(&str, &str, Vec<Label>)> = Vec::new();
        for e in TCP_COUNTERS.iter().filter_map(|t| t.exported) {
            match seen.iter_mut().find(|(f, _, _)| *f == e.family) {
                Some((_, help, labels)) => {
                    assert_eq!(*help, e.help, "{}", e.family);
                    let l = e.label.expect("a family shared by rows is labelled");
                    assert!(!labels.contains(&l), "{} {l:?} twice", e.family);
                    labels.push(l);
                }
                None => seen.push((e.family, e.help, e.label.into_iter().collect())),
            }
        }
        assert!(seen.iter().all(|(f, _, _)| f.ends_with("_total")));
    }
}
