//! `cargo xtask vm-test`: the root test suite on Debian's 6.1 and 6.12 kernels under qemu, and on
//! the host kernel, with a report per kernel.
//!
//! Per kernel: resolve the newest `linux-image-…-amd64` package in the apt lists, download and
//! unpack it once into `~/.cache/netmon/vm/NAME_VERSION/` (uncompressed vmlinux + the virtio/9p
//! and test modules), build a small initramfs (static busybox, those modules, scripts/vm/init),
//! and boot it with software emulation (the nested /dev/kvm here cannot run stock kernels). The
//! guest mounts a 9p share holding netmon, the root test binaries, host tools (ip, nstat, ...) and
//! their glibc libraries, runs scripts/vm/run.sh (kernel facts, `netmon doctor`, every root test
//! binary) and powers off. `--kernel host` runs the same script here. Results and console logs
//! are kept in target/vm-test/KERNEL/; everything else is removed. Each guest also has an xhci
//! controller, into which the host plugs a USB tablet and a USB stick (and takes them out again)
//! when the guest's USB test asks on the console (vm/hotplug.rs).
//!
//! Measured on this machine (2 vCPUs, TCG): about 3 s from qemu start to /init, 7–8 s for a
//! whole guest run with a few BPF tests.
mod hotplug;
mod initramfs;
mod kernel;
mod report;
mod runner;
mod share;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

use kernel::Series;
use report::Outcome;

/// Debian packages the guests need on the host.
const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "cpio",
    "xz-utils",
    "zstd",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelChoice {
    /// Debian bookworm's 6.1 (kprobes, no sock_send_length tracepoint).
    #[value(name = "6.1")]
    V6_1,
    /// Debian's 6.12 backport (kprobes and the sock_*_length tracepoints).
    #[value(name = "6.12")]
    V6_12,
    /// The running kernel, no VM.
    Host,
    /// host, 6.1 and 6.12.
    All,
}

#[derive(clap::Args)]
pub struct Args {
    /// Kernels to test (comma-separated or repeated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    kernel: Vec<KernelChoice>,
    /// Hard limit per kernel in seconds (boot + run); the guest powers itself off 20 s earlier.
    /// A guest under TCG needs about 280 s for the whole root suite.
    #[arg(long, default_value_t = 480)]
    timeout: u64,
    /// Only boot and report kernel facts (uname, BTF, kprobe PMU): no build, no doctor, no tests.
    #[arg(long)]
    smoke: bool,
    /// Stream each guest's console while it runs.
    #[arg(long, short)]
    verbose: bool,
    /// Extra args for the root test binaries (e.g. a test name filter).
    #[arg(last = true)]
    args: Vec<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Removes a directory tree when dropped (also on errors and Ctrl-C).
pub(crate) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`, showing its output only when it fails.
pub(crate) fn run_quiet(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {what}: {:?} not found", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout.
pub(crate) fn tool_output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {what}: {:?} not found", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

enum Target {
    Host,
    Debian(Series),
}

impl Target {
    fn label(&self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::Debian(s) => s.label(),
        }
    }
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let mut targets = Vec::new();
    let mut add = |t: Target| {
        if !targets.iter().any(|x: &Target| x.label() == t.label()) {
            targets.push(t);
        }
    };
    for k in &args.kernel {
        match k {
            KernelChoice::Host => add(Target::Host),
            KernelChoice::V6_1 => add(Target::Debian(Series::V6_1)),
            KernelChoice::V6_12 => add(Target::Debian(Series::V6_12)),
            KernelChoice::All => {
                add(Target::Host);
                add(Target::Debian(Series::V6_1));
                add(Target::Debian(Series::V6_12));
            }
        }
    }
    if args.timeout < 30 {
        bail!("--timeout must be at least 30 s");
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }

    let vms = targets.iter().any(|t| matches!(t, Target::Debian(_)));
    if vms {
        install_host_packages()?;
    }
    let payload = if args.smoke {
        share::Payload {
            bins: Vec::new(),
            tests: Vec::new(),
            test_args: Vec::new(),
            smoke: true,
        }
    } else {
        build(root, &args.args)?
    };
    check_interrupt()?;

    let results = crate::target_dir(root).join("vm-test");
    fs::create_dir_all(&results)?;
    remove_stale_work_dirs(&results);
    let total = Instant::now();
    let mut outcomes = Vec::new();
    for target in &targets {
        let run = || {
            run_one(root, &results, target, &payload, &args)
                .with_context(|| format!("kernel {}", target.label()))
        };
        let mut outcome = run()?;
        outcome.print();
        // One more boot, said out loud, when the kernel died before anything of ours ran; a
        // second crash fails like any other.
        if matches!(target, Target::Debian(_)) && outcome.crashed_while_booting() {
            eprintln!(
                "xtask: {}: the guest kernel panicked while booting, before netmon's run began (console above); booting it once more",
                outcome.label
            );
            check_interrupt()?;
            outcome = run()?;
            outcome.print();
        }
        outcomes.push(outcome);
        check_interrupt()?;
    }

    println!();
    println!("==== summary ({:.1} s)", total.elapsed().as_secs_f64());
    let mut failed = Vec::new();
    for o in &outcomes {
        let problems = o.problems();
        let verdict = if problems.is_empty() { "PASS" } else { "FAIL" };
        let tests: usize = o.results.binaries.iter().map(|b| b.cases.len()).sum();
        println!(
            "  {:<5} {verdict}  {:>6.1} s  {tests} tests  {}",
            o.label,
            o.wall.as_secs_f64(),
            problems.join("; ")
        );
        if !problems.is_empty() {
            failed.push(o.label.clone());
        }
    }
    if !failed.is_empty() {
        bail!("vm-test failed on: {}", failed.join(", "));
    }
    Ok(())
}

fn check_interrupt() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Installs the missing packages of HOST_PACKAGES (apt-get, as root or through sudo).
fn install_host_packages() -> Result<()> {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| !String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask: installing host packages for vm-test: {}",
            missing.join(" ")
        );
        let mut cmd = if super::unsafe_geteuid() == 0 {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        let status = cmd
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get (is this Debian?)")?;
        if !status.success() {
            bail!(
                "installing host packages failed ({status}): run `sudo apt-get update && sudo \
                 apt-get install -y {}`",
                missing.join(" ")
            );
        }
    }
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("qemu-system-x86_64 missing: apt-get install qemu-system-x86");
    }
    Ok(())
}

/// Builds the eBPF object, netmon and the root test binaries; returns what goes into the share.
fn build(root: &Path, test_args: &[String]) -> Result<share::Payload> {
    super::build_ebpf(root)?;
    let out = super::release_bins_command(root)
        .args(["--message-format=json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    super::check(
        out.status,
        "cargo build --release -p netmon -p netmon-tests --bins",
    )?;
    let bins = executables(&String::from_utf8_lossy(&out.stdout), false);
    if !bins
        .iter()
        .any(|b| b.path.file_name().is_some_and(|n| n == "netmon"))
    {
        bail!("cargo build produced no netmon binary");
    }
    // The root tests of netmon-tests (found like `xtask test` does, but from cargo's JSON), then
    // netmon's own tests: they hold root tests too (`#[ignore = "needs root ..."]`, e.g. procnet
    // against iproute2 in a fresh netns, sock_diag), worth running on every kernel.
    let mut tests = test_binaries(root, "tests")?;
    if tests.is_empty() {
        bail!("no root test binaries were built");
    }
    tests.retain(|t| !host_only(&t.path));
    tests.extend(test_binaries(root, "netmon")?);
    Ok(share::Payload {
        bins,
        tests,
        test_args: test_args.to_vec(),
        smoke: false,
    })
}

/// Root test binaries that drive user-space tools the guests do not carry (a Prometheus server,
/// promtool, wrk, curl, tmux, python3, dpkg and man) and check nothing that differs between kernels beyond
/// what the other binaries cover; they run on the host in the same CI run.
const HOST_ONLY: &[&str] = &[
    "prometheus",
    "contrib",
    "tui",
    "capture",
    "bad_input",
    "package",
];

fn host_only(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // cargo names test binaries `<target>-<hash>`.
    let target = name.rsplit_once('-').map_or(name.as_str(), |(t, _)| t);
    HOST_ONLY.contains(&target)
}

/// `executable` paths of cargo's JSON compiler-artifact messages; with `tests`, only those built
/// with the test profile (a bin target also says `"test":true` in its target description, so a
/// string search would take the netmon binary for a test binary).
/// Each comes with its package's directory, where `cargo test` would run it.
fn executables(json: &str, tests: bool) -> Vec<share::Executable> {
    json.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| !tests || m["profile"]["test"] == true)
        .filter_map(|m| {
            Some(share::Executable {
                path: PathBuf::from(m["executable"].as_str()?),
                package_dir: m["manifest_path"]
                    .as_str()
                    .and_then(|p| Path::new(p).parent())
                    .map(Path::to_path_buf),
            })
        })
        .collect()
}

/// Test executables of the package in `dir` (`--tests`: unit and integration tests), from the
/// dev-profile build `cargo test --workspace` already made: the harnesses only drive the release
/// netmon and traffic binaries, and building them again with `--release` or `-p` (which unifies
/// features differently) cost CI two minutes.
pub(crate) fn test_binaries(root: &Path, dir: &str) -> Result<Vec<share::Executable>> {
    let out = super::cargo()
        .current_dir(root)
        .args(["test", "--workspace", "--tests", "--no-run"])
        .args(["--message-format=json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    super::check(out.status, "building the tests")?;
    let want = fs::canonicalize(root.join(dir)).with_context(|| format!("finding {dir}/"))?;
    Ok(executables(&String::from_utf8_lossy(&out.stdout), true)
        .into_iter()
        .filter(|e| e.package_dir.as_deref() == Some(want.as_path()))
        .collect())
}

fn run_one(
    root: &Path,
    results: &Path,
    target: &Target,
    payload: &share::Payload,
    args: &Args,
) -> Result<Outcome> {
    let label = target.label();
    let work = results.join(format!(".work-{label}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let _cleanup = RemoveOnDrop(work.clone());
    let share_dir = work.join("share");
    let limit = Duration::from_secs(args.timeout);
    let guest_limit = args.timeout - 20;
    let console = work.join("console.log");
    let prefix = format!("[{label}] ");

    let (package, end, wall, hotplug) = match target {
        Target::Host => {
            share::populate(root, &share_dir, payload, false, guest_limit)?;
            let package = tool_output(Command::new("uname").arg("-r"), "uname -r")?
                .trim()
                .to_string();
            eprintln!("xtask: host: running scripts/vm/run.sh");
            let mut cmd = if super::unsafe_geteuid() == 0 {
                Command::new("sh")
            } else {
                let mut c = Command::new("sudo");
                c.args(["-E", "sh"]);
                c
            };
            // Like the guest init: run.sh's status goes to out/exit_code.
            cmd.args([
                "-c",
                r#"sh "$SHARE/run.sh"; echo $? >"$SHARE/out/exit_code""#,
            ])
            .env("SHARE", &share_dir)
            .current_dir(&share_dir);
            let start = Instant::now();
            let end = runner::supervise(cmd, &console, limit, args.verbose, &prefix, None)?;
            (package, end, start.elapsed(), None)
        }
        Target::Debian(series) => {
            let kernel = kernel::fetch(*series)?;
            let initrd = work.join("initrd.cpio");
            initramfs::build(root, &kernel.modules, &work, &initrd)?;
            share::populate(root, &share_dir, payload, true, guest_limit)?;
            let rig = hotplug::Rig::new(&work, label)?;
            eprintln!("xtask: {label}: booting {} under qemu", kernel.package);
            let cmd = runner::qemu_command(&runner::Boot {
                vmlinux: &kernel.vmlinux,
                initrd: &initrd,
                share: &share_dir,
                workspace: root,
                usb: Some(&rig),
            });
            let (tx, driver) = hotplug::start(&rig, label);
            let start = Instant::now();
            let end = runner::supervise(
                cmd,
                &console,
                limit,
                args.verbose,
                &prefix,
                Some((hotplug::MARKER, tx)),
            );
            // supervise dropped the sender, so the driver has ended (or ends now).
            let hotplug = driver.join().ok();
            (kernel.package, end?, start.elapsed(), hotplug)
        }
    };
    // Keep the results: target/vm-test/LABEL/{console.log,out/}.
    let saved = results.join(label);
    let _ = fs::remove_dir_all(&saved);
    fs::create_dir_all(&saved)?;
    let _ = fs::copy(&console, saved.join("console.log"));
    let out_dir = share_dir.join("out");
    copy_dir(&out_dir, &saved.join("out"))?;
    let collected = report::collect(&out_dir);
    Ok(Outcome {
        label: label.to_string(),
        package,
        wall,
        end,
        results: collected,
        console: fs::read_to_string(&console).unwrap_or_default(),
        saved: saved.display().to_string(),
        smoke: payload.smoke,
        hotplug,
    })
}

/// Work directories of runs that were killed (SIGKILL skips the cleanup): `.work-LABEL-PID` whose
/// PID is gone.
fn remove_stale_work_dirs(results: &Path) {
    let Ok(dir) = fs::read_dir(results) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".work-")
            .and_then(|r| r.rsplit_once('-'))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_only() {
        let json = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"test":true},"#,
            r#""profile":{"test":false},"executable":"/t/release/netmon","#,
            r#""manifest_path":"/w/netmon/Cargo.toml"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"test":true},"#,
            r#""profile":{"test":true},"executable":"/t/release/deps/netmon-0123"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"test":true},"#,
            r#""profile":{"test":false},"executable":null}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        let paths = |tests| -> Vec<PathBuf> {
            executables(json, tests)
                .into_iter()
                .map(|e| e.path)
                .collect()
        };
        assert_eq!(paths(true), [PathBuf::from("/t/release/deps/netmon-0123")]);
        assert_eq!(
            paths(false),
            ["/t/release/netmon", "/t/release/deps/netmon-0123"].map(PathBuf::from)
        );
        assert_eq!(
            executables(json, false)[0].package_dir,
            Some(PathBuf::from("/w/netmon"))
        );
    }
}
