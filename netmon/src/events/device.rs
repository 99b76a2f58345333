//! Device events: kernel uevents (USB devices, block devices) turned into [`What`]s, with the
//! facts a uevent does not carry (names, size, removable) read from sysfs at add time.
//!
//! The socket is the kernel's uevent multicast group (1), not udev's (2): netmon must not depend
//! on udev running, and the kernel's message is the ground truth udev itself starts from.
use std::{
    collections::HashMap,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use rustix::net::{
    AddressFamily, RecvFlags, SocketFlags, SocketType,
    netlink::{self, SocketAddrNetlink},
};

use super::{
    model::{BlockDevice, UsbDevice, What},
    stats::Stats,
    uevent::{self, Uevent},
};

/// Turns uevents into device events. Remembers what it reported at add time, because by the
/// time a remove arrives sysfs has already forgotten the names.
pub struct DeviceTracker {
    sysfs: PathBuf,
    usb: HashMap<String, UsbDevice>,
    block: HashMap<String, BlockDevice>,
}

fn read_attr(dir: &Path, name: &str) -> Option<String> {
    let s = std::fs::read_to_string(dir.join(name)).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn link_name(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

fn last_component(devpath: &str) -> String {
    devpath.rsplit('/').next().unwrap_or(devpath).to_string()
}

/// `PRODUCT=46f4/1/0` (hex vendor/product/bcdDevice, no padding) → ("46f4", "0001").
fn ids_from_product(product: &str) -> Option<(String, String)> {
    let mut it = product.split('/');
    let v = u16::from_str_radix(it.next()?, 16).ok()?;
    let p = u16::from_str_radix(it.next()?, 16).ok()?;
    Some((format!("{v:04x}"), format!("{p:04x}")))
}

impl DeviceTracker {
    /// `sysfs` is normally `/sys`; tests point it at a fixture tree.
    pub fn new(sysfs: impl Into<PathBuf>) -> DeviceTracker {
        DeviceTracker {
            sysfs: sysfs.into(),
            usb: HashMap::new(),
            block: HashMap::new(),
        }
    }

    fn dir(&self, devpath: &str) -> PathBuf {
        self.sysfs.join(devpath.trim_start_matches('/'))
    }

    /// The event this uevent means, if it is one netmon reports.
    pub fn handle(&mut self, u: &Uevent) -> Option<What> {
        // `udevadm trigger` (and writing to a device's `uevent` file) replays "add" for devices
        // that were already there, marked with SYNTH_UUID: not news.
        if u.var("SYNTH_UUID").is_some() {
            log::debug!("events: skipping synthetic {} of {}", u.action, u.devpath);
            return None;
        }
        match (u.subsystem()?, u.var("DEVTYPE")) {
            ("usb", Some("usb_device")) => self.usb_event(u),
            ("block", Some("disk" | "partition")) => self.block_event(u),
            _ => None,
        }
    }

    /// A USB device as sysfs shows it, with the uevent's keys where sysfs has nothing.
    fn usb_from_sysfs(&self, devpath: &str, u: Option<&Uevent>) -> UsbDevice {
        let dir = self.dir(devpath);
        let from_product = u.and_then(|u| u.var("PRODUCT")).and_then(ids_from_product);
        UsbDevice {
            devpath: devpath.to_string(),
            bus_path: last_component(devpath),
            vendor_id: read_attr(&dir, "idVendor")
                .or_else(|| from_product.as_ref().map(|p| p.0.clone())),
            product_id: read_attr(&dir, "idProduct")
                .or_else(|| from_product.as_ref().map(|p| p.1.clone())),
            manufacturer: read_attr(&dir, "manufacturer"),
            product: read_attr(&dir, "product"),
            serial: read_attr(&dir, "serial"),
            // The driver binds after "add" more often than not; then only sysfs has it once
            // it is there, and a later "bind" fills it in for the remove event.
            driver: u
                .and_then(|u| u.var("DRIVER"))
                .map(str::to_string)
                .or_else(|| link_name(&dir.join("driver"))),
        }
    }

    fn block_from_sysfs(&self, devpath: &str, name: String, devtype: Option<&str>) -> BlockDevice {
        let dir = self.dir(devpath);
        // A partition's `removable` is its disk's: the parent directory in sysfs.
        let removable_dir = if devtype == Some("partition") {
            dir.parent().map(Path::to_path_buf).unwrap_or(dir.clone())
        } else {
            dir.clone()
        };
        BlockDevice {
            name,
            devpath: devpath.to_string(),
            devtype: devtype.map(str::to_string),
            size_bytes: read_attr(&dir, "size")
                .and_then(|s| s.parse::<u64>().ok())
                .map(|sectors| sectors.saturating_mul(512)),
            removable: read_attr(&removable_dir, "removable").map(|r| r == "1"),
        }
    }

    /// The devpaths of the links in `sysfs/CLASS_DIR` (each a symlink into /sys/devices).
    fn devpaths_in(&self, class_dir: &str) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(self.sysfs.join(class_dir)) else {
            return Vec::new();
        };
        let root = std::fs::canonicalize(&self.sysfs).unwrap_or_else(|_| self.sysfs.clone());
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let real = std::fs::canonicalize(e.path()).ok()?;
                let rel = real.strip_prefix(&root).ok()?;
                Some((format!("/{}", rel.display()), name))
            })
            .collect()
    }

    /// USB devices and block devices present now, as sysfs shows them. USB interfaces
    /// (`1-2:1.0`) are listed there too; devices are the names without a colon.
    fn scan(&self) -> (HashMap<String, UsbDevice>, HashMap<String, BlockDevice>) {
        let usb = self
            .devpaths_in("bus/usb/devices")
            .into_iter()
            .filter(|(_, name)| !name.contains(':'))
            .map(|(dp, _)| {
                let d = self.usb_from_sysfs(&dp, None);
                (dp, d)
            })
            .collect();
        let block = self
            .devpaths_in("class/block")
            .into_iter()
            .map(|(dp, name)| {
                let partition = self.dir(&dp).join("partition").exists();
                let devtype = if partition { "partition" } else { "disk" };
                let d = self.block_from_sysfs(&dp, name, Some(devtype));
                (dp, d)
            })
            .collect();
        (usb, block)
    }

    /// Takes what is present now as known: not news, but named when it goes away.
    pub fn baseline(&mut self) {
        (self.usb, self.block) = self.scan();
    }

    /// After lost uevents: what appeared and disappeared since the last known state.
    pub fn rescan(&mut self) -> Vec<What> {
        let (usb, block) = self.scan();
        let mut out = reconcile(&mut self.usb, usb, What::UsbRemoved, What::UsbAdded);
        out.extend(reconcile(
            &mut self.block,
            block,
            What::BlockRemoved,
            What::BlockAdded,
        ));
        out
    }

    fn usb_event(&mut self, u: &Uevent) -> Option<What> {
        match u.action.as_str() {
            "add" => {
                let dev = self.usb_from_sysfs(&u.devpath, Some(u));
                self.usb.insert(u.devpath.clone(), dev.clone());
                Some(What::UsbAdded(dev))
            }
            "bind" => {
                if let (Some(d), Some(drv)) = (self.usb.get_mut(&u.devpath), u.var("DRIVER")) {
                    d.driver = Some(drv.to_string());
                }
                None
            }
            "remove" => {
                let dev = self.usb.remove(&u.devpath).unwrap_or_else(|| {
                    let ids = u.var("PRODUCT").and_then(ids_from_product);
                    UsbDevice {
                        devpath: u.devpath.clone(),
                        bus_path: last_component(&u.devpath),
                        vendor_id: ids.as_ref().map(|p| p.0.clone()),
                        product_id: ids.map(|p| p.1),
                        manufacturer: None,
                        product: None,
                        serial: None,
                        driver: u.var("DRIVER").map(str::to_string),
                    }
                });
                Some(What::UsbRemoved(dev))
            }
            _ => None,
        }
    }

    fn block_event(&mut self, u: &Uevent) -> Option<What> {
        let name = u
            .var("DEVNAME")
            .map(str::to_string)
            .unwrap_or_else(|| last_component(&u.devpath));
        match u.action.as_str() {
            "add" => {
                let dev = self.block_from_sysfs(&u.devpath, name, u.var("DEVTYPE"));
                self.block.insert(u.devpath.clone(), dev.clone());
                Some(What::BlockAdded(dev))
            }
            "remove" => {
                let dev = self
                    .block
                    .remove(&u.devpath)
                    .unwrap_or_else(|| BlockDevice {
                        name,
                        devpath: u.devpath.clone(),
                        devtype: u.var("DEVTYPE").map(str::to_string),
                        size_bytes: None,
                        removable: None,
                    });
                Some(What::BlockRemoved(dev))
            }
            _ => None,
        }
    }
}

/// Updates `known` to `now`: removals (with what was known at add time), then additions,
/// each in devpath order. Devices in both keep their known facts.
fn reconcile<T: Clone>(
    known: &mut HashMap<String, T>,
    now: HashMap<String, T>,
    removed: fn(T) -> What,
    added: fn(T) -> What,
) -> Vec<What> {
    let mut gone: Vec<String> = known
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    gone.sort();
    let mut out: Vec<What> = gone
        .iter()
        .filter_map(|k| known.remove(k))
        .map(removed)
        .collect();
    let mut came: Vec<(String, T)> = now
        .into_iter()
        .filter(|(k, _)| !known.contains_key(k))
        .collect();
    came.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, d) in came {
        known.insert(k, d.clone());
        out.push(added(d));
    }
    out
}

#[derive(Debug, thiserror::Error)]
#[error("{call} on the kernel uevent socket")]
pub struct UeventSocketError {
    call: &'static str,
    #[source]
    source: std::io::Error,
}

/// The kernel's uevent socket, bound to its multicast group.
fn open_socket() -> Result<OwnedFd, UeventSocketError> {
    let err = |call| {
        move |e: rustix::io::Errno| UeventSocketError {
            call,
            source: e.into(),
        }
    };
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::KOBJECT_UEVENT),
    )
    .map_err(err("socket"))?;
    // A burst (a USB hub with many ports, a disk with many partitions) must not overrun the
    // default buffer; 1 MiB holds hundreds of uevents. Not fatal if refused.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
    rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 1)).map_err(err("bind"))?;
    Ok(fd)
}

/// Device events: the uevent socket and what is known about the devices present.
pub struct DeviceSource {
    fd: OwnedFd,
    tracker: DeviceTracker,
}

impl DeviceSource {
    /// Subscribes first, then takes the devices present (`sysfs`, normally /sys) as known.
    pub fn open(sysfs: &Path) -> Result<DeviceSource, UeventSocketError> {
        let fd = open_socket()?;
        let mut tracker = DeviceTracker::new(sysfs);
        tracker.baseline();
        Ok(DeviceSource { fd, tracker })
    }

    /// How many USB and block devices are known (present at start or added since).
    pub fn known(&self) -> (usize, usize) {
        (self.tracker.usb.len(), self.tracker.block.len())
    }

    /// Reads the socket empty without blocking: after an overrun the kernel reports ENOBUFS
    /// once and stays silent about further drops until the queue has been read empty, so the
    /// rescan must come after this, not before.
    fn drain(&self, buf: &mut [u8]) {
        loop {
            match rustix::net::recv(&self.fd, &mut *buf, RecvFlags::DONTWAIT) {
                Ok(_) | Err(rustix::io::Errno::INTR | rustix::io::Errno::NOBUFS) => {}
                Err(_) => return,
            }
        }
    }

    /// Reads uevents until the socket fails or `emit` says stop.
    pub fn run(mut self, stats: &Stats, mut emit: impl FnMut(What) -> bool) -> std::io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let (n, from) = match rustix::net::recvfrom(&self.fd, &mut buf, RecvFlags::empty()) {
                Ok((n, _, from)) => (n, from),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::NOBUFS) => {
                    // Lost uevents cannot be re-read; sysfs shows what exists now, and the
                    // difference to what netmon knew is what they would have said.
                    stats.count(&stats.uevent_overruns);
                    stats.count(&stats.resyncs);
                    log::warn!("events: uevent receive buffer overrun; rescanning sysfs");
                    self.drain(&mut buf);
                    for w in self.tracker.rescan() {
                        if !emit(w) {
                            return Ok(());
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            // Only the kernel (port id 0) sends on this group; anything else is not a uevent.
            let sender = from
                .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                .map(|a| a.pid());
            if sender != Some(0) {
                stats.count(&stats.uevents_malformed);
                log::debug!("events: ignoring a uevent from netlink port {sender:?}");
                continue;
            }
            match uevent::parse(&buf[..n]) {
                Ok(u) => {
                    if let Some(w) = self.tracker.handle(&u)
                        && !emit(w)
                    {
                        return Ok(());
                    }
                }
                Err(e) => {
                    stats.count(&stats.uevents_malformed);
                    log::warn!("events: skipping a malformed uevent: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Uevent {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/uevent")
            .join(name);
        uevent::parse(&std::fs::read(p).unwrap()).unwrap()
    }

    /// A scratch sysfs tree, removed on drop.
    struct Tree(PathBuf);
    impl Tree {
        fn new(tag: &str) -> Tree {
            let d = std::env::temp_dir().join(format!("nm-sysfs-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Tree(d)
        }
        /// `class_dir/name` -> the device directory, as sysfs links them.
        fn link(&self, class_dir: &str, name: &str, devpath: &str) {
            let d = self.0.join(class_dir);
            std::fs::create_dir_all(&d).unwrap();
            std::os::unix::fs::symlink(self.0.join(devpath.trim_start_matches('/')), d.join(name))
                .unwrap();
        }
        fn attr(&self, devpath: &str, name: &str, value: &str) {
            let dir = self.0.join(devpath.trim_start_matches('/'));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), format!("{value}\n")).unwrap();
        }
    }
    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn captured_loop_device_add_and_remove() {
        let t = Tree::new("loop");
        t.attr("/devices/virtual/block/loop20", "size", "8192");
        t.attr("/devices/virtual/block/loop20", "removable", "0");
        let mut tr = DeviceTracker::new(&t.0);
        let Some(What::BlockAdded(b)) = tr.handle(&fixture("block_add_loop20.bin")) else {
            panic!("no block_added");
        };
        assert_eq!(b.name, "loop20");
        assert_eq!(b.devtype.as_deref(), Some("disk"));
        assert_eq!(b.size_bytes, Some(4 * 1024 * 1024));
        assert_eq!(b.removable, Some(false));
        // The remove reports what the add saw, though sysfs is gone by then.
        drop(t);
        let Some(What::BlockRemoved(r)) = tr.handle(&fixture("block_remove_loop20.bin")) else {
            panic!("no block_removed");
        };
        assert_eq!(r, b);
    }

    #[test]
    fn uninteresting_uevents_are_ignored() {
        let mut tr = DeviceTracker::new("/nonexistent");
        for f in [
            "bdi_add_7-20.bin",
            "block_change_loop20_media.bin",
            "net_add_ifb9.bin",
            "net_remove_ifb9.bin",
            "queues_add_ifb9_rx0.bin",
            // `udevadm trigger`'s replay of an existing disk.
            "block_add_vda_synthetic.bin",
        ] {
            assert_eq!(tr.handle(&fixture(f)), None, "{f}");
        }
    }

    // No USB controller on the machine the fixtures were captured on: these messages are
    // written out from the fields the kernel's usb_dev_uevent() and usb_uevent() emit.
    const USB_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:04.0/usb2/2-2\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:04.0/usb2/2-2\0SUBSYSTEM=usb\0MAJOR=189\0MINOR=129\0DEVNAME=bus/usb/002/002\0DEVTYPE=usb_device\0PRODUCT=46f4/1/0\0TYPE=0/0/0\0BUSNUM=002\0DEVNUM=002\0SEQNUM=2301\0";
    const USB_IFACE_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:04.0/usb2/2-2/2-2:1.0\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:04.0/usb2/2-2/2-2:1.0\0SUBSYSTEM=usb\0DEVTYPE=usb_interface\0PRODUCT=46f4/1/0\0TYPE=0/0/0\0INTERFACE=8/6/80\0MODALIAS=usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00\0SEQNUM=2302\0";
    const USB_BIND: &[u8] = b"bind@/devices/pci0000:00/0000:00:04.0/usb2/2-2\0ACTION=bind\0DEVPATH=/devices/pci0000:00/0000:00:04.0/usb2/2-2\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0DRIVER=usb\0PRODUCT=46f4/1/0\0SEQNUM=2305\0";
    const USB_REMOVE: &[u8] = b"remove@/devices/pci0000:00/0000:00:04.0/usb2/2-2\0ACTION=remove\0DEVPATH=/devices/pci0000:00/0000:00:04.0/usb2/2-2\0SUBSYSTEM=usb\0MAJOR=189\0MINOR=129\0DEVNAME=bus/usb/002/002\0DEVTYPE=usb_device\0PRODUCT=46f4/1/0\0TYPE=0/0/0\0BUSNUM=002\0DEVNUM=002\0SEQNUM=2320\0";

    #[test]
    fn usb_device_with_sysfs_names() {
        let t = Tree::new("usb");
        let dp = "/devices/pci0000:00/0000:00:04.0/usb2/2-2";
        t.attr(dp, "idVendor", "46f4");
        t.attr(dp, "idProduct", "0001");
        t.attr(dp, "manufacturer", "QEMU");
        t.attr(dp, "product", "QEMU USB HARDDRIVE");
        t.attr(dp, "serial", "NM0001");
        let mut tr = DeviceTracker::new(&t.0);
        let Some(What::UsbAdded(u)) = tr.handle(&uevent::parse(USB_ADD).unwrap()) else {
            panic!("no usb_added");
        };
        assert_eq!(u.bus_path, "2-2");
        assert_eq!(u.vendor_id.as_deref(), Some("46f4"));
        assert_eq!(u.product_id.as_deref(), Some("0001"));
        assert_eq!(u.product.as_deref(), Some("QEMU USB HARDDRIVE"));
        assert_eq!(u.manufacturer.as_deref(), Some("QEMU"));
        assert_eq!(u.serial.as_deref(), Some("NM0001"));
        assert_eq!(u.driver, None);
        // Interfaces of the device are not devices of their own.
        assert_eq!(tr.handle(&uevent::parse(USB_IFACE_ADD).unwrap()), None);
        assert_eq!(tr.handle(&uevent::parse(USB_BIND).unwrap()), None);
        let Some(What::UsbRemoved(r)) = tr.handle(&uevent::parse(USB_REMOVE).unwrap()) else {
            panic!("no usb_removed");
        };
        assert_eq!(r.product.as_deref(), Some("QEMU USB HARDDRIVE"));
        assert_eq!(r.driver.as_deref(), Some("usb"));
    }

    #[test]
    fn usb_without_sysfs_falls_back_to_product_key() {
        let mut tr = DeviceTracker::new("/nonexistent");
        let Some(What::UsbRemoved(r)) = tr.handle(&uevent::parse(USB_REMOVE).unwrap()) else {
            panic!("no usb_removed");
        };
        assert_eq!(r.vendor_id.as_deref(), Some("46f4"));
        assert_eq!(r.product_id.as_deref(), Some("0001"));
        assert_eq!(r.product, None);
    }

    #[test]
    fn partition_takes_removable_from_its_disk() {
        let t = Tree::new("part");
        t.attr("/devices/usb/block/sdb", "removable", "1");
        t.attr("/devices/usb/block/sdb/sdb1", "size", "2048");
        let mut tr = DeviceTracker::new(&t.0);
        let msg = b"add@/devices/usb/block/sdb/sdb1\0ACTION=add\0DEVPATH=/devices/usb/block/sdb/sdb1\0SUBSYSTEM=block\0DEVNAME=sdb1\0DEVTYPE=partition\0PARTN=1\0SEQNUM=7\0";
        let Some(What::BlockAdded(b)) = tr.handle(&uevent::parse(msg).unwrap()) else {
            panic!("no block_added");
        };
        assert_eq!(b.size_bytes, Some(1024 * 1024));
        assert_eq!(b.removable, Some(true));
    }

    #[test]
    fn rescan_after_lost_uevents_reports_the_difference() {
        let t = Tree::new("rescan");
        let stick = "/devices/pci0000:00/0000:00:04.0/usb2/2-2";
        t.attr(stick, "idVendor", "46f4");
        t.attr(stick, "idProduct", "0001");
        t.attr(stick, "product", "QEMU USB HARDDRIVE");
        t.link("bus/usb/devices", "2-2", stick);
        // An interface of it: listed in the same directory, not a device.
        t.attr(&format!("{stick}/2-2:1.0"), "bInterfaceClass", "08");
        t.link("bus/usb/devices", "2-2:1.0", &format!("{stick}/2-2:1.0"));
        let disk =
            "/devices/pci0000:00/0000:00:04.0/usb2/2-2/2-2:1.0/host0/target0:0:0/0:0:0:0/block/sda";
        t.attr(disk, "size", "32768");
        t.attr(disk, "removable", "1");
        t.link("class/block", "sda", disk);
        t.attr(&format!("{disk}/sda1"), "partition", "1");
        t.attr(&format!("{disk}/sda1"), "size", "2048");
        t.link("class/block", "sda1", &format!("{disk}/sda1"));

        let mut tr = DeviceTracker::new(&t.0);
        tr.baseline();
        assert!(tr.rescan().is_empty(), "the baseline is not news");

        // While uevents were lost: the stick was pulled, a tablet plugged in.
        std::fs::remove_dir_all(t.0.join("devices/pci0000:00/0000:00:04.0/usb2/2-2")).unwrap();
        for l in [
            "bus/usb/devices/2-2",
            "bus/usb/devices/2-2:1.0",
            "class/block/sda",
            "class/block/sda1",
        ] {
            std::fs::remove_file(t.0.join(l)).unwrap();
        }
        let tablet = "/devices/pci0000:00/0000:00:04.0/usb1/1-1";
        t.attr(tablet, "idVendor", "0627");
        t.attr(tablet, "idProduct", "0001");
        t.attr(tablet, "manufacturer", "QEMU");
        t.link("bus/usb/devices", "1-1", tablet);

        let got = tr.rescan();
        let names: Vec<String> = got
            .iter()
            .map(|w| match w {
                What::UsbAdded(u) | What::UsbRemoved(u) => format!(
                    "{} {} {}",
                    w.name(),
                    u.bus_path,
                    u.product
                        .as_deref()
                        .or(u.manufacturer.as_deref())
                        .unwrap_or("-")
                ),
                What::BlockAdded(b) | What::BlockRemoved(b) => format!(
                    "{} {} {} {:?} {:?}",
                    w.name(),
                    b.name,
                    b.devtype.as_deref().unwrap_or("-"),
                    b.size_bytes,
                    b.removable
                ),
                other => other.name().to_string(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "usb_removed 2-2 QEMU USB HARDDRIVE",
                "usb_added 1-1 QEMU",
                "block_removed sda disk Some(16777216) Some(true)",
                "block_removed sda1 partition Some(1048576) Some(true)",
            ]
        );
        assert!(tr.rescan().is_empty());
    }
}
