//! Runs one share: under qemu (a Debian kernel) or directly on the host, with a hard time limit,
//! Ctrl-C handling, and the console captured to a log.
use std::{
    fs,
    io::{BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::interrupted;

/// How a run ended, seen from the host.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The process (qemu or the host script) exited by itself.
    Exited,
    /// Killed after the time limit.
    TimedOut,
    /// Killed on Ctrl-C / SIGTERM.
    Interrupted,
}

pub struct Boot<'a> {
    pub vmlinux: &'a Path,
    pub initrd: &'a Path,
    pub share: &'a Path,
    pub workspace: &'a Path,
    /// The USB hot-plug rig, when the guest gets one.
    pub usb: Option<&'a super::hotplug::Rig>,
}

pub fn qemu_command(b: &Boot) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", "tcg", "-cpu", "max", "-m", "2G", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(b.vmlinux)
        .arg("-initrd")
        .arg(b.initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=4"])
        .arg("-fsdev")
        .arg(fsdev("fs0", b.share, false))
        .args(["-device", "virtio-9p-pci,fsdev=fs0,mount_tag=share"])
        .arg("-fsdev")
        .arg(fsdev("fs1", b.workspace, true))
        .args(["-device", "virtio-9p-pci,fsdev=fs1,mount_tag=src"]);
    if let Some(usb) = b.usb {
        // An xhci controller with nothing on it, the stick's image as a drive that no device
        // uses yet, and the QMP socket through which hotplug.rs plugs devices in and out.
        c.args(["-device", "qemu-xhci,id=xhci", "-drive"])
            .arg(format!(
                "if=none,id={},file={},format=raw",
                super::hotplug::DRIVE,
                escape(&usb.stick)
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", escape(&usb.qmp)));
    }
    c
}

/// A path as a qemu option value: a comma is escaped by doubling it.
fn escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

fn fsdev(id: &str, path: &Path, readonly: bool) -> String {
    let path = escape(path);
    let ro = if readonly { ",readonly=on" } else { "" };
    format!("local,id={id},path={path},security_model=none{ro}")
}

/// Runs `cmd` in its own process group with stdin closed, copying its output to `log` (and to
/// stderr with `prefix` when `echo`), and kills the whole group at `limit` or on interrupt.
/// Lines that contain `watch`'s marker are also sent to it (the hot-plug driver), as they come.
pub fn supervise(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
    echo: bool,
    prefix: &str,
    watch: Option<(&'static str, mpsc::Sender<String>)>,
) -> Result<End> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child if xtask dies
    // (SIGKILL included) so that no guest outlives us.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let (done_tx, done_rx) = mpsc::channel();
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, line_tx.clone(), done_tx.clone());
        readers += 1;
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, line_tx.clone(), done_tx.clone());
        readers += 1;
    }
    drop(line_tx);
    let writer = std::thread::spawn({
        let prefix = prefix.to_string();
        move || {
            let mut file = std::io::BufWriter::new(file);
            for line in line_rx {
                if let Some((marker, tx)) = &watch
                    && line.contains(marker)
                {
                    let _ = tx.send(line.clone());
                }
                let _ = writeln!(file, "{line}");
                if echo {
                    eprintln!("{prefix}{line}");
                }
            }
            let _ = file.flush();
        }
    });

    let start = Instant::now();
    let end = loop {
        if child.try_wait()?.is_some() {
            break End::Exited;
        }
        if interrupted() {
            kill_group(&mut child);
            break End::Interrupted;
        }
        if start.elapsed() >= limit {
            kill_group(&mut child);
            break End::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Children that outlive the leader could hold the pipes open: give them a moment, then kill
    // the group so the readers see EOF.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut finished = 0;
    while finished < readers {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => finished += 1,
            Err(_) => {
                kill_group(&mut child);
                if done_rx.recv_timeout(Duration::from_secs(5)).is_ok() {
                    finished += 1;
                } else {
                    break;
                }
            }
        }
    }
    let _ = writer.join();
    Ok(end)
}

fn spawn_reader(
    pipe: impl std::io::Read + Send + 'static,
    lines: mpsc::Sender<String>,
    done: mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = printable(&String::from_utf8_lossy(&buf));
                    if lines.send(line).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = done.send(());
    });
}

/// The line without its end, carriage returns, and terminal escapes (SeaBIOS clears the screen).
fn printable(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters up to a final byte in @..=~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' | '\n' => {}
            c => out.push(c),
        }
    }
    out
}

fn kill_group(child: &mut Child) {
    // SAFETY: plain kill(2) on the process group we created for this child.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes() {
        assert_eq!(
            printable("\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16)\r\n"),
            "SeaBIOS (version 1.16)"
        );
        assert_eq!(printable("plain\n"), "plain");
    }
}
