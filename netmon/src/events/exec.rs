//! `--exec CMD`: runs `sh -c CMD` once per event with the event's JSON on stdin, at most N at a
//! time, each killed at its timeout. A command that fails, hangs or cannot start is counted and
//! logged; it never stops netmon, and a slow one never delays the printing of later events:
//! events wait in a bounded queue, and past its bound they are dropped (and counted) rather than
//! letting memory grow behind a stuck hook.
use std::{
    io::Write,
    os::unix::process::CommandExt,
    process::{Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{model::HostEvent, stats::Stats};

/// Events waiting for a free runner.
const QUEUE: usize = 1024;
/// How often a runner looks at its child: a 10 s timeout does not need finer than this.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub command: String,
    pub timeout: Duration,
    pub concurrency: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(ExitStatus),
    TimedOut,
    /// netmon is stopping: the command was killed before it finished.
    Stopped,
}

struct Job {
    json: String,
    /// What the command's environment gets (NETMON_EVENT, …); the first value names the
    /// event in log lines.
    env: Vec<(&'static str, String)>,
}

pub struct ExecRunner {
    queue: Option<SyncSender<Job>>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// Kills the command's whole process group: `sh -c 'a | b'` or a script's own children must
/// not outlive the timeout.
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Runs `sh -c command` with `stdin` as its input; its stdout goes to netmon's stderr, so that
/// a hook's output can never corrupt the event stream on stdout.
pub fn run_one(
    command: &str,
    stdin: &[u8],
    env: &[(&str, &str)],
    timeout: Duration,
    stopping: &AtomicBool,
) -> std::io::Result<Outcome> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(std::io::stderr())
        .envs(env.iter().copied())
        // Its own process group: a timeout kills the group, and a Ctrl-C at the terminal
        // reaches netmon, which then stops its commands itself.
        .process_group(0);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    if let Some(mut input) = child.stdin.take() {
        // An event is far smaller than a pipe buffer, so this cannot block on a command that
        // does not read; one that exits without reading is fine too.
        let _ = input.write_all(stdin);
    }
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(if status.success() {
                Outcome::Ok
            } else {
                Outcome::Failed(status)
            });
        }
        let stop = stopping.load(Ordering::Relaxed);
        if stop || start.elapsed() >= timeout {
            kill_group(pid);
            let _ = child.wait();
            return Ok(if stop {
                Outcome::Stopped
            } else {
                Outcome::TimedOut
            });
        }
        std::thread::sleep(POLL);
    }
}

impl ExecRunner {
    pub fn start(cfg: ExecConfig, stats: Arc<Stats>) -> ExecRunner {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let stopping = Arc::new(AtomicBool::new(false));
        let workers = (0..cfg.concurrency.max(1))
            .map(|_| {
                let (rx, stopping, stats, cfg) =
                    (rx.clone(), stopping.clone(), stats.clone(), cfg.clone());
                std::thread::spawn(move || worker(&rx, &cfg, &stats, &stopping))
            })
            .collect();
        ExecRunner {
            queue: Some(tx),
            stopping,
            workers,
        }
    }

    pub fn submit(&self, ev: &HostEvent, stats: &Stats) {
        self.submit_json(
            serde_json::to_string(ev).unwrap_or_default(),
            vec![
                ("NETMON_EVENT", ev.what.name().to_string()),
                ("NETMON_EVENT_KIND", ev.kind.as_str().to_string()),
            ],
            stats,
        );
    }

    /// Any event as JSON (the fleet viewer's), with these environment variables; the first
    /// one's value names the event in log lines.
    pub fn submit_json(&self, json: String, env: Vec<(&'static str, String)>, stats: &Stats) {
        let Some(q) = &self.queue else { return };
        match q.try_send(Job { json, env }) {
            Ok(()) => {}
            Err(TrySendError::Full(j)) => {
                stats.count(&stats.exec_dropped);
                log::warn!("events: --exec queue full; not running it for {}", j.name());
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Stops: commands still queued are not started, running ones are killed.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.queue = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Job {
    fn name(&self) -> &str {
        self.env.first().map_or("an event", |(_, v)| v.as_str())
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, cfg: &ExecConfig, stats: &Stats, stopping: &AtomicBool) {
    loop {
        // The lock is held only while waiting for the next job, never while one runs.
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if stopping.load(Ordering::Relaxed) {
            return;
        }
        let env: Vec<(&str, &str)> = job.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match run_one(
            &cfg.command,
            job.json.as_bytes(),
            &env,
            cfg.timeout,
            stopping,
        ) {
            Ok(Outcome::Ok | Outcome::Stopped) => {}
            Ok(Outcome::Failed(status)) => {
                stats.count(&stats.exec_failed);
                log::warn!("events: --exec for {} failed: {status}", job.name());
            }
            Ok(Outcome::TimedOut) => {
                stats.count(&stats.exec_timed_out);
                log::warn!(
                    "events: --exec for {} killed after its {:?} timeout",
                    job.name(),
                    cfg.timeout
                );
            }
            Err(e) => {
                stats.count(&stats.exec_failed);
                log::warn!("events: --exec for {} could not start: {e}", job.name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn timeout_kills_the_command_and_its_children() {
        let dir = std::env::temp_dir().join(format!("nm-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("pid");
        let cmd = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let out = run_one(
            &cmd,
            b"{}",
            &[],
            Duration::from_millis(300),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(out, Outcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep was in the command's process group: killed too (give the
        // kernel a moment to reap it, it is init's child now).
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !alive(pid)
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert!(gone, "sleep {pid} survived the timeout");
    }

    #[test]
    fn event_json_on_stdin_and_exit_status() {
        let stop = AtomicBool::new(false);
        let dir = std::env::temp_dir().join(format!("nm-exec-in-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("got");
        let cmd = format!("cat > {}; test \"$NETMON_EVENT\" = link_up", f.display());
        let t = Duration::from_secs(10);
        let out = run_one(
            &cmd,
            br#"{"event":"link_up"}"#,
            &[("NETMON_EVENT", "link_up")],
            t,
            &stop,
        )
        .unwrap();
        assert_eq!(out, Outcome::Ok);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            r#"{"event":"link_up"}"#
        );
        let _ = std::fs::remove_dir_all(&dir);
        let Outcome::Failed(s) = run_one("exit 3", b"", &[], t, &stop).unwrap() else {
            panic!("exit 3 did not fail");
        };
        assert_eq!(s.code(), Some(3));
        // A command that does not read its input is fine.
        assert_eq!(
            run_one("true", &[b'x'; 4096], &[], t, &stop).unwrap(),
            Outcome::Ok
        );
    }

    #[test]
    fn runner_counts_timeouts_and_failures_and_bounds_concurrency() {
        use crate::events::model::{Kind, Link, What};
        let stats = Arc::new(Stats::default());
        let ev = HostEvent {
            time: "t".into(),
            host: "h".into(),
            kind: Kind::Net,
            what: What::LinkUp(Link {
                ifindex: 1,
                ifname: "x".into(),
                link_kind: None,
                mac: None,
                up: true,
                carrier: true,
            }),
        };
        let start = Instant::now();
        let r = ExecRunner::start(
            ExecConfig {
                command: "sleep 0.4; exit 1".into(),
                timeout: Duration::from_secs(10),
                concurrency: 2,
            },
            stats.clone(),
        );
        for _ in 0..4 {
            r.submit(&ev, &stats);
        }
        while Stats::get(&stats.exec_failed) < 4 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        r.stop();
        assert_eq!(Stats::get(&stats.exec_failed), 4);
        // Four 0.4 s commands, two at a time: two rounds.
        assert!(
            start.elapsed() >= Duration::from_millis(780),
            "{:?}",
            start.elapsed()
        );

        let r = ExecRunner::start(
            ExecConfig {
                command: "sleep 5".into(),
                timeout: Duration::from_millis(200),
                concurrency: 1,
            },
            stats.clone(),
        );
        r.submit(&ev, &stats);
        let t0 = Instant::now();
        while Stats::get(&stats.exec_timed_out) < 1 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        r.stop();
        assert_eq!(Stats::get(&stats.exec_timed_out), 1);
    }
}
