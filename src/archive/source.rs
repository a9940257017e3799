//! Planning's view of a seekable tar, read on demand ([`TarSource`]); what a streaming
//! pass kept in memory is [`MemArchive`](crate::plan::import::mem::MemArchive). The fuzz
//! targets use these same sources.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
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
