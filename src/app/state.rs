//! What crimg remembers between runs: when it last saw each image in use.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
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

/// Reads a JSON state file; a missing file is the default (empty) state.
pub(crate) fn load_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "state file {} is not crimg's JSON; move it away to start afresh",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("reading state file {}", path.display())),
    }
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

/// Reads the last-use times; a missing file is an empty history.
pub(crate) fn load_last_used(path: &Path) -> Result<HashMap<String, SystemTime>> {
    let state: StateFile = load_json(path)?;
    Ok(state
        .last_used
        .into_iter()
        .filter_map(|(id, t)| humantime::parse_rfc3339(&t).ok().map(|t| (id, t)))
        .collect())
}

/// Writes the last-use times atomically.
pub(crate) fn save_last_used(path: &Path, last_used: &HashMap<String, SystemTime>) -> Result<()> {
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
    save_json(path, &state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert!(load_last_used(&path).unwrap().is_empty());
        let t = humantime::parse_rfc3339("2026-01-02T03:04:05Z").unwrap();
        let map = HashMap::from([("sha256:aa".to_string(), t)]);
        save_last_used(&path, &map).unwrap();
        assert_eq!(load_last_used(&path).unwrap(), map);
        std::fs::write(&path, "garbage").unwrap();
        assert!(load_last_used(&path).is_err());
    }
}
