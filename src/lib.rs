//! crimg: image lifecycle for Kubernetes nodes over CRI and containerd.
//!
//! The library is the `crimg` binary's; only what the binary, the end-to-end tests, the
//! benchmarks and the fuzz targets name is `pub`, everything else `pub(crate)`.
#![warn(unreachable_pub)]

pub mod app;
pub(crate) mod archive;
pub mod cli;
pub mod complete;
#[cfg(test)]
pub(crate) mod docs;
pub(crate) mod error;
pub mod exit;
pub(crate) mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod help;
pub mod model;
pub(crate) mod oci;
pub(crate) mod plan;
pub mod proto;
pub(crate) mod reference;
pub(crate) mod registry;
pub(crate) mod render;
pub mod runtime;
