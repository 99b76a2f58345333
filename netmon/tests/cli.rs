//! The real binary, driven without root: bad input gives one line and a distinct exit code.
use std::process::{Command, Output};

fn netmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("running netmon")
}

/// Asserts a clean failure: the exit code, one `netmon: error:` line mentioning `needle`, and
/// no sign of a panic.
fn assert_clean_error(args: &[&str], code: i32, needle: &str) {
    let out = netmon(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "netmon {args:?}: wrong exit code; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "netmon {args:?}: expected one line, got {stderr:?}"
    );
    assert!(
        lines[0].starts_with("netmon: error: "),
        "netmon {args:?}: {stderr:?}"
    );
    assert!(
        lines[0].contains(needle),
        "netmon {args:?}: {:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(
        !stderr.contains("panicked"),
        "netmon {args:?} panicked: {stderr}"
    );
    assert!(out.stdout.is_empty(), "netmon {args:?} printed to stdout");
}

#[test]
fn bad_pids_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--pid", "abc"], "not a number"),
        (&["run", "--pid", "0"], "idle task"),
        (&["run", "--pid", "-5"], "positive"),
        (&["run", "--pid=-5"], "positive"),
        (&["run", "--pid", "99999999999"], "maximum"),
        (&["run", "--pid", ""], "not a number"),
        (&["run", "--pid", "1.5"], "not a number"),
    ];
    for (args, needle) in cases {
        assert_clean_error(args, 2, needle);
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    assert_clean_error(&["run", "--interval", "0"], 2, "between");
    assert_clean_error(&["run", "--interval", "soon"], 2, "not a number");
    assert_clean_error(&["run", "--duration", "-1"], 2, "between");
    assert_clean_error(&["run", "--backend", "magic"], 2, "magic");
    assert_clean_error(&["run", "--follow-children"], 2, "--pid");
    assert_clean_error(&["frobnicate"], 2, "frobnicate");
}

#[test]
fn help_and_version_succeed() {
    let out = netmon(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("doctor"));
    let out = netmon(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("netmon "));
}
