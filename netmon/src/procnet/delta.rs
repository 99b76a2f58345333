//! Differences between two snapshots: per-interval counter deltas and per-second rates.
//!
//! A counter that went down was reset (interface re-created, module reloaded, namespace reused),
//! so its delta saturates to 0 and the step is flagged, rather than showing a wrap of ~2^64.
//! softnet's counters are 32-bit and really do wrap, so they use wrapping arithmetic instead.
use super::counters::{CounterTable, Value};
use super::dev::{Interface, RxStats, TxStats};
use super::snapshot::NetSnapshot;
use super::softnet::SoftnetCpu;
use super::{Availability, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    pub delta: u64,
    /// The counter went down between the snapshots.
    pub reset: bool,
}

/// One u64 counter from `prev` to `cur`.
pub fn step(prev: u64, cur: u64) -> Step {
    match cur.checked_sub(prev) {
        Some(delta) => Step {
            delta,
            reset: false,
        },
        None => Step {
            delta: 0,
            reset: true,
        },
    }
}

/// Per second over `interval_ms`; `None` for an empty interval.
pub fn rate(delta: u64, interval_ms: u64) -> Option<f64> {
    (interval_ms > 0).then(|| delta as f64 * 1000.0 / interval_ms as f64)
}

#[derive(Debug, Clone, PartialEq)]
pub struct CounterDelta {
    pub section: String,
    pub name: String,
    pub step: Step,
    pub per_sec: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxDelta {
    pub bytes: Step,
    pub packets: Step,
    pub errs: Step,
    pub drop: Step,
    pub fifo: Step,
    pub frame: Step,
    pub compressed: Step,
    pub multicast: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxDelta {
    pub bytes: Step,
    pub packets: Step,
    pub errs: Step,
    pub drop: Step,
    pub fifo: Step,
    pub colls: Step,
    pub carrier: Step,
    pub compressed: Step,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceDelta {
    pub name: String,
    pub rx: RxDelta,
    pub tx: TxDelta,
    /// Bytes and packets per second; `None` for an empty interval.
    pub rx_bytes_per_sec: Option<f64>,
    pub tx_bytes_per_sec: Option<f64>,
    pub rx_packets_per_sec: Option<f64>,
    pub tx_packets_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftnetDelta {
    pub cpu: u32,
    pub processed: u32,
    pub dropped: u32,
    pub time_squeeze: u32,
}

/// Only items present in both snapshots appear: a new interface or counter has no interval yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NetDelta {
    /// `cur.taken_at_ms - prev.taken_at_ms`, 0 if the clock went backwards.
    pub interval_ms: u64,
    pub interfaces: Vec<InterfaceDelta>,
    pub snmp: Vec<CounterDelta>,
    pub snmp6: Vec<CounterDelta>,
    pub netstat: Vec<CounterDelta>,
    pub softnet: Vec<SoftnetDelta>,
}

pub fn delta(prev: &NetSnapshot, cur: &NetSnapshot) -> NetDelta {
    let interval_ms = cur.taken_at_ms.saturating_sub(prev.taken_at_ms);
    NetDelta {
        interval_ms,
        interfaces: both(&prev.interfaces, &cur.interfaces)
            .map(|(p, c)| interfaces(p, c, interval_ms))
            .unwrap_or_default(),
        snmp: counter_deltas(&prev.snmp, &cur.snmp, interval_ms),
        snmp6: counter_deltas(&prev.snmp6, &cur.snmp6, interval_ms),
        netstat: counter_deltas(&prev.netstat, &cur.netstat, interval_ms),
        softnet: both(&prev.softnet, &cur.softnet)
            .map(|(p, c)| softnet(p, c))
            .unwrap_or_default(),
    }
}

fn both<'a, T>(p: &'a Availability<T>, c: &'a Availability<T>) -> Option<(&'a T, &'a T)> {
    Some((p.get()?, c.get()?))
}

fn interfaces(
    prev: &Table<Interface>,
    cur: &Table<Interface>,
    interval_ms: u64,
) -> Vec<InterfaceDelta> {
    cur.rows
        .iter()
        .filter_map(|c| {
            let p = prev.rows.iter().find(|p| p.name == c.name)?;
            let (rx, tx) = (rx_delta(&p.rx, &c.rx), tx_delta(&p.tx, &c.tx));
            Some(InterfaceDelta {
                name: c.name.clone(),
                rx_bytes_per_sec: rate(rx.bytes.delta, interval_ms),
                tx_bytes_per_sec: rate(tx.bytes.delta, interval_ms),
                rx_packets_per_sec: rate(rx.packets.delta, interval_ms),
                tx_packets_per_sec: rate(tx.packets.delta, interval_ms),
                rx,
                tx,
            })
        })
        .collect()
}

fn rx_delta(p: &RxStats, c: &RxStats) -> RxDelta {
    RxDelta {
        bytes: step(p.bytes, c.bytes),
        packets: step(p.packets, c.packets),
        errs: step(p.errs, c.errs),
        drop: step(p.drop, c.drop),
        fifo: step(p.fifo, c.fifo),
        frame: step(p.frame, c.frame),
        compressed: step(p.compressed, c.compressed),
        multicast: step(p.multicast, c.multicast),
    }
}

fn tx_delta(p: &TxStats, c: &TxStats) -> TxDelta {
    TxDelta {
        bytes: step(p.bytes, c.bytes),
        packets: step(p.packets, c.packets),
        errs: step(p.errs, c.errs),
        drop: step(p.drop, c.drop),
        fifo: step(p.fifo, c.fifo),
        colls: step(p.colls, c.colls),
        carrier: step(p.carrier, c.carrier),
        compressed: step(p.compressed, c.compressed),
    }
}

/// Deltas of unsigned counters in `cur`'s order; signed values (MaxConn) are settings, not counts.
fn counter_deltas(
    prev: &Availability<CounterTable>,
    cur: &Availability<CounterTable>,
    interval_ms: u64,
) -> Vec<CounterDelta> {
    let Some((prev, cur)) = both(prev, cur) else {
        return Vec::new();
    };
    cur.sections
        .iter()
        .flat_map(|s| s.counters.iter().map(move |(n, v)| (s, n, *v)))
        .filter_map(|(s, name, v)| {
            let (Value::Counter(c), Some(Value::Counter(p))) = (v, prev.get(&s.name, name)) else {
                return None;
            };
            let step = step(p, c);
            Some(CounterDelta {
                section: s.name.clone(),
                name: name.clone(),
                step,
                per_sec: rate(step.delta, interval_ms),
            })
        })
        .collect()
}

fn softnet(prev: &Table<SoftnetCpu>, cur: &Table<SoftnetCpu>) -> Vec<SoftnetDelta> {
    cur.rows
        .iter()
        .filter_map(|c| {
            let p = prev.rows.iter().find(|p| p.cpu == c.cpu)?;
            Some(SoftnetDelta {
                cpu: c.cpu,
                processed: c.processed.wrapping_sub(p.processed),
                dropped: c.dropped.wrapping_sub(p.dropped),
                time_squeeze: c.time_squeeze.wrapping_sub(p.time_squeeze),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        let cases = [
            (0, 0, 0, false),
            (10, 15, 5, false),
            (u64::MAX - 10, u64::MAX, 10, false),
            (0, u64::MAX, u64::MAX, false),
            (15, 10, 0, true),
            (u64::MAX, 0, 0, true),
        ];
        for (prev, cur, delta, reset) in cases {
            assert_eq!(step(prev, cur), Step { delta, reset }, "{prev} -> {cur}");
        }
    }

    #[test]
    fn rates() {
        let cases = [
            (1000, 1000, Some(1000.0)),
            (1000, 500, Some(2000.0)),
            (5, 2000, Some(2.5)),
            (0, 1000, Some(0.0)),
            (100, 0, None),
            (u64::MAX, 1000, Some(u64::MAX as f64)),
        ];
        for (delta, ms, want) in cases {
            assert_eq!(rate(delta, ms), want, "{delta}/{ms}ms");
        }
    }

    #[test]
    fn softnet_wraps() {
        let cpu = |cpu, processed| SoftnetCpu {
            cpu,
            processed,
            dropped: 0,
            time_squeeze: 0,
            received_rps: None,
            flow_limit_count: None,
        };
        let prev = Table {
            rows: vec![cpu(0, u32::MAX - 1), cpu(1, 5)],
            skipped_lines: 0,
        };
        let cur = Table {
            rows: vec![cpu(0, 3), cpu(1, 9), cpu(2, 1)],
            skipped_lines: 0,
        };
        let d = softnet(&prev, &cur);
        assert_eq!(
            d.iter().map(|d| (d.cpu, d.processed)).collect::<Vec<_>>(),
            [(0, 5), (1, 4)]
        );
    }
}
