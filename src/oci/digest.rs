//! Content digests and where a blob lives in an OCI layout. crimg handles sha256 only.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A string that is not a `sha256:<64 lowercase hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sha256 digest (sha256:<64 lowercase hex>)")]
pub(crate) struct BadDigest(pub String);

/// A `sha256:<64 lowercase hex>` digest, checked when made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Digest(String);

impl Digest {
    pub(crate) fn parse(s: &str) -> Result<Digest, BadDigest> {
        if is_digest(s) {
            Ok(Digest(s.to_string()))
        } else {
            Err(BadDigest(s.to_string()))
        }
    }

    /// The 64 hex digits.
    pub(crate) fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `blobs/sha256/<hex>`: the blob's path in an OCI layout.
    pub(crate) fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 64 lowercase hex digits.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A `sha256:<64 lowercase hex>` digest.
pub(crate) fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(is_sha256_hex)
}

/// `blobs/sha256/<hex>` for a digest, refusing anything else (a digest comes from
/// manifests, which must not choose paths).
pub(crate) fn blob_path(digest: &str) -> Result<String, BadDigest> {
    Digest::parse(digest).map(|d| d.blob_path())
}

/// `sha256:<hex>` of a finished hasher.
pub(crate) fn sha256_digest(hasher: Sha256) -> String {
    let out = hasher.finalize();
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in out {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths() {
        let hex = "a".repeat(64);
        assert_eq!(
            blob_path(&format!("sha256:{hex}")).unwrap(),
            format!("blobs/sha256/{hex}")
        );
        for bad in [
            "sha256:../../etc/passwd".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha512:{}", "a".repeat(128)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}/", "a".repeat(64)),
            "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF".to_string(),
            "sha/256:0123456789abcdef0123456789abcdef".to_string(),
            ":0123456789abcdef0123456789abcdef".to_string(),
            "nocolon".to_string(),
            "sha256:".to_string(),
            format!(":{hex}"),
        ] {
            assert_eq!(blob_path(&bad), Err(BadDigest(bad.clone())), "{bad}");
        }
    }
}
