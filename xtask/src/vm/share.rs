//! The directory shared with a guest (9p) or used in place on the host: binaries, the run script,
//! its config, and for guests a sysroot with host tools and the glibc libraries they all need.
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use super::initramfs::{is_static, set_mode};

/// Host tools the root tests may call (copied when present on the host).
const TOOLS: &[&str] = &["ip", "ss", "nstat", "tc", "bpftool", "setpriv"];

/// A binary cargo built.
pub struct Executable {
    pub path: PathBuf,
    /// Its package's directory (tests run there, as under `cargo test`).
    pub package_dir: Option<PathBuf>,
}

/// What goes into a share.
pub struct Payload {
    /// netmon and the other workspace binaries (NETMON_TEST_BIN_DIR).
    pub bins: Vec<Executable>,
    /// The root test binaries.
    pub tests: Vec<Executable>,
    /// Extra arguments for every test binary.
    pub test_args: Vec<String>,
    /// Only report kernel facts: no doctor, no tests.
    pub smoke: bool,
}

/// Fills `share` (created empty) for one run. `guest` adds the sysroot.
pub fn populate(
    root: &Path,
    share: &Path,
    payload: &Payload,
    guest: bool,
    limit_secs: u64,
) -> Result<()> {
    fs::create_dir_all(share.join("bin"))?;
    fs::create_dir_all(share.join("tests"))?;
    fs::create_dir_all(share.join("out"))?;
    fs::create_dir_all(share.join("cwd"))?;
    for (dir, files) in [("bin", &payload.bins), ("tests", &payload.tests)] {
        for f in files {
            let name = f.path.file_name().context("binary without a name")?;
            link_or_copy(&f.path, &share.join(dir).join(name))?;
            if let (true, Some(pkg)) = (dir == "tests", &f.package_dir) {
                fs::write(
                    share.join("cwd").join(name),
                    pkg.as_os_str().as_encoded_bytes(),
                )?;
            }
        }
    }
    fs::copy(root.join("scripts/vm/run.sh"), share.join("run.sh"))
        .context("copying scripts/vm/run.sh")?;
    let mut config = format!(
        "VM_TIMEOUT={limit_secs}\nWORKSPACE={}\n",
        sh_quote(&root.to_string_lossy())
    );
    if payload.smoke {
        config.push_str("SMOKE=1\n");
    }
    if guest {
        // The guest has the xhci controller and the host drives hot-plug (hotplug.rs).
        config.push_str("USB_HOTPLUG=1\n");
    }
    fs::write(share.join("config"), config)?;
    let mut args = String::new();
    for a in &payload.test_args {
        if a.contains('\n') {
            bail!("test arguments cannot contain newlines: {a:?}");
        }
        args.push_str(a);
        args.push('\n');
    }
    fs::write(share.join("test-args"), args)?;
    if guest {
        sysroot(&share.join("sysroot"), payload)?;
    }
    Ok(())
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A hard link (same file system, instant, a snapshot even if cargo rebuilds meanwhile), else a
/// copy.
fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    if fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    Ok(())
}

/// Host tools in /usr/local/bin (ahead of busybox in the guest's PATH) and every shared library
/// that the binaries and tools load, at its host path so the ELF interpreter finds them.
fn sysroot(dest: &Path, payload: &Payload) -> Result<()> {
    let bindir = dest.join("usr/local/bin");
    fs::create_dir_all(&bindir)?;
    let mut elves: Vec<PathBuf> = payload
        .bins
        .iter()
        .chain(&payload.tests)
        .map(|e| e.path.clone())
        .collect();
    for tool in TOOLS {
        if let Some(path) = which(tool) {
            let target = bindir.join(tool);
            fs::copy(&path, &target).with_context(|| format!("copying {}", path.display()))?;
            set_mode(&target, 0o755)?;
            elves.push(path);
        }
    }
    let mut libs = BTreeSet::new();
    for elf in &elves {
        if is_static(elf)? {
            continue;
        }
        libs.extend(shared_libs(elf)?);
    }
    for lib in libs {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        // fs::copy follows symlinks: the guest gets plain files at the paths the loader asks for.
        fs::copy(&lib, &target).with_context(|| format!("copying {}", lib.display()))?;
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The libraries `ldd` resolves for `elf`, including the ELF interpreter.
fn shared_libs(elf: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(elf)
        .output()
        .context("running ldd (apt-get install libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "ldd {} failed: {}{}",
            elf.display(),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_ldd(&text).with_context(|| format!("ldd {}", elf.display()))
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("{} not found", name.trim());
                }
                rest.split_whitespace().next().unwrap_or_default()
            }
            None => line.split_whitespace().next().unwrap_or_default(),
        };
        // linux-vdso.so.1 and friends have no path.
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/work/it's"), r"'/work/it'\''s'");
    }
}
