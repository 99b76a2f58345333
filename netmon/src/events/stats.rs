//! Counters of what the event sources skipped or lost and of `--exec` outcomes, shared by the
//! source threads and the sink, and printed in one line when `netmon events` stops.
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    pub shown: AtomicU64,
    pub uevents_malformed: AtomicU64,
    pub uevent_overruns: AtomicU64,
    pub rtnetlink_unparseable: AtomicU64,
    pub rtnetlink_overruns: AtomicU64,
    pub resyncs: AtomicU64,
    pub mountinfo_unparseable: AtomicU64,
    pub exec_failed: AtomicU64,
    pub exec_timed_out: AtomicU64,
    pub exec_dropped: AtomicU64,
}

impl Stats {
    pub fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// `12 events; skipped: 1 malformed uevent, ...`: the skips only when there were some.
    pub fn summary(&self) -> String {
        let mut s = format!("{} events", Self::get(&self.shown));
        let parts: Vec<String> = [
            (&self.uevents_malformed, "malformed uevents"),
            (&self.uevent_overruns, "uevent overruns"),
            (
                &self.rtnetlink_unparseable,
                "unparseable rtnetlink messages",
            ),
            (&self.rtnetlink_overruns, "rtnetlink overruns"),
            (&self.resyncs, "resyncs"),
            (&self.mountinfo_unparseable, "unparseable mountinfo lines"),
            (&self.exec_failed, "--exec failures"),
            (&self.exec_timed_out, "--exec timeouts"),
            (&self.exec_dropped, "--exec runs dropped (queue full)"),
        ]
        .into_iter()
        .filter(|(c, _)| Self::get(c) > 0)
        .map(|(c, what)| format!("{} {what}", Self::get(c)))
        .collect();
        if !parts.is_empty() {
            s.push_str("; ");
            s.push_str(&parts.join(", "));
        }
        s
    }
}
