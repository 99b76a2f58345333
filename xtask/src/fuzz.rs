//! `cargo xtask fuzz --seconds N [--target NAME]`: runs each cargo-fuzz target of
//! netmon-packet for N seconds and prints how long each ran and how many inputs it executed.
//! Installs cargo-fuzz when missing; needs a nightly toolchain (sanitizer flags).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Only these targets (default: all in netmon-packet/fuzz/fuzz_targets).
    #[arg(long)]
    target: Vec<String>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let crate_dir = root.join("netmon-packet");
    let mut targets: Vec<String> = std::fs::read_dir(crate_dir.join("fuzz/fuzz_targets"))
        .context("reading netmon-packet/fuzz/fuzz_targets")?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(str::to_string)
        })
        .collect();
    targets.sort();
    if !args.target.is_empty() {
        if let Some(bad) = args.target.iter().find(|t| !targets.contains(t)) {
            bail!("no fuzz target '{bad}'; targets: {}", targets.join(", "));
        }
        targets.retain(|t| args.target.contains(t));
    }
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    // Start from the test fixtures (well-formed packets, DNS messages, filters).
    let status = super::cargo()
        .current_dir(root)
        .args([
            "run",
            "-q",
            "-p",
            "netmon-packet",
            "--example",
            "fuzz_seeds",
            "--",
        ])
        .arg(crate_dir.join("fuzz/seeds"))
        .status()
        .context("running the fuzz_seeds example")?;
    super::check(status, "writing fuzz seeds")?;

    let mut results = Vec::new();
    for t in &targets {
        eprintln!("xtask: fuzzing {t} for {} s", args.seconds);
        results.push((t.clone(), run_target(&crate_dir, t, args.seconds)?));
    }
    println!(
        "{:<14} {:>8} {:>14} {:>12}",
        "target", "seconds", "executions", "exec/s"
    );
    for (t, (secs, execs)) in &results {
        println!(
            "{t:<14} {secs:>8} {execs:>14} {:>12}",
            execs / (*secs).max(1)
        );
    }
    Ok(())
}

fn nightly_cargo() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo"]);
    // The xtask itself runs under stable cargo; let rustup pick nightly's tools.
    for v in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO",
        "RUSTFLAGS",
    ] {
        c.env_remove(v);
    }
    c
}

fn ensure_nightly() -> Result<()> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .context("running rustup (cargo-fuzz needs Rust installed through rustup)")?;
    if !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("nightly"))
    {
        bail!(
            "cargo-fuzz needs a nightly toolchain: run `rustup toolchain install nightly` (scripts/setup.sh installs it too)"
        );
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!(
        "xtask: cargo-fuzz is missing; installing it once with `cargo install cargo-fuzz --locked` (a few minutes)"
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install cargo-fuzz")?;
    super::check(status, "cargo install cargo-fuzz")
}

/// Runs one target; returns (seconds run, executions) from libFuzzer's final report.
fn run_target(crate_dir: &Path, target: &str, seconds: u64) -> Result<(u64, u64)> {
    let corpus = crate_dir.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let mut child = nightly_cargo()
        .current_dir(crate_dir)
        .args(["fuzz", "run", target])
        // New inputs go to the first directory; the seeds are only read.
        .arg(format!("fuzz/corpus/{target}"))
        .arg(format!("fuzz/seeds/{target}"))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    // Keep only the tail: libFuzzer prints a status line every few seconds.
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let (mut secs, mut execs) = (None, None);
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap_or_default();
        // "Done 1234567 runs in 61 second(s)"
        if let Some(rest) = line.strip_prefix("Done ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            execs = words.first().and_then(|w| w.parse().ok());
            secs = words.get(3).and_then(|w| w.parse().ok());
        }
        if line.starts_with("stat::number_of_executed_units:") {
            execs = line
                .rsplit(' ')
                .next()
                .and_then(|w| w.trim().parse().ok())
                .or(execs);
        }
        if tail.len() == 40 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child.wait()?;
    if !status.success() {
        for l in &tail {
            eprintln!("{l}");
        }
        bail!(
            "fuzz target {target} failed ({status}); a crashing input is under netmon-packet/fuzz/artifacts/{target}/"
        );
    }
    match (secs, execs) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => bail!("fuzz target {target} ended without libFuzzer's final report"),
    }
}
