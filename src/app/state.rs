//! What crimg remembers between runs: when it last saw each image in use.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::archive::sink::AtomicFile;
use crate::error::CrimgError;

/// The state directory: `CRIMG_STATE_DIR`, else `/var/lib/crimg`.
pub(crate) fn state_dir() -> PathBuf {
    std::env::var_os(crate::files::ENV_STATE_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::files::DEFAULT_STATE_DIR))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    /// Image ID → RFC 3339 time crimg last saw it used.
    #[serde(default)]
    last_used: BTreeMap<String, String>,
}

/// Writes a JSON state file to a temp file beside it, then renames it: never half-written.
pub(crate) fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = state_dir_of(path);
    if dir == state_dir() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    } else {
        check_state_dir(path, "")?;
    }
    let sink = AtomicFile::create(path, ".crimg-state-", 0o600)?;
    serde_json::to_writer_pretty(sink.file(), value)?;
    sink.commit(true)
        .with_context(|| format!("writing state file {}", path.display()))?;
    Ok(())
}

fn state_dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// crimg makes its own state directory; one the user named (`--state-file`) must exist,
/// so a typo does not make directories as root. A usage error naming both otherwise;
/// `unchanged` says what the command therefore left undone.
fn check_state_dir(path: &Path, unchanged: &str) -> Result<()> {
    let dir = state_dir_of(path);
    if dir == state_dir() || dir.is_dir() {
        return Ok(());
    }
    let unchanged = if unchanged.is_empty() {
        String::new()
    } else {
        format!(" ({unchanged})")
    };
    Err(CrimgError::Usage(format!(
        "state file {}: its directory {} does not exist; create it or name another \
         file with --state-file{unchanged}",
        path.display(),
        dir.display()
    ))
    .into())
}

/// The largest state file read: about 100 bytes an image, so far more than any node holds.
pub(crate) const MAX_STATE: u64 = 64 << 20;

/// A JSON state file as read.
#[derive(Debug)]
pub(crate) enum StateRead<T> {
    /// Nothing at the path: an empty history.
    Missing,
    Read(T),
    /// A regular file that is not crimg's (truncated, another shape, too large), and why.
    /// The caller warns, starts afresh, and moves it aside ([`set_aside`]) rather than
    /// write over it.
    Unusable(String),
}

/// Reads a JSON state file, at most [`MAX_STATE`] bytes of it. Anything at the path that
/// is not a regular file (a directory, a FIFO) is a usage error naming it, and is neither
/// read nor replaced: `unchanged` says what the command therefore left undone ("nothing
/// was removed"). The file is opened without blocking, so a FIFO cannot hang the command.
pub(crate) fn read_state_json<T: DeserializeOwned>(
    path: &Path,
    unchanged: &str,
) -> Result<StateRead<T>> {
    use std::io::Read as _;
    let reading = || format!("reading state file {}", path.display());
    check_state_dir(path, unchanged)?;
    let file = match crate::files::open_regular(path) {
        Ok(Ok(file)) => file,
        Ok(Err(kind)) => {
            return Err(anyhow::Error::new(crate::error::CrimgError::Usage(
                format!(
                    "state file {} is {kind}, not a regular file; remove it or name a file \
                     with --state-file ({unchanged})",
                    path.display(),
                ),
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateRead::Missing),
        Err(e) => return Err(e).with_context(reading),
    };
    let too_large = |len: u64| {
        StateRead::Unusable(format!(
            "{len} bytes, more than a state file grows to ({} MiB)",
            MAX_STATE >> 20
        ))
    };
    let len = file.metadata().with_context(reading)?.len();
    if len > MAX_STATE {
        return Ok(too_large(len));
    }
    let mut bytes = Vec::new();
    file.take(MAX_STATE + 1)
        .read_to_end(&mut bytes)
        .with_context(reading)?;
    // Grown since it was measured.
    if bytes.len() as u64 > MAX_STATE {
        return Ok(too_large(bytes.len() as u64));
    }
    Ok(match serde_json::from_slice(&bytes) {
        Ok(value) => StateRead::Read(value),
        Err(e) => StateRead::Unusable(format!("not crimg's JSON: {e}")),
    })
}

/// The last-use times, and why the file was not used when it could not be read as
/// crimg's (the caller warns, and moves it aside before writing a new one).
#[derive(Debug, Default)]
pub(crate) struct LastUsed {
    pub(crate) times: HashMap<String, SystemTime>,
    pub(crate) unusable: Option<String>,
}

/// Reads the last-use times; a missing file is an empty history. A file that is not
/// crimg's JSON (truncated, another shape, too large) is an empty history with the reason
/// in `unusable`. Anything at the path that is not a regular file is a usage error: crimg
/// neither reads nor replaces it (see [`read_state_json`]).
pub(crate) fn load_last_used(path: &Path) -> Result<LastUsed> {
    let state: StateFile = match read_state_json(path, "nothing was removed")? {
        StateRead::Missing => return Ok(LastUsed::default()),
        StateRead::Unusable(why) => {
            return Ok(LastUsed {
                unusable: Some(why),
                ..LastUsed::default()
            });
        }
        StateRead::Read(state) => state,
    };
    let mut times = HashMap::new();
    let mut bad = 0;
    for (id, t) in state.last_used {
        match humantime::parse_rfc3339(&t) {
            Ok(t) => {
                times.insert(id, t);
            }
            Err(_) => bad += 1,
        }
    }
    let unusable = (bad > 0).then(|| format!("{bad} entries have no RFC 3339 time"));
    Ok(LastUsed { times, unusable })
}

/// Renames an unusable state file beside itself (`state.json` to
/// `state.json.bad-<unix seconds>`), never over an existing file. Returns the new path.
pub(crate) fn set_aside(path: &Path) -> Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    for n in 0..100 {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let aside = path.with_file_name(format!("{name}.bad-{secs}{suffix}"));
        // A hard link never replaces an existing file; then the old name goes.
        match std::fs::hard_link(path, &aside) {
            Ok(()) => {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing state file {}", path.display()))?;
                return Ok(aside);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "moving state file {} to {}",
                        path.display(),
                        aside.display()
                    )
                });
            }
        }
    }
    anyhow::bail!(
        "moving state file {} aside: too many copies",
        path.display()
    )
}

/// Writes the last-use times atomically. An unusable file at the path (see [`LastUsed`])
/// is first moved aside, never overwritten: returns where it went.
pub(crate) fn save_last_used(
    path: &Path,
    last_used: &HashMap<String, SystemTime>,
    unusable: bool,
) -> Result<Option<PathBuf>> {
    let aside = if unusable {
        Some(set_aside(path).context("the state file was not written")?)
    } else {
        None
    };
    let state = StateFile {
        last_used: last_used
            .iter()
            .map(|(id, t)| {
                (
                    id.clone(),
                    humantime::format_rfc3339_seconds(*t).to_string(),
                )
            })
            .collect(),
    };
    save_json(path, &state)?;
    Ok(aside)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        // A directory the user named is not made for them.
        let e = load_last_used(&path).unwrap_err().to_string();
        assert!(e.contains("sub does not exist"), "{e}");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(load_last_used(&path).unwrap().times.is_empty());
        let t = humantime::parse_rfc3339("2026-01-02T03:04:05Z").unwrap();
        let map = HashMap::from([("sha256:aa".to_string(), t)]);
        assert_eq!(save_last_used(&path, &map, false).unwrap(), None);
        let loaded = load_last_used(&path).unwrap();
        assert_eq!(loaded.times, map);
        assert_eq!(loaded.unusable, None);
    }

    #[test]
    fn corrupt_state_files_are_named_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let good = "{\"last_used\": {\"sha256:aa\": \"2026-01-02T03:04:05Z\"}}";
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "truncated",
                good.as_bytes()[..20].to_vec(),
                "EOF while parsing",
            ),
            ("not JSON", b"\x00\x01garbage".to_vec(), "expected value"),
            (
                "wrong types",
                b"{\"last_used\": [1, 2]}".to_vec(),
                "invalid type",
            ),
            (
                "a bad time",
                b"{\"last_used\": {\"sha256:aa\": \"soon\"}}".to_vec(),
                "1 entries have no RFC 3339 time",
            ),
        ];
        for (what, bytes, why) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let loaded = load_last_used(&path).unwrap();
            assert!(loaded.times.is_empty(), "{what}");
            let unusable = loaded.unusable.unwrap_or_default();
            assert!(unusable.contains(why), "{what}: {unusable}");
            // Set aside whole, under a new name, never over an earlier copy, and a new
            // file written in its place.
            let aside = save_last_used(&path, &HashMap::new(), true)
                .unwrap()
                .unwrap();
            assert_eq!(std::fs::read(&aside).unwrap(), bytes, "{what}");
            let fresh = load_last_used(&path).unwrap();
            assert_eq!(fresh.unusable, None, "{what}");
        }
        // Too large to read: judged by its size, set aside unread.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_STATE + 1)
            .unwrap();
        let why = load_last_used(&path).unwrap().unusable.unwrap_or_default();
        assert!(why.contains("more than a state file grows to"), "{why}");
        let aside = save_last_used(&path, &HashMap::new(), true)
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::metadata(&aside).unwrap().len(), MAX_STATE + 1);
        let copies = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(copies, 6, "each bad file kept, and the new one");
    }

    /// `load` refuses a directory named `name` and a FIFO as usage errors, each named
    /// with what it is and, in `unchanged`, what the command left undone.
    pub(crate) fn refuses_non_regular<T: std::fmt::Debug>(
        load: impl Fn(&Path) -> Result<T>,
        name: &str,
        unchanged: &str,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        // No writer: opened the usual way, reading it would wait for ever.
        let other = dir.path().join("other.json");
        crate::files::tests::fifo(&other);
        for (path, kind) in [(&folder, "a directory"), (&other, "a FIFO")] {
            let e = load(path).unwrap_err();
            assert_eq!(
                crate::exit::classify(&e).status,
                crate::exit::ExitStatus::Usage
            );
            let want = format!(
                "state file {} is {kind}, not a regular file; remove it or name a file with \
                 --state-file ({unchanged})",
                path.display()
            );
            assert_eq!(format!("{e:#}"), want);
        }
        assert!(folder.is_dir());
    }

    #[test]
    fn a_directory_or_a_fifo_for_a_state_file_is_a_usage_error() {
        refuses_non_regular(load_last_used, "state.json", "nothing was removed");
    }
}
