//! `netmon doctor`: which kernel hooks load here, which payload backend `run` would use, and
//! for each rung that does not work, why.
use std::{path::Path, process::ExitCode};

use anyhow::Result;
use serde::Serialize;

use crate::{
    cli::DoctorArgs,
    source::kernel::{
        self,
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
    let (mut ebpf, btf, pre) = kernel::load_object(false)?;
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
    s.push_str(&format!(
        "\nrun will use: {}\n",
        r.backend.as_deref().unwrap_or("nothing (no rung works)")
    ));
    s
}
