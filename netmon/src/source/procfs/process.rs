//! Process identity and the process tree, read from a proc mount.
//!
//! `stat` and `status` go through the procfs crate's reader parsers. Handwritten parts, and why:
//! - `stat` is checked for the shape procfs-core assumes before parsing: its parser slices around
//!   the parentheses of `comm` and panics on input such as `(x) S` or `1 (x)`, and netmon must not
//!   panic on any input.
//! - `cmdline`, `comm`, `task/*/children` and the pid list are a split or a trim, so the crate
//!   (which would also open each process with `O_PATH` first) adds nothing there.
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use procfs::FromBufRead;
use procfs::FromRead;
use procfs::process::{Stat, Status};

/// Why a process could not be read. Vanishing is normal: callers usually skip [`ProcError::NotFound`].
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("process {pid} not found")]
    NotFound { pid: u32 },
    #[error("permission denied reading {}", path.display())]
    PermissionDenied { pid: u32, path: PathBuf },
    #[error("malformed {}: {reason}", path.display())]
    Malformed {
        pid: u32,
        path: PathBuf,
        reason: String,
    },
    #[error("reading {}", path.display())]
    Io {
        pid: u32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ProcError {
    /// Sorts an I/O error on a file of process `pid`: ENOENT and ESRCH both mean it exited.
    pub(crate) fn from_io(pid: u32, path: &Path, err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ESRCH) {
            ProcError::NotFound { pid }
        } else if err.kind() == io::ErrorKind::PermissionDenied {
            ProcError::PermissionDenied {
                pid,
                path: path.to_path_buf(),
            }
        } else {
            ProcError::Io {
                pid,
                path: path.to_path_buf(),
                source: err,
            }
        }
    }

    /// Maps the procfs crate's error for a file it parsed from a reader we opened.
    fn from_procfs(pid: u32, path: &Path, err: procfs::ProcError) -> Self {
        match err {
            procfs::ProcError::NotFound(_) => ProcError::NotFound { pid },
            procfs::ProcError::PermissionDenied(_) => ProcError::PermissionDenied {
                pid,
                path: path.to_path_buf(),
            },
            procfs::ProcError::Io(e, _) => ProcError::from_io(pid, path, e),
            procfs::ProcError::Incomplete(_) => ProcError::Malformed {
                pid,
                path: path.to_path_buf(),
                reason: "incomplete".to_string(),
            },
            procfs::ProcError::Other(reason) => ProcError::Malformed {
                pid,
                path: path.to_path_buf(),
                reason,
            },
            procfs::ProcError::InternalError(e) => ProcError::Malformed {
                pid,
                path: path.to_path_buf(),
                reason: e.msg,
            },
        }
    }

    /// True when the process simply is not there (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProcError::NotFound { .. })
    }
}

/// Who a process is. `start_time` and `pid` together identify it across PID reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Arguments joined by single spaces; empty for kernel threads and zombies.
    pub cmdline: String,
    /// Real uid, the same id the kernel hooks report (`bpf_get_current_uid_gid`).
    pub uid: u32,
    /// Clock ticks after boot at which the process started (`stat` field 22).
    pub start_time: u64,
    /// The `stat` state letter: R, S, D, Z, T, t, X, I, ...
    pub state: char,
    /// `exe` link target; empty when unreadable (kernel threads, other users without
    /// CAP_SYS_PTRACE).
    pub exe: String,
    /// The cgroup v2 path (the `0::` line of `cgroup`); empty on v1-only systems.
    pub cgroup: String,
    /// Network namespace inode; 0 when unreadable.
    pub netns: u64,
}

/// The unified-hierarchy path from a `/proc/PID/cgroup` file (`0::/system.slice/x.service`).
pub fn parse_cgroup_v2(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Whether a pid still names a running process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Zombie,
    Gone,
}

fn pid_dir(root: &Path, pid: u32) -> PathBuf {
    root.join(pid.to_string())
}

fn read_file(pid: u32, path: &Path) -> Result<Vec<u8>, ProcError> {
    std::fs::read(path).map_err(|e| ProcError::from_io(pid, path, e))
}

/// Parses a `stat` line, refusing the shapes that would make procfs-core's parser panic.
pub(crate) fn parse_stat(pid: u32, path: &Path, bytes: &[u8]) -> Result<Stat, ProcError> {
    let malformed = |reason: &str| ProcError::Malformed {
        pid,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim();
    let open = line
        .find('(')
        .ok_or_else(|| malformed("no '(' before comm"))?;
    let close = line
        .rfind(')')
        .ok_or_else(|| malformed("no ')' after comm"))?;
    // procfs-core slices `[..open - 1]`, `[open + 1..close]` and `[close + 2..]`.
    if open < 2 || close < open || close + 2 > line.len() {
        return Err(malformed("comm is not enclosed as `PID (COMM) STATE ...`"));
    }
    if !line.is_char_boundary(open - 1) || !line.is_char_boundary(close + 2) {
        return Err(malformed("unexpected character around comm"));
    }
    Stat::from_read(line.as_bytes()).map_err(|e| ProcError::from_procfs(pid, path, e))
}

/// Joins NUL-separated arguments with spaces; empty arguments (trailing NUL) vanish.
pub(crate) fn parse_cmdline(bytes: &[u8]) -> String {
    bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_stat(root: &Path, pid: u32) -> Result<Stat, ProcError> {
    let path = pid_dir(root, pid).join("stat");
    let bytes = read_file(pid, &path)?;
    parse_stat(pid, &path, &bytes)
}

/// Reads the identity of `pid` from the proc mount at `root` (`/proc`, or a fixture tree).
pub fn read_process(root: &Path, pid: u32) -> Result<ProcessInfo, ProcError> {
    let dir = pid_dir(root, pid);
    let stat = read_stat(root, pid)?;

    let status_path = dir.join("status");
    let status_bytes = read_file(pid, &status_path)?;
    let status = Status::from_buf_read(status_bytes.as_slice())
        .map_err(|e| ProcError::from_procfs(pid, &status_path, e))?;

    let cmdline_path = dir.join("cmdline");
    let cmdline = parse_cmdline(&read_file(pid, &cmdline_path)?);

    // `comm` and the name in `stat` are the same 15-byte name; the file is preferred because it
    // needs no unescaping, the stat copy covers trees (and kernels) without it.
    let comm = match std::fs::read(dir.join("comm")) {
        Ok(b) => String::from_utf8_lossy(&b)
            .trim_end_matches('\n')
            .to_string(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => stat.comm.clone(),
        Err(e) => return Err(ProcError::from_io(pid, &dir.join("comm"), e)),
    };

    // Identity extras are best effort: a process we may not ptrace still has bytes to show.
    let exe = std::fs::read_link(dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cgroup = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|t| parse_cgroup_v2(&t).map(str::to_string))
        .unwrap_or_default();
    let netns = super::sockets::netns_inode(root, pid).unwrap_or(0);

    Ok(ProcessInfo {
        pid,
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        comm,
        cmdline,
        uid: status.ruid,
        start_time: stat.starttime,
        state: stat.state,
        exe,
        cgroup,
        netns,
    })
}

/// Whether `pid` runs, is a zombie, or is gone. A pid whose directory exists but whose `stat`
/// cannot be parsed counts as alive: declaring a live process dead would drop its sockets.
pub fn liveness(root: &Path, pid: u32) -> Liveness {
    match read_stat(root, pid) {
        Ok(stat) if matches!(stat.state, 'Z' | 'X') => Liveness::Zombie,
        Ok(_) => Liveness::Alive,
        Err(ProcError::NotFound { .. }) => Liveness::Gone,
        Err(e) => {
            log::debug!("liveness of pid {pid}: {e}");
            if pid_dir(root, pid).is_dir() {
                Liveness::Alive
            } else {
                Liveness::Gone
            }
        }
    }
}

/// Every pid (thread-group id) under `root`, ascending. Threads are not listed at the top level
/// of /proc, so each entry is a process.
pub fn all_pids(root: &Path) -> Vec<u32> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("listing processes in {}: {e}", root.display());
            return Vec::new();
        }
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

fn parse_pid_list(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Children from `task/*/children`, or `None` when the kernel does not provide those files
/// (CONFIG_PROC_CHILDREN off, as on the 6.18 kernel netmon is developed on).
fn children_from_task_files(root: &Path, pid: u32) -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir(pid_dir(root, pid).join("task")).ok()?;
    let mut found_any = false;
    let mut kids = Vec::new();
    for task in tasks.filter_map(|t| t.ok()) {
        // A child belongs to the thread that forked it, so the process's children are the union.
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => {
                found_any = true;
                kids.extend(parse_pid_list(&text));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::debug!("reading {}/children: {e}", task.path().display()),
        }
    }
    found_any.then(|| {
        kids.sort_unstable();
        kids.dedup();
        kids
    })
}

/// pid → children, from the ppid of every process (the fallback when `children` files are absent).
fn ppid_map(root: &Path) -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids(root) {
        match read_stat(root, pid) {
            Ok(stat) => {
                if let Ok(ppid) = u32::try_from(stat.ppid) {
                    map.entry(ppid).or_default().push(pid);
                }
            }
            Err(e) => log::debug!("ppid of pid {pid}: {e}"),
        }
    }
    map
}

/// Direct children of `pid`, ascending; empty when it has none or is gone.
pub fn children(root: &Path, pid: u32) -> Vec<u32> {
    if let Some(kids) = children_from_task_files(root, pid) {
        return kids;
    }
    ppid_map(root).remove(&pid).unwrap_or_default()
}

/// Children, grandchildren and so on of `pid` (not `pid` itself), ascending.
pub fn descendants(root: &Path, pid: u32) -> Vec<u32> {
    // Built at most once, on the first pid without `children` files.
    let mut by_ppid: Option<HashMap<u32, Vec<u32>>> = None;
    let mut seen: HashSet<u32> = HashSet::from([pid]);
    let mut queue = VecDeque::from([pid]);
    let mut out = Vec::new();
    while let Some(p) = queue.pop_front() {
        let kids = match children_from_task_files(root, p) {
            Some(k) => k,
            None => by_ppid
                .get_or_insert_with(|| ppid_map(root))
                .get(&p)
                .cloned()
                .unwrap_or_default(),
        };
        for k in kids {
            // `seen` also guards against cycles in a corrupt or racing tree.
            if seen.insert(k) {
                out.push(k);
                queue.push_back(k);
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAIL: &str = "1 100 100 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 777 12345678 300 \
                        18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0";

    #[test]
    fn stat_table() {
        let ok: &[(&str, &str, char)] = &[
            ("100 (python3) S ", "python3", 'S'),
            ("100 (a b) R ", "a b", 'R'),
            ("100 ((x)) Z ", "(x)", 'Z'),
            ("100 (x) (y) S ", "x) (y", 'S'),
            ("100 () S ", "", 'S'),
        ];
        for (head, comm, state) in ok {
            let line = format!("{head}{TAIL}\n");
            let s = parse_stat(100, Path::new("stat"), line.as_bytes()).unwrap();
            assert_eq!(
                (s.comm.as_str(), s.state, s.ppid, s.starttime),
                (*comm, *state, 1, 777)
            );
        }
        // Each of these would make procfs-core's parser slice out of bounds or panic.
        let bad: &[&[u8]] = &[
            b"",
            b"\n",
            b"(x) S 1",
            b"1 (x)",
            b"1 (x)\n",
            b"1 x) (y S 1",
            b"1 (x S 1",
            b"1 x) S 1",
            b"100 (python3) S",
            b"100 (python3) S 1 2",
            b"\xff\xfe (x) S 1",
            "1 (x)\u{e9}S 1".as_bytes(),
            "\u{e9}(x) S 1".as_bytes(),
        ];
        for b in bad {
            let e = parse_stat(100, Path::new("stat"), b).unwrap_err();
            assert!(
                matches!(e, ProcError::Malformed { pid: 100, .. }),
                "{b:?}: {e:?}"
            );
        }
    }

    #[test]
    fn stat_fuzz_never_panics() {
        let alphabet = b"() 0123456789SZx\n\xc3\xa9";
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let b: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i % 60)) as usize + i) % alphabet.len()])
                .collect();
            let _ = parse_stat(1, Path::new("stat"), &b);
        }
    }

    #[test]
    fn reads_this_process_from_the_real_proc() {
        let root = Path::new("/proc");
        let me = std::process::id();
        let p = read_process(root, me).unwrap();
        assert_eq!(p.pid, me);
        assert_eq!(p.ppid, std::os::unix::process::parent_id());
        // /proc/PID is owned by the euid, which equals the real uid in a test run.
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
        assert_eq!(p.uid, owner);
        assert!(!p.cmdline.is_empty() && p.start_time > 0);
        assert_eq!(liveness(root, me), Liveness::Alive);
        // Every process on the machine parses, or has exited meanwhile.
        for pid in all_pids(root) {
            match read_process(root, pid) {
                Ok(_) | Err(ProcError::NotFound { .. }) => {}
                Err(e) => panic!("pid {pid}: {e:?}"),
            }
        }
    }

    #[test]
    fn cmdline_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"\0", ""),
            (b"/bin/sh\0-c\0echo hi\0", "/bin/sh -c echo hi"),
            (b"no-trailing-nul", "no-trailing-nul"),
            (b"a\0\0b\0", "a b"),
            (b"bad\xff\0", "bad\u{fffd}"),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_cmdline(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn io_errors_are_sorted() {
        let p = Path::new("/proc/7/stat");
        let nf = ProcError::from_io(7, p, io::Error::from(io::ErrorKind::NotFound));
        assert!(matches!(nf, ProcError::NotFound { pid: 7 }));
        let esrch = ProcError::from_io(7, p, io::Error::from_raw_os_error(libc::ESRCH));
        assert!(esrch.is_not_found());
        let denied = ProcError::from_io(7, p, io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(denied.to_string(), "permission denied reading /proc/7/stat");
        let other = ProcError::from_io(7, p, io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(other.to_string(), "reading /proc/7/stat");
    }
}
