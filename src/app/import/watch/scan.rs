//! The watcher's scan: what the directories hold, and what to do with each file in them
//! (wait for it, skip it, re-pin what it brought, or import it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Result;

use super::files::{Decision, Stat, decide, file_digest, stat};
use super::{Queued, Watcher};
use crate::app::import::Item;
use crate::app::import::walk::{Found, Stopped, walk};
use crate::archive::read::Input;
use crate::model::{LABEL_CRI_PINNED, PINNED_VALUE};
use crate::plan::watch::{Records, Verdict, verdict};

/// Walks each of `dirs` on a blocking thread. Dropping the future (a signal) stops the
/// walk at its next entry, so a signal ends even a scan of a huge tree at once.
pub(super) async fn walk_all(dirs: Vec<PathBuf>) -> Result<Vec<Result<Found, Stopped>>> {
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = stop.0.clone();
    let walked = tokio::task::spawn_blocking(move || {
        dirs.iter()
            .map(|d| walk(d, false, &flag))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| anyhow::anyhow!("scanning task: {e}"));
    drop(stop);
    walked
}

/// Sets its flag when dropped: the walk in progress stops.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What one scan found to do.
pub(super) struct Scan {
    /// The files to import, in name order.
    pub(super) queued: Vec<Queued>,
    /// A file is waiting to settle: look again after
    /// [`SETTLE`](crate::plan::watch::SETTLE).
    pub(super) waiting: bool,
}

/// What one scan does with one file.
enum Next {
    /// Nothing more: skipped, re-pinned, failed before at this size and mtime, or unreadable.
    Pass,
    /// Changed lately: look again later.
    Wait,
    Import(Queued),
}

impl Watcher<'_> {
    /// The files the walks found, sorted; what they passed over is warned about once.
    pub(super) fn found(&mut self, walked: Vec<Result<Found, Stopped>>) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for (d, found) in self.dirs.iter().zip(walked) {
            match found {
                Ok(found) => {
                    for (p, why) in found.skipped {
                        if self.warned.insert(p.clone()) {
                            self.settings
                                .warn(format_args!("skipped {}: {why}", p.display()));
                        }
                    }
                    files.extend(found.paths);
                }
                Err(e) => {
                    if self.warned.insert(d.clone()) {
                        self.settings
                            .warn(format_args!("{}: {e}; not scanned", d.display()));
                    }
                }
            }
        }
        files.sort();
        files
    }

    /// Looks at each of `files`, in order. `runtime`: the records taken this turn, if
    /// any, that an unchanged file's images are held to.
    pub(super) async fn look_at(
        &mut self,
        files: Vec<PathBuf>,
        runtime: Option<&Records>,
    ) -> Result<Scan> {
        let now = Instant::now();
        let mut scan = Scan {
            queued: Vec::new(),
            waiting: false,
        };
        for path in files {
            let Some(st) = stat(&path) else { continue };
            match self.look(path, st, now, runtime).await? {
                Next::Pass => {}
                Next::Wait => scan.waiting = true,
                Next::Import(q) => scan.queued.push(q),
            }
        }
        Ok(scan)
    }

    /// One file, of size and mtime `st` at `now`: new or changed, it is imported once it
    /// has settled, unless its bytes are those imported before; unchanged, it is held to
    /// the runtime ([`Watcher::hold`]).
    async fn look(
        &mut self,
        path: PathBuf,
        st: Stat,
        now: Instant,
        runtime: Option<&Records>,
    ) -> Result<Next> {
        let key = path.display().to_string();
        if self.failed.get(&path) == Some(&st) {
            return Ok(Next::Pass);
        }
        let last_look = self.looks.get(&path).copied();
        let unchanged = match decide(st, self.remembered.files.get(&key), last_look, now) {
            Decision::Skip => "imported before (same size and mtime)",
            Decision::Wait => {
                self.looks.insert(path, (st, now));
                return Ok(Next::Wait);
            }
            Decision::Import => {
                self.looks.remove(&path);
                let Some(digest) = self.digest(&path).await? else {
                    return Ok(Next::Pass);
                };
                if let Some(seen) = self.remembered.files.get_mut(&key)
                    && seen.digest == digest
                {
                    // Touched or copied again, same bytes: nothing new to import.
                    seen.size = st.size;
                    seen.mtime_ns = st.mtime_ns;
                    self.save();
                    "same content as imported before"
                } else {
                    return Ok(Next::Import(Queued::new(path, key, st, digest)));
                }
            }
        };
        Ok(self.hold(path, key, st, unchanged, runtime).await)
    }

    /// The file's content digest, read on a blocking thread; `None` (warned) when it
    /// cannot be read.
    async fn digest(&self, path: &Path) -> Result<Option<String>> {
        let p = path.to_path_buf();
        let digest = tokio::task::spawn_blocking(move || file_digest(&p))
            .await
            .map_err(|e| anyhow::anyhow!("hashing task: {e}"))?;
        match digest {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                self.settings.warn(format_args!("{e:#}"));
                Ok(None)
            }
        }
    }

    /// A file unchanged since it was imported (`unchanged` says how that is known): with
    /// the runtime's records at hand, what it brought is held to them ([`verdict`]) and
    /// re-pinned or imported again when the runtime lost some of it; else skipped.
    async fn hold(
        &mut self,
        path: PathBuf,
        key: String,
        st: Stat,
        unchanged: &str,
        runtime: Option<&Records>,
    ) -> Next {
        let Some(seen) = self.remembered.files.get(&key).cloned() else {
            return Next::Pass;
        };
        let v = match runtime {
            Some(rt) => verdict(&seen.images, rt, self.pin),
            None => Verdict::Keep,
        };
        match v {
            Verdict::Keep => {
                if self.told_skipped.insert(path, st) != Some(st) {
                    let checked = if runtime.is_some() {
                        ", its images are present"
                    } else {
                        ""
                    };
                    self.settings
                        .info(format_args!("skipped {key}: {unchanged}{checked}"));
                }
                Next::Pass
            }
            Verdict::Repin { records } => {
                self.repin(&key, &records).await;
                Next::Pass
            }
            Verdict::Reimport { reasons } => {
                self.settings.info(format_args!(
                    "importing {key} again: {}",
                    reasons.join("; ")
                ));
                Next::Import(Queued::new(path, key, st, seen.digest))
            }
        }
    }

    /// Sets the pin label again on `records`, which the file `key` brought; the archive
    /// is not read. A failure is warned about, and tried again at the next check.
    async fn repin(&mut self, key: &str, records: &[String]) {
        let set = [(LABEL_CRI_PINNED.to_string(), PINNED_VALUE.to_string())];
        let mut result = Ok(());
        for r in records {
            result = self.c.update_labels(r, &set, &[]).await;
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => {
                self.settings.info(format_args!(
                    "re-pinned {} from {key}: pin removed (the archive was not read again)",
                    records.join(", ")
                ));
                if let Some(seen) = self.remembered.files.get_mut(key) {
                    for b in &mut seen.images {
                        b.pinned_by_crimg |= records.contains(&b.name);
                    }
                }
                self.save();
            }
            Err(e) => self.settings.warn(format_args!("re-pinning {key}: {e:#}")),
        }
    }
}

impl Queued {
    /// The file at `path` (`key` in the state), to import as a `.txt` list or an archive.
    fn new(path: PathBuf, key: String, st: Stat, digest: String) -> Queued {
        Queued {
            item: if path.extension().is_some_and(|e| e == "txt") {
                Item::List(path.clone())
            } else {
                Item::Archive(Input::File(path.clone()))
            },
            path,
            key,
            st,
            digest,
        }
    }
}
