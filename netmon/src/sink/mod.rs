//! Sinks turn a [`crate::aggregate::Snapshot`] into output; none of them touches a source.
pub mod http;
pub mod human;
pub mod json;
pub mod prometheus;
pub mod table;
pub mod tree;
pub mod web_config;

#[cfg(test)]
pub(crate) mod tests;
