//! Transport and clients for CRI and containerd. Clients return domain types from
//! `crate::model`; generated protobuf types stay inside this module.

pub(crate) mod config;
pub mod connect;
pub(crate) mod containerd;
pub mod content;
pub(crate) mod cri;
pub(crate) mod events;
pub(crate) mod images;
pub(crate) mod leases;
pub mod owner;
pub(crate) mod snapshots;
pub mod transport;
pub(crate) mod unpack;

use std::fmt;

/// How many per-item calls (a status per container or sandbox) run at once.
const PER_ITEM_CALLS: usize = 16;

/// Runs one call per item, a bounded number at a time; the answers come in the items'
/// order, one for each.
pub(crate) async fn per_item<F: Future>(calls: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use futures::stream::{self, StreamExt};
    stream::iter(calls).buffered(PER_ITEM_CALLS).collect().await
}

/// The message of a gRPC status without tonic's wrapping, found anywhere in the error's
/// chain; any other error in full.
pub(crate) fn status_text(e: &anyhow::Error) -> String {
    if let Some(r) = e.chain().find_map(|c| c.downcast_ref::<RpcError>()) {
        return r.to_string();
    }
    match e.chain().find_map(|c| c.downcast_ref::<tonic::Status>()) {
        Some(s) => format!("{:?}: {}", s.code(), s.message()),
        None => format!("{e:#}"),
    }
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
