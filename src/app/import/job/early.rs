//! Unpacking a streamed archive's chains while it is still being read.
//!
//! A `docker save` archive names which layer belongs to which image only in
//! manifest.json, its last member, and a layer's path carries neither its digest nor its
//! diff ID; an OCI layout's index and manifests may come anywhere, often last. When the
//! input is a zstd- or lz4-compressed file, a first quick pass
//! ([`crate::archive::read::read_documents`]: zstd decompresses at well over 1 GB/s)
//! reads the JSON documents while the main pass stores the layers; each chain is then
//! applied layer by layer as its layers are stored, instead of after the whole archive.
//!
//! This is a head start, not a second plan: the plan made from the main pass still
//! decides, its unpack finds what was applied early (one cell per chain ID), and a layer
//! the early pass could not apply (a mismatch, an error) is applied, or refused with its
//! error, by that unpack. Diff IDs are verified by containerd either way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Result, anyhow};
use bytes::Bytes;

use super::Job;
use crate::archive::source::MemArchive;
use crate::model::Descriptor;
use crate::oci::blob_path;
use crate::oci::doc::Config;
use crate::plan::import::{PlanOptions, chain_ids, parse_docker_manifest, plan_oci};

/// What the main pass has read of a streamed archive, by member path.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    pub(crate) members: HashMap<String, Arrived>,
    /// The main pass has read the whole archive: nothing more arrives.
    pub(crate) done: bool,
}

/// A member the main pass has read.
#[derive(Debug, Clone)]
pub(crate) enum Arrived {
    /// Written to the store (a layer, by its media type).
    Stored(Descriptor),
    /// Kept in memory (small): stored when a chain needs it.
    Small(Descriptor, Bytes),
}

/// Tells the first pass to stop when the import is over, however it ends.
#[derive(Default)]
pub(super) struct StopOnDrop(pub(super) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One image's layers by path (links followed) with their diff IDs.
#[derive(Debug, PartialEq, Eq)]
struct EarlyChain {
    layers: Vec<String>,
    diff_ids: Vec<String>,
}

/// The chains of the images a `docker save` archive's documents describe, each once.
/// Anything unreadable is left to the plan, which reports it.
fn docker_chains(docs: &MemArchive) -> Vec<EarlyChain> {
    let Some(Ok(entries)) = docs.file("manifest.json").map(|m| parse_docker_manifest(m)) else {
        return vec![];
    };
    let mut seen = HashSet::new();
    let mut chains = Vec::new();
    for e in entries {
        let Some(config) = docs.file(&e.config) else {
            continue;
        };
        let Ok(config) = serde_json::from_slice::<Config>(config) else {
            continue;
        };
        let diff_ids = config.rootfs.diff_ids;
        if diff_ids.is_empty() || diff_ids.len() != e.layers.len() || !seen.insert(diff_ids.clone())
        {
            continue;
        }
        chains.push(EarlyChain {
            layers: e.layers.iter().map(|l| docs.resolve(l)).collect(),
            diff_ids,
        });
    }
    chains
}

/// The chains of an OCI layout's documents (docker 25+'s `docker save` too), as its plan
/// will have them: the planner itself, run on the first pass's documents, so the same
/// platforms are chosen. `None` when there is no `index.json` or it cannot be planned
/// from the documents alone.
async fn oci_chains(docs: &MemArchive, opts: &PlanOptions) -> Option<Vec<EarlyChain>> {
    let index = docs.file("index.json")?;
    let docker = docs.file("manifest.json").map(|b| &b[..]);
    let plan = plan_oci(index, docker, docs, opts).await.ok()?;
    let mut seen = HashSet::new();
    let mut chains = Vec::new();
    for m in plan.images.iter().flat_map(|i| &i.manifests) {
        if !m.unpack || m.diff_ids.is_empty() || !seen.insert(m.diff_ids.clone()) {
            continue;
        }
        let layers: Option<Vec<String>> =
            m.layers.iter().map(|l| blob_path(&l.digest).ok()).collect();
        chains.push(EarlyChain {
            layers: layers?,
            diff_ids: m.diff_ids.clone(),
        });
    }
    Some(chains)
}

impl Job<'_> {
    /// Applies the chains `documents` describe as their layers arrive, until the main
    /// pass has read the archive. Never fails the import: what it leaves, the plan's
    /// unpack does.
    pub(super) async fn early_unpack(
        &self,
        documents: tokio::task::JoinHandle<Result<Option<MemArchive>>>,
        stop: &StopOnDrop,
    ) {
        let Some(snapshotter) = &self.imp.snapshotter else {
            return;
        };
        let mut arrivals = self.arrived.subscribe();
        let documents = tokio::select! {
            d = documents => d,
            // Read whole (or failed) before the first pass was done: nothing to gain.
            _ = arrivals.wait_for(|a| a.done) => {
                stop.0.store(true, Ordering::Relaxed);
                return;
            }
        };
        let docs = match documents {
            Ok(Ok(Some(d))) => d,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                self.imp.settings.debug(format_args!(
                    "{}: no early unpack, the first pass failed: {e:#}",
                    self.file
                ));
                return;
            }
            Err(e) => {
                self.imp.settings.debug(format_args!(
                    "{}: no early unpack, the first pass failed: {e}",
                    self.file
                ));
                return;
            }
        };
        let chains = match oci_chains(&docs, &self.imp.opts).await {
            Some(chains) => chains,
            None => docker_chains(&docs),
        };
        drop(docs);
        if chains.is_empty() {
            return;
        }
        self.phase(&format!("{} chain(s) known ahead", chains.len()));
        let before_end = AtomicUsize::new(0);
        futures::future::join_all(chains.iter().map(|c| async {
            if let Err(e) = self.early_chain(snapshotter, c, &before_end).await {
                self.imp.settings.debug(format_args!(
                    "{}: early unpack stopped, the plan's unpack goes on: {e:#}",
                    self.file
                ));
            }
        }))
        .await;
        self.imp.settings.debug(format_args!(
            "{}: {} layer(s) unpacked before the archive's end",
            self.file,
            before_end.load(Ordering::Relaxed)
        ));
    }

    async fn early_chain(
        &self,
        snapshotter: &str,
        c: &EarlyChain,
        before_end: &AtomicUsize,
    ) -> Result<()> {
        let chains = chain_ids(&c.diff_ids);
        let mut arrivals = self.arrived.subscribe();
        let mut parent: Option<&str> = None;
        for (i, path) in c.layers.iter().enumerate() {
            let arrived = arrivals
                .wait_for(|a| a.done || a.members.contains_key(path))
                .await
                .map_err(|_| anyhow!("the import ended"))?
                .members
                .get(path)
                .cloned();
            let layer = match arrived {
                // Read whole without it: the plan's unpack does the rest.
                None => return Ok(()),
                Some(Arrived::Stored(d)) => d,
                Some(Arrived::Small(desc, bytes)) => {
                    self.store_bytes(&desc, &BTreeMap::new(), &bytes).await?;
                    desc
                }
            };
            let applied = self
                .apply_once(snapshotter, parent, &chains[i], &layer, &c.diff_ids[i])
                .await?;
            if applied && !self.arrived.borrow().done {
                before_end.fetch_add(1, Ordering::Relaxed);
            }
            parent = Some(&chains[i]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::content::sha256_digest;
    use sha2::Digest as _;

    fn docs(files: &[(&str, &str)], links: &[(&str, &str)]) -> MemArchive {
        let mut mem = MemArchive::default();
        for (p, b) in files {
            mem.add_member(p, Bytes::from(b.to_string()), 16);
        }
        mem.links = links
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        mem
    }

    #[test]
    fn chains_from_manifest_and_configs_each_once_links_followed() {
        let config = |ids: &str| format!(r#"{{"rootfs":{{"type":"layers","diff_ids":[{ids}]}}}}"#);
        let c1 = config(r#""sha256:a","sha256:b""#);
        let c3 = config(r#""sha256:a""#);
        let manifest = r#"[
            {"Config":"c1.json","RepoTags":["x:1"],"Layers":["a/layer.tar","b/layer.tar"]},
            {"Config":"c2.json","RepoTags":["x:2"],"Layers":["a/layer.tar","link/layer.tar"]},
            {"Config":"c3.json","RepoTags":["y:1"],"Layers":["a/layer.tar","b/layer.tar"]},
            {"Config":"missing.json","Layers":["a/layer.tar"]}
        ]"#;
        let d = docs(
            &[
                ("manifest.json", manifest),
                ("c1.json", &c1),
                ("c2.json", &c1),
                ("c3.json", &c3),
            ],
            &[("link/layer.tar", "b/layer.tar")],
        );
        let got = docker_chains(&d);
        // c2 is c1's chain again; c3 has one diff ID for two layers; missing.json is not
        // there: the plan reports those.
        assert_eq!(
            got,
            [EarlyChain {
                layers: vec!["a/layer.tar".into(), "b/layer.tar".into()],
                diff_ids: vec!["sha256:a".into(), "sha256:b".into()],
            }]
        );
        assert!(docker_chains(&docs(&[("manifest.json", "not json")], &[])).is_empty());
        assert!(docker_chains(&MemArchive::default()).is_empty());
    }

    /// An OCI index of two platforms: only the chain the plan unpacks (the host's) is
    /// known ahead, its layers by blob path.
    #[tokio::test]
    async fn oci_chains_are_the_plans() {
        use crate::plan::platform::{Platform, PlatformChoice};
        let digest = |b: &str| sha256_digest(sha2::Sha256::new_with_prefix(b.as_bytes()));
        let host = Platform::host();
        let other = if host.architecture == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        let mut files: Vec<(String, String)> = vec![];
        let mut entries = vec![];
        for (arch, diff) in [
            (host.architecture.as_str(), "sha256:h"),
            (other, "sha256:o"),
        ] {
            let config = format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
            );
            let fill = if arch == other { "b" } else { "a" };
            let layer = format!("sha256:{}", fill.repeat(64));
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":10}}]}}"#,
                digest(&config),
                config.len()
            );
            entries.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                digest(&manifest),
                manifest.len()
            ));
            for doc in [config, manifest] {
                let path = blob_path(&digest(&doc)).unwrap();
                files.push((path, doc));
            }
        }
        let index_entry = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            entries.join(",")
        );
        let nested = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"docker.io/library/x:1"}}}}]}}"#,
            digest(&index_entry),
            index_entry.len()
        );
        files.push((blob_path(&digest(&index_entry)).unwrap(), index_entry));
        files.push(("index.json".into(), nested));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_str()))
            .collect();
        // With --all-platforms both are planned, the host's alone unpacked.
        for all in [false, true] {
            let opts = PlanOptions {
                platforms: PlatformChoice::from_args(&[], all),
                base_name: None,
            };
            let got = oci_chains(&docs(&refs, &[]), &opts).await.expect("planned");
            assert_eq!(
                got,
                [EarlyChain {
                    layers: vec![format!("blobs/sha256/{}", "a".repeat(64))],
                    diff_ids: vec!["sha256:h".into()],
                }],
                "all platforms: {all}"
            );
        }
        let opts = PlanOptions {
            platforms: PlatformChoice::from_args(&[], false),
            base_name: None,
        };
        // No index: not an OCI layout.
        assert!(oci_chains(&MemArchive::default(), &opts).await.is_none());
    }
}
