//! `crimg import --watch`: a watched directory declares a set of images; keep it imported.
//!
//! inotify (through `notify`) says when something changed; a scan then decides. A file
//! is imported once its size and mtime have stayed the same for [`SETTLE`], so a file
//! still being copied in is not read half-written. What was imported is remembered in a
//! state file: per file its path, size, mtime and content digest, and the image records
//! it brought with their target digests. A file seen again unchanged is skipped only when
//! every record it brought is still in the runtime with that target (and pinned, with
//! `--pin`); otherwise it is imported again, or only re-pinned when nothing but the pin
//! label is gone. That check runs at start, and with `--pin` every `--recheck-interval`
//! and soon after containerd reports an image deleted (without `--pin` a deliberate
//! prune is not fought). An archive that leaves the
//! directory leaves its images as they are, unless `--unpin-removed`. Without inotify
//! (limits reached, unsupported filesystem) or with `--poll` it polls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, Result};
use notify::Watcher as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::import::walk::walk;
use crate::app::import::{ImportedImage, Importer, Item, Report, import_item};
use crate::app::{Outcome, Session, Settings, state};
use crate::archive::read::Input;
use crate::cli::ImportArgs;
use crate::error::CrimgError;
use crate::model::{LABEL_CRI_PINNED, PINNED_VALUE};
use crate::plan::watch::{Brought, Records, Verdict, brought, unpin_removed, verdict};
use crate::runtime::containerd::Containerd;
use crate::runtime::content::sha256_digest;

/// How long a file's size and mtime must hold still before it is imported; also the
/// debounce after a burst of filesystem events.
const SETTLE: Duration = Duration::from_secs(2);
/// Rescan period when inotify is not available.
const POLL: Duration = Duration::from_secs(5);
/// How long after a containerd image event the set is checked.
const EVENT_SETTLE: Duration = Duration::from_millis(500);
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

/// A file's size and mtime, as compared between looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) size: u64,
    pub(crate) mtime_ns: u64,
}

fn stat(path: &Path) -> Option<Stat> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(Stat {
        size: m.len(),
        mtime_ns: mtime.as_nanos() as u64,
    })
}

/// What to do with a file at one scan. Pure, so the rules have a table of tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Imported before with this size and mtime.
    Skip,
    /// Changed lately; look again later.
    Wait,
    /// Has held still long enough: import (unless its content is what was imported).
    Import,
}

pub(crate) fn decide(
    now: Stat,
    remembered: Option<&Seen>,
    last_look: Option<(Stat, Instant)>,
    at: Instant,
) -> Decision {
    if remembered.is_some_and(|s| s.size == now.size && s.mtime_ns == now.mtime_ns) {
        return Decision::Skip;
    }
    match last_look {
        Some((before, since)) if before == now && at.duration_since(since) >= SETTLE => {
            Decision::Import
        }
        _ => Decision::Wait,
    }
}

fn file_digest(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut f, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_digest(hasher))
}

/// The runtime's image records by name.
async fn records(c: &Containerd) -> Result<Records> {
    Ok(c.list_images()
        .await?
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect())
}

/// The records an import created: each image's names and its ID record, with the target
/// they point at; a list's pulled references by name only.
fn created_records(images: &[ImportedImage]) -> Vec<(String, String)> {
    images
        .iter()
        .flat_map(|i| {
            let id = (!i.digest.is_empty()).then(|| i.id.clone());
            i.names
                .iter()
                .cloned()
                .chain(id)
                .map(|n| (n, i.digest.clone()))
        })
        .collect()
}

/// Whether `key` lies in one of `dirs` that can be read, and is gone. A directory that
/// cannot be read (unmounted, no permission) says nothing about what it holds.
fn is_gone(key: &str, dirs: &[PathBuf]) -> bool {
    let p = Path::new(key);
    dirs.iter()
        .any(|d| p.starts_with(d) && std::fs::read_dir(d).is_ok())
        && std::fs::symlink_metadata(p).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

pub(crate) async fn run(settings: Settings, args: ImportArgs) -> Result<Outcome> {
    let mut dirs = Vec::new();
    for p in &args.paths {
        if !p.is_dir() {
            return Err(CrimgError::Usage(format!(
                "--watch takes directories; {} is not one",
                p.display()
            ))
            .into());
        }
        dirs.push(
            p.canonicalize()
                .with_context(|| format!("resolving {}", p.display()))?,
        );
    }
    if args.recheck_interval.is_zero() {
        return Err(CrimgError::Usage("--recheck-interval must be more than 0".into()).into());
    }
    let pin = args.pin;
    let recheck = args.recheck_interval;
    let state_file = args
        .state_file
        .clone()
        .unwrap_or_else(|| state::state_dir().join("import-watch.json"));
    let (mut remembered, problem) = WatchState::load(&state_file);
    let mut metrics = crate::render::metrics::ImportMetrics::start(args.metrics_file.clone())?;
    let mut session = Session::connect(settings).await?;
    let importer = Importer::new(&mut session, &args).await?;
    let settings = importer.settings.clone();
    if let Some(p) = problem {
        settings.warn(p);
    }
    let c = importer.c.clone();
    let info = |msg: String| {
        if !settings.quiet {
            eprintln!("crimg: {msg}");
        }
    };
    // The state is a cache of what was checked: failing to write it costs a re-check
    // at the next start, never the watch.
    let save = |s: &WatchState| {
        if let Err(e) = s.save(&state_file) {
            settings.warn(format_args!("{e:#}"));
        }
    };

    // Events only wake the loop; the scan decides. A full channel already means "look".
    let (tx, mut events) = mpsc::channel::<()>(1);
    // Symbolic links to directories are not followed, as in the scan.
    let config = notify::Config::default().with_follow_symlinks(false);
    let watcher = (!args.poll).then(|| {
        notify::RecommendedWatcher::new(
            move |res: notify::Result<notify::Event>| {
                use notify::event::{AccessKind, AccessMode, EventKind};
                // Opening and reading change nothing, and crimg's own scans and imports do both:
                // waking on them would rescan every SETTLE, forever. A write closed still counts.
                if let Ok(ev) = &res
                    && let EventKind::Access(kind) = ev.kind
                    && kind != AccessKind::Close(AccessMode::Write)
                {
                    return;
                }
                let _ = tx.try_send(());
            },
            config,
        )
        .and_then(|mut w| {
            for d in &dirs {
                w.watch(d, notify::RecursiveMode::Recursive)?;
            }
            Ok(w)
        })
    });
    let watcher = match watcher {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            settings.warn(format_args!(
                "cannot watch with inotify ({e}); polling every {}s instead",
                POLL.as_secs()
            ));
            None
        }
    };
    // With --pin, containerd's image-delete events start a re-check at once; the interval
    // catches the rest (a pin label removed, an event stream lost with containerd).
    let (ev_tx, mut image_events) = mpsc::channel::<()>(1);
    // The subscription is made in the task: containerd answers it only with a first event.
    let events_task = pin.then(|| {
        let (c, settings, ns) = (
            c.clone(),
            settings.clone(),
            settings.endpoints.namespace.clone(),
        );
        tokio::spawn(async move {
            let stream = match c.image_deletes(&ns).await {
                Ok(s) => s,
                Err(e) => {
                    settings.debug(format_args!(
                        "no image events from containerd ({e:#}); re-checking on the interval only"
                    ));
                    return;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(_)) = futures::StreamExt::next(&mut stream).await {
                let _ = ev_tx.try_send(());
            }
        })
    });
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    if args.poll {
        info(format!(
            "polling every {}s (--poll), not waiting for inotify",
            POLL.as_secs()
        ));
    }
    info(format!(
        "watching {} (state in {}{})",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        state_file.display(),
        if pin {
            format!(
                "; what they hold is re-checked every {}",
                humantime::format_duration(recheck)
            )
        } else {
            String::new()
        }
    ));

    let start = Instant::now();
    let mut report = Report::default();
    let mut looks: HashMap<PathBuf, (Stat, Instant)> = HashMap::new();
    let mut told_skipped: HashMap<PathBuf, Stat> = HashMap::new();
    let mut failed: HashMap<PathBuf, Stat> = HashMap::new();
    let mut stopping = false;
    // What a scan passed over, warned about once.
    let mut warned: HashSet<PathBuf> = HashSet::new();
    let mut first = true;
    let mut next_check = Instant::now();
    while !stopping {
        // At start, and with --pin every `recheck`: hold the remembered set to the runtime.
        let mut runtime: Option<Records> = None;
        if first || (pin && Instant::now() >= next_check) {
            match records(&c).await {
                Ok(r) => runtime = Some(r),
                Err(e) => settings.warn(format_args!(
                    "cannot check the watched images against the runtime: {e:#}"
                )),
            }
            next_check = Instant::now() + recheck;
        }
        first = false;

        // Archives that left the directories.
        let gone: Vec<String> = remembered
            .files
            .keys()
            .filter(|k| is_gone(k, &dirs))
            .cloned()
            .collect();
        for key in gone {
            let Some(seen) = remembered.files.get(&key).cloned() else {
                continue;
            };
            if args.unpin_removed {
                let rt = match &runtime {
                    Some(r) => Ok(r.clone()),
                    None => records(&c).await,
                };
                let still = remembered
                    .files
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .flat_map(|(_, s)| &s.images);
                let result = match rt {
                    Ok(rt) => {
                        let names = unpin_removed(&seen.images, still, &rt);
                        let mut r = Ok(names.clone());
                        for name in &names {
                            if let Err(e) = c
                                .update_labels(name, &[], &[LABEL_CRI_PINNED.to_string()])
                                .await
                            {
                                r = Err(e);
                                break;
                            }
                        }
                        r
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(names) if names.is_empty() => info(format!(
                        "forgot {key}: no longer in the directory; no pin of crimg's to drop"
                    )),
                    Ok(names) => info(format!(
                        "unpinned {} of {key}: no longer in the directory",
                        names.join(", ")
                    )),
                    Err(e) => {
                        // Kept in the state: tried again at the next scan.
                        settings.warn(format_args!("{key} left the directory: {e:#}"));
                        continue;
                    }
                }
            } else {
                info(format!(
                    "forgot {key}: no longer in the directory; its images are left as they are"
                ));
            }
            remembered.files.remove(&key);
            save(&remembered);
            let path = PathBuf::from(&key);
            told_skipped.remove(&path);
            failed.remove(&path);
        }

        // The walk runs on its own thread and checks `stop` at every entry, so a signal
        // ends even a scan of a huge tree at once.
        let stop = Arc::new(AtomicBool::new(false));
        let scan = tokio::task::spawn_blocking({
            let (dirs, stop) = (dirs.clone(), stop.clone());
            move || {
                dirs.iter()
                    .map(|d| walk(d, false, &stop))
                    .collect::<Vec<_>>()
            }
        });
        let scanned = tokio::select! {
            r = scan => r.map_err(|e| anyhow::anyhow!("scanning task: {e}"))?,
            _ = term.recv() => { stop.store(true, Ordering::Relaxed); break }
            _ = int.recv() => { stop.store(true, Ordering::Relaxed); break }
        };
        let mut files = Vec::new();
        for (d, found) in dirs.iter().zip(scanned) {
            match found {
                Ok(found) => {
                    for (p, why) in found.skipped {
                        if warned.insert(p.clone()) {
                            settings.warn(format_args!("skipped {}: {why}", p.display()));
                        }
                    }
                    files.extend(found.paths);
                }
                Err(e) => {
                    if warned.insert(d.clone()) {
                        settings.warn(format_args!("{}: {e}; not scanned", d.display()));
                    }
                }
            }
        }
        files.sort();
        let now = Instant::now();
        let mut waiting = false;
        for path in files {
            let Some(st) = stat(&path) else { continue };
            let key = path.display().to_string();
            if failed.get(&path) == Some(&st) {
                continue;
            }
            // `Some(why)`: unchanged since it was imported, for this reason.
            let mut unchanged: Option<&str> = None;
            // `Some(digest)`: import the file.
            let mut import: Option<String> = None;
            match decide(
                st,
                remembered.files.get(&key),
                looks.get(&path).copied(),
                now,
            ) {
                Decision::Skip => unchanged = Some("imported before (same size and mtime)"),
                Decision::Wait => {
                    looks.insert(path.clone(), (st, now));
                    waiting = true;
                }
                Decision::Import => {
                    looks.remove(&path);
                    let p2 = path.clone();
                    let digest = tokio::task::spawn_blocking(move || file_digest(&p2))
                        .await
                        .map_err(|e| anyhow::anyhow!("hashing task: {e}"))?;
                    let digest = match digest {
                        Ok(d) => d,
                        Err(e) => {
                            settings.warn(format_args!("{e:#}"));
                            continue;
                        }
                    };
                    if let Some(seen) = remembered.files.get_mut(&key)
                        && seen.digest == digest
                    {
                        // Touched or copied again, same bytes: nothing new to import.
                        seen.size = st.size;
                        seen.mtime_ns = st.mtime_ns;
                        save(&remembered);
                        unchanged = Some("same content as imported before");
                    } else {
                        import = Some(digest);
                    }
                }
            }
            let mut why = None;
            if let Some(unchanged) = unchanged {
                let Some(seen) = remembered.files.get(&key).cloned() else {
                    continue;
                };
                let v = match &runtime {
                    Some(rt) => verdict(&seen.images, rt, pin),
                    None => Verdict::Keep,
                };
                match v {
                    Verdict::Keep => {
                        if told_skipped.insert(path.clone(), st) != Some(st) {
                            let checked = if runtime.is_some() {
                                ", its images are present"
                            } else {
                                ""
                            };
                            info(format!("skipped {key}: {unchanged}{checked}"));
                        }
                        continue;
                    }
                    Verdict::Repin { records } => {
                        let set = [(LABEL_CRI_PINNED.to_string(), PINNED_VALUE.to_string())];
                        let mut result = Ok(());
                        for r in &records {
                            result = c.update_labels(r, &set, &[]).await;
                            if result.is_err() {
                                break;
                            }
                        }
                        match result {
                            Ok(()) => {
                                info(format!(
                                    "re-pinned {} from {key}: pin removed (the archive was not read again)",
                                    records.join(", ")
                                ));
                                if let Some(seen) = remembered.files.get_mut(&key) {
                                    for b in &mut seen.images {
                                        b.pinned_by_crimg |= records.contains(&b.name);
                                    }
                                }
                                save(&remembered);
                            }
                            Err(e) => settings.warn(format_args!("re-pinning {key}: {e:#}")),
                        }
                        continue;
                    }
                    Verdict::Reimport { reasons } => {
                        why = Some(reasons.join("; "));
                        import = Some(seen.digest.clone());
                    }
                }
            }
            let Some(digest) = import else { continue };
            if let Some(why) = &why {
                info(format!("importing {key} again: {why}"));
            }
            // Who pinned what before, so --unpin-removed drops only the pins crimg set.
            let before = if pin {
                records(&c).await.unwrap_or_else(|e| {
                    settings.debug(format_args!("listing images before the import: {e:#}"));
                    Records::new()
                })
            } else {
                Records::new()
            };
            let item = if path.extension().is_some_and(|e| e == "txt") {
                Item::List(path.clone())
            } else {
                Item::Archive(Input::File(path.clone()))
            };
            let result = tokio::select! {
                r = import_item(&importer, &session, &item) => Some(r),
                _ = term.recv() => None,
                _ = int.recv() => None,
            };
            let Some(result) = result else {
                importer.abandon().await;
                stopping = true;
                break;
            };
            match result {
                Ok(res) => {
                    let names: Vec<String> =
                        res.images.iter().flat_map(|i| i.names.clone()).collect();
                    info(format!(
                        "imported {} image(s) from {key}: {}",
                        res.images.len(),
                        names.join(", ")
                    ));
                    for f in res.failures {
                        crate::exit::print_error(format_args!("{key}: {f:#}"));
                        report.failed.push((key.clone(), f));
                    }
                    report.written += res.written;
                    let previous = remembered
                        .files
                        .get(&key)
                        .map(|s| s.images.clone())
                        .unwrap_or_default();
                    remembered.files.insert(
                        key.clone(),
                        Seen {
                            size: st.size,
                            mtime_ns: st.mtime_ns,
                            digest,
                            images: brought(&created_records(&res.images), &before, &previous, pin),
                        },
                    );
                    save(&remembered);
                    told_skipped.insert(path.clone(), st);
                    metrics.record(Some(res.images.len()), &settings);
                    report.imported.push((key, res.images));
                }
                Err(e) => {
                    crate::exit::print_error(format_args!("{key}: {e:#}"));
                    // A lost runtime says nothing about the file: try it again next time.
                    if crate::error::ConnectionLost::of(&e).is_none() {
                        failed.insert(path.clone(), st);
                    }
                    metrics.record(None, &settings);
                    report.failed.push((key, e));
                }
            }
        }
        if stopping {
            break;
        }
        // Sleep until something changes, a waiting file may have settled, the set is due
        // a re-check, or a signal.
        let mut timeout = if waiting {
            SETTLE
        } else if watcher.is_some() {
            Duration::from_secs(3600)
        } else {
            POLL
        };
        if pin {
            timeout = timeout.min(next_check.saturating_duration_since(Instant::now()));
        }
        tokio::select! {
            // Without a watcher the channel is closed: polling sleeps below instead.
            Some(()) = events.recv() => {
                // Debounce: let a burst of events (a copy in progress) pass.
                loop {
                    tokio::select! {
                        e = events.recv() => if e.is_none() { break },
                        _ = tokio::time::sleep(SETTLE) => break,
                        _ = term.recv() => { stopping = true; break }
                        _ = int.recv() => { stopping = true; break }
                    }
                }
            }
            Some(()) = image_events.recv() => {
                // A few records go at once (tags and ID): look once they have.
                next_check = next_check.min(Instant::now() + EVENT_SETTLE);
            }
            _ = tokio::time::sleep(timeout) => {}
            _ = term.recv() => stopping = true,
            _ = int.recv() => stopping = true,
        }
    }
    if let Some(t) = events_task {
        t.abort();
    }
    drop(watcher);
    info("stopping".into());
    report.render(&settings, start.elapsed())?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let later = t0 + SETTLE;
        let a = Stat {
            size: 10,
            mtime_ns: 1,
        };
        let b = Stat {
            size: 20,
            mtime_ns: 2,
        };
        let seen = Seen {
            size: 10,
            mtime_ns: 1,
            digest: "sha256:x".into(),
            images: vec![],
        };
        let cases = [
            // Remembered with the same size and mtime: skipped, however it looked before.
            (a, Some(&seen), None, t0, Decision::Skip),
            (a, Some(&seen), Some((b, t0)), later, Decision::Skip),
            // New: first look waits; the same look after SETTLE imports.
            (b, None, None, t0, Decision::Wait),
            (
                b,
                None,
                Some((b, t0)),
                t0 + Duration::from_millis(500),
                Decision::Wait,
            ),
            (b, None, Some((b, t0)), later, Decision::Import),
            // Still growing: waits again.
            (b, None, Some((a, t0)), later, Decision::Wait),
            // Changed since it was imported: imported again once settled.
            (b, Some(&seen), Some((b, t0)), later, Decision::Import),
        ];
        for (i, (now, remembered, look, at, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(now, remembered, look, at), want, "case {i}");
        }
    }

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

    #[test]
    fn records_an_import_created() {
        let image = |names: &[&str], id: &str, digest: &str| ImportedImage {
            names: names.iter().map(|n| n.to_string()).collect(),
            id: id.into(),
            digest: digest.into(),
            platforms: vec![],
            size: 0,
            status: "imported",
        };
        let got = created_records(&[
            image(
                &["docker.io/library/a:1", "docker.io/library/a:2"],
                "sha256:id",
                "sha256:m",
            ),
            image(&["docker.io/library/pulled:1"], "sha256:p", ""),
        ]);
        let want: Vec<(String, String)> = [
            ("docker.io/library/a:1", "sha256:m"),
            ("docker.io/library/a:2", "sha256:m"),
            ("sha256:id", "sha256:m"),
            ("docker.io/library/pulled:1", ""),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
