//! The import, export, inspect and memory scenarios, over one big single-layer image.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::data::{BigImage, big_image, sha256_file};
use crate::support::Node;
use crate::{Options, Row, crimg, timed};

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
pub fn inspect(opts: &Options, rows: &mut Vec<Row>) {
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
    let run_crimg =
        |args: &[&str]| crate::timed_crimg(Command::new(env!("CARGO_BIN_EXE_crimg")), args);
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
pub fn import(opts: &Options, rows: &mut Vec<Row>) {
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
pub fn export(opts: &Options, rows: &mut Vec<Row>) {
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
pub fn memory(opts: &Options, rows: &mut Vec<Row>) {
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
