//! The walk's view of the node's content store, fetching what is missing from the
//! registry with `--fetch-missing`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use super::run::progress;
use crate::app::Settings;
use crate::model::Descriptor;
use crate::oci::MAX_JSON;
use crate::oci::sha256_digest;
use crate::plan::export::{self as write_plan, ImagePlan, Store, gc_labels, missing_report};
use crate::plan::platform::PlatformChoice;
use crate::registry::fetch::Fetcher;
use crate::registry::{self, Source};
use crate::runtime::containerd::Containerd;
use crate::runtime::leases::HeldLeases;

pub(super) struct FetchState {
    pub(super) fetcher: Fetcher,
    pub(super) lease: String,
    pub(super) leased: Containerd,
    pub(super) fetched: Vec<String>,
    /// Where an interruption finds the leases to delete.
    pub(super) held: HeldLeases,
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
            let mut bytes = Vec::with_capacity(desc.size.clamp(0, MAX_JSON as i64) as usize);
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
pub(super) async fn gather_and_fetch(
    c: &Containerd,
    settings: &Settings,
    wanted: Vec<(Vec<String>, Descriptor)>,
    choice: &PlatformChoice,
    mut fetch: Option<&mut FetchState>,
) -> Result<Vec<ImagePlan>> {
    let (mut plans, labels) = walk_images(c, wanted, choice, fetch.as_deref_mut()).await?;

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
    if !todo.is_empty() {
        renew_lease(c, f, todo.iter().map(|(d, _)| d.size.max(0) as u64)).await?;
    }
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

/// Walks every image (fetching absent manifests on the way when given a fetcher):
/// the plans, and the labels of every blob seen, by digest.
pub(super) async fn walk_images(
    c: &Containerd,
    wanted: Vec<(Vec<String>, Descriptor)>,
    choice: &PlatformChoice,
    fetch: Option<&mut FetchState>,
) -> Result<(Vec<ImagePlan>, Labels)> {
    let mut plans = Vec::new();
    let mut store = NodeStore {
        c,
        fetch,
        labels: HashMap::new(),
        names: Vec::new(),
        seen: Vec::new(),
    };
    for (names, target) in wanted {
        store.names = names.clone();
        store.seen.clear();
        plans.push(write_plan::walk(&mut store, names, &target, choice).await?);
    }
    Ok((plans, store.labels))
}

/// Content labels by digest.
pub(super) type Labels = HashMap<String, BTreeMap<String, String>>;

/// Replaces the fetch lease by one that lasts as long as fetching `sizes` may take (its
/// `containerd.io/gc.expire` label), holding what was fetched so far.
async fn renew_lease(
    c: &Containerd,
    f: &mut FetchState,
    sizes: impl Iterator<Item = u64>,
) -> Result<()> {
    // Both are remembered until the old one is deleted: an interruption in between
    // deletes both.
    let lease = c
        .create_held_lease(&f.held, "export", crate::registry::fetch::lease_for(sizes))
        .await?;
    for digest in &f.fetched {
        c.lease_content(&lease, digest).await?;
    }
    let old = std::mem::replace(&mut f.lease, lease);
    f.leased = c.with_lease(&f.lease)?;
    c.delete_lease(&old, false).await?;
    f.held.forget(&old);
    Ok(())
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
