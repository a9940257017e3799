//! Planning's views of an archive (streamed, or read at will) and the helpers that
//! read member bodies.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use sha2::Digest as _;
use tokio::sync::mpsc;

use crate::archive::layout::{MAX_JSON, MemberInfo, Source};
use crate::archive::paths;
use crate::archive::read::{HEAD_LEN, RandomAccess};
use crate::runtime::containerd::Containerd;
use crate::runtime::content::sha256_digest;

/// What a streaming pass learnt.
#[derive(Default)]
pub(super) struct Streamed {
    /// Members stored in the content store, by path.
    pub(super) members: HashMap<String, MemberInfo>,
    pub(super) links: HashMap<String, String>,
    /// Small verified blobs kept in memory.
    pub(super) small: HashMap<String, Bytes>,
    pub(super) small_total: u64,
    /// Small non-blob JSON members (docker's `<id>.json` configs), by path.
    pub(super) small_files: HashMap<String, Bytes>,
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
        self.members
            .insert(path.to_string(), MemberInfo { digest, size, head });
    }
}

impl Streamed {
    fn resolve(&self, path: &str) -> String {
        let mut p = path.to_string();
        for _ in 0..16 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
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
        if let Some(b) = self.st.small.get(digest) {
            return Ok(b.clone());
        }
        if !self.st.stored.contains(digest) && self.c.content_info(digest).await?.is_none() {
            bail!("blob {digest} is missing from the archive");
        }
        read_back(self.c, digest).await
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.st.members.get(&self.st.resolve(path)).cloned()
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.st
            .small_files
            .get(&self.st.resolve(path))
            .cloned()
            .ok_or_else(|| anyhow!("{path} is missing from the archive"))
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
pub(super) struct RandomSource {
    pub(super) ra: Arc<RandomAccess>,
    pub(super) cache: std::sync::Mutex<HashMap<String, Bytes>>,
}

impl Source for RandomSource {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        if let Some(b) = self.cache.lock().ok().and_then(|c| c.get(digest).cloned()) {
            return Ok(b);
        }
        let path = paths::blob_path(digest);
        let bytes = self.ra.read(&path).await?;
        let actual = sha256_digest(sha2::Sha256::new_with_prefix(&bytes));
        if actual != digest {
            bail!("{path}: content has digest {actual} (corrupt archive?)");
        }
        if let Ok(mut c) = self.cache.lock() {
            c.insert(digest.to_string(), bytes.clone());
        }
        Ok(bytes)
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.ra.blob_member(path)
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.ra.read(path).await
    }
}
