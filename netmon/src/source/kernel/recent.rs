//! A bounded set of recently seen keys: the oldest are forgotten first.
use std::collections::{HashSet, VecDeque};

pub(super) struct Recent {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    cap: usize,
}

impl Recent {
    /// Room for twice `cap` from the start: a set that forgets as much as it learns never
    /// grows past half its table, so it is cleaned in place instead of doubling late in a long
    /// run (a step in VmHWM after 20 s at 20k connections/s).
    pub(super) fn new(cap: usize) -> Self {
        Recent {
            set: HashSet::with_capacity(cap * 2),
            order: VecDeque::with_capacity(cap + 1),
            cap,
        }
    }

    pub(super) fn insert(&mut self, key: u64) {
        if !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub(super) fn contains(&self, key: u64) -> bool {
        self.set.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn forgets_the_oldest_beyond_its_bound() {
        let mut r = Recent::new(2);
        r.insert(1);
        r.insert(2);
        r.insert(2);
        assert!(r.contains(1) && r.contains(2));
        r.insert(3);
        assert!(!r.contains(1));
        assert!(r.contains(2) && r.contains(3));
    }
}
