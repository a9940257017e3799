//! The watcher's step for archives that left the watched directories: forgotten, and
//! with `--unpin-removed` their images unpinned.

use std::path::PathBuf;

use anyhow::Result;

use super::state_file::Seen;
use super::{Watcher, files::is_gone, records};
use crate::model::LABEL_CRI_PINNED;
use crate::plan::watch::{Records, unpin_removed};

impl Watcher<'_> {
    /// Forgets each remembered file that left the directories. `runtime`: the records
    /// taken this turn, if any.
    pub(super) async fn forget_gone(&mut self, runtime: Option<&Records>) {
        let gone: Vec<String> = self
            .remembered
            .files
            .keys()
            .filter(|k| is_gone(k, &self.dirs))
            .cloned()
            .collect();
        for key in gone {
            self.forget(key, runtime).await;
        }
    }

    /// Forgets one file that left; its images are left as they are, or, with
    /// `--unpin-removed`, lose the pins crimg set. When unpinning fails the file stays
    /// remembered, to be tried again at the next scan.
    async fn forget(&mut self, key: String, runtime: Option<&Records>) {
        let Some(seen) = self.remembered.files.get(&key).cloned() else {
            return;
        };
        if self.unpin_removed {
            match self.unpin(&key, &seen, runtime).await {
                Ok(names) if names.is_empty() => self.settings.info(format_args!(
                    "forgot {key}: no longer in the directory; no pin of crimg's to drop"
                )),
                Ok(names) => self.settings.info(format_args!(
                    "unpinned {} of {key}: no longer in the directory",
                    names.join(", ")
                )),
                Err(e) => {
                    // Kept in the state: tried again at the next scan.
                    self.settings
                        .warn(format_args!("{key} left the directory: {e:#}"));
                    return;
                }
            }
        } else {
            self.settings.info(format_args!(
                "forgot {key}: no longer in the directory; its images are left as they are"
            ));
        }
        self.remembered.files.remove(&key);
        self.save();
        let path = PathBuf::from(&key);
        self.told_skipped.remove(&path);
        self.failed.remove(&path);
    }

    /// Takes the pins `--unpin-removed` takes away from what `seen` (the file `key`)
    /// brought (see [`unpin_removed`]); the names unpinned. Stops at the first that fails.
    async fn unpin(
        &self,
        key: &str,
        seen: &Seen,
        runtime: Option<&Records>,
    ) -> Result<Vec<String>> {
        let listed;
        let rt = match runtime {
            Some(r) => r,
            None => {
                listed = records(&self.c).await?;
                &listed
            }
        };
        let still = self
            .remembered
            .files
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .flat_map(|(_, s)| &s.images);
        let names = unpin_removed(&seen.images, still, rt);
        for name in &names {
            self.c
                .update_labels(name, &[], &[LABEL_CRI_PINNED.to_string()])
                .await?;
        }
        Ok(names)
    }
}
