//! The exclusion files prune reads: which ones (named files, then the `*.conf` of a
//! directory), read without blocking, and parsed into rules by [`crate::plan::exclude`].

use std::path::{Path, PathBuf};

use crate::plan::exclude::{DEFAULT_EXCLUDE_DIR, ExcludeError, ExcludeRule, parse_cli, parse_file};
use crate::plan::lines;

/// The exclusion files to read: the named ones, then every regular `*.conf` in the
/// directory in name order. `dir` is `None` for the default directory, which may be
/// absent; a directory the user named must exist. Anything else named `*.conf` (a FIFO, a
/// socket, a device, a directory) is skipped with a warning: opening a FIFO would block.
pub(crate) fn files_to_read(
    named: &[PathBuf],
    dir: Option<&Path>,
    warn: &mut dyn FnMut(String),
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
                match std::fs::metadata(&conf) {
                    Ok(m) if m.is_file() => files.push(conf),
                    Ok(m) => warn(format!(
                        "exclusion directory {}: skipping {}: {}, not a regular file",
                        dir.display(),
                        conf.display(),
                        crate::files::kind_of(&m.file_type())
                    )),
                    Err(e) => warn(format!(
                        "exclusion directory {}: skipping {}: {e}",
                        dir.display(),
                        conf.display()
                    )),
                }
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
    warn: &mut dyn FnMut(String),
) -> Result<Vec<ExcludeRule>, ExcludeError> {
    let mut rules = Vec::new();
    for file in files_to_read(named, dir, warn)? {
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
        let mut warnings = Vec::new();
        let mut warn = |w: String| warnings.push(w);
        let rules = load(&[], Some(dir.path()), &[], &mut warn).unwrap();
        let reasons: Vec<String> = rules.iter().map(|r| r.reason().to_string()).collect();
        assert!(
            reasons[0].ends_with("a.conf:1") && reasons[1].ends_with("b.conf:1"),
            "{reasons:?}"
        );
        // A directory the user named must exist.
        let absent = dir.path().join("absent");
        let e = load(&[], Some(&absent), &[], &mut warn).unwrap_err();
        assert!(
            e.to_string().contains(absent.to_str().unwrap())
                && e.to_string().contains("--exclude-dir"),
            "{e}"
        );
        let missing = dir.path().join("missing.conf");
        let e = load(
            std::slice::from_ref(&missing),
            Some(dir.path()),
            &[],
            &mut warn,
        )
        .unwrap_err();
        assert_eq!(e.file.as_deref(), Some(missing.to_str().unwrap()));
        // A named file that is not a regular file is refused without opening it for good.
        let e = load(
            &[dir.path().to_path_buf()],
            Some(dir.path()),
            &[],
            &mut warn,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("a directory, not a regular file"),
            "{e}"
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn special_files_in_the_directory_are_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.conf"), "nginx\n").unwrap();
        crate::files::tests::fifo(&dir.path().join("fifo.conf"));
        std::fs::create_dir(dir.path().join("sub.conf")).unwrap();
        let mut warnings = Vec::new();
        let rules = load(&[], Some(dir.path()), &[], &mut |w| warnings.push(w)).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("fifo.conf: a FIFO, not a regular file"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("sub.conf: a directory"),
            "{warnings:?}"
        );
        // Named directly, the FIFO is an error, and reading it does not block.
        let fifo = dir.path().join("fifo.conf");
        let e = load(&[fifo], Some(dir.path()), &[], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("a FIFO, not a regular file"), "{e}");
    }
}
