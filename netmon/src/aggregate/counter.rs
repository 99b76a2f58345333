//! One cumulative counter as the kernel reports it, turned into a monotonic total and a rate.

/// `set` takes the source's cumulative value; `total` only ever grows. A value smaller than the
/// last one means the source restarted its count (a map entry was recreated), so the new value
/// is itself a delta.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    last: u64,
    total: u64,
    at_mark: u64,
}

impl Counter {
    pub fn set(&mut self, cumulative: u64) {
        let delta = match cumulative.checked_sub(self.last) {
            Some(d) => d,
            None => {
                log::debug!("counter went from {} to {cumulative}: reset", self.last);
                cumulative
            }
        };
        self.total = self.total.saturating_add(delta);
        self.last = cumulative;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Growth since the last `mark`, per second.
    pub fn rate(&self, secs: f64) -> f64 {
        if secs <= 0.0 {
            return 0.0;
        }
        (self.total - self.at_mark) as f64 / secs
    }

    /// Called when an interval ends: the next rate is measured from here.
    pub fn mark(&mut self) {
        self.at_mark = self.total;
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn cumulative_values_become_deltas() {
        let mut c = Counter::default();
        c.set(100);
        c.set(250);
        c.set(250);
        assert_eq!(c.total(), 250);
        assert_eq!(c.rate(2.0), 125.0);
        c.mark();
        c.set(300);
        assert_eq!(c.rate(0.5), 100.0);
        assert_eq!(c.rate(0.0), 0.0);
    }

    #[test]
    fn a_smaller_value_is_a_reset_not_a_negative_delta() {
        let mut c = Counter::default();
        c.set(1000);
        c.set(40);
        assert_eq!(c.total(), 1040);
        c.set(u64::MAX);
        assert_eq!(c.total(), u64::MAX);
    }
}
