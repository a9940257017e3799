//! The import plan of a `docker save` archive with no OCI index: a Docker manifest made
//! for each entry of its manifest.json, from the members it names.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::{
    Plan, PlanOptions, PlannedImage, PlannedManifest, Source, digest_reference, parse,
    parse_docker_manifest,
};
use crate::model::Descriptor;
use crate::oci::doc::Config;
use crate::oci::sha256_digest;
use crate::oci::{
    Compression, MT_DOCKER_CONFIG, MT_DOCKER_LAYER, MT_DOCKER_LAYER_GZIP, MT_DOCKER_MANIFEST,
    MT_OCI_LAYER_ZSTD,
};

/// The media type of a `docker save` layer, from its first bytes; an error (to follow the
/// layer's name) for what containerd cannot apply.
pub(crate) fn layer_media_type(head: &[u8]) -> Result<&'static str, String> {
    match crate::oci::compression::detect(head) {
        Ok(Compression::None) => Ok(MT_DOCKER_LAYER),
        Ok(Compression::Gzip) => Ok(MT_DOCKER_LAYER_GZIP),
        Ok(Compression::Zstd) => Ok(MT_OCI_LAYER_ZSTD),
        Ok(c) => Err(format!(
            " is {}-compressed, which containerd cannot apply",
            c.name()
        )),
        Err(u) => Err(format!(": {u}")),
    }
}

/// Plans a `docker save` archive without an OCI index: one Docker manifest is made for
/// each entry of manifest.json, from the members it names.
pub(crate) async fn plan_docker<S: Source>(
    manifest_json: &[u8],
    source: &S,
    opts: &PlanOptions,
) -> Result<Plan> {
    let entries = parse_docker_manifest(manifest_json)?;
    let mut plan = Plan::default();
    for (n, e) in entries.iter().enumerate() {
        let what = format!("manifest.json entry {}", n + 1);
        let config_bytes = match source.member(&e.config) {
            Some(m) => source.blob(&m.digest).await,
            None => source.small_file(&e.config).await,
        }
        .with_context(|| format!("{what}: config {}", e.config))?;
        let config_digest = sha256_digest(Sha256::new_with_prefix(&config_bytes));
        let config: Config = parse(&config_bytes, &format!("{what}: config {}", e.config))?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            bail!(
                "{what} has {} layers but its config {} lists {} diff IDs",
                e.layers.len(),
                e.config,
                config.rootfs.diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for l in &e.layers {
            let m = source
                .member(l)
                .ok_or_else(|| anyhow!("{what}: layer {l} is missing from the archive"))?;
            let media_type =
                layer_media_type(&m.head).map_err(|e| anyhow!("{what}: layer {l}{e}"))?;
            layers.push(Descriptor {
                media_type: media_type.into(),
                digest: m.digest,
                size: m.size,
            });
        }
        let config_desc = Descriptor {
            media_type: MT_DOCKER_CONFIG.into(),
            digest: config_digest.clone(),
            size: config_bytes.len() as i64,
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_DOCKER_MANIFEST,
            "config": {"mediaType": config_desc.media_type, "digest": config_desc.digest, "size": config_desc.size},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.size,
            })).collect::<Vec<_>>(),
        });
        let manifest_bytes = Bytes::from(serde_json::to_vec(&manifest)?);
        let manifest_desc = Descriptor {
            media_type: MT_DOCKER_MANIFEST.into(),
            digest: sha256_digest(Sha256::new_with_prefix(&manifest_bytes)),
            size: manifest_bytes.len() as i64,
        };
        plan.generated
            .insert(manifest_desc.digest.clone(), manifest_bytes);
        if source.member(&e.config).is_none() {
            // A legacy config that was not stored while streaming: store it from memory.
            plan.generated
                .insert(config_digest.clone(), config_bytes.clone());
        }
        plan.add_manifest(
            manifest_desc.clone(),
            config_desc.clone(),
            &layers,
            &config.rootfs.diff_ids,
        );
        let mut names = Vec::new();
        for t in e.repo_tags.iter().flatten() {
            let name = crate::reference::normalize(t).map_err(|err| anyhow!("{what}: {err}"))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.is_empty() {
            names.push(
                digest_reference(opts.base_name.as_deref(), &manifest_desc.digest)
                    .map_err(|err| anyhow!(err))?,
            );
        }
        plan.add_image(PlannedImage {
            names,
            id: config_digest.clone(),
            manifests: vec![PlannedManifest {
                digest: manifest_desc.digest.clone(),
                platform: config.platform(),
                config: config_desc,
                layers,
                diff_ids: config.rootfs.diff_ids,
                unpack: true,
            }],
            target: manifest_desc,
        });
    }
    Ok(plan)
}
