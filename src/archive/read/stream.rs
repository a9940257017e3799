//! The streaming pass: a tar (any compression) read once, front to back, in a blocking
//! thread, its members handed over as they come.

use super::*;

/// Reads up to `n` bytes, fewer only at the end of the input.
pub(super) fn read_head(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// The decompressed tar stream of a file or stdin, checked to start like a tar.
pub(super) fn open_tar(
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
pub(super) fn is_file(kind: tar::EntryType) -> Option<bool> {
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            Some(true)
        }
        tar::EntryType::Symlink | tar::EntryType::Link => Some(false),
        _ => None,
    }
}

pub(super) fn pump_tar(
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
pub(super) struct Stoppable<R> {
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

pub(super) fn documents_of(
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
pub(super) fn drain_to_end(mut rest: impl Read, compression: Compression) -> Result<()> {
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
pub(super) fn refuse_pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str) -> Result<()> {
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
pub(super) fn send_body(
    r: &mut impl Read,
    size: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<()> {
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
