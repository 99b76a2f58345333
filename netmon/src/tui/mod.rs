//! The tabbed terminal UI of `netmon run`: the eBPF connections of the watched process
//! (the netmon tab) next to everything `/proc/<pid>/net` says about its network namespace.
//!
//! - [`state`]: tabs, filter, sort, scroll, interval, and the keys that change them (pure).
//! - [`data`]: what a frame shows, and the [`data::Collector`] that reads it each interval.
//! - [`tabs`]: one row builder per tab; [`view`]: the shared table shape, filter and sort.
//! - [`render`]: draws a frame (also into ratatui's `TestBackend` in tests).
//! - [`terminal`]: raw mode / alternate screen, restored on exit, error and panic.
//!
//! Keys are read on a thread of their own and forwarded over a channel, so `app`'s event loop
//! never waits on the terminal. Without `--pid` the socket tabs show netmon's own network
//! namespace (normally the host's) and the netmon tab every process.
pub mod data;
pub mod history;
pub mod render;
pub mod state;
pub mod tabs;
pub mod terminal;
pub mod view;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind};
use tokio::sync::mpsc;

use crate::aggregate::Snapshot;
use crate::cli::RunArgs;
use data::{Collector, TuiData};
use history::{HistoryLoader, HistorySource};
use state::{Action, State};
use terminal::TerminalGuard;

/// What the event loop must do after the user acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiEvent {
    Nothing,
    Quit,
    /// Restart the refresh timer with this period.
    Interval(Duration),
}

pub struct Tui {
    guard: TerminalGuard,
    keys: mpsc::Receiver<TermEvent>,
    /// False once the key reader has ended (stdin closed).
    keys_open: bool,
    stop_keys: Arc<AtomicBool>,
    state: State,
    data: TuiData,
    collector: Collector,
    /// Reads the history store for the History tab, only while it is shown.
    history: HistoryLoader,
}

impl Tui {
    pub fn start(args: &RunArgs, backend: &str) -> Result<Self> {
        let collector = Collector::new(&args.procfs_root, &args.pids, args.follow_children);
        let mut data = TuiData {
            header: collector.header(backend),
            tree: args.tree,
            ..TuiData::default()
        };
        collector.refresh(&mut data);
        let guard = TerminalGuard::enter()
            .context("opening the terminal UI (--no-tui prints the plain table)")?;
        let stop_keys = Arc::new(AtomicBool::new(false));
        let keys = spawn_key_reader(stop_keys.clone());
        let mut state = State::new(args.interval, !args.pids.is_empty());
        if args.by == crate::cli::RunView::Host {
            state.tab = state::Tab::Hosts;
        }
        let history = HistoryLoader::start(HistorySource {
            db: args.history.db.clone(),
            pids: args.pids.clone(),
            // The UI opens for `run` only, which records with --record.
            recording: args.history.record,
        });
        let mut tui = Tui {
            guard,
            keys,
            keys_open: true,
            stop_keys,
            state,
            data,
            collector,
            history,
        };
        tui.draw()?;
        Ok(tui)
    }

    fn draw(&mut self) -> Result<()> {
        let (state, data) = (&mut self.state, &self.data);
        self.guard
            .term
            .draw(|f| render::draw(f, state, data))
            .context("drawing the terminal UI")?;
        Ok(())
    }

    /// A new interval: the aggregator's snapshot (its hosts feed the Hosts tab's rates) and a
    /// fresh read of the namespace.
    pub fn update(&mut self, snap: Snapshot) -> Result<()> {
        self.data.hosts.update(snap.at_ms, &snap.hosts);
        self.data.procs = snap;
        if !self.data.exited {
            self.collector.refresh(&mut self.data);
        }
        self.refresh_history();
        self.draw()
    }

    /// The History tab is shown: ask for a fresh hour of history (at most every 10 s; the
    /// answer arrives through `next_event`).
    fn refresh_history(&mut self) {
        if self.state.tab == state::Tab::History {
            self.history.refresh(std::time::Instant::now());
        }
    }

    /// Every watched process has exited: freeze the namespace tabs and show the banner.
    pub fn mark_exited(&mut self) -> Result<()> {
        self.data.exited = true;
        self.draw()
    }

    /// Waits for the next key (or resize) and applies it. Cancel-safe: nothing is lost when
    /// another branch of the caller's `select!` wins.
    pub async fn next_event(&mut self) -> Result<UiEvent> {
        let ev = tokio::select! {
            ev = self.keys.recv(), if self.keys_open => match ev {
                Some(ev) => ev,
                None => {
                    // The reader thread ended (stdin closed): nothing can quit us but a signal.
                    self.keys_open = false;
                    return Ok(UiEvent::Nothing);
                }
            },
            view = self.history.next() => {
                self.data.history = view;
                if self.state.tab == state::Tab::History {
                    self.draw()?;
                }
                return Ok(UiEvent::Nothing);
            }
        };
        let action = match ev {
            TermEvent::Key(k) if k.kind != KeyEventKind::Release => {
                if self.data.exited && k.code == KeyCode::Enter {
                    Action::Quit
                } else {
                    let columns = tabs::build(self.state.tab, &self.data).columns.len();
                    self.state.handle_key(k, columns)
                }
            }
            TermEvent::Resize(..) => Action::Redraw,
            _ => Action::None,
        };
        self.refresh_history();
        Ok(match action {
            Action::None => UiEvent::Nothing,
            Action::Quit => UiEvent::Quit,
            Action::Redraw => {
                self.draw()?;
                UiEvent::Nothing
            }
            Action::SetInterval(d) => {
                self.draw()?;
                UiEvent::Interval(d)
            }
        })
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        self.stop_keys.store(true, Ordering::Relaxed);
    }
}

/// Polls with a timeout rather than blocking in `read`, so the thread notices `stop` and never
/// swallows a key typed after the TUI has closed.
fn spawn_key_reader(stop: Arc<AtomicBool>) -> mpsc::Receiver<TermEvent> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("netmon-keys".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.blocking_send(ev).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| log::warn!("cannot read keys: {e}"));
    rx
}
