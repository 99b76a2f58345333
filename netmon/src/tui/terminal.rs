//! Raw mode and the alternate screen, undone on every way out: a normal return, an error (the
//! guard's Drop) and a panic (a hook that restores before the default hook prints).
use std::io::{self, Stdout, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::{
    cursor,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::{Terminal, backend::CrosstermBackend};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// The terminal is in raw mode on the alternate screen. Leaving the alternate screen twice would
/// restore the cursor saved on entry a second time and so draw over what was printed in between
/// (a panic message, printed by the hook before the guard's Drop runs during unwinding).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Owns the terminal while the TUI runs; dropping it gives the shell its screen back.
pub struct TerminalGuard {
    pub term: Term,
    log_level: log::LevelFilter,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut stdout = io::stdout();
        if let Err(e) = crossterm::execute!(stdout, EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e);
        }
        let term = match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e);
            }
        };
        // Log lines on stderr would land in the middle of the frame; keep them until we leave.
        let log_level = log::max_level();
        log::set_max_level(log::LevelFilter::Off);
        Ok(TerminalGuard { term, log_level })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        log::set_max_level(self.log_level);
    }
}

/// Idempotent, and a no-op when the terminal was never changed.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = terminal::disable_raw_mode();
    let mut stdout = io::stdout();
    let _ = crossterm::execute!(stdout, LeaveAlternateScreen, cursor::Show);
    let _ = stdout.flush();
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
