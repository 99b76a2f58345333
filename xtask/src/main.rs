//! Developer tasks: `cargo xtask build-ebpf | build | run | test | lint | fuzz | bench | dist`.
//!
//! Every task installs what it needs first (scripts/setup.sh: nightly rust-src, bpf-linker into a
//! cache, Debian packages), so the two commands in README.md work on a fresh machine.
use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod bench_env;
mod bench_report;
mod bench_tools;
mod dist;
mod fuzz;
mod vm;

#[derive(Parser)]
#[command(name = "xtask")]
struct Opt {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install prerequisites (idempotent) and print the environment they need.
    Setup,
    /// Build the eBPF object (target/bpfel-unknown-none/release/netmon).
    BuildEbpf,
    /// Build the eBPF object and the netmon binary that embeds it (release).
    Build,
    /// Build everything and run `netmon` (as root through sudo when needed); args go to netmon.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Formatting, clippy (host crates and the eBPF crate).
    Lint,
    /// The whole suite: lint, unit tests, then the root end-to-end tests.
    Test {
        /// Skip fmt/clippy.
        #[arg(long)]
        no_lint: bool,
        /// Only the tests that need no root.
        #[arg(long)]
        unprivileged: bool,
        /// Extra args for the root test binary (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The root tests on Debian's 6.1 and 6.12 kernels under qemu and on the host kernel.
    VmTest(vm::Args),
    /// Fuzz netmon-packet's parsers (cargo-fuzz, nightly) for `--seconds` each.
    Fuzz(fuzz::Args),
    /// netmon against nethogs and bandwhich: throughput, CPU, memory, accuracy (as root).
    Bench(bench::Args),
    /// The Debian package and a tarball of the same files, in target/dist (checked by lintian).
    Dist(dist::Args),
    /// Regenerate docs/flags.md from netmon's clap definitions (the `docs` test checks it).
    Docs,
}

fn main() {
    let opt = Opt::parse();
    if let Err(e) = run(opt.cmd) {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> Result<()> {
    let root = workspace_root();
    match cmd {
        Cmd::Setup => {
            let dir = setup(&root)?;
            println!("export BPF_LINKER_DIR={}", dir.display());
        }
        Cmd::BuildEbpf => build_ebpf(&root)?,
        Cmd::Build => build(&root)?,
        Cmd::Run { args } => {
            build(&root)?;
            let bin = target_dir(&root).join("release/netmon");
            let args = if args.is_empty() {
                vec!["run".to_string()]
            } else {
                args
            };
            let status = as_root(&bin, &args, &root, &[])?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Lint => lint(&root)?,
        Cmd::Test {
            no_lint,
            unprivileged,
            args,
        } => test(&root, !no_lint, !unprivileged, &args)?,
        Cmd::VmTest(args) => vm::run(&root, args)?,
        Cmd::Fuzz(args) => fuzz::run(&root, args)?,
        Cmd::Bench(args) => bench::run(&root, args)?,
        Cmd::Dist(args) => dist::run(&root, args)?,
        Cmd::Docs => {
            let status = cargo()
                .current_dir(&root)
                .args(["run", "-q", "-p", "netmon", "--bin", "netmon-mangen", "--"])
                .arg("--flags-md")
                .arg(root.join("docs/flags.md"))
                .status()?;
            check(status, "netmon-mangen --flags-md docs/flags.md")?;
        }
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR` when set (relative to the workspace,
/// where xtask runs cargo), else `target/` in the workspace.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    }
}

/// Runs scripts/setup.sh and returns the directory holding bpf-linker.
fn setup(root: &Path) -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(root.join("scripts/setup.sh"))
        .output()
        .context("running scripts/setup.sh")?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("scripts/setup.sh failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export BPF_LINKER_DIR="))
        .context("scripts/setup.sh printed no BPF_LINKER_DIR")?;
    Ok(PathBuf::from(dir.trim()))
}

fn check(status: ExitStatus, what: &str) -> Result<()> {
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn build_ebpf(root: &Path) -> Result<()> {
    let linker_dir = setup(root)?;
    let toolchain = env::var("NETMON_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    let mut path = OsString::from(&linker_dir);
    path.push(":");
    path.push(env::var_os("PATH").unwrap_or_default());
    eprintln!("xtask: building the eBPF object with {toolchain}");
    let status = Command::new("rustup")
        .current_dir(root.join("netmon-ebpf"))
        .args([
            "run",
            &toolchain,
            "cargo",
            "build",
            "-p",
            "netmon-ebpf",
            "--bin",
            "netmon",
        ])
        .args([
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--release",
        ])
        .env("PATH", path)
        // Always the same flags (and the encoded form) so core is not rebuilt between runs.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        )
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO")
        .status()
        .context("running rustup (is Rust installed through rustup?)")?;
    check(status, "eBPF build")?;
    let obj = target_dir(root).join("bpfel-unknown-none/release/netmon");
    eprintln!("xtask: eBPF object at {}", obj.display());
    Ok(())
}

/// The cargo that runs xtask, with the toolchain rustup chose for it kept: without
/// RUSTUP_TOOLCHAIN, the rustc proxy would obey a dependency's own rust-toolchain.toml
/// (convert_case 0.10 pins 1.83.0) and fail on a machine without that toolchain.
fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo build --release` of netmon and the test binaries (trafficgen, loadgen), which the
/// root tests, vm-test and bench all run.
pub(crate) fn release_bins_command(root: &Path) -> Command {
    let mut c = cargo();
    c.current_dir(root).args([
        "build",
        "--release",
        "-p",
        "netmon",
        "-p",
        "netmon-tests",
        "--bins",
    ]);
    c
}

fn build(root: &Path) -> Result<()> {
    build_ebpf(root)?;
    let status = cargo()
        .current_dir(root)
        .args(["build", "--release", "-p", "netmon"])
        .status()?;
    check(status, "cargo build --release -p netmon")
}

fn lint(root: &Path) -> Result<()> {
    let status = cargo()
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check"])
        .status()?;
    check(status, "cargo fmt --check (run `cargo fmt --all`)")?;
    let status = cargo()
        .current_dir(root)
        .args(["clippy", "--all-targets", "--", "-D", "warnings"])
        .status()?;
    check(status, "cargo clippy")
}

/// Runs `bin args` as root: directly when we are root, through `sudo -E` otherwise.
fn as_root(bin: &Path, args: &[String], dir: &Path, envs: &[(&str, &str)]) -> Result<ExitStatus> {
    let is_root = unsafe_geteuid() == 0;
    let mut cmd = if is_root {
        Command::new(bin)
    } else {
        let mut c = Command::new("sudo");
        c.arg("-E").arg(bin);
        c
    };
    cmd.args(args).current_dir(dir).envs(envs.iter().copied());
    cmd.status()
        .with_context(|| format!("running {}", bin.display()))
}

fn unsafe_geteuid() -> u32 {
    // Reading /proc avoids a libc dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

fn test(root: &Path, lint_first: bool, privileged: bool, extra: &[String]) -> Result<()> {
    if lint_first {
        lint(root)?;
    }
    // The eBPF object first: the netmon binary embeds it, and the root tests run that binary.
    build_ebpf(root)?;
    let status = cargo()
        .current_dir(root)
        .args(["test", "--workspace"])
        .status()?;
    check(status, "cargo test (unprivileged)")?;
    if !privileged {
        return Ok(());
    }
    let status = release_bins_command(root).status()?;
    check(status, "building netmon for the root tests")?;
    let netmon = target_dir(root).join("release/netmon");
    let bindir = target_dir(root).join("release");
    let mut failed = Vec::new();
    // The Debian package of the netmon just built (seconds: no compiling), for the root test
    // that installs it (tests/tests/package.rs), and lintian's verdict on it.
    let deb = match dist::package(root) {
        Ok(built) => {
            if let Err(e) = dist::lintian(&built.deb) {
                eprintln!("xtask: {e:#}");
                failed.push("lintian".to_string());
            }
            built.deb.to_string_lossy().into_owned()
        }
        Err(e) => {
            eprintln!("xtask: cargo xtask dist failed: {e:#}");
            failed.push("dist".to_string());
            String::new()
        }
    };
    // Root tests are the `#[ignore]`d ones; the rest already ran above without root.
    for dir in ["netmon", "tests"] {
        for exe in vm::test_binaries(root, dir)? {
            eprintln!("xtask: root tests in {}", exe.path.display());
            let mut args = vec!["--ignored".to_string(), "--test-threads=1".to_string()];
            args.extend(extra.iter().cloned());
            let dir = exe
                .package_dir
                .clone()
                .unwrap_or_else(|| root.to_path_buf());
            let status = as_root(
                &exe.path,
                &args,
                &dir,
                &[
                    ("NETMON_PRIVILEGED_TESTS", "1"),
                    ("NETMON_BIN", netmon.to_str().unwrap_or_default()),
                    ("NETMON_TEST_BIN_DIR", bindir.to_str().unwrap_or_default()),
                    ("NETMON_DEB", &deb),
                    ("RUST_BACKTRACE", "1"),
                ],
            )?;
            if !status.success() {
                failed.push(exe.path.display().to_string());
            }
        }
    }
    // The benchmark's smoke run, so the harness cannot rot; the full benchmark is not CI's.
    eprintln!("xtask: cargo xtask bench --quick");
    let quick = if unsafe_geteuid() == 0 {
        bench::run(root, bench::Args::quick())
    } else {
        env::current_exe()
            .context("finding xtask")
            .and_then(|me| as_root(&me, &["bench".into(), "--quick".into()], root, &[]))
            .and_then(|s| check(s, "bench --quick"))
    };
    if let Err(e) = quick {
        eprintln!("xtask: bench --quick failed: {e:#}");
        failed.push("bench --quick".into());
    }
    if !failed.is_empty() {
        bail!("root tests failed in: {}", failed.join(", "));
    }
    Ok(())
}
