//! The Debian package, installed for real: `dpkg -i`, the installed netmon runs and finds its
//! kernel hooks, systemd accepts the unit, `man netmon` renders, and `dpkg --purge` leaves none of
//! the package's files behind. The package comes from `cargo xtask dist`, which `cargo xtask
//! test` runs before the root tests (NETMON_DEB names it).
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use netmon_tests::{privileged, require_tools};

const UNIT: &str = "/lib/systemd/system/netmon.service";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/netmon.service";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// dpkg, waiting out another dpkg or apt run (scripts/setup.sh on this shared machine) instead
/// of failing on its lock.
fn dpkg(args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = run("dpkg", args);
        let locked = !out.status.success() && text(&out).contains("lock");
        if !locked || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `installed`, `config-files`, ... or "" when dpkg has never heard of netmon.
fn netmon_status() -> String {
    let out = run("dpkg-query", &["-W", "-f=${db:Status-Status}", "netmon"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn deb_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NETMON_DEB") {
        return PathBuf::from(p);
    }
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dist");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dist)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no .deb in {}: run `cargo xtask dist` (cargo xtask test does)",
            dist.display()
        )
    })
}

/// Paths in the package (`dpkg -c`), absolute, directories with their trailing '/'.
fn package_paths(deb: &Path) -> Vec<String> {
    let out = run("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    assert!(out.status.success(), "dpkg-deb -c: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // "drwxr-xr-x root/root 0 2026-12-07 08:26 ./usr/bin/": the path is the sixth field.
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|p| p.strip_prefix('.'))
        .filter(|p| *p != "/")
        .map(str::to_string)
        .collect()
}

/// Purges netmon when dropped, so a failing assertion does not leave it installed.
struct Purge {
    armed: bool,
}

impl Drop for Purge {
    fn drop(&mut self) {
        if self.armed {
            let out = dpkg(&["--purge", "netmon"]);
            eprintln!("cleanup: dpkg --purge netmon: {}", text(&out).trim());
        }
    }
}

#[test]
#[ignore = "needs root: run under cargo xtask test"]
fn package_installs_runs_and_purges_without_leftovers() {
    if !privileged() {
        return;
    }
    if !require_tools(&[
        "dpkg",
        "dpkg-deb",
        "dpkg-query",
        "systemd-analyze",
        "man",
        "bash",
    ]) {
        return;
    }
    let before = netmon_status();
    if !before.is_empty() && before != "not-installed" {
        eprintln!(
            "skipping test - a netmon package is already on this machine (dpkg status \
             {before:?}); installing over it and purging would clobber it"
        );
        return;
    }
    let deb = deb_path();
    let paths = package_paths(&deb);
    let files: Vec<&String> = paths.iter().filter(|p| !p.ends_with('/')).collect();
    assert!(files.iter().any(|f| *f == "/usr/bin/netmon"), "{paths:?}");
    // Directories the package brings: they must go with it. Shared ones (/usr/share/man/man8)
    // existed before and stay.
    let new_dirs: BTreeSet<&String> = paths
        .iter()
        .filter(|p| p.ends_with('/') && !Path::new(p.as_str()).exists())
        .collect();
    for f in &files {
        assert!(!Path::new(f.as_str()).exists(), "{f} exists before install");
    }
    // The tarball beside the package holds the same tree.
    let tarball = deb.with_extension("tar.gz");
    let out = run("tar", &["-tzf", tarball.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "tar -tzf {}: {}",
        tarball.display(),
        text(&out)
    );
    let in_tar: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| format!("/{l}"))
        .collect();
    let in_deb: BTreeSet<String> = paths.iter().cloned().collect();
    assert_eq!(in_tar, in_deb, "tarball and package differ");

    let mut purge = Purge { armed: true };
    let out = dpkg(&["-i", deb.to_str().unwrap()]);
    assert!(out.status.success(), "dpkg -i: {}", text(&out));
    assert_eq!(netmon_status(), "installed");
    for f in &files {
        assert!(Path::new(f.as_str()).is_file(), "{f} not installed");
    }
    let conffiles = run("dpkg-query", &["-W", "-f=${Conffiles}", "netmon"]);
    for conffile in ["/etc/default/netmon", "/etc/netmon/netmon.toml"] {
        assert!(
            text(&conffiles).contains(conffile),
            "{conffile} not in conffiles: {}",
            text(&conffiles)
        );
    }

    let out = run("/usr/bin/netmon", &["--version"]);
    let version = text(&out);
    assert!(out.status.success(), "{version}");
    assert!(version.starts_with("netmon "), "{version}");
    assert!(
        version.contains("ebpf sha256:"),
        "no eBPF object: {version}"
    );
    let out = run("/usr/bin/netmon", &["doctor"]);
    assert!(out.status.success(), "netmon doctor: {}", text(&out));
    // The shipped config file (read from the default path) is valid.
    let out = run("/usr/bin/netmon", &["config", "check"]);
    assert!(out.status.success(), "netmon config check: {}", text(&out));
    assert!(
        text(&out).starts_with("# /etc/netmon/netmon.toml is valid."),
        "netmon config check: {}",
        text(&out)
    );

    // With the man pages installed, verify also checks the unit's Documentation= pages exist.
    let out = run("systemd-analyze", &["verify", UNIT]);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        text(&out)
    );
    assert!(
        text(&out).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );

    for (page, needle) in [("netmon", "netmon-serve(8)"), ("netmon-serve", "--listen")] {
        let out = Command::new("man")
            .args(["-P", "cat", page])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("running man");
        let page_text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man {page}: {}", text(&out));
        assert!(page_text.contains(needle), "man {page}:\n{page_text}");
    }

    // The bash completion loads and registers itself for netmon.
    let out = run(
        "bash",
        &[
            "-c",
            ". /usr/share/bash-completion/completions/netmon && complete -p netmon",
        ],
    );
    assert!(
        out.status.success() && text(&out).contains("netmon"),
        "bash completion: {}",
        text(&out)
    );

    // What README's `systemctl enable --now netmon` leaves in /etc (without systemd as PID 1,
    // systemctl only makes the link): postrm must remove it on purge, or it dangles.
    let out = run("systemctl", &["enable", "netmon.service"]);
    assert!(out.status.success(), "systemctl enable: {}", text(&out));
    assert!(Path::new(WANTS_LINK).is_symlink(), "{}", text(&out));

    let out = dpkg(&["--purge", "netmon"]);
    assert!(out.status.success(), "dpkg --purge: {}", text(&out));
    assert!(
        !Path::new(WANTS_LINK).is_symlink(),
        "{WANTS_LINK} left after purge"
    );
    purge.armed = false;
    let status = netmon_status();
    assert!(
        status.is_empty() || status == "not-installed",
        "dpkg status after purge: {status:?}"
    );
    let left: Vec<&String> = files
        .iter()
        .copied()
        .chain(new_dirs.iter().copied())
        .filter(|p| Path::new(p.trim_end_matches('/')).exists())
        .collect();
    assert!(left.is_empty(), "left behind after purge: {left:?}");
}
