//! End-to-end harness: a private containerd per test (its own root, state, socket and
//! cgroups under a temp dir), image fixtures made offline, and CRI helpers to run pods.
//!
//! Every test module of the e2e binary shares this code and no single test uses all of it.
#![allow(dead_code, unused_imports)]

pub mod archives;
pub mod content;
mod cri;
mod fixtures;
pub mod hostile;
mod node;
pub mod prerequisites;
pub mod proxy;
pub mod registry;
pub mod runtime;
pub mod sys;
pub mod terminal;
pub mod tools;

pub use fixtures::{FixtureImage, digest, host_arch, pause_binary};
pub use node::{Node, NodeOptions, shim_socket};
