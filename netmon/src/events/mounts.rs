//! Mount and unmount events from /proc/self/mountinfo.
//!
//! The kernel has no notification message for mounts, but it marks mountinfo with POLLPRI
//! (and POLLERR) whenever the namespace's mount table changes; netmon then re-reads the file and
//! diffs it against the last reading, keyed by mount id (unique while mounted, so a remount at
//! the same point is an unmount and a mount).
use std::{
    collections::BTreeMap,
    io::{Read, Seek},
    os::fd::AsRawFd,
    path::Path,
};

use super::{
    model::{Mount, What},
    stats::Stats,
};

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let digit = |k: usize| u32::from(b[i + k] - b'0');
            let v = digit(1) * 64 + digit(2) * 8 + digit(3);
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One mountinfo line: `ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER`.
pub fn parse_line(line: &str) -> Option<Mount> {
    let mut f = line.split(' ');
    let mount_id = f.next()?.parse().ok()?;
    let _parent = f.next()?;
    let _devno = f.next()?;
    let _root = f.next()?;
    let mount_point = unescape(f.next()?);
    let options = f.next()?.to_string();
    // Optional fields (shared:N, master:N...) run until a lone "-".
    for field in f.by_ref() {
        if field == "-" {
            break;
        }
    }
    let fstype = f.next()?.to_string();
    let source = unescape(f.next()?);
    Some(Mount {
        mount_id,
        mount_point,
        source,
        fstype,
        options,
    })
}

/// The table keyed by mount id, and how many lines did not parse.
pub fn parse_table(text: &str) -> (BTreeMap<u64, Mount>, u64) {
    let mut bad = 0;
    let mut table = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        match parse_line(line) {
            Some(m) => {
                table.insert(m.mount_id, m);
            }
            None => bad += 1,
        }
    }
    (table, bad)
}

/// Unmounts first (in id order), then mounts, so a replaced mount reads naturally.
pub fn diff(old: &BTreeMap<u64, Mount>, new: &BTreeMap<u64, Mount>) -> Vec<What> {
    let gone = old
        .iter()
        .filter(|(id, _)| !new.contains_key(id))
        .map(|(_, m)| What::Unmounted(m.clone()));
    let came = new
        .iter()
        .filter(|(id, _)| !old.contains_key(id))
        .map(|(_, m)| What::Mounted(m.clone()));
    gone.chain(came).collect()
}

/// A watch on a mountinfo file (normally /proc/self/mountinfo) with its baseline table.
pub struct MountWatch {
    file: std::fs::File,
    known: BTreeMap<u64, Mount>,
}

fn read_table(file: &mut std::fs::File, stats: &Stats) -> std::io::Result<BTreeMap<u64, Mount>> {
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    let (table, bad) = parse_table(&text);
    if bad > 0 {
        stats
            .mountinfo_unparseable
            .fetch_add(bad, std::sync::atomic::Ordering::Relaxed);
        log::warn!("events: {bad} mountinfo lines did not parse");
    }
    Ok(table)
}

impl MountWatch {
    /// Opens `path` and reads the mounts that exist now: the baseline, not news.
    pub fn open(path: &Path, stats: &Stats) -> std::io::Result<MountWatch> {
        let mut file = std::fs::File::open(path)?;
        let known = read_table(&mut file, stats)?;
        Ok(MountWatch { file, known })
    }

    /// Waits for changes until reading fails or `emit` says stop.
    pub fn run(mut self, stats: &Stats, mut emit: impl FnMut(What) -> bool) -> std::io::Result<()> {
        loop {
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            // SAFETY: one valid pollfd for a descriptor `self.file` keeps open during the call.
            if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = read_table(&mut self.file, stats)?;
            for w in diff(&self.known, &now) {
                if !emit(w) {
                    return Ok(());
                }
            }
            self.known = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
";

    #[test]
    fn mount_and_unmount_are_diffed_by_id() {
        let (old, bad) = parse_table(BEFORE);
        assert_eq!((old.len(), bad), (3, 0));
        let after = format!(
            "{}{}",
            BEFORE.replace(
                "24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n",
                ""
            ),
            "97 22 0:45 / /mnt/usb\\040stick rw,relatime shared:50 master:3 - vfat /dev/sdb1 rw,fmask=0022\n"
        );
        let (new, _) = parse_table(&after);
        let d = diff(&old, &new);
        assert_eq!(d.len(), 2);
        let What::Unmounted(u) = &d[0] else {
            panic!("{d:?}")
        };
        assert_eq!((u.mount_id, u.mount_point.as_str()), (24, "/sys"));
        let What::Mounted(m) = &d[1] else {
            panic!("{d:?}")
        };
        assert_eq!(m.mount_point, "/mnt/usb stick");
        assert_eq!(m.fstype, "vfat");
        assert_eq!(m.source, "/dev/sdb1");
        assert_eq!(m.options, "rw,relatime");
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn bad_lines_are_counted() {
        let (t, bad) =
            parse_table("x y z\n22 1 254:1 / / rw\n\n23 22 0:21 / /proc rw - proc proc rw\n");
        assert_eq!((t.len(), bad), (1, 2));
        assert_eq!(unescape("a\\134b\\"), "a\\b\\");
        assert_eq!(unescape("\\777"), "\\777");
    }

    #[test]
    fn this_machines_mountinfo_parses() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let (t, bad) = parse_table(&text);
        assert_eq!(bad, 0);
        assert!(t.values().any(|m| m.mount_point == "/"));
    }
}
