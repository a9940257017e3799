//! One archive's import: blobs into the content store (streamed or read at will),
//! unpacked into the snapshotter, then the image records.

mod early;
mod stream;
mod unpack;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::ProgressBar;
use tokio::sync::watch as tokio_watch;

use super::importer::{ImportedImage, Importer, Replacement};
use super::many::Ticket;
use super::sources::{HashedSource, hash_members};
use super::streamed::{self, Opened, Streaming};
use crate::app::import::sources::TarSource;
use crate::archive::read::{Extent, Input, RandomAccess};
use crate::model::{Descriptor, LABEL_CRI_MANAGED, LABEL_CRI_PINNED, PINNED_VALUE};
use crate::oci::{Role, blob_path, gc};
use crate::plan::import::{self as import_plan, Plan, PlannedBlob};
use crate::runtime::containerd::Containerd;
use crate::runtime::content::Written;
use crate::runtime::images::RecordChange;

use crate::archive::read::SMALL_BLOB;
pub(super) use early::Arrivals;
use unpack::STOP;
pub(super) use unpack::{Layers, unpack_parallelism};

/// Of the blobs read whole while streaming ([`SMALL_BLOB`]), at most this much is kept
/// in memory; the rest is read back from the store.
const SMALL_TOTAL: u64 = 64 << 20;
/// The value CRI gives its managed-image label.
const MANAGED: &str = "managed";

/// One archive's import, under one lease.
pub(super) struct Job<'a> {
    pub(super) imp: &'a Importer,
    /// containerd with every call under the lease.
    pub(super) c: Containerd,
    pub(super) lease: String,
    pub(super) bar: ProgressBar,
    pub(super) written: AtomicU64,
    pub(super) started: Instant,
    /// What [`Job::finish`] recorded, one entry per image, for the CRI check after it.
    pub(super) recorded: std::sync::Mutex<Vec<Recorded>>,
    /// When this archive may write its image records.
    pub(super) ticket: &'a Ticket<'a>,
    /// The archive, as messages name it.
    pub(super) file: String,
    /// The chains this import has applied, or is applying.
    pub(super) layers: Layers,
    /// Layers applied at once: one per core.
    pub(super) applying: tokio::sync::Semaphore,
    /// What a streamed pass has stored, for the chains unpacked early.
    pub(super) arrived: tokio_watch::Sender<Arrivals>,
}

/// The image records one image's import created or replaced, and whether CRI is to list
/// it (it has a manifest this host runs; CRI lists no other).
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    pub(super) changes: Vec<(String, RecordChange)>,
    pub(super) runs_here: bool,
}

impl Job<'_> {
    pub(super) async fn run(&self, input: &Input) -> Result<Vec<ImportedImage>> {
        match streamed::open(input).await? {
            Opened::Oci(ra) => self.random(ra).await,
            Opened::DockerTar(ra) => self.random_docker(ra).await,
            Opened::Stream(Streaming {
                events,
                compression,
                read,
            }) => {
                // A compressed file may be read twice at once (see `early`).
                let file = match input {
                    Input::File(p) => Some(p.as_path()),
                    _ => None,
                };
                self.imp.settings.debug(format_args!(
                    "{}: {compression} compression",
                    input.display()
                ));
                match input {
                    Input::File(p) => {
                        if let Ok(m) = std::fs::metadata(p) {
                            self.bar.set_length(m.len());
                        }
                    }
                    Input::Dir(_) => self.bar.set_length(read.load(Ordering::Relaxed)),
                    Input::Stdin => {}
                }
                let bar = self.bar.clone();
                let ticker = tokio::spawn(async move {
                    loop {
                        bar.set_position(read.load(Ordering::Relaxed));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
                let r = self.stream(events, file).await;
                ticker.abort();
                r
            }
        }
    }

    /// Writes a blob from memory unless the store has it; sets `labels` either way.
    async fn store_bytes(
        &self,
        desc: &Descriptor,
        labels: &BTreeMap<String, String>,
        bytes: &[u8],
    ) -> Result<()> {
        if self.present(&desc.digest, labels).await? {
            return Ok(());
        }
        let w = self
            .c
            .write_blob(desc, labels, bytes, |_| {})
            .await
            .with_context(|| format!("storing blob {}", desc.digest))?;
        self.written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if w == Written::AlreadyExists {
            self.label(&desc.digest, labels).await?;
        }
        Ok(())
    }

    /// Whether the store has the blob; if so it is put under the lease and labelled.
    async fn present(&self, digest: &str, labels: &BTreeMap<String, String>) -> Result<bool> {
        // Leased before it is looked for, so a collection between the two cannot take it.
        self.c.lease_content(&self.lease, digest).await?;
        let Some(info) = self.c.content_info(digest).await? else {
            return Ok(false);
        };
        if labels.iter().any(|(k, v)| info.labels.get(k) != Some(v)) {
            self.label(digest, labels).await?;
        }
        Ok(true)
    }

    async fn label(&self, digest: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        self.c.content_update_labels(digest, labels, &[]).await
    }

    /// An archive whose members can be read at will: plan first, then write only the
    /// blobs the chosen platforms need while unpacking the layers already written.
    async fn random(&self, ra: RandomAccess) -> Result<Vec<ImportedImage>> {
        let ra = Arc::new(ra);
        let source = TarSource::new(ra.clone());
        let index = ra.meta.get("index.json").cloned().unwrap_or_default();
        let docker = ra.meta.get("manifest.json").cloned();
        let plan =
            import_plan::plan_oci(&index, docker.as_deref(), &source, &self.imp.opts).await?;
        let cache = source.into_cache();
        self.write_and_unpack(&ra, &plan, cache, HashMap::new())
            .await
    }

    /// A seekable `docker save` archive without an OCI index: the members manifest.json
    /// names are hashed first (a few at a time), so it is planned before anything is
    /// written, like an OCI layout.
    async fn random_docker(&self, ra: RandomAccess) -> Result<Vec<ImportedImage>> {
        let ra = Arc::new(ra);
        let manifest = ra.meta.get("manifest.json").cloned().unwrap_or_default();
        let entries = import_plan::parse_docker_manifest(&manifest)?;
        let named = entries
            .iter()
            .flat_map(|e| e.layers.iter())
            .cloned()
            .collect();
        let (members, extents) = hash_members(&ra, named, unpack_parallelism()).await?;
        self.phase("hashed");
        let source = HashedSource {
            tar: TarSource::new(ra.clone()),
            members,
        };
        let plan = import_plan::plan_docker(&manifest, &source, &self.imp.opts).await?;
        let cache = source.tar.into_cache();
        self.write_and_unpack(&ra, &plan, cache, extents).await
    }

    /// Writes the planned blobs, a few at a time (bytes from memory, the rest from the
    /// archive: blob paths, or `extents` by digest), while unpacking the layers written.
    async fn write_and_unpack(
        &self,
        ra: &RandomAccess,
        plan: &Plan,
        cache: HashMap<String, Bytes>,
        extents: HashMap<String, Extent>,
    ) -> Result<Vec<ImportedImage>> {
        self.notes(plan);
        self.phase("planned");
        self.bar.set_length(
            plan.blobs
                .iter()
                .filter(|b| !cache.contains_key(&b.desc.digest))
                .map(|b| b.desc.size.max(0) as u64)
                .sum(),
        );
        let (tx, ready) = tokio_watch::channel(HashSet::new());
        let (cache, extents, txr) = (&cache, &extents, &tx);
        let writes = plan.blobs.iter().map(|b| {
            let tx = txr;
            async move {
                if let Some(bytes) = plan
                    .generated
                    .get(&b.desc.digest)
                    .or(cache.get(&b.desc.digest))
                {
                    self.store_bytes(&b.desc, &b.labels, bytes).await?;
                } else if !self.present(&b.desc.digest, &b.labels).await? {
                    let ext = ra
                        .blob(&b.desc.digest)
                        .or(extents.get(&b.desc.digest))
                        .ok_or_else(|| {
                            anyhow!("{} is missing from the archive", describe(plan, b))
                        })?;
                    let reader = ra.open(ext).await?;
                    let (written, bar) = (&self.written, &self.bar);
                    let w = self
                        .c
                        .write_blob(&b.desc, &b.labels, reader, |n| {
                            written.fetch_add(n, Ordering::Relaxed);
                            bar.inc(n);
                        })
                        .await
                        .with_context(|| {
                            blob_path(&b.desc.digest).unwrap_or_else(|_| b.desc.digest.clone())
                        })?;
                    if w == Written::AlreadyExists {
                        self.label(&b.desc.digest, &b.labels).await?;
                    }
                }
                tx.send_modify(|s| {
                    s.insert(b.desc.digest.clone());
                });
                Ok::<_, anyhow::Error>(())
            }
        });
        // In plan order (layers bottom up), a few at a time: containerd hashes each
        // write on one core.
        let write = futures::stream::iter(writes)
            .buffered(unpack_parallelism())
            .try_for_each(|()| async { Ok(()) });
        // Unpacking layer N overlaps writing layer N+1; the first error stops both.
        let (w, u) = tokio::join!(
            async {
                let r = write.await;
                if r.is_ok() {
                    self.bar.set_prefix("unpacking");
                }
                if r.is_err() {
                    tx.send_modify(|s| {
                        s.insert(STOP.into());
                    });
                }
                r
            },
            self.unpack(plan, ready)
        );
        w?;
        let u = u?;
        self.phase("written and unpacked");
        self.finish(plan, u).await
    }

    /// A timing diagnostic (with --verbose).
    pub(super) fn phase(&self, what: &str) {
        // The bar says which phase its bytes belong to.
        match what {
            "planned" => self.bar.set_prefix("writing"),
            "written" => self.bar.set_prefix("unpacking"),
            _ => {}
        }
        self.imp.settings.debug(format_args!(
            "{}: {what} after {:.2}s",
            self.file,
            self.started.elapsed().as_secs_f64()
        ));
    }

    fn notes(&self, plan: &Plan) {
        for n in &plan.notes {
            self.imp.settings.warn(n);
        }
    }

    /// The names of `image` that pointed at another image before `changes`. A pin such a
    /// name carried moves with it: every record of `image` gets it (as `crimg pin` would
    /// write it), undone with the records if the import is.
    async fn replaced(
        &self,
        image: &import_plan::PlannedImage,
        changes: &[(String, RecordChange)],
    ) -> Result<Vec<Replacement>> {
        let mut replaced = Vec::new();
        let mut pins: BTreeMap<String, String> = BTreeMap::new();
        for (name, change) in changes {
            let RecordChange::Replaced(before) = change else {
                continue;
            };
            if before.target.digest == image.target.digest || *name == image.id {
                continue;
            }
            let moved = crate::plan::pin::pin_labels(before);
            let others = self.c.images_targeting(&before.target.digest).await?;
            let was = others
                .iter()
                .find(|r| r.is_id_record())
                .map_or_else(|| before.target.digest.clone(), |r| r.name.clone());
            replaced.push(Replacement {
                name: name.clone(),
                was,
                old_target: before.target.digest.clone(),
                pinned: !moved.is_empty(),
            });
            pins.extend(moved);
        }
        if !pins.is_empty() {
            let set: Vec<(String, String)> = pins.into_iter().collect();
            for (name, _) in changes {
                self.c.update_labels(name, &set, &[]).await?;
            }
        }
        Ok(replaced)
    }

    /// Snapshot references, then the image records (all or none).
    async fn finish(
        &self,
        plan: &Plan,
        snapshots: Vec<(String, String)>,
    ) -> Result<Vec<ImportedImage>> {
        if let Some(snapshotter) = &self.imp.snapshotter {
            for (config, top) in &snapshots {
                let labels = BTreeMap::from([(gc::snapshot_ref(snapshotter), top.clone())]);
                self.label(config, &labels).await?;
            }
        }
        let mut labels = BTreeMap::from([(LABEL_CRI_MANAGED.to_string(), MANAGED.to_string())]);
        if self.imp.pin {
            labels.insert(LABEL_CRI_PINNED.to_string(), PINNED_VALUE.to_string());
        }
        // After the archives before this one: the later of two archives keeps a tag both
        // carry, as if they were imported one by one.
        self.ticket.turn().await;
        self.phase("its turn to record");
        let mut changes: Vec<(String, RecordChange)> = Vec::new();
        let mut recorded = Vec::new();
        let mut out = Vec::new();
        let result: Result<()> = async {
            for image in &plan.images {
                // CRI keeps a record named by the image ID beside the tags; so do we.
                let mut names = image.names.clone();
                names.push(image.id.clone());
                let first = changes.len();
                for name in &names {
                    let change = self.c.put_image(name, &image.target, &labels).await?;
                    changes.push((name.clone(), change));
                }
                let replaced = self.replaced(image, &changes[first..]).await?;
                let host = crate::oci::Platform::host();
                let runs_here = image
                    .manifests
                    .iter()
                    .any(|m| m.platform.as_ref().is_some_and(|p| host.runs(p)));
                recorded.push(Recorded {
                    changes: changes[first..].to_vec(),
                    runs_here,
                });
                out.push(ImportedImage {
                    names: image.names.clone(),
                    id: image.id.clone(),
                    digest: image.target.digest.clone(),
                    platforms: image.platforms(),
                    size: plan.image_size(image),
                    status: "imported",
                    replaced,
                });
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            for (name, change) in changes.iter().rev() {
                if let Err(e2) = self.c.undo_put_image(name, change).await {
                    self.imp.settings.warn(format_args!("{e2:#}"));
                }
            }
            return Err(e);
        }
        if let Ok(mut r) = self.recorded.lock() {
            *r = recorded;
        }
        Ok(out)
    }
}

/// "layer 2 (sha256:…) of docker.io/library/app:1" for error messages.
pub(super) fn describe(plan: &Plan, b: &PlannedBlob) -> String {
    let role = match b.role {
        Role::Index => "index",
        Role::Manifest => "manifest",
        Role::Config => "config",
        Role::Layer => "layer",
    };
    let image = plan.images.iter().find(|i| {
        i.target.digest == b.desc.digest
            || i.manifests.iter().any(|m| {
                m.digest == b.desc.digest
                    || m.config.digest == b.desc.digest
                    || m.layers.iter().any(|l| l.digest == b.desc.digest)
            })
    });
    match image.and_then(|i| i.names.first()) {
        Some(name) => format!("{role} {} of {name}", b.desc.digest),
        None => format!("{role} {}", b.desc.digest),
    }
}
