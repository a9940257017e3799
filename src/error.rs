//! The error type that decides the exit code, and the exit codes themselves.

use std::fmt;

/// Exit codes of the command-line contract.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const UNREACHABLE: i32 = 3;
    pub const PARTIAL: i32 = 4;
    /// Stopped by SIGINT (128 + 2), as shells report it.
    pub const SIGINT: i32 = 130;
    /// Stopped by SIGTERM (128 + 15).
    pub const SIGTERM: i32 = 143;
}

/// Errors whose kind matters to the caller (exit code, message shape). Everything else is
/// an `anyhow::Error` with context and exits 1.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrimgError {
    /// No runtime or containerd socket answered.
    #[error("{what} unreachable: {}\n  hint: {hint}", format_tried(.tried))]
    Unreachable {
        what: &'static str,
        tried: Vec<Tried>,
        hint: String,
    },
    /// The command line or a file it names is not usable as given.
    #[error("{0}")]
    Usage(String),
    /// A reference matched nothing.
    #[error("image {0:?} not found")]
    NotFound(String),
    /// An ID prefix matched more than one image.
    #[error("image ID prefix {prefix:?} is ambiguous; it matches: {}", .candidates.join(", "))]
    Ambiguous {
        prefix: String,
        candidates: Vec<String>,
    },
    /// SIGINT or SIGTERM stopped the command; `what` says what was undone.
    #[error("interrupted by {signal}; {what}")]
    Interrupted { signal: Signal, what: String },
}

/// The signals that stop a command cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        })
    }
}

/// Resolves when SIGINT or SIGTERM arrives (never, if the handlers cannot be installed).
/// Installing it replaces the default action, so the caller decides how to stop.
pub async fn interrupted() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            }
        }
        _ => std::future::pending().await,
    }
}

/// One socket that was tried and why it failed.
#[derive(Debug, Clone)]
pub struct Tried {
    pub endpoint: String,
    pub problem: String,
}

fn format_tried(tried: &[Tried]) -> String {
    if tried.is_empty() {
        return "no socket to try".into();
    }
    tried
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.endpoint, self.problem)
    }
}

impl CrimgError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CrimgError::Unreachable { .. } => exit::UNREACHABLE,
            CrimgError::Usage(_) => exit::USAGE,
            CrimgError::NotFound(_) | CrimgError::Ambiguous { .. } => exit::FAILED,
            CrimgError::Interrupted {
                signal: Signal::Int,
                ..
            } => exit::SIGINT,
            CrimgError::Interrupted {
                signal: Signal::Term,
                ..
            } => exit::SIGTERM,
        }
    }
}

/// The exit code for any error: the typed ones decide, everything else is a failure.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<CrimgError>())
        .map_or(exit::FAILED, CrimgError::exit_code)
}
