//! `crimg import`: archives into containerd, verified, atomic, unpacked for CRI.
//!
//! Each archive is imported under its own lease: blobs are written (verified against
//! their digests while streaming), labelled with the GC references containerd expects,
//! unpacked into the CRI's snapshotter, and only then are the image records created.
//! Any failure deletes the lease synchronously, so nothing the archive brought stays.
//! A run killed before it could (SIGKILL, OOM, containerd killed under it) leaves its
//! lease; the next import or export sees its owner is gone and releases it.

mod importer;
mod inputs;
mod inspect;
mod job;
mod lists;
mod many;
mod report;
mod run;
pub(crate) mod sources;
mod streamed;
mod walk;
mod watch;

pub(crate) use importer::{ImportedImage, Importer};
pub(crate) use inputs::Item;
pub(crate) use inspect::run as inspect;
pub(crate) use many::import_many;
pub(crate) use report::Report;
pub(crate) use run::run;
