//! The guest's initramfs: static busybox, the kernel's modules in load order, and scripts/vm/init.
//! Rebuilt on every run (well under a second) so that edits to the init script always apply.
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

const BUSYBOX: &str = "/bin/busybox";

/// Builds `dest` (an uncompressed newc cpio) in a staging directory under `work`.
pub fn build(root: &Path, modules: &Path, work: &Path, dest: &Path) -> Result<()> {
    let stage = work.join("initramfs");
    let _ = fs::remove_dir_all(&stage);
    for d in [
        "bin", "modules", "proc", "sys", "dev", "tmp", "run", "share", "etc", "root",
    ] {
        fs::create_dir_all(stage.join(d))?;
    }
    let busybox = Path::new(BUSYBOX);
    if !is_static(busybox)? {
        bail!("{BUSYBOX} is not statically linked: apt-get install busybox-static");
    }
    fs::copy(busybox, stage.join("bin/busybox"))
        .with_context(|| format!("copying {BUSYBOX} (apt-get install busybox-static)"))?;
    fs::copy(root.join("scripts/vm/init"), stage.join("init"))
        .context("copying scripts/vm/init")?;
    set_mode(&stage.join("init"), 0o755)?;
    for entry in fs::read_dir(modules)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, stage.join("modules").join(name))?;
        }
    }

    let mut list = Vec::new();
    walk(&stage, &stage, &mut list)?;
    let out = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut child = Command::new("cpio")
        .current_dir(&stage)
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .context("running cpio (apt-get install cpio)")?;
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for p in &list {
            stdin.write_all(p.as_os_str().as_encoded_bytes())?;
            stdin.write_all(b"\n")?;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cpio failed ({status})");
    }
    fs::remove_dir_all(&stage)?;
    Ok(())
}

/// Paths relative to `base`, parents before children.
fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        out.push(path.strip_prefix(base)?.to_path_buf());
        if e.file_type()?.is_dir() {
            walk(base, &path, out)?;
        }
    }
    Ok(())
}

/// An ELF without a PT_INTERP program header is static.
pub fn is_static(path: &Path) -> Result<bool> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if data.get(..4) != Some(b"\x7fELF") || data.get(4) != Some(&2) {
        bail!("{} is not a 64-bit ELF", path.display());
    }
    let u16_at = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |at: usize| {
        data.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("{} has a truncated ELF header", path.display());
    };
    const PT_INTERP: u32 = 3;
    for i in 0..phnum as usize {
        let at = phoff as usize + i * phentsize as usize;
        let Some(b) = data.get(at..at + 4) else {
            bail!("{} has truncated program headers", path.display());
        };
        if u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}
