//! What wakes the watch loop: filesystem events under the watched directories, and
//! containerd's image-delete events.

use std::path::PathBuf;

use notify::Watcher as _;
use tokio::sync::mpsc;

use crate::app::Settings;
use crate::plan::watch::POLL;
use crate::runtime::containerd::Containerd;

/// Watches `dirs` with inotify. Events only wake the loop; the scan decides. A full
/// channel already means "look". `None` when inotify cannot watch (limits reached,
/// unsupported filesystem) or when `poll` asks not to: the loop polls.
pub(super) fn watch_dirs(
    dirs: &[PathBuf],
    poll: bool,
    settings: &Settings,
) -> (Option<notify::RecommendedWatcher>, mpsc::Receiver<()>) {
    let (tx, events) = mpsc::channel::<()>(1);
    if poll {
        // The sender is dropped: the loop's select sees a closed channel and polls.
        return (None, events);
    }
    // Symbolic links to directories are not followed, as in the scan.
    let config = notify::Config::default().with_follow_symlinks(false);
    let watcher = notify::RecommendedWatcher::new(
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
        for d in dirs {
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
    (watcher, events)
}

/// The identity (device and inode) of each watched directory, to see one removed, or
/// removed and made again: inotify's watch ends with the directory it watched, so a new
/// directory of the same name must be watched anew.
pub(super) struct DirIds(Vec<Option<(u64, u64)>>);

impl DirIds {
    pub(super) fn of(dirs: &[PathBuf]) -> DirIds {
        DirIds(dirs.iter().map(|d| identity(d)).collect())
    }

    /// The directories whose identity changed since the last look, each with whether it
    /// is there now.
    pub(super) fn changes(&mut self, dirs: &[PathBuf]) -> Vec<(PathBuf, bool)> {
        let now = DirIds::of(dirs);
        let changed = dirs
            .iter()
            .zip(self.0.iter().zip(&now.0))
            .filter(|(_, (before, after))| before != after)
            .map(|(d, (_, after))| (d.clone(), after.is_some()))
            .collect();
        *self = now;
        changed
    }

    /// Whether a watched directory is missing: the loop then looks every [`POLL`].
    pub(super) fn any_missing(&self) -> bool {
        self.0.iter().any(Option::is_none)
    }
}

fn identity(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// With `pin`, containerd's image-delete events start a re-check at once; the interval
/// catches the rest (a pin label removed, an event stream lost with containerd). Without
/// it the receiver never yields.
pub(super) fn image_deletes(
    pin: bool,
    c: &Containerd,
    settings: &Settings,
) -> (Option<tokio::task::JoinHandle<()>>, mpsc::Receiver<()>) {
    let (ev_tx, image_events) = mpsc::channel::<()>(1);
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
    (events_task, image_events)
}
