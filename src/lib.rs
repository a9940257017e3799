//! crimg: image lifecycle for Kubernetes nodes over CRI and containerd.

pub mod app;
pub mod archive;
pub mod cli;
pub mod docs;
pub mod error;
pub mod exit;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod model;
pub mod oci;
pub mod plan;
pub mod proto;
pub mod reference;
pub mod registry;
pub mod render;
pub mod runtime;
