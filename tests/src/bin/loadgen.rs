//! Load for `cargo xtask bench`: many short-lived TCP connections at a set rate with exact byte
//! counts per client process, or many idle sockets held open.
//!
//! ```text
//! loadgen serve PORT THREADS BYTES    accept loop; prints {"ready":PID,"port":P}; runs until killed
//! loadgen connect ADDR:PORT RATE SECS BYTES PROCS
//!                                     PROCS forked clients share RATE connections/s for SECS;
//!                                     prints {"clients":[{"pid","sent","received","connections"}],..}
//! loadgen idle SOCKETS                SOCKETS/2 loopback connections (both ends open, spread over
//!                                     processes below RLIMIT_NOFILE); prints
//!                                     {"ready":PID,"sockets":N,"holders":[PIDS]}, holds them until
//!                                     stdin closes
//! ```
//!
//! Each connection: the client writes BYTES, the server reads that many and answers one byte,
//! the client reads it and closes with SO_LINGER 0. Neither side sends a FIN (a FIN from either
//! end puts the client into TIME_WAIT once the other closes), and the reset leaves no TIME_WAIT,
//! so 20k connections/s do not run out of ports even where TIME_WAIT reuse is off (veth). Every count is what
//! the syscalls returned. A watchdog ends the process after 180 s whatever happens.
use std::{
    io::{BufRead, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::exit,
    time::{Duration, Instant},
};

fn usage() -> ! {
    eprintln!(
        "usage: loadgen serve PORT THREADS BYTES | connect ADDR:PORT RATE SECS BYTES PROCS | idle SOCKETS"
    );
    exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| usage())
}

fn main() {
    unsafe { libc::alarm(180) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(arg(&args, 1), arg(&args, 2), arg(&args, 3)),
        Some("connect") => connect(
            arg(&args, 1),
            arg(&args, 2),
            arg(&args, 3),
            arg(&args, 4),
            arg(&args, 5),
        ),
        Some("idle") => idle(arg(&args, 1)),
        _ => usage(),
    }
}

fn serve(port: u16, threads: usize, bytes: u64) {
    let listener = TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| {
        eprintln!("loadgen: binding port {port}: {e}");
        exit(1)
    });
    let port = listener.local_addr().unwrap().port();
    println!("{{\"ready\":{},\"port\":{port}}}", std::process::id());
    std::io::stdout().flush().unwrap();
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let l = listener.try_clone().unwrap();
            std::thread::spawn(move || {
                for s in l.incoming().map_while(Result::ok) {
                    answer(s, bytes);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn answer(mut s: TcpStream, bytes: u64) {
    let mut buf = [0u8; 64 * 1024];
    let mut got = 0u64;
    while got < bytes {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got += n as u64,
        }
    }
    let _ = s.write_all(b"k");
    // Wait for the client's reset, so the client is the one to end the connection.
    let _ = s.read(&mut buf);
}

/// One client's ground truth.
#[derive(Default)]
struct Counts {
    sent: u64,
    received: u64,
    connections: u64,
    failed: u64,
}

fn one_connection(addr: SocketAddr, payload: &[u8], c: &mut Counts) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        c.failed += 1;
        return;
    };
    let mut sent = 0usize;
    while sent < payload.len() {
        match s.write(&payload[sent..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    c.sent += sent as u64;
    let mut ack = [0u8; 1];
    if let Ok(n) = s.read(&mut ack) {
        c.received += n as u64;
    }
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    c.connections += 1;
}

fn client(addr: SocketAddr, rate: f64, secs: f64, bytes: usize) -> Counts {
    let payload = vec![b'x'; bytes];
    let mut c = Counts::default();
    let start = Instant::now();
    loop {
        let t = start.elapsed().as_secs_f64();
        if t >= secs {
            break;
        }
        // Paced by a schedule, not a sleep per connection: a slow moment is caught up after.
        if (c.connections + c.failed) as f64 >= t * rate {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        one_connection(addr, &payload, &mut c);
    }
    c
}

fn connect(addr: SocketAddr, rate: f64, secs: f64, bytes: usize, procs: usize) {
    let procs = procs.max(1);
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..procs {
        let mut fds = [0i32; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        // SAFETY: loadgen is single-threaded here; the child only computes and writes a line.
        match unsafe { libc::fork() } {
            -1 => panic!("fork failed"),
            0 => {
                unsafe { libc::close(fds[0]) };
                let c = client(addr, rate / procs as f64, secs, bytes);
                let line = format!(
                    "{} {} {} {} {}\n",
                    std::process::id(),
                    c.sent,
                    c.received,
                    c.connections,
                    c.failed
                );
                unsafe {
                    libc::write(fds[1], line.as_ptr().cast(), line.len());
                    libc::_exit(0)
                }
            }
            pid => {
                unsafe { libc::close(fds[1]) };
                children.push((pid, fds[0]));
            }
        }
    }
    let mut clients = Vec::new();
    let (mut total, mut failed) = (0u64, 0u64);
    for (pid, fd) in children {
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut line = String::new();
        let _ = f.read_to_string(&mut line);
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() != 5 {
            eprintln!("loadgen: client {pid} reported nothing");
            exit(1);
        }
        total += v[3];
        failed += v[4];
        clients.push(format!(
            "{{\"pid\":{},\"sent\":{},\"received\":{},\"connections\":{}}}",
            v[0], v[1], v[2], v[3]
        ));
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"clients\":[{}],\"connections\":{total},\"failed\":{failed},\"elapsed\":{elapsed:.3},\"rate\":{:.1}}}",
        clients.join(","),
        total as f64 / elapsed
    );
}

/// Raises the soft RLIMIT_NOFILE up to the hard limit; returns the limit now in force. Without
/// CAP_SYS_RESOURCE (as in this project's containers) the hard limit cannot be raised, so idle
/// sockets are spread over several processes instead.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let want = lim.rlim_max.min(1 << 20);
    lim.rlim_cur = want;
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    want
}

/// `sockets` open sockets (half client, half accepted) in this process.
fn hold(sockets: usize) -> Vec<TcpStream> {
    let conns = sockets.div_ceil(2);
    // One listener per 20,000 connections: each (address, port) pair offers the client side only
    // the ephemeral port range (about 28,000 ports).
    let listeners: Vec<TcpListener> = (0..conns.div_ceil(20_000).max(1))
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a listener"))
        .collect();
    let mut held = Vec::with_capacity(conns * 2);
    for i in 0..conns {
        let l = &listeners[i % listeners.len()];
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap_or_else(|e| {
            eprintln!("loadgen: connection {i}: {e}");
            exit(1)
        });
        let (s, _) = l.accept().expect("accept");
        held.push(c);
        held.push(s);
    }
    held
}

fn idle(sockets: usize) {
    let per_proc = (raise_nofile().saturating_sub(64) as usize).clamp(2, 1 << 20) & !1;
    let procs = sockets.div_ceil(per_proc);
    let mut children = Vec::new();
    let mut left = sockets;
    for _ in 0..procs {
        let share = left.min(per_proc);
        left -= share;
        let mut fds = [0i32; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        // SAFETY: single-threaded; the child never returns.
        match unsafe { libc::fork() } {
            -1 => panic!("fork failed"),
            0 => {
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                let held = hold(share);
                let line = format!("{}\n", held.len());
                unsafe {
                    libc::write(fds[1], line.as_ptr().cast(), line.len());
                    libc::pause();
                    libc::_exit(0)
                }
            }
            pid => {
                unsafe { libc::close(fds[1]) };
                children.push((pid, fds[0]));
            }
        }
    }
    let mut total = 0usize;
    let mut pids = Vec::new();
    for (pid, fd) in &children {
        let mut buf = [0u8; 32];
        let n = unsafe { libc::read(*fd, buf.as_mut_ptr().cast(), buf.len()) };
        let got: usize = std::str::from_utf8(&buf[..n.max(0) as usize])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                eprintln!("loadgen: holder {pid} failed");
                exit(1)
            });
        total += got;
        pids.push(pid.to_string());
    }
    println!(
        "{{\"ready\":{},\"sockets\":{total},\"holders\":[{}]}}",
        std::process::id(),
        pids.join(",")
    );
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    for (pid, _) in children {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}
