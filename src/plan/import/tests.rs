//! Table tests of the OCI and docker planners over import's in-memory archive.

use serde_json::json;

use super::*;
use crate::oci::{
    MT_DOCKER_LAYER, MT_DOCKER_LAYER_GZIP, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST, blob_path,
};
use crate::plan::import::mem::MemArchive;

const GZIP_HEAD: &[u8] = &[0x1f, 0x8b, 8, 0, 0, 0];
const BZIP2_HEAD: &[u8] = b"BZh91AY";

fn block_on<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn digest_of(bytes: &[u8]) -> String {
    sha256_digest(Sha256::new_with_prefix(bytes))
}

fn diff_id(n: usize) -> String {
    format!("sha256:{}", &format!("{n:x}").repeat(64)[..64])
}

/// Stores a JSON blob and returns its descriptor as an index or manifest lists it.
fn put(a: &mut MemArchive, media_type: &str, doc: serde_json::Value) -> serde_json::Value {
    let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap());
    let d = json!({"mediaType": media_type, "digest": digest_of(&bytes), "size": bytes.len()});
    a.small.insert(digest_of(&bytes), bytes);
    d
}

/// An image manifest of `layers` gzip layers for `os/arch`; `diff_ids` may differ from
/// `layers` to make a broken config.
fn manifest(a: &mut MemArchive, arch: &str, layers: usize, diff_ids: usize) -> serde_json::Value {
    let config = put(
        a,
        MT_OCI_CONFIG,
        json!({"os": "linux", "architecture": arch,
               "rootfs": {"type": "layers", "diff_ids": (0..diff_ids).map(diff_id).collect::<Vec<_>>()}}),
    );
    let layers: Vec<_> = (0..layers)
        .map(|i| {
            let body = format!("{arch} layer {i}");
            json!({"mediaType": MT_OCI_LAYER_GZIP, "digest": digest_of(body.as_bytes()), "size": body.len()})
        })
        .collect();
    put(
        a,
        MT_OCI_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST, "config": config, "layers": layers}),
    )
}

fn with(mut d: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    d[key] = value;
    d
}

fn options(platforms: &[&str], base: Option<&str>) -> PlanOptions {
    PlanOptions {
        platforms: if platforms.is_empty() {
            PlatformChoice::All
        } else {
            PlatformChoice::These(platforms.iter().map(|p| p.parse().unwrap()).collect())
        },
        base_name: base.map(str::to_string),
    }
}

/// What a plan says, in short: each image's names and platforms, and each blob's role
/// with its labels' keys.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    images: Vec<(Vec<String>, Vec<String>)>,
    blobs: Vec<(Role, Vec<String>)>,
}

fn summary(plan: &Plan) -> Summary {
    Summary {
        images: plan
            .images
            .iter()
            .map(|i| (i.names.clone(), i.platforms()))
            .collect(),
        blobs: plan
            .blobs
            .iter()
            .map(|b| (b.role, b.labels.keys().cloned().collect()))
            .collect(),
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn blob(role: Role, labels: &[&str]) -> (Role, Vec<String>) {
    (role, strings(labels))
}

const CONFIG_REF: &str = "containerd.io/gc.ref.content.config";
const L0: &str = "containerd.io/gc.ref.content.l.0";
const L1: &str = "containerd.io/gc.ref.content.l.1";
const UNCOMPRESSED: &str = "containerd.io/uncompressed";

#[test]
fn oci_planner() {
    type Build = fn(&mut MemArchive) -> serde_json::Value;
    let one: Build = |a| {
        let m = manifest(a, "amd64", 2, 2);
        json!({"schemaVersion": 2, "manifests": [with(m, "annotations", json!({ANNOTATION_NAME: "app:1"}))]})
    };
    let tag_only: Build = |a| {
        let m = manifest(a, "amd64", 1, 1);
        json!({"manifests": [with(m, "annotations", json!({ANNOTATION_REF_NAME: "v2"}))]})
    };
    let two_platforms: Build = |a| {
        let amd = with(
            manifest(a, "amd64", 1, 1),
            "platform",
            json!({"os": "linux", "architecture": "amd64"}),
        );
        let arm = with(
            manifest(a, "arm64", 1, 1),
            "platform",
            json!({"os": "linux", "architecture": "arm64"}),
        );
        let index = put(
            a,
            MT_OCI_INDEX,
            json!({"schemaVersion": 2, "manifests": [amd, arm]}),
        );
        json!({"manifests": [with(index, "annotations", json!({ANNOTATION_NAME: "multi:1"}))]})
    };
    let bad_digest: Build = |a| {
        let m = manifest(a, "amd64", 1, 1);
        json!({"manifests": [with(m, "digest", json!("sha256:ABC"))]})
    };
    let diff_id_mismatch: Build = |a| {
        let m = manifest(a, "amd64", 2, 1);
        json!({"manifests": [m]})
    };
    let missing: Build =
        |_| json!({"manifests": [{"mediaType": MT_OCI_MANIFEST, "digest": diff_id(7), "size": 2}]});
    let not_an_index: Build = |_| json!({"mediaType": MT_OCI_MANIFEST, "manifests": []});

    let single = Summary {
        images: vec![(
            strings(&["docker.io/library/app:1"]),
            strings(&["linux/amd64"]),
        )],
        blobs: vec![
            blob(Role::Config, &[]),
            blob(Role::Layer, &[UNCOMPRESSED]),
            blob(Role::Layer, &[UNCOMPRESSED]),
            blob(Role::Manifest, &[CONFIG_REF, L0, L1]),
        ],
    };
    let arm_only = Summary {
        images: vec![(
            strings(&["docker.io/library/multi:1"]),
            strings(&["linux/arm64/v8"]),
        )],
        blobs: vec![
            blob(Role::Config, &[]),
            blob(Role::Layer, &[UNCOMPRESSED]),
            blob(Role::Manifest, &[CONFIG_REF, L0]),
            // The index keeps only the chosen manifest, at its place in the list.
            blob(Role::Index, &["containerd.io/gc.ref.content.m.1"]),
        ],
    };
    let cases: Vec<(&str, Build, PlanOptions, Result<Summary, &str>)> = vec![
        ("named manifest", one, options(&[], None), Ok(single)),
        (
            "tag under the base name",
            tag_only,
            options(&[], Some("registry.example/team/app")),
            Ok(Summary {
                images: vec![(
                    strings(&["registry.example/team/app:v2"]),
                    strings(&["linux/amd64"]),
                )],
                blobs: vec![
                    blob(Role::Config, &[]),
                    blob(Role::Layer, &[UNCOMPRESSED]),
                    blob(Role::Manifest, &[CONFIG_REF, L0]),
                ],
            }),
        ),
        (
            "one platform of an index",
            two_platforms,
            options(&["linux/arm64"], None),
            Ok(arm_only),
        ),
        (
            "a platform the index lacks",
            two_platforms,
            options(&["linux/s390x"], None),
            Err("no manifest for platform linux/s390x (the index has linux/amd64, linux/arm64/v8)"),
        ),
        (
            "a digest that is not one",
            bad_digest,
            options(&[], None),
            Err("\"sha256:ABC\" is not a sha256 digest"),
        ),
        (
            "fewer diff IDs than layers",
            diff_id_mismatch,
            options(&[], None),
            Err("has 2 layers but its config"),
        ),
        (
            "a blob the archive lacks",
            missing,
            options(&[], None),
            Err("is missing from the archive"),
        ),
        (
            "not an index",
            not_an_index,
            options(&[], None),
            Err("not an OCI index"),
        ),
    ];
    for (name, build, opts, want) in cases {
        let mut a = MemArchive::default();
        let index = serde_json::to_vec(&build(&mut a)).unwrap();
        let got = block_on(plan_oci(&index, None, &a, &opts));
        match (got, want) {
            (Ok(plan), Ok(want)) => assert_eq!(summary(&plan), want, "{name}"),
            (Err(e), Err(want)) => {
                let e = format!("{e:#}");
                assert!(e.contains(want), "{name}: {e}");
            }
            (got, want) => panic!("{name}: got {:?}, want {want:?}", got.map(|p| summary(&p))),
        }
    }
}

#[test]
fn oci_planner_without_a_name_notes_the_bare_tag() {
    let mut a = MemArchive::default();
    let m = manifest(&mut a, "amd64", 1, 1);
    let target = m["digest"].as_str().unwrap().to_string();
    let index = json!({"manifests": [with(m, "annotations", json!({ANNOTATION_REF_NAME: "v2"}))]});
    let plan = block_on(plan_oci(
        &serde_json::to_vec(&index).unwrap(),
        None,
        &a,
        &options(&[], None),
    ))
    .unwrap();
    assert_eq!(
        plan.images[0].names,
        vec![format!("docker.io/library/import@{target}")]
    );
    assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
    assert!(plan.notes[0].contains("--base-name"), "{:?}", plan.notes);
}

/// A docker save archive: a config member (`blobs/sha256/…` as docker 25 writes it, or a
/// legacy `<id>.json` small file) and layer members with the given first bytes.
fn docker_archive(
    a: &mut MemArchive,
    legacy: bool,
    layers: &[&[u8]],
    diff_ids: usize,
) -> serde_json::Value {
    let config = serde_json::to_vec(&json!({"os": "linux", "architecture": "arm64",
        "rootfs": {"type": "layers", "diff_ids": (0..diff_ids).map(diff_id).collect::<Vec<_>>()}}))
    .unwrap();
    let config_path = if legacy {
        let path = format!("{}.json", &digest_of(&config)[7..]);
        a.add_member(&path, Bytes::from(config), 16);
        path
    } else {
        let path = blob_path(&digest_of(&config)).unwrap();
        a.add_member(&path, Bytes::from(config), 16);
        path
    };
    let layer_paths: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, head)| {
            let path = format!("layer{i}/layer.tar");
            a.add_member(&path, Bytes::from([*head, &[i as u8]].concat()), 16);
            path
        })
        .collect();
    json!({"Config": config_path, "Layers": layer_paths})
}

#[test]
fn docker_planner() {
    type Build = fn(&mut MemArchive) -> serde_json::Value;
    let tagged: Build = |a| {
        let e = docker_archive(a, false, &[GZIP_HEAD, b"plain tar"], 2);
        json!([with(
            e,
            "RepoTags",
            json!(["app:1", "docker.io/library/app:1", "app:2"])
        )])
    };
    let legacy_untagged: Build = |a| json!([docker_archive(a, true, &[GZIP_HEAD], 1)]);
    let bzip2: Build = |a| json!([docker_archive(a, false, &[BZIP2_HEAD], 1)]);
    let missing_layer: Build = |a| {
        let mut e = docker_archive(a, false, &[GZIP_HEAD], 1);
        e["Layers"] = json!(["gone/layer.tar"]);
        json!([e])
    };
    let diff_id_mismatch: Build = |a| json!([docker_archive(a, false, &[GZIP_HEAD], 3)]);
    let empty: Build = |_| json!([]);

    let layers = |n: usize| -> Vec<(Role, Vec<String>)> {
        let mut blobs = vec![blob(Role::Config, &[])];
        blobs.extend((0..n).map(|_| blob(Role::Layer, &[UNCOMPRESSED])));
        let mut refs = vec![CONFIG_REF, L0, L1];
        refs.truncate(n + 1);
        blobs.push(blob(Role::Manifest, &refs));
        blobs
    };
    let cases: Vec<(&str, Build, Result<Summary, &str>)> = vec![
        (
            "tagged, names normalised once each",
            tagged,
            Ok(Summary {
                images: vec![(
                    strings(&["docker.io/library/app:1", "docker.io/library/app:2"]),
                    strings(&["linux/arm64/v8"]),
                )],
                blobs: layers(2),
            }),
        ),
        (
            "legacy config, untagged",
            legacy_untagged,
            Ok(Summary {
                images: vec![],
                blobs: layers(1),
            }),
        ),
        (
            "bzip2 layer",
            bzip2,
            Err("is bzip2-compressed, which containerd cannot apply"),
        ),
        (
            "a layer the archive lacks",
            missing_layer,
            Err("layer gone/layer.tar is missing from the archive"),
        ),
        (
            "more diff IDs than layers",
            diff_id_mismatch,
            Err("has 1 layers but its config"),
        ),
        ("no image", empty, Err("manifest.json lists no image")),
    ];
    for (name, build, want) in cases {
        let mut a = MemArchive::default();
        let manifest_json = serde_json::to_vec(&build(&mut a)).unwrap();
        let got = block_on(plan_docker(
            &manifest_json,
            &a,
            &options(&[], Some("registry.example/base")),
        ));
        match (got, want) {
            (Ok(plan), Ok(mut want)) => {
                let got = summary(&plan);
                if want.images.is_empty() {
                    // An untagged image is named by its generated manifest's digest.
                    let target = &plan.images[0].target.digest;
                    want.images = vec![(
                        vec![format!("registry.example/base@{target}")],
                        strings(&["linux/arm64/v8"]),
                    )];
                }
                assert_eq!(got, want, "{name}");
                // Only the manifest is made here: a streamed archive knows a legacy
                // `<id>.json` config as a member, by its digest, like any other.
                let image = &plan.images[0];
                assert!(plan.generated.contains_key(&image.target.digest), "{name}");
                assert_eq!(plan.generated.len(), 1, "{name}");
                let layer_types: Vec<&str> = image.manifests[0]
                    .layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect();
                let want_types = [MT_DOCKER_LAYER_GZIP, MT_DOCKER_LAYER];
                assert_eq!(layer_types, want_types[..layer_types.len()], "{name}");
            }
            (Err(e), Err(want)) => {
                let e = format!("{e:#}");
                assert!(e.contains(want), "{name}: {e}");
            }
            (got, want) => panic!("{name}: got {:?}, want {want:?}", got.map(|p| summary(&p))),
        }
    }
}

/// A config and a layer, with the config's diff ID right for the layer.
fn linked_image() -> (Bytes, Bytes) {
    let layer = Bytes::from(vec![0u8; 1024]);
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        digest_of(&layer)
    ));
    (config, layer)
}

#[test]
fn docker_members_are_what_manifest_json_names() {
    // podman and skopeo write `<hex>.tar` layers and `<hex>.json` configs, with
    // `<id>/layer.tar` a link to the layer.
    let (config, layer) = linked_image();
    let mut a = MemArchive::default();
    a.add_member("c0ffee.json", config.clone(), 16);
    a.add_member("ab12.tar", layer.clone(), 16);
    a.links.insert("0a0b/layer.tar".into(), "ab12.tar".into());
    let manifest =
        br#"[{"Config":"c0ffee.json","RepoTags":["pm2:2"],"Layers":["0a0b/layer.tar"]}]"#;
    let plan = block_on(plan_docker(manifest, &a, &options(&[], None))).unwrap();
    assert_eq!(plan.images.len(), 1);
    let image = &plan.images[0];
    assert_eq!(image.names, strings(&["docker.io/library/pm2:2"]));
    assert_eq!(image.id, digest_of(&config));
    assert_eq!(image.manifests[0].layers.len(), 1);
    assert_eq!(image.manifests[0].layers[0].digest, digest_of(&layer));
    assert_eq!(image.manifests[0].layers[0].media_type, MT_DOCKER_LAYER);
}

#[test]
fn oci_names_from_manifest_json_by_config_member() {
    let (config, layer) = linked_image();
    let mut a = MemArchive::default();
    let config_desc =
        json!({"mediaType": MT_OCI_CONFIG, "digest": digest_of(&config), "size": config.len()});
    // The config is named in manifest.json by a path that is not `blobs/sha256/…`.
    a.add_member("cfg/config.json", config, 16);
    let layer_desc = json!({"mediaType": crate::oci::MT_OCI_LAYER, "digest": digest_of(&layer), "size": layer.len()});
    a.add_member("l", layer, 16);
    let m = put(
        &mut a,
        MT_OCI_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST, "config": config_desc, "layers": [layer_desc]}),
    );
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [m]})).unwrap();
    let docker = br#"[{"Config":"cfg/config.json","RepoTags":["localhost/pm/app:1"],"Layers":[]}]"#;
    let plan = block_on(plan_oci(&index, Some(docker), &a, &options(&[], None))).unwrap();
    assert_eq!(plan.images.len(), 1);
    assert_eq!(plan.images[0].names, strings(&["localhost/pm/app:1"]));
}

/// Indexes that list one another many times over, an index listed below itself, and a
/// tree deeper than four: each index and manifest is visited once, so the walk stays as
/// small as the archive; too deep is refused.
#[test]
fn index_trees_that_repeat_loop_or_nest_too_deep() {
    let platform = json!({"os": "linux", "architecture": "amd64"});
    // Three levels, each listing the one below 1000 times: a million paths to one manifest.
    let mut a = MemArchive::default();
    let m = with(
        manifest(&mut a, "amd64", 1, 1),
        "platform",
        platform.clone(),
    );
    let inner = put(&mut a, MT_OCI_INDEX, json!({"manifests": vec![m; 1000]}));
    let middle = put(
        &mut a,
        MT_OCI_INDEX,
        json!({"manifests": vec![inner; 1000]}),
    );
    let outer = put(
        &mut a,
        MT_OCI_INDEX,
        json!({"manifests": vec![middle; 1000]}),
    );
    let index = serde_json::to_vec(&json!({"manifests": [outer]})).unwrap();
    let started = std::time::Instant::now();
    let plan = block_on(plan_oci(&index, None, &a, &options(&[], None))).unwrap();
    let took = started.elapsed();
    assert_eq!(plan.images.len(), 1);
    assert_eq!(
        plan.images[0].manifests.len(),
        1,
        "one manifest, planned once"
    );
    assert_eq!(
        plan.blobs.len(),
        6,
        "3 indexes, a manifest, its config and layer"
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");

    // An index stored under a digest it does not hash to, listing that digest: a loop
    // (an archive's blobs are checked against their digests before this, so only a
    // corrupt archive could hold one). It ends, with the manifest beside it.
    let mut a = MemArchive::default();
    let m = with(
        manifest(&mut a, "amd64", 1, 1),
        "platform",
        platform.clone(),
    );
    let fake = format!("sha256:{}", "e".repeat(64));
    // The index names itself with its own size: the one size that makes it that long.
    let (looped, body) = (1..10_000)
        .map(|size| {
            let looped = json!({"mediaType": MT_OCI_INDEX, "digest": fake, "size": size});
            let body = serde_json::to_vec(&json!({"manifests": [looped.clone(), m]})).unwrap();
            (looped, body)
        })
        .find(|(l, b)| l["size"] == b.len())
        .unwrap();
    a.small.insert(fake.clone(), Bytes::from(body));
    let index = serde_json::to_vec(&json!({"manifests": [looped]})).unwrap();
    let plan = block_on(plan_oci(&index, None, &a, &options(&[], None))).unwrap();
    assert_eq!(plan.images[0].manifests.len(), 1);

    // Five indexes, one inside the next.
    let mut a = MemArchive::default();
    let mut d = with(manifest(&mut a, "amd64", 1, 1), "platform", platform);
    for _ in 0..5 {
        d = put(&mut a, MT_OCI_INDEX, json!({"manifests": [d]}));
    }
    let index = serde_json::to_vec(&json!({"manifests": [d]})).unwrap();
    let e = block_on(plan_oci(&index, None, &a, &options(&[], None))).unwrap_err();
    assert!(
        format!("{e:#}").contains("indexes nested deeper than 4"),
        "{e:#}"
    );
}

/// A manifest of 10 000 layers plans in linear time: each blob is added by digest.
#[test]
fn ten_thousand_layers_plan_quickly() {
    let mut a = MemArchive::default();
    let m = manifest(&mut a, "amd64", 10_000, 10_000);
    let index = serde_json::to_vec(&json!({"manifests": [m]})).unwrap();
    let started = std::time::Instant::now();
    let plan = block_on(plan_oci(&index, None, &a, &options(&[], None))).unwrap();
    let took = started.elapsed();
    assert_eq!(plan.blobs.len(), 10_002);
    assert_eq!(plan.images[0].manifests[0].layers.len(), 10_000);
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}

/// Import's in-memory archive, counting the blobs planning reads.
struct Counting {
    archive: MemArchive,
    reads: std::sync::atomic::AtomicUsize,
}

impl Source for Counting {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.archive.blob(digest).await
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.archive.member(path)
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.archive.small_file(path).await
    }
}

/// An index.json of 100 000 entries for one manifest (one in ten naming it by its own
/// tag, the rest unnamed), then one entry for another image: the manifest is read and
/// planned once, every name is kept in order, and the other image is planned too.
#[test]
fn a_hundred_thousand_entries_for_one_image_plan_once() {
    const ENTRIES: usize = 100_000;
    let mut a = MemArchive::default();
    let m = manifest(&mut a, "amd64", 1, 1);
    let other = manifest(&mut a, "arm64", 1, 1);
    let mut entries: Vec<serde_json::Value> = (0..ENTRIES)
        .map(|i| {
            if i % 10 == 0 {
                with(
                    m.clone(),
                    "annotations",
                    json!({ANNOTATION_NAME: format!("app:{i}")}),
                )
            } else {
                m.clone()
            }
        })
        .collect();
    entries.push(with(
        other,
        "annotations",
        json!({ANNOTATION_NAME: "other:1"}),
    ));
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": entries})).unwrap();
    assert!(
        index.len() as u64 <= crate::oci::MAX_JSON,
        "an index.json import reads: {} bytes",
        index.len()
    );
    let source = Counting {
        archive: a,
        reads: Default::default(),
    };

    let started = std::time::Instant::now();
    let plan = block_on(plan_oci(&index, None, &source, &options(&[], None))).unwrap();
    let took = started.elapsed();
    eprintln!("{} entries planned in {took:?}", ENTRIES + 1);

    let digest = m["digest"].as_str().unwrap();
    let mut names = Vec::new();
    for i in 0..ENTRIES {
        if i % 10 == 0 {
            names.push(format!("docker.io/library/app:{i}"));
        } else if i == 1 {
            names.push(format!("docker.io/library/import@{digest}"));
        }
    }
    assert_eq!(plan.images.len(), 2);
    assert_eq!(plan.images[0].target.digest, digest);
    assert_eq!(plan.images[0].names.len(), ENTRIES / 10 + 1);
    assert_eq!(plan.images[0].names, names);
    assert_eq!(
        plan.images[1].names,
        strings(&["docker.io/library/other:1"])
    );
    assert_eq!(
        source.reads.load(std::sync::atomic::Ordering::Relaxed),
        4,
        "each manifest and its config read once"
    );
    assert_eq!(
        plan.blobs.len(),
        6,
        "two manifests, their configs and layers"
    );
    assert!(
        plan.notes.is_empty(),
        "{:?}",
        &plan.notes[..plan.notes.len().min(3)]
    );
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}
