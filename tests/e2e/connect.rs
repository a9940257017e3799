//! Finding the runtime: flags, crictl's config file, unreachable sockets.

use std::process::Command;

use crate::json::ImageList;
use crate::run::{Run, crimg};
use crate::support::{FixtureImage, Node};

/// crimg with no endpoint flags and no ambient configuration.
fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crimg"));
    for var in [
        "CONTAINER_RUNTIME_ENDPOINT",
        "IMAGE_SERVICE_ENDPOINT",
        "CONTAINERD_ADDRESS",
        "CONTAINERD_NAMESPACE",
        "CRI_CONFIG_FILE",
        "CRIMG_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn unreachable_runtime_exits_3_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("absent.sock");
    let ep = format!("unix://{}", sock.display());
    let run = crimg(bare(), &["-r", &ep, "list"]).expect_code(3);
    assert!(
        run.stderr.contains(&sock.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // A socket file nobody listens on: same.
    std::fs::write(&sock, b"").unwrap();
    let run = Run::of(bare().env("CONTAINER_RUNTIME_ENDPOINT", &ep).arg("list")).expect_code(3);
    assert!(
        run.stderr.contains(&sock.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn unreachable_containerd_exits_3_for_pin() {
    let node = Node::start();
    node.import(&FixtureImage::new("docker.io/library/a:1"));
    let run = crimg(
        node.crimg(),
        &["-a", "/nonexistent/containerd.sock", "pin", "a:1"],
    )
    .expect_code(3);
    assert!(
        run.stderr.contains("/nonexistent/containerd.sock"),
        "{}",
        run.stderr
    );
}

#[test]
fn crictl_config_file_and_env_are_honoured() {
    let node = Node::start();
    node.import(&FixtureImage::new("docker.io/library/cfg:1"));
    let cfg = node.dir().join("crictl.yaml");
    std::fs::write(
        &cfg,
        format!(
            "runtime-endpoint: {}\nimage-endpoint: {}\ntimeout: 5\n",
            node.endpoint(),
            node.endpoint()
        ),
    )
    .unwrap();
    let list: ImageList = crimg(bare(), &["-c", cfg.to_str().unwrap(), "list", "-o", "json"])
        .expect_code(0)
        .json();
    assert!(list.has_tag("docker.io/library/cfg:1"));
    let list: ImageList = Run::of(
        bare()
            .env("CRI_CONFIG_FILE", &cfg)
            .args(["list", "-o", "json"]),
    )
    .expect_code(0)
    .json();
    assert!(list.has_tag("docker.io/library/cfg:1"));
    // Bare socket path, containerd found through the runtime's name.
    let list: ImageList = crimg(
        bare(),
        &["-r", node.socket().to_str().unwrap(), "ls", "-o", "json"],
    )
    .expect_code(0)
    .json();
    assert!(list.has_tag("docker.io/library/cfg:1"));
    // A config file that does not exist is a usage error naming it.
    let run = crimg(bare(), &["-c", "/nonexistent/crictl.yaml", "list"]).expect_code(2);
    assert!(
        run.stderr.contains("/nonexistent/crictl.yaml"),
        "{}",
        run.stderr
    );
}

/// No endpoint configured anywhere: crimg tries every default socket in order and, when
/// none answers, exits 3 naming each of them with why it failed. Run in a private mount
/// namespace with an empty `/run` (so `/var/run` too), so a runtime of the host's can
/// never answer, and with an empty crictl config file in place of `/etc/crictl.yaml`.
#[test]
fn default_search_exits_3_naming_every_socket_tried() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crictl.yaml");
    std::fs::write(&config, "").unwrap();
    let crimg = bare();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run && exec \"$@\"")
        .arg("sh")
        .arg(crimg.get_program())
        .arg("list")
        .env("CRI_CONFIG_FILE", &config);
    for (k, v) in crimg.get_envs() {
        if v.is_none() {
            cmd.env_remove(k);
        }
    }
    let run = Run::of(&mut cmd).expect_code(3);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("crimg: error: "))
        .unwrap_or_else(|| panic!("no error line: {}", run.stderr));
    let tried: Vec<&str> = error
        .split_once("unreachable: ")
        .unwrap_or_else(|| panic!("{error}"))
        .1
        .split("; ")
        .collect();
    // The list in docs/connecting.md, in its order.
    let want: Vec<String> = [
        "/run/containerd/containerd.sock",
        "/run/k3s/containerd/containerd.sock",
        "/var/run/crio/crio.sock",
        "/var/run/cri-dockerd.sock",
    ]
    .iter()
    .map(|path| format!("unix://{path} (no such socket)"))
    .collect();
    assert_eq!(tried, want, "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
