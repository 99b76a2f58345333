//! `--json`: one snapshot per line.
use crate::aggregate::Snapshot;

pub fn render_json(s: &Snapshot) -> String {
    // Serialising plain data with string keys cannot fail; keep a line anyway if it ever does.
    serde_json::to_string(s).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
