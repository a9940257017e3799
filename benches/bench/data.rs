//! Data that several scenarios share: tiny images for prune and list, one big
//! single-layer image for import, export, memory and inspect, and the noise and tar
//! helpers the bundle's generator also uses.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{self, Node};

/// `n` tiny single-layer images in one OCI archive, imported (and unpacked) by ctr.
/// Each has its own layer, config and manifest; `seed` makes each call's set distinct.
pub fn import_tiny_images(node: &Node, n: usize, seed: &str) -> Vec<String> {
    let path = node.dir().join(format!("tiny-{seed}.tar"));
    let names = write_tiny_archive(&path, n, seed);
    let out = node.ctr(&["images", "import", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "ctr import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.wait_for("CRI to list the imported images", || {
        node.cri_images().len() >= n
    });
    std::fs::remove_file(&path).ok();
    names
}

fn write_tiny_archive(path: &Path, n: usize, seed: &str) -> Vec<String> {
    fn digest(b: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(b))
    }
    fn add(t: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).unwrap();
    }
    let mut t = tar::Builder::new(std::fs::File::create(path).unwrap());
    add(&mut t, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut manifests = Vec::new();
    let mut names = Vec::new();
    for i in 0..n {
        let mut layer = tar::Builder::new(Vec::new());
        let body = format!("bench image {seed} {i}\n");
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        layer
            .append_data(&mut h, "bench.txt", body.as_bytes())
            .unwrap();
        let layer = layer.into_inner().unwrap();
        let config = serde_json::to_vec(&json!({
            "architecture": support::host_arch(), "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
        }))
        .unwrap();
        for blob in [&layer, &config, &manifest] {
            add(
                &mut t,
                &format!("blobs/sha256/{}", &digest(blob)[7..]),
                blob,
            );
        }
        let name = format!("docker.io/bench/{seed}-{i}:1.0");
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1.0"},
        }));
        names.push(name);
    }
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap();
    add(&mut t, "index.json", &index);
    t.into_inner().unwrap().sync_all().unwrap();
    names
}

/// A deterministic, incompressible byte stream (xorshift64*), so archives are the same
/// size compressed or not and identical across runs.
pub struct Noise(pub u64, pub u64);

impl std::io::Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1 as usize) / 8 * 8;
        let n = if n == 0 {
            (self.1 as usize).min(buf.len())
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        self.1 -= n as u64;
        Ok(n)
    }
}

/// A single-layer image whose layer holds one `mib` MiB incompressible file.
pub struct BigImage {
    pub name: String,
    pub archive: std::path::PathBuf,
    pub layer: std::path::PathBuf,
    pub layer_digest: String,
    pub layer_size: u64,
}

pub fn big_image(dir: &Path, mib: u64) -> BigImage {
    let layer_path = dir.join(format!("layer-{mib}.tar"));
    {
        let mut t = tar::Builder::new(std::io::BufWriter::new(
            std::fs::File::create(&layer_path).unwrap(),
        ));
        let mut h = tar::Header::new_ustar();
        h.set_size(mib << 20);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(
            &mut h,
            "data.bin",
            Noise(0x9e37_79b9_7f4a_7c15 ^ mib, mib << 20),
        )
        .unwrap();
        finish_tar(t);
    }
    let (layer_digest, layer_size) = sha256_file(&layer_path);
    let config = serde_json::to_vec(&json!({
        "architecture": support::host_arch(), "os": "linux",
        "config": {"Entrypoint": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let digest = |b: &[u8]| format!("sha256:{:x}", Sha256::digest(b));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }))
    .unwrap();
    let name = format!("docker.io/bench/big-{mib}m:1.0");
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(&manifest), "size": manifest.len(),
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1.0"},
    }]}))
    .unwrap();
    let archive = dir.join(format!("big-{mib}.tar"));
    let mut t = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(&archive).unwrap(),
    ));
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    add(
        &format!("blobs/sha256/{}", &digest(&manifest)[7..]),
        &manifest,
    );
    add(&format!("blobs/sha256/{}", &digest(&config)[7..]), &config);
    let mut f = std::fs::File::open(&layer_path).unwrap();
    t.append_file(format!("blobs/sha256/{}", &layer_digest[7..]), &mut f)
        .unwrap();
    finish_tar(t);
    BigImage {
        name,
        archive,
        layer: layer_path,
        layer_digest,
        layer_size,
    }
}

pub fn sha256_file(path: &Path) -> (String, u64) {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).unwrap();
    (format!("sha256:{:x}", h.finalize()), n)
}

/// Flushes a tar written to a file and syncs it, so a timed run reads it from the page
/// cache, not a writeback in progress.
pub fn finish_tar(t: tar::Builder<std::io::BufWriter<std::fs::File>>) {
    t.into_inner()
        .unwrap()
        .into_inner()
        .unwrap()
        .sync_all()
        .unwrap();
}
