//! Image fixtures made offline: the static pause binary and small OCI image layouts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::json;
use sha2::{Digest, Sha256};

const PAUSE_SOURCE: &str = include_str!("pause.c");

pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// The static pause binary, compiled once per source version into the target's tmp dir.
/// Parallel test processes may all compile it; each writes a private temp name and renames
/// it into place, so readers only ever see a complete file.
pub fn pause_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crimg-e2e");
        fs::create_dir_all(&dir).expect("create pause cache dir");
        let path = dir.join(format!(
            "pause-{}",
            &hex(&Sha256::digest(PAUSE_SOURCE))[..16]
        ));
        if path.is_file() {
            return path;
        }
        let tmp = tempfile::Builder::new()
            .prefix(".pause-build-")
            .tempdir_in(&dir)
            .expect("create pause build dir");
        let src = tmp.path().join("pause.c");
        let bin = tmp.path().join("pause");
        fs::write(&src, PAUSE_SOURCE).expect("write pause.c");
        let out = Command::new("gcc")
            .args(["-static", "-O2", "-s", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("run gcc (is it installed?)");
        assert!(
            out.status.success(),
            "gcc -static pause.c failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::rename(&bin, &path).expect("move pause binary into place");
        path
    })
    .clone()
}

/// A small single-layer image: `/pause` as entrypoint plus a file whose content comes from
/// the seed, so every fixture has its own layer, config and manifest digests.
pub struct FixtureImage {
    /// Full normalised reference, e.g. `docker.io/library/app-a:1.0`.
    pub name: String,
    seed: String,
    built: OnceLock<Built>,
}

/// The blobs of a fixture and their digests, computed once.
struct Built {
    layer: Blob,
    config: Blob,
    manifest: Blob,
}

struct Blob {
    bytes: Vec<u8>,
    /// `sha256:<hex>`
    digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        let digest = digest(&bytes);
        Blob { bytes, digest }
    }
}

impl FixtureImage {
    /// A fixture whose content is derived from `name`.
    pub fn new(name: &str) -> FixtureImage {
        FixtureImage::with_seed(name, name)
    }

    /// A fixture named `name` with content from `seed`: two fixtures with the same seed
    /// and different names are the same image (same ID) under two tags.
    pub fn with_seed(name: &str, seed: &str) -> FixtureImage {
        FixtureImage {
            name: name.to_owned(),
            seed: seed.to_owned(),
            built: OnceLock::new(),
        }
    }

    /// `sha256:<hex>` of the config blob: the image ID that CRI reports.
    pub fn config_digest(&self) -> String {
        self.built().config.digest.clone()
    }

    /// `sha256:<hex>` of the manifest: the image record's target digest.
    pub fn manifest_digest(&self) -> String {
        self.built().manifest.digest.clone()
    }

    /// `sha256:<hex>` of the (uncompressed) layer, which is also its diff ID.
    pub fn layer_digest(&self) -> String {
        self.built().layer.digest.clone()
    }

    /// Every blob by digest: config, manifest and layer.
    pub fn blobs(&self) -> BTreeMap<String, Vec<u8>> {
        let b = self.built();
        [&b.layer, &b.config, &b.manifest]
            .into_iter()
            .map(|blob| (blob.digest.clone(), blob.bytes.clone()))
            .collect()
    }

    /// The tag part of the name, for `org.opencontainers.image.ref.name`.
    pub fn tag(&self) -> &str {
        let last = self.name.rsplit('/').next().unwrap_or(&self.name);
        match last.split_once(':') {
            Some((_, tag)) => tag,
            None => "latest",
        }
    }

    /// Writes an OCI image layout tar (what `ctr images import` and `skopeo` read).
    pub fn write_oci_tar(&self, path: &Path) {
        let b = self.built();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [{
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": b.manifest.digest,
                "size": b.manifest.bytes.len(),
                "annotations": {
                    "io.containerd.image.name": self.name,
                    "org.opencontainers.image.ref.name": self.tag(),
                },
            }],
        });
        let mut out = tar::Builder::new(fs::File::create(path).expect("create fixture tar"));
        append(
            &mut out,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            0o644,
        );
        append(&mut out, "index.json", &to_json(&index), 0o644);
        for blob in [&b.config, &b.manifest, &b.layer] {
            let hex = blob.digest.trim_start_matches("sha256:");
            append(&mut out, &format!("blobs/sha256/{hex}"), &blob.bytes, 0o644);
        }
        out.into_inner()
            .and_then(|f| f.sync_all())
            .expect("finish fixture tar");
    }

    fn built(&self) -> &Built {
        self.built.get_or_init(|| {
            let mut layer = tar::Builder::new(Vec::new());
            let pause = fs::read(pause_binary()).expect("read pause binary");
            append(&mut layer, "pause", &pause, 0o755);
            let note = format!("crimg e2e fixture, seed {}\n", self.seed);
            append(&mut layer, "etc/crimg-fixture", note.as_bytes(), 0o644);
            let layer = Blob::new(layer.into_inner().expect("finish layer tar"));

            let config = Blob::new(to_json(&json!({
                "architecture": host_arch(),
                "os": "linux",
                "config": {
                    "Entrypoint": ["/pause"],
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    "Labels": { "io.crimg.test.seed": self.seed },
                },
                "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
                "history": [{ "created_by": "crimg e2e fixture" }],
            })));
            let manifest = Blob::new(to_json(&json!({
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_MANIFEST,
                "config": {
                    "mediaType": MEDIA_TYPE_CONFIG,
                    "digest": config.digest,
                    "size": config.bytes.len(),
                },
                "layers": [{
                    "mediaType": MEDIA_TYPE_LAYER,
                    "digest": layer.digest,
                    "size": layer.bytes.len(),
                }],
            })));
            Built {
                layer,
                config,
                manifest,
            }
        })
    }
}

/// The OCI architecture name of this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_json(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialise fixture json")
}

/// Appends a regular file with fixed owner and mtime, so the same input gives the same bytes.
fn append<W: std::io::Write>(out: &mut tar::Builder<W>, path: &str, data: &[u8], mode: u32) {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    out.append_data(&mut header, path, data)
        .expect("append to tar");
}
