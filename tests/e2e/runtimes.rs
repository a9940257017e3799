//! What differs between containerd 1.6, 1.7 and 2.x, asserted for the version the suite
//! runs on (see `support::runtime`): image volumes, where the sandbox image is named,
//! records CRI does not follow, and what crimg says runs the node.

use std::fs;

use crate::json::{ImageList, PruneResult};
use crate::run::crimg;
use crate::support::{FixtureImage, Node, NodeOptions, runtime};

const WEB: &str = "docker.io/library/web:1.0";
const VOLUME: &str = "reg.local/data/models:2024";
/// A sandbox image that no built-in pattern covers, as a private registry's would be.
const SANDBOX: &str = "reg.local/infra/sandbox:7";

/// A running container mounting an image as a volume (Kubernetes' ImageVolume) keeps that
/// image: on 2.x it runs, and neither the dry run nor a real prune removes the mounted
/// image. containerd 1.x has no image volumes and refuses the mount.
#[test]
fn an_image_volume_keeps_its_image() {
    let node = Node::start();
    node.ensure_pause_image();
    let volume = FixtureImage::new(VOLUME);
    let unused = FixtureImage::new("docker.io/library/unused:1");
    for i in [&FixtureImage::new(WEB), &volume, &unused] {
        node.import(i);
    }
    let pod = node.run_pod("web");
    let created = node.create_container_mounting(&pod, "web", WEB, VOLUME);
    if !runtime::containerd().is_v2() {
        let status = created.expect_err("containerd 1.x has no image volumes");
        assert!(!status.message().is_empty(), "{status:?}");
        return;
    }
    let container = created.unwrap_or_else(|s| node.fail(&format!("image volume: {s:?}")));
    node.start_container(&container);

    let list: ImageList = crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(list.by_tag(VOLUME).in_use.containers, [container.as_str()]);
    assert_eq!(list.by_tag(WEB).in_use.containers, [container.as_str()]);
    let dry: PruneResult = crimg(node.crimg(), &["prune", "--dry-run", "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(dry.removed_tags(), std::slice::from_ref(&unused.name));
    assert_eq!(
        dry.reasons_of(VOLUME),
        [format!("in-use:container:{container}")]
    );
    let real: PruneResult = crimg(node.crimg(), &["prune", "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(real.removed_tags(), std::slice::from_ref(&unused.name));
    assert!(
        node.cri_image_status(VOLUME).is_some(),
        "the mounted image went"
    );
    assert!(node.cri_image_status(&unused.name).is_none());
}

/// A runtime handler (a RuntimeClass) whose snapshotter is not CRI's: `native`.
const NATIVE_HANDLER_V3: &str = r#"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.native]
  runtime_type = "io.containerd.runc.v2"
  snapshotter = "native"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.native.options]
    Root = "{dir}/runc"
# 2.x's images plugin: pulls for the handler, and the image filesystems CRI measures.
[plugins.'io.containerd.cri.v1.images'.runtime_platforms.native]
  snapshotter = "native"
"#;
const NATIVE_HANDLER_V2: &str = r#"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.native]
  runtime_type = "io.containerd.runc.v2"
  snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.native.options]
    Root = "{dir}/runc"
"#;

/// A pod of a runtime handler with a snapshotter of its own (containerd 1.7 and later; 1.6
/// has no per-handler snapshotter and unpacks into CRI's): containerd keeps one image record
/// for every handler and unpacks per snapshotter, so its images are kept while any handler's
/// pod uses them. The handler's sandbox is followed to the image it was made from in the
/// handler's snapshotter, its pause tag moved to another build; `check` names the
/// snapshotters an image is unpacked into.
#[test]
fn a_runtime_handlers_pods_keep_their_images() {
    let version = runtime::containerd();
    let node = Node::start_with(NodeOptions {
        extra_toml: if version.is_v2() {
            NATIVE_HANDLER_V3
        } else {
            NATIVE_HANDLER_V2
        }
        .into(),
        ..NodeOptions::default()
    });
    let snapshotter = if version.at_least(1, 7) {
        "native"
    } else {
        "overlayfs"
    };
    let dir = node.dir().join("archives");
    fs::create_dir_all(&dir).unwrap();
    let tar = |image: &FixtureImage, file: &str| {
        let path = dir.join(file);
        image.write_oci_tar(&path);
        path.to_str().expect("utf-8 path").to_string()
    };
    // What the handler's pods run, unpacked into its snapshotter as an operator imports it.
    node.ensure_pause_image();
    let pause_name = NodeOptions::default().sandbox_image;
    let pause = FixtureImage::new(&pause_name);
    let old_id = pause.config_digest();
    let web = FixtureImage::new(WEB);
    crimg(
        node.crimg(),
        &[
            "import",
            "--snapshotter",
            snapshotter,
            &tar(&pause, "pause.tar"),
            &tar(&web, "web.tar"),
        ],
    )
    .expect_code(0);
    let unused = FixtureImage::new("docker.io/library/unused:1");
    node.import(&unused);

    let pod = node.run_pod_on("n", "native");
    let container = node.run_container(&pod, "n", WEB);

    let checked: crate::json::Checked = crimg(node.crimg(), &["check", "-o", "json", WEB])
        .expect_code(0)
        .json();
    assert_eq!(checked.images.len(), 1, "{checked:?}");
    let platform = &checked.images[0].platforms[0];
    assert_eq!(platform.unpacked_in, [snapshotter], "{checked:?}");
    assert_eq!(platform.unpacked, snapshotter == "overlayfs", "{checked:?}");

    // The pause tag moves to another build: the sandbox still runs the old one.
    let rebuilt = FixtureImage::with_seed(&pause_name, "pause rebuilt for a runtime handler");
    node.import(&rebuilt);
    for args in [
        &["prune", "--dry-run", "-o", "json"][..],
        &["prune", "-o", "json"],
    ] {
        let r: PruneResult = crimg(node.crimg(), args).expect_code(0).json();
        assert_eq!(
            r.removed_tags(),
            std::slice::from_ref(&unused.name),
            "{args:?}"
        );
        assert_eq!(
            r.reasons_of(WEB),
            [format!("in-use:container:{container}")],
            "{args:?}"
        );
        let kept = r
            .kept
            .iter()
            .find(|k| k.id == old_id)
            .unwrap_or_else(|| panic!("{old_id} not kept: {r:#?}"));
        assert_eq!(kept.reasons[0], format!("in-use:sandbox:{pod}"), "{args:?}");
    }
    assert!(node.cri_image_ids().contains(&old_id));
    assert!(node.cri_image_status(WEB).is_some());
    assert!(node.cri_image_status(&unused.name).is_none());

    // The watermark reads the filesystem that holds CRI's images, overlayfs's, and says
    // which, with a second snapshotter configured. containerd
    // (1.7, 2.1.9, and its main branch of 2026) measures only that snapshotter: 2.x's
    // ImageFsInfo could list one filesystem per snapshotter, but its syncer walks only the
    // default one, so a handler's snapshotter never appears; the choice among several is
    // unit-tested in `plan::schedule`.
    let overlay = node
        .dir()
        .join("root/io.containerd.snapshotter.v1.overlayfs");
    let r = crimg(
        node.crimg(),
        &["-v", "prune", "--dry-run", "--target-usage", "99"],
    )
    .expect_code(0);
    assert!(
        r.stderr
            .contains(&format!("image filesystem {}:", overlay.display())),
        "{}",
        r.stderr
    );
}

/// The sandbox image is `allowlist:sandbox-image` on every version: from CRI `Status` on
/// 1.x, from containerd's configuration on 2.x (found through the serving process's
/// `--config`, or named with `--containerd-config`), with no pod running and a name no
/// built-in pattern covers.
#[test]
fn the_sandbox_image_is_named_on_every_version() {
    let node = Node::start_with(NodeOptions {
        sandbox_image: SANDBOX.into(),
        ..NodeOptions::default()
    });
    node.ensure_pause_image();
    let reasons = |node: &Node, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["prune", "--dry-run", "-o", "json"];
        args.extend_from_slice(extra);
        let r: PruneResult = crimg(node.crimg(), &args).expect_code(0).json();
        r.reasons_of(SANDBOX)
    };
    let mut want = Vec::new();
    if runtime::containerd().pins_sandbox_image() {
        want.push("pinned:cri".to_string());
    }
    want.push("allowlist:sandbox-image".into());
    assert_eq!(reasons(&node, &[]), want);

    // K3s's restart strips the CRI pin label from every image it finds it on; 2.x puts it
    // back on its sandbox image at once, 1.7 does not but CRI goes on reporting the image
    // pinned. The reasons stay the same.
    node.set_label(SANDBOX, "io.cri-containerd.pinned", None);
    let pinned = || {
        node.image_labels(SANDBOX)
            .contains_key("io.cri-containerd.pinned")
    };
    if runtime::containerd().is_v2() {
        node.wait_for("the runtime to pin its sandbox image again", pinned);
    } else {
        assert!(!pinned());
    }
    assert_eq!(reasons(&node, &[]), want);

    // A configuration named on the command line: 2.x takes its sandbox image from it,
    // 1.x from CRI `Status`, which wins.
    let other = node.dir().join("other.toml");
    fs::write(
        &other,
        "version = 3\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = \"reg.local/infra/other:1\"\n",
    )
    .unwrap();
    let named = reasons(&node, &["--containerd-config", other.to_str().unwrap()]);
    if runtime::containerd().is_v2() {
        // No longer the sandbox image, the runtime's pin reads as anyone's.
        assert_eq!(named, ["pinned:user"]);
    } else {
        assert_eq!(named, want);
    }
}

/// A named configuration that is missing, not a regular file or not TOML is a usage
/// error naming it; nothing is removed.
#[test]
fn a_bad_containerd_config_is_a_usage_error() {
    let node = Node::start();
    let plain = FixtureImage::new("docker.io/library/plain:1");
    node.import(&plain);
    let dir = node.dir();
    let bad = dir.join("bad.toml");
    fs::write(&bad, "version = [").unwrap();
    let fifo = dir.join("fifo.toml");
    crate::support::sys::mkfifo(&fifo);
    let cases = [
        (dir.join("none.toml"), "no such file"),
        (bad.clone(), "not a containerd configuration"),
        (fifo.clone(), "is a FIFO"),
        ("/dev/zero".into(), "is a character device"),
    ];
    for (path, why) in cases {
        let p = path.to_str().unwrap();
        let r = crimg(node.crimg(), &["--containerd-config", p, "prune"]).expect_code(2);
        assert!(
            r.stderr.contains(p) && r.stderr.contains(why),
            "{p}: {}",
            r.stderr
        );
    }
    assert!(node.cri_image_status(&plain.name).is_some());
}

/// A record named without a registry (`ctr import` of an OCI archive whose image name is
/// `app/x:1.0`) is one CRI does not drop when the record goes: prune removes it through
/// CRI as well, on every version, and does not wait out its timeout to say so.
#[test]
fn prune_leaves_cri_agreeing_with_containerd() {
    let node = Node::start();
    let image = FixtureImage::new("app/x:1.0");
    let tar = node.dir().join("x.tar");
    image.write_oci_tar(&tar);
    node.ctr_ok(&["images", "import", tar.to_str().unwrap()]);
    let id = image.config_digest();
    node.wait_for("CRI to list app/x:1.0", || {
        node.cri_image_ids().contains(&id)
    });

    let r = crimg(node.crimg(), &["prune", "-o", "json"]).expect_code(0);
    let out: PruneResult = r.json();
    assert_eq!(out.removed.len(), 1, "{out:?}");
    assert_eq!(out.removed[0].id, id);
    assert!(!node.cri_image_ids().contains(&id), "CRI still lists {id}");
    assert!(!r.stderr.contains("still listed"), "{}", r.stderr);
    assert!(node.image_names().is_empty(), "{:?}", node.image_names());
}

/// A containerd record CRI does not list (its content is not there, so CRI cannot read it;
/// a bulk import's records are listed late the same way) is named on stderr and left
/// alone: `list` and prune say so, prune removes what CRI shows, and the record stays.
#[test]
fn records_cri_does_not_list_are_named_and_left_alone() {
    use crimg::proto::containerd::services::images::v1 as ctrd;
    use crimg::proto::containerd::types::Descriptor;
    const GHOST: &str = "docker.io/library/ghost:1";
    let node = Node::start();
    let unused = FixtureImage::new("docker.io/library/unused:1");
    node.import(&unused);
    let mut c = node.images_client();
    let req = Node::namespaced(ctrd::CreateImageRequest {
        image: Some(ctrd::Image {
            name: GHOST.into(),
            target: Some(Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: format!("sha256:{}", "0".repeat(64)),
                size: 512,
                ..Default::default()
            }),
            ..Default::default()
        }),
        source_date_epoch: None,
    });
    node.call("containerd Images.Create", c.create(req));
    assert!(node.image_names().iter().any(|n| n == GHOST));

    let named = |stderr: &str| {
        stderr.contains("image record(s) that the runtime's CRI does not list")
            && stderr.contains(GHOST)
    };
    let list = crimg(node.crimg(), &["list"]).expect_code(0);
    assert!(named(&list.stderr), "{}", list.stderr);
    for args in [
        &["prune", "--dry-run", "-o", "json"][..],
        &["prune", "-o", "json"],
    ] {
        let run = crimg(node.crimg(), args).expect_code(0);
        assert!(named(&run.stderr), "{args:?}: {}", run.stderr);
        let r: PruneResult = run.json();
        assert_eq!(
            r.removed_tags(),
            std::slice::from_ref(&unused.name),
            "{args:?}"
        );
    }
    assert!(node.image_names().iter().any(|n| n == GHOST));
}
