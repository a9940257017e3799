//! The JSON documents of image archives: OCI's index, manifest, config and descriptors,
//! `oci-layout`, and `docker save`'s manifest.json. Fields crimg does not use are ignored
//! when reading; what is written is exactly what these types hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Descriptor;
use crate::oci::Platform;

/// How deep arrays and objects nest in `bytes` (outside strings), counting only as far
/// as `limit + 1`. Not a validator: the parser that follows finds what else is wrong.
pub(crate) fn json_depth(bytes: &[u8], limit: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return deepest;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Refuses a document nested deeper than [`MAX_JSON_DEPTH`](crate::oci::MAX_JSON_DEPTH).
fn check_depth(bytes: &[u8], what: &str) -> anyhow::Result<()> {
    let limit = crate::oci::MAX_JSON_DEPTH;
    if json_depth(bytes, limit) > limit {
        anyhow::bail!("{what} nests arrays and objects more than {limit} deep; crimg refuses it");
    }
    Ok(())
}

/// Parses one of an image's JSON documents, named `what` in errors, refusing one nested
/// deeper than [`MAX_JSON_DEPTH`](crate::oci::MAX_JSON_DEPTH) first.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> anyhow::Result<T> {
    use anyhow::Context as _;
    check_depth(bytes, what)?;
    serde_json::from_slice(bytes).with_context(|| format!("{what} is not valid JSON of its kind"))
}

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

/// One image for Docker's `manifest.json` as an export plans it: a single platform's
/// config and layers by digest (the archive's writer turns them into member paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerImage {
    pub(crate) config: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) layers: Vec<String>,
}

/// Parses docker save's manifest.json: at least one image.
pub(crate) fn parse_docker_manifest(bytes: &[u8]) -> anyhow::Result<Vec<DockerEntry>> {
    use anyhow::Context as _;
    check_depth(bytes, "manifest.json")?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(bytes).context("manifest.json is not docker save's JSON")?;
    if entries.is_empty() {
        anyhow::bail!("manifest.json lists no image");
    }
    Ok(entries)
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        let cases: [(&str, usize); 7] = [
            ("{}", 1),
            ("1", 0),
            (r#"{"a":[{"b":[]}]}"#, 4),
            (r#"{"a":"[[[[{{{{"}"#, 1),
            (r#"{"a":"\"[[[["}"#, 1),
            (r#"{"a":"\\","b":[[]]}"#, 3),
            ("]]]][", 1),
        ];
        for (doc, want) in cases {
            assert_eq!(json_depth(doc.as_bytes(), 100), want, "{doc}");
        }
    }

    #[test]
    fn deep_documents_are_refused_before_parsing() {
        let limit = crate::oci::MAX_JSON_DEPTH;
        let nest = |n: usize| format!("{{\"x\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(parse_json::<serde_json::Value>(nest(limit).as_bytes(), "config").is_ok());
        let e = parse_json::<serde_json::Value>(nest(limit + 1).as_bytes(), "image config c")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "image config c nests arrays and objects more than {limit} deep; crimg refuses it"
            )
        );
        // Deep in a field crimg skips: still refused (serde skips it at any depth).
        let skipped = format!(r#"{{"rootfs":{{"diff_ids":[]}},"z":{}}}"#, nest(10_000));
        assert!(parse_json::<Config>(skipped.as_bytes(), "config").is_err());
        assert!(serde_json::from_str::<Config>(&skipped).is_ok());
        assert!(parse_docker_manifest(format!("[{}]", nest(limit)).as_bytes()).is_err());
    }
}
