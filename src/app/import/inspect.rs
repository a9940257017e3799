//! `crimg inspect`: what an archive holds, read the way `import` reads it (the same
//! readers, the same planner, the same checks), with no runtime. Blobs are hashed instead
//! of written, and every layer is decompressed and hashed against its diff ID, streaming.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::inputs::{Item, expand};
use super::job::describe;
use super::sources::{collect, first_bytes};
use crate::app::{Outcome, Settings};
use crate::archive::compression;
use crate::archive::paths::{self, Member};
use crate::archive::read::{self, CHUNK, Event, HEAD_LEN, Input, RandomAccess};
use crate::archive::source::{MemArchive, TarSource};
use crate::cli::{InspectArgs, OutputFormat};
use crate::oci::{MAX_JSON, Role, blob_path};
use crate::plan::import::{self as import_plan, MemberInfo, Plan, PlanOptions};
use crate::plan::platform::PlatformChoice;
use crate::render;
use crate::runtime::content::{VerifyError, sha256_digest};

/// Members up to this size are read whole (indexes, manifests, configs, empty layers).
const SMALL_BLOB: u64 = 1 << 20;

/// What hashing a blob found: its digest and, when it decompresses to something, the
/// digest and length of what it decompresses to.
#[derive(Debug, Clone)]
struct BlobFacts {
    digest: String,
    size: u64,
    layer: std::result::Result<Unpacked, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Unpacked {
    diff_id: String,
    size: u64,
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Hashes a blob in one pass: its own digest, and (when it is a layer in any compression
/// import reads) the digest of its decompressed bytes. Memory stays at one buffer.
fn hash_blob(r: impl Read + Send) -> io::Result<BlobFacts> {
    let mut br = BufReader::with_capacity(
        CHUNK,
        Hashing {
            inner: r,
            sha: Sha256::new(),
            n: 0,
        },
    );
    let head = br.fill_buf()?.to_vec();
    let layer = match compression::detect(&head) {
        Err(e) => Err(e.to_string()),
        Ok(c) => match compression::decoder(c, &mut br) {
            Err(e) => Err(e.to_string()),
            Ok(mut d) => {
                let mut h = Hashing {
                    inner: &mut d,
                    sha: Sha256::new(),
                    n: 0,
                };
                match io::copy(&mut h, &mut io::sink()) {
                    Ok(_) => Ok(Unpacked {
                        diff_id: sha256_digest(h.sha),
                        size: h.n,
                    }),
                    Err(e) => Err(format!("{} decompression: {e}", c.name())),
                }
            }
        },
    };
    // Whatever the decoder left unread still counts toward the blob's digest.
    io::copy(&mut br, &mut io::sink())?;
    let h = br.into_inner();
    Ok(BlobFacts {
        digest: sha256_digest(h.sha),
        size: h.n,
        layer,
    })
}

/// A member body (chunks from the reading thread) as a blocking reader.
struct Body(mpsc::Receiver<io::Result<Bytes>>, Bytes);

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.1.is_empty() {
            match self.0.blocking_recv() {
                Some(chunk) => self.1 = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1.split_to(n));
        Ok(n)
    }
}

async fn hash_body(body: mpsc::Receiver<io::Result<Bytes>>, size: u64) -> Result<BlobFacts> {
    let facts = tokio::task::spawn_blocking(move || hash_blob(Body(body, Bytes::new())))
        .await
        .map_err(|e| anyhow!("reading task: {e}"))??;
    if facts.size != size {
        bail!("archive ends early (truncated?)");
    }
    Ok(facts)
}

/// One archive, read as import reads it.
struct Inspected {
    format: &'static str,
    compression: &'static str,
    /// Bytes of the archive (the file, the directory's members, what stdin gave).
    size: u64,
    verified: bool,
    /// Every platform of every image.
    all: Plan,
    /// What import would do on this host with its default platform choice.
    host: Plan,
    /// Layers by digest, as hashed (verified only).
    layers: HashMap<String, Unpacked>,
}

fn options(platforms: PlatformChoice, base_name: &Option<String>) -> PlanOptions {
    PlanOptions {
        platforms,
        base_name: base_name.clone(),
    }
}

async fn inspect_input(input: &Input, args: &InspectArgs) -> Result<Inspected> {
    match input {
        Input::File(p) => {
            let path = p.clone();
            let indexed = tokio::task::spawn_blocking(move || read::index_tar_file(&path))
                .await
                .map_err(|e| anyhow!("reading task: {e}"))??;
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            match indexed {
                Some(ra) if ra.meta.contains_key("index.json") => {
                    random(ra, args, "none", size).await
                }
                _ => stream_input(input, args).await,
            }
        }
        Input::Stdin => stream_input(input, args).await,
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
            let size = ra.members.values().map(|e| e.size).sum::<u64>()
                + ra.meta.values().map(|b| b.len() as u64).sum::<u64>();
            if ra.meta.contains_key("index.json") {
                random(ra, args, "none", size).await
            } else if ra.meta.contains_key("manifest.json") {
                stream(
                    read::stream_dir(ra),
                    args,
                    "none",
                    Arc::new(AtomicU64::new(size)),
                )
                .await
            } else {
                bail!(
                    "neither index.json (OCI layout) nor manifest.json (docker save) in the directory"
                )
            }
        }
    }
}

async fn stream_input(input: &Input, args: &InspectArgs) -> Result<Inspected> {
    let count = Arc::new(AtomicU64::new(0));
    let (input2, count2) = (input.clone(), count.clone());
    let (compression, rx) = tokio::task::spawn_blocking(move || read::stream_tar(&input2, count2))
        .await
        .map_err(|e| anyhow!("reading task: {e}"))??;
    stream(rx, args, compression.name(), count).await
}

/// An archive read at will: plan, then hash every blob the plan names.
async fn random(
    ra: RandomAccess,
    args: &InspectArgs,
    compression: &'static str,
    size: u64,
) -> Result<Inspected> {
    let ra = Arc::new(ra);
    let source = TarSource::new(ra.clone());
    let index = ra.meta.get("index.json").cloned().unwrap_or_default();
    let docker = ra.meta.get("manifest.json").cloned();
    let all = import_plan::plan_oci(
        &index,
        docker.as_deref(),
        &source,
        &options(PlatformChoice::All, &args.base_name),
    )
    .await?;
    let host = import_plan::plan_oci(
        &index,
        docker.as_deref(),
        &source,
        &options(PlatformChoice::from_args(&[], false), &args.base_name),
    )
    .await?;
    let cache = source.into_cache();
    let mut layers = HashMap::new();
    if !args.no_verify {
        for b in &all.blobs {
            if all.generated.contains_key(&b.desc.digest) {
                continue;
            }
            let ext = ra
                .blob(&b.desc.digest)
                .ok_or_else(|| anyhow!("{} is missing from the archive", describe(&all, b)))?
                .clone();
            // The same errors as the content store's verifying writer gives import.
            let path = blob_path(&b.desc.digest)?;
            if ext.size as i64 != b.desc.size {
                return Err(anyhow::Error::new(VerifyError::Size {
                    expected: b.desc.digest.clone(),
                    declared: b.desc.size,
                    actual: ext.size as i64,
                })
                .context(path));
            }
            if b.role != Role::Layer && cache.contains_key(&b.desc.digest) {
                continue;
            }
            let facts = tokio::task::spawn_blocking(move || -> io::Result<BlobFacts> {
                let mut f = std::fs::File::open(&ext.file)?;
                f.seek(SeekFrom::Start(ext.offset))?;
                hash_blob(f.take(ext.size))
            })
            .await
            .map_err(|e| anyhow!("reading task: {e}"))??;
            if facts.size != ext.size {
                bail!("{path}: archive ends early (truncated?)");
            }
            if facts.digest != b.desc.digest {
                return Err(anyhow::Error::new(VerifyError::Digest {
                    expected: b.desc.digest.clone(),
                    actual: facts.digest,
                })
                .context(path));
            }
            if let Ok(u) = facts.layer {
                layers.insert(facts.digest, u);
            }
        }
        check_diff_ids(&all, &layers)?;
    }
    Ok(Inspected {
        format: "oci",
        compression,
        size,
        verified: !args.no_verify,
        all,
        host,
        layers,
    })
}

/// One pass over a streamed archive, as import makes it: every member hashed as it comes
/// (the index may be last), then planned and checked.
async fn stream(
    mut rx: mpsc::Receiver<Result<Event>>,
    args: &InspectArgs,
    compression: &'static str,
    count: Arc<AtomicU64>,
) -> Result<Inspected> {
    let verify = !args.no_verify;
    let mut mem = MemArchive::default();
    let mut meta: HashMap<String, Bytes> = HashMap::new();
    let mut facts: HashMap<String, Unpacked> = HashMap::new();
    let mut hashed: HashSet<String> = HashSet::new();
    let mut seen = HashSet::new();
    while let Some(event) = rx.recv().await {
        let event = event?;
        let (Event::Link { path, .. } | Event::File { path, .. }) = &event;
        if !seen.insert(path.clone()) {
            bail!("{path}: the archive holds this path twice");
        }
        let (path, size, body) = match event {
            Event::Link { path, target } => {
                mem.links.insert(path, target);
                continue;
            }
            Event::File { path, size, body } => (path, size, body),
        };
        let r: Result<()> = async {
            let class = paths::classify(&path)?;
            match class {
                Member::Index | Member::DockerManifest => {
                    if size > MAX_JSON {
                        bail!("{size} bytes, too large for a JSON document");
                    }
                    meta.insert(path.clone(), collect(body, size).await?);
                }
                Member::Marker => {}
                Member::Blob(_) | Member::Other if size <= SMALL_BLOB => {
                    let bytes = collect(body, size).await?;
                    let actual = mem.add_member(&path, bytes, HEAD_LEN);
                    if let Member::Blob(digest) = class
                        && actual != digest
                    {
                        bail!(
                            "content has digest {actual}, not the {digest} its name says (corrupt archive?)"
                        );
                    }
                }
                Member::Blob(digest) if !verify => {
                    let head = first_bytes(body).await?;
                    let size = size as i64;
                    mem.members
                        .insert(path.clone(), MemberInfo { digest, size, head });
                }
                Member::Blob(_) | Member::Other => {
                    // A docker archive's layers are known only by their bytes' digest.
                    let f = hash_body(body, size).await?;
                    if let Member::Blob(digest) = class
                        && f.digest != digest
                    {
                        bail!(
                            "content has digest {}, not the {digest} its name says (corrupt archive?)",
                            f.digest
                        );
                    }
                    if let Ok(u) = &f.layer {
                        facts.insert(f.digest.clone(), u.clone());
                    }
                    hashed.insert(f.digest.clone());
                    let info = MemberInfo {
                        digest: f.digest,
                        size: size as i64,
                        head: vec![],
                    };
                    mem.members.insert(path.clone(), info);
                }
            }
            Ok(())
        }
        .await;
        r.map_err(|e| e.context(path.clone()))?;
    }
    drop(rx);
    let plan = async |choice: PlatformChoice| -> Result<(Plan, &'static str)> {
        let opts = options(choice, &args.base_name);
        if let Some(index) = meta.get("index.json") {
            let docker = meta.get("manifest.json").map(|b| &b[..]);
            Ok((
                import_plan::plan_oci(index, docker, &mem, &opts).await?,
                "oci",
            ))
        } else if let Some(manifest) = meta.get("manifest.json") {
            Ok((
                import_plan::plan_docker(manifest, &mem, &opts).await?,
                "docker",
            ))
        } else {
            bail!(
                "no index.json (OCI layout) or manifest.json (docker save) in the archive: not an image archive"
            )
        }
    };
    let (all, format) = plan(PlatformChoice::All).await?;
    let (host, _) = plan(PlatformChoice::from_args(&[], false)).await?;
    for b in &all.blobs {
        if all.generated.contains_key(&b.desc.digest) {
            continue;
        }
        match mem.members.values().find(|m| m.digest == b.desc.digest) {
            Some(m) if m.size != b.desc.size => bail!(
                "{} holds {} bytes, but its descriptor says {}",
                describe(&all, b),
                m.size,
                b.desc.size
            ),
            Some(_) => {}
            None => bail!("{} is missing from the archive", describe(&all, b)),
        }
    }
    if verify {
        // Small layers (empty ones, tiny test images) were kept whole: hash them now.
        for b in all.blobs.iter().filter(|b| b.role == Role::Layer) {
            if facts.contains_key(&b.desc.digest) || hashed.contains(&b.desc.digest) {
                continue;
            }
            if let Some(bytes) = mem.small.get(&b.desc.digest) {
                let f = hash_blob(&bytes[..])?;
                if let Ok(u) = f.layer {
                    facts.insert(b.desc.digest.clone(), u);
                }
            }
        }
        check_diff_ids(&all, &facts)?;
    }
    Ok(Inspected {
        format,
        compression,
        size: count.load(Ordering::Relaxed),
        verified: verify,
        all,
        host,
        layers: facts,
    })
}

/// Every layer decompresses to the diff ID its config gives, as unpacking checks.
fn check_diff_ids(plan: &Plan, layers: &HashMap<String, Unpacked>) -> Result<()> {
    for image in &plan.images {
        for m in &image.manifests {
            for (layer, diff_id) in m.layers.iter().zip(&m.diff_ids) {
                let name = image.names.first().map_or("", String::as_str);
                let of = if name.is_empty() {
                    String::new()
                } else {
                    format!(" of {name}")
                };
                match layers.get(&layer.digest) {
                    None => bail!(
                        "layer {}{of} is not a tar in any compression crimg reads (corrupt archive?)",
                        layer.digest
                    ),
                    Some(u) if u.diff_id != *diff_id => bail!(
                        "layer {}{of} unpacks to {}, not the diff ID {diff_id} its config gives (corrupt archive?)",
                        layer.digest,
                        u.diff_id
                    ),
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}

// ---- output: the stable JSON schema (documented in the README) ----

#[derive(Serialize)]
struct JsonArchive {
    file: String,
    format: &'static str,
    compression: &'static str,
    size: u64,
    verified: bool,
    images: Vec<JsonImage>,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct JsonImage {
    names: Vec<String>,
    digest: String,
    media_type: String,
    id: String,
    size: u64,
    platforms: Vec<JsonPlatform>,
}

#[derive(Serialize)]
struct JsonPlatform {
    platform: String,
    manifest: String,
    id: String,
    unpack: bool,
    size: u64,
    unpacked_size: Option<u64>,
    layers: Vec<JsonLayer>,
}

#[derive(Serialize)]
struct JsonLayer {
    digest: String,
    size: u64,
    diff_id: String,
    unpacked_size: Option<u64>,
}

#[derive(Serialize)]
struct JsonFailure {
    file: String,
    error: String,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    archives: &'a [JsonArchive],
    failed: &'a [JsonFailure],
}

fn to_json(file: &str, i: &Inspected) -> JsonArchive {
    let images = i
        .all
        .images
        .iter()
        .map(|image| {
            let host = i
                .host
                .images
                .iter()
                .find(|h| h.target.digest == image.target.digest);
            let platforms = image
                .manifests
                .iter()
                .map(|m| {
                    let layers: Vec<JsonLayer> = m
                        .layers
                        .iter()
                        .zip(&m.diff_ids)
                        .map(|(l, d)| JsonLayer {
                            digest: l.digest.clone(),
                            size: l.size.max(0) as u64,
                            diff_id: d.clone(),
                            unpacked_size: i.layers.get(&l.digest).map(|u| u.size),
                        })
                        .collect();
                    let unpacked = layers.iter().map(|l| l.unpacked_size).sum::<Option<u64>>();
                    JsonPlatform {
                        platform: m
                            .platform
                            .as_ref()
                            .map_or("unknown".into(), ToString::to_string),
                        manifest: m.digest.clone(),
                        id: m.config.digest.clone(),
                        unpack: host.is_some_and(|h| {
                            h.manifests
                                .iter()
                                .any(|hm| hm.digest == m.digest && hm.unpack)
                        }),
                        size: layers.iter().map(|l| l.size).sum::<u64>()
                            + m.config.size.max(0) as u64,
                        unpacked_size: unpacked,
                        layers,
                    }
                })
                .collect();
            JsonImage {
                names: image.names.clone(),
                digest: image.target.digest.clone(),
                media_type: image.target.media_type.clone(),
                id: host.map_or(image.id.clone(), |h| h.id.clone()),
                size: i.all.image_size(image),
                platforms,
            }
        })
        .collect();
    let mut notes: Vec<String> = Vec::new();
    for n in i.host.notes.iter().chain(&i.all.notes) {
        if !notes.contains(n) {
            notes.push(n.clone());
        }
    }
    JsonArchive {
        file: file.to_string(),
        format: i.format,
        compression: i.compression,
        size: i.size,
        verified: i.verified,
        images,
        notes,
    }
}

fn render(settings: &Settings, archives: &[JsonArchive], failed: &[JsonFailure]) -> Result<()> {
    let size = |n: Option<u64>| n.map_or("-".to_string(), render::human_size);
    match settings.output {
        OutputFormat::Json => render::print_json(&JsonResult { archives, failed })?,
        OutputFormat::Name => render::print_lines(
            archives
                .iter()
                .flat_map(|a| &a.images)
                .flat_map(|i| &i.names),
        )?,
        OutputFormat::Table => {
            let mut t = render::table(&[
                "FILE",
                "NAME",
                "ID",
                "PLATFORMS",
                "LAYERS",
                "SIZE",
                "UNPACKED",
            ]);
            for a in archives {
                for i in &a.images {
                    let platforms: Vec<String> = i
                        .platforms
                        .iter()
                        .map(|p| {
                            if p.unpack {
                                format!("{}*", p.platform)
                            } else {
                                p.platform.clone()
                            }
                        })
                        .collect();
                    let unpacked = i
                        .platforms
                        .iter()
                        .find(|p| p.id == i.id)
                        .and_then(|p| p.unpacked_size);
                    let layers = i
                        .platforms
                        .iter()
                        .find(|p| p.id == i.id)
                        .map_or(0, |p| p.layers.len());
                    let names = if i.names.is_empty() {
                        "<none>".to_string()
                    } else {
                        i.names.join(" ")
                    };
                    t.add_row(vec![
                        a.file.clone(),
                        names,
                        i.id.clone(),
                        platforms.join(","),
                        layers.to_string(),
                        render::human_size(i.size),
                        size(unpacked),
                    ]);
                }
            }
            render::print_table(&t)?;
        }
        OutputFormat::Wide => {
            let mut t = render::table(&[
                "FILE", "NAME", "PLATFORM", "UNPACK", "MANIFEST", "ID", "LAYER", "SIZE", "UNPACKED",
            ]);
            for a in archives {
                for i in &a.images {
                    let names = if i.names.is_empty() {
                        "<none>".to_string()
                    } else {
                        i.names.join(" ")
                    };
                    for p in &i.platforms {
                        for l in &p.layers {
                            t.add_row(vec![
                                a.file.clone(),
                                names.clone(),
                                p.platform.clone(),
                                if p.unpack { "yes" } else { "no" }.into(),
                                p.manifest.clone(),
                                p.id.clone(),
                                l.digest.clone(),
                                render::human_size(l.size),
                                size(l.unpacked_size),
                            ]);
                        }
                    }
                }
            }
            render::print_table(&t)?;
        }
    }
    if !settings.quiet && settings.output != OutputFormat::Json {
        for a in archives {
            for n in &a.notes {
                eprintln!("crimg: {}: {n}", a.file);
            }
            let images = a.images.len();
            eprintln!(
                "crimg: {}: {images} image(s), {} {} archive of {}{}",
                a.file,
                a.format,
                a.compression,
                render::human_size(a.size),
                if a.verified {
                    ", verified"
                } else {
                    ", not verified"
                }
            );
        }
    }
    Ok(())
}

/// Runs `crimg inspect`.
pub(crate) async fn run(settings: Settings, args: InspectArgs) -> Result<Outcome> {
    let expanded = expand(&args.paths, &std::sync::atomic::AtomicBool::new(false))
        .map_err(|_| anyhow!("walking the directories was stopped"))?;
    for w in &expanded.warnings {
        settings.warn(w);
    }
    let items = expanded.items;
    if items.is_empty() {
        return Err(crate::error::CrimgError::Usage(
            "no archive to inspect in the given directories".into(),
        )
        .into());
    }
    let single = items.len() == 1;
    let mut archives = Vec::new();
    let mut failed: Vec<(String, anyhow::Error)> = Vec::new();
    for item in &items {
        let file = item.file();
        let r = match item {
            Item::Archive(input) => inspect_input(input, &args).await,
            Item::List(_) => Err(anyhow!(
                "a list of references to pull, not an archive (nothing to inspect)"
            )),
            Item::Bad(_, problem) => Err(anyhow!("{problem}")),
        };
        match r {
            Ok(i) => archives.push(to_json(&file, &i)),
            Err(e) => {
                let e = e.context(file.clone());
                if !single {
                    crate::exit::print_error(format_args!("{e:#}"));
                }
                failed.push((file, e));
            }
        }
    }
    let failures: Vec<JsonFailure> = failed
        .iter()
        .map(|(file, e)| JsonFailure {
            file: file.clone(),
            error: format!("{e:#}"),
        })
        .collect();
    // -q: nothing on stdout; the exit status says whether the archives are intact.
    if !settings.quiet && (!archives.is_empty() || settings.output == OutputFormat::Json) {
        render(&settings, &archives, &failures)?;
    }
    match failed.len() {
        0 => Ok(Outcome::Done),
        1 if single => Err(failed.remove(0).1),
        n => Err(anyhow!(
            "{n} of {} archive(s) could not be read",
            items.len()
        )),
    }
}
