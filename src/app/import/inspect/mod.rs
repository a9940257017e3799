//! `crimg inspect`: what an archive holds, read the way `import` reads it (the same
//! readers, the same planner, the same checks), with no runtime. Blobs are hashed instead
//! of written, and every layer is decompressed and hashed against its diff ID, streaming.

mod hash;
mod output;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Result, anyhow, bail};

use super::inputs::{Item, expand};
use super::job::describe;
use super::sources::Streamed;
use super::sources::{collect, first_bytes};
use super::streamed::{self, Body, MemberSink, Opened, Streaming};
use crate::app::import::sources::TarSource;
use crate::app::{Outcome, Settings};
use crate::archive::read::{HEAD_LEN, Input, RandomAccess};
use crate::cli::{InspectArgs, OutputFormat};
use crate::oci::{Role, blob_path};
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
    match streamed::open(input).await? {
        Opened::Oci(ra) => {
            let size = streamed::input_size(input, &ra);
            random(ra, args, "none", size).await
        }
        // Import hashes such a tar's layers in place; inspect hashes every member anyway,
        // in one pass.
        Opened::DockerTar(_) => stream(streamed::open_stream(input).await?, args).await,
        Opened::Stream(s) => stream(s, args).await,
    }
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
async fn stream(streaming: Streaming, args: &InspectArgs) -> Result<Inspected> {
    let Streaming {
        events,
        compression,
        read,
    } = streaming;
    let verify = !args.no_verify;
    let mut sink = Hasher {
        verify,
        facts: HashMap::new(),
        hashed: HashSet::new(),
    };
    let st = streamed::read_members(events, &mut sink).await?;
    let Hasher {
        mut facts, hashed, ..
    } = sink;
    let mem = &st.mem;
    let plan = async |choice: PlatformChoice| {
        streamed::plan_streamed(&st.meta, mem, &options(choice, &args.base_name)).await
    };
    let (format, all) = plan(PlatformChoice::All).await?;
    let (_, host) = plan(PlatformChoice::from_args(&[], false)).await?;
    let sizes = streamed::sizes_by_digest(mem);
    for b in &all.blobs {
        if !all.generated.contains_key(&b.desc.digest) && !streamed::member_holds(&all, b, &sizes)?
        {
            bail!("{} is missing from the archive", describe(&all, b));
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
        size: read.load(Ordering::Relaxed),
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

/// Inspect's use of a streamed member: hashed (with each layer's diff ID) instead of
/// stored; small members kept whole, as import keeps them.
struct Hasher {
    verify: bool,
    /// Layers by digest, as hashed.
    facts: HashMap<String, Unpacked>,
    /// Every member hashed as it streamed by.
    hashed: HashSet<String>,
}

impl Hasher {
    async fn hash(
        &mut self,
        st: &mut Streamed,
        path: &str,
        named: Option<&str>,
        size: u64,
        body: Body,
    ) -> Result<()> {
        let f = hash_body(body, size).await?;
        if let Some(digest) = named
            && f.digest != digest
        {
            bail!(
                "content has digest {}, not the {digest} its name says (corrupt archive?)",
                f.digest
            );
        }
        if let Ok(u) = &f.layer {
            self.facts.insert(f.digest.clone(), u.clone());
        }
        self.hashed.insert(f.digest.clone());
        let info = MemberInfo {
            digest: f.digest,
            size: size as i64,
            head: vec![],
        };
        st.mem.members.insert(path.to_string(), info);
        Ok(())
    }
}

impl MemberSink for Hasher {
    async fn blob(
        &mut self,
        st: &mut Streamed,
        path: &str,
        digest: String,
        size: u64,
        body: Body,
    ) -> Result<()> {
        if size <= SMALL_BLOB {
            let bytes = collect(body, size).await?;
            let actual = st.mem.add_member(path, bytes, HEAD_LEN);
            if actual != digest {
                bail!(
                    "content has digest {actual}, not the {digest} its name says (corrupt archive?)"
                );
            }
        } else if !self.verify {
            let head = first_bytes(body).await?;
            let size = size as i64;
            st.mem
                .members
                .insert(path.to_string(), MemberInfo { digest, size, head });
        } else {
            self.hash(st, path, Some(&digest), size, body).await?;
        }
        Ok(())
    }

    /// A docker archive's layers are known only by their bytes' digest: hashed even
    /// with `--no-verify`.
    async fn other(&mut self, st: &mut Streamed, path: &str, size: u64, body: Body) -> Result<()> {
        if size <= SMALL_BLOB {
            let bytes = collect(body, size).await?;
            st.mem.add_member(path, bytes, HEAD_LEN);
            return Ok(());
        }
        self.hash(st, path, None, size, body).await
    }
}
