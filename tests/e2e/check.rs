//! `crimg check`: completeness in the content store, unpack state, and where
//! `export --fetch-missing` would fetch what is missing, without fetching.

use std::fs;

use serde::Deserialize;

use crate::export::{discarded_image, pulled_layer};
use crate::run::crimg;
use crate::support::{FixtureImage, Node};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checked {
    images: Vec<Image>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    names: Vec<String>,
    digest: String,
    complete: bool,
    snapshotter: String,
    platforms: Vec<Platform>,
    absent_platforms: Vec<String>,
    missing: Vec<Missing>,
    fetch_from: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    platform: String,
    manifest: String,
    config: String,
    complete: bool,
    unpacked: bool,
    layers: usize,
    missing_layers: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Missing {
    digest: String,
    what: String,
    size: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    repository: String,
    endpoint: String,
    origin: String,
}

#[test]
fn check_names_discarded_layers_and_passes_after_fetch_missing() {
    let (node, registry, img) = discarded_image();
    let layer = pulled_layer(&node, &img.name);
    let no_certs = node.dir().join("no-certs.d");
    let no_yaml = node.dir().join("no-registries.yaml");
    let opts = [
        "--registry-config-dir",
        no_certs.to_str().unwrap(),
        "--registries-yaml",
        no_yaml.to_str().unwrap(),
    ];
    let check = |code: i32| -> Checked {
        let mut args = vec!["-o", "json", "check"];
        args.extend(opts);
        args.push(&img.name);
        crimg(node.crimg(), &args).expect_code(code).json()
    };
    let registry_log_before = registry.log();

    let out = check(4);
    assert_eq!(out.images.len(), 1);
    let i = &out.images[0];
    assert_eq!(i.names, vec![img.name.clone()]);
    assert!(i.digest.starts_with("sha256:"));
    assert!(!i.complete);
    assert!(i.absent_platforms.is_empty(), "{i:?}");
    assert_eq!(i.missing.len(), 1, "{i:?}");
    assert_eq!(i.missing[0].digest, layer);
    assert!(i.missing[0].what.starts_with("layer 1 of 1"), "{i:?}");
    assert!(i.missing[0].size > 0);
    assert_eq!(i.platforms.len(), 1, "{i:?}");
    let p = &i.platforms[0];
    // A single manifest (no index) says no platform of its own.
    assert_eq!(p.platform, "unknown", "{p:?}");
    assert!(p.manifest.starts_with("sha256:") && p.config.starts_with("sha256:"));
    assert!(!p.complete);
    // Pulled through CRI: unpacked, which is why its layer was discarded.
    assert!(p.unpacked, "{i:?}");
    assert_eq!(i.snapshotter, "overlayfs");
    assert_eq!((p.layers, p.missing_layers), (1, 1));
    // The registry itself, by the default endpoint rules (a loopback host: HTTPS, then HTTP).
    assert!(!i.fetch_from.is_empty(), "{i:?}");
    assert!(
        i.fetch_from.iter().all(|e| e.repository == "team/app"),
        "{i:?}"
    );
    let port = img.name.split(['/', ':']).nth(1).unwrap().to_string();
    assert!(
        i.fetch_from
            .iter()
            .any(|e| e.endpoint.contains(&format!("127.0.0.1:{port}")) && !e.origin.is_empty()),
        "{i:?}"
    );
    // Nothing was fetched to say so.
    assert_eq!(
        registry.log(),
        registry_log_before,
        "check talked to the registry"
    );

    // The table says the same, and all images by default gate too.
    let mut args = vec!["check"];
    args.extend(opts);
    let table = crimg(node.crimg(), &args).expect_code(4);
    assert!(table.stdout.contains(&img.name), "{}", table.stdout);

    let file = node.dir().join("fetched.tar");
    let mut args = vec!["export", "--fetch-missing"];
    args.extend(opts);
    args.extend(["-O", file.to_str().unwrap(), &img.name]);
    crimg(node.crimg(), &args).expect_code(0);
    fs::remove_file(&file).unwrap();

    let out = check(0);
    let i = &out.images[0];
    assert!(
        i.complete && i.missing.is_empty() && i.fetch_from.is_empty(),
        "{i:?}"
    );
    assert!(i.platforms[0].complete && i.platforms[0].unpacked, "{i:?}");
}

#[test]
fn check_of_imported_images_is_complete() {
    let node = Node::start();
    let image = FixtureImage::new("docker.io/library/checked:1");
    node.import(&image);
    let out: Checked = crimg(node.crimg(), &["-o", "json", "check", &image.name])
        .expect_code(0)
        .json();
    let i = &out.images[0];
    assert!(i.complete, "{i:?}");
    assert_eq!(i.platforms[0].config, image.config_digest());
    assert!(i.platforms[0].unpacked, "{i:?}");
    // An unknown reference is an error, not a pass.
    let r = crimg(node.crimg(), &["check", "docker.io/library/nothing:1"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
}
