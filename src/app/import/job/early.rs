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
//! Any other stream (standard input, gzip, bzip2, a `docker save` directory) is read
//! once, and its chains are found in it as its documents go by ([`Finder`]): a manifest
//! once its config has come (an OCI layout, docker 25+), or a `docker save` config, whose
//! diff IDs name its uncompressed layers by digest. Writers put an image's layers before
//! its config and manifest, so each image's chain starts as soon as its last document is
//! read, while the next image is still streaming in, instead of after the index at the
//! end. Such a chain is a guess the index may not confirm (an image it does not name);
//! what it applied goes with the lease, as unneeded blobs do.
//!
//! This is a head start, not a second plan: the plan made from the main pass still
//! decides, its unpack finds what was applied early (one cell per chain ID), and a layer
//! the early pass could not apply (a mismatch, an error) is applied, or refused with its
//! error, by that unpack. Diff IDs are verified by containerd either way.
//!
//! Finding the chains is pure and lives in [`crate::plan::import::chains`]; this module
//! waits for their layers and applies them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use super::Job;
use crate::model::Descriptor;
use crate::plan::import::chain_ids;
use crate::plan::import::chains::{Doc, EarlyChain, Finder, Wanted, docker_chains, oci_chains};
use crate::plan::import::mem::MemArchive;

/// What the main pass has read of a streamed archive, by member path.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    pub(crate) members: HashMap<String, Arrived>,
    /// The paths of those members by digest.
    pub(crate) paths: HashMap<String, String>,
    /// Small JSON documents read and not yet looked at by the [`Finder`].
    pub(crate) docs: Vec<Doc>,
    /// Bytes of all documents ever put in `docs`: at most
    /// [`DOCUMENTS_TOTAL`](crate::archive::read::DOCUMENTS_TOTAL).
    pub(crate) docs_total: u64,
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

/// What the main pass has read of what `wanted` names, if it has.
fn arrived<'a>(wanted: &Wanted, a: &'a Arrivals) -> Option<&'a Arrived> {
    match wanted {
        Wanted::Path(p) => a.members.get(p),
        Wanted::Digest(d) => a.paths.get(d).and_then(|p| a.members.get(p)),
    }
}

impl Job<'_> {
    /// Applies the chains `documents` describe as their layers arrive, until the main
    /// pass has read the archive. Never fails the import: what it leaves, the plan's
    /// unpack does. False when the first pass gave no documents: the chains are then
    /// found in the stream ([`Job::found_unpack`]).
    pub(super) async fn early_unpack(
        &self,
        documents: tokio::task::JoinHandle<Result<Option<MemArchive>>>,
        stop: &StopOnDrop,
    ) -> bool {
        let mut arrivals = self.arrived.subscribe();
        let documents = tokio::select! {
            d = documents => d,
            // Read whole (or failed) before the first pass was done: nothing to gain.
            r = arrivals.wait_for(|a| a.done) => {
                drop(r);
                stop.0.store(true, Ordering::Relaxed);
                return true;
            }
        };
        let docs = match documents.map_err(|e| anyhow!("reading task: {e}")) {
            Ok(Ok(Some(d))) => d,
            Ok(Ok(None)) => return false,
            Ok(Err(e)) | Err(e) => {
                self.imp.settings.debug(format_args!(
                    "{}: the first pass failed, chains are found as read: {e:#}",
                    self.file
                ));
                return false;
            }
        };
        let chains = match oci_chains(&docs, &self.imp.opts).await {
            Some(chains) => chains,
            None => docker_chains(&docs),
        };
        drop(docs);
        if !chains.is_empty() {
            self.phase(&format!("{} chain(s) known ahead", chains.len()));
        }
        let before_end = AtomicUsize::new(0);
        futures::future::join_all(chains.iter().map(|c| self.early_chain(c, &before_end))).await;
        self.layers_before_end(&before_end);
        true
    }

    /// Applies each chain the stream's documents complete ([`Finder`]) as its layers
    /// arrive, until the main pass has read the archive and the chains found are done.
    pub(super) async fn found_unpack(&self) {
        let mut arrivals = self.arrived.subscribe();
        let mut finder = Finder::new(&self.imp.opts.platforms);
        let before_end = AtomicUsize::new(0);
        let mut running = FuturesUnordered::new();
        let mut read = false;
        while !read || !running.is_empty() {
            tokio::select! {
                r = arrivals.wait_for(|a| a.done || !a.docs.is_empty()), if !read => {
                    // (The reference is dropped before the value is changed.)
                    read = r.map(|_| ()).is_err();
                    // Taken without waking the chains: they wait for layers.
                    let mut docs = vec![];
                    self.arrived.send_if_modified(|a| {
                        docs = std::mem::take(&mut a.docs);
                        read |= a.done;
                        false
                    });
                    for c in docs.iter().flat_map(|d| finder.add(d)) {
                        let before_end = &before_end;
                        running.push(async move { self.early_chain(&c, before_end).await });
                    }
                }
                Some(()) = running.next(), if !running.is_empty() => {}
            }
        }
        if finder.found_any() {
            self.layers_before_end(&before_end);
        }
    }

    fn layers_before_end(&self, before_end: &AtomicUsize) {
        self.imp.settings.debug(format_args!(
            "{}: {} layer(s) unpacked before the archive's end",
            self.file,
            before_end.load(Ordering::Relaxed)
        ));
    }

    /// Applies one chain's layers as they arrive. An error stops the chain, never the
    /// import: the plan's unpack applies the rest, or reports the error itself.
    async fn early_chain(&self, c: &EarlyChain, before_end: &AtomicUsize) {
        if let Err(e) = self.try_early_chain(c, before_end).await {
            self.imp.settings.debug(format_args!(
                "{}: early unpack stopped, the plan's unpack goes on: {e:#}",
                self.file
            ));
        }
    }

    async fn try_early_chain(&self, c: &EarlyChain, before_end: &AtomicUsize) -> Result<()> {
        let Some(snapshotter) = &self.imp.snapshotter else {
            return Ok(());
        };
        let chains = chain_ids(&c.diff_ids);
        let mut arrivals = self.arrived.subscribe();
        let mut parent: Option<&str> = None;
        for (i, wanted) in c.layers.iter().enumerate() {
            // The reference is dropped at once: the main pass waits while it is held.
            let arrived = arrived(
                wanted,
                &*arrivals
                    .wait_for(|a| a.done || arrived(wanted, a).is_some())
                    .await
                    .map_err(|_| anyhow!("the import ended"))?,
            )
            .cloned();
            // Once the archive is read whole, the plan's unpack does the rest: a chain
            // the index did not confirm must not take its cores.
            if self.arrived.borrow().done {
                return Ok(());
            }
            let layer = match arrived {
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
