//! containerd's snapshots service: which snapshots a snapshotter holds.

use anyhow::{Context, Result};
use tonic::transport::Channel;

use crate::proto::containerd::services::snapshots::v1 as snapshots;
use crate::runtime::containerd::Containerd;

impl Containerd {
    pub(super) fn snapshots(&self) -> snapshots::snapshots_client::SnapshotsClient<Channel> {
        snapshots::snapshots_client::SnapshotsClient::new(self.channel())
    }

    /// Whether `key` exists in `snapshotter`.
    pub async fn snapshot_exists(&self, snapshotter: &str, key: &str) -> Result<bool> {
        match self
            .snapshots()
            .stat(self.req(snapshots::StatSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(self
                .rpc(s)
                .context(format!("snapshot Stat {key} ({snapshotter})"))),
        }
    }

    /// Every snapshot name of a snapshotter.
    pub async fn list_snapshots(&self, snapshotter: &str) -> Result<Vec<String>> {
        let mut stream = self
            .snapshots()
            .list(self.streaming_req(snapshots::ListSnapshotsRequest {
                snapshotter: snapshotter.to_string(),
                filters: vec![],
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("listing snapshots of {snapshotter}"))?
            .into_inner();
        let mut names = Vec::new();
        while let Some(msg) = stream.message().await? {
            names.extend(msg.info.into_iter().map(|i| i.name));
        }
        Ok(names)
    }
}
