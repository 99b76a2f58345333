//! netmon: per-process network traffic from the kernel.
//!
//! Data flows one way: `source` → [`event::Event`] → `aggregate` → `Snapshot` → `sink`.
//! `app` wires them; `cli` only parses flags. `tui` is the interactive sink: it also reads the
//! watched namespace's `/proc/<pid>/net` through `procnet`.
pub mod aggregate;
pub mod app;
pub mod bounded;
pub mod capture;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod error;
pub mod event;
pub mod events;
pub mod fleet;
pub(crate) mod hashing;
pub mod history;
pub mod hosts;
pub mod identity;
pub mod netinfo;
pub mod packaging;
pub mod procnet;
pub mod sink;
pub mod source;
pub mod tcp_counts;
pub mod tui;
pub mod users;
