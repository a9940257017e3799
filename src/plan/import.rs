//! What an archive holds: OCI index and manifests, `docker save`'s manifest.json, the
//! names of its images, and the plan of what to store and unpack for the chosen platforms.
//!
//! Planning is independent of where the bytes are: a [`Source`] hands out small JSON
//! blobs by digest and what it knows about members by path.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::model::Descriptor;
use crate::oci::Platform;
use crate::oci::doc::{Config, Desc, DockerEntry, Index, Manifest, PlatformDoc};
use crate::oci::gc::{self, LABEL_UNCOMPRESSED};
use crate::oci::sha256_digest;
use crate::oci::{
    ANNOTATION_DOCKER_REFERENCE_TYPE, ANNOTATION_NAME, ANNOTATION_REF_NAME, Role, is_config,
    is_digest, is_index, is_layer, is_manifest,
};
use crate::plan::platform::PlatformChoice;

pub(crate) use crate::oci::doc::parse_docker_manifest;

/// Nested indexes deeper than this are refused.
const MAX_DEPTH: usize = 4;

/// Where the archive's bytes are, as planning needs them.
pub(crate) trait Source: Sync {
    /// A small blob (index, manifest, config), verified against its digest.
    fn blob(&self, digest: &str) -> impl Future<Output = Result<Bytes>> + Send;
    /// A member by path (links followed): its digest, size and first bytes, when known.
    fn member(&self, path: &str) -> Option<MemberInfo>;
    /// A small member by path (docker's `<id>.json` configs), read whole.
    fn small_file(&self, path: &str) -> impl Future<Output = Result<Bytes>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberInfo {
    pub(crate) digest: String,
    pub(crate) size: i64,
    /// The first bytes, for recognising compressed layers in docker archives.
    pub(crate) head: Vec<u8>,
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub(crate) struct PlanOptions {
    pub(crate) platforms: PlatformChoice,
    pub(crate) base_name: Option<String>,
}

/// A blob the import needs, with the labels it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedBlob {
    pub(crate) desc: Descriptor,
    pub(crate) role: Role,
    pub(crate) labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedManifest {
    pub(crate) digest: String,
    pub(crate) platform: Option<Platform>,
    pub(crate) config: Descriptor,
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) diff_ids: Vec<String>,
    /// Unpacked into the snapshotter: the manifest this host runs.
    pub(crate) unpack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedImage {
    /// Normalised references; the first untagged image gets a digest reference.
    pub(crate) names: Vec<String>,
    pub(crate) target: Descriptor,
    pub(crate) manifests: Vec<PlannedManifest>,
    /// `sha256:<config digest>` of the manifest this host runs, else the first.
    pub(crate) id: String,
}

impl PlannedImage {
    pub(crate) fn platforms(&self) -> Vec<String> {
        self.manifests
            .iter()
            .map(|m| {
                m.platform
                    .as_ref()
                    .map_or("unknown".into(), ToString::to_string)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) images: Vec<PlannedImage>,
    /// Every blob to store, once each, children before parents (layers in order).
    pub(crate) blobs: Vec<PlannedBlob>,
    /// Blobs made here (manifests for docker archives), by digest.
    pub(crate) generated: HashMap<String, Bytes>,
    /// Things worth telling the user.
    pub(crate) notes: Vec<String>,
    /// Where each digest is in `blobs`: adding a blob is not a search, so a manifest of
    /// 10 000 layers plans in linear time.
    at: HashMap<String, usize>,
    /// Where each target digest is in `images`, and the names each image has: an archive
    /// listing one image under 100 000 names merges them without a search.
    image_at: HashMap<String, usize>,
    names_of: Vec<HashSet<String>>,
}

impl Plan {
    fn add_blob(&mut self, desc: Descriptor, role: Role, labels: BTreeMap<String, String>) {
        if let Some(&i) = self.at.get(&desc.digest) {
            self.blobs[i].labels.extend(labels);
        } else {
            self.at.insert(desc.digest.clone(), self.blobs.len());
            self.blobs.push(PlannedBlob { desc, role, labels });
        }
    }

    /// A manifest's config, its layers (each labelled with its diff ID) and the manifest
    /// itself, labelled so containerd keeps its config and layers while it lives. The
    /// config's diff IDs are as many as the layers (checked by the caller).
    fn add_manifest(
        &mut self,
        manifest: Descriptor,
        config: Descriptor,
        layers: &[Descriptor],
        diff_ids: &[String],
    ) {
        let mut labels = BTreeMap::new();
        labels.extend(gc::content_ref(Role::Config, 0).map(|k| (k, config.digest.clone())));
        self.add_blob(config, Role::Config, BTreeMap::new());
        for (i, (l, diff)) in layers.iter().zip(diff_ids).enumerate() {
            labels.extend(gc::content_ref(Role::Layer, i).map(|k| (k, l.digest.clone())));
            self.add_blob(
                l.clone(),
                Role::Layer,
                BTreeMap::from([(LABEL_UNCOMPRESSED.to_string(), diff.clone())]),
            );
        }
        self.add_blob(manifest, Role::Manifest, labels);
    }

    /// Adds an image, or merges its names into the one of the same target (two index
    /// entries for one target, one per tag, are one image with two names). Returns where
    /// the image is in `images`.
    fn add_image(&mut self, mut image: PlannedImage) -> usize {
        if let Some(&at) = self.image_at.get(&image.target.digest) {
            for n in std::mem::take(&mut image.names) {
                self.add_name(at, n);
            }
            return at;
        }
        let at = self.images.len();
        let mut seen = HashSet::new();
        image.names.retain(|n| seen.insert(n.clone()));
        self.image_at.insert(image.target.digest.clone(), at);
        self.images.push(image);
        self.names_of.push(seen);
        at
    }

    /// Gives the image at `at` one more name, unless it has it already.
    fn add_name(&mut self, at: usize, name: String) {
        if self.names_of[at].insert(name.clone()) {
            self.images[at].names.push(name);
        }
    }

    /// Bytes of every blob of an image.
    pub(crate) fn image_size(&self, image: &PlannedImage) -> u64 {
        let mut digests: Vec<&str> = vec![&image.target.digest];
        for m in &image.manifests {
            digests.push(&m.digest);
            digests.push(&m.config.digest);
            digests.extend(m.layers.iter().map(|l| l.digest.as_str()));
        }
        digests.sort_unstable();
        digests.dedup();
        self.blobs
            .iter()
            .filter(|b| digests.binary_search(&b.desc.digest.as_str()).is_ok())
            .map(|b| b.desc.size.max(0) as u64)
            .sum()
    }
}

/// The names an OCI index entry gives its image: containerd's name annotation, else the
/// OCI ref name (a whole reference, or a tag under `base_name`).
pub(crate) fn oci_names(
    annotations: &BTreeMap<String, String>,
    base_name: Option<&str>,
) -> Result<Vec<String>, String> {
    if let Some(name) = annotations.get(ANNOTATION_NAME).filter(|n| !n.is_empty()) {
        return crate::reference::normalize(name).map(|n| vec![n]);
    }
    let Some(r) = annotations
        .get(ANNOTATION_REF_NAME)
        .filter(|n| !n.is_empty())
    else {
        return Ok(vec![]);
    };
    if is_tag(r) {
        return match base_name {
            Some(base) => crate::reference::normalize(&format!("{base}:{r}")).map(|n| vec![n]),
            // A bare tag names nothing without a repository.
            None => Err(format!(
                "the index names an image only by the tag {r:?}; give --base-name REPOSITORY to use it"
            )),
        };
    }
    crate::reference::normalize(r).map(|n| vec![n])
}

/// A Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// The name of an image the archive does not name: `<base or "import">@<digest>`.
pub(crate) fn digest_reference(base_name: Option<&str>, digest: &str) -> Result<String, String> {
    let base = base_name.unwrap_or("import");
    let repo = crate::reference::repository_of(base);
    crate::reference::normalize(&format!("{repo}@{digest}"))
}

/// containerd's chain IDs of a layer stack: the first diff ID, then
/// `sha256(parent + " " + diff_id)`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => sha256_digest(Sha256::new_with_prefix(format!("{parent} {d}"))),
        };
        out.push(next);
    }
    out
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    crate::oci::doc::parse_json(bytes, what)
}

/// Plans an OCI image layout from its `index.json`; `docker_manifest` (docker 25's
/// manifest.json beside it) supplies names the index lacks.
pub(crate) async fn plan_oci<S: Source>(
    index_json: &[u8],
    docker_manifest: Option<&[u8]>,
    source: &S,
    opts: &PlanOptions,
) -> Result<Plan> {
    let index: Index = parse(index_json, "index.json")?;
    if let Some(mt) = &index.media_type
        && !is_index(mt)
    {
        bail!("index.json has media type {mt}, not an OCI index");
    }
    if index.manifests.is_empty() {
        bail!("index.json lists no image");
    }
    let docker: Vec<DockerEntry> = match docker_manifest {
        Some(b) => parse_docker_manifest(b).unwrap_or_default(),
        None => vec![],
    };
    let mut plan = Plan::default();
    // What each entry's descriptor planned to: an index listing one image many times (once
    // per tag) plans it once, and each later entry only adds its names.
    let mut planned: HashMap<(&str, &str, i64), Planned> = HashMap::new();
    for (n, entry) in index.manifests.iter().enumerate() {
        let what = || format!("index.json entry {}", n + 1);
        if !is_digest(&entry.digest) {
            bail!("{}: {:?} is not a sha256 digest", what(), entry.digest);
        }
        let key = (entry.media_type.as_str(), entry.digest.as_str(), entry.size);
        let done = match planned.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let image = plan_entry(entry, source, opts, &mut plan)
                    .await
                    .with_context(|| format!("{} ({})", what(), entry.digest))?;
                let configs = image
                    .manifests
                    .iter()
                    .map(|m| m.config.digest.clone())
                    .collect();
                let role = if is_index(&entry.media_type) {
                    Role::Index
                } else {
                    Role::Manifest
                };
                plan.add_blob(entry.descriptor(), role, BTreeMap::new());
                v.insert(Planned {
                    at: plan.add_image(image),
                    configs,
                    docker_names: None,
                })
            }
        };
        let mut names = match oci_names(&entry.annotations, opts.base_name.as_deref()) {
            Ok(names) => names,
            Err(note) => {
                plan.notes.push(note);
                vec![]
            }
        };
        if names.is_empty() {
            // docker 25 puts the tags in manifest.json only.
            if done.docker_names.is_none() {
                done.docker_names = Some(docker_names(&docker, &done.configs, source)?);
            }
            names.extend(done.docker_names.iter().flatten().cloned());
        }
        if names.is_empty() {
            names.push(
                digest_reference(opts.base_name.as_deref(), &entry.digest)
                    .map_err(|e| anyhow!(e))?,
            );
        }
        for name in names {
            plan.add_name(done.at, name);
        }
    }
    Ok(plan)
}

/// An index entry's descriptor once planned.
struct Planned {
    /// Where its image is in the plan's images.
    at: usize,
    /// The configs of its image's manifests.
    configs: Vec<String>,
    /// The names docker's manifest.json gives those configs, once asked for.
    docker_names: Option<Vec<String>>,
}

/// Plans the image an index entry points at (an index or a manifest), without names.
async fn plan_entry<S: Source>(
    entry: &Desc,
    source: &S,
    opts: &PlanOptions,
    plan: &mut Plan,
) -> Result<PlannedImage> {
    if is_index(&entry.media_type) {
        plan_index(entry, source, opts, plan, 0).await
    } else if is_manifest(&entry.media_type) {
        let m = plan_manifest(entry, source, plan).await?;
        Ok(PlannedImage {
            names: vec![],
            target: entry.descriptor(),
            id: m.config.digest.clone(),
            manifests: vec![PlannedManifest { unpack: true, ..m }],
        })
    } else {
        bail!("unsupported media type {:?}", entry.media_type);
    }
}

/// The tags docker's manifest.json gives an image by its configs: the config is the
/// member an entry names, whatever its path.
fn docker_names<S: Source>(
    docker: &[DockerEntry],
    configs: &[String],
    source: &S,
) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for d in docker {
        if let Some(c) = source.member(&d.config)
            && configs.contains(&c.digest)
        {
            for t in d.repo_tags.iter().flatten() {
                let name = crate::reference::normalize(t).map_err(|e| anyhow!(e))?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    Ok(names)
}

/// A leaf manifest of a (possibly nested) index and the index positions leading to it.
struct Leaf {
    desc: Desc,
    path: Vec<(Desc, usize)>,
}

/// Walks an index tree. Each index and each manifest is visited once: one listed again
/// (twice in an index, or by two indexes of the tree) is skipped, so a small archive whose
/// indexes list one another many times over cannot multiply the walk. (An index cannot
/// list itself: its digest would have to hash its own bytes.)
fn collect_leaves<'a, S: Source>(
    index: &'a Desc,
    source: &'a S,
    depth: usize,
    path: Vec<(Desc, usize)>,
    out: &'a mut Vec<Leaf>,
    walked: &'a mut std::collections::HashSet<String>,
) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        if depth >= MAX_DEPTH {
            bail!("indexes nested deeper than {MAX_DEPTH}");
        }
        if !walked.insert(index.digest.clone()) {
            return Ok(());
        }
        let bytes = source.blob(&index.digest).await?;
        check_size(&bytes, index, "index")?;
        let doc: Index = parse(&bytes, &format!("index {}", index.digest))?;
        for (i, child) in doc.manifests.iter().enumerate() {
            if !is_digest(&child.digest) {
                bail!(
                    "index {}: {:?} is not a sha256 digest",
                    index.digest,
                    child.digest
                );
            }
            let mut p = path.clone();
            p.push((index.clone(), i));
            if is_index(&child.media_type) {
                collect_leaves(child, source, depth + 1, p, out, walked).await?;
            } else if is_manifest(&child.media_type) && walked.insert(child.digest.clone()) {
                out.push(Leaf {
                    desc: child.clone(),
                    path: p,
                });
            }
            // Other entries (attestations, signatures as artifacts) are not images.
        }
        Ok(())
    })
}

async fn plan_index<S: Source>(
    entry: &Desc,
    source: &S,
    opts: &PlanOptions,
    plan: &mut Plan,
    depth: usize,
) -> Result<PlannedImage> {
    let mut leaves = Vec::new();
    let mut walked = std::collections::HashSet::new();
    collect_leaves(entry, source, depth, vec![], &mut leaves, &mut walked).await?;
    // Attestation manifests (buildx) carry platform unknown/unknown: not runnable images.
    leaves.retain(|l| {
        l.desc
            .annotations
            .get(ANNOTATION_DOCKER_REFERENCE_TYPE)
            .is_none_or(|t| t != "attestation-manifest")
    });
    let platforms: Vec<Option<Platform>> = leaves
        .iter()
        .map(|l| l.desc.platform.as_ref().and_then(PlatformDoc::platform))
        .collect();
    let chosen = opts.platforms.select(&platforms);
    if chosen.is_empty() {
        let available: Vec<String> = platforms
            .iter()
            .map(|p| p.as_ref().map_or("unknown".into(), ToString::to_string))
            .collect();
        let wanted = match &opts.platforms {
            PlatformChoice::All => "any".to_string(),
            PlatformChoice::These(ps) => ps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        bail!(
            "no manifest for platform {wanted} (the index has {})",
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        );
    }
    // The host runs at most one of them: that one is unpacked.
    let host = Platform::host();
    let unpack = chosen
        .iter()
        .filter_map(|&i| match &platforms[i] {
            Some(p) => host.score(p).map(|s| (s, i)),
            None => Some((0, i)),
        })
        .max_by_key(|(s, i)| (*s, std::cmp::Reverse(*i)))
        .map(|(_, i)| i);
    let mut manifests = Vec::new();
    for &i in &chosen {
        let leaf = &leaves[i];
        let mut m = plan_manifest(&leaf.desc, source, plan)
            .await
            .with_context(|| format!("manifest {}", leaf.desc.digest))?;
        m.platform = platforms[i].clone().or(m.platform);
        m.unpack = Some(i) == unpack;
        // Each index on the way keeps its chosen child alive.
        let mut child = leaf.desc.digest.clone();
        for (index, pos) in leaf.path.iter().rev() {
            let labels = gc::content_ref(Role::Manifest, *pos)
                .map(|key| (key, child.clone()))
                .into_iter()
                .collect();
            plan.add_blob(index.descriptor(), Role::Index, labels);
            child = index.digest.clone();
        }
        manifests.push(m);
    }
    if unpack.is_none() {
        plan.notes.push(format!(
            "no chosen platform of {} runs on this host ({host}); nothing unpacked",
            entry.digest
        ));
    }
    let id_manifest = manifests.iter().find(|m| m.unpack).unwrap_or(&manifests[0]);
    Ok(PlannedImage {
        names: vec![],
        target: entry.descriptor(),
        id: id_manifest.config.digest.clone(),
        manifests,
    })
}

/// A document must be as long as the descriptor that names it says: a descriptor whose
/// size lies would be written into an image record (and break `export` of it later), even
/// when the blob itself is already in the content store and so is not read from the
/// archive.
fn check_size(bytes: &[u8], desc: &Desc, what: &str) -> Result<()> {
    if bytes.len() as i64 != desc.size {
        bail!(
            "{what} {}: its descriptor says {} bytes, the blob has {}",
            desc.digest,
            desc.size,
            bytes.len()
        );
    }
    Ok(())
}

async fn plan_manifest<S: Source>(
    desc: &Desc,
    source: &S,
    plan: &mut Plan,
) -> Result<PlannedManifest> {
    let bytes = source.blob(&desc.digest).await?;
    check_size(&bytes, desc, "manifest")?;
    let doc: Manifest = parse(&bytes, &format!("manifest {}", desc.digest))?;
    if let Some(mt) = &doc.media_type
        && !is_manifest(mt)
    {
        bail!("manifest {} has unsupported media type {mt:?}", desc.digest);
    }
    if !is_config(&doc.config.media_type) {
        bail!(
            "manifest {}: unsupported config media type {:?} (not a container image)",
            desc.digest,
            doc.config.media_type
        );
    }
    let config_bytes = source.blob(&doc.config.digest).await?;
    check_size(&config_bytes, &doc.config, "image config")?;
    let config: Config = parse(
        &config_bytes,
        &format!("image config {}", doc.config.digest),
    )?;
    for l in &doc.layers {
        if !is_layer(&l.media_type) {
            bail!(
                "layer {}: unsupported media type {:?}",
                l.digest,
                l.media_type
            );
        }
        if !is_digest(&l.digest) {
            bail!("layer {:?} is not a sha256 digest", l.digest);
        }
    }
    if config.rootfs.diff_ids.len() != doc.layers.len() {
        bail!(
            "manifest {} has {} layers but its config {} lists {} diff IDs",
            desc.digest,
            doc.layers.len(),
            doc.config.digest,
            config.rootfs.diff_ids.len()
        );
    }
    let layers: Vec<Descriptor> = doc.layers.iter().map(Desc::descriptor).collect();
    plan.add_manifest(
        desc.descriptor(),
        doc.config.descriptor(),
        &layers,
        &config.rootfs.diff_ids,
    );
    Ok(PlannedManifest {
        digest: desc.digest.clone(),
        platform: config.platform(),
        config: doc.config.descriptor(),
        layers,
        diff_ids: config.rootfs.diff_ids,
        unpack: false,
    })
}

pub(crate) mod chains;
mod docker;
pub(crate) mod mem;
#[cfg(test)]
mod tests;

pub(crate) use docker::{layer_media_type, plan_docker};
