//! Sockets by address, so a packet or an accepted connection finds its socket without a scan of
//! every socket: at tens of thousands of connections a second a scan per event is quadratic.
//! Connected sockets by their exact ends (only when asked: capture is the one user, and at 100k
//! connections the map costs ~10 MB); bound, listening and unconnected ones by port.
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::event::{Cookie, Proto};

#[derive(Debug, Default)]
pub(super) struct SocketIndex {
    bound: HashMap<(Proto, u16), HashSet<Cookie>>,
    connected: HashMap<(Proto, SocketAddr, SocketAddr), Cookie>,
    /// Whether `connected` is kept.
    pub(super) by_ends: bool,
}

/// Where a socket is filed: its protocol and ends.
pub(super) type Ends = (Proto, SocketAddr, Option<SocketAddr>);

impl SocketIndex {
    pub(super) fn insert(&mut self, cookie: Cookie, (proto, local, remote): Ends) {
        match remote {
            Some(r) => {
                if self.by_ends {
                    self.connected.insert((proto, local, r), cookie);
                }
            }
            None => {
                self.bound
                    .entry((proto, local.port()))
                    .or_default()
                    .insert(cookie);
            }
        }
    }

    pub(super) fn remove(&mut self, cookie: Cookie, (proto, local, remote): Ends) {
        match remote {
            // Two sockets can have had the same ends (a port reused after TIME_WAIT): only
            // this socket's own entry goes.
            Some(r) => {
                if self.connected.get(&(proto, local, r)) == Some(&cookie) {
                    self.connected.remove(&(proto, local, r));
                }
            }
            None => {
                if let Some(set) = self.bound.get_mut(&(proto, local.port())) {
                    set.remove(&cookie);
                    if set.is_empty() {
                        self.bound.remove(&(proto, local.port()));
                    }
                }
            }
        }
    }

    /// The connected socket with exactly these ends.
    pub(super) fn connected(
        &self,
        proto: Proto,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<Cookie> {
        self.connected.get(&(proto, local, remote)).copied()
    }

    /// Sockets without a peer bound to `port` (any address).
    pub(super) fn bound(&self, proto: Proto, port: u16) -> impl Iterator<Item = Cookie> + '_ {
        self.bound
            .get(&(proto, port))
            .into_iter()
            .flat_map(|set| set.iter().copied())
    }

    #[cfg(test)]
    pub(super) fn contains(&self, cookie: Cookie) -> bool {
        self.connected.values().any(|&c| c == cookie)
            || self.bound.values().any(|set| set.contains(&cookie))
    }
}
