//! Pure decisions: data in, plan out. Nothing here talks to a runtime.

pub mod exclude;
pub mod inventory;
pub mod pattern;
pub mod pin;
pub mod platform;
pub mod protect;
pub mod prune;
pub mod schedule;
