//! Attaches the packet-capture programs (TC ingress/egress through TCX links where the kernel
//! has them, clsact + netlink filters before 6.6; XDP for ingress on request) and puts
//! interfaces in promiscuous mode for the run. Everything is undone on drop; a netlink filter
//! left by a killed netmon on an old kernel is removed by name before attaching again.
use aya::{
    Ebpf,
    maps::Array,
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode, tc},
    util::KernelVersion,
};
use log::{debug, warn};
use netmon_common::{CaptureConfig, maps};

use super::KernelError;

pub const TC_INGRESS: &str = "netmon_tc_ingress";
pub const TC_EGRESS: &str = "netmon_tc_egress";
pub const XDP: &str = "netmon_xdp";

#[derive(Debug, Clone)]
pub struct CaptureSpec {
    pub interfaces: Vec<String>,
    /// XDP instead of TC for ingress.
    pub xdp: bool,
    pub promisc: bool,
    pub config: CaptureConfig,
}

/// What stays in place while capturing; dropping it restores the interfaces.
#[derive(Debug, Default)]
pub struct CaptureAttachment {
    promisc: Vec<PromiscGuard>,
    /// Interfaces on which netmon added the clsact qdisc (netlink path only).
    clsact_added: Vec<String>,
    pub how: Vec<String>,
}

impl Drop for CaptureAttachment {
    fn drop(&mut self) {
        // TCX links and XDP links close with the program; netlink filters are detached by
        // aya when the programs drop. A clsact qdisc netmon added goes too.
        for iface in &self.clsact_added {
            let _ = std::process::Command::new("tc")
                .args(["qdisc", "del", "dev", iface, "clsact"])
                .status();
        }
    }
}

fn attach_err(program: &str, iface: &str) -> impl Fn(String) -> KernelError {
    let program = format!("{program} to {iface}");
    move |reason| KernelError::Attach {
        program: program.clone(),
        reason,
    }
}

pub fn attach(ebpf: &mut Ebpf, spec: &CaptureSpec) -> Result<CaptureAttachment, KernelError> {
    {
        let map = ebpf
            .map_mut(maps::CAPTURE_CONFIG)
            .ok_or_else(|| KernelError::Map {
                map: maps::CAPTURE_CONFIG,
                reason: "missing".into(),
            })?;
        let mut cfg: Array<_, CaptureConfig> =
            Array::try_from(map).map_err(|e| KernelError::Map {
                map: maps::CAPTURE_CONFIG,
                reason: e.to_string(),
            })?;
        cfg.set(0, spec.config, 0).map_err(|e| KernelError::Map {
            map: maps::CAPTURE_CONFIG,
            reason: e.to_string(),
        })?;
    }
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    let mut out = CaptureAttachment::default();
    let mut names = vec![TC_EGRESS];
    names.push(if spec.xdp { XDP } else { TC_INGRESS });
    for name in &names {
        load(ebpf, name)?;
    }
    for iface in &spec.interfaces {
        if !tcx {
            for (prog, kind) in [
                (TC_INGRESS, TcAttachType::Ingress),
                (TC_EGRESS, TcAttachType::Egress),
            ] {
                // A previous netmon killed with SIGKILL leaves its netlink filters behind.
                if tc::qdisc_detach_program(iface, kind, prog).is_ok() {
                    warn!("removed a stale {prog} filter from {iface}");
                }
            }
            match tc::qdisc_add_clsact(iface) {
                Ok(()) => out.clsact_added.push(iface.clone()),
                Err(e) => debug!("clsact on {iface}: {e} (probably exists already)"),
            }
        }
        attach_tc(ebpf, TC_EGRESS, iface, TcAttachType::Egress)?;
        if spec.xdp {
            let mode = attach_xdp(ebpf, iface)?;
            out.how
                .push(format!("{iface}: XDP ({mode}) ingress, TC egress"));
        } else {
            attach_tc(ebpf, TC_INGRESS, iface, TcAttachType::Ingress)?;
            let via = if tcx { "TCX" } else { "clsact" };
            out.how.push(format!("{iface}: TC ingress+egress ({via})"));
        }
        if spec.promisc {
            out.promisc.push(PromiscGuard::enable(iface)?);
        }
    }
    Ok(out)
}

fn load(ebpf: &mut Ebpf, name: &str) -> Result<(), KernelError> {
    let err = |reason: String| KernelError::Attach {
        program: name.to_string(),
        reason,
    };
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| err("program missing from the eBPF object (rebuild it)".into()))?;
    let r = match prog {
        aya::programs::Program::SchedClassifier(p) => p.load(),
        aya::programs::Program::Xdp(p) => p.load(),
        _ => return Err(err("unexpected program type".into())),
    };
    r.map_err(|e| err(super::ladder::one_line_program_error(&e)))
}

fn attach_tc(
    ebpf: &mut Ebpf,
    name: &str,
    iface: &str,
    kind: TcAttachType,
) -> Result<(), KernelError> {
    let err = attach_err(name, iface);
    let p: &mut SchedClassifier = ebpf
        .program_mut(name)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| err("not a TC program".into()))?;
    p.attach(iface, kind)
        .map(|_| ())
        .map_err(|e| err(super::ladder::one_line_program_error(&e)))
}

/// Native XDP where the driver has it, generic (skb) mode otherwise.
fn attach_xdp(ebpf: &mut Ebpf, iface: &str) -> Result<&'static str, KernelError> {
    let err = attach_err(XDP, iface);
    let p: &mut Xdp = ebpf
        .program_mut(XDP)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| err("not an XDP program".into()))?;
    match p.attach(iface, XdpMode::Driver) {
        Ok(_) => Ok("driver"),
        Err(e) => {
            debug!("native XDP on {iface}: {e}; trying generic mode");
            p.attach(iface, XdpMode::Skb)
                .map(|_| "generic")
                .map_err(|e| err(super::ladder::one_line_program_error(&e)))
        }
    }
}

/// IFF_PROMISC on for the run, restored on drop (only if netmon turned it on).
#[derive(Debug)]
struct PromiscGuard {
    iface: String,
    was_on: bool,
}

const IFF_PROMISC: libc::c_short = 0x100;

fn ifreq_flags(iface: &str, set: Option<libc::c_short>) -> std::io::Result<libc::c_short> {
    // SAFETY: a zeroed ifreq with a NUL-terminated name (checked below) is what
    // SIOCGIFFLAGS/SIOCSIFFLAGS expect; the socket is closed before returning.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        let bytes = iface.as_bytes();
        if bytes.len() >= req.ifr_name.len() {
            return Err(std::io::Error::other("interface name too long"));
        }
        for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        let flags = req.ifr_ifru.ifru_flags;
        if rc == 0
            && let Some(f) = set
        {
            req.ifr_ifru.ifru_flags = f;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(e);
        }
        Ok(flags)
    }
}

impl PromiscGuard {
    fn enable(iface: &str) -> Result<Self, KernelError> {
        let err = |e: std::io::Error| KernelError::Attach {
            program: format!("promiscuous mode on {iface}"),
            reason: e.to_string(),
        };
        let flags = ifreq_flags(iface, None).map_err(err)?;
        let was_on = flags & IFF_PROMISC != 0;
        if !was_on {
            ifreq_flags(iface, Some(flags | IFF_PROMISC)).map_err(err)?;
        }
        Ok(PromiscGuard {
            iface: iface.to_string(),
            was_on,
        })
    }
}

impl Drop for PromiscGuard {
    fn drop(&mut self) {
        if self.was_on {
            return;
        }
        if let Ok(flags) = ifreq_flags(&self.iface, None) {
            let _ = ifreq_flags(&self.iface, Some(flags & !IFF_PROMISC));
        }
    }
}
