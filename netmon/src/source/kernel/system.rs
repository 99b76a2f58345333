//! Facts about the running system the loader needs: privileges, the cgroup-v2 mount, tracefs
//! tracepoint layouts. Parsers take text so they are tested on fixtures.
use std::path::PathBuf;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capabilities from /proc/self/status (`CapEff:` hex mask).
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Names the capabilities netmon lacks, or says none: CAP_BPF + CAP_PERFMON load and attach
/// tracing programs (or CAP_SYS_ADMIN on kernels before 5.8), CAP_NET_ADMIN attaches the
/// cgroup socket and skb programs.
pub fn missing_caps(eff: u64) -> Vec<&'static str> {
    let has = |c: u32| eff & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) && has(CAP_NET_ADMIN) {
        return Vec::new();
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    missing
}

pub fn check_privileges() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = parse_cap_eff(&status).unwrap_or(0);
    let missing = missing_caps(eff);
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "missing capabilities {}: run netmon as root (sudo), or grant them with `sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_resource,cap_sys_ptrace,cap_dac_read_search+ep $(which netmon)`",
        missing.join(", ")
    ))
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones use the cgroup, so a
/// failure here is only worth a debug line.
pub fn raise_memlock() {
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads one rlimit struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) } != 0 {
        log::debug!(
            "raising RLIMIT_MEMLOCK failed (needs CAP_SYS_RESOURCE {CAP_SYS_RESOURCE}); fine on kernels >= 5.11"
        );
    }
}

/// The cgroup-v2 mount point: `/sys/fs/cgroup` on pure v2 hosts, `/sys/fs/cgroup/unified` on
/// hybrid ones.
pub fn cgroup2_root() -> Option<PathBuf> {
    if let Some(p) = std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|m| parse_cgroup2_mount(&m))
    {
        return Some(p);
    }
    // `ip netns exec` gives its command a private mount namespace with a fresh /sys and no
    // cgroup mount. The v2 hierarchy is one and the same wherever it is mounted, so mount it
    // here; the mount lives and dies with that private namespace.
    let dir = PathBuf::from("/run/netmon-cgroup2");
    std::fs::create_dir_all(&dir).ok()?;
    let src = c"cgroup2";
    let target = std::ffi::CString::new(dir.to_str()?).ok()?;
    // SAFETY: plain mount(2) with NUL-terminated strings we own and no data.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    (rc == 0
        || std::fs::read_to_string("/proc/self/mounts")
            .is_ok_and(|m| m.contains("/run/netmon-cgroup2")))
    .then(|| {
        log::info!(
            "no cgroup2 mount in this mount namespace: mounted one at {}",
            dir.display()
        );
        dir
    })
}

pub fn parse_cgroup2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir.replace("\\040", " ")))
    })
}

pub(crate) const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Offsets of `fields` in a tracepoint's record, from its tracefs `format` file (mounting
/// tracefs if it is not). Err is one line saying why the tracepoint can't be used.
pub fn tracepoint_offsets(category: &str, name: &str, fields: &[&str]) -> Result<Vec<u32>, String> {
    if !std::path::Path::new(TRACEFS[0]).join("events").exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "tracefs", "tracefs", TRACEFS[0]])
            .status();
    }
    let text = TRACEFS
        .iter()
        .find_map(|root| {
            std::fs::read_to_string(format!("{root}/events/{category}/{name}/format")).ok()
        })
        .ok_or_else(|| {
            format!("tracepoint {category}/{name} missing (added in kernel 6.3; or tracefs could not be mounted)")
        })?;
    parse_format_offsets(&text, fields)
        .ok_or_else(|| format!("tracepoint {category}/{name} lacks fields {fields:?}"))
}

pub fn parse_format_offsets(format: &str, fields: &[&str]) -> Option<Vec<u32>> {
    fields
        .iter()
        .map(|want| {
            format.lines().find_map(|l| {
                let decl = l.trim().strip_prefix("field:")?.split(';').next()?;
                let name = decl.split_whitespace().last()?.trim_start_matches('*');
                if name != *want {
                    return None;
                }
                let off = l.split("offset:").nth(1)?.split(';').next()?;
                off.trim().parse().ok()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities() {
        let root = "CapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        assert_eq!(
            missing_caps(parse_cap_eff(root).unwrap()),
            Vec::<&str>::new()
        );
        assert_eq!(missing_caps(0), ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]);
        let bpf_only = (1 << CAP_BPF) | (1 << CAP_PERFMON);
        assert_eq!(missing_caps(bpf_only), ["CAP_NET_ADMIN"]);
        assert_eq!(parse_cap_eff("nothing"), None);
    }

    #[test]
    fn cgroup2_mounts() {
        let hybrid = "cgroup /sys/fs/cgroup/memory cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(parse_cgroup2_mount("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn tracepoint_format() {
        let f = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\
                 \tfield:void * sk;\toffset:8;\tsize:8;\tsigned:0;\n\
                 \tfield:__u16 family;\toffset:16;\tsize:2;\tsigned:0;\n\
                 \tfield:int ret;\toffset:20;\tsize:4;\tsigned:1;\n\
                 \tfield:int flags;\toffset:24;\tsize:4;\tsigned:1;\n";
        assert_eq!(
            parse_format_offsets(f, &["sk", "ret", "flags"]),
            Some(vec![8, 20, 24])
        );
        assert_eq!(parse_format_offsets(f, &["nope"]), None);
    }
}
