//! `crimg pin` / `crimg unpin` against containerd's real image records.

use crate::json::{ImageList, PinResult};
use crate::run::crimg;
use crate::support::{FixtureImage, Node};

const CRI_LABEL: &str = "io.cri-containerd.pinned";
const K3S_LABEL: &str = "io.cattle.k3s.pinned";

/// Every containerd record naming the image with this config digest (tags and ID record).
fn records_of(node: &Node, image: &FixtureImage, tags: &[&str]) -> Vec<String> {
    let id = image.config_digest();
    node.image_names()
        .into_iter()
        .filter(|n| *n == id || tags.contains(&n.as_str()))
        .collect()
}

fn list(node: &Node) -> ImageList {
    crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json()
}

/// What K3s does at every start: strip both pin labels from every image carrying its own.
fn simulate_k3s_restart(node: &Node) {
    for name in node.image_names() {
        if node.image_labels(&name).contains_key(K3S_LABEL) {
            node.set_label(&name, K3S_LABEL, None);
            node.set_label(&name, CRI_LABEL, None);
        }
    }
}

#[test]
fn pin_labels_every_record_and_survives_a_k3s_restart() {
    let node = Node::start();
    let app = FixtureImage::new("docker.io/library/app:1.0");
    let app_alias =
        FixtureImage::with_seed("reg.local:5000/team/app:v1", "docker.io/library/app:1.0");
    let airgap = FixtureImage::new("docker.io/rancher/airgap:1.0");
    let other_airgap = FixtureImage::new("docker.io/rancher/other-airgap:1.0");
    for i in [&app, &app_alias, &airgap, &other_airgap] {
        node.import(i);
    }
    // K3s's air-gap import labels.
    for name in [&airgap.name, &other_airgap.name] {
        node.set_label(name, CRI_LABEL, Some("pinned"));
        node.set_label(name, K3S_LABEL, Some("pinned"));
    }

    // A label of someone else's, which pinning must leave as it is.
    node.set_label(&app.name, "io.crimg.test/other", Some("kept"));

    // Dry run: reported, nothing changed.
    let dry: PinResult = crimg(node.crimg(), &["pin", "--dry-run", "-o", "json", "app:1.0"])
        .expect_code(0)
        .json();
    assert_eq!(dry.changed, ["app:1.0"]);
    assert!(!node.image_labels(&app.name).contains_key(CRI_LABEL));

    // Pin by short name: every record of the image, both tags, gets the label.
    let res: PinResult = crimg(
        node.crimg(),
        &["pin", "-o", "json", "app:1.0", &airgap.name],
    )
    .expect_code(0)
    .json();
    assert_eq!(res.changed, ["app:1.0", airgap.name.as_str()]);
    assert!(res.unchanged.is_empty() && res.not_found.is_empty());
    // containerd 1.7 and 2.x crash on an Images.Update whose image has no target.
    assert!(node.containerd_running(), "containerd died: {}", node.log());
    assert_eq!(
        node.image_labels(&app.name)
            .get("io.crimg.test/other")
            .map(String::as_str),
        Some("kept"),
        "pin touched another label"
    );
    let records = records_of(&node, &app, &[&app.name, &app_alias.name]);
    assert!(records.len() >= 2, "{records:?}");
    for r in &records {
        assert_eq!(
            node.image_labels(r).get(CRI_LABEL).map(String::as_str),
            Some("pinned"),
            "{r}"
        );
    }
    // Pinning K3s's image takes it over from K3s: its label goes, the CRI one stays.
    let labels = node.image_labels(&airgap.name);
    assert_eq!(labels.get(CRI_LABEL).map(String::as_str), Some("pinned"));
    assert!(!labels.contains_key(K3S_LABEL), "{labels:?}");
    let l = list(&node);
    assert_eq!(l.by_tag(&app.name).pinned_by, ["user"]);
    assert_eq!(l.by_tag(&airgap.name).pinned_by, ["user"]);
    assert_eq!(l.by_tag(&other_airgap.name).pinned_by, ["k3s"]);

    // Idempotent.
    let again: PinResult = crimg(node.crimg(), &["pin", "-o", "json", "app:1.0"])
        .expect_code(0)
        .json();
    assert_eq!(again.unchanged, ["app:1.0"]);
    assert!(again.changed.is_empty());

    // K3s restarts: it unpins its own images, but the user's pins stay.
    simulate_k3s_restart(&node);
    let l = list(&node);
    assert_eq!(
        l.by_tag(&airgap.name).pinned_by,
        ["user"],
        "the user's pin survives"
    );
    assert_eq!(l.by_tag(&app.name).pinned_by, ["user"]);
    assert!(
        l.by_tag(&other_airgap.name).pinned_by.is_empty(),
        "K3s's own pin is gone"
    );
}

#[test]
fn unpin_removes_both_labels_and_warns_about_k3s() {
    let node = Node::start();
    let img = FixtureImage::new("docker.io/rancher/airgap:2.0");
    node.import(&img);
    node.set_label(&img.name, CRI_LABEL, Some("pinned"));
    node.set_label(&img.name, K3S_LABEL, Some("pinned"));
    let images_dir = node.dir().join("k3s-images");
    std::fs::create_dir_all(&images_dir).unwrap();
    std::fs::write(images_dir.join("airgap.tar"), b"").unwrap();

    // By ID prefix; the K3s directory still holds an archive: warn.
    let id = img.config_digest();
    let prefix = &id[7..19];
    let run = crimg(
        {
            let mut c = node.crimg();
            c.env("CRIMG_K3S_IMAGES_DIR", &images_dir);
            c
        },
        &["unpin", "-o", "json", prefix],
    )
    .expect_code(0);
    let res: PinResult = run.json();
    assert_eq!(res.changed, [prefix]);
    assert!(
        run.stderr.contains("K3s will pin it again"),
        "{}",
        run.stderr
    );
    let labels = node.image_labels(&img.name);
    assert!(
        !labels.contains_key(CRI_LABEL) && !labels.contains_key(K3S_LABEL),
        "{labels:?}"
    );
    assert!(list(&node).by_tag(&img.name).pinned_by.is_empty());

    let again: PinResult = crimg(node.crimg(), &["unpin", "-o", "json", &img.name])
        .expect_code(0)
        .json();
    assert_eq!(again.unchanged, [img.name.as_str()]);
}

#[test]
fn unknown_reference_exits_4_and_the_rest_is_done() {
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/known:1.0");
    node.import(&img);
    let run = crimg(node.crimg(), &["pin", "-o", "json", "nope:1", "known:1.0"]).expect_code(4);
    crate::schema::check("pin", &run.stdout);
    let res: PinResult = run.json();
    assert_eq!(res.not_found, ["nope:1"]);
    assert_eq!(res.changed, ["known:1.0"]);
    assert!(
        run.stderr
            .contains("\"nope:1\" (docker.io/library/nope:1) not found"),
        "{}",
        run.stderr
    );
    assert_eq!(
        node.image_labels(&img.name)
            .get(CRI_LABEL)
            .map(String::as_str),
        Some("pinned")
    );

    // Table output names what happened.
    let run = crimg(node.crimg(), &["unpin", "known:1.0", "gone:2"]).expect_code(4);
    assert!(
        run.stdout.contains("unpinned") && run.stdout.contains("known:1.0"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("gone:2"), "{}", run.stderr);

    // An invalid reference is a usage error, naming it; nothing is changed.
    let run = crimg(node.crimg(), &["pin", "known:1.0", "Not/Valid:Ref:x"]).expect_code(2);
    assert!(run.stderr.contains("\"Not/Valid:Ref:x\""), "{}", run.stderr);
    assert!(!node.image_labels(&img.name).contains_key(CRI_LABEL));
}
