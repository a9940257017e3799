//! What crimg remembers between runs: when it last saw each image in use.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::archive::sink::AtomicFile;

/// The state directory: `CRIMG_STATE_DIR`, else `/var/lib/crimg`.
pub(crate) fn state_dir() -> PathBuf {
    std::env::var_os("CRIMG_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/crimg"))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    /// Image ID → RFC 3339 time crimg last saw it used.
    #[serde(default)]
    last_used: BTreeMap<String, String>,
}

/// Writes a JSON state file to a temp file beside it, then renames it: never half-written.
pub(crate) fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let sink = AtomicFile::create(path, ".crimg-state-", 0o600)?;
    serde_json::to_writer_pretty(sink.file(), value)?;
    sink.commit(true)
        .with_context(|| format!("writing state file {}", path.display()))?;
    Ok(())
}

/// The largest state file read: about 100 bytes an image, so far more than any node holds.
const MAX_STATE: u64 = 64 << 20;

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
/// neither reads nor replaces it.
pub(crate) fn load_last_used(path: &Path) -> Result<LastUsed> {
    use std::io::Read as _;
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LastUsed::default()),
        Err(e) => return Err(e).with_context(|| format!("reading state file {}", path.display())),
    };
    if !meta.is_file() {
        return Err(anyhow::Error::new(crate::error::CrimgError::Usage(
            format!(
                "state file {} is a {}, not a regular file; remove it or name a file with \
             --state-file (nothing was removed)",
                path.display(),
                if meta.is_dir() {
                    "directory"
                } else {
                    "special file"
                }
            ),
        )));
    }
    if meta.len() > MAX_STATE {
        return Ok(LastUsed {
            unusable: Some(format!(
                "{} bytes, more than a state file grows to ({} MiB)",
                meta.len(),
                MAX_STATE >> 20
            )),
            ..LastUsed::default()
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_STATE).read_to_end(&mut bytes))
        .with_context(|| format!("reading state file {}", path.display()))?;
    let state: StateFile = match serde_json::from_slice(&bytes) {
        Ok(state) => state,
        Err(e) => {
            return Ok(LastUsed {
                unusable: Some(format!("not crimg's JSON: {e}")),
                ..LastUsed::default()
            });
        }
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

/// Renames an unusable state file beside itself, `state.json.bad-<unix seconds>`, never
/// over an existing file. Returns the new path.
fn set_aside(path: &Path) -> Result<PathBuf> {
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
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
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

    #[test]
    fn a_directory_for_a_state_file_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::create_dir(&path).unwrap();
        let e = load_last_used(&path).unwrap_err();
        assert_eq!(
            crate::exit::classify(&e).status,
            crate::exit::ExitStatus::Usage
        );
        let shown = format!("{e:#}");
        assert!(
            shown.contains(&format!("state file {} is a directory", path.display())),
            "{shown}"
        );
        assert!(path.is_dir());
    }
}
