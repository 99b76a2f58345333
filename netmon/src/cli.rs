//! Command-line flags. Parsing and per-flag validation only; `app` wires the pieces.
use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "netmon",
    version,
    about = "Per-process network traffic from the kernel (eBPF)",
    propagate_version = true
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Live per-process (or per-PID) traffic table.
    Run(RunArgs),
    /// Long-running exporter: /metrics, /healthz, /api/v1/processes (default 127.0.0.1:9742).
    Serve(RunArgs),
    /// Which kernel hooks work here and which backend `run` would use.
    Doctor(DoctorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// Probe the kernel and take the best rung that loads.
    Auto,
    /// fentry/fexit on tcp/udp send and receive functions.
    Fentry,
    /// BTF tracepoints sock_send_length / sock_recv_length (kernel >= 6.3).
    TpBtf,
    /// Classic tracepoints sock/sock_send_length and sock_recv_length.
    Tracepoint,
    /// kprobes/kretprobes on tcp/udp send and receive functions.
    Kprobe,
    /// cgroup socket hooks and /proc only: wire bytes per socket, no exact payload.
    Cgroup,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Watch this process (repeatable). Without it: every process, busiest first.
    #[arg(short, long = "pid", value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pids: Vec<u32>,
    /// Also watch descendants of --pid, including those forked after start.
    #[arg(short = 'c', long, requires = "pids")]
    pub follow_children: bool,
    /// Refresh interval in seconds.
    #[arg(short, long, default_value = "1", value_name = "SECS", value_parser = parse_interval, allow_negative_numbers = true)]
    pub interval: Duration,
    /// Print one snapshot after one interval and exit.
    #[arg(long)]
    pub once: bool,
    /// Print JSON lines (one object per interval) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print the plain table even on a terminal, instead of opening the tabbed UI.
    #[arg(long)]
    pub no_tui: bool,
    /// In the tabbed UI, exit (code 4) as soon as every watched process has exited, instead of
    /// showing the final totals until a key is pressed.
    #[arg(long, requires = "pids")]
    pub exit_on_death: bool,
    /// Which kernel programs account payload bytes.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Stop after this many seconds (0 = run until Ctrl-C or the watched processes exit).
    #[arg(long, default_value = "0", value_name = "SECS", value_parser = parse_duration_secs, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Replay a recorded event stream (JSON lines) instead of reading the kernel.
    #[arg(long, value_name = "FILE", hide = true)]
    pub replay: Option<PathBuf>,
    /// Root of the proc filesystem (for tests on fixture trees).
    #[arg(long, value_name = "DIR", default_value = "/proc", hide = true)]
    pub procfs_root: PathBuf,
    /// Also serve /metrics, /healthz and /api/v1/processes on ADDR (`serve`: 127.0.0.1:9742).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Processes with their own metric series; the rest are summed under comm="other".
    #[arg(long, default_value = "50", value_name = "N")]
    pub metrics_top_k: usize,
    /// Add a `pid` label to per-process metrics (more series).
    #[arg(long)]
    pub metrics_pid_label: bool,
    /// Record every event the sources produce to FILE (JSON lines), for --replay.
    #[arg(long, value_name = "FILE", hide = true)]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A PID is a positive decimal number that fits the kernel's pid_t.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err("PIDs are positive numbers".into());
    }
    let n: u64 = t
        .parse()
        .map_err(|_| "not a number: a PID is a positive decimal number".to_string())?;
    match n {
        0 => Err("PID 0 is the kernel's idle task, not a process".into()),
        // PID_MAX_LIMIT is 2^22 on 64-bit kernels.
        n if n > 4_194_304 => Err("larger than the kernel's maximum PID (4194304)".into()),
        n => Ok(n as u32),
    }
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if !secs.is_finite() || !(0.05..=3600.0).contains(&secs) {
        return Err("must be between 0.05 and 3600 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_duration_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if !secs.is_finite() || !(0.0..=31_536_000.0).contains(&secs) {
        return Err("must be between 0 and 31536000 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids() {
        assert_eq!(parse_pid("1234"), Ok(1234));
        assert_eq!(parse_pid(" 7 "), Ok(7));
        assert!(parse_pid("0").unwrap_err().contains("idle task"));
        assert!(parse_pid("-5").unwrap_err().contains("positive"));
        assert!(parse_pid("abc").unwrap_err().contains("not a number"));
        assert!(parse_pid("99999999999").unwrap_err().contains("maximum"));
        assert!(parse_pid("").unwrap_err().contains("not a number"));
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("nan").is_err());
        assert!(parse_interval("x").is_err());
        assert!(parse_duration_secs("0").is_ok());
        assert!(parse_duration_secs("-1").is_err());
    }

    #[test]
    fn tui_flags() {
        assert!(Cli::try_parse_from(["netmon", "run", "--exit-on-death"]).is_err());
        let Command::Run(a) =
            Cli::try_parse_from(["netmon", "run", "-p", "1", "--exit-on-death", "--no-tui"])
                .unwrap()
                .command
        else {
            panic!("not run");
        };
        assert!(a.exit_on_death && a.no_tui);
    }

    #[test]
    fn follow_children_needs_a_pid() {
        assert!(Cli::try_parse_from(["netmon", "run", "--follow-children"]).is_err());
        assert!(Cli::try_parse_from(["netmon", "run", "-p", "1", "--follow-children"]).is_ok());
    }
}
