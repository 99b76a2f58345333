//! `net/arp`: the IPv4 neighbour table.
//!
//! Parsed by procfs-core's `ArpEntries`, one line at a time so a bad line costs only itself.
//! Its parser slices `&field[2..]` for the hex columns, so lines are screened for that first:
//! a short field would panic inside it.
use std::net::Ipv4Addr;

use procfs::FromBufRead;
use procfs::net::{ARPFlags, ARPHardware, ArpEntries};

use super::Table;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpRow {
    pub ip: Ipv4Addr,
    pub hw_type: ARPHardware,
    pub flags: ARPFlags,
    /// `None` while the entry is incomplete (all-zero address).
    pub hw_address: Option<[u8; 6]>,
    pub device: String,
}

impl ArpRow {
    /// `ip neigh`-like state: a completed entry, a permanent one, or still resolving.
    pub fn state(&self) -> &'static str {
        if self.flags.contains(ARPFlags::PERM) {
            "PERMANENT"
        } else if self.flags.contains(ARPFlags::COM) {
            "REACHABLE"
        } else {
            "INCOMPLETE"
        }
    }

    pub fn hw_address_string(&self) -> Option<String> {
        self.hw_address.map(|m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
    }
}

pub fn parse(text: &str) -> Table<ArpRow> {
    Table::from_lines(text.lines().skip(1), parse_line)
}

fn parse_line(line: &str) -> Option<ArpRow> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 || !fields[1].starts_with("0x") || !fields[2].starts_with("0x") {
        return None;
    }
    // The crate's parser skips a header line.
    let entries = ArpEntries::from_buf_read(format!("\n{line}\n").as_bytes()).ok()?;
    let e = entries.0.into_iter().next()?;
    Some(ArpRow {
        ip: e.ip_address,
        hw_type: e.hw_type,
        flags: e.flags,
        hw_address: e.hw_address,
        device: e.device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let row = parse_line(
            "10.99.0.1        0x1         0x2         02:00:00:00:99:01     *        veth-cap",
        )
        .unwrap();
        assert_eq!(row.ip, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(
            row.hw_address_string().as_deref(),
            Some("02:00:00:00:99:01")
        );
        assert_eq!(
            (row.state(), row.device.as_str()),
            ("REACHABLE", "veth-cap")
        );

        let incomplete = parse_line("10.99.0.9 0x1 0x0 00:00:00:00:00:00 * veth-cap").unwrap();
        assert_eq!(
            (incomplete.hw_address, incomplete.state()),
            (None, "INCOMPLETE")
        );
        let perm = parse_line("10.0.0.5 0x1 0x6 02:00:00:00:00:05 * eth0").unwrap();
        assert_eq!(perm.state(), "PERMANENT");

        for bad in [
            "10.0.0.1 0 0x2 02:00:00:00:00:01 * eth0",
            "10.0.0.1 0x1 0x2 02:00:00:00:00:01 *",
            "10.0.0.1 0x1 0x2",
            "10.0.0.256 0x1 0x2 02:00:00:00:00:01 * eth0",
            "10.0.0.1 0xZ 0x2 02:00:00:00:00:01 * eth0",
            "10.0.0.1 0x1 0x2 02:00:00:00:00:GG * eth0",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }
}
