//! What an export writes, decided before a byte is written: the walk from each image's
//! target (index → manifests → config and layers), which of those blobs the content store
//! lacks, the report that says so, and the Docker `manifest.json` entries.
//!
//! The walk asks a [`Store`] for presence and for the small JSON blobs it must parse; the
//! export command backs it with containerd (and the registry, with `--fetch-missing`),
//! and the tests with a map.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::model::Descriptor;
use crate::oci::Platform;
use crate::oci::doc::{Desc, DockerImage, Index, Manifest};
use crate::oci::{MAX_JSON, Role, gc, is_index, is_manifest, is_non_distributable, json_size_ok};
use crate::plan::platform::PlatformChoice;
use crate::reference::docker_repo_tag;

/// Where the walk gets its facts.
#[allow(async_fn_in_trait)] // used with concrete types only, never boxed or sent
pub(crate) trait Store {
    /// Whether the content store has the blob (a leaf: config or layer).
    async fn has(&mut self, desc: &Descriptor) -> Result<bool>;
    /// The bytes of an index or manifest, or `None` when the store lacks it (and, if
    /// `may_fetch`, a registry cannot supply it either).
    async fn read_small(&mut self, desc: &Descriptor, may_fetch: bool) -> Result<Option<Vec<u8>>>;
}

/// One blob of an image, in walk order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportBlob {
    pub(crate) desc: Descriptor,
    pub(crate) role: Role,
    /// Its place in the parent's list (a manifest in its index, a layer in its
    /// manifest) and the length of that list.
    pub(crate) position: Option<(usize, usize)>,
    /// The digest of the index or manifest that references it.
    pub(crate) parent: Option<String>,
    /// The platform of the manifest it belongs to, when known.
    pub(crate) platform: Option<Platform>,
    pub(crate) present: bool,
    /// Absent non-distributable (foreign) layers are not required: importers fetch
    /// them from their URLs.
    pub(crate) required: bool,
}

impl ExportBlob {
    /// `layer 2 of 3 of manifest sha256:…`, `config of manifest sha256:…`, `index`.
    pub(crate) fn describe(&self) -> String {
        let parent = self.parent.as_deref().unwrap_or("?");
        match (self.role, self.position) {
            (Role::Index, _) => "index".to_string(),
            (Role::Manifest, None) => "manifest".to_string(),
            (Role::Manifest, Some(_)) => format!("manifest of index {parent}"),
            (Role::Config, _) => format!("config of manifest {parent}"),
            (Role::Layer, Some((index, count))) => {
                format!("layer {} of {count} of manifest {parent}", index + 1)
            }
            (Role::Layer, None) => format!("layer of manifest {parent}"),
        }
    }
}

/// One exported manifest: a single platform's config and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestPlan {
    pub(crate) digest: String,
    pub(crate) platform: Option<Platform>,
    pub(crate) config: String,
    pub(crate) layers: Vec<String>,
}

/// Everything exported for one image target (one or more names pointing at it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImagePlan {
    pub(crate) names: Vec<String>,
    pub(crate) target: Descriptor,
    /// Target first, then for each manifest: manifest, config, layers.
    pub(crate) blobs: Vec<ExportBlob>,
    /// Manifests whose config and layers are exported.
    pub(crate) manifests: Vec<ManifestPlan>,
    /// With `--all-platforms`: platforms of the index whose manifest the node never had
    /// (a pull fetches only its own platform), left out of the archive.
    pub(crate) skipped_platforms: Vec<String>,
}

impl ImagePlan {
    /// The name shown in messages.
    pub(crate) fn display_name(&self) -> &str {
        self.names
            .first()
            .map_or(self.target.digest.as_str(), String::as_str)
    }

    pub(crate) fn missing(&self) -> impl Iterator<Item = &ExportBlob> {
        self.blobs.iter().filter(|b| b.required && !b.present)
    }
}

/// A descriptor's platform as given, even when incomplete.
fn platform_of(d: &Desc) -> Option<Platform> {
    d.platform
        .as_ref()
        .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Index,
    Manifest,
}

fn kind_of(media_type: &str, bytes: Option<&[u8]>) -> Option<Kind> {
    if is_index(media_type) {
        return Some(Kind::Index);
    }
    if is_manifest(media_type) {
        return Some(Kind::Manifest);
    }
    // Some records carry no media type; the document says what it is.
    let v: serde_json::Value = serde_json::from_slice(bytes?).ok()?;
    if v.get("manifests").is_some() {
        Some(Kind::Index)
    } else if v.get("layers").is_some() && v.get("config").is_some() {
        Some(Kind::Manifest)
    } else {
        None
    }
}

/// Walks one image target and decides what to export for `choice`.
pub(crate) async fn walk<S: Store>(
    store: &mut S,
    names: Vec<String>,
    target: &Descriptor,
    choice: &PlatformChoice,
) -> Result<ImagePlan> {
    let mut plan = ImagePlan {
        names,
        target: target.clone(),
        ..ImagePlan::default()
    };
    let bytes = read_json(store, target, true).await?;
    match kind_of(&target.media_type, bytes.as_deref()) {
        Some(Kind::Index) => {
            plan.blobs.push(ExportBlob {
                desc: target.clone(),
                role: Role::Index,
                position: None,
                parent: None,
                platform: None,
                present: bytes.is_some(),
                required: true,
            });
            let Some(bytes) = bytes else {
                return Ok(plan);
            };
            let index: Index = parse(&bytes, target, &plan)?;
            let platforms: Vec<Option<Platform>> =
                index.manifests.iter().map(platform_of).collect();
            let chosen = choice.select(&platforms);
            if chosen.is_empty() {
                let available: Vec<String> = platforms
                    .iter()
                    .map(|p| p.as_ref().map_or("unknown".into(), ToString::to_string))
                    .collect();
                bail!(
                    "{} has no manifest for {}; it has: {} (use --platform or --all-platforms)",
                    plan.display_name(),
                    describe_choice(choice),
                    available.join(", ")
                );
            }
            for i in chosen {
                let entry = &index.manifests[i];
                if is_index(&entry.media_type) {
                    bail!(
                        "{}: index {} nests another index ({}); nested indexes are not supported",
                        plan.display_name(),
                        target.digest,
                        entry.digest
                    );
                }
                let desc = entry.descriptor();
                // With --all-platforms, what the node never pulled is left out, not fetched.
                let may_fetch = *choice != PlatformChoice::All;
                let manifest = read_json(store, &desc, may_fetch).await?;
                if manifest.is_none() && *choice == PlatformChoice::All {
                    plan.skipped_platforms.push(
                        platforms[i]
                            .as_ref()
                            .map_or_else(|| desc.digest.clone(), ToString::to_string),
                    );
                    continue;
                }
                walk_manifest(
                    store,
                    &mut plan,
                    &desc,
                    manifest,
                    Some(&target.digest),
                    Some((i, index.manifests.len())),
                    platforms[i].clone(),
                )
                .await?;
            }
            if plan.manifests.is_empty() && plan.missing().next().is_none() {
                bail!(
                    "{}: none of the platforms of index {} is in the content store",
                    plan.display_name(),
                    target.digest
                );
            }
        }
        Some(Kind::Manifest) => {
            walk_manifest(store, &mut plan, target, bytes, None, None, None).await?;
        }
        None if bytes.is_none() => {
            // The target itself is absent: report it, there is nothing to descend into.
            plan.blobs.push(ExportBlob {
                desc: target.clone(),
                role: Role::Manifest,
                position: None,
                parent: None,
                platform: None,
                present: false,
                required: true,
            });
        }
        None => bail!(
            "{}: target {} has media type {:?}, which is neither an image index nor a manifest \
             (Docker schema 1 images cannot be exported)",
            plan.display_name(),
            target.digest,
            target.media_type
        ),
    }
    Ok(plan)
}

async fn walk_manifest<S: Store>(
    store: &mut S,
    plan: &mut ImagePlan,
    desc: &Descriptor,
    bytes: Option<Vec<u8>>,
    parent: Option<&str>,
    position: Option<(usize, usize)>,
    platform: Option<Platform>,
) -> Result<()> {
    plan.blobs.push(ExportBlob {
        desc: desc.clone(),
        role: Role::Manifest,
        position,
        parent: parent.map(str::to_string),
        platform: platform.clone(),
        present: bytes.is_some(),
        required: true,
    });
    let Some(bytes) = bytes else {
        return Ok(());
    };
    let doc: Manifest = parse(&bytes, desc, plan)?;
    let config = doc.config.descriptor();
    let present = store.has(&config).await?;
    plan.blobs.push(ExportBlob {
        desc: config.clone(),
        role: Role::Config,
        position: None,
        parent: Some(desc.digest.clone()),
        platform: platform.clone(),
        present,
        required: true,
    });
    let count = doc.layers.len();
    let mut layers = Vec::with_capacity(count);
    for (index, l) in doc.layers.iter().enumerate() {
        let layer = l.descriptor();
        let present = store.has(&layer).await?;
        let required = present || !is_non_distributable(&layer.media_type);
        if present || required {
            layers.push(layer.digest.clone());
        }
        plan.blobs.push(ExportBlob {
            desc: layer,
            role: Role::Layer,
            position: Some((index, count)),
            parent: Some(desc.digest.clone()),
            platform: platform.clone(),
            present,
            required,
        });
    }
    plan.manifests.push(ManifestPlan {
        digest: desc.digest.clone(),
        platform,
        config: config.digest,
        layers,
    });
    Ok(())
}

async fn read_json<S: Store>(
    store: &mut S,
    desc: &Descriptor,
    may_fetch: bool,
) -> Result<Option<Vec<u8>>> {
    if !json_size_ok(desc.size) {
        bail!(
            "{} claims to be a {}-byte manifest or index; refusing to read more than {MAX_JSON} bytes",
            desc.digest,
            desc.size
        );
    }
    store.read_small(desc, may_fetch).await
}

fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    desc: &Descriptor,
    plan: &ImagePlan,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: blob {} ({}) is not a valid image index or manifest: {e}",
            plan.display_name(),
            desc.digest,
            desc.media_type
        )
    })
}

fn describe_choice(choice: &PlatformChoice) -> String {
    match choice {
        PlatformChoice::All => "any platform".into(),
        PlatformChoice::These(ps) => ps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Every blob to write, each once, in walk order across images.
pub(crate) fn unique_blobs(plans: &[ImagePlan]) -> Vec<Descriptor> {
    let mut seen = HashSet::new();
    plans
        .iter()
        .flat_map(|p| &p.blobs)
        .filter(|b| b.present && seen.insert(b.desc.digest.clone()))
        .map(|b| b.desc.clone())
        .collect()
}

/// The operator's explanation of missing blobs, or `None` when nothing is missing.
pub(crate) fn missing_report(plans: &[ImagePlan]) -> Option<String> {
    let mut seen = HashSet::new();
    let mut count = 0;
    let mut images = 0;
    let mut body = String::new();
    for p in plans {
        let missing: Vec<&ExportBlob> = p
            .missing()
            .filter(|b| seen.insert((p.target.digest.clone(), b.desc.digest.clone())))
            .collect();
        if missing.is_empty() {
            continue;
        }
        images += 1;
        let mut by_platform: BTreeMap<String, Vec<&ExportBlob>> = BTreeMap::new();
        for b in &missing {
            let platform = b.platform.as_ref().map_or_else(
                || "single-platform manifest".to_string(),
                ToString::to_string,
            );
            by_platform.entry(platform).or_default().push(b);
        }
        for (platform, blobs) in by_platform {
            let _ = writeln!(body, "  image {} ({platform}):", p.names.join(", "));
            for b in blobs {
                count += 1;
                let _ = writeln!(
                    body,
                    "    {} ({}): {}",
                    b.desc.digest,
                    crate::model::human_size(b.desc.size.max(0) as u64),
                    b.describe()
                );
            }
        }
    }
    if count == 0 {
        return None;
    }
    let layers_only = plans
        .iter()
        .flat_map(|p| p.missing())
        .all(|b| b.role == Role::Layer);
    let mut out = format!(
        "cannot export: {count} blob{} of {images} image{} missing from the content store; nothing was written\n{body}",
        plural(count),
        plural(images),
    );
    if layers_only {
        out.push_str(
            "  likely cause: the CRI plugin's containerd section sets `discard_unpacked_layers = true`, \
             which deletes compressed layers once they are unpacked\n",
        );
    }
    out.push_str(
        "  ways out: set `discard_unpacked_layers = false` under [plugins.\"io.containerd.grpc.v1.cri\".containerd] \
         (or [plugins.\"io.containerd.cri.v1.images\"] in containerd 2.x), restart containerd and pull the image again; \
         or run this export again with --fetch-missing to fetch the missing blobs from the image's registry",
    );
    Some(out)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Docker `manifest.json` entries: per image target, the manifest of the preferred
/// platform (the first `--platform`, else the host's, else the first exported), with the
/// tagged names as `RepoTags`. Targets resolving to the same manifest share one entry.
pub(crate) fn docker_images(plans: &[ImagePlan], choice: &PlatformChoice) -> Vec<DockerImage> {
    let preferred = match choice {
        PlatformChoice::These(ps) if !ps.is_empty() => ps[0].clone(),
        _ => Platform::host(),
    };
    let mut out: Vec<DockerImage> = Vec::new();
    for p in plans {
        let best = p
            .manifests
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match &m.platform {
                Some(pl) => preferred.score(pl).map(|s| (s, i)),
                None => Some((0, i)),
            })
            .max_by_key(|(s, i)| (*s, std::cmp::Reverse(*i)))
            .map(|(_, i)| i)
            .or(if p.manifests.is_empty() {
                None
            } else {
                Some(0)
            });
        let Some(m) = best.map(|i| &p.manifests[i]) else {
            continue;
        };
        let tags: Vec<String> = p.names.iter().filter_map(|n| docker_repo_tag(n)).collect();
        match out
            .iter_mut()
            .find(|d| d.config == m.config && d.layers == m.layers)
        {
            Some(d) => {
                for t in tags {
                    if !d.repo_tags.contains(&t) {
                        d.repo_tags.push(t);
                    }
                }
            }
            None => out.push(DockerImage {
                config: m.config.clone(),
                repo_tags: tags,
                layers: m.layers.clone(),
            }),
        }
    }
    out
}

/// The GC reference labels each exported parent needs so its children stay alive:
/// `(parent digest, label key, child digest)`, as containerd's own pull sets them
/// (index → `…content.m.<i>`, manifest → `…content.config` and `…content.l.<i>`).
pub(crate) fn gc_labels(plans: &[ImagePlan]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in plans {
        for b in &p.blobs {
            let Some(parent) = &b.parent else { continue };
            let key = match (b.role, b.position) {
                (Role::Manifest, None) => continue,
                (role, position) => {
                    let Some(key) = gc::content_ref(role, position.map_or(0, |(i, _)| i)) else {
                        continue;
                    };
                    key
                }
            };
            if seen.insert((parent.clone(), key.clone())) {
                out.push((parent.clone(), key, b.desc.digest.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
