//! containerd's snapshots service: which snapshots a snapshotter holds.

use anyhow::Result;
use tonic::transport::Channel;

use crate::proto::containerd::services::snapshots::v1 as snapshots;
use crate::runtime::containerd::Containerd;

impl Containerd {
    pub(super) fn snapshots(&self) -> snapshots::snapshots_client::SnapshotsClient<Channel> {
        snapshots::snapshots_client::SnapshotsClient::new(self.channel())
    }

    /// The parent of snapshot `key` in `snapshotter` (for a container's root: the chain ID
    /// of its image's top layer); `None` when the snapshot is gone or has none.
    pub(crate) async fn snapshot_parent(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .stat_snapshot(snapshotter, key)
            .await?
            .map(|i| i.parent)
            .filter(|p| !p.is_empty()))
    }

    /// Whether `key` exists in `snapshotter`.
    pub(crate) async fn snapshot_exists(&self, snapshotter: &str, key: &str) -> Result<bool> {
        Ok(self.stat_snapshot(snapshotter, key).await?.is_some())
    }

    /// Snapshots.Stat; `None` when there is no such snapshot.
    async fn stat_snapshot(&self, snapshotter: &str, key: &str) -> Result<Option<snapshots::Info>> {
        match self
            .snapshots()
            .stat(self.req(snapshots::StatSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().info),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(self
                .rpc(s)
                .context(format!("snapshot Stat {key} ({snapshotter})"))),
        }
    }
}
