//! `crimg export`: archives that ctr imports back, shared blobs written once, stdout and
//! compression, safe targets, and images whose layers containerd discarded, fetched back
//! through the node's mirror configuration from a local registry.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::json::{ExportResult, OciIndex};
use crate::run::crimg;
use crate::support::archives::{export_dir, tar_entries};
use crate::support::content::{
    content_digests, content_labels, ctr_ns_ok, discarded_image, force_gc, pulled_layer, records,
};
use crate::support::registry::{Registry, TokenMirror};
use crate::support::{FixtureImage, Node};

/// Docker's `manifest.json` entry.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Imports an archive into namespace `ns` with ctr and checks every name came back
/// pointing at the same target as in k8s.io.
fn assert_imports(node: &Node, archive: &Path, ns: &str, names: &[&str]) {
    ctr_ns_ok(node, ns, &["images", "import", archive.to_str().unwrap()]);
    let theirs = records(node, ns);
    let ours = records(node, "k8s.io");
    for name in names {
        assert_eq!(
            theirs.get(*name),
            ours.get(*name),
            "{name} after import into {ns}: {theirs:?}"
        );
        assert!(
            theirs.contains_key(*name),
            "{name} not imported: {theirs:?}"
        );
    }
}

/// Files in `dir` (names), to see that nothing else was left there.
fn dir_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn round_trip_into_another_namespace_with_shared_blobs_once() {
    let node = Node::start();
    let a1 = FixtureImage::with_seed("docker.io/library/exp-a:1", "exp-a");
    let a2 = FixtureImage::with_seed("docker.io/library/exp-a:2", "exp-a");
    let b = FixtureImage::new("docker.io/library/exp-b:1");
    for f in [&a1, &a2, &b] {
        node.import(f);
    }
    let dir = export_dir(&node);
    let file = dir.join("images.tar");
    let prefix = &a1.config_digest()["sha256:".len()..][..12];
    // A tag, an ID prefix (every tag of that image) and a short name.
    let run = crimg(
        node.crimg(),
        &[
            "-o",
            "json",
            "export",
            "-O",
            file.to_str().unwrap(),
            "docker.io/library/exp-a:1",
            prefix,
            "exp-b:1",
        ],
    )
    .expect_code(0);
    crate::schema::check("export", &run.stdout);
    let result: ExportResult = run.json();
    assert_eq!(result.schema, 1);
    assert_eq!(result.file, file.display().to_string());
    assert_eq!(
        result.images,
        vec![
            "docker.io/library/exp-a:1",
            "docker.io/library/exp-a:2",
            "docker.io/library/exp-b:1"
        ]
    );
    assert_eq!(
        result.blobs, 6,
        "3 blobs per image, the shared image's once"
    );
    assert!(result.fetched.is_empty());
    assert!(
        run.stderr.contains("exported 3 image(s), 6 blob(s)"),
        "{}",
        run.stderr
    );

    let bytes = fs::read(&file).unwrap();
    assert_eq!(result.bytes, bytes.len() as u64);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(dir_names(&dir), BTreeSet::from(["images.tar".to_string()]));

    // Layout files first, then each blob exactly once.
    let entries = tar_entries(&bytes);
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths[..3],
        ["oci-layout", "index.json", "manifest.json"],
        "{paths:?}"
    );
    let blob = |digest: &str| format!("blobs/sha256/{}", &digest["sha256:".len()..]);
    let mut blobs: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| p.starts_with("blobs/sha256/") && p.len() > "blobs/sha256/".len())
        .collect();
    blobs.sort();
    // Each image's layer, config and manifest, the shared image's once: sorted with any
    // repeat kept, so a blob written twice shows.
    let want: BTreeSet<String> = a1
        .blobs()
        .into_keys()
        .chain(b.blobs().into_keys())
        .map(|d| blob(&d))
        .collect();
    assert_eq!(blobs, want.iter().map(String::as_str).collect::<Vec<_>>());
    for (path, data) in &entries {
        if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(crate::support::digest(data), format!("sha256:{hex}"));
        }
    }
    let docker: Vec<DockerEntry> = serde_json::from_slice(&entries[2].1).unwrap();
    assert_eq!(
        docker,
        [
            DockerEntry {
                config: blob(&a1.config_digest()),
                repo_tags: vec![
                    "docker.io/library/exp-a:1".into(),
                    "docker.io/library/exp-a:2".into()
                ],
                layers: vec![blob(&a1.layer_digest())],
            },
            DockerEntry {
                config: blob(&b.config_digest()),
                repo_tags: vec!["docker.io/library/exp-b:1".into()],
                layers: vec![blob(&b.layer_digest())],
            },
        ]
    );
    // One index entry per tag, each at its image's manifest and named by its tag.
    let index: OciIndex = serde_json::from_slice(&entries[1].1).unwrap();
    assert_eq!(index.schema_version, 2);
    let manifests: Vec<(&str, &str, BTreeMap<String, String>)> = index
        .manifests
        .iter()
        .map(|m| {
            (
                m.media_type.as_str(),
                m.digest.as_str(),
                m.annotations.clone(),
            )
        })
        .collect();
    let entry = |name: &str, tag: &str| {
        BTreeMap::from([
            ("io.containerd.image.name".to_string(), name.to_string()),
            (
                "org.opencontainers.image.ref.name".to_string(),
                tag.to_string(),
            ),
        ])
    };
    let (a_manifest, b_manifest) = (a1.manifest_digest(), b.manifest_digest());
    const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    assert_eq!(
        manifests,
        [
            (
                MEDIA_TYPE_MANIFEST,
                a_manifest.as_str(),
                entry("docker.io/library/exp-a:1", "1")
            ),
            (
                MEDIA_TYPE_MANIFEST,
                a_manifest.as_str(),
                entry("docker.io/library/exp-a:2", "2")
            ),
            (
                MEDIA_TYPE_MANIFEST,
                b_manifest.as_str(),
                entry("docker.io/library/exp-b:1", "1")
            ),
        ]
    );

    // skopeo reads it both ways: as Docker's archive (by RepoTag) and as OCI (by ref.name).
    for (src, config) in [
        (
            format!(
                "docker-archive:{}:docker.io/library/exp-b:1",
                file.display()
            ),
            b.config_digest(),
        ),
        (
            format!("oci-archive:{}:2", file.display()),
            a1.config_digest(),
        ),
    ] {
        let out = Command::new("skopeo")
            .args(["inspect", "--config", "--raw"])
            .arg(&src)
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(crate::support::digest(&out.stdout), config, "{src}");
    }

    assert_imports(
        &node,
        &file,
        "other",
        &[
            "docker.io/library/exp-a:1",
            "docker.io/library/exp-a:2",
            "docker.io/library/exp-b:1",
        ],
    );
}

#[test]
fn stdout_and_compressed_archives_match_the_file() {
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/exp-c:1");
    node.import(&img);
    let dir = export_dir(&node);
    let plain = dir.join("c.tar");
    crimg(
        node.crimg(),
        &["export", "-O", plain.to_str().unwrap(), "exp-c:1"],
    )
    .expect_code(0);
    let plain_bytes = fs::read(&plain).unwrap();

    // -O -: the archive on stdout, byte for byte the file (entries have fixed times).
    let out = node
        .crimg()
        .args(["export", "-O", "-", "exp-c:1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == plain_bytes, "stdout differs from the file");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to standard output"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (algo, ext) in [("gzip", "tar.gz"), ("zstd", "tar.zst")] {
        let file = dir.join(format!("c.{ext}"));
        let run = crimg(
            node.crimg(),
            &[
                "--quiet",
                "export",
                "--compress",
                algo,
                "-O",
                file.to_str().unwrap(),
                "exp-c:1",
            ],
        )
        .expect_code(0);
        assert_eq!(run.stderr, "", "--quiet prints nothing");
        assert_eq!(run.stdout, "", "stdout stays empty without -o json");
        let packed = fs::read(&file).unwrap();
        assert!(packed.len() < plain_bytes.len(), "{algo} did not compress");
        let unpacked = match algo {
            "gzip" => {
                let mut v = Vec::new();
                flate2::read::GzDecoder::new(&packed[..])
                    .read_to_end(&mut v)
                    .unwrap();
                v
            }
            _ => zstd::decode_all(&packed[..]).unwrap(),
        };
        assert!(
            unpacked == plain_bytes,
            "{algo} archive differs once unpacked"
        );
        let tar = dir.join(format!("c-from-{algo}.tar"));
        fs::write(&tar, &unpacked).unwrap();
        assert_imports(&node, &tar, algo, &["docker.io/library/exp-c:1"]);
    }
}

#[test]
fn targets_are_never_clobbered_or_followed() {
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/exp-d:1");
    node.import(&img);
    let dir = export_dir(&node);
    let target = dir.join("d.tar");

    // An existing file is kept without --force: a usage error (2).
    fs::write(&target, "keep me").unwrap();
    let run = crimg(
        node.crimg(),
        &["export", "-O", target.to_str().unwrap(), "exp-d:1"],
    )
    .expect_code(2);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");
    crimg(
        node.crimg(),
        &[
            "export",
            "--force",
            "-O",
            target.to_str().unwrap(),
            "exp-d:1",
        ],
    )
    .expect_code(0);
    assert!(fs::read(&target).unwrap().len() > 1024);

    // A symlink is an existing target too; --force replaces the link, not what it
    // points at.
    let victim = dir.join("victim");
    fs::write(&victim, "untouched").unwrap();
    let link = dir.join("link.tar");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    crimg(
        node.crimg(),
        &["export", "-O", link.to_str().unwrap(), "exp-d:1"],
    )
    .expect_code(2);
    crimg(
        node.crimg(),
        &["export", "--force", "-O", link.to_str().unwrap(), "exp-d:1"],
    )
    .expect_code(0);
    assert!(
        !fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
    // A dangling one too; what it points at is never created.
    let nowhere = dir.join("nowhere");
    let dangling = dir.join("dangling.tar");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    let run = crimg(node.crimg(), &["export", "-O", s(&dangling), "exp-d:1"]).expect_code(2);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert!(!nowhere.exists());
    crimg(
        node.crimg(),
        &["export", "--force", "-O", s(&dangling), "exp-d:1"],
    )
    .expect_code(0);
    assert!(!fs::symlink_metadata(&dangling).unwrap().is_symlink());
    assert!(!nowhere.exists(), "the link's target was created");

    // A directory, a missing directory, an unknown image: errors, and no file.
    crimg(
        node.crimg(),
        &["export", "-O", dir.to_str().unwrap(), "exp-d:1"],
    )
    .expect_code(2);
    let nowhere = dir.join("no/such/dir/x.tar");
    let run = crimg(
        node.crimg(),
        &["export", "-O", nowhere.to_str().unwrap(), "exp-d:1"],
    )
    .expect_code(1);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    let missing = dir.join("missing.tar");
    let run = crimg(
        node.crimg(),
        &[
            "export",
            "-O",
            missing.to_str().unwrap(),
            "exp-d:1",
            "no-such:image",
        ],
    )
    .expect_code(1);
    assert!(run.stderr.contains("no-such:image"), "{}", run.stderr);
    assert_eq!(
        dir_names(&dir),
        BTreeSet::from(["d.tar", "link.tar", "dangling.tar", "victim"].map(String::from)),
        "nothing else, no temp file"
    );
}

/// The plain export fails, explaining; `--fetch-missing` (with `extra` options) then
/// fetches the layer, stores it so it survives garbage collection, and a plain export
/// works again.
fn fetch_repairs(node: &Node, registry: &Registry, img: &FixtureImage, extra: &[&str]) {
    let layer = pulled_layer(node, &img.name);
    let dir = export_dir(node);
    let file = dir.join("app.tar");
    let run = crimg(
        node.crimg(),
        &["export", "-O", file.to_str().unwrap(), &img.name],
    )
    .expect_code(1);
    for want in [
        &layer,
        &img.name,
        "layer 1 of 1 of manifest",
        "discard_unpacked_layers",
        "--fetch-missing",
    ] {
        assert!(
            run.stderr.contains(want),
            "{want:?} not in:\n{}",
            run.stderr
        );
    }
    assert!(dir_names(&dir).is_empty(), "a failed export left files");

    let mut args = vec!["-o", "json", "export", "--fetch-missing"];
    args.extend_from_slice(extra);
    args.extend(["-O", file.to_str().unwrap(), &img.name]);
    let run = crimg(node.crimg(), &args).expect_code(0);
    let result: ExportResult = run.json();
    assert_eq!(result.fetched, vec![layer.clone()], "{}", run.stderr);
    // The dead mirror was tried first and said so; the registry itself served the blob.
    assert!(
        run.stderr.contains("http://127.0.0.1:1/v2")
            && run.stderr.contains("trying the next endpoint"),
        "{}",
        run.stderr
    );
    let blob_get = format!("GET /v2/team/app/blobs/{layer}");
    assert!(registry.log().contains(&blob_get), "{}", registry.log());
    assert!(run.stderr.contains("1 blob(s) fetched"), "{}", run.stderr);

    // Repaired: the layer is back, held by its manifest's GC label, not a lease.
    let left = node.ctr_ok(&["leases", "ls", "-q"]);
    assert_eq!(left.trim(), "", "leases left by the fetch");
    let manifest = records(node, "k8s.io")
        .get(&img.name)
        .cloned()
        .unwrap_or_else(|| panic!("no record {}", img.name));
    let labels = content_labels(node, &manifest);
    assert_eq!(
        labels.get("containerd.io/gc.ref.content.l.0"),
        Some(&layer),
        "the manifest's GC label for its layer: {labels:?}"
    );
    force_gc(node, &img.name);
    assert!(
        content_digests(node).contains(&layer),
        "fetched layer was collected"
    );
    let again = dir.join("again.tar");
    crimg(
        node.crimg(),
        &["export", "-O", again.to_str().unwrap(), &img.name],
    )
    .expect_code(0);
    assert_imports(node, &again, "other", &[img.name.as_str()]);
}

#[test]
fn discarded_layers_fetched_through_registries_yaml_wildcard_mirror() {
    let (node, registry, img) = discarded_image();
    // The wildcard mirror is dead; the registry has no entry of its own, so the default
    // endpoint comes next: for a loopback registry, HTTPS and then plain HTTP.
    let yaml = node.dir().join("registries.yaml");
    fs::write(
        &yaml,
        "mirrors:\n  \"*\":\n    endpoint:\n      - \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let no_certs = node.dir().join("no-certs.d");
    fetch_repairs(
        &node,
        &registry,
        &img,
        &[
            "--registries-yaml",
            yaml.to_str().unwrap(),
            "--registry-config-dir",
            no_certs.to_str().unwrap(),
        ],
    );
}

#[test]
fn discarded_layers_fetched_through_certs_d_hosts_toml() {
    let (node, registry, img) = discarded_image();
    let certs = node.dir().join("certs.d");
    let host_dir = certs.join(registry.host());
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(
        host_dir.join("hosts.toml"),
        format!(
            "server = \"http://{}\"\n\n[host.\"http://127.0.0.1:1\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            registry.host()
        ),
    )
    .unwrap();
    let no_yaml = node.dir().join("no-registries.yaml");
    fetch_repairs(
        &node,
        &registry,
        &img,
        &[
            "--registry-config-dir",
            certs.to_str().unwrap(),
            "--registries-yaml",
            no_yaml.to_str().unwrap(),
        ],
    );
}

#[test]
fn discarded_layers_fetched_from_a_token_authenticated_mirror() {
    let (node, registry, img) = discarded_image();
    let layer = pulled_layer(&node, &img.name);
    let mirror = TokenMirror::start(
        vec![(layer.clone(), registry.blob(&layer))],
        "alice",
        "s3cret",
    );
    let host = registry.host();
    // Only the mirror can serve it now.
    drop(registry);
    let yaml = node.dir().join("registries.yaml");
    fs::write(
        &yaml,
        format!(
            "mirrors:\n  \"{host}\":\n    endpoint: [\"http://127.0.0.1:{p}\"]\n\
             configs:\n  \"127.0.0.1:{p}\":\n    auth:\n      username: alice\n      password: s3cret\n",
            p = mirror.port
        ),
    )
    .unwrap();
    let file = export_dir(&node).join("app.tar");
    let run = crimg(
        node.crimg(),
        &[
            "-o",
            "json",
            "export",
            "--fetch-missing",
            "--registries-yaml",
            yaml.to_str().unwrap(),
            "--registry-config-dir",
            node.dir().join("none").to_str().unwrap(),
            "-O",
            file.to_str().unwrap(),
            &img.name,
        ],
    )
    .expect_code(0);
    let result: ExportResult = run.json();
    assert_eq!(result.fetched, vec![layer.clone()]);
    // Challenged, fetched a token with the configured credentials, retried with it; the
    // mirror was told which registry the request is for.
    let reqs = mirror.requests();
    let blob = format!("GET /v2/team/app/blobs/{layer}?ns={host} HTTP/1.1");
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert_eq!(reqs[0], format!("{blob} auth="), "{reqs:?}");
    assert!(
        reqs[1].starts_with("GET /token?service=mirror&scope=repository%3Ateam%2Fapp%3Apull ")
            && reqs[1].ends_with("auth=Basic YWxpY2U6czNjcmV0"),
        "{reqs:?}"
    );
    assert_eq!(
        reqs[2],
        format!("{blob} auth=Bearer {}", TokenMirror::TOKEN)
    );
    assert_imports(&node, &file, "other", &[img.name.as_str()]);
}

#[test]
fn fetch_missing_fails_cleanly_when_no_endpoint_has_the_blob() {
    let (node, registry, img) = discarded_image();
    drop(registry);
    let yaml = node.dir().join("registries.yaml");
    fs::write(&yaml, "mirrors: {}\n").unwrap();
    let dir = export_dir(&node);
    let file = dir.join("app.tar");
    let run = crimg(
        node.crimg(),
        &[
            "export",
            "--fetch-missing",
            "--registries-yaml",
            yaml.to_str().unwrap(),
            "--registry-config-dir",
            dir.join("none").to_str().unwrap(),
            "-O",
            file.to_str().unwrap(),
            &img.name,
        ],
    )
    .expect_code(1);
    assert!(
        run.stderr.contains(&pulled_layer(&node, &img.name)),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cannot fetch"), "{}", run.stderr);
    assert!(dir_names(&dir).is_empty(), "a failed export left files");
    // A broken registries.yaml is a usage error naming it.
    fs::write(&yaml, "mirrors: [").unwrap();
    let run = crimg(
        node.crimg(),
        &[
            "export",
            "--fetch-missing",
            "--registries-yaml",
            yaml.to_str().unwrap(),
            "-O",
            file.to_str().unwrap(),
            &img.name,
        ],
    )
    .expect_code(2);
    assert!(run.stderr.contains("registries.yaml"), "{}", run.stderr);
}

/// A device node, FIFO or socket at `-O` is refused with or without `--force`, before
/// anything is written, and is still what it was afterwards.
#[test]
fn special_targets_are_refused_even_with_force() {
    use std::os::unix::fs::FileTypeExt;
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/exp-s:1");
    node.import(&img);
    let dir = export_dir(&node);
    // A copy of /dev/null: character device 1:3.
    let dev = dir.join("null");
    let made = Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success(), "mknod (tests run as root)");
    let fifo = dir.join("fifo.tar");
    crate::support::sys::mkfifo(&fifo);
    let socket = dir.join("sock.tar");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    type IsKind = fn(&fs::FileType) -> bool;
    let cases: [(&Path, &str, IsKind); 3] = [
        (&dev, "a character device", |t| t.is_char_device()),
        (&fifo, "a FIFO", |t| t.is_fifo()),
        (&socket, "a socket", |t| t.is_socket()),
    ];
    for (target, kind, still) in cases {
        for force in [false, true] {
            let mut args = vec!["export"];
            if force {
                args.push("--force");
            }
            args.extend(["-O", target.to_str().unwrap(), "exp-s:1"]);
            let run = crimg(node.crimg(), &args).expect_code(2);
            assert!(
                run.stderr.contains(target.to_str().unwrap()) && run.stderr.contains(kind),
                "{}",
                run.stderr
            );
            assert!(
                run.stderr.contains("-O -"),
                "says the pipe way: {}",
                run.stderr
            );
            let t = fs::symlink_metadata(target).unwrap().file_type();
            assert!(still(&t), "{} is still {kind}", target.display());
        }
    }
    let names = dir_names(&dir);
    assert_eq!(
        names,
        BTreeSet::from(["null".into(), "fifo.tar".into(), "sock.tar".into()]),
        "no temp file left"
    );
}

/// An archive on standard output that the reader stops taking (`| head -c 10`), or that
/// cannot be written (a full device), fails naming standard output: an archive cut short
/// is not a success, unlike a list piped into `head`.
#[test]
fn write_errors_on_standard_output_fail() {
    let node = Node::start();
    let dir = export_dir(&node);
    let archive = dir.join("src.tar");
    // Larger than a pipe's buffer and crimg's own, so it cannot all be written before the
    // reader goes.
    let layer = crate::support::archives::noise_layer(7, 4, "pipe");
    let name = "docker.io/library/exp-pipe:1";
    crate::support::archives::write_layered_oci(&archive, name, "/x", &[&layer]);
    crimg(
        node.crimg(),
        &["import", "--no-unpack", archive.to_str().unwrap()],
    )
    .expect_code(0);

    let mut child = node
        .crimg()
        .args(["export", "-O", "-", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("writing standard output") && stderr.contains("Broken pipe"),
        "{stderr}"
    );

    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = node
        .crimg()
        .args(["export", "-O", "-", name])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("writing standard output") && stderr.contains("No space left on device"),
        "{stderr}"
    );

    // A report piped into a reader that stops early still exits 0.
    let mut child = node
        .crimg()
        .args(["list", "-o", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
