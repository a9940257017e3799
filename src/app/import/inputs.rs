//! What to import: command-line paths expanded into archives, layout directories,
//! standard input and `.txt` reference lists.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::archive::read::{self, Input};

use super::walk::{Stopped, walk};

/// File name endings taken from a directory of archives, as K3s does.
const ARCHIVE_SUFFIXES: &[&str] = &[
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.zst",
    ".tar.zstd",
    ".tzst",
    ".tar.bz2",
    ".tbz",
    ".tbz2",
    ".tar.lz4",
    ".tlz4",
    ".oci",
    ".docker",
];

/// One thing to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Archive(Input),
    /// A `.txt` list of references to pull.
    List(PathBuf),
    /// A path that is neither.
    Bad(String, String),
}

impl Item {
    pub(crate) fn file(&self) -> String {
        match self {
            Item::Archive(i) => i.display(),
            Item::List(p) => p.display().to_string(),
            Item::Bad(f, _) => f.clone(),
        }
    }
}

fn is_list(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "txt")
}

/// Whether a file in a directory of archives is one (by name, as K3s decides).
pub(crate) fn is_candidate(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && (name.ends_with(".txt") || ARCHIVE_SUFFIXES.iter().any(|s| name.ends_with(s)))
}

/// Command-line paths as items, with warnings about what a directory walk passed over.
#[derive(Debug, Default)]
pub(crate) struct Expanded {
    pub(crate) items: Vec<Item>,
    pub(crate) warnings: Vec<String>,
}

/// Turns command-line paths into items: files, layout directories, and the archives of
/// directories of archives (recursively, sorted; see [`walk`]). Fails only when `stop`
/// is set while walking.
pub(crate) fn expand(paths: &[PathBuf], stop: &AtomicBool) -> Result<Expanded, Stopped> {
    let mut out = Expanded::default();
    for p in paths {
        if p.as_os_str() == "-" {
            out.items.push(Item::Archive(Input::Stdin));
        } else if p.is_dir() {
            if read::is_layout_dir(p) {
                out.items.push(Item::Archive(Input::Dir(p.clone())));
                continue;
            }
            let found = match walk(p, true, stop) {
                Ok(f) => f,
                Err(Stopped::Stopped) => return Err(Stopped::Stopped),
                Err(e) => {
                    out.items
                        .push(Item::Bad(p.display().to_string(), e.to_string()));
                    continue;
                }
            };
            out.warnings.extend(
                found
                    .skipped
                    .iter()
                    .map(|(s, why)| format!("skipped {}: {why}", s.display())),
            );
            out.items.extend(found.paths.into_iter().map(|f| {
                if is_list(&f) {
                    Item::List(f)
                } else if f.is_dir() {
                    Item::Archive(Input::Dir(f))
                } else {
                    Item::Archive(Input::File(f))
                }
            }));
        } else if p.is_file() {
            out.items.push(if is_list(p) {
                Item::List(p.clone())
            } else {
                Item::Archive(Input::File(p.clone()))
            });
        } else {
            out.items
                .push(Item::Bad(p.display().to_string(), what_is_there(p)));
        }
    }
    Ok(out)
}

/// Why a path named on the command line is neither an archive nor a directory, in words:
/// missing, a FIFO or device (never read: it could block or never end), a link loop.
fn what_is_there(p: &Path) -> String {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file or directory".into(),
        Err(e) => e.to_string(),
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(p) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                "a symbolic link loop".into()
            }
            Err(_) => "a symbolic link to nothing".into(),
            Ok(target) => format!(
                "a symbolic link to {}, not an archive or a directory",
                crate::files::kind_of(&target.file_type())
            ),
        },
        Ok(m) => format!(
            "{}, not an archive or a directory",
            crate::files::kind_of(&m.file_type())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_there_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        crate::files::tests::fifo(&fifo);
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("none"), &dangling).unwrap();
        let cases = [
            (dir.path().join("none"), "no such file or directory"),
            (fifo, "a FIFO, not an archive or a directory"),
            (
                PathBuf::from("/dev/zero"),
                "a character device, not an archive",
            ),
            (looped, "a symbolic link loop"),
            (dangling, "a symbolic link to nothing"),
        ];
        for (p, want) in cases {
            let got = what_is_there(&p);
            assert!(got.starts_with(want), "{}: {got}", p.display());
        }
    }

    #[test]
    fn candidates_by_name() {
        let cases = [
            ("a.tar", true),
            ("a.tar.gz", true),
            ("a.tgz", true),
            ("a.tar.zst", true),
            ("a.tzst", true),
            ("a.tar.bz2", true),
            ("a.tbz", true),
            ("a.tar.lz4", true),
            ("list.txt", true),
            (".cache.json", false),
            (".hidden.tar", false),
            ("README.md", false),
            ("a.tar.partial", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_candidate(Path::new(name)), want, "{name}");
        }
    }
}
