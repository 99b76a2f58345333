//! `net/dev`: per-interface totals.
//!
//! Parsed by procfs-core's `InterfaceDeviceStatus`, one line at a time so a bad line costs only
//! itself, after one fix-up: the kernel prints `"%6s:%8llu"`, so a long name or a receive byte
//! count of 8+ digits touches the colon (`veth-cap:12345678`), which the crate would read as the
//! name. Interface names cannot contain ':' (`dev_valid_name`), so the first colon is the split.
use procfs::FromBufRead;
use procfs::net::{DeviceStatus, InterfaceDeviceStatus};

use super::Table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxStats {
    pub bytes: u64,
    pub packets: u64,
    pub errs: u64,
    pub drop: u64,
    pub fifo: u64,
    pub frame: u64,
    pub compressed: u64,
    pub multicast: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxStats {
    pub bytes: u64,
    pub packets: u64,
    pub errs: u64,
    pub drop: u64,
    pub fifo: u64,
    pub colls: u64,
    pub carrier: u64,
    pub compressed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub rx: RxStats,
    pub tx: TxStats,
}

impl From<DeviceStatus> for Interface {
    fn from(d: DeviceStatus) -> Self {
        Interface {
            name: d.name,
            rx: RxStats {
                bytes: d.recv_bytes,
                packets: d.recv_packets,
                errs: d.recv_errs,
                drop: d.recv_drop,
                fifo: d.recv_fifo,
                frame: d.recv_frame,
                compressed: d.recv_compressed,
                multicast: d.recv_multicast,
            },
            tx: TxStats {
                bytes: d.sent_bytes,
                packets: d.sent_packets,
                errs: d.sent_errs,
                drop: d.sent_drop,
                fifo: d.sent_fifo,
                colls: d.sent_colls,
                carrier: d.sent_carrier,
                compressed: d.sent_compressed,
            },
        }
    }
}

/// Rows in file order (the crate's map would lose it).
pub fn parse(text: &str) -> Table<Interface> {
    Table::from_lines(text.lines().skip(2), parse_line)
}

fn parse_line(line: &str) -> Option<Interface> {
    let (name, counters) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    // The crate's parser skips two header lines.
    let fixed = format!("\n\n{name}: {counters}\n");
    let devices = InterfaceDeviceStatus::from_buf_read(fixed.as_bytes()).ok()?;
    devices.0.into_values().next().map(Interface::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let lo = parse_line("    lo:    2004      15    0    0    0     0          0         0     2004      15    0    0    0     0       0          0").unwrap();
        assert_eq!(lo.name, "lo");
        assert_eq!(
            (lo.rx.bytes, lo.rx.packets, lo.tx.bytes, lo.tx.packets),
            (2004, 15, 2004, 15)
        );

        let glued = parse_line("veth-cap:123456789 5 1 2 3 4 5 6 338 6 7 8 9 10 11 12").unwrap();
        assert_eq!(glued.name, "veth-cap");
        assert_eq!(
            glued.rx,
            RxStats {
                bytes: 123_456_789,
                packets: 5,
                errs: 1,
                drop: 2,
                fifo: 3,
                frame: 4,
                compressed: 5,
                multicast: 6
            }
        );
        assert_eq!(
            glued.tx,
            TxStats {
                bytes: 338,
                packets: 6,
                errs: 7,
                drop: 8,
                fifo: 9,
                colls: 10,
                carrier: 11,
                compressed: 12
            }
        );

        let max = parse_line(
            "eth0:18446744073709551615 1 0 0 0 0 0 0 18446744073709551615 1 0 0 0 0 0 0 99 98",
        )
        .unwrap();
        assert_eq!((max.rx.bytes, max.tx.bytes), (u64::MAX, u64::MAX));

        for bad in [
            "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
            "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
            ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
            "eth0: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
            "eth0: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }
}
