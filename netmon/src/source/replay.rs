//! Replays a recorded event stream (JSON lines, one [`Event`] each), and records one.
//!
//! Tests drive the whole pipeline from such files, and `--record` makes them from a live run.
use std::{io::Write, path::Path};

use tokio::sync::mpsc;

use crate::event::Event;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a netmon event: {reason}")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Blank lines and lines starting with `#` are skipped, so fixtures can explain themselves.
pub fn read_events(path: &Path) -> Result<Vec<Event>, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_events(&text).map_err(|(line, reason)| ReplayError::Parse {
        path: path.display().to_string(),
        line,
        reason,
    })
}

pub fn parse_events(text: &str) -> Result<Vec<Event>, (usize, String)> {
    let mut events = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        events.push(serde_json::from_str(l).map_err(|e| (i + 1, e.to_string()))?);
    }
    Ok(events)
}

/// One event per message: a replay's ticks pace it like the kernel's would.
pub async fn run(events: Vec<Event>, tx: mpsc::Sender<Vec<Event>>) {
    for ev in events {
        if tx.send(vec![ev]).await.is_err() {
            return;
        }
    }
}

pub fn write_event(w: &mut impl Write, ev: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, ev)?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_comments() {
        let evs = vec![
            Event::Tick { at_ms: 5 },
            Event::ProcessForked {
                parent: 1,
                child: 2,
            },
        ];
        let mut buf = b"# a comment\n\n".to_vec();
        for e in &evs {
            write_event(&mut buf, e).unwrap();
        }
        assert_eq!(
            parse_events(std::str::from_utf8(&buf).unwrap()).unwrap(),
            evs
        );
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let (line, reason) =
            parse_events("{\"type\":\"tick\",\"at_ms\":1}\n{\"type\":\"nope\"}\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(reason.contains("nope"), "{reason}");
    }
}
