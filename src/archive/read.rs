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

/// Bytes per chunk handed from the reading thread to the writer.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks in flight per member body.
const BODY_QUEUE: usize = 8;
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

/// Reads up to `n` bytes, fewer only at the end of the input.
fn read_head(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// The decompressed tar stream of a file or stdin, checked to start like a tar.
fn open_tar(
    raw: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
) -> Result<(Compression, Box<dyn Read + Send>)> {
    let mut raw = BufReader::with_capacity(CHUNK, Counting { inner: raw, count });
    let head =
        read_head(&mut raw, crate::oci::compression::MAGIC_LEN).context("reading the archive")?;
    if head.is_empty() {
        bail!("the archive is empty");
    }
    let c = crate::oci::compression::detect(&head)?;
    let raw = BufReader::with_capacity(CHUNK, Read::chain(io::Cursor::new(head), raw));
    let mut tar = compression::decoder(c, raw)
        .with_context(|| format!("starting {} decompression", c.name()))?;
    let block = read_head(&mut tar, 512).with_context(|| {
        format!(
            "reading the {} stream",
            if c == Compression::None {
                "archive"
            } else {
                c.name()
            }
        )
    })?;
    if !compression::is_tar_header(&block) {
        let what = if c == Compression::None {
            "not a tar archive, an OCI layout or a docker save archive (unknown format)".to_string()
        } else {
            format!(
                "{}-compressed, but what it holds is not a tar archive",
                c.name()
            )
        };
        bail!(what);
    }
    Ok((c, Box::new(Read::chain(io::Cursor::new(block), tar))))
}

/// Starts the streaming pass over a tar (file or stdin, any compression) in a blocking
/// thread. Members arrive on the returned channel; an error ends it.
pub(crate) fn stream_tar(
    input: &Input,
    count: Arc<AtomicU64>,
) -> Result<(Compression, mpsc::Receiver<Result<Event>>)> {
    let raw: Box<dyn Read + Send> = match input {
        Input::Stdin => Box::new(io::stdin()),
        Input::File(p) => Box::new(File::open(p).context("opening")?),
        Input::Dir(_) => bail!("a directory is not a tar"),
    };
    stream_reader(raw, count)
}

/// [`stream_tar`] over any reader: recognises the compression, checks for a tar and
/// starts the pass.
pub(crate) fn stream_reader(
    raw: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
) -> Result<(Compression, mpsc::Receiver<Result<Event>>)> {
    let (c, tar) = open_tar(raw, count)?;
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        if let Err(e) = pump_tar(tar, c, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok((c, rx))
}

/// What a tar member is to a pass over the archive: `Some(true)` a file (a GNU sparse
/// member's holes are filled in by the tar reader), `Some(false)` a link, `None` anything
/// else (directories, devices), which is passed over.
fn is_file(kind: tar::EntryType) -> Option<bool> {
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            Some(true)
        }
        tar::EntryType::Symlink | tar::EntryType::Link => Some(false),
        _ => None,
    }
}

fn pump_tar(
    tar: Box<dyn Read + Send>,
    compression: Compression,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<()> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().context("reading the tar")?;
    for entry in entries {
        let mut entry = entry.context("reading the tar (truncated or corrupt?)")?;
        let path = paths::normalize(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        refuse_pax_sparse(&mut entry, &path)?;
        match is_file(kind) {
            Some(true) => {
                let size = entry.size();
                let (btx, brx) = mpsc::channel(BODY_QUEUE);
                if tx
                    .blocking_send(Ok(Event::File {
                        path: path.clone(),
                        size,
                        body: brx,
                    }))
                    .is_err()
                {
                    return Ok(());
                }
                send_body(&mut entry, size, &btx)
                    .with_context(|| format!("{path}: archive ends early or is corrupt"))?;
            }
            Some(false) => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("{path}: link without a target"))?;
                let target = paths::link_target(&path, &target, kind == tar::EntryType::Symlink)?;
                if tx.blocking_send(Ok(Event::Link { path, target })).is_err() {
                    return Ok(());
                }
            }
            None => {}
        }
    }
    drain_to_end(archive.into_inner(), compression)
}

/// A reader that fails once `stop` is set, so a pass skipping a large body ends at once.
struct Stoppable<R> {
    inner: R,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopped"));
        }
        self.inner.read(buf)
    }
}

/// JSON documents (a config, a manifest) of at most this size are kept by
/// [`read_documents`] and looked at by an import's streamed pass...
pub(crate) const DOCUMENT_MAX: u64 = 512 << 10;
/// ...and at most this much of them in all.
pub(crate) const DOCUMENTS_TOTAL: u64 = 16 << 20;

/// Reads a zstd- or lz4-compressed archive file once, front to back, keeping only its
/// JSON documents and links, as a streaming pass keeps small members ([`MemArchive`]): a
/// `docker save` archive's manifest.json comes
/// last, and this is how an import learns its images while the main pass is still storing
/// their layers. `None` for any other compression (gzip and bzip2 decompress too slowly to
/// read twice; a plain tar is read at will anyway), or once `stop` is set.
pub(crate) fn read_documents(
    path: &Path,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<MemArchive>> {
    match documents_of(path, stop) {
        // Stopped mid-read: not an error of the archive's.
        Err(_) if stop.load(Ordering::Relaxed) => Ok(None),
        r => r,
    }
}

fn documents_of(
    path: &Path,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<MemArchive>> {
    let file = Stoppable {
        inner: File::open(path).context("opening")?,
        stop: stop.clone(),
    };
    let (c, tar) = open_tar(Box::new(file), Arc::new(AtomicU64::new(0)))?;
    if !matches!(c, Compression::Zstd | Compression::Lz4) {
        return Ok(None);
    }
    let mut docs = MemArchive::default();
    let mut total = 0;
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().context("reading the tar")? {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut entry = entry.context("reading the tar (truncated or corrupt?)")?;
        let path = paths::normalize(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        match is_file(kind) {
            Some(true) => {
                let size = entry.size();
                // manifest.json always (it says everything, and comes last); other
                // JSON documents (configs) while the budget lasts; never a layer.
                let manifest = path == "manifest.json" && size <= MAX_JSON;
                if manifest || (size <= DOCUMENT_MAX && total + size <= DOCUMENTS_TOTAL) {
                    let mut body = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut body).context("reading the tar")?;
                    if manifest || body.first() == Some(&b'{') {
                        total += size;
                        docs.add_member(&path, body.into(), HEAD_LEN);
                    }
                }
            }
            Some(false) => {
                if let Some(target) = entry.link_name_bytes() {
                    let symbolic = kind == tar::EntryType::Symlink;
                    if let Ok(t) = paths::link_target(&path, &target, symbolic) {
                        docs.links.insert(path, t);
                    }
                }
            }
            None => {}
        }
    }
    Ok(Some(docs))
}

/// Reads what follows the tar's end to the end of the stream, so that the compression's
/// own checks run: a gzip stream cut before its trailer (CRC and length) is refused like
/// a truncated zstd, bzip2 or lz4 one, not taken for whole because the tar ended first.
fn drain_to_end(mut rest: impl Read, compression: Compression) -> Result<()> {
    io::copy(&mut rest, &mut io::sink()).with_context(|| {
        if compression == Compression::None {
            "reading the archive after its last member".to_string()
        } else {
            format!(
                "the {} stream is truncated or corrupt after the tar's last member",
                compression.name()
            )
        }
    })?;
    Ok(())
}

/// PAX sparse members (`tar --sparse --format=pax`) keep their map of holes in `GNU.sparse.*`
/// records that the tar reader does not apply: read as they are, their bytes would be
/// wrong. They are refused by name. (GNU sparse members, the `tar --sparse` default, are
/// read.)
fn refuse_pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str) -> Result<()> {
    let Some(extensions) = entry
        .pax_extensions()
        .with_context(|| format!("{path}: reading its PAX header"))?
    else {
        return Ok(());
    };
    let mut sparse = false;
    let mut name = None;
    for ext in extensions {
        let ext = ext.with_context(|| format!("{path}: reading its PAX header"))?;
        if ext.key_bytes().starts_with(b"GNU.sparse.") {
            sparse = true;
            if ext.key_bytes() == b"GNU.sparse.name" {
                name = Some(String::from_utf8_lossy(ext.value_bytes()).into_owned());
            }
        }
    }
    if sparse {
        bail!(
            "{}: a PAX sparse member (tar --sparse --format=pax) is not supported; write the \
             archive without --sparse, or in GNU format",
            name.as_deref().unwrap_or(path)
        );
    }
    Ok(())
}

/// Sends a member's body in chunks. A reader that went away skips the rest; a read error
/// is sent to the reader too, so a writer in progress fails rather than commits.
fn send_body(r: &mut impl Read, size: u64, tx: &mpsc::Sender<io::Result<Bytes>>) -> Result<()> {
    let mut left = size;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match r.read(&mut buf[filled..]) {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the archive ends inside this member (truncated?)",
                    );
                    let msg = e.to_string();
                    let _ = tx.blocking_send(Err(e));
                    bail!(msg);
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let msg = e.to_string();
                    let _ = tx.blocking_send(Err(io::Error::new(e.kind(), msg.clone())));
                    bail!(msg);
                }
            }
        }
        left -= want as u64;
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// A member of a seekable source: which file, where its bytes start, how many.
#[derive(Debug, Clone)]
pub(crate) struct Extent {
    pub(crate) file: PathBuf,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// An uncompressed tar file or a layout directory, where any member can be read at will.
#[derive(Debug, Default)]
pub(crate) struct RandomAccess {
    pub(crate) members: HashMap<String, Extent>,
    pub(crate) links: HashMap<String, String>,
    /// index.json and manifest.json, read whole.
    pub(crate) meta: HashMap<String, Bytes>,
}

impl RandomAccess {
    /// The member a path names, links followed (a bounded number of hops).
    pub(crate) fn resolve_path(&self, path: &str) -> Option<&str> {
        let mut p = path;
        for _ in 0..16 {
            if let Some((k, _)) = self.members.get_key_value(p) {
                return Some(k);
            }
            p = self.links.get(p)?;
        }
        None
    }

    /// Follows links (a bounded number of hops).
    pub(crate) fn resolve(&self, path: &str) -> Option<&Extent> {
        self.members.get(self.resolve_path(path)?)
    }

    pub(crate) fn blob(&self, digest: &str) -> Option<&Extent> {
        self.resolve(&blob_path(digest).ok()?)
    }

    /// What planning needs to know of a member: a blob's digest and size, or `None` when
    /// the path (or the member a link at it points to) is not a blob or not in the archive.
    pub(crate) fn blob_member(&self, path: &str) -> Option<(String, i64)> {
        let target = self.resolve_path(path)?;
        match paths::classify(target) {
            Ok(Member::Blob(d)) => Some((d, self.members.get(target)?.size as i64)),
            _ => None,
        }
    }

    /// Opens a member for reading.
    pub(crate) async fn open(&self, ext: &Extent) -> Result<impl AsyncRead + Unpin + use<>> {
        let mut f = tokio::fs::File::open(&ext.file)
            .await
            .with_context(|| format!("opening {}", ext.file.display()))?;
        f.seek(SeekFrom::Start(ext.offset)).await?;
        Ok(f.take(ext.size))
    }

    /// Reads a small member whole.
    pub(crate) async fn read(&self, path: &str) -> Result<Bytes> {
        let ext = self
            .resolve(path)
            .ok_or_else(|| anyhow!("{path} is missing from the archive"))?;
        if ext.size > MAX_JSON {
            bail!(
                "{path} is {} bytes, too large for a JSON document",
                ext.size
            );
        }
        let mut buf = Vec::with_capacity(ext.size as usize);
        self.open(ext).await?.read_to_end(&mut buf).await?;
        if buf.len() as u64 != ext.size {
            bail!("{path}: archive ends early (truncated?)");
        }
        Ok(Bytes::from(buf))
    }
}

/// Indexes an uncompressed tar file: reads headers, seeks past bodies, reads index.json
/// and manifest.json. `None` when the file is compressed (it must be streamed).
pub(crate) fn index_tar_file(path: &Path) -> Result<Option<RandomAccess>> {
    index_tar(File::open(path).context("opening")?, path)
}

/// [`index_tar_file`] over any seekable reader; the extents name `file`.
pub(crate) fn index_tar<R: Read + Seek>(mut f: R, file: &Path) -> Result<Option<RandomAccess>> {
    let head = read_head(&mut f, 512).context("reading")?;
    if head.is_empty() {
        bail!("the archive is empty");
    }
    if crate::oci::compression::detect(&head)? != Compression::None {
        return Ok(None);
    }
    if !compression::is_tar_header(&head) {
        bail!("not a tar archive, an OCI layout or a docker save archive (unknown format)");
    }
    let len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    let mut archive = tar::Archive::new(BufReader::new(f));
    let mut ra = RandomAccess::default();
    for entry in archive.entries_with_seek().context("reading the tar")? {
        let mut entry = entry.context("reading the tar (truncated or corrupt?)")?;
        let p = paths::normalize(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        refuse_pax_sparse(&mut entry, &p)?;
        // A GNU sparse member has no one extent to read at will: the streaming pass
        // expands it.
        if kind.is_gnu_sparse() {
            return Ok(None);
        }
        // A path given twice is ambiguous: which body counts is up to the reader.
        if ra.members.contains_key(&p) || ra.links.contains_key(&p) {
            bail!("{p}: the archive holds this path twice");
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let offset = entry.raw_file_position();
                let size = entry.size();
                if offset + size > len {
                    bail!("{p}: archive ends early (truncated?)");
                }
                let member = paths::classify(&p)?;
                if matches!(member, Member::Index | Member::DockerManifest) {
                    if size > MAX_JSON {
                        bail!("{p} is {size} bytes, too large for a JSON document");
                    }
                    let mut buf = Vec::with_capacity(size as usize);
                    entry
                        .read_to_end(&mut buf)
                        .with_context(|| format!("reading {p}"))?;
                    ra.meta.insert(p.clone(), Bytes::from(buf));
                }
                ra.members.insert(
                    p,
                    Extent {
                        file: file.to_path_buf(),
                        offset,
                        size,
                    },
                );
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| anyhow!("{p}: link without a target"))?;
                let target = paths::link_target(&p, &target, kind == tar::EntryType::Symlink)?;
                ra.links.insert(p, target);
            }
            _ => {}
        }
    }
    Ok(Some(ra))
}

/// An OCI layout directory: blobs are read in place.
pub(crate) fn index_dir(dir: &Path) -> Result<RandomAccess> {
    let mut ra = RandomAccess::default();
    for name in ["index.json", "manifest.json"] {
        let p = dir.join(name);
        if p.is_file() {
            let bytes = std::fs::read(&p).with_context(|| format!("reading {name}"))?;
            ra.meta.insert(name.to_string(), Bytes::from(bytes));
        }
    }
    walk(dir, dir, &mut ra)?;
    Ok(ra)
}

fn walk(root: &Path, dir: &Path, ra: &mut RandomAccess) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let ty = e.file_type()?;
        let path = e.path();
        if ty.is_dir() {
            walk(root, &path, ra)?;
        } else if ty.is_symlink()
            && let Some((rel, target)) = inner_link(root, &path)
        {
            // A link to another member (podman's `<id>/layer.tar -> ../<hex>.tar`) is
            // that member, read once.
            ra.links.insert(rel, target);
        } else if ty.is_file() || ty.is_symlink() {
            let meta =
                std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            if !meta.is_file() {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            ra.members.insert(
                rel,
                Extent {
                    file: path,
                    offset: 0,
                    size: meta.len(),
                },
            );
        }
    }
    Ok(())
}

/// A symbolic link to a regular file inside the layout, as member paths: link and target.
fn inner_link(root: &Path, link: &Path) -> Option<(String, String)> {
    let rel = link.strip_prefix(root).ok()?.to_str()?.to_string();
    let target = std::fs::read_link(link).ok()?;
    let target = paths::link_target(&rel, target.to_str()?.as_bytes(), true).ok()?;
    let t = std::fs::symlink_metadata(root.join(&target)).ok()?;
    (t.is_file() || t.is_symlink()).then_some((rel, target))
}

/// Streams a directory's members as if it were a tar, for extracted `docker save` layouts.
pub(crate) fn stream_dir(ra: RandomAccess) -> mpsc::Receiver<Result<Event>> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        for (path, target) in ra.links {
            if tx.blocking_send(Ok(Event::Link { path, target })).is_err() {
                return;
            }
        }
        let mut members: Vec<(String, Extent)> = ra.members.into_iter().collect();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, ext) in members {
            let (btx, brx) = mpsc::channel(BODY_QUEUE);
            if tx
                .blocking_send(Ok(Event::File {
                    path: path.clone(),
                    size: ext.size,
                    body: brx,
                }))
                .is_err()
            {
                return;
            }
            let r = File::open(&ext.file)
                .with_context(|| format!("opening {}", ext.file.display()))
                .and_then(|mut f| send_body(&mut f, ext.size, &btx));
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e.context(path)));
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with_link(link: &str, target: &str, blob: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, blob, body).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, link, target).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn blob_member_follows_links() {
        let hex = "b".repeat(64);
        let data = tar_with_link(
            "id/layer.tar",
            &format!("../blobs/sha256/{hex}"),
            &format!("blobs/sha256/{hex}"),
            b"abc",
        );
        let ra = index_tar(io::Cursor::new(data), Path::new("t.tar"))
            .unwrap()
            .unwrap();
        let m = ra
            .blob_member("id/layer.tar")
            .expect("a link to a blob is that blob");
        assert_eq!(m, (format!("sha256:{hex}"), 3));
        assert_eq!(
            ra.resolve_path("id/layer.tar"),
            Some(&*format!("blobs/sha256/{hex}"))
        );
        assert!(ra.blob_member("id/other.tar").is_none());
    }

    #[test]
    fn links_to_other_members_are_not_blobs() {
        let data = tar_with_link("id/layer.tar", "../abc.tar", "abc.tar", b"abc");
        let ra = index_tar(io::Cursor::new(data), Path::new("t.tar"))
            .unwrap()
            .unwrap();
        assert_eq!(ra.resolve_path("id/layer.tar"), Some("abc.tar"));
        assert!(ra.blob_member("id/layer.tar").is_none());
    }
}
