//! `--json`: one snapshot per line.
use serde::Serialize;

use crate::aggregate::Snapshot;
use crate::hosts::HostRateRow;

pub fn render_json(s: &Snapshot) -> String {
    // Serialising plain data with string keys cannot fail; keep a line anyway if it ever does.
    serde_json::to_string(s).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `run --by host --json`: the snapshot's line with the rates per remote host added
/// (`host_rates`, the rows of the hosts table, busiest first).
pub fn render_json_with_hosts(s: &Snapshot, host_rates: &[HostRateRow]) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(flatten)]
        snapshot: &'a Snapshot,
        host_rates: &'a [HostRateRow],
    }
    serde_json::to_string(&Line {
        snapshot: s,
        host_rates,
    })
    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
