//! Host events: "this just happened" signals for an administrator, as they happen.
//!
//! sources → model → sinks, one responsibility per file:
//! - sources: `uevent` (parser) + `device` (kernel uevents → USB/block events), `mounts`
//!   (/proc/self/mountinfo diffs), `rtnl` (rtnetlink decoder) + `netstate` (known state →
//!   events) + `net` (the rtnetlink sockets);
//! - model: `model` ([`HostEvent`], [`What`], [`Kind`]);
//! - sinks: `print` (stdout lines), `exec` (`--exec` hooks);
//! - `cmd` wires them for `netmon events`; `stats` counts what was skipped or lost.
pub mod cmd;
pub mod device;
pub mod exec;
pub mod model;
pub mod mounts;
pub mod net;
pub mod netstate;
pub mod print;
pub mod rtnl;
pub mod stats;
pub mod uevent;

pub use cmd::run;
pub use model::{HostEvent, Kind, What};
