//! crimg's own image, built by scripts/build-image.sh, imported into the node and run in a
//! pod created through CRI with the DaemonSet's container spec: it prunes its own node,
//! writes its metrics, and SIGTERM ends it within the pod's grace period.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crimg::proto::runtime::v1 as cri;
use k8s_openapi::api::apps::v1::DaemonSet;

use crate::run::crimg;
use crate::support::{FixtureImage, Node};

const USED: &str = "docker.io/library/web:1.0";
const EXCLUDED: &str = "reg.local:5000/team/tool:2.1";
const UNUSED: [&str; 2] = ["docker.io/library/old-a:1", "quay.io/someone/old-c:7"];
const PAUSE: &str = "registry.k8s.io/pause:3.9";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// scripts/build-image.sh, once per test run: cargo makes the static build incremental,
/// and packing the archive takes seconds.
fn image_archive() -> PathBuf {
    let out = repo().join("target/image/e2e/crimg.oci.tar");
    let status = Command::new("bash")
        .arg(repo().join("scripts/build-image.sh"))
        .arg(&out)
        .status()
        .expect("run scripts/build-image.sh");
    assert!(status.success(), "scripts/build-image.sh failed");
    out
}

fn daemonset() -> DaemonSet {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join("deploy/overlays/containerd"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"].as_str() == Some("DaemonSet") {
            return serde_yaml_ng::from_value(v).unwrap();
        }
    }
    panic!("no DaemonSet in the containerd overlay")
}

fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_daemonset_container_prunes_its_own_node_and_stops_on_sigterm() {
    let node = Node::start();
    let archive = image_archive();
    let ds = daemonset();
    let pod_spec = ds.spec.unwrap().template.spec.unwrap();
    let grace = pod_spec.termination_grace_period_seconds.unwrap();
    let c = pod_spec.containers[0].clone();
    let image = c.image.clone().unwrap();
    assert_eq!(
        image,
        format!("localhost/crimg:{}", env!("CARGO_PKG_VERSION")),
        "the DaemonSet runs the image scripts/build-image.sh names"
    );
    crimg(node.crimg(), &["import", archive.to_str().unwrap()]).expect_code(0);
    for name in [USED, EXCLUDED].into_iter().chain(UNUSED) {
        node.import(&FixtureImage::new(name));
    }
    let web_pod = node.run_pod("web");
    node.run_container(&web_pod, "web", USED);

    // The host directories behind the DaemonSet's mounts, here in the node's own dir.
    let image_fs = node
        .call(
            "CRI ImageFsInfo",
            node.image_client()
                .image_fs_info(cri::ImageFsInfoRequest {}),
        )
        .image_filesystems[0]
        .fs_id
        .clone()
        .unwrap()
        .mountpoint;
    let textfile = node.dir().join("textfile");
    let state = node.dir().join("crimg-pod-state");
    let exclude = node.dir().join("exclude.d");
    for d in [&textfile, &state, &exclude] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(exclude.join("e2e.conf"), "reg.local:5000/team/**\n").unwrap();
    let volumes = pod_spec.volumes.clone().unwrap();
    let mut mounts = Vec::new();
    for m in c.volume_mounts.clone().unwrap() {
        let v = volumes.iter().find(|v| v.name == m.name).unwrap();
        let host = match m.name.as_str() {
            "runtime" => node.socket().parent().unwrap().to_path_buf(),
            "image-fs" => PathBuf::from(&image_fs),
            "state" => state.clone(),
            "textfile" => textfile.clone(),
            // The ConfigMap's directory; its one test pattern file stands for the data.
            "exclude" if v.config_map.is_some() => exclude.clone(),
            other => panic!("a mount this test does not know: {other}"),
        };
        // The image filesystem is mounted where CRI says it is; here that is the node's.
        let container_path = if m.name == "image-fs" {
            image_fs.clone()
        } else {
            m.mount_path.clone()
        };
        mounts.push(cri::Mount {
            container_path,
            host_path: host.display().to_string(),
            readonly: m.read_only.unwrap_or(false),
            ..Default::default()
        });
    }
    // Same arguments, but marks any used disk is above, so this node is pruned now.
    let args: Vec<String> = c
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| match a.split_once('=') {
            Some(("--high-usage", _)) => "--high-usage=1".into(),
            Some(("--target-usage", _)) => "--target-usage=0".into(),
            _ => a,
        })
        .collect();
    let sc = c.security_context.clone().unwrap();
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        command: c.command.clone().unwrap(),
        args,
        envs: c
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| cri::KeyValue {
                key: e.name,
                value: e.value.unwrap_or_default(),
            })
            .collect(),
        mounts,
        log_path: "crimg.log".into(),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                run_as_user: sc.run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: sc.run_as_group.map(|value| cri::Int64Value { value }),
                readonly_rootfs: sc.read_only_root_filesystem.unwrap(),
                no_new_privs: !sc.allow_privilege_escalation.unwrap(),
                privileged: sc.privileged.unwrap(),
                capabilities: Some(cri::Capability {
                    drop_capabilities: sc.capabilities.unwrap().drop.unwrap(),
                    ..Default::default()
                }),
                seccomp: Some(cri::SecurityProfile {
                    profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = node.run_pod("crimg");
    let log_dir = PathBuf::from(node.pod_config("crimg").log_directory);
    let id = node
        .call(
            "CRI CreateContainer crimg",
            node.runtime_client()
                .create_container(cri::CreateContainerRequest {
                    pod_sandbox_id: pod.clone(),
                    config: Some(config),
                    sandbox_config: Some(node.pod_config("crimg")),
                }),
        )
        .container_id;
    node.start_container(&id);

    let metrics = textfile.join("crimg_prune.prom");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !metrics.exists() {
        let log = fs::read_to_string(log_dir.join("crimg.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no metrics file; the pod said:\n{log}"
        );
        assert_eq!(
            node.container_state(&id),
            cri::ContainerState::ContainerRunning,
            "crimg's container stopped:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = fs::read_to_string(log_dir.join("crimg.log")).unwrap();
    let m = samples(&fs::read_to_string(&metrics).unwrap());
    let exact = [
        ("crimg_prune_last_run_success", "1"),
        ("crimg_prune_images_removed", "2"),
        ("crimg_prune_images_failed", "0"),
        // The pause image (sandboxes), web and crimg itself are in use.
        ("crimg_prune_images_kept{reason=\"in-use\"}", "3"),
        ("crimg_prune_images_kept{reason=\"excluded\"}", "1"),
        ("crimg_prune_interval_seconds", "3600.0"),
    ];
    for (name, value) in exact {
        assert_eq!(
            m.get(name).map(String::as_str),
            Some(value),
            "{name}:\n{m:#?}\n{log}"
        );
    }
    let tags = node.image_names();
    for gone in UNUSED {
        assert!(!tags.iter().any(|t| t == gone), "{gone} left: {tags:?}");
    }
    for kept in [PAUSE, USED, EXCLUDED, image.as_str()] {
        assert!(tags.iter().any(|t| t == kept), "{kept} gone: {tags:?}");
    }
    assert!(log.contains("\"run\":1,\"result\":\"done\""), "{log}");

    // SIGTERM (CRI StopContainer with the pod's grace period) ends it cleanly, at once.
    let start = Instant::now();
    node.call(
        "CRI StopContainer",
        node.runtime_client()
            .stop_container(cri::StopContainerRequest {
                container_id: id.clone(),
                timeout: grace,
            }),
    );
    let took = start.elapsed();
    let status = node
        .call(
            "CRI ContainerStatus",
            node.runtime_client()
                .container_status(cri::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                }),
        )
        .status
        .unwrap();
    let log = fs::read_to_string(log_dir.join("crimg.log")).unwrap();
    assert_eq!(status.exit_code, 0, "{log}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    assert!(log.contains("crimg: stopping"), "{log}");
}
