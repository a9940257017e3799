//! Writing a file atomically: into a temp file beside the target, synced, then renamed
//! into place, so the target is either as it was or complete. Dropping an
//! [`AtomicFile`] before [`AtomicFile::commit`] removes the temp file.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use tempfile::NamedTempFile;

/// The directory a file goes in (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temp file beside the file it will become.
pub(crate) struct AtomicFile {
    tmp: NamedTempFile,
    path: PathBuf,
    dir: PathBuf,
}

/// The target appeared while its temp file was written, and was not to be replaced: it
/// was left alone.
#[derive(Debug)]
pub(crate) struct TargetAppeared;

impl fmt::Display for TargetAppeared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the target appeared meanwhile")
    }
}

impl std::error::Error for TargetAppeared {}

impl AtomicFile {
    /// Creates the temp file `<prefix>XXXXXX.tmp` in `path`'s directory with permissions
    /// `mode` less the umask, as other Unix tools create files: under `umask 077` an
    /// export of private images stays private.
    pub(crate) fn create(path: &Path, prefix: &str, mode: u32) -> Result<AtomicFile> {
        use std::os::unix::fs::PermissionsExt;
        let dir = parent_dir(path);
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temp file in {}", dir.display()))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
            dir,
        })
    }

    pub(crate) fn file(&self) -> &std::fs::File {
        self.tmp.as_file()
    }

    pub(crate) fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Syncs the temp file and renames it to the target, replacing one that exists only
    /// with `replace` (else the error is [`TargetAppeared`]); then syncs the directory.
    pub(crate) fn commit(self, replace: bool) -> Result<()> {
        let AtomicFile { tmp, path, dir } = self;
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("syncing {}", tmp.path().display()))?;
        let renaming = |e: tempfile::PersistError| {
            anyhow!(
                "renaming {} to {}: {}",
                e.file.path().display(),
                path.display(),
                e.error
            )
        };
        if replace {
            tmp.persist(&path).map_err(renaming)?;
        } else {
            tmp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::Error::new(TargetAppeared)
                } else {
                    renaming(e)
                }
            })?;
        }
        // The rename is durable once the directory is.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}
