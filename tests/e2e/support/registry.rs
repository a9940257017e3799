//! A local registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its storage in a test dir, images pushed with `skopeo`, and pulls
//! through CRI so containerd records where the blobs came from.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crimg::proto::runtime::v1 as cri;

use super::fixtures::FixtureImage;
use super::node::Node;

/// A free loopback port, found by binding port 0. The registry binds it a moment later;
/// nothing else on this machine hands out loopback ports meanwhile in practice.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// containerd's CRI mirror entry that makes it pull from `127.0.0.1:<port>` over plain
/// HTTP, for `NodeOptions::extra_toml`.
pub fn cri_mirror_toml(port: u16) -> String {
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:{port}"]
  endpoint = ["http://127.0.0.1:{port}"]
"#
    )
}

/// A running `docker-registry serve`; dropping it stops it.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Registry {
    /// Starts a registry on `port` storing under `dir/registry`; waits until `/v2/`
    /// answers.
    pub fn start(dir: &Path, port: u16) -> Registry {
        let dir = dir.join("registry");
        fs::create_dir_all(dir.join("storage")).expect("create registry dir");
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .expect("write registry config");
        let log = fs::File::create(dir.join("registry.log")).expect("create registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry (is the docker-registry package installed?)");
        let mut registry = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while registry.get_status("/v2/") != Some(200) {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", registry.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on 127.0.0.1:{port}:\n{}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log: its access log shows every request it served.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Pushes a fixture to `<host>/<repo>:<tag of the fixture>` with skopeo.
    pub fn push(&self, image: &FixtureImage, repo: &str) {
        let tar = self
            .dir
            .join(format!("push-{}.tar", repo.replace('/', "_")));
        image.write_oci_tar(&tar);
        let src = format!("oci-archive:{}:{}", tar.display(), image.tag());
        let dest = format!("docker://{}/{repo}:{}", self.host(), image.tag());
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(&src)
            .arg(&dest)
            .stdin(Stdio::null())
            .output()
            .expect("run skopeo (is the skopeo package installed?)");
        assert!(
            out.status.success(),
            "skopeo copy {src} {dest} failed:\n{}\n--- registry log\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The HTTP status of a GET on this registry, `None` when it does not answer.
    fn get_status(&self, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut head = [0u8; 64];
        let n = s.read(&mut head).ok()?;
        let line = String::from_utf8_lossy(&head[..n]);
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Pulls an image through CRI `PullImage` (as the kubelet would) and returns the
    /// image reference CRI answers with.
    pub fn pull(&self, image: &str) -> String {
        let mut c = self.image_client();
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        };
        self.call(&format!("CRI PullImage {image}"), c.pull_image(req))
            .image_ref
    }
}
