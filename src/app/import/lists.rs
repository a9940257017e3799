//! `.txt` lists of references, pulled through CRI.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use indicatif::ProgressBar;

use super::importer::{ImportedImage, Importer, ItemResult};
use crate::app::Session;

impl Importer {
    /// Pulls the references of a `.txt` list through CRI, skipping those present.
    pub(crate) async fn import_list(&self, session: &Session, path: &Path) -> Result<ItemResult> {
        let text = std::fs::read_to_string(path).context("reading the list")?;
        let mut result = ItemResult::default();
        let mut lost: Option<crate::error::ConnectionLost> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(lost) = &lost {
                // The runtime is gone: every other reference would fail the same way.
                result
                    .failures
                    .push(anyhow::Error::new(crate::error::CrimgError::Lost {
                        shown: format!("line {}: {line}: not attempted: {lost}", n + 1),
                        lost: lost.clone(),
                    }));
                continue;
            }
            let outcome: Result<ImportedImage> = async {
                let name = crate::reference::normalize(line).map_err(|e| anyhow!(e))?;
                if let Some(id) = session.cri.image_id(&name).await? {
                    return Ok(listed(name, id, "present"));
                }
                let bar = self.multi.add(if self.settings.progress {
                    ProgressBar::new_spinner()
                } else {
                    ProgressBar::hidden()
                });
                bar.set_message(format!("pulling {name}"));
                bar.enable_steady_tick(Duration::from_millis(200));
                let pulled = session.cri.pull_image(&name).await;
                bar.finish_and_clear();
                let id =
                    pulled.map_err(|e| crate::error::flattened(crate::app::status_text(&e), &e))?;
                Ok(listed(name, id, "pulled"))
            }
            .await;
            match outcome {
                Ok(i) => result.images.push(i),
                Err(e) => {
                    lost = crate::error::ConnectionLost::of(&e);
                    result.failures.push(crate::error::flattened(
                        format!("line {}: {line}: {e:#}", n + 1),
                        &e,
                    ));
                }
            }
        }
        Ok(result)
    }
}

fn listed(name: String, id: String, status: &'static str) -> ImportedImage {
    ImportedImage {
        names: vec![name],
        id,
        digest: String::new(),
        platforms: vec![],
        size: 0,
        status,
    }
}
