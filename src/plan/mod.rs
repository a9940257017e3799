//! Pure decisions: data in, plan out. Nothing here talks to a runtime.

pub(crate) mod exclude;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod inventory;
pub(crate) mod lines;
pub(crate) mod pin;
pub(crate) mod platform;
pub(crate) mod protect;
pub(crate) mod prune;
pub(crate) mod schedule;
pub(crate) mod watch;
