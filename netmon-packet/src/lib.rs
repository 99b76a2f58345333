//! placeholder
pub mod decode;
pub mod dns;
pub mod meta;
pub mod packet;
pub mod summary;
pub mod value;
