//! The JSON documents of image archives: OCI's index, manifest, config and descriptors,
//! `oci-layout`, and `docker save`'s manifest.json. Fields crimg does not use are ignored
//! when reading; what is written is exactly what these types hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Descriptor;
use crate::plan::platform::Platform;

/// A descriptor as the documents spell it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct Desc {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<PlatformDoc>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

impl Desc {
    pub(crate) fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct PlatformDoc {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
}

impl PlatformDoc {
    /// The platform, when both OS and architecture are given.
    pub(crate) fn platform(&self) -> Option<Platform> {
        (!self.os.is_empty() && !self.architecture.is_empty())
            .then(|| Platform::new(&self.os, &self.architecture, self.variant.as_deref()))
    }
}

/// An OCI image index (or Docker manifest list).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Index {
    /// Written as given; never read (readers go by the media type and the entries).
    #[serde(rename = "schemaVersion", default, skip_deserializing)]
    pub(crate) schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default)]
    pub(crate) manifests: Vec<Desc>,
}

/// An OCI image manifest (or Docker schema 2 manifest).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: Option<String>,
    pub(crate) config: Desc,
    #[serde(default)]
    pub(crate) layers: Vec<Desc>,
}

/// The parts of an image config crimg reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
    pub(crate) rootfs: RootFs,
}

impl Config {
    pub(crate) fn platform(&self) -> Option<Platform> {
        PlatformDoc {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
        }
        .platform()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub(crate) diff_ids: Vec<String>,
}

/// The `oci-layout` file.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Layout {
    #[serde(rename = "imageLayoutVersion")]
    pub(crate) image_layout_version: &'static str,
}

/// One image of `docker save`'s manifest.json: member paths of its config and layers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct DockerEntry {
    #[serde(rename = "Config")]
    pub(crate) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub(crate) layers: Vec<String>,
}

/// Parses docker save's manifest.json: at least one image.
pub(crate) fn parse_docker_manifest(bytes: &[u8]) -> anyhow::Result<Vec<DockerEntry>> {
    use anyhow::Context as _;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(bytes).context("manifest.json is not docker save's JSON")?;
    if entries.is_empty() {
        anyhow::bail!("manifest.json lists no image");
    }
    Ok(entries)
}
