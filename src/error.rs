//! The errors whose kind decides the exit status (see [`crate::exit`]), and how an
//! error is shown.

use std::fmt;

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

    /// The lost connection behind `err`, if it failed because one was lost: the first
    /// error down its chain that tells (a [`CrimgError::Lost`], a [`ConnectionLost`], a
    /// failed call or a gRPC status) decides. [`crate::exit::classify`] reads it too.
    pub(crate) fn of(err: &anyhow::Error) -> Option<ConnectionLost> {
        for e in err.chain() {
            if let Some(CrimgError::Lost { lost, .. }) = e.downcast_ref::<CrimgError>() {
                return Some(lost.clone());
            } else if let Some(l) = e.downcast_ref::<ConnectionLost>() {
                return Some(l.clone());
            } else if let Some(r) = e.downcast_ref::<RpcError>() {
                return r
                    .connection_problem()
                    .map(|_| ConnectionLost::new(r.to_string()));
            } else if let Some(s) = e.downcast_ref::<tonic::Status>() {
                return transport_problem(s)
                    .map(|p| ConnectionLost::new(format!("lost the connection: {p}")));
            }
        }
        None
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

/// The failed call to CRI or containerd behind `e` ([`RpcError`]) without the context
/// above it, for a caller that names what was called itself; `e` whole when no call
/// failed. Its kind, a lost connection say, stays for [`crate::exit::classify`].
pub(crate) fn call_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<RpcError>() {
        Ok(call) => anyhow::Error::new(call),
        Err(e) => e,
    }
}

/// A failed call to CRI or containerd. Shown as the status code and message, or, when the
/// connection failed under the call (refused, reset, closed mid-stream), as that, naming
/// the socket: tonic's own rendering dumps its transport internals.
#[derive(Debug)]
pub(crate) struct RpcError {
    pub(crate) status: tonic::Status,
    /// What was called: `containerd` or `CRI`.
    pub(crate) service: &'static str,
    pub(crate) socket: String,
}

impl RpcError {
    pub(crate) fn new(status: tonic::Status, service: &'static str, socket: &str) -> RpcError {
        RpcError {
            status,
            service,
            socket: socket.trim_start_matches("unix://").to_string(),
        }
    }

    /// Why the connection failed, when the call failed because it did.
    pub(crate) fn connection_problem(&self) -> Option<String> {
        transport_problem(&self.status)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.connection_problem() {
            Some(problem) => write!(
                f,
                "lost the connection to {} at {}: {problem}",
                self.service, self.socket
            ),
            None => write!(f, "{:?}: {}", self.status.code(), self.status.message()),
        }
    }
}

impl std::error::Error for RpcError {}

/// Why the connection failed under a call, in the transport's own words (e.g.
/// "Connection refused (os error 111)"); `None` when the server answered with an error.
pub(crate) fn transport_problem(status: &tonic::Status) -> Option<String> {
    // A status the client made from a transport failure (hyper, h2, the socket) carries
    // that failure as its source; one the server sent carries none. A deadline that
    // expired is the other client-made kind, and no lost connection.
    let mut deepest = None;
    let mut src = std::error::Error::source(status);
    while let Some(e) = src {
        if e.is::<tonic::TimeoutExpired>() {
            return None;
        }
        deepest = Some(e.to_string());
        src = e.source();
    }
    if deepest.is_some() {
        deepest
    } else if status.code() == tonic::Code::Unavailable {
        Some(status.message().to_string())
    } else {
        None
    }
}

/// The context of every failure to write an archive, naming where it was going
/// ("writing standard output", "writing FILE"). An archive cut short is useless, so a
/// broken pipe under this context is a failure, unlike a report whose reader stopped
/// early (`crimg list | head`); see [`excuses_broken_pipe`].
#[derive(Debug, Clone)]
pub(crate) struct WritingArchive(pub String);

impl fmt::Display for WritingArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing {}", self.0)
    }
}

/// Whether a broken pipe in this error may end the run successfully: only when the output
/// was a report, not an archive.
pub(crate) fn excuses_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<WritingArchive>().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn broken_pipes_end_reports_not_archives() {
        let pipe = || anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(excuses_broken_pipe(&pipe().context("printing the table")));
        let archive = pipe()
            .context("blob sha256:ab")
            .context(WritingArchive("standard output".into()));
        assert!(!excuses_broken_pipe(&archive));
        assert!(!excuses_broken_pipe(&archive.context("exporting")));
        assert_eq!(
            format!(
                "{:#}",
                pipe().context(WritingArchive("standard output".into()))
            ),
            "writing standard output: broken pipe"
        );
    }
}
