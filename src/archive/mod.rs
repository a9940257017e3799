//! Image archives: reading (import) and writing (export).

pub mod compression;
pub mod layout;
pub mod output;
pub mod paths;
pub mod read;
pub mod write;
pub mod write_plan;
