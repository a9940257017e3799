//! The conformance matrix with real tools: archives that podman, buildah, skopeo, docker
//! and ctr write import, run in a pod and keep their producer's image ID; archives that
//! `crimg export` writes load in each of them with the node's image ID.

use std::fs;
use std::path::Path;
use std::process::Command;

use crimg::proto::runtime::v1 as cri;
use serde::Deserialize;

use crate::run::crimg;
use crate::support::Node;
use crate::support::tools::{self, Dockerd, Podman, run_ok, s, skopeo};

#[derive(Debug, Deserialize)]
struct ImportResult {
    imported: Vec<ImportedFile>,
}

#[derive(Debug, Deserialize)]
struct ImportedFile {
    images: Vec<ImportedImage>,
}

#[derive(Debug, Deserialize)]
struct ImportedImage {
    name: String,
    id: String,
}

/// `crimg import ARGS -o json` must succeed; returns (name, id) of every image, sorted.
fn import(node: &Node, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["import", "-o", "json"];
    all.extend_from_slice(args);
    images_of(crimg(node.crimg(), &all).expect_code(0).json())
}

/// (name, id) of every image an import's JSON result names, sorted.
fn images_of(r: ImportResult) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r
        .imported
        .into_iter()
        .flat_map(|f| f.images.into_iter().map(|i| (i.name, i.id)))
        .collect();
    v.sort();
    v
}

/// Imports `path` and checks the names and IDs it holds.
fn import_expect(node: &Node, path: &Path, want: &[(&str, &str)]) {
    let got = import(node, &[s(path)]);
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(n, i)| ((*n).to_string(), (*i).to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "images imported from {}", path.display());
}

/// A container of `image` runs in the pod, and CRI reports the image under `id`.
fn runs(node: &Node, pod: &str, pod_name: &str, image: &str, id: &str) {
    let status = node
        .cri_image_status(image)
        .unwrap_or_else(|| panic!("CRI does not know {image}"));
    assert_eq!(status.id, id, "CRI's image ID of {image}");
    let c = node.run_container(pod, pod_name, image);
    node.wait_for(&format!("a container of {image} to run"), || {
        node.container_state(&c) == cri::ContainerState::ContainerRunning
    });
}

/// Compresses a file with `gzip -c` or `zstd -c` into `to`.
fn compress(tool: &str, from: &Path, to: &Path) {
    tools::require(tool);
    let out = fs::File::create(to).expect("create compressed file");
    let status = Command::new(tool)
        .arg("-c")
        .arg(from)
        .stdout(out)
        .status()
        .expect("run compressor");
    assert!(status.success(), "{tool} -c {} failed", from.display());
}

#[test]
fn interop_containers_tools_archives_import_and_run() {
    let node = Node::start();
    let pm = Podman::new();
    let d = pm.dir().to_path_buf();
    let pod_name = "interop-containers";
    let pod = node.run_pod(pod_name);

    // podman save, default format: docker-archive, `<hex>.tar` layers with
    // `<id>/layer.tar` links to them.
    let a = pm.import("localhost/pm/a:1", "podman-docker-archive");
    let f = d.join("pm-docker.tar");
    run_ok(pm.podman().args(["save", "-o", s(&f), "localhost/pm/a:1"]));
    import_expect(&node, &f, &[("localhost/pm/a:1", &a)]);
    runs(&node, &pod, pod_name, "localhost/pm/a:1", &a);

    // The same layout streamed: zstd-compressed, and on stdin.
    let b = pm.import("localhost/pm/b:1", "podman-docker-archive-zstd");
    let f = d.join("pm-docker-b.tar");
    run_ok(pm.podman().args(["save", "-o", s(&f), "localhost/pm/b:1"]));
    let z = d.join("pm-docker-b.tar.zst");
    compress("zstd", &f, &z);
    import_expect(&node, &z, &[("localhost/pm/b:1", &b)]);
    runs(&node, &pod, pod_name, "localhost/pm/b:1", &b);
    let c = pm.import("localhost/pm/c:1", "podman-docker-archive-stdin");
    let f = d.join("pm-docker-c.tar");
    run_ok(pm.podman().args(["save", "-o", s(&f), "localhost/pm/c:1"]));
    let r = crimg(
        {
            let mut cmd = node.crimg();
            cmd.stdin(fs::File::open(&f).expect("open archive"));
            cmd
        },
        &["import", "-o", "json", "-"],
    )
    .expect_code(0)
    .json::<ImportResult>();
    let got: Vec<(&str, &str)> = r
        .imported
        .iter()
        .flat_map(|f| f.images.iter().map(|i| (i.name.as_str(), i.id.as_str())))
        .collect();
    assert_eq!(got, vec![("localhost/pm/c:1", c.as_str())], "stdin import");
    runs(&node, &pod, pod_name, "localhost/pm/c:1", &c);

    // The same layout extracted into a directory, links and all.
    let x = pm.import("localhost/pm/x:1", "podman-docker-archive-extracted");
    let f = d.join("pm-docker-x.tar");
    run_ok(pm.podman().args(["save", "-o", s(&f), "localhost/pm/x:1"]));
    let dir = d.join("pm-docker-x");
    fs::create_dir(&dir).expect("create extraction dir");
    run_ok(Command::new("tar").arg("-xf").arg(&f).arg("-C").arg(&dir));
    import_expect(&node, &dir, &[("localhost/pm/x:1", &x)]);
    runs(&node, &pod, pod_name, "localhost/pm/x:1", &x);

    // podman save -m: several images in one docker-archive.
    let m1 = pm.import("localhost/pm/m1:1", "podman-multi-1");
    let m2 = pm.import("localhost/pm/m2:2", "podman-multi-2");
    let f = d.join("pm-multi.tar");
    run_ok(pm.podman().args([
        "save",
        "-m",
        "-o",
        s(&f),
        "localhost/pm/m1:1",
        "localhost/pm/m2:2",
    ]));
    import_expect(
        &node,
        &f,
        &[("localhost/pm/m1:1", &m1), ("localhost/pm/m2:2", &m2)],
    );
    runs(&node, &pod, pod_name, "localhost/pm/m1:1", &m1);
    runs(&node, &pod, pod_name, "localhost/pm/m2:2", &m2);

    // podman save --format oci-archive and oci-dir: full names in `ref.name`.
    let o = pm.import("localhost/pm/o:1", "podman-oci-archive");
    let f = d.join("pm-oci.tar");
    run_ok(pm.podman().args([
        "save",
        "--format",
        "oci-archive",
        "-o",
        s(&f),
        "localhost/pm/o:1",
    ]));
    import_expect(&node, &f, &[("localhost/pm/o:1", &o)]);
    runs(&node, &pod, pod_name, "localhost/pm/o:1", &o);
    let od = pm.import("localhost/pm/od:1", "podman-oci-dir");
    let f = d.join("pm-oci-dir");
    run_ok(pm.podman().args([
        "save",
        "--format",
        "oci-dir",
        "-o",
        s(&f),
        "localhost/pm/od:1",
    ]));
    import_expect(&node, &f, &[("localhost/pm/od:1", &od)]);
    runs(&node, &pod, pod_name, "localhost/pm/od:1", &od);

    // podman save --format docker-dir: refused, saying what it is and what to use.
    let f = d.join("pm-docker-dir");
    run_ok(pm.podman().args([
        "save",
        "--format",
        "docker-dir",
        "-o",
        s(&f),
        "localhost/pm/od:1",
    ]));
    let r = crimg(node.crimg(), &["import", s(&f)]);
    assert_ne!(r.code, 0, "docker-dir import:\n{}", r.stdout);
    assert!(
        r.stderr.contains("`dir:` layout") && r.stderr.contains("oci-archive"),
        "docker-dir refusal:\n{}",
        r.stderr
    );

    // skopeo copy to docker-archive, oci-archive and an OCI directory, and zstd layers.
    for (i, dest) in [
        "docker-archive",
        "oci-archive",
        "oci",
        "oci-zstd",
        "docker-archive-nameless",
        "oci-nameless",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("localhost/sk/s{i}:1");
        let id = pm.import(&name, &format!("skopeo-{dest}"));
        let src = d.join(format!("sk-src-{i}.tar"));
        run_ok(
            pm.podman()
                .args(["save", "--format", "oci-archive", "-o", s(&src), &name]),
        );
        let out = d.join(format!("sk-{dest}"));
        let mut cmd = skopeo();
        cmd.args(["copy", "-q"]);
        let (target, expected) = match *dest {
            "docker-archive" => (format!("docker-archive:{}:{name}", s(&out)), name.clone()),
            "oci-archive" => (format!("oci-archive:{}:{name}", s(&out)), name.clone()),
            "oci" => (format!("oci:{}:{name}", s(&out)), name.clone()),
            "oci-zstd" => {
                cmd.args(["--dest-compress-format", "zstd"]);
                (format!("oci:{}:{name}", s(&out)), name.clone())
            }
            // No name at all: the documented digest reference.
            "docker-archive-nameless" => (format!("docker-archive:{}", s(&out)), String::new()),
            _ => (format!("oci:{}", s(&out)), String::new()),
        };
        run_ok(cmd.arg(format!("oci-archive:{}", s(&src))).arg(&target));
        let got = import(&node, &[s(&out)]);
        assert_eq!(got.len(), 1, "{dest}: {got:?}");
        assert_eq!(got[0].1, id, "{dest}: image ID");
        if expected.is_empty() {
            assert!(
                got[0].0.starts_with("docker.io/library/import@sha256:"),
                "{dest}: a nameless image's reference: {}",
                got[0].0
            );
        } else {
            assert_eq!(got[0].0, expected, "{dest}: name");
        }
        runs(&node, &pod, pod_name, &got[0].0, &id);
    }

    // buildah push of an image buildah made to docker-archive and oci-archive.
    for (i, transport) in ["docker-archive", "oci-archive"].iter().enumerate() {
        let name = format!("localhost/bh/b{i}:1");
        let id = pm.buildah_image("scratch", &name, &format!("buildah-{transport}"));
        let out = d.join(format!("bh-{transport}.tar"));
        run_ok(
            pm.buildah()
                .args(["push", "-q", &name])
                .arg(format!("{transport}:{}:{name}", s(&out))),
        );
        import_expect(&node, &out, &[(&name, &id)]);
        runs(&node, &pod, pod_name, &name, &id);
    }

    // ctr images export, from another namespace of the same containerd.
    let name = "localhost/ctr/x:1";
    let id = pm.import(name, "ctr-export");
    let src = d.join("ctr-src.tar");
    run_ok(
        pm.podman()
            .args(["save", "--format", "oci-archive", "-o", s(&src), name]),
    );
    let ctr = |args: &[&str]| {
        run_ok(
            Command::new("ctr")
                .arg("--address")
                .arg(node.socket())
                .args(["--namespace", "interop-producer"])
                .args(args),
        )
    };
    ctr(&["images", "import", "--no-unpack", s(&src)]);
    let out = d.join("ctr-export.tar");
    // 1.7 and 2.x export through the transfer API by default; on 2.1 its archive was once
    // seen to end early under load (ctr returned before the last bytes reached the file).
    // `--local` writes the same archive in ctr's own process.
    let mut export = vec!["images", "export"];
    if crate::support::runtime::containerd().at_least(1, 7) {
        export.push("--local");
    }
    export.extend([s(&out), name]);
    ctr(&export);
    import_expect(&node, &out, &[(name, &id)]);
    runs(&node, &pod, pod_name, name, &id);
}

#[test]
fn interop_docker_save_archives_import_and_run() {
    let node = Node::start();
    let docker = Dockerd::start();
    let d = docker.dir().to_path_buf();
    let pod_name = "interop-docker";
    let pod = node.run_pod(pod_name);
    // Short names, as docker writes them in RepoTags, normalised as `docker load` does.
    let cases = [
        ("one", vec!["pm2:2"]),
        ("several", vec!["pm3:3", "team/pm4:4"]),
        ("gzip", vec!["pm5:5"]),
        ("zstd", vec!["pm6:6"]),
    ];
    for (case, names) in cases {
        let ids: Vec<String> = names
            .iter()
            .map(|n| docker.import(n, &format!("docker-{case}-{n}")))
            .collect();
        let f = d.join(format!("docker-{case}.tar"));
        run_ok(docker.docker().args(["save", "-o", s(&f)]).args(&names));
        let f = match case {
            "gzip" => {
                let z = d.join("docker-gzip.tar.gz");
                compress("gzip", &f, &z);
                z
            }
            "zstd" => {
                let z = d.join("docker-zstd.tar.zst");
                compress("zstd", &f, &z);
                z
            }
            _ => f,
        };
        let full: Vec<String> = names
            .iter()
            .map(|n| {
                if n.contains('/') {
                    format!("docker.io/{n}")
                } else {
                    format!("docker.io/library/{n}")
                }
            })
            .collect();
        let want: Vec<(&str, &str)> = full
            .iter()
            .zip(&ids)
            .map(|(n, i)| (n.as_str(), i.as_str()))
            .collect();
        assert_eq!(want.len(), names.len());
        import_expect(&node, &f, &want);
        for (n, i) in &want {
            runs(&node, &pod, pod_name, n, i);
        }
    }
}

/// The config digest of every image an OCI layout directory's index names.
fn oci_dir_ids(dir: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let mut ids = Vec::new();
    for m in index["manifests"].as_array().expect("manifests") {
        let digest = m["digest"].as_str().expect("digest");
        let blob = dir.join("blobs").join(digest.replacen(':', "/", 1));
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(blob).expect("manifest blob")).expect("manifest");
        ids.push(
            manifest["config"]["digest"]
                .as_str()
                .expect("config")
                .to_string(),
        );
    }
    ids.sort();
    ids
}

#[test]
fn interop_exports_load_in_every_tool() {
    let node = Node::start();
    let pm = Podman::new();
    let docker = Dockerd::start();
    tools::require("umoci");
    let d = pm.dir().to_path_buf();
    // Two images on the node, imported from podman archives.
    let mut ids = Vec::new();
    for (name, seed) in [
        ("localhost/ex/a:1", "export-a"),
        ("localhost/ex/b:2", "export-b"),
    ] {
        let id = pm.import(name, seed);
        let f = d.join(format!("{seed}.tar"));
        run_ok(
            pm.podman()
                .args(["save", "--format", "oci-archive", "-o", s(&f), name]),
        );
        import_expect(&node, &f, &[(name, &id)]);
        run_ok(pm.podman().args(["rmi", name]));
        ids.push(id);
    }
    let one = d.join("export-one.tar");
    let several = d.join("export-several.tar");
    crimg(node.crimg(), &["export", "-O", s(&one), "localhost/ex/a:1"]).expect_code(0);
    crimg(
        node.crimg(),
        &[
            "export",
            "-O",
            s(&several),
            "localhost/ex/a:1",
            "localhost/ex/b:2",
        ],
    )
    .expect_code(0);
    let names = ["localhost/ex/a:1", "localhost/ex/b:2"];
    for (archive, count) in [(&one, 1), (&several, 2)] {
        let what = archive.display().to_string();
        // docker load
        run_ok(docker.docker().args(["load", "-i", s(archive)]));
        for (n, id) in names.iter().zip(&ids).take(count) {
            assert_eq!(&docker.id(n), id, "{what}: docker's ID of {n}");
            run_ok(docker.docker().args(["rmi", n]));
        }
        // podman load
        run_ok(pm.podman().args(["load", "-i", s(archive)]));
        for (n, id) in names.iter().zip(&ids).take(count) {
            assert_eq!(&pm.id(n), id, "{what}: podman's ID of {n}");
            run_ok(pm.podman().args(["rmi", n]));
        }
        // skopeo copy docker-archive: and oci-archive:, by name and by tag.
        for (i, (n, id)) in names.iter().zip(&ids).take(count).enumerate() {
            let tag = n.rsplit_once(':').expect("tag").1;
            for (transport, src) in [
                (
                    "docker-archive",
                    format!("docker-archive:{}:{n}", s(archive)),
                ),
                ("oci-archive", format!("oci-archive:{}:{tag}", s(archive))),
            ] {
                let out = d.join(format!("skopeo-{count}-{i}-{transport}"));
                run_ok(
                    skopeo()
                        .args(["copy", "-q", &src])
                        .arg(format!("oci:{}", s(&out))),
                );
                assert_eq!(
                    oci_dir_ids(&out),
                    vec![id.clone()],
                    "{what}: skopeo copy {src}"
                );
            }
        }
        // umoci unpack of the OCI layout.
        let layout = d.join(format!("umoci-{count}"));
        fs::create_dir_all(&layout).expect("layout dir");
        run_ok(
            Command::new("tar")
                .arg("-xf")
                .arg(archive)
                .arg("-C")
                .arg(&layout),
        );
        let mut want: Vec<String> = ids.iter().take(count).cloned().collect();
        want.sort();
        assert_eq!(oci_dir_ids(&layout), want, "{what}: the layout umoci reads");
        for (i, n) in names.iter().enumerate().take(count) {
            let tag = n.rsplit_once(':').expect("tag").1;
            let bundle = d.join(format!("bundle-{count}-{i}"));
            run_ok(
                Command::new("umoci")
                    .args(["unpack", "--image"])
                    .arg(format!("{}:{tag}", s(&layout)))
                    .arg(&bundle),
            );
            let seed = fs::read_to_string(bundle.join("rootfs/seed")).expect("unpacked seed");
            assert_eq!(
                seed,
                ["export-a", "export-b"][i],
                "{what}: umoci unpack of {n}"
            );
        }
        // ctr images import, into another namespace of the node's containerd.
        let ns = format!("interop-consumer-{count}");
        let ctr = |args: &[&str]| {
            run_ok(
                Command::new("ctr")
                    .arg("--address")
                    .arg(node.socket())
                    .args(["--namespace", &ns])
                    .args(args),
            )
        };
        ctr(&["images", "import", s(archive)]);
        let listed = ctr(&["images", "ls"]);
        for (n, id) in names.iter().zip(&ids).take(count) {
            let line = listed
                .lines()
                .find(|l| l.starts_with(&format!("{n} ")))
                .unwrap_or_else(|| panic!("{what}: ctr lists no {n}:\n{listed}"));
            let target = line.split_whitespace().nth(2).expect("digest column");
            let manifest: serde_json::Value =
                serde_json::from_str(&ctr(&["content", "get", target])).expect("manifest");
            assert_eq!(
                manifest["config"]["digest"].as_str(),
                Some(id.as_str()),
                "{what}: ctr's image {n}"
            );
        }
    }
}

/// A docker-archive as podman writes it, but in the order a streaming reader likes least:
/// manifest.json first, then `<id>/layer.tar` linking to `<hex>.tar`, which comes last.
fn linked_docker_archive(image: &crate::support::FixtureImage, layer_present: bool) -> Vec<u8> {
    let blobs = image.blobs();
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let config_file = format!("{}.json", hex(&image.config_digest()));
    let layer_file = format!("{}.tar", hex(&image.layer_digest()));
    let manifest = serde_json::json!([{
        "Config": config_file,
        "RepoTags": [image.name],
        "Layers": ["v1id/layer.tar"],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_cksum();
        b.append_data(&mut h, path, data).expect("tar member");
    };
    file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "v1id/layer.tar", format!("../{layer_file}"))
        .expect("tar link");
    file(&mut b, &config_file, &blobs[&image.config_digest()]);
    if layer_present {
        file(&mut b, &layer_file, &blobs[&image.layer_digest()]);
    }
    b.into_inner().expect("finish tar")
}

#[test]
fn interop_docker_archive_links_resolve_in_any_order() {
    use crate::support::FixtureImage;
    use crate::support::archives::{self, Compress};
    let node = Node::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let image = FixtureImage::with_seed("localhost/linked/app:1", "linked-layer");
    let f = dir.path().join("linked.tar.gz");
    archives::write(
        &f,
        &archives::compress(Compress::Gzip, &linked_docker_archive(&image, true)),
    );
    import_expect(&node, &f, &[(&image.name, &image.config_digest())]);
    let pod = node.run_pod("interop-linked");
    runs(
        &node,
        &pod,
        "interop-linked",
        &image.name,
        &image.config_digest(),
    );

    // A link to a member the archive does not hold: the layer is named, nothing is left.
    let other = FixtureImage::with_seed("localhost/linked/broken:1", "linked-broken");
    let f = dir.path().join("dangling.tar.gz");
    archives::write(
        &f,
        &archives::compress(Compress::Gzip, &linked_docker_archive(&other, false)),
    );
    let r = crimg(node.crimg(), &["import", s(&f)]).expect_code(1);
    assert!(
        r.stderr
            .contains("layer v1id/layer.tar is missing from the archive"),
        "dangling link:\n{}",
        r.stderr
    );
    assert!(
        node.cri_image_status(&other.name).is_none(),
        "no image from a failed import"
    );
}

/// Real producers' archives piped gzip-compressed into `crimg import -`, with everything
/// from `manifest.json` or `index.json` on held back: each image's chain is unpacked from
/// the stream alone (podman's and docker's `docker save` configs, an OCI layout's
/// manifests), all of them before the rest is sent.
#[test]
fn interop_streamed_archives_are_unpacked_before_their_index() {
    use std::io::{Read as _, Write as _};
    use std::process::Stdio;

    use crate::support::archives::{self, Compress};

    let node = Node::start();
    let pm = Podman::new();
    let d = pm.dir().to_path_buf();
    // (what, archive, its images' names and IDs, the layers it unpacks)
    type Case = (
        &'static str,
        std::path::PathBuf,
        Vec<(String, String)>,
        usize,
    );
    let mut cases: Vec<Case> = vec![];
    // podman save -m: docker-archive, two single-layer images and one on top of the
    // first (three chains, one base shared).
    let names = ["localhost/st/a:1", "localhost/st/b:1", "localhost/st/c:1"];
    let ids = [
        pm.import(names[0], "stream-a"),
        pm.import(names[1], "stream-b"),
        pm.buildah_image(names[0], names[2], "stream-c"),
    ];
    let f = d.join("st-docker.tar");
    run_ok(pm.podman().args(["save", "-m", "-o", s(&f)]).args(names));
    let want: Vec<(String, String)> = names
        .iter()
        .zip(&ids)
        .map(|(n, i)| (n.to_string(), i.clone()))
        .collect();
    cases.push(("podman docker-archive", f, want, 3));
    // podman save --format oci-archive of a two-layer image.
    pm.import("localhost/st/e:1", "stream-e");
    let oci = "localhost/st/d:1";
    let oci_id = pm.buildah_image("localhost/st/e:1", oci, "stream-d");
    let f = d.join("st-oci.tar");
    run_ok(
        pm.podman()
            .args(["save", "--format", "oci-archive", "-o", s(&f), oci]),
    );
    cases.push(("podman oci-archive", f, vec![(oci.to_string(), oci_id)], 2));
    // docker save (Debian's docker: the legacy layout, `<id>/layer.tar`) of two images.
    let docker = Dockerd::start();
    let dnames = ["st-d1:1", "st-d2:1"];
    let dids: Vec<String> = dnames
        .iter()
        .map(|n| docker.import(n, &format!("stream-{n}")))
        .collect();
    let f = docker.dir().join("st-docker-save.tar");
    run_ok(docker.docker().args(["save", "-o", s(&f)]).args(dnames));
    let want = dnames
        .iter()
        .zip(&dids)
        .map(|(n, i)| (format!("docker.io/library/{n}"), i.clone()))
        .collect();
    cases.push(("docker save", f, want, 2));

    let podman_archive = cases[0].1.clone();
    for (case, f, want, layers) in cases {
        let plain = fs::read(&f).expect("read archive");
        let cut = tar_member_offsets(&plain)
            .into_iter()
            .find(|(path, _)| path == "manifest.json" || path == "index.json")
            .unwrap_or_else(|| panic!("{case}: no manifest.json or index.json"))
            .1;
        assert!(
            plain.len() - cut < 64 << 10,
            "{case}: {} bytes after the index: layers come after it",
            plain.len() - cut
        );
        let mut child = node
            .crimg()
            .args(["import", "-v", "-o", "json", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run crimg import -");
        let before = node.committed_snapshots();
        // Its output is read as it comes: a full pipe would stop it.
        let drain = |r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = vec![];
                let mut r = r;
                r.read_to_end(&mut buf).map(|_| buf)
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
        // Two gzip members, one stream: the first is decompressed whole on its own. The
        // rest waits for `go`, written by a thread so that a reader that stops fails the
        // wait below instead of blocking the test.
        let mut stdin = child.stdin.take().expect("stdin");
        let (first, rest) = (
            archives::compress(Compress::Gzip, &plain[..cut]),
            archives::compress(Compress::Gzip, &plain[cut..]),
        );
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            stdin.write_all(&first)?;
            stdin.flush()?;
            if wait.recv().is_ok() {
                stdin.write_all(&rest)?;
            }
            Ok(())
        });
        let said = |child: &mut std::process::Child, stderr: std::thread::JoinHandle<_>| {
            child.kill().ok();
            child.wait().ok();
            let bytes: std::io::Result<Vec<u8>> = stderr.join().expect("stderr reader");
            String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while node.committed_snapshots() < before + layers {
            if std::time::Instant::now() > deadline {
                let listing = node.ctr_ok(&["snapshots", "ls"]);
                let now = node.committed_snapshots() - before;
                drop(go);
                panic!(
                    "{case}: {now} of {layers} layer(s) unpacked from the stream before its \
                     index: {listing}\ncrimg said: {}",
                    said(&mut child, stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let early = node.ctr_ok(&["snapshots", "ls"]);
        // The writer has stopped only if crimg did: its exit says why, below.
        go.send(()).ok();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for crimg") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{case}: crimg still running 120 s after its input ended: {}",
                    said(&mut child, stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let wrote = writer.join().expect("writer thread");
        let out = std::process::Output {
            status,
            stdout: stdout.join().expect("stdout reader").expect("read stdout"),
            stderr: stderr.join().expect("stderr reader").expect("read stderr"),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        wrote.unwrap_or_else(|e| panic!("{case}: writing the archive: {e}: {stderr}"));
        // What was unpacked early was what the import needed: nothing more came after.
        assert_eq!(
            node.ctr_ok(&["snapshots", "ls"]),
            early,
            "{case}: snapshots made after the index"
        );
        assert!(
            stderr.contains(&format!(
                ": {layers} layer(s) unpacked before the archive's end"
            )),
            "{case}: {stderr}"
        );
        let got = images_of(serde_json::from_slice(&out.stdout).expect("JSON result"));
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{case}");
        assert_eq!(node.ctr_ok(&["leases", "ls", "-q"]).trim(), "", "{case}");
    }
    // A gzip file has no first pass either: its chains are found as it is read (its
    // images are unpacked already here, so only that they were found is seen).
    let gz = d.join("st-docker.tar.gz");
    compress("gzip", &podman_archive, &gz);
    let run = crimg(node.crimg(), &["import", "-v", s(&gz)]).expect_code(0);
    assert!(
        run.stderr
            .contains("layer(s) unpacked before the archive's end")
            && !run.stderr.contains("early unpack stopped"),
        "gzip file: {}",
        run.stderr
    );
}

/// Each member's path and the offset of its first header in a plain tar.
fn tar_member_offsets(plain: &[u8]) -> Vec<(String, usize)> {
    let mut a = tar::Archive::new(plain);
    a.entries()
        .expect("read the tar")
        .map(|e| {
            let e = e.expect("tar entry");
            let path = e.path().expect("path").to_string_lossy().into_owned();
            let header = e.raw_header_position() as usize;
            (path, header)
        })
        .collect()
}
