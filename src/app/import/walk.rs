//! Walking a directory of archives, for `import DIR` and `import --watch DIR`.
//!
//! The walk never follows a symbolic link to a directory (a link such as `s -> .` or
//! `up -> ..` would make it endless), so every directory is read at most once. A link to
//! a regular file is followed, as K3s does for its images directory. The walk goes at most
//! [`MAX_DEPTH`] directories below the one named and reads at most [`MAX_ENTRIES`]
//! directory entries; it checks `stop` before every entry, so a signal ends it at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::read;

use super::inputs::is_candidate;

/// How many directories below the named one are read.
pub(crate) const MAX_DEPTH: usize = 16;
/// How many directory entries one walk reads at most.
pub(crate) const MAX_ENTRIES: usize = 100_000;

/// What a walk found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Candidate files (archives and `.txt` lists) and, when asked for, OCI layout
    /// directories; sorted.
    pub(crate) paths: Vec<PathBuf>,
    /// What was passed over and why (a symlinked directory, a directory too deep).
    pub(crate) skipped: Vec<(PathBuf, String)>,
}

/// Why a walk did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// More than [`MAX_ENTRIES`] entries below the directory.
    TooMany(PathBuf),
    /// `stop` was set (a signal).
    Stopped,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::TooMany(_) => write!(
                f,
                "more than {MAX_ENTRIES} directory entries below it; crimg reads at most \
                 {MAX_ENTRIES} (name a smaller directory)"
            ),
            Stopped::Stopped => write!(f, "interrupted"),
        }
    }
}

/// Walks `root`. With `layouts`, an OCI layout directory is one item and not entered.
pub(crate) fn walk(root: &Path, layouts: bool, stop: &AtomicBool) -> Result<Found, Stopped> {
    walk_at_most(root, layouts, stop, MAX_ENTRIES)
}

fn walk_at_most(
    root: &Path,
    layouts: bool,
    stop: &AtomicBool,
    max_entries: usize,
) -> Result<Found, Stopped> {
    let mut found = Found::default();
    let mut entries = 0usize;
    let mut pending = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in list {
            if stop.load(Ordering::Relaxed) {
                return Err(Stopped::Stopped);
            }
            entries += 1;
            if entries > max_entries {
                return Err(Stopped::TooMany(root.to_path_buf()));
            }
            let Ok(e) = e else { continue };
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if layouts && read::is_layout_dir(&p) {
                    found.paths.push(p);
                } else if depth >= MAX_DEPTH {
                    found.skipped.push((
                        p,
                        format!(
                            "deeper than {MAX_DEPTH} directories below {}",
                            root.display()
                        ),
                    ));
                } else {
                    pending.push((p, depth + 1));
                }
            } else if ft.is_symlink() {
                // A link to an archive is followed; a link to a directory never is.
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_dir() => found
                        .skipped
                        .push((p, "a symbolic link to a directory (not followed)".into())),
                    Ok(m) if m.is_file() && is_candidate(&p) => found.paths.push(p),
                    _ => {}
                }
            } else if ft.is_file() && is_candidate(&p) {
                found.paths.push(p);
            }
        }
    }
    found.paths.sort();
    found.skipped.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn symlinked_directories_are_not_followed_files_are() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.tar"), b"x").unwrap();
        std::fs::write(d.join("sub/b.tar"), b"x").unwrap();
        std::fs::write(t.path().join("outside.tar"), b"x").unwrap();
        std::os::unix::fs::symlink(".", d.join("s1")).unwrap();
        std::os::unix::fs::symlink(".", d.join("s2")).unwrap();
        std::os::unix::fs::symlink("..", d.join("up")).unwrap();
        std::os::unix::fs::symlink("../outside.tar", d.join("linked.tar")).unwrap();
        std::os::unix::fs::symlink("missing.tar", d.join("dangling.tar")).unwrap();
        let found = walk(&d, true, &AtomicBool::new(false)).unwrap();
        assert_eq!(
            names(&d, &found.paths),
            ["a.tar", "linked.tar", "sub/b.tar"]
        );
        assert_eq!(
            names(
                &d,
                &found
                    .skipped
                    .iter()
                    .map(|s| s.0.clone())
                    .collect::<Vec<_>>()
            ),
            ["s1", "s2", "up"]
        );
    }

    #[test]
    fn depth_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        let mut deep = t.path().to_path_buf();
        for i in 0..=MAX_DEPTH + 1 {
            deep = deep.join(format!("l{i}"));
            std::fs::create_dir(&deep).unwrap();
            std::fs::write(deep.join("a.tar"), b"x").unwrap();
        }
        let found = walk(t.path(), false, &AtomicBool::new(false)).unwrap();
        assert_eq!(found.paths.len(), MAX_DEPTH);
        assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
        assert!(found.skipped[0].1.contains("deeper than 16"));
    }

    #[test]
    fn entries_are_bounded() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..10 {
            std::fs::write(t.path().join(format!("{i}.tar")), b"x").unwrap();
        }
        let stop = AtomicBool::new(false);
        assert_eq!(
            walk_at_most(t.path(), false, &stop, 10)
                .unwrap()
                .paths
                .len(),
            10
        );
        assert_eq!(
            walk_at_most(t.path(), false, &stop, 9),
            Err(Stopped::TooMany(t.path().to_path_buf()))
        );
    }

    #[test]
    fn stops_when_told() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a.tar"), b"x").unwrap();
        assert_eq!(
            walk(t.path(), false, &AtomicBool::new(true)),
            Err(Stopped::Stopped)
        );
    }
}
