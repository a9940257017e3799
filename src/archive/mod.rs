//! Image archives: reading (import) and writing (export).

pub mod write;
pub mod write_plan;
