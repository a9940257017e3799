//! `crimg export`: images from the content store into one OCI + docker archive.
//!
//! Gather (resolve the references, walk every chosen descriptor), check (every blob in
//! the content store, or fetched with `--fetch-missing`), then write: the layout's JSON
//! files first, then each blob once, streamed from one containerd `Read` into the tar
//! on a writer thread (which hashes, compresses and writes) into a temp file beside the
//! target, synced and renamed into place only when everything succeeded.

mod check;
mod run;
mod store;
mod targets;
mod writer;

pub(crate) use check::run as check;
pub(crate) use run::run;
