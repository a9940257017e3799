//! Tests of the export walk over a map-backed store.

use super::*;
use std::collections::HashMap;

/// An in-memory content store.
#[derive(Default)]
struct MapStore {
    blobs: HashMap<String, Vec<u8>>,
    /// Digests the walk would have fetched when absent.
    may_fetch: Vec<String>,
}

impl MapStore {
    fn put(&mut self, bytes: Vec<u8>) -> String {
        let d = crate::oci::sha256_digest({
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(&bytes);
            h
        });
        self.blobs.insert(d.clone(), bytes);
        d
    }
}

impl Store for MapStore {
    async fn has(&mut self, desc: &Descriptor) -> Result<bool> {
        Ok(self.blobs.contains_key(&desc.digest))
    }
    async fn read_small(&mut self, desc: &Descriptor, may_fetch: bool) -> Result<Option<Vec<u8>>> {
        if may_fetch {
            self.may_fetch.push(desc.digest.clone());
        }
        Ok(self.blobs.get(&desc.digest).cloned())
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn desc(media: &str, digest: &str, size: usize) -> Descriptor {
    Descriptor {
        media_type: media.into(),
        digest: digest.into(),
        size: size as i64,
    }
}

/// A manifest with `layers` layers (content from `seed`), stored along with its
/// config and layers; returns its descriptor and the layer digests.
fn manifest(s: &mut MapStore, seed: &str, layers: usize) -> (Descriptor, String, Vec<String>) {
    let config = format!("{{\"os\":\"linux\",\"seed\":\"{seed}\"}}").into_bytes();
    let config_len = config.len();
    let config_d = s.put(config);
    let mut ls = Vec::new();
    let mut docs = Vec::new();
    for i in 0..layers {
        let bytes = format!("layer {seed} {i}").into_bytes();
        let len = bytes.len();
        let d = s.put(bytes);
        docs.push(serde_json::json!({"mediaType": MT_LAYER, "digest": d, "size": len}));
        ls.push(d);
    }
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::oci::MT_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config_len},
        "layers": docs,
    }))
    .unwrap();
    let len = m.len();
    let d = s.put(m);
    (desc(crate::oci::MT_OCI_MANIFEST, &d, len), config_d, ls)
}

const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn index(s: &mut MapStore, entries: &[(&Descriptor, &str)]) -> Descriptor {
    let ms: Vec<_> = entries
        .iter()
        .map(|(d, p)| {
            let parts: Vec<&str> = p.split('/').collect();
            serde_json::json!({
                "mediaType": d.media_type, "digest": d.digest, "size": d.size,
                "platform": {"os": parts[0], "architecture": parts[1]},
            })
        })
        .collect();
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": crate::oci::MT_DOCKER_LIST, "manifests": ms,
    }))
    .unwrap();
    let len = bytes.len();
    let d = s.put(bytes);
    desc(crate::oci::MT_DOCKER_LIST, &d, len)
}

fn p(s: &str) -> Platform {
    s.parse().unwrap()
}

#[test]
fn single_manifest_complete() {
    let mut s = MapStore::default();
    let (m, config, layers) = manifest(&mut s, "a", 2);
    let plan = block_on(walk(
        &mut s,
        vec!["docker.io/library/a:1".into()],
        &m,
        &PlatformChoice::These(vec![p("linux/amd64")]),
    ))
    .unwrap();
    assert_eq!(plan.blobs.len(), 4);
    assert!(plan.missing().next().is_none());
    assert_eq!(missing_report(std::slice::from_ref(&plan)), None);
    let order: Vec<String> = unique_blobs(std::slice::from_ref(&plan))
        .into_iter()
        .map(|d| d.digest)
        .collect();
    assert_eq!(
        order,
        vec![
            m.digest.clone(),
            config.clone(),
            layers[0].clone(),
            layers[1].clone()
        ]
    );
    let labels = gc_labels(&[plan]);
    assert_eq!(
        labels,
        vec![
            (
                m.digest.clone(),
                "containerd.io/gc.ref.content.config".to_string(),
                config
            ),
            (
                m.digest.clone(),
                "containerd.io/gc.ref.content.l.0".to_string(),
                layers[0].clone()
            ),
            (
                m.digest,
                "containerd.io/gc.ref.content.l.1".to_string(),
                layers[1].clone()
            ),
        ]
    );
}

#[test]
fn discarded_layers_are_reported_with_role_and_remedies() {
    let mut s = MapStore::default();
    let (m, _, layers) = manifest(&mut s, "a", 3);
    s.blobs.remove(&layers[1]);
    s.blobs.remove(&layers[2]);
    let plan = block_on(walk(
        &mut s,
        vec!["127.0.0.1:5000/team/app:v1".into()],
        &m,
        &PlatformChoice::These(vec![p("linux/amd64")]),
    ))
    .unwrap();
    let missing: Vec<String> = plan.missing().map(|b| b.desc.digest.clone()).collect();
    assert_eq!(missing, vec![layers[1].clone(), layers[2].clone()]);
    let report = missing_report(&[plan]).unwrap();
    for want in [
        "2 blobs of 1 image missing",
        "127.0.0.1:5000/team/app:v1",
        &layers[1],
        &format!("layer 2 of 3 of manifest {}", m.digest),
        &format!("layer 3 of 3 of manifest {}", m.digest),
        "discard_unpacked_layers = true",
        "discard_unpacked_layers = false",
        "--fetch-missing",
        "nothing was written",
    ] {
        assert!(report.contains(want), "{want:?} not in:\n{report}");
    }
    assert!(!report.contains(&layers[0]), "{report}");
}

#[test]
fn index_platform_selection_and_missing_manifests() {
    let mut s = MapStore::default();
    let (amd, _, amd_layers) = manifest(&mut s, "amd", 1);
    let (arm, _, _) = manifest(&mut s, "arm", 1);
    let (ppc, _, _) = manifest(&mut s, "ppc", 1);
    let idx = index(
        &mut s,
        &[
            (&amd, "linux/amd64"),
            (&arm, "linux/arm64"),
            (&ppc, "linux/ppc64le"),
        ],
    );
    // A pull fetches only its own platform: the others' manifests are absent.
    s.blobs.remove(&arm.digest);
    s.blobs.remove(&ppc.digest);
    let names = vec!["docker.io/library/multi:1".to_string()];

    // The host's platform: complete.
    let plan = block_on(walk(
        &mut s,
        names.clone(),
        &idx,
        &PlatformChoice::These(vec![p("linux/amd64")]),
    ))
    .unwrap();
    assert!(plan.missing().next().is_none());
    assert_eq!(plan.manifests.len(), 1);
    assert_eq!(plan.manifests[0].layers, amd_layers);
    assert_eq!(
        gc_labels(std::slice::from_ref(&plan))[0],
        (
            idx.digest.clone(),
            "containerd.io/gc.ref.content.m.0".into(),
            amd.digest.clone()
        )
    );

    // --all-platforms exports what the node has and says what it left out; it would
    // fetch the index, never the platforms the node never pulled.
    s.may_fetch.clear();
    let plan = block_on(walk(&mut s, names.clone(), &idx, &PlatformChoice::All)).unwrap();
    assert_eq!(s.may_fetch, vec![idx.digest.clone()]);
    assert!(plan.missing().next().is_none());
    assert_eq!(plan.manifests.len(), 1);
    assert_eq!(
        plan.skipped_platforms,
        vec!["linux/arm64/v8", "linux/ppc64le"]
    );

    // An explicitly wanted platform the node lacks is missing (or fetched), named by
    // platform.
    s.may_fetch.clear();
    let plan = block_on(walk(
        &mut s,
        names.clone(),
        &idx,
        &PlatformChoice::These(vec![p("linux/arm64")]),
    ))
    .unwrap();
    let missing: Vec<&ExportBlob> = plan.missing().collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].desc.digest, arm.digest);
    assert_eq!(s.may_fetch, vec![idx.digest.clone(), arm.digest.clone()]);
    let report = missing_report(&[plan]).unwrap();
    assert!(report.contains("(linux/arm64/v8)"), "{report}");
    assert!(
        report.contains(&format!("manifest of index {}", idx.digest)),
        "{report}"
    );
    // Not only layers missing: the discard hint would mislead.
    assert!(!report.contains("likely cause"), "{report}");

    // A platform the index does not have at all is an error naming what it has.
    let e = block_on(walk(
        &mut s,
        names,
        &idx,
        &PlatformChoice::These(vec![p("linux/s390x")]),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("linux/s390x"), "{e}");
    assert!(
        e.contains("linux/amd64, linux/arm64/v8, linux/ppc64le"),
        "{e}"
    );
}

#[test]
fn absent_target_bad_json_and_huge_blobs() {
    let mut s = MapStore::default();
    let absent = desc(
        crate::oci::MT_OCI_MANIFEST,
        &format!("sha256:{}", "9".repeat(64)),
        10,
    );
    let plan = block_on(walk(
        &mut s,
        vec!["x:1".into()],
        &absent,
        &PlatformChoice::All,
    ))
    .unwrap();
    assert_eq!(plan.missing().count(), 1);
    let d = s.put(b"not json".to_vec());
    let bad = desc(crate::oci::MT_OCI_MANIFEST, &d, 8);
    let e = block_on(walk(&mut s, vec!["x:1".into()], &bad, &PlatformChoice::All))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&d) && e.contains("not a valid"), "{e}");
    let huge = desc(crate::oci::MT_OCI_MANIFEST, &d, 1 << 40);
    assert!(block_on(walk(&mut s, vec![], &huge, &PlatformChoice::All)).is_err());
    let unknown = desc(
        "application/vnd.docker.distribution.manifest.v1+json",
        &d,
        8,
    );
    let e = block_on(walk(&mut s, vec![], &unknown, &PlatformChoice::All))
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema 1"), "{e}");
}

#[test]
fn shared_blobs_once_and_docker_entries() {
    let mut s = MapStore::default();
    let (m, config, layers) = manifest(&mut s, "a", 2);
    let (m2, config2, layers2) = manifest(&mut s, "b", 1);
    let choice = PlatformChoice::These(vec![Platform::host()]);
    let plans = vec![
        block_on(walk(
            &mut s,
            vec![
                "docker.io/library/a:1".into(),
                "docker.io/library/a:2".into(),
            ],
            &m,
            &choice,
        ))
        .unwrap(),
        block_on(walk(
            &mut s,
            vec![format!("docker.io/library/a@{}", m.digest)],
            &m,
            &choice,
        ))
        .unwrap(),
        block_on(walk(
            &mut s,
            vec!["docker.io/library/b:1".into()],
            &m2,
            &choice,
        ))
        .unwrap(),
    ];
    assert_eq!(unique_blobs(&plans).len(), 4 + 3);
    let docker = docker_images(&plans, &choice);
    assert_eq!(
        docker,
        vec![
            DockerImage {
                config,
                repo_tags: vec![
                    "docker.io/library/a:1".into(),
                    "docker.io/library/a:2".into()
                ],
                layers,
            },
            DockerImage {
                config: config2,
                repo_tags: vec!["docker.io/library/b:1".into()],
                layers: layers2,
            },
        ]
    );
}

#[test]
fn docker_entry_prefers_the_wanted_platform() {
    let mut s = MapStore::default();
    let (amd, amd_config, _) = manifest(&mut s, "amd", 1);
    let (arm, arm_config, _) = manifest(&mut s, "arm", 1);
    let idx = index(&mut s, &[(&amd, "linux/amd64"), (&arm, "linux/arm64")]);
    let plan = block_on(walk(
        &mut s,
        vec!["docker.io/library/m:1".into()],
        &idx,
        &PlatformChoice::All,
    ))
    .unwrap();
    assert_eq!(plan.manifests.len(), 2);
    let plans = [plan];
    let arm_first = PlatformChoice::These(vec![p("linux/arm64"), p("linux/amd64")]);
    assert_eq!(docker_images(&plans, &arm_first)[0].config, arm_config);
    let amd_first = PlatformChoice::These(vec![p("linux/amd64"), p("linux/arm64")]);
    assert_eq!(docker_images(&plans, &amd_first)[0].config, amd_config);
}
