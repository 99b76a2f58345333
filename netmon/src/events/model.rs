//! The host event model: what happened, where and when. Sources build a [`What`]; the command
//! stamps it into a [`HostEvent`]; sinks print it (one human line or one JSON object) or hand it
//! to `--exec`. Field names are part of netmon's output contract: JSON consumers and `--exec`
//! scripts key on them, so rename nothing here without a migration note.
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The family an event belongs to; `--kind` selects on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// USB and block devices, filesystem mounts.
    Device,
    /// Interfaces, addresses, default routes, neighbours.
    Net,
    /// A process starts or stops listening on a port (TCP LISTEN, bound UDP).
    Listen,
    /// A process's first connection to a watched or intranet network (or, with
    /// --new-remotes, to a remote never seen before).
    Contact,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::Net => "net",
            Kind::Listen => "listen",
            Kind::Contact => "contact",
        }
    }

    pub const ALL: [Kind; 4] = [Kind::Device, Kind::Net, Kind::Listen, Kind::Contact];
}

/// One event as printed and recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostEvent {
    /// RFC 3339, UTC, milliseconds: when netmon saw the event.
    pub time: String,
    pub host: String,
    pub kind: Kind,
    /// `event` (the variant name) and the variant's own fields, flattened into this object so
    /// consumers see one flat record.
    #[serde(flatten)]
    pub what: What,
}

impl HostEvent {
    pub fn new(what: What, host: &str, now: SystemTime) -> HostEvent {
        HostEvent {
            time: rfc3339(now),
            host: host.to_string(),
            kind: what.kind(),
            what,
        }
    }
}

/// What happened. Serialised with an `event` tag (`"event":"link_up"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    UsbAdded(UsbDevice),
    UsbRemoved(UsbDevice),
    BlockAdded(BlockDevice),
    BlockRemoved(BlockDevice),
    Mounted(Mount),
    Unmounted(Mount),
    LinkAdded(Link),
    LinkRemoved(Link),
    LinkUp(Link),
    LinkDown(Link),
    CarrierLost(Link),
    CarrierRegained(Link),
    AddressAdded(Address),
    AddressRemoved(Address),
    DefaultRouteAdded(DefaultRoute),
    DefaultRouteRemoved(DefaultRoute),
    DefaultRouteChanged(RouteChange),
    NeighbourNew(Neighbour),
    ListenStarted(Listener),
    ListenStopped(Listener),
    Contact(Contact),
}

impl What {
    pub fn kind(&self) -> Kind {
        match self {
            What::UsbAdded(_)
            | What::UsbRemoved(_)
            | What::BlockAdded(_)
            | What::BlockRemoved(_)
            | What::Mounted(_)
            | What::Unmounted(_) => Kind::Device,
            What::ListenStarted(_) | What::ListenStopped(_) => Kind::Listen,
            What::Contact(_) => Kind::Contact,
            _ => Kind::Net,
        }
    }

    /// The `event` tag, as in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            What::UsbAdded(_) => "usb_added",
            What::UsbRemoved(_) => "usb_removed",
            What::BlockAdded(_) => "block_added",
            What::BlockRemoved(_) => "block_removed",
            What::Mounted(_) => "mounted",
            What::Unmounted(_) => "unmounted",
            What::LinkAdded(_) => "link_added",
            What::LinkRemoved(_) => "link_removed",
            What::LinkUp(_) => "link_up",
            What::LinkDown(_) => "link_down",
            What::CarrierLost(_) => "carrier_lost",
            What::CarrierRegained(_) => "carrier_regained",
            What::AddressAdded(_) => "address_added",
            What::AddressRemoved(_) => "address_removed",
            What::DefaultRouteAdded(_) => "default_route_added",
            What::DefaultRouteRemoved(_) => "default_route_removed",
            What::DefaultRouteChanged(_) => "default_route_changed",
            What::NeighbourNew(_) => "neighbour_new",
            What::ListenStarted(_) => "listen_started",
            What::ListenStopped(_) => "listen_stopped",
            What::Contact(_) => "contact",
        }
    }

    /// The process the event is about, for events that have one.
    pub fn process(&self) -> Option<(u32, &str)> {
        match self {
            What::ListenStarted(l) | What::ListenStopped(l) => Some((l.pid, l.comm.as_str())),
            What::Contact(c) => Some((c.pid, c.comm.as_str())),
            _ => None,
        }
    }
}

/// A USB device (not one of its interfaces). Names come from sysfs at add time and are
/// remembered for the matching remove, when sysfs no longer has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsbDevice {
    /// Kernel device path under /sys, e.g. `/devices/pci0000:00/0000:00:14.0/usb1/1-2`.
    pub devpath: String,
    /// Bus path as the kernel names the device (`1-2`, `2-1.4`): the last devpath component.
    pub bus_path: String,
    /// Four hex digits, as lsusb prints them.
    pub vendor_id: Option<String>,
    pub product_id: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub driver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// `sda`, `sda1`, `loop20`.
    pub name: String,
    pub devpath: String,
    /// `disk` or `partition`.
    pub devtype: Option<String>,
    /// From sysfs at add time (512-byte sectors × 512); None when sysfs did not say.
    pub size_bytes: Option<u64>,
    pub removable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The kernel's mount id (first column of mountinfo): unique while mounted.
    pub mount_id: u64,
    pub mount_point: String,
    pub source: String,
    pub fstype: String,
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub ifindex: u32,
    pub ifname: String,
    /// `veth`, `bridge`, `ifb`... (IFLA_INFO_KIND); None for physical NICs and loopback.
    pub link_kind: Option<String>,
    pub mac: Option<String>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The lower layer reports a carrier (IFF_LOWER_UP).
    pub carrier: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub ifindex: u32,
    pub ifname: Option<String>,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub address: String,
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    pub family: String,
    pub gateway: Option<String>,
    pub ifindex: Option<u32>,
    pub ifname: Option<String>,
    pub metric: u32,
    /// Routing table id (254 = main).
    pub table: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteChange {
    #[serde(flatten)]
    pub route: DefaultRoute,
    pub previous_gateway: Option<String>,
    pub previous_ifname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ifname: Option<String>,
    pub address: String,
    pub mac: Option<String>,
    /// `reachable`, `stale`, `permanent`...
    pub state: String,
}

/// A socket a process listens on (TCP) or is bound to without a peer (UDP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub pid: u32,
    pub comm: String,
    /// systemd unit from the process's cgroup; empty when none.
    pub unit: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// The bound address and port (`0.0.0.0:8080`, `[::]:53`).
    pub address: String,
    pub port: u16,
}

/// A process's first connection in this run to a network of a class worth hearing about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub pid: u32,
    pub comm: String,
    pub unit: String,
    /// The network: a `--watch-network` name, or the class (`intranet`, `link-local`, or
    /// `new-remote` with --new-remotes).
    pub network: String,
    pub proto: String,
    /// The remote address and port of the first connection.
    pub remote: String,
    pub remote_name: Option<String>,
    /// Further first contacts of this (process, network) not reported in the rate limit's
    /// window, counted (reported with the next event of the pair).
    pub suppressed: u64,
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

impl fmt::Display for HostEvent {
    /// One line: `TIME HOST EVENT details`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {:<21} ", self.time, self.host, self.what.name())?;
        match &self.what {
            What::UsbAdded(u) | What::UsbRemoved(u) => write!(
                f,
                "{} {}:{} {:?} {:?} serial={} driver={}",
                u.bus_path,
                opt(&u.vendor_id),
                opt(&u.product_id),
                opt(&u.manufacturer),
                opt(&u.product),
                opt(&u.serial),
                opt(&u.driver)
            ),
            What::BlockAdded(b) | What::BlockRemoved(b) => {
                write!(f, "{} {}", b.name, opt(&b.devtype))?;
                if let Some(s) = b.size_bytes {
                    write!(f, " size={s}")?;
                }
                if let Some(r) = b.removable {
                    write!(f, " removable={r}")?;
                }
                Ok(())
            }
            What::Mounted(m) | What::Unmounted(m) => {
                write!(
                    f,
                    "{} {} on {} ({})",
                    m.fstype, m.source, m.mount_point, m.options
                )
            }
            What::LinkAdded(l)
            | What::LinkRemoved(l)
            | What::LinkUp(l)
            | What::LinkDown(l)
            | What::CarrierLost(l)
            | What::CarrierRegained(l) => write!(
                f,
                "{} (index {}, {}) mac={} up={} carrier={}",
                l.ifname,
                l.ifindex,
                l.link_kind.as_deref().unwrap_or("device"),
                opt(&l.mac),
                l.up,
                l.carrier
            ),
            What::AddressAdded(a) | What::AddressRemoved(a) => write!(
                f,
                "{}/{} on {}",
                a.address,
                a.prefix_len,
                a.ifname.clone().unwrap_or_else(|| a.ifindex.to_string())
            ),
            What::DefaultRouteAdded(r) | What::DefaultRouteRemoved(r) => write_route(f, r),
            What::DefaultRouteChanged(c) => {
                write_route(f, &c.route)?;
                write!(
                    f,
                    " (was via {} dev {})",
                    opt(&c.previous_gateway),
                    opt(&c.previous_ifname)
                )
            }
            What::NeighbourNew(n) => write!(
                f,
                "{} lladdr {} on {} {}",
                n.address,
                opt(&n.mac),
                n.ifname.clone().unwrap_or_else(|| n.ifindex.to_string()),
                n.state
            ),
            What::ListenStarted(l) | What::ListenStopped(l) => write!(
                f,
                "{}/{} {} pid {} {}{}",
                l.port,
                l.proto,
                l.address,
                l.pid,
                l.comm,
                if l.unit.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", l.unit)
                }
            ),
            What::Contact(c) => {
                write!(
                    f,
                    "{} pid {} {} → {} {}",
                    c.network, c.pid, c.comm, c.proto, c.remote
                )?;
                if let Some(n) = &c.remote_name {
                    write!(f, " ({n})")?;
                }
                if c.suppressed > 0 {
                    write!(f, " (+{} suppressed)", c.suppressed)?;
                }
                Ok(())
            }
        }
    }
}

fn write_route(f: &mut fmt::Formatter<'_>, r: &DefaultRoute) -> fmt::Result {
    write!(
        f,
        "{} via {} dev {} metric {} table {}",
        r.family,
        opt(&r.gateway),
        opt(&r.ifname),
        r.metric,
        r.table
    )
}

/// `2026-12-07T08:30:01.123Z`. Done by hand (days → civil date) rather than with a date crate:
/// this is the only date netmon formats, always UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01, counting in 400-year eras
/// (146097 days each) so that leap years need no table.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468; // shift the epoch to 0000-03-01: leap days then end each year
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // March-based month
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The host name events carry (uname nodename).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        let at = |s: u64, ms: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century year divisible by 400).
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_632_201, 123), "2026-12-07T08:30:01.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    fn link_up() -> HostEvent {
        HostEvent {
            time: "2026-12-07T08:30:01.123Z".into(),
            host: "vm".into(),
            kind: Kind::Net,
            what: What::LinkUp(Link {
                ifindex: 3,
                ifname: "ve0".into(),
                link_kind: Some("veth".into()),
                mac: Some("02:00:00:00:00:01".into()),
                up: true,
                carrier: false,
            }),
        }
    }

    #[test]
    fn json_field_names_are_stable() {
        let j = serde_json::to_string(&link_up()).unwrap();
        assert_eq!(
            j,
            r#"{"time":"2026-12-07T08:30:01.123Z","host":"vm","kind":"net","event":"link_up","ifindex":3,"ifname":"ve0","link_kind":"veth","mac":"02:00:00:00:00:01","up":true,"carrier":false}"#
        );
        let back: HostEvent = serde_json::from_str(&j).unwrap();
        assert_eq!(back, link_up());
    }

    #[test]
    fn route_change_flattens() {
        let e = HostEvent::new(
            What::DefaultRouteChanged(RouteChange {
                route: DefaultRoute {
                    family: "ipv4".into(),
                    gateway: Some("10.0.0.2".into()),
                    ifindex: Some(2),
                    ifname: Some("eth0".into()),
                    metric: 0,
                    table: 254,
                },
                previous_gateway: Some("10.0.0.1".into()),
                previous_ifname: Some("eth0".into()),
            }),
            "vm",
            UNIX_EPOCH,
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "default_route_changed");
        assert_eq!(v["gateway"], "10.0.0.2");
        assert_eq!(v["previous_gateway"], "10.0.0.1");
        assert_eq!(
            e.to_string(),
            "1970-01-01T00:00:00.000Z vm default_route_changed ipv4 via 10.0.0.2 dev eth0 metric 0 table 254 (was via 10.0.0.1 dev eth0)"
        );
    }

    #[test]
    fn human_line() {
        assert_eq!(
            link_up().to_string(),
            "2026-12-07T08:30:01.123Z vm link_up               ve0 (index 3, veth) mac=02:00:00:00:00:01 up=true carrier=false"
        );
    }
}
