mod job;
mod watch;

pub use job::*;
