//! CRI client: the runtime and image services of any CRI runtime, returning domain types.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use tonic::transport::Channel;

use crate::model::{ContainerInfo, CriImage, RuntimeVersion, SandboxInfo, SnapshotRef};
use crate::proto::runtime::v1 as cri;
use cri::image_service_client::ImageServiceClient;
use cri::runtime_service_client::RuntimeServiceClient;

/// Connected CRI clients plus the per-call deadline.
#[derive(Clone)]
pub(crate) struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    timeout: Duration,
    pub(crate) runtime_endpoint: String,
    pub(crate) image_endpoint: String,
}

/// Usage of one filesystem as `ImageFsInfo` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FsUsage {
    pub(crate) mountpoint: String,
    pub(crate) used_bytes: u64,
}

impl Cri {
    pub(crate) fn new(
        runtime: Channel,
        image: Channel,
        timeout: Duration,
        runtime_endpoint: String,
        image_endpoint: String,
    ) -> Cri {
        // Image and status lists of big nodes exceed tonic's 4 MiB default.
        let limit = 64 << 20;
        Cri {
            runtime: RuntimeServiceClient::new(runtime).max_decoding_message_size(limit),
            image: ImageServiceClient::new(image).max_decoding_message_size(limit),
            timeout,
            runtime_endpoint,
            image_endpoint,
        }
    }

    /// A failed call as an error that names the socket when the connection failed.
    fn rpc(&self, status: tonic::Status) -> anyhow::Error {
        let socket = if self.image_endpoint == self.runtime_endpoint {
            self.runtime_endpoint.clone()
        } else {
            format!("{} or {}", self.runtime_endpoint, self.image_endpoint)
        };
        anyhow::Error::new(crate::error::RpcError::new(status, "CRI", &socket))
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    pub(crate) async fn version(&self) -> Result<RuntimeVersion> {
        let v = self
            .runtime
            .clone()
            .version(self.req(cri::VersionRequest {
                version: "v1".into(),
            }))
            .await
            .map_err(|s| self.rpc(s))
            .context("CRI Version")?
            .into_inner();
        Ok(RuntimeVersion {
            runtime_name: v.runtime_name,
            runtime_version: v.runtime_version,
            runtime_api_version: v.runtime_api_version,
        })
    }

    pub(crate) async fn list_images(&self) -> Result<Vec<CriImage>> {
        let resp = self
            .image
            .clone()
            .list_images(self.req(cri::ListImagesRequest { filter: None }))
            .await
            .map_err(|s| self.rpc(s))
            .context("CRI ListImages")?
            .into_inner();
        Ok(resp.images.into_iter().map(cri_image).collect())
    }

    /// The image ID the runtime resolves a reference to, if it has the image.
    pub(crate) async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        let resp = self
            .image
            .clone()
            .image_status(self.req(cri::ImageStatusRequest {
                image: Some(image_spec(reference)),
                verbose: false,
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("CRI ImageStatus {reference}"))?
            .into_inner();
        Ok(resp.image.map(|i| i.id))
    }

    pub(crate) async fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let resp = self
            .runtime
            .clone()
            .list_containers(self.req(cri::ListContainersRequest { filter: None }))
            .await
            .map_err(|s| self.rpc(s))
            .context("CRI ListContainers")?
            .into_inner();
        let mut containers: Vec<ContainerInfo> = resp
            .containers
            .into_iter()
            .map(|c| ContainerInfo {
                name: c.metadata.map(|m| m.name).unwrap_or_default(),
                image: c.image.map(|i| i.image).unwrap_or_default(),
                image_ref: c.image_ref,
                state: cri::ContainerState::try_from(c.state)
                    .map(|s| s.as_str_name().to_string())
                    .unwrap_or_else(|_| c.state.to_string()),
                pod_sandbox_id: c.pod_sandbox_id,
                id: c.id,
                image_volumes: Vec::new(),
            })
            .collect();
        // `ListContainers` does not carry mounts: one status call per container for the
        // images it mounts as volumes.
        let volumes = super::per_item(containers.iter().map(|c| self.image_volumes(&c.id))).await;
        for (c, v) in containers.iter_mut().zip(volumes) {
            c.image_volumes = v;
        }
        Ok(containers)
    }

    /// The images a container mounts as volumes (`ContainerStatus` mounts that carry an
    /// image). Empty when the runtime has none or the container is gone.
    async fn image_volumes(&self, id: &str) -> Vec<String> {
        let Ok(resp) = self
            .runtime
            .clone()
            .container_status(self.req(cri::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            }))
            .await
        else {
            return Vec::new();
        };
        resp.into_inner()
            .status
            .map(|s| s.mounts)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.image.map(|i| i.image))
            .filter(|i| !i.is_empty())
            .collect()
    }

    /// Every pod sandbox in any state, with the image each runs when the runtime says.
    pub(crate) async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        let resp = self
            .runtime
            .clone()
            .list_pod_sandbox(self.req(cri::ListPodSandboxRequest { filter: None }))
            .await
            .map_err(|s| self.rpc(s))
            .context("CRI ListPodSandbox")?
            .into_inner();
        let mut sandboxes: Vec<SandboxInfo> = resp
            .items
            .into_iter()
            .map(|s| {
                let meta = s.metadata.unwrap_or_default();
                SandboxInfo {
                    state: cri::PodSandboxState::try_from(s.state)
                        .map(|st| st.as_str_name().to_string())
                        .unwrap_or_else(|_| s.state.to_string()),
                    id: s.id,
                    name: meta.name,
                    namespace: meta.namespace,
                    ..SandboxInfo::default()
                }
            })
            .collect();
        let infos = super::per_item(sandboxes.iter().map(|s| self.sandbox_info(&s.id))).await;
        for (s, info) in sandboxes.iter_mut().zip(infos) {
            s.image = sandbox_image_from_info(&info);
            s.root = sandbox_root_from_info(&info);
        }
        Ok(sandboxes)
    }

    /// A sandbox's `PodSandboxStatus` verbose info (containerd: the image it was made
    /// from, its root snapshot). Empty when the runtime says nothing or the sandbox is gone.
    async fn sandbox_info(&self, id: &str) -> HashMap<String, String> {
        self.runtime
            .clone()
            .pod_sandbox_status(self.req(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: true,
            }))
            .await
            .map(|r| r.into_inner().info)
            .unwrap_or_default()
    }

    /// The runtime's configured sandbox image (containerd: `Status` verbose info,
    /// `config.sandboxImage`).
    pub(crate) async fn configured_sandbox_image(&self) -> Result<Option<String>> {
        Ok(configured_sandbox_image_from_info(
            &self.status_info().await?,
        ))
    }

    /// The runtime's verbose `Status` info: runtime-specific JSON documents by key.
    pub(crate) async fn status_info(&self) -> Result<HashMap<String, String>> {
        Ok(self
            .runtime
            .clone()
            .status(self.req(cri::StatusRequest { verbose: true }))
            .await
            .map_err(|s| self.rpc(s))
            .context("CRI Status")?
            .into_inner()
            .info)
    }

    pub(crate) async fn remove_image(&self, id: &str) -> Result<()> {
        self.image
            .clone()
            .remove_image(self.req(cri::RemoveImageRequest {
                image: Some(image_spec(id)),
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("CRI RemoveImage {id}"))?;
        Ok(())
    }

    pub(crate) async fn image_fs_info(&self) -> Result<Vec<FsUsage>> {
        let resp = self
            .image
            .clone()
            .image_fs_info(self.req(cri::ImageFsInfoRequest {}))
            .await
            .map_err(|s| self.rpc(s))
            .context("CRI ImageFsInfo")?
            .into_inner();
        Ok(resp
            .image_filesystems
            .into_iter()
            .map(|f| FsUsage {
                mountpoint: f.fs_id.map(|i| i.mountpoint).unwrap_or_default(),
                used_bytes: f.used_bytes.map(|u| u.value).unwrap_or_default(),
            })
            .collect())
    }
}

fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

fn cri_image(i: cri::Image) -> CriImage {
    CriImage {
        id: i.id,
        repo_tags: i.repo_tags,
        repo_digests: i.repo_digests,
        size: i.size,
        pinned: i.pinned,
    }
}

/// Finds the sandbox image in verbose sandbox status info: a JSON document under `info`
/// with an `image` field (containerd), or a top-level `image` key.
pub(crate) fn sandbox_image_from_info(info: &HashMap<String, String>) -> Option<String> {
    if let Some(doc) = info.get("info")
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(doc)
        && let Some(image) = v.get("image").and_then(|i| i.as_str())
        && !image.is_empty()
    {
        return Some(image.to_string());
    }
    info.get("image").filter(|s| !s.is_empty()).cloned()
}

/// Finds a sandbox's root snapshot in verbose sandbox status info: containerd's
/// `snapshotter` and `snapshotKey` in the JSON document under `info`.
pub(crate) fn sandbox_root_from_info(info: &HashMap<String, String>) -> Option<SnapshotRef> {
    let v: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some(SnapshotRef {
        snapshotter: field("snapshotter")?,
        key: field("snapshotKey")?,
    })
}

/// Finds the configured sandbox image in verbose runtime status info.
pub(crate) fn configured_sandbox_image_from_info(info: &HashMap<String, String>) -> Option<String> {
    let doc = info.get("config")?;
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    v.get("sandboxImage")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Used by `crimg import`: image lists pulled through CRI, and the runtime's snapshotter.
impl Cri {
    /// Pulls an image; returns the image reference the runtime reports (its ID on
    /// containerd). No deadline: a pull takes as long as it takes.
    pub(crate) async fn pull_image(&self, reference: &str) -> Result<String> {
        let resp = self
            .image
            .clone()
            .pull_image(tonic::Request::new(cri::PullImageRequest {
                image: Some(image_spec(reference)),
                ..Default::default()
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("CRI PullImage {reference}"))?
            .into_inner();
        Ok(resp.image_ref)
    }

    /// The snapshotter the runtime unpacks into (containerd: `Status` verbose info,
    /// `config.containerd.snapshotter`); `None` when it does not say.
    pub(crate) async fn snapshotter(&self) -> Result<Option<String>> {
        Ok(snapshotter_from_info(&self.status_info().await?))
    }
}

/// Finds the snapshotter in verbose runtime status info.
pub(crate) fn snapshotter_from_info(info: &HashMap<String, String>) -> Option<String> {
    let doc = info.get("config")?;
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    v.get("containerd")?
        .get("snapshotter")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing() {
        let info = HashMap::from([(
            "info".to_string(),
            r#"{"pid":1,"image":"registry.k8s.io/pause:3.9"}"#.to_string(),
        )]);
        assert_eq!(
            sandbox_image_from_info(&info).as_deref(),
            Some("registry.k8s.io/pause:3.9")
        );
        assert_eq!(sandbox_image_from_info(&HashMap::new()), None);
        assert_eq!(sandbox_root_from_info(&info), None);
        let with_root = HashMap::from([(
            "info".to_string(),
            r#"{"image":"p:1","snapshotKey":"abc","snapshotter":"overlayfs"}"#.to_string(),
        )]);
        assert_eq!(
            sandbox_root_from_info(&with_root),
            Some(SnapshotRef {
                snapshotter: "overlayfs".into(),
                key: "abc".into()
            })
        );
        let status = HashMap::from([(
            "config".to_string(),
            r#"{"sandboxImage":"registry.k8s.io/pause:3.9","x":1}"#.to_string(),
        )]);
        assert_eq!(
            configured_sandbox_image_from_info(&status).as_deref(),
            Some("registry.k8s.io/pause:3.9")
        );
        let bad = HashMap::from([("config".to_string(), "not json".to_string())]);
        assert_eq!(configured_sandbox_image_from_info(&bad), None);
    }
}
