//! placeholder
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

pub use decode::decode;
pub use meta::{Direction, PacketMeta};
pub use packet::{Layer, LinkType, Packet, Problem};
pub use value::{Mac, Value};
