//! Faults during work: containerd killed or restarted, a full disk, a socket without permission.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::json::{ImportResult, PruneResult};
use crate::run::{Run, crimg};
use crate::support::archives::{self, big_archive};
use crate::support::content::leases;
use crate::support::proxy::FaultProxy;
use crate::support::sys::wait_until;
use crate::support::{FixtureImage, Node};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Starts crimg with these arguments, its output piped.
fn spawn(node: &Node, args: &[&str]) -> Child {
    node.crimg()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crimg")
}

/// Waits (bounded) for a spawned crimg and returns what it printed.
fn finish(mut child: Child, limit: Duration) -> Run {
    let status = crate::support::sys::wait_bounded(&mut child, limit)
        .unwrap_or_else(|| panic!("crimg did not exit within {limit:?}"));
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// The leases as `(id, gc.expire)`.
fn lease_expiries(node: &Node) -> Vec<(String, Option<SystemTime>)> {
    node.ctr_ok(&["leases", "ls"])
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let id = cols.next()?.to_string();
            let expire = cols
                .flat_map(|c| c.split(','))
                .find_map(|l| l.strip_prefix("containerd.io/gc.expire="))
                .and_then(|t| humantime::parse_rfc3339(t).ok());
            Some((id, expire))
        })
        .collect()
}

/// containerd SIGKILLed while crimg streams a layer: crimg says it lost containerd,
/// naming the socket (exit 3); after a restart CRI sees no half image; the killed run's
/// lease would expire by itself, but the rerun releases it at once (its owner is gone),
/// so the partial ingest is collected, and imports the image.
#[test]
fn containerd_killed_during_import() {
    let mut node = Node::start();
    let dir = node.dir().join("big");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("big.tar");
    let name = big_archive(&archive);
    let child = spawn(&node, &["import", s(&archive)]);
    // Underway: the lease is taken and the layer is being written.
    assert!(
        wait_until(Duration::from_secs(10), || {
            !leases(&node).trim().is_empty() && ingest_bytes(&node) > 1 << 20
        }),
        "the import never got underway"
    );
    let killed_at = SystemTime::now();
    node.kill_containerd();
    let r = finish(child, Duration::from_secs(30));
    assert_eq!(r.code, 3, "{}", r.stderr);
    let socket = node.socket().display().to_string();
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("crimg: error:"))
        .unwrap_or_else(|| panic!("no error line: {}", r.stderr));
    assert!(error.contains(s(&archive)), "names the archive: {error}");
    assert!(
        error.contains(&format!("lost the connection to containerd at {socket}")),
        "names the socket: {error}"
    );
    assert!(
        !r.stderr.contains("tonic::"),
        "no transport dump: {}",
        r.stderr
    );
    node.restart_containerd();
    // No half image: no record, so nothing for CRI to list.
    assert!(
        !node
            .cri_images()
            .iter()
            .any(|i| i.repo_tags.contains(&name)),
        "CRI lists the half-imported image"
    );
    assert!(!node.ctr_ok(&["images", "ls", "-q"]).contains(&name));
    // What the killed run left is under its lease, which expires by itself.
    let stale = lease_expiries(&node);
    assert!(!stale.is_empty(), "the killed run left no lease?");
    for (id, expire) in &stale {
        assert!(id.starts_with("crimg-import-"), "a lease not crimg's: {id}");
        let expire = expire.unwrap_or_else(|| panic!("lease {id} never expires"));
        assert!(
            expire <= killed_at + Duration::from_secs(4 * 3600 + 60),
            "lease {id} holds its content for too long"
        );
    }

    // The rerun releases the stale lease, so what only it held, the partial ingest, is
    // collected, and imports the image: its blobs stay.
    let r = crimg(node.crimg(), &["-v", "import", s(&archive)]).expect_code(0);
    for (id, _) in &stale {
        assert!(
            r.stderr
                .contains(&format!("released stale lease {id} (crimg process")),
            "says it released {id}: {}",
            r.stderr
        );
    }
    assert!(
        node.cri_images()
            .iter()
            .any(|i| i.repo_tags.contains(&name))
    );
    assert_no_leftovers(&node);
    assert_complete(&node, &name);
    let _ = crimg(node.crimg(), &["list"]).expect_code(0);
}

/// containerd SIGKILLed while crimg imports the first two of three archives (two go at
/// once): both fail naming the socket, the second never writes a record though it was
/// done before the first; the third is not attempted (it would fail the same way) but
/// reported as failed for that reason, and the command exits 3 naming the socket.
#[test]
fn containerd_killed_during_a_multi_archive_import() {
    let mut node = Node::start();
    let dir = node.dir().join("big");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("big.tar");
    big_archive(&archive);
    let small = FixtureImage::new("docker.io/library/beside-it:1");
    let beside = dir.join("beside.tar");
    small.write_oci_tar(&beside);
    let last = FixtureImage::new("docker.io/library/next-in-line:1");
    let next = dir.join("next.tar");
    last.write_oci_tar(&next);

    let child = spawn(
        &node,
        &["import", "-o", "json", s(&archive), s(&beside), s(&next)],
    );
    assert!(
        wait_until(Duration::from_secs(10), || ingest_bytes(&node) > 1 << 20),
        "the import never got underway"
    );
    node.kill_containerd();
    let r = finish(child, Duration::from_secs(30));
    assert_eq!(r.code, 3, "{}", r.stderr);
    let socket = node.socket().display().to_string();
    let lost = format!("lost the connection to containerd at {socket}");
    let error_of = |file: &Path| {
        let head = format!("crimg: error: {}: ", s(file));
        r.stderr
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("no error for {}: {}", file.display(), r.stderr))
    };
    for file in [&archive, &beside] {
        let e = error_of(file);
        assert!(e.contains(&lost), "{e}");
    }
    assert!(
        error_of(&next).starts_with(&format!(
            "crimg: error: {}: not attempted: {lost}",
            s(&next)
        )),
        "the third archive is not attempted: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "crimg: error: 3 of 3 item(s) failed or were not attempted, {lost}"
        )),
        "{}",
        r.stderr
    );
    let out: ImportResult = r.json();
    assert!(out.imported.is_empty(), "{out:?}");
    let failed: Vec<&str> = out.failed.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(failed, [s(&archive), s(&beside), s(&next)]);

    node.restart_containerd();
    let tags: Vec<String> = node
        .cri_images()
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .collect();
    for image in [&small, &last] {
        assert!(
            !tags.contains(&image.name),
            "{} was imported after all: {tags:?}",
            image.name
        );
    }
}

/// Bytes of uploads in progress, on disk: the layer's, once it is being written (the small
/// config and manifest blobs pass through the ingest directory too, but briefly and tiny).
fn ingest_bytes(node: &Node) -> u64 {
    let ingest = node
        .dir()
        .join("root/io.containerd.content.v1.content/ingest");
    let Ok(dirs) = fs::read_dir(ingest) else {
        return 0;
    };
    dirs.flatten()
        .filter_map(|d| fs::metadata(d.path().join("data")).ok())
        .map(|m| m.len())
        .sum()
}

/// No lease, no active ingest, nothing in the ingest directory.
fn assert_no_leftovers(node: &Node) {
    assert_eq!(leases(node).trim(), "", "leases left");
    assert_eq!(
        node.ctr_ok(&["content", "active"]).lines().nth(1),
        None,
        "an upload is still active"
    );
    let ingest = node
        .dir()
        .join("root/io.containerd.content.v1.content/ingest");
    // An ingest directory without `ref` and `data` is containerd's own: SIGKILLed while
    // it was creating one (seen: only `startedat`), it never learnt the upload's ref, so
    // no client can abort it and its collection skips it. Any upload that got as far as
    // a ref or a byte must be gone.
    let left = || -> Vec<String> {
        let Ok(dirs) = fs::read_dir(&ingest) else {
            return vec![];
        };
        dirs.filter_map(Result::ok)
            .filter(|d| d.path().join("ref").exists() || d.path().join("data").exists())
            .map(|d| {
                let files: Vec<String> = fs::read_dir(d.path())
                    .map(|f| {
                        f.filter_map(Result::ok)
                            .map(|f| {
                                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                                format!("{} ({len} B)", f.file_name().to_string_lossy())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let reference = fs::read_to_string(d.path().join("ref")).unwrap_or_default();
                format!("{reference:?}: {}", files.join(", "))
            })
            .collect()
    };
    // The sync lease delete waits for containerd's collection; the files may trail it
    // by a moment.
    let drained = wait_until(Duration::from_secs(5), || left().is_empty());
    assert!(drained, "ingest left on disk: {:#?}", left());
}

/// The image's content is all in the store.
fn assert_complete(node: &Node, name: &str) {
    let check = node.ctr_ok(&["images", "check"]);
    let line = check
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in `ctr images check`:\n{check}"));
    assert!(line.contains("complete"), "{line}");
}

/// crimg itself SIGKILLed (OOM, kill -9) while it streams a layer: its lease stays,
/// holding the partial upload; the next import releases it, the upload is collected,
/// and the image is imported.
#[test]
fn crimg_killed_during_import() {
    let node = Node::start();
    let dir = node.dir().join("big");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("big.tar");
    let name = big_archive(&archive);

    let mut child = spawn(&node, &["import", s(&archive)]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            !leases(&node).trim().is_empty() && ingest_bytes(&node) > 1 << 20
        }),
        "the import never got underway"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let stale = leases(&node);
    assert!(stale.starts_with("crimg-import-"), "{stale}");
    assert!(
        ingest_bytes(&node) > 0,
        "the partial upload is gone already"
    );

    let started = Instant::now();
    let r = crimg(node.crimg(), &["-v", "import", s(&archive)]).expect_code(0);
    eprintln!("rerun took {:?}", started.elapsed());
    assert!(
        r.stderr.contains(&format!(
            "released stale lease {} (crimg process {} is gone)",
            stale.trim(),
            child.id()
        )),
        "{}",
        r.stderr
    );
    assert_no_leftovers(&node);
    assert_complete(&node, &name);
}

/// Which leases the next import releases: those of crimg processes that are gone (exited,
/// pid reused, another boot), with what they held; never those of a running crimg, of
/// another pid namespace, of other tools, or of older crimg versions without the labels.
#[test]
fn stale_leases_are_released_live_and_foreign_ones_kept() {
    use crimg::model::Descriptor;
    use crimg::proto::containerd::services::leases::v1 as leases_api;
    use crimg::runtime::connect::connect_containerd;
    use crimg::runtime::owner::{LABEL_BOOT, LABEL_PID, LABEL_PIDNS, LABEL_START, Owner};
    use std::collections::{BTreeMap, HashMap};

    let node = Node::start();
    let me = Owner::current().expect("procfs");
    // A process that has exited: its pid and real start time, read while it ran.
    let mut gone = Command::new("sleep").arg("60").spawn().unwrap();
    let gone_pid = gone.id();
    let stat = fs::read_to_string(format!("/proc/{gone_pid}/stat")).unwrap();
    let gone_start = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    gone.kill().unwrap();
    gone.wait().unwrap();

    let owner = |pid: u32, start: &str, boot: &str, ns: &str| -> HashMap<String, String> {
        [
            (LABEL_PID, pid.to_string()),
            (LABEL_START, start.to_string()),
            (LABEL_BOOT, boot.to_string()),
            (LABEL_PIDNS, ns.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let other_start = format!("{}1", me.start);
    let cases: Vec<(&str, HashMap<String, String>, bool)> = vec![
        (
            "crimg-import-exited",
            owner(gone_pid, &gone_start, &me.boot, &me.pidns),
            true,
        ),
        (
            "crimg-import-pid-reused",
            owner(me.pid, &other_start, &me.boot, &me.pidns),
            true,
        ),
        (
            "crimg-export-other-boot",
            owner(gone_pid, &gone_start, "0a0a0a0a-other-boot", &me.pidns),
            true,
        ),
        (
            "crimg-import-other-pidns",
            owner(gone_pid, &gone_start, &me.boot, "pid:[1]"),
            false,
        ),
        ("crimg-import-older", HashMap::new(), false),
        ("buildkit-foreign", HashMap::new(), false),
    ];
    let socket = node.socket().display().to_string();
    let blob = |id: &str| -> Vec<u8> { format!("held by lease {id}").into_bytes() };
    let desc = |data: &[u8]| Descriptor {
        media_type: "application/octet-stream".into(),
        digest: crate::support::digest(data),
        size: data.len() as i64,
    };
    let live = node.block_on(async {
        let c = connect_containerd(
            std::slice::from_ref(&socket),
            "k8s.io",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let mut client = leases_api::leases_client::LeasesClient::new(node.channel());
        for (id, labels, _) in &cases {
            client
                .create(Node::namespaced(leases_api::CreateRequest {
                    id: id.to_string(),
                    labels: labels.clone(),
                }))
                .await
                .unwrap();
        }
        // This test process is a live owner, labelled as crimg labels its own.
        let live = c
            .create_lease("import", Duration::from_secs(600))
            .await
            .unwrap();
        // Each lease holds one blob, as an interrupted import would.
        for id in cases.iter().map(|c| c.0).chain([live.as_str()]) {
            let data = blob(id);
            c.with_lease(id)
                .unwrap()
                .write_blob(&desc(&data), &BTreeMap::new(), &data[..], |_| {})
                .await
                .unwrap();
        }
        live
    });

    let image = FixtureImage::new("docker.io/library/after-stale:1");
    let tar = node.dir().join("after.tar");
    image.write_oci_tar(&tar);
    let r = crimg(node.crimg(), &["-v", "import", s(&tar)]).expect_code(0);

    // Every lease, foreign ones included.
    let left: Vec<String> = node
        .ctr_ok(&["leases", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    let content = node.ctr_ok(&["content", "ls", "-q"]);
    for (id, _, released) in &cases {
        let said = r.stderr.contains(&format!("released stale lease {id} ("));
        assert_eq!(said, *released, "{id}: {}", r.stderr);
        assert_eq!(!left.contains(&id.to_string()), *released, "{id}: {left:?}");
        let held = content.contains(&desc(&blob(id)).digest);
        assert_eq!(held, !*released, "{id}: its blob");
    }
    assert!(
        left.contains(&live),
        "the live lease was released: {left:?}"
    );
    assert!(content.contains(&desc(&blob(&live)).digest));
    assert!(
        node.cri_images()
            .iter()
            .any(|i| i.repo_tags.contains(&image.name))
    );

    // Without -v the release is silent.
    node.block_on(async {
        leases_api::leases_client::LeasesClient::new(node.channel())
            .create(Node::namespaced(leases_api::CreateRequest {
                id: "crimg-import-exited-again".into(),
                labels: owner(gone_pid, &gone_start, &me.boot, &me.pidns),
            }))
            .await
            .unwrap();
    });
    let r = crimg(node.crimg(), &["import", s(&tar)]).expect_code(0);
    assert!(!r.stderr.contains("lease"), "{}", r.stderr);
    assert!(!leases(&node).contains("crimg-import-exited-again"));
}

/// A tmpfs mounted for one test, unmounted when dropped (the node's teardown would too).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount -t tmpfs (tests run as root)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// Exporting onto a filesystem that fills up: a one-line error naming the target and
/// "No space left on device", exit 1, the directory left as it was and no lease left.
#[test]
fn full_disk_during_export() {
    let node = Node::start();
    let dir = node.dir().join("big");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("big.tar");
    let name = big_archive(&archive);
    crimg(node.crimg(), &["import", "--no-unpack", s(&archive)]).expect_code(0);
    fs::remove_file(&archive).unwrap();

    let small = Tmpfs::mount(&node.dir().join("small"), "2m");
    fs::write(small.0.join("keep"), "was here").unwrap();
    let target = small.0.join("x.tar");
    for compress in [None, Some("gzip")] {
        // `--fetch-missing` takes a lease (a plain export takes none), which must go.
        let mut args = vec!["export", "--fetch-missing", "-O", s(&target), &name];
        if let Some(c) = compress {
            args.extend(["--compress", c]);
        }
        let r = crimg(node.crimg(), &args);
        assert_eq!(r.code, 1, "{compress:?}: {}", r.stderr);
        let line = r.stderr.trim();
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        assert!(line.contains(s(&target)), "names the file: {line}");
        assert!(line.contains("No space left on device"), "says why: {line}");
        assert!(
            !line.contains("content store"),
            "blames the right side: {line}"
        );
        let names: Vec<String> = fs::read_dir(&small.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["keep"], "{compress:?}: files left behind");
    }
    assert!(leases(&node).trim().is_empty(), "a lease was left");
}

/// Runs `cmd` as nobody (uid and gid 65534, no supplementary groups).
fn as_nobody(cmd: Command) -> Command {
    let mut out = Command::new("setpriv");
    out.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => out.env(k, v),
            None => out.env_remove(k),
        };
    }
    out
}

/// A user who may not open the socket: exit 3, naming the socket, saying permission is
/// denied and what to do about it.
#[test]
fn socket_without_permission() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::start();
    // Let others reach the socket, so what stops them is the socket's own mode (0660,
    // root's). Only this node's temp dir is touched.
    fs::set_permissions(node.dir(), fs::Permissions::from_mode(0o711)).unwrap();
    let socket = node.socket().display().to_string();
    for args in [
        &["list"][..],
        &["prune", "--dry-run"],
        &["export", "-O", "-", "x"],
    ] {
        let r = crimg(as_nobody(node.crimg()), args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&socket),
            "{args:?} names the socket: {}",
            r.stderr
        );
        assert!(
            r.stderr.to_lowercase().contains("permission denied"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("root"),
            "{args:?} says to run as root: {}",
            r.stderr
        );
    }
}

/// containerd restarted while prune removes 120 images one at a time. The restart is
/// retried (bounded) until it lands mid-prune: then crimg says it lost the runtime,
/// naming the socket (exit 3), exactly one removal failed under the restart and the rest
/// are "not attempted"; nothing protected is lost; a rerun removes the rest.
#[test]
fn containerd_restarted_during_prune() {
    const ATTEMPTS: usize = 4;
    let mut node = Node::start();
    node.ensure_pause_image();
    let pod = node.run_pod("keeper");
    let images: Vec<FixtureImage> = (0..120)
        .map(|i| FixtureImage::new(&format!("docker.io/library/churn-{i}:1")))
        .collect();
    let refs: Vec<&FixtureImage> = images.iter().collect();
    let tar = node.dir().join("churn.tar");
    archives::write(&tar, &archives::tar(&archives::oci_layout(&refs, false)));
    let mut prune = vec!["prune", "--parallel", "1"];
    for img in &images[10..20] {
        prune.extend(["--exclude", img.name.as_str()]);
    }
    // Protected: pinned ones, excluded ones, the pause image of the running pod.
    let mut protected: Vec<String> = images
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 0 || (10..20).contains(i))
        .map(|(_, img)| img.name.clone())
        .chain(["registry.k8s.io/pause:3.9".to_string()])
        .collect();
    protected.sort();
    let tagged = |node: &Node| -> Vec<String> {
        let mut v: Vec<String> = node
            .cri_images()
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .collect();
        v.sort();
        v
    };
    let socket = node.socket().display().to_string();

    // How many records must be gone before the restart; halved after a prune that
    // finished before the restart reached it.
    let mut gone_first = 40;
    let mut landed = None;
    for attempt in 1..=ATTEMPTS {
        node.ctr_ok(&["images", "import", "--no-unpack", s(&tar)]);
        node.wait_for("CRI to list the images", || {
            node.cri_images().len() > images.len()
        });
        for img in images.iter().step_by(10) {
            node.set_label(&img.name, "io.cri-containerd.pinned", Some("pinned"));
        }
        let start = node.ctr_ok(&["images", "ls", "-q"]).lines().count();
        let child = spawn(&node, &[&prune[..], &["-o", "json"]].concat());
        let underway = wait_until(Duration::from_secs(20), || {
            node.ctr_ok(&["images", "ls", "-q"]).lines().count() <= start - gone_first
        });
        assert!(
            underway,
            "attempt {attempt}: the prune never removed anything"
        );
        node.restart_containerd();
        let r = finish(child, Duration::from_secs(60));
        eprintln!("attempt {attempt}: exit {}: {}", r.code, r.stderr);
        match r.code {
            // The restart came after the last removal: try again, earlier.
            0 => gone_first = (gone_first / 2).max(2),
            3 => {
                landed = Some(r);
                break;
            }
            code => panic!("exit {code}\n{}\n{}", r.stdout, r.stderr),
        }
    }
    let r = landed
        .unwrap_or_else(|| panic!("the restart never landed mid-prune in {ATTEMPTS} attempts"));
    let out: PruneResult = r.json();
    let (not_attempted, tried): (Vec<_>, Vec<_>) = out
        .failed
        .iter()
        .partition(|f| f.error.starts_with("not attempted: "));
    // One removal at a time: one failed under the restart, none started after it.
    assert_eq!(tried.len(), 1, "failed removals: {:#?}", out.failed);
    assert!(!not_attempted.is_empty(), "none left unattempted: {out:#?}");
    let lost = format!("lost the connection to containerd at {socket}");
    for f in &out.failed {
        assert!(f.error.contains(&lost), "names the socket: {}", f.error);
    }
    let summary = format!(
        "crimg: error: {} of {} removal(s) failed or were not attempted, {lost}",
        out.failed.len(),
        out.failed.len() + out.removed.len()
    );
    assert!(r.stderr.contains(&summary), "{summary:?} in {}", r.stderr);
    let left = tagged(&node);
    for p in &protected {
        assert!(left.contains(p), "{p} was lost");
    }
    assert!(
        node.list_pods().iter().any(|p| p.id == pod),
        "the pod's sandbox is gone"
    );

    let r = crimg(node.crimg(), &[&prune[..], &["-o", "json"]].concat()).expect_code(0);
    assert_eq!(tagged(&node), protected, "{}", r.stdout);
}

/// A removal containerd refuses (`Images.Delete` answered FailedPrecondition, through a
/// proxy on the socket crimg talks to, for the records of the first image crimg removes)
/// is that image's `failed` entry with containerd's cause, exit 4; the other planned
/// removals go on after it (one at a time) and those images are gone from the runtime,
/// while the refused one is whole.
#[test]
fn a_refused_removal_is_failed_and_the_others_go_on() {
    const CAUSE: &str = "record held by an unfinished transaction";
    let node = Node::start();
    let images: Vec<FixtureImage> = ["old-a", "old-b", "old-c"]
        .iter()
        .map(|n| FixtureImage::new(&format!("docker.io/library/{n}:1")))
        .collect();
    for img in &images {
        node.import(img);
    }
    let before = node.image_names();
    // Every record of each image: its tag and, when CRI made one, its ID record.
    let records: Vec<Vec<String>> = images
        .iter()
        .map(|img| {
            let r: Vec<String> = before
                .iter()
                .filter(|n| **n == img.name || **n == img.config_digest())
                .cloned()
                .collect();
            assert!(r.contains(&img.name), "{before:?}");
            r
        })
        .collect();
    let proxy = FaultProxy::refuse_first_image_removed(&node, &records, 9, CAUSE);

    let r = crimg(
        node.crimg(),
        &[
            "--address",
            s(proxy.socket()),
            "prune",
            "--parallel",
            "1",
            "-o",
            "json",
        ],
    )
    .expect_code(4);
    let out: PruneResult = r.json();
    crate::schema::check("prune", &r.stdout);

    // The first record crimg tried to delete was refused, and no other of that image was
    // tried; then each other image's tag was deleted.
    let refused = proxy.refused();
    let deletes = proxy.deletes();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(deletes.first(), refused.first(), "{deletes:?}");
    let i = records
        .iter()
        .position(|r| r.contains(&refused[0]))
        .expect("a refused record is one of the images'");
    let (refused_image, refused_records) = (&images[i], &records[i]);
    let others: Vec<&FixtureImage> = images
        .iter()
        .filter(|img| img.name != refused_image.name)
        .collect();
    for other in &others {
        assert!(
            deletes.contains(&other.name),
            "{} not deleted: {deletes:?}",
            other.name
        );
    }
    let failed: Vec<(String, String)> = out
        .failed
        .iter()
        .map(|f| (f.id.clone(), f.error.clone()))
        .collect();
    assert_eq!(
        failed,
        [(
            refused_image.config_digest(),
            format!("FailedPrecondition: {CAUSE}")
        )]
    );
    let removed: Vec<(String, Vec<String>)> = out
        .removed
        .iter()
        .map(|i| (i.id.clone(), i.repo_tags.clone()))
        .collect();
    assert_eq!(
        removed,
        others
            .iter()
            .map(|i| (i.config_digest(), vec![i.name.clone()]))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out.reclaimed_bytes,
        out.removed.iter().map(|i| i.size).sum::<u64>()
    );
    assert!(out.kept.is_empty(), "{:#?}", out.kept);

    // The runtime agrees: the others' records are gone, the refused image's all there.
    assert_eq!(&node.image_names(), refused_records);
    assert_eq!(node.cri_image_ids(), [refused_image.config_digest()]);
}
