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
            out.items.push(Item::Bad(
                p.display().to_string(),
                "no such file or directory".into(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
