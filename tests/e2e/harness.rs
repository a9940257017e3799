//! Smoke tests of the harness itself: if these fail, every other e2e failure is suspect.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crimg::proto::runtime::v1 as cri;

use crate::support::{FixtureImage, Node, NodeOptions, runtime, shim_socket, sys};

#[test]
fn node_starts_and_lists_images() {
    let node = Node::start();
    let a = FixtureImage::new("docker.io/library/app-a:1.0");
    let b = FixtureImage::new("docker.io/library/app-b:2.0");
    assert_ne!(a.config_digest(), b.config_digest());
    node.import(&a);
    node.import(&b);
    let ids = node.cri_image_ids();
    assert!(ids.contains(&a.config_digest()), "{ids:?}");
    assert!(ids.contains(&b.config_digest()), "{ids:?}");
    // ctr sees the same records, and labels round-trip through ctr and the images API.
    node.set_label(&a.name, "io.crimg.test/x", Some("1"));
    assert_eq!(
        node.image_labels(&a.name)
            .get("io.crimg.test/x")
            .map(String::as_str),
        Some("1")
    );
    node.set_label(&a.name, "io.crimg.test/x", None);
    assert!(!node.image_labels(&a.name).contains_key("io.crimg.test/x"));
    assert!(node.image_names().contains(&b.name));
}

#[test]
fn node_options_apply() {
    let node = Node::start_with(NodeOptions {
        discard_unpacked_layers: true,
        sandbox_image: "registry.k8s.io/pause:3.10".to_owned(),
        extra_toml: "[plugins.\"io.containerd.gc.v1.scheduler\"]\n  pause_threshold = 0.03\n"
            .to_owned(),
        root_tmpfs: None,
    });
    // What the running CRI says its configuration is, not the file the harness wrote.
    let mut c = node.runtime_client();
    let status = node.call(
        "CRI Status",
        c.status(crimg::proto::runtime::v1::StatusRequest { verbose: true }),
    );
    let config: serde_json::Value =
        serde_json::from_str(status.info.get("config").expect("verbose status config")).unwrap();
    if runtime::containerd().is_v2() {
        // 2.x keeps both in its images plugin and reports neither through CRI: crimg
        // reads them from the configuration file (see tests/e2e/runtimes.rs).
        assert_eq!(config.get("sandboxImage"), None, "{config:#}");
        assert_eq!(
            config["containerd"].get("discardUnpackedLayers"),
            None,
            "{config:#}"
        );
    } else {
        assert_eq!(
            config["containerd"]["discardUnpackedLayers"],
            serde_json::json!(true),
            "{config:#}"
        );
        assert_eq!(
            config["sandboxImage"], "registry.k8s.io/pause:3.10",
            "{config:#}"
        );
    }
    // The pod can only start if CRI uses the configured sandbox image: there is no network.
    let pod = node.run_pod("p");
    let ids = node.cri_image_ids();
    assert_eq!(
        ids,
        [FixtureImage::new("registry.k8s.io/pause:3.10").config_digest()]
    );
    node.ensure_pause_image();
    assert_eq!(node.list_pods()[0].id, pod);
}

#[test]
#[should_panic(expected = "containerd exited during start-up")]
fn start_failure_reports_the_log() {
    Node::start_with(NodeOptions {
        extra_toml: "this is not toml".to_owned(),
        ..NodeOptions::default()
    });
}

#[test]
fn pod_with_running_and_exited_containers() {
    let node = Node::start();
    let app = FixtureImage::new("docker.io/library/app:1.0");
    node.import(&app);
    let pod = node.run_pod("web");
    let running = node.run_container(&pod, "web", &app.name);
    let exited = node.run_exited_container(&pod, "web", &app.name);

    let containers = node.list_containers();
    let state = |id: &str| {
        containers
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.state())
            .unwrap_or_else(|| panic!("container {id} not listed: {containers:?}"))
    };
    assert_eq!(state(&running), cri::ContainerState::ContainerRunning);
    assert_eq!(state(&exited), cri::ContainerState::ContainerExited);
    assert!(
        containers
            .iter()
            .all(|c| c.image_ref == app.config_digest()),
        "{containers:?}"
    );

    let pods = node.list_pods();
    let sandbox = pods.iter().find(|p| p.id == pod).expect("pod listed");
    assert_eq!(sandbox.state(), cri::PodSandboxState::SandboxReady);

    node.stop_pod(&pod);
    let pods = node.list_pods();
    let sandbox = pods
        .iter()
        .find(|p| p.id == pod)
        .expect("stopped pod still listed");
    assert_eq!(sandbox.state(), cri::PodSandboxState::SandboxNotready);
}

#[test]
fn teardown_leaves_nothing() {
    let (dir, socket, cgroup, shims) = {
        let node = Node::start();
        let app = FixtureImage::new("docker.io/library/app:1.0");
        node.import(&app);
        let pod = node.run_pod("p");
        node.run_container(&pod, "p", &app.name);
        let socket = node.socket().to_string_lossy().into_owned();
        assert!(
            !sys::processes_with_arg("-address", &socket).is_empty(),
            "no shim running"
        );
        assert!(
            !sys::mounts_under(node.dir()).is_empty(),
            "no rootfs mounted"
        );
        let dir = node.dir().to_path_buf();
        let cgroup = format!("/{}", dir.file_name().unwrap().to_str().unwrap());
        assert!(
            !sys::cgroup_dirs(&cgroup).is_empty(),
            "pod cgroup not under {cgroup}"
        );
        (dir, socket, cgroup, shim_sockets(node.dir()))
    };
    for s in shims {
        assert!(!s.exists(), "shim socket {} left", s.display());
    }
    let left = sys::processes_mentioning(&socket);
    assert!(left.is_empty(), "processes left: {left:?}");
    let left = sys::processes_mentioning(dir.to_str().unwrap());
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_eq!(sys::mounts_under(&dir), Vec::<PathBuf>::new());
    assert_eq!(sys::cgroup_dirs(&cgroup), Vec::<PathBuf>::new());
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn teardown_after_containerd_dies() {
    // The forceful path alone: CRI cannot stop the pod, so shims, tasks, mounts and
    // cgroups are cleaned up behind containerd.
    let node = Node::start();
    let pod = node.run_pod("p");
    node.run_container(&pod, "p", "registry.k8s.io/pause:3.9");
    let dir = node.dir().to_path_buf();
    let socket = node.socket().to_string_lossy().into_owned();
    let shim_sockets = shim_sockets(&dir);
    assert!(!shim_sockets.is_empty());
    let cgroup = format!("/{}", dir.file_name().unwrap().to_str().unwrap());
    let pid = node.containerd_pid().unwrap();
    sys::kill_and_wait(&[pid], Duration::from_secs(5));
    drop(node);
    assert_eq!(sys::processes_mentioning(&socket).len(), 0);
    assert!(sys::mounts_under(&dir).is_empty());
    assert!(sys::cgroup_dirs(&cgroup).is_empty());
    assert!(!dir.exists());
    for s in shim_sockets {
        assert!(!s.exists(), "shim socket {} left", s.display());
    }
}

#[test]
fn teardown_after_panic() {
    let dir = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let node = Node::start();
        let pod = node.run_pod("p");
        node.run_container(&pod, "p", "registry.k8s.io/pause:3.9");
        *dir.lock().unwrap() = Some(node.dir().to_path_buf());
        panic!("test failure");
    });
    assert!(result.is_err());
    let dir = dir.into_inner().unwrap().expect("node started");
    assert!(sys::mounts_under(&dir).is_empty());
    assert!(!dir.exists());
}

#[test]
fn parallel_nodes() {
    let start = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Node::start);
        let b = s.spawn(Node::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!("two nodes started in {:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(10));
    let img = FixtureImage::new("docker.io/library/shared:1.0");
    for node in [&a, &b] {
        node.import(&img);
        let pod = node.run_pod("p");
        node.run_container(&pod, "p", &img.name);
    }
    // Each node sees only its own pods.
    assert_eq!(a.list_pods().len(), 1);
    assert_eq!(b.list_pods().len(), 1);
    assert_ne!(a.list_pods()[0].id, b.list_pods()[0].id);
    let only_a = FixtureImage::new("docker.io/library/only-a:1.0");
    a.import(&only_a);
    assert!(!b.cri_image_ids().contains(&only_a.config_digest()));
}

/// Where this node's shims listen (outside its dir: /run/containerd/s/<hash>).
fn shim_sockets(dir: &Path) -> Vec<PathBuf> {
    let tasks = dir.join("state/io.containerd.runtime.v2.task/k8s.io");
    std::fs::read_dir(tasks)
        .unwrap()
        .flatten()
        .filter_map(|e| shim_socket(&e.path()))
        .collect()
}

#[test]
fn fixtures_are_deterministic_oci_layouts() {
    let a = FixtureImage::new("docker.io/library/app:1.0");
    assert_eq!(
        a.config_digest(),
        FixtureImage::new(&a.name).config_digest()
    );
    let alias = FixtureImage::with_seed("reg.local/app:v2", &a.name);
    assert_eq!(alias.config_digest(), a.config_digest());
    assert_ne!(
        a.config_digest(),
        FixtureImage::new("docker.io/library/app:1.1").config_digest()
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tar");
    a.write_oci_tar(&path);
    let mut names = Vec::new();
    for entry in tar::Archive::new(std::fs::File::open(&path).unwrap())
        .entries()
        .unwrap()
    {
        names.push(entry.unwrap().path().unwrap().display().to_string());
    }
    let mut want = vec!["oci-layout".to_owned(), "index.json".to_owned()];
    want.extend(
        a.blobs()
            .keys()
            .map(|d| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))),
    );
    names.sort();
    want.sort();
    assert_eq!(names, want);

    // The layer holds an executable /pause.
    let layer = &a.blobs()[&a.layer_digest()];
    let mut layer = tar::Archive::new(layer.as_slice());
    let pause = layer
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("pause"))
        .expect("pause in layer");
    assert_eq!(pause.header().mode().unwrap(), 0o755);
}
