//! Planning's views of an archive (streamed, or read at will: [`TarSource`]) and the
//! helpers that read member bodies. The fuzz targets use [`TarSource`] too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::archive::paths::{self, Member};
use crate::archive::read::{Extent, HEAD_LEN, RandomAccess};
use crate::oci::sha256_digest;
use crate::oci::{MAX_JSON, blob_path};
use crate::plan::import::mem::MemArchive;
use crate::plan::import::{MemberInfo, Source};
use crate::runtime::containerd::Containerd;

/// What a streaming pass learnt.
#[derive(Default)]
pub(super) struct Streamed {
    /// Members stored in the content store, small blobs and small files kept in memory.
    pub(super) mem: MemArchive,
    pub(super) small_total: u64,
    /// index.json and manifest.json.
    pub(super) meta: HashMap<String, Bytes>,
    /// Digests now in the content store under the lease.
    pub(super) stored: HashSet<String>,
}

impl Streamed {
    /// Notes a member whose body is now in the content store as blob `digest`.
    pub(super) fn stored_member(&mut self, path: &str, digest: String, size: u64, head: Vec<u8>) {
        self.stored.insert(digest.clone());
        let size = size as i64;
        self.mem
            .members
            .insert(path.to_string(), MemberInfo { digest, size, head });
    }
}

/// Reads a whole member body.
pub(super) async fn collect(
    mut body: mpsc::Receiver<std::io::Result<Bytes>>,
    size: u64,
) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(size as usize);
    while let Some(chunk) = body.recv().await {
        buf.extend_from_slice(&chunk?);
    }
    if buf.len() as u64 != size {
        bail!("archive ends early (truncated?)");
    }
    Ok(Bytes::from(buf))
}

/// The first bytes of a body whose rest is skipped.
pub(super) async fn first_bytes(
    mut body: mpsc::Receiver<std::io::Result<Bytes>>,
) -> Result<Vec<u8>> {
    match body.recv().await {
        Some(chunk) => Ok(chunk?[..].iter().take(HEAD_LEN).copied().collect()),
        None => Ok(vec![]),
    }
}

/// The first bytes of a body, and a reader over all of it.
pub(super) async fn with_head(
    mut body: mpsc::Receiver<std::io::Result<Bytes>>,
) -> Result<(Vec<u8>, impl tokio::io::AsyncRead + Unpin + use<>)> {
    let first = body.recv().await;
    let head = match &first {
        Some(Ok(b)) => b[..b.len().min(HEAD_LEN)].to_vec(),
        Some(Err(e)) => bail!("{e}"),
        None => vec![],
    };
    let rest = tokio_stream::wrappers::ReceiverStream::new(body);
    let stream = futures::StreamExt::chain(futures::stream::iter(first), rest);
    Ok((head, tokio_util::io::StreamReader::new(stream)))
}

/// Planning's view of a streamed archive: what was stored, read back when not in memory.
pub(super) struct StreamSource<'a> {
    pub(super) st: &'a Streamed,
    pub(super) c: &'a Containerd,
}

impl Source for StreamSource<'_> {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        if let Some(b) = self.st.mem.small.get(digest) {
            return Ok(b.clone());
        }
        if !self.st.stored.contains(digest) && self.c.content_info(digest).await?.is_none() {
            bail!("blob {digest} is missing from the archive");
        }
        read_back(self.c, digest).await
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.st.mem.member(path)
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        let m = self
            .member(path)
            .ok_or_else(|| anyhow!("{path} is missing from the archive"))?;
        self.blob(&m.digest).await
    }
}

/// Reads a (small) blob back from the content store and checks it.
async fn read_back(c: &Containerd, digest: &str) -> Result<Bytes> {
    use futures::StreamExt;
    let mut stream = Box::pin(c.read_blob(digest).await?);
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() as u64 > MAX_JSON {
            bail!("blob {digest} is too large for a JSON document");
        }
    }
    let actual = sha256_digest(sha2::Sha256::new_with_prefix(&buf));
    if actual != digest {
        bail!("blob {digest} in the content store has digest {actual}");
    }
    Ok(Bytes::from(buf))
}

/// Planning's view of a seekable archive: small blobs read and verified on demand, and
/// kept, so they are written from memory later.
pub(crate) struct TarSource {
    ra: Arc<RandomAccess>,
    cache: Mutex<HashMap<String, Bytes>>,
}

impl TarSource {
    pub(crate) fn new(ra: Arc<RandomAccess>) -> TarSource {
        TarSource {
            ra,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The verified blobs read while planning, by digest.
    pub(crate) fn into_cache(self) -> HashMap<String, Bytes> {
        self.cache.into_inner().unwrap_or_default()
    }
}

impl Source for TarSource {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        if let Some(b) = self.cache.lock().ok().and_then(|c| c.get(digest).cloned()) {
            return Ok(b);
        }
        let path = blob_path(digest)?;
        let bytes = self.ra.read(&path).await?;
        let actual = sha256_digest(Sha256::new_with_prefix(&bytes));
        if actual != digest {
            bail!("{path}: content has digest {actual} (corrupt archive?)");
        }
        if let Ok(mut c) = self.cache.lock() {
            c.insert(digest.to_string(), bytes.clone());
        }
        Ok(bytes)
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        let (digest, size) = self.ra.blob_member(path)?;
        Some(MemberInfo {
            digest,
            size,
            head: vec![],
        })
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.ra.read(path).await
    }
}

/// Planning's view of a seekable `docker save` archive: the members manifest.json names
/// are known by the digest of their bytes (hashed here first: their paths do not say
/// it); everything else is read on demand.
pub(super) struct HashedSource {
    pub(super) tar: TarSource,
    /// By the path manifest.json gives (links followed): digest, size and first bytes.
    pub(super) members: HashMap<String, MemberInfo>,
}

impl Source for HashedSource {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        self.tar.blob(digest).await
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.members
            .get(path)
            .cloned()
            .or_else(|| self.tar.member(path))
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.tar.small_file(path).await
    }
}

/// Hashes the named members of a seekable archive, `parallel` at a time: by path, each
/// member's digest, size and first bytes, and by digest where its bytes are.
pub(super) async fn hash_members(
    ra: &std::sync::Arc<RandomAccess>,
    paths: HashSet<String>,
    parallel: usize,
) -> Result<(HashMap<String, MemberInfo>, HashMap<String, Extent>)> {
    use futures::{StreamExt as _, TryStreamExt as _};
    let work = paths.into_iter().filter_map(|p| {
        let target = ra.resolve_path(&p)?.to_string();
        let ext = ra.resolve(&p)?.clone();
        Some(async move {
            let e2 = ext.clone();
            let (digest, head) = tokio::task::spawn_blocking(move || hash_extent(&e2))
                .await
                .map_err(|e| anyhow!("hashing task: {e}"))?
                .map_err(|e| e.context(p.clone()))?;
            if let Ok(Member::Blob(named)) = paths::classify(&target)
                && named != digest
            {
                bail!(
                    "{target}: content has digest {digest}, not the {named} its name says (corrupt archive?)"
                );
            }
            let info = MemberInfo {
                digest,
                size: ext.size as i64,
                head,
            };
            Ok::<_, anyhow::Error>((p, info, ext))
        })
    });
    let mut members = HashMap::new();
    let mut extents = HashMap::new();
    let mut hashed = futures::stream::iter(work).buffer_unordered(parallel.max(1));
    while let Some((path, info, ext)) = hashed.try_next().await? {
        extents.insert(info.digest.clone(), ext);
        members.insert(path, info);
    }
    Ok((members, extents))
}

/// The sha256 digest and first bytes of one member.
fn hash_extent(ext: &Extent) -> Result<(String, Vec<u8>)> {
    use std::io::{Read as _, Seek as _};
    let mut f = std::fs::File::open(&ext.file)
        .map_err(|e| anyhow!("opening {}: {e}", ext.file.display()))?;
    f.seek(std::io::SeekFrom::Start(ext.offset))?;
    let mut body = f.take(ext.size);
    let mut hash = sha2::Sha256::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < HEAD_LEN {
            let take = (HEAD_LEN - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    if total != ext.size {
        bail!(
            "{} bytes where the archive says {} (truncated?)",
            total,
            ext.size
        );
    }
    Ok((sha256_digest(hash), head))
}
