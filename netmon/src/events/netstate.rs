//! The known network state (links, addresses, default routes, neighbours seen) and the events
//! a change to it means. Notifications are applied one by one; after an overrun the caller
//! re-dumps everything into a fresh state and [`NetState::reconcile`] reports the difference,
//! so a lost notification shows up late rather than never.
//!
//! Events come from state transitions, not from message types: the kernel repeats RTM_NEWLINK
//! for every attribute change and RTM_NEWADDR for every lifetime update, and a notification
//! that races a dump may describe what the dump already showed. Applying one twice is a no-op.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::{
    model::{Address, DefaultRoute, Link, Neighbour, RouteChange, What},
    rtnl::{
        AF_INET, AF_INET6, AF_UNSPEC, AddrMsg, IFF_LOWER_UP, IFF_UP, LinkMsg, NeighMsg, RouteMsg,
        RtMsg,
    },
};

const RTN_UNICAST: u8 = 1;
const RT_TABLE_LOCAL: u32 = 255;
/// Routes the kernel clones for a destination (PMTU, redirects) are cache entries, not routes.
const RTM_F_CLONED: u32 = 0x200;
const NLM_F_REPLACE: u16 = 0x100;
/// A neighbour entry with one of these states has a link-layer address that was confirmed or
/// configured; INCOMPLETE, FAILED and NOARP ones do not mean a neighbour is there.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80;
/// Neighbours remembered as seen; past this the oldest half is forgotten (a bound, not a cache
/// policy: a /16 of churning hosts must not grow netmon without limit).
const MAX_SEEN_NEIGHBOURS: usize = 65_536;

/// Route identity: family, table, metric, then the next hop. Two routes that differ only in
/// the next hop can coexist (IPv6 multipath siblings, or routers learned from RAs).
type RouteKey = (u8, u32, u32, Option<IpAddr>, Option<u32>);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetState {
    links: BTreeMap<u32, Link>,
    addrs: BTreeMap<(u32, IpAddr, u8), Address>,
    routes: BTreeMap<RouteKey, DefaultRoute>,
    /// Neighbours ever seen (by interface and address).
    neigh: BTreeMap<(u32, IpAddr), Seen>,
    neigh_clock: u64,
}

/// A neighbour as first seen: what a resync reports if the notification was lost.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// Insertion order, for trimming.
    at: u64,
    mac: Option<String>,
    state: u16,
}

fn family_name(f: u8) -> String {
    match f {
        AF_INET => "ipv4",
        AF_INET6 => "ipv6",
        _ => "other",
    }
    .to_string()
}

fn nud_name(state: u16) -> String {
    match state {
        0x02 => "reachable",
        0x04 => "stale",
        0x08 => "delay",
        0x10 => "probe",
        0x80 => "permanent",
        _ => "other",
    }
    .to_string()
}

fn route_key(r: &DefaultRoute, family: u8) -> RouteKey {
    (
        family,
        r.table,
        r.metric,
        r.gateway.as_deref().and_then(|g| g.parse().ok()),
        r.ifindex,
    )
}

impl NetState {
    pub fn links(&self) -> usize {
        self.links.len()
    }

    fn ifname(&self, index: u32) -> Option<String> {
        self.links.get(&index).map(|l| l.ifname.clone())
    }

    /// Applies one notification (with its netlink header flags) and returns what it means.
    pub fn apply(&mut self, msg: &RtMsg, nl_flags: u16) -> Vec<What> {
        match msg {
            RtMsg::NewLink(m) => self.new_link(m),
            RtMsg::DelLink(m) => self.del_link(m.family, m.index),
            RtMsg::NewAddr(m) => self.new_addr(m).into_iter().collect(),
            RtMsg::DelAddr(m) => self.del_addr(m).into_iter().collect(),
            RtMsg::NewRoute(m) => self.new_route(m, nl_flags),
            RtMsg::DelRoute(m) => self.del_route(m).into_iter().collect(),
            RtMsg::NewNeigh(m) => self.new_neigh(m).into_iter().collect(),
            // A neighbour that goes away stays "seen": its return is not a new neighbour.
            RtMsg::DelNeigh(_)
            | RtMsg::Done
            | RtMsg::Error(_)
            | RtMsg::Overrun
            | RtMsg::Other(_) => Vec::new(),
        }
    }

    fn link_of(&self, m: &LinkMsg) -> Link {
        let old = self.links.get(&m.index);
        Link {
            ifindex: m.index,
            ifname: m
                .name
                .clone()
                .or_else(|| old.map(|o| o.ifname.clone()))
                .unwrap_or_else(|| m.index.to_string()),
            link_kind: m
                .kind
                .clone()
                .or_else(|| old.and_then(|o| o.link_kind.clone())),
            mac: m.mac.clone().or_else(|| old.and_then(|o| o.mac.clone())),
            up: m.flags & IFF_UP != 0,
            carrier: m.flags & IFF_LOWER_UP != 0,
        }
    }

    fn new_link(&mut self, m: &LinkMsg) -> Vec<What> {
        // AF_BRIDGE messages describe bridge ports, not the link itself.
        if m.family != AF_UNSPEC {
            return Vec::new();
        }
        let new = self.link_of(m);
        let old = self.links.insert(m.index, new.clone());
        match old {
            None => vec![What::LinkAdded(new)],
            Some(old) => self.link_transition(&old, &new),
        }
    }

    /// Up/down first; carrier changes only while the link stays up: taking a link down drops
    /// its carrier too, and that is one event, not two.
    fn link_transition(&mut self, old: &Link, new: &Link) -> Vec<What> {
        let mut out = Vec::new();
        if !old.up && new.up {
            out.push(What::LinkUp(new.clone()));
        } else if old.up && !new.up {
            out.push(What::LinkDown(new.clone()));
            // The kernel flushes IPv4 routes through a link that goes down without telling
            // anyone (no RTM_DELROUTE); IPv6 keeps them.
            out.extend(self.forget_routes(new.ifindex, Some(AF_INET)));
        } else if new.up && old.carrier != new.carrier {
            out.push(if new.carrier {
                What::CarrierRegained(new.clone())
            } else {
                What::CarrierLost(new.clone())
            });
        }
        out
    }

    fn forget_routes(&mut self, ifindex: u32, family: Option<u8>) -> Vec<What> {
        let gone: Vec<RouteKey> = self
            .routes
            .keys()
            .filter(|k| k.4 == Some(ifindex) && family.is_none_or(|f| k.0 == f))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|k| self.routes.remove(&k))
            .map(What::DefaultRouteRemoved)
            .collect()
    }

    fn del_link(&mut self, family: u8, index: u32) -> Vec<What> {
        if family != AF_UNSPEC {
            return Vec::new();
        }
        let Some(link) = self.links.remove(&index) else {
            return Vec::new();
        };
        // Whatever the kernel removed with the link without a notification of its own.
        let mut out = self.forget_routes(index, None);
        self.addrs.retain(|k, _| k.0 != index);
        self.neigh.retain(|k, _| k.0 != index);
        out.push(What::LinkRemoved(link));
        out
    }

    fn address_of(&self, m: &AddrMsg) -> Option<Address> {
        Some(Address {
            ifindex: m.index,
            ifname: self.ifname(m.index).or_else(|| m.label.clone()),
            family: family_name(m.family),
            address: m.addr?.to_string(),
            prefix_len: m.prefix_len,
        })
    }

    fn new_addr(&mut self, m: &AddrMsg) -> Option<What> {
        let a = self.address_of(m)?;
        let key = (m.index, m.addr?, m.prefix_len);
        if self.addrs.contains_key(&key) {
            return None;
        }
        self.addrs.insert(key, a.clone());
        Some(What::AddressAdded(a))
    }

    fn del_addr(&mut self, m: &AddrMsg) -> Option<What> {
        let key = (m.index, m.addr?, m.prefix_len);
        self.addrs.remove(&key).map(What::AddressRemoved)
    }

    /// The default route this message describes, if it is one netmon reports.
    fn default_route_of(&self, m: &RouteMsg) -> Option<DefaultRoute> {
        let is_default = m.dst_len == 0
            && m.rtype == RTN_UNICAST
            && m.flags & RTM_F_CLONED == 0
            && m.table != RT_TABLE_LOCAL
            && (m.family == AF_INET || m.family == AF_INET6);
        is_default.then(|| DefaultRoute {
            family: family_name(m.family),
            gateway: m.gateway.map(|g| g.to_string()),
            ifindex: m.oif,
            ifname: m.oif.and_then(|i| self.ifname(i)),
            metric: m.metric,
            table: m.table,
        })
    }

    fn new_route(&mut self, m: &RouteMsg, nl_flags: u16) -> Vec<What> {
        let Some(r) = self.default_route_of(m) else {
            return Vec::new();
        };
        let key = route_key(&r, m.family);
        if self.routes.contains_key(&key) {
            return Vec::new();
        }
        // `ip route replace/change` sends one RTM_NEWROUTE with NLM_F_REPLACE and no delete for
        // the route it replaced: the one with the same family, table and metric.
        if nl_flags & NLM_F_REPLACE != 0
            && let Some(old_key) = self
                .routes
                .keys()
                .find(|k| (k.0, k.1, k.2) == (key.0, key.1, key.2))
                .cloned()
            && let Some(old) = self.routes.remove(&old_key)
        {
            self.routes.insert(key, r.clone());
            return vec![What::DefaultRouteChanged(RouteChange {
                route: r,
                previous_gateway: old.gateway,
                previous_ifname: old.ifname,
            })];
        }
        self.routes.insert(key, r.clone());
        vec![What::DefaultRouteAdded(r)]
    }

    fn del_route(&mut self, m: &RouteMsg) -> Option<What> {
        let r = self.default_route_of(m)?;
        self.routes
            .remove(&route_key(&r, m.family))
            .map(What::DefaultRouteRemoved)
    }

    fn new_neigh(&mut self, m: &NeighMsg) -> Option<What> {
        if !(m.family == AF_INET || m.family == AF_INET6)
            || m.state & NUD_VALID == 0
            || m.lladdr.is_none()
        {
            return None;
        }
        let key = (m.index, m.dst?);
        if self.neigh.contains_key(&key) {
            return None;
        }
        self.remember_neighbour(key, m.lladdr.clone(), m.state);
        Some(What::NeighbourNew(Neighbour {
            ifindex: m.index,
            ifname: self.ifname(m.index),
            address: key.1.to_string(),
            mac: m.lladdr.clone(),
            state: nud_name(m.state),
        }))
    }

    fn remember_neighbour(&mut self, key: (u32, IpAddr), mac: Option<String>, state: u16) {
        self.neigh_clock += 1;
        let at = self.neigh_clock;
        self.neigh.insert(key, Seen { at, mac, state });
        if self.neigh.len() > MAX_SEEN_NEIGHBOURS {
            let cut = self.neigh_clock - (MAX_SEEN_NEIGHBOURS as u64) / 2;
            self.neigh.retain(|_, s| s.at > cut);
        }
    }

    /// Builds a state from dump messages, reporting nothing: what exists at start (or at a
    /// resync) is the baseline, not news.
    pub fn from_dump<'a>(msgs: impl IntoIterator<Item = &'a RtMsg>) -> NetState {
        let mut s = NetState::default();
        for m in msgs {
            s.apply(m, 0);
        }
        s
    }

    /// Replaces this state with `fresh` (a re-dump) and returns the events between the two.
    pub fn reconcile(&mut self, fresh: NetState) -> Vec<What> {
        let mut out = Vec::new();
        for (idx, new) in &fresh.links {
            match self.links.get(idx) {
                None => out.push(What::LinkAdded(new.clone())),
                Some(old) => {
                    // Transition events only: the route flush a down link implies is found by
                    // the route diff below, from the dump itself.
                    let mut scratch = NetState::default();
                    out.extend(
                        scratch
                            .link_transition(old, new)
                            .into_iter()
                            .filter(|w| !matches!(w, What::DefaultRouteRemoved(_))),
                    );
                }
            }
        }
        for (k, a) in &self.addrs {
            if !fresh.addrs.contains_key(k) {
                out.push(What::AddressRemoved(a.clone()));
            }
        }
        for (k, a) in &fresh.addrs {
            if !self.addrs.contains_key(k) {
                out.push(What::AddressAdded(a.clone()));
            }
        }
        out.extend(diff_routes(&self.routes, &fresh.routes));
        for (idx, old) in &self.links {
            if !fresh.links.contains_key(idx) {
                out.push(What::LinkRemoved(old.clone()));
            }
        }
        let mut next = fresh;
        // Neighbours: everything seen before stays seen; those the dump adds are news.
        let seen = std::mem::take(&mut self.neigh);
        let fresh_neigh = std::mem::replace(&mut next.neigh, seen);
        next.neigh_clock = self.neigh_clock;
        next.neigh.retain(|k, _| next.links.contains_key(&k.0));
        for (key, n) in fresh_neigh {
            if !next.neigh.contains_key(&key) {
                next.remember_neighbour(key, n.mac.clone(), n.state);
                out.push(What::NeighbourNew(Neighbour {
                    ifindex: key.0,
                    ifname: next.ifname(key.0),
                    address: key.1.to_string(),
                    mac: n.mac,
                    state: nud_name(n.state),
                }));
            }
        }
        *self = next;
        out
    }
}

/// Routes that changed between two states, grouped by (family, table, metric): one route out
/// and one in within a group is a change, anything else is removals and additions.
fn diff_routes(
    old: &BTreeMap<RouteKey, DefaultRoute>,
    new: &BTreeMap<RouteKey, DefaultRoute>,
) -> Vec<What> {
    let groups: BTreeSet<(u8, u32, u32)> = old
        .keys()
        .chain(new.keys())
        .map(|k| (k.0, k.1, k.2))
        .collect();
    let mut out = Vec::new();
    for g in groups {
        let gone: Vec<&DefaultRoute> = old
            .iter()
            .filter(|(k, _)| (k.0, k.1, k.2) == g && !new.contains_key(k))
            .map(|(_, r)| r)
            .collect();
        let came: Vec<&DefaultRoute> = new
            .iter()
            .filter(|(k, _)| (k.0, k.1, k.2) == g && !old.contains_key(k))
            .map(|(_, r)| r)
            .collect();
        if let ([o], [n]) = (gone.as_slice(), came.as_slice()) {
            out.push(What::DefaultRouteChanged(RouteChange {
                route: (*n).clone(),
                previous_gateway: o.gateway.clone(),
                previous_ifname: o.ifname.clone(),
            }));
            continue;
        }
        out.extend(gone.into_iter().cloned().map(What::DefaultRouteRemoved));
        out.extend(came.into_iter().cloned().map(What::DefaultRouteAdded));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::rtnl::parse_datagram;

    /// Every captured datagram of the fixture sequence (see its README), in order.
    fn sequence() -> Vec<(RtMsg, u16)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rtnetlink/sequence");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let (msgs, err) = parse_datagram(&std::fs::read(&f).unwrap());
            assert_eq!(err, None, "{}", f.display());
            for m in msgs {
                out.push((m.msg.unwrap(), m.flags));
            }
        }
        out
    }

    fn describe(w: &What) -> String {
        match w {
            What::LinkAdded(l)
            | What::LinkRemoved(l)
            | What::LinkUp(l)
            | What::LinkDown(l)
            | What::CarrierLost(l)
            | What::CarrierRegained(l) => {
                format!("{} {}", w.name(), l.ifname)
            }
            What::AddressAdded(a) | What::AddressRemoved(a) => format!(
                "{} {}/{} {}",
                w.name(),
                a.address,
                a.prefix_len,
                a.ifname.as_deref().unwrap_or("?")
            ),
            What::DefaultRouteAdded(r) | What::DefaultRouteRemoved(r) => format!(
                "{} {} {}",
                w.name(),
                r.gateway.as_deref().unwrap_or("-"),
                r.ifname.as_deref().unwrap_or("-")
            ),
            What::DefaultRouteChanged(c) => format!(
                "{} {} -> {}",
                w.name(),
                c.previous_gateway.as_deref().unwrap_or("-"),
                c.route.gateway.as_deref().unwrap_or("-")
            ),
            What::NeighbourNew(n) => format!(
                "{} {} {} {}",
                w.name(),
                n.address,
                n.mac.as_deref().unwrap_or("-"),
                n.ifname.as_deref().unwrap_or("?")
            ),
            other => other.name().to_string(),
        }
    }

    #[test]
    fn captured_sequence_gives_exactly_the_expected_events() {
        let mut s = NetState::default();
        let got: Vec<String> = sequence()
            .iter()
            .flat_map(|(m, f)| s.apply(m, *f))
            .map(|w| describe(&w))
            .collect();
        // The link-local address is derived from a random MAC: name it by its prefix only.
        let got: Vec<String> = got
            .into_iter()
            .map(|g| match g.find("fe80::") {
                Some(i) => format!("{}fe80::LL{}", &g[..i], &g[g[i..].find('/').unwrap() + i..]),
                None => g,
            })
            .collect();
        // The kernel's own order; deleting an up link takes it down first, and IPv6 announces
        // a link-local address only once duplicate detection passed (the veths' never did).
        let want = [
            "link_added dum0",
            "link_added ve1",
            "link_added ve0",
            "address_added 10.9.0.1/24 dum0",
            "link_up dum0",
            "address_added fe80::LL/64 dum0",
            "address_added fd09::1/64 dum0",
            "link_up ve0",
            "link_up ve1",
            "carrier_regained ve0",
            "default_route_added 10.9.0.254 dum0",
            "default_route_changed 10.9.0.254 -> 10.9.0.253",
            "neighbour_new 10.9.0.7 02:00:00:00:00:07 dum0",
            "link_down ve1",
            "carrier_lost ve0",
            "default_route_removed 10.9.0.253 dum0",
            "address_removed 10.9.0.1/24 dum0",
            "link_down ve0",
            "link_removed ve0",
            "link_removed ve1",
            "link_down dum0",
            "address_removed fd09::1/64 dum0",
            "address_removed fe80::LL/64 dum0",
            "link_removed dum0",
        ];
        assert_eq!(got, want);
        // After everything was removed, nothing is left behind.
        assert_eq!(s.links(), 0);
        assert!(s.routes.is_empty() && s.addrs.is_empty());
    }

    #[test]
    fn a_repeated_notification_is_silent() {
        // A notification that races a dump arrives twice, in effect: the second changes nothing.
        let mut s = NetState::default();
        for (m, f) in sequence() {
            s.apply(&m, f);
            if matches!(
                m,
                RtMsg::NewLink(_) | RtMsg::NewAddr(_) | RtMsg::NewRoute(_) | RtMsg::NewNeigh(_)
            ) {
                let before = s.clone();
                assert!(s.apply(&m, f).is_empty(), "{m:?}");
                assert_eq!(s, before);
            }
        }
    }

    #[test]
    fn resync_reports_what_the_lost_notifications_would_have() {
        let seq = sequence();
        // Known state after the first 23 datagrams' messages; then an overrun loses messages up
        // to the neighbour, and the re-dump shows the state after it.
        let mut known = NetState::default();
        let mut truth = NetState::default();
        let cut = seq
            .iter()
            .position(|(m, _)| matches!(m, RtMsg::NewRoute(r) if r.dst_len == 0))
            .unwrap();
        let end = seq
            .iter()
            .position(|(m, _)| matches!(m, RtMsg::NewNeigh(_)))
            .unwrap();
        for (i, (m, f)) in seq.iter().enumerate().take(end + 1) {
            if i < cut {
                known.apply(m, *f);
            }
            truth.apply(m, *f);
        }
        // A dump carries no replace flags: rebuild the truth as a dump would.
        let dump = NetState {
            neigh: truth.neigh.clone(),
            ..truth.clone()
        };
        let got: Vec<String> = known.reconcile(dump).iter().map(describe).collect();
        assert_eq!(
            got,
            vec![
                "default_route_added 10.9.0.253 dum0".to_string(),
                "neighbour_new 10.9.0.7 02:00:00:00:00:07 dum0".to_string(),
            ]
        );
        assert_eq!(known.routes, truth.routes);
        assert!(known.reconcile(truth.clone()).is_empty());
    }

    #[test]
    fn link_down_flushes_ipv4_default_routes() {
        let seq = sequence();
        let mut s = NetState::default();
        let route_added = seq
            .iter()
            .position(|(m, _)| matches!(m, RtMsg::NewRoute(r) if r.dst_len == 0))
            .unwrap();
        for (m, f) in &seq[..=route_added] {
            s.apply(m, *f);
        }
        let RtMsg::NewLink(mut down) = seq[0].0.clone() else {
            panic!()
        };
        down.flags = 0;
        let got: Vec<String> = s
            .apply(&RtMsg::NewLink(down), 0)
            .iter()
            .map(describe)
            .collect();
        assert_eq!(
            got,
            vec!["link_down dum0", "default_route_removed 10.9.0.254 dum0"]
        );
    }
}
