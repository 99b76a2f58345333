//! USB devices really plugged into a guest: qemu gets an xhci controller, a 16 MiB stick image
//! (zeros, in the run's work directory) as a drive no device uses yet, and a QMP socket. The
//! guest's test (`usb_devices_plugged_in_and_out_by_the_vm_host` in tests/tests/host_events.rs)
//! starts `netmon events` and prints `NETMON-USB-READY` on the console; `runner::supervise`
//! hands such lines to the driver here, which then adds a usb-tablet and a usb-storage device
//! (serial NM0001) through QMP. Once the guest has seen them it prints `NETMON-USB-UNPLUG` and
//! the driver removes both. Every step is bounded: without the first marker nothing is plugged
//! (the guest test fails on its own, saying so); without the second the devices are removed
//! after PLUGGED_AT_MOST anyway. The guest's `NETMON-USB-EVENT` lines (what netmon reported)
//! are kept with the driver's steps for the report.
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::mpsc::{self, RecvTimeoutError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::RemoveOnDrop;

/// What the console lines the driver watches have in common.
pub const MARKER: &str = "NETMON-USB-";
/// The guest listens: plug the devices in.
const READY: &str = "NETMON-USB-READY";
/// The guest saw them: take them out.
const UNPLUG: &str = "NETMON-USB-UNPLUG";
/// One event netmon reported in the guest.
const EVENT: &str = "NETMON-USB-EVENT";
/// The qemu drive id of the stick's image.
pub const DRIVE: &str = "stick";
const STICK_BYTES: u64 = 16 << 20;
/// Devices are removed this long after they were plugged in if the guest never asks.
const PLUGGED_AT_MOST: Duration = Duration::from_secs(20);
/// How long one QMP answer may take.
const QMP_WAIT: Duration = Duration::from_secs(10);
/// How long the driver waits for qemu's DEVICE_DELETED after a device_del.
const DELETED_WAIT: Duration = Duration::from_secs(5);

/// qemu's id and `device_add` arguments of each device, in plug order (removed in reverse).
fn devices() -> [(&'static str, Value); 2] {
    [
        ("tab0", json!({"driver": "usb-tablet", "id": "tab0"})),
        (
            "stick0",
            json!({"driver": "usb-storage", "id": "stick0", "drive": DRIVE, "serial": "NM0001"}),
        ),
    ]
}

/// The files qemu needs for the rig; the stick lives in the work directory (removed with it).
pub struct Rig {
    pub stick: PathBuf,
    pub qmp: PathBuf,
    /// A short directory for the socket when the work directory's path is too long for one.
    _socket_dir: Option<RemoveOnDrop>,
}

impl Rig {
    pub fn new(work: &Path, label: &str) -> Result<Rig> {
        let stick = work.join("stick.img");
        let f = std::fs::File::create(&stick)
            .with_context(|| format!("creating {}", stick.display()))?;
        f.set_len(STICK_BYTES)?;
        // sun_path holds 108 bytes with its NUL; qemu refuses longer paths.
        let mut qmp = work.join("qmp.sock");
        let mut socket_dir = None;
        if qmp.as_os_str().len() > 100 {
            let dir =
                std::env::temp_dir().join(format!("netmon-vm-{label}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            qmp = dir.join("qmp.sock");
            socket_dir = Some(RemoveOnDrop(dir));
        }
        Ok(Rig {
            stick,
            qmp,
            _socket_dir: socket_dir,
        })
    }
}

/// What the driver did and what the guest said, for the report.
#[derive(Default)]
pub struct Report {
    /// "+SECONDS what" lines, times from the guest's READY marker.
    pub steps: Vec<String>,
    /// Failures of the host side (QMP); the guest test reports its own.
    pub errors: Vec<String>,
}

/// Starts the driver on its own thread: feed it the console lines that contain [`MARKER`]; it
/// ends when the sender is dropped (the run is over).
pub fn start(rig: &Rig, label: &str) -> (mpsc::Sender<String>, JoinHandle<Report>) {
    let (tx, rx) = mpsc::channel();
    let qmp = rig.qmp.clone();
    let label = label.to_string();
    let thread = std::thread::spawn(move || {
        let mut d = Driver {
            report: Report::default(),
            label,
            t0: None,
        };
        d.run(&qmp, &rx);
        // Later lines (the guest's removal events) until the run ends.
        while let Ok(line) = rx.recv() {
            d.guest_line(&line);
        }
        d.report
    });
    (tx, thread)
}

struct Driver {
    report: Report,
    label: String,
    /// When the guest said READY.
    t0: Option<Instant>,
}

impl Driver {
    fn elapsed(&self) -> f64 {
        self.t0.map_or(0.0, |t| t.elapsed().as_secs_f64())
    }

    fn step(&mut self, what: String) {
        eprintln!("xtask: {}: usb: {what}", self.label);
        let line = format!("+{:.1} s {what}", self.elapsed());
        self.report.steps.push(line);
    }

    fn error(&mut self, what: String) {
        self.step(format!("error: {what}"));
        self.report.errors.push(what);
    }

    /// Records a guest event line.
    fn guest_line(&mut self, line: &str) {
        if let Some(at) = line.find(EVENT) {
            let event = line[at + EVENT.len()..].trim().to_string();
            let entry = format!("+{:.1} s guest: {event}", self.elapsed());
            self.report.steps.push(entry);
        }
    }

    fn run(&mut self, qmp: &Path, rx: &mpsc::Receiver<String>) {
        // Nothing happens until the guest's test listens; a run without that test ends here.
        loop {
            match rx.recv() {
                Ok(line) if line.contains(READY) => break,
                Ok(line) => self.guest_line(&line),
                Err(_) => return,
            }
        }
        self.t0 = Some(Instant::now());
        self.step("the guest listens; plugging in a USB tablet and a USB stick".into());
        let mut q = match Qmp::connect(qmp) {
            Ok(q) => q,
            Err(e) => return self.error(format!("QMP at {}: {e:#}", qmp.display())),
        };
        let mut plugged = Vec::new();
        for (id, args) in devices() {
            match q.execute("device_add", args.clone()) {
                Ok(_) => {
                    self.step(format!("device_add {args}"));
                    plugged.push(id);
                }
                Err(e) => self.error(format!("device_add {args}: {e:#}")),
            }
        }
        if plugged.is_empty() {
            return;
        }
        let deadline = Instant::now() + PLUGGED_AT_MOST;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(UNPLUG) => {
                    self.step("the guest saw them; unplugging".into());
                    break;
                }
                Ok(line) => self.guest_line(&line),
                Err(RecvTimeoutError::Timeout) => {
                    self.step(format!(
                        "no {UNPLUG} from the guest within {} s; unplugging anyway",
                        PLUGGED_AT_MOST.as_secs()
                    ));
                    break;
                }
                // The run ended with the devices in: nothing left to unplug from.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        for id in plugged.iter().rev() {
            match q.execute("device_del", json!({ "id": id })) {
                Ok(_) => self.step(format!("device_del {id}")),
                Err(e) => self.error(format!("device_del {id}: {e:#}")),
            }
        }
        // device_del only asks; qemu says DEVICE_DELETED once a device is gone (for USB devices
        // at once). Noted, not judged: whether the guest saw them go is the guest test's call.
        for id in plugged.iter().rev() {
            match q.wait_deleted(id) {
                Ok(()) => self.step(format!("{id} deleted")),
                Err(e) => self.step(format!("{id}: {e:#}")),
            }
        }
    }
}

/// A QMP client: one JSON object a line each way; answers carry `return` or `error`, and
/// asynchronous `event`s may come in between.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events read so far, oldest first.
    events: Vec<Value>,
}

impl Qmp {
    fn connect(path: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(path).context("connecting")?;
        stream.set_read_timeout(Some(QMP_WAIT))?;
        stream.set_write_timeout(Some(QMP_WAIT))?;
        let mut q = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            events: Vec::new(),
        };
        let greeting = q.read().context("reading the greeting")?;
        if greeting.get("QMP").is_none() {
            bail!("not a QMP greeting: {greeting}");
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .context("no answer in time")?;
        if n == 0 {
            bail!("qemu closed the QMP socket");
        }
        serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))
    }

    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let mut msg = json!({ "execute": command, "arguments": arguments }).to_string();
        msg.push('\n');
        self.writer.write_all(msg.as_bytes())?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                bail!("{}", e["desc"].as_str().unwrap_or(&e.to_string()));
            }
            if v.get("event").is_some() {
                self.events.push(v);
            }
        }
    }

    fn wait_deleted(&mut self, id: &str) -> Result<()> {
        let deadline = Instant::now() + DELETED_WAIT;
        loop {
            if self
                .events
                .iter()
                .any(|e| e["event"] == "DEVICE_DELETED" && e["data"]["device"] == id)
            {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no DEVICE_DELETED within {} s", DELETED_WAIT.as_secs());
            }
            // The socket's timeout (shared by both handles): at most what is left.
            self.writer.set_read_timeout(Some(left))?;
            let v = self.read()?;
            if v.get("event").is_some() {
                self.events.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake qemu: greets, answers every command with `return` (device_del also with a
    /// DEVICE_DELETED event before it), and records the commands.
    fn fake_qemu(path: &Path) -> JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            writeln!(w, r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#).unwrap();
            let mut seen = Vec::new();
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 0 {
                let v: Value = serde_json::from_str(&line).unwrap();
                let cmd = v["execute"].as_str().unwrap().to_string();
                if cmd == "device_del" {
                    let id = &v["arguments"]["id"];
                    writeln!(
                        w,
                        r#"{{"event": "DEVICE_DELETED", "data": {{"device": {id}}}}}"#
                    )
                    .unwrap();
                }
                writeln!(w, r#"{{"return": {{}}}}"#).unwrap();
                seen.push(format!("{cmd} {}", v["arguments"]));
                line.clear();
            }
            seen
        })
    }

    #[test]
    fn plugs_on_ready_and_unplugs_on_request() {
        let dir = std::env::temp_dir().join(format!("xtask-qmp-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _cleanup = RemoveOnDrop(dir.clone());
        let rig = Rig::new(&dir, "t").unwrap();
        assert_eq!(std::fs::metadata(&rig.stick).unwrap().len(), 16 << 20);
        let qemu = fake_qemu(&rig.qmp);
        let (tx, driver) = start(&rig, "t");
        tx.send("[   3.2] NETMON-USB-READY".into()).unwrap();
        tx.send(r#"NETMON-USB-EVENT {"event":"usb_added"}"#.into())
            .unwrap();
        tx.send("NETMON-USB-UNPLUG".into()).unwrap();
        tx.send(r#"NETMON-USB-EVENT {"event":"usb_removed"}"#.into())
            .unwrap();
        drop(tx);
        let report = driver.join().unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let seen = qemu.join().unwrap();
        assert_eq!(
            seen,
            [
                "qmp_capabilities {}",
                r#"device_add {"driver":"usb-tablet","id":"tab0"}"#,
                r#"device_add {"drive":"stick","driver":"usb-storage","id":"stick0","serial":"NM0001"}"#,
                r#"device_del {"id":"stick0"}"#,
                r#"device_del {"id":"tab0"}"#,
            ]
        );
        let guest: Vec<&String> = report
            .steps
            .iter()
            .filter(|s| s.contains("guest:"))
            .collect();
        assert_eq!(guest.len(), 2, "{:?}", report.steps);
        assert!(guest[1].ends_with(r#"guest: {"event":"usb_removed"}"#));
        assert!(report.steps.iter().any(|s| s.contains("stick0 deleted")));
    }

    #[test]
    fn nothing_is_plugged_without_the_marker() {
        let dir = std::env::temp_dir().join(format!("xtask-qmp-none-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _cleanup = RemoveOnDrop(dir.clone());
        let rig = Rig::new(&dir, "t").unwrap();
        // No socket at all: connecting would fail, so any attempt would show as an error.
        let (tx, driver) = start(&rig, "t");
        tx.send("NETMON-USB-EVENT something".into()).unwrap();
        drop(tx);
        let report = driver.join().unwrap();
        assert!(report.errors.is_empty());
        assert_eq!(report.steps.len(), 1, "{:?}", report.steps);
    }
}
