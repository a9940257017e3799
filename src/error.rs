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
    /// Work cut short because the connection to CRI or containerd was lost under a
    /// call: `shown` is the message, `lost` the socket and why ("lost the connection to
    /// containerd at SOCKET: WHY"). Also an error that had to become text on its way up
    /// but is still a lost connection (see [`flattened`]).
    #[error("{shown}")]
    Lost { shown: String, lost: String },
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
            CrimgError::Lost { .. } => exit::UNREACHABLE,
        }
    }
}

/// The exit code for any error: the typed ones decide, everything else is a failure.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<CrimgError>())
        .map_or(exit::FAILED, CrimgError::exit_code)
}

/// Why the command failed, when it failed because the connection to CRI or containerd
/// failed under a call (refused, reset, closed mid-stream) rather than the server
/// answering with an error: "lost the connection to containerd at SOCKET: WHY". Found in
/// the error's chain: the call's own error, or a [`CrimgError::Lost`] that stands for it.
pub fn connection_lost(err: &anyhow::Error) -> Option<String> {
    use crate::runtime::{RpcError, transport_problem};
    for e in err.chain() {
        if let Some(CrimgError::Lost { lost, .. }) = e.downcast_ref::<CrimgError>() {
            return Some(lost.clone());
        }
        if let Some(r) = e.downcast_ref::<RpcError>() {
            return r.connection_problem().map(|_| r.to_string());
        }
        if let Some(s) = e.downcast_ref::<tonic::Status>() {
            return transport_problem(s).map(|p| format!("lost the connection: {p}"));
        }
    }
    None
}

/// `err` shown as `text` only (its chain dropped), still a lost connection if it was one.
pub fn flattened(text: String, err: &anyhow::Error) -> anyhow::Error {
    match connection_lost(err) {
        Some(lost) => CrimgError::Lost { shown: text, lost }.into(),
        None => anyhow::Error::msg(text),
    }
}

/// The hint under an error caused by a lost connection.
pub const LOST_HINT: &str = "the container runtime stopped answering in the middle of the \
     command (restarted, killed or overloaded?); run the command again once it answers";

/// An error as one message: each cause after the other, as `{:#}` prints them, but a
/// gRPC status as its code and message only, without tonic's debug dump of its source.
pub fn render(err: &anyhow::Error) -> String {
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

/// What to print and the exit code for an error that ends the command: a typed error
/// decides; a connection to the runtime lost under a call is "unreachable" (exit 3) and
/// the message names the socket; anything else is a failure.
pub fn report(err: &anyhow::Error) -> (String, i32) {
    if let Some(e) = err.chain().find_map(|e| e.downcast_ref::<CrimgError>())
        && !matches!(e, CrimgError::Lost { .. })
    {
        return (render(err), e.exit_code());
    }
    match connection_lost(err) {
        Some(lost) => {
            let mut message = render(err);
            // The socket is named already when the error came from crimg's own clients.
            if !message.contains(&lost) {
                message.push_str(&format!("\n  {lost}"));
            }
            message.push_str(&format!("\n  hint: {LOST_HINT}"));
            (message, exit::UNREACHABLE)
        }
        None => (render(err), exit::FAILED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RpcError;

    fn rpc(status: tonic::Status) -> anyhow::Error {
        anyhow::Error::new(RpcError::new(status, "containerd", "unix:///run/c.sock"))
            .context("writing blob sha256:ab")
    }

    #[test]
    fn lost_connections_exit_3_naming_the_socket() {
        // Made by the client from a dead socket: the I/O error is its source.
        let refused = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        let (msg, code) = report(&rpc(refused));
        assert_eq!(code, exit::UNREACHABLE, "{msg}");
        assert!(
            msg.starts_with(
                "writing blob sha256:ab: lost the connection to containerd at /run/c.sock: \
                 Connection refused (os error 111)\n  hint: "
            ),
            "{msg}"
        );

        // The server's own answer is a failure, shown without tonic's dump.
        let (msg, code) = report(&rpc(tonic::Status::not_found("blob gone")));
        assert_eq!(code, exit::FAILED);
        assert_eq!(msg, "writing blob sha256:ab: NotFound: blob gone");

        // Flattened to text on its way up, it is still a lost connection.
        let lost = rpc(tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        ))));
        let flat = flattened(format!("x.tar: {lost:#}"), &lost);
        assert_eq!(flat.to_string(), format!("x.tar: {lost:#}"));
        let (msg, code) = report(&flat.context("2 of 3 item(s) failed"));
        assert_eq!(code, exit::UNREACHABLE, "{msg}");
        assert!(msg.contains("hint: "), "{msg}");
        // Flattened, a server's answer stays a failure.
        let answer = rpc(tonic::Status::not_found("blob gone"));
        let (_, code) = report(&flattened(format!("{answer:#}"), &answer));
        assert_eq!(code, exit::FAILED);

        // A deadline is no lost connection.
        let late = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(crate::runtime::transport_problem(&late), None);
    }
}
