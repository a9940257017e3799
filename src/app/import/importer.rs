//! What every import of one run shares, and one archive's import under its own lease.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::job::Job;
use crate::app::{Session, Settings};
use crate::archive::read::Input;
use crate::cli::ImportArgs;
use crate::plan::import::PlanOptions;
use crate::plan::platform::PlatformChoice;
use crate::runtime::containerd::Containerd;

/// How long an abandoned import's lease keeps its content (a killed crimg), unless a
/// later crimg releases it first.
const LEASE_EXPIRE: Duration = Duration::from_secs(4 * 3600);
/// How long to wait for CRI to list a new image.
const CRI_WAIT: Duration = Duration::from_secs(10);

/// One image an item brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    pub names: Vec<String>,
    pub id: String,
    pub digest: String,
    pub platforms: Vec<String>,
    pub size: u64,
    /// `imported`, `pulled` or `present` (a list's reference that was already there).
    pub status: &'static str,
}

/// What one item did.
#[derive(Debug, Default)]
pub struct ItemResult {
    pub images: Vec<ImportedImage>,
    /// Bytes written to the content store.
    pub written: u64,
    /// Per-reference failures of a list (the item's other references may have worked),
    /// each shown as `line N: REFERENCE: WHY`.
    pub failures: Vec<anyhow::Error>,
}

/// What every import of one run shares.
pub struct Importer {
    pub c: Containerd,
    pub settings: Settings,
    pub(super) opts: PlanOptions,
    /// `None`: do not unpack.
    pub(super) snapshotter: Option<String>,
    pub(super) pin: bool,
    pub(super) multi: MultiProgress,
    /// The lease of the import in progress, for [`Importer::abandon`].
    pub(super) current_lease: std::sync::Mutex<Option<String>>,
}

impl Importer {
    pub async fn new(session: &mut Session, args: &ImportArgs) -> Result<Importer> {
        let c = session.containerd().await?.clone();
        // What killed runs left under their leases goes before this run adds its own.
        crate::app::release_stale_leases(&c, &session.settings).await;
        let snapshotter = if args.no_unpack {
            None
        } else if let Some(s) = &args.snapshotter {
            Some(s.clone())
        } else {
            match session.cri.snapshotter().await {
                Ok(Some(s)) => Some(s),
                Ok(None) => Some("overlayfs".into()),
                Err(e) => {
                    session.settings.debug(format_args!(
                        "runtime status does not say its snapshotter ({e:#}); using overlayfs"
                    ));
                    Some("overlayfs".into())
                }
            }
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
            current_lease: std::sync::Mutex::new(None),
        })
    }

    /// Imports one archive under its own lease; on failure nothing of it stays.
    pub async fn import_archive(&self, session: &Session, input: &Input) -> Result<ItemResult> {
        let lease = self.c.create_lease("import", LEASE_EXPIRE).await?;
        if let Ok(mut l) = self.current_lease.lock() {
            *l = Some(lease.clone());
        }
        let job = Job {
            imp: self,
            c: self.c.with_lease(&lease)?,
            lease: lease.clone(),
            bar: self.bar(input),
            written: AtomicU64::new(0),
            started: Instant::now(),
        };
        let result = job.run(input).await;
        job.bar.finish_and_clear();
        if let Ok(mut l) = self.current_lease.lock() {
            *l = None;
        }
        match result {
            Ok(images) => {
                if let Err(e) = self.c.delete_lease(&lease, false).await {
                    self.settings.warn(format_args!("{e:#}"));
                }
                job.phase("recorded");
                self.wait_for_cri(session, &images).await;
                job.phase("listed by CRI");
                Ok(ItemResult {
                    images,
                    written: job.written.load(Ordering::Relaxed),
                    failures: vec![],
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

    /// Cleans up after an import that was cancelled midway (a signal while watching):
    /// its lease goes, and with it whatever it had written.
    pub async fn abandon(&self) {
        let lease = self.current_lease.lock().ok().and_then(|mut l| l.take());
        if let Some(lease) = lease
            && let Err(e) = self.c.delete_lease(&lease, true).await
        {
            self.settings.warn(format_args!("{e:#}"));
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

    /// CRI learns of new images from containerd's events; wait until it lists them, so
    /// a pod can use them as soon as this command returns.
    async fn wait_for_cri(&self, session: &Session, images: &[ImportedImage]) {
        let start = Instant::now();
        for image in images {
            let Some(name) = image.names.first() else {
                continue;
            };
            loop {
                match session.cri.image_id(name).await {
                    Ok(Some(_)) => break,
                    Ok(None) if start.elapsed() < CRI_WAIT => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(None) => {
                        // A foreign-platform image is stored but CRI may never list it.
                        self.settings
                            .debug(format_args!("the runtime does not list {name} yet"));
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
