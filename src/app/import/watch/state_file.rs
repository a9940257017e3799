//! The watch's state file: what was imported from each watched file, and the image
//! records it brought.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::app::state::{self, StateRead};
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
    /// A missing file is an empty state. A state file that cannot be used (corrupt, too
    /// large, another version) is read as empty, with the warning that says so, so every
    /// watched archive is checked against the runtime again (importing again what is
    /// there already changes nothing); the caller moves it aside. Anything at the path
    /// that is not a regular file (a directory, a FIFO) is a usage error naming it (see
    /// [`state::read_state_json`]).
    pub(crate) fn load(path: &Path) -> Result<(WatchState, Option<String>)> {
        let shown = path.display();
        let afresh =
            "treating it as empty: every watched archive is checked against the runtime again";
        let value: serde_json::Value = match state::read_state_json(path, "nothing was imported")? {
            StateRead::Missing => return Ok((WatchState::default(), None)),
            StateRead::Unusable(why) => {
                let w = format!("state file {shown} is corrupt ({why}); {afresh}");
                return Ok((WatchState::default(), Some(w)));
            }
            StateRead::Read(value) => value,
        };
        let w = match value.get("version").map(serde_json::Value::as_u64) {
            Some(Some(v)) if v == u64::from(STATE_VERSION) => {
                match serde_json::from_value::<WatchState>(value) {
                    Ok(s) => return Ok((s, None)),
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
        Ok((WatchState::default(), Some(w)))
    }

    /// Written to a synced temp file beside it, then renamed: never half-written.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        state::save_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/import-watch.json");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let (empty, problem) = WatchState::load(&path).unwrap();
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
        let (back, problem) = WatchState::load(&path).unwrap();
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
            let (s, problem) = WatchState::load(&path).unwrap();
            assert!(s.files.is_empty(), "{text}");
            assert_eq!(s.version, STATE_VERSION);
            let problem = problem.unwrap_or_default();
            assert!(problem.contains(want), "{text}: {problem}");
            assert!(problem.contains(&path.display().to_string()), "{problem}");
        }
        // Too large to be crimg's: judged by its size, unread.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(state::MAX_STATE + 1)
            .unwrap();
        let (s, problem) = WatchState::load(&path).unwrap();
        assert!(s.files.is_empty());
        let problem = problem.unwrap_or_default();
        assert!(
            problem.contains("is corrupt (67108865 bytes, more than a state file grows to"),
            "{problem}"
        );
    }

    #[test]
    fn a_directory_or_a_fifo_for_the_state_file_is_a_usage_error() {
        state::tests::refuses_non_regular(
            WatchState::load,
            "import-watch.json",
            "nothing was imported",
        );
        // Never written over.
        let dir = tempfile::tempdir().unwrap();
        assert!(WatchState::default().save(dir.path()).is_err());
        assert!(dir.path().is_dir());
    }
}
