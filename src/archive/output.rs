//! Where an archive is written: what may stand at the target path, and how a failure to
//! write it is named.

use std::fmt;
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

/// The context of every failure to write an archive, naming where it was going
/// ("writing standard output", "writing FILE"). An archive cut short is useless, so a
/// broken pipe under this context is a failure, unlike a report whose reader stopped
/// early (`crimg list | head`); see [`excuses_broken_pipe`].
#[derive(Debug, Clone)]
pub(crate) struct WritingArchive(pub String);

impl fmt::Display for WritingArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing {}", self.0)
    }
}

/// Whether a broken pipe in this error may end the run successfully: only when the output
/// was a report, not an archive.
pub(crate) fn excuses_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<WritingArchive>().is_none()
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

    #[test]
    fn broken_pipes_end_reports_not_archives() {
        let pipe = || anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(excuses_broken_pipe(&pipe().context("printing the table")));
        let archive = pipe()
            .context("blob sha256:ab")
            .context(WritingArchive("standard output".into()));
        assert!(!excuses_broken_pipe(&archive));
        assert!(!excuses_broken_pipe(&archive.context("exporting")));
        assert_eq!(
            format!(
                "{:#}",
                pipe().context(WritingArchive("standard output".into()))
            ),
            "writing standard output: broken pipe"
        );
    }
}
