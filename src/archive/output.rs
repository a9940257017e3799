//! Where an archive is written: what may stand at the target path (the context that names
//! a failure to write it is [`crate::error::WritingArchive`]).

use std::fs::FileType;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// What stands at an output path before anything is written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    Nothing,
    /// A regular file: replaced only with `--force`.
    File,
    /// A symlink, dangling or not: never followed; `--force` replaces the link itself.
    Symlink,
    /// A directory, device, FIFO or socket: never replaced, `--force` or not. Replacing
    /// `/dev/null` with a file would break the node; a pipe is what `-O -` is for.
    Special(&'static str),
}

/// Looks at an output path without following a symlink there.
pub(crate) fn existing(path: &Path) -> io::Result<Existing> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(classify(&m.file_type())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Nothing),
        Err(e) => Err(e),
    }
}

fn classify(t: &FileType) -> Existing {
    if t.is_file() {
        Existing::File
    } else if t.is_symlink() {
        Existing::Symlink
    } else if t.is_dir() {
        Existing::Special("a directory")
    } else if t.is_char_device() {
        Existing::Special("a character device")
    } else if t.is_block_device() {
        Existing::Special("a block device")
    } else if t.is_fifo() {
        Existing::Special("a FIFO")
    } else if t.is_socket() {
        Existing::Special("a socket")
    } else {
        Existing::Special("a special file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_stands_at_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let fifo = dir.path().join("p");
        crate::files::tests::fifo(&fifo);
        let cases: &[(&Path, Existing)] = &[
            (&dir.path().join("absent"), Existing::Nothing),
            (&file, Existing::File),
            (&link, Existing::Symlink),
            (&fifo, Existing::Special("a FIFO")),
            (dir.path(), Existing::Special("a directory")),
            (
                Path::new("/dev/null"),
                Existing::Special("a character device"),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(existing(path).unwrap(), *want, "{}", path.display());
        }
    }
}
