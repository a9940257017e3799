//! `crimg inspect`: archives read as import reads them, with no runtime; damaged ones
//! fail with the very error import gives for the same file.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;

use crate::json::ImageList;
use crate::run::{Run, crimg};
use crate::support::archives::{self, Compress, Members};
use crate::support::{FixtureImage, Node};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inspected {
    archives: Vec<Archive>,
    failed: Vec<Failure>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Failure {
    file: String,
    error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Archive {
    file: String,
    format: String,
    compression: String,
    size: u64,
    verified: bool,
    images: Vec<Image>,
    notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    names: Vec<String>,
    digest: String,
    media_type: String,
    id: String,
    size: u64,
    platforms: Vec<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    platform: String,
    manifest: String,
    id: String,
    unpack: bool,
    size: u64,
    unpacked_size: Option<u64>,
    layers: Vec<Layer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    digest: String,
    size: u64,
    diff_id: String,
    unpacked_size: Option<u64>,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

type MakeArchive = fn(&FixtureImage) -> Members;

/// crimg with no runtime at all: every endpoint points nowhere.
fn offline(node: &Node) -> std::process::Command {
    let mut cmd = node.crimg();
    let nowhere = node.dir().join("no-such-socket");
    cmd.env("CONTAINER_RUNTIME_ENDPOINT", &nowhere)
        .env("CONTAINERD_ADDRESS", &nowhere);
    cmd
}

fn inspect(node: &Node, args: &[&str]) -> Run {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    crimg(offline(node), &all)
}

#[test]
fn every_fixture_kind_inspects_to_its_names_ids_and_layers() {
    let node = Node::start();
    let dir = node.dir().join("inspect");
    fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for c in Compress::ALL {
        let formats: [(&str, MakeArchive); 4] = [
            ("oci", |i| archives::oci_layout(&[i], false)),
            ("oci-index-last", |i| archives::oci_layout(&[i], true)),
            ("docker", archives::docker_legacy),
            ("docker-oci", archives::docker_oci),
        ];
        for (format, make) in formats {
            let image = FixtureImage::new(&format!("docker.io/library/{format}-{}:1", c.name()));
            let path = dir.join(format!("{format}-{}{}", c.name(), c.wrong_suffix()));
            archives::write(&path, &archives::compress(c, &archives::tar(&make(&image))));
            files.push((path, image, format, c));
        }
    }
    let mut args = vec!["-o", "json"];
    args.extend(files.iter().map(|(f, ..)| s(f)));
    let out: Inspected = inspect(&node, &args).expect_code(0).json();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.archives.len(), files.len());
    for ((path, image, format, c), a) in files.iter().zip(&out.archives) {
        let what = s(path);
        assert_eq!(a.file, what);
        assert!(a.verified, "{what}");
        assert_eq!(a.size, fs::metadata(path).unwrap().len(), "{what}");
        assert_eq!(a.compression, c.name(), "{what}");
        let want_format = if format.starts_with("oci") || *format == "docker-oci" {
            "oci"
        } else {
            "docker"
        };
        assert_eq!(a.format, want_format, "{what}");
        assert_eq!(a.images.len(), 1, "{what}");
        let i = &a.images[0];
        assert_eq!(i.names, vec![image.name.clone()], "{what}");
        assert_eq!(i.id, image.config_digest(), "{what}");
        if want_format == "oci" {
            assert_eq!(i.digest, image.manifest_digest(), "{what}");
            assert!(i.media_type.contains("manifest"), "{what}");
        }
        assert_eq!(i.platforms.len(), 1, "{what}");
        let p = &i.platforms[0];
        assert_eq!(p.id, image.config_digest(), "{what}");
        assert!(p.platform.starts_with("linux/"), "{what}: {}", p.platform);
        if want_format == "oci" {
            assert_eq!(p.manifest, image.manifest_digest(), "{what}");
        }
        assert!(p.unpack, "{what}");
        assert_eq!(p.layers.len(), 1, "{what}");
        let l = &p.layers[0];
        assert_eq!(l.digest, image.layer_digest(), "{what}");
        // The fixture's layer is an uncompressed tar: its diff ID is its digest.
        assert_eq!(l.diff_id, image.layer_digest(), "{what}");
        assert_eq!(l.unpacked_size, Some(l.size), "{what}");
        assert_eq!(p.unpacked_size, Some(l.size), "{what}");
        assert!(p.size > l.size && i.size >= p.size, "{what}: {i:?}");
        assert!(a.notes.is_empty(), "{what}: {:?}", a.notes);
    }

    // --no-verify reads the same names and IDs, hashing nothing.
    let quick: Inspected = inspect(&node, &["-o", "json", "--no-verify", s(&files[0].0)])
        .expect_code(0)
        .json();
    assert!(!quick.archives[0].verified);
    assert_eq!(quick.archives[0].images[0].id, files[0].1.config_digest());
    assert_eq!(quick.archives[0].images[0].platforms[0].unpacked_size, None);

    // Standard input, and a layout directory.
    let mut cmd = offline(&node);
    cmd.stdin(Stdio::from(fs::File::open(&files[2].0).unwrap()));
    let out: Inspected = crimg(cmd, &["inspect", "-o", "json", "-"])
        .expect_code(0)
        .json();
    assert_eq!(out.archives[0].file, "-");
    assert_eq!(
        out.archives[0].images[0].names,
        vec![files[2].1.name.clone()]
    );
    let layout = dir.join("layout");
    let image = FixtureImage::new("docker.io/library/layout:1");
    for (path, data) in archives::oci_layout(&[&image], false) {
        let p = layout.join(&path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    let out: Inspected = inspect(&node, &["-o", "json", s(&layout)])
        .expect_code(0)
        .json();
    assert_eq!(out.archives[0].images[0].id, image.config_digest());

    // The table and the names.
    let table = inspect(&node, &[s(&files[0].0)]).expect_code(0);
    assert!(table.stdout.contains(&files[0].1.name), "{}", table.stdout);
    assert!(
        table.stdout.contains(&files[0].1.config_digest()),
        "{}",
        table.stdout
    );
    let names = inspect(&node, &["-o", "name", s(&files[0].0)]).expect_code(0);
    assert_eq!(names.stdout, format!("{}\n", files[0].1.name));
    let wide = inspect(&node, &["-o", "wide", s(&files[0].0)]).expect_code(0);
    assert!(
        wide.stdout.contains(&files[0].1.layer_digest()),
        "{}",
        wide.stdout
    );
}

#[test]
fn a_multi_platform_archive_says_what_this_host_would_unpack() {
    let node = Node::start();
    let image = FixtureImage::new("docker.io/library/multi:1");
    let (members, _) = archives::multi_arch(&image, true);
    let path = node.dir().join("multi.tar");
    archives::write(&path, &archives::tar(&members));
    let out: Inspected = inspect(&node, &["-o", "json", s(&path)])
        .expect_code(0)
        .json();
    let i = &out.archives[0].images[0];
    assert!(i.platforms.len() >= 2, "{i:?}");
    let unpacked: Vec<&Platform> = i.platforms.iter().filter(|p| p.unpack).collect();
    assert_eq!(unpacked.len(), 1, "{i:?}");
    assert_eq!(unpacked[0].id, i.id);
    assert_eq!(i.id, image.config_digest());
}

/// The same damaged file, given to import and to inspect: the same exit and the same
/// one-line error.
#[test]
fn damaged_archives_fail_with_the_error_import_gives() {
    let node = Node::start();
    let dir = node.dir().join("damaged");
    fs::create_dir_all(&dir).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, make, _) in crate::support::hostile::hostile_tars() {
        for c in [Compress::None, Compress::Gzip] {
            let image = FixtureImage::new(&format!("docker.io/library/{name}-{}:1", c.name()));
            let members = archives::oci_layout(&[&image], false);
            let file = format!(
                "case-{}.tar{}",
                cases.len(),
                if c == Compress::Gzip { ".gz" } else { "" }
            );
            cases.push((file, archives::compress(c, &make(&image, &members))));
        }
    }
    let image = FixtureImage::new("docker.io/library/damaged:1");
    let plain = archives::tar(&archives::oci_layout(&[&image], false));
    let at = archives::find(&plain, b"crimg e2e fixture, seed");
    let mut flipped = plain.clone();
    flipped[at + 7] ^= 0x10;
    cases.push(("truncated.tar".into(), plain[..plain.len() / 2].to_vec()));
    cases.push((
        "truncated.tar.gz".into(),
        archives::compress(Compress::Gzip, &plain)[..3000].to_vec(),
    ));
    cases.push((
        "flipped.tar.zst".into(),
        archives::compress(Compress::Zstd, &flipped),
    ));
    cases.push((
        "unknown.tar".into(),
        b"this is not an archive at all, just some text\n".repeat(20),
    ));
    cases.push((
        "empty.tar".into(),
        archives::tar(&vec![("hello".into(), b"x".to_vec())]),
    ));

    let mut wrong = Vec::new();
    for (name, bytes) in &cases {
        let path = dir.join(name);
        archives::write(&path, bytes);
        let imported = crimg(node.crimg(), &["import", s(&path)]);
        let inspected = inspect(&node, &[s(&path)]);
        if imported.code != 1 || inspected.code != 1 {
            wrong.push(format!(
                "{name}: import exit {}, inspect exit {}",
                imported.code, inspected.code
            ));
        }
        let line = inspected.stderr.trim();
        if line.lines().count() != 1 || !line.contains(s(&path)) {
            wrong.push(format!("{name}: not one line naming the file: {line}"));
        }
        if line != imported.stderr.trim() {
            wrong.push(format!(
                "{name}:\n  import:  {}\n  inspect: {line}",
                imported.stderr.trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // With -o json, a damaged archive among good ones is listed under `failed`.
    let good = dir.join("good.tar");
    archives::write(&good, &plain);
    let bad = dir.join("flipped.tar.zst");
    let out: Inspected = inspect(&node, &["-o", "json", s(&good), s(&bad)])
        .expect_code(1)
        .json();
    assert_eq!(out.archives.len(), 1);
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].file, s(&bad));
    assert!(
        out.failed[0].error.contains("digest"),
        "{}",
        out.failed[0].error
    );
}

/// An archive `crimg export` wrote inspects to the names and IDs the node reports.
#[test]
fn an_exported_archive_inspects_to_what_the_node_reports() {
    let node = Node::start();
    let images = [
        FixtureImage::new("docker.io/library/exported-a:1"),
        FixtureImage::new("docker.io/library/exported-b:2"),
    ];
    let src = node.dir().join("src.tar");
    archives::write(
        &src,
        &archives::tar(&archives::oci_layout(&[&images[0], &images[1]], false)),
    );
    crimg(node.crimg(), &["import", s(&src)]).expect_code(0);
    let listed: ImageList = crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json();
    for compress in [None, Some("zstd")] {
        let out = node
            .dir()
            .join(format!("out-{}.tar", compress.unwrap_or("none")));
        let mut args = vec!["export", "-O", s(&out)];
        if let Some(c) = compress {
            args.extend(["--compress", c]);
        }
        args.extend(images.iter().map(|i| i.name.as_str()));
        crimg(node.crimg(), &args).expect_code(0);
        let got: Inspected = inspect(&node, &["-o", "json", s(&out)])
            .expect_code(0)
            .json();
        let a = &got.archives[0];
        assert!(a.verified);
        assert_eq!(a.images.len(), images.len(), "{a:?}");
        for image in &images {
            let i = a
                .images
                .iter()
                .find(|i| i.names.contains(&image.name))
                .unwrap_or_else(|| panic!("{} not in {a:?}", image.name));
            assert_eq!(i.id, listed.by_tag(&image.name).id);
        }
        fs::remove_file(&out).unwrap();
    }
}

/// What inspect says of each archive on stderr is a note like any other command's:
/// `-q` silences it (and, as everywhere, stdout).
#[test]
fn inspect_notes_follow_quiet() {
    let node = Node::start();
    let dir = node.dir().join("inspect");
    fs::create_dir_all(&dir).unwrap();
    let image = FixtureImage::new("docker.io/library/noted:1");
    let path = dir.join("one.tar");
    archives::write(
        &path,
        &archives::tar(&archives::oci_layout(&[&image], false)),
    );

    let said = inspect(&node, &[s(&path)]).expect_code(0);
    assert!(said.stdout.contains(&image.name), "{}", said.stdout);
    let note = format!("crimg: {}: 1 image(s), oci ", s(&path));
    assert!(said.stderr.contains(&note), "{}", said.stderr);

    let quiet = inspect(&node, &["-q", s(&path)]).expect_code(0);
    assert_eq!((quiet.stdout.as_str(), quiet.stderr.as_str()), ("", ""));
}
