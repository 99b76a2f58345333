//! Which agents are alive, from their heartbeats (pure: the caller gives the times).
//!
//! An agent says how often it sends one (`every_secs`); one that has sent none for
//! [`MISSED`] times that is down. Times are when the heartbeat reached the hub (from the
//! stream) or the viewer (live), not the agent's own clock, so a skewed agent clock does not
//! make it look down.
use std::collections::BTreeMap;

use crate::fleet::Heartbeat;

/// Heartbeats missed before an agent is down.
pub const MISSED: i64 = 3;
/// When a heartbeat does not say (0): the agents' interval.
const DEFAULT_EVERY_SECS: u64 = 5;

/// Down when the last heartbeat was seen more than [`MISSED`] intervals before `now_ms`.
pub fn is_down(last_seen_ms: i64, every_secs: u64, now_ms: i64) -> bool {
    let every = if every_secs == 0 {
        DEFAULT_EVERY_SECS
    } else {
        every_secs
    };
    let limit = MISSED.saturating_mul(i64::try_from(every).unwrap_or(i64::MAX / 4) * 1000);
    now_ms.saturating_sub(last_seen_ms) > limit
}

/// (site, host): an agent.
pub type HostKey = (String, String);

#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub heartbeat: Heartbeat,
    pub seen_ms: i64,
    /// Reported down (an `agent-down` was made) and not yet back.
    pub down: bool,
}

/// A change of an agent's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Down {
        site: String,
        host: String,
        last_seen_ms: i64,
    },
    Up {
        site: String,
        host: String,
        /// When it was last seen before it went down.
        down_since_ms: i64,
    },
}

#[derive(Debug, Default)]
pub struct Liveness {
    pub hosts: BTreeMap<HostKey, Seen>,
}

impl Liveness {
    /// A heartbeat seen at `seen_ms`; an agent that was down is back (Up). An older heartbeat
    /// than the one known (a replay) changes nothing.
    pub fn heartbeat(&mut self, hb: Heartbeat, seen_ms: i64) -> Option<Change> {
        let key = (hb.site.clone(), hb.host.clone());
        match self.hosts.get_mut(&key) {
            Some(s) if seen_ms < s.seen_ms => None,
            Some(s) => {
                let was = s.down.then_some(s.seen_ms);
                *s = Seen {
                    heartbeat: hb,
                    seen_ms,
                    down: false,
                };
                was.map(|down_since_ms| Change::Up {
                    site: key.0,
                    host: key.1,
                    down_since_ms,
                })
            }
            None => {
                self.hosts.insert(
                    key,
                    Seen {
                        heartbeat: hb,
                        seen_ms,
                        down: false,
                    },
                );
                None
            }
        }
    }

    /// Agents that went down since the last check.
    pub fn check(&mut self, now_ms: i64) -> Vec<Change> {
        let mut out = Vec::new();
        for ((site, host), s) in &mut self.hosts {
            if !s.down && is_down(s.seen_ms, s.heartbeat.every_secs, now_ms) {
                s.down = true;
                out.push(Change::Down {
                    site: site.clone(),
                    host: host.clone(),
                    last_seen_ms: s.seen_ms,
                });
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) fn heartbeat(site: &str, host: &str, every_secs: u64) -> Heartbeat {
    Heartbeat {
        site: site.into(),
        host: host.into(),
        machine_id: String::new(),
        version: "0.1.0".into(),
        kernel: "6.1".into(),
        backend: "ebpf".into(),
        uptime_secs: 1,
        at_ms: 0,
        every_secs,
        spooled: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_three_missed_then_up() {
        let mut l = Liveness::default();
        assert_eq!(l.heartbeat(heartbeat("s", "a", 5), 1_000), None);
        assert_eq!(l.heartbeat(heartbeat("s", "b", 10), 1_000), None);
        assert!(l.check(16_000).is_empty());
        assert_eq!(
            l.check(16_001),
            vec![Change::Down {
                site: "s".into(),
                host: "a".into(),
                last_seen_ms: 1_000
            }]
        );
        // Reported once.
        assert!(l.check(20_000).is_empty());
        // b sends every 10 s: down only after 30 s.
        assert_eq!(l.check(31_001).len(), 1);
        // A replayed older heartbeat does not bring it back.
        assert_eq!(l.heartbeat(heartbeat("s", "a", 5), 500), None);
        assert_eq!(
            l.heartbeat(heartbeat("s", "a", 5), 40_000),
            Some(Change::Up {
                site: "s".into(),
                host: "a".into(),
                down_since_ms: 1_000
            })
        );
        assert!(!l.hosts[&("s".to_string(), "a".to_string())].down);
        assert!(is_down(0, 0, 15_001));
        assert!(!is_down(0, 0, 15_000));
    }
}
