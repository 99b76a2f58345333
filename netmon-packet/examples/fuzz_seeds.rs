//! Writes seed inputs for the fuzz targets from the test fixtures, so fuzzing starts from
//! well-formed packets and filters: `cargo run -p netmon-packet --example fuzz_seeds -- DIR`
//! (xtask fuzz uses netmon-packet/fuzz/seeds).

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::path::Path;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)
}

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz_seeds DIR");
        std::process::exit(2);
    };
    if let Err(e) = run(Path::new(&dir)) {
        eprintln!("fuzz_seeds: error: writing seeds under {dir}: {e}");
        std::process::exit(1);
    }
}

fn run(dir: &Path) -> std::io::Result<()> {
    for (name, bytes) in fixtures::all() {
        // The decode target's first byte picks the link type: even = Ethernet, odd = raw IP.
        let mut eth = vec![0];
        eth.extend_from_slice(&bytes);
        write(dir, "decode", &format!("{name}.eth"), &eth)?;
        if matches!(bytes[12..14], [0x08, 0x00] | [0x86, 0xdd]) {
            let mut raw = vec![1];
            raw.extend_from_slice(&bytes[14..]);
            write(dir, "decode", &format!("{name}.raw"), &raw)?;
        }
    }
    // The lldp and llc targets take the bytes after the 14-byte header they add themselves.
    write(dir, "lldp", "lldp", &fixtures::lldp()[14..])?;
    write(dir, "llc", "cdp", &fixtures::cdp()[14..])?;
    write(dir, "llc", "snap_ipv4", &fixtures::snap_ipv4()[14..])?;
    write(dir, "tcp_session", "session", &tcp_session_script())?;
    write(
        dir,
        "dns",
        "query",
        &fixtures::dns_query_bytes("example.org"),
    )?;
    write(
        dir,
        "dns",
        "reply",
        &fixtures::dns_reply_bytes("example.com", &[[1, 2, 3, 4], [5, 6, 7, 8]]),
    )?;
    let exprs = [
        "tcp.dport == 5000 and ip.src in 10.0.0.0/8 and pid == 1234",
        "(udp or icmp6) && !(iface == \"lo\") || dns.qname == example.com",
        "ip6.src in fe80::/10 and eth.src != 02:00:00:00:00:0a and tcp.syn",
        "tcp.Window_Size >= 0x10 and dir == in and comm == 'curl'",
    ];
    for (i, e) in exprs.iter().enumerate() {
        write(dir, "expr_filter", &format!("e{i}"), e.as_bytes())?;
    }
    let jsons = [
        r#"{"IPv4":{"Source_Address":"127.0.0.1"},"TCP":{"Destination_Port":5000}}"#,
        r#"[{"AF_Packet":{"Interface_Name":"lo"},"IPv4":{}},{"ARP":{"Operation":1}}]"#,
        r#"{"Ethernet":{"Source_MAC":"02:00:00:00:00:0a"},"TCP":{"SYN":true}}"#,
    ];
    for (i, j) in jsons.iter().enumerate() {
        write(dir, "json_filter", &format!("j{i}"), j.as_bytes())?;
    }
    Ok(())
}

/// A handshake, data both ways with one retransmission and a duplicate ACK, a zero window, and
/// a FIN close, in the tcp_session target's 14-byte records (see that target).
fn tcp_session_script() -> Vec<u8> {
    const B_TO_A: u8 = 1;
    const SYN: u8 = 2;
    const ACK: u8 = 4;
    const FIN: u8 = 8;
    const WSCALE: u8 = 64;
    let segs: [(u8, u8, u32, u32, u16, u8, u8); 10] = [
        (SYN | WSCALE, 7, 100, 0, 64240, 0, 0),
        (B_TO_A | SYN | ACK | WSCALE, 7, 900, 101, 65160, 0, 1),
        (ACK, 0, 101, 901, 502, 0, 1),
        (ACK, 0, 101, 901, 502, 200, 1),
        (ACK, 0, 101, 901, 502, 200, 200),
        (B_TO_A | ACK, 0, 901, 301, 0, 0, 1),
        (B_TO_A | ACK, 0, 901, 301, 0, 0, 1),
        (B_TO_A | ACK, 0, 901, 301, 509, 0, 1),
        (FIN | ACK, 0, 301, 901, 502, 0, 1),
        (B_TO_A | FIN | ACK, 0, 901, 302, 509, 0, 1),
    ];
    let mut out = Vec::new();
    for (flags, wscale, seq, ack, win, len, dt) in segs {
        out.extend_from_slice(&[flags, wscale]);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&ack.to_be_bytes());
        out.extend_from_slice(&win.to_be_bytes());
        out.extend_from_slice(&[len, dt]);
    }
    out
}
