//! Concurrent use: two prunes, a prune during an import, a pod starting during a prune.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crimg::proto::runtime::v1 as cri;

use crate::json::{OciConfig, PruneResult, WatchState};
use crate::run::{Run, crimg};
use crate::support::archives::big_archive;
use crate::support::content::leases;
use crate::support::sys::wait_until;
use crate::support::{FixtureImage, Node};

const PAUSE: &str = "registry.k8s.io/pause:3.9";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A crimg child whose stderr lines are collected with the time each arrived.
struct Running {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    stdout: std::thread::JoinHandle<String>,
}

impl Running {
    fn spawn(node: &Node, args: &[&str]) -> Running {
        let mut child = node
            .crimg()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start crimg");
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send((Instant::now(), line));
            }
        });
        Running {
            child,
            lines,
            stdout,
        }
    }

    fn finished(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits (bounded) for the exit; the run and its timestamped stderr lines.
    fn wait(mut self, limit: Duration) -> (Run, Vec<(Instant, String)>) {
        let status = crate::support::sys::wait_bounded(&mut self.child, limit)
            .unwrap_or_else(|| panic!("crimg did not finish within {limit:?}"));
        let stdout = self.stdout.join().unwrap();
        let lines: Vec<(Instant, String)> = self.lines.iter().collect();
        let stderr = lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (
            Run {
                code: status.code().unwrap_or(-1),
                stdout,
                stderr,
            },
            lines,
        )
    }
}

fn cri_tags(node: &Node) -> BTreeSet<String> {
    node.cri_images()
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .collect()
}

/// Every removed image is not also kept or failed, and the bytes add up.
fn assert_consistent(out: &PruneResult, what: &str) {
    let removed: BTreeSet<&str> = out.removed.iter().map(|i| i.id.as_str()).collect();
    let kept: BTreeSet<&str> = out.kept.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(removed.len(), out.removed.len(), "{what}: removed twice");
    assert!(
        removed.is_disjoint(&kept),
        "{what}: removed and kept: {out:#?}"
    );
    assert!(out.failed.is_empty(), "{what}: failures: {out:#?}");
    assert!(!out.dry_run);
    assert_eq!(
        out.reclaimed_bytes,
        out.removed.iter().map(|i| i.size).sum::<u64>(),
        "{what}: reclaimed_bytes"
    );
}

/// Two prunes started together on a node with many unused images and protected ones:
/// both exit 0 (an image the other removed first is gone either way, not a failure),
/// every unused image goes, every protected one stays.
#[test]
fn two_prunes_at_once() {
    let node = Node::start();
    const RUNNING: &str = "docker.io/library/web:1";
    const PINNED: &str = "docker.io/library/pinned:1";
    let unused: Vec<String> = (0..40)
        .map(|i| format!("docker.io/library/unused-{i}:1"))
        .collect();
    for name in unused.iter().map(String::as_str).chain([RUNNING, PINNED]) {
        node.import(&FixtureImage::new(name));
    }
    node.set_label(PINNED, "io.cri-containerd.pinned", Some("pinned"));
    let pod = node.run_pod("web");
    let container = node.run_container(&pod, "web", RUNNING);

    for round in 0..3 {
        if round > 0 {
            for name in &unused {
                node.import(&FixtureImage::new(name));
            }
        }
        let mut a = Running::spawn(&node, &["prune", "-o", "json", "-v"]);
        let mut b = Running::spawn(&node, &["prune", "-o", "json", "-v"]);
        // When each exited, seen within 5 ms.
        let (mut a_end, mut b_end) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while (a_end.is_none() || b_end.is_none()) && Instant::now() < deadline {
            if a_end.is_none() && a.finished() {
                a_end = Some(Instant::now());
            }
            if b_end.is_none() && b.finished() {
                b_end = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (a, a_lines) = a.wait(Duration::from_secs(1));
        let (b, b_lines) = b.wait(Duration::from_secs(1));
        // They overlapped: each had taken its first look before the other exited.
        let first_look = |lines: &[(Instant, String)]| {
            list_containers_line(lines, 0)
                .expect("a ListContainers line")
                .0
        };
        let (a_end, b_end) = (a_end.unwrap(), b_end.unwrap());
        assert!(
            first_look(&a_lines) < b_end && first_look(&b_lines) < a_end,
            "round {round}: the two prunes did not overlap"
        );
        let a: PruneResult = a.expect_code(0).json();
        let b: PruneResult = b.expect_code(0).json();
        assert_consistent(&a, "first prune");
        assert_consistent(&b, "second prune");

        // Neither reports an image twice, nor one that was not unused; between them they
        // report every unused one (one the other deleted first counts as removed too).
        let mut want = unused.clone();
        want.sort();
        for (which, out) in [("first", &a), ("second", &b)] {
            let tags = out.removed_tags();
            let mut once = tags.clone();
            once.dedup();
            assert_eq!(tags, once, "round {round}: the {which} prune reports twice");
            assert!(
                tags.iter().all(|t| want.contains(t)),
                "round {round}: the {which} prune removed {tags:?}"
            );
        }
        let mut removed: Vec<String> = a
            .removed_tags()
            .into_iter()
            .chain(b.removed_tags())
            .collect();
        removed.sort();
        removed.dedup();
        assert_eq!(
            removed, want,
            "round {round}: what the two removed together"
        );
        for out in [&a, &b] {
            assert!(
                out.reasons_of(RUNNING)
                    .contains(&format!("in-use:container:{container}")),
                "{out:#?}"
            );
            assert_eq!(out.reasons_of(PINNED), ["pinned:user"]);
            assert!(
                out.reasons_of(PAUSE)
                    .contains(&format!("in-use:sandbox:{pod}")),
                "{out:#?}"
            );
        }
        assert_eq!(
            cri_tags(&node),
            BTreeSet::from([RUNNING, PINNED, PAUSE].map(String::from)),
            "round {round}: what CRI lists after both"
        );
        let records = node.image_names();
        assert!(
            !records.iter().any(|r| r.contains("unused-")),
            "round {round}: records left: {records:?}"
        );
        // The space is reclaimed: no blob of a removed image is left in the store.
        let content = node.ctr_ok(&["content", "ls", "-q"]);
        let left: Vec<&String> = unused
            .iter()
            .filter(|n| content.contains(&FixtureImage::new(n).layer_digest()))
            .collect();
        assert!(left.is_empty(), "round {round}: layers left of {left:?}");
        assert_eq!(
            node.container_state(&container),
            cri::ContainerState::ContainerRunning
        );
    }
}

/// A prune whose inventory is taken while a 200 MiB import is still writing: the import
/// finishes (exit 0) with its image listed, its content and snapshot present and usable
/// for a container; the prune removed the other unused images.
#[test]
fn prune_during_import_spares_the_import() {
    let node = Node::start();
    let dir = node.dir().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("big.tar");
    let name = big_archive(&archive);
    let unused: Vec<String> = (0..5)
        .map(|i| format!("docker.io/library/old-{i}:1"))
        .collect();
    for n in &unused {
        node.import(&FixtureImage::new(n));
    }
    let pod = node.run_pod("p");

    let mut import = Running::spawn(&node, &["import", s(&archive)]);
    assert!(
        wait_until(Duration::from_secs(10), || !leases(&node).trim().is_empty()),
        "the import took no lease"
    );
    assert!(
        !import.finished(),
        "the import ended before the prune could start"
    );
    let prune = crimg(node.crimg(), &["prune", "-o", "json"]).expect_code(0);
    let still_importing = !import.finished();
    let (import, _) = import.wait(Duration::from_secs(120));
    import.expect_code(0);
    assert!(
        still_importing,
        "the import finished before the prune did; the archive is too small for this machine"
    );
    let prune: PruneResult = prune.json();
    assert_consistent(&prune, "prune");
    let mut want = unused.clone();
    want.sort();
    assert_eq!(prune.removed_tags(), want);
    assert!(
        !prune.kept.iter().any(|k| k.repo_tags.contains(&name)),
        "the prune saw the image being imported: {prune:#?}"
    );

    // The import is whole: listed by CRI, every blob in the store, its snapshot there,
    // and a container can be made from it (its rootfs prepared from that snapshot).
    let image = node
        .cri_image_status(&name)
        .unwrap_or_else(|| panic!("CRI does not list {name}"));
    let config: OciConfig =
        serde_json::from_str(&node.ctr_ok(&["content", "get", &image.id])).unwrap();
    // One layer: the noise, whose digest is its diff ID (it is not compressed).
    let [diff_id] = &config.rootfs.diff_ids[..] else {
        panic!("not one layer: {config:?}");
    };
    let diff_id = diff_id.clone();
    let content = node.ctr_ok(&["content", "ls", "-q"]);
    assert!(content.contains(&image.id), "config blob gone");
    assert!(content.contains(&diff_id), "layer blob gone");
    let snapshots = node.ctr_ok(&["snapshots", "ls"]);
    assert!(
        snapshots.contains(&diff_id),
        "unpacked snapshot gone:\n{snapshots}"
    );
    let id = node.create_container(&pod, "p", &name, &[]);
    assert_eq!(
        node.container_state(&id),
        cri::ContainerState::ContainerCreated
    );
    assert!(
        wait_until(Duration::from_secs(5), || leases(&node).trim().is_empty()),
        "a lease was left: {}",
        leases(&node)
    );
}

// ---------------------------------------------------------------------------------------
// A pod starting from an image while a prune runs.

const RACER: &str = "docker.io/library/racer:1";

/// CRI CreateContainer of `image` in `pod`, like `Node::create_container` but returning
/// the error instead of failing the test.
fn try_create(
    node: &Node,
    pod: &str,
    pod_name: &str,
    image: &str,
    name: &str,
) -> Result<String, String> {
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.to_owned(),
            ..Default::default()
        }),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Node.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.to_owned(),
        config: Some(config),
        sandbox_config: Some(node.pod_config(pod_name)),
    };
    let mut c = node.runtime_client();
    node.block_on(async {
        match tokio::time::timeout(Duration::from_secs(30), c.create_container(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner().container_id),
            Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
            Err(_) => Err("timed out".into()),
        }
    })
}

fn try_start(node: &Node, id: &str) -> Result<(), String> {
    let mut c = node.runtime_client();
    let req = cri::StartContainerRequest {
        container_id: id.to_owned(),
    };
    node.block_on(async {
        match tokio::time::timeout(Duration::from_secs(30), c.start_container(req)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
            Err(_) => Err("timed out".into()),
        }
    })
}

/// The bytes of `/pause` as the running container sees them: read through its mounted
/// root filesystem.
fn rootfs_pause(node: &Node, id: &str) -> std::io::Result<Vec<u8>> {
    let rootfs = node
        .dir()
        .join("state/io.containerd.runtime.v2.task/k8s.io")
        .join(id)
        .join("rootfs");
    std::fs::read(rootfs.join("pause"))
}

fn remove_container(node: &Node, id: &str) {
    let mut c = node.runtime_client();
    node.call(
        "CRI StopContainer",
        c.stop_container(cri::StopContainerRequest {
            container_id: id.to_owned(),
            timeout: 0,
        }),
    );
    node.call(
        "CRI RemoveContainer",
        c.remove_container(cri::RemoveContainerRequest {
            container_id: id.to_owned(),
        }),
    );
}

/// The arrival time and reported duration of the `n`th (0-based) `CRI ListContainers`
/// diagnostic of a `crimg -v` run.
fn list_containers_line(lines: &[(Instant, String)], n: usize) -> Option<(Instant, Duration)> {
    lines
        .iter()
        .filter_map(|(t, l)| {
            let ms = l.split("CRI ListContainers: ").nth(1)?;
            let ms: f64 = ms.trim_end_matches(" ms").parse().ok()?;
            Some((*t, Duration::from_secs_f64(ms / 1e3)))
        })
        .nth(n)
}

/// How one round of the race ended.
#[derive(Debug, Default)]
struct Tally {
    /// The container was made before the prune's first look: kept as in use.
    kept_in_use: usize,
    /// The prune planned to remove the image, but its re-check saw the new container.
    kept_by_recheck: usize,
    /// CreateContainer succeeded while the prune removed the image: it ran anyway.
    ran_while_removed: usize,
    /// CreateContainer failed because the image had gone (the kubelet pulls again).
    create_failed: usize,
}

/// `crimg prune` runs while a container is created from the only unused image, over and
/// over, the creation moved across the prune's window from its first look, through its
/// re-check, to its deletes. Every container whose CreateContainer succeeded starts and
/// runs; every container that existed when the re-check listed containers kept its
/// image; a CreateContainer that loses the race fails cleanly (the image is gone, so
/// the kubelet would pull it again) and only in a round where the prune removed it.
#[test]
fn pod_starting_during_prune() {
    let node = Node::start();
    let racer = FixtureImage::new(RACER);
    let pod = node.run_pod("race");
    // Slack for the pipe and the reader thread between crimg's line and its arrival. On a
    // loaded machine (2 cores shared) 30 ms was seen to be too little: a container made
    // after the re-check looked as if it came before it.
    const LATENCY: Duration = Duration::from_millis(150);
    const ROUNDS: usize = 40;
    // Rounds aimed at the re-check, until one has kept the image because of it.
    const EXTRA_ROUNDS: usize = 20;
    // Calibrate: how long CreateContainer takes, and when a prune with nothing racing it
    // first lists containers and when it exits, from its start.
    node.import(&racer);
    let t0 = Instant::now();
    let id = try_create(&node, &pod, "race", RACER, "calibrate").unwrap();
    let create_takes = t0.elapsed();
    remove_container(&node, &id);
    let mut first_look = Vec::new();
    let mut second_look = Vec::new();
    let mut done = Vec::new();
    for _ in 0..3 {
        if node.cri_image_status(RACER).is_none() {
            node.import(&racer);
        }
        let t0 = Instant::now();
        let (run, lines) =
            Running::spawn(&node, &["prune", "-o", "json", "-v"]).wait(Duration::from_secs(60));
        run.expect_code(0);
        done.push(t0.elapsed());
        first_look.push(
            list_containers_line(&lines, 0)
                .expect("a ListContainers line")
                .0
                - t0,
        );
        let (t, took) = list_containers_line(&lines, 1).expect("the re-check's ListContainers");
        second_look.push(t - took - t0);
    }
    first_look.sort();
    second_look.sort();
    done.sort();
    let from = first_look[1].saturating_sub(Duration::from_millis(20));
    let step = (done[1] + create_takes + Duration::from_millis(20)).saturating_sub(from) / 18;
    // Between the end of the first look and the start of the re-check's.
    let recheck_aim = (first_look[1] + second_look[1]) / 2;
    eprintln!(
        "CreateContainer takes {create_takes:?}; prune lists containers at {:?} and {:?}, exits at {:?}",
        first_look[1], second_look[1], done[1]
    );
    let mut tally = Tally::default();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    let mut rounds = 0;
    for round in 0..ROUNDS + EXTRA_ROUNDS {
        if round >= ROUNDS && tally.kept_by_recheck > 0 {
            break;
        }
        rounds += 1;
        if node.cri_image_status(RACER).is_none() {
            node.import(&racer);
        }
        // Aim the moment CreateContainer returns at a point of the prune's window; every
        // 20th round creates the container before the prune starts.
        let k = round % 20;
        let (prune, created, created_at) = if k == 0 && round < ROUNDS {
            let created = try_create(&node, &pod, "race", RACER, &format!("r{round}"));
            let created_at = Instant::now();
            let prune = Running::spawn(&node, &["prune", "-o", "json", "-v"]);
            (prune, created, created_at)
        } else {
            let target = if round < ROUNDS {
                from + step * (k - 1) as u32
            } else {
                recheck_aim
            };
            let prune = Running::spawn(&node, &["prune", "-o", "json", "-v"]);
            std::thread::sleep(target.saturating_sub(create_takes));
            let created = try_create(&node, &pod, "race", RACER, &format!("r{round}"));
            (prune, created, Instant::now())
        };
        let started = created.as_ref().ok().map(|id| try_start(&node, id));
        let (run, lines) = prune.wait(Duration::from_secs(60));
        let run = run.expect_code(0);
        let out: PruneResult = run.json();
        assert_consistent(&out, "prune");
        let removed = out.removed_tags().contains(&RACER.to_string());
        let became_used = run
            .stderr
            .contains("1 image(s) became used while planning; kept");
        // The racer is the only image the prune may remove: it planned to remove it
        // exactly when it re-checked.
        let planned = removed || became_used;
        // When the re-check began listing containers, at the latest.
        let recheck = list_containers_line(&lines, 1).map(|(t, d)| t - d - LATENCY);
        assert_eq!(
            recheck.is_some(),
            planned,
            "round {round}: planned to remove the racer: {planned}, re-checked: {}\n{}",
            recheck.is_some(),
            run.stderr
        );
        match (&created, started) {
            (Ok(id), Some(Ok(()))) => {
                node.wait_for("the container to run", || {
                    node.container_state(id) == cri::ContainerState::ContainerRunning
                });
                if recheck.is_some_and(|r| created_at < r) {
                    // Created before the re-check: it must have kept its image.
                    assert!(
                        !removed,
                        "round {round}: container {id} existed before the re-check, yet its image was removed: {out:#?}"
                    );
                }
                if removed {
                    // The prune's garbage collection has run and took the image's blobs;
                    // the container's root filesystem is still whole.
                    assert!(
                        !node
                            .ctr_ok(&["content", "ls", "-q"])
                            .contains(&racer.layer_digest()),
                        "round {round}: the removed image's layer blob is still stored"
                    );
                    let pause = rootfs_pause(&node, id).unwrap_or_else(|e| {
                        panic!("round {round}: container {id}'s /pause after its image went: {e}")
                    });
                    assert_eq!(
                        pause,
                        std::fs::read(crate::support::pause_binary()).unwrap(),
                        "round {round}: container {id}'s /pause changed"
                    );
                    assert_eq!(
                        node.container_state(id),
                        cri::ContainerState::ContainerRunning
                    );
                    tally.ran_while_removed += 1;
                } else if out
                    .reasons_of(RACER)
                    .iter()
                    .any(|r| r == &format!("in-use:container:{id}"))
                {
                    if became_used {
                        tally.kept_by_recheck += 1;
                    } else {
                        tally.kept_in_use += 1;
                    }
                } else {
                    panic!("round {round}: kept for another reason: {out:#?}");
                }
                remove_container(&node, id);
            }
            (Ok(id), Some(Err(e))) => {
                panic!(
                    "round {round}: container {id} was created but does not start: {e}\nprune: {out:#?}"
                );
            }
            (Err(e), _) => {
                assert!(
                    removed,
                    "round {round}: CreateContainer failed though the prune kept the image: {e}"
                );
                // The image is gone when CRI resolves it, or its content when it unpacks.
                assert!(
                    e.starts_with("NotFound: ") && e.ends_with(": not found"),
                    "round {round}: CreateContainer failed, but not for want of the image: {e}"
                );
                *failures.entry(e.clone()).or_insert(0) += 1;
                tally.create_failed += 1;
            }
            (Ok(_), None) => unreachable!(),
        }
    }
    eprintln!("{tally:?}\nCreateContainer failures: {failures:#?}");
    assert_eq!(
        tally.kept_in_use + tally.kept_by_recheck + tally.ran_while_removed + tally.create_failed,
        rounds
    );
    assert!(
        tally.kept_by_recheck > 0,
        "no round's re-check kept the image: {tally:?}"
    );
    assert!(
        tally.kept_in_use > 0,
        "no round kept the image as in use: {tally:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Signals to `crimg import --watch` while it imports.

/// `import --watch` stops on SIGINT and on SIGTERM while a 200 MiB archive is being
/// imported: exit 0 (a watcher's normal stop), the import in progress undone (no lease,
/// no image record, content and snapshots as before), what was imported before stays,
/// and the state file is whole JSON that remembers only finished imports, with no temp
/// file beside it.
#[test]
fn watch_stops_cleanly_on_signals_mid_import() {
    let node = Node::start();
    let dir = node.dir().join("watched");
    std::fs::create_dir_all(&dir).unwrap();
    let small = FixtureImage::new("docker.io/library/small:1");
    let tmp = node.dir().join("small.tar");
    small.write_oci_tar(&tmp);
    std::fs::rename(&tmp, dir.join("small.tar")).unwrap();
    let small_path = dir
        .join("small.tar")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let big_src = node.dir().join("big.tar");
    let big = big_archive(&big_src);
    let state_dir = node.dir().join("crimg-state");
    let state_file = state_dir.join("import-watch.json");

    for (round, sig) in ["INT", "TERM"].into_iter().enumerate() {
        let mut w = Running::spawn(&node, &["import", "--watch", "-v", s(&dir)]);
        if round == 0 {
            assert!(
                wait_until(Duration::from_secs(30), || node
                    .cri_image_status(&small.name)
                    .is_some()),
                "the watcher did not import small.tar"
            );
            // The state is saved just after CRI lists the image.
            assert!(
                wait_until(Duration::from_secs(5), || std::fs::read_to_string(
                    &state_file
                )
                .is_ok_and(|t| t.contains("small.tar"))),
                "small.tar not remembered"
            );
        }
        let before = (
            node.ctr_ok(&["images", "ls", "-q"]),
            node.ctr_ok(&["content", "ls", "-q"]),
            node.ctr_ok(&["snapshots", "ls"]),
        );
        if round == 0 {
            std::fs::rename(&big_src, dir.join("big.tar")).unwrap();
        }
        // The file settles (2 s), is hashed, then imported under a lease.
        assert!(
            wait_until(Duration::from_secs(30), || !leases(&node).trim().is_empty()),
            "round {round}: the watcher never started importing big.tar"
        );
        assert!(!w.finished(), "round {round}: the watcher exited early");
        let sent = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &w.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let stopped = Instant::now();
        let (run, _) = w.wait(Duration::from_secs(10));
        let took = stopped.elapsed();
        assert_eq!(run.code, 0, "SIG{sig}: {}", run.stderr);
        assert!(
            took < Duration::from_secs(5),
            "SIG{sig}: stopping took {took:?}"
        );
        assert!(run.stderr.contains("stopping"), "{}", run.stderr);
        assert!(
            !run.stderr.contains(&format!(
                "imported 1 image(s) from {}",
                s(&dir.join("big.tar"))
            )),
            "SIG{sig}: the import finished before the signal; make it larger\n{}",
            run.stderr
        );
        assert!(
            wait_until(Duration::from_secs(2), || leases(&node).trim().is_empty()),
            "SIG{sig}: a lease was left: {}",
            leases(&node)
        );
        let after = (
            node.ctr_ok(&["images", "ls", "-q"]),
            node.ctr_ok(&["content", "ls", "-q"]),
            node.ctr_ok(&["snapshots", "ls"]),
        );
        assert!(
            !after.0.contains(&big),
            "SIG{sig}: an image record of {big} was left"
        );
        assert_eq!(after, before, "SIG{sig}: containerd changed");
        assert!(node.cri_image_status(&small.name).is_some());

        let text = std::fs::read_to_string(&state_file).unwrap();
        let state: WatchState = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("SIG{sig}: state file is not crimg's ({e}):\n{text}"));
        assert_eq!(state.version, 1, "SIG{sig}: {text}");
        let files: Vec<&String> = state.files.keys().collect();
        assert_eq!(files, [&small_path], "SIG{sig}: {text}");
        // Its tag and the ID record CRI keeps, both at its manifest, not pinned by crimg.
        let mut brought: Vec<(&str, &str, bool)> = state.files[&small_path]
            .images
            .iter()
            .map(|r| (r.name.as_str(), r.target.as_str(), r.pinned_by_crimg))
            .collect();
        brought.sort();
        let (id, manifest) = (small.config_digest(), small.manifest_digest());
        let mut want = vec![
            (small.name.as_str(), manifest.as_str(), false),
            (id.as_str(), manifest.as_str(), false),
        ];
        want.sort();
        assert_eq!(brought, want, "SIG{sig}: small.tar's records: {text}");
        let mut names: Vec<String> = std::fs::read_dir(&state_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["import-watch.json"],
            "SIG{sig}: files in the state dir"
        );
    }
}

/// An OCI archive of `name`: the layer of `base` and then a ~200 MiB layer of noise,
/// with `/pause` (from the base layer) as entrypoint.
fn archive_on_base(path: &Path, base: &FixtureImage, name: &str) {
    let base_layer = base.blobs().remove(&base.layer_digest()).unwrap();
    let big = crate::support::archives::noise_layer(0x2545_f491_4f6c_dd1d, 200, "big");
    crate::support::archives::write_layered_oci(path, name, "/pause", &[&base_layer, &big]);
}

/// The import of an image whose first layer an unused image already has (so its
/// snapshot is there and is not unpacked again) while a prune removes that image and
/// collects garbage: the import still succeeds and its image runs.
#[test]
fn prune_during_import_of_an_image_sharing_its_base() {
    let node = Node::start();
    let base = FixtureImage::new("docker.io/library/base:1");
    node.import(&base);
    let pod = node.run_pod("p");
    let dir = node.dir().join("derived");
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("derived.tar");
    let name = "docker.io/library/derived:1";
    archive_on_base(&archive, &base, name);

    let mut import = Running::spawn(&node, &["import", "-v", s(&archive)]);
    assert!(
        wait_until(Duration::from_secs(10), || !leases(&node).trim().is_empty()),
        "the import took no lease"
    );
    // Let it find the base layer's snapshot in place while it writes the big layer.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !import.finished(),
        "the import ended before the prune could start"
    );
    let prune: PruneResult = crimg(node.crimg(), &["prune", "-o", "json"])
        .expect_code(0)
        .json();
    let still_importing = !import.finished();
    let (import, _) = import.wait(Duration::from_secs(120));
    let import = import.expect_code(0);
    assert!(still_importing, "the import finished before the prune did");
    assert_eq!(
        prune.removed_tags(),
        std::slice::from_ref(&base.name),
        "{prune:#?}"
    );
    assert!(node.cri_image_status(name).is_some(), "{}", import.stderr);
    let id = try_create(&node, &pod, "p", name, "derived")
        .unwrap_or_else(|e| panic!("a container of the imported image: {e}"));
    try_start(&node, &id).unwrap();
    node.wait_for("the container to run", || {
        node.container_state(&id) == cri::ContainerState::ContainerRunning
    });
}
