//! Ground truth for netmon's end-to-end tests: moves exactly the bytes it is told to over
//! loopback, between processes it forks, and prints one JSON line saying which pid moved what
//! (counted from the syscalls' return values). `listen` and `connect` are the two ends of one
//! connection between namespaces, one process each.
//!
//! Protocol with the test: print `{"ready":PID}`, wait for a line on stdin (so netmon can
//! attach first), do the work, print the result line, exit. It kills itself after 60 s.
use std::{
    io::{BufRead, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::exit,
    time::Duration,
};

fn usage() -> ! {
    eprintln!(
        "usage: trafficgen tcp FAMILY SEND RECV | udp FAMILY connected|unconnected SEND DGRAM RECV | \
         children COUNT BYTES | shared PARENT_BYTES CHILD_BYTES | preconnected SEND | sleep SECS | \
         swarm COUNT BYTES | steady SECS CHUNK | churn SECS GAP_MS BYTES | reset SEND | hold SEND | idle COUNT | listen ADDR PORT SEND | \
         connect ADDR PORT SEND | udp-fanout PEERS"
    );
    exit(2)
}

fn num(s: Option<&String>) -> u64 {
    s.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())
}

fn loopback(family: u64) -> SocketAddr {
    match family {
        4 => "127.0.0.1:0".parse().unwrap(),
        6 => "[::1]:0".parse().unwrap(),
        _ => usage(),
    }
}

/// fork(2); the child runs `f` and exits with its status, never returning.
fn fork(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: trafficgen is single-threaded whenever it forks.
    match unsafe { libc::fork() } {
        -1 => panic!("fork failed"),
        0 => {
            let code = f();
            // _exit: no atexit handlers or buffered output of the parent run twice.
            unsafe { libc::_exit(code) }
        }
        pid => pid,
    }
}

fn wait(pid: i32) -> i32 {
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

/// Reads until `want` bytes arrived or the peer closed; returns what arrived.
fn read_exact_count(s: &mut impl Read, want: u64) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    got
}

/// Writes exactly `n` bytes, counting what `write` returned.
fn write_count(s: &mut impl Write, n: u64) -> u64 {
    let buf = vec![b'x'; 64 * 1024];
    let mut sent = 0u64;
    while sent < n {
        let chunk = (n - sent).min(buf.len() as u64) as usize;
        match s.write(&buf[..chunk]) {
            Ok(0) | Err(_) => break,
            Ok(k) => sent += k as u64,
        }
    }
    sent
}

/// A pipe a child reports its count through.
fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    unsafe { libc::pipe(fds.as_mut_ptr()) };
    (fds[0], fds[1])
}

fn report(fd: i32, v: u64) {
    let b = v.to_le_bytes();
    unsafe { libc::write(fd, b.as_ptr().cast(), 8) };
}

fn collect(fd: i32) -> u64 {
    let mut b = [0u8; 8];
    let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 8) };
    if n == 8 { u64::from_le_bytes(b) } else { 0 }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    unsafe { libc::alarm(60) };
    // `preconnected` opens its connection before saying ready, i.e. before netmon starts.
    let pre = (args.first().map(String::as_str) == Some("preconnected")).then(preconnect);
    // `listen` binds before saying ready, so a client started after it finds the port open.
    let bound = (args.first().map(String::as_str) == Some("listen")).then(|| bind(&args));
    println!("{{\"ready\":{}}}", std::process::id());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let result = match args.first().map(String::as_str) {
        Some("tcp") => tcp(num(args.get(1)), num(args.get(2)), num(args.get(3))),
        Some("udp") => udp(
            num(args.get(1)),
            args.get(2).map(String::as_str) == Some("connected"),
            num(args.get(3)),
            num(args.get(4)),
            num(args.get(5)),
        ),
        Some("udp-fanout") => udp_fanout(num(args.get(1))),
        Some("children") => children(num(args.get(1)), num(args.get(2))),
        Some("shared") => shared(num(args.get(1)), num(args.get(2))),
        Some("preconnected") => match pre {
            Some((c, server, rd)) => preconnected(c, server, rd, num(args.get(1))),
            None => usage(),
        },
        Some("swarm") => swarm(num(args.get(1)), num(args.get(2))),
        Some("steady") => steady(num(args.get(1)), num(args.get(2))),
        Some("churn") => churn(num(args.get(1)), num(args.get(2)), num(args.get(3))),
        Some("reset") => reset(num(args.get(1))),
        Some("hold") => hold(num(args.get(1))),
        Some("idle") => idle(num(args.get(1))),
        Some("sleep") => {
            std::thread::sleep(Duration::from_secs(num(args.get(1))));
            format!("{{\"pid\":{}}}", std::process::id())
        }
        Some("listen") => match bound {
            Some(l) => listen(l, num(args.get(3))),
            None => usage(),
        },
        Some("connect") => connect(addr(&args), num(args.get(3))),
        _ => usage(),
    };
    println!("{result}");
    // A swarm stays alive until told, so a netmon watching its pid keeps serving while the
    // test reads the endpoint.
    if args.first().map(String::as_str) == Some("swarm") {
        std::io::stdout().flush().unwrap();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}

/// The parent serves: receives `send` bytes from a forked client, answers with `recv`.
fn tcp(family: u64, send: u64, recv: u64) -> String {
    let listener = TcpListener::bind(loopback(family)).unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let client = fork(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let sent = write_count(&mut c, send);
        let got = read_exact_count(&mut c, recv);
        report(wr, sent);
        report(wr, got);
        0
    });
    let (mut s, _) = listener.accept().unwrap();
    let server_got = read_exact_count(&mut s, send);
    let server_sent = write_count(&mut s, recv);
    drop(s);
    wait(client);
    let (client_sent, client_got) = (collect(rd), collect(rd));
    format!(
        "{{\"server_pid\":{},\"client_pid\":{client},\"client_sent\":{client_sent},\"client_received\":{client_got},\"server_sent\":{server_sent},\"server_received\":{server_got}}}",
        std::process::id()
    )
}

/// The parent receives datagrams from a forked sender and answers each with one of its own
/// until `recv` bytes went back. Sizes stay far below the socket buffers so loopback drops
/// nothing; what each side's syscalls returned is reported either way.
fn udp(family: u64, connected: bool, send: u64, dgram: u64, recv: u64) -> String {
    let server = UdpSocket::bind(loopback(family)).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (rd, wr) = pipe();
    let dgram = dgram.max(1) as usize;
    let client = fork(move || {
        let c = UdpSocket::bind(loopback(family)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if connected {
            c.connect(addr).unwrap();
        }
        let buf = vec![b'u'; dgram];
        let (mut sent, mut got) = (0u64, 0u64);
        let mut rbuf = vec![0u8; 65536];
        while sent < send {
            let n = (send - sent).min(dgram as u64) as usize;
            let r = if connected {
                c.send(&buf[..n])
            } else {
                c.send_to(&buf[..n], addr)
            };
            sent += r.unwrap_or(0) as u64;
            // Lock-step: every datagram is answered (by an empty one once `recv` bytes went
            // back), so no socket buffer ever overflows and loopback drops nothing.
            let r = if connected {
                c.recv(&mut rbuf)
            } else {
                c.recv_from(&mut rbuf).map(|(n, _)| n)
            };
            got += r.unwrap_or(0) as u64;
        }
        while got < recv {
            match c.recv(&mut rbuf) {
                Ok(n) => got += n as u64,
                Err(_) => break,
            }
        }
        report(wr, sent);
        report(wr, got);
        0
    });
    let (mut got, mut sent) = (0u64, 0u64);
    let mut rbuf = vec![0u8; 65536];
    let reply = vec![b'r'; dgram];
    while got < send {
        let Ok((n, peer)) = server.recv_from(&mut rbuf) else {
            break;
        };
        got += n as u64;
        // Answer every datagram; the last answer carries whatever is left of `recv`, and an
        // empty datagram (0 payload bytes) keeps the lock-step once nothing is left.
        let left = (recv - sent) as usize;
        let n = if got >= send { left } else { left.min(dgram) };
        if n == 0 {
            let _ = server.send_to(&[], peer);
        }
        let mut off = 0;
        while off < n {
            let k = (n - off).min(dgram);
            sent += server.send_to(&reply[..k], peer).unwrap_or(0) as u64;
            off += k;
        }
    }
    wait(client);
    let (client_sent, client_got) = (collect(rd), collect(rd));
    format!(
        "{{\"server_pid\":{},\"client_pid\":{client},\"client_sent\":{client_sent},\"client_received\":{client_got},\"server_sent\":{sent},\"server_received\":{got}}}",
        std::process::id()
    )
}

/// One unconnected UDP socket on 127.0.0.1 exchanges datagrams with `peers` sockets, each on
/// its own loopback address (127.0.0.2, .3, ...): to peer i it sends 1,000 × (i + 1) bytes in
/// 100-byte datagrams and gets 700 × (i + 1) back, in lock-step so nothing is dropped. The
/// truth: the hub's port, and per peer its port, what the hub's send_to to it returned and
/// what the hub's recv_from from it returned.
fn udp_fanout(peers: u64) -> String {
    let hub = UdpSocket::bind("127.0.0.1:0").unwrap();
    hub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let hub_addr = hub.local_addr().unwrap();
    let socks: Vec<UdpSocket> = (0..peers)
        .map(|i| {
            let s = UdpSocket::bind(format!("127.0.0.{}:0", i + 2)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    let (mut ports, mut to, mut from) = (Vec::new(), Vec::new(), Vec::new());
    let mut rbuf = vec![0u8; 65536];
    for (i, p) in socks.iter().enumerate() {
        let addr = p.local_addr().unwrap();
        let (send, back) = (1000 * (i as u64 + 1), 700 * (i as u64 + 1));
        let (mut sent, mut got) = (0u64, 0u64);
        while sent < send || got < back {
            if sent < send {
                let n = (send - sent).min(100) as usize;
                sent += hub.send_to(&vec![b'h'; n], addr).unwrap_or(0) as u64;
                let _ = p.recv_from(&mut rbuf);
            }
            if got < back {
                let n = (back - got).min(100) as usize;
                let _ = p.send_to(&vec![b'p'; n], hub_addr);
                if let Ok((k, _)) = hub.recv_from(&mut rbuf) {
                    got += k as u64;
                }
            }
        }
        ports.push(addr.port().to_string());
        to.push(sent.to_string());
        from.push(got.to_string());
    }
    format!(
        "{{\"pid\":{},\"hub_port\":{},\"peer_ports\":[{}],\"sent_to\":[{}],\"received_from\":[{}]}}",
        std::process::id(),
        hub_addr.port(),
        ports.join(","),
        to.join(","),
        from.join(",")
    )
}

/// `count` short-lived children, each connecting, sending `bytes` and exiting at once; a
/// forked server process receives everything.
fn children(count: u64, bytes: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let server = fork(move || {
        let mut total = 0;
        for _ in 0..count {
            let Ok((mut s, _)) = listener.accept() else {
                break;
            };
            total += read_exact_count(&mut s, bytes);
        }
        report(wr, total);
        0
    });
    let mut pids = Vec::new();
    for _ in 0..count {
        pids.push(fork(move || {
            let Ok(mut c) = TcpStream::connect(addr) else {
                return 1;
            };
            if write_count(&mut c, bytes) == bytes {
                0
            } else {
                1
            }
        }));
        // Keep a handful in flight, as a busy client would.
        if pids.len() % 8 == 0 {
            for &p in &pids[pids.len() - 8..] {
                wait(p);
            }
        }
    }
    for &p in &pids[pids.len() - pids.len() % 8..] {
        wait(p);
    }
    wait(server);
    let received = collect(rd);
    let list: Vec<String> = pids.iter().map(i32::to_string).collect();
    format!(
        "{{\"parent_pid\":{},\"server_pid\":{server},\"children\":[{}],\"bytes_each\":{bytes},\"server_received\":{received}}}",
        std::process::id(),
        list.join(",")
    )
}

/// A connection (and its forked server) set up before netmon starts.
fn preconnect() -> (TcpStream, i32, i32) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let server = fork(move || {
        let (mut s, _) = listener.accept().unwrap();
        report(wr, read_exact_count(&mut s, u64::MAX));
        0
    });
    (TcpStream::connect(addr).unwrap(), server, rd)
}

fn preconnected(mut c: TcpStream, server: i32, rd: i32, send: u64) -> String {
    let sent = write_count(&mut c, send);
    drop(c);
    wait(server);
    format!(
        "{{\"client_pid\":{},\"server_pid\":{server},\"client_sent\":{sent},\"server_received\":{}}}",
        std::process::id(),
        collect(rd)
    )
}

/// One connected socket, used by the parent and by a forked child.
fn shared(parent_bytes: u64, child_bytes: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let server = fork(move || {
        let (mut s, _) = listener.accept().unwrap();
        report(wr, read_exact_count(&mut s, parent_bytes + child_bytes));
        0
    });
    let mut c = TcpStream::connect(addr).unwrap();
    let mut cc = c.try_clone().unwrap();
    let (crd, cwr) = pipe();
    let child = fork(move || {
        report(cwr, write_count(&mut cc, child_bytes));
        0
    });
    wait(child);
    let parent_sent = write_count(&mut c, parent_bytes);
    drop(c);
    wait(server);
    format!(
        "{{\"parent_pid\":{},\"child_pid\":{child},\"server_pid\":{server},\"parent_sent\":{parent_sent},\"child_sent\":{},\"server_received\":{}}}",
        std::process::id(),
        collect(crd),
        collect(rd)
    )
}

/// `count` short-lived children (10,000 and more: a bigger alarm than the other modes), each
/// connecting, sending `bytes` and exiting; a forked server receives everything. Each child's
/// exit status says whether `write` returned all its bytes, so the total sent is counted from
/// the syscalls without a pipe that 10,000 reports would fill.
fn swarm(count: u64, bytes: u64) -> String {
    unsafe { libc::alarm(300) };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let server = fork(move || {
        let mut total = 0;
        for _ in 0..count {
            let Ok((mut s, _)) = listener.accept() else {
                break;
            };
            total += read_exact_count(&mut s, bytes);
        }
        report(wr, total);
        0
    });
    let mut complete = 0u64;
    let mut batch = Vec::with_capacity(8);
    for i in 0..count {
        batch.push(fork(move || {
            let Ok(mut c) = TcpStream::connect(addr) else {
                return 1;
            };
            if write_count(&mut c, bytes) == bytes {
                0
            } else {
                1
            }
        }));
        if batch.len() == 8 || i + 1 == count {
            for p in batch.drain(..) {
                let status = wait(p);
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                    complete += 1;
                }
            }
        }
    }
    wait(server);
    format!(
        "{{\"parent_pid\":{},\"server_pid\":{server},\"children\":{count},\"bytes_each\":{bytes},\"children_sent\":{},\"server_received\":{}}}",
        std::process::id(),
        complete * bytes,
        collect(rd)
    )
}

/// A forked client sends `chunk` bytes every 10 ms for `secs` seconds to the parent: traffic
/// that keeps flowing while a test does something else.
fn steady(secs: u64, chunk: u64) -> String {
    unsafe { libc::alarm(secs as u32 + 60) };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let client = fork(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        let mut sent = 0;
        while std::time::Instant::now() < end {
            sent += write_count(&mut c, chunk);
            std::thread::sleep(Duration::from_millis(10));
        }
        report(wr, sent);
        0
    });
    let (mut s, _) = listener.accept().unwrap();
    let got = read_exact_count(&mut s, u64::MAX);
    wait(client);
    format!(
        "{{\"server_pid\":{},\"client_pid\":{client},\"client_sent\":{},\"server_received\":{got}}}",
        std::process::id(),
        collect(rd)
    )
}

/// A forked client opens a connection to the parent every `gap_ms` for `secs` seconds, sends
/// `bytes` on it and closes it: many short flow records over a stretch of time (a test cuts a
/// link meanwhile). Counts what each side's calls returned.
fn churn(secs: u64, gap_ms: u64, bytes: u64) -> String {
    unsafe { libc::alarm(secs as u32 + 60) };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let client = fork(move || {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        let (mut sent, mut conns) = (0, 0);
        while std::time::Instant::now() < end {
            if let Ok(mut c) = TcpStream::connect(addr) {
                sent += write_count(&mut c, bytes);
                conns += 1;
            }
            std::thread::sleep(Duration::from_millis(gap_ms));
        }
        report(wr, sent);
        report(wr, conns);
        0
    });
    listener.set_nonblocking(true).unwrap();
    let (mut got, mut accepted) = (0, 0);
    let mut client_done = false;
    loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).unwrap();
                got += read_exact_count(&mut s, u64::MAX);
                accepted += 1;
            }
            // Every connection of the client is queued before it exits: drained, done.
            Err(_) if client_done => break,
            Err(_) => {
                let mut status = 0;
                client_done =
                    unsafe { libc::waitpid(client, &mut status, libc::WNOHANG) } == client;
                if !client_done {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    let sent = collect(rd);
    let conns = collect(rd);
    format!(
        "{{\"pid\":{},\"client_pid\":{client},\"connections\":{conns},\"accepted\":{accepted},\"client_sent\":{sent},\"server_received\":{got}}}",
        std::process::id()
    )
}

/// A forked client connects, sends `send` bytes and aborts the connection (SO_LINGER 0: one
/// RST instead of a FIN); the parent reads the bytes and then sees the reset.
fn reset(send: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let (grd, gwr) = pipe();
    let client = fork(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let sent = write_count(&mut c, send);
        // Close only once the server has read everything, so the RST cannot discard data.
        collect(grd);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt reads one linger struct we own.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&c),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as u32,
            )
        };
        drop(c);
        report(wr, sent);
        0
    });
    let (mut s, _) = listener.accept().unwrap();
    let got = read_exact_count(&mut s, send);
    report(gwr, got);
    let mut b = [0u8; 1];
    let reset_seen = matches!(
        s.read(&mut b),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset
    );
    wait(client);
    format!(
        "{{\"server_pid\":{},\"client_pid\":{client},\"client_sent\":{},\"server_received\":{got},\"server_saw_reset\":{reset_seen}}}",
        std::process::id(),
        collect(rd)
    )
}

/// A TCP pair on loopback that moves `send` bytes client → server, a bound UDP socket, a raw
/// ICMP socket and (when `ping_group_range` allows) a bound ping socket. Prints what it has, then
/// moves `send` bytes more for each further line on stdin (printing a line each time), and keeps
/// everything open until it is killed (or the 60 s alarm fires). For the TUI test, which needs a
/// live process with known sockets in every table.
fn hold(send: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let transfer = || {
        std::thread::scope(|s| {
            let mut r = &server;
            let reader = s.spawn(move || read_exact_count(&mut r, send));
            let mut w = &client;
            (write_count(&mut w, send), reader.join().unwrap())
        })
    };
    let (sent, received) = transfer();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    // SAFETY: plain socket(2) calls; the fds stay open until the process dies.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    let ping = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP) };
    // A ping socket shows in /proc/net/icmp only once it is bound (its echo id chosen).
    let ping = ping >= 0 && {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: addr is a valid sockaddr_in of `len` bytes.
        unsafe { libc::bind(ping, (&raw const addr).cast(), len) == 0 }
    };
    println!(
        "{{\"pid\":{},\"client_port\":{},\"server_port\":{},\"client_sent\":{sent},\"server_received\":{received},\"udp_port\":{},\"raw\":{},\"ping\":{ping}}}",
        std::process::id(),
        client.local_addr().unwrap().port(),
        listener.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
        raw >= 0,
    );
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .is_ok_and(|n| n > 0)
    {
        let (sent, received) = transfer();
        println!("{{\"client_sent\":{sent},\"server_received\":{received}}}");
        std::io::stdout().flush().unwrap();
        line.clear();
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `ADDR PORT` of the `listen` and `connect` modes.
fn addr(args: &[String]) -> SocketAddr {
    let ip: std::net::IpAddr = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    SocketAddr::new(ip, num(args.get(2)) as u16)
}

fn bind(args: &[String]) -> TcpListener {
    TcpListener::bind(addr(args)).unwrap_or_else(|e| panic!("binding {}: {e}", addr(args)))
}

/// `listen ADDR PORT SEND`: accepts one connection (e.g. from another namespace), reads until
/// the peer shuts its side down, answers with `send` bytes and closes.
fn listen(listener: TcpListener, send: u64) -> String {
    let (mut s, peer) = listener.accept().unwrap();
    let got = read_exact_count(&mut s, u64::MAX);
    let sent = write_count(&mut s, send);
    drop(s);
    format!(
        "{{\"pid\":{},\"local\":\"{}\",\"peer\":\"{peer}\",\"sent\":{sent},\"received\":{got}}}",
        std::process::id(),
        listener.local_addr().unwrap()
    )
}

/// `connect ADDR PORT SEND`: connects, sends `send` bytes, shuts its side down and reads the
/// answer until the peer closes.
fn connect(to: SocketAddr, send: u64) -> String {
    let mut c = TcpStream::connect(to).unwrap_or_else(|e| panic!("connecting to {to}: {e}"));
    let sent = write_count(&mut c, send);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let got = read_exact_count(&mut c, u64::MAX);
    format!(
        "{{\"pid\":{},\"local\":\"{}\",\"peer\":\"{to}\",\"sent\":{sent},\"received\":{got}}}",
        std::process::id(),
        c.local_addr().unwrap()
    )
}

/// A forked client opens `count` connections to the parent, which accepts them; nobody sends a
/// byte. Both hold them for a second (netmon reads), then exit. Nothing but the accept ties the
/// server's sockets to the server.
fn idle(count: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (rd, wr) = pipe();
    let client = fork(move || {
        let conns: Vec<TcpStream> = (0..count)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        report(wr, conns.len() as u64);
        std::thread::sleep(Duration::from_millis(1500));
        drop(conns);
        0
    });
    let accepted: Vec<TcpStream> = (0..count).map(|_| listener.accept().unwrap().0).collect();
    let opened = collect(rd);
    std::thread::sleep(Duration::from_millis(1000));
    let ports: Vec<String> = accepted
        .iter()
        .map(|s| s.peer_addr().unwrap().port().to_string())
        .collect();
    drop(accepted);
    wait(client);
    format!(
        "{{\"server_pid\":{},\"client_pid\":{client},\"server_port\":{},\"opened\":{opened},\"client_ports\":[{}]}}",
        std::process::id(),
        addr.port(),
        ports.join(",")
    )
}
