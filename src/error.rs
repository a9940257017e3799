//! The errors whose kind decides the exit status (see [`crate::exit`]), and how an
//! error is shown.

use std::fmt;

use crate::exit::ExitStatus;

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
    /// A reference matched nothing: the whole message, from
    /// [`crate::reference::not_found`], with the nearest existing names.
    #[error("{0}")]
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
    /// A command's summary of work cut short because the connection to CRI or
    /// containerd was lost under a call ("2 of 3 item(s) failed or were not attempted,
    /// LOST"): `shown` is the summary, `lost` the lost connection. A single item's error
    /// keeps the [`ConnectionLost`] or the failed call in its chain instead.
    #[error("{shown}")]
    Lost { shown: String, lost: ConnectionLost },
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
pub(crate) async fn interrupted() -> Signal {
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
    pub(crate) endpoint: String,
    pub(crate) problem: String,
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
    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            CrimgError::Unreachable { .. } | CrimgError::Lost { .. } => ExitStatus::Unreachable,
            CrimgError::Usage(_) => ExitStatus::Usage,
            CrimgError::NotFound(_) | CrimgError::Ambiguous { .. } => ExitStatus::Failed,
            CrimgError::Interrupted { signal, .. } => ExitStatus::Interrupted(*signal),
        }
    }
}

/// The connection to CRI or containerd failed under a call (refused, reset, closed
/// mid-stream) rather than the server answering with an error. Shown as "lost the
/// connection to containerd at SOCKET: WHY" ("lost the connection: WHY" when the socket
/// is not known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectionLost(String);

impl ConnectionLost {
    pub(crate) fn new(shown: String) -> ConnectionLost {
        ConnectionLost(shown)
    }

    /// The lost connection behind `err`, if it failed because one was lost (see
    /// [`crate::exit::classify`]).
    pub(crate) fn of(err: &anyhow::Error) -> Option<ConnectionLost> {
        crate::exit::classify(err).lost
    }
}

/// An error as one message: each cause after the other, as `{:#}` prints them, but a
/// gRPC status as its code and message only, without tonic's debug dump of its source.
pub(crate) fn render(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.chain() {
        if let Some(s) = e.downcast_ref::<tonic::Status>() {
            parts.push(format!("{:?}: {}", s.code(), s.message()));
            break;
        }
        parts.push(e.to_string());
    }
    // Context that repeats what follows it adds nothing.
    parts.dedup();
    parts.join(": ")
}
