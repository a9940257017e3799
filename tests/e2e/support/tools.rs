//! Other image tools as producers and consumers: podman and buildah on a private storage
//! root, skopeo, umoci, and a private dockerd on its own socket. Nothing here touches the
//! host's own storage or daemon. A tool that is not installed fails the test:
//! `scripts/test.sh` installs them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pause_binary;
use crate::support::sys;

/// Where `name` is on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Fails unless `name` is on PATH.
pub fn require(name: &str) {
    assert!(
        which(name).is_some(),
        "{name} is not installed; scripts/test.sh installs it (apt-get install podman buildah skopeo umoci docker.io zstd)"
    );
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A root filesystem tar: `/pause` (the entrypoint), a file whose content is `seed`, so
/// every image made from it has its own layer, and 1.5 MiB of filler, so the layer is
/// larger than what crimg keeps in memory while streaming.
pub fn rootfs_tar(path: &Path, seed: &str) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        (
            "pause",
            fs::read(pause_binary()).expect("read pause binary"),
            0o755,
        ),
        ("seed", seed.as_bytes().to_vec(), 0o644),
        ("filler", vec![0u8; 3 << 19], 0o644),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).expect("tar member");
    }
    fs::write(path, b.into_inner().expect("finish tar")).expect("write rootfs tar");
}

/// A file name made of `seed` (any string) and an extension.
fn file_name(seed: &str, ext: &str) -> String {
    let base: String = seed
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{base}.{ext}")
}

/// podman and buildah sharing one private storage root.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        require("podman");
        require("buildah");
        Podman {
            dir: tempfile::Builder::new()
                .prefix("crimg-podman-")
                .tempdir()
                .expect("podman temp dir"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn storage_args(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            "--root".into(),
            d.join("root").display().to_string(),
            "--runroot".into(),
            d.join("run").display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    fn with_env(&self, mut cmd: Command) -> Command {
        cmd.args(self.storage_args())
            .env("TMPDIR", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("CONTAINERS_REGISTRIES_CONF", "/dev/null");
        cmd
    }

    pub fn podman(&self) -> Command {
        let mut c = self.with_env(Command::new("podman"));
        c.args(["--events-backend", "none", "--cgroup-manager", "cgroupfs"]);
        c
    }

    pub fn buildah(&self) -> Command {
        self.with_env(Command::new("buildah"))
    }

    /// `podman import` of a one-layer image running `/pause`; returns its ID.
    pub fn import(&self, name: &str, seed: &str) -> String {
        let rootfs = self.dir.path().join(file_name(seed, "rootfs.tar"));
        rootfs_tar(&rootfs, seed);
        run_ok(
            self.podman()
                .args(["import", "--change", r#"ENTRYPOINT ["/pause"]"#])
                .arg(&rootfs)
                .arg(name),
        );
        self.id(name)
    }

    /// The image ID podman reports, `sha256:<hex>`.
    pub fn id(&self, name: &str) -> String {
        let id = run_ok(
            self.podman()
                .args(["image", "inspect", "--format", "{{.Id}}", name]),
        );
        format!("sha256:{}", id.trim().trim_start_matches("sha256:"))
    }

    /// An image made with `buildah from FROM` (`scratch` or an image), two `copy`s and
    /// `commit`: `from`'s layers and one more (a commit is one layer); returns its ID.
    pub fn buildah_image(&self, from: &str, name: &str, seed: &str) -> String {
        let ctr = run_ok(self.buildah().args(["from", from]))
            .trim()
            .to_string();
        let extra = self.dir.path().join(file_name(seed, "txt"));
        fs::write(&extra, seed).expect("write seed file");
        run_ok(
            self.buildah()
                .args(["copy", &ctr])
                .arg(pause_binary())
                .arg("/pause"),
        );
        run_ok(self.buildah().args(["copy", &ctr]).arg(&extra).arg("/seed"));
        run_ok(
            self.buildah()
                .args(["config", "--entrypoint", r#"["/pause"]"#, &ctr]),
        );
        run_ok(self.buildah().args(["commit", "-q", &ctr, name]));
        run_ok(self.buildah().args(["rm", &ctr]));
        self.id(name)
    }
}

/// skopeo with no policy file needed and no registry configuration.
pub fn skopeo() -> Command {
    require("skopeo");
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy")
        .env("CONTAINERS_REGISTRIES_CONF", "/dev/null");
    c
}

/// A private dockerd (its own root, exec root, socket and containerd), stopped on drop.
pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
    /// The client packaged beside dockerd (another `docker` may come first on PATH).
    client: PathBuf,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        require("dockerd");
        require("docker");
        let dir = tempfile::Builder::new()
            .prefix("crimg-docker-")
            .tempdir()
            .expect("docker temp dir");
        let d = dir.path();
        let log = fs::File::create(d.join("dockerd.log")).expect("dockerd log");
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .args(["--storage-driver", "vfs"])
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dockerd log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let client = which("dockerd")
            .and_then(|d| Some(d.parent()?.join("docker")))
            .filter(|c| c.is_file())
            .unwrap_or_else(|| PathBuf::from("docker"));
        let mut docker = Dockerd { dir, child, client };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = docker
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if let Ok(Some(status)) = docker.child.try_wait() {
                panic!("dockerd exited ({status}):\n{}", docker.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 30 s:\n{}",
                docker.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        docker
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn docker(&self) -> Command {
        let mut c = Command::new(&self.client);
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .env("DOCKER_CONFIG", self.dir.path().join("config"));
        c
    }

    /// `docker import` of a one-layer image running `/pause`; returns its ID.
    pub fn import(&self, name: &str, seed: &str) -> String {
        let rootfs = self.dir.path().join(file_name(seed, "rootfs.tar"));
        rootfs_tar(&rootfs, seed);
        run_ok(
            self.docker()
                .args(["import", "--change", r#"ENTRYPOINT ["/pause"]"#])
                .arg(&rootfs)
                .arg(name),
        );
        self.id(name)
    }

    pub fn id(&self, name: &str) -> String {
        run_ok(
            self.docker()
                .args(["image", "inspect", "--format", "{{.Id}}", name]),
        )
        .trim()
        .to_string()
    }
}

impl Drop for Dockerd {
    /// SIGTERM, so dockerd stops its own containerd; SIGKILL after 20 s.
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill").arg(pid.to_string()).status();
        if sys::wait_bounded(&mut self.child, Duration::from_secs(20)).is_none() {
            eprintln!("dockerd {pid} ignored SIGTERM; killed");
        }
        // dockerd's containerd and shims, if it left any.
        let exec = self.dir.path().display().to_string();
        let left: Vec<u32> = sys::processes_mentioning(&exec)
            .iter()
            .map(|p| p.pid)
            .collect();
        sys::kill_and_wait(&left, Duration::from_secs(5));
        sys::unmount_all_under(self.dir.path());
    }
}

/// The path as a str, for tools' `transport:path` arguments.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
