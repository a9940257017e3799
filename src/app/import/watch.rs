//! `crimg import --watch`: keep importing archives that appear or change in directories.
//!
//! inotify (through `notify`) says when something changed; a scan then decides. A file
//! is imported once its size and mtime have stayed the same for [`SETTLE`], so a file
//! still being copied in is not read half-written. What was imported is remembered in a
//! state file by path, size, mtime and content digest: a file seen again unchanged is
//! skipped, also after a restart, and a file touched without changing its content is
//! not imported again. Without inotify (limits reached, unsupported filesystem) it polls.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, Result};
use notify::Watcher as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::import::{Importer, Item, Report, import_item, is_candidate};
use crate::app::{Outcome, Session, Settings, state};
use crate::archive::read::Input;
use crate::cli::ImportArgs;
use crate::error::CrimgError;
use crate::runtime::content::sha256_digest;

/// How long a file's size and mtime must hold still before it is imported; also the
/// debounce after a burst of filesystem events.
const SETTLE: Duration = Duration::from_secs(2);
/// Rescan period when inotify is not available.
const POLL: Duration = Duration::from_secs(5);

/// What the state file remembers of one imported file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime_ns: u64,
    /// `sha256:` of the file's bytes.
    pub digest: String,
    #[serde(default)]
    pub images: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WatchState {
    /// Absolute path → what was imported from it.
    #[serde(default)]
    pub files: BTreeMap<String, Seen>,
}

impl WatchState {
    pub fn load(path: &Path) -> Result<WatchState> {
        crate::app::state::load_json(path)
    }

    /// Written to a temp file beside it, then renamed: never half-written.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::app::state::save_json(path, self)
    }
}

/// A file's size and mtime, as compared between looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: u64,
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
pub enum Decision {
    /// Imported before with this size and mtime.
    Skip,
    /// Changed lately; look again later.
    Wait,
    /// Has held still long enough: import (unless its content is what was imported).
    Import,
}

pub fn decide(
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

fn candidates(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if p.is_dir() {
            candidates(&p, out);
        } else if p.is_file() && is_candidate(&p) {
            out.push(p);
        }
    }
}

fn file_digest(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut f, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha256_digest(hasher))
}

pub async fn run(settings: Settings, args: ImportArgs) -> Result<Outcome> {
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
    let state_file = args
        .state_file
        .clone()
        .unwrap_or_else(|| state::state_dir().join("import-watch.json"));
    let mut remembered = WatchState::load(&state_file)?;
    let mut metrics = crate::render::metrics::ImportMetrics::start(args.metrics_file.clone())?;
    let mut session = Session::connect(settings).await?;
    let importer = Importer::new(&mut session, &args).await?;
    let settings = importer.settings.clone();
    let info = |msg: String| {
        if !settings.quiet {
            eprintln!("crimg: {msg}");
        }
    };

    // Events only wake the loop; the scan decides. A full channel already means "look".
    let (tx, mut events) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        let _ = tx.try_send(());
    })
    .and_then(|mut w| {
        for d in &dirs {
            w.watch(d, notify::RecursiveMode::Recursive)?;
        }
        Ok(w)
    });
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            settings.warn(format_args!(
                "cannot watch with inotify ({e}); polling every {}s instead",
                POLL.as_secs()
            ));
            None
        }
    };
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    info(format!(
        "watching {} (state in {})",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        state_file.display()
    ));

    let start = Instant::now();
    let mut report = Report::default();
    let mut looks: HashMap<PathBuf, (Stat, Instant)> = HashMap::new();
    let mut told_skipped: HashMap<PathBuf, Stat> = HashMap::new();
    let mut failed: HashMap<PathBuf, Stat> = HashMap::new();
    let mut stopping = false;
    while !stopping {
        let mut files = Vec::new();
        for d in &dirs {
            candidates(d, &mut files);
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
            match decide(
                st,
                remembered.files.get(&key),
                looks.get(&path).copied(),
                now,
            ) {
                Decision::Skip => {
                    if told_skipped.insert(path.clone(), st) != Some(st) {
                        info(format!(
                            "skipped {key}: imported before (same size and mtime)"
                        ));
                    }
                }
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
                        // Touched or copied again, same bytes: nothing to import.
                        seen.size = st.size;
                        seen.mtime_ns = st.mtime_ns;
                        remembered.save(&state_file)?;
                        info(format!("skipped {key}: same content as imported before"));
                        continue;
                    }
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
                            remembered.files.insert(
                                key.clone(),
                                Seen {
                                    size: st.size,
                                    mtime_ns: st.mtime_ns,
                                    digest,
                                    images: names,
                                },
                            );
                            remembered.save(&state_file)?;
                            told_skipped.insert(path.clone(), st);
                            metrics.record(Some(res.images.len()), &settings);
                            report.imported.push((key, res.images));
                        }
                        Err(e) => {
                            crate::exit::print_error(format_args!("{key}: {e:#}"));
                            failed.insert(path.clone(), st);
                            metrics.record(None, &settings);
                            report.failed.push((key, e));
                        }
                    }
                }
            }
        }
        if stopping {
            break;
        }
        // Sleep until something changes, a waiting file may have settled, or a signal.
        let timeout = if waiting {
            SETTLE
        } else if watcher.is_some() {
            Duration::from_secs(3600)
        } else {
            POLL
        };
        tokio::select! {
            _ = events.recv() => {
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
            _ = tokio::time::sleep(timeout) => {}
            _ = term.recv() => stopping = true,
            _ = int.recv() => stopping = true,
        }
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
        assert!(WatchState::load(&path).unwrap().files.is_empty());
        let mut s = WatchState::default();
        s.files.insert(
            "/images/a.tar".into(),
            Seen {
                size: 1,
                mtime_ns: 2,
                digest: "sha256:ab".into(),
                images: vec!["docker.io/library/a:1".into()],
            },
        );
        s.save(&path).unwrap();
        assert_eq!(WatchState::load(&path).unwrap().files, s.files);
        std::fs::write(&path, "nonsense").unwrap();
        assert!(WatchState::load(&path).is_err());
    }
}
