//! The chains a streamed archive's documents describe, found before its plan so each can
//! be unpacked while the archive is still being read (`app/import/job/early.rs` applies
//! them): from the documents a first pass kept ([`docker_chains`], [`oci_chains`]), or
//! from the documents of the one pass as they go by ([`Finder`]). Pure: documents in,
//! chains out.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::mem::MemArchive;
use super::{PlanOptions, parse_docker_manifest, plan_oci};
use crate::oci::Platform;
use crate::oci::doc::{Config, Manifest};
use crate::oci::{blob_path, is_digest, is_layer};
use crate::plan::platform::PlatformChoice;

/// A small JSON document the main pass has read (a manifest, a config, anything).
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub(crate) digest: String,
    pub(crate) bytes: Bytes,
    /// Read as an OCI blob (`blobs/sha256/<hex>`), not as a `docker save` member.
    pub(crate) blob: bool,
}

/// One image's layers with their diff IDs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EarlyChain {
    pub(crate) layers: Vec<Wanted>,
    pub(crate) diff_ids: Vec<String>,
}

/// How a chain knows one of its layers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// By its member path (links followed).
    Path(String),
    /// By its digest: an uncompressed layer of a `docker save` archive, whose digest is
    /// its diff ID.
    Digest(String),
}

/// At most this many chains are found in one stream (a K3s bundle has a few dozen): each
/// waits for its layers, and a stream of nothing but tiny configs must not make a crowd.
const MAX_FOUND: usize = 1024;
/// A config of more layers than this is left to the plan (overlayfs stacks at most 128):
/// what a chain holds must not grow past what its document weighs.
const MAX_LAYERS: usize = 256;

/// Finds chains in a stream's documents as they are read, whatever their order: a
/// manifest waits for its config, a config seen first waits for its manifest.
pub(crate) struct Finder<'a> {
    /// The platforms the import was asked for.
    choice: &'a PlatformChoice,
    /// OCI configs seen: diff IDs by digest, `None` when not wanted (see [`Finder::diff_ids`]).
    configs: HashMap<String, Option<Vec<String>>>,
    /// Manifests' layer digests by the config they wait for.
    waiting: HashMap<String, Vec<Vec<String>>>,
    /// Diff IDs of the chains found, each once.
    seen: HashSet<Vec<String>>,
}

impl<'a> Finder<'a> {
    pub(crate) fn new(choice: &'a PlatformChoice) -> Finder<'a> {
        Finder {
            choice,
            configs: HashMap::new(),
            waiting: HashMap::new(),
            seen: HashSet::new(),
        }
    }

    /// A config's diff IDs, if its image would be unpacked: a platform the import chose
    /// that this host runs (or none given), at most [`MAX_LAYERS`] layers, each a
    /// sha256 digest.
    fn diff_ids(&self, config: Config) -> Option<Vec<String>> {
        let platform = config.platform();
        let chosen = !self
            .choice
            .select(std::slice::from_ref(&platform))
            .is_empty();
        let runs = platform.is_none_or(|p| Platform::host().runs(&p));
        let ids = config.rootfs.diff_ids;
        let sane = !ids.is_empty() && ids.len() <= MAX_LAYERS && ids.iter().all(|d| is_digest(d));
        (chosen && runs && sane).then_some(ids)
    }

    /// Whether a chain was found.
    pub(crate) fn found_any(&self) -> bool {
        !self.seen.is_empty()
    }

    /// The chains `doc` completes. Anything unreadable is left to the plan.
    pub(crate) fn add(&mut self, doc: &Doc) -> Vec<EarlyChain> {
        let mut found = vec![];
        if self.seen.len() >= MAX_FOUND {
            return found;
        }
        if let Ok(m) = serde_json::from_slice::<Manifest>(&doc.bytes) {
            let layers_only = m
                .layers
                .iter()
                .all(|l| l.media_type.is_empty() || is_layer(&l.media_type));
            if !doc.blob || m.layers.is_empty() || m.layers.len() > MAX_LAYERS || !layers_only {
                return found;
            }
            let layers = m.layers.into_iter().map(|l| l.digest).collect();
            match self.configs.get(&m.config.digest) {
                Some(Some(diff_ids)) => found.extend(self.chain(layers, diff_ids.clone())),
                Some(None) => {}
                None => self
                    .waiting
                    .entry(m.config.digest)
                    .or_default()
                    .push(layers),
            }
            return found;
        }
        let Ok(config) = serde_json::from_slice::<Config>(&doc.bytes) else {
            return found;
        };
        let diff_ids = self.diff_ids(config);
        if !doc.blob {
            // A `docker save` config: its layers are stored uncompressed.
            if let Some(ids) = diff_ids {
                let layers = ids.iter().map(|d| Wanted::Digest(d.clone())).collect();
                found.extend(self.seen.insert(ids.clone()).then_some(EarlyChain {
                    layers,
                    diff_ids: ids,
                }));
            }
            return found;
        }
        for layers in self.waiting.remove(&doc.digest).unwrap_or_default() {
            if let Some(ids) = &diff_ids {
                found.extend(self.chain(layers, ids.clone()));
            }
        }
        self.configs.insert(doc.digest.clone(), diff_ids);
        found
    }

    /// An OCI manifest's chain, once.
    fn chain(&mut self, layers: Vec<String>, diff_ids: Vec<String>) -> Option<EarlyChain> {
        if layers.len() != diff_ids.len() || !self.seen.insert(diff_ids.clone()) {
            return None;
        }
        let layers: Option<Vec<Wanted>> = layers
            .iter()
            .map(|d| blob_path(d).ok().map(Wanted::Path))
            .collect();
        Some(EarlyChain {
            layers: layers?,
            diff_ids,
        })
    }
}

/// The chains of the images a `docker save` archive's documents describe, each once.
/// Anything unreadable is left to the plan, which reports it.
pub(crate) fn docker_chains(docs: &MemArchive) -> Vec<EarlyChain> {
    let Some(Ok(entries)) = docs.file("manifest.json").map(|m| parse_docker_manifest(m)) else {
        return vec![];
    };
    let mut seen = HashSet::new();
    let mut chains = Vec::new();
    for e in entries {
        let Some(config) = docs.file(&e.config) else {
            continue;
        };
        let Ok(config) = serde_json::from_slice::<Config>(config) else {
            continue;
        };
        let diff_ids = config.rootfs.diff_ids;
        if diff_ids.is_empty() || diff_ids.len() != e.layers.len() || !seen.insert(diff_ids.clone())
        {
            continue;
        }
        chains.push(EarlyChain {
            layers: e
                .layers
                .iter()
                .map(|l| Wanted::Path(docs.resolve(l)))
                .collect(),
            diff_ids,
        });
    }
    chains
}

/// The chains of an OCI layout's documents (docker 25+'s `docker save` too), as its plan
/// will have them: the planner itself, run on the first pass's documents, so the same
/// platforms are chosen. `None` when there is no `index.json` or it cannot be planned
/// from the documents alone.
pub(crate) async fn oci_chains(docs: &MemArchive, opts: &PlanOptions) -> Option<Vec<EarlyChain>> {
    let index = docs.file("index.json")?;
    let docker = docs.file("manifest.json").map(|b| &b[..]);
    let plan = plan_oci(index, docker, docs, opts).await.ok()?;
    let mut seen = HashSet::new();
    let mut chains = Vec::new();
    for m in plan.images.iter().flat_map(|i| &i.manifests) {
        if !m.unpack || m.diff_ids.is_empty() || !seen.insert(m.diff_ids.clone()) {
            continue;
        }
        let layers: Option<Vec<Wanted>> = m
            .layers
            .iter()
            .map(|l| blob_path(&l.digest).ok().map(Wanted::Path))
            .collect();
        chains.push(EarlyChain {
            layers: layers?,
            diff_ids: m.diff_ids.clone(),
        });
    }
    Some(chains)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::sha256_digest;
    use sha2::Digest as _;

    fn docs(files: &[(&str, &str)], links: &[(&str, &str)]) -> MemArchive {
        let mut mem = MemArchive::default();
        for (p, b) in files {
            mem.add_member(p, Bytes::from(b.to_string()), 16);
        }
        mem.links = links
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        mem
    }

    #[test]
    fn chains_from_manifest_and_configs_each_once_links_followed() {
        let config = |ids: &str| format!(r#"{{"rootfs":{{"type":"layers","diff_ids":[{ids}]}}}}"#);
        let c1 = config(r#""sha256:a","sha256:b""#);
        let c3 = config(r#""sha256:a""#);
        let manifest = r#"[
            {"Config":"c1.json","RepoTags":["x:1"],"Layers":["a/layer.tar","b/layer.tar"]},
            {"Config":"c2.json","RepoTags":["x:2"],"Layers":["a/layer.tar","link/layer.tar"]},
            {"Config":"c3.json","RepoTags":["y:1"],"Layers":["a/layer.tar","b/layer.tar"]},
            {"Config":"missing.json","Layers":["a/layer.tar"]}
        ]"#;
        let d = docs(
            &[
                ("manifest.json", manifest),
                ("c1.json", &c1),
                ("c2.json", &c1),
                ("c3.json", &c3),
            ],
            &[("link/layer.tar", "b/layer.tar")],
        );
        let got = docker_chains(&d);
        // c2 is c1's chain again; c3 has one diff ID for two layers; missing.json is not
        // there: the plan reports those.
        assert_eq!(
            got,
            [EarlyChain {
                layers: vec![
                    Wanted::Path("a/layer.tar".into()),
                    Wanted::Path("b/layer.tar".into())
                ],
                diff_ids: vec!["sha256:a".into(), "sha256:b".into()],
            }]
        );
        assert!(docker_chains(&docs(&[("manifest.json", "not json")], &[])).is_empty());
        assert!(docker_chains(&MemArchive::default()).is_empty());
    }

    /// An OCI index of two platforms: only the chain the plan unpacks (the host's) is
    /// known ahead, its layers by blob path.
    #[tokio::test]
    async fn oci_chains_are_the_plans() {
        use crate::oci::Platform;
        use crate::plan::platform::PlatformChoice;
        let digest = |b: &str| sha256_digest(sha2::Sha256::new_with_prefix(b.as_bytes()));
        let host = Platform::host();
        let other = if host.architecture == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        let mut files: Vec<(String, String)> = vec![];
        let mut entries = vec![];
        for (arch, diff) in [
            (host.architecture.as_str(), "sha256:h"),
            (other, "sha256:o"),
        ] {
            let config = format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
            );
            let fill = if arch == other { "b" } else { "a" };
            let layer = format!("sha256:{}", fill.repeat(64));
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":10}}]}}"#,
                digest(&config),
                config.len()
            );
            entries.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                digest(&manifest),
                manifest.len()
            ));
            for doc in [config, manifest] {
                let path = blob_path(&digest(&doc)).unwrap();
                files.push((path, doc));
            }
        }
        let index_entry = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            entries.join(",")
        );
        let nested = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"docker.io/library/x:1"}}}}]}}"#,
            digest(&index_entry),
            index_entry.len()
        );
        files.push((blob_path(&digest(&index_entry)).unwrap(), index_entry));
        files.push(("index.json".into(), nested));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_str()))
            .collect();
        // With --all-platforms both are planned, the host's alone unpacked.
        for all in [false, true] {
            let opts = PlanOptions {
                platforms: PlatformChoice::from_args(&[], all),
                base_name: None,
            };
            let got = oci_chains(&docs(&refs, &[]), &opts).await.expect("planned");
            assert_eq!(
                got,
                [EarlyChain {
                    layers: vec![Wanted::Path(format!("blobs/sha256/{}", "a".repeat(64)))],
                    diff_ids: vec!["sha256:h".into()],
                }],
                "all platforms: {all}"
            );
        }
        let opts = PlanOptions {
            platforms: PlatformChoice::from_args(&[], false),
            base_name: None,
        };
        // No index: not an OCI layout.
        assert!(oci_chains(&MemArchive::default(), &opts).await.is_none());
    }

    /// The stream's documents in any order: a manifest before or after its config, a
    /// config of another platform, a `docker save` config, a chain seen twice, and
    /// documents of no kind.
    #[test]
    fn chains_are_found_as_documents_go_by() {
        use crate::oci::Platform;
        let host = Platform::host();
        let other = if host.architecture == "amd64" {
            "arm64"
        } else {
            "amd64"
        };
        let doc = |digest: &str, json: String, blob: bool| Doc {
            digest: digest.into(),
            bytes: Bytes::from(json),
            blob,
        };
        let config = |arch: &str, ids: &[&str]| {
            let ids: Vec<String> = ids
                .iter()
                .map(|i| format!("\"sha256:{}\"", i.repeat(64)))
                .collect();
            format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
                ids.join(",")
            )
        };
        let hex = |c: char| c.to_string().repeat(64);
        let manifest = |config: &str, layers: &[char]| {
            let layers: Vec<String> = layers
                .iter()
                .map(|&l| {
                    format!(
                        r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{}","size":1}}"#,
                        hex(l)
                    )
                })
                .collect();
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{}]}}"#,
                layers.join(",")
            )
        };
        let oci = |l: &[char], ids: &[&str]| EarlyChain {
            layers: l
                .iter()
                .map(|&c| Wanted::Path(format!("blobs/sha256/{}", hex(c))))
                .collect(),
            diff_ids: ids
                .iter()
                .map(|i| format!("sha256:{}", i.repeat(64)))
                .collect(),
        };
        let host_arch = host.architecture.as_str();
        let choice = PlatformChoice::from_args(&[], false);
        let mut f = Finder::new(&choice);
        // A manifest first: it waits for its config.
        assert!(
            f.add(&doc("sha256:m1", manifest("sha256:c1", &['a', 'b']), true))
                .is_empty()
        );
        assert_eq!(
            f.add(&doc("sha256:c1", config(host_arch, &["1", "2"]), true)),
            [oci(&['a', 'b'], &["1", "2"])]
        );
        // A config first: its manifest completes it.
        assert!(
            f.add(&doc("sha256:c2", config(host_arch, &["3"]), true))
                .is_empty()
        );
        assert_eq!(
            f.add(&doc("sha256:m2", manifest("sha256:c2", &['c']), true)),
            [oci(&['c'], &["3"])]
        );
        // Another platform's image, either order: nothing.
        assert!(
            f.add(&doc("sha256:c3", config(other, &["4"]), true))
                .is_empty()
        );
        assert!(
            f.add(&doc("sha256:m3", manifest("sha256:c3", &['d']), true))
                .is_empty()
        );
        assert!(
            f.add(&doc("sha256:m4", manifest("sha256:c4", &['e']), true))
                .is_empty()
        );
        assert!(
            f.add(&doc("sha256:c4", config(other, &["5"]), true))
                .is_empty()
        );
        // Layers and diff IDs that do not pair up; the same chain again.
        assert!(
            f.add(&doc("sha256:m5", manifest("sha256:c1", &['a']), true))
                .is_empty()
        );
        assert!(
            f.add(&doc("sha256:m6", manifest("sha256:c1", &['a', 'b']), true))
                .is_empty()
        );
        // A docker save config (a member, not a blob): its layers by digest, once.
        let d = |c: &str| format!("sha256:{}", c.repeat(64));
        let docker = EarlyChain {
            layers: vec![Wanted::Digest(d("6")), Wanted::Digest(d("7"))],
            diff_ids: vec![d("6"), d("7")],
        };
        assert_eq!(
            f.add(&doc("sha256:x", config(host_arch, &["6", "7"]), false)),
            [docker]
        );
        assert!(
            f.add(&doc("sha256:y", config(host_arch, &["6", "7"]), false))
                .is_empty()
        );
        // Diff IDs that are not sha256 digests; more layers than an image has.
        let bad = r#"{"rootfs":{"type":"layers","diff_ids":["sha256:8","../x"]}}"#;
        assert!(f.add(&doc("sha256:b", bad.into(), false)).is_empty());
        let many: Vec<String> = (0..=MAX_LAYERS)
            .map(|i| format!("\"sha256:{i:064x}\""))
            .collect();
        let many = format!(
            r#"{{"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            many.join(",")
        );
        assert!(f.add(&doc("sha256:t", many, false)).is_empty());
        // Asked for another platform only: the host's image is not unpacked.
        let elsewhere = PlatformChoice::from_args(&[Platform::new("linux", other, None)], false);
        let mut f = Finder::new(&elsewhere);
        assert!(
            f.add(&doc("sha256:x", config(host_arch, &["6", "7"]), false))
                .is_empty()
        );
        assert!(
            f.add(&doc("sha256:c1", config(host_arch, &["1", "2"]), true))
                .is_empty()
        );
        assert!(
            f.add(&doc("sha256:m1", manifest("sha256:c1", &['a', 'b']), true))
                .is_empty()
        );
        // A legacy layer's `json`, `repositories`, not JSON at all.
        for junk in [
            r#"{"id":"abc","parent":"def","config":{}}"#,
            r#"{"st/a":{"1":"abc"}}"#,
            "{ nope",
        ] {
            assert!(f.add(&doc("sha256:z", junk.into(), false)).is_empty());
            assert!(f.add(&doc("sha256:z", junk.into(), true)).is_empty());
        }
    }

    /// A stream of nothing but configs finds at most [`MAX_FOUND`] chains.
    #[test]
    fn found_chains_are_capped() {
        let choice = PlatformChoice::from_args(&[], false);
        let mut f = Finder::new(&choice);
        let found: usize = (0..MAX_FOUND + 10)
            .map(|i| {
                let config =
                    format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["sha256:{i:064x}"]}}}}"#);
                f.add(&Doc {
                    digest: format!("sha256:c{i}"),
                    bytes: Bytes::from(config),
                    blob: false,
                })
                .len()
            })
            .sum();
        assert_eq!(found, MAX_FOUND);
    }
}
