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
//!
//! [`run`] sets up a [`Watcher`] and turns its loop; each step of the loop is one of its
//! methods, in the order they run:
//!
//! 1. [`Watcher::follow_dirs`]: a watched directory removed or made again is watched anew.
//! 2. [`Watcher::records_if_due`]: at start, and with `--pin` every `--recheck-interval`,
//!    the runtime's image records, to hold the remembered set to (`forget.rs`, `scan.rs`).
//! 3. [`Watcher::forget_gone`]: what left the directories is forgotten (`forget.rs`).
//! 4. [`walk_all`] and [`Watcher::look_at`]: what the directories hold is looked at, file
//!    by file: waited for, skipped, re-pinned, or queued to import (`scan.rs`).
//! 5. [`Watcher::import`]: the queued files are imported at once (`imports.rs`).
//! 6. [`Watcher::wait`]: sleep until something may have changed.
//!
//! A signal ends the loop between steps, or during the walk, the import or the sleep.

mod events;
mod files;
mod forget;
mod imports;
mod scan;
mod state_file;

use files::Stat;
use scan::walk_all;
use state_file::WatchState;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::import::{Importer, Item, Report};
use crate::app::metrics::ImportMetrics;
use crate::app::{Outcome, Session, Settings, state};
use crate::cli::ImportArgs;
use crate::error::CrimgError;
use crate::plan::watch::{POLL, Records, SETTLE, sleep_for};
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
    let dirs = watched_dirs(&args)?;
    if args.recheck_interval.is_zero() {
        return Err(CrimgError::Usage("--recheck-interval must be more than 0".into()).into());
    }
    let state_file = args
        .state_file
        .clone()
        .unwrap_or_else(|| state::state_dir().join(crate::files::WATCH_STATE_FILE));
    let (remembered, problem) = WatchState::load(&state_file)?;
    let metrics = ImportMetrics::start(args.metrics_file.clone(), &settings)?;
    let mut session = Session::connect(settings).await?;
    let importer = Importer::new(&mut session, &args).await?;
    let settings = &importer.settings;
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

    let mut w = Watcher::new(
        &importer, &session, &args, dirs, state_file, remembered, metrics,
    );
    let mut signals = Signals::install()?;
    w.announce(args.poll);

    let start = Instant::now();
    loop {
        w.follow_dirs();
        let runtime = w.records_if_due().await;
        w.forget_gone(runtime.as_ref()).await;
        // A signal stops the walk at its next entry, however large the tree.
        let walked = tokio::select! {
            r = walk_all(w.dirs.clone()) => r?,
            () = signals.recv() => break,
        };
        let files = w.found(walked);
        let scan = w.look_at(files, runtime.as_ref()).await?;
        if !scan.queued.is_empty() {
            let before = w.records_before().await;
            // Archives imported before a signal stay, recorded; those in progress go.
            let done = tokio::select! {
                () = w.import(&scan.queued, &before) => true,
                () = signals.recv() => false,
            };
            if !done {
                importer.abandon().await;
                break;
            }
        }
        tokio::select! {
            () = w.wait(scan.waiting) => {}
            () = signals.recv() => break,
        }
    }
    w.finish(start)
}

/// The directories `--watch` names, canonical; anything else named is a usage error.
fn watched_dirs(args: &ImportArgs) -> Result<Vec<PathBuf>> {
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
    Ok(dirs)
}

/// SIGTERM and SIGINT, either of which stops the watch.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        let term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        Ok(Signals { term, int })
    }

    /// Waits for either signal.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// One `import --watch`: what it watches, what it remembers of each file, what wakes it,
/// and what it has done. Its methods are the steps of [`run`]'s loop.
struct Watcher<'a> {
    settings: Settings,
    /// The watched directories, canonical.
    dirs: Vec<PathBuf>,
    /// `--pin`: imports pin, and the set is held to the runtime every `recheck` and soon
    /// after containerd reports an image deleted.
    pin: bool,
    /// `--recheck-interval`.
    recheck: Duration,
    /// `--unpin-removed`.
    unpin_removed: bool,

    importer: &'a Importer,
    session: &'a Session,
    c: Containerd,

    /// Where [`Watcher::remembered`] is saved after every change to it.
    state_file: PathBuf,
    /// What was imported from each file, and the records it brought.
    remembered: WatchState,
    /// Files not yet settled: their size and mtime at the last look, and when that was.
    looks: HashMap<PathBuf, (Stat, Instant)>,
    /// Files whose skip was logged, with the size and mtime it was logged for.
    told_skipped: HashMap<PathBuf, Stat>,
    /// Files whose import failed, with that size and mtime: not tried again until they
    /// change.
    failed: HashMap<PathBuf, Stat>,
    /// What a scan passed over, warned about once.
    warned: HashSet<PathBuf>,

    /// inotify's watch of the directories; `None` when polling.
    inotify: Option<notify::RecommendedWatcher>,
    /// Woken by inotify; closed when polling.
    fs_events: mpsc::Receiver<()>,
    /// The watched directories' identities, to see one removed or made again.
    dir_ids: events::DirIds,
    /// The task that follows containerd's image-delete events (with `--pin`).
    events_task: Option<tokio::task::JoinHandle<()>>,
    /// Woken by containerd's image-delete events; never yields without `--pin`.
    image_events: mpsc::Receiver<()>,
    /// The first turn of the loop checks the runtime whatever `next_check` says.
    first: bool,
    /// When the remembered set is next held to the runtime (with `--pin`).
    next_check: Instant,

    report: Report,
    metrics: ImportMetrics,
}

impl<'a> Watcher<'a> {
    /// Starts watching `dirs` (inotify, or polling) and, with `--pin`, following
    /// containerd's image-delete events.
    fn new(
        importer: &'a Importer,
        session: &'a Session,
        args: &ImportArgs,
        dirs: Vec<PathBuf>,
        state_file: PathBuf,
        remembered: WatchState,
        metrics: ImportMetrics,
    ) -> Watcher<'a> {
        let settings = importer.settings.clone();
        let c = importer.c.clone();
        let (inotify, fs_events) = events::watch_dirs(&dirs, args.poll, &settings);
        let dir_ids = events::DirIds::of(&dirs);
        let (events_task, image_events) = events::image_deletes(args.pin, &c, &settings);
        Watcher {
            settings,
            dirs,
            pin: args.pin,
            recheck: args.recheck_interval,
            unpin_removed: args.unpin_removed,
            importer,
            session,
            c,
            state_file,
            remembered,
            looks: HashMap::new(),
            told_skipped: HashMap::new(),
            failed: HashMap::new(),
            warned: HashSet::new(),
            inotify,
            fs_events,
            dir_ids,
            events_task,
            image_events,
            first: true,
            next_check: Instant::now(),
            report: Report::default(),
            metrics,
        }
    }

    /// Says what is watched, and how.
    fn announce(&self, poll: bool) {
        if poll {
            self.settings.info(format_args!(
                "polling every {}s (--poll), not waiting for inotify",
                POLL.as_secs()
            ));
        }
        self.settings.info(format_args!(
            "watching {} (state in {}{})",
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.state_file.display(),
            if self.pin {
                format!(
                    "; what they hold is re-checked every {}",
                    crate::model::human_duration(self.recheck)
                )
            } else {
                String::new()
            }
        ));
    }

    /// Writes the state file. The state is a cache of what was checked: failing to write
    /// it costs a re-check at the next start, never the watch.
    fn save(&self) {
        if let Err(e) = self.remembered.save(&self.state_file) {
            self.settings.warn(format_args!("{e:#}"));
        }
    }

    /// A watched directory removed, or removed and made again: says so, and watches what
    /// is there now (inotify's watch went with the old directory).
    fn follow_dirs(&mut self) {
        let changed = self.dir_ids.changes(&self.dirs);
        for (dir, present) in &changed {
            if *present {
                self.settings.info(format_args!(
                    "{} is there again; watching it",
                    dir.display()
                ));
            } else {
                self.settings.warn(format_args!(
                    "{} is gone; looking for it every {}s, and importing from it again once \
                     it is back",
                    dir.display(),
                    POLL.as_secs()
                ));
            }
        }
        if !changed.is_empty() && self.inotify.is_some() {
            let present: Vec<PathBuf> = self.dirs.iter().filter(|d| d.is_dir()).cloned().collect();
            self.inotify = None;
            (self.inotify, self.fs_events) = events::watch_dirs(&present, false, &self.settings);
        }
    }

    /// At start, and with `--pin` every `--recheck-interval`: the runtime's records, to
    /// hold the remembered set to. `None` when no check is due, or the runtime cannot be
    /// listed (warned).
    async fn records_if_due(&mut self) -> Option<Records> {
        let mut runtime = None;
        if self.first || (self.pin && Instant::now() >= self.next_check) {
            match records(&self.c).await {
                Ok(r) => runtime = Some(r),
                Err(e) => self.settings.warn(format_args!(
                    "cannot check the watched images against the runtime: {e:#}"
                )),
            }
            self.next_check = Instant::now() + self.recheck;
        }
        self.first = false;
        runtime
    }

    /// Sleeps until something changes, a `waiting` file may have settled, the set is due
    /// a re-check, or (in [`run`]) a signal.
    async fn wait(&mut self, waiting: bool) {
        let inotify = self.inotify.is_some() && !self.dir_ids.any_missing();
        let until_check = self
            .pin
            .then(|| self.next_check.saturating_duration_since(Instant::now()));
        let timeout = sleep_for(waiting, inotify, until_check);
        tokio::select! {
            // Without a watcher the channel is closed: polling sleeps below instead.
            Some(()) = self.fs_events.recv() => {
                // Debounce: let a burst of events (a copy in progress) pass.
                loop {
                    tokio::select! {
                        e = self.fs_events.recv() => if e.is_none() { break },
                        _ = tokio::time::sleep(SETTLE) => break,
                    }
                }
            }
            Some(()) = self.image_events.recv() => {
                // A few records go at once (tags and ID): look once they have.
                self.next_check = self.next_check.min(Instant::now() + EVENT_SETTLE);
            }
            _ = tokio::time::sleep(timeout) => {}
        }
    }

    /// Stops following events and reports what the watch did since `start`.
    fn finish(self, start: Instant) -> Result<Outcome> {
        if let Some(t) = self.events_task {
            t.abort();
        }
        drop(self.inotify);
        self.settings.info("stopping");
        self.report.render(&self.settings, start.elapsed())?;
        Ok(Outcome::Done)
    }
}
