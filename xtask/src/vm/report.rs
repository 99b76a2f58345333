//! Reads what run.sh left in `out/` and prints one section per kernel.
use std::{fs, path::Path, time::Duration};

use super::{hotplug, runner::End};

/// One test binary's results.
pub struct Binary {
    pub name: String,
    /// Exit status, when run.sh recorded one.
    pub rc: Option<i32>,
    /// (test name, "ok" | "FAILED" | "ignored" ...), in run order.
    pub cases: Vec<(String, String)>,
    /// The libtest `test result:` line.
    pub summary: Option<String>,
    pub log: String,
}

/// What run.sh left in `out/`.
pub struct Results {
    /// `exit_code` of run.sh as written by the guest init (or the host run).
    pub exit_code: Option<String>,
    /// `key=value` lines of `facts` (kernel, btf, kprobe_pmu, ...).
    pub facts: Vec<(String, String)>,
    /// `netmon doctor` output and exit status.
    pub doctor: Option<(String, Option<i32>)>,
    pub binaries: Vec<Binary>,
}

pub struct Outcome {
    pub label: String,
    pub package: String,
    pub wall: Duration,
    pub end: End,
    pub results: Results,
    pub console: String,
    /// Where the console log and `out/` were kept.
    pub saved: String,
    pub smoke: bool,
    /// The USB hot-plug driver's steps and the guest's events (guests only).
    pub hotplug: Option<hotplug::Report>,
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn read_rc(path: &Path) -> Option<i32> {
    read(path)?.trim().parse().ok()
}

/// What libtest says of a finished test.
const RESULTS: &[&str] = &["ok", "FAILED", "ignored", "bench"];

/// The libtest lines `test NAME ... RESULT`. A test that writes to stderr past libtest's capture
/// (the USB hot-plug test tells the host when it listens) splits such a line: its own lines
/// follow `test NAME ... ` and the result comes alone on a later line.
pub fn parse_cases(log: &str) -> (Vec<(String, String)>, Option<String>) {
    let mut cases = Vec::new();
    let mut summary = None;
    let mut pending: Option<String> = None;
    let first_word = |s: &str| s.split([' ', ',']).next().unwrap_or_default().to_string();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            summary = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, result)) = rest.rsplit_once(" ... ")
        {
            if let Some(open) = pending.take() {
                cases.push((open, "unfinished".to_string()));
            }
            let result = first_word(result);
            if RESULTS.contains(&result.as_str()) {
                cases.push((name.trim().to_string(), result));
            } else {
                pending = Some(name.trim().to_string());
            }
        } else if pending.is_some() && RESULTS.contains(&first_word(line).as_str()) {
            cases.push((pending.take().unwrap_or_default(), first_word(line)));
        }
    }
    if let Some(open) = pending {
        cases.push((open, "unfinished".to_string()));
    }
    (cases, summary)
}

/// `netmon_tests-0123456789abcdef` → `netmon_tests`.
fn display_name(file: &str) -> &str {
    match file.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem
        }
        _ => file,
    }
}

pub fn collect(out: &Path) -> Results {
    let exit_code = read(&out.join("exit_code")).map(|s| s.trim().to_string());
    let facts = read(&out.join("facts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let doctor = read(&out.join("doctor.txt")).map(|t| (t, read_rc(&out.join("doctor.rc"))));
    let mut binaries = Vec::new();
    let mut logs: Vec<_> = fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| {
                    n.strip_prefix("test-")
                        .and_then(|n| n.strip_suffix(".log"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    for name in logs {
        let log = read(&out.join(format!("test-{name}.log"))).unwrap_or_default();
        let (cases, summary) = parse_cases(&log);
        binaries.push(Binary {
            rc: read_rc(&out.join(format!("test-{name}.rc"))),
            name,
            cases,
            summary,
            log,
        });
    }
    // Short names (without cargo's hash) unless two binaries share one (netmon's lib and bin).
    let short: Vec<String> = binaries
        .iter()
        .map(|b| display_name(&b.name).to_string())
        .collect();
    for (i, b) in binaries.iter_mut().enumerate() {
        if short.iter().filter(|s| **s == short[i]).count() == 1 {
            b.name = short[i].clone();
        }
    }
    Results {
        exit_code,
        facts,
        doctor,
        binaries,
    }
}

impl Outcome {
    /// The emulated kernel panicked while booting, before the guest's init ran anything of
    /// ours (no kernel facts): a fault of software emulation (seen once on Debian 6.12 under
    /// TCG: int3 in `sched_clock_cpu` during an initcall), not of what is being tested.
    pub fn crashed_while_booting(&self) -> bool {
        self.end == End::Exited
            && self.results.facts.is_empty()
            && self.results.exit_code.is_none()
            && self.console.contains("Kernel panic")
    }

    /// Reasons this kernel failed; empty when it passed.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match self.end {
            End::TimedOut => p.push(format!("killed after {} s (hung?)", self.wall.as_secs())),
            End::Interrupted => p.push("interrupted".into()),
            End::Exited => {}
        }
        match self.results.exit_code.as_deref() {
            None if self.end == End::Exited => {
                p.push("no exit code from the run (guest crashed or share not mounted)".into())
            }
            None | Some("0") => {}
            Some("timeout") => p.push("run.sh exceeded the guest time limit".into()),
            // A failing test binary is reported below, by name.
            Some(_) if self.results.binaries.iter().any(|b| b.rc != Some(0)) => {}
            Some(code) => p.push(format!("run.sh exited {code}")),
        }
        if self.results.facts.is_empty() && self.end == End::Exited {
            p.push("no kernel facts recorded".into());
        }
        if !self.smoke {
            match &self.results.doctor {
                None => p.push("netmon doctor did not run".into()),
                Some((_, Some(0))) => {}
                Some((_, Some(rc))) => p.push(format!("netmon doctor exited {rc}")),
                Some((_, None)) => p.push("netmon doctor did not finish".into()),
            }
            if self.results.binaries.is_empty() {
                p.push("no test binary ran".into());
            }
        }
        for b in &self.results.binaries {
            let failed: Vec<_> = b
                .cases
                .iter()
                .filter(|(_, r)| r != "ok" && r != "ignored")
                .map(|(n, _)| n.as_str())
                .collect();
            match b.rc {
                Some(0) => {}
                Some(rc) if failed.is_empty() => p.push(format!("{} exited {rc}", b.name)),
                Some(_) => p.push(format!("{}: failed {}", b.name, failed.join(", "))),
                None => p.push(format!("{} did not finish", b.name)),
            }
        }
        if let Some(h) = &self.hotplug {
            p.extend(h.errors.iter().map(|e| format!("usb hot-plug: {e}")));
        }
        p
    }

    pub fn print(&self) {
        let problems = self.problems();
        let verdict = if problems.is_empty() { "PASS" } else { "FAIL" };
        println!();
        println!(
            "==== kernel {} ({}): {verdict} in {:.1} s",
            self.label,
            self.package,
            self.wall.as_secs_f64()
        );
        for (k, v) in &self.results.facts {
            println!("  {k}: {v}");
        }
        if let Some((text, rc)) = &self.results.doctor {
            let rc = rc.map_or("?".to_string(), |r| r.to_string());
            println!("  netmon doctor (exit {rc}):");
            for line in text.lines() {
                println!("    {line}");
            }
        }
        for b in &self.results.binaries {
            let rc = b.rc.map_or("?".to_string(), |r| r.to_string());
            println!(
                "  tests {} (exit {rc}): {}",
                b.name,
                b.summary.as_deref().unwrap_or("no summary")
            );
            for (name, result) in &b.cases {
                println!("    {result:<8} {name}");
            }
        }
        if let Some(h) = &self.hotplug
            && !h.steps.is_empty()
        {
            println!("  usb hot-plug (host steps, guest events as netmon reported them):");
            for step in &h.steps {
                println!("    {step}");
            }
        }
        if !problems.is_empty() {
            for b in &self.results.binaries {
                if b.rc != Some(0) {
                    println!("  --- output of {} ---", b.name);
                    for line in b.log.lines() {
                        println!("  | {line}");
                    }
                }
            }
            if self.end != End::Exited
                || self.results.exit_code.is_none()
                || self.results.binaries.is_empty()
            {
                println!("  --- console log ---");
                for line in self.console.lines() {
                    println!("  | {line}");
                }
            }
            for problem in &problems {
                println!("  problem: {problem}");
            }
        }
        println!("  logs: {}", self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines() {
        let log = "running 3 tests\n\
                   test a::one ... ok\n\
                   test b::two ... FAILED\n\
                   test c ... ignored, needs root\n\
                   \n\
                   test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured\n";
        let (cases, summary) = parse_cases(log);
        assert_eq!(
            cases,
            [("a::one", "ok"), ("b::two", "FAILED"), ("c", "ignored")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(
            summary.as_deref(),
            Some("FAILED. 1 passed; 1 failed; 1 ignored; 0 measured")
        );
    }

    #[test]
    fn a_result_after_the_tests_own_lines() {
        let log = "test a::plug ... NETMON-USB-READY\n\
                   NETMON-USB-EVENT {\"event\":\"usb_added\"}\n\
                   ok\n\
                   test b::next ... ok\n\
                   test c::killed ... \n";
        let (cases, _) = parse_cases(log);
        assert_eq!(
            cases,
            [
                ("a::plug", "ok"),
                ("b::next", "ok"),
                ("c::killed", "unfinished")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn names_without_hash() {
        assert_eq!(
            display_name("netmon_tests-0123456789abcdef"),
            "netmon_tests"
        );
        assert_eq!(display_name("exact-bytes"), "exact-bytes");
    }
}

#[cfg(test)]
mod boot_crash_tests {
    use super::*;

    fn outcome(console: &str, facts: bool) -> Outcome {
        Outcome {
            label: "6.12".into(),
            package: String::new(),
            wall: Duration::from_secs(4),
            end: End::Exited,
            results: Results {
                exit_code: None,
                facts: if facts {
                    vec![("kernel".into(), "6.12".into())]
                } else {
                    Vec::new()
                },
                doctor: None,
                binaries: Vec::new(),
            },
            console: console.into(),
            saved: String::new(),
            smoke: false,
            hotplug: None,
        }
    }

    #[test]
    fn only_a_panic_before_the_run_counts_as_a_boot_crash() {
        let panic = "[    1.453270] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
                     [    1.455855] Kernel panic - not syncing: Fatal exception in interrupt\n";
        assert!(outcome(panic, false).crashed_while_booting());
        // Once run.sh has recorded the kernel's facts, a panic is the tests' business.
        assert!(!outcome(panic, true).crashed_while_booting());
        // No panic on the console: a share that did not mount, not a boot crash.
        assert!(!outcome("VFS: Mounted root\n", false).crashed_while_booting());
    }
}
