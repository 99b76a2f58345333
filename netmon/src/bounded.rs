//! A map that remembers only the latest entries: the oldest are forgotten first. For what is
//! worth knowing for a while after a socket ended (its owner, that it ended) without keeping
//! every socket ever seen.
use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
};

#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Eq + Hash + Copy, V> BoundedMap<K, V> {
    /// Room for twice `cap` from the start: a map that forgets as much as it learns never grows
    /// past half its table, so it is cleaned in place instead of doubling late in a long run
    /// (a step in VmHWM after 20 s at 20k connections/s).
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            map: HashMap::with_capacity(cap * 2),
            order: VecDeque::with_capacity(cap + 1),
            cap,
        }
    }

    /// Remembers `key` (a key already there keeps its place and takes the new value).
    pub fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::BoundedMap;

    #[test]
    fn forgets_the_oldest_beyond_its_bound() {
        let mut r = BoundedMap::new(2);
        r.insert(1u64, 'a');
        r.insert(2, 'b');
        r.insert(2, 'c');
        assert!(r.contains(&1));
        assert_eq!(r.get(&2), Some(&'c'));
        r.insert(3, 'd');
        assert!(!r.contains(&1));
        assert!(r.contains(&2) && r.contains(&3));
    }
}
