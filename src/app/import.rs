//! `crimg import`: archives into containerd, verified, atomic, unpacked for CRI.
//!
//! Each archive is imported under its own lease: blobs are written (verified against
//! their digests while streaming), labelled with the GC references containerd expects,
//! unpacked into the CRI's snapshotter, and only then are the image records created.
//! Any failure deletes the lease synchronously, so nothing the archive brought stays.
//! A run killed before it could (SIGKILL, OOM, containerd killed under it) leaves its
//! lease; the next import or export sees its owner is gone and releases it.

mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sha2::Digest as _;
use tokio::sync::{mpsc, watch as tokio_watch};

use crate::app::{Outcome, Session, Settings};
use crate::archive::layout::{
    self, MAX_JSON, MemberInfo, Plan, PlanOptions, PlannedBlob, Source, chain_ids,
};
use crate::archive::paths::{self, Member};
use crate::archive::read::{self, Event, HEAD_LEN, Input, RandomAccess};
use crate::cli::{ImportArgs, OutputFormat};
use crate::model::{Descriptor, LABEL_CRI_MANAGED, LABEL_CRI_PINNED, PINNED_VALUE};
use crate::plan::platform::PlatformChoice;
use crate::render;
use crate::runtime::containerd::Containerd;
use crate::runtime::content::{Written, sha256_digest};
use crate::runtime::images_write::RecordChange;
use crate::runtime::unpack::snapshot_gc_label;

/// How long an abandoned import's lease keeps its content (a killed crimg), unless a
/// later crimg releases it first.
const LEASE_EXPIRE: Duration = Duration::from_secs(4 * 3600);
/// Blobs up to this size are read whole while streaming (indexes, manifests, configs).
const SMALL_BLOB: u64 = 1 << 20;
/// At most this much of them is kept in memory; the rest is read back from the store.
const SMALL_TOTAL: u64 = 64 << 20;
/// How long to wait for CRI to list a new image.
const CRI_WAIT: Duration = Duration::from_secs(10);
/// The value CRI gives its managed-image label.
const MANAGED: &str = "managed";

/// File name endings taken from a directory of archives, as K3s does.
const ARCHIVE_SUFFIXES: &[&str] = &[
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.zst",
    ".tar.zstd",
    ".tzst",
    ".tar.bz2",
    ".tbz",
    ".tbz2",
    ".tar.lz4",
    ".tlz4",
    ".oci",
    ".docker",
];

/// One thing to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Archive(Input),
    /// A `.txt` list of references to pull.
    List(PathBuf),
    /// A path that is neither.
    Bad(String, String),
}

impl Item {
    pub fn file(&self) -> String {
        match self {
            Item::Archive(i) => i.display(),
            Item::List(p) => p.display().to_string(),
            Item::Bad(f, _) => f.clone(),
        }
    }
}

fn is_list(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "txt")
}

/// Whether a file in a directory of archives is one (by name, as K3s decides).
pub fn is_candidate(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && (name.ends_with(".txt") || ARCHIVE_SUFFIXES.iter().any(|s| name.ends_with(s)))
}

/// Turns command-line paths into items: files, layout directories, and the archives of
/// directories of archives (recursively, sorted).
pub fn expand(paths: &[PathBuf]) -> Vec<Item> {
    let mut items = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            items.push(Item::Archive(Input::Stdin));
        } else if p.is_dir() {
            if read::is_layout_dir(p) {
                items.push(Item::Archive(Input::Dir(p.clone())));
            } else {
                let mut found = Vec::new();
                collect_dir(p, &mut found);
                found.sort();
                items.extend(found.into_iter().map(|f| {
                    if is_list(&f) {
                        Item::List(f)
                    } else if f.is_dir() {
                        Item::Archive(Input::Dir(f))
                    } else {
                        Item::Archive(Input::File(f))
                    }
                }));
            }
        } else if p.is_file() {
            items.push(if is_list(p) {
                Item::List(p.clone())
            } else {
                Item::Archive(Input::File(p.clone()))
            });
        } else {
            items.push(Item::Bad(
                p.display().to_string(),
                "no such file or directory".into(),
            ));
        }
    }
    items
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if p.is_dir() && !hidden {
            if read::is_layout_dir(&p) {
                out.push(p);
            } else {
                collect_dir(&p, out);
            }
        } else if p.is_file() && is_candidate(&p) {
            out.push(p);
        }
    }
}

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
    opts: PlanOptions,
    /// `None`: do not unpack.
    snapshotter: Option<String>,
    pin: bool,
    multi: MultiProgress,
    /// The lease of the import in progress, for [`Importer::abandon`].
    current_lease: std::sync::Mutex<Option<String>>,
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
        let multi = MultiProgress::with_draw_target(if session.settings.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
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
                "{spinner} {msg:30!} {bytes:>10}/{total_bytes:10} {wide_bar} {binary_bytes_per_sec}",
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

    /// Pulls the references of a `.txt` list through CRI, skipping those present.
    pub async fn import_list(&self, session: &Session, path: &Path) -> Result<ItemResult> {
        let text = std::fs::read_to_string(path).context("reading the list")?;
        let mut result = ItemResult::default();
        let mut lost = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(lost) = &lost {
                // The runtime is gone: every other reference would fail the same way.
                result
                    .failures
                    .push(anyhow::Error::new(crate::error::CrimgError::Lost {
                        shown: format!("line {}: {line}: not attempted: {lost}", n + 1),
                        lost: String::clone(lost),
                    }));
                continue;
            }
            let outcome: Result<ImportedImage> = async {
                let name = crate::reference::normalize(line).map_err(|e| anyhow!(e))?;
                if let Some(id) = session.cri.image_id(&name).await? {
                    return Ok(listed(name, id, "present"));
                }
                let bar = self.multi.add(if self.settings.progress {
                    ProgressBar::new_spinner()
                } else {
                    ProgressBar::hidden()
                });
                bar.set_message(format!("pulling {name}"));
                bar.enable_steady_tick(Duration::from_millis(200));
                let pulled = session.cri.pull_image(&name).await;
                bar.finish_and_clear();
                let id =
                    pulled.map_err(|e| crate::error::flattened(crate::app::status_text(&e), &e))?;
                Ok(listed(name, id, "pulled"))
            }
            .await;
            match outcome {
                Ok(i) => result.images.push(i),
                Err(e) => {
                    lost = crate::error::connection_lost(&e);
                    result.failures.push(crate::error::flattened(
                        format!("line {}: {line}: {e:#}", n + 1),
                        &e,
                    ));
                }
            }
        }
        Ok(result)
    }
}

fn listed(name: String, id: String, status: &'static str) -> ImportedImage {
    ImportedImage {
        names: vec![name],
        id,
        digest: String::new(),
        platforms: vec![],
        size: 0,
        status,
    }
}

/// One archive's import, under one lease.
struct Job<'a> {
    imp: &'a Importer,
    /// containerd with every call under the lease.
    c: Containerd,
    lease: String,
    bar: ProgressBar,
    written: AtomicU64,
    started: Instant,
}

/// What a streaming pass learnt.
#[derive(Default)]
struct Streamed {
    /// Members stored in the content store, by path.
    members: HashMap<String, MemberInfo>,
    links: HashMap<String, String>,
    /// Small verified blobs kept in memory, by digest.
    small: HashMap<String, Bytes>,
    small_total: u64,
    /// index.json and manifest.json.
    meta: HashMap<String, Bytes>,
    /// Digests now in the content store under the lease.
    stored: HashSet<String>,
}

impl Streamed {
    /// Notes a member whose body is now in the content store as blob `digest`.
    fn stored_member(&mut self, path: &str, digest: String, size: u64, head: Vec<u8>) {
        self.stored.insert(digest.clone());
        let size = size as i64;
        self.members
            .insert(path.to_string(), MemberInfo { digest, size, head });
    }

    /// Notes a member kept only in memory: it is stored if the plan names it.
    fn kept_member(&mut self, path: &str, digest: String, bytes: Bytes) {
        let info = MemberInfo {
            digest: digest.clone(),
            size: bytes.len() as i64,
            head: bytes[..bytes.len().min(HEAD_LEN)].to_vec(),
        };
        self.small_total += bytes.len() as u64;
        self.small.insert(digest, bytes);
        self.members.insert(path.to_string(), info);
    }
}

impl Streamed {
    fn resolve(&self, path: &str) -> String {
        let mut p = path.to_string();
        for _ in 0..16 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    }
}

impl Job<'_> {
    async fn run(&self, input: &Input) -> Result<Vec<ImportedImage>> {
        match input {
            Input::File(p) => {
                let path = p.clone();
                let indexed = tokio::task::spawn_blocking(move || read::index_tar_file(&path))
                    .await
                    .map_err(|e| anyhow!("reading task: {e}"))??;
                match indexed {
                    Some(ra) if ra.meta.contains_key("index.json") => self.random(ra).await,
                    _ => self.stream_input(input).await,
                }
            }
            Input::Stdin => self.stream_input(input).await,
            Input::Dir(d) => {
                if read::is_containers_dir(d) {
                    bail!(
                        "a containers/image `dir:` layout (podman save --format docker-dir, skopeo copy dir:), \
                         not an image archive; write an OCI layout instead, e.g. \
                         `skopeo copy dir:{} oci-archive:FILE.tar:NAME` or `podman save --format oci-archive`",
                        d.display()
                    );
                }
                let dir = d.clone();
                let ra = tokio::task::spawn_blocking(move || read::index_dir(&dir))
                    .await
                    .map_err(|e| anyhow!("reading task: {e}"))??;
                if ra.meta.contains_key("index.json") {
                    self.random(ra).await
                } else if ra.meta.contains_key("manifest.json") {
                    self.stream(read::stream_dir(ra)).await
                } else {
                    bail!(
                        "neither index.json (OCI layout) nor manifest.json (docker save) in the directory"
                    )
                }
            }
        }
    }

    async fn stream_input(&self, input: &Input) -> Result<Vec<ImportedImage>> {
        let count = Arc::new(AtomicU64::new(0));
        if let Input::File(p) = input
            && let Ok(m) = std::fs::metadata(p)
        {
            self.bar.set_length(m.len());
        }
        let (input2, count2) = (input.clone(), count.clone());
        let (compression, rx) =
            tokio::task::spawn_blocking(move || read::stream_tar(&input2, count2))
                .await
                .map_err(|e| anyhow!("reading task: {e}"))??;
        self.imp.settings.debug(format_args!(
            "{}: {} compression",
            input.display(),
            compression.name()
        ));
        let bar = self.bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                bar.set_position(count.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let r = self.stream(rx).await;
        ticker.abort();
        r
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

    /// One pass over a streamed archive: every blob goes to the store as it comes (the
    /// index may be last), then the plan decides what the images are.
    async fn stream(&self, mut rx: mpsc::Receiver<Result<Event>>) -> Result<Vec<ImportedImage>> {
        let mut st = Streamed::default();
        // A path given twice is ambiguous: which body counts is up to the reader.
        let mut seen = HashSet::new();
        while let Some(event) = rx.recv().await {
            let event = event?;
            let (Event::Link { path, .. } | Event::File { path, .. }) = &event;
            if !seen.insert(path.clone()) {
                bail!("{path}: the archive holds this path twice");
            }
            match event {
                Event::Link { path, target } => {
                    st.links.insert(path, target);
                }
                Event::File { path, size, body } => self
                    .stream_member(&mut st, &path, size, body)
                    .await
                    .with_context(|| path.clone())?,
            }
        }
        drop(rx);
        let source = StreamSource {
            st: &st,
            c: &self.c,
        };
        let plan = if let Some(index) = st.meta.get("index.json") {
            layout::plan_oci(
                index,
                st.meta.get("manifest.json").map(|b| &b[..]),
                &source,
                &self.imp.opts,
            )
            .await?
        } else if let Some(manifest) = st.meta.get("manifest.json") {
            layout::plan_docker(manifest, &source, &self.imp.opts).await?
        } else {
            bail!(
                "no index.json (OCI layout) or manifest.json (docker save) in the archive: not an image archive"
            )
        };
        self.notes(&plan);
        for b in &plan.blobs {
            if let Some(bytes) = plan.generated.get(&b.desc.digest) {
                self.store_bytes(&b.desc, &b.labels, bytes).await?;
            } else if st.stored.contains(&b.desc.digest) {
                // The digest matched, but the descriptor's size must match too.
                if let Some(m) = st.members.values().find(|m| m.digest == b.desc.digest)
                    && m.size != b.desc.size
                {
                    bail!(
                        "{} holds {} bytes, but its descriptor says {}",
                        describe(&plan, b),
                        m.size,
                        b.desc.size
                    );
                }
                self.label(&b.desc.digest, &b.labels).await?;
            } else if let Some(bytes) = st.small.get(&b.desc.digest) {
                // A small member (docker's config or an empty layer) kept in memory.
                self.store_bytes(&b.desc, &b.labels, bytes).await?;
            } else if !self.present(&b.desc.digest, &b.labels).await? {
                bail!("{} is missing from the archive", describe(&plan, b));
            }
        }
        let (tx, ready) =
            tokio_watch::channel(plan.blobs.iter().map(|b| b.desc.digest.clone()).collect());
        self.phase("written");
        let snapshots = self.unpack(&plan, ready).await;
        drop(tx);
        self.phase("unpacked");
        self.finish(&plan, snapshots?).await
    }

    async fn stream_member(
        &self,
        st: &mut Streamed,
        path: &str,
        size: u64,
        body: mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> Result<()> {
        match paths::classify(path)? {
            Member::Blob(digest) => {
                let desc = Descriptor {
                    media_type: String::new(),
                    digest: digest.clone(),
                    size: size as i64,
                };
                let head;
                if size <= SMALL_BLOB {
                    let bytes = collect(body, size).await?;
                    let actual = sha256_digest(sha2::Sha256::new_with_prefix(&bytes));
                    if actual != digest {
                        bail!(
                            "content has digest {actual}, not the {digest} its name says (corrupt archive?)"
                        );
                    }
                    head = bytes[..bytes.len().min(HEAD_LEN)].to_vec();
                    self.store_bytes(&desc, &BTreeMap::new(), &bytes).await?;
                    if st.small_total + size <= SMALL_TOTAL {
                        st.small_total += size;
                        st.small.insert(digest.clone(), bytes);
                    }
                } else if self.present(&digest, &BTreeMap::new()).await? {
                    // Already stored: skip its bytes (the reader drops them).
                    head = first_bytes(body).await?;
                } else {
                    let (h, reader) = with_head(body).await?;
                    head = h;
                    let written = &self.written;
                    self.c
                        .write_blob(&desc, &BTreeMap::new(), reader, |n| {
                            written.fetch_add(n, Ordering::Relaxed);
                        })
                        .await?;
                }
                st.stored_member(path, digest, size, head);
            }
            Member::Index | Member::DockerManifest => {
                if size > MAX_JSON {
                    bail!("{size} bytes, too large for a JSON document");
                }
                st.meta.insert(path.to_string(), collect(body, size).await?);
            }
            Member::Marker => {}
            Member::Other => self.stream_other(st, path, size, body).await?,
        }
        Ok(())
    }

    /// Any other member: a docker archive's config or layer is whatever path manifest.json
    /// names (`<id>/layer.tar`, `<hex>.tar`, a link to either), and manifest.json may come
    /// after it, so every such member is kept by the digest of its bytes: small ones in
    /// memory (stored later if the plan names them), the rest in the store under the lease.
    async fn stream_other(
        &self,
        st: &mut Streamed,
        path: &str,
        size: u64,
        body: mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> Result<()> {
        if size <= SMALL_BLOB && st.small_total + size <= SMALL_TOTAL {
            let bytes = collect(body, size).await?;
            let digest = sha256_digest(sha2::Sha256::new_with_prefix(&bytes));
            st.kept_member(path, digest, bytes);
            return Ok(());
        }
        // The digest is learnt by writing it.
        let (head, reader) = with_head(body).await?;
        let written = &self.written;
        let digest = self
            .c
            .write_blob_unknown(size as i64, &BTreeMap::new(), reader, |n| {
                written.fetch_add(n, Ordering::Relaxed);
            })
            .await?;
        self.c.lease_content(&self.lease, &digest).await?;
        st.stored_member(path, digest, size, head);
        Ok(())
    }

    /// An archive whose members can be read at will: plan first, then write only the
    /// blobs the chosen platforms need, layers in order, while unpacking the layers
    /// already written.
    async fn random(&self, ra: RandomAccess) -> Result<Vec<ImportedImage>> {
        let ra = Arc::new(ra);
        let source = RandomSource {
            ra: ra.clone(),
            cache: std::sync::Mutex::new(HashMap::new()),
        };
        let index = ra.meta.get("index.json").cloned().unwrap_or_default();
        let docker = ra.meta.get("manifest.json").cloned();
        let plan = layout::plan_oci(&index, docker.as_deref(), &source, &self.imp.opts).await?;
        self.notes(&plan);
        self.phase("planned");
        let cache = source.cache.into_inner().unwrap_or_default();
        self.bar.set_length(
            plan.blobs
                .iter()
                .filter(|b| !cache.contains_key(&b.desc.digest))
                .map(|b| b.desc.size.max(0) as u64)
                .sum(),
        );
        let (tx, ready) = tokio_watch::channel(HashSet::new());
        let write = async {
            for b in &plan.blobs {
                if let Some(bytes) = plan
                    .generated
                    .get(&b.desc.digest)
                    .or(cache.get(&b.desc.digest))
                {
                    self.store_bytes(&b.desc, &b.labels, bytes).await?;
                } else if !self.present(&b.desc.digest, &b.labels).await? {
                    let ext = ra.blob(&b.desc.digest).ok_or_else(|| {
                        anyhow!("{} is missing from the archive", describe(&plan, b))
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
                        .with_context(|| paths::blob_path(&b.desc.digest))?;
                    if w == Written::AlreadyExists {
                        self.label(&b.desc.digest, &b.labels).await?;
                    }
                }
                tx.send_modify(|s| {
                    s.insert(b.desc.digest.clone());
                });
            }
            Ok::<_, anyhow::Error>(())
        };
        // Unpacking layer N overlaps writing layer N+1; the first error stops both.
        let (w, u) = tokio::join!(
            async {
                let r = write.await;
                if r.is_err() {
                    tx.send_modify(|s| {
                        s.insert(STOP.into());
                    });
                }
                r
            },
            self.unpack(&plan, ready)
        );
        w?;
        let u = u?;
        self.phase("written and unpacked");
        self.finish(&plan, u).await
    }

    /// A timing diagnostic (with --verbose).
    fn phase(&self, what: &str) {
        self.imp.settings.debug(format_args!(
            "{what} after {:.2}s",
            self.started.elapsed().as_secs_f64()
        ));
    }

    fn notes(&self, plan: &Plan) {
        for n in &plan.notes {
            self.imp.settings.warn(n);
        }
    }

    /// Unpacks the manifests the plan marks, each layer as soon as it is `ready`.
    /// Returns each config digest with its top chain ID.
    async fn unpack(
        &self,
        plan: &Plan,
        mut ready: tokio_watch::Receiver<HashSet<String>>,
    ) -> Result<Vec<(String, String)>> {
        let Some(snapshotter) = &self.imp.snapshotter else {
            return Ok(vec![]);
        };
        let mut done = Vec::new();
        let mut seen = HashSet::new();
        for m in plan
            .images
            .iter()
            .flat_map(|i| &i.manifests)
            .filter(|m| m.unpack)
        {
            if !seen.insert(m.config.digest.clone()) {
                continue;
            }
            let chains = chain_ids(&m.diff_ids);
            let mut parent: Option<&str> = None;
            for (i, layer) in m.layers.iter().enumerate() {
                let ok = ready
                    .wait_for(|s| s.contains(&layer.digest) || s.contains(STOP))
                    .await
                    .map(|s| !s.contains(STOP))
                    .unwrap_or(false);
                if !ok {
                    bail!("unpacking stopped");
                }
                // Leased before it is looked for: a snapshot already there (another
                // image's layer) must survive a collection until this image holds it.
                self.lease_snapshot(snapshotter, &chains[i]).await?;
                self.c
                    .unpack_layer(snapshotter, parent, &chains[i], layer, &m.diff_ids[i])
                    .await
                    .with_context(|| format!("unpacking into {snapshotter}"))?;
                parent = Some(&chains[i]);
            }
            if let Some(top) = chains.last() {
                done.push((m.config.digest.clone(), top.clone()));
            }
        }
        Ok(done)
    }

    /// Puts snapshot `key` of `snapshotter` under the import's lease, whether it exists
    /// yet or not.
    async fn lease_snapshot(&self, snapshotter: &str, key: &str) -> Result<()> {
        use crate::proto::containerd::services::leases::v1 as leases;
        self.c
            .leases()
            .add_resource(self.c.req(leases::AddResourceRequest {
                id: self.lease.clone(),
                resource: Some(leases::Resource {
                    id: key.to_string(),
                    r#type: format!("snapshots/{snapshotter}"),
                }),
            }))
            .await
            .with_context(|| format!("adding snapshot {key} to lease {}", self.lease))?;
        Ok(())
    }

    /// Snapshot references, then the image records (all or none).
    async fn finish(
        &self,
        plan: &Plan,
        snapshots: Vec<(String, String)>,
    ) -> Result<Vec<ImportedImage>> {
        if let Some(snapshotter) = &self.imp.snapshotter {
            for (config, top) in &snapshots {
                let labels = BTreeMap::from([(snapshot_gc_label(snapshotter), top.clone())]);
                self.label(config, &labels).await?;
            }
        }
        let mut labels = BTreeMap::from([(LABEL_CRI_MANAGED.to_string(), MANAGED.to_string())]);
        if self.imp.pin {
            labels.insert(LABEL_CRI_PINNED.to_string(), PINNED_VALUE.to_string());
        }
        let mut changes: Vec<(String, RecordChange)> = Vec::new();
        let mut out = Vec::new();
        let result: Result<()> = async {
            for image in &plan.images {
                // CRI keeps a record named by the image ID beside the tags; so do we.
                let mut names = image.names.clone();
                names.push(image.id.clone());
                for name in &names {
                    let change = self.c.put_image(name, &image.target, &labels).await?;
                    changes.push((name.clone(), change));
                }
                out.push(ImportedImage {
                    names: image.names.clone(),
                    id: image.id.clone(),
                    digest: image.target.digest.clone(),
                    platforms: image.platforms(),
                    size: plan.image_size(image),
                    status: "imported",
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
        Ok(out)
    }
}

/// A sentinel in the ready set: the writer failed, stop unpacking.
const STOP: &str = "stop";

/// "layer 2 (sha256:…) of docker.io/library/app:1" for error messages.
fn describe(plan: &Plan, b: &PlannedBlob) -> String {
    let role = match b.role {
        layout::Role::Index => "index",
        layout::Role::Manifest => "manifest",
        layout::Role::Config => "config",
        layout::Role::Layer => "layer",
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

/// Reads a whole member body.
async fn collect(mut body: mpsc::Receiver<std::io::Result<Bytes>>, size: u64) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(size as usize);
    while let Some(chunk) = body.recv().await {
        buf.extend_from_slice(&chunk?);
    }
    if buf.len() as u64 != size {
        bail!("archive ends early (truncated?)");
    }
    Ok(Bytes::from(buf))
}

/// The first bytes of a body whose rest is skipped.
async fn first_bytes(mut body: mpsc::Receiver<std::io::Result<Bytes>>) -> Result<Vec<u8>> {
    match body.recv().await {
        Some(chunk) => Ok(chunk?[..].iter().take(HEAD_LEN).copied().collect()),
        None => Ok(vec![]),
    }
}

/// The first bytes of a body, and a reader over all of it.
async fn with_head(
    mut body: mpsc::Receiver<std::io::Result<Bytes>>,
) -> Result<(Vec<u8>, impl tokio::io::AsyncRead + Unpin + use<>)> {
    let first = body.recv().await;
    let head = match &first {
        Some(Ok(b)) => b[..b.len().min(HEAD_LEN)].to_vec(),
        Some(Err(e)) => bail!("{e}"),
        None => vec![],
    };
    let rest = tokio_stream::wrappers::ReceiverStream::new(body);
    let stream = futures::StreamExt::chain(futures::stream::iter(first), rest);
    Ok((head, tokio_util::io::StreamReader::new(stream)))
}

/// Planning's view of a streamed archive: what was stored, read back when not in memory.
struct StreamSource<'a> {
    st: &'a Streamed,
    c: &'a Containerd,
}

impl Source for StreamSource<'_> {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        if let Some(b) = self.st.small.get(digest) {
            return Ok(b.clone());
        }
        if !self.st.stored.contains(digest) && self.c.content_info(digest).await?.is_none() {
            bail!("blob {digest} is missing from the archive");
        }
        read_back(self.c, digest).await
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.st.members.get(&self.st.resolve(path)).cloned()
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        let m = self
            .member(path)
            .ok_or_else(|| anyhow!("{path} is missing from the archive"))?;
        self.blob(&m.digest).await
    }
}

/// Reads a (small) blob back from the content store and checks it.
async fn read_back(c: &Containerd, digest: &str) -> Result<Bytes> {
    use futures::StreamExt;
    let mut stream = Box::pin(c.read_blob(digest).await?);
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() as u64 > MAX_JSON {
            bail!("blob {digest} is too large for a JSON document");
        }
    }
    let actual = sha256_digest(sha2::Sha256::new_with_prefix(&buf));
    if actual != digest {
        bail!("blob {digest} in the content store has digest {actual}");
    }
    Ok(Bytes::from(buf))
}

/// Planning's view of a seekable archive: small blobs read and verified on demand, and
/// kept, so they are written from memory later.
struct RandomSource {
    ra: Arc<RandomAccess>,
    cache: std::sync::Mutex<HashMap<String, Bytes>>,
}

impl Source for RandomSource {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        if let Some(b) = self.cache.lock().ok().and_then(|c| c.get(digest).cloned()) {
            return Ok(b);
        }
        let path = paths::blob_path(digest);
        let bytes = self.ra.read(&path).await?;
        let actual = sha256_digest(sha2::Sha256::new_with_prefix(&bytes));
        if actual != digest {
            bail!("{path}: content has digest {actual} (corrupt archive?)");
        }
        if let Ok(mut c) = self.cache.lock() {
            c.insert(digest.to_string(), bytes.clone());
        }
        Ok(bytes)
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.ra.blob_member(path)
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.ra.read(path).await
    }
}

// ---------------------------------------------------------------------------------------
// The command.

pub async fn run(settings: Settings, args: ImportArgs) -> Result<Outcome> {
    if args.watch {
        return watch::run(settings, args).await;
    }
    let items = expand(&args.paths);
    if items.is_empty() {
        return Err(crate::error::CrimgError::Usage(
            "no archive to import in the given directories".into(),
        )
        .into());
    }
    if items
        .iter()
        .filter(|i| **i == Item::Archive(Input::Stdin))
        .count()
        > 1
    {
        return Err(crate::error::CrimgError::Usage(
            "`-` (standard input) may be given once".into(),
        )
        .into());
    }
    let start = Instant::now();
    let mut session = Session::connect(settings).await?;
    let importer = Importer::new(&mut session, &args).await?;
    let single = items.len() == 1;
    let mut report = Report::default();
    let work = import_all(&importer, &session, &items, single, &mut report);
    let lost = tokio::select! {
        lost = work => lost,
        // Dropping `work` stops the import in progress; its lease goes now, and with
        // it whatever it had written. Archives imported before the signal stay.
        signal = crate::error::interrupted() => {
            importer.abandon().await;
            return Err(crate::error::CrimgError::Interrupted {
                signal,
                what: "the import in progress was undone".into(),
            }
            .into());
        }
    };
    report.render(&importer.settings, start.elapsed())?;
    let images: usize = report.imported.iter().map(|(_, i)| i.len()).sum();
    // A lost runtime is no partial success: it is unreachable (exit 3), whatever was
    // imported before.
    if let Some(lost) = lost {
        if report.failed.len() == 1 && images == 0 {
            return Err(report.failed.remove(0).1);
        }
        return Err(crate::error::CrimgError::Lost {
            shown: format!(
                "{} of {} item(s) failed or were not attempted, {lost}",
                report.failed.len(),
                items.len()
            ),
            lost,
        }
        .into());
    }
    match (report.failed.len(), images) {
        (0, _) => Ok(Outcome::Done),
        (_, n) if n > 0 => Ok(Outcome::Partial),
        // The item's own error, so its kind decides the exit code.
        (1, _) => Err(report.failed.remove(0).1),
        (n, _) => Err(anyhow!("all {n} imports failed")),
    }
}

/// Imports every item in turn, recording what happened in `report`. Once the connection
/// to the runtime is lost, the items left are not attempted (each would fail the same
/// way) but recorded as failed for that reason; returns the socket and why.
async fn import_all(
    importer: &Importer,
    session: &Session,
    items: &[Item],
    single: bool,
    report: &mut Report,
) -> Option<String> {
    let mut lost: Option<String> = None;
    for item in items {
        let file = item.file();
        if let Some(lost) = &lost {
            let e = anyhow::Error::new(crate::error::CrimgError::Lost {
                shown: format!("not attempted: {lost}"),
                lost: lost.clone(),
            })
            .context(file.clone());
            eprintln!("crimg: error: {e:#}");
            report.failed.push((file, e));
            continue;
        }
        let r = import_item(importer, session, item).await;
        match r {
            Ok(res) => {
                // A lone failure is the command's error, printed once at the end.
                let lone = single && res.images.is_empty() && res.failures.len() == 1;
                for f in res.failures {
                    let e = f.context(file.clone());
                    if !lone {
                        eprintln!("crimg: error: {e:#}");
                    }
                    lost = lost.or_else(|| crate::error::connection_lost(&e));
                    report.failed.push((file.clone(), e));
                }
                report.written += res.written;
                if !res.images.is_empty() {
                    report.imported.push((file, res.images));
                }
            }
            Err(e) => {
                let e = e.context(file.clone());
                if !single {
                    eprintln!("crimg: error: {e:#}");
                }
                lost = crate::error::connection_lost(&e);
                report.failed.push((file, e));
            }
        }
    }
    lost
}

pub async fn import_item(
    importer: &Importer,
    session: &Session,
    item: &Item,
) -> Result<ItemResult> {
    match item {
        Item::Archive(input) => importer.import_archive(session, input).await,
        Item::List(path) => importer.import_list(session, path).await,
        Item::Bad(_, problem) => Err(anyhow!("{problem}")),
    }
}

/// Everything one run did, for output.
#[derive(Default)]
pub struct Report {
    pub imported: Vec<(String, Vec<ImportedImage>)>,
    /// Each failure shows (`{:#}`) as `FILE: WHY`; kept as an error for its kind.
    pub failed: Vec<(String, anyhow::Error)>,
    pub written: u64,
}

#[derive(Serialize)]
struct JsonResult {
    imported: Vec<JsonFile>,
    failed: Vec<JsonFailure>,
}

#[derive(Serialize)]
struct JsonFile {
    file: String,
    images: Vec<JsonImage>,
}

#[derive(Serialize)]
struct JsonImage {
    name: String,
    id: String,
    digest: String,
}

#[derive(Serialize)]
struct JsonFailure {
    file: String,
    error: String,
}

impl Report {
    pub fn render(&self, settings: &Settings, elapsed: Duration) -> Result<()> {
        let rows = || {
            self.imported.iter().flat_map(|(_, images)| {
                images
                    .iter()
                    .flat_map(|i| i.names.iter().map(move |n| (n, i)))
            })
        };
        match settings.output {
            OutputFormat::Json => render::print_json(&JsonResult {
                imported: self
                    .imported
                    .iter()
                    .map(|(file, images)| JsonFile {
                        file: file.clone(),
                        images: images
                            .iter()
                            .flat_map(|i| {
                                i.names.iter().map(|n| JsonImage {
                                    name: n.clone(),
                                    id: i.id.clone(),
                                    digest: i.digest.clone(),
                                })
                            })
                            .collect(),
                    })
                    .collect(),
                failed: self
                    .failed
                    .iter()
                    .map(|(file, error)| JsonFailure {
                        file: file.clone(),
                        error: format!("{error:#}"),
                    })
                    .collect(),
            })?,
            OutputFormat::Name => render::print_lines(rows().map(|(n, _)| n))?,
            OutputFormat::Table | OutputFormat::Wide => {
                if rows().next().is_some() {
                    let wide = settings.output == OutputFormat::Wide;
                    let mut t = render::table(&["IMAGE", "ID", "PLATFORMS", "SIZE", "STATUS"]);
                    for (name, i) in rows() {
                        let id = if wide {
                            i.id.as_str()
                        } else {
                            crate::model::short_id(&i.id)
                        };
                        t.add_row(vec![
                            name.clone(),
                            id.to_string(),
                            if i.platforms.is_empty() {
                                "-".into()
                            } else {
                                i.platforms.join(",")
                            },
                            if i.size == 0 {
                                "-".into()
                            } else {
                                render::human_size(i.size)
                            },
                            i.status.to_string(),
                        ]);
                    }
                    render::print_table(&t)?;
                }
            }
        }
        let images: usize = self.imported.iter().map(|(_, i)| i.len()).sum();
        // When nothing worked the error says it all.
        if !settings.quiet && (images > 0 || self.failed.is_empty()) {
            let mut line = format!(
                "crimg: imported {images} image(s) from {} item(s), {} written in {:.1}s",
                self.imported.len(),
                render::human_size(self.written),
                elapsed.as_secs_f64()
            );
            if !self.failed.is_empty() {
                line.push_str(&format!("; {} failed", self.failed.len()));
            }
            eprintln!("{line}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_by_name() {
        let cases = [
            ("a.tar", true),
            ("a.tar.gz", true),
            ("a.tgz", true),
            ("a.tar.zst", true),
            ("a.tzst", true),
            ("a.tar.bz2", true),
            ("a.tbz", true),
            ("a.tar.lz4", true),
            ("list.txt", true),
            (".cache.json", false),
            (".hidden.tar", false),
            ("README.md", false),
            ("a.tar.partial", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_candidate(Path::new(name)), want, "{name}");
        }
    }
}
