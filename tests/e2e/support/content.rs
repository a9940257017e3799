//! What a node's containerd holds, as ctr shows it: image records, blobs and their
//! labels, crimg's leases; and an image whose pulled layer containerd discarded, for
//! `export --fetch-missing`.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::fixtures::FixtureImage;
use super::node::{Node, NodeOptions};
use super::registry::{Registry, free_port};

/// `ctr` in another namespace of the node.
pub fn ctr_ns(node: &Node, ns: &str, args: &[&str]) -> Output {
    Command::new("ctr")
        .arg("--address")
        .arg(node.socket())
        .args(["--namespace", ns])
        .args(args)
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("run ctr")
}

/// [`ctr_ns`] that must succeed; returns its stdout.
pub fn ctr_ns_ok(node: &Node, ns: &str, args: &[&str]) -> String {
    let out = ctr_ns(node, ns, args);
    assert!(
        out.status.success(),
        "ctr -n {ns} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `name → target digest` of the image records of a namespace.
pub fn records(node: &Node, ns: &str) -> BTreeMap<String, String> {
    ctr_ns_ok(node, ns, &["images", "ls"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((cols.first()?.to_string(), cols.get(2)?.to_string()))
        })
        .collect()
}

/// A node whose CRI discards unpacked layers, a registry holding one image, and that
/// image pulled through CRI, its layer collected. Returns the image's name.
pub fn discarded_image() -> (Node, Registry, FixtureImage) {
    let port = free_port();
    let node = Node::start_with(NodeOptions {
        discard_unpacked_layers: true,
        ..NodeOptions::default()
    });
    node.add_registry_host(port);
    let registry = Registry::start(node.dir(), port);
    let img = FixtureImage::new(&format!("127.0.0.1:{port}/team/app:v1"));
    registry.push(&img, "team/app");
    node.pull(&img.name);
    // skopeo compresses the fixture's layer on push: the pulled layer is that one.
    let layer = pulled_layer(&node, &img.name);
    wait_until_gone(&node, &layer);
    (node, registry, img)
}

/// The (compressed) layer digest of a pulled single-layer image, from its manifest.
pub fn pulled_layer(node: &Node, name: &str) -> String {
    let manifest = records(node, "k8s.io")
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no record {name}"));
    let m: serde_json::Value =
        serde_json::from_str(&node.ctr_ok(&["content", "get", &manifest])).unwrap();
    let layers = m["layers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [layer] = layers else {
        panic!("{name} has not one layer: {m}");
    };
    layer["digest"].as_str().expect("layer digest").to_string()
}

pub fn content_digests(node: &Node) -> Vec<String> {
    node.ctr_ok(&["content", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The labels of a blob, as `ctr content ls` shows them.
pub fn content_labels(node: &Node, digest: &str) -> BTreeMap<String, String> {
    let ls = node.ctr_ok(&["content", "ls"]);
    let line = ls
        .lines()
        .find(|l| l.split_whitespace().next() == Some(digest))
        .unwrap_or_else(|| panic!("{digest} not in `ctr content ls`:\n{ls}"));
    // DIGEST SIZE AGE LABELS: the age has spaces, the labels none.
    line.split_whitespace()
        .last()
        .filter(|l| *l != "-")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Makes containerd collect garbage now: a synchronous delete of a throwaway tag.
pub fn force_gc(node: &Node, name: &str) {
    let tag = "docker.io/library/crimg-gc-trigger:x";
    node.ctr_ok(&["images", "tag", "--force", name, tag]);
    node.ctr_ok(&["images", "rm", "--sync", tag]);
}

/// Waits (bounded) until containerd no longer holds blob `digest`, making it collect
/// garbage once.
fn wait_until_gone(node: &Node, digest: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut forced = false;
    while content_digests(node).iter().any(|d| d == digest) {
        assert!(
            Instant::now() < deadline,
            "containerd kept layer {digest} despite discard_unpacked_layers"
        );
        if !forced {
            std::thread::sleep(Duration::from_millis(500));
            // CRI's images are all there is to keep; a sync delete runs the GC.
            let name = node
                .image_names()
                .into_iter()
                .find(|n| !n.starts_with("sha256:"));
            if let Some(name) = name {
                force_gc(node, &name);
            }
            forced = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// crimg's leases (`crimg-<purpose>-…`), one per line. containerd 2.x's CRI holds a lease
/// of its own for every container it creates, which is not crimg's to release.
pub fn leases(node: &Node) -> String {
    node.ctr_ok(&["leases", "ls", "-q"])
        .lines()
        .filter(|l| l.starts_with("crimg-"))
        .map(|l| format!("{l}\n"))
        .collect()
}
