//! Member paths of an archive: safety checks and what each member is.

use crate::oci::is_sha256_hex;

/// Why a member path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    #[error("unsafe path {0:?}: absolute")]
    Absolute(String),
    #[error("unsafe path {0:?}: contains `..`")]
    ParentDir(String),
    #[error("path {0:?} is not valid UTF-8")]
    NotUtf8(String),
    #[error("blob {0:?} uses digest algorithm {1:?}; only sha256 is supported")]
    Algorithm(String, String),
    #[error("blob path {0:?} does not end in a sha256 digest")]
    BadDigest(String),
}

/// A member path with `.` components and repeated slashes removed; never absolute, never
/// with `..`. The root itself is `""`.
pub(crate) fn normalize(raw: &[u8]) -> Result<String, PathError> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| PathError::NotUtf8(String::from_utf8_lossy(raw).into_owned()))?;
    if s.starts_with('/') || s.starts_with('\\') {
        return Err(PathError::Absolute(s.to_string()));
    }
    let mut parts = Vec::new();
    for part in s.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::ParentDir(s.to_string())),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The member a link points at, as a normalised path. A symlink's target is relative to
/// the link's directory, a hard link's to the archive root; neither may leave the archive.
pub(crate) fn link_target(link: &str, target: &[u8], symbolic: bool) -> Result<String, PathError> {
    let t = std::str::from_utf8(target)
        .map_err(|_| PathError::NotUtf8(String::from_utf8_lossy(target).into_owned()))?;
    if t.starts_with('/') {
        return Err(PathError::Absolute(format!("{link} -> {t}")));
    }
    let mut parts: Vec<&str> = Vec::new();
    if symbolic {
        parts.extend(link.split('/'));
        parts.pop();
    }
    for part in t.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::ParentDir(format!("{link} -> {t}")));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// What a member of an image archive is, by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    /// `blobs/sha256/<hex>`: content named by its digest.
    Blob(String),
    /// `index.json` of an OCI layout.
    Index,
    /// `manifest.json` of `docker save`.
    DockerManifest,
    /// `oci-layout`, `repositories`: read but not needed.
    Marker,
    /// Anything else (docker's legacy `<id>/layer.tar`, `<id>.json`, `<id>/json`, …).
    Other,
}

pub(crate) fn classify(path: &str) -> Result<Member, PathError> {
    match path {
        "index.json" => return Ok(Member::Index),
        "manifest.json" => return Ok(Member::DockerManifest),
        "oci-layout" | "repositories" => return Ok(Member::Marker),
        _ => {}
    }
    let mut parts = path.split('/');
    if let (Some("blobs"), Some(alg), Some(hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    {
        if alg != "sha256" {
            return Err(PathError::Algorithm(path.to_string(), alg.to_string()));
        }
        if !is_sha256_hex(hex) {
            return Err(PathError::BadDigest(path.to_string()));
        }
        return Ok(Member::Blob(format!("sha256:{hex}")));
    }
    Ok(Member::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_safety() {
        let ok = [
            ("index.json", "index.json"),
            ("./index.json", "index.json"),
            ("blobs//sha256/./ab", "blobs/sha256/ab"),
            ("./", ""),
            ("a/b/", "a/b"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize(raw.as_bytes()).unwrap(), want, "{raw}");
        }
        let bad = [
            ("/etc/passwd", PathError::Absolute("/etc/passwd".into())),
            ("../evil", PathError::ParentDir("../evil".into())),
            (
                "blobs/../../x",
                PathError::ParentDir("blobs/../../x".into()),
            ),
            ("a/..", PathError::ParentDir("a/..".into())),
        ];
        for (raw, want) in bad {
            assert_eq!(normalize(raw.as_bytes()).unwrap_err(), want, "{raw}");
        }
        assert!(matches!(normalize(b"\xff"), Err(PathError::NotUtf8(_))));
    }

    #[test]
    fn links() {
        let cases: [(&str, &str, bool, Result<&str, ()>); 5] = [
            ("a/layer.tar", "../b/layer.tar", true, Ok("b/layer.tar")),
            ("a/layer.tar", "b/layer.tar", false, Ok("b/layer.tar")),
            ("a/layer.tar", "./x", true, Ok("a/x")),
            ("a/layer.tar", "../../x", true, Err(())),
            ("a/layer.tar", "/x", true, Err(())),
        ];
        for (link, target, sym, want) in cases {
            let got = link_target(link, target.as_bytes(), sym).ok();
            assert_eq!(got.as_deref(), want.ok(), "{link} -> {target}");
        }
    }

    #[test]
    fn classification() {
        let hex = "a".repeat(64);
        let cases = [
            ("index.json", Ok(Member::Index)),
            ("manifest.json", Ok(Member::DockerManifest)),
            ("oci-layout", Ok(Member::Marker)),
            (
                &*format!("blobs/sha256/{hex}"),
                Ok(Member::Blob(format!("sha256:{hex}"))),
            ),
            ("blobs/sha512/ab", Err(())),
            ("blobs/sha256/xyz", Err(())),
            (&*format!("{hex}/layer.tar"), Ok(Member::Other)),
            ("blobs/sha256", Ok(Member::Other)),
        ];
        for (path, want) in cases {
            assert_eq!(classify(path).map_err(|_| ()), want, "{path}");
        }
    }
}
