//! The watcher's import: the files a scan queued, imported at once, each remembered,
//! counted and reported as it finishes.

use anyhow::Result;

use super::files::created_records;
use super::state_file::Seen;
use super::{Queued, Watcher, records};
use crate::app::import::importer::ItemResult;
use crate::app::import::{Item, import_many};
use crate::plan::watch::{Records, brought};

impl Watcher<'_> {
    /// Who pinned what before an import, so `--unpin-removed` drops only the pins crimg
    /// set. Empty without `--pin`, or when the runtime cannot be listed.
    pub(super) async fn records_before(&self) -> Records {
        if self.pin {
            records(&self.c).await.unwrap_or_else(|e| {
                self.settings
                    .debug(format_args!("listing images before the import: {e:#}"));
                Records::new()
            })
        } else {
            Records::new()
        }
    }

    /// Imports `queued` at once. Each file is recorded as it finishes ([`Watcher::took`]),
    /// so those done before a signal stay remembered.
    pub(super) async fn import(&mut self, queued: &[Queued], before: &Records) {
        let items: Vec<Item> = queued.iter().map(|q| q.item.clone()).collect();
        let (importer, session) = (self.importer, self.session);
        import_many(importer, session, &items, |i, result| {
            self.took(&queued[i], before, result)
        })
        .await;
    }

    /// One import finished: logged, remembered with the records it brought, counted in
    /// the metrics and the report. A file that failed is not tried again until it
    /// changes, unless the runtime was lost (which says nothing about the file).
    fn took(&mut self, q: &Queued, before: &Records, result: Result<ItemResult>) {
        let (path, key, st) = (q.path.clone(), q.key.clone(), q.st);
        match result {
            Ok(res) => {
                let names: Vec<String> = res.images.iter().flat_map(|i| i.names.clone()).collect();
                self.settings.info(format_args!(
                    "imported {} image(s) from {key}: {}",
                    res.images.len(),
                    names.join(", ")
                ));
                for f in res.failures {
                    crate::exit::print_error(format_args!("{key}: {f:#}"));
                    self.report.failed.push((key.clone(), f));
                }
                self.report.written += res.written;
                let previous = self
                    .remembered
                    .files
                    .get(&key)
                    .map(|s| s.images.clone())
                    .unwrap_or_default();
                self.remembered.files.insert(
                    key.clone(),
                    Seen {
                        size: st.size,
                        mtime_ns: st.mtime_ns,
                        digest: q.digest.clone(),
                        images: brought(&created_records(&res.images), before, &previous, self.pin),
                    },
                );
                self.save();
                self.told_skipped.insert(path, st);
                self.metrics.record(Some(res.images.len()), &self.settings);
                self.report.imported.push((key, res.images));
            }
            Err(e) => {
                crate::exit::print_error(format_args!("{key}: {e:#}"));
                // A lost runtime says nothing about the file: try it again next time.
                if crate::error::ConnectionLost::of(&e).is_none() {
                    self.failed.insert(path, st);
                }
                self.metrics.record(None, &self.settings);
                self.report.failed.push((key, e));
            }
        }
    }
}
