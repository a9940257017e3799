//! Image archives made offline from fixtures, for `crimg import`: OCI layouts, both
//! `docker save` layouts, multi-platform indexes, every compression, and broken ones;
//! and for `crimg export`, where its archives go and what a tar holds.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;

use super::fixtures::{
    FixtureImage, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST,
    digest, host_arch,
};
use super::node::Node;

/// Members of an archive, in order.
pub type Members = Vec<(String, Vec<u8>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Lz4,
}

impl Compress {
    pub const ALL: [Compress; 5] = [
        Compress::None,
        Compress::Gzip,
        Compress::Zstd,
        Compress::Bzip2,
        Compress::Lz4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Compress::None => "none",
            Compress::Gzip => "gzip",
            Compress::Zstd => "zstd",
            Compress::Bzip2 => "bzip2",
            Compress::Lz4 => "lz4",
        }
    }

    /// A misleading file suffix: never the one that matches.
    pub fn wrong_suffix(self) -> &'static str {
        match self {
            Compress::None => ".tar.gz",
            Compress::Gzip => ".tar.zst",
            Compress::Zstd => ".tar.gz",
            Compress::Bzip2 => ".tar.lz4",
            Compress::Lz4 => ".tar",
        }
    }
}

pub fn compress(kind: Compress, data: &[u8]) -> Vec<u8> {
    match kind {
        Compress::None => data.to_vec(),
        Compress::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compress::Zstd => zstd::encode_all(data, 1).unwrap(),
        Compress::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compress::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

fn to_json(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn blob(image: &FixtureImage, digest: &str) -> Vec<u8> {
    image.blobs().remove(digest).expect("fixture blob")
}

fn blob_member(d: &str, bytes: Vec<u8>) -> (String, Vec<u8>) {
    (
        format!("blobs/sha256/{}", d.trim_start_matches("sha256:")),
        bytes,
    )
}

fn manifest_desc(image: &FixtureImage, annotations: serde_json::Value) -> serde_json::Value {
    let m = blob(image, &image.manifest_digest());
    json!({
        "mediaType": MEDIA_TYPE_MANIFEST,
        "digest": image.manifest_digest(),
        "size": m.len(),
        "annotations": annotations,
    })
}

/// An OCI image layout of several images, named by `io.containerd.image.name`. With
/// `index_last`, index.json comes after the blobs, as a streaming reader least likes.
pub fn oci_layout(images: &[&FixtureImage], index_last: bool) -> Members {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": images.iter().map(|i| manifest_desc(i, json!({
            "io.containerd.image.name": i.name,
            "org.opencontainers.image.ref.name": i.tag(),
        }))).collect::<Vec<_>>(),
    });
    let mut out: Members = vec![(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    if !index_last {
        out.push(("index.json".into(), to_json(&index)));
    }
    for i in images {
        for (d, bytes) in i.blobs() {
            out.push(blob_member(&d, bytes));
        }
    }
    if index_last {
        out.push(("index.json".into(), to_json(&index)));
    }
    out
}

/// An OCI layout whose index names the image by a bare tag only.
pub fn oci_bare_tag(image: &FixtureImage, tag: &str) -> Members {
    let index = json!({
        "schemaVersion": 2,
        "manifests": [manifest_desc(image, json!({"org.opencontainers.image.ref.name": tag}))],
    });
    let mut out: Members = vec![("index.json".into(), to_json(&index))];
    out.extend(image.blobs().into_iter().map(|(d, b)| blob_member(&d, b)));
    out
}

/// `docker save` before docker 25: `<id>.json`, `<layer id>/layer.tar`, manifest.json last.
pub fn docker_legacy(image: &FixtureImage) -> Members {
    let config = blob(image, &image.config_digest());
    let layer = blob(image, &image.layer_digest());
    let config_file = format!(
        "{}.json",
        image.config_digest().trim_start_matches("sha256:")
    );
    let layer_id = digest(format!("v1 id of {}", image.name).as_bytes());
    let layer_id = layer_id.trim_start_matches("sha256:");
    let manifest = json!([{
        "Config": config_file,
        "RepoTags": [image.name],
        "Layers": [format!("{layer_id}/layer.tar")],
    }]);
    vec![
        (config_file.clone(), config),
        (format!("{layer_id}/VERSION"), b"1.0".to_vec()),
        (format!("{layer_id}/json"), br#"{"id":"x"}"#.to_vec()),
        (format!("{layer_id}/layer.tar"), layer),
        ("repositories".into(), b"{}".to_vec()),
        ("manifest.json".into(), to_json(&manifest)),
    ]
}

/// `docker save` before docker 25 of one image of several uncompressed `layers`:
/// `<layer id>/layer.tar` members first, then the config, then manifest.json. Returns the
/// members and the image ID.
pub fn docker_legacy_layered(name: &str, entrypoint: &str, layers: &[&[u8]]) -> (Members, String) {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = to_json(&json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Entrypoint": [entrypoint]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }));
    let id = digest(&config);
    let config_file = format!("{}.json", id.trim_start_matches("sha256:"));
    let mut members = Members::new();
    let mut paths = vec![];
    for (i, l) in layers.iter().enumerate() {
        let layer_id = digest(format!("v1 id {i} of {name}").as_bytes());
        let path = format!("{}/layer.tar", layer_id.trim_start_matches("sha256:"));
        members.push((path.clone(), l.to_vec()));
        paths.push(path);
    }
    let manifest = json!([{"Config": config_file, "RepoTags": [name], "Layers": paths}]);
    members.push((config_file, config));
    members.push(("manifest.json".into(), to_json(&manifest)));
    (members, id)
}

/// `docker save` of docker 25+: an OCI layout whose index has no names, and a
/// manifest.json pointing into blobs/sha256 with the tags.
pub fn docker_oci(image: &FixtureImage) -> Members {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [manifest_desc(image, json!({}))],
    });
    let manifest = json!([{
        "Config": format!("blobs/sha256/{}", image.config_digest().trim_start_matches("sha256:")),
        "RepoTags": [image.name],
        "Layers": [format!("blobs/sha256/{}", image.layer_digest().trim_start_matches("sha256:"))],
    }]);
    let mut out: Members = vec![(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    out.extend(image.blobs().into_iter().map(|(d, b)| blob_member(&d, b)));
    out.push(("index.json".into(), to_json(&index)));
    out.push(("manifest.json".into(), to_json(&manifest)));
    out
}

/// The architecture that is not this host's.
pub fn foreign_arch() -> &'static str {
    if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// A multi-platform image: an index with the host's manifest (from `image`) and a
/// foreign one made here. Returns the members and the foreign layer's digest; with
/// `foreign_layer` false that layer is left out of the archive.
pub fn multi_arch(image: &FixtureImage, foreign_layer: bool) -> (Members, String) {
    let mut layer = tar::Builder::new(Vec::new());
    let note = format!("foreign layer of {}\n", image.name);
    let mut h = tar::Header::new_ustar();
    h.set_size(note.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    layer
        .append_data(&mut h, "etc/foreign", note.as_bytes())
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let layer_digest = digest(&layer);
    let config = to_json(&json!({
        "architecture": foreign_arch(), "os": "linux",
        "config": {"Entrypoint": ["/pause"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }));
    let config_digest = digest(&config);
    let manifest = to_json(&json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": MEDIA_TYPE_LAYER, "digest": layer_digest, "size": layer.len()}],
    }));
    let manifest_digest = digest(&manifest);
    let host_manifest = blob(image, &image.manifest_digest());
    let index_blob = to_json(&json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [
            {"mediaType": MEDIA_TYPE_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
             "platform": {"os": "linux", "architecture": foreign_arch()}},
            {"mediaType": MEDIA_TYPE_MANIFEST, "digest": image.manifest_digest(), "size": host_manifest.len(),
             "platform": {"os": "linux", "architecture": host_arch()}},
        ],
    }));
    let index_digest = digest(&index_blob);
    let index = json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [{"mediaType": MEDIA_TYPE_INDEX, "digest": index_digest, "size": index_blob.len(),
            "annotations": {"io.containerd.image.name": image.name}}],
    });
    let mut out: Members = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), to_json(&index)),
        blob_member(&index_digest, index_blob),
        blob_member(&manifest_digest, manifest),
        blob_member(&config_digest, config),
    ];
    if foreign_layer {
        out.push(blob_member(&layer_digest, layer));
    }
    out.extend(image.blobs().into_iter().map(|(d, b)| blob_member(&d, b)));
    (out, layer_digest)
}

/// A tar of the members (fixed owner and mtime). Paths are written raw, so unsafe
/// ones (`../x`, `/x`) can be made too.
pub fn tar(members: &Members) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (path, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        let name = &mut h.as_old_mut().name;
        assert!(path.len() < name.len(), "fixture path too long: {path}");
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        out.append(&h, &data[..]).unwrap();
    }
    out.into_inner().unwrap()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The byte offset of `needle` in `hay` (to flip a bit inside a given blob).
pub fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in archive")
}

/// A layer tar holding one file `entry` of `mib` MiB that no compressor can shrink: 1 MiB of
/// xorshift noise from `seed`, repeated with a counter, so repeats are 1 MiB apart, far
/// beyond any compressor's window, and cheap to make.
pub fn noise_layer(seed: u64, mib: usize, entry: &str) -> Vec<u8> {
    const MIB: usize = 1 << 20;
    let mut noise = vec![0u8; MIB];
    let mut x = seed;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let mut data = Vec::with_capacity(mib * MIB);
    for i in 0..mib as u64 {
        let at = data.len();
        data.extend_from_slice(&noise);
        data[at..at + 8].copy_from_slice(&i.to_le_bytes());
    }
    let mut layer = tar::Builder::new(Vec::with_capacity(data.len() + 4096));
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    layer.append_data(&mut h, entry, &data[..]).unwrap();
    layer.into_inner().unwrap()
}

/// Writes an OCI archive of image `name` to `path`: the given uncompressed `layers` in
/// order (each layer's digest is also its diff ID) and `entrypoint`, for the host's
/// platform. The members go straight to the file, so large layers are not copied again.
/// Returns the image ID (its config's digest).
pub fn write_layered_oci(path: &Path, name: &str, entrypoint: &str, layers: &[&[u8]]) -> String {
    let digests: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Entrypoint": [entrypoint]},
        "rootfs": {"type": "layers", "diff_ids": digests},
    }))
    .unwrap();
    let layer_descs: Vec<_> = layers
        .iter()
        .zip(&digests)
        .map(|(l, d)| json!({"mediaType": MEDIA_TYPE_LAYER, "digest": d, "size": l.len()}))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": digest(&config), "size": config.len()},
        "layers": layer_descs,
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [{"mediaType": MEDIA_TYPE_MANIFEST,
                       "digest": digest(&manifest), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": name}}],
    }))
    .unwrap();
    let blob = |b: &[u8]| format!("blobs/sha256/{}", digest(b).trim_start_matches("sha256:"));
    let mut members: Vec<(String, &[u8])> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json".into(), &index),
        (blob(&manifest), &manifest),
        (blob(&config), &config),
    ];
    members.extend(layers.iter().map(|l| (blob(l), *l)));
    let mut out = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(path).unwrap(),
    ));
    for (p, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        out.append_data(&mut h, p, data).unwrap();
    }
    out.into_inner()
        .unwrap()
        .into_inner()
        .unwrap()
        .sync_all()
        .unwrap();
    digest(&config)
}

/// Every entry of a tar: path and bytes, in order.
pub fn tar_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .expect("archive is a tar")
        .map(|e| {
            let mut e = e.expect("tar entry");
            let path = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data)
        })
        .collect()
}

/// A ~200 MiB single-layer OCI archive of data gzip cannot shrink (an uncompressed tar,
/// so crimg reads it at will). Returns its image name.
pub fn big_archive(path: &Path) -> String {
    let layer = noise_layer(0x9e37_79b9_7f4a_7c15, 200, "big");
    let name = "docker.io/library/big:1";
    write_layered_oci(path, name, "/big", &[&layer]);
    name.to_string()
}

/// A directory for the archives crimg exports, under the node's dir (created).
pub fn export_dir(node: &Node) -> std::path::PathBuf {
    let d = node.dir().join("out");
    std::fs::create_dir_all(&d).unwrap();
    d
}
