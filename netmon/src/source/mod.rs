//! Sources turn one origin (the kernel, /proc, a recorded file) into [`crate::event::Event`]s.
pub mod kernel;
pub mod procfs;
pub mod replay;
