//! Exact payload bytes per (socket, process): one file per rung of the fallback ladder.
