//! pcapng files: a writer (section header, one interface block per interface, an enhanced
//! packet block per packet with the process in its comment) and a minimal reader for tests.
//!
//! Hand-written: the format is a few fixed blocks, and the Rust pcapng crates either only read or
//! cannot write per-packet comments and interface names; the writer is ~100 lines.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::meta::{Direction, PacketMeta};
use crate::packet::LinkType;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

/// Writes pcapng with nanosecond timestamps, little-endian.
pub struct PcapngWriter<W: Write> {
    out: W,
    snaplen: u32,
    /// (ifindex, link type) → (name, interface id in this section). A new name for a known
    /// index (renamed, or another namespace) gets a new interface block.
    interfaces: HashMap<(u32, LinkType), (String, u32)>,
    next_id: u32,
    buf: Vec<u8>,
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a section; `snaplen` is recorded in each interface block.
    pub fn new(mut out: W, snaplen: u32) -> io::Result<Self> {
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        // Section length unknown: we stream.
        body.extend_from_slice(&(-1i64).to_le_bytes());
        option(
            &mut body,
            SHB_USERAPPL,
            concat!("netmon ", env!("CARGO_PKG_VERSION")).as_bytes(),
        );
        option(&mut body, OPT_END, &[]);
        block(&mut out, SHB, &body)?;
        Ok(PcapngWriter {
            out,
            snaplen,
            interfaces: HashMap::new(),
            next_id: 0,
            buf: Vec::with_capacity(256),
        })
    }

    /// Appends one packet; `data` is what was captured (`meta.orig_len` is the wire length).
    pub fn write_packet(
        &mut self,
        meta: &PacketMeta,
        link: LinkType,
        data: &[u8],
    ) -> io::Result<()> {
        let id = self.interface(meta, link)?;
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&((meta.ts_ns >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(meta.ts_ns as u32).to_le_bytes());
        let caplen =
            u32::try_from(data.len()).map_err(|_| io::Error::other("packet larger than 4 GiB"))?;
        b.extend_from_slice(&caplen.to_le_bytes());
        b.extend_from_slice(&meta.orig_len.max(caplen).to_le_bytes());
        b.extend_from_slice(data);
        pad(b);
        if let Some(c) = comment(meta) {
            option(b, OPT_COMMENT, c.as_bytes());
        }
        // Bits 0-1 of epb_flags: 1 inbound, 2 outbound.
        let dir: u32 = match meta.direction {
            Direction::Ingress => 1,
            Direction::Egress => 2,
        };
        option(b, EPB_FLAGS, &dir.to_le_bytes());
        option(b, OPT_END, &[]);
        block(&mut self.out, EPB, &self.buf)
    }

    fn interface(&mut self, meta: &PacketMeta, link: LinkType) -> io::Result<u32> {
        let key = (meta.ifindex, link);
        if let Some((name, id)) = self.interfaces.get(&key)
            && *name == meta.ifname
        {
            return Ok(*id);
        }
        let id = self.next_id;
        let mut body = Vec::new();
        body.extend_from_slice(&link.pcap_linktype().to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&self.snaplen.to_le_bytes());
        if !meta.ifname.is_empty() {
            option(&mut body, IF_NAME, meta.ifname.as_bytes());
        }
        // Timestamps in units of 10^-9 s.
        option(&mut body, IF_TSRESOL, &[9]);
        option(&mut body, OPT_END, &[]);
        block(&mut self.out, IDB, &body)?;
        self.interfaces.insert(key, (meta.ifname.clone(), id));
        self.next_id += 1;
        Ok(id)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// "pid=1234 comm=curl", or whichever half is known.
fn comment(meta: &PacketMeta) -> Option<String> {
    match (meta.pid, &meta.comm) {
        (Some(pid), Some(comm)) => Some(format!("pid={pid} comm={comm}")),
        (Some(pid), None) => Some(format!("pid={pid}")),
        (None, Some(comm)) => Some(format!("comm={comm}")),
        (None, None) => None,
    }
}

fn pad(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

fn option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    pad(b);
}

fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// An interface description read back from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub linktype: u16,
    pub snaplen: u32,
    pub name: Option<String>,
}

/// A packet read back from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub interface: u32,
    /// Raw timestamp in the interface's resolution (nanoseconds for files this writer made).
    pub ts: u64,
    pub orig_len: u32,
    pub data: Vec<u8>,
    pub comment: Option<String>,
    pub flags: Option<u32>,
}

/// Reads a little-endian pcapng file of one or more sections; other block types are skipped.
pub fn read(bytes: &[u8]) -> Result<(Vec<Interface>, Vec<Record>), String> {
    let mut ifaces = Vec::new();
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let kind = le32(bytes, at).ok_or("truncated block header")?;
        let total = le32(bytes, at + 4).ok_or("truncated block header")? as usize;
        if total < 12 || !total.is_multiple_of(4) || at + total > bytes.len() {
            return Err(format!("bad block length {total} at offset {at}"));
        }
        let body = &bytes[at + 8..at + total - 4];
        match kind {
            SHB if le32(body, 0) != Some(BYTE_ORDER_MAGIC) => {
                return Err("not a little-endian pcapng section".into());
            }
            IDB => {
                let opts = options(body.get(8..).ok_or("short interface block")?);
                ifaces.push(Interface {
                    linktype: le16(body, 0).ok_or("short interface block")?,
                    snaplen: le32(body, 4).ok_or("short interface block")?,
                    name: opts
                        .get(&IF_NAME)
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                });
            }
            EPB => {
                let caplen = le32(body, 12).ok_or("short packet block")? as usize;
                let data = body
                    .get(20..20 + caplen)
                    .ok_or("packet data past its block")?;
                let opts = options(body.get(20 + caplen.div_ceil(4) * 4..).unwrap_or_default());
                records.push(Record {
                    interface: le32(body, 0).ok_or("short packet block")?,
                    ts: (u64::from(le32(body, 4).unwrap_or(0)) << 32)
                        | u64::from(le32(body, 8).unwrap_or(0)),
                    orig_len: le32(body, 16).ok_or("short packet block")?,
                    data: data.to_vec(),
                    comment: opts
                        .get(&OPT_COMMENT)
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                    flags: opts.get(&EPB_FLAGS).and_then(|v| le32(v, 0)),
                });
            }
            _ => {}
        }
        at += total;
    }
    Ok((ifaces, records))
}

fn options(mut b: &[u8]) -> HashMap<u16, Vec<u8>> {
    let mut out = HashMap::new();
    while let (Some(code), Some(len)) = (le16(b, 0), le16(b, 2)) {
        if code == OPT_END {
            break;
        }
        let len = usize::from(len);
        let Some(v) = b.get(4..4 + len) else { break };
        out.insert(code, v.to_vec());
        b = b.get(4 + len.div_ceil(4) * 4..).unwrap_or_default();
    }
    out
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
