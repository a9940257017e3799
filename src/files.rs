//! Files an operator names (exclusion files, state files): opened without blocking and
//! refused unless they are regular files, so a FIFO or a device put in their place can
//! neither hang crimg nor be read as if it were the file.

use std::fs::File;
use std::path::Path;

/// What a non-regular file is, in words: "a directory", "a FIFO", ...
pub(crate) fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Opens `path` for reading, without blocking (a FIFO opens at once), and checks what it
/// opened: `Ok(Err(kind))` when it is not a regular file ([`kind_of`]). A socket, which
/// cannot be opened at all, is named as one rather than by the open's error.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<Result<File, &'static str>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound
                && let Ok(meta) = std::fs::metadata(path)
                && !meta.is_file()
            {
                return Ok(Err(kind_of(&meta.file_type())));
            }
            return Err(e);
        }
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Err(kind_of(&meta.file_type())));
    }
    Ok(Ok(file))
}

/// Whether standard output was closed when crimg started. Rust's start-up code puts
/// `/dev/null` on a closed standard descriptor before `main` (so nothing else takes the
/// number), which makes a closed standard output look like `>/dev/null`. What tells them
/// apart is how it was opened: Rust opens it read-write, a shell's `>` write-only.
/// Without this, an archive written to a closed standard output would be reported
/// exported and be nowhere.
pub(crate) fn stdout_was_closed() -> bool {
    use std::os::fd::AsFd;
    let out = std::io::stdout();
    let fd = out.as_fd();
    let Ok(st) = rustix::fs::fstat(fd) else {
        return true;
    };
    let is_null = rustix::fs::FileType::from_raw_mode(st.st_mode)
        == rustix::fs::FileType::CharacterDevice
        && st.st_rdev == rustix::fs::makedev(1, 3);
    let read_write = rustix::fs::fcntl_getfl(fd)
        .is_ok_and(|f| f & rustix::fs::OFlags::RWMODE == rustix::fs::OFlags::RDWR);
    is_null && read_write
}

/// The directory of crimg's state files, unless [`ENV_STATE_DIR`] names another.
pub(crate) const DEFAULT_STATE_DIR: &str = "/var/lib/crimg";
pub(crate) const ENV_STATE_DIR: &str = "CRIMG_STATE_DIR";
/// prune's last-use times, in the state directory.
pub(crate) const PRUNE_STATE_FILE: &str = "state.json";
/// What `import --watch` imported, in the state directory.
pub(crate) const WATCH_STATE_FILE: &str = "import-watch.json";
/// K3s's air-gap images directory, unless [`ENV_K3S_IMAGES_DIR`] names another.
pub(crate) const K3S_IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";
pub(crate) const ENV_K3S_IMAGES_DIR: &str = "CRIMG_K3S_IMAGES_DIR";

/// The largest configuration file crimg reads (crictl's, containerd's, `registries.yaml`,
/// `hosts.toml`): real ones are a few KiB; a device or a runaway file is refused before it
/// can fill memory.
pub(crate) const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// Reads a configuration file as text through [`open_regular`]: `Ok(None)` when it does not
/// exist; an error naming it when it is not a regular file, is larger than `cap` bytes (a
/// device such as `/dev/zero` never reaches the read) or is not UTF-8.
pub(crate) fn read_text(path: &Path, cap: u64) -> anyhow::Result<Option<String>> {
    use std::io::Read;
    let file = match open_regular(path) {
        Ok(Ok(file)) => file,
        Ok(Err(kind)) => anyhow::bail!("{} is {kind}, not a regular file", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot open {}: {e}", path.display()),
    };
    let mut bytes = Vec::new();
    // One byte over the cap tells a file that grew past it from one exactly at it.
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > cap {
        anyhow::bail!(
            "{} is larger than {} bytes: not a configuration file",
            path.display(),
            cap
        );
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Makes a FIFO at `path` (with no writer, a blocking open of it never returns).
    pub(crate) fn fifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(open_regular(&file).unwrap().is_ok());
        assert_eq!(open_regular(dir.path()).unwrap().err(), Some("a directory"));
        let pipe = dir.path().join("p");
        fifo(&pipe);
        assert_eq!(open_regular(&pipe).unwrap().err(), Some("a FIFO"));
        let socket = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(open_regular(&socket).unwrap().err(), Some("a socket"));
        let missing = open_regular(&dir.path().join("none")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn read_text_is_capped_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "0123456789").unwrap();
        assert_eq!(read_text(&file, 10).unwrap().as_deref(), Some("0123456789"));
        let e = read_text(&file, 9).unwrap_err().to_string();
        assert!(
            e.contains("c.toml") && e.contains("larger than 9 bytes"),
            "{e}"
        );
        assert_eq!(read_text(&dir.path().join("none"), 10).unwrap(), None);
        let e = read_text(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/zero is a character device"), "{e}");
        let pipe = dir.path().join("p");
        fifo(&pipe);
        let e = read_text(&pipe, 10).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
    }
}
