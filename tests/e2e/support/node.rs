//! A private containerd (CRI included) per test, and its teardown.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::fixtures::FixtureImage;
use super::sys;

/// How long containerd may take to serve CRI after spawning.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Node dirs are `$TMPDIR/crimg-e2e-XXXXXX`; the sweep for stale ones relies on it.
const DIR_PREFIX: &str = "crimg-e2e-";
/// Holds the owning test process's identity (see [`sys::process_identity`]).
const OWNER_FILE: &str = "owner";
/// How long to wait for killed processes to go.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The namespace CRI works in; `ctr` and containerd API calls use it too.
pub const NAMESPACE: &str = "k8s.io";

/// Knobs for [`Node::start_with`].
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// CRI's `discard_unpacked_layers`: with it, CRI pulls drop compressed layers.
    pub discard_unpacked_layers: bool,
    /// CRI's `sandbox_image`; [`Node::ensure_pause_image`] imports a fixture under this name.
    pub sandbox_image: String,
    /// TOML appended to the generated config, `{dir}` replaced by the node's directory.
    pub extra_toml: String,
    /// A tmpfs of this size (`mount -o size=`, e.g. `"96m"`) as containerd's root, so the
    /// image filesystem CRI's `ImageFsInfo` reports is the node's own, of a known size.
    pub root_tmpfs: Option<String>,
}

impl Default for NodeOptions {
    fn default() -> NodeOptions {
        NodeOptions {
            discard_unpacked_layers: false,
            sandbox_image: "registry.k8s.io/pause:3.9".to_owned(),
            extra_toml: String::new(),
            root_tmpfs: None,
        }
    }
}

/// A running containerd with everything under one temp dir. Dropping it stops
/// containerd, its shims and containers, unmounts and removes the dir, even after a panic.
pub struct Node {
    pub(super) dir: PathBuf,
    pub(super) socket: PathBuf,
    pub(super) opts: NodeOptions,
    /// Pods' cgroup parent (cgroupfs), see [`cgroup_parent`].
    pub(super) cgroup_parent: String,
    containerd: Option<Child>,
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) channel: Option<Channel>,
    pub(super) next_container: AtomicU32,
}

impl Node {
    /// Starts a node with default options; panics with containerd's log if it fails.
    pub fn start() -> Node {
        Node::start_with(NodeOptions::default())
    }

    pub fn start_with(opts: NodeOptions) -> Node {
        super::prerequisites::check();
        // Compile before the clock starts, and so a gcc failure is not a containerd one.
        super::fixtures::pause_binary();
        sweep_stale_nodes();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(std::env::temp_dir())
            .expect("create node temp dir")
            .keep();
        let identity = sys::process_identity(std::process::id()).expect("own /proc/self/stat");
        // Written then renamed: a sweeper must never read a half-written owner.
        fs::write(dir.join(".owner"), identity).expect("write node owner file");
        fs::rename(dir.join(".owner"), dir.join(OWNER_FILE)).expect("write node owner file");
        let socket = dir.join("containerd.sock");
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 temp dir");
        let cgroup_parent = cgroup_parent(name);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build tokio runtime");
        let mut node = Node {
            dir,
            socket,
            opts,
            cgroup_parent,
            containerd: None,
            rt,
            channel: None,
            next_container: AtomicU32::new(0),
        };
        // From here on a panic drops `node`, which cleans up whatever was started.
        let config = node.config_toml();
        fs::write(node.dir.join("config.toml"), config).expect("write containerd config");
        fs::create_dir_all(node.dir.join("pods")).expect("create pod log dir");
        if let Some(size) = node.opts.root_tmpfs.clone() {
            // Unmounted by the teardown, with everything else mounted under the dir.
            let root = node.dir.join("root");
            fs::create_dir_all(&root).expect("create containerd root");
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&root)
                .status()
                .expect("run mount");
            assert!(status.success(), "mount -t tmpfs at {}", root.display());
        }
        node.spawn_containerd();
        node.wait_ready();
        node
    }

    /// Starts containerd on this node's config, its output appended to the log.
    fn spawn_containerd(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path_with_sbin())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log file"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd (is it installed?)");
        self.containerd = Some(child);
    }

    /// SIGKILLs containerd, as the OOM killer or a crash would, and reaps it. Shims and
    /// containers live on; its root, state and socket file stay for a restart.
    pub fn kill_containerd(&mut self) {
        self.channel = None;
        if let Some(mut child) = self.containerd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts containerd again on the same root, state and socket (after
    /// [`Node::kill_containerd`], or killing and restarting it when it runs) and waits
    /// until it serves CRI.
    pub fn restart_containerd(&mut self) {
        self.kill_containerd();
        self.spawn_containerd();
        self.wait_ready();
    }

    /// The socket serving both CRI and the containerd API.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The node's temp dir; tests may put files here.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// containerd's pid, e.g. to kill it and see how crimg copes.
    pub fn containerd_pid(&self) -> Option<u32> {
        self.containerd.as_ref().map(Child::id)
    }

    /// Whether the node's containerd process still runs (not gone, not a zombie): a
    /// request that crashes the daemon shows here.
    pub fn containerd_running(&self) -> bool {
        self.containerd_pid().is_some_and(sys::is_alive)
    }

    /// `unix://<socket>`, as crimg's `--runtime-endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The crimg binary pointed at this node, with no ambient configuration leaking in.
    pub fn crimg(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crimg"));
        cmd.arg("--runtime-endpoint").arg(self.endpoint());
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
        cmd.env("NO_COLOR", "1")
            .env("CRIMG_STATE_DIR", self.dir.join("crimg-state"))
            .stdin(Stdio::null());
        cmd
    }

    /// `ctr --address <socket> --namespace k8s.io ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", NAMESPACE])
            .args(args)
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("CONTAINERD_SNAPSHOTTER")
            .stdin(Stdio::null())
            .output()
            .expect("run ctr (is it installed?)")
    }

    /// [`Node::ctr`] that must succeed; returns its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        if !out.status.success() {
            self.fail(&format!(
                "ctr {args:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many committed snapshots containerd has (`ctr snapshots ls`, KIND column).
    pub fn committed_snapshots(&self) -> usize {
        self.ctr_ok(&["snapshots", "ls"])
            .lines()
            .filter(|l| l.split_whitespace().last() == Some("Committed"))
            .count()
    }

    /// Imports a fixture with `ctr images import` (unpacked into overlayfs, as a pull
    /// would) and waits until CRI lists it under its name.
    pub fn import(&self, image: &FixtureImage) {
        let dir = self.dir.join("fixtures");
        fs::create_dir_all(&dir).expect("create fixtures dir");
        let file: String = image
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let tar = dir.join(format!("{file}.tar"));
        image.write_oci_tar(&tar);
        self.ctr_ok(&["images", "import", tar.to_str().expect("utf-8 path")]);
        let id = image.config_digest();
        self.wait_for(&format!("CRI to list {} as {id}", image.name), || {
            self.cri_images()
                .iter()
                .any(|i| i.id == id && i.repo_tags.contains(&image.name))
        });
    }

    /// Imports the pause fixture as the sandbox image unless CRI already has that image.
    pub fn ensure_pause_image(&self) {
        let name = self.opts.sandbox_image.clone();
        if self.cri_image_status(&name).is_none() {
            self.import(&FixtureImage::new(&name));
        }
    }

    /// `ctr images label NAME key=value`; `None` deletes the label.
    pub fn set_label(&self, name: &str, key: &str, value: Option<&str>) {
        let kv = format!("{key}={}", value.unwrap_or(""));
        self.ctr_ok(&["images", "label", name, &kv]);
    }

    /// containerd's stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Panics with `msg` and the tail of containerd's log.
    pub fn fail(&self, msg: &str) -> ! {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "{msg}\n--- containerd log, last lines (all of it: {}) ---\n{tail}",
            self.kept_log_path().display()
        );
    }

    /// Where teardown copies containerd's log when the test failed, as the dir goes.
    fn kept_log_path(&self) -> PathBuf {
        let name = self.dir.file_name().unwrap_or_default().to_string_lossy();
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crimg-e2e/logs/{name}.log"))
    }

    /// Polls `cond` every 20 ms for up to 10 s; fails the test with `what` otherwise.
    pub fn wait_for(&self, what: &str, cond: impl FnMut() -> bool) {
        if !super::sys::wait_until(Duration::from_secs(10), cond) {
            self.fail(&format!("timed out waiting for {what}"));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    fn config_toml(&self) -> String {
        let d = self.dir.display();
        let NodeOptions {
            discard_unpacked_layers,
            sandbox_image,
            extra_toml,
            root_tmpfs: _,
        } = &self.opts;
        // Everything that defaults to a host-wide path is moved under the temp dir, so
        // parallel nodes and the host's own containerd never meet. Plugins that are not
        // needed and would touch host paths (opt: /opt/containerd; NRI, on by default in
        // 2.x: /var/run/nri) are disabled. Registries are found through hosts files under
        // `certs.d` (the only way 2.x keeps; [`Node::add_registry_host`] writes them).
        let common = format!(
            r#"root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#
        );
        let cri = if super::runtime::containerd().is_v2() {
            // Version 3, as K3s and RKE2 write it for containerd 2.x: images and runtime
            // are plugins of their own. 2.1 discards unpacked layers only with local pulls.
            format!(
                r#"version = 3
{common}
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  discard_unpacked_layers = {discard_unpacked_layers}
  use_local_image_pull = {discard_unpacked_layers}
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{sandbox_image}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{d}/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
  # Without these two, runc fails in this VM ("can't get final child's PID from pipe").
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    conf_dir = "{d}/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      # runc's state defaults to /run/containerd/runc, shared by every containerd.
      Root = "{d}/runc"

[plugins.'io.containerd.grpc.v1.cri']
  # A random loopback port per node, so parallel nodes do not collide.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#
            )
        } else {
            format!(
                r#"version = 2
{common}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # Without these two, runc fails in this VM ("can't get final child's PID from pipe").
  disable_apparmor = true
  restrict_oom_score_adj = true
  # A random loopback port per node, so parallel nodes do not collide.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "{d}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    discard_unpacked_layers = {discard_unpacked_layers}
    # Declaring the runc runtime replaces the default one, so its type must be repeated.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc's state defaults to /run/containerd/runc, shared by every containerd.
        Root = "{d}/runc"
"#
            )
        };
        let extra = extra_toml.replace("{dir}", &d.to_string());
        format!("{cri}\n{extra}\n")
    }

    /// Lets CRI pull from the plain-HTTP registry at `127.0.0.1:<port>`: a hosts file
    /// under the node's `certs.d` (read at each pull, so it may come after the start).
    pub fn add_registry_host(&self, port: u16) {
        let host = format!("127.0.0.1:{port}");
        let dir = self.dir.join("certs.d").join(&host);
        fs::create_dir_all(&dir).expect("create certs.d host dir");
        fs::write(
            dir.join("hosts.toml"),
            format!("server = \"http://{host}\"\n\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
        )
        .expect("write hosts.toml");
    }

    /// Waits until CRI answers `Version` (CRI refuses calls until it has initialised).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .containerd
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.fail(&format!("containerd exited during start-up: {status}"));
            }
            if self.socket.exists() {
                let socket = self.socket.clone();
                let ready = self.rt.block_on(async {
                    let ch =
                        crimg::runtime::transport::connect_unix(&socket, Duration::from_secs(2))
                            .await
                            .ok()?;
                    super::cri::version(ch.clone()).await.ok()?;
                    Some(ch)
                });
                if let Some(ch) = ready {
                    self.channel = Some(ch);
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "containerd did not serve CRI on {} within {START_TIMEOUT:?}",
                    self.socket.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops everything this node started. Never panics: it runs during unwinding.
    fn teardown(&mut self) {
        // The graceful path: CRI stops and removes pods, so shims exit, runc deletes its
        // cgroups and containerd unmounts rootfs. Bounded, since containerd may be wedged.
        if self.channel.is_some() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), self.remove_all_pods()).await
            });
        }
        self.channel = None;

        // Then the forceful path for whatever is left. containerd goes first, so it does
        // not react to the shims dying while we clean up behind it.
        if let Some(mut child) = self.containerd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        force_cleanup(&self.dir);
    }
}

/// Kills, unmounts and removes everything of the node in `dir`: its containerd (when the
/// owner died before it could), shims and container processes, cgroups, mounts, shim
/// sockets and finally the dir. Works from the dir alone, so it also sweeps up after test
/// processes that were killed before their `Drop` ran.
fn force_cleanup(dir: &Path) {
    let config = dir.join("config.toml");
    let strays = sys::processes_with_arg("--config", &config.to_string_lossy());
    sys::kill_and_wait(&strays.iter().map(|p| p.pid).collect::<Vec<_>>(), KILL_WAIT);

    let mut pids = Vec::new();
    let mut shim_sockets = Vec::new();
    for ns in read_dirs(&dir.join("state/io.containerd.runtime.v2.task")) {
        for bundle in read_dirs(&ns) {
            if let Some(pid) = fs::read_to_string(bundle.join("init.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                pids.push(pid);
            }
            // Shims listen on /run/containerd/s/<hash>, outside our dir.
            shim_sockets.extend(shim_socket(&bundle));
        }
    }
    // Tasks before shims: a live shim reaps its containers at once, while orphans wait
    // for PID 1, which may be slow to reap (a second or more on these VMs).
    sys::kill_and_wait(&pids, KILL_WAIT);
    let socket = dir.join("containerd.sock");
    let shims = sys::processes_with_arg("-address", &socket.to_string_lossy());
    sys::kill_and_wait(&shims.iter().map(|p| p.pid).collect::<Vec<_>>(), KILL_WAIT);
    if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
        sys::remove_cgroup(&cgroup_parent(name));
    }
    sys::unmount_all_under(dir);
    for s in shim_sockets {
        if s.starts_with("/run/containerd/s/") {
            let _ = fs::remove_file(s);
        }
    }
    // Never delete through a mount that is still there: it would reach into the host.
    if sys::mounts_under(dir).is_empty() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// The socket a task's shim listens on, from its bundle directory: the `address` file
/// (containerd 1.x) or `bootstrap.json`'s `address` (2.x).
pub fn shim_socket(bundle: &Path) -> Option<PathBuf> {
    let addr = match fs::read_to_string(bundle.join("address")) {
        Ok(addr) => addr.trim().to_string(),
        Err(_) => {
            let text = fs::read_to_string(bundle.join("bootstrap.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["address"].as_str()?.to_string()
        }
    };
    Some(PathBuf::from(addr.strip_prefix("unix://").unwrap_or(&addr)))
}

/// Cleans up node dirs left by test processes that died without running `Drop` (killed
/// by a timeout, an abort, a panic in a destructor). Runs once per test process.
fn sweep_stale_nodes() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let is_node = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(DIR_PREFIX));
            if is_node && e.file_type().is_ok_and(|t| t.is_dir()) && is_stale(&e.path()) {
                force_cleanup(&e.path());
            }
        }
    });
}

/// A node dir is stale when the process recorded in its `owner` file is gone. A dir with
/// no owner yet may be one another process is just creating: give it a minute.
fn is_stale(dir: &Path) -> bool {
    match fs::read_to_string(dir.join(OWNER_FILE)) {
        Ok(owner) => owner != sys::process_identity(parse_pid(&owner)).unwrap_or_default(),
        Err(_) => fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60)),
    }
}

fn parse_pid(owner: &str) -> u32 {
    owner
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// One cgroup per node, named like its dir, so teardown can kill and remove it whole.
fn cgroup_parent(dir_name: &str) -> String {
    format!("/{dir_name}")
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = self.kept_log_path();
            if let Some(parent) = kept.parent() {
                let _ = fs::create_dir_all(parent);
            }
            if fs::copy(self.log_path(), &kept).is_ok() {
                eprintln!("containerd log kept at {}", kept.display());
            }
        }
        self.teardown();
    }
}

/// containerd finds runc and the shim on PATH; test runners may not carry sbin.
pub(super) fn path_with_sbin() -> String {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for extra in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        if !path.split(':').any(|p| p == extra) {
            if !path.is_empty() {
                path.push(':');
            }
            path.push_str(extra);
        }
    }
    path
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}
