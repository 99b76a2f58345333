//! `netmon doctor`: which kernel hooks load here, which payload backend `run` would use, and
//! for each rung that does not work, why; and which kernel hardening setting blocks which hook
//! for the user it runs as (`source::kernel::hardening`).
use std::{path::Path, process::ExitCode};

use anyhow::Result;
use serde::Serialize;

use crate::{
    cli::DoctorArgs,
    source::kernel::{
        self, hardening,
        ladder::{self, Preconditions},
        system,
    },
};

#[derive(Serialize)]
struct Report {
    kernel: String,
    btf: bool,
    cgroup2: Option<String>,
    kprobe_pmu: bool,
    core: Vec<Check>,
    rungs: Vec<Check>,
    backend: Option<String>,
    /// Who doctor ran as: the settings' verdicts hold for that user and those capabilities.
    user: String,
    hardening: Vec<hardening::Verdict>,
}

#[derive(Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

pub fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let (uid, caps) = whoami();
    let user = describe_user(uid, caps);
    let tracefs = system::TRACEFS
        .iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
        .unwrap_or(Path::new(system::TRACEFS[0]));
    let verdicts = hardening::assess(
        &hardening::Settings::read(Path::new("/")),
        &hardening::probe(tracefs),
        uid,
        caps,
    );
    let (mut ebpf, btf, pre) = match kernel::load_object(false) {
        Ok(l) => l,
        Err(e) => {
            // What the settings say is worth most when nothing loads: shown before the error.
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"kernel": kernel, "user": user, "hardening": verdicts})
                );
            } else {
                print!(
                    "kernel        {kernel}\n{}",
                    hardening::render(&verdicts, &user)
                );
            }
            return Err(e.into());
        }
    };
    let core = kernel::attach_core(&mut ebpf, btf.as_ref())?;
    let pre = Preconditions {
        btf: btf.as_ref(),
        tracepoint_format: pre.tracepoint_format,
    };
    let reports = ladder::probe_all(&mut ebpf, &pre);
    drop(ebpf);
    let backend = reports
        .iter()
        .find(|r| r.outcome.is_ok())
        .map(|r| r.rung.name().to_string());
    let report = Report {
        kernel,
        btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
        cgroup2: system::cgroup2_root().map(|p| p.display().to_string()),
        kprobe_pmu: Path::new("/sys/bus/event_source/devices/kprobe").exists(),
        core: core
            .into_iter()
            .map(|(name, r)| Check {
                name,
                ok: r.is_ok(),
                detail: r.err().unwrap_or_default(),
            })
            .collect(),
        rungs: reports
            .iter()
            .map(|r| Check {
                name: r.rung.name().to_string(),
                ok: r.outcome.is_ok(),
                detail: match &r.outcome {
                    Ok(()) => r.rung.describe().to_string(),
                    Err(e) => e.clone(),
                },
            })
            .collect(),
        backend,
        user,
        hardening: verdicts,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.backend.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!("kernel        {}\n", r.kernel));
    s.push_str(&format!(
        "BTF           {}\n",
        if r.btf {
            "/sys/kernel/btf/vmlinux"
        } else {
            "missing"
        }
    ));
    s.push_str(&format!(
        "cgroup v2     {}\n",
        r.cgroup2.as_deref().unwrap_or("not mounted")
    ));
    s.push_str(&format!(
        "kprobe PMU    {}\n\ncore hooks (socket owners, wire bytes, lifecycle, TCP behaviour):\n",
        if r.kprobe_pmu { "present" } else { "missing" }
    ));
    for c in &r.core {
        s.push_str(&format!("  [{}] {}", mark(c.ok), c.name));
        if !c.ok {
            s.push_str(&format!(": {}", c.detail));
        }
        s.push('\n');
    }
    s.push_str("\npayload ladder (best first):\n");
    for c in &r.rungs {
        s.push_str(&format!("  [{}] {:<11} {}\n", mark(c.ok), c.name, c.detail));
    }
    s.push_str(&hardening::render(&r.hardening, &r.user));
    s.push_str(&format!(
        "\nrun will use: {}\n",
        r.backend.as_deref().unwrap_or("nothing (no rung works)")
    ));
    s
}

/// Real uid and effective capabilities of this process.
fn whoami() -> (u32, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = system::parse_cap_eff(&status).unwrap_or(0);
    // SAFETY: getuid has no arguments and cannot fail.
    (unsafe { libc::getuid() }, caps)
}

/// `as root`, or `as uid 65534 with CAP_BPF, CAP_PERFMON, ...` (the capabilities netmon looks
/// at; also for root when some of them were dropped).
fn describe_user(uid: u32, caps: u64) -> String {
    const NAMED: [(u32, &str); 7] = [
        (12, "CAP_NET_ADMIN"),
        (19, "CAP_SYS_PTRACE"),
        (2, "CAP_DAC_READ_SEARCH"),
        (21, "CAP_SYS_ADMIN"),
        (24, "CAP_SYS_RESOURCE"),
        (38, "CAP_PERFMON"),
        (39, "CAP_BPF"),
    ];
    let mut held: Vec<&str> = NAMED
        .iter()
        .filter(|(bit, _)| caps & (1u64 << bit) != 0)
        .map(|&(_, name)| name)
        .collect();
    held.sort_unstable();
    if uid == 0 && held.len() == NAMED.len() {
        return "as root".to_string();
    }
    if held.is_empty() {
        format!("as uid {uid}, without capabilities")
    } else {
        format!("as uid {uid} with {}", held.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::describe_user;

    #[test]
    fn who_doctor_ran_as() {
        assert_eq!(describe_user(0, !0), "as root");
        assert_eq!(
            describe_user(0, !(1 << 12)),
            "as uid 0 with CAP_BPF, CAP_DAC_READ_SEARCH, CAP_PERFMON, CAP_SYS_ADMIN, \
             CAP_SYS_PTRACE, CAP_SYS_RESOURCE"
        );
        assert_eq!(
            describe_user(65534, (1 << 39) | (1 << 38) | (1 << 12)),
            "as uid 65534 with CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"
        );
        assert_eq!(describe_user(1000, 0), "as uid 1000, without capabilities");
    }
}
