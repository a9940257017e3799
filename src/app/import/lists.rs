//! `.txt` lists of references, pulled through CRI.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use indicatif::ProgressBar;

use super::importer::{ImportedImage, Importer, ItemResult};
use crate::app::Session;
use crate::plan::lines;

impl Importer {
    /// Pulls the references of a `.txt` list through CRI, skipping those present.
    pub(crate) async fn import_list(&self, session: &Session, path: &Path) -> Result<ItemResult> {
        let file = std::fs::File::open(path).context("reading the list")?;
        let text = lines::read_capped(file)
            .map_err(|e| anyhow!(e))
            .context("reading the list")?;
        let mut result = ItemResult::default();
        let mut lost: Option<crate::error::ConnectionLost> = None;
        for (n, line, parsed) in entries(&text) {
            // A line that is not safe to print (a control character, too long) is shown
            // as a short escaped excerpt.
            let line = match lines::check(line) {
                Ok(()) => line.to_string(),
                Err(_) => lines::shown(line),
            };
            if let Some(lost) = &lost {
                // The runtime is gone: every other reference would fail the same way.
                result.failures.push(
                    anyhow::Error::new(lost.clone())
                        .context(format!("line {n}: {line}: not attempted")),
                );
                continue;
            }
            let outcome: Result<ImportedImage> = async {
                let name = parsed.map_err(|e| anyhow!(e))?;
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
                // The line names the reference: the call's own error says the rest.
                let id = pulled.map_err(crate::error::call_error)?;
                Ok(listed(name, id, "pulled"))
            }
            .await;
            match outcome {
                Ok(i) => result.images.push(i),
                Err(e) => {
                    lost = crate::error::ConnectionLost::of(&e);
                    result.failures.push(e.context(format!("line {n}: {line}")));
                }
            }
        }
        Ok(result)
    }
}

/// The references of a list by line number (from 1), with each line as written: blank
/// lines and `#` comments skipped; a line that cannot be a reference is its error. A BOM
/// and CR LF ends are read as written (see [`lines`]).
fn entries(text: &str) -> Vec<(usize, &str, Result<String, String>)> {
    lines::numbered(text)
        .filter_map(|(n, raw)| {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let parsed = lines::check(line).and_then(|()| crate::reference::normalize(line));
            Some((n, line, parsed))
        })
        .collect()
}

fn listed(name: String, id: String, status: &'static str) -> ImportedImage {
    ImportedImage {
        names: vec![name],
        id,
        digest: String::new(),
        platforms: vec![],
        size: 0,
        status,
        replaced: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_from_windows_and_hostile_lines() {
        let names = |text: &str| -> Vec<(usize, Result<String, String>)> {
            entries(text).into_iter().map(|(n, _, r)| (n, r)).collect()
        };
        // A BOM and CR LF ends, as Notepad saves a list.
        assert_eq!(
            names("\u{feff}nginx:1\r\n# web\r\n\r\nquay.io/x/y:2\r\n"),
            [
                (1, Ok("docker.io/library/nginx:1".to_string())),
                (4, Ok("quay.io/x/y:2".to_string())),
            ]
        );
        // A NUL byte: that line fails, saying so; the others are read.
        let got = names("a:1\nng\0inx:1\nb:1\n");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].1.as_deref(), Ok("docker.io/library/a:1"));
        assert_eq!(got[1].0, 2);
        let e = got[1].1.as_ref().unwrap_err();
        assert!(e.contains("holds a NUL byte"), "{e}");
        assert_eq!(got[2].1.as_deref(), Ok("docker.io/library/b:1"));
        // An overlong line fails by its number, shown as an excerpt.
        let text = format!("a:1\n{}\n", "x".repeat(100_000));
        let got = names(&text);
        assert_eq!(got.len(), 2);
        let e = got[1].1.as_ref().unwrap_err();
        assert!(e.contains("100000 bytes long") && e.len() < 200, "{e}");
    }
}
