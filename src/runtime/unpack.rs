//! Unpacking layers into a snapshotter through containerd's snapshots and diff services,
//! as containerd's own unpacker does: one committed snapshot per chain ID.

use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use tonic::transport::Channel;

use crate::model::Descriptor;
use crate::proto::containerd::services::diff::v1 as diff;
use crate::proto::containerd::services::snapshots::v1 as snapshots;
use crate::proto::containerd::types;
use crate::runtime::containerd::Containerd;

/// What happened to one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpacked {
    Applied,
    /// The snapshot for this chain ID already existed.
    Present,
    /// Another client committed the same chain ID while this one applied it: theirs
    /// serves, this apply was wasted.
    Raced,
}

impl Containerd {
    fn differ(&self) -> diff::diff_client::DiffClient<Channel> {
        diff::diff_client::DiffClient::new(self.channel())
    }

    /// Applies one layer on top of `parent` and commits it as `chain_id`, unless that
    /// snapshot exists. The differ's digest of the uncompressed stream must be `diff_id`.
    pub async fn unpack_layer(
        &self,
        snapshotter: &str,
        parent: Option<&str>,
        chain_id: &str,
        layer: &Descriptor,
        diff_id: &str,
    ) -> Result<Unpacked> {
        if self.snapshot_exists(snapshotter, chain_id).await? {
            return Ok(Unpacked::Present);
        }
        let key = format!(
            "crimg-extract-{}-{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
            chain_id
        );
        let mounts = self
            .snapshots()
            .prepare(self.req(snapshots::PrepareSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.clone(),
                parent: parent.unwrap_or_default().to_string(),
                labels: Default::default(),
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| {
                format!(
                    "preparing a {snapshotter} snapshot for layer {}",
                    layer.digest
                )
            })?
            .into_inner()
            .mounts;
        let result = self
            .apply_and_commit(snapshotter, &key, mounts, chain_id, layer, diff_id)
            .await;
        if result.is_err() {
            let _ = self
                .snapshots()
                .remove(self.req(snapshots::RemoveSnapshotRequest {
                    snapshotter: snapshotter.to_string(),
                    key: key.clone(),
                }))
                .await;
        }
        result
    }

    async fn apply_and_commit(
        &self,
        snapshotter: &str,
        key: &str,
        mounts: Vec<types::Mount>,
        chain_id: &str,
        layer: &Descriptor,
        diff_id: &str,
    ) -> Result<Unpacked> {
        let applied = self
            .differ()
            .apply(self.streaming_req(diff::ApplyRequest {
                diff: Some(super::images::to_proto(layer)),
                mounts,
                ..Default::default()
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("applying layer {}", layer.digest))?
            .into_inner()
            .applied
            .map(|d| d.digest)
            .unwrap_or_default();
        if applied != diff_id {
            bail!(
                "layer {} unpacks to {applied}, but the image config says its diff ID is {diff_id}",
                layer.digest
            );
        }
        match self
            .snapshots()
            .commit(self.req(snapshots::CommitSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                name: chain_id.to_string(),
                key: key.to_string(),
                labels: Default::default(),
            }))
            .await
        {
            Ok(_) => Ok(Unpacked::Applied),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                // Someone else unpacked the same layer meanwhile; theirs serves.
                let _ = self
                    .snapshots()
                    .remove(self.req(snapshots::RemoveSnapshotRequest {
                        snapshotter: snapshotter.to_string(),
                        key: key.to_string(),
                    }))
                    .await;
                Ok(Unpacked::Raced)
            }
            Err(s) => Err(self
                .rpc(s)
                .context(format!("committing snapshot {chain_id}"))),
        }
    }
}
