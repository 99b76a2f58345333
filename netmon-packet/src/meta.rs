//! Where and when a packet was seen, and which process it belongs to.

use serde::Serialize;

/// Direction relative to the host: ingress = received, egress = sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The short form used in one-line summaries and filters ("in", "out").
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "in",
            Direction::Egress => "out",
        }
    }
}

/// Capture metadata that accompanies each header snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PacketMeta {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub ifindex: u32,
    pub ifname: String,
    pub direction: Direction,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The socket cookie, where the hook has one.
    pub cookie: Option<u64>,
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// Bytes captured (≤ `orig_len`).
    pub snap_len: u32,
}
