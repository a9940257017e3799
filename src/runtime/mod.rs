//! Transport and clients for CRI and containerd. Clients return domain types from
//! `crate::model`; generated protobuf types stay inside this module.

pub mod connect;
pub mod containerd;
pub mod content;
pub mod cri;
pub mod images_write;
pub mod transport;
pub mod unpack;
