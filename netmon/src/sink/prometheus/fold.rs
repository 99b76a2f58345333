//! Keeps metric series monotonic while processes come, go, and move in and out of the top-K.
//!
//! Processes are grouped by identity (comm, unit, container, and pid only when asked for), so a
//! restarted service keeps its series. At most `top_k` groups have their own series; the rest
//! are summed into `comm="other"`. A group keeps its slot until it expires (no live process and
//! no activity for `ttl`) or a much busier group needs the slot. A group that gets a slot
//! starts counting from what it had at that moment (those bytes are already in "other"), so
//! neither its series nor "other" ever goes down, and all series always add up to the total.
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use netmon_common::RTT_BUCKETS;

use crate::{
    aggregate::{ProcessRow, Snapshot},
    tcp_counts::TCP_COUNTERS,
};

/// How long a newly labelled group keeps its slot before a busier one may take it.
const MIN_SLOT_HOLD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub top_k: usize,
    pub pid_label: bool,
    /// Exited processes keep their series this long after their last byte.
    pub ttl: Duration,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            top_k: 50,
            pid_label: false,
            ttl: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub comm: String,
    pub unit: String,
    pub container: String,
    pub pid: Option<u32>,
}

impl GroupKey {
    pub fn other(pid_label: bool) -> Self {
        GroupKey {
            comm: "other".into(),
            unit: String::new(),
            container: String::new(),
            pid: pid_label.then_some(0),
        }
    }
}

/// Every counter a group carries, flat, so folding treats them alike. Layout: the fixed
/// fields below, then the RTT buckets, the handshake buckets, then one count per watched
/// network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(pub Vec<u64>);

pub const TX_BYTES: usize = 0;
pub const RX_BYTES: usize = 1;
pub const TX_PACKETS: usize = 2;
pub const RX_PACKETS: usize = 3;
pub const OPENED_TCP: usize = 4;
pub const OPENED_UDP: usize = 5;
/// [`TCP_COUNTERS`] in their order from here (the high-water mark among them is carried but
/// never exported: a sum of maxima means nothing).
pub const TCP0: usize = 6;
pub const RTT_BUCKET0: usize = TCP0 + TCP_COUNTERS.len();
pub const HANDSHAKE_BUCKET0: usize = RTT_BUCKET0 + RTT_BUCKETS;
pub const NETWORK0: usize = HANDSHAKE_BUCKET0 + RTT_BUCKETS;

/// Where TCP counter `name` lives in [`Values`].
pub fn tcp_index(name: &str) -> usize {
    TCP0 + TCP_COUNTERS
        .iter()
        .position(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} is not a TCP counter"))
}

impl Values {
    fn zero(networks: usize) -> Self {
        Values(vec![0; NETWORK0 + networks])
    }

    fn of(p: &ProcessRow, networks: usize) -> Self {
        let mut v = Self::zero(networks);
        let t = &p.tcp;
        v.0[..TCP0].copy_from_slice(&[
            p.tx_bytes,
            p.rx_bytes,
            p.tx_packets,
            p.rx_packets,
            p.opened.tcp,
            p.opened.udp,
        ]);
        for (i, c) in TCP_COUNTERS.iter().enumerate() {
            v.0[TCP0 + i] = (c.get)(t);
        }
        for (i, &b) in t.rtt_buckets.iter().take(RTT_BUCKETS).enumerate() {
            v.0[RTT_BUCKET0 + i] = b;
        }
        for (i, &b) in t.handshake_buckets.iter().take(RTT_BUCKETS).enumerate() {
            v.0[HANDSHAKE_BUCKET0 + i] = b;
        }
        // Rows list networks sorted by name, the same order as `MetricsState::networks`.
        for (i, &c) in p.networks.values().take(networks).enumerate() {
            v.0[NETWORK0 + i] = c;
        }
        v
    }

    fn add(&mut self, o: &Values) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a = a.saturating_add(*b);
        }
    }

    /// Element-wise `self - o`, never below zero (a source that restarted a count).
    fn minus(&self, o: &Values) -> Values {
        Values(
            self.0
                .iter()
                .zip(o.0.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        )
    }

    pub fn get(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }

    fn bytes(&self) -> u64 {
        self.get(TX_BYTES) + self.get(RX_BYTES)
    }
}

#[derive(Debug)]
struct Group {
    values: Values,
    /// `values` at the previous update: what "other" already counted for this group.
    prev: Values,
    /// Labelled groups report `values - base`.
    base: Values,
    labelled: bool,
    labelled_since: Instant,
    last_active: Instant,
    alive: bool,
    /// Bytes moved in the last update: what competes for a slot.
    recent: u64,
    exe: String,
    netns: u64,
}

/// One labelled series (or "other") ready to print.
#[derive(Debug, Clone)]
pub struct Series {
    pub key: GroupKey,
    pub values: Values,
    pub exe: String,
    pub netns: u64,
}

/// What the exporter prints at one moment.
#[derive(Debug, Clone, Default)]
pub struct Folded {
    /// Labelled groups, busiest first; "other" last and always present.
    pub series: Vec<Series>,
    pub networks: Vec<String>,
    pub tracked_processes: usize,
    pub other_processes: usize,
}

#[derive(Debug)]
pub struct MetricsState {
    opts: MetricsOptions,
    networks: Vec<String>,
    /// Each process's values at the last update (by pid and incarnation, since pids are
    /// reused), so only its growth is added to its group.
    pids: HashMap<(u32, u32), Values>,
    groups: HashMap<GroupKey, Group>,
    /// Values of groups that expired: still part of "other", so it never goes down.
    expired: Values,
}

impl MetricsState {
    pub fn new(opts: MetricsOptions, mut networks: Vec<String>) -> Self {
        networks.sort();
        let expired = Values::zero(networks.len());
        MetricsState {
            opts,
            networks,
            pids: HashMap::new(),
            groups: HashMap::new(),
            expired,
        }
    }

    fn key_of(&self, p: &ProcessRow) -> GroupKey {
        // A process really named "other" must not collide with the folded series.
        let comm = if p.comm == "other" {
            "other_process".to_string()
        } else {
            p.comm.clone()
        };
        GroupKey {
            comm,
            unit: p.unit.clone(),
            container: p.container.clone(),
            pid: self.opts.pid_label.then_some(p.pid),
        }
    }

    /// Takes in one snapshot (every interval) and returns the series to print.
    pub fn update(&mut self, snap: &Snapshot, now: Instant) -> Folded {
        let n = self.networks.len();
        for g in self.groups.values_mut() {
            g.prev = g.values.clone();
            g.alive = false;
            g.recent = 0;
        }
        let mut seen = HashSet::new();
        for p in &snap.processes {
            let key = self.key_of(p);
            let v = Values::of(p, n);
            let id = (p.pid, p.incarnation);
            let delta = match self.pids.get(&id) {
                Some(last) => v.minus(last),
                None => v.clone(),
            };
            self.pids.insert(id, v);
            seen.insert(id);
            let g = self.groups.entry(key).or_insert_with(|| Group {
                values: Values::zero(n),
                prev: Values::zero(n),
                base: Values::zero(n),
                labelled: false,
                labelled_since: now,
                last_active: now,
                alive: false,
                recent: 0,
                exe: String::new(),
                netns: 0,
            });
            if delta.0.iter().any(|&x| x > 0) {
                g.last_active = now;
            }
            g.recent += delta.bytes();
            g.values.add(&delta);
            g.alive |= p.alive;
            if !p.exe.is_empty() {
                g.exe = p.exe.clone();
            }
            if p.netns != 0 {
                g.netns = p.netns;
            }
        }
        // Processes the aggregator forgot: their bytes stay with their group.
        self.pids.retain(|id, _| seen.contains(id));

        let ttl = self.opts.ttl;
        let expired: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, g)| !g.alive && now.saturating_duration_since(g.last_active) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(g) = self.groups.remove(&k) {
                self.expired.add(&g.values);
            }
        }
        self.assign_slots(now);
        self.folded(snap)
    }

    /// Free slots go to the busiest unlabelled groups; when full, a group with no live
    /// process, or one far quieter than the newcomer and past its minimum hold, gives way.
    fn assign_slots(&mut self, now: Instant) {
        let mut waiting: Vec<(u64, u64, GroupKey)> = self
            .groups
            .iter()
            .filter(|(_, g)| !g.labelled && (g.recent > 0 || g.alive))
            .map(|(k, g)| (g.recent, g.values.bytes(), k.clone()))
            .collect();
        waiting.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut labelled = self.groups.values().filter(|g| g.labelled).count();
        for (recent, _, key) in waiting {
            if labelled >= self.opts.top_k {
                let Some(victim) = self.victim(recent, now) else {
                    continue;
                };
                if let Some(v) = self.groups.get_mut(&victim) {
                    v.labelled = false;
                }
                labelled -= 1;
            }
            if let Some(g) = self.groups.get_mut(&key) {
                g.labelled = true;
                g.labelled_since = now;
                g.base = g.prev.clone();
                labelled += 1;
            }
        }
    }

    fn victim(&self, newcomer_recent: u64, now: Instant) -> Option<GroupKey> {
        let labelled = self.groups.iter().filter(|(_, g)| g.labelled);
        if let Some((k, _)) = labelled
            .clone()
            .filter(|(_, g)| !g.alive)
            .min_by_key(|(k, g)| (g.last_active, (*k).clone()))
        {
            return Some(k.clone());
        }
        labelled
            .filter(|(_, g)| now.saturating_duration_since(g.labelled_since) >= MIN_SLOT_HOLD)
            .filter(|(_, g)| g.recent.saturating_mul(2) < newcomer_recent)
            .min_by_key(|(k, g)| (g.recent, (*k).clone()))
            .map(|(k, _)| k.clone())
    }

    fn folded(&self, snap: &Snapshot) -> Folded {
        let n = self.networks.len();
        let mut total = self.expired.clone();
        let mut labelled_sum = Values::zero(n);
        let mut series = Vec::new();
        for (k, g) in &self.groups {
            total.add(&g.values);
            if g.labelled {
                let v = g.values.minus(&g.base);
                labelled_sum.add(&v);
                series.push(Series {
                    key: k.clone(),
                    values: v,
                    exe: g.exe.clone(),
                    netns: g.netns,
                });
            }
        }
        series.sort_by(|a, b| {
            b.values
                .bytes()
                .cmp(&a.values.bytes())
                .then(a.key.cmp(&b.key))
        });
        let other_processes = snap
            .processes
            .iter()
            .filter(|p| self.groups.get(&self.key_of(p)).is_none_or(|g| !g.labelled))
            .count();
        series.push(Series {
            key: GroupKey::other(self.opts.pid_label),
            values: total.minus(&labelled_sum),
            exe: String::new(),
            netns: 0,
        });
        Folded {
            series,
            networks: self.networks.clone(),
            tracked_processes: snap.processes.len(),
            other_processes,
        }
    }
}
