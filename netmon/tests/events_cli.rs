//! `netmon events` flags that must be refused before anything starts: one `netmon: error:`
//! line naming the problem, exit code 2, nothing on stdout, no panic. Needs no root.
use std::process::Command;

#[test]
fn events_bad_input_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["events"], "history store"),
        (&["events", "--json"], "use --follow"),
        (
            &["events", "-f", "--kind", "foo"],
            "invalid value 'foo' for '--kind",
        ),
        (
            &["events", "-f", "--kind", "net,usb"],
            "invalid value 'usb'",
        ),
        (&["events", "-f", "--kind", ""], "--kind <KIND>"),
        (&["events", "-f", "--exec", ""], "must not be empty"),
        (
            &["events", "-f", "--exec", "true", "--exec-timeout", "0"],
            "more than 0",
        ),
        (
            &["events", "-f", "--exec", "true", "--exec-timeout", "-1"],
            "more than 0 and at most 86400",
        ),
        (
            &["events", "-f", "--exec", "true", "--exec-timeout", "x"],
            "not a number",
        ),
        (
            &["events", "-f", "--exec", "true", "--exec-concurrency", "0"],
            "not in 1..=64",
        ),
        (
            &["events", "-f", "--exec", "true", "--exec-concurrency", "65"],
            "not in 1..=64",
        ),
        (&["events", "-f", "--exec-timeout", "5"], "--exec <CMD>"),
    ];
    let mut failed = Vec::new();
    for (args, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_netmon"))
            .args(*args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let ok = out.status.code() == Some(2)
            && out.stdout.is_empty()
            && err.lines().count() == 1
            && err.starts_with("netmon: error: ")
            && err.contains(says);
        println!("{:?} -> {:?} {}", args, out.status.code(), err.trim());
        if !ok {
            failed.push(format!(
                "{args:?}: code {:?}, stderr {err:?}",
                out.status.code()
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
