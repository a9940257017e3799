//! Writing the archive: each blob streamed from containerd to a writer thread that
//! hashes, compresses and writes the tar, into a file replaced atomically or to stdout.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use indicatif::ProgressBar;
use sha2::{Digest as _, Sha256};

use crate::archive::output::{self, Existing};
use crate::archive::sink::{AtomicFile, TargetAppeared};
use crate::archive::write::{Compressor, Counting, TarWriter};
use crate::error::CrimgError;
use crate::error::WritingArchive;
use crate::model::Descriptor;
use crate::oci::sha256_digest;
use crate::oci::{Compression, blob_path};
use crate::runtime::containerd::Containerd;

/// Messages to the writer thread, which owns the tar stream.
enum Msg {
    Dir(&'static str),
    File(String, Vec<u8>),
    /// Starts a blob entry: path, size, digest to verify.
    Begin(String, u64, String),
    Data(bytes::Bytes),
    End,
    Finish,
}

/// Chunks in flight between the reader and the writer thread (containerd sends chunks
/// of up to 1 MiB, so this bounds memory to a few MiB whatever the image size).
const QUEUE: usize = 8;

/// Writes the archive into a temp file beside `path`, syncs it and renames it into place.
pub(super) async fn write_file(
    c: &Containerd,
    path: &Path,
    force: bool,
    compression: Compression,
    files: &[(String, Vec<u8>)],
    blobs: &[Descriptor],
    bar: &ProgressBar,
) -> Result<u64> {
    let sink = AtomicFile::create(path, ".crimg-export-", 0o666)?;
    let out = sink
        .file()
        .try_clone()
        .with_context(|| format!("opening {}", sink.temp_path().display()))?;
    let (file, bytes) = write_archive(c, out, compression, files, blobs, bar)
        .await
        .context(WritingArchive(path.display().to_string()))?;
    drop(file);
    // Looked at again just before the rename: a device made meanwhile is not replaced either.
    if let Existing::Special(kind) = output::existing(path)? {
        return Err(super::targets::refuse_special(path, kind).into());
    }
    sink.commit(force).map_err(|e| {
        if e.is::<TargetAppeared>() {
            anyhow::Error::new(CrimgError::Usage(format!(
                "{} appeared while exporting; not replaced (pass --force to replace it)",
                path.display()
            )))
        } else {
            e
        }
    })?;
    Ok(bytes)
}

/// Streams the archive into `out` through the writer thread; returns `out` and the
/// number of bytes written to it.
pub(super) async fn write_archive<W: Write + Send + 'static>(
    c: &Containerd,
    out: W,
    compression: Compression,
    files: &[(String, Vec<u8>)],
    blobs: &[Descriptor],
    bar: &ProgressBar,
) -> Result<(W, u64)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(QUEUE);
    let writer = std::thread::Builder::new()
        .name("crimg-archive-writer".into())
        .spawn(move || write_thread(out, compression, rx))
        .context("starting the archive writer thread")?;

    let feed = async {
        for (path, data) in files {
            send(&tx, Msg::File(path.clone(), data.clone())).await?;
        }
        send(&tx, Msg::Dir("blobs/")).await?;
        send(&tx, Msg::Dir("blobs/sha256/")).await?;
        for b in blobs {
            let path = blob_path(&b.digest)?;
            if b.size < 0 {
                bail!("blob {} has a negative size", b.digest);
            }
            let mut stream = Box::pin(c.read_blob(&b.digest).await?);
            send(&tx, Msg::Begin(path, b.size as u64, b.digest.clone())).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                bar.inc(chunk.len() as u64);
                send(&tx, Msg::Data(chunk)).await?;
            }
            send(&tx, Msg::End).await?;
        }
        send(&tx, Msg::Finish).await
    };
    let fed: Result<()> = feed.await;
    drop(tx);
    let written = writer
        .join()
        .map_err(|_| anyhow!("the archive writer thread panicked"))?;
    match (fed, written) {
        (Ok(()), Ok(r)) => Ok(r),
        // A lost containerd explains the writer's "export aborted" (and exits 3).
        (Err(e), Err(_)) if crate::error::ConnectionLost::of(&e).is_some() => Err(e),
        // The writer's own error (disk full, a short blob) explains a closed channel.
        (Err(_), Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
        (Ok(()), Err(e)) => Err(e),
    }
}

async fn send(tx: &tokio::sync::mpsc::Sender<Msg>, msg: Msg) -> Result<()> {
    tx.send(msg)
        .await
        .map_err(|_| anyhow!("the archive writer stopped"))
}

/// A blob that could not go into the archive: the output failed (a full disk), or the
/// content store sent other than the blob's declared size.
fn blob_error(digest: &str, e: anyhow::Error) -> anyhow::Error {
    if e.chain().any(|c| c.is::<std::io::Error>()) {
        e.context(format!("blob {digest}"))
    } else {
        anyhow!("blob {digest}: the content store sent {e:#}")
    }
}

fn write_thread<W: Write>(
    out: W,
    compression: Compression,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
) -> Result<(W, u64)> {
    let counting = Counting::new(std::io::BufWriter::with_capacity(1 << 20, out));
    let mut tar = TarWriter::new(Compressor::new(counting, compression)?);
    let mut current: Option<(String, Sha256)> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Dir(p) => tar.add_dir(p)?,
            Msg::File(p, data) => tar.add_file(&p, &data)?,
            Msg::Begin(path, size, digest) => {
                tar.begin_file(&path, size)?;
                current = Some((digest, Sha256::new()));
            }
            Msg::Data(b) => {
                if let Some((_, h)) = &mut current {
                    h.update(&b);
                }
                tar.write_data(&b).map_err(|e| {
                    blob_error(current.as_ref().map_or("?", |(d, _)| d.as_str()), e)
                })?;
            }
            Msg::End => {
                let (digest, h) = current
                    .take()
                    .ok_or_else(|| anyhow!("archive writer: blob end without a start"))?;
                tar.end_file().map_err(|e| blob_error(&digest, e))?;
                let actual = sha256_digest(h);
                if actual != digest {
                    bail!(
                        "blob {digest} in the content store has digest {actual}: the store is damaged; \
                         nothing was written"
                    );
                }
            }
            Msg::Finish => {
                let counting = tar.finish()?.finish()?;
                let count = counting.count;
                let mut out = counting
                    .into_inner()
                    .into_inner()
                    .map_err(|e| anyhow::Error::new(e.into_error()))?;
                out.flush()?;
                return Ok((out, count));
            }
        }
    }
    bail!("export aborted")
}
