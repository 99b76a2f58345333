//! Socket listing through `NETLINK_SOCK_DIAG` (inet_diag, `SOCK_DIAG_BY_FAMILY`).
//!
//! The netlink messages are built and parsed by hand here rather than with
//! netlink-packet-sock-diag + netlink-sys. netmon needs one fixed-size request
//! (`inet_diag_req_v2`, 56 bytes) and the fixed head of one reply (`inet_diag_msg`, 72 bytes),
//! no attributes; the crates would add four dependencies (netlink-packet-core, bytes, zerocopy,
//! smallvec) for that, hide the cookie behind a byte array whose two halves are host-endian u32s
//! (easy to get wrong) and keep the bounds checks out of our hands, while this parser must return
//! an error, never panic, on any datagram. The syscalls go through rustix (already in the tree via
//! procfs), so this file has no `unsafe`.
//!
//! Layouts (include/uapi/linux/inet_diag.h, netlink.h), all host-endian except ports and
//! addresses, which are network order:
//! - `nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32 (16 bytes, messages 4-aligned)
//! - `inet_diag_sockid` (48): sport be16, dport be16, src [be32; 4], dst [be32; 4], if u32,
//!   cookie [u32; 2] (low half first, the value `bpf_get_socket_cookie` returns)
//! - `inet_diag_req_v2` (56): family u8, protocol u8, ext u8, pad u8, states u32, sockid
//! - `inet_diag_msg` (72): family u8, state u8, timer u8, retrans u8, sockid, expires u32,
//!   rqueue u32, wqueue u32, uid u32, inode u32
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::event::{Proto, TcpState};

const NLMSG_HDR_LEN: usize = 16;
const INET_DIAG_REQ_V2_LEN: usize = 56;
const INET_DIAG_MSG_LEN: usize = 72;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The kernel sizes dump datagrams from the reader's buffer, capped at 32 KiB; twice that leaves
/// room for a future larger cap, and MSG_TRUNC still tells us if it was not enough.
const RECV_BUF_LEN: usize = 64 * 1024;
/// A dump never takes this long; the timeout only keeps a wedged kernel from hanging start-up.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// One socket as sock_diag reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagSocket {
    /// `idiag_cookie`: the same value as the kernel's `bpf_get_socket_cookie`.
    pub cookie: u64,
    /// The sockfs inode, as in `/proc/PID/fd/N -> socket:[INODE]`; 0 for time-wait and
    /// request sockets, which no fd holds.
    pub inode: u64,
    pub uid: u32,
    pub proto: Proto,
    /// IPv4-mapped IPv6 addresses are shown as IPv4.
    pub local: SocketAddr,
    /// None when unconnected or listening.
    pub remote: Option<SocketAddr>,
    /// The kernel's `sk_state`: TCP states for TCP; for UDP, `Close` or `Established` (connected).
    pub state: TcpState,
}

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("{call} on the sock_diag netlink socket")]
    Syscall {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("kernel refused the {family} {proto} socket dump")]
    Refused {
        family: &'static str,
        proto: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("malformed netlink message: {reason}")]
    Malformed { reason: String },
    #[error("opening netns {}", path.display())]
    OpenNetns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("entering netns {}", path.display())]
    Setns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting the dump thread for netns {}", path.display())]
    Thread {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the dump thread for netns {} panicked", path.display())]
    ThreadPanicked { path: PathBuf },
}

fn family_name(family: u8) -> &'static str {
    match family {
        AF_INET => "ipv4",
        AF_INET6 => "ipv6",
        _ => "unknown-family",
    }
}

fn proto_name(proto: u8) -> &'static str {
    match proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        _ => "unknown-protocol",
    }
}

/// A dump request for every socket (all states) of one family and protocol.
pub(crate) fn build_request(seq: u32, family: u8, protocol: u8) -> [u8; 72] {
    const LEN: usize = NLMSG_HDR_LEN + INET_DIAG_REQ_V2_LEN;
    let mut req = [0u8; LEN];
    req[0..4].copy_from_slice(&(LEN as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our port id.
    req[16] = family;
    req[17] = protocol;
    // idiag_ext 0: no attributes wanted; idiag_states: a bit per TCP state, all of them.
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    // The sockid stays zero: a dump ignores it.
    req
}

/// What a datagram told us about the dump in progress.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    More,
    Done,
}

fn truncated(what: &'static str, need: usize, have: usize) -> DiagError {
    DiagError::Truncated { what, need, have }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses every netlink message of one datagram of a dump answering request `seq`, appending
/// the sockets to `out`. `family`/`protocol` are the request's, for error context.
pub(crate) fn parse_datagram(
    buf: &[u8],
    seq: u32,
    family: u8,
    protocol: u8,
    out: &mut Vec<DiagSocket>,
) -> Result<Progress, DiagError> {
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < NLMSG_HDR_LEN {
            return Err(truncated("netlink header", NLMSG_HDR_LEN, rest.len()));
        }
        let len = u32_at(rest, 0) as usize;
        let kind = u16_at(rest, 4);
        let flags = u16_at(rest, 6);
        let msg_seq = u32_at(rest, 8);
        if len < NLMSG_HDR_LEN {
            return Err(DiagError::Malformed {
                reason: format!("nlmsg_len {len} is shorter than its header"),
            });
        }
        if len > rest.len() {
            return Err(truncated("netlink message", len, rest.len()));
        }
        let payload = &rest[NLMSG_HDR_LEN..len];
        // Messages are 4-aligned; the last one may end the datagram without padding.
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];

        if msg_seq != seq {
            log::debug!("sock_diag: ignoring message for seq {msg_seq}, expected {seq}");
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            // The table changed during the dump: some sockets may be missing or doubled. The
            // caller dedups by cookie, and the kernel hooks catch whatever was missed.
            log::debug!(
                "sock_diag: dump interrupted by a concurrent change, result may be partial"
            );
        }
        match kind {
            NLMSG_NOOP => {}
            NLMSG_DONE => {
                // A dump may end with a negative errno in the DONE payload.
                if payload.len() >= 4 && i32_at(payload, 0) < 0 {
                    return Err(refused(family, protocol, i32_at(payload, 0)));
                }
                return Ok(Progress::Done);
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(truncated("netlink error message", 4, payload.len()));
                }
                let errno = i32_at(payload, 0);
                if errno != 0 {
                    return Err(refused(family, protocol, errno));
                }
                // errno 0 is an acknowledgement, not an error.
            }
            NLMSG_OVERRUN => {
                return Err(DiagError::Malformed {
                    reason: "kernel reported a netlink overrun".to_string(),
                });
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(s) = parse_inet_diag_msg(payload, protocol)? {
                    out.push(s);
                }
            }
            other => log::debug!("sock_diag: ignoring netlink message type {other}"),
        }
    }
    Ok(Progress::More)
}

fn refused(family: u8, protocol: u8, errno: i32) -> DiagError {
    DiagError::Refused {
        family: family_name(family),
        proto: proto_name(protocol),
        source: io::Error::from_raw_os_error(errno.saturating_neg()),
    }
}

/// An address from an `inet_diag_sockid` field, IPv4-mapped IPv6 shown as IPv4.
fn ip_of(family: u8, raw: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&raw[..16]);
            let v6 = Ipv6Addr::from(b);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

/// One `inet_diag_msg`; `Ok(None)` for a family this module does not handle.
pub(crate) fn parse_inet_diag_msg(
    payload: &[u8],
    protocol: u8,
) -> Result<Option<DiagSocket>, DiagError> {
    if payload.len() < INET_DIAG_MSG_LEN {
        return Err(truncated("inet_diag_msg", INET_DIAG_MSG_LEN, payload.len()));
    }
    let family = payload[0];
    let state = payload[1];
    let sport = u16::from_be_bytes([payload[4], payload[5]]);
    let dport = u16::from_be_bytes([payload[6], payload[7]]);
    let (Some(src), Some(dst)) = (
        ip_of(family, &payload[8..24]),
        ip_of(family, &payload[24..40]),
    ) else {
        log::debug!("sock_diag: skipping a socket of address family {family}");
        return Ok(None);
    };
    let cookie = u64::from(u32_at(payload, 44)) | (u64::from(u32_at(payload, 48)) << 32);
    let uid = u32_at(payload, 64);
    let inode = u64::from(u32_at(payload, 68));
    let remote = (!(dst.is_unspecified() && dport == 0)).then_some(SocketAddr::new(dst, dport));
    Ok(Some(DiagSocket {
        cookie,
        inode,
        uid,
        proto: Proto::from_ipproto(u16::from(protocol)),
        local: SocketAddr::new(src, sport),
        remote,
        state: TcpState::from_kernel(u32::from(state)),
    }))
}

fn syscall(call: &'static str) -> impl FnOnce(rustix::io::Errno) -> DiagError {
    move |e| DiagError::Syscall {
        call,
        source: e.into(),
    }
}

fn open_diag_socket() -> Result<OwnedFd, DiagError> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )
    .map_err(syscall("socket"))?;
    rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Recv,
        Some(RECV_TIMEOUT),
    )
    .map_err(syscall("setsockopt SO_RCVTIMEO"))?;
    Ok(fd)
}

fn dump_one(
    fd: &OwnedFd,
    seq: u32,
    family: u8,
    protocol: u8,
    buf: &mut [u8],
    out: &mut Vec<DiagSocket>,
) -> Result<(), DiagError> {
    let req = build_request(seq, family, protocol);
    let kernel = SocketAddrNetlink::new(0, 0);
    loop {
        match rustix::net::sendto(fd.as_fd(), &req, SendFlags::empty(), &kernel) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(syscall("sendto")(e)),
        }
    }
    loop {
        let (got, full) = match rustix::net::recv(fd.as_fd(), &mut *buf, RecvFlags::TRUNC) {
            Ok(r) => r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(syscall("recv")(e)),
        };
        if full > got {
            return Err(truncated("netlink datagram", full, got));
        }
        if parse_datagram(&buf[..got], seq, family, protocol, out)? == Progress::Done {
            return Ok(());
        }
    }
}

/// Every TCP and UDP socket (IPv4 and IPv6, all states) in the calling thread's network namespace.
pub fn dump_sockets() -> Result<Vec<DiagSocket>, DiagError> {
    let fd = open_diag_socket()?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let mut out = Vec::new();
    let dumps = [
        (AF_INET, IPPROTO_TCP),
        (AF_INET6, IPPROTO_TCP),
        (AF_INET, IPPROTO_UDP),
        (AF_INET6, IPPROTO_UDP),
    ];
    for (seq, (family, protocol)) in (1u32..).zip(dumps) {
        match dump_one(&fd, seq, family, protocol, &mut buf, &mut out) {
            Ok(()) => {}
            // udp_diag is a module; a kernel without it (or without IPv6) still gives the rest.
            Err(DiagError::Refused { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT)
                    || source.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                log::debug!(
                    "sock_diag: no {} {} dump on this kernel: {source}",
                    family_name(family),
                    proto_name(protocol)
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Like [`dump_sockets`], in the network namespace `ns_path` (e.g. `/proc/PID/ns/net`). The dump
/// runs in a short-lived thread that `setns()`es there and exits, so the caller's threads never
/// change namespace. Needs CAP_SYS_ADMIN.
pub fn dump_sockets_in_netns(ns_path: &Path) -> Result<Vec<DiagSocket>, DiagError> {
    let ns = File::open(ns_path).map_err(|source| DiagError::OpenNetns {
        path: ns_path.to_path_buf(),
        source,
    })?;
    let path = ns_path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("netmon-netns".to_string())
        .spawn(move || {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| DiagError::Setns {
                path,
                source: e.into(),
            })?;
            dump_sockets()
        })
        .map_err(|source| DiagError::Thread {
            path: ns_path.to_path_buf(),
            source,
        })?;
    handle.join().map_err(|_| DiagError::ThreadPanicked {
        path: ns_path.to_path_buf(),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `inet_diag_msg` laid out field by field, as the kernel writes it.
    struct Msg {
        family: u8,
        state: u8,
        sport: u16,
        dport: u16,
        src: [u8; 16],
        dst: [u8; 16],
        cookie: u64,
        uid: u32,
        inode: u32,
    }

    impl Msg {
        fn bytes(&self) -> Vec<u8> {
            let mut b = vec![self.family, self.state, 0, 0];
            b.extend(self.sport.to_be_bytes());
            b.extend(self.dport.to_be_bytes());
            b.extend(self.src);
            b.extend(self.dst);
            b.extend(0u32.to_ne_bytes()); // idiag_if
            b.extend((self.cookie as u32).to_ne_bytes());
            b.extend(((self.cookie >> 32) as u32).to_ne_bytes());
            b.extend([0u8; 12]); // expires, rqueue, wqueue
            b.extend(self.uid.to_ne_bytes());
            b.extend(self.inode.to_ne_bytes());
            assert_eq!(b.len(), INET_DIAG_MSG_LEN);
            b
        }
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut r = [0u8; 16];
        r[..4].copy_from_slice(&a);
        r
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    /// A netlink message: header + payload, padded to 4 like the kernel does.
    fn nlmsg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDR_LEN + payload.len()) as u32;
        let mut b = Vec::new();
        b.extend(len.to_ne_bytes());
        b.extend(kind.to_ne_bytes());
        b.extend(flags.to_ne_bytes());
        b.extend(seq.to_ne_bytes());
        b.extend(4242u32.to_ne_bytes());
        b.extend(payload);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    fn done(seq: u32) -> Vec<u8> {
        nlmsg(NLMSG_DONE, 0x2, seq, &0i32.to_ne_bytes())
    }

    fn established_v4() -> Msg {
        Msg {
            family: AF_INET,
            state: 1,
            sport: 8000,
            dport: 40123,
            src: v4([127, 0, 0, 1]),
            dst: v4([127, 0, 0, 2]),
            cookie: 0x0000_0001_2345_6789,
            uid: 1000,
            inode: 123_456,
        }
    }

    #[test]
    fn request_layout() {
        let r = build_request(7, AF_INET6, IPPROTO_UDP);
        assert_eq!(u32_at(&r, 0), 72);
        assert_eq!(u16_at(&r, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u16_at(&r, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_at(&r, 8), 7);
        assert_eq!(u32_at(&r, 12), 0);
        assert_eq!(&r[16..20], &[AF_INET6, IPPROTO_UDP, 0, 0]);
        assert_eq!(u32_at(&r, 20), u32::MAX);
        assert!(r[24..].iter().all(|&b| b == 0));
    }

    #[test]
    fn parses_established_ipv4() {
        let s = parse_inet_diag_msg(&established_v4().bytes(), IPPROTO_TCP)
            .unwrap()
            .unwrap();
        assert_eq!(
            s,
            DiagSocket {
                cookie: 0x0000_0001_2345_6789,
                inode: 123_456,
                uid: 1000,
                proto: Proto::Tcp,
                local: "127.0.0.1:8000".parse().unwrap(),
                remote: Some("127.0.0.2:40123".parse().unwrap()),
                state: TcpState::Established,
            }
        );
    }

    fn msg(family: u8, state: u8, src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> Msg {
        Msg {
            family,
            state,
            sport,
            dport,
            src,
            dst,
            cookie: 1,
            uid: 0,
            inode: 1,
        }
    }

    #[test]
    fn addresses_table() {
        use TcpState::*;
        let cases: &[(Msg, &str, Option<&str>, TcpState)] = &[
            (
                msg(AF_INET, 10, v4([0; 4]), 22, v4([0; 4]), 0),
                "0.0.0.0:22",
                None,
                Listen,
            ),
            (
                msg(AF_INET6, 10, v6("::"), 80, v6("::"), 0),
                "[::]:80",
                None,
                Listen,
            ),
            (
                msg(
                    AF_INET6,
                    1,
                    v6("2001:db8::1"),
                    443,
                    v6("2001:db8::2"),
                    50000,
                ),
                "[2001:db8::1]:443",
                Some("[2001:db8::2]:50000"),
                Established,
            ),
            // A dual-stack socket talking IPv4: shown as IPv4.
            (
                msg(
                    AF_INET6,
                    8,
                    v6("::ffff:127.0.0.1"),
                    8080,
                    v6("::ffff:10.1.2.3"),
                    41000,
                ),
                "127.0.0.1:8080",
                Some("10.1.2.3:41000"),
                CloseWait,
            ),
            // Unconnected UDP: CLOSE, no remote.
            (
                msg(AF_INET, 7, v4([127, 0, 0, 53]), 53, v4([0; 4]), 0),
                "127.0.0.53:53",
                None,
                Close,
            ),
            // A port without an address is still a remote; an unknown state stays visible.
            (
                msg(AF_INET, 99, v4([1, 2, 3, 4]), 1, v4([0; 4]), 9),
                "1.2.3.4:1",
                Some("0.0.0.0:9"),
                Unknown,
            ),
        ];
        for (m, local, remote, want_state) in cases {
            let s = parse_inet_diag_msg(&m.bytes(), IPPROTO_TCP)
                .unwrap()
                .unwrap();
            assert_eq!(s.local, local.parse::<SocketAddr>().unwrap(), "{local}");
            assert_eq!(s.remote, remote.map(|r| r.parse().unwrap()), "{local}");
            assert_eq!(s.state, *want_state, "{local}");
        }
    }

    #[test]
    fn unknown_family_is_skipped() {
        let mut m = established_v4();
        m.family = 1; // AF_UNIX
        assert_eq!(parse_inet_diag_msg(&m.bytes(), IPPROTO_TCP).unwrap(), None);
    }

    #[test]
    fn datagram_with_sockets_then_done() {
        let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, 0x2, 3, &established_v4().bytes());
        let mut second = established_v4();
        second.cookie = u64::MAX;
        second.inode = u32::MAX;
        buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 0x2, 3, &second.bytes()));
        // A stray message of another request is ignored.
        buf.extend(nlmsg(
            SOCK_DIAG_BY_FAMILY,
            0x2,
            99,
            &established_v4().bytes(),
        ));
        buf.extend(done(3));
        let mut out = Vec::new();
        let p = parse_datagram(&buf, 3, AF_INET, IPPROTO_UDP, &mut out).unwrap();
        assert_eq!(p, Progress::Done);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[1].cookie, out[1].inode),
            (u64::MAX, u64::from(u32::MAX))
        );
        assert_eq!(out[0].proto, Proto::Udp);
    }

    #[test]
    fn datagram_without_done_asks_for_more() {
        let buf = nlmsg(SOCK_DIAG_BY_FAMILY, 0x2, 1, &established_v4().bytes());
        let mut out = Vec::new();
        assert_eq!(
            parse_datagram(&buf, 1, AF_INET, IPPROTO_TCP, &mut out).unwrap(),
            Progress::More
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            parse_datagram(&[], 1, AF_INET, IPPROTO_TCP, &mut out).unwrap(),
            Progress::More
        );
    }

    #[test]
    fn kernel_error_is_refused_with_errno() {
        let mut payload = (-libc::ENOENT).to_ne_bytes().to_vec();
        payload.extend(&build_request(1, AF_INET, IPPROTO_UDP)[..16]);
        let buf = nlmsg(NLMSG_ERROR, 0, 1, &payload);
        let e = parse_datagram(&buf, 1, AF_INET, IPPROTO_UDP, &mut Vec::new()).unwrap_err();
        let DiagError::Refused {
            family,
            proto,
            source,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!((*family, *proto), ("ipv4", "udp"));
        assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(e.to_string(), "kernel refused the ipv4 udp socket dump");
    }

    #[test]
    fn ack_is_not_an_error_and_done_with_errno_is() {
        let mut buf = nlmsg(NLMSG_ERROR, 0, 1, &0i32.to_ne_bytes());
        buf.extend(nlmsg(NLMSG_NOOP, 0, 1, &[]));
        assert_eq!(
            parse_datagram(&buf, 1, AF_INET, IPPROTO_TCP, &mut Vec::new()).unwrap(),
            Progress::More
        );
        let buf = nlmsg(NLMSG_DONE, 0, 1, &(-libc::EINTR).to_ne_bytes());
        assert!(matches!(
            parse_datagram(&buf, 1, AF_INET, IPPROTO_TCP, &mut Vec::new()),
            Err(DiagError::Refused { .. })
        ));
    }

    #[test]
    fn truncation_anywhere_is_an_error_not_a_panic() {
        let mut full = nlmsg(SOCK_DIAG_BY_FAMILY, 0x2, 1, &established_v4().bytes());
        full.extend(done(1));
        // Every prefix that cuts a message must fail; whole-message prefixes must not.
        let whole = [0, NLMSG_HDR_LEN + INET_DIAG_MSG_LEN, full.len()];
        for cut in 0..=full.len() {
            let r = parse_datagram(&full[..cut], 1, AF_INET, IPPROTO_TCP, &mut Vec::new());
            assert_eq!(r.is_ok(), whole.contains(&cut), "cut at {cut}: {r:?}");
        }
        // A header claiming a short payload: the message itself is truncated.
        let short = nlmsg(SOCK_DIAG_BY_FAMILY, 0x2, 1, &established_v4().bytes()[..40]);
        let e = parse_datagram(&short, 1, AF_INET, IPPROTO_TCP, &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated inet_diag_msg: need 72 bytes, have 40"
        );
    }

    #[test]
    fn absurd_lengths_are_errors() {
        let mut b = nlmsg(NLMSG_NOOP, 0, 1, &[]);
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            parse_datagram(&b, 1, AF_INET, IPPROTO_TCP, &mut Vec::new()),
            Err(DiagError::Malformed { .. })
        ));
        b[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(
            parse_datagram(&b, 1, AF_INET, IPPROTO_TCP, &mut Vec::new()),
            Err(DiagError::Truncated { .. })
        ));
        let e = parse_datagram(
            &nlmsg(NLMSG_ERROR, 0, 1, &[1, 2]),
            1,
            AF_INET,
            IPPROTO_TCP,
            &mut Vec::new(),
        );
        assert!(matches!(e, Err(DiagError::Truncated { .. })), "{e:?}");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: xorshift bytes, plus valid headers with random bodies.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let len = (next() % 200) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && b.len() >= 16 {
                let len = b.len() as u32;
                b[0..4].copy_from_slice(&len.to_ne_bytes());
                b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
                b[8..12].copy_from_slice(&1u32.to_ne_bytes());
            }
            let _ = parse_datagram(&b, 1, AF_INET6, IPPROTO_TCP, &mut Vec::new());
        }
    }

    #[test]
    fn dump_in_a_missing_netns_is_an_open_error() {
        let e = dump_sockets_in_netns(Path::new("/nonexistent/ns/net")).unwrap_err();
        assert!(matches!(e, DiagError::OpenNetns { .. }), "{e:?}");
        assert_eq!(e.to_string(), "opening netns /nonexistent/ns/net");
    }

    fn fd_inode(fd: &impl std::os::fd::AsRawFd) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        crate::source::procfs::sockets::socket_inode_of_link(link.to_str().unwrap()).unwrap()
    }

    /// `getsockopt(fd, SOL_SOCKET, SO_COOKIE)`, spelled out with the raw constant on purpose:
    /// this test checks the kernel's contract, not a library's wrapper of it.
    fn so_cookie(fd: &impl std::os::fd::AsRawFd) -> u64 {
        const SO_COOKIE: libc::c_int = 57;
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: `cookie` and `len` are live locals of the size passed; the fd is open.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_COOKIE,
                (&raw mut cookie).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        assert_eq!(len as usize, std::mem::size_of::<u64>());
        cookie
    }

    /// The claim netmon's attribution of pre-existing sockets rests on: sock_diag's cookie is
    /// SO_COOKIE (what `bpf_get_socket_cookie` returns) and its inode is the fd link's.
    #[test]
    #[ignore = "needs root: run under cargo xtask test"]
    fn cookie_and_inode_match_the_fd() {
        use std::net::{TcpListener, TcpStream, UdpSocket};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let udp6 = UdpSocket::bind("[::1]:0").unwrap();
        udp6.connect(listener.local_addr().map(|a| ("::1", a.port())).unwrap())
            .unwrap();

        // Through a setns thread into our own netns, which also exercises that path.
        let path = format!("/proc/{}/ns/net", std::process::id());
        let dumped = dump_sockets_in_netns(Path::new(&path)).unwrap();
        let direct = dump_sockets().unwrap();
        for d in [&dumped, &direct] {
            let find = |cookie| d.iter().find(|s| s.cookie == cookie);
            let l = find(so_cookie(&listener)).expect("listener in dump");
            assert_eq!(l.inode, fd_inode(&listener));
            assert_eq!((l.state, l.remote), (TcpState::Listen, None));
            let c = find(so_cookie(&client)).expect("client in dump");
            assert_eq!(c.inode, fd_inode(&client));
            assert_eq!(c.local, client.local_addr().unwrap());
            assert_eq!(c.remote, Some(client.peer_addr().unwrap()));
            assert_eq!(
                (c.proto, c.state, c.uid),
                (Proto::Tcp, TcpState::Established, 0)
            );
            let s = find(so_cookie(&server)).expect("accepted socket in dump");
            assert_eq!(s.inode, fd_inode(&server));
            assert_eq!(s.remote, Some(client.local_addr().unwrap()));
            let u = find(so_cookie(&udp6)).expect("udp6 socket in dump");
            assert_eq!(u.inode, fd_inode(&udp6));
            assert_eq!((u.proto, u.state), (Proto::Udp, TcpState::Established));
            assert_eq!(u.local, udp6.local_addr().unwrap());
        }
    }
}
