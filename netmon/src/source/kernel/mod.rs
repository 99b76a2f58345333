//! The kernel source: loads netmon's eBPF object, attaches the cgroup and lifecycle programs and
//! one payload rung of the ladder, then turns ring-buffer records and map counters into
//! [`crate::event::Event`]s (see `reader`).
mod batch;
pub mod btf;
pub mod capture;
mod cgroups;
pub mod hardening;
pub mod ladder;
mod reader;
pub mod system;

use std::{fs::File, time::Duration};

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, Program,
        SockOps,
    },
};
use log::{debug, warn};

use self::{
    btf::{Btf, Offsets},
    ladder::{Preconditions, Rung, RungReport},
};
use crate::cli::BackendChoice;

pub struct KernelOptions {
    pub backend: BackendChoice,
    /// How often maps are read.
    pub poll: Duration,
    /// Also attach the packet-capture programs (`netmon capture`).
    pub capture: Option<capture::CaptureSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "this netmon was built without its eBPF object: run `cargo xtask build` (or `cargo xtask build-ebpf`, then rebuild netmon)"
    )]
    NoObject,
    #[error("{0}")]
    Privilege(String),
    #[error("kernel BTF missing ({0}): netmon needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf(String),
    // Transparent: with "{0}" the cause was printed twice (its text, then again as the source).
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error(
        "no cgroup v2 mount found in /proc/self/mounts: mount one with `mount -t cgroup2 none /sys/fs/cgroup`"
    )]
    NoCgroup2,
    #[error("opening cgroup {path}")]
    OpenCgroup {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the eBPF object: {0}")]
    Load(String),
    #[error("attaching {program}: {reason}")]
    Attach { program: String, reason: String },
    #[error("backend {rung} is not available here: {reason}")]
    Backend { rung: &'static str, reason: String },
    #[error("reading kernel events")]
    Read(#[source] std::io::Error),
    #[error("reading map {map}: {reason}")]
    Map { map: &'static str, reason: String },
}

/// The eBPF object embedded at build time.
pub fn ebpf_object() -> Result<&'static [u8], KernelError> {
    #[cfg(netmon_embedded_bpf)]
    {
        Ok(aya::include_bytes_aligned!(env!("NETMON_BPF_OBJ_PATH")))
    }
    #[cfg(not(netmon_embedded_bpf))]
    {
        Err(KernelError::NoObject)
    }
}

/// The cgroup and lifecycle programs every rung needs, and how to attach them.
enum Core {
    Sock,
    SockAddr,
    Skb(CgroupSkbAttachType),
    TpBtf(&'static str),
    SockOps,
}

const CORE: &[(&[&str], Core, bool)] = &[
    // (programs, kind, required): the first program of the list that loads is used (variants
    // for kernels whose tracepoint has different arguments). Without the cgroup hooks netmon
    // cannot attribute anything.
    (&["netmon_sock_create"], Core::Sock, true),
    (&["netmon_post_bind4"], Core::Sock, true),
    (&["netmon_post_bind6"], Core::Sock, true),
    (&["netmon_sock_release"], Core::Sock, true),
    (&["netmon_connect4"], Core::SockAddr, true),
    (&["netmon_connect6"], Core::SockAddr, true),
    (&["netmon_sendmsg4"], Core::SockAddr, true),
    (&["netmon_sendmsg6"], Core::SockAddr, true),
    (&["netmon_recvmsg4"], Core::SockAddr, true),
    (&["netmon_recvmsg6"], Core::SockAddr, true),
    (
        &["netmon_skb_egress"],
        Core::Skb(CgroupSkbAttachType::Egress),
        true,
    ),
    (
        &["netmon_skb_ingress"],
        Core::Skb(CgroupSkbAttachType::Ingress),
        true,
    ),
    // Lifecycle: helpful, not essential (kernels without tp_btf fall back to /proc polling).
    (
        &["netmon_inet_sock_set_state"],
        Core::TpBtf("inet_sock_set_state"),
        false,
    ),
    (
        &["netmon_sched_process_fork"],
        Core::TpBtf("sched_process_fork"),
        false,
    ),
    (
        &["netmon_sched_process_exit"],
        Core::TpBtf("sched_process_exit"),
        false,
    ),
    // TCP behaviour (retransmits, resets, RTT) for the metrics: optional, the counts are then
    // simply absent.
    (
        &["netmon_tcp_retransmit_err", "netmon_tcp_retransmit"],
        Core::TpBtf("tcp_retransmit_skb"),
        false,
    ),
    (
        &["netmon_tcp_send_reset"],
        Core::TpBtf("tcp_send_reset"),
        false,
    ),
    (
        &["netmon_tcp_receive_reset"],
        Core::TpBtf("tcp_receive_reset"),
        false,
    ),
    (&["netmon_sock_ops"], Core::SockOps, false),
];

/// A program's name and whether it attached (Err: one-line reason).
pub type HookOutcome = (String, Result<(), String>);

pub struct KernelSource {
    ebpf: Ebpf,
    capture: Option<capture::CaptureAttachment>,
    backend: Rung,
    attached: Vec<HookOutcome>,
    reports: Vec<RungReport>,
    poll: Duration,
}

/// Loads the object with every offset the programs need, before any program is attached.
/// `capturing`: size the packet ring for `netmon capture`; otherwise it gets one page, as its
/// programs never run. The DNS-reply ring is the other way round: `run` and `serve` read it
/// (names for their tables), `capture` learns names from the packets it decodes.
pub(crate) fn load_object(
    capturing: bool,
) -> Result<(Ebpf, Option<aya::Btf>, Preconditions<'static>), KernelError> {
    let obj = ebpf_object()?;
    system::check_privileges().map_err(KernelError::Privilege)?;
    let btf_path = btf::vmlinux_path();
    if !btf_path.exists() {
        return Err(KernelError::NoBtf(btf_path.display().to_string()));
    }
    system::raise_memlock();
    // Our own reader only for the offsets, dropped before aya parses the same 5 MB again:
    // the two parses must not be alive at once (peak memory).
    let offsets = Offsets::lookup(&Btf::from_sys_fs()?)?;
    debug!("BTF offsets: {offsets:?}");
    let tp = system::tracepoint_offsets("sock", "sock_send_length", &["sk", "ret", "flags"]);
    let (tp_ok, tp_offs) = match tp {
        Ok(o) => (Ok(()), o),
        Err(e) => (Err(e), vec![0, 0, 0]),
    };
    let task_tgid: u32 = if offsets.task_parent == 0 {
        0
    } else {
        offsets.task_pid + 4
    };
    // One parse of the kernel's BTF serves the loader's relocations and the tp_btf attaches.
    let aya_btf = aya::Btf::parse_file(&btf_path, aya::Endianness::default()).ok();
    let mut loader = EbpfLoader::new();
    let dns_enabled = u32::from(!capturing);
    if capturing {
        loader.map_max_entries(netmon_common::maps::DNS, 4096);
    } else {
        loader.map_max_entries(netmon_common::maps::CAPTURE, 4096);
    }
    loader
        .btf(aya_btf.as_ref())
        .override_global("SK_FAMILY_OFFSET", &offsets.sk_family, true)
        .override_global("SK_COOKIE_OFFSET", &offsets.sk_cookie, true)
        .override_global("TASK_PID_OFFSET", &offsets.task_pid, true)
        .override_global("TASK_PARENT_OFFSET", &offsets.task_parent, true)
        .override_global("TASK_TGID_OFFSET", &task_tgid, true)
        .override_global("TP_SK_OFFSET", &tp_offs[0], true)
        .override_global("TP_RET_OFFSET", &tp_offs[1], true)
        .override_global("TP_FLAGS_OFFSET", &tp_offs[2], true)
        .override_global("DNS_ENABLED", &dns_enabled, true);
    let ebpf = loader
        .load(obj)
        .map_err(|e| KernelError::Load(first_line(&e)))?;
    Ok((
        ebpf,
        aya_btf,
        Preconditions {
            btf: None,
            tracepoint_format: tp_ok,
        },
    ))
}

/// Loading parses megabytes of kernel BTF that are freed right after; hand those pages back to
/// the system so a long-running netmon's resident size is what it actually uses.
pub fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn first_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    if let Some(src) = e.source() {
        s.push_str(": ");
        s.push_str(&src.to_string());
    }
    s.lines().next().unwrap_or("").to_string()
}

/// Attaches the cgroup and lifecycle programs; returns each program's outcome. A required
/// program that fails is an error.
pub(crate) fn attach_core(
    ebpf: &mut Ebpf,
    btf: Option<&aya::Btf>,
) -> Result<Vec<HookOutcome>, KernelError> {
    let cg_path = system::cgroup2_root().ok_or(KernelError::NoCgroup2)?;
    let cg = File::open(&cg_path).map_err(|source| KernelError::OpenCgroup {
        path: cg_path.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (names, kind, required) in CORE {
        let mut r = Err(String::new());
        let mut name = names[0];
        for candidate in names.iter() {
            name = candidate;
            r = attach_core_one(ebpf, name, kind, &cg, btf);
            if r.is_ok() {
                break;
            }
            debug!("{name}: {}", r.as_ref().err().map_or("", String::as_str));
        }
        if let Err(reason) = &r {
            if *required {
                return Err(KernelError::Attach {
                    program: format!("{name} to {}", cg_path.display()),
                    reason: reason.clone(),
                });
            }
            warn!("{name} not attached ({reason}); falling back to /proc for that");
        }
        out.push((name.to_string(), r));
    }
    Ok(out)
}

fn attach_core_one(
    ebpf: &mut Ebpf,
    name: &str,
    kind: &Core,
    cg: &File,
    btf: Option<&aya::Btf>,
) -> Result<(), String> {
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| "program missing from the eBPF object (rebuild it)".to_string())?;
    let mode = CgroupAttachMode::Single;
    let r = match (prog, kind) {
        (Program::CgroupSock(p), Core::Sock) => attach_sock(p, cg, mode),
        (Program::CgroupSockAddr(p), Core::SockAddr) => attach_sock_addr(p, cg, mode),
        (Program::CgroupSkb(p), Core::Skb(t)) => attach_skb(p, cg, *t, mode),
        (Program::SockOps(p), Core::SockOps) => attach_sock_ops(p, cg, mode),
        (Program::BtfTracePoint(p), Core::TpBtf(tp)) => match btf {
            Some(btf) => p.load(tp, btf).and_then(|_| p.attach()).map(|_| ()),
            None => return Err("kernel BTF missing".into()),
        },
        _ => return Err("unexpected program type".into()),
    };
    r.map_err(|e| ladder::one_line_program_error(&e))
}

type AttachResult = Result<(), aya::programs::ProgramError>;

fn attach_sock(p: &mut CgroupSock, cg: &File, mode: CgroupAttachMode) -> AttachResult {
    p.load()?;
    p.attach(cg, mode).map(|_| ())
}

fn attach_sock_addr(p: &mut CgroupSockAddr, cg: &File, mode: CgroupAttachMode) -> AttachResult {
    p.load()?;
    p.attach(cg, mode).map(|_| ())
}

fn attach_sock_ops(p: &mut SockOps, cg: &File, mode: CgroupAttachMode) -> AttachResult {
    p.load()?;
    p.attach(cg, mode).map(|_| ())
}

fn attach_skb(
    p: &mut CgroupSkb,
    cg: &File,
    t: CgroupSkbAttachType,
    mode: CgroupAttachMode,
) -> AttachResult {
    p.load()?;
    p.attach(cg, t, mode).map(|_| ())
}

impl KernelSource {
    pub fn load(opts: &KernelOptions) -> Result<KernelSource, KernelError> {
        let (mut ebpf, aya_btf, mut pre) = load_object(opts.capture.is_some())?;
        let attached = attach_core(&mut ebpf, aya_btf.as_ref())?;
        // Preconditions borrow the BTF for the ladder only.
        let tracepoint_format = std::mem::replace(&mut pre.tracepoint_format, Ok(()));
        let pre = Preconditions {
            btf: aya_btf.as_ref(),
            tracepoint_format,
        };
        let (rung, reports) = ladder::attach_payload(&mut ebpf, opts.backend, &pre);
        let Some(backend) = rung else {
            let (rung, reason) = reports
                .last()
                .map(|r| (r.rung.name(), r.outcome.clone().err().unwrap_or_default()))
                .unwrap_or(("auto", "no rung attached".into()));
            return Err(KernelError::Backend { rung, reason });
        };
        for r in &reports {
            match &r.outcome {
                Ok(()) => debug!("payload backend: {}", r.rung.name()),
                Err(e) => debug!("payload backend {} unavailable: {e}", r.rung.name()),
            }
        }
        let capture = match &opts.capture {
            Some(spec) => Some(capture::attach(&mut ebpf, spec)?),
            None => None,
        };
        drop(aya_btf);
        release_freed_memory();
        Ok(KernelSource {
            ebpf,
            capture,
            backend,
            attached,
            reports,
            poll: opts.poll,
        })
    }

    pub fn backend(&self) -> &str {
        self.backend.name()
    }

    /// How capture attached on each interface (empty without capture).
    pub fn capture_attachment(&self) -> Vec<String> {
        self.capture
            .as_ref()
            .map(|c| c.how.clone())
            .unwrap_or_default()
    }

    /// Every core program and its attach outcome.
    pub fn attached(&self) -> Vec<HookOutcome> {
        self.attached.clone()
    }

    /// The ladder as tried at load.
    pub fn rung_reports(&self) -> &[RungReport] {
        &self.reports
    }

    pub async fn run(
        self,
        tx: tokio::sync::mpsc::Sender<Vec<crate::event::Event>>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), KernelError> {
        let capturing = self.capture.is_some();
        let r = reader::Reader::new(self.ebpf, self.poll, capturing)?
            .run(tx, stop)
            .await;
        // Interfaces are restored once the programs are gone.
        drop(self.capture);
        r
    }
}
