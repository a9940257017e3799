//! What every import of one run shares, and one archive's import under its own lease.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::job::{Arrivals, Job, Layers, Recorded, unpack_parallelism};
use super::many::{ChainLocks, Ticket, Turns};
use crate::app::{Session, Settings};
use crate::archive::read::Input;
use crate::cli::ImportArgs;
use crate::model::short_id;
use crate::plan::import::PlanOptions;
use crate::plan::platform::PlatformChoice;
use crate::runtime::containerd::Containerd;
use crate::runtime::leases::HeldLeases;

/// How long an abandoned import's lease keeps its content (a killed crimg), unless a
/// later crimg releases it first.
const LEASE_EXPIRE: Duration = Duration::from_secs(4 * 3600);
/// How long to wait for CRI to list a new image.
const CRI_WAIT: Duration = Duration::from_secs(10);

/// One image an item brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImportedImage {
    pub(crate) names: Vec<String>,
    pub(crate) id: String,
    pub(crate) digest: String,
    pub(crate) platforms: Vec<String>,
    pub(crate) size: u64,
    /// `imported`, `pulled` or `present` (a list's reference that was already there).
    pub(crate) status: &'static str,
    /// The names this import pointed away from another image.
    pub(crate) replaced: Vec<Replacement>,
}

/// A name an import took from another image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replacement {
    pub(crate) name: String,
    /// The image the name pointed at before: its ID, or the digest its record pointed at
    /// when containerd keeps no ID record for it (imported by another client).
    pub(crate) was: String,
    /// The digest the record pointed at before.
    pub(crate) old_target: String,
    /// The record carried a pin, which moved with the name.
    pub(crate) pinned: bool,
}

/// What one item did.
#[derive(Debug, Default)]
pub(crate) struct ItemResult {
    pub(crate) images: Vec<ImportedImage>,
    /// Bytes written to the content store.
    pub(crate) written: u64,
    /// Per-reference failures of a list (the item's other references may have worked),
    /// each shown as `line N: REFERENCE: WHY`.
    pub(crate) failures: Vec<anyhow::Error>,
}

/// What every import of one run shares.
pub(crate) struct Importer {
    pub(crate) c: Containerd,
    pub(crate) settings: Settings,
    pub(super) opts: PlanOptions,
    /// `None`: do not unpack.
    pub(super) snapshotter: Option<String>,
    pub(super) pin: bool,
    pub(super) multi: MultiProgress,
    /// The leases of the imports in progress, for [`Importer::abandon`].
    pub(super) current_lease: HeldLeases,
    /// The order imports write their records in.
    pub(super) turns: Turns,
    /// Chains being applied, across the archives imported at once.
    pub(super) chains: ChainLocks,
}

impl Importer {
    pub(crate) async fn new(session: &mut Session, args: &ImportArgs) -> Result<Importer> {
        let c = session.containerd().await?.clone();
        // What killed runs left under their leases goes before this run adds its own.
        crate::app::release_stale_leases(&c, &session.settings).await;
        let snapshotter = if args.no_unpack {
            None
        } else if let Some(s) = &args.snapshotter {
            Some(s.clone())
        } else {
            Some(session.snapshotter().await?)
        };
        if let Some(s) = &snapshotter {
            session.settings.debug(format_args!("unpacking into {s}"));
        }
        let multi = MultiProgress::with_draw_target(crate::render::progress::target(
            session.settings.progress,
        ));
        Ok(Importer {
            c,
            settings: session.settings.clone(),
            opts: PlanOptions {
                platforms: PlatformChoice::from_args(&args.platform, args.all_platforms),
                base_name: args.base_name.clone(),
            },
            snapshotter,
            pin: args.pin,
            multi,
            current_lease: HeldLeases::default(),
            turns: Turns::default(),
            chains: ChainLocks::default(),
        })
    }

    /// Imports one archive under its own lease; on failure nothing of it stays. Its image
    /// records are written at `ticket`'s turn.
    pub(crate) async fn import_archive(
        &self,
        session: &Session,
        input: &Input,
        ticket: &Ticket<'_>,
    ) -> Result<ItemResult> {
        let lease = self
            .c
            .create_held_lease(&self.current_lease, "import", LEASE_EXPIRE)
            .await?;
        let job = Job {
            imp: self,
            c: self.c.with_lease(&lease)?,
            lease: lease.clone(),
            bar: self.bar(input),
            written: AtomicU64::new(0),
            started: Instant::now(),
            recorded: std::sync::Mutex::new(Vec::new()),
            ticket,
            file: input.display(),
            layers: Layers::default(),
            applying: tokio::sync::Semaphore::new(unpack_parallelism()),
            arrived: tokio::sync::watch::Sender::new(Arrivals::default()),
        };
        let result = job.run(input).await;
        job.bar.finish_and_clear();
        self.current_lease.forget(&lease);
        match result {
            Ok(images) => {
                job.phase("recorded");
                let recorded = job.recorded.lock().map(|r| r.clone()).unwrap_or_default();
                // Checked under the lease: what CRI refuses is undone, and its blobs and
                // snapshots go with the lease.
                let listed = self.wait_for_cri(session, &images, &recorded).await;
                let mut kept = Vec::new();
                let mut failures = Vec::new();
                let refused = unlisted(&recorded, &listed);
                for (i, image) in images.into_iter().enumerate() {
                    if !refused.contains(&i) {
                        kept.push(image);
                        continue;
                    }
                    let name = image.names.first().unwrap_or(&image.id).clone();
                    for (record, change) in recorded[i].changes.iter().rev() {
                        if let Err(e) = self.c.undo_put_image(record, change).await {
                            self.settings.warn(format_args!("{e:#}"));
                        }
                    }
                    failures.push(anyhow::anyhow!(
                        "{name}: containerd stored the image but CRI does not list it after {}s \
                         (CRI ImageStatus: no such image), so a pod could not use it; its records \
                         were removed. containerd's log says why CRI refused its config {}",
                        CRI_WAIT.as_secs(),
                        image.id
                    ));
                }
                if let Err(e) = self.c.delete_lease(&lease, !failures.is_empty()).await {
                    self.settings.warn(format_args!("{e:#}"));
                }
                // Only now that the new records stand: a rolled-back import leaves the old
                // image its pin.
                self.release_moved_pins(&kept).await;
                if failures.is_empty() {
                    job.phase("listed by CRI");
                }
                Ok(ItemResult {
                    images: kept,
                    written: job.written.load(Ordering::Relaxed),
                    failures,
                })
            }
            Err(e) => {
                if let Err(e2) = self.c.delete_lease(&lease, true).await {
                    self.settings.warn(format_args!("{e2:#}"));
                }
                Err(e)
            }
        }
    }

    /// An old image whose last tag an import took, with the tag's pin: its pin went with the
    /// tag ([`crate::plan::pin::unpin_after_tag_moved`]).
    async fn release_moved_pins(&self, images: &[ImportedImage]) {
        let mut olds: BTreeMap<&str, (&Replacement, &ImportedImage)> = BTreeMap::new();
        for image in images {
            for r in image.replaced.iter().filter(|r| r.pinned) {
                olds.entry(r.old_target.as_str()).or_insert((r, image));
            }
        }
        for (old, (r, image)) in olds {
            let released = async {
                let remaining = self.c.images_targeting(old).await?;
                let edits = crate::plan::pin::unpin_after_tag_moved(&remaining);
                for e in &edits {
                    self.c.update_labels(&e.record, &e.set, &e.remove).await?;
                }
                anyhow::Ok(!edits.is_empty())
            }
            .await;
            match released {
                Ok(false) => {}
                Ok(true) => self.settings.info(format_args!(
                    "{}: moved from {} to {}, with its pin; {} has no tag left and is no longer pinned",
                    r.name,
                    short_id(&r.was),
                    short_id(&image.id),
                    short_id(&r.was),
                )),
                Err(e) => self.settings.warn(format_args!(
                    "{}: moved from {}, with its pin, but unpinning the untagged {} failed ({e:#}); \
                     `crimg unpin {}` does it",
                    r.name, r.was, r.was, r.was
                )),
            }
        }
    }

    /// Cleans up after imports that were cancelled midway (a signal): their leases go,
    /// and with them whatever they had written.
    pub(crate) async fn abandon(&self) {
        for (c, lease) in self.current_lease.take() {
            if let Err(e) = c.delete_lease(&lease, true).await {
                self.settings.warn(format_args!("{e:#}"));
            }
        }
    }

    fn bar(&self, input: &Input) -> ProgressBar {
        if !self.settings.progress {
            return ProgressBar::hidden();
        }
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix:9} {msg:30!} {decimal_bytes:>10}/{decimal_total_bytes:10} {wide_bar} {decimal_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let name = match input {
            Input::Stdin => "stdin".to_string(),
            Input::File(p) | Input::Dir(p) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        };
        bar.set_message(name);
        bar.set_prefix("reading");
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// CRI learns of new images from containerd's events; wait (at most [`CRI_WAIT`] in
    /// all) until it lists each image this host runs, so a pod can use them as soon as
    /// this command returns. Per image: `Some(listed)`, or `None` when CRI is not asked
    /// (a foreign platform, which CRI never lists) or cannot answer.
    async fn wait_for_cri(
        &self,
        session: &Session,
        images: &[ImportedImage],
        recorded: &[Recorded],
    ) -> Vec<Option<bool>> {
        let start = Instant::now();
        let mut listed = Vec::with_capacity(images.len());
        for (i, image) in images.iter().enumerate() {
            let name = image.names.first().unwrap_or(&image.id);
            if !recorded.get(i).is_some_and(|r| r.runs_here) {
                self.settings.debug(format_args!(
                    "{name} has no manifest for this host; CRI does not list it"
                ));
                listed.push(None);
                continue;
            }
            let found = loop {
                match session.cri.image_id(name).await {
                    Ok(Some(_)) => break Some(true),
                    Ok(None) if start.elapsed() < CRI_WAIT => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(None) => break Some(false),
                    Err(e) => {
                        self.settings.warn(format_args!(
                            "cannot ask CRI whether it lists {name}: {e:#}"
                        ));
                        break None;
                    }
                }
            };
            listed.push(found);
        }
        listed
    }
}

/// The images that fail the CRI check: those this host runs that CRI did not list.
/// `recorded` and `listed` are per image, in the same order.
fn unlisted(recorded: &[Recorded], listed: &[Option<bool>]) -> Vec<usize> {
    debug_assert_eq!(recorded.len(), listed.len());
    recorded
        .iter()
        .zip(listed)
        .enumerate()
        .filter(|(_, (r, l))| r.runs_here && **l == Some(false))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::images::RecordChange;

    fn rec(runs_here: bool) -> Recorded {
        Recorded {
            changes: vec![("docker.io/library/a:1".into(), RecordChange::Created)],
            runs_here,
        }
    }

    #[test]
    fn only_images_this_host_runs_that_cri_does_not_list_are_undone() {
        type Case<'a> = (&'a [Recorded], &'a [Option<bool>], &'a [usize]);
        let cases: [Case; 6] = [
            (&[rec(true)], &[Some(true)], &[]),
            (&[rec(true)], &[Some(false)], &[0]),
            // CRI could not be asked: nothing is undone on a guess.
            (&[rec(true)], &[None], &[]),
            // A foreign image is never listed by CRI: kept.
            (&[rec(false)], &[None], &[]),
            (&[rec(false)], &[Some(false)], &[]),
            (
                &[rec(true), rec(true), rec(false)],
                &[Some(true), Some(false), None],
                &[1],
            ),
        ];
        for (recorded, listed, want) in cases {
            assert_eq!(unlisted(recorded, listed), want, "{listed:?}");
        }
    }
}
