//! Options that must take effect: `--no-unpack` and `--snapshotter` on import, and
//! `-O -` refused when standard output is a terminal; files and values operators name,
//! checked before use.

use std::path::Path;
use std::process::Command;

use crate::run::{Run, crimg};
use crate::support::content::content_labels;
use crate::support::{FixtureImage, Node};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Keys of the snapshots of one snapshotter.
fn snapshots(node: &Node, snapshotter: &str) -> Vec<String> {
    node.ctr_ok(&["snapshots", "--snapshotter", snapshotter, "ls"])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `--no-unpack` stores the image without a snapshot (and without the config's snapshot
/// GC label); `--snapshotter native` unpacks into native, not overlayfs. A single-layer
/// image's chain ID is its layer's diff ID.
#[test]
fn no_unpack_and_snapshotter_take_effect() {
    let node = Node::start();
    let dir = node.dir().join("archives");
    std::fs::create_dir_all(&dir).unwrap();
    let label = |snapshotter: &str| format!("containerd.io/gc.ref.snapshot.{snapshotter}");

    let packed = FixtureImage::new("docker.io/library/packed:1");
    let tar = dir.join("a.tar");
    packed.write_oci_tar(&tar);
    crimg(node.crimg(), &["import", "--no-unpack", s(&tar)]).expect_code(0);
    assert!(node.cri_image_status(&packed.name).is_some());
    let chain = packed.layer_digest();
    for snapshotter in ["overlayfs", "native"] {
        assert!(
            !snapshots(&node, snapshotter).contains(&chain),
            "--no-unpack unpacked into {snapshotter}"
        );
    }
    let labels = content_labels(&node, &packed.config_digest());
    assert!(
        !labels
            .keys()
            .any(|k| k.starts_with("containerd.io/gc.ref.snapshot.")),
        "{labels:?}"
    );

    let native = FixtureImage::new("docker.io/library/native:1");
    let tar = dir.join("b.tar");
    native.write_oci_tar(&tar);
    crimg(
        node.crimg(),
        &["import", "--snapshotter", "native", s(&tar)],
    )
    .expect_code(0);
    let chain = native.layer_digest();
    assert!(
        snapshots(&node, "native").contains(&chain),
        "no native snapshot {chain}: {:?}",
        snapshots(&node, "native")
    );
    assert!(!snapshots(&node, "overlayfs").contains(&chain));
    let labels = content_labels(&node, &native.config_digest());
    assert_eq!(labels.get(&label("native")), Some(&chain), "{labels:?}");
    assert_eq!(labels.get(&label("overlayfs")), None, "{labels:?}");

    // By default: what CRI uses, overlayfs here.
    let plain = FixtureImage::new("docker.io/library/plain:1");
    let tar = dir.join("c.tar");
    plain.write_oci_tar(&tar);
    crimg(node.crimg(), &["import", s(&tar)]).expect_code(0);
    let chain = plain.layer_digest();
    assert!(snapshots(&node, "overlayfs").contains(&chain));
    let labels = content_labels(&node, &plain.config_digest());
    assert_eq!(labels.get(&label("overlayfs")), Some(&chain), "{labels:?}");
}

/// `export -O -` with a terminal as standard output is refused (exit 2) before anything
/// is written to it; redirected, the same command works.
#[test]
fn export_to_a_terminal_is_refused() {
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/tty:1");
    node.import(&img);
    let crimg_cmd = node.crimg();
    let mut line = vec![crimg_cmd.get_program().to_string_lossy().into_owned()];
    line.extend(
        crimg_cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    line.extend(["export", "-O", "-", &img.name].map(String::from));
    let quoted: Vec<String> = line.iter().map(|a| format!("'{a}'")).collect();
    // script(1) runs the command with a pseudo-terminal as its standard streams and
    // exits with its status (-e).
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &quoted.join(" "), "/dev/null"]);
    for (k, v) in crimg_cmd.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let run = Run::of(&mut cmd).expect_code(2);
    assert!(
        run.stdout
            .contains("refusing to write an image archive to a terminal"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.len() < 1024,
        "wrote to the terminal: {} bytes",
        run.stdout.len()
    );

    let out = node
        .crimg()
        .args(["export", "-O", "-", &img.name])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.len() > 1024);
}

/// The blob paths of an exported archive.
fn blob_paths(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    crate::support::archives::tar_entries(&bytes)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.starts_with("blobs/"))
        .collect()
}

/// Export of a multi-platform image: by default the host's platform; `--all-platforms`
/// exports what the node has and warns about the platforms it never pulled; an explicit
/// `--platform` the node lacks fails as missing content; one it has is exported alone.
#[test]
fn export_platforms() {
    use crate::support::archives;
    let node = Node::start();
    let dir = node.dir().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let out = node.dir().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let foreign = format!("linux/{}", archives::foreign_arch());
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));

    // Pulled as a node would: the host's platform only.
    let host_only = FixtureImage::new("docker.io/library/multi-export:1");
    let (members, foreign_layer) = archives::multi_arch(&host_only, false);
    let tar = dir.join("a.tar");
    archives::write(&tar, &archives::tar(&members));
    crimg(node.crimg(), &["import", s(&tar)]).expect_code(0);

    let a = out.join("default.tar");
    let r = crimg(node.crimg(), &["export", "-O", s(&a), &host_only.name]).expect_code(0);
    assert!(!r.stderr.contains("left out"), "{}", r.stderr);
    let blobs = blob_paths(&a);
    assert!(
        blobs.contains(&blob(&host_only.layer_digest())),
        "{blobs:?}"
    );
    assert!(!blobs.contains(&blob(&foreign_layer)), "{blobs:?}");

    let all = out.join("all.tar");
    let r = crimg(
        node.crimg(),
        &["export", "--all-platforms", "-O", s(&all), &host_only.name],
    );
    let r = r.expect_code(0);
    assert!(
        r.stderr.contains(&format!(
            "{}: left out platforms this node never pulled: {foreign}",
            host_only.name
        )),
        "{}",
        r.stderr
    );

    let none = out.join("foreign.tar");
    let r = crimg(
        node.crimg(),
        &[
            "export",
            "--platform",
            &foreign,
            "-O",
            s(&none),
            &host_only.name,
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("missing from the content store") && r.stderr.contains(&foreign),
        "{}",
        r.stderr
    );
    assert!(!none.exists());

    // Every platform imported: --platform picks the foreign one alone, with no warning.
    let every = FixtureImage::new("docker.io/library/multi-export:2");
    let (members, foreign_layer) = archives::multi_arch(&every, true);
    let tar = dir.join("b.tar");
    archives::write(&tar, &archives::tar(&members));
    crimg(node.crimg(), &["import", "--all-platforms", s(&tar)]).expect_code(0);
    let f = out.join("picked.tar");
    let r = crimg(
        node.crimg(),
        &["export", "--platform", &foreign, "-O", s(&f), &every.name],
    )
    .expect_code(0);
    assert!(!r.stderr.contains("left out"), "{}", r.stderr);
    let blobs = blob_paths(&f);
    assert!(blobs.contains(&blob(&foreign_layer)), "{blobs:?}");
    assert!(!blobs.contains(&blob(&every.layer_digest())), "{blobs:?}");
    let both = out.join("both.tar");
    let r = crimg(
        node.crimg(),
        &["export", "--all-platforms", "-O", s(&both), &every.name],
    )
    .expect_code(0);
    assert!(!r.stderr.contains("left out"), "{}", r.stderr);
    let blobs = blob_paths(&both);
    assert!(blobs.contains(&blob(&foreign_layer)) && blobs.contains(&blob(&every.layer_digest())));
}

/// Runs crimg, killing it if it has not ended within 20 s: a hang is a failure, not a
/// stuck suite. Returns the exit code and standard error.
fn bounded(mut cmd: Command, args: &[&str]) -> (i32, String) {
    use std::io::Read as _;
    let mut child = cmd
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run crimg");
    let status = crate::support::sys::wait_bounded(&mut child, std::time::Duration::from_secs(20))
        .unwrap_or_else(|| panic!("crimg {args:?} still ran after 20 s"));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.code().unwrap_or(-1), stderr)
}

/// Every configuration file crimg reads goes through one opener: a FIFO or a device in
/// its place is a usage error naming it at once, never read until memory runs out or
/// waited on forever. A `--from-file` that is missing, an empty namespace and a state
/// file in a directory that does not exist are usage errors too, and nothing is made.
#[test]
fn files_operators_name_are_checked_before_use() {
    let node = Node::start();
    let image = FixtureImage::new("docker.io/library/named:1");
    node.import(&image);
    let dir = node.dir();
    let fifo = dir.join("config.fifo");
    crate::support::sys::mkfifo(&fifo);
    let out = dir.join("out.tar");
    for special in [s(&fifo), "/dev/zero"] {
        let cases: [(Vec<&str>, String); 4] = [
            (vec!["-c", special, "list"], format!("{special} is a")),
            (
                vec!["check", "--registries-yaml", special],
                format!("{special} is a"),
            ),
            (
                vec![
                    "export",
                    "--fetch-missing",
                    "--registries-yaml",
                    special,
                    "-O",
                    s(&out),
                    &image.name,
                ],
                format!("{special} is a"),
            ),
            (
                vec!["--containerd-config", special, "list"],
                format!("{special} is a"),
            ),
        ];
        for (args, said) in cases {
            let (code, stderr) = bounded(node.crimg(), &args);
            assert_eq!(code, 2, "{args:?}: {stderr}");
            assert!(stderr.contains(&said), "{args:?}: {stderr}");
            assert!(!out.exists(), "{args:?} left {}", out.display());
        }
    }

    // import and inspect say what a path is that is neither an archive nor a directory.
    let looped = dir.join("loop.tar");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    for (path, said) in [
        (s(&fifo), "a FIFO, not an archive or a directory"),
        (
            "/dev/zero",
            "a character device, not an archive or a directory",
        ),
        (s(&looped), "a symbolic link loop"),
    ] {
        for cmd in ["import", "inspect"] {
            let (code, stderr) = bounded(node.crimg(), &[cmd, path]);
            assert_eq!(code, 1, "{cmd} {path}: {stderr}");
            assert!(
                stderr.contains(&format!("{path}: {said}")),
                "{cmd}: {stderr}"
            );
        }
    }

    // A pattern no reference matches means the same in list as in pin: a usage error.
    let (code, stderr) = bounded(node.crimg(), &["list", "NAMED"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot match any image reference"),
        "{stderr}"
    );
    // Standard output closed: the archive would go nowhere, a usage error.
    let closed = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#""$0" --runtime-endpoint "$1" export -O - "$2" >&-"#)
        .args([env!("CARGO_BIN_EXE_crimg"), &node.endpoint(), &image.name])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&closed.stderr);
    assert_eq!(closed.status.code(), Some(2), "{said}");
    assert!(said.contains("standard output is closed"), "{said}");

    // --why explains; it has no list of names to print.
    let (code, stderr) = bounded(node.crimg(), &["prune", "--why", &image.name, "-o", "name"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("-o name does not apply"), "{stderr}");
    // Durations read as words where they are long: "1 day", not "1day".
    let (code, stderr) = bounded(node.crimg(), &["--timeout", "25h", "list"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("too long a timeout (at most 1 day)"),
        "{stderr}"
    );

    let (code, stderr) = bounded(node.crimg(), &["pin", "--from-file", "/nonexistent/names"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/nonexistent/names: no such file"),
        "{stderr}"
    );
    let (code, stderr) = bounded(node.crimg(), &["-n", "", "list"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a containerd namespace"), "{stderr}");

    let typo = dir.join("typo/dir/state.json");
    let (code, stderr) = bounded(
        node.crimg(),
        &["prune", "--dry-run", "--state-file", s(&typo)],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!dir.join("typo").exists(), "a directory was made");
    assert!(node.cri_image_status(&image.name).is_some());
}

/// Endpoints taken from the environment are not shown as required in the usage line that
/// follows a missing argument: the line shows what the user typed.
#[test]
fn usage_line_does_not_show_environment_endpoints_as_required() {
    let run = Run::of(
        Command::new(env!("CARGO_BIN_EXE_crimg"))
            .env("CONTAINER_RUNTIME_ENDPOINT", "/nonexistent/cri.sock")
            .env("CONTAINERD_ADDRESS", "/nonexistent/containerd.sock")
            .arg("pin"),
    )
    .expect_code(2);
    let usage = run
        .stderr
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_else(|| panic!("no usage line:\n{}", run.stderr));
    assert_eq!(usage, "Usage: crimg pin <REF>...", "{}", run.stderr);
}
