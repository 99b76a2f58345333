//! `netmon events` flags that must be refused before anything starts: one `netmon: error:`
//! line naming the problem, exit code 2, nothing on stdout, no panic; and past events read
//! from a history store the test fills. Needs no root.
use std::{path::PathBuf, process::Command, time::Duration};

use netmon::events::model::{Contact, HostEvent, Link, What};
use netmon::history::{store::Store, when::now_ms};

#[test]
fn events_bad_input_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["events", "--since", "yesterday"],
            "--since: \"yesterday\" is not a time",
        ),
        (
            &["events", "--since", "1h", "--until", "2h"],
            "must be before --until",
        ),
        (&["events", "-f", "--until", "1h"], "cannot be used with"),
        (&["events", "--exec", "true"], "add --follow"),
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

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("netmon-evcli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn netmon(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ago(ms: i64, what: What) -> HostEvent {
    let at = std::time::UNIX_EPOCH + Duration::from_millis((now_ms() - ms) as u64);
    HostEvent::new(what, "storehost", at)
}

fn dummy(name: &str) -> Link {
    Link {
        ifindex: 7,
        ifname: name.into(),
        link_kind: Some("dummy".into()),
        mac: None,
        up: false,
        carrier: false,
    }
}

/// `netmon events --since … --db` prints the stored events of the range, oldest first, in
/// the live format (text or JSON), filtered by --kind.
#[test]
fn past_events_come_from_the_store() {
    let dir = TempDir::new("past");
    let db = dir.0.join("h.db");
    let contact = What::Contact(Contact {
        pid: 99,
        comm: "curl".into(),
        unit: String::new(),
        network: "intranet".into(),
        proto: "tcp".into(),
        remote: "10.1.2.3:443".into(),
        remote_name: None,
        suppressed: 0,
    });
    let evs = vec![
        ago(3 * 3_600_000, What::LinkAdded(dummy("old0"))),
        ago(30 * 60_000, What::LinkAdded(dummy("d0"))),
        ago(20 * 60_000, contact),
        ago(10 * 60_000, What::LinkRemoved(dummy("d0"))),
    ];
    Store::open(&db).unwrap().store.write_events(&evs).unwrap();
    let db = db.to_str().unwrap();

    let (code, out, err) = netmon(&["events", "--since", "1h", "--db", db, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["link_added", "contact", "link_removed"]);
    assert_eq!(lines[0]["ifname"], "d0");
    assert_eq!(lines[1]["comm"], "curl");
    assert_eq!(lines[1]["host"], "storehost");
    // The same JSON as live.
    assert_eq!(
        out.lines().next().unwrap(),
        serde_json::to_string(&evs[1]).unwrap()
    );

    let (code, out, _) = netmon(&["events", "--since", "4h", "--until", "15m", "--db", db]);
    assert_eq!(code, Some(0));
    let text: Vec<&str> = out.lines().collect();
    assert_eq!(text.len(), 3, "{out}");
    assert_eq!(text[0], evs[0].to_string());
    assert!(text[2].contains(" contact "), "{out}");

    let (code, out, _) = netmon(&["events", "--db", db, "--kind", "contact", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, out, _) = netmon(&["events", "--db", db, "--kind", "device"]);
    assert_eq!((code, out.as_str()), (Some(0), ""));
}

/// No store at --db: one line naming it, exit 1, for past events and for --follow of
/// listen and contact events alike.
#[test]
fn a_missing_store_is_one_line_and_exit_1() {
    let dir = TempDir::new("missing");
    let db = dir.0.join("none.db");
    let db = db.to_str().unwrap();
    for args in [
        vec!["events", "--db", db],
        vec!["events", "-f", "--kind", "listen", "--db", db],
    ] {
        let (code, out, err) = netmon(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("netmon: error: no history database at") && err.contains(db),
            "{err}"
        );
    }
    assert!(!std::path::Path::new(db).exists());
}

/// `--follow --kind listen,contact` tails the store: events written before it started are not
/// printed, those serve writes after the "following" line are, within the poll interval.
#[test]
fn follow_tails_the_store_for_listen_and_contact_events() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;

    let dir = TempDir::new("tail");
    let db = dir.0.join("h.db");
    let listen = |port: u16| {
        What::ListenStarted(netmon::events::model::Listener {
            pid: 5,
            comm: "srv".into(),
            unit: String::new(),
            proto: "tcp".into(),
            address: format!("127.0.0.1:{port}"),
            port,
        })
    };
    let mut store = Store::open(&db).unwrap().store;
    store.write_events(&[ago(1000, listen(1))]).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_netmon"))
        .args(["events", "-f", "--kind", "listen,contact", "--json", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err_tx = tx.clone();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(("out", l));
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(("err", l));
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    let started =
        matches!(&first, Ok(("err", l)) if l.contains("following contact and listen events"));
    if !started {
        let _ = child.kill();
        panic!("did not start: {first:?}");
    }
    store
        .write_events(&[ago(0, listen(2)), ago(0, What::LinkUp(dummy("x")))])
        .unwrap();
    let got = rx.recv_timeout(Duration::from_secs(3));
    // Nothing else: neither the event from before the start nor the net event.
    let more = rx.recv_timeout(Duration::from_millis(1200));
    let _ = child.kill();
    let _ = child.wait();
    let (from, line) = got.expect("no event within 3 s");
    assert_eq!(from, "out", "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["port"].as_u64()),
        (Some("listen_started"), Some(2))
    );
    assert!(more.is_err(), "unexpected: {more:?}");
}
