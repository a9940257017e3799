//! `crimg import` against a real containerd: formats, compressions, platforms, pins,
//! pods running imported images, failures that leave nothing behind, stdin, image
//! lists and `--watch`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::json::ImageList;
use crate::json::ImportResult;
use crate::json::PruneResult;
use crate::run::{Run, crimg};
use crate::support::archives::{self, Compress, Members};
use crate::support::{FixtureImage, Node};

/// Builds an archive's members from a fixture.
type MakeArchive = fn(&FixtureImage) -> Members;

fn import(node: &Node, args: &[&str]) -> Run {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    crimg(node.crimg(), &all)
}

fn list(node: &Node) -> ImageList {
    crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json()
}

fn write_archive(dir: &Path, name: &str, members: &Members, c: Compress) -> PathBuf {
    let path = dir.join(name);
    archives::write(&path, &archives::compress(c, &archives::tar(members)));
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Content labels as `ctr content ls` prints them: digest → labels.
fn content_labels(node: &Node) -> BTreeMap<String, String> {
    node.ctr_ok(&["content", "ls"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let digest = cols.next()?.to_string();
            let labels = cols.last().unwrap_or_default().to_string();
            Some((digest, labels))
        })
        .collect()
}

/// Everything an import could leave behind: image records, blobs, snapshots, leases.
fn node_state(node: &Node) -> (String, String, String, String) {
    (
        node.ctr_ok(&["images", "ls", "-q"]),
        node.ctr_ok(&["content", "ls", "-q"]),
        node.ctr_ok(&["snapshots", "ls"]),
        node.ctr_ok(&["leases", "ls", "-q"]),
    )
}

#[test]
fn every_format_and_compression_by_content_not_name() {
    let node = Node::start();
    let dir = node.dir().join("in");
    fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut images = Vec::new();
    for c in Compress::ALL {
        let formats: [(&str, MakeArchive); 4] = [
            ("oci", |i| archives::oci_layout(&[i], false)),
            ("oci-index-last", |i| archives::oci_layout(&[i], true)),
            ("docker", archives::docker_legacy),
            ("docker-oci", archives::docker_oci),
        ];
        for (format, make) in formats {
            let image = FixtureImage::new(&format!("docker.io/library/{format}-{}:1", c.name()));
            let file = write_archive(
                &dir,
                &format!("{format}-{}{}", c.name(), c.wrong_suffix()),
                &make(&image),
                c,
            );
            files.push(file);
            images.push(image);
        }
    }
    let mut args = vec!["-o", "json"];
    args.extend(files.iter().map(|f| s(f)));
    let run = import(&node, &args).expect_code(0);
    crate::schema::check("import", &run.stdout);
    let out: ImportResult = run.json();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let mut want: Vec<String> = images.iter().map(|i| i.name.clone()).collect();
    want.sort();
    assert_eq!(out.names(), want);
    for f in &out.imported {
        let i = &f.images[0];
        let image = images.iter().find(|x| x.name == i.name).unwrap();
        assert_eq!(i.id, image.config_digest(), "{}", f.file);
        if !f.file.contains("/docker-") || f.file.contains("docker-oci") {
            assert_eq!(i.digest, image.manifest_digest(), "{}", f.file);
        }
    }

    // CRI lists every image under its name, with the ID CRI computes itself.
    let listed = list(&node);
    for image in &images {
        assert_eq!(listed.by_tag(&image.name).id, image.config_digest());
        let labels = node.image_labels(&image.name);
        assert_eq!(
            labels.get("io.cri-containerd.image").map(String::as_str),
            Some("managed")
        );
        assert!(!labels.contains_key("io.cri-containerd.pinned"));
    }

    // containerd's GC references: manifest → config and layer, layer → diff ID,
    // config → unpacked snapshot.
    let labels = content_labels(&node);
    let image = &images[0];
    let manifest = &labels[&image.manifest_digest()];
    assert!(
        manifest.contains(&format!(
            "containerd.io/gc.ref.content.config={}",
            image.config_digest()
        )),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!(
            "containerd.io/gc.ref.content.l.0={}",
            image.layer_digest()
        )),
        "{manifest}"
    );
    assert!(labels[&image.layer_digest()].contains(&format!(
        "containerd.io/uncompressed={}",
        image.layer_digest()
    )));
    assert!(
        labels[&image.config_digest()].contains(&format!(
            "containerd.io/gc.ref.snapshot.overlayfs={}",
            image.layer_digest()
        )),
        "{}",
        labels[&image.config_digest()]
    );
    // The lease is gone once the records exist.
    assert_eq!(node.ctr_ok(&["leases", "ls", "-q"]).trim(), "");

    // Importing again is no error and changes nothing.
    // Labels as sets: ctr prints them in no set order.
    let label_sets = || -> BTreeMap<String, BTreeSet<String>> {
        content_labels(&node)
            .into_iter()
            .map(|(d, l)| (d, l.split(',').map(str::to_string).collect()))
            .collect()
    };
    let before = (node_state(&node), label_sets());
    import(&node, &[s(&files[0])]).expect_code(0);
    assert!(
        (node_state(&node), label_sets()) == before,
        "importing again changed the store"
    );
}

#[test]
fn imported_images_run_in_a_pod_at_once() {
    let node = Node::start();
    let pause = FixtureImage::new("registry.k8s.io/pause:3.9");
    let app = FixtureImage::new("docker.io/library/runnable:1");
    let dir = node.dir().join("in");
    fs::create_dir_all(&dir).unwrap();
    let a = write_archive(
        &dir,
        "pause.tar",
        &archives::oci_layout(&[&pause], false),
        Compress::None,
    );
    let b = write_archive(
        &dir,
        "app.tar.zst",
        &archives::docker_legacy(&app),
        Compress::Zstd,
    );
    let out = import(&node, &[s(&a), s(&b)]).expect_code(0);
    assert!(
        out.stdout.contains("docker.io/library/runnable:1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.starts_with("IMAGE"), "{}", out.stdout);
    assert!(out.stderr.contains("imported 2 image(s)"), "{}", out.stderr);
    // Unpacked already: the snapshot exists under the layer's chain ID.
    assert!(
        node.ctr_ok(&["snapshots", "ls"])
            .contains(&app.layer_digest())
    );
    let pod = node.run_pod("import-pod");
    let ctr = node.run_container(&pod, "import-pod", &app.name);
    assert_eq!(
        node.container_state(&ctr),
        crimg::proto::runtime::v1::ContainerState::ContainerRunning
    );
}

#[test]
fn multi_platform_takes_the_host_by_default_and_all_on_request() {
    let node = Node::start();
    let dir = node.dir().join("in");
    fs::create_dir_all(&dir).unwrap();
    let image = FixtureImage::new("docker.io/library/multi:1");
    // The foreign platform's layer is not in the archive: only --all-platforms needs it.
    let (partial, foreign_layer) = archives::multi_arch(&image, false);
    let (_, index_json) = partial.iter().find(|(p, _)| p == "index.json").unwrap();
    let index: serde_json::Value = serde_json::from_slice(index_json).unwrap();
    let index_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let partial = write_archive(&dir, "partial.tar", &partial, Compress::None);
    let before = node_state(&node);
    let r = import(&node, &["--all-platforms", s(&partial)]).expect_code(1);
    assert!(r.stderr.contains(&foreign_layer), "{}", r.stderr);
    assert!(r.stderr.contains("missing"), "{}", r.stderr);
    assert!(r.stderr.contains("partial.tar"), "{}", r.stderr);
    assert_eq!(node_state(&node), before);

    let out: ImportResult = import(&node, &["-o", "json", s(&partial)])
        .expect_code(0)
        .json();
    let i = &out.imported[0].images[0];
    assert_eq!(i.name, image.name);
    assert_eq!(i.id, image.config_digest());
    // The record targets the index: the digest index.json gives it.
    assert_eq!(i.digest, index_digest, "the record targets the index");
    assert_eq!(list(&node).by_tag(&image.name).id, image.config_digest());
    let snapshots = node.ctr_ok(&["snapshots", "ls"]);
    assert!(snapshots.contains(&image.layer_digest()));
    assert!(!snapshots.contains(&foreign_layer));

    // With every platform's blobs present, --all-platforms stores the foreign layer too
    // but unpacks only what this host runs.
    let image2 = FixtureImage::new("docker.io/library/multi:2");
    let (full, foreign2) = archives::multi_arch(&image2, true);
    let full = write_archive(&dir, "full.tar.gz", &full, Compress::Gzip);
    import(&node, &["--all-platforms", s(&full)]).expect_code(0);
    assert!(node.ctr_ok(&["content", "ls", "-q"]).contains(&foreign2));
    assert!(!node.ctr_ok(&["snapshots", "ls"]).contains(&foreign2));
    // An explicit foreign platform alone: stored, nothing unpacked for it.
    let image3 = FixtureImage::new("docker.io/library/multi:3");
    let (full3, foreign3) = archives::multi_arch(&image3, true);
    let full3 = write_archive(&dir, "full3.tar", &full3, Compress::None);
    let platform = format!("linux/{}", archives::foreign_arch());
    import(&node, &["--platform", &platform, "--no-unpack", s(&full3)]).expect_code(0);
    let content = node.ctr_ok(&["content", "ls", "-q"]);
    assert!(content.contains(&foreign3));
    assert!(!content.contains(&image3.layer_digest()));
}

#[test]
fn a_directory_with_pin_and_base_name() {
    let node = Node::start();
    let dir = node.dir().join("images");
    fs::create_dir_all(dir.join("sub")).unwrap();
    let a = FixtureImage::new("docker.io/library/dir-a:1");
    let b = FixtureImage::new("reg.local:5000/team/dir-b:2");
    let c = FixtureImage::new("docker.io/library/dir-c:3");
    write_archive(
        &dir,
        "a.tar.gz",
        &archives::oci_layout(&[&a], true),
        Compress::Gzip,
    );
    write_archive(
        &dir.join("sub"),
        "b.tar.bz2",
        &archives::docker_legacy(&b),
        Compress::Bzip2,
    );
    write_archive(
        &dir,
        "c.tar",
        &archives::oci_bare_tag(&c, "3"),
        Compress::None,
    );
    fs::write(dir.join("README.md"), "not an archive").unwrap();
    let out: ImportResult = import(
        &node,
        &[
            "--pin",
            "--base-name",
            "docker.io/library/dir-c",
            "-o",
            "json",
            s(&dir),
        ],
    )
    .expect_code(0)
    .json();
    // Each archive once, the README.md beside them not an item.
    let mut files: Vec<&str> = out.imported.iter().map(|f| f.file.as_str()).collect();
    files.sort();
    let want_files = ["a.tar.gz", "c.tar", "sub/b.tar.bz2"].map(|f| dir.join(f));
    assert_eq!(files, want_files.iter().map(|f| s(f)).collect::<Vec<_>>());
    let mut want = vec![a.name.clone(), b.name.clone(), c.name.clone()];
    want.sort();
    assert_eq!(out.names(), want, "{out:?}");
    let listed = list(&node);
    for image in [&a, &b, &c] {
        let l = listed.by_tag(&image.name);
        assert_eq!(l.pinned_by, ["user"], "{}", image.name);
        assert_eq!(l.id, image.config_digest());
    }
    // The ID record CRI keeps is pinned too.
    let id_labels = node.image_labels(&a.config_digest());
    assert_eq!(
        id_labels
            .get("io.cri-containerd.pinned")
            .map(String::as_str),
        Some("pinned")
    );
}

/// Archives of a directory are imported two at a time; what they share comes out as if
/// imported one by one: the later archive keeps a tag both carry, and a layer both bring
/// is applied once.
#[test]
fn a_directory_imports_archives_at_once_and_the_later_keeps_a_shared_tag() {
    let node = Node::start();
    let dir = node.dir().join("at-once");
    fs::create_dir_all(&dir).unwrap();
    let base = archives::noise_layer(11, 48, "base");
    let big = archives::noise_layer(12, 192, "big");
    let small = archives::noise_layer(13, 1, "small");
    let tag = "docker.io/library/at-once:1";
    // a.tar comes first and takes longest; b.tar, with the same tag, is written and
    // unpacked long before it.
    archives::write_layered_oci(&dir.join("a.tar"), tag, "/a", &[&base, &big]);
    archives::write_layered_oci(&dir.join("b.tar"), tag, "/b", &[&base, &small]);
    let run = import(&node, &["-v", "-o", "json", s(&dir)]).expect_code(0);
    let out: ImportResult = run.json();
    let files: Vec<&str> = out.imported.iter().map(|f| f.file.as_str()).collect();
    let (a, b) = (dir.join("a.tar"), dir.join("b.tar"));
    assert_eq!(files, [s(&a), s(&b)], "{out:?}");
    assert!(out.imported.iter().all(|f| f.images.len() == 1), "{out:?}");
    let (a_id, b_id) = (&out.imported[0].images[0].id, &out.imported[1].images[0].id);
    assert_ne!(a_id, b_id);
    // They ran at once: b was done before a.
    let at = |what: &str| {
        run.stderr
            .find(what)
            .unwrap_or_else(|| panic!("no {what:?} in {}", run.stderr))
    };
    let done = |p: &Path| at(&format!("{}: written and unpacked after", p.display()));
    assert!(
        done(&b) < done(&a),
        "b.tar was not done first: {}",
        run.stderr
    );
    // The tag is b's, as it would be after `import a.tar` then `import b.tar`.
    let b_image = &out.imported[1].images[0];
    assert_eq!(b_image.status, "replaced", "{out:?}");
    assert_eq!(b_image.was.as_deref(), Some(a_id.as_str()), "{out:?}");
    assert_eq!(list(&node).by_tag(tag).id, *b_id);
    // The shared base was applied by one import and found by the other, not applied by
    // both at once.
    assert_eq!(
        run.stderr.matches("is unpacked already").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("was wasted"), "{}", run.stderr);
    // Both images whole: each one's top snapshot is there, and no lease is left.
    let snapshots = node.ctr_ok(&["snapshots", "ls"]);
    assert_eq!(snapshots.lines().count(), 1 + 3, "{snapshots}");
    assert_eq!(node.ctr_ok(&["leases", "ls", "-q"]).trim(), "");
}

/// A zstd-compressed `docker save` archive names its images only in its last member, an
/// OCI layout's documents may come anywhere: crimg learns the images in a quick first
/// pass and unpacks each layer while the archive is still being read, and the image
/// comes out whole.
#[test]
fn compressed_archives_are_unpacked_while_they_are_read() {
    let node = Node::start();
    let dir = node.dir().join("early");
    fs::create_dir_all(&dir).unwrap();
    for (n, kind) in ["docker", "oci"].into_iter().enumerate() {
        let layers: Vec<Vec<u8>> = (0..4)
            .map(|i| archives::noise_layer(31 + 10 * n as u64 + i, 24, &format!("l{i}")))
            .collect();
        let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
        let name = format!("docker.io/library/early-{kind}:1");
        let (archive, id) = if kind == "docker" {
            let (members, id) = archives::docker_legacy_layered(&name, "/l0", &refs);
            let path = write_archive(&dir, "early.tar.zst", &members, Compress::Zstd);
            (path, id)
        } else {
            let plain = dir.join("early-oci.tar");
            let id = archives::write_layered_oci(&plain, &name, "/l0", &refs);
            let path = dir.join("early-oci.tar.zst");
            let bytes = fs::read(&plain).unwrap();
            archives::write(&path, &archives::compress(Compress::Zstd, &bytes));
            (path, id)
        };
        let run = import(&node, &["-v", s(&archive)]).expect_code(0);
        assert!(
            run.stderr.contains("1 chain(s) known ahead"),
            "{kind}: {}",
            run.stderr
        );
        let early: usize = run
            .stderr
            .lines()
            .find_map(|l| {
                l.strip_suffix(" layer(s) unpacked before the archive's end")?
                    .rsplit(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{kind}: no early count: {}", run.stderr));
        assert!(early >= 1, "{kind}: nothing unpacked early: {}", run.stderr);
        assert!(
            !run.stderr.contains("early unpack stopped"),
            "{kind}: {}",
            run.stderr
        );
        assert_eq!(list(&node).by_tag(&name).id, id, "{kind}");
        // Four committed snapshots per image, its chain; no lease left behind.
        let snapshots = node.ctr_ok(&["snapshots", "ls"]);
        assert_eq!(snapshots.lines().count(), 1 + 4 * (n + 1), "{snapshots}");
        assert_eq!(node.ctr_ok(&["leases", "ls", "-q"]).trim(), "");
    }
}

#[test]
fn bad_archives_fail_naming_the_file_and_leave_nothing() {
    let node = Node::start();
    let dir = node.dir().join("bad");
    fs::create_dir_all(&dir).unwrap();
    let keep = FixtureImage::new("docker.io/library/keep:1");
    let good = write_archive(
        &dir,
        "keep.tar",
        &archives::oci_layout(&[&keep], false),
        Compress::None,
    );
    import(&node, &[s(&good)]).expect_code(0);
    let before = node_state(&node);

    let image = FixtureImage::new("docker.io/library/bad:1");
    let members = archives::oci_layout(&[&image], false);
    let plain = archives::tar(&members);
    // The fixture's note file exists only inside its layer.
    let at = archives::find(&plain, b"crimg e2e fixture, seed");
    let mut flipped = plain.clone();
    flipped[at + 7] ^= 0x10;
    let mut traversal = members.clone();
    traversal.insert(1, ("../evil".into(), b"x".to_vec()));
    let mut absolute = members.clone();
    absolute.insert(1, ("/etc/evil".into(), b"x".to_vec()));
    let mut bad_media = members.clone();
    for (path, data) in bad_media.iter_mut() {
        if path.ends_with(image.manifest_digest().trim_start_matches("sha256:")) {
            let text = String::from_utf8(data.clone()).unwrap().replace(
                "application/vnd.oci.image.layer.v1.tar",
                "application/vnd.example.weird",
            );
            *data = text.into_bytes();
        }
    }
    // The manifest changed, so the index must point at its new digest.
    let bad_media = fix_index(&bad_media, &image);

    // A compressed docker save archive whose layer is not the one its config's diff ID
    // says: unpacked early, then refused by the plan's unpack.
    let (mut swapped, _) = archives::docker_legacy_layered(
        "docker.io/library/swapped:1",
        "/x",
        &[&archives::noise_layer(41, 2, "x")],
    );
    swapped[0].1 = archives::noise_layer(42, 2, "x");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "swapped.tar.zst",
            archives::compress(Compress::Zstd, &archives::tar(&swapped)),
            "but the image config says its diff ID is",
        ),
        (
            "truncated.tar",
            plain[..plain.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "truncated.tar.gz",
            archives::compress(Compress::Gzip, &plain)[..3000].to_vec(),
            "truncated",
        ),
        ("flipped.tar", flipped.clone(), "digest"),
        (
            "flipped.tar.zst",
            archives::compress(Compress::Zstd, &flipped),
            "digest",
        ),
        ("traversal.tar", archives::tar(&traversal), "unsafe path"),
        (
            "absolute.tar.lz4",
            archives::compress(Compress::Lz4, &archives::tar(&absolute)),
            "unsafe path",
        ),
        (
            "unknown.tar",
            b"this is not an archive at all, just some text\n".repeat(20),
            "unknown format",
        ),
        (
            "xz.tar",
            [&[0xfd, b'7', b'z', b'X', b'Z', 0][..], &[0u8; 600]].concat(),
            "xz",
        ),
        (
            "media.tar",
            archives::tar(&bad_media),
            "unsupported media type",
        ),
        (
            "empty.tar",
            archives::tar(&vec![("hello".into(), b"x".to_vec())]),
            "not an image archive",
        ),
    ];
    for (name, bytes, problem) in &cases {
        let path = dir.join(name);
        archives::write(&path, bytes);
        let r = import(&node, &[s(&path)]).expect_code(1);
        let line = r.stderr.trim();
        assert!(line.contains(name), "{name}: {line}");
        assert!(
            line.contains(problem),
            "{name}: wanted {problem:?} in {line}"
        );
        assert_eq!(line.lines().count(), 1, "{name}: one line: {line}");
        assert_eq!(node_state(&node), before, "{name} left something behind");
    }

    // One good and one bad archive: the good one is imported, exit 4.
    let other = FixtureImage::new("docker.io/library/other:1");
    let good2 = write_archive(
        &dir,
        "other.tar",
        &archives::oci_layout(&[&other], false),
        Compress::None,
    );
    let r = import(
        &node,
        &["-o", "json", s(&good2), s(&dir.join("flipped.tar"))],
    )
    .expect_code(4);
    let out: ImportResult = r.json();
    assert_eq!(out.names(), std::slice::from_ref(&other.name));
    assert_eq!(out.failed.len(), 1);
    assert!(out.failed[0].file.ends_with("flipped.tar"));
    assert!(
        out.failed[0].error.contains("digest"),
        "{}",
        out.failed[0].error
    );
}

/// Rewrites index.json for a changed manifest blob (renaming the blob to its digest).
fn fix_index(members: &Members, image: &FixtureImage) -> Members {
    let old = image.manifest_digest();
    let old_hex = old.trim_start_matches("sha256:").to_string();
    let manifest = members
        .iter()
        .find(|(p, _)| p.ends_with(&old_hex))
        .unwrap()
        .1
        .clone();
    let new = crate::support::digest(&manifest);
    members
        .iter()
        .map(|(p, d)| {
            if p.ends_with(&old_hex) {
                (
                    format!("blobs/sha256/{}", new.trim_start_matches("sha256:")),
                    d.clone(),
                )
            } else if p == "index.json" {
                let text = String::from_utf8(d.clone()).unwrap().replace(&old, &new);
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let mut v = v;
                v["manifests"][0]["size"] = manifest.len().into();
                (p.clone(), serde_json::to_vec(&v).unwrap())
            } else {
                (p.clone(), d.clone())
            }
        })
        .collect()
}

#[test]
fn standard_input() {
    let node = Node::start();
    let image = FixtureImage::new("docker.io/library/stdin:1");
    let path = node.dir().join("stdin.tar.zst");
    archives::write(
        &path,
        &archives::compress(
            Compress::Zstd,
            &archives::tar(&archives::oci_layout(&[&image], true)),
        ),
    );
    let mut cmd = node.crimg();
    cmd.stdin(Stdio::from(fs::File::open(&path).unwrap()));
    let out: ImportResult = crimg(cmd, &["import", "-o", "json", "-"])
        .expect_code(0)
        .json();
    assert_eq!(out.imported[0].file, "-");
    assert_eq!(out.names(), std::slice::from_ref(&image.name));
    assert_eq!(list(&node).by_tag(&image.name).id, image.config_digest());
}

#[test]
fn reference_lists_skip_what_is_present() {
    let node = Node::start();
    let a = FixtureImage::new("docker.io/library/listed:1");
    node.import(&a);
    let dir = node.dir().join("lists");
    fs::create_dir_all(&dir).unwrap();
    let present = dir.join("present.txt");
    fs::write(
        &present,
        "# comment\n\nlisted:1\ndocker.io/library/listed:1\n",
    )
    .unwrap();
    let out: ImportResult = import(&node, &["-o", "json", s(&present)])
        .expect_code(0)
        .json();
    // Both lines name the same image: each reported, under its full name.
    assert_eq!(out.names(), [a.name.as_str(), a.name.as_str()]);
    assert!(
        out.imported[0]
            .images
            .iter()
            .all(|i| i.id == a.config_digest())
    );
    let r = import(&node, &[s(&present)]).expect_code(0);
    assert!(r.stdout.contains("present"), "{}", r.stdout);

    // No network here: a registry nobody listens on fails at once.
    let mixed = dir.join("mixed.txt");
    fs::write(&mixed, "listed:1\n127.0.0.1:1/nothing/here:1\n").unwrap();
    let out: ImportResult = import(&node, &["-o", "json", s(&mixed)])
        .expect_code(4)
        .json();
    assert_eq!(out.failed.len(), 1);
    // The line, the reference, then why: the cause is matched after the echoed reference.
    let cause = out.failed[0]
        .error
        .split_once("line 2: 127.0.0.1:1/nothing/here:1: ")
        .unwrap_or_else(|| panic!("{}", out.failed[0].error))
        .1;
    assert!(
        cause.contains("connection refused"),
        "{}",
        out.failed[0].error
    );
    assert!(out.failed[0].file.ends_with("mixed.txt"));
}

/// A `crimg import --watch` child whose stderr is collected line by line.
struct Watcher {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watcher {
    fn start(node: &Node, dir: &Path) -> Watcher {
        let mut cmd = node.crimg();
        cmd.args(["import", "--watch", "-v", s(dir)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn crimg import --watch");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Watcher {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Waits (bounded) for a stderr line containing `text`.
    fn wait_line(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if self.seen.iter().any(|l| l.contains(text)) {
            return;
        }
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(text);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!(
            "no {text:?} from the watcher within {timeout:?}; it said:\n{}",
            self.seen.join("\n")
        );
    }

    /// SIGTERM, then the exit code (bounded).
    fn stop(mut self) -> (i32, Vec<String>) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let Some(status) =
            crate::support::sys::wait_bounded(&mut self.child, Duration::from_secs(10))
        else {
            panic!(
                "the watcher did not stop on SIGTERM: {}",
                self.seen.join("\n")
            );
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        (status.code().unwrap_or(-1), self.seen)
    }
}

#[test]
fn watch_imports_new_files_and_remembers_them_across_restarts() {
    let node = Node::start();
    let dir = node.dir().join("watched");
    fs::create_dir_all(&dir).unwrap();
    let image = FixtureImage::new("docker.io/library/watched:1");
    let mut w = Watcher::start(&node, &dir);
    w.wait_line("watching", Duration::from_secs(10));
    // Written elsewhere and moved in, as a complete file.
    let tmp = node.dir().join("watched.tar.gz.tmp");
    archives::write(
        &tmp,
        &archives::compress(
            Compress::Gzip,
            &archives::tar(&archives::oci_layout(&[&image], false)),
        ),
    );
    fs::rename(&tmp, dir.join("watched.tar.gz")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !list(&node).has_tag(&image.name) {
        assert!(
            Instant::now() < deadline,
            "not imported: {}",
            w.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    w.wait_line("imported", Duration::from_secs(5));
    let (code, said) = w.stop();
    assert_eq!(code, 0, "{}", said.join("\n"));
    let state = fs::read_to_string(node.dir().join("crimg-state/import-watch.json")).unwrap();
    assert!(state.contains("watched.tar.gz"), "{state}");

    // After a restart the file is skipped: remembered by path, size and mtime.
    let mut w = Watcher::start(&node, &dir);
    w.wait_line("skipped", Duration::from_secs(10));
    let (code, said) = w.stop();
    assert_eq!(code, 0);
    assert!(
        !said.iter().any(|l| l.contains("imported 1")),
        "{}",
        said.join("\n")
    );
}

/// An import that points a pinned tag at another image takes the pin along: the new image is
/// pinned on every record, the old one, left without a tag, is no longer pinned (a prune can
/// remove it), and the report says what each name replaced. An old image that still has
/// another tag stays pinned.
#[test]
fn an_imported_tag_moved_from_another_image_takes_its_pin_along() {
    let node = Node::start();
    let dir = node.dir().join("moves");
    fs::create_dir_all(&dir).unwrap();
    let old_m = FixtureImage::with_seed("docker.io/library/moving:1", "before-m");
    let old_s = FixtureImage::with_seed("docker.io/library/staying:1", "before-s");
    let new_m = FixtureImage::with_seed("docker.io/library/moving:1", "after-m");
    let new_s = FixtureImage::with_seed("docker.io/library/staying:1", "after-s");
    let first = write_archive(
        &dir,
        "first.tar",
        &archives::oci_layout(&[&old_m, &old_s], true),
        Compress::None,
    );
    let second = write_archive(
        &dir,
        "second.tar",
        &archives::oci_layout(&[&new_m, &new_s], true),
        Compress::None,
    );
    let statuses = |out: &ImportResult| -> Vec<(String, String, Option<String>)> {
        assert_eq!(out.imported.len(), 1, "{out:?}");
        let mut v: Vec<_> = out.imported[0]
            .images
            .iter()
            .map(|i| (i.name.clone(), i.status.clone(), i.was.clone()))
            .collect();
        v.sort();
        v
    };
    let out: ImportResult = import(&node, &["--pin", "-o", "json", s(&first)])
        .expect_code(0)
        .json();
    assert_eq!(
        statuses(&out),
        [
            ("docker.io/library/moving:1".into(), "imported".into(), None),
            (
                "docker.io/library/staying:1".into(),
                "imported".into(),
                None
            ),
        ]
    );
    // The old `staying` image keeps a second tag, pinned like every record of it.
    node.ctr_ok(&[
        "images",
        "tag",
        "docker.io/library/staying:1",
        "docker.io/library/staying:2",
    ]);
    crimg(node.crimg(), &["pin", "docker.io/library/staying:2"]).expect_code(0);

    let run = import(&node, &["-o", "json", s(&second)]).expect_code(0);
    let out: ImportResult = run.json();
    assert_eq!(
        statuses(&out),
        [
            (
                "docker.io/library/moving:1".into(),
                "replaced".into(),
                Some(old_m.config_digest())
            ),
            (
                "docker.io/library/staying:1".into(),
                "replaced".into(),
                Some(old_s.config_digest())
            ),
        ]
    );
    let listed = list(&node);
    let by_id = |id: &str| {
        listed
            .images
            .iter()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("no image {id} in {:#?}", listed.images))
    };
    // The pins moved with the tags, onto every record of the new images.
    for new in [&new_m, &new_s] {
        let l = listed.by_tag(&new.name);
        assert_eq!(l.id, new.config_digest(), "{}", new.name);
        assert_eq!(l.pinned_by, ["user"], "{}", new.name);
        assert_eq!(
            node.image_labels(&new.config_digest())
                .get("io.cri-containerd.pinned")
                .map(String::as_str),
            Some("pinned"),
            "the ID record of {}",
            new.name
        );
    }
    let gone = by_id(&old_m.config_digest());
    assert!(gone.repo_tags.is_empty(), "{gone:?}");
    assert!(
        gone.pinned_by.is_empty(),
        "an untagged image stayed pinned: {gone:?}"
    );
    let kept = by_id(&old_s.config_digest());
    assert_eq!(kept.repo_tags, ["docker.io/library/staying:2"]);
    assert_eq!(kept.pinned_by, ["user"], "{kept:?}");
    // Said once, for the image that lost its last tag.
    let released: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("no tag left"))
        .collect();
    assert_eq!(released.len(), 1, "{}", run.stderr);
    assert!(
        released[0].starts_with("crimg: docker.io/library/moving:1: moved from "),
        "{}",
        run.stderr
    );

    // And a prune may now remove the untagged one, and only it.
    let plan: PruneResult = crimg(node.crimg(), &["prune", "--dry-run", "-o", "json"])
        .expect_code(0)
        .json();
    let removed: Vec<&str> = plan.removed.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(removed, [old_m.config_digest().as_str()], "{plan:#?}");
}
