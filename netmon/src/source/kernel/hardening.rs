//! Kernel settings that can refuse netmon's hooks to a non-root user that has the capabilities
//! contrib/systemd/netmon.service grants (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, ...): which
//! setting blocks which hook, and what to change.
//!
//! The settings are read, and the two system calls they guard are tried as netmon runs (a
//! perf event like the tracepoint rung's, a BPF map), so the verdict is what this kernel does,
//! not what a kernel version is documented to do: Debian and Ubuntu patch in a
//! `kernel.perf_event_paranoid=3` that refuses perf events to unprivileged users (some versions
//! of the patch admit CAP_PERFMON, older ones only CAP_SYS_ADMIN), where upstream treats 3 as 2
//! and CAP_PERFMON passes.
use std::path::Path;

use serde::Serialize;

/// The values read; None when the file is missing or unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub perf_event_paranoid: Option<i64>,
    pub unprivileged_bpf_disabled: Option<i64>,
    pub kptr_restrict: Option<i64>,
    /// The active lockdown mode (`none`, `integrity`, `confidentiality`); None when
    /// /sys/kernel/security is not mounted or the kernel has no lockdown LSM.
    pub lockdown: Option<String>,
}

impl Settings {
    /// Reads them under `root` (`/`, or a fixture tree in tests).
    pub fn read(root: &Path) -> Settings {
        let num = |p: &str| {
            std::fs::read_to_string(root.join(p))
                .ok()
                .and_then(|t| t.trim().parse().ok())
        };
        Settings {
            perf_event_paranoid: num("proc/sys/kernel/perf_event_paranoid"),
            unprivileged_bpf_disabled: num("proc/sys/kernel/unprivileged_bpf_disabled"),
            kptr_restrict: num("proc/sys/kernel/kptr_restrict"),
            lockdown: std::fs::read_to_string(root.join("sys/kernel/security/lockdown"))
                .ok()
                .and_then(|t| parse_lockdown(&t)),
        }
    }
}

/// The bracketed mode of `/sys/kernel/security/lockdown` (`none [integrity] confidentiality`).
pub fn parse_lockdown(text: &str) -> Option<String> {
    let open = text.find('[')?;
    let close = open + text[open..].find(']')?;
    Some(text[open + 1..close].to_string())
}

/// Whether the system calls the settings guard worked for this process: Err holds the errno's
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    /// perf_event_open(2) of the sock_send_length tracepoint (a software event where tracefs
    /// is unreadable), as the classic tracepoint rung opens it.
    pub perf_event: Result<(), String>,
    /// bpf(2) creating a one-entry array map.
    pub bpf: Result<(), String>,
}

/// One setting's verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// `kernel.perf_event_paranoid`.
    pub setting: &'static str,
    /// As read; `unknown` when it could not be.
    pub value: String,
    /// Hooks it keeps netmon from (empty: none).
    pub blocks: Vec<&'static str>,
    /// Why, and what to change when it blocks something.
    pub detail: String,
}

/// Why perf events are refused at `level`, in the words `run` and `doctor` share; None below 3,
/// where CAP_PERFMON passes.
pub fn paranoid_refusal(level: i64) -> Option<String> {
    (level > 2).then(|| {
        format!(
            "kernel.perf_event_paranoid = {level} refuses perf events to netmon (a Debian/Ubuntu \
             level; this kernel's version of it admits only CAP_SYS_ADMIN): `sysctl \
             kernel.perf_event_paranoid=2` lets CAP_PERFMON open them"
        )
    })
}

/// For a rung that failed to attach a perf event: the setting that refused it, if one did
/// (perf events are refused to this process and the level is one that refuses them).
pub fn perf_event_blocker() -> Option<String> {
    let level = Settings::read(Path::new("/")).perf_event_paranoid?;
    let tracefs = Path::new(super::system::TRACEFS[0]);
    probe_perf_event(tracefs).err()?;
    paranoid_refusal(level)
}

/// Hooks that need a perf event: the classic tracepoint rung, and kprobes.
const PERF_HOOKS: &[&str] = &["the tracepoint rung", "the kprobe rung"];

/// The verdicts for a process with `caps` (effective capability mask) and uid `uid`.
pub fn assess(s: &Settings, probes: &Probes, uid: u32, caps: u64) -> Vec<Verdict> {
    let has = |c: u32| caps & (1u64 << c) != 0;
    let value = |v: Option<i64>| v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
    let mut out = Vec::new();

    // kernel.perf_event_paranoid
    let paranoid = s.perf_event_paranoid;
    let (blocks, detail) = match &probes.perf_event {
        Ok(()) => (
            Vec::new(),
            if uid == 0 || has(CAP_SYS_ADMIN) {
                "blocks nothing: perf events open (CAP_SYS_ADMIN passes every level)".to_string()
            } else {
                "blocks nothing: perf events open (CAP_PERFMON passes this level here)".to_string()
            },
        ),
        Err(e) if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) => (
            PERF_HOOKS.to_vec(),
            format!(
                "blocks the tracepoint and kprobe rungs: perf_event_open refused ({e}) without \
                 CAP_PERFMON: grant it (contrib/systemd/netmon.service does)"
            ),
        ),
        Err(e) if let Some(why) = paranoid.and_then(paranoid_refusal) => (
            PERF_HOOKS.to_vec(),
            format!(
                "blocks the tracepoint and kprobe rungs (tp_btf and fentry need no perf \
                 event): perf_event_open refused ({e}); {why}"
            ),
        ),
        Err(e) => (
            PERF_HOOKS.to_vec(),
            format!(
                "allows perf events to CAP_PERFMON, yet perf_event_open was refused ({e}): \
                 something else refuses it (a seccomp filter, an LSM)"
            ),
        ),
    };
    out.push(Verdict {
        setting: "kernel.perf_event_paranoid",
        value: value(paranoid),
        blocks,
        detail,
    });

    // kernel.unprivileged_bpf_disabled: it only restricts processes without CAP_BPF, which
    // netmon refuses to start without anyway.
    let unpriv = s.unprivileged_bpf_disabled;
    let (blocks, detail) = match &probes.bpf {
        Ok(()) if has(CAP_BPF) || has(CAP_SYS_ADMIN) => (
            Vec::new(),
            "blocks nothing: it restricts bpf() for processes without CAP_BPF, and netmon has it"
                .to_string(),
        ),
        Ok(()) => (
            Vec::new(),
            "blocks nothing by itself: bpf() works, but netmon's programs need CAP_BPF".to_string(),
        ),
        Err(e) if unpriv.is_some_and(|u| u > 0) && !has(CAP_BPF) && !has(CAP_SYS_ADMIN) => (
            vec!["every hook"],
            format!(
                "blocks every hook: bpf() refused ({e}) to a process without CAP_BPF; grant \
                 CAP_BPF (lowering the setting would not do: netmon's programs need it anyway, \
                 and 1 cannot be lowered before a reboot)"
            ),
        ),
        Err(e) => (
            vec!["every hook"],
            format!(
                "does not restrict CAP_BPF, yet bpf() was refused ({e}): something else \
                 refuses it (a seccomp filter, an LSM)"
            ),
        ),
    };
    out.push(Verdict {
        setting: "kernel.unprivileged_bpf_disabled",
        value: value(unpriv),
        blocks,
        detail,
    });

    out.push(Verdict {
        setting: "kernel.kptr_restrict",
        value: value(s.kptr_restrict),
        blocks: Vec::new(),
        detail: "blocks nothing: netmon attaches by BTF and by name, it reads no kernel \
                 addresses (/proc/kallsyms)"
            .to_string(),
    });

    let (blocks, detail) = match s.lockdown.as_deref() {
        None => (
            Vec::new(),
            "not readable: /sys/kernel/security is not mounted or the kernel has no lockdown \
             (`mount -t securityfs securityfs /sys/kernel/security` shows it)"
                .to_string(),
        ),
        Some("none" | "integrity") => (
            Vec::new(),
            "blocks nothing: integrity guards writes to the kernel, and netmon writes none"
                .to_string(),
        ),
        Some(mode) => (
            vec!["every hook"],
            format!(
                "{mode} refuses bpf_probe_read_kernel (which the socket-owner hooks use), kprobes \
                 and tracefs: netmon cannot run; boot with lockdown=integrity"
            ),
        ),
    };
    out.push(Verdict {
        setting: "lockdown",
        value: s.lockdown.clone().unwrap_or_else(|| "unknown".into()),
        blocks,
        detail,
    });
    out
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Tries the two system calls as this process.
pub fn probe(tracing: &Path) -> Probes {
    Probes {
        perf_event: probe_perf_event(tracing),
        bpf: probe_bpf(),
    }
}

fn errno_text() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Opens, disabled, the sock_send_length tracepoint on CPU 0 for every process, as the
/// tracepoint rung does (a software event when the tracepoint's id is unreadable).
fn probe_perf_event(tracing: &Path) -> Result<(), String> {
    const PERF_TYPE_SOFTWARE: u32 = 1;
    const PERF_TYPE_TRACEPOINT: u32 = 2;
    const PERF_COUNT_SW_DUMMY: u64 = 9;
    const ATTR_SIZE: usize = 128;
    let id = std::fs::read_to_string(tracing.join("events/sock/sock_send_length/id"))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let (kind, config) = match id {
        Some(id) => (PERF_TYPE_TRACEPOINT, id),
        None => (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY),
    };
    // struct perf_event_attr: type u32, size u32, config u64, ..., flags u64 at 40 (bit 0:
    // disabled); the rest zero.
    let mut attr = [0u8; ATTR_SIZE];
    attr[0..4].copy_from_slice(&kind.to_ne_bytes());
    attr[4..8].copy_from_slice(&(ATTR_SIZE as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&config.to_ne_bytes());
    attr[40..48].copy_from_slice(&1u64.to_ne_bytes());
    // SAFETY: perf_event_open reads `size` bytes of the attr buffer we own; no pointers in it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            libc::c_ulong::from(8u32), // PERF_FLAG_FD_CLOEXEC
        )
    };
    if fd < 0 {
        return Err(errno_text());
    }
    // SAFETY: fd was just returned to us and is closed once.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// Creates (and closes) a one-entry array map.
fn probe_bpf() -> Result<(), String> {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries; the
    // rest zero.
    let mut attr = [0u8; 128];
    for (i, v) in [BPF_MAP_TYPE_ARRAY, 4, 4, 1].into_iter().enumerate() {
        attr[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: bpf(2) reads `size` bytes of the attr buffer we own; no pointers in it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(errno_text());
    }
    // SAFETY: as above.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// The section of `netmon doctor`'s text report.
pub fn render(verdicts: &[Verdict], who: &str) -> String {
    let mut s = format!("\nhardening ({who}):\n");
    for v in verdicts {
        let name = format!("{} = {}", v.setting, v.value);
        s.push_str(&format!("  {name:<38} {}\n", v.detail));
    }
    let blocking: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.blocks.is_empty())
        .map(|v| format!("{} blocks {}", v.setting, v.blocks.join(" and ")))
        .collect();
    if blocking.is_empty() {
        s.push_str("  nothing here blocks a hook\n");
    } else {
        s.push_str(&format!("  {}\n", blocking.join("; ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETMON_CAPS: u64 = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << 12);

    fn settings(paranoid: i64, unpriv: i64) -> Settings {
        Settings {
            perf_event_paranoid: Some(paranoid),
            unprivileged_bpf_disabled: Some(unpriv),
            kptr_restrict: Some(0),
            lockdown: Some("integrity".into()),
        }
    }

    fn ok() -> Probes {
        Probes {
            perf_event: Ok(()),
            bpf: Ok(()),
        }
    }

    #[test]
    fn lockdown_mode_is_the_bracketed_word() {
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(parse_lockdown("[none] integrity").as_deref(), Some("none"));
        assert_eq!(parse_lockdown("garbage"), None);
        assert_eq!(parse_lockdown("oops ] [x"), None);
    }

    #[test]
    fn reads_settings_from_a_tree_and_tolerates_missing_files() {
        let dir = std::env::temp_dir().join(format!("netmon-hardening-{}", std::process::id()));
        let k = dir.join("proc/sys/kernel");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(k.join("perf_event_paranoid"), "3\n").unwrap();
        std::fs::write(k.join("unprivileged_bpf_disabled"), "garbage\n").unwrap();
        let s = Settings::read(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            s,
            Settings {
                perf_event_paranoid: Some(3),
                ..Settings::default()
            }
        );
    }

    #[test]
    fn nothing_blocks_when_both_calls_work() {
        let v = assess(&settings(3, 2), &ok(), 65534, NETMON_CAPS);
        assert!(v.iter().all(|v| v.blocks.is_empty()), "{v:?}");
        let text = render(&v, "uid 65534");
        assert!(text.contains("nothing here blocks a hook"), "{text}");
        assert!(text.contains("kernel.perf_event_paranoid = 3"), "{text}");
        assert!(
            text.contains("CAP_PERFMON passes this level here"),
            "{text}"
        );
    }

    #[test]
    fn paranoid_three_refusing_perf_events_names_both_rungs_and_the_fix() {
        let probes = Probes {
            perf_event: Err("Permission denied (os error 13)".into()),
            ..ok()
        };
        let v = assess(&settings(3, 2), &probes, 65534, NETMON_CAPS);
        assert_eq!(v[0].blocks, ["the tracepoint rung", "the kprobe rung"]);
        assert!(
            v[0].detail.contains("kernel.perf_event_paranoid=2"),
            "{v:?}"
        );
        let text = render(&v, "uid 65534");
        assert!(
            text.contains(
                "kernel.perf_event_paranoid blocks the tracepoint rung and the kprobe rung"
            ),
            "{text}"
        );
        // The same refusal at level 2 is someone else's doing.
        let v = assess(&settings(2, 2), &probes, 65534, NETMON_CAPS);
        assert!(v[0].detail.contains("something else"), "{v:?}");
    }

    #[test]
    fn unprivileged_bpf_disabled_matters_only_without_cap_bpf() {
        let refused = Probes {
            bpf: Err("Operation not permitted (os error 1)".into()),
            ..ok()
        };
        let with = assess(&settings(2, 2), &ok(), 65534, NETMON_CAPS);
        assert!(with[1].blocks.is_empty());
        let without = assess(&settings(2, 2), &refused, 65534, 1 << CAP_PERFMON);
        assert_eq!(without[1].blocks, ["every hook"]);
        assert!(without[1].detail.contains("grant CAP_BPF"), "{without:?}");
    }

    #[test]
    fn confidentiality_lockdown_blocks_everything_and_unknown_says_how_to_see() {
        let mut s = settings(2, 2);
        s.lockdown = Some("confidentiality".into());
        let v = assess(&s, &ok(), 0, !0);
        assert_eq!(v[3].blocks, ["every hook"]);
        s.lockdown = None;
        let v = assess(&s, &ok(), 0, !0);
        assert!(v[3].blocks.is_empty() && v[3].detail.contains("securityfs"));
    }
}
