//! The image formats crimg reads and writes: media types, annotation keys, digests and
//! blob paths, platforms, the JSON documents of OCI layouts and `docker save`,
//! compression kinds and containerd's garbage-collection labels. Import and export both speak through these.

pub(crate) mod compression;
pub(crate) mod digest;
pub(crate) mod doc;
pub(crate) mod gc;
pub(crate) mod platform;

pub(crate) use digest::{blob_path, is_digest, is_sha256_hex, sha256_digest};
pub(crate) use platform::Platform;

pub(crate) const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub(crate) const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub(crate) const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The annotation containerd's exporter and importer name images with (a full name).
pub(crate) const ANNOTATION_NAME: &str = "io.containerd.image.name";
/// OCI's reference annotation: a tag (skopeo's `oci-archive:FILE:TAG`), or a whole reference.
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// buildx marks attestation manifests of an index with this annotation.
pub(crate) const ANNOTATION_DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// The largest JSON document (index, manifest, config, manifest.json) read into memory,
/// by import and export alike (the OCI distribution spec lets registries refuse manifests
/// over 4 MiB).
pub(crate) const MAX_JSON: u64 = 16 << 20;

/// The deepest nesting of arrays and objects read in an image's JSON documents. Real
/// documents nest about 5 deep; Go's `encoding/json`, which containerd's CRI parses
/// configs with, stops at 10 000, and crimg's own parser at 128 for the fields it reads
/// (but skips fields it does not use at any depth). A deeper document is refused before
/// anything is written, so an import never stores an image CRI would not list.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// Whether a descriptor's claimed size is one crimg reads into memory as JSON.
pub(crate) fn json_size_ok(size: i64) -> bool {
    u64::try_from(size).is_ok_and(|s| s <= MAX_JSON)
}

pub(crate) fn is_index(mt: &str) -> bool {
    mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST
}

pub(crate) fn is_manifest(mt: &str) -> bool {
    mt == MT_OCI_MANIFEST || mt == MT_DOCKER_MANIFEST
}

pub(crate) fn is_config(mt: &str) -> bool {
    mt == MT_OCI_CONFIG || mt == MT_DOCKER_CONFIG
}

/// Layer media types containerd's differ applies: plain, gzip or zstd tars, Docker's and
/// OCI's names, distributable or not.
pub(crate) fn is_layer(mt: &str) -> bool {
    let base = mt
        .replace(".nondistributable", "")
        .replace(".rootfs.foreign.diff", ".rootfs.diff");
    matches!(
        base.as_str(),
        MT_DOCKER_LAYER
            | MT_DOCKER_LAYER_GZIP
            | MT_OCI_LAYER
            | MT_OCI_LAYER_GZIP
            | MT_OCI_LAYER_ZSTD
    ) || base == format!("{MT_DOCKER_LAYER}.zstd")
}

/// Non-distributable (foreign) layers, which registries and importers fetch from URLs.
pub(crate) fn is_non_distributable(mt: &str) -> bool {
    mt.contains(".nondistributable.") || mt.contains(".foreign.")
}

/// What a blob is to its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Index,
    Manifest,
    Config,
    Layer,
}

/// A compression of a whole archive or of a layer, recognised by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Lz4,
}

impl Compression {
    /// The compression an archive's file name promises: `.tar.gz`/`.tgz` gzip,
    /// `.tar.zst`/`.tzst` zstd; `None` for any other name.
    pub(crate) fn from_file_name(name: &str) -> Option<Compression> {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Compression::Gzip)
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Lz4 => "lz4",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        let layers = [
            MT_DOCKER_LAYER,
            MT_DOCKER_LAYER_GZIP,
            "application/vnd.docker.image.rootfs.diff.tar.zstd",
            MT_OCI_LAYER,
            MT_OCI_LAYER_GZIP,
            MT_OCI_LAYER_ZSTD,
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            // Docker's foreign (Windows base) layers were once taken for `….diff.tar.tar.gzip`.
            "application/vnd.docker.image.rootfs.foreign.diff.tar",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        ];
        for mt in layers {
            assert!(is_layer(mt), "{mt}");
        }
        for mt in [
            MT_OCI_CONFIG,
            MT_DOCKER_MANIFEST,
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "",
        ] {
            assert!(!is_layer(mt), "{mt}");
        }
    }

    #[test]
    fn json_sizes() {
        assert!(json_size_ok(0));
        assert!(json_size_ok(MAX_JSON as i64));
        assert!(!json_size_ok(MAX_JSON as i64 + 1));
        assert!(!json_size_ok(-1));
    }
}
