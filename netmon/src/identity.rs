//! Who a process is, beyond its pid: the systemd unit or container it runs in, read from its
//! cgroup v2 path. Used for metric labels (stable across restarts, unlike pids) and for
//! `--cgroup` selection.

/// The systemd unit (`nginx.service`, `session-3.scope`) and container id (first 12 hex digits,
/// as `docker ps` shows it) a cgroup path names; empty strings when it names neither.
pub fn unit_and_container(cgroup: &str) -> (String, String) {
    let mut unit = String::new();
    let mut container = String::new();
    for part in cgroup.split('/').filter(|p| !p.is_empty()) {
        if let Some(id) = container_id(part) {
            container = id;
            continue;
        }
        // The innermost unit wins; slices only group units, so they are not units here.
        if part.ends_with(".service") || part.ends_with(".scope") {
            unit = part.to_string();
        }
    }
    if !container.is_empty() && container_scope(&unit) {
        // `docker-<id>.scope` is the container itself, not a unit anyone manages.
        unit.clear();
    }
    (unit, container)
}

/// Container runtimes name a container's cgroup `docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `libpod-<id>.scope`, or (cgroupfs driver) just the 64-hex id.
fn container_id(part: &str) -> Option<String> {
    let stem = part.strip_suffix(".scope").unwrap_or(part);
    let id = ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|p| stem.strip_prefix(p))
        .unwrap_or(stem);
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| id[..12].to_string())
}

fn container_scope(unit: &str) -> bool {
    unit.strip_suffix(".scope").and_then(container_id).is_some()
}

/// Whether a process in `cgroup` is selected by `--cgroup PATTERN`: a path prefix (`/system.slice`)
/// at a component boundary, or exactly its unit or container id.
pub fn cgroup_matches(pattern: &str, cgroup: &str) -> bool {
    if pattern.starts_with('/') {
        let p = pattern.trim_end_matches('/');
        return p.is_empty()
            || cgroup == p
            || cgroup
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'));
    }
    let (unit, container) = unit_and_container(cgroup);
    pattern == unit || (!container.is_empty() && pattern == container)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1a2b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

    #[test]
    fn systemd_units() {
        assert_eq!(
            unit_and_container("/system.slice/nginx.service"),
            ("nginx.service".into(), String::new())
        );
        assert_eq!(
            unit_and_container("/user.slice/user-1000.slice/session-3.scope"),
            ("session-3.scope".into(), String::new())
        );
        assert_eq!(
            unit_and_container(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"
            ),
            ("foo.service".into(), String::new())
        );
        assert_eq!(unit_and_container("/"), (String::new(), String::new()));
        assert_eq!(unit_and_container(""), (String::new(), String::new()));
    }

    #[test]
    fn containers() {
        let docker = format!("/system.slice/docker-{ID}.scope");
        assert_eq!(
            unit_and_container(&docker),
            (String::new(), "3f4e1a2b9c8d".into())
        );
        let k8s = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(unit_and_container(&k8s).1, "3f4e1a2b9c8d");
        let cgroupfs = format!("/docker/{ID}");
        assert_eq!(unit_and_container(&cgroupfs).1, "3f4e1a2b9c8d");
        // A service running inside a container keeps its unit.
        let nested = format!("/system.slice/docker-{ID}.scope/system.slice/sshd.service");
        assert_eq!(
            unit_and_container(&nested),
            ("sshd.service".into(), "3f4e1a2b9c8d".into())
        );
        // 63 hex digits is not an id.
        assert_eq!(unit_and_container(&format!("/docker/{}", &ID[1..])).1, "");
    }

    #[test]
    fn selection() {
        let cg = "/system.slice/nginx.service";
        assert!(cgroup_matches("/system.slice", cg));
        assert!(cgroup_matches("/system.slice/", cg));
        assert!(cgroup_matches(cg, cg));
        assert!(!cgroup_matches("/system.sl", cg));
        assert!(cgroup_matches("nginx.service", cg));
        assert!(!cgroup_matches("nginx", cg));
        assert!(cgroup_matches("/", cg));
        let docker = format!("/system.slice/docker-{ID}.scope");
        assert!(cgroup_matches("3f4e1a2b9c8d", &docker));
    }
}
