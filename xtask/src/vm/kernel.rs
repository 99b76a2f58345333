//! Debian kernel images: resolve the current package name, download, unpack, and cache the
//! uncompressed vmlinux and the few modules the guest loads, keyed by package name and version.
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use super::{run_quiet, tool_output};

/// Modules the guest needs for the share: a missing one is an error.
const REQUIRED_MODULES: &[&str] = &["9p", "9pnet_virtio", "virtio_pci"];

/// Modules tests may use (veth pairs, clsact/TC, sock_diag for the procfs source and `ss`); one
/// that a kernel lacks is skipped with a warning.
const OPTIONAL_MODULES: &[&str] = &[
    "veth",
    "dummy",
    "sch_ingress",
    "cls_bpf",
    "act_bpf",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "raw_diag",
    "unix_diag",
    "netlink_diag",
    "af_packet_diag",
];

/// Modules for the USB hot-plug test (see hotplug.rs): the xhci controller qemu gives the guest,
/// the tablet's HID drivers, and usb-storage with the SCSI disk driver for the stick. None of
/// them is built into Debian's kernels; a kernel without one is warned about and the test fails.
const USB_MODULES: &[&str] = &["xhci_pci", "usbhid", "hid_generic", "usb_storage", "sd_mod"];

/// A Debian kernel line this task knows how to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    V6_1,
    V6_12,
}

impl Series {
    pub fn label(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    /// The pattern shown to users (and in errors).
    fn pattern(self) -> &'static str {
        match self {
            Series::V6_1 => "linux-image-6.1.0-*-amd64",
            Series::V6_12 => "linux-image-6.12.*+deb12-amd64",
        }
    }

    /// The ABI or upstream patch number when `name` is exactly a package of this series (the
    /// plain amd64 flavour: no -dbg, -cloud, -rt or -unsigned), used to pick the newest.
    fn rank(self, name: &str) -> Option<u64> {
        let num = match self {
            Series::V6_1 => name
                .strip_prefix("linux-image-6.1.0-")?
                .strip_suffix("-amd64")?,
            Series::V6_12 => name
                .strip_prefix("linux-image-6.12.")?
                .strip_suffix("+deb12-amd64")?,
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        num.parse().ok()
    }

    fn search_regex(self) -> &'static str {
        match self {
            Series::V6_1 => r"^linux-image-6\.1\.0-[0-9]+-amd64$",
            Series::V6_12 => r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$",
        }
    }
}

/// A kernel ready to boot.
pub struct Kernel {
    /// Package name and version, e.g. `linux-image-6.1.0-56-amd64 6.1.192-2`.
    pub package: String,
    pub vmlinux: PathBuf,
    /// Decompressed modules and `order` ("file.ko [params]" per line, dependency order).
    pub modules: PathBuf,
}

/// Newest package of the series in the apt lists, with its candidate version.
fn resolve(series: Series) -> Result<Option<(String, String)>> {
    let out = tool_output(
        Command::new("apt-cache").args(["search", "--names-only", series.search_regex()]),
        "apt-cache search",
    )?;
    let best = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| series.rank(name).map(|r| (r, name.to_string())))
        .max();
    let Some((_, name)) = best else {
        return Ok(None);
    };
    let policy = tool_output(
        Command::new("apt-cache").args(["policy", &name]),
        "apt-cache policy",
    )?;
    let version = policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(|v| v.trim().to_string())
        .filter(|v| v != "(none)")
        .with_context(|| format!("apt-cache policy {name} shows no candidate version"))?;
    Ok(Some((name, version)))
}

pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("netmon/vm"))
}

/// Resolves, downloads and unpacks the newest kernel of `series`, or reuses the cached one.
pub fn fetch(series: Series) -> Result<Kernel> {
    let resolved = match resolve(series)? {
        Some(r) => r,
        None => {
            eprintln!(
                "xtask: no {} in the apt lists; running apt-get update",
                series.pattern()
            );
            run_quiet(
                Command::new("apt-get").args(["update", "-q"]),
                "apt-get update",
            )?;
            resolve(series)?.with_context(|| {
                format!(
                    "no {} package known to apt: add bookworm-security to the apt sources and run \
                     apt-get update",
                    series.pattern()
                )
            })?
        }
    };
    let (name, version) = resolved;
    let dir = cache_dir()?.join(format!("{name}_{version}"));
    let kernel = Kernel {
        package: format!("{name} {version}"),
        vmlinux: dir.join("vmlinux"),
        modules: dir.join("modules"),
    };
    // The cache is complete once `modules/wanted` lists exactly the modules above (they may grow).
    let wanted = [REQUIRED_MODULES, OPTIONAL_MODULES, USB_MODULES]
        .concat()
        .join("\n");
    if fs::read_to_string(kernel.modules.join("wanted")).is_ok_and(|w| w == wanted) {
        eprintln!("xtask: {} {name} {version} (cached)", series.label());
        return Ok(kernel);
    }
    eprintln!(
        "xtask: {}: fetching {name} {version} into {}",
        series.label(),
        dir.display()
    );
    let parent = dir.parent().expect("cache dir has a parent");
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    let _cleanup = super::RemoveOnDrop(tmp.clone());
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    prepare(&name, &version, &tmp).with_context(|| format!("preparing {name} {version}"))?;
    fs::write(tmp.join("package"), format!("{name} {version}\n"))?;
    fs::write(tmp.join("modules/wanted"), wanted)?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).with_context(|| format!("moving the kernel into {}", dir.display()))?;
    Ok(kernel)
}

/// Downloads the package into `out`, leaves `vmlinux`, `modules/`, and removes the rest.
fn prepare(name: &str, version: &str, out: &Path) -> Result<()> {
    let dl = out.join("dl");
    fs::create_dir_all(&dl)?;
    run_quiet(
        Command::new("apt-get")
            .current_dir(&dl)
            .args(["download", &format!("{name}={version}")]),
        &format!("apt-get download {name}={version} (try apt-get update)"),
    )?;
    let deb = fs::read_dir(&dl)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let root = out.join("root");
    run_quiet(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        "dpkg -x",
    )?;
    fs::remove_file(&deb)?;

    let vmlinuz = fs::read_dir(root.join("boot"))
        .context("the package has no boot/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the package has no boot/vmlinuz-*")?;
    let kver = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("odd vmlinuz name")?
        .to_string();
    extract_vmlinux(&vmlinuz, &out.join("vmlinux"))?;
    copy_modules(&root, &kver, &out.join("modules"))?;
    fs::remove_dir_all(&root)?;
    fs::remove_dir_all(&dl)?;
    Ok(())
}

/// Writes the uncompressed ELF kernel inside a bzImage. The x86 boot header names the payload
/// (`payload_offset`/`payload_length`, boot protocol ≥ 2.08); the compressed stream starts there
/// with the xz (`FD 37 7A 58 5A 00`) or zstd (`28 B5 2F FD`) magic and is followed by its 4-byte
/// uncompressed size. Without a usable header the magic is searched for instead.
fn extract_vmlinux(vmlinuz: &Path, dest: &Path) -> Result<()> {
    const XZ: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
    const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    let image = fs::read(vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let le32 = |at: usize| -> Option<usize> {
        let b = image.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let from_header = (|| {
        if image.get(0x202..0x206)? != b"HdrS" {
            return None;
        }
        let setup_sects = match *image.get(0x1f1)? {
            0 => 4,
            n => n as usize,
        };
        let start = (setup_sects + 1) * 512 + le32(0x248)?;
        let len = le32(0x24c)?;
        let payload = image.get(start..start + len)?;
        let stream = &payload[..len.checked_sub(4)?];
        let size = le32(start + len - 4)?;
        Some((stream, Some(size)))
    })();
    let (stream, expected) = match from_header {
        Some((s, size)) if s.starts_with(XZ) || s.starts_with(ZSTD) => (s, size),
        _ => {
            let at = find(&image, XZ)
                .or_else(|| find(&image, ZSTD))
                .context("no xz or zstd stream in vmlinuz")?;
            (&image[at..], None)
        }
    };
    let mut cmd = if stream.starts_with(XZ) {
        let mut c = Command::new("xz");
        c.args(["-dc", "--single-stream"]);
        c
    } else {
        let mut c = Command::new("zstd");
        c.args(["-qdc"]);
        c
    };
    let out = fs::File::create(dest)?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .context("running xz/zstd (apt-get install xz-utils zstd)")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Trailing bytes after the stream (magic-search fallback) make the decompressor stop early
    // and close its input: that write error is expected and the ELF check below decides.
    let _ = stdin.write_all(stream);
    drop(stdin);
    let status = child.wait_with_output()?;
    let got = fs::metadata(dest)?.len() as usize;
    let mut head = [0u8; 4];
    let elf = fs::File::open(dest)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && head == *b"\x7fELF";
    match expected {
        Some(size) if !status.status.success() || got != size || !elf => bail!(
            "decompressing the kernel in {} failed ({}, {got} of {size} bytes): {}",
            vmlinuz.display(),
            status.status,
            String::from_utf8_lossy(&status.stderr).trim()
        ),
        None if !elf => bail!("the kernel in {} did not decompress", vmlinuz.display()),
        _ => Ok(()),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Runs depmod on the unpacked tree, then copies (decompressing `.ko.xz`/`.ko.zst`) the modules
/// that `modprobe --show-depends` lists, in that order, and writes `order`.
fn copy_modules(root: &Path, kver: &str, dest: &Path) -> Result<()> {
    let moddir = root.join("lib/modules").join(kver);
    if !moddir.is_dir() {
        bail!("the package has no lib/modules/{kver}");
    }
    run_quiet(
        Command::new("depmod").arg("-b").arg(root).arg(kver),
        "depmod (apt-get install kmod)",
    )?;
    let mut deps = String::new();
    for (module, required) in REQUIRED_MODULES
        .iter()
        .map(|m| (m, true))
        .chain(OPTIONAL_MODULES.iter().map(|m| (m, false)))
        .chain(USB_MODULES.iter().map(|m| (m, false)))
    {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(root)
            .args(["-S", kver, "--show-depends", module])
            .output()
            .context("running modprobe (apt-get install kmod)")?;
        if out.status.success() {
            deps.push_str(&String::from_utf8_lossy(&out.stdout));
        } else if required {
            bail!(
                "module {module} missing from the {kver} package: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        } else {
            eprintln!("xtask: {kver} has no module {module}; tests that need it will fail");
        }
    }
    fs::create_dir_all(dest)?;
    let mut order = String::new();
    let mut seen = std::collections::HashSet::new();
    for line in deps.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("insmod") {
            continue; // "builtin NAME"
        }
        let Some(path) = words.next() else { continue };
        let params: Vec<&str> = words.collect();
        let src = PathBuf::from(path);
        let file = src
            .file_name()
            .and_then(|n| n.to_str())
            .context("odd module path")?;
        let (stem, decompress) = if let Some(s) = file.strip_suffix(".xz") {
            (s, Some("xz"))
        } else if let Some(s) = file.strip_suffix(".zst") {
            (s, Some("zstd"))
        } else {
            (file, None)
        };
        if !seen.insert(stem.to_string()) {
            continue;
        }
        let target = dest.join(stem);
        match decompress {
            None => {
                fs::copy(&src, &target).with_context(|| format!("copying {}", src.display()))?;
            }
            Some(tool) => {
                let out = fs::File::create(&target)?;
                let status = Command::new(tool)
                    .arg("-dc")
                    .arg(&src)
                    .stdout(out)
                    .status()
                    .with_context(|| format!("running {tool}"))?;
                if !status.success() {
                    bail!("{tool} -dc {} failed ({status})", src.display());
                }
            }
        }
        order.push_str(stem);
        for p in params {
            order.push(' ');
            order.push_str(p);
        }
        order.push('\n');
    }
    fs::write(dest.join("order"), order)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_exact_package_names() {
        let s = Series::V6_1;
        assert_eq!(s.rank("linux-image-6.1.0-56-amd64"), Some(56));
        assert_eq!(s.rank("linux-image-6.1.0-56-cloud-amd64"), None);
        assert_eq!(s.rank("linux-image-6.1.0-56-amd64-unsigned"), None);
        assert_eq!(s.rank("linux-image-6.1.0--amd64"), None);
        let s = Series::V6_12;
        assert_eq!(s.rank("linux-image-6.12.117+deb12-amd64"), Some(117));
        assert_eq!(s.rank("linux-image-6.12.117+deb12-rt-amd64"), None);
        assert_eq!(s.rank("linux-image-6.12.117+deb12-amd64-dbg"), None);
    }
}
