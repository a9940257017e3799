//! Reading archives: what an input is, a streaming pass over a tar (any compression) in
//! a blocking thread, and random access to uncompressed tars and layout directories.
//!
//! A tar is sequential and its index may come last, so a compressed archive or standard
//! input is read once, front to back, and its members handed over as they come: bodies
//! flow through bounded channels, so memory does not grow with the archive. An
//! uncompressed tar file is indexed first (headers only, seeking past bodies), which lets
//! the importer read just the blobs it needs, in the order it wants.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::archive::compression;
use crate::archive::paths::{self, Member};
use crate::oci::{Compression, MAX_JSON, blob_path};
use crate::plan::import::mem::MemArchive;

mod random;
mod stream;

pub(crate) use random::*;
pub(crate) use stream::*;

/// Bytes per chunk handed from the reading thread to the writer.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks in flight per member body.
pub(super) const BODY_QUEUE: usize = 8;
/// How many bytes of a member are kept to recognise its format.
pub(crate) const HEAD_LEN: usize = 16;
/// Members up to this size are read whole (indexes, manifests, configs, empty layers),
/// by import and by inspect alike.
pub(crate) const SMALL_BLOB: u64 = 1 << 20;

/// One member of a streamed archive.
pub(crate) enum Event {
    /// A regular file; its body follows on `body`. Dropping `body` skips the rest.
    File {
        path: String,
        size: u64,
        body: mpsc::Receiver<io::Result<Bytes>>,
    },
    /// A symbolic or hard link to another member (normalised path).
    Link { path: String, target: String },
}

impl Event {
    /// The member's path, refused when `seen` holds it already: a path given twice is
    /// ambiguous (which body counts is up to the reader).
    pub(crate) fn check_once(&self, seen: &mut std::collections::HashSet<String>) -> Result<()> {
        let (Event::Link { path, .. } | Event::File { path, .. }) = self;
        if !seen.insert(path.clone()) {
            bail!("{path}: the archive holds this path twice");
        }
        Ok(())
    }
}

/// Counts bytes read from the raw input, for progress.
pub(crate) struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where one archive's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Stdin,
    File(PathBuf),
    /// An OCI layout or extracted `docker save` directory.
    Dir(PathBuf),
}

impl Input {
    pub(crate) fn display(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) | Input::Dir(p) => p.display().to_string(),
        }
    }
}

/// Whether a directory is itself an image layout rather than a directory of archives.
pub(crate) fn is_layout_dir(dir: &Path) -> bool {
    dir.join("index.json").is_file()
        || dir.join("manifest.json").is_file()
        || dir.join("oci-layout").is_file()
}

/// Whether a directory is containers/image's `dir:` layout (`podman save --format
/// docker-dir`, `skopeo copy … dir:`): one image manifest and its blobs named by bare hex
/// digests, with a `version` file that says so.
pub(crate) fn is_containers_dir(dir: &Path) -> bool {
    std::fs::read(dir.join("version")).is_ok_and(|v| v.starts_with(b"Directory Transport Version"))
}

/// Refuses a containers/image `dir:` layout ([`is_containers_dir`]), saying how to make
/// an archive of it.
pub(crate) fn refuse_containers_dir(dir: &Path) -> Result<()> {
    if is_containers_dir(dir) {
        bail!(
            "a containers/image `dir:` layout (podman save --format docker-dir, skopeo copy dir:), \
             not an image archive; write an OCI layout instead, e.g. \
             `skopeo copy dir:{} oci-archive:FILE.tar:NAME` or `podman save --format oci-archive`",
            dir.display()
        );
    }
    Ok(())
}
