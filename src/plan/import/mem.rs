//! What a streaming pass kept of an archive in memory ([`MemArchive`]), a [`Source`]
//! import plans from; the fuzz targets and the planners' tests use it too.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::{MemberInfo, Source};
use crate::oci::sha256_digest;

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
