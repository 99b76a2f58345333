//! Load for `cargo xtask bench`: many short-lived TCP connections at a set rate with exact byte
//! counts per client process, or many idle sockets held open.
//!
//! ```text
//! loadgen serve PORT THREADS BYTES [WATCHDOG_SECS]
//!                                     accept loop; prints {"ready":PID,"port":P}; runs until
//!                                     killed; a line `report` on stdin makes it print
//!                                     {"server":PID,"sent","received","connections"} and exit
//! loadgen connect ADDR:PORT RATE SECS BYTES PROCS
//!                                     PROCS forked clients share RATE connections/s for SECS;
//!                                     prints {"clients":[{"pid","sent","received","connections"}],
//!                                     "latency_us":{"p50","p99","samples"},..}
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
//! the syscalls returned. A connection's latency runs from the start of connect() to the answer
//! byte read; each client keeps a log-scale histogram and the parent merges them bucket by
//! bucket, so the percentiles are those of all connections (not a median of medians). A watchdog
//! ends the process whatever happens: after 180 s, or SECS + 120 s for `connect`, or
//! WATCHDOG_SECS for `serve`.
use std::{
    io::{BufRead, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::exit,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

fn usage() -> ! {
    eprintln!(
        "usage: loadgen serve PORT THREADS BYTES [WATCHDOG_SECS] | connect ADDR:PORT RATE SECS BYTES PROCS | idle SOCKETS"
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
        Some("serve") => {
            if args.len() > 4 {
                unsafe { libc::alarm(arg(&args, 4)) };
            }
            serve(arg(&args, 1), arg(&args, 2), arg(&args, 3))
        }
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

/// What the server's syscalls moved, for `report`.
static SERVER_SENT: AtomicU64 = AtomicU64::new(0);
static SERVER_RECEIVED: AtomicU64 = AtomicU64::new(0);
static SERVER_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

fn serve(port: u16, threads: usize, bytes: u64) {
    let listener = TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| {
        eprintln!("loadgen: binding port {port}: {e}");
        exit(1)
    });
    let port = listener.local_addr().unwrap().port();
    println!("{{\"ready\":{},\"port\":{port}}}", std::process::id());
    std::io::stdout().flush().unwrap();
    // Only an explicit `report` ends the server: a closed or /dev/null stdin must not, since
    // callers that never ask for a report kill the server instead.
    std::thread::spawn(|| {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if line.trim() == "report" {
                println!(
                    "{{\"server\":{},\"sent\":{},\"received\":{},\"connections\":{}}}",
                    std::process::id(),
                    SERVER_SENT.load(Ordering::SeqCst),
                    SERVER_RECEIVED.load(Ordering::SeqCst),
                    SERVER_CONNECTIONS.load(Ordering::SeqCst)
                );
                std::io::stdout().flush().unwrap();
                exit(0);
            }
        }
    });
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
    SERVER_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
    while got < bytes {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                got += n as u64;
                SERVER_RECEIVED.fetch_add(n as u64, Ordering::SeqCst);
            }
        }
    }
    if s.write_all(b"k").is_ok() {
        SERVER_SENT.fetch_add(1, Ordering::SeqCst);
    }
    // Wait for the client's reset, so the client is the one to end the connection. Anything
    // read here still counts: the ground truth is every byte a syscall returned.
    if let Ok(n) = s.read(&mut buf) {
        SERVER_RECEIVED.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// Latencies in nanoseconds, log-scale: values below 64 exactly, above that 64 buckets per
/// power of two (at most 1.6% wide), so a percentile is within 1.6% whatever the spread, in a
/// fixed 30 KB no matter how many connections.
#[derive(Clone)]
struct Histogram(Vec<u64>);

const SUB: u32 = 6;
const BUCKETS: usize = ((64 - SUB as usize) + 1) << SUB;

impl Histogram {
    fn new() -> Self {
        Histogram(vec![0; BUCKETS])
    }

    fn index(ns: u64) -> usize {
        if ns < 1 << SUB {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros();
        let mantissa = (ns >> (exp - SUB)) & ((1 << SUB) - 1);
        (((exp - SUB + 1) << SUB) as u64 + mantissa) as usize
    }

    /// The middle of bucket `i` (its values are [low, low + width)).
    fn value(i: usize) -> f64 {
        if i < 1 << SUB {
            return i as f64;
        }
        let exp = (i >> SUB) as u32 + SUB - 1;
        let mantissa = (i & ((1 << SUB) - 1)) as u64;
        let width = 1u64 << (exp - SUB);
        ((((1u64 << SUB) + mantissa) << (exp - SUB)) as f64) + (width as f64 - 1.0) / 2.0
    }

    fn record(&mut self, ns: u64) {
        self.0[Self::index(ns)] += 1;
    }

    fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `i:n` pairs of the non-empty buckets, or `-` (one whitespace-free field for the pipe).
    fn encode(&self) -> String {
        let pairs: Vec<String> = self
            .0
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(i, n)| format!("{i}:{n}"))
            .collect();
        if pairs.is_empty() {
            "-".into()
        } else {
            pairs.join(",")
        }
    }

    fn merge_encoded(&mut self, s: &str) -> Option<()> {
        if s == "-" {
            return Some(());
        }
        for pair in s.split(',') {
            let (i, n) = pair.split_once(':')?;
            let i: usize = i.parse().ok()?;
            *self.0.get_mut(i)? += n.parse::<u64>().ok()?;
        }
        Some(())
    }

    /// The value below which a share `q` of the samples lie (nearest rank).
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        None
    }
}

/// One client's ground truth.
struct Counts {
    sent: u64,
    received: u64,
    connections: u64,
    failed: u64,
    latency: Histogram,
}

fn one_connection(addr: SocketAddr, payload: &[u8], c: &mut Counts) {
    let start = Instant::now();
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
        // Only a connection that got its answer has a latency; the rest would look fast.
        if n == 1 {
            c.latency.record(start.elapsed().as_nanos() as u64);
        }
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
    let mut c = Counts {
        sent: 0,
        received: 0,
        connections: 0,
        failed: 0,
        latency: Histogram::new(),
    };
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
    unsafe { libc::alarm((secs.max(0.0) as u32).saturating_add(120)) };
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
                // The watchdog alarm is not inherited across fork: if the parent is killed
                // (the benchmark failed or was stopped), the clients end with it.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    libc::close(fds[0]);
                }
                let c = client(addr, rate / procs as f64, secs, bytes);
                let line = format!(
                    "{} {} {} {} {} {}\n",
                    std::process::id(),
                    c.sent,
                    c.received,
                    c.connections,
                    c.failed,
                    c.latency.encode()
                );
                // The histogram makes the line longer than PIPE_BUF: loop until all is written.
                let mut rest = line.as_bytes();
                while !rest.is_empty() {
                    let n = unsafe { libc::write(fds[1], rest.as_ptr().cast(), rest.len()) };
                    if n <= 0 {
                        break;
                    }
                    rest = &rest[n as usize..];
                }
                unsafe { libc::_exit(0) }
            }
            pid => {
                unsafe { libc::close(fds[1]) };
                children.push((pid, fds[0]));
            }
        }
    }
    let mut clients = Vec::new();
    let (mut total, mut failed) = (0u64, 0u64);
    let mut latency = Histogram::new();
    for (pid, fd) in children {
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut line = String::new();
        let _ = f.read_to_string(&mut line);
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let v: Vec<u64> = fields
            .iter()
            .take(5)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() != 5
            || fields
                .get(5)
                .and_then(|h| latency.merge_encoded(h))
                .is_none()
        {
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
    let us = |q: f64| {
        latency
            .quantile(q)
            .map_or("null".to_string(), |ns| format!("{:.1}", ns / 1000.0))
    };
    println!(
        "{{\"clients\":[{}],\"connections\":{total},\"failed\":{failed},\"elapsed\":{elapsed:.3},\"rate\":{:.1},\"latency_us\":{{\"p50\":{},\"p99\":{},\"samples\":{}}}}}",
        clients.join(","),
        total as f64 / elapsed,
        us(0.5),
        us(0.99),
        latency.count()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_narrow() {
        let mut last = 0;
        for ns in 0..5000 {
            let i = Histogram::index(ns);
            assert!(i >= last, "{ns}");
            last = i;
        }
        for ns in (0..5000)
            .chain((1..40).map(|e| (1u64 << e) + 7))
            .chain([u64::MAX])
        {
            let i = Histogram::index(ns);
            assert!(i < BUCKETS, "{ns} -> {i}");
            let mid = Histogram::value(i);
            assert!(
                (mid - ns as f64).abs() <= ns as f64 / 64.0 + 0.5,
                "{ns} -> {mid}"
            );
        }
    }

    #[test]
    fn merged_percentiles_are_of_all_samples_not_medians_of_medians() {
        // One client: 3 fast connections; the other: 2 slow ones. The median of the five is
        // fast (10 µs); the median of the two medians would be 55 µs.
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        for _ in 0..3 {
            a.record(10_000);
        }
        for _ in 0..2 {
            b.record(100_000);
        }
        let mut all = Histogram::new();
        all.merge_encoded(&a.encode()).unwrap();
        all.merge_encoded(&b.encode()).unwrap();
        all.merge_encoded(&Histogram::new().encode()).unwrap();
        assert_eq!(all.count(), 5);
        let p50 = all.quantile(0.5).unwrap();
        assert!((p50 - 10_000.0).abs() < 10_000.0 / 64.0, "{p50}");
        let p99 = all.quantile(0.99).unwrap();
        assert!((p99 - 100_000.0).abs() < 100_000.0 / 64.0, "{p99}");
        assert!(all.merge_encoded("7:x").is_none());
    }
}
