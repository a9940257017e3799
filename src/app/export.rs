//! `crimg export`: images from the content store into one OCI + docker archive.
//!
//! Gather (resolve the references, walk every chosen descriptor), check (every blob in
//! the content store, or fetched with `--fetch-missing`), then write: the layout's JSON
//! files first, then each blob once, streamed from one containerd `Read` into the tar
//! on a writer thread (which hashes, compresses and writes) into a temp file beside the
//! target, synced and renamed into place only when everything succeeded.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::app::{Outcome, Session, Settings, inventory};
use crate::archive::write::{
    Compression, Compressor, Counting, NamedTarget, TarWriter, blob_path, docker_manifest_json,
    index_json, oci_layout_json,
};
use crate::archive::write_plan::{
    self, ImagePlan, MAX_JSON_BLOB, Store, docker_images, gc_labels, missing_report, unique_blobs,
};
use crate::cli::{self, ExportArgs, OutputFormat};
use crate::error::CrimgError;
use crate::model::{Descriptor, Image, ImageRecord};
use crate::plan::platform::PlatformChoice;
use crate::reference::{id_prefix, normalize, resolve};
use crate::registry::config::RegistryConfig;
use crate::registry::fetch::Fetcher;
use crate::registry::{self, Source};
use crate::runtime::containerd::Containerd;
use crate::runtime::content::sha256_digest;

/// Messages to the writer thread, which owns the tar stream.
enum Msg {
    Dir(&'static str),
    File(String, Vec<u8>),
    /// Starts a blob entry: path, size, digest to verify.
    Begin(String, u64, String),
    Data(bytes::Bytes),
    End,
    Finish,
}

/// Chunks in flight between the reader and the writer thread (containerd sends chunks
/// of up to 1 MiB, so this bounds memory to a few MiB whatever the image size).
const QUEUE: usize = 8;

/// What `-o json` prints after writing a file.
#[derive(Debug, Serialize)]
struct ExportResult {
    file: String,
    images: Vec<String>,
    blobs: usize,
    bytes: u64,
    fetched: Vec<String>,
}

/// Where the archive goes.
enum Target {
    Stdout,
    File { path: PathBuf, force: bool },
}

pub async fn run(settings: Settings, args: ExportArgs) -> Result<Outcome> {
    // Checked before connecting: a refused target should not wait on the runtime.
    let target = check_target(&args)?;
    let lease = LeaseHeld::default();
    let work = export(settings, args, target, &lease);
    tokio::select! {
        r = work => r,
        // Dropping `work` drops the temp file, which removes it: no partial file stays.
        // The fetch's lease goes now too, and with it whatever was fetched.
        signal = crate::error::interrupted() => {
            let held = lease.lock().ok().and_then(|mut l| l.take());
            if let Some((c, id)) = held {
                let _ = c.delete_lease(&id, false).await;
            }
            Err(CrimgError::Interrupted {
                signal,
                what: "no archive was written".into(),
            }
            .into())
        }
    }
}

/// The lease `--fetch-missing` holds while it works, for an interruption to delete.
type LeaseHeld = std::sync::Mutex<Option<(Containerd, String)>>;

fn check_target(args: &ExportArgs) -> Result<Target> {
    if args.output_file.as_os_str() == "-" {
        if std::io::stdout().is_terminal() {
            return Err(CrimgError::Usage(
                "refusing to write an image archive to a terminal; redirect standard output or use -O FILE"
                    .into(),
            )
            .into());
        }
        return Ok(Target::Stdout);
    }
    let path = args.output_file.clone();
    // symlink_metadata: a symlink (even a dangling one) is an existing target, and is
    // never followed. With --force the rename replaces the link itself.
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {
            return Err(CrimgError::Usage(format!(
                "{} is a directory; -O takes the archive's file name",
                path.display()
            ))
            .into());
        }
        Ok(_) if !args.force => {
            return Err(CrimgError::Usage(format!(
                "{} already exists; pass --force to replace it",
                path.display()
            ))
            .into());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    let dir = parent_dir(&path);
    if !dir.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(Target::File {
        path,
        force: args.force,
    })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

async fn export(
    settings: Settings,
    args: ExportArgs,
    target: Target,
    held: &LeaseHeld,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut session = Session::connect(settings).await?;
    let containerd = session.containerd().await?.clone();
    let inv = inventory::gather(&mut session).await?;
    let settings = session.settings.clone();
    let records = containerd.list_images().await?;
    let wanted = resolve_targets(&inv.images, &records, &args.refs)?;
    let choice = PlatformChoice::from_args(&args.platform, args.all_platforms);

    let mut fetch = if args.fetch_missing {
        let config = RegistryConfig::load(&args.registry_config_dir, &args.registries_yaml)?;
        let warn_settings = settings.clone();
        let debug_settings = settings.clone();
        let fetcher = Fetcher::new(
            config,
            Box::new(move |m| warn_settings.warn(m)),
            Box::new(move |m| debug_settings.debug(m)),
        );
        // Fetched content is held by this lease until the GC labels of its parents hold
        // it; a crash leaves a lease that expires by itself, or that the next import or
        // export releases. Those earlier runs left go first.
        crate::app::release_stale_leases(&containerd, &settings).await;
        let lease = containerd
            .create_lease("export", std::time::Duration::from_secs(3600))
            .await?;
        if let Ok(mut h) = held.lock() {
            *h = Some((containerd.clone(), lease.clone()));
        }
        let leased = containerd.with_lease(&lease)?;
        Some(FetchState {
            fetcher,
            lease,
            leased,
            fetched: Vec::new(),
        })
    } else {
        None
    };

    let result = gather_and_fetch(&containerd, &settings, wanted, &choice, fetch.as_mut()).await;
    if let Ok(mut h) = held.lock() {
        *h = None;
    }
    if let Some(f) = &fetch
        && let Err(e) = containerd.delete_lease(&f.lease, false).await
    {
        settings.warn(format_args!("{e:#}"));
    }
    let plans = result?;
    let fetched = fetch.map(|f| f.fetched).unwrap_or_default();

    for p in &plans {
        if !p.skipped_platforms.is_empty() {
            settings.warn(format_args!(
                "{}: left out platforms this node never pulled: {}",
                p.display_name(),
                p.skipped_platforms.join(", ")
            ));
        }
    }

    // Everything is known: now write.
    let names: Vec<NamedTarget> = plans
        .iter()
        .flat_map(|p| {
            p.names.iter().map(|n| NamedTarget {
                name: n.clone(),
                target: p.target.clone(),
            })
        })
        .collect();
    let blobs = unique_blobs(&plans);
    let docker = docker_manifest_json(&docker_images(&plans, &choice))?;
    let compression = match args.compress {
        None => Compression::None,
        Some(cli::Compression::Gzip) => Compression::Gzip,
        Some(cli::Compression::Zstd) => Compression::Zstd,
    };
    let files = vec![
        ("oci-layout".to_string(), oci_layout_json()),
        ("index.json".to_string(), index_json(&names)),
        ("manifest.json".to_string(), docker),
    ];

    let total: u64 = blobs.iter().map(|b| b.size.max(0) as u64).sum();
    let bar = progress(&settings, total, "exporting");
    let (bytes, shown) = match &target {
        Target::Stdout => {
            let (_, bytes) = write_archive(
                &containerd,
                std::io::stdout(),
                compression,
                &files,
                &blobs,
                &bar,
            )
            .await?;
            (bytes, "standard output".to_string())
        }
        Target::File { path, force } => {
            let bytes =
                write_file(&containerd, path, *force, compression, &files, &blobs, &bar).await?;
            (bytes, path.display().to_string())
        }
    };
    bar.finish_and_clear();

    let image_names: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
    if !settings.quiet {
        eprintln!(
            "exported {} image{}, {} blob{}, {} to {shown} in {:.1} s{}",
            image_names.len(),
            if image_names.len() == 1 { "" } else { "s" },
            blobs.len(),
            if blobs.len() == 1 { "" } else { "s" },
            crate::render::human_size(bytes),
            started.elapsed().as_secs_f64(),
            if fetched.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} blob{} fetched from the registry and stored back)",
                    fetched.len(),
                    if fetched.len() == 1 { "" } else { "s" }
                )
            }
        );
    }
    if let (OutputFormat::Json, Target::File { path, .. }) = (settings.output, &target) {
        crate::render::print_json(&ExportResult {
            file: path.display().to_string(),
            images: image_names,
            blobs: blobs.len(),
            bytes,
            fetched,
        })?;
    }
    Ok(Outcome::Done)
}

/// The names to export and the target each points at, grouped by target.
fn resolve_targets(
    images: &[Image],
    records: &[ImageRecord],
    refs: &[String],
) -> Result<Vec<(Vec<String>, Descriptor)>> {
    let mut out: Vec<(Vec<String>, Descriptor)> = Vec::new();
    for r in refs {
        let chosen = records_for(images, records, r)?;
        for rec in chosen {
            if rec.target.digest.is_empty() {
                bail!("image record {} has no target", rec.name);
            }
            match out.iter_mut().find(|(_, t)| t.digest == rec.target.digest) {
                Some((names, _)) => {
                    if !names.contains(&rec.name) {
                        names.push(rec.name.clone());
                    }
                }
                None => out.push((vec![rec.name.clone()], rec.target.clone())),
            }
        }
    }
    Ok(out)
}

/// The containerd records a user's reference names: a tag or digest reference names its
/// record; an image ID or ID prefix names every tag of the image (else its digest
/// references, else the ID record CRI keeps).
fn records_for<'a>(
    images: &'a [Image],
    records: &'a [ImageRecord],
    input: &str,
) -> Result<Vec<&'a ImageRecord>> {
    let same = |a: &str, b: &str| a == b || normalize(a).is_ok_and(|n| n == b);
    let image = match resolve(images, input) {
        Ok(i) => i,
        Err(CrimgError::NotFound(_)) => {
            // Not a CRI image (another namespace, or not yet seen by CRI): containerd's
            // records by name.
            let wanted = normalize(input).unwrap_or_else(|_| input.to_string());
            return match records
                .iter()
                .find(|r| r.name == input || same(&r.name, &wanted))
            {
                Some(r) => Ok(vec![r]),
                None => Err(CrimgError::NotFound(input.to_string()).into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let by_id = id_prefix(input).is_some_and(|hex| {
        image
            .id
            .strip_prefix("sha256:")
            .unwrap_or(&image.id)
            .starts_with(hex)
    });
    let own: Vec<&ImageRecord> = if image.records.is_empty() {
        // The inventory had no containerd view of it; match the records ourselves.
        records
            .iter()
            .filter(|r| r.name == image.id || image.references().any(|n| same(n, &r.name)))
            .collect()
    } else {
        image.records.iter().collect()
    };
    let picked: Vec<&ImageRecord> = if by_id {
        let tagged: Vec<&ImageRecord> = own
            .iter()
            .copied()
            .filter(|r| {
                image
                    .repo_tags
                    .iter()
                    .any(|t| same(t, &r.name) || *t == r.name)
            })
            .collect();
        let digests: Vec<&ImageRecord> = own
            .iter()
            .copied()
            .filter(|r| r.name.contains('@'))
            .collect();
        if !tagged.is_empty() {
            tagged
        } else if !digests.is_empty() {
            digests
        } else {
            own.iter().copied().filter(|r| r.name == image.id).collect()
        }
    } else {
        let wanted = normalize(input).map_err(CrimgError::Usage)?;
        own.iter()
            .copied()
            .filter(|r| r.name == wanted || same(&r.name, &wanted))
            .collect()
    };
    if picked.is_empty() {
        bail!(
            "{input} ({}) has no containerd image record in this namespace to export; \
             export needs containerd (check --address and --namespace)",
            image.display_name()
        );
    }
    Ok(picked)
}

struct FetchState {
    fetcher: Fetcher,
    lease: String,
    leased: Containerd,
    fetched: Vec<String>,
}

/// The walk's view of containerd: presence, small reads and, with a fetcher, fetching
/// absent manifests on the way.
struct NodeStore<'a> {
    c: &'a Containerd,
    fetch: Option<&'a mut FetchState>,
    /// Content labels seen, by digest (for `distribution.source`).
    labels: HashMap<String, BTreeMap<String, String>>,
    /// The names of the image being walked.
    names: Vec<String>,
    /// Digests of the image being walked that carry labels.
    seen: Vec<String>,
}

impl NodeStore<'_> {
    fn sources(&self, digests: &[String], names: &[String]) -> Vec<Source> {
        let labels: Vec<&BTreeMap<String, String>> =
            digests.iter().filter_map(|d| self.labels.get(d)).collect();
        registry::sources(&labels, names)
    }
}

impl Store for NodeStore<'_> {
    async fn has(&mut self, desc: &Descriptor) -> Result<bool> {
        match self.c.content_info(&desc.digest).await? {
            Some(info) => {
                self.seen.push(desc.digest.clone());
                self.labels.insert(desc.digest.clone(), info.labels);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn read_small(&mut self, desc: &Descriptor, may_fetch: bool) -> Result<Option<Vec<u8>>> {
        if let Some(info) = self.c.content_info(&desc.digest).await? {
            self.seen.push(desc.digest.clone());
            self.labels.insert(desc.digest.clone(), info.labels);
            let mut stream = Box::pin(self.c.read_blob(&desc.digest).await?);
            let mut bytes = Vec::with_capacity(desc.size.clamp(0, MAX_JSON_BLOB) as usize);
            let mut hasher = Sha256::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if (bytes.len() + chunk.len()) as i64 > desc.size {
                    bail!(
                        "blob {} in the content store is larger than its descriptor's {} bytes",
                        desc.digest,
                        desc.size
                    );
                }
                hasher.update(&chunk);
                bytes.extend_from_slice(&chunk);
            }
            let actual = sha256_digest(hasher);
            if actual != desc.digest {
                bail!(
                    "blob {} in the content store has digest {actual}: the store is damaged",
                    desc.digest
                );
            }
            return Ok(Some(bytes));
        }
        let sources = self.sources(&self.seen, &self.names);
        let Some(f) = self.fetch.as_deref_mut().filter(|_| may_fetch) else {
            return Ok(None);
        };
        let labels = source_labels(&sources);
        let (bytes, _from) = f
            .fetcher
            .fetch_manifest(&sources, desc, &f.leased, &labels)
            .await?;
        f.fetched.push(desc.digest.clone());
        self.seen.push(desc.digest.clone());
        self.labels.insert(desc.digest.clone(), labels);
        Ok(Some(bytes))
    }
}

fn source_labels(sources: &[Source]) -> BTreeMap<String, String> {
    sources.first().map(|s| s.label()).into_iter().collect()
}

/// Walks every image; with a fetcher, fetches what is missing and makes it stay.
async fn gather_and_fetch(
    c: &Containerd,
    settings: &Settings,
    wanted: Vec<(Vec<String>, Descriptor)>,
    choice: &PlatformChoice,
    mut fetch: Option<&mut FetchState>,
) -> Result<Vec<ImagePlan>> {
    let mut plans = Vec::new();
    let mut store = NodeStore {
        c,
        fetch: fetch.as_deref_mut(),
        labels: HashMap::new(),
        names: Vec::new(),
        seen: Vec::new(),
    };
    for (names, target) in wanted {
        store.names = names.clone();
        store.seen.clear();
        plans.push(write_plan::walk(&mut store, names, &target, choice).await?);
    }
    let labels = std::mem::take(&mut store.labels);
    drop(store);

    let Some(f) = fetch else {
        if let Some(report) = missing_report(&plans) {
            bail!(report);
        }
        return Ok(plans);
    };

    // Fetch the missing leaves (configs and layers), each once.
    let mut todo: Vec<(Descriptor, Vec<Source>)> = Vec::new();
    for p in &plans {
        let digests: Vec<String> = p.blobs.iter().map(|b| b.desc.digest.clone()).collect();
        let label_sets: Vec<&BTreeMap<String, String>> =
            digests.iter().filter_map(|d| labels.get(d)).collect();
        let sources = registry::sources(&label_sets, &p.names);
        for b in p.missing() {
            if !todo.iter().any(|(d, _)| d.digest == b.desc.digest) {
                todo.push((b.desc.clone(), sources.clone()));
            }
        }
    }
    let total: u64 = todo.iter().map(|(d, _)| d.size.max(0) as u64).sum();
    let bar = progress(settings, total, "fetching");
    let mut result = Ok(());
    for (desc, sources) in &todo {
        if sources.is_empty() {
            result = Err(anyhow!(
                "cannot fetch {}: the image has no registry name and its content no \
                 containerd.io/distribution.source label",
                desc.digest
            ));
            break;
        }
        let labels = source_labels(sources);
        let mut on_bytes = |n: u64| bar.inc(n);
        match f
            .fetcher
            .fetch_blob(sources, desc, &f.leased, &labels, &mut on_bytes)
            .await
        {
            Ok(from) => {
                settings.debug(format_args!("fetched {} from {from}", desc.digest));
                f.fetched.push(desc.digest.clone());
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    bar.finish_and_clear();
    for p in &mut plans {
        for b in &mut p.blobs {
            if f.fetched.contains(&b.desc.digest) {
                b.present = true;
            }
        }
    }
    // Whatever was fetched stays: each parent gets the GC references containerd's own
    // pull would have set (discard_unpacked_layers is what dropped them).
    if !f.fetched.is_empty() {
        restore_gc_labels(&f.leased, &plans).await?;
    }
    result?;
    if let Some(report) = missing_report(&plans) {
        bail!(report);
    }
    Ok(plans)
}

async fn restore_gc_labels(c: &Containerd, plans: &[ImagePlan]) -> Result<()> {
    let present: std::collections::HashSet<&str> = plans
        .iter()
        .flat_map(|p| &p.blobs)
        .filter(|b| b.present)
        .map(|b| b.desc.digest.as_str())
        .collect();
    let mut by_parent: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (parent, key, child) in gc_labels(plans) {
        if present.contains(parent.as_str()) && present.contains(child.as_str()) {
            by_parent.entry(parent).or_default().insert(key, child);
        }
    }
    for (parent, labels) in by_parent {
        c.content_update_labels(&parent, &labels, &[])
            .await
            .with_context(|| format!("restoring the GC references of {parent}"))?;
    }
    Ok(())
}

fn progress(settings: &Settings, total: u64, what: &str) -> ProgressBar {
    if !settings.progress || total == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Writes the archive into a temp file beside `path`, syncs it and renames it into place.
async fn write_file(
    c: &Containerd,
    path: &Path,
    force: bool,
    compression: Compression,
    files: &[(String, Vec<u8>)],
    blobs: &[Descriptor],
    bar: &ProgressBar,
) -> Result<u64> {
    let dir = parent_dir(path);
    let tmp = tempfile::Builder::new()
        .prefix(".crimg-export-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the mode of {}", tmp.path().display()))?;
    }
    let out = tmp
        .as_file()
        .try_clone()
        .with_context(|| format!("opening {}", tmp.path().display()))?;
    let (file, bytes) = write_archive(c, out, compression, files, blobs, bar)
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.path().display()))?;
    drop(file);
    if force {
        tmp.persist(path).map_err(|e| {
            anyhow!(
                "renaming {} to {}: {}",
                e.file.path().display(),
                path.display(),
                e.error
            )
        })?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::Error::new(CrimgError::Usage(format!(
                    "{} appeared while exporting; not replaced (pass --force to replace it)",
                    path.display()
                )))
            } else {
                anyhow!(
                    "renaming {} to {}: {}",
                    e.file.path().display(),
                    path.display(),
                    e.error
                )
            }
        })?;
    }
    // The rename is durable once the directory is.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(bytes)
}

/// Streams the archive into `out` through the writer thread; returns `out` and the
/// number of bytes written to it.
async fn write_archive<W: Write + Send + 'static>(
    c: &Containerd,
    out: W,
    compression: Compression,
    files: &[(String, Vec<u8>)],
    blobs: &[Descriptor],
    bar: &ProgressBar,
) -> Result<(W, u64)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(QUEUE);
    let writer = std::thread::Builder::new()
        .name("crimg-archive-writer".into())
        .spawn(move || write_thread(out, compression, rx))
        .context("starting the archive writer thread")?;

    let feed = async {
        for (path, data) in files {
            send(&tx, Msg::File(path.clone(), data.clone())).await?;
        }
        send(&tx, Msg::Dir("blobs/")).await?;
        send(&tx, Msg::Dir("blobs/sha256/")).await?;
        for b in blobs {
            let path = blob_path(&b.digest)?;
            if b.size < 0 {
                bail!("blob {} has a negative size", b.digest);
            }
            let mut stream = Box::pin(c.read_blob(&b.digest).await?);
            send(&tx, Msg::Begin(path, b.size as u64, b.digest.clone())).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                bar.inc(chunk.len() as u64);
                send(&tx, Msg::Data(chunk)).await?;
            }
            send(&tx, Msg::End).await?;
        }
        send(&tx, Msg::Finish).await
    };
    let fed: Result<()> = feed.await;
    drop(tx);
    let written = writer
        .join()
        .map_err(|_| anyhow!("the archive writer thread panicked"))?;
    match (fed, written) {
        (Ok(()), Ok(r)) => Ok(r),
        // A lost containerd explains the writer's "export aborted" (and exits 3).
        (Err(e), Err(_)) if crate::error::connection_lost(&e).is_some() => Err(e),
        // The writer's own error (disk full, a short blob) explains a closed channel.
        (Err(_), Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
        (Ok(()), Err(e)) => Err(e),
    }
}

async fn send(tx: &tokio::sync::mpsc::Sender<Msg>, msg: Msg) -> Result<()> {
    tx.send(msg)
        .await
        .map_err(|_| anyhow!("the archive writer stopped"))
}

/// A blob that could not go into the archive: the output failed (a full disk), or the
/// content store sent other than the blob's declared size.
fn blob_error(digest: &str, e: anyhow::Error) -> anyhow::Error {
    if e.chain().any(|c| c.is::<std::io::Error>()) {
        e.context(format!("blob {digest}"))
    } else {
        anyhow!("blob {digest}: the content store sent {e:#}")
    }
}

fn write_thread<W: Write>(
    out: W,
    compression: Compression,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
) -> Result<(W, u64)> {
    let counting = Counting::new(std::io::BufWriter::with_capacity(1 << 20, out));
    let mut tar = TarWriter::new(Compressor::new(counting, compression)?);
    let mut current: Option<(String, Sha256)> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Dir(p) => tar.add_dir(p)?,
            Msg::File(p, data) => tar.add_file(&p, &data)?,
            Msg::Begin(path, size, digest) => {
                tar.begin_file(&path, size)?;
                current = Some((digest, Sha256::new()));
            }
            Msg::Data(b) => {
                if let Some((_, h)) = &mut current {
                    h.update(&b);
                }
                tar.write_data(&b).map_err(|e| {
                    blob_error(current.as_ref().map_or("?", |(d, _)| d.as_str()), e)
                })?;
            }
            Msg::End => {
                let (digest, h) = current
                    .take()
                    .ok_or_else(|| anyhow!("archive writer: blob end without a start"))?;
                tar.end_file().map_err(|e| blob_error(&digest, e))?;
                let actual = sha256_digest(h);
                if actual != digest {
                    bail!(
                        "blob {digest} in the content store has digest {actual}: the store is damaged; \
                         nothing was written"
                    );
                }
            }
            Msg::Finish => {
                let counting = tar.finish()?.finish()?;
                let count = counting.count;
                let mut out = counting
                    .into_inner()
                    .into_inner()
                    .map_err(|e| anyhow::Error::new(e.into_error()))?;
                out.flush()?;
                return Ok((out, count));
            }
        }
    }
    bail!("export aborted")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, digest: char) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            target: Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: format!("sha256:{}", digest.to_string().repeat(64)),
                size: 10,
            },
            ..ImageRecord::default()
        }
    }

    #[test]
    fn references_pick_records() {
        let id = format!("sha256:ab12cd{}", "0".repeat(58));
        let records = vec![
            rec("docker.io/library/a:1", '1'),
            rec("docker.io/library/a:2", '1'),
            rec(
                &format!("docker.io/library/a@sha256:{}", "1".repeat(64)),
                '1',
            ),
            rec(&id, '1'),
            rec("docker.io/library/other:1", '2'),
        ];
        let images = vec![Image {
            id: id.clone(),
            repo_tags: vec![
                "docker.io/library/a:1".into(),
                "docker.io/library/a:2".into(),
            ],
            repo_digests: vec![format!("docker.io/library/a@sha256:{}", "1".repeat(64))],
            records: records[..4].to_vec(),
            ..Image::default()
        }];
        let names = |input: &str| -> Vec<String> {
            records_for(&images, &records, input)
                .unwrap()
                .into_iter()
                .map(|r| r.name.clone())
                .collect()
        };
        assert_eq!(names("a:2"), vec!["docker.io/library/a:2"]);
        assert_eq!(
            names("ab12cd"),
            vec!["docker.io/library/a:1", "docker.io/library/a:2"]
        );
        // Not a CRI image, but a containerd record.
        assert_eq!(names("other:1"), vec!["docker.io/library/other:1"]);
        assert!(records_for(&images, &records, "nope:1").is_err());

        let grouped = resolve_targets(
            &images,
            &records,
            &["a:1".into(), "ab12cd".into(), "other:1".into()],
        )
        .unwrap();
        assert_eq!(grouped.len(), 2);
        assert_eq!(
            grouped[0].0,
            vec!["docker.io/library/a:1", "docker.io/library/a:2"]
        );
    }
}
