//! `cargo xtask dist`: the Debian package and a tarball with the same files.
//!
//! Built with dpkg-deb (Debian's own tool, always present) rather than cargo-deb, which would be
//! one more long `cargo install`. The staging tree is `target/dist/build/debian/netmon`, the
//! layout dpkg-shlibdeps expects, so it computes `Depends:` from the binary without warnings.
use std::{
    fmt::Write as _,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Package the netmon already in target/release instead of building it first.
    #[arg(long)]
    pub no_build: bool,
}

/// Debian revision of the package: the first packaging of each upstream version. A revision
/// makes it a non-native package, whose changelog is changelog.Debian.gz.
const DEBIAN_REVISION: &str = "1";

/// Where the unit goes on Debian 12 (bookworm keeps system units in /lib; usr-merge makes
/// /usr/lib/systemd/system the same directory).
const UNIT_DIR: &str = "lib/systemd/system";

/// netmon's settings (`netmon serve` reads it when it exists).
const CONFIG_FILE: &str = "/etc/netmon/netmon.toml";

/// Files under /etc: an administrator's changes survive upgrades, and purge removes them.
const CONFFILES: &[&str] = &["/etc/default/netmon", CONFIG_FILE];

fn conffiles() -> String {
    CONFFILES.iter().map(|f| format!("{f}\n")).collect()
}

pub struct Built {
    pub deb: PathBuf,
    pub tarball: PathBuf,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    if !args.no_build {
        super::build_ebpf(root)?;
        let status = super::cargo()
            .current_dir(root)
            .args(["build", "--release", "-p", "netmon", "--bins"])
            .status()?;
        super::check(status, "cargo build --release -p netmon --bins")?;
    }
    let built = package(root)?;
    lintian(&built.deb)?;
    println!("{}", built.deb.display());
    println!("{}", built.tarball.display());
    Ok(())
}

/// Packages target/release/netmon (and the man pages netmon-mangen writes) into target/dist.
pub fn package(root: &Path) -> Result<Built> {
    let release = crate::target_dir(root).join("release");
    let netmon = release.join("netmon");
    let version_line = output(Command::new(&netmon).arg("--version"), "netmon --version")?;
    if version_line.contains("ebpf not embedded") {
        bail!(
            "{} was built without the eBPF object: run `cargo xtask dist` without --no-build",
            netmon.display()
        );
    }
    // "netmon 0.1.0 (git ..., ebpf ...)": the version the binary itself reports.
    let upstream = version_line
        .split_whitespace()
        .nth(1)
        .context("netmon --version printed no version")?
        .to_string();
    let version = format!("{upstream}-{DEBIAN_REVISION}");
    let arch = output(
        Command::new("dpkg").arg("--print-architecture"),
        "dpkg --print-architecture",
    )?;
    let epoch = source_date_epoch(root);
    let maintainer = maintainer(root);

    let dist = crate::target_dir(root).join("dist");
    let build = dist.join("build");
    let _ = fs::remove_dir_all(&build);
    // An older package left here must not pass for this build's (the root test finds it here).
    if let Ok(entries) = fs::read_dir(&dist) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("netmon_") {
                fs::remove_file(e.path())?;
            }
        }
    }
    let stage = build.join("debian/netmon");
    fs::create_dir_all(&stage)?;
    let contrib = root.join("contrib");

    // The binary, stripped as dh_strip does: symbols and the .comment/.note sections go.
    let bin = stage.join("usr/bin/netmon");
    copy(&netmon, &bin)?;
    let status = Command::new("strip")
        .args(["--remove-section=.comment", "--remove-section=.note"])
        .arg(&bin)
        .status()
        .context("running strip (binutils)")?;
    super::check(status, "strip")?;

    let unit = fs::read_to_string(contrib.join("systemd/netmon.service"))?;
    write(
        &stage.join(UNIT_DIR).join("netmon.service"),
        &packaged_unit(&unit)?,
    )?;
    copy(
        &contrib.join("systemd/netmon.default"),
        &stage.join("etc/default/netmon"),
    )?;

    let man_tmp = build.join("man");
    let date = output(
        Command::new("date").args(["-u", "-d", &format!("@{epoch}"), "+%F"]),
        "date",
    )?;
    let pages = output(
        Command::new(release.join("netmon-mangen"))
            .arg(&man_tmp)
            .args(["--date", &date]),
        "netmon-mangen",
    )?;
    let man8 = stage.join("usr/share/man/man8");
    for page in pages.lines() {
        let page = Path::new(page);
        let name = page.file_name().context("man page without a name")?;
        let dest = man8.join(name);
        copy(page, &dest)?;
        gzip(&dest)?;
    }

    for (shell, dest) in [
        ("bash", "usr/share/bash-completion/completions/netmon"),
        ("zsh", "usr/share/zsh/vendor-completions/_netmon"),
        ("fish", "usr/share/fish/vendor_completions.d/netmon.fish"),
    ] {
        let script = output(
            Command::new(&netmon).args(["completions", shell]),
            &format!("netmon completions {shell}"),
        )?;
        write(&stage.join(dest), &format!("{script}\n"))?;
    }

    // The config file as `netmon config init` writes it (every setting commented out at its
    // built-in default), and checked by the binary that will read it.
    let conf = stage.join(CONFIG_FILE.trim_start_matches('/'));
    let template = output(
        Command::new(&netmon).args(["config", "init"]),
        "netmon config init",
    )?;
    write(&conf, &format!("{template}\n"))?;
    output(
        Command::new(&netmon).args(["config", "check"]).arg(&conf),
        "netmon config check (of the template)",
    )?;

    let doc = stage.join("usr/share/doc/netmon");
    copy(&contrib.join("debian/copyright"), &doc.join("copyright"))?;
    let rev = version_line
        .split("(git ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("unknown");
    let changelog = doc.join("changelog.Debian");
    write(
        &changelog,
        &changelog_entry(&version, rev, &maintainer, epoch)?,
    )?;
    gzip(&changelog)?;

    copy(
        &contrib.join("debian/lintian-overrides"),
        &stage.join("usr/share/lintian/overrides/netmon"),
    )?;

    let share = stage.join("usr/share/netmon");
    copy(
        &contrib.join("prometheus/netmon-alerts.yml"),
        &share.join("netmon-alerts.yml"),
    )?;
    copy(
        &contrib.join("grafana/netmon-dashboard.json"),
        &share.join("netmon-dashboard.json"),
    )?;

    // Payload modes do not depend on the umask or the checkout: 0755 for directories and the
    // binary, 0644 for everything else. Set before DEBIAN/ exists, whose scripts are 0755.
    normalise_modes(&stage)?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;

    let control_dir = stage.join("DEBIAN");
    fs::create_dir_all(&control_dir)?;
    fs::set_permissions(&control_dir, fs::Permissions::from_mode(0o755))?;
    for script in ["postinst", "prerm", "postrm"] {
        let dest = control_dir.join(script);
        copy(&contrib.join("debian").join(script), &dest)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
    }
    // dpkg-deb marks nothing as a conffile by itself (debhelper would add every /etc file).
    write(&control_dir.join("conffiles"), &conffiles())?;
    write(&control_dir.join("md5sums"), &md5sums(&stage)?)?;
    let depends = shlibs_depends(&build)?;
    let control = control_file(&version, &arch, &maintainer, &depends, &stage)?;
    write(&control_dir.join("control"), &control)?;

    let deb = dist.join(format!("netmon_{version}_{arch}.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .status()
        .context("running dpkg-deb")?;
    super::check(status, "dpkg-deb --build")?;

    // The same tree without DEBIAN/, owned by root like the package's files.
    let tarball = dist.join(format!("netmon_{version}_{arch}.tar.gz"));
    let mut top: Vec<String> = fs::read_dir(&stage)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "DEBIAN")
        .collect();
    top.sort();
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "--sort=name"])
        .arg(format!("--mtime=@{epoch}"))
        .args(["--clamp-mtime", "-I", "gzip -9n", "-cf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&stage)
        .args(&top)
        .status()
        .context("running tar")?;
    super::check(status, "tar")?;
    Ok(Built { deb, tarball })
}

/// The contrib unit with the packaged binary's path, and its man page for `systemctl help`.
fn packaged_unit(unit: &str) -> Result<String> {
    let exec = "ExecStart=/usr/local/bin/netmon serve";
    if !unit.contains(exec) {
        bail!("contrib/systemd/netmon.service has no `{exec}` line to point at /usr/bin");
    }
    let unit = unit.replace(exec, "ExecStart=/usr/bin/netmon serve");
    let Some((head, rest)) = unit.split_once("\nAfter=") else {
        bail!("contrib/systemd/netmon.service has no After= line");
    };
    // Only the package adds Documentation=: `systemd-analyze verify` checks that the pages
    // exist, and a unit installed by hand from contrib/ comes without them.
    Ok(format!(
        "{head}\nDocumentation=man:netmon-serve(8) man:netmon(8)\nAfter={rest}"
    ))
}

fn changelog_entry(version: &str, rev: &str, maintainer: &str, epoch: u64) -> Result<String> {
    let date = output(
        Command::new("date").args(["-u", "-R", "-d", &format!("@{epoch}")]),
        "date -R",
    )?;
    Ok(format!(
        "netmon ({version}) unstable; urgency=medium\n\n  \
         * Package built by `cargo xtask dist` from git revision {rev}.\n\n \
         -- {maintainer}  {date}\n"
    ))
}

fn control_file(
    version: &str,
    arch: &str,
    maintainer: &str,
    depends: &str,
    stage: &Path,
) -> Result<String> {
    let mut c = String::new();
    writeln!(c, "Package: netmon")?;
    writeln!(c, "Version: {version}")?;
    writeln!(c, "Architecture: {arch}")?;
    writeln!(c, "Maintainer: {maintainer}")?;
    writeln!(c, "Installed-Size: {}", installed_size_kib(stage)?)?;
    writeln!(c, "Depends: {depends}")?;
    writeln!(c, "Section: net")?;
    writeln!(c, "Priority: optional")?;
    writeln!(
        c,
        "Description: per-process network traffic monitor using eBPF"
    )?;
    for line in [
        "netmon attributes network traffic to the processes that send and receive it,",
        "from eBPF programs in the kernel: exact payload and wire bytes, packets,",
        "connections and TCP health (retransmissions, RTT, resets) per process.",
        ".",
        "It shows a live table or terminal UI (netmon run), serves Prometheus metrics",
        "and a JSON API (netmon serve, also as the netmon systemd service), prints",
        "packets with their process (netmon capture) and checks which kernel hooks",
        "work on the running kernel (netmon doctor). The eBPF programs are built into",
        "the binary.",
    ] {
        writeln!(c, " {line}")?;
    }
    Ok(c)
}

/// `shlibs:Depends` from dpkg-shlibdeps, e.g. "libc6 (>= 2.34), libgcc-s1 (>= 4.2)".
fn shlibs_depends(build: &Path) -> Result<String> {
    // dpkg-shlibdeps reads debian/control for the package list; this one is all it needs.
    write(
        &build.join("debian/control"),
        "Source: netmon\n\nPackage: netmon\nArchitecture: any\n",
    )?;
    let out = output(
        Command::new("dpkg-shlibdeps")
            .current_dir(build)
            .args(["-O", "-edebian/netmon/usr/bin/netmon"]),
        "dpkg-shlibdeps (package dpkg-dev)",
    )?;
    let deps = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .context("dpkg-shlibdeps printed no shlibs:Depends")?;
    Ok(deps.trim().to_string())
}

/// Like dpkg-gencontrol: the sum of the files' sizes in KiB, rounded up per file, plus one per
/// directory.
fn installed_size_kib(stage: &Path) -> Result<u64> {
    let mut kib = 0;
    for entry in walk(stage)? {
        if entry.starts_with(stage.join("DEBIAN")) {
            continue;
        }
        let meta = fs::symlink_metadata(&entry)?;
        kib += if meta.is_dir() {
            1
        } else {
            meta.len().div_ceil(1024)
        };
    }
    Ok(kib)
}

fn md5sums(stage: &Path) -> Result<String> {
    let mut files: Vec<String> = walk(stage)?
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| {
            p.strip_prefix(stage)
                .ok()
                .map(|r| r.to_string_lossy().into_owned())
        })
        .filter(|r| !r.starts_with("DEBIAN"))
        .collect();
    files.sort();
    output(
        Command::new("md5sum").current_dir(stage).args(&files),
        "md5sum",
    )
    .map(|s| s + "\n")
}

/// Every path under `dir` (not `dir` itself), directories before their contents.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    Ok(out)
}

fn normalise_modes(stage: &Path) -> Result<()> {
    fs::set_permissions(stage, fs::Permissions::from_mode(0o755))?;
    for path in walk(stage)? {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The last commit's time, so the package's dates (changelog, man pages, file times) are the
/// same for every build of one revision; now outside a git checkout.
fn source_date_epoch(root: &Path) -> u64 {
    if let Some(e) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|e| e.parse().ok())
    {
        return e;
    }
    output(
        Command::new("git")
            .current_dir(root)
            .args(["log", "-1", "--format=%ct"]),
        "git log",
    )
    .ok()
    .and_then(|s| s.parse().ok())
    .unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// DEBFULLNAME and DEBEMAIL (what Debian's own tools read), else the author of HEAD.
fn maintainer(root: &Path) -> String {
    if let (Ok(name), Ok(mail)) = (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
        return format!("{name} <{mail}>");
    }
    output(
        Command::new("git")
            .current_dir(root)
            .args(["log", "-1", "--format=%an <%ae>"]),
        "git log",
    )
    .unwrap_or_else(|_| "netmon maintainers <netmon@example.org>".to_string())
}

/// Runs lintian on the package when it is installed (scripts/setup.sh installs it as root) and
/// fails on any error; warnings are printed for review.
pub fn lintian(deb: &Path) -> Result<()> {
    if Command::new("lintian").arg("--version").output().is_err() {
        eprintln!("xtask: lintian not installed (scripts/setup.sh installs it as root): skipped");
        return Ok(());
    }
    eprintln!("xtask: lintian {}", deb.display());
    let status = Command::new("lintian")
        .args(["--fail-on", "error", "--display-info"])
        .arg(deb)
        .status()
        .context("running lintian")?;
    super::check(status, "lintian (errors in the package)")
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `gzip -9n`: best compression and no name or time stamp inside, as Debian policy asks.
fn gzip(path: &Path) -> Result<()> {
    let status = Command::new("gzip")
        .args(["-9n", "--force"])
        .arg(path)
        .status()
        .context("running gzip")?;
    super::check(status, "gzip")
}

/// A command's stdout, trimmed; its failure (with stderr) is an error naming `what`.
fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaged_unit_runs_usr_bin_and_documents_itself() {
        let root = super::super::workspace_root();
        let unit = fs::read_to_string(root.join("contrib/systemd/netmon.service")).unwrap();
        let packaged = packaged_unit(&unit).unwrap();
        assert!(packaged.contains("\nExecStart=/usr/bin/netmon serve $NETMON_ARGS\n"));
        assert!(packaged.contains("\nEnvironmentFile=-/etc/default/netmon\n"));
        assert!(!packaged.contains("ExecStart=/usr/local"));
        assert!(packaged.contains("\nDocumentation=man:netmon-serve(8) man:netmon(8)\nAfter="));
    }

    #[test]
    fn both_files_in_etc_are_conffiles() {
        assert_eq!(
            conffiles(),
            "/etc/default/netmon\n/etc/netmon/netmon.toml\n"
        );
    }
}
