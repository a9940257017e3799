//! `crimg inspect`: what an archive holds, read the way `import` reads it (the same
//! readers, the same planner, the same checks), with no runtime. Blobs are hashed instead
//! of written, and every layer is decompressed and hashed against its diff ID, streaming.

mod hash;
mod output;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::inputs::{Item, expand};
use super::job::describe;
use super::sources::{collect, first_bytes};
use crate::app::{Outcome, Settings};
use crate::archive::paths::{self, Member};
use crate::archive::read::{self, Event, HEAD_LEN, Input, RandomAccess};
use crate::archive::source::{MemArchive, TarSource};
use crate::cli::{InspectArgs, OutputFormat};
use crate::oci::{MAX_JSON, Role, blob_path};
use crate::plan::import::{self as import_plan, MemberInfo, Plan, PlanOptions};
use crate::plan::platform::PlatformChoice;
use crate::runtime::content::VerifyError;

use super::report::JsonFailure;
use hash::{BlobFacts, Unpacked, hash_blob, hash_body};
use output::{render, to_json};

use crate::archive::read::SMALL_BLOB;

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
            read::refuse_containers_dir(d)?;
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
        event.check_once(&mut seen)?;
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
