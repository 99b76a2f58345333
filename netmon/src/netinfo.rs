//! `netmon interfaces` and `netmon routes`: the host's interfaces (name, index, addresses, MTU,
//! state, promiscuous) and routes with their gateways. Interface facts come from
//! /sys/class/net (a root that tests point at a fixture tree), addresses from getifaddrs.
use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::procnet::{NetRoot, route};

const IFF_UP: u32 = 0x1;
const IFF_PROMISC: u32 = 0x100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub index: u32,
    pub mac: String,
    pub mtu: u32,
    /// `operstate`: up, down, unknown (loopback), dormant...
    pub state: String,
    pub up: bool,
    pub promisc: bool,
    /// `addr/prefix`, IPv4 first.
    pub addresses: Vec<String>,
}

fn read_trim(p: PathBuf) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Interfaces under `sys_class_net` (normally /sys/class/net), with `addresses` by name.
pub fn interfaces_from(
    sys_class_net: &Path,
    addresses: &BTreeMap<String, Vec<String>>,
) -> std::io::Result<Vec<InterfaceInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(sys_class_net)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        let Ok(index) = read_trim(dir.join("ifindex")).parse::<u32>() else {
            continue;
        };
        let flags = u32::from_str_radix(read_trim(dir.join("flags")).trim_start_matches("0x"), 16)
            .unwrap_or(0);
        out.push(InterfaceInfo {
            index,
            mac: read_trim(dir.join("address")),
            mtu: read_trim(dir.join("mtu")).parse().unwrap_or(0),
            state: read_trim(dir.join("operstate")),
            up: flags & IFF_UP != 0,
            promisc: flags & IFF_PROMISC != 0,
            addresses: addresses.get(&name).cloned().unwrap_or_default(),
            name,
        });
    }
    out.sort_by_key(|i| i.index);
    Ok(out)
}

/// Every address of every interface, from getifaddrs.
pub fn addresses() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<(u8, String)>> = BTreeMap::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and free with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return BTreeMap::new();
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let (Some(addr), Some(mask)) = (unsafe { sockaddr_ip(ifa.ifa_addr) }, unsafe {
            sockaddr_ip(ifa.ifa_netmask)
        }) else {
            continue;
        };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let prefix = match mask {
            IpAddr::V4(m) => u32::from(m).count_ones(),
            IpAddr::V6(m) => u128::from(m).count_ones(),
        };
        let order = if addr.is_ipv4() { 0 } else { 1 };
        out.entry(name)
            .or_default()
            .push((order, format!("{addr}/{prefix}")));
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.into_iter()
        .map(|(k, mut v)| {
            v.sort();
            (k, v.into_iter().map(|(_, a)| a).collect())
        })
        .collect()
}

/// # Safety
/// `sa` is null or points to a sockaddr of its family's size.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match unsafe { (*sa).sa_family } as i32 {
        libc::AF_INET => {
            let s = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes()))
        }
        libc::AF_INET6 => {
            let s = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(IpAddr::from(s.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

pub fn render_interfaces(list: &[InterfaceInfo]) -> String {
    let mut out = format!(
        "{:<5} {:<16} {:<8} {:>6} {:<17} {:<7} ADDRESSES\n",
        "INDEX", "NAME", "STATE", "MTU", "MAC", "PROMISC"
    );
    for i in list {
        out.push_str(&format!(
            "{:<5} {:<16} {:<8} {:>6} {:<17} {:<7} {}\n",
            i.index,
            i.name,
            if i.up { i.state.as_str() } else { "down" },
            i.mtu,
            i.mac,
            if i.promisc { "yes" } else { "no" },
            i.addresses.join(" ")
        ));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    pub family: u8,
    /// `default` or `addr/prefix`.
    pub destination: String,
    /// Empty for directly connected routes.
    pub gateway: String,
    pub iface: String,
    pub metric: u32,
    pub default: bool,
}

impl RouteInfo {
    /// `prefix` None: a non-contiguous IPv4 mask, shown as the mask itself.
    fn new(
        dest: IpAddr,
        prefix: Option<u8>,
        mask: &dyn std::fmt::Display,
        gateway: IpAddr,
        iface: String,
        metric: u32,
    ) -> RouteInfo {
        let default = dest.is_unspecified() && prefix == Some(0);
        RouteInfo {
            family: if dest.is_ipv4() { 4 } else { 6 },
            destination: match (default, prefix) {
                (true, _) => "default".into(),
                (false, Some(p)) => format!("{dest}/{p}"),
                (false, None) => format!("{dest}/{mask}"),
            },
            gateway: if gateway.is_unspecified() {
                String::new()
            } else {
                gateway.to_string()
            },
            iface,
            metric,
            default,
        }
    }
}

/// Routes from a proc net root (the host's, or a namespace's through /proc/PID).
pub fn routes(root: &NetRoot) -> Vec<RouteInfo> {
    let dir = root.net_dir();
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string(dir.join("route")) {
        for r in route::parse_v4(&t).rows {
            if r.flags.contains(route::RouteFlags::UP) {
                out.push(RouteInfo::new(
                    r.destination.into(),
                    r.prefix_len,
                    &r.mask,
                    r.gateway.into(),
                    r.iface,
                    r.metric,
                ));
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string(dir.join("ipv6_route")) {
        for r in route::parse_v6(&t).rows {
            // The local table's host routes and the "lo" reject routes are noise here.
            if r.flags.contains(route::RouteFlags::UP) && r.iface != "lo" {
                out.push(RouteInfo::new(
                    r.destination.into(),
                    Some(r.destination_prefix_len),
                    &r.destination_prefix_len,
                    r.next_hop.into(),
                    r.iface,
                    r.metric,
                ));
            }
        }
    }
    out.sort_by(|a, b| {
        b.default
            .cmp(&a.default)
            .then(a.family.cmp(&b.family))
            .then(a.metric.cmp(&b.metric))
    });
    out
}

pub fn render_routes(list: &[RouteInfo]) -> String {
    let mut out = String::new();
    let gateways: Vec<&RouteInfo> = list.iter().filter(|r| r.default).collect();
    if gateways.is_empty() {
        out.push_str("default gateway: none\n");
    }
    for g in &gateways {
        out.push_str(&format!(
            "default gateway (IPv{}): {} via {} metric {}\n",
            g.family,
            if g.gateway.is_empty() {
                "-"
            } else {
                &g.gateway
            },
            g.iface,
            g.metric
        ));
    }
    out.push_str(&format!(
        "\n{:<44} {:<40} {:<16} {:>6}\n",
        "DESTINATION", "GATEWAY", "IFACE", "METRIC"
    ));
    for r in list {
        out.push_str(&format!(
            "{:<44} {:<40} {:<16} {:>6}\n",
            r.destination,
            if r.gateway.is_empty() {
                "-"
            } else {
                &r.gateway
            },
            r.iface,
            r.metric
        ));
    }
    out
}

/// Index → name, for capture lines.
pub fn index_names(list: &[InterfaceInfo]) -> BTreeMap<u32, String> {
    list.iter().map(|i| (i.index, i.name.clone())).collect()
}

/// Names of the host's interfaces that are up (capture's default).
pub fn up_interfaces() -> Vec<InterfaceInfo> {
    interfaces_from(Path::new("/sys/class/net"), &BTreeMap::new())
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.up)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysnet")
    }

    #[test]
    fn interfaces_from_a_sys_tree() {
        let addrs = BTreeMap::from([(
            "eth0".to_string(),
            vec!["10.0.0.5/24".to_string(), "fe80::1/64".to_string()],
        )]);
        let list = interfaces_from(&fixture(), &addrs).unwrap();
        let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "veth9"]);
        let eth0 = &list[1];
        assert_eq!(
            (eth0.index, eth0.mtu, eth0.up, eth0.promisc),
            (2, 1500, true, true)
        );
        assert_eq!(eth0.mac, "52:54:00:12:34:56");
        assert_eq!(eth0.addresses, ["10.0.0.5/24", "fe80::1/64"]);
        assert!(!list[2].up, "veth9 flags 0x1002: down");
        insta::assert_snapshot!("interfaces", render_interfaces(&list));
    }

    #[test]
    fn routes_from_the_procnet_fixture() {
        let root = NetRoot::new(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procnet/live"),
            None,
        );
        let list = routes(&root);
        assert!(!list.is_empty());
        insta::assert_snapshot!("routes", render_routes(&list));
    }

    #[test]
    fn the_live_host_lists_loopback() {
        let list = interfaces_from(Path::new("/sys/class/net"), &addresses()).unwrap();
        let lo = list.iter().find(|i| i.name == "lo").expect("lo");
        assert!(lo.addresses.iter().any(|a| a == "127.0.0.1/8"), "{lo:?}");
    }
}
