//! crimg's benchmark: starts a private containerd (the e2e harness), generates its own
//! data, and times crimg against the reference way of doing the same job on identical
//! data. Prints median, min and max of each row and the ratio to its reference.
//!
//! `cargo bench --bench bench -- [prune] [list] [import] [export] [memory] [inspect] [bundle]
//!  [bundle-raw] [bundle-dir] [--runs N] [--images N] [--mib N] [--json FILE]`
//!
//! `cargo bench --bench bench -- bundle-files --out DIR [--raw]` only writes the bundle scenario's
//! archives (`bundle-MIB.tar`, `bundle-MIB.tar.zst`) for other tools, such as
//! `scripts/profile-containerd.sh`.
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

/// The benchmark's options (`cargo bench --bench bench -- [SCENARIO…] [OPTIONS]`).
#[derive(clap::Parser)]
#[command(
    name = "bench",
    about = "times crimg beside the reference way on identical data"
)]
struct Options {
    /// Scenarios to run [default: import export list prune memory inspect bundle bundle-raw]
    #[arg(value_parser = [
        "import", "export", "list", "prune", "memory", "inspect", "bundle", "bundle-raw",
        "bundle-dir", "bundle-files",
    ])]
    scenarios: Vec<String>,
    /// Runs of each row: the median is shown, with min and max
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Images for list and prune
    #[arg(long, default_value_t = 500)]
    images: usize,
    /// Layer size for import and export, and the bundle's size, MiB
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Also write the rows to this JSON file
    #[arg(long)]
    json: Option<String>,
    /// Where `bundle-files` writes the bundle
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// `bundle-files` writes `bundle-raw`'s uncompressed layers
    #[arg(long)]
    raw: bool,
    /// What `cargo bench` passes
    #[arg(long = "bench", hide = true)]
    _bench: bool,
}

fn options() -> Options {
    let mut o = <Options as clap::Parser>::parse();
    if o.scenarios.is_empty() {
        o.scenarios = [
            "import",
            "export",
            "list",
            "prune",
            "memory",
            "inspect",
            "bundle",
            "bundle-raw",
        ]
        .map(String::from)
        .to_vec();
    }
    o
}

/// One row of results: a name, its samples, and the row it is compared with.
struct Row {
    name: String,
    samples: Vec<Duration>,
    reference: Option<String>,
    /// A quantity that is not a time (peak memory), printed instead of seconds.
    value: Option<String>,
}

impl Row {
    fn new(name: impl Into<String>, reference: Option<String>) -> Row {
        Row {
            name: name.into(),
            samples: vec![],
            reference,
            value: None,
        }
    }
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
            "import" => import(&opts, &mut rows),
            "export" => export(&opts, &mut rows),
            "memory" => memory(&opts, &mut rows),
            "inspect" => inspect(&opts, &mut rows),
            "bundle" => bundle_scenario(&opts, &mut rows, true),
            "bundle-raw" => bundle_scenario(&opts, &mut rows, false),
            "bundle-dir" => bundle_dir_scenario(&opts, &mut rows),
            // Not timed: the bundle scenario's data for other tools, e.g.
            // `scripts/profile-containerd.sh 0 DIR/bundle-256.tar`.
            "bundle-files" => {
                let dir = opts.out.as_deref().expect("bundle-files needs --out DIR");
                std::fs::create_dir_all(dir).expect("create --out DIR");
                let b = bundle(dir, opts.mib, true, !opts.raw);
                let split = b.split.as_deref().unwrap_or(dir);
                println!(
                    "{}\n{}\n{}",
                    b.tar.display(),
                    b.zst.display(),
                    split.display()
                );
            }
            other => {
                eprintln!(
                    "bench: unknown scenario {other:?} (import, export, list, prune, memory, inspect, bundle, bundle-raw, bundle-dir, bundle-files)"
                )
            }
        }
    }
    print_rows(&rows);
    if let Some(path) = &opts.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|r| {
                if let Some(v) = &r.value {
                    return json!({ "name": r.name, "value": v });
                }
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
        if let Some(v) = &r.value {
            println!("{:<58} {v:>9}", r.name);
            continue;
        }
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
    let mut plan = Row::new(
        format!("crimg prune --dry-run, {n} images (planning)"),
        None,
    );
    let mut ours = Row::new(
        format!("crimg prune, {n} unused unpacked images"),
        Some(format!(
            "sequential CRI RemoveImage (crictl's way), {n} images"
        )),
    );
    let mut theirs = Row::new(
        format!("sequential CRI RemoveImage (crictl's way), {n} images"),
        None,
    );
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
    let mut ours = Row::new(
        format!("crimg list -o json, {n} images"),
        Some(format!("ctr images ls -q, {n} images")),
    );
    let mut theirs = Row::new(format!("ctr images ls -q, {n} images"), None);
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

/// A deterministic, incompressible byte stream (xorshift64*), so archives are the same
/// size compressed or not and identical across runs.
struct Noise(u64, u64);

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
struct BigImage {
    name: String,
    archive: std::path::PathBuf,
    layer: std::path::PathBuf,
    layer_digest: String,
    layer_size: u64,
}

fn big_image(dir: &Path, mib: u64) -> BigImage {
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

fn sha256_file(path: &Path) -> (String, u64) {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).unwrap();
    (format!("sha256:{:x}", h.finalize()), n)
}

fn ctr(node: &Node, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = node.ctr(args);
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// `crimg inspect` with no runtime: a full verification of the `mib` MiB archive against
/// `sha256sum` of the same file (target: within 1.3x), and `--no-verify` on a 1 GiB plain
/// tar (target: under 0.1 s: headers only).
fn inspect(opts: &Options, rows: &mut Vec<Row>) {
    let mib = opts.mib;
    let work = tempfile::tempdir_in(std::env::var("CARGO_TARGET_TMPDIR").unwrap_or("/tmp".into()))
        .unwrap();
    eprintln!("bench: inspect: generating a {mib} MiB archive and a 1 GiB one");
    let big = big_image(work.path(), mib);
    std::fs::remove_file(&big.layer).ok();
    let sum_name = format!("sha256sum of the {mib} MiB archive");
    let mut ours = Row::new(
        format!("crimg inspect (verify), {mib} MiB archive"),
        Some(sum_name.clone()),
    );
    let mut sum = Row::new(sum_name, None);
    let run_crimg = |args: &[&str]| {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_crimg"))
            .args(args)
            .stdout(Stdio::null())
            .output()
            .expect("run crimg");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "crimg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    let file = big.archive.to_str().unwrap();
    for _ in 0..opts.runs {
        ours.samples.push(run_crimg(&["inspect", "-q", file]));
        sum.samples.push(timed(|| {
            let out = Command::new("sha256sum").arg(file).output().unwrap();
            assert!(out.status.success());
        }));
    }
    std::fs::remove_file(&big.archive).ok();
    let gib = big_image(work.path(), 1024);
    std::fs::remove_file(&gib.layer).ok();
    let mut quick = Row::new("crimg inspect --no-verify, 1 GiB plain tar", None);
    for _ in 0..opts.runs {
        quick.samples.push(run_crimg(&[
            "inspect",
            "-q",
            "--no-verify",
            gib.archive.to_str().unwrap(),
        ]));
    }
    rows.extend([ours, sum, quick]);
}

/// The machine's own limits on the same bytes: sha256 and a plain file copy.
fn limits(big: &BigImage, rows: &mut Vec<Row>, runs: usize) {
    let mib = big.layer_size >> 20;
    let mut hash = Row::new(
        format!("sha256 of the {mib} MiB layer (this machine)"),
        None,
    );
    let mut copy = Row::new(
        format!("plain copy of the {mib} MiB layer (read + write)"),
        None,
    );
    for _ in 0..runs {
        hash.samples.push(timed(|| {
            sha256_file(&big.layer);
        }));
        let out = big.layer.with_extension("copy");
        copy.samples.push(timed(|| {
            let mut src = std::fs::File::open(&big.layer).unwrap();
            let mut dst = std::fs::File::create(&out).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut src, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                std::io::Write::write_all(&mut dst, &buf[..n]).unwrap();
            }
        }));
        std::fs::remove_file(&out).ok();
    }
    rows.extend([hash, copy]);
}

/// Import of one large single-layer archive with unpack, each run into a fresh
/// containerd: crimg, `ctr images import`, and containerd's floor (one content Write of
/// the layer plus one unpack of it, with nothing else).
fn import(opts: &Options, rows: &mut Vec<Row>) {
    let mib = opts.mib;
    let work = tempfile::tempdir_in(std::env::var("CARGO_TARGET_TMPDIR").unwrap_or("/tmp".into()))
        .unwrap();
    eprintln!("bench: import: generating a {mib} MiB archive");
    let big = big_image(work.path(), mib);
    let ctr_name = format!("ctr images import, {mib} MiB single layer, unpack");
    let floor_name = format!("containerd floor: content Write + unpack, {mib} MiB");
    let mut ours = Row::new(
        format!("crimg import, {mib} MiB single layer, unpack"),
        Some(ctr_name.clone()),
    );
    let mut vs_floor = Row::new(
        format!("crimg import vs containerd floor, {mib} MiB"),
        Some(floor_name.clone()),
    );
    let mut theirs = Row::new(ctr_name, None);
    let mut floor = Row::new(floor_name, None);
    let mut floor_write = Row::new(format!("  of which content Write, {mib} MiB"), None);
    let mut floor_unpack = Row::new(format!("  of which unpack (diff Apply), {mib} MiB"), None);
    let file = big.archive.to_str().unwrap();
    for run in 0..opts.runs {
        eprintln!("bench: import run {}/{}", run + 1, opts.runs);
        let node = Node::start();
        theirs.samples.push(ctr(&node, &["images", "import", file]));
        drop(node);
        let node = Node::start();
        let t = crimg(&node, &["import", "-q", file]);
        ours.samples.push(t);
        vs_floor.samples.push(t);
        drop(node);
        let node = Node::start();
        let (write, unpack) = import_floor(&node, &big);
        floor.samples.push(write + unpack);
        floor_write.samples.push(write);
        floor_unpack.samples.push(unpack);
    }
    rows.extend([ours, theirs, vs_floor, floor, floor_write, floor_unpack]);
    limits(&big, rows, opts.runs);
}

/// containerd's floor for one layer: (content Write, unpack through the diff service).
fn import_floor(node: &Node, big: &BigImage) -> (Duration, Duration) {
    use crimg::model::Descriptor;
    let socket = node.socket().display().to_string();
    let layer = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: big.layer_digest.clone(),
        size: big.layer_size as i64,
    };
    node.block_on(async {
        let c = crimg::runtime::connect::connect_containerd(
            &[socket],
            "k8s.io",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let lease = c
            .create_lease("bench", Duration::from_secs(3600))
            .await
            .unwrap();
        let c = c.with_lease(&lease).unwrap();
        let start = Instant::now();
        let f = tokio::fs::File::open(&big.layer).await.unwrap();
        c.write_blob(&layer, &Default::default(), f, |_| {})
            .await
            .unwrap();
        let written = start.elapsed();
        c.unpack_layer(
            "overlayfs",
            None,
            &big.layer_digest,
            &layer,
            &big.layer_digest,
        )
        .await
        .unwrap();
        (written, start.elapsed() - written)
    })
}

/// Export of one large image: crimg against `ctr images export`, same image, same disk.
fn export(opts: &Options, rows: &mut Vec<Row>) {
    let mib = opts.mib;
    let work = tempfile::tempdir_in(std::env::var("CARGO_TARGET_TMPDIR").unwrap_or("/tmp".into()))
        .unwrap();
    eprintln!("bench: export: generating and importing a {mib} MiB image");
    let big = big_image(work.path(), mib);
    let node = Node::start();
    ctr(&node, &["images", "import", big.archive.to_str().unwrap()]);
    let ctr_name = format!("ctr images export, {mib} MiB image");
    let mut ours = Row::new(
        format!("crimg export, {mib} MiB image"),
        Some(ctr_name.clone()),
    );
    let mut theirs = Row::new(ctr_name, None);
    let out = work.path().join("out.tar");
    let out_s = out.to_str().unwrap();
    for run in 0..opts.runs {
        eprintln!("bench: export run {}/{}", run + 1, opts.runs);
        theirs
            .samples
            .push(ctr(&node, &["images", "export", out_s, &big.name]));
        std::fs::remove_file(&out).ok();
        ours.samples
            .push(crimg(&node, &["export", "-q", "-O", out_s, &big.name]));
        std::fs::remove_file(&out).ok();
    }
    rows.extend([ours, theirs]);
}

/// Peak resident memory of crimg import and export of a 1 GiB image (and a small one,
/// to show it does not grow with size), measured by GNU time.
fn memory(opts: &Options, rows: &mut Vec<Row>) {
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("bench: memory needs GNU time (apt-get install time); skipped");
        return;
    }
    let _ = opts;
    let work = tempfile::tempdir_in(std::env::var("CARGO_TARGET_TMPDIR").unwrap_or("/tmp".into()))
        .unwrap();
    for mib in [64, 1024] {
        eprintln!("bench: memory: {mib} MiB image");
        let big = big_image(work.path(), mib);
        let node = Node::start();
        let peak = |args: &[&str]| -> String {
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M"])
                .arg(env!("CARGO_BIN_EXE_crimg"))
                .args(["--runtime-endpoint", &node.endpoint(), "-q"])
                .args(args)
                .stdout(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "crimg {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let kib: u64 = String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            format!("{:.1} MiB", kib as f64 / 1024.0)
        };
        let import = peak(&["import", big.archive.to_str().unwrap()]);
        let exported = work.path().join("mem-out.tar");
        let export = peak(&["export", "-O", exported.to_str().unwrap(), &big.name]);
        std::fs::remove_file(&exported).ok();
        rows.push(Row {
            value: Some(import),
            ..Row::new(format!("peak RSS, crimg import of a {mib} MiB image"), None)
        });
        rows.push(Row {
            value: Some(export),
            ..Row::new(format!("peak RSS, crimg export of a {mib} MiB image"), None)
        });
        std::fs::remove_file(&big.archive).ok();
        std::fs::remove_file(&big.layer).ok();
    }
}

/// A `Write` that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        len: 0,
    }
}

/// Compressible file contents: hex text of a noise stream, 64 characters a line (gzip
/// leaves a little over half of it, like binaries and libraries do).
struct HexText(Noise, Vec<u8>, usize);

impl std::io::Read for HexText {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.2 == self.1.len() {
            let mut raw = [0u8; 32];
            let n = std::io::Read::read(&mut self.0, &mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            self.1.clear();
            for b in &raw[..n] {
                write!(self.1, "{b:02x}").unwrap();
            }
            self.1.push(b'\n');
            self.2 = 0;
        }
        let n = buf.len().min(self.1.len() - self.2);
        buf[..n].copy_from_slice(&self.1[self.2..self.2 + n]);
        self.2 += n;
        Ok(n)
    }
}

/// One layer of a generated bundle: a tree of 256 KiB text files, gzip-compressed or, as
/// `docker save` writes its layers, not.
struct GzLayer {
    path: std::path::PathBuf,
    digest: String,
    diff_id: String,
    size: u64,
    unpacked: u64,
}

fn gz_layer(dir: &Path, seed: u64, kib: u64, gzip: bool) -> GzLayer {
    let path = dir.join(format!("layer-{seed}.tar{}", if gzip { ".gz" } else { "" }));
    let file = hashing(std::io::BufWriter::new(
        std::fs::File::create(&path).unwrap(),
    ));
    if !gzip {
        let mut t = tar::Builder::new(file);
        layer_tree(&mut t, seed, kib);
        let file = t.into_inner().unwrap();
        let (digest, size) = (format!("sha256:{:x}", file.hash.finalize()), file.len);
        file.inner.into_inner().unwrap().sync_all().unwrap();
        return GzLayer {
            path,
            diff_id: digest.clone(),
            digest,
            size,
            unpacked: size,
        };
    }
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut t = tar::Builder::new(hashing(gz));
    layer_tree(&mut t, seed, kib);
    let inner = t.into_inner().unwrap();
    let (diff_id, unpacked) = (format!("sha256:{:x}", inner.hash.finalize()), inner.len);
    let file = inner.inner.finish().unwrap();
    let (digest, size) = (format!("sha256:{:x}", file.hash.finalize()), file.len);
    file.inner.into_inner().unwrap().sync_all().unwrap();
    GzLayer {
        path,
        digest,
        diff_id,
        size,
        unpacked,
    }
}

/// A layer's files: about `kib` KiB of text in 256 KiB files.
fn layer_tree<W: std::io::Write>(t: &mut tar::Builder<W>, seed: u64, kib: u64) {
    const FILE_KIB: u64 = 256;
    let files = (kib / FILE_KIB).max(1);
    for i in 0..files {
        // 33 bytes of text per 32 of noise.
        let len = FILE_KIB << 10;
        let mut h = tar::Header::new_gnu();
        h.set_size(len);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        let noise = Noise(seed.wrapping_mul(0x9e37_79b9) ^ (i + 1), len * 32 / 33 + 64);
        let body = std::io::Read::take(HexText(noise, Vec::new(), 0), len);
        t.append_data(
            &mut h,
            format!("opt/layer{seed}/d{:02}/f{i:04}.txt", i / 32),
            body,
        )
        .unwrap();
    }
}

/// Flushes a tar written to a file and syncs it, so a timed run reads it from the page
/// cache, not a writeback in progress.
fn finish_tar(t: tar::Builder<std::io::BufWriter<std::fs::File>>) {
    t.into_inner()
        .unwrap()
        .into_inner()
        .unwrap()
        .sync_all()
        .unwrap();
}

/// A tar member: its name, and a file to copy or the bytes themselves.
type Member = (String, Option<std::path::PathBuf>, Vec<u8>);

/// Writes `members` as a tar at `path`.
fn write_tar(path: &Path, members: &[Member]) {
    let mut t = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(path).unwrap(),
    ));
    for (name, file, data) in members {
        if let Some(file) = file {
            let mut f = std::fs::File::open(file).unwrap();
            t.append_file(name, &mut f).unwrap();
        } else {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, &data[..]).unwrap();
        }
    }
    finish_tar(t);
}

/// A K3s-like air-gap bundle in `docker save` layout, plain and zstd-compressed.
struct Bundle {
    tar: std::path::PathBuf,
    zst: std::path::PathBuf,
    /// One archive per image, with `split`.
    split: Option<std::path::PathBuf>,
    images: usize,
    layers: usize,
    compressed: u64,
    unpacked: u64,
}

/// `images` images of 4 gzip layers each: one of two base layers (each shared by half the
/// images), one of five runtime layers (each shared by two images), and two layers of
/// their own; about `mib` MiB unpacked in all. Layers, then configs, then `manifest.json`
/// and `repositories` last, as `docker save` writes them.
///
/// With `split`, also a directory of one `docker save` archive per image (shared layers in
/// each archive that uses them), as a K3s images directory often holds.
fn bundle(dir: &Path, mib: u64, split: bool, gzip: bool) -> Bundle {
    let images = 10usize;
    let kib = mib << 10;
    let mut made: std::collections::BTreeMap<u64, GzLayer> = Default::default();
    let mut members: Vec<Member> = vec![];
    let mut manifest = vec![];
    let mut repositories = serde_json::Map::new();
    let mut emitted = std::collections::HashSet::new();
    let split_dir = dir.join(format!("split-{mib}"));
    if split {
        std::fs::create_dir_all(&split_dir).unwrap();
    }
    for n in 0..images as u64 {
        let mut own: Vec<Member> = vec![];
        let stack = [
            (1 + n % 2, kib / 10),
            (10 + n % 5, kib / 20),
            (100 + 2 * n, kib * 3 / 100),
            (101 + 2 * n, kib * 3 / 100),
        ];
        let mut diff_ids = vec![];
        let mut paths = vec![];
        for (seed, size) in stack {
            let l = made
                .entry(seed)
                .or_insert_with(|| gz_layer(dir, seed + (mib << 8), size, gzip));
            let (digest, diff_id) = (l.digest.clone(), l.diff_id.clone());
            let path = format!("{}/layer.tar", &digest[7..]);
            if emitted.insert(digest) {
                members.push((path.clone(), Some(l.path.clone()), vec![]));
            }
            own.push((path.clone(), Some(l.path.clone()), vec![]));
            diff_ids.push(diff_id);
            paths.push(path);
        }
        let config = serde_json::to_vec(&json!({
            "architecture": support::host_arch(), "os": "linux",
            "config": {"Entrypoint": ["/bin/true"], "Labels": {"bench.image": n.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_name = format!("{:x}.json", Sha256::digest(&config));
        own.push((config_name.clone(), None, config.clone()));
        members.push((config_name.clone(), None, config));
        let repo = format!("bench/app-{n}");
        let entry =
            json!({"Config": config_name, "RepoTags": [format!("{repo}:1.0")], "Layers": paths});
        if split {
            own.push((
                "manifest.json".into(),
                None,
                serde_json::to_vec(&[&entry]).unwrap(),
            ));
            write_tar(&split_dir.join(format!("app-{n}.tar")), &own);
        }
        manifest.push(entry);
        repositories.insert(
            repo,
            json!({"1.0": paths.last().unwrap().trim_end_matches("/layer.tar")}),
        );
    }
    members.push((
        "manifest.json".into(),
        None,
        serde_json::to_vec(&manifest).unwrap(),
    ));
    members.push((
        "repositories".into(),
        None,
        serde_json::to_vec(&repositories).unwrap(),
    ));
    let raw = if gzip { "" } else { "-raw" };
    let tar_path = dir.join(format!("bundle-{mib}{raw}.tar"));
    write_tar(&tar_path, &members);
    let zst = dir.join(format!("bundle-{mib}{raw}.tar.zst"));
    let ok = Command::new("zstd")
        .args(["-q", "-f", "-3", "-T0"])
        .arg(&tar_path)
        .arg("-o")
        .arg(&zst)
        .status()
        .expect("run zstd");
    assert!(ok.success(), "zstd failed");
    let b = Bundle {
        tar: tar_path,
        zst,
        split: split.then_some(split_dir),
        images,
        layers: made.len(),
        compressed: made.values().map(|l| l.size).sum(),
        unpacked: made.values().map(|l| l.unpacked).sum(),
    };
    for l in made.values() {
        std::fs::remove_file(&l.path).ok();
    }
    b
}

/// A process's user + system CPU time so far, its own and that of the children it has
/// waited for (containerd decompresses gzip layers in `unpigz` processes when unpigz is
/// installed), from `/proc/<pid>/stat`.
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 to 17 of stat(5) (utime, stime, cutime, cstime), counted from the state
    // (field 3).
    let ticks: u64 = f[11..15].iter().map(|v| v.parse::<u64>().unwrap()).sum();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

/// What one client run took: wall time, the client's own CPU (user + system, from its
/// rusage as GNU time reports it after wait4), its peak RSS, and containerd's CPU.
struct Measured {
    wall: Duration,
    client_cpu: Duration,
    peak_kib: u64,
    containerd_cpu: Duration,
    /// Time the hypervisor gave this machine's cores to others during the run (all
    /// cores, `steal` of /proc/stat): on a shared host the floor is that much less
    /// reachable.
    steal: Duration,
    /// CPU the machine spent on anything else meanwhile (all cores' busy time less the
    /// client's and containerd's): another process or the kernel taking a core the floor
    /// counts as the import's.
    other: Duration,
}

impl Measured {
    /// Everything both processes did, spread over every core: no import can be faster.
    fn floor(&self) -> Duration {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        (self.client_cpu + self.containerd_cpu) / cores
    }
}

/// Runs `cmd` under GNU time on `node`, measuring what it and containerd spent.
fn measured(node: &Node, cmd: &Command) -> Measured {
    let report = node.dir().join("time.out");
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-o")
        .arg(&report)
        .args(["-f", "%U %S %M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    copy_env(cmd, &mut wrapped);
    let pid = node.containerd_pid().expect("containerd running");
    let before = proc_cpu(pid);
    let cpu_before = machine_cpu();
    let start = Instant::now();
    let out = wrapped.output().expect("run /usr/bin/time");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let containerd_cpu = proc_cpu(pid) - before;
    let cpu_after = machine_cpu();
    let steal = cpu_after.steal.saturating_sub(cpu_before.steal);
    let busy = cpu_after.busy.saturating_sub(cpu_before.busy);
    let text = std::fs::read_to_string(&report).unwrap();
    let f: Vec<f64> = text
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let client_cpu = Duration::from_secs_f64(f[0] + f[1]);
    Measured {
        wall,
        client_cpu,
        peak_kib: f[2] as u64,
        containerd_cpu,
        steal,
        other: busy.saturating_sub(client_cpu + containerd_cpu),
    }
}

/// The machine's CPU time so far, all cores, from /proc/stat's `cpu` line (clock ticks,
/// `getconf CLK_TCK`).
struct MachineCpu {
    /// user, nice, system, irq and softirq.
    busy: Duration,
    /// steal: time the hypervisor gave to others.
    steal: Duration,
}

fn machine_cpu() -> MachineCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu = stat.lines().next().unwrap();
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let time = |t: u64| Duration::from_millis(t * 1000 / clock_ticks());
    MachineCpu {
        busy: time(at(0) + at(1) + at(2) + at(5) + at(6)),
        steal: time(at(7)),
    }
}

/// Clock ticks a second, as /proc counts CPU time.
/// Asked once: a `getconf` run between two samples would count as other CPU.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        String::from_utf8(
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap_or(100)
    })
}

fn ctr_command(node: &Node, archive: &Path, zst: bool) -> Command {
    let mut cmd = Command::new("sh");
    let ctr = format!(
        "ctr --address '{}' --namespace k8s.io images import",
        node.socket().display(),
    );
    let script = if zst {
        format!("zstd -dc '{}' | {ctr} -", archive.display())
    } else {
        format!("{ctr} '{}'", archive.display())
    };
    cmd.args(["-c", &script])
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .env_remove("CONTAINERD_SNAPSHOTTER");
    cmd
}

fn crimg_import_command(node: &Node, archive: &Path) -> Command {
    let mut cmd = node.crimg();
    cmd.args(["import", "-q"]).arg(archive);
    cmd
}

/// `zstd -dc ARCHIVE | crimg import -`, as `ctr_command` pipes it into ctr.
fn crimg_stdin_command(node: &Node, archive: &Path) -> Command {
    let c = node.crimg();
    let script = format!(
        "zstd -dc '{}' | {} import -q -",
        archive.display(),
        shell_words(&c)
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    copy_env(&c, &mut cmd);
    cmd
}

/// `cmd`'s program and arguments, each single-quoted, for a shell script.
fn shell_words(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Gives `to` the environment changes `from` makes (set and removed variables).
fn copy_env(from: &Command, to: &mut Command) {
    for (k, v) in from.get_envs() {
        match v {
            Some(v) => to.env(k, v),
            None => to.env_remove(k),
        };
    }
}

/// A scratch directory for a bundle scenario, or `None` (said) when a tool it runs is
/// missing.
fn bundle_workdir(scenario: &str, tools: &[&str]) -> Option<tempfile::TempDir> {
    if let Some(missing) = tools.iter().find(|t| !Path::new(t).exists()) {
        eprintln!("bench: {scenario} needs {missing}; skipped");
        return None;
    }
    let dir = std::env::var("CARGO_TARGET_TMPDIR").unwrap_or("/tmp".into());
    Some(tempfile::tempdir_in(dir).unwrap())
}

/// An air-gap bundle (`docker save` of many multi-layer images, shared bases): crimg
/// against ctr on the plain tar and on the `.tar.zst`, each run into a fresh containerd,
/// with the CPU floor of every run; then a 1 GiB bundle's times and crimg's peak memory.
/// With `gzip` false (`bundle-raw`), the layers are stored uncompressed, as `docker save`
/// itself writes them, and only the 256 MiB bundle is run.
fn bundle_scenario(opts: &Options, rows: &mut Vec<Row>, gzip: bool) {
    let tag = if gzip { "bundle" } else { "raw bundle" };
    let Some(work) = bundle_workdir(tag, &["/usr/bin/time", "/usr/bin/zstd"]) else {
        return;
    };
    eprintln!("bench: {tag}: generating a 256 MiB bundle");
    let b = bundle(work.path(), 256, false, gzip);
    let what = if gzip {
        format!(
            "{} images, {} gzip layers, {} MiB gz / {} MiB",
            b.images,
            b.layers,
            b.compressed >> 20,
            b.unpacked >> 20
        )
    } else {
        format!(
            "{} images, {} uncompressed layers, {} MiB",
            b.images,
            b.layers,
            b.unpacked >> 20
        )
    };
    eprintln!("bench: {tag}: {what}");
    rows.push(Row {
        value: Some(String::new()),
        ..Row::new(format!("{tag}: {what}"), None)
    });
    // The .tar.zst piped into `crimg import -` is read once, its chains found as it
    // goes by; the file is read twice at once.
    for (kind, stdin) in [
        ("plain tar", false),
        (".tar.zst", false),
        (".tar.zst on stdin", true),
    ] {
        let zst = kind != "plain tar";
        let archive = if zst { &b.zst } else { &b.tar };
        let reference = if zst {
            format!("zstd -dc | ctr images import -, {tag} {kind}")
        } else {
            format!("ctr images import, {tag} {kind}")
        };
        let ours_name = format!("crimg import, {tag} {kind}");
        let floor_name = format!("  CPU floor of crimg's run, {tag} {kind}");
        let mut ours = Row::new(ours_name.clone(), Some(reference.clone()));
        let mut theirs = Row::new(reference.clone(), None);
        let mut vs_floor = Row::new(
            format!("crimg import vs its CPU floor, {tag} {kind}"),
            Some(floor_name.clone()),
        );
        let mut floor = Row::new(floor_name, None);
        let mut cd_ours = Row::new(format!("  containerd CPU, crimg run, {tag} {kind}"), None);
        let mut cli_ours = Row::new(format!("  crimg's own CPU, {tag} {kind}"), None);
        let mut steal_ours = Row::new(format!("  steal time, crimg run, {tag} {kind}"), None);
        let mut other_ours = Row::new(format!("  other CPU, crimg run, {tag} {kind}"), None);
        let mut theirs_floor = Row::new(format!("  CPU floor of ctr's run, {tag} {kind}"), None);
        let mut cd_theirs = Row::new(format!("  containerd CPU, ctr run, {tag} {kind}"), None);
        let mut cli_theirs = Row::new(format!("  ctr's (and zstd's) own CPU, {tag} {kind}"), None);
        for run in 0..opts.runs {
            eprintln!("bench: {tag} {kind} run {}/{}", run + 1, opts.runs);
            // Interleaved, and which goes first alternates.
            for first_ours in [run % 2 == 0, run % 2 != 0] {
                let node = Node::start();
                if first_ours {
                    let cmd = if stdin {
                        crimg_stdin_command(&node, archive)
                    } else {
                        crimg_import_command(&node, archive)
                    };
                    let m = measured(&node, &cmd);
                    ours.samples.push(m.wall);
                    vs_floor.samples.push(m.wall);
                    steal_ours.samples.push(m.steal);
                    other_ours.samples.push(m.other);
                    floor.samples.push(m.floor());
                    cd_ours.samples.push(m.containerd_cpu);
                    cli_ours.samples.push(m.client_cpu);
                } else {
                    let m = measured(&node, &ctr_command(&node, archive, zst));
                    theirs.samples.push(m.wall);
                    theirs_floor.samples.push(m.floor());
                    cd_theirs.samples.push(m.containerd_cpu);
                    cli_theirs.samples.push(m.client_cpu);
                }
            }
        }
        rows.extend([
            ours,
            theirs,
            vs_floor,
            floor,
            cd_ours,
            cli_ours,
            steal_ours,
            other_ours,
            theirs_floor,
            cd_theirs,
            cli_theirs,
        ]);
    }
    std::fs::remove_file(&b.tar).ok();
    std::fs::remove_file(&b.zst).ok();
    if !gzip {
        return;
    }

    eprintln!("bench: bundle: generating a 1 GiB bundle");
    let b = bundle(work.path(), 1024, false, true);
    eprintln!(
        "bench: bundle: {} images, {} gzip layers, {} MiB gz / {} MiB",
        b.images,
        b.layers,
        b.compressed >> 20,
        b.unpacked >> 20
    );
    for (kind, archive) in [("plain tar", &b.tar), (".tar.zst", &b.zst)] {
        let node = Node::start();
        let m = measured(&node, &crimg_import_command(&node, archive));
        rows.push(Row {
            value: Some(format!(
                "{:.1} MiB, {:.2}s (floor {:.2}s)",
                m.peak_kib as f64 / 1024.0,
                m.wall.as_secs_f64(),
                m.floor().as_secs_f64()
            )),
            ..Row::new(format!("peak RSS, crimg import, 1 GiB bundle {kind}"), None)
        });
        drop(node);
        let node = Node::start();
        let m = measured(&node, &ctr_command(&node, archive, kind != "plain tar"));
        rows.push(Row {
            value: Some(format!(
                "{:.2}s (floor {:.2}s)",
                m.wall.as_secs_f64(),
                m.floor().as_secs_f64()
            )),
            ..Row::new(format!("ctr import, 1 GiB bundle {kind}"), None)
        });
    }
}

/// The bundle's images as a directory of one archive each: `crimg import DIR` (archives
/// imported two at a time) against the same archives one per run, by crimg and by
/// `ctr images import`, as K3s imports its images directory, each into a fresh containerd.
fn bundle_dir_scenario(opts: &Options, rows: &mut Vec<Row>) {
    let Some(work) = bundle_workdir("bundle-dir", &["/usr/bin/time", "/usr/bin/zstd"]) else {
        return;
    };
    eprintln!("bench: bundle-dir: generating a 256 MiB bundle, one archive per image");
    let b = bundle(work.path(), 256, true, true);
    std::fs::remove_file(&b.tar).ok();
    std::fs::remove_file(&b.zst).ok();
    let dir = b.split.expect("split bundle");
    let mut archives: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    archives.sort();
    rows.push(Row {
        value: Some(String::new()),
        ..Row::new(
            format!(
                "bundle-dir: {} archives, {} images, {} gzip layers, {} MiB gz / {} MiB",
                archives.len(),
                b.images,
                b.layers,
                b.compressed >> 20,
                b.unpacked >> 20
            ),
            None,
        )
    });
    let one_by_one = |client: &str| {
        let script = archives
            .iter()
            .map(|a| format!("{client} '{a}'"))
            .collect::<Vec<_>>()
            .join(" && ");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("CONTAINERD_SNAPSHOTTER");
        cmd
    };
    let reference = "ctr images import, one archive per run".to_string();
    let mut ours = Row::new("crimg import DIR", Some(reference.clone()));
    let mut serial = Row::new("crimg import, one archive per run", Some(reference.clone()));
    let mut theirs = Row::new(reference, None);
    let mut vs_floor = Row::new(
        "crimg import DIR vs its CPU floor",
        Some("  CPU floor of crimg import DIR".into()),
    );
    let mut floor = Row::new("  CPU floor of crimg import DIR", None);
    let mut serial_floor = Row::new("  CPU floor of crimg, one per run", None);
    for run in 0..opts.runs {
        eprintln!("bench: bundle-dir run {}/{}", run + 1, opts.runs);
        // Interleaved; which goes first rotates.
        for k in 0..3 {
            let node = Node::start();
            match (k + run) % 3 {
                0 => {
                    let m = measured(&node, &crimg_import_command(&node, &dir));
                    ours.samples.push(m.wall);
                    vs_floor.samples.push(m.wall);
                    floor.samples.push(m.floor());
                }
                1 => {
                    let crimg = node.crimg();
                    let mut cmd = one_by_one(&format!("{} import -q", shell_words(&crimg)));
                    copy_env(&crimg, &mut cmd);
                    let m = measured(&node, &cmd);
                    serial.samples.push(m.wall);
                    serial_floor.samples.push(m.floor());
                }
                _ => {
                    let ctr = format!(
                        "ctr --address '{}' --namespace k8s.io images import",
                        node.socket().display()
                    );
                    let m = measured(&node, &one_by_one(&ctr));
                    theirs.samples.push(m.wall);
                }
            }
        }
    }
    rows.extend([ours, serial, theirs, vs_floor, floor, serial_floor]);
}
