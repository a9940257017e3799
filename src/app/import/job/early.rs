//! Unpacking a streamed `docker save` archive's chains while it is still being read.
//!
//! Such an archive names which layer belongs to which image only in manifest.json, its
//! last member, and a layer's path carries neither its digest nor its diff ID. When the
//! input is a zstd- or lz4-compressed file, a first quick pass
//! ([`crate::archive::read::read_documents`], about 0.3 CPU-seconds per 256 MiB here)
//! reads manifest.json and the configs while the main pass stores the layers; each chain
//! is then applied layer by layer as its layers are stored, instead of after the whole
//! archive. This is a head start, not a second plan: the plan made from the main pass
//! still decides, its unpack finds what was applied early (one cell per chain ID), and a
//! layer the early pass could not apply (a mismatch, an error) is applied, or refused
//! with its error, by that unpack. Diff IDs are verified by containerd either way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use sha2::Digest as _;

use super::Job;
use crate::archive::read::Documents;
use crate::model::Descriptor;
use crate::oci::doc::Config;
use crate::plan::import::{chain_ids, layer_media_type, parse_docker_manifest};
use crate::runtime::content::sha256_digest;

/// What the main pass has stored of a streamed archive's members that are not named by
/// their digest, by path.
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
    Small(Bytes),
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
fn early_chains(docs: &Documents) -> Vec<EarlyChain> {
    let resolve = |path: &str| {
        let mut p = path.to_string();
        for _ in 0..16 {
            match docs.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    };
    let Some(Ok(entries)) = docs
        .files
        .get("manifest.json")
        .map(|m| parse_docker_manifest(m))
    else {
        return vec![];
    };
    let mut seen = HashSet::new();
    let mut chains = Vec::new();
    for e in entries {
        let Some(config) = docs.files.get(&resolve(&e.config)) else {
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
            layers: e.layers.iter().map(|l| resolve(l)).collect(),
            diff_ids,
        });
    }
    chains
}

impl Job<'_> {
    /// Applies the chains `documents` describe as their layers arrive, until the main
    /// pass has read the archive. Never fails the import: what it leaves, the plan's
    /// unpack does.
    pub(super) async fn early_unpack(
        &self,
        documents: tokio::task::JoinHandle<Result<Option<Documents>>>,
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
        let chains = early_chains(&docs);
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
                Some(Arrived::Small(bytes)) => {
                    let desc = Descriptor {
                        media_type: layer_media_type(&bytes)
                            .map_err(|e| anyhow!("{path}{e}"))?
                            .into(),
                        digest: sha256_digest(sha2::Sha256::new_with_prefix(&bytes)),
                        size: bytes.len() as i64,
                    };
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

    fn docs(files: &[(&str, &str)], links: &[(&str, &str)]) -> Documents {
        Documents {
            files: files
                .iter()
                .map(|(p, b)| (p.to_string(), Bytes::from(b.to_string())))
                .collect(),
            links: links
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        }
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
        let got = early_chains(&d);
        // c2 is c1's chain again; c3 has one diff ID for two layers; missing.json is not
        // there: the plan reports those.
        assert_eq!(
            got,
            [EarlyChain {
                layers: vec!["a/layer.tar".into(), "b/layer.tar".into()],
                diff_ids: vec!["sha256:a".into(), "sha256:b".into()],
            }]
        );
        assert!(early_chains(&docs(&[("manifest.json", "not json")], &[])).is_empty());
        assert!(early_chains(&Documents::default()).is_empty());
    }
}
