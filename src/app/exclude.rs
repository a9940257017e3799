//! The exclusion files prune reads: which ones (named files, then the `*.conf` of a
//! directory), read without blocking, and parsed into rules by [`crate::plan::exclude`].

use std::path::{Path, PathBuf};

use crate::plan::exclude::{DEFAULT_EXCLUDE_DIR, ExcludeError, ExcludeRule, parse_cli, parse_file};
use crate::plan::lines;

/// The exclusion files to read: the named ones, then every regular `*.conf` in the
/// directory in name order. `dir` is `None` for the default directory, which may be
/// absent; a directory the user named must exist. Anything else named `*.conf` (a FIFO, a
/// socket, a device, a directory, a dangling link) is an error naming it: its exclusions
/// cannot be known, so nothing may be removed (and opening a FIFO would block).
pub(crate) fn files_to_read(
    named: &[PathBuf],
    dir: Option<&Path>,
) -> Result<Vec<PathBuf>, ExcludeError> {
    let mut files = named.to_vec();
    let (dir, dir_named) = match dir {
        Some(d) => (d, true),
        None => (Path::new(DEFAULT_EXCLUDE_DIR), false),
    };
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut confs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            confs.sort();
            for conf in confs {
                let what = match std::fs::metadata(&conf) {
                    Ok(m) if m.is_file() => {
                        files.push(conf);
                        continue;
                    }
                    Ok(m) => format!(
                        "{}, not a regular file",
                        crate::files::kind_of(&m.file_type())
                    ),
                    Err(e) => format!("cannot read it: {e}"),
                };
                return Err(ExcludeError {
                    file: Some(conf.display().to_string()),
                    line: None,
                    message: format!(
                        "{what}; every *.conf in the exclusion directory {} is read: make \
                         it a regular file or rename it",
                        dir.display()
                    ),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir_named => {}
        Err(e) => {
            return Err(ExcludeError {
                file: None,
                line: None,
                message: format!(
                    "exclusion directory {}{}: cannot read it: {e}",
                    dir.display(),
                    if dir_named { " (--exclude-dir)" } else { "" }
                ),
            });
        }
    }
    Ok(files)
}

/// Reads one exclusion file, refusing anything but a regular file. The file is opened
/// without blocking and checked after opening, so a FIFO swapped in cannot hang prune.
fn read_regular(file: &Path) -> Result<String, String> {
    let f = crate::files::open_regular(file)
        .map_err(|e| format!("cannot read it: {e}"))?
        .map_err(|kind| format!("cannot read it: {kind}, not a regular file"))?;
    lines::read_capped(f).map_err(|e| format!("cannot read it: {e}"))
}

/// Reads and parses every exclusion file; the first problem stops everything. `dir` is
/// `None` for the default directory (see [`files_to_read`]).
pub(crate) fn load(
    named: &[PathBuf],
    dir: Option<&Path>,
    cli: &[String],
) -> Result<Vec<ExcludeRule>, ExcludeError> {
    let mut rules = Vec::new();
    for file in files_to_read(named, dir)? {
        let name = file.display().to_string();
        let text = read_regular(&file).map_err(|message| ExcludeError {
            file: Some(name.clone()),
            line: None,
            message,
        })?;
        rules.extend(parse_file(&name, &text)?);
    }
    rules.extend(parse_cli(cli)?);
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.conf"), "redis\n").unwrap();
        std::fs::write(dir.path().join("a.conf"), "nginx\n").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "bad pattern\n").unwrap();
        let rules = load(&[], Some(dir.path()), &[]).unwrap();
        let reasons: Vec<String> = rules.iter().map(|r| r.reason().to_string()).collect();
        assert!(
            reasons[0].ends_with("a.conf:1") && reasons[1].ends_with("b.conf:1"),
            "{reasons:?}"
        );
        // A directory the user named must exist.
        let absent = dir.path().join("absent");
        let e = load(&[], Some(&absent), &[]).unwrap_err();
        assert!(
            e.to_string().contains(absent.to_str().unwrap())
                && e.to_string().contains("--exclude-dir"),
            "{e}"
        );
        let missing = dir.path().join("missing.conf");
        let e = load(std::slice::from_ref(&missing), Some(dir.path()), &[]).unwrap_err();
        assert_eq!(e.file.as_deref(), Some(missing.to_str().unwrap()));
        // A named file that is not a regular file is refused without opening it for good.
        let e = load(&[dir.path().to_path_buf()], Some(dir.path()), &[]).unwrap_err();
        assert!(
            e.to_string().contains("a directory, not a regular file"),
            "{e}"
        );
        // A `*.conf` in the directory that is not a regular file stops everything.
        std::fs::create_dir(dir.path().join("sub.conf")).unwrap();
        let e = load(&[], Some(dir.path()), &[]).unwrap_err();
        assert!(
            e.to_string().contains("sub.conf")
                && e.to_string().contains("a directory, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn special_files_in_the_directory_stop_everything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.conf"), "nginx\n").unwrap();
        crate::files::tests::fifo(&dir.path().join("fifo.conf"));
        // Found in the directory, the FIFO is an error naming it, never opened.
        let e = load(&[], Some(dir.path()), &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("fifo.conf: a FIFO, not a regular file"),
            "{e}"
        );
        // Named directly, it is an error too, and reading it does not block.
        let fifo = dir.path().join("fifo.conf");
        let empty = tempfile::tempdir().unwrap();
        let e = load(&[fifo], Some(empty.path()), &[]).unwrap_err();
        assert!(e.to_string().contains("a FIFO, not a regular file"), "{e}");
    }
}
