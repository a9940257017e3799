//! Random access to uncompressed tars and layout directories: indexed first (headers
//! only), then read in the order the importer wants.

use super::*;

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

pub(super) fn walk(root: &Path, dir: &Path, ra: &mut RandomAccess) -> Result<()> {
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
pub(super) fn inner_link(root: &Path, link: &Path) -> Option<(String, String)> {
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
