//! Transport and clients for CRI and containerd. Clients return domain types from
//! `crate::model`; generated protobuf types stay inside this module.

pub mod connect;
pub mod containerd;
pub mod content;
pub mod cri;
pub mod images_write;
pub mod transport;
pub mod unpack;

/// The message of a gRPC status without tonic's wrapping, found anywhere in the error's
/// chain; any other error in full.
pub fn status_text(e: &anyhow::Error) -> String {
    match e.chain().find_map(|c| c.downcast_ref::<tonic::Status>()) {
        Some(s) => format!("{:?}: {}", s.code(), s.message()),
        None => format!("{e:#}"),
    }
}
