//! The error type that decides the exit code, and the exit codes themselves.

use std::fmt;

/// Exit codes of the command-line contract.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const UNREACHABLE: i32 = 3;
    pub const PARTIAL: i32 = 4;
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
        }
    }
}

/// The exit code for any error: the typed ones decide, everything else is a failure.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<CrimgError>())
        .map_or(exit::FAILED, CrimgError::exit_code)
}
