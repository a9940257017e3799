//! How a run ends: every exit status crimg has, what each means (the help text and the
//! table in `docs/output.md` are generated from [`ExitStatus`]), the one classification
//! of a command's result into a status, and the one place errors are printed.

use std::fmt;

use crate::error::{ConnectionLost, CrimgError, Signal, excuses_broken_pipe, render};

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Done,
    /// Some items failed or were not found; the rest were done.
    Partial,
}

/// The exit status of a run, the command-line contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked was done (0).
    Done,
    /// The command failed (1).
    Failed,
    /// The command line or a file it names is not usable as given (2).
    Usage,
    /// No runtime or containerd socket answered, or the connection was lost under a
    /// call (3).
    Unreachable,
    /// Some items failed or were not found; the rest were done (4).
    Partial,
    /// SIGINT (130) or SIGTERM (143) stopped the command, as shells report it (128 + n).
    Interrupted(Signal),
}

impl ExitStatus {
    /// Every status, in the order the help and `docs/output.md` list them.
    pub(crate) const ALL: [ExitStatus; 7] = [
        ExitStatus::Done,
        ExitStatus::Failed,
        ExitStatus::Usage,
        ExitStatus::Unreachable,
        ExitStatus::Partial,
        ExitStatus::Interrupted(Signal::Int),
        ExitStatus::Interrupted(Signal::Term),
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Done => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Unreachable => 3,
            ExitStatus::Partial => 4,
            ExitStatus::Interrupted(Signal::Int) => 130,
            ExitStatus::Interrupted(Signal::Term) => 143,
        }
    }

    /// What it means, in a few words (`crimg --help`).
    fn summary(self) -> &'static str {
        match self {
            ExitStatus::Done => "done",
            ExitStatus::Failed => "failed",
            ExitStatus::Usage => "usage error",
            ExitStatus::Unreachable => "runtime or containerd unreachable",
            ExitStatus::Partial => "partial (some items failed or were not found)",
            ExitStatus::Interrupted(_) => "interrupted (SIGINT, SIGTERM)",
        }
    }

    /// What it means, in full (the table in `docs/output.md`).
    #[cfg(test)]
    fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Done => "done",
            ExitStatus::Failed => "failed",
            ExitStatus::Usage => {
                "usage error (bad option, unreadable config file, invalid pattern)"
            }
            ExitStatus::Unreachable => {
                "runtime or containerd unreachable (the message names the sockets tried)"
            }
            ExitStatus::Partial => {
                "partial: some items failed or were not found, the rest were done"
            }
            ExitStatus::Interrupted(_) => {
                "interrupted by SIGINT or SIGTERM during `import` or `export`; the work in \
                 progress was undone (no image record, no lease, no partial archive)"
            }
        }
    }

    /// How a command that did not fail outright ended.
    pub(crate) fn of_outcome(outcome: Outcome) -> ExitStatus {
        match outcome {
            Outcome::Done => ExitStatus::Done,
            Outcome::Partial => ExitStatus::Partial,
        }
    }
}

impl CrimgError {
    /// The exit status this error stands for.
    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            CrimgError::Unreachable { .. } | CrimgError::Lost { .. } => ExitStatus::Unreachable,
            CrimgError::Usage(_) => ExitStatus::Usage,
            CrimgError::NotFound(_) | CrimgError::Ambiguous { .. } => ExitStatus::Failed,
            CrimgError::Interrupted { signal, .. } => ExitStatus::Interrupted(*signal),
        }
    }
}

/// The statuses grouped by `text`, consecutive ones with the same text in one row.
fn rows(text: fn(ExitStatus) -> &'static str) -> Vec<(Vec<u8>, &'static str)> {
    let mut rows: Vec<(Vec<u8>, &'static str)> = Vec::new();
    for s in ExitStatus::ALL {
        match rows.last_mut() {
            Some((codes, t)) if *t == text(s) => codes.push(s.code()),
            _ => rows.push((vec![s.code()], text(s))),
        }
    }
    rows
}

fn join_codes(codes: &[u8], sep: &str) -> String {
    codes
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// The "Exit codes: ..." paragraph of `crimg --help`.
pub(crate) fn help_paragraph() -> String {
    let rows: Vec<String> = rows(ExitStatus::summary)
        .iter()
        .map(|(codes, text)| format!("{} {text}", join_codes(codes, " or ")))
        .collect();
    format!("Exit codes: {}.", rows.join(", "))
}

/// The table under the "Exit codes" heading of `docs/output.md`.
#[cfg(test)]
pub(crate) fn markdown_table() -> String {
    let mut out = String::from("| code | meaning |\n|---|---|\n");
    for (codes, text) in rows(ExitStatus::meaning) {
        out.push_str(&format!("| {} | {text} |\n", join_codes(&codes, ", ")));
    }
    out
}

/// The man pages' EXIT STATUS entries: codes ("130, 143") and what they mean.
#[cfg(test)]
pub(crate) fn man_rows() -> Vec<(String, String)> {
    rows(ExitStatus::meaning)
        .into_iter()
        .map(|(codes, text)| (join_codes(&codes, ", "), text.replace('`', "")))
        .collect()
}

/// An error that ends the command, classified: its exit status, and the lost connection
/// behind it if there is one.
#[derive(Debug)]
pub(crate) struct Classified {
    pub(crate) status: ExitStatus,
    pub(crate) lost: Option<ConnectionLost>,
    /// The status is "unreachable" because of `lost` (not a typed error before it).
    by_lost: bool,
}

/// The one classification of an error, down its chain:
/// - a report piped into `head` (a broken pipe before any gRPC status) is no failure:
///   done; an archive cut short is (the error then carries
///   [`WritingArchive`](crate::error::WritingArchive));
/// - the first typed [`CrimgError`] decides, unless it stands for a lost connection;
/// - a connection to CRI or containerd lost under a call (refused, reset, closed
///   mid-stream) is "unreachable" (the call's own error, or a [`ConnectionLost`] or
///   [`CrimgError::Lost`] that stands for it, whichever comes first);
/// - anything else is a failure.
pub(crate) fn classify(err: &anyhow::Error) -> Classified {
    let mut broken_pipe = false;
    let mut past_status = false;
    let mut typed: Option<&CrimgError> = None;
    for e in err.chain() {
        let status = e.downcast_ref::<tonic::Status>();
        if !past_status && status.is_none() {
            broken_pipe |= e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
        }
        past_status |= status.is_some();
        if typed.is_none() {
            typed = e.downcast_ref::<CrimgError>();
        }
    }
    let lost = ConnectionLost::of(err);
    let status = match typed {
        _ if broken_pipe && excuses_broken_pipe(err) => ExitStatus::Done,
        Some(e) if !matches!(e, CrimgError::Lost { .. }) => e.exit_status(),
        _ if lost.is_some() => {
            return Classified {
                status: ExitStatus::Unreachable,
                lost,
                by_lost: true,
            };
        }
        _ => ExitStatus::Failed,
    };
    Classified {
        status,
        lost,
        by_lost: false,
    }
}

/// The hint under an error caused by a lost connection.
pub(crate) const LOST_HINT: &str = "the container runtime stopped answering in the middle of the \
     command (restarted, killed or overloaded?); run the command again once it answers";

/// What to print and the exit status for an error that ends the command. A lost
/// connection gets the socket (when the message does not name it yet) and a hint.
pub(crate) fn report(err: &anyhow::Error) -> (String, ExitStatus) {
    let Classified {
        status,
        lost,
        by_lost,
    } = classify(err);
    let mut message = render(err);
    if by_lost && let Some(lost) = lost {
        let lost = lost.to_string();
        // The socket is named already when the error came from crimg's own clients.
        if !message.contains(&lost) {
            message.push_str(&format!("\n  {lost}"));
        }
        message.push_str(&format!("\n  hint: {LOST_HINT}"));
    }
    (message, status)
}

/// Prints an error on stderr: an item that failed while the command goes on, or the
/// error that ends it. Every "crimg: error:" line comes from here.
pub fn print_error(message: impl fmt::Display) {
    eprintln!("crimg: error: {message}");
}

/// The exit status of a finished command, its error printed if it failed.
pub fn finish(result: anyhow::Result<Outcome>) -> ExitStatus {
    match result {
        Ok(outcome) => ExitStatus::of_outcome(outcome),
        Err(err) => {
            let (message, status) = report(&err);
            if status != ExitStatus::Done {
                print_error(message);
            }
            status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RpcError;

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
        let (msg, status) = report(&rpc(refused));
        assert_eq!(status, ExitStatus::Unreachable, "{msg}");
        assert_eq!(status.code(), 3);
        assert!(
            msg.starts_with(
                "writing blob sha256:ab: lost the connection to containerd at /run/c.sock: \
                 Connection refused (os error 111)\n  hint: "
            ),
            "{msg}"
        );

        // The server's own answer is a failure, shown without tonic's dump.
        let (msg, status) = report(&rpc(tonic::Status::not_found("blob gone")));
        assert_eq!(status, ExitStatus::Failed);
        assert_eq!(msg, "writing blob sha256:ab: NotFound: blob gone");

        // The call alone under the item that named it (a `.txt` list's line), still a
        // lost connection by its type.
        let reset = || {
            rpc(tonic::Status::from_error(Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            ))))
        };
        let line = crate::error::call_error(reset()).context("line 2: a:1");
        let (msg, status) = report(&line.context("x.txt"));
        assert_eq!(status, ExitStatus::Unreachable, "{msg}");
        assert_eq!(
            msg,
            format!(
                "x.txt: line 2: a:1: lost the connection to containerd at /run/c.sock: \
                 connection reset\n  hint: {LOST_HINT}"
            )
        );
        // The connection lost by type alone: the items after it, not attempted.
        let lost = ConnectionLost::of(&reset()).unwrap();
        let skipped = anyhow::Error::new(lost).context("line 3: b:1: not attempted");
        let (msg, status) = report(&skipped.context("x.txt"));
        assert_eq!(status, ExitStatus::Unreachable, "{msg}");
        assert_eq!(
            msg,
            format!(
                "x.txt: line 3: b:1: not attempted: lost the connection to containerd at \
                 /run/c.sock: connection reset\n  hint: {LOST_HINT}"
            )
        );
        // Under an item, a server's answer stays a failure.
        let answer = crate::error::call_error(rpc(tonic::Status::not_found("blob gone")));
        let (msg, status) = report(&answer.context("line 4: c:1"));
        assert_eq!(status, ExitStatus::Failed);
        assert_eq!(msg, "line 4: c:1: NotFound: blob gone");

        // A deadline is no lost connection.
        let late = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(crate::error::transport_problem(&late), None);
    }

    #[test]
    fn classification() {
        let usage = anyhow::Error::new(CrimgError::Usage("bad".into())).context("reading x");
        assert_eq!(classify(&usage).status, ExitStatus::Usage);
        let int = anyhow::Error::new(CrimgError::Interrupted {
            signal: Signal::Term,
            what: "undone".into(),
        });
        assert_eq!(classify(&int).status.code(), 143);
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the table");
        assert_eq!(classify(&pipe).status, ExitStatus::Done);
        assert_eq!(classify(&anyhow::anyhow!("no")).status, ExitStatus::Failed);
        assert_eq!(ExitStatus::of_outcome(Outcome::Partial).code(), 4);
    }

    #[test]
    fn documentation_lists_every_code() {
        let help = help_paragraph();
        let table = markdown_table();
        for s in ExitStatus::ALL {
            assert!(help.contains(&s.code().to_string()), "{help}");
            assert!(table.contains(&format!("{}", s.code())), "{table}");
        }
        assert!(help.starts_with("Exit codes: 0 done, 1 failed, 2 usage error, "));
        assert!(table.contains("| 130, 143 | interrupted by SIGINT or SIGTERM"));
    }
}
