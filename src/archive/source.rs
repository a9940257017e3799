//! The two places planning reads an archive from, as import uses them: a seekable tar
//! read on demand ([`TarSource`]), and what a streaming pass kept in memory
//! ([`MemArchive`]). The fuzz targets and the planners' tests use these same sources.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::archive::read::RandomAccess;
use crate::oci::blob_path;
use crate::oci::sha256_digest;
use crate::plan::import::{MemberInfo, Source};

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
        self.ra.blob_member(path)
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.ra.read(path).await
    }
}

/// What a streaming pass keeps of an archive: members by path (links followed) and
/// small verified blobs by digest. Any member, whatever its path, is known by the digest
/// of its bytes: a docker archive's config or layer is whatever path manifest.json names.
#[derive(Debug, Default)]
pub(crate) struct MemArchive {
    /// Members whose bodies were stored, by path.
    pub(crate) members: HashMap<String, MemberInfo>,
    pub(crate) links: HashMap<String, String>,
    /// Small blobs by digest.
    pub(crate) small: HashMap<String, Bytes>,
}

impl MemArchive {
    /// Follows links (a bounded number of hops).
    pub(crate) fn resolve(&self, path: &str) -> String {
        let mut p = path.to_string();
        for _ in 0..16 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    }

    /// Adds a member and keeps its bytes as a small blob: what a streaming pass does
    /// with a small member.
    pub(crate) fn add_member(&mut self, path: &str, bytes: Bytes, head_len: usize) -> String {
        let digest = sha256_digest(Sha256::new_with_prefix(&bytes));
        self.members.insert(
            path.to_string(),
            MemberInfo {
                digest: digest.clone(),
                size: bytes.len() as i64,
                head: bytes[..bytes.len().min(head_len)].to_vec(),
            },
        );
        self.small.insert(digest.clone(), bytes);
        digest
    }

    /// A small member's bytes by path (links followed).
    pub(crate) fn file(&self, path: &str) -> Option<&Bytes> {
        let m = self.members.get(&self.resolve(path))?;
        self.small.get(&m.digest)
    }
}

impl Source for MemArchive {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        self.small
            .get(digest)
            .cloned()
            .ok_or_else(|| anyhow!("blob {digest} is missing from the archive"))
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.members.get(&self.resolve(path)).cloned()
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.file(path)
            .cloned()
            .ok_or_else(|| anyhow!("{path} is missing from the archive"))
    }
}
