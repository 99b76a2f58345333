//! User names for uids, as `ps` shows them: from a passwd file (`/etc/passwd`), the uid's digits
//! when it names nobody there. The file is read once and again only when a uid is missing and
//! the file changed since (a user added after netmon started): a snapshot names every row's
//! user, and reading the file per row would cost a syscall or more per process and interval.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Default)]
pub struct UserNames {
    /// None: names nothing, every uid shows as digits (replays and tests that must not depend
    /// on the machine's users).
    path: Option<PathBuf>,
    names: HashMap<u32, String>,
    /// Modification time of the file when it was last read; None before the first read.
    read_at: Option<SystemTime>,
}

impl UserNames {
    /// Names from the passwd-format file at `path`.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        UserNames {
            path: Some(path.into()),
            ..UserNames::default()
        }
    }

    /// Makes `uid` nameable by [`UserNames::name`]: reads the file the first time, and again
    /// when `uid` is not in it and the file changed since. An unreadable file names nobody;
    /// the digits stand in, which is no reason to stop counting bytes.
    pub fn learn(&mut self, uid: u32) {
        let Some(path) = &self.path else { return };
        if self.names.contains_key(&uid) {
            return;
        }
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if self.read_at.is_some() && self.read_at == mtime {
            return;
        }
        self.names = read_passwd(path);
        // An unreadable file is not read again for every unknown uid: UNIX_EPOCH marks it tried.
        self.read_at = Some(mtime.unwrap_or(SystemTime::UNIX_EPOCH));
    }

    /// The name of `uid`, or its digits when it has none (or was never learned).
    pub fn name(&self, uid: u32) -> String {
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
}

/// uid → name from a passwd file (`name:password:uid:gid:gecos:home:shell`). Lines that are not
/// of that shape (comments, NIS `+` entries, garbage) are skipped; the first name of a uid wins,
/// as getpwuid(3) returns the first match.
fn read_passwd(path: &Path) -> HashMap<u32, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    parse_passwd(&text)
}

pub(crate) fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let Ok(uid) = uid.trim().parse::<u32>() {
            names.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines_and_skips_the_rest() {
        let names = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n\
             # a comment\n\
             \n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
             broken line\n\
             toor:x:0:0::/root:/bin/sh\n\
             +nis::::::\n\
             alice:x:notanumber:1000::/home/alice:/bin/sh\n",
        );
        assert_eq!(names.len(), 2);
        assert_eq!(names[&0], "root", "the first name of a uid wins");
        assert_eq!(names[&65534], "nobody");
    }

    #[test]
    fn unknown_uids_and_missing_files_show_digits() {
        let mut u = UserNames::from_file("/nonexistent/passwd");
        u.learn(1000);
        assert_eq!(u.name(1000), "1000");
        let none = UserNames::default();
        assert_eq!(none.name(0), "0");
    }

    #[test]
    fn a_user_added_later_is_found_once_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("netmon-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, "root:x:0:0::/root:/bin/sh\n").unwrap();
        let mut u = UserNames::from_file(&path);
        u.learn(0);
        u.learn(1001);
        assert_eq!(
            (u.name(0).as_str(), u.name(1001).as_str()),
            ("root", "1001")
        );
        std::fs::write(
            &path,
            "root:x:0:0::/root:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n",
        )
        .unwrap();
        // Filesystems with coarse timestamps: make sure the change is visible as one.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(later))
            .unwrap();
        u.learn(1001);
        assert_eq!(u.name(1001), "bob");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
