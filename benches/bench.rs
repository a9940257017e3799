//! crimg's benchmark: starts a private containerd (the e2e harness), generates its own
//! data, and times crimg against the reference way of doing the same job on identical
//! data. Prints median, min and max of each row and the ratio to its reference.
//!
//! `cargo bench --bench bench -- [prune] [list] [--runs N] [--images N] [--json FILE]`
//!
//! Run as root on the same kind of machine as the tests (it starts containerd).

#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code, unused_imports, clippy::all)]
mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crimg::proto::runtime::v1 as cri;
use support::Node;

struct Options {
    scenarios: Vec<String>,
    runs: usize,
    images: usize,
    json: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        scenarios: vec![],
        runs: 3,
        images: 500,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--images" => {
                o.images = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--images N")
            }
            "--json" => o.json = args.next(),
            "--bench" => {} // cargo passes this
            s if s.starts_with('-') => {}
            s => o.scenarios.push(s.to_string()),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = vec!["prune".into(), "list".into()];
    }
    o
}

/// One row of results: a name, its samples, and the row it is compared with.
struct Row {
    name: String,
    samples: Vec<Duration>,
    reference: Option<String>,
}

impl Row {
    fn median(&self) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s[s.len() / 2]
    }
}

fn main() {
    let opts = options();
    let mut rows: Vec<Row> = Vec::new();
    for scenario in &opts.scenarios {
        match scenario.as_str() {
            "prune" => prune(&opts, &mut rows),
            "list" => list(&opts, &mut rows),
            other => eprintln!("bench: unknown scenario {other:?} (prune, list)"),
        }
    }
    print_rows(&rows);
    if let Some(path) = &opts.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "median_s": r.median().as_secs_f64(),
                    "samples_s": r.samples.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
                    "reference": r.reference,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).expect("write JSON");
    }
}

fn print_rows(rows: &[Row]) {
    println!(
        "\n{:<58} {:>9} {:>9} {:>9} {:>7}",
        "benchmark", "median", "min", "max", "ratio"
    );
    for r in rows {
        let min = r.samples.iter().min().unwrap();
        let max = r.samples.iter().max().unwrap();
        let ratio = r
            .reference
            .as_ref()
            .and_then(|name| rows.iter().find(|o| &o.name == name))
            .map(|o| {
                format!(
                    "{:.2}x",
                    r.median().as_secs_f64() / o.median().as_secs_f64()
                )
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<58} {:>8.3}s {:>8.3}s {:>8.3}s {:>7}",
            r.name,
            r.median().as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64(),
            ratio
        );
    }
    let _ = std::io::stdout().flush();
}

fn crimg(node: &Node, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = node
        .crimg()
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("run crimg");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "crimg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// `n` tiny single-layer images in one OCI archive, imported (and unpacked) by ctr.
/// Each has its own layer, config and manifest; `seed` makes each call's set distinct.
fn import_tiny_images(node: &Node, n: usize, seed: &str) -> Vec<String> {
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

/// Prune of N unused, unpacked images: crimg against sequential CRI `RemoveImage` calls,
/// which is what `crictl rmi --prune` does (one synchronous removal per image).
fn prune(opts: &Options, rows: &mut Vec<Row>) {
    let n = opts.images;
    let exclude_dir = tempfile::tempdir().unwrap();
    let dir = exclude_dir.path().to_str().unwrap().to_string();
    let mut plan = Row {
        name: format!("crimg prune --dry-run, {n} images (planning)"),
        samples: vec![],
        reference: None,
    };
    let mut ours = Row {
        name: format!("crimg prune, {n} unused unpacked images"),
        samples: vec![],
        reference: Some(format!(
            "sequential CRI RemoveImage (crictl's way), {n} images"
        )),
    };
    let mut theirs = Row {
        name: format!("sequential CRI RemoveImage (crictl's way), {n} images"),
        samples: vec![],
        reference: None,
    };
    let node = Node::start();
    for run in 0..opts.runs {
        eprintln!(
            "bench: prune run {}/{}: importing {n} images",
            run + 1,
            opts.runs
        );
        import_tiny_images(&node, n, &format!("p{run}"));
        plan.samples.push(crimg(
            &node,
            &["prune", "--dry-run", "-q", "--exclude-dir", &dir],
        ));
        ours.samples
            .push(crimg(&node, &["prune", "-q", "--exclude-dir", &dir]));
        assert!(node.cri_images().is_empty(), "crimg prune left images");

        import_tiny_images(&node, n, &format!("c{run}"));
        let ids = node.cri_image_ids();
        theirs.samples.push(timed(|| {
            let client = node.image_client();
            node.block_on(async move {
                for id in ids {
                    let mut c = client.clone();
                    c.remove_image(cri::RemoveImageRequest {
                        image: Some(cri::ImageSpec {
                            image: id,
                            ..Default::default()
                        }),
                    })
                    .await
                    .expect("RemoveImage");
                }
            })
        }));
    }
    rows.extend([plan, ours, theirs]);
}

/// Listing N images: `crimg list -o json` (joins CRI, containerd labels, containers and
/// sandboxes) against `ctr images ls -q` (names only).
fn list(opts: &Options, rows: &mut Vec<Row>) {
    let n = opts.images;
    let node = Node::start();
    eprintln!("bench: list: importing {n} images");
    import_tiny_images(&node, n, "l");
    let mut ours = Row {
        name: format!("crimg list -o json, {n} images"),
        samples: vec![],
        reference: Some(format!("ctr images ls -q, {n} images")),
    };
    let mut theirs = Row {
        name: format!("ctr images ls -q, {n} images"),
        samples: vec![],
        reference: None,
    };
    for _ in 0..opts.runs.max(5) {
        ours.samples.push(crimg(&node, &["list", "-o", "json"]));
        theirs.samples.push(timed(|| {
            let out = Command::new("ctr")
                .args([
                    "--address",
                    node.socket().to_str().unwrap(),
                    "-n",
                    "k8s.io",
                    "images",
                    "ls",
                    "-q",
                ])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(out.success());
        }));
    }
    rows.extend([ours, theirs]);
}
