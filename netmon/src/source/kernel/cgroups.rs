//! cgroup v2 ids (what `bpf_get_current_cgroup_id` returns: the cgroup directory's inode) to
//! paths (`/system.slice/nginx.service`), so a process that is gone before /proc could be read
//! still gets its systemd unit or container.
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// A new cgroup (a container that just started) is found by walking the tree again, at most
/// this often.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct CgroupPaths {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    scanned: Option<Instant>,
}

impl CgroupPaths {
    pub fn new(root: Option<PathBuf>) -> Self {
        CgroupPaths {
            root,
            paths: HashMap::new(),
            scanned: None,
        }
    }

    /// The path of cgroup `id`, relative to the hierarchy's root ("/" for the root itself).
    pub fn path(&mut self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        if self.scanned.is_some_and(|t| t.elapsed() < RESCAN_EVERY) {
            return None;
        }
        self.scanned = Some(Instant::now());
        if let Some(root) = &self.root {
            self.paths.clear();
            walk(root, root, &mut self.paths);
        }
        self.paths.get(&id).cloned()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut HashMap<u64, String>) {
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    let rel = dir
        .strip_prefix(root)
        .map(|r| format!("/{}", r.display()))
        .unwrap_or_else(|_| "/".into());
    out.insert(meta.ino(), rel);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &e.path(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_directory_inodes() {
        let dir = std::env::temp_dir().join(format!("netmon-cg-{}", std::process::id()));
        let unit = dir.join("system.slice/nginx.service");
        std::fs::create_dir_all(&unit).unwrap();
        let mut c = CgroupPaths::new(Some(dir.clone()));
        let ino = std::fs::metadata(&unit).unwrap().ino();
        assert_eq!(c.path(ino).as_deref(), Some("/system.slice/nginx.service"));
        let root_ino = std::fs::metadata(&dir).unwrap().ino();
        assert_eq!(c.path(root_ino).as_deref(), Some("/"));
        assert_eq!(c.path(0), None);
        // Unknown ids do not rescan more than once a second.
        assert_eq!(c.path(1), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
