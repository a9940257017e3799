//! Image archives: reading (import) and writing (export).

pub mod compression;
pub mod output;
pub mod paths;
pub mod read;
pub mod sink;
pub mod source;
pub mod write;
