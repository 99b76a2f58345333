//! pcapng written here is read back by our reader and, when installed, by tshark.

mod fixtures;

use std::path::PathBuf;
use std::process::Command;

use netmon_packet::pcapng::{PcapngWriter, read};
use netmon_packet::{Direction, LinkType, PacketMeta};

/// Removes the file on drop, also when an assertion fails.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Sample {
    meta: PacketMeta,
    data: Vec<u8>,
}

/// N packets alternating between two interfaces, each with its own pid/comm, the last one
/// without a process, and every third one cut to a 64-byte snap length.
fn samples(n: usize) -> Vec<Sample> {
    let all = fixtures::all();
    (0..n)
        .map(|i| {
            let full = all[i % all.len()].1.clone();
            let data = if i % 3 == 0 {
                full[..full.len().min(64)].to_vec()
            } else {
                full.clone()
            };
            let (ifindex, ifname) = if i % 2 == 0 {
                (2, "nmpkt-veth0")
            } else {
                (1, "lo")
            };
            let last = i == n - 1;
            Sample {
                meta: PacketMeta {
                    ts_ns: 1_795_610_096_000_000_000 + i as u64 * 1_000_123,
                    ifindex,
                    ifname: ifname.into(),
                    direction: if i % 2 == 0 {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                    pid: (!last).then_some(1000 + i as u32),
                    comm: (!last).then(|| format!("proc{i}")),
                    cookie: None,
                    orig_len: full.len() as u32,
                    snap_len: data.len() as u32,
                },
                data,
            }
        })
        .collect()
}

fn write(samples: &[Sample]) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new(), 128).unwrap();
    for s in samples {
        w.write_packet(&s.meta, LinkType::Ethernet, &s.data)
            .unwrap();
    }
    w.into_inner()
}

fn expected_comment(s: &Sample) -> Option<String> {
    s.meta
        .pid
        .map(|p| format!("pid={p} comm={}", s.meta.comm.as_deref().unwrap()))
}

#[test]
fn round_trip_through_our_reader() {
    let samples = samples(9);
    let (ifaces, records) = read(&write(&samples)).unwrap();
    assert_eq!(ifaces.len(), 2);
    assert_eq!(ifaces[0].name.as_deref(), Some("nmpkt-veth0"));
    assert_eq!(ifaces[1].name.as_deref(), Some("lo"));
    assert!(ifaces.iter().all(|i| i.linktype == 1 && i.snaplen == 128));
    assert_eq!(records.len(), samples.len());
    for (r, s) in records.iter().zip(&samples) {
        assert_eq!(r.interface, if s.meta.ifindex == 2 { 0 } else { 1 });
        assert_eq!(r.ts, s.meta.ts_ns);
        assert_eq!(r.data, s.data);
        assert_eq!(r.orig_len, s.meta.orig_len);
        assert_eq!(r.comment, expected_comment(s));
        assert_eq!(
            r.flags,
            Some(if s.meta.direction == Direction::Ingress {
                1
            } else {
                2
            })
        );
    }
}

#[test]
fn tshark_reads_comments_interfaces_and_lengths() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("skipping test - tshark not on PATH (scripts/setup.sh installs it)");
        return;
    }
    let samples = samples(10);
    let path = std::env::temp_dir().join(format!(
        "nmpkt-{}-{:?}.pcapng",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = TempFile(path);
    std::fs::write(&file.0, write(&samples)).unwrap();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file.0)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.comment",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
        ])
        .args(["-e", "frame.packet_flags_direction"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), samples.len(), "{text}");
    for (line, s) in lines.iter().zip(&samples) {
        let cols: Vec<&str> = line.split('|').collect();
        assert_eq!(cols[0], expected_comment(s).unwrap_or_default(), "{line}");
        assert_eq!(cols[1], s.meta.ifname, "{line}");
        assert_eq!(cols[2], s.meta.orig_len.to_string(), "{line}");
        assert_eq!(cols[3], s.data.len().to_string(), "{line}");
        let dir = if s.meta.direction == Direction::Ingress {
            "0x1"
        } else {
            "0x2"
        };
        assert!(cols[4].ends_with(dir.trim_start_matches("0x")), "{line}");
    }
}

#[test]
fn a_renamed_interface_gets_its_own_block() {
    let mut s = samples(3);
    s[2].meta.ifindex = s[0].meta.ifindex;
    s[2].meta.ifname = "nmpkt-renamed".into();
    let (ifaces, records) = read(&write(&s)).unwrap();
    let names: Vec<_> = ifaces.iter().map(|i| i.name.clone().unwrap()).collect();
    assert_eq!(names, ["nmpkt-veth0", "lo", "nmpkt-renamed"]);
    assert_eq!(
        records.iter().map(|r| r.interface).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}
