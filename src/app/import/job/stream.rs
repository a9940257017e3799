//! One archive read as a stream: members stored as they come, the plan made once the
//! index is seen.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use bytes::Bytes;
use sha2::Digest as _;
use tokio::sync::{mpsc, watch as tokio_watch};

use super::super::importer::ImportedImage;
use super::super::sources::{StreamSource, Streamed, collect, first_bytes, with_head};
use super::super::streamed::{self, Body, MemberSink};
use super::early::{Arrived, StopOnDrop};
use crate::archive::read::{DOCUMENT_MAX, DOCUMENTS_TOTAL, Event, HEAD_LEN};
use crate::model::Descriptor;
use crate::oci::sha256_digest;
use crate::plan::import::chains::Doc;
use crate::plan::import::layer_media_type;

use super::{Job, SMALL_BLOB, SMALL_TOTAL, describe};

impl Job<'_> {
    /// One pass over a streamed archive: every blob goes to the store as it comes (the
    /// index may be last), then the plan decides what the images are. Chains are
    /// unpacked while it is read (see `early`): known ahead from a first pass over a
    /// zstd or lz4 `file`, or else found in the stream.
    pub(super) async fn stream(
        &self,
        events: mpsc::Receiver<Result<Event>>,
        file: Option<&Path>,
    ) -> Result<Vec<ImportedImage>> {
        // Set when this ends, however it ends: the first pass stops reading.
        let stop = StopOnDrop::default();
        let early = async {
            if self.imp.snapshotter.is_none() {
                return;
            }
            if let Some(p) = file {
                let (p, flag) = (p.to_path_buf(), stop.0.clone());
                let first = tokio::task::spawn_blocking(move || {
                    crate::archive::read::read_documents(&p, &flag)
                });
                if self.early_unpack(first, &stop).await {
                    // The first pass found the chains: the stream's documents are not
                    // looked at, nor kept for it.
                    self.arrived.send_if_modified(|a| {
                        a.docs = vec![];
                        a.docs_total = DOCUMENTS_TOTAL;
                        false
                    });
                    return;
                }
            }
            self.found_unpack().await;
        };
        let main = async {
            let st = streamed::read_members(events, &mut &*self).await;
            self.arrived.send_modify(|a| a.done = true);
            self.phase("read");
            self.planned_from_stream(st?).await
        };
        // Whatever the head start is still doing when the import is over (it failed, or
        // the plan needed no more) is dropped; the lease takes what it made.
        tokio::pin!(main);
        tokio::pin!(early);
        let mut early_over = false;
        loop {
            tokio::select! {
                r = &mut main => break r,
                () = &mut early, if !early_over => early_over = true,
            }
        }
    }

    /// Stores what the plan of a streamed archive wants that the pass did not store, then
    /// unpacks and records.
    async fn planned_from_stream(&self, st: Streamed) -> Result<Vec<ImportedImage>> {
        let source = StreamSource {
            st: &st,
            c: &self.c,
        };
        let (_, plan) = streamed::plan_streamed(&st.meta, &source, &self.imp.opts).await?;
        self.notes(&plan);
        let sizes = streamed::sizes_by_digest(&st.mem);
        for b in &plan.blobs {
            if let Some(bytes) = plan.generated.get(&b.desc.digest) {
                self.store_bytes(&b.desc, &b.labels, bytes).await?;
            } else if st.stored.contains(&b.desc.digest) {
                streamed::member_holds(&plan, b, &sizes)?;
                self.label(&b.desc.digest, &b.labels).await?;
            } else if let Some(bytes) = st.mem.small.get(&b.desc.digest) {
                // A small member (docker's config or an empty layer) kept in memory.
                self.store_bytes(&b.desc, &b.labels, bytes).await?;
            } else if !self.present(&b.desc.digest, &b.labels).await? {
                bail!("{} is missing from the archive", describe(&plan, b));
            }
        }
        let (tx, ready) =
            tokio_watch::channel(plan.blobs.iter().map(|b| b.desc.digest.clone()).collect());
        self.phase("written");
        let snapshots = self.unpack(&plan, ready).await;
        drop(tx);
        self.phase("unpacked");
        self.finish(&plan, snapshots?).await
    }
}

/// Import's use of a streamed member: into the content store under the job's lease.
impl MemberSink for &Job<'_> {
    async fn blob(
        &mut self,
        st: &mut Streamed,
        path: &str,
        digest: String,
        size: u64,
        body: Body,
    ) -> Result<()> {
        let desc = Descriptor {
            media_type: String::new(),
            digest: digest.clone(),
            size: size as i64,
        };
        let head;
        if size <= SMALL_BLOB {
            let bytes = collect(body, size).await?;
            let actual = sha256_digest(sha2::Sha256::new_with_prefix(&bytes));
            if actual != digest {
                bail!(
                    "content has digest {actual}, not the {digest} its name says (corrupt archive?)"
                );
            }
            head = bytes[..bytes.len().min(HEAD_LEN)].to_vec();
            self.store_bytes(&desc, &BTreeMap::new(), &bytes).await?;
            self.document(&digest, &bytes, true);
            if st.small_total + size <= SMALL_TOTAL {
                st.small_total += size;
                st.mem.small.insert(digest.clone(), bytes);
            }
        } else if self.present(&digest, &BTreeMap::new()).await? {
            // Already stored: skip its bytes (the reader drops them).
            head = first_bytes(body).await?;
        } else {
            let (h, reader) = with_head(body).await?;
            head = h;
            let written = &self.written;
            self.c
                .write_blob(&desc, &BTreeMap::new(), reader, |n| {
                    written.fetch_add(n, Ordering::Relaxed);
                })
                .await?;
        }
        self.arrives(path, &digest, size, &head, None);
        st.stored_member(path, digest, size, head);
        Ok(())
    }

    /// A `docker save` member is kept by the digest of its bytes (`<id>/layer.tar`,
    /// `<hex>.tar`, a link to either): small ones in memory (stored later if the plan
    /// names them), the rest in the store under the lease.
    async fn other(&mut self, st: &mut Streamed, path: &str, size: u64, body: Body) -> Result<()> {
        if size <= SMALL_BLOB && st.small_total + size <= SMALL_TOTAL {
            let bytes = collect(body, size).await?;
            st.small_total += size;
            let digest = st.mem.add_member(path, bytes.clone(), HEAD_LEN);
            self.document(&digest, &bytes, false);
            let head = &bytes[..bytes.len().min(HEAD_LEN)];
            self.arrives(path, &digest, size, head, Some(bytes.clone()));
            return Ok(());
        }
        // The digest is learnt by writing it.
        let (head, reader) = with_head(body).await?;
        let written = &self.written;
        let digest = self
            .c
            .write_blob_unknown(size as i64, &BTreeMap::new(), reader, |n| {
                written.fetch_add(n, Ordering::Relaxed);
            })
            .await?;
        self.c.lease_content(&self.lease, &digest).await?;
        self.arrives(path, &digest, size, &head, None);
        st.stored_member(path, digest, size, head);
        Ok(())
    }
}

impl Job<'_> {
    /// A member read: an early chain may be waiting for it, if it is a layer (by its
    /// first bytes). `kept`: its bytes, held in memory instead of stored.
    fn arrives(&self, path: &str, digest: &str, size: u64, head: &[u8], kept: Option<Bytes>) {
        let Ok(media_type) = layer_media_type(head) else {
            return;
        };
        let desc = Descriptor {
            media_type: media_type.into(),
            digest: digest.to_string(),
            size: size as i64,
        };
        let arrived = match kept {
            Some(bytes) => Arrived::Small(desc, bytes),
            None => Arrived::Stored(desc),
        };
        self.arrived.send_modify(|a| {
            a.paths.insert(digest.to_string(), path.to_string());
            a.members.insert(path.to_string(), arrived);
        });
    }

    /// A small member read whole: if it is a JSON document, the chains found in the
    /// stream may start with it. `blob`: read as an OCI blob.
    fn document(&self, digest: &str, bytes: &Bytes, blob: bool) {
        let size = bytes.len() as u64;
        if self.imp.snapshotter.is_none() || size > DOCUMENT_MAX || bytes.first() != Some(&b'{') {
            return;
        }
        self.arrived.send_if_modified(|a| {
            if a.docs_total + size > DOCUMENTS_TOTAL {
                return false;
            }
            a.docs_total += size;
            a.docs.push(Doc {
                digest: digest.to_string(),
                bytes: bytes.clone(),
                blob,
            });
            true
        });
    }
}
