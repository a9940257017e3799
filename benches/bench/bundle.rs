//! The bundle scenarios (`bundle`, `bundle-raw`, `bundle-dir`) and the air-gap bundle they
//! import, which `bundle-files` writes for other tools.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::data::{Noise, finish_tar};
use crate::measure::{copy_env, measured, shell_words};
use crate::support::{self, Node};
use crate::{Options, Row};

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
pub struct Bundle {
    pub tar: std::path::PathBuf,
    pub zst: std::path::PathBuf,
    /// One archive per image, with `split`.
    pub split: Option<std::path::PathBuf>,
    pub images: usize,
    pub layers: usize,
    pub compressed: u64,
    pub unpacked: u64,
}

/// `images` images of 4 gzip layers each: one of two base layers (each shared by half the
/// images), one of five runtime layers (each shared by two images), and two layers of
/// their own; about `mib` MiB unpacked in all. Layers, then configs, then `manifest.json`
/// and `repositories` last, as `docker save` writes them.
///
/// With `split`, also a directory of one `docker save` archive per image (shared layers in
/// each archive that uses them), as a K3s images directory often holds.
pub fn bundle(dir: &Path, mib: u64, split: bool, gzip: bool) -> Bundle {
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
pub fn bundle_scenario(opts: &Options, rows: &mut Vec<Row>, gzip: bool) {
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
pub fn bundle_dir_scenario(opts: &Options, rows: &mut Vec<Row>) {
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
