//! Unpacking an import's layers into the snapshotter: chains at once, each layer applied
//! once per import.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::watch as tokio_watch;

use crate::model::Descriptor;
use crate::plan::import::{Plan, PlannedManifest, chain_ids};
use crate::runtime::unpack::Unpacked;

use super::Job;

impl Job<'_> {
    /// Unpacks the manifests the plan marks, each layer as soon as it is `ready`: up to
    /// one chain per core at once, a layer two chains share applied once. Returns each
    /// config digest with its top chain ID.
    pub(super) async fn unpack(
        &self,
        plan: &Plan,
        ready: tokio_watch::Receiver<HashSet<String>>,
    ) -> Result<Vec<(String, String)>> {
        let Some(snapshotter) = &self.imp.snapshotter else {
            return Ok(vec![]);
        };
        let mut seen = HashSet::new();
        let chains: Vec<&PlannedManifest> = plan
            .images
            .iter()
            .flat_map(|i| &i.manifests)
            .filter(|m| m.unpack && seen.insert(m.config.digest.clone()))
            .collect();
        futures::stream::iter(
            chains
                .into_iter()
                .map(|m| self.unpack_chain(snapshotter, m, ready.clone())),
        )
        .buffer_unordered(unpack_parallelism())
        .try_filter_map(|done| async move { Ok(done) })
        .try_collect()
        .await
    }

    /// One manifest's layers, bottom up; returns its config digest and top chain ID.
    pub(super) async fn unpack_chain(
        &self,
        snapshotter: &str,
        m: &PlannedManifest,
        mut ready: tokio_watch::Receiver<HashSet<String>>,
    ) -> Result<Option<(String, String)>> {
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
            self.apply_once(snapshotter, parent, &chains[i], layer, &m.diff_ids[i])
                .await?;
            parent = Some(&chains[i]);
        }
        Ok(chains
            .last()
            .map(|top| (m.config.digest.clone(), top.clone())))
    }

    /// Applies `layer` on `parent` as snapshot `chain_id`, once per import: a chain ID is
    /// the whole stack below it, so another chain that shares it waits for this apply
    /// instead of doing it again. True when this call applied it (or found it there).
    pub(super) async fn apply_once(
        &self,
        snapshotter: &str,
        parent: Option<&str>,
        chain_id: &str,
        layer: &Descriptor,
        diff_id: &str,
    ) -> Result<bool> {
        let mut did = false;
        self.layers
            .cell(chain_id)
            .get_or_try_init(|| async {
                let _core = self.applying.acquire().await?;
                // Another archive imported at the same time may be applying it: wait,
                // then find its snapshot.
                let _held = self.imp.chains.hold(chain_id).await;
                // Leased before it is looked for: a snapshot already there (another
                // image's layer) must survive a collection until this image holds it.
                self.c
                    .lease_snapshot(&self.lease, snapshotter, chain_id)
                    .await?;
                let unpacked = self
                    .c
                    .unpack_layer(snapshotter, parent, chain_id, layer, diff_id)
                    .await
                    .with_context(|| format!("unpacking into {snapshotter}"))?;
                let settings = &self.imp.settings;
                match unpacked {
                    Unpacked::Applied => {}
                    Unpacked::Present => settings.debug(format_args!(
                        "{}: layer {} is unpacked already",
                        self.file, layer.digest
                    )),
                    Unpacked::Raced => settings.debug(format_args!(
                        "{}: layer {} was unpacked by another client meanwhile; this apply \
                         was wasted",
                        self.file, layer.digest
                    )),
                }
                did = true;
                Ok::<_, anyhow::Error>(())
            })
            .await?;
        Ok(did)
    }
}

/// A sentinel in the ready set: the writer failed, stop unpacking.
pub(super) const STOP: &str = "stop";

/// Chains unpacked at once: containerd applies each layer on one core.
pub(crate) fn unpack_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// The snapshots one import has applied (or is applying), by chain ID.
#[derive(Default)]
pub(crate) struct Layers(std::sync::Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>);

impl Layers {
    pub(super) fn cell(&self, chain_id: &str) -> Arc<tokio::sync::OnceCell<()>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(chain_id.to_string()).or_default().clone()
    }
}
