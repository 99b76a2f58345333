//! User-space half of netmon's packet path: decoding header snapshots, filters, TCP analysis,
//! DNS names per process, one-line/JSON output and pcapng. No root, no eBPF, no I/O of its own.
//!
//! - [`decode()`]: bytes + [`LinkType`] → [`Packet`], an ordered list of [`Layer`]s with named
//!   fields (`"IPv4"` / `"Source_Address"` → [`Value`]) and [`Problem`]s (truncation, malformed
//!   headers, bad checksums). Never panics.
//! - [`PacketMeta`]: where/when/which process, supplied by the capture side.
//! - [`summary`]: tcpdump-like line ([`summary::line`]) and a JSON line ([`summary::json_line`]).
//! - [`Filter`]: the seed's nested JSON format or `tcp.dport == 5000 and ip.src in 10.0.0.0/8`;
//!   [`Filter::kernel_part`] gives the protocol/port/address subset a BPF map can hold.
//! - [`tcp_analysis::TcpAnalyzer`], [`dns_names::DnsNames`]: bounded per-connection and
//!   per-process state fed with decoded packets.
//! - [`pcapng::PcapngWriter`]: one interface block per interface, the process in each comment.
//!
//! ```
//! use netmon_packet::{decode, summary, Direction, Filter, LinkType, PacketMeta, Value};
//!
//! // An IPv4/UDP datagram without a link-layer header: 10.0.0.1:1000 > 10.0.0.2:2000.
//! let mut bytes = vec![0x45, 0, 0, 30, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
//! bytes.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 10, 0, 0, b'h', b'i']);
//! let pkt = decode(&bytes, LinkType::RawIp);
//! assert_eq!(pkt.layer("UDP").unwrap().get("Destination_Port"), Some(&Value::Num(2000)));
//! // The IPv4 checksum was left zero: flagged, not dropped.
//! assert_eq!(pkt.problems[0].reason, "bad header checksum");
//!
//! let meta = PacketMeta {
//!     ts_ns: 0, ifindex: 1, ifname: "lo".into(), direction: Direction::Egress,
//!     pid: Some(42), comm: Some("nc".into()), cookie: None, orig_len: 30, snap_len: 30,
//! };
//! let filter = Filter::parse("udp.dport == 2000 and pid == 42").unwrap();
//! assert!(filter.matches(&pkt, &meta));
//! assert!(summary::line(&pkt, &meta).contains("42/nc | IPv4 10.0.0.1 > 10.0.0.2"));
//! ```

pub mod decode;
pub mod dns;
pub mod dns_names;
pub mod filter;
pub mod meta;
pub mod packet;
pub mod pcapng;
pub mod summary;
pub mod tcp_analysis;
pub mod value;

pub use decode::{DecodeOptions, decode, decode_with};
pub use filter::{Filter, FilterError};
pub use meta::{Direction, PacketMeta};
pub use packet::{Layer, LinkType, Packet, Problem};
pub use value::{Mac, Value};
