//! What the fuzz targets share.

use netmon_packet::{Direction, PacketMeta};

/// Capture metadata for a whole, uncut packet of `len` bytes.
pub fn meta(ts_ns: u64, direction: Direction, pid: Option<u32>, len: usize) -> PacketMeta {
    PacketMeta {
        ts_ns,
        ifindex: 1,
        ifname: "fz".into(),
        direction,
        pid,
        comm: None,
        cookie: None,
        orig_len: len as u32,
        snap_len: len as u32,
    }
}
