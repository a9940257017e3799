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

mod events;
mod files;
mod state_file;

use files::{Decision, Stat, created_records, decide, file_digest, is_gone, stat};
use state_file::{Seen, WatchState};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::app::import::walk::walk;
use crate::app::import::{Importer, Item, Report, import_many};
use crate::app::{Outcome, Session, Settings, state};
use crate::archive::read::Input;
use crate::cli::ImportArgs;
use crate::error::CrimgError;
use crate::model::{LABEL_CRI_PINNED, PINNED_VALUE};
use crate::plan::watch::{
    POLL, Records, SETTLE, Verdict, brought, sleep_for, unpin_removed, verdict,
};
use crate::runtime::containerd::Containerd;

/// How long after a containerd image event the set is checked.
const EVENT_SETTLE: Duration = Duration::from_millis(500);

/// A file a scan found to import.
struct Queued {
    item: Item,
    path: PathBuf,
    key: String,
    st: Stat,
    digest: String,
}

/// The runtime's image records by name.
async fn records(c: &Containerd) -> Result<Records> {
    Ok(c.list_images()
        .await?
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect())
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
    let (mut remembered, problem) = WatchState::load(&state_file)?;
    let mut metrics =
        crate::app::metrics::ImportMetrics::start(args.metrics_file.clone(), &settings)?;
    let mut session = Session::connect(settings).await?;
    let importer = Importer::new(&mut session, &args).await?;
    let settings = importer.settings.clone();
    // An unusable state file is kept aside, as prune keeps its own, never written over.
    if let Some(p) = problem {
        settings.warn(p);
        match state::set_aside(&state_file) {
            Ok(aside) => settings.warn(format_args!(
                "moved the unusable state file to {}",
                aside.display()
            )),
            Err(e) => settings.warn(format_args!("{e:#}")),
        }
    }
    let c = importer.c.clone();
    let info = |msg: String| settings.info(msg);
    // The state is a cache of what was checked: failing to write it costs a re-check
    // at the next start, never the watch.
    let save = |s: &WatchState| {
        if let Err(e) = s.save(&state_file) {
            settings.warn(format_args!("{e:#}"));
        }
    };

    let (mut watcher, mut events) = events::watch_dirs(&dirs, args.poll, &settings);
    let mut dir_ids = events::DirIds::of(&dirs);
    let (events_task, mut image_events) = events::image_deletes(pin, &c, &settings);
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
                crate::model::human_duration(recheck)
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
        // A watched directory removed, or removed and made again: say so, and watch what
        // is there now (inotify's watch went with the old directory).
        let changed = dir_ids.changes(&dirs);
        for (dir, present) in &changed {
            if *present {
                info(format!("{} is there again; watching it", dir.display()));
            } else {
                settings.warn(format_args!(
                    "{} is gone; looking for it every {}s, and importing from it again once \
                     it is back",
                    dir.display(),
                    POLL.as_secs()
                ));
            }
        }
        if !changed.is_empty() && watcher.is_some() {
            let present: Vec<PathBuf> = dirs.iter().filter(|d| d.is_dir()).cloned().collect();
            drop(watcher);
            (watcher, events) = events::watch_dirs(&present, false, &settings);
        }
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
        // Files to import, all at once after the scan.
        let mut queued: Vec<Queued> = Vec::new();
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
            queued.push(Queued {
                item: if path.extension().is_some_and(|e| e == "txt") {
                    Item::List(path.clone())
                } else {
                    Item::Archive(Input::File(path.clone()))
                },
                path,
                key,
                st,
                digest,
            });
        }
        if !queued.is_empty() {
            // Who pinned what before, so --unpin-removed drops only the pins crimg set.
            let before = if pin {
                records(&c).await.unwrap_or_else(|e| {
                    settings.debug(format_args!("listing images before the import: {e:#}"));
                    Records::new()
                })
            } else {
                Records::new()
            };
            let items: Vec<Item> = queued.iter().map(|q| q.item.clone()).collect();
            // Archives imported before a signal stay, recorded; those in progress go.
            let done = tokio::select! {
                _ = import_many(&importer, &session, &items, |i, result| {
                    let Queued { path, key, st, digest, .. } = &queued[i];
                    let (path, key, st) = (path.clone(), key.clone(), *st);
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
                                    digest: digest.clone(),
                                    images: brought(
                                        &created_records(&res.images),
                                        &before,
                                        &previous,
                                        pin,
                                    ),
                                },
                            );
                            save(&remembered);
                            told_skipped.insert(path, st);
                            metrics.record(Some(res.images.len()), &settings);
                            report.imported.push((key, res.images));
                        }
                        Err(e) => {
                            crate::exit::print_error(format_args!("{key}: {e:#}"));
                            // A lost runtime says nothing about the file: try it again
                            // next time.
                            if crate::error::ConnectionLost::of(&e).is_none() {
                                failed.insert(path, st);
                            }
                            metrics.record(None, &settings);
                            report.failed.push((key, e));
                        }
                    }
                }) => true,
                _ = term.recv() => false,
                _ = int.recv() => false,
            };
            if !done {
                importer.abandon().await;
                stopping = true;
            }
        }
        if stopping {
            break;
        }
        // Sleep until something changes, a waiting file may have settled, the set is due
        // a re-check, or a signal.
        let inotify = watcher.is_some() && !dir_ids.any_missing();
        let until_check = pin.then(|| next_check.saturating_duration_since(Instant::now()));
        let timeout = sleep_for(waiting, inotify, until_check);
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
