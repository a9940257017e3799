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

use crate::error::RpcError;

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
