//! One archive read as a stream: members stored as they come, the plan made once the
//! index is seen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use sha2::Digest as _;
use tokio::sync::{mpsc, watch as tokio_watch};

use super::super::importer::ImportedImage;
use super::super::sources::{StreamSource, Streamed, collect, first_bytes, with_head};
use crate::archive::paths::{self, Member};
use crate::archive::read::{Event, HEAD_LEN};
use crate::model::Descriptor;
use crate::oci::MAX_JSON;
use crate::plan::import::{self as import_plan};
use crate::runtime::content::sha256_digest;

use super::{Job, SMALL_BLOB, SMALL_TOTAL, describe};

impl Job<'_> {
    /// One pass over a streamed archive: every blob goes to the store as it comes (the
    /// index may be last), then the plan decides what the images are.
    pub(super) async fn stream(
        &self,
        mut rx: mpsc::Receiver<Result<Event>>,
    ) -> Result<Vec<ImportedImage>> {
        let mut st = Streamed::default();
        let mut seen = HashSet::new();
        while let Some(event) = rx.recv().await {
            let event = event?;
            event.check_once(&mut seen)?;
            match event {
                Event::Link { path, target } => {
                    st.mem.links.insert(path, target);
                }
                Event::File { path, size, body } => self
                    .stream_member(&mut st, &path, size, body)
                    .await
                    .with_context(|| path.clone())?,
            }
        }
        drop(rx);
        let source = StreamSource {
            st: &st,
            c: &self.c,
        };
        let plan = if let Some(index) = st.meta.get("index.json") {
            import_plan::plan_oci(
                index,
                st.meta.get("manifest.json").map(|b| &b[..]),
                &source,
                &self.imp.opts,
            )
            .await?
        } else if let Some(manifest) = st.meta.get("manifest.json") {
            import_plan::plan_docker(manifest, &source, &self.imp.opts).await?
        } else {
            bail!(
                "no index.json (OCI layout) or manifest.json (docker save) in the archive: not an image archive"
            )
        };
        self.notes(&plan);
        // Member sizes by digest, looked up once per blob (not a scan: 10 000 layers).
        let sizes: HashMap<&str, i64> = st
            .mem
            .members
            .values()
            .map(|m| (m.digest.as_str(), m.size))
            .collect();
        for b in &plan.blobs {
            if let Some(bytes) = plan.generated.get(&b.desc.digest) {
                self.store_bytes(&b.desc, &b.labels, bytes).await?;
            } else if st.stored.contains(&b.desc.digest) {
                // The digest matched, but the descriptor's size must match too.
                if let Some(&size) = sizes.get(b.desc.digest.as_str())
                    && size != b.desc.size
                {
                    bail!(
                        "{} holds {} bytes, but its descriptor says {}",
                        describe(&plan, b),
                        size,
                        b.desc.size
                    );
                }
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

    pub(super) async fn stream_member(
        &self,
        st: &mut Streamed,
        path: &str,
        size: u64,
        body: mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> Result<()> {
        match paths::classify(path)? {
            Member::Blob(digest) => {
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
                st.stored_member(path, digest, size, head);
            }
            Member::Index | Member::DockerManifest => {
                if size > MAX_JSON {
                    bail!("{size} bytes, too large for a JSON document");
                }
                st.meta.insert(path.to_string(), collect(body, size).await?);
            }
            Member::Marker => {}
            Member::Other => self.stream_other(st, path, size, body).await?,
        }
        Ok(())
    }

    /// Any other member: a docker archive's config or layer is whatever path manifest.json
    /// names (`<id>/layer.tar`, `<hex>.tar`, a link to either), and manifest.json may come
    /// after it, so every such member is kept by the digest of its bytes: small ones in
    /// memory (stored later if the plan names them), the rest in the store under the lease.
    pub(super) async fn stream_other(
        &self,
        st: &mut Streamed,
        path: &str,
        size: u64,
        body: mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> Result<()> {
        if size <= SMALL_BLOB && st.small_total + size <= SMALL_TOTAL {
            let bytes = collect(body, size).await?;
            st.small_total += size;
            st.mem.add_member(path, bytes, HEAD_LEN);
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
        st.stored_member(path, digest, size, head);
        Ok(())
    }
}
