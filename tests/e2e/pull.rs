//! `.txt` reference lists: each reference pulled through CRI from a registry.

use crate::json::ImportResult;
use crate::run::crimg;
use crate::support::registry::{Registry, free_port};
use crate::support::{FixtureImage, Node};

/// A list naming an image only a registry has: crimg pulls it through CRI (the registry
/// serves its manifest and blobs), CRI then lists it, and a second run finds it present
/// and asks the registry for nothing.
#[test]
fn reference_list_pulls_from_a_registry() {
    let port = free_port();
    let node = Node::start();
    node.add_registry_host(port);
    let registry = Registry::start(node.dir(), port);
    let img = FixtureImage::new(&format!("127.0.0.1:{port}/team/listed:v1"));
    registry.push(&img, "team/listed");
    assert!(node.cri_image_status(&img.name).is_none());
    let list = node.dir().join("images.txt");
    std::fs::write(&list, format!("# from the registry\n{}\n", img.name)).unwrap();
    let file = list.to_str().unwrap();

    let r = crimg(node.crimg(), &["-v", "import", "-o", "json", file]).expect_code(0);
    let out: ImportResult = r.json();
    assert!(out.failed.is_empty(), "{out:?}");
    assert_eq!(out.names(), std::slice::from_ref(&img.name));
    assert_eq!(out.imported[0].images[0].id, img.config_digest());
    // containerd (CRI's puller) resolved the tag and fetched the blobs.
    let by_containerd = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("\"containerd/") && l.contains("/v2/team/listed/"))
            .map(str::to_string)
            .collect()
    };
    let log = registry.log();
    let fetched = by_containerd(&log);
    assert!(
        fetched
            .iter()
            .any(|l| l.contains("/v2/team/listed/manifests/v1 ")),
        "{log}"
    );
    assert!(
        node.cri_image_status(&img.name).is_some(),
        "CRI does not list {}",
        img.name
    );

    let before = registry.log().len();
    let r = crimg(node.crimg(), &["-v", "import", "-o", "json", file]).expect_code(0);
    let out: ImportResult = r.json();
    assert_eq!(out.names(), std::slice::from_ref(&img.name));
    let again = by_containerd(&registry.log()[before..]);
    assert!(again.is_empty(), "asked the registry again: {again:?}");
}
