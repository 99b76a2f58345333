//! Fixture-tree tests (no root) and the start-up timing test (root).
//!
//! The tree under `netmon/tests/fixtures/proc/`:
//! - 1 systemd (no `children` files: ppid fallback), 2 kthreadd (kernel thread, empty cmdline)
//! - 100 python3 (uid 1000, two threads whose `children` files list 101 102 and 104), holding
//!   sockets 5000012345 (twice, dup'ed) and 5000012346; 101 curl (shares 5000012345, holds 5000012347); 102 a zombie;
//!   104 → 105 grandchild
//! - 200 sshd in netns 4026532999 (no `children` files) → 201 → 202
//! - 300 malformed stat, 301 comm `evil) (name`, 400 vanished mid-read (only stat left),
//!   500 ⇄ 501 a cycle; 999 does not exist; `self` and `uptime` are not pids
//!
//! Fixture socket inodes are above `u32::MAX` on purpose: real sockfs inodes are 32-bit (and
//! this machine's are around 27000), so a test that mixes the tree with a real dump can never
//! match a real socket by accident.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;
use crate::event::TcpState;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
}

#[test]
fn reads_a_normal_process() {
    let p = read_process(&fixture(), 100).unwrap();
    assert_eq!(
        p,
        ProcessInfo {
            pid: 100,
            ppid: 1,
            comm: "python3".to_string(),
            cmdline: "/usr/bin/python3 -m http.server".to_string(),
            uid: 1000,
            start_time: 5000,
            state: 'S',
            exe: String::new(),
            cgroup: String::new(),
            netns: 4026531840,
        }
    );
}

#[test]
fn cgroup_v2_line_is_the_unified_path() {
    let text = "12:cpuset:/\n0::/system.slice/nginx.service\n";
    assert_eq!(
        process::parse_cgroup_v2(text),
        Some("/system.slice/nginx.service")
    );
    assert_eq!(process::parse_cgroup_v2("3:memory:/x\n"), None);
}

#[test]
fn reads_utf8_arguments() {
    let p = read_process(&fixture(), 104).unwrap();
    assert_eq!(p.cmdline, "worker --name café");
    assert_eq!((p.ppid, p.start_time), (100, 5300));
}

#[test]
fn single_argument_with_spaces_stays_whole() {
    let p = read_process(&fixture(), 200).unwrap();
    assert_eq!(p.cmdline, "sshd: root@pts/0");
    assert_eq!((p.uid, p.comm.as_str()), (0, "sshd"));
}

#[test]
fn kernel_thread_has_empty_cmdline() {
    let p = read_process(&fixture(), 2).unwrap();
    assert_eq!(
        (p.comm.as_str(), p.cmdline.as_str(), p.ppid, p.state),
        ("kthreadd", "", 0, 'S')
    );
}

#[test]
fn zombie_reads_with_state_z() {
    let p = read_process(&fixture(), 102).unwrap();
    assert_eq!((p.state, p.cmdline.as_str(), p.ppid), ('Z', "", 100));
}

#[test]
fn comm_with_parentheses_comes_from_stat() {
    // 301 has no comm file, so the name comes from stat, which holds `(evil) (name)`.
    let p = read_process(&fixture(), 301).unwrap();
    assert_eq!((p.comm.as_str(), p.uid, p.state), ("evil) (name", 33, 'R'));
}

#[test]
fn missing_pid_is_not_found() {
    let e = read_process(&fixture(), 999).unwrap_err();
    assert!(matches!(e, ProcError::NotFound { pid: 999 }), "{e:?}");
    assert_eq!(e.to_string(), "process 999 not found");
}

#[test]
fn pid_vanishing_mid_read_is_not_found() {
    let e = read_process(&fixture(), 400).unwrap_err();
    assert!(matches!(e, ProcError::NotFound { pid: 400 }), "{e:?}");
}

#[test]
fn malformed_stat_is_an_error_not_a_panic() {
    let e = read_process(&fixture(), 300).unwrap_err();
    let ProcError::Malformed { pid, path, .. } = &e else {
        panic!("expected Malformed, got {e:?}");
    };
    assert_eq!(*pid, 300);
    assert!(path.ends_with("300/stat"), "{}", path.display());
    assert!(e.to_string().starts_with("malformed "), "{e}");
}

#[test]
fn liveness_of_each_kind() {
    let root = fixture();
    let cases = [
        (100, Liveness::Alive),
        (2, Liveness::Alive),
        (102, Liveness::Zombie),
        (999, Liveness::Gone),
        // The directory exists but stat cannot be parsed: not declared dead.
        (300, Liveness::Alive),
    ];
    for (pid, want) in cases {
        assert_eq!(liveness(&root, pid), want, "pid {pid}");
    }
}

#[test]
fn all_pids_lists_numeric_entries_only() {
    assert_eq!(
        all_pids(&fixture()),
        vec![
            1, 2, 100, 101, 102, 104, 105, 200, 201, 202, 300, 301, 400, 500, 501
        ]
    );
}

#[test]
fn all_pids_of_a_missing_root_is_empty() {
    assert!(all_pids(&fixture().join("nope")).is_empty());
}

#[test]
fn children_from_task_files_and_from_ppid_scan() {
    let root = fixture();
    let cases: &[(u32, &[u32])] = &[
        // Union of both threads' children files.
        (100, &[101, 102, 104]),
        // Empty children file: none, without a scan.
        (101, &[]),
        // No children files: ppid scan (300's stat is malformed, so it is left out).
        (1, &[100, 200, 301, 400]),
        (200, &[201]),
        (202, &[]),
        (999, &[]),
    ];
    for (pid, want) in cases {
        assert_eq!(children(&root, *pid), *want, "pid {pid}");
    }
}

#[test]
fn descendants_walk_the_tree() {
    let root = fixture();
    let cases: &[(u32, &[u32])] = &[
        (100, &[101, 102, 104, 105]),
        (200, &[201, 202]),
        (1, &[100, 101, 102, 104, 105, 200, 201, 202, 301, 400]),
        // A cycle ends instead of looping, and the start pid is not its own descendant.
        (500, &[501]),
        (999, &[]),
    ];
    for (pid, want) in cases {
        assert_eq!(descendants(&root, *pid), *want, "pid {pid}");
    }
}

#[test]
fn socket_inodes_skip_non_sockets_and_duplicates() {
    assert_eq!(
        socket_inodes(&fixture(), 100).unwrap(),
        vec![5000012345, 5000012346]
    );
    assert_eq!(
        socket_inodes(&fixture(), 101).unwrap(),
        vec![5000012345, 5000012347]
    );
    assert_eq!(socket_inodes(&fixture(), 1).unwrap(), vec![5000030000]);
}

#[test]
fn socket_inodes_of_vanished_or_fdless_pid_is_not_found() {
    for pid in [999, 400, 102] {
        let e = socket_inodes(&fixture(), pid).unwrap_err();
        assert!(e.is_not_found(), "pid {pid}: {e:?}");
    }
}

#[test]
fn scan_socket_owners_joins_shared_sockets() {
    let owners = scan_socket_owners(&fixture());
    let want: HashMap<u64, Vec<u32>> = [
        (5000012345, vec![100, 101]),
        (5000012346, vec![100]),
        (5000012347, vec![101]),
        (5000022222, vec![200]),
        (5000022223, vec![201]),
        (5000030000, vec![1]),
    ]
    .into_iter()
    .collect();
    assert_eq!(owners, want);
}

#[test]
fn netns_inode_from_link() {
    assert_eq!(netns_inode(&fixture(), 100).unwrap(), 4026531840);
    assert_eq!(netns_inode(&fixture(), 200).unwrap(), 4026532999);
    assert!(netns_inode(&fixture(), 999).unwrap_err().is_not_found());
    // 301 has no ns directory.
    assert!(netns_inode(&fixture(), 301).unwrap_err().is_not_found());
}

#[test]
fn process_event_from_fixture() {
    let src = ProcfsSource::new(fixture());
    assert_eq!(
        src.process_event(101),
        Some(Event::Process {
            pid: 101,
            ppid: 100,
            comm: "curl".to_string(),
            cmdline: "curl http://127.0.0.1:8000/".to_string(),
            uid: 1000,
            exe: "/usr/bin/curl".to_string(),
            cgroup: "/user.slice/user-1000.slice/session-3.scope".to_string(),
            netns: 4026531840,
            start_time: 5100,
        })
    );
    assert_eq!(src.process_event(999), None);
    assert_eq!(src.process_event(300), None);
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn diag(
    cookie: u64,
    inode: u64,
    proto: Proto,
    local: &str,
    remote: Option<&str>,
    state: TcpState,
) -> DiagSocket {
    DiagSocket {
        cookie,
        inode,
        uid: 1000,
        proto,
        local: addr(local),
        remote: remote.map(addr),
        state,
    }
}

#[test]
fn join_emits_process_owner_endpoints_state() {
    let root = fixture();
    let host = 4026531840;
    let sockets = vec![
        // Out of cookie order on purpose: output is ordered by cookie.
        NetnsSocket {
            netns: host,
            socket: diag(
                7,
                5000012346,
                Proto::Udp,
                "0.0.0.0:5353",
                None,
                TcpState::Close,
            ),
        },
        NetnsSocket {
            netns: host,
            socket: diag(
                5,
                5000012345,
                Proto::Tcp,
                "127.0.0.1:8000",
                None,
                TcpState::Listen,
            ),
        },
        // The same socket again, as if seen through a second netns: reported once.
        NetnsSocket {
            netns: host,
            socket: diag(
                5,
                5000012345,
                Proto::Tcp,
                "127.0.0.1:8000",
                None,
                TcpState::Listen,
            ),
        },
        // Time-wait: inode 0, no owner.
        NetnsSocket {
            netns: host,
            socket: diag(
                8,
                0,
                Proto::Tcp,
                "127.0.0.1:8000",
                Some("127.0.0.1:40000"),
                TcpState::TimeWait,
            ),
        },
        // An inode no process holds.
        NetnsSocket {
            netns: host,
            socket: diag(9, 55555, Proto::Tcp, "127.0.0.1:1", None, TcpState::Listen),
        },
    ];
    let owners = scan_socket_owners(&root);
    let events = join_events(&sockets, &owners, |pid| read_process(&root, pid).ok());

    let owner = |cookie, pid, comm: &str, ppid| Event::SocketOwner {
        cookie,
        pid,
        uid: 1000,
        comm: comm.to_string(),
        netns: host,
        origin: Origin::Procfs,
        ppid,
    };
    let want = vec![
        src_process(&root, 100),
        owner(5, 100, "python3", 1),
        src_process(&root, 101),
        owner(5, 101, "curl", 100),
        Event::SocketEndpoints {
            cookie: 5,
            proto: Proto::Tcp,
            local: addr("127.0.0.1:8000"),
            remote: None,
        },
        Event::SocketState {
            cookie: 5,
            state: TcpState::Listen,
        },
        owner(7, 100, "python3", 1),
        Event::SocketEndpoints {
            cookie: 7,
            proto: Proto::Udp,
            local: addr("0.0.0.0:5353"),
            remote: None,
        },
    ];
    assert_eq!(events, want);
}

fn src_process(root: &Path, pid: u32) -> Event {
    ProcfsSource::new(root).process_event(pid).unwrap()
}

#[test]
fn join_skips_socket_whose_owners_all_vanished() {
    let sockets = vec![NetnsSocket {
        netns: 1,
        socket: diag(
            3,
            5000022222,
            Proto::Tcp,
            "[::1]:22",
            Some("[::1]:50000"),
            TcpState::Established,
        ),
    }];
    let owners = HashMap::from([(5000022222, vec![200])]);
    assert!(join_events(&sockets, &owners, |_| None).is_empty());
}

#[test]
fn initial_events_on_a_fixture_tree_does_not_fail() {
    // The fixture's ns links point nowhere, so this exercises the fallback to the current netns;
    // the real sockets found there have inodes no fixture pid holds, so nothing is emitted.
    let events = ProcfsSource::new(fixture()).initial_events();
    assert!(events.is_empty(), "{events:?}");
}

/// Holds `n` loopback TCP connections (2n sockets plus a listener) in this process and times
/// the whole start-up path against the real /proc.
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn initial_events_timing() {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    const N: usize = 300;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap();
    let mut held = Vec::with_capacity(2 * N);
    for _ in 0..N {
        let c = TcpStream::connect(at).unwrap();
        let (s, _) = listener.accept().unwrap();
        held.push(c);
        held.push(s);
    }

    let src = ProcfsSource::default();
    let started = Instant::now();
    let events = src.initial_events();
    let took = started.elapsed();

    let me = std::process::id();
    let my_ns = netns_inode(Path::new(PROC_ROOT), me).unwrap();
    // Other tests run in this process too, so only the sockets held here are checked.
    let mine: HashMap<u64, u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::SocketOwner {
                cookie, pid, netns, ..
            } if *pid == me => Some((*cookie, *netns)),
            _ => None,
        })
        .collect();
    let want: HashSet<u64> = held
        .iter()
        .map(|s| rustix::net::sockopt::socket_cookie(s).unwrap())
        .collect();
    let attributed = want.iter().filter(|c| mine.get(c) == Some(&my_ns)).count();
    assert_eq!(attributed, want.len(), "sockets attributed in our netns");
    let processes = all_pids(Path::new(PROC_ROOT)).len();
    eprintln!(
        "initial_events: {} events, {} sockets held by this test (fd {} .. {}), {processes} \
         processes, {took:?}",
        events.len(),
        held.len() + 1,
        held.first().map_or(0, |s| s.as_raw_fd()),
        held.last().map_or(0, |s| s.as_raw_fd()),
    );
    assert!(took.as_secs() < 5, "start-up scan took {took:?}");
}

/// A socket living in a second netns, held by this process, found through the netns of a child
/// process that lives there (the only way /proc shows that namespace).
#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn initial_events_visit_every_netns() {
    use std::net::UdpSocket;
    use std::process::{Child, Command};

    struct Reaper(Child);
    impl Drop for Reaper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    // A thread enters a fresh netns, opens a socket there and starts `sleep` (which inherits the
    // thread's netns); the thread then ends, the socket and the child stay.
    let (socket, child) = std::thread::spawn(|| {
        // SAFETY: only NEWNET, on a thread that exits right after; no fd table is unshared.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
            .expect("unshare(CLONE_NEWNET)");
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        (socket, Reaper(child))
    })
    .join()
    .unwrap();

    let proc_root = Path::new(PROC_ROOT);
    let me = std::process::id();
    let my_ns = netns_inode(proc_root, me).unwrap();
    let child_ns = netns_inode(proc_root, child.0.id()).unwrap();
    assert_ne!(my_ns, child_ns);

    let cookie = rustix::net::sockopt::socket_cookie(&socket).unwrap();
    let events = ProcfsSource::default().initial_events();
    let owner = events.iter().find_map(|e| match e {
        Event::SocketOwner {
            cookie: c,
            pid,
            netns,
            ..
        } if *c == cookie => Some((*pid, *netns)),
        _ => None,
    });
    assert_eq!(owner, Some((me, child_ns)));
    let endpoints = events.iter().find_map(|e| match e {
        Event::SocketEndpoints {
            cookie: c, local, ..
        } if *c == cookie => Some(*local),
        _ => None,
    });
    assert_eq!(endpoints, Some(socket.local_addr().unwrap()));
    drop(child);
}
