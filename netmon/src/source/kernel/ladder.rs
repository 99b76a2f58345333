//! The payload-accounting fallback ladder: each rung is a set of real programs in the object;
//! the first rung that fully loads and attaches wins (or the one `--backend` forces).
use aya::{
    Btf as AyaBtf, Ebpf,
    programs::{BtfTracePoint, FExit, Program},
};

use crate::cli::BackendChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rung {
    Fentry,
    TpBtf,
    Tracepoint,
    Kprobe,
    Cgroup,
}

impl Rung {
    pub const ALL: [Rung; 5] = [
        Rung::Fentry,
        Rung::TpBtf,
        Rung::Tracepoint,
        Rung::Kprobe,
        Rung::Cgroup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rung::Fentry => "fentry",
            Rung::TpBtf => "tp_btf",
            Rung::Tracepoint => "tracepoint",
            Rung::Kprobe => "kprobe",
            Rung::Cgroup => "cgroup",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rung::Fentry => "fexit on tcp/udp sendmsg/recvmsg: exact payload",
            Rung::TpBtf => "BTF tracepoints sock_send_length/sock_recv_length: exact payload",
            Rung::Tracepoint => {
                "tracepoints sock/sock_send_length, sock_recv_length: exact payload"
            }
            Rung::Kprobe => "kretprobes on tcp/udp sendmsg/recvmsg: exact payload",
            Rung::Cgroup => "cgroup hooks only: wire bytes per socket, no payload bytes",
        }
    }

    fn from_choice(c: BackendChoice) -> Option<Rung> {
        match c {
            BackendChoice::Auto => None,
            BackendChoice::Fentry => Some(Rung::Fentry),
            BackendChoice::TpBtf => Some(Rung::TpBtf),
            BackendChoice::Tracepoint => Some(Rung::Tracepoint),
            BackendChoice::Kprobe => Some(Rung::Kprobe),
            BackendChoice::Cgroup => Some(Rung::Cgroup),
        }
    }

    /// (program name, kernel function or tracepoint) of every program of the rung.
    fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Rung::Fentry => &[
                ("netmon_fexit_tcp_sendmsg", "tcp_sendmsg"),
                ("netmon_fexit_udp_sendmsg", "udp_sendmsg"),
                ("netmon_fexit_udpv6_sendmsg", "udpv6_sendmsg"),
                ("netmon_fexit_tcp_recvmsg", "tcp_recvmsg"),
                ("netmon_fexit_udp_recvmsg", "udp_recvmsg"),
                ("netmon_fexit_udpv6_recvmsg", "udpv6_recvmsg"),
            ],
            Rung::TpBtf => &[
                ("netmon_tpbtf_send", "sock_send_length"),
                ("netmon_tpbtf_recv", "sock_recv_length"),
            ],
            Rung::Tracepoint => &[
                ("netmon_tp_send", "sock_send_length"),
                ("netmon_tp_recv", "sock_recv_length"),
            ],
            Rung::Kprobe => &[
                ("netmon_kp_tcp_sendmsg", "tcp_sendmsg"),
                ("netmon_krp_tcp_sendmsg", "tcp_sendmsg"),
                ("netmon_kp_udp_sendmsg", "udp_sendmsg"),
                ("netmon_krp_udp_sendmsg", "udp_sendmsg"),
                ("netmon_kp_udpv6_sendmsg", "udpv6_sendmsg"),
                ("netmon_krp_udpv6_sendmsg", "udpv6_sendmsg"),
                ("netmon_kp_tcp_recvmsg", "tcp_recvmsg"),
                ("netmon_krp_tcp_recvmsg", "tcp_recvmsg"),
                ("netmon_kp_udp_recvmsg", "udp_recvmsg"),
                ("netmon_krp_udp_recvmsg", "udp_recvmsg"),
                ("netmon_kp_udpv6_recvmsg", "udpv6_recvmsg"),
                ("netmon_krp_udpv6_recvmsg", "udpv6_recvmsg"),
            ],
            Rung::Cgroup => &[],
        }
    }
}

#[derive(Debug, Clone)]
pub struct RungReport {
    pub rung: Rung,
    /// Err: one line saying why the rung cannot be used here.
    pub outcome: Result<(), String>,
}

/// What the loader learned before loading the object, which some rungs depend on.
pub struct Preconditions<'a> {
    pub btf: Option<&'a AyaBtf>,
    /// The classic tracepoint's field offsets were found in tracefs.
    pub tracepoint_format: Result<(), String>,
}

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

/// Attaches the payload rung: the forced one, or the first that works. Failed rungs are
/// unloaded again so nothing half-attached stays behind.
pub fn attach_payload(
    ebpf: &mut Ebpf,
    choice: BackendChoice,
    pre: &Preconditions<'_>,
) -> (Option<Rung>, Vec<RungReport>) {
    let candidates: Vec<Rung> = match Rung::from_choice(choice) {
        Some(r) => vec![r],
        None => Rung::ALL.to_vec(),
    };
    let mut reports = Vec::new();
    for rung in candidates {
        let outcome = try_rung(ebpf, rung, pre);
        let ok = outcome.is_ok();
        reports.push(RungReport { rung, outcome });
        if ok {
            return (Some(rung), reports);
        }
    }
    (None, reports)
}

/// Tries every rung (attach, then unload) for `netmon doctor`.
pub fn probe_all(ebpf: &mut Ebpf, pre: &Preconditions<'_>) -> Vec<RungReport> {
    Rung::ALL
        .iter()
        .map(|&rung| {
            let outcome = try_rung(ebpf, rung, pre);
            if outcome.is_ok() {
                unload(ebpf, rung);
            }
            RungReport { rung, outcome }
        })
        .collect()
}

fn try_rung(ebpf: &mut Ebpf, rung: Rung, pre: &Preconditions<'_>) -> Result<(), String> {
    match rung {
        Rung::Kprobe if !std::path::Path::new(KPROBE_PMU).exists() => {
            return Err(format!(
                "kprobes unavailable: {KPROBE_PMU} missing (kernel built without CONFIG_KPROBES)"
            ));
        }
        Rung::Tracepoint => pre.tracepoint_format.clone()?,
        Rung::Fentry | Rung::TpBtf if pre.btf.is_none() => {
            return Err("kernel BTF (/sys/kernel/btf/vmlinux) missing".into());
        }
        _ => {}
    }
    for &(name, target) in rung.programs() {
        if let Err(e) = attach_one(ebpf, name, target, pre.btf) {
            unload(ebpf, rung);
            // aya names the BTF symbol it looked for; say what that means.
            if e.contains("unknown BTF type") {
                return Err(format!(
                    "{target} is not in this kernel (tracepoint added in 6.3, or function missing): {e}"
                ));
            }
            // These attach through perf events, which a hardening setting may refuse.
            if matches!(rung, Rung::Tracepoint | Rung::Kprobe)
                && let Some(why) = super::hardening::perf_event_blocker()
            {
                return Err(format!("{name} on {target}: {e}; {why}"));
            }
            return Err(format!("{name} on {target}: {e}"));
        }
    }
    Ok(())
}

fn attach_one(
    ebpf: &mut Ebpf,
    name: &str,
    target: &str,
    btf: Option<&AyaBtf>,
) -> Result<(), String> {
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| "program missing from the eBPF object (rebuild it)".to_string())?;
    let r = match prog {
        Program::FExit(p) => attach_fexit(p, target, btf),
        Program::BtfTracePoint(p) => attach_tp_btf(p, target, btf),
        Program::TracePoint(p) => p.load().and_then(|_| p.attach("sock", target)).map(|_| ()),
        Program::KProbe(p) => p.load().and_then(|_| p.attach(target, 0)).map(|_| ()),
        _ => return Err("unexpected program type".into()),
    };
    r.map_err(|e| one_line_program_error(&e))
}

fn attach_fexit(
    p: &mut FExit,
    target: &str,
    btf: Option<&AyaBtf>,
) -> Result<(), aya::programs::ProgramError> {
    let btf = btf.ok_or(aya::programs::ProgramError::NotLoaded)?;
    p.load(target, btf)?;
    p.attach().map(|_| ())
}

fn attach_tp_btf(
    p: &mut BtfTracePoint,
    target: &str,
    btf: Option<&AyaBtf>,
) -> Result<(), aya::programs::ProgramError> {
    let btf = btf.ok_or(aya::programs::ProgramError::NotLoaded)?;
    p.load(target, btf)?;
    p.attach().map(|_| ())
}

/// Unloads (and so detaches) every program of `rung`; programs never loaded are skipped.
fn unload(ebpf: &mut Ebpf, rung: Rung) {
    for &(name, _) in rung.programs() {
        if let Some(prog) = ebpf.program_mut(name) {
            let _ = match prog {
                Program::FExit(p) => p.unload(),
                Program::BtfTracePoint(p) => p.unload(),
                Program::TracePoint(p) => p.unload(),
                Program::KProbe(p) => p.unload(),
                _ => Ok(()),
            };
        }
    }
}

/// aya's errors carry the verifier log after the syscall error; the first line says why.
pub fn one_line_program_error(e: &aya::programs::ProgramError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    // The whole verifier log is what a kernel developer needs; users get its first line.
    log::debug!("{msg}");
    let first = msg.lines().next().unwrap_or("").trim();
    let first = first
        .split(". Verifier output:")
        .next()
        .unwrap_or(first)
        .trim_end_matches(['.', ' ']);
    if first.chars().count() > 200 {
        format!("{}…", first.chars().take(200).collect::<String>())
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rung_has_a_name_and_forced_choices_map_to_one_rung() {
        for r in Rung::ALL {
            assert!(!r.name().is_empty());
            assert!(!r.describe().is_empty());
        }
        assert_eq!(Rung::from_choice(BackendChoice::Kprobe), Some(Rung::Kprobe));
        assert_eq!(Rung::from_choice(BackendChoice::Auto), None);
        // Every kprobe has its kretprobe: payload is only known on return.
        let k = Rung::Kprobe.programs();
        assert_eq!(
            k.iter()
                .filter(|(n, _)| n.starts_with("netmon_kp_"))
                .count(),
            6
        );
        assert_eq!(
            k.iter()
                .filter(|(n, _)| n.starts_with("netmon_krp_"))
                .count(),
            6
        );
    }
}
