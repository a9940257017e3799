//! One watched file: its size and mtime between looks, when it is ready to import, its
//! content digest, and whether it has left the watched directories.

use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{Context, Result};
use sha2::Digest as _;

use super::state_file::Seen;
use crate::app::import::ImportedImage;
use crate::oci::sha256_digest;
use crate::plan::watch::SETTLE;

/// A file's size and mtime, as compared between looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) size: u64,
    pub(crate) mtime_ns: u64,
}

pub(super) fn stat(path: &Path) -> Option<Stat> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(Stat {
        size: m.len(),
        mtime_ns: mtime.as_nanos() as u64,
    })
}

/// What to do with a file at one scan. Pure, so the rules have a table of tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Imported before with this size and mtime.
    Skip,
    /// Changed lately; look again later.
    Wait,
    /// Has held still long enough: import (unless its content is what was imported).
    Import,
}

pub(crate) fn decide(
    now: Stat,
    remembered: Option<&Seen>,
    last_look: Option<(Stat, Instant)>,
    at: Instant,
) -> Decision {
    if remembered.is_some_and(|s| s.size == now.size && s.mtime_ns == now.mtime_ns) {
        return Decision::Skip;
    }
    match last_look {
        Some((before, since)) if before == now && at.duration_since(since) >= SETTLE => {
            Decision::Import
        }
        _ => Decision::Wait,
    }
}

pub(super) fn file_digest(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut f, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_digest(hasher))
}

/// The records an import created: each image's names and its ID record, with the target
/// they point at; a list's pulled references by name only.
pub(super) fn created_records(images: &[ImportedImage]) -> Vec<(String, String)> {
    images
        .iter()
        .flat_map(|i| {
            let id = (!i.digest.is_empty()).then(|| i.id.clone());
            i.names
                .iter()
                .cloned()
                .chain(id)
                .map(|n| (n, i.digest.clone()))
        })
        .collect()
}

/// Whether `key` lies in one of `dirs` that can be read, and is gone. A directory that
/// cannot be read (unmounted, no permission) says nothing about what it holds.
pub(super) fn is_gone(key: &str, dirs: &[PathBuf]) -> bool {
    let p = Path::new(key);
    dirs.iter()
        .any(|d| p.starts_with(d) && std::fs::read_dir(d).is_ok())
        && std::fs::symlink_metadata(p).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let later = t0 + SETTLE;
        let a = Stat {
            size: 10,
            mtime_ns: 1,
        };
        let b = Stat {
            size: 20,
            mtime_ns: 2,
        };
        let seen = Seen {
            size: 10,
            mtime_ns: 1,
            digest: "sha256:x".into(),
            images: vec![],
        };
        let cases = [
            // Remembered with the same size and mtime: skipped, however it looked before.
            (a, Some(&seen), None, t0, Decision::Skip),
            (a, Some(&seen), Some((b, t0)), later, Decision::Skip),
            // New: first look waits; the same look after SETTLE imports.
            (b, None, None, t0, Decision::Wait),
            (
                b,
                None,
                Some((b, t0)),
                t0 + Duration::from_millis(500),
                Decision::Wait,
            ),
            (b, None, Some((b, t0)), later, Decision::Import),
            // Still growing: waits again.
            (b, None, Some((a, t0)), later, Decision::Wait),
            // Changed since it was imported: imported again once settled.
            (b, Some(&seen), Some((b, t0)), later, Decision::Import),
        ];
        for (i, (now, remembered, look, at, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(now, remembered, look, at), want, "case {i}");
        }
    }

    #[test]
    fn records_an_import_created() {
        let image = |names: &[&str], id: &str, digest: &str| ImportedImage {
            names: names.iter().map(|n| n.to_string()).collect(),
            id: id.into(),
            digest: digest.into(),
            platforms: vec![],
            size: 0,
            status: "imported",
            replaced: vec![],
        };
        let got = created_records(&[
            image(
                &["docker.io/library/a:1", "docker.io/library/a:2"],
                "sha256:id",
                "sha256:m",
            ),
            image(&["docker.io/library/pulled:1"], "sha256:p", ""),
        ]);
        let want: Vec<(String, String)> = [
            ("docker.io/library/a:1", "sha256:m"),
            ("docker.io/library/a:2", "sha256:m"),
            ("sha256:id", "sha256:m"),
            ("docker.io/library/pulled:1", ""),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
