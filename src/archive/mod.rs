//! Image archives: reading (import) and writing (export).

pub(crate) mod compression;
pub(crate) mod output;
pub(crate) mod paths;
pub(crate) mod read;
pub(crate) mod sink;
pub(crate) mod write;
