//! Network events from rtnetlink: one socket subscribed to link, address, route and neighbour
//! notifications, a second one for dumps (the baseline at start, and a resync after overruns).
//!
//! Subscribe first, dump second: a change between the two then arrives as a notification as
//! well as in the dump, and applying it twice is harmless (see `netstate`), whereas dumping
//! first could lose it.
use std::{os::fd::OwnedFd, time::Duration};

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink::SocketAddrNetlink,
};

use super::{
    model::What,
    netstate::NetState,
    rtnl::{self, NLM_F_DUMP_INTR, RTM_GETADDR, RTM_GETLINK, RTM_GETNEIGH, RTM_GETROUTE, RtMsg},
    stats::Stats,
};

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_NEIGH: u32 = 0x4;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// Default receive buffer for notifications: a `ip link del` of a bridge with many ports, or a
/// full BGP table change, is a burst of thousands of messages.
pub const DEFAULT_RCVBUF: usize = 4 << 20;
/// A dump that takes longer than this is wedged.
const DUMP_TIMEOUT: Duration = Duration::from_secs(5);
/// A dump interrupted by a concurrent change is retried this often before it is used as is.
const DUMP_TRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{call} on the rtnetlink socket")]
    Syscall {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel refused the rtnetlink dump")]
    Refused(#[source] std::io::Error),
    #[error("malformed rtnetlink dump")]
    Malformed(#[source] rtnl::RtnlError),
}

fn sys(call: &'static str) -> impl FnOnce(rustix::io::Errno) -> NetError {
    move |e| NetError::Syscall {
        call,
        source: e.into(),
    }
}

fn route_socket() -> Result<OwnedFd, NetError> {
    rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        // NETLINK_ROUTE is protocol 0, which rustix spells as "no protocol".
        None,
    )
    .map_err(sys("socket"))
}

pub struct NetSource {
    notify: OwnedFd,
    dumper: OwnedFd,
    seq: u32,
    state: NetState,
}

impl NetSource {
    /// Subscribes, then takes the baseline. `rcvbuf`: the notification socket's receive buffer.
    pub fn open(rcvbuf: usize) -> Result<NetSource, NetError> {
        let notify = route_socket()?;
        // As root, SO_RCVBUFFORCE passes net.core.rmem_max; otherwise the capped size will do.
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&notify, rcvbuf).is_err() {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&notify, rcvbuf);
        }
        let groups = RTMGRP_LINK
            | RTMGRP_NEIGH
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE;
        rustix::net::bind(&notify, &SocketAddrNetlink::new(0, groups)).map_err(sys("bind"))?;
        let dumper = route_socket()?;
        rustix::net::sockopt::set_socket_timeout(
            &dumper,
            rustix::net::sockopt::Timeout::Recv,
            Some(DUMP_TIMEOUT),
        )
        .map_err(sys("setsockopt SO_RCVTIMEO"))?;
        let mut s = NetSource {
            notify,
            dumper,
            seq: 0,
            state: NetState::default(),
        };
        s.state = s.dump_state()?;
        Ok(s)
    }

    pub fn links(&self) -> usize {
        self.state.links()
    }

    /// Links, addresses, routes and neighbours as the kernel has them now.
    fn dump_state(&mut self) -> Result<NetState, NetError> {
        let mut all = Vec::new();
        for kind in [RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH] {
            all.extend(self.dump(kind)?);
        }
        Ok(NetState::from_dump(&all))
    }

    fn dump(&mut self, kind: u16) -> Result<Vec<RtMsg>, NetError> {
        let mut tries = 0;
        loop {
            tries += 1;
            self.seq = self.seq.wrapping_add(1);
            let (msgs, interrupted) = self.dump_once(kind, self.seq)?;
            if !interrupted || tries >= DUMP_TRIES {
                if interrupted {
                    log::debug!("events: rtnetlink dump {kind} kept changing; using the last");
                }
                return Ok(msgs);
            }
        }
    }

    fn dump_once(&self, kind: u16, seq: u32) -> Result<(Vec<RtMsg>, bool), NetError> {
        let req = rtnl::dump_request(kind, seq);
        rustix::net::sendto(
            &self.dumper,
            &req,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(sys("sendto"))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let n = match rustix::net::recv(&self.dumper, &mut buf, RecvFlags::empty()) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(sys("recv")(e)),
            };
            let (msgs, framing) = rtnl::parse_datagram(&buf[..n]);
            if let Some(e) = framing {
                return Err(NetError::Malformed(e));
            }
            for m in msgs {
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.msg {
                    Ok(RtMsg::Done) => return Ok((out, interrupted)),
                    Ok(RtMsg::Error(errno)) if errno < 0 => {
                        return Err(NetError::Refused(std::io::Error::from_raw_os_error(-errno)));
                    }
                    Ok(msg) => out.push(msg),
                    // One undecodable entry in a dump is skipped like a notification would be.
                    Err(e) => log::warn!("events: skipping an undecodable dump entry: {e}"),
                }
            }
        }
    }

    /// Re-dumps after an overrun and reports what changed meanwhile.
    ///
    /// The queue is emptied first. After a drop the kernel marks the socket congested and
    /// reports ENOBUFS once; further drops are silent until the queue has been read empty. A
    /// dump taken while notifications are still queued could therefore miss a change that was
    /// dropped after it, with no second ENOBUFS to say so. Once the queue is empty, any later
    /// drop raises ENOBUFS again, and the queued notifications are older than the dump anyway.
    fn resync(&mut self, stats: &Stats) -> Result<Vec<What>, NetError> {
        stats.count(&stats.resyncs);
        let discarded = self.drain();
        log::debug!("events: resync: discarded {discarded} queued notifications");
        let fresh = self.dump_state()?;
        Ok(self.state.reconcile(fresh))
    }

    /// Reads the notification socket empty without blocking; returns how many datagrams it held.
    fn drain(&self) -> usize {
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        loop {
            match rustix::net::recv(&self.notify, &mut buf, RecvFlags::DONTWAIT) {
                Ok(_) => n += 1,
                // Another drop while draining: the dump that follows covers it too.
                Err(rustix::io::Errno::INTR | rustix::io::Errno::NOBUFS) => {}
                // EAGAIN: empty (any other error shows again on the next blocking read).
                Err(_) => return n,
            }
        }
    }

    /// Follows notifications until the socket fails or `emit` says stop.
    pub fn run(
        mut self,
        stats: &Stats,
        mut emit: impl FnMut(What) -> bool,
    ) -> Result<(), NetError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, from) = match rustix::net::recvfrom(&self.notify, &mut buf, RecvFlags::empty())
            {
                Ok((n, _, from)) => (n, from),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::NOBUFS) => {
                    // The kernel dropped notifications: the state may be stale in ways no
                    // later message will reveal. Count it, then learn the truth from a dump.
                    stats.count(&stats.rtnetlink_overruns);
                    log::warn!("events: rtnetlink receive buffer overrun; resyncing");
                    for w in self.resync(stats)? {
                        if !emit(w) {
                            return Ok(());
                        }
                    }
                    continue;
                }
                Err(e) => return Err(sys("recv")(e)),
            };
            // Only the kernel (port 0) sends rtnetlink notifications.
            let sender = from
                .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                .map(|a| a.pid());
            if sender != Some(0) {
                stats.count(&stats.rtnetlink_unparseable);
                continue;
            }
            let (msgs, framing) = rtnl::parse_datagram(&buf[..n]);
            if let Some(e) = framing {
                stats.count(&stats.rtnetlink_unparseable);
                log::warn!("events: skipping the rest of an rtnetlink datagram: {e}");
            }
            for m in msgs {
                let events = match m.msg {
                    Ok(RtMsg::Overrun) => {
                        stats.count(&stats.rtnetlink_overruns);
                        self.resync(stats)?
                    }
                    Ok(msg) => self.state.apply(&msg, m.flags),
                    Err(e) => {
                        stats.count(&stats.rtnetlink_unparseable);
                        log::warn!("events: skipping an unparseable rtnetlink message: {e}");
                        continue;
                    }
                };
                for w in events {
                    if !emit(w) {
                        return Ok(());
                    }
                }
            }
        }
    }
}
