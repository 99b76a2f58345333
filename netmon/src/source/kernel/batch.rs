//! Whole hash maps read a few thousand entries per syscall (BPF_MAP_LOOKUP_BATCH, Linux 5.6).
//!
//! aya's map iterator costs two syscalls per entry (get_next_key, then lookup): at 100k sockets
//! and four polls a second, the reader spent its time in the kernel walking PAYLOAD, WIRE and
//! TCP_STATS. aya 0.14 has no batch operations, hence this small wrapper around bpf(2). Should
//! the kernel refuse the command, the iterator is used instead.
use std::os::fd::{AsFd, AsRawFd};

use aya::{
    Pod,
    maps::{HashMap, Map, MapData, MapError},
};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per call; a bucket with more than this many makes the kernel say ENOSPC,
/// and the call is repeated with room for more.
const FIRST_CHUNK: usize = 4096;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every (key, value) of a BPF hash map with these key and value types.
pub(super) fn read_all<K: Pod, V: Pod>(map: &Map) -> Result<Vec<(K, V)>, MapError> {
    let mut out = Vec::new();
    for_each(map, |k, v| out.push((k, v)))?;
    Ok(out)
}

/// Calls `f` with every (key, value) of a BPF hash map, a few thousand entries per syscall:
/// at 100k sockets the whole map never sits in memory at once (a TCP_STATS copy was 25 MB).
pub(super) fn for_each<K: Pod, V: Pod>(map: &Map, mut f: impl FnMut(K, V)) -> Result<(), MapError> {
    // Checks the map's type and its key and value sizes against K and V.
    let typed = HashMap::<&MapData, K, V>::try_from(map)?;
    let Map::HashMap(data) = map else {
        typed.iter().flatten().for_each(|(k, v)| f(k, v));
        return Ok(());
    };
    match lookup_batch(data, &mut f) {
        Ok(()) => Ok(()),
        // Nothing was handed over before the kernel refused the command.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => {
            typed.iter().flatten().for_each(|(k, v)| f(k, v));
            Ok(())
        }
        Err(e) => Err(MapError::SyscallError(aya::sys::SyscallError {
            call: "bpf_map_lookup_batch",
            io_error: e,
        })),
    }
}

fn lookup_batch<K: Pod, V: Pod>(data: &MapData, f: &mut impl FnMut(K, V)) -> std::io::Result<()> {
    let fd = data.fd().as_fd().as_raw_fd();
    let mut chunk = FIRST_CHUNK;
    let mut keys: Vec<K> = Vec::with_capacity(chunk);
    let mut values: Vec<V> = Vec::with_capacity(chunk);
    // Hash maps page by bucket: the token is a u32 bucket index.
    let (mut token_in, mut token_out) = (0u32, 0u32);
    let mut first = true;
    loop {
        keys.reserve(chunk);
        values.reserve(chunk);
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &raw const token_in as u64 },
            out_batch: &raw mut token_out as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the buffers have room for `count` keys and values of the sizes the map was
        // checked to have; the kernel writes at most that many and says how many in `count`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let err = (r < 0).then(std::io::Error::last_os_error);
        let n = (attr.count as usize).min(chunk);
        // SAFETY: the kernel filled the first `n` entries of both buffers.
        unsafe {
            keys.set_len(n);
            values.set_len(n);
        }
        for (k, v) in keys.drain(..).zip(values.drain(..)) {
            f(k, v);
        }
        match err.as_ref().and_then(std::io::Error::raw_os_error) {
            None => {}
            // The last buckets were read.
            Some(libc::ENOENT) => return Ok(()),
            Some(libc::ENOSPC) if n == 0 => {
                chunk *= 2;
                continue;
            }
            Some(_) => return Err(err.expect("an error")),
        }
        token_in = token_out;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use aya::maps::HashMap;
    use netmon_common::{WireStats, maps};

    use super::*;

    /// Against aya's own iterator, on netmon's WIRE map: empty, then more entries than one
    /// batch holds, so the paging by bucket is exercised.
    #[test]
    #[ignore = "needs root: run under cargo xtask test"]
    fn batch_reads_what_the_iterator_reads() {
        let (mut ebpf, _, _) =
            crate::source::kernel::load_object(false).expect("loading netmon's eBPF object");
        let empty: Vec<(u64, WireStats)> = read_all(ebpf.map(maps::WIRE).unwrap()).unwrap();
        assert!(empty.is_empty());

        let mut wire: HashMap<&mut MapData, u64, WireStats> =
            HashMap::try_from(ebpf.map_mut(maps::WIRE).unwrap()).unwrap();
        for cookie in 1..=10_000u64 {
            let v = WireStats {
                tx_bytes: cookie * 3,
                rx_bytes: cookie * 5,
                tx_packets: cookie,
                rx_packets: cookie + 1,
                zero_window: cookie % 4,
            };
            wire.insert(cookie, v, 0).unwrap();
        }
        let mut want: Vec<(u64, WireStats)> = wire.iter().flatten().collect();
        let map = ebpf.map(maps::WIRE).unwrap();
        let mut got: Vec<(u64, WireStats)> = read_all(map).unwrap();
        want.sort_by_key(|(k, _)| *k);
        got.sort_by_key(|(k, _)| *k);
        assert_eq!(got.len(), 10_000);
        assert_eq!(got, want);
        assert_eq!(got[41].1.rx_bytes, 42 * 5);
    }
}
