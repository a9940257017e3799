//! Removing what a prune planned: containerd's records and one garbage collection, or
//! CRI's RemoveImage; stopping at a lost connection; waiting for CRI to catch up.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{Session, Settings, status_text};
use crate::error::ConnectionLost;
use crate::model::{Image, ImageRecord, Inventory};
use crate::plan::inventory::cri_aliases;
use crate::plan::prune::{Decision, Plan};
use crate::render::{self};
use crate::runtime::containerd::Containerd;

use super::{CRI_CATCH_UP, CRI_GRACE};

/// Removes the planned images. Returns those that failed, with the error, and when
/// some failed because the connection to the runtime was lost, the socket and why.
/// Once a removal has failed that way no new one starts: the rest would fail alike, and
/// are reported as failed, not attempted, for that reason.
///
/// With containerd, every record of every image (tags, digests, the ID record CRI keeps)
/// is deleted without waiting for garbage collection, a bounded number at a time, then
/// one synchronous collection runs for the whole prune instead of one per image. CRI's
/// view follows the deletes; we wait until it has.
/// Other runtimes get bounded parallel CRI `RemoveImage` calls.
pub(super) async fn remove(
    session: &mut Session,
    inv: &Inventory,
    plan: &Plan,
    parallel: usize,
) -> (Vec<(Image, String)>, Option<ConnectionLost>) {
    let removals: Vec<&Decision> = plan.removals().collect();
    let bar = progress(&session.settings, removals.len() as u64);
    let containerd = if inv.containerd {
        session.containerd().await.ok().cloned()
    } else {
        None
    };
    let stop = Stop::default();
    let settings = session.settings.clone();
    let results: Vec<(Image, Result<()>)> = match &containerd {
        Some(c) => {
            let with_records = removals.iter().filter(|d| !d.image.records.is_empty());
            let out: Vec<(Image, Result<()>)> = stream::iter(with_records)
                .map(|d| {
                    let (bar, stop, settings) = (&bar, &stop, &settings);
                    async move {
                        if let Some(e) = stop.not_attempted() {
                            return (d.image.clone(), Err(e));
                        }
                        let mut result = Ok(());
                        let records = with_cri_aliases(c, &d.image.records, settings).await;
                        for r in &records {
                            if let Err(e) = c.delete_image(r, false).await {
                                stop.check(&e);
                                result = Err(e);
                                break;
                            }
                        }
                        bar.inc(1);
                        (d.image.clone(), result)
                    }
                })
                .buffer_unordered(parallel)
                .collect()
                .await;
            // Images CRI lists without a containerd record of their own go through CRI.
            let cri_only = removals.iter().filter(|d| d.image.records.is_empty());
            let mut out = out;
            out.extend(cri_remove(session, cri_only, parallel, &bar, &stop).await);
            // One collection for the whole prune. Re-deleting a deleted record with `sync`
            // would answer NotFound before collecting anything; deleting an empty lease
            // with `sync` always collects. Not once the connection is lost: the call
            // would fail too, and a restarted containerd collects by itself.
            if stop.0.get().is_none()
                && out.iter().any(|(_, r)| r.is_ok())
                && let Err(e) = collect_garbage(c).await
            {
                session.settings.warn(format_args!(
                    "final garbage collection: {}",
                    status_text(&e)
                ));
            }
            out
        }
        None => cri_remove(session, removals.iter(), parallel, &bar, &stop).await,
    };
    bar.finish_and_clear();
    let removed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i.id.as_str())
        .collect();
    wait_for_cri(session, &removed).await;
    let lost = results
        .iter()
        .find_map(|(_, r)| r.as_ref().err().and_then(ConnectionLost::of));
    let failed = results
        .into_iter()
        .filter_map(|(i, r)| r.err().map(|e| (i, status_text(&e))))
        .collect();
    (failed, lost)
}

/// An image's records, and before them the records made for names CRI keeps in another
/// form than containerd's ([`cri_aliases`]): deleting those is what takes the image off
/// CRI's list too (see [`Containerd::alias_for_cri`]).
async fn with_cri_aliases(
    c: &Containerd,
    records: &[ImageRecord],
    settings: &Settings,
) -> Vec<ImageRecord> {
    let mut out = Vec::new();
    for (alias, r) in cri_aliases(records) {
        match c.alias_for_cri(r, &alias, CRI_GRACE).await {
            Ok(marked) => {
                if !marked {
                    settings.debug(format_args!("CRI did not take in {alias} in time"));
                }
                out.push(ImageRecord {
                    name: alias,
                    ..r.clone()
                });
            }
            Err(e) => settings.debug(format_args!("{}", status_text(&e))),
        }
    }
    out.extend(records.iter().cloned());
    out
}

/// Runs containerd's garbage collection and waits for it.
pub(super) async fn collect_garbage(c: &Containerd) -> Result<()> {
    let lease = c.create_lease("prune-gc", Duration::from_secs(60)).await?;
    c.delete_lease(&lease, true).await
}

/// Set by the first removal that failed because the connection to the runtime was lost.
#[derive(Default)]
pub(super) struct Stop(std::sync::OnceLock<ConnectionLost>);

impl Stop {
    fn check(&self, e: &anyhow::Error) {
        if let Some(lost) = ConnectionLost::of(e) {
            let _ = self.0.set(lost);
        }
    }

    /// The error of a removal not started because the connection was lost.
    fn not_attempted(&self) -> Option<anyhow::Error> {
        self.0
            .get()
            .map(|lost| anyhow::Error::new(lost.clone()).context("not attempted"))
    }
}

pub(super) async fn cri_remove<'a>(
    session: &Session,
    decisions: impl Iterator<Item = &'a &'a Decision>,
    parallel: usize,
    bar: &ProgressBar,
    stop: &Stop,
) -> Vec<(Image, Result<()>)> {
    let cri = &session.cri;
    stream::iter(decisions)
        .map(|d| async move {
            if let Some(e) = stop.not_attempted() {
                return (d.image.clone(), Err(e));
            }
            let r = cri.remove_image(&d.image.id).await;
            if let Err(e) = &r {
                stop.check(e);
            }
            bar.inc(1);
            (d.image.clone(), r)
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// Waits until CRI no longer lists the removed images, so the next command sees the
/// node as it now is. CRI follows containerd's deleted records by their events, and misses
/// some: a record named without a registry (`app/x:1.0`, as `ctr import` names an OCI
/// archive's image) is one CRI keeps under another name, so it lists the image on. What
/// CRI still lists after [`CRI_GRACE`] is removed through CRI `RemoveImage` (harmless when
/// CRI was only slow), once, and then waited for.
pub(super) async fn wait_for_cri(session: &Session, removed: &[&str]) {
    if removed.is_empty() {
        return;
    }
    let start = Instant::now();
    let mut asked = false;
    loop {
        let Ok(images) = session.cri.list_images().await else {
            return;
        };
        let left: Vec<&str> = images
            .iter()
            .map(|i| i.id.as_str())
            .filter(|id| removed.contains(id))
            .collect();
        if left.is_empty() {
            return;
        }
        if !asked && start.elapsed() > CRI_GRACE {
            asked = true;
            session.settings.debug(format_args!(
                "CRI still lists {} removed image(s); removing them through CRI",
                left.len()
            ));
            for id in &left {
                if let Err(e) = session.cri.remove_image(id).await {
                    session.settings.debug(format_args!("{}", status_text(&e)));
                }
            }
            continue;
        }
        if start.elapsed() > CRI_CATCH_UP {
            session.settings.warn(format_args!(
                "{} removed image(s) still listed by the runtime after {}s",
                left.len(),
                CRI_CATCH_UP.as_secs()
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) fn progress(settings: &Settings, len: u64) -> ProgressBar {
    if !settings.progress || len < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), render::progress::target(true));
    bar.set_style(
        ProgressStyle::with_template("{spinner} removing {pos}/{len} images {wide_bar} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
