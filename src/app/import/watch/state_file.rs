//! The watch's state file: what was imported from each watched file, and the image
//! records it brought.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::plan::watch::Brought;

/// The state file format this crimg writes. Version 0 (no `version` field) named images
/// without their targets; it is not read (everything is checked against the runtime).
pub(crate) const STATE_VERSION: u32 = 1;

/// What the state file remembers of one imported file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seen {
    pub(crate) size: u64,
    /// Nanoseconds since the epoch.
    pub(crate) mtime_ns: u64,
    /// `sha256:` of the file's bytes.
    pub(crate) digest: String,
    /// The image records the file brought.
    #[serde(default)]
    pub(crate) images: Vec<Brought>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WatchState {
    pub(crate) version: u32,
    /// Absolute path → what was imported from it.
    #[serde(default)]
    pub(crate) files: BTreeMap<String, Seen>,
}

impl Default for WatchState {
    fn default() -> Self {
        WatchState {
            version: STATE_VERSION,
            files: BTreeMap::new(),
        }
    }
}

impl WatchState {
    /// Never fails: a state file that cannot be used (unreadable, corrupt, another
    /// version) is reported in the returned warning and read as empty, so every watched
    /// archive is checked against the runtime again. A missing file is an empty state.
    pub(crate) fn load(path: &Path) -> (WatchState, Option<String>) {
        let shown = path.display();
        let afresh =
            "treating it as empty: every watched archive is checked against the runtime again";
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (WatchState::default(), None);
            }
            Err(e) => {
                let w = format!("cannot read state file {shown} ({e}); {afresh}");
                return (WatchState::default(), Some(w));
            }
        };
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                let w = format!("state file {shown} is corrupt ({e}); {afresh}");
                return (WatchState::default(), Some(w));
            }
        };
        let w = match value.get("version").map(serde_json::Value::as_u64) {
            Some(Some(v)) if v == u64::from(STATE_VERSION) => {
                match serde_json::from_value::<WatchState>(value) {
                    Ok(s) => return (s, None),
                    Err(e) => format!("state file {shown} is corrupt ({e}); {afresh}"),
                }
            }
            None => format!(
                "state file {shown} has no version (an older crimg wrote it, without the images' digests); {afresh}"
            ),
            Some(_) => format!(
                "state file {shown} has version {}, this crimg reads version {STATE_VERSION}; {afresh}",
                value["version"]
            ),
        };
        (WatchState::default(), Some(w))
    }

    /// Written to a synced temp file beside it, then renamed: never half-written.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        crate::app::state::save_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/import-watch.json");
        let (empty, problem) = WatchState::load(&path);
        assert!(empty.files.is_empty() && problem.is_none());
        let mut s = WatchState::default();
        s.files.insert(
            "/images/a.tar".into(),
            Seen {
                size: 1,
                mtime_ns: 2,
                digest: "sha256:ab".into(),
                images: vec![Brought {
                    name: "docker.io/library/a:1".into(),
                    target: "sha256:cd".into(),
                    pinned_by_crimg: true,
                }],
            },
        );
        s.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        let (back, problem) = WatchState::load(&path);
        assert_eq!(back.files, s.files);
        assert_eq!(problem, None);
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["import-watch.json"]);
    }

    #[test]
    fn unusable_state_files_read_as_empty_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("import-watch.json");
        let v0 = r#"{"files":{"/images/a.tar":{"size":1,"mtime_ns":2,"digest":"sha256:ab","images":["docker.io/library/a:1"]}}}"#;
        let cases = [
            ("nonsense", "is corrupt"),
            ("{\"version\": 1, \"files\": {\"/a.tar\": 3}}", "is corrupt"),
            ("{\"version\": 1, \"fi", "is corrupt"),
            (v0, "has no version"),
            ("{\"version\": 7, \"files\": {}}", "has version 7"),
            (
                "{\"version\": \"one\", \"files\": {}}",
                "has version \"one\"",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let (s, problem) = WatchState::load(&path);
            assert!(s.files.is_empty(), "{text}");
            assert_eq!(s.version, STATE_VERSION);
            let problem = problem.unwrap_or_default();
            assert!(problem.contains(want), "{text}: {problem}");
            assert!(problem.contains(&path.display().to_string()), "{problem}");
        }
        // A directory where the state file should be: read as empty, never written over.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let (s, problem) = WatchState::load(&path);
        assert!(s.files.is_empty() && problem.is_some());
        assert!(s.save(&path).is_err());
        assert!(path.is_dir());
    }
}
