//! Archives built to hurt an importer, and an image containerd's CRI refuses: each fails
//! naming the file, with nothing written outside containerd and containerd as before.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{node_state, s};
use crate::run::crimg;
use crate::support::archives::{self, Compress, Members};
use crate::support::hostile::{
    add_config_field, edit_config, hex, hostile_tars, layer_path, replace,
};
use crate::support::{FixtureImage, Node, digest};

/// Every path under the node dir except containerd's own dirs, its log and crimg's
/// state dir: where an escaping write would show.
fn files_outside_containerd(node: &Node) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.insert(p.clone());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(node.dir(), &mut out);
    let skip = ["root", "state", "crimg-state"].map(|d| node.dir().join(d));
    out.retain(|p| !skip.iter().any(|d| p.starts_with(d)));
    out
}

/// A gzip stream of a tar without holding the inflated tar in memory: the members,
/// then `bomb_path` holding `bomb_len` zero bytes.
fn gzip_bomb(members: &Members, bomb_path: &str, bomb_len: u64) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut out = tar::Builder::new(gz);
    let put = |out: &mut tar::Builder<_>, path: &str, len: u64, r: &mut dyn std::io::Read| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(len);
        out.append_data(&mut h, path, r).unwrap();
    };
    for (path, data) in members {
        if path != bomb_path {
            put(&mut out, path, data.len() as u64, &mut &data[..]);
        }
    }
    put(
        &mut out,
        bomb_path,
        bomb_len,
        &mut std::io::Read::take(std::io::repeat(0), bomb_len),
    );
    out.into_inner().unwrap().finish().unwrap()
}

#[test]
fn hostile_archives_fail_naming_the_file_and_leave_nothing() {
    let node = Node::start();
    let dir = node.dir().join("hostile");
    fs::create_dir_all(&dir).unwrap();

    // (file name, bytes, what the error must say). Every case has its own image, so no
    // blob of it is in the store already.
    // The files are named neutrally (`case-N`), so the cause the error must give can
    // only come from what crimg found, never from the echoed file name.
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    for (name, make, problems) in hostile_tars() {
        for (c, problem) in [Compress::None, Compress::Gzip].into_iter().zip(problems) {
            let file = format!(
                "case-{}{}",
                cases.len(),
                if c == Compress::Gzip {
                    ".tar.gz"
                } else {
                    ".tar"
                }
            );
            let image = FixtureImage::new(&format!("docker.io/library/{name}-{}:1", c.name()));
            let members = archives::oci_layout(&[&image], false);
            cases.push((
                file,
                archives::compress(c, &make(&image, &members)),
                problem,
            ));
        }
    }
    // A decompression bomb: the layer's tar entry inflates to 64 MiB of zeros where its
    // descriptor says about a KiB.
    let image = FixtureImage::new("docker.io/library/bomb:1");
    let members = archives::oci_layout(&[&image], false);
    cases.push((
        format!("case-{}.tar.gz", cases.len()),
        gzip_bomb(&members, &layer_path(&image), 64 << 20),
        "digest",
    ));

    let mut failures = Vec::new();
    for (name, bytes, problem) in &cases {
        let path = dir.join(name);
        archives::write(&path, bytes);
        let before = node_state(&node);
        let files_before = files_outside_containerd(&node);
        let started = Instant::now();
        let r = crimg(node.crimg(), &["import", s(&path)]);
        let took = started.elapsed();
        let line = r.stderr.trim();
        let mut wrong = Vec::new();
        if r.code != 1 {
            wrong.push(format!("exit {}", r.code));
        }
        // The cause is said after the file's path.
        match line.split_once(s(&path)) {
            None => wrong.push("the error does not name the file".into()),
            Some((_, cause)) if !cause.contains(problem) => {
                wrong.push(format!("the error does not say {problem:?}"));
            }
            Some(_) => {}
        }
        if line.lines().count() != 1 {
            wrong.push("not one line".into());
        }
        // A hang guard, not a speed target: generous enough for a loaded 2-core machine.
        if took > Duration::from_secs(60) {
            wrong.push(format!("took {took:?}, as if it hung"));
        }
        if node_state(&node) != before {
            wrong.push("containerd changed".into());
        }
        if files_outside_containerd(&node) != files_before {
            wrong.push("files appeared outside containerd".into());
        }
        if !wrong.is_empty() {
            failures.push(format!("{name}: {}\n  stderr: {line}", wrong.join(", ")));
        }
        fs::remove_file(&path).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs a tool the test needs, failing with what it said.
fn tool(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entry types of a plain tar, read header by header (no sparse expansion).
fn entry_types(tar: &Path) -> Vec<tar::EntryType> {
    let mut archive = tar::Archive::new(fs::File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().header().entry_type())
        .collect()
}

/// Archives written by GNU tar with `--sparse`: the GNU format's sparse members are read
/// (holes filled with zeros, digests right); the PAX format's are refused by name and
/// nothing is left. A gzip archive cut before its trailer is refused like truncated
/// zstd: the CRC and length are checked.
#[test]
fn sparse_members_and_gzip_trailers() {
    let node = Node::start();
    let dir = node.dir().join("sparse");
    let layout = dir.join("layout");
    fs::create_dir_all(&layout).unwrap();

    // A layer that is mostly zeros, so a sparse copy of its blob has holes.
    let mut data = vec![0u8; 4 << 20];
    data[..5].copy_from_slice(b"start");
    let end = data.len() - 3;
    data[end..].copy_from_slice(b"end");
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    layer.append_data(&mut h, "zeros", &data[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let layer_digest = digest(&layer);
    let plain = dir.join("plain.tar");
    let name = "docker.io/library/sparse:1";
    archives::write_layered_oci(&plain, name, "/x", &[&layer]);
    tool(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(&plain)
            .arg("-C")
            .arg(&layout),
    );
    let blob = layout.join("blobs/sha256").join(hex(&layer_digest));
    let holey = dir.join("holey");
    tool(
        std::process::Command::new("cp")
            .arg("--sparse=always")
            .arg(&blob)
            .arg(&holey),
    );
    fs::rename(&holey, &blob).unwrap();

    // PAX format: refused, naming the member, nothing left (first, so that no blob of
    // the image is in the store yet).
    let pax = dir.join("pax-sparse.tar");
    tool(
        std::process::Command::new("tar")
            .args(["--sparse", "--format=pax", "-cf"])
            .arg(&pax)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    let before = node_state(&node);
    let r = crimg(node.crimg(), &["import", "--no-unpack", s(&pax)]).expect_code(1);
    assert!(
        r.stderr.contains(hex(&layer_digest)) && r.stderr.contains("PAX sparse member"),
        "{}",
        r.stderr
    );
    assert_eq!(node_state(&node), before, "nothing left");

    // GNU format: read.
    let gnu = dir.join("gnu-sparse.tar");
    tool(
        std::process::Command::new("tar")
            .args(["--sparse", "--format=gnu", "-cf"])
            .arg(&gnu)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    assert!(
        entry_types(&gnu).contains(&tar::EntryType::GNUSparse),
        "tar --sparse wrote a sparse member"
    );
    let r = crimg(node.crimg(), &["import", "--no-unpack", s(&gnu)]).expect_code(0);
    assert!(r.stderr.contains("imported"), "{}", r.stderr);
    let stored = node.ctr_ok(&["content", "ls", "-q"]);
    assert!(stored.contains(&layer_digest), "{stored}");
    node.ctr_ok(&["images", "rm", name]);

    // gzip without its trailer (CRC and length), or with half of it: refused.
    let whole = dir.join("whole.tar.gz");
    let gz = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(gz.status.success());
    fs::write(&whole, &gz.stdout).unwrap();
    for cut in [8, 4] {
        let cut_file = dir.join(format!("cut{cut}.tar.gz"));
        fs::write(&cut_file, &gz.stdout[..gz.stdout.len() - cut]).unwrap();
        let before = node_state(&node);
        let r = crimg(node.crimg(), &["import", "--no-unpack", s(&cut_file)]).expect_code(1);
        assert!(
            r.stderr.contains(s(&cut_file))
                && r.stderr.contains("gzip stream is truncated or corrupt"),
            "{}",
            r.stderr
        );
        assert_eq!(node_state(&node), before, "nothing left");
    }
    // A damaged CRC too.
    let mut bad_crc = gz.stdout.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    let bad = dir.join("badcrc.tar.gz");
    fs::write(&bad, &bad_crc).unwrap();
    crimg(node.crimg(), &["import", "--no-unpack", s(&bad)]).expect_code(1);
    // The whole file imports.
    crimg(node.crimg(), &["import", "--no-unpack", s(&whole)]).expect_code(0);
}

/// An image whose config crimg accepts but containerd's CRI does not (`created` that is
/// no time): its records are removed and it fails; the other archive's image stays.
#[test]
fn an_image_cri_does_not_list_is_rolled_back() {
    let node = Node::start();
    let dir = node.dir().join("cri-refuses");
    fs::create_dir_all(&dir).unwrap();
    let good = FixtureImage::new("docker.io/library/cri-good:1");
    let bad = FixtureImage::new("docker.io/library/cri-refused:1");
    let good_path = dir.join("one.tar");
    archives::write(
        &good_path,
        &archives::tar(&archives::oci_layout(&[&good], false)),
    );
    let bad_path = dir.join("two.tar");
    let members = archives::oci_layout(&[&bad], false);
    archives::write(
        &bad_path,
        &archives::tar(&edit_config(&members, &bad, |c| {
            add_config_field(c, "created", b"\"not a time\"")
        })),
    );
    let before = node_state(&node);
    let r = crimg(node.crimg(), &["import", s(&good_path), s(&bad_path)]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(s(&bad_path)))
        .unwrap_or_else(|| panic!("no error naming {}: {}", bad_path.display(), r.stderr));
    assert!(
        line.contains(&format!(
            "{}: containerd stored the image but CRI does not list it",
            bad.name
        )) && line.contains("containerd's log"),
        "{line}"
    );
    assert!(
        node.cri_image_status(&good.name)
            .is_some_and(|i| i.id == good.config_digest()),
        "{} not listed",
        good.name
    );
    let images = node.ctr_ok(&["images", "ls", "-q"]);
    assert!(!images.contains(&bad.name), "{images}");
    assert!(!images.contains(&bad.config_digest()), "{images}");
    let content = node.ctr_ok(&["content", "ls", "-q"]);
    assert!(!content.contains(&bad.layer_digest()), "{content}");
    assert_eq!(
        node.ctr_ok(&["leases", "ls", "-q"]),
        before.3,
        "a lease left"
    );

    // Alone: exit 1, containerd exactly as before.
    let before = node_state(&node);
    let r = crimg(node.crimg(), &["import", s(&bad_path)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("CRI does not list it"), "{}", r.stderr);
    assert_eq!(node_state(&node), before);
}

/// An index that claims a size its manifest does not have (2^62 bytes), for a manifest
/// already in the content store: import refuses it as inspect does, and the existing
/// image record, size included, is left as it was, so it still exports.
#[test]
fn a_descriptor_that_lies_about_its_size_is_refused_and_changes_nothing() {
    let node = Node::start();
    let image = FixtureImage::new("docker.io/library/sized:1");
    node.import(&image);
    let before = node_state(&node);
    let record_before = node.ctr_ok(&["images", "ls"]);

    let members = archives::oci_layout(&[&image], false);
    let index: serde_json::Value =
        serde_json::from_slice(&members.iter().find(|(p, _)| p == "index.json").unwrap().1)
            .unwrap();
    let mut lying = index.clone();
    lying["manifests"][0]["size"] = json!(1u64 << 62);
    let members = replace(&members, "index.json", serde_json::to_vec(&lying).unwrap());
    let file = node.dir().join("lying.tar");
    archives::write(&file, &archives::tar(&members));

    for cmd in ["inspect", "import"] {
        let r = crimg(node.crimg(), &[cmd, s(&file)]).expect_code(1);
        assert!(
            r.stderr.contains(&image.manifest_digest()),
            "{cmd}: {}",
            r.stderr
        );
    }
    // Records, snapshots and leases as before, every blob of the image still there (a
    // blob nothing referenced, as `ctr import` leaves its index, may be collected).
    let after = node_state(&node);
    assert_eq!(
        (&after.0, &after.2, &after.3),
        (&before.0, &before.2, &before.3)
    );
    for d in image.blobs().keys() {
        assert!(after.1.contains(d.as_str()), "{d} gone: {}", after.1);
    }
    assert_eq!(node.ctr_ok(&["images", "ls"]), record_before);
    let out = node.dir().join("out.tar");
    crimg(node.crimg(), &["export", "-O", s(&out), &image.name]).expect_code(0);
}
