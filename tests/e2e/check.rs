//! `crimg check`: completeness in the content store, unpack state, and where
//! `export --fetch-missing` would fetch what is missing, without fetching.

use std::fs;

use crate::json::Checked;
use crate::run::crimg;
use crate::support::content::{discarded_image, pulled_layer};
use crate::support::{FixtureImage, Node, runtime};

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
    // Read from the configuration on every version, 2.x's version 3 included.
    assert_eq!(out.runtime.discard_unpacked_layers, Some(true), "{out:?}");
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

    // Without --registry-config-dir, the hosts directory containerd's configuration names
    // (version 2 or 3), where the node's hosts file for the registry is.
    let found: Checked = crimg(node.crimg(), &["-o", "json", "check", &img.name])
        .expect_code(4)
        .json();
    let hosts_toml = node
        .dir()
        .join(format!("certs.d/127.0.0.1:{port}/hosts.toml"));
    assert_eq!(
        Some(found.runtime.registry_hosts_dir.as_str()),
        node.dir().join("certs.d").to_str()
    );
    assert!(
        found.images[0]
            .fetch_from
            .iter()
            .any(|e| e.origin.contains(hosts_toml.to_str().unwrap())),
        "{found:?}"
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
    // What runs the node, found without being told: the version CRI reports, the file
    // the serving containerd was started with, and what that file says.
    let r = &out.runtime;
    assert_eq!(r.name, "containerd");
    assert_eq!(r.version, runtime::containerd().text, "{r:?}");
    assert_eq!(r.api_version, "v1");
    let dir = node.dir();
    assert_eq!(
        r.config.as_deref(),
        dir.join("config.toml").to_str(),
        "{r:?}"
    );
    assert_eq!(
        r.sandbox_image.as_deref(),
        Some("registry.k8s.io/pause:3.9")
    );
    assert_eq!(r.snapshotter, "overlayfs");
    assert_eq!(r.discard_unpacked_layers, Some(false));
    assert_eq!(
        Some(r.registry_hosts_dir.as_str()),
        dir.join("certs.d").to_str()
    );
    let table = crimg(node.crimg(), &["check", &image.name]).expect_code(0);
    let said = format!(
        "crimg: runtime containerd {} (CRI v1), configuration {}",
        r.version,
        dir.join("config.toml").display()
    );
    assert!(table.stderr.contains(&said), "{}", table.stderr);

    let i = &out.images[0];
    assert!(i.complete, "{i:?}");
    assert_eq!(i.platforms[0].config, image.config_digest());
    assert!(i.platforms[0].unpacked, "{i:?}");
    // An unknown reference is not a pass: it is named, the others are still checked,
    // exit 4 (as `pin` does).
    let r = crimg(
        node.crimg(),
        &["-o", "json", "check", "nothing:1", &image.name],
    )
    .expect_code(4);
    let out: Checked = r.json();
    assert_eq!(out.not_found, ["nothing:1"]);
    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].names, std::slice::from_ref(&image.name));
    assert!(r.stderr.contains("nothing:1"), "{}", r.stderr);
    crimg(node.crimg(), &["check", "docker.io/library/nothing:1"]).expect_code(4);
}
