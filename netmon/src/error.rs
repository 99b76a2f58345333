//! Exit codes and the one error type `app` returns to `main`.
//!
//! Every failure a user can cause or meet (bad flag, missing PID, missing privilege, a kernel
//! without a hook) ends as one `netmon: error: ...` line and a distinct exit code, never a panic.
use std::process::ExitCode;

/// Distinct, documented exit codes (docs/flags.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A runtime failure: kernel, privileges, I/O.
    Failure = 1,
    /// Bad flags or values (also clap's own errors).
    Usage = 2,
    /// A `--pid` that does not exist at start.
    NoSuchProcess = 3,
    /// Every watched process exited; final totals were printed first.
    ProcessExited = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error that already knows its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub exit: Exit,
    pub message: String,
}

impl AppError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        AppError {
            exit,
            message: message.into(),
        }
    }
}

/// Exit code for an arbitrary error chain: the code of the first `AppError` in it, else Failure.
pub fn exit_code_of(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<AppError>().map(|a| a.exit))
        .unwrap_or(Exit::Failure)
}

/// True when the chain bottoms out in a closed pipe (`netmon run --json | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// One line, whatever the error chain holds (`{:#}` joins causes with ": ").
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn exit_code_survives_context() {
        let e: anyhow::Error = Err::<(), _>(AppError::new(Exit::NoSuchProcess, "no process 7"))
            .context("starting")
            .unwrap_err();
        assert_eq!(exit_code_of(&e), Exit::NoSuchProcess);
        assert_eq!(one_line(&e), "starting: no process 7");
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&e));
        assert_eq!(exit_code_of(&e), Exit::Failure);
    }
}
