//! The prune and list scenarios, over N tiny images.

use std::process::{Command, Stdio};

use crimg::proto::runtime::v1 as cri;

use crate::data::import_tiny_images;
use crate::support::Node;
use crate::{Options, Row, crimg, timed};

/// Prune of N unused, unpacked images: crimg against sequential CRI `RemoveImage` calls,
/// which is what `crictl rmi --prune` does (one synchronous removal per image).
pub fn prune(opts: &Options, rows: &mut Vec<Row>) {
    let n = opts.images;
    let exclude_dir = tempfile::tempdir().unwrap();
    let dir = exclude_dir.path().to_str().unwrap().to_string();
    let mut plan = Row::new(
        format!("crimg prune --dry-run, {n} images (planning)"),
        None,
    );
    let mut ours = Row::new(
        format!("crimg prune, {n} unused unpacked images"),
        Some(format!(
            "sequential CRI RemoveImage (crictl's way), {n} images"
        )),
    );
    let mut theirs = Row::new(
        format!("sequential CRI RemoveImage (crictl's way), {n} images"),
        None,
    );
    let node = Node::start();
    for run in 0..opts.runs {
        eprintln!(
            "bench: prune run {}/{}: importing {n} images",
            run + 1,
            opts.runs
        );
        import_tiny_images(&node, n, &format!("p{run}"));
        plan.samples.push(crimg(
            &node,
            &["prune", "--dry-run", "-q", "--exclude-dir", &dir],
        ));
        ours.samples
            .push(crimg(&node, &["prune", "-q", "--exclude-dir", &dir]));
        assert!(node.cri_images().is_empty(), "crimg prune left images");

        import_tiny_images(&node, n, &format!("c{run}"));
        let ids = node.cri_image_ids();
        theirs.samples.push(timed(|| {
            let client = node.image_client();
            node.block_on(async move {
                for id in ids {
                    let mut c = client.clone();
                    c.remove_image(cri::RemoveImageRequest {
                        image: Some(cri::ImageSpec {
                            image: id,
                            ..Default::default()
                        }),
                    })
                    .await
                    .expect("RemoveImage");
                }
            })
        }));
    }
    rows.extend([plan, ours, theirs]);
}

/// Listing N images: `crimg list -o json` (joins CRI, containerd labels, containers and
/// sandboxes) against `ctr images ls -q` (names only).
pub fn list(opts: &Options, rows: &mut Vec<Row>) {
    let n = opts.images;
    let node = Node::start();
    eprintln!("bench: list: importing {n} images");
    import_tiny_images(&node, n, "l");
    let mut ours = Row::new(
        format!("crimg list -o json, {n} images"),
        Some(format!("ctr images ls -q, {n} images")),
    );
    let mut theirs = Row::new(format!("ctr images ls -q, {n} images"), None);
    for _ in 0..opts.runs.max(5) {
        ours.samples.push(crimg(&node, &["list", "-o", "json"]));
        theirs.samples.push(timed(|| {
            let out = Command::new("ctr")
                .args([
                    "--address",
                    node.socket().to_str().unwrap(),
                    "-n",
                    "k8s.io",
                    "images",
                    "ls",
                    "-q",
                ])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(out.success());
        }));
    }
    rows.extend([ours, theirs]);
}
