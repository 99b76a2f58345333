//! Ground truth for the DNS-names test: processes that ask a DNS server for a name and then
//! connect to the address they got back, inside a namespace the test created.
//!
//! `dnsprobe` speaks trafficgen's protocol: prints `{"ready":PID}`, waits for a line on stdin,
//! then starts `dnsprobe serve` (a DNS server on 127.0.0.1:53, UDP and TCP, answering from the
//! fixed table below, plus a sink that accepts connections on one port of every address) and one
//! `dnsprobe ask` child per case. Each child resolves its name (over UDP or TCP), connects to
//! the answer on the sink's port, sends its bytes and holds the connection until told to stop.
//! The result line lists, per child, its pid, the name it asked for and the address it
//! connected to. Everything is killed after 60 s at the latest.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::{Child, ChildStdout, Command, Stdio, exit},
    thread,
    time::Duration,
};

use simple_dns::{CLASS, Name, Packet, PacketFlag, Question, ResourceRecord, TYPE, rdata};

/// What the server answers: name → address (A or AAAA by the address's family).
const ZONE: &[(&str, &str)] = &[
    ("probe.netmon.test", "127.0.0.2"),
    // The same address under another name: each asker must see the name it asked for.
    ("other.netmon.test", "127.0.0.2"),
    ("tcp.netmon.test", "127.0.0.3"),
    ("six.netmon.test", "::1"),
];

/// (transport, name, bytes to send); the last case asks nothing and connects to an address no
/// one resolved.
const CASES: &[(&str, &str, u64)] = &[
    ("udp", "probe.netmon.test", 1_111),
    ("udp", "other.netmon.test", 2_222),
    ("tcp", "tcp.netmon.test", 3_333),
    ("udp", "six.netmon.test", 4_444),
    ("none", "127.0.0.4", 5_555),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Never outlive a test that died.
    thread::spawn(|| {
        thread::sleep(Duration::from_secs(60));
        exit(3)
    });
    match args.get(1).map(String::as_str) {
        None => orchestrate(&args[0]),
        Some("serve") => serve(),
        Some("ask") if args.len() == 6 => ask(&args[2], &args[3], &args[4], &args[5]),
        _ => {
            eprintln!(
                "usage: dnsprobe | dnsprobe serve | dnsprobe ask udp|tcp|none NAME PORT BYTES"
            );
            exit(2)
        }
    }
}

fn orchestrate(me: &str) {
    println!("{{\"ready\":{}}}", std::process::id());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();

    let (mut server, mut server_out) = spawn(me, &["serve"]);
    let port = read_line(&mut server_out);
    let mut children = Vec::new();
    let mut results = Vec::new();
    for (how, name, bytes) in CASES {
        let (child, mut out) = spawn(me, &["ask", how, name, port.trim(), &bytes.to_string()]);
        // The child reports once its bytes are sent; it then holds its socket open.
        let done = read_line(&mut out);
        results.push(done.trim().to_string());
        children.push(child);
    }
    // Let netmon read the final counters of open sockets before anything closes.
    thread::sleep(Duration::from_millis(800));
    println!(
        "{{\"server\":{},\"clients\":[{}]}}",
        server.id(),
        results.join(",")
    );
    std::io::stdout().flush().unwrap();
    for mut c in children {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    let _ = server.kill();
    let _ = server.wait();
}

fn spawn(me: &str, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(me)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning dnsprobe");
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    if r.read_line(&mut s).unwrap_or(0) == 0 {
        eprintln!("dnsprobe: a child ended without reporting");
        exit(1);
    }
    s
}

/// DNS on 127.0.0.1:53 (UDP and TCP) and the sink on one port of every address; prints the
/// sink's port, then serves until killed.
fn serve() {
    let udp = UdpSocket::bind("127.0.0.1:53").expect("binding 127.0.0.1:53/udp");
    let tcp = TcpListener::bind("127.0.0.1:53").expect("binding 127.0.0.1:53/tcp");
    // [::] without IPV6_V6ONLY takes IPv4 too, so 127.0.0.x and ::1 reach the same port.
    let sink = TcpListener::bind("[::]:0").expect("binding the sink");
    println!("{}", sink.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    thread::spawn(move || {
        for conn in sink.incoming().flatten() {
            thread::spawn(move || {
                let _ = std::io::copy(&mut { conn }, &mut std::io::sink());
            });
        }
    });
    thread::spawn(move || {
        for mut conn in tcp.incoming().flatten() {
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut q).is_err() {
                continue;
            }
            let reply = answer(&q);
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            let _ = conn.write_all(&framed);
        }
    });
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf) else {
            continue;
        };
        let _ = udp.send_to(&answer(&buf[..n]), from);
    }
}

fn answer(query: &[u8]) -> Vec<u8> {
    let q = Packet::parse(query).expect("a DNS query");
    let mut reply = Packet::new_reply(q.id());
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    for question in &q.questions {
        let asked = question.qname.to_string();
        reply.questions.push(question.clone());
        for (name, addr) in ZONE.iter().filter(|(n, _)| *n == asked) {
            let data = match addr.parse::<IpAddr>().unwrap() {
                IpAddr::V4(a) => rdata::RData::A(rdata::A {
                    address: u32::from(a),
                }),
                IpAddr::V6(a) => rdata::RData::AAAA(rdata::AAAA {
                    address: u128::from(a),
                }),
            };
            reply.answers.push(ResourceRecord::new(
                Name::new_unchecked(name),
                CLASS::IN,
                60,
                data,
            ));
        }
    }
    reply.build_bytes_vec().expect("building the reply")
}

/// Resolves `name` over `how`, connects to the answer on `port`, sends `bytes`, reports
/// `{"pid":..,"name":..,"remote":..,"sent":..}` and holds the connection until stdin closes.
fn ask(how: &str, name: &str, port: &str, bytes: &str) {
    let port: u16 = port.parse().unwrap();
    let bytes: usize = bytes.parse().unwrap();
    let ip = match how {
        "none" => name.parse().unwrap(),
        _ => resolve(how, name),
    };
    let remote = SocketAddr::new(ip, port);
    let mut conn = TcpStream::connect(remote).expect("connecting to the answer");
    conn.write_all(&vec![7u8; bytes]).unwrap();
    println!(
        "{{\"pid\":{},\"how\":\"{how}\",\"name\":\"{name}\",\"remote\":\"{remote}\",\"sent\":{bytes}}}",
        std::process::id()
    );
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

fn resolve(how: &str, name: &str) -> IpAddr {
    let six = name.starts_with("six.");
    let qtype = if six { TYPE::AAAA } else { TYPE::A };
    let mut q = Packet::new_query(0x4242);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        Name::new_unchecked(name),
        qtype.into(),
        CLASS::IN.into(),
        false,
    ));
    let query = q.build_bytes_vec().unwrap();
    let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
    let reply = if how == "tcp" {
        let mut c = TcpStream::connect(server).expect("DNS over TCP");
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&query);
        c.write_all(&framed).unwrap();
        let mut len = [0u8; 2];
        c.read_exact(&mut len).unwrap();
        let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
        c.read_exact(&mut r).unwrap();
        r
    } else {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&query, server).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = s.recv_from(&mut buf).expect("a DNS reply");
        buf[..n].to_vec()
    };
    let r = Packet::parse(&reply).expect("a DNS reply");
    r.answers
        .iter()
        .find_map(|rr| match &rr.rdata {
            rdata::RData::A(a) => Some(IpAddr::V4(Ipv4Addr::from(a.address))),
            rdata::RData::AAAA(a) => Some(IpAddr::V6(Ipv6Addr::from(a.address))),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no address for {name}"))
}
