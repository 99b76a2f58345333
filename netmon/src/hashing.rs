//! Cheap hashing for tables keyed by numbers that are already unique and unpredictable: the
//! reader's per-socket tables (socket cookies, touched for every socket at every poll) and the
//! history writer's per-record tables (128-bit SipHash digests of identities). SipHash's
//! protection against chosen keys buys nothing there and cost a tenth of the reader's time.
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-and-fold over 64-bit words.
#[derive(Default, Clone, Copy)]
pub(crate) struct WordHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl WordHasher {
    fn add(&mut self, w: u64) {
        let m = (self.0 ^ w) as u128 * K as u128;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.add(u64::from_ne_bytes(w));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// A digest of a map value's bytes: enough to tell whether it changed since it was last sent.
pub(crate) fn digest<T: aya::Pod>(v: &T) -> u64 {
    // SAFETY: Pod values are plain bytes without padding (netmon_common's are all integers).
    let bytes = unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) };
    let mut h = WordHasher(size_of::<T>() as u64);
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use netmon_common::WireStats;

    use super::*;

    #[test]
    fn any_changed_counter_changes_the_digest() {
        let base = WireStats {
            tx_bytes: 1000,
            rx_bytes: 2000,
            tx_packets: 10,
            rx_packets: 20,
            zero_window: 0,
        };
        let d = digest(&base);
        assert_eq!(d, digest(&base));
        for i in 0..5 {
            let mut v = base;
            match i {
                0 => v.tx_bytes += 1,
                1 => v.rx_bytes += 1,
                2 => v.tx_packets += 1,
                3 => v.rx_packets += 1,
                _ => v.zero_window = 1,
            }
            assert_ne!(digest(&v), d, "field {i}");
        }
        // Swapped counters are another value too.
        let swapped = WireStats {
            tx_bytes: 2000,
            rx_bytes: 1000,
            ..base
        };
        assert_ne!(digest(&swapped), d);
    }
}
