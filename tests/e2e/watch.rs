//! `crimg import --watch` holds the runtime to what the watched directory declares:
//! images deleted are imported again, pins stripped are set again without reading the
//! archive, unchanged archives whose images are there are not imported again, archives
//! removed with `--unpin-removed` lose crimg's pins, and a corrupt state file costs a full
//! re-check, never the watch.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crimg::proto::containerd::services::images::v1 as ctrd;

use crate::support::archives;
use crate::support::{FixtureImage, Node};

const PIN_LABEL: &str = "io.cri-containerd.pinned";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A `crimg import --watch` child whose stderr is collected line by line.
struct Watcher {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watcher {
    fn start(node: &Node, dir: &Path, extra: &[&str]) -> Watcher {
        let mut cmd = node.crimg();
        cmd.args(["import", "--watch", "-v"])
            .args(extra)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn crimg import --watch");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut w = Watcher {
            child,
            lines,
            seen: vec![],
        };
        w.wait_line("watching", Duration::from_secs(10));
        w
    }

    /// Waits (bounded) for a stderr line containing `text`; returns it.
    fn wait_line(&mut self, text: &str, timeout: Duration) -> String {
        self.wait_line_from(0, text, timeout)
    }

    /// [`Watcher::wait_line`] among the lines from the `from`th on.
    fn wait_line_from(&mut self, from: usize, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().skip(from).find(|l| l.contains(text)) {
            return l.clone();
        }
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(text) {
                    return line;
                }
            }
        }
        panic!(
            "no {text:?} from the watcher within {timeout:?}; it said:\n{}",
            self.seen.join("\n")
        );
    }

    fn said(&self) -> String {
        self.seen.join("\n")
    }

    /// SIGTERM, then every line it printed; it must exit 0 (bounded).
    fn stop(mut self) -> String {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let Some(status) =
            crate::support::sys::wait_bounded(&mut self.child, Duration::from_secs(10))
        else {
            panic!("the watcher did not stop on SIGTERM: {}", self.said());
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        assert_eq!(status.code(), Some(0), "{}", self.said());
        self.said()
    }
}

/// A watched directory under the node's temp dir, and the state file the watcher uses.
fn watched(node: &Node) -> (PathBuf, PathBuf) {
    let dir = node.dir().join("watched");
    fs::create_dir_all(&dir).unwrap();
    (dir, node.dir().join("crimg-state/import-watch.json"))
}

/// Writes `image` as an OCI archive elsewhere and moves it into `dir` whole.
fn drop_archive(node: &Node, dir: &Path, file: &str, image: &FixtureImage) -> PathBuf {
    let tmp = node.dir().join(format!("{file}.part"));
    archives::write(&tmp, &archives::tar(&archives::oci_layout(&[image], false)));
    let path = dir.join(file);
    fs::rename(&tmp, &path).unwrap();
    path
}

fn listed(node: &Node, image: &FixtureImage) -> bool {
    node.cri_image_status(&image.name)
        .is_some_and(|i| i.id == image.config_digest())
}

/// Waits (bounded) until CRI lists `image` under its name.
fn wait_listed(node: &Node, w: &Watcher, image: &FixtureImage, limit: Duration) -> Duration {
    let start = Instant::now();
    while !listed(node, image) {
        assert!(
            start.elapsed() < limit,
            "{} not in the runtime after {limit:?}; the watcher said:\n{}",
            image.name,
            w.said()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// Deletes every containerd record of `image` (tag and ID), as a prune would.
fn delete(node: &Node, image: &FixtureImage) {
    node.ctr_ok(&["images", "rm", &image.name, &image.config_digest()]);
    node.wait_for(&format!("CRI to forget {}", image.name), || {
        !listed(node, image)
    });
}

/// The records crimg creates for an image: its tag and its ID.
fn records(image: &FixtureImage) -> [String; 2] {
    [image.name.clone(), image.config_digest()]
}

fn pinned(node: &Node, record: &str) -> bool {
    node.image_labels(record)
        .get(PIN_LABEL)
        .is_some_and(|v| v == "pinned")
}

fn strip_pins(node: &Node, image: &FixtureImage) {
    for r in records(image) {
        node.set_label(&r, PIN_LABEL, None);
        assert!(!pinned(node, &r), "{r} still pinned");
    }
}

/// When containerd last changed the record: an import rewrites it, a skip does not.
fn updated_at(node: &Node, name: &str) -> String {
    let mut c = node.images_client();
    let req = Node::namespaced(ctrd::GetImageRequest {
        name: name.to_owned(),
    });
    let image = node
        .call(&format!("containerd Images.Get {name}"), c.get(req))
        .image
        .unwrap_or_else(|| node.fail(&format!("no image record {name}")));
    format!("{:?}", image.updated_at)
}

/// Overwrites `path` with bytes that are no archive, keeping its size and mtime: a watcher
/// that reads the file again fails, one that trusts what it remembered does not notice.
fn spoil_keeping_stat(path: &Path) {
    let meta = fs::metadata(path).unwrap();
    let mtime = meta.modified().unwrap();
    let garbage = vec![0x5a_u8; meta.len() as usize];
    fs::write(path, &garbage).unwrap();
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let after = fs::metadata(path).unwrap();
    assert_eq!(after.len(), meta.len());
    assert_eq!(after.modified().unwrap(), mtime);
}

#[test]
fn watch_restores_an_image_deleted_while_it_was_stopped() {
    let node = Node::start();
    let (dir, _) = watched(&node);
    let image = FixtureImage::new("docker.io/library/watch-restart:1");
    drop_archive(&node, &dir, "w1.tar", &image);
    let mut w = Watcher::start(&node, &dir, &[]);
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    w.wait_line("imported 1 image(s)", Duration::from_secs(5));
    w.stop();

    delete(&node, &image);
    let mut w = Watcher::start(&node, &dir, &[]);
    let why = w.wait_line("importing", Duration::from_secs(10));
    assert!(
        why.contains(&format!("missing from the runtime: {}", image.name)),
        "{why}"
    );
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    let said = w.stop();
    assert!(!said.contains("error"), "{said}");

    // Without --pin it restores at start only: a deliberate prune while it runs stands.
    let mut w = Watcher::start(&node, &dir, &["--recheck-interval", "1s"]);
    w.wait_line("skipped", Duration::from_secs(10));
    delete(&node, &image);
    std::thread::sleep(Duration::from_secs(4));
    assert!(!listed(&node, &image), "restored without --pin");
    let said = w.stop();
    assert!(!said.contains("importing"), "{said}");
}

#[test]
fn watch_with_pin_restores_an_image_deleted_while_watching_within_the_interval() {
    let node = Node::start();
    let (dir, _) = watched(&node);
    let image = FixtureImage::new("docker.io/library/watch-live:1");
    drop_archive(&node, &dir, "live.tar", &image);
    let mut w = Watcher::start(&node, &dir, &["--pin", "--recheck-interval", "2s"]);
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    w.wait_line("imported 1 image(s)", Duration::from_secs(5));
    for r in records(&image) {
        assert!(pinned(&node, &r), "{r} not pinned by the import");
    }

    let mark = w.seen.len();
    delete(&node, &image);
    // One interval, plus the import itself.
    let took = wait_listed(&node, &w, &image, Duration::from_secs(10));
    let why = w.wait_line_from(mark, "importing", Duration::from_secs(5));
    assert!(
        why.contains(&format!("missing from the runtime: {}", image.name)),
        "{why}"
    );
    // CRI lists the tag before the ID record is made: wait for the import to finish.
    w.wait_line_from(mark, "imported 1 image(s)", Duration::from_secs(5));
    for r in records(&image) {
        assert!(pinned(&node, &r), "{r} restored unpinned");
    }
    let said = w.stop();
    assert!(!said.contains("error"), "{said}");
    eprintln!("restored {took:?} after the delete");
}

#[test]
fn watch_repins_a_stripped_pin_without_reading_the_archive() {
    let node = Node::start();
    let (dir, _) = watched(&node);
    let image = FixtureImage::new("docker.io/library/watch-repin:1");
    let path = drop_archive(&node, &dir, "repin.tar", &image);
    let mut w = Watcher::start(&node, &dir, &["--pin"]);
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    w.wait_line("imported 1 image(s)", Duration::from_secs(5));
    w.stop();

    // As K3s does at its start. The archive can no longer be read: re-reading it would fail.
    strip_pins(&node, &image);
    spoil_keeping_stat(&path);
    let before = updated_at(&node, &image.name);
    let mut w = Watcher::start(&node, &dir, &["--pin", "--recheck-interval", "1s"]);
    let line = w.wait_line("re-pinned", Duration::from_secs(10));
    assert!(line.contains(&image.name), "{line}");
    assert!(line.contains("not read"), "{line}");
    for r in records(&image) {
        assert!(pinned(&node, &r), "{r} not pinned again");
    }

    // And while it runs, within the interval.
    strip_pins(&node, &image);
    let deadline = Instant::now() + Duration::from_secs(8);
    while !records(&image).iter().all(|r| pinned(&node, r)) {
        assert!(
            Instant::now() < deadline,
            "not re-pinned while watching:\n{}",
            w.said()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let said = w.stop();
    assert!(!said.contains("error"), "{said}");
    assert!(!said.contains("importing"), "{said}");
    assert!(said.contains("imported 0 image(s)"), "{said}");
    assert!(listed(&node, &image));
    // Only the labels changed; the record's target is the archive's manifest still.
    let labels = node.image_labels(&image.name);
    assert_eq!(labels.get(PIN_LABEL).map(String::as_str), Some("pinned"));
    assert_ne!(updated_at(&node, &image.name), before, "labels not updated");
}

#[test]
fn watch_skips_an_unchanged_archive_whose_image_is_present() {
    let node = Node::start();
    let (dir, _) = watched(&node);
    let image = FixtureImage::new("docker.io/library/watch-skip:1");
    let path = drop_archive(&node, &dir, "skip.tar", &image);
    let mut w = Watcher::start(&node, &dir, &["--pin"]);
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    w.wait_line("imported 1 image(s)", Duration::from_secs(5));
    w.stop();

    spoil_keeping_stat(&path);
    let before: Vec<String> = records(&image)
        .iter()
        .map(|r| updated_at(&node, r))
        .collect();
    let mut w = Watcher::start(&node, &dir, &["--pin", "--recheck-interval", "1s"]);
    let line = w.wait_line("skipped", Duration::from_secs(10));
    assert!(line.contains("its images are present"), "{line}");
    // A few re-checks go by.
    std::thread::sleep(Duration::from_secs(3));
    let said = w.stop();
    assert!(!said.contains("error"), "{said}");
    assert!(!said.contains("importing"), "{said}");
    assert!(!said.contains("re-pinned"), "{said}");
    assert!(said.contains("imported 0 image(s)"), "{said}");
    let after: Vec<String> = records(&image)
        .iter()
        .map(|r| updated_at(&node, r))
        .collect();
    assert_eq!(after, before, "image records rewritten");
}

#[test]
fn watch_unpin_removed_drops_only_crimgs_pins() {
    let node = Node::start();
    let (dir, _) = watched(&node);
    let ours = FixtureImage::new("docker.io/library/watch-ours:1");
    let theirs = FixtureImage::new("docker.io/library/watch-theirs:1");
    let stays = FixtureImage::new("docker.io/library/watch-stays:1");
    // Pinned by its operator before the watcher ever saw it.
    node.import(&theirs);
    for r in records(&theirs) {
        node.set_label(&r, PIN_LABEL, Some("pinned"));
    }
    let ours_path = drop_archive(&node, &dir, "ours.tar", &ours);
    let theirs_path = drop_archive(&node, &dir, "theirs.tar", &theirs);
    drop_archive(&node, &dir, "stays.tar", &stays);
    let mut w = Watcher::start(&node, &dir, &["--pin", "--unpin-removed"]);
    for image in [&ours, &theirs, &stays] {
        wait_listed(&node, &w, image, Duration::from_secs(20));
    }
    for file in ["ours.tar", "theirs.tar", "stays.tar"] {
        w.wait_line(&format!("{file}: docker.io"), Duration::from_secs(10));
    }

    fs::remove_file(&ours_path).unwrap();
    fs::remove_file(&theirs_path).unwrap();
    let line = w.wait_line("unpinned", Duration::from_secs(10));
    assert!(line.contains("ours.tar"), "{line}");
    w.wait_line(
        "theirs.tar: no longer in the directory",
        Duration::from_secs(10),
    );
    let said = w.stop();
    assert!(!said.contains("error"), "{said}");
    // Unpinned, not deleted.
    assert!(listed(&node, &ours));
    for r in records(&ours) {
        assert!(!pinned(&node, &r), "{r} still pinned");
    }
    for r in records(&theirs).iter().chain(&records(&stays)) {
        assert!(pinned(&node, r), "{r} lost a pin crimg did not set");
    }

    // Without --unpin-removed, an archive's removal leaves its images pinned.
    let mut w = Watcher::start(&node, &dir, &["--pin"]);
    w.wait_line("skipped", Duration::from_secs(10));
    fs::remove_file(dir.join("stays.tar")).unwrap();
    w.wait_line("left as they are", Duration::from_secs(10));
    w.stop();
    for r in records(&stays) {
        assert!(pinned(&node, &r), "{r} unpinned without --unpin-removed");
    }
}

#[test]
fn watch_treats_a_corrupt_state_file_as_empty_and_checks_everything() {
    let node = Node::start();
    let (dir, state) = watched(&node);
    let image = FixtureImage::new("docker.io/library/watch-corrupt:1");
    drop_archive(&node, &dir, "c.tar", &image);
    let mut w = Watcher::start(&node, &dir, &[]);
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    w.wait_line("imported 1 image(s)", Duration::from_secs(5));
    w.stop();
    let text = fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 1, "{text}");

    // Cut short, as a crash of an older writer could leave it.
    fs::write(&state, &text[..text.len() / 2]).unwrap();
    delete(&node, &image);
    let mut w = Watcher::start(&node, &dir, &[]);
    let warning = w.wait_line("warning", Duration::from_secs(10));
    assert!(warning.contains("is corrupt"), "{warning}");
    assert!(warning.contains(s(&state)), "{warning}");
    // Kept aside whole, as prune keeps its own, never written over.
    let moved = w.wait_line("moved the unusable state file to ", Duration::from_secs(5));
    let aside = PathBuf::from(moved.rsplit(" to ").next().unwrap());
    assert_eq!(aside.parent(), state.parent(), "{moved}");
    assert_eq!(fs::read_to_string(&aside).unwrap(), text[..text.len() / 2]);
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    w.wait_line("imported 1 image(s)", Duration::from_secs(5));
    w.stop();
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&state).unwrap())
        .expect("the state file is written whole again");
    assert_eq!(v["version"], 1);
    let key = dir.join("c.tar").canonicalize().unwrap();
    assert_eq!(
        v["files"][s(&key)]["images"][0]["target"],
        image.manifest_digest().as_str(),
        "{v:#}"
    );
}

#[test]
fn watch_refuses_a_directory_for_its_state_file() {
    let node = Node::start();
    let (dir, state) = watched(&node);
    fs::create_dir_all(&state).unwrap();
    let mut child = node
        .crimg()
        .args(["import", "--watch"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crimg import --watch");
    let status = crate::support::sys::wait_bounded(&mut child, Duration::from_secs(20));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let status = status.unwrap_or_else(|| panic!("still watching after 20s:\n{err}"));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "state file {} is a directory, not a regular file",
            s(&state)
        )),
        "{err}"
    );
    assert!(state.is_dir());
}

#[test]
fn watch_with_pin_restores_on_containerd_image_delete_events_before_the_interval() {
    let node = Node::start();
    let (dir, _) = watched(&node);
    let image = FixtureImage::new("docker.io/library/watch-events:1");
    drop_archive(&node, &dir, "events.tar", &image);
    // An interval no test waits for: only an image event can start the re-check.
    let mut w = Watcher::start(&node, &dir, &["--pin", "--recheck-interval", "1h"]);
    wait_listed(&node, &w, &image, Duration::from_secs(20));
    w.wait_line("imported 1 image(s)", Duration::from_secs(5));

    let mark = w.seen.len();
    delete(&node, &image);
    let deleted = Instant::now();
    w.wait_line_from(mark, "missing from the runtime", Duration::from_secs(5));
    let noticed = deleted.elapsed();
    w.wait_line_from(mark, "imported 1 image(s)", Duration::from_secs(5));
    let took = wait_listed(&node, &w, &image, Duration::from_secs(10));
    for r in records(&image) {
        assert!(pinned(&node, &r), "{r} restored unpinned");
    }
    let said = w.stop();
    assert!(!said.contains("error"), "{said}");
    eprintln!(
        "on events: restore started {noticed:?} after the delete, listed by CRI {took:?} after it"
    );
}

/// A directory with two links to itself, one to its parent, a subdirectory and a link to
/// an archive kept elsewhere; returns the images it holds (in the walk's order).
fn looping_directory(node: &Node) -> (PathBuf, Vec<FixtureImage>) {
    let dir = node.dir().join("loops");
    fs::create_dir_all(dir.join("sub")).unwrap();
    let a = FixtureImage::new("docker.io/library/loop-a:1");
    let b = FixtureImage::new("docker.io/library/loop-b:1");
    let c = FixtureImage::new("docker.io/library/loop-c:1");
    drop_archive(node, &dir, "a.tar", &a);
    drop_archive(node, &dir.join("sub"), "b.tar", &b);
    // An archive outside the directory, reached through a link to the file.
    drop_archive(node, node.dir(), "elsewhere.tar", &c);
    std::os::unix::fs::symlink(node.dir().join("elsewhere.tar"), dir.join("c.tar")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("s1")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("s2")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("up")).unwrap();
    (dir, vec![a, c, b])
}

#[test]
fn import_of_a_directory_with_symlink_loops_imports_each_archive_once_and_ends() {
    let node = Node::start();
    let (dir, images) = looping_directory(&node);
    let mut cmd = node.crimg();
    cmd.args(["import", "-o", "json", s(&dir)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn crimg import");
    let Some(status) = crate::support::sys::wait_bounded(&mut child, Duration::from_secs(60))
    else {
        panic!("crimg import of a directory with symlink loops did not end within 60 s");
    };
    let out = child.wait_with_output().expect("collect output");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    let result: crate::json::ImportResult = serde_json::from_str(&stdout).expect("json");
    let files: Vec<String> = result.imported.iter().map(|f| f.file.clone()).collect();
    assert_eq!(
        files,
        [
            s(&dir.join("a.tar")),
            s(&dir.join("c.tar")),
            s(&dir.join("sub/b.tar"))
        ],
        "{stderr}"
    );
    let names: Vec<Vec<String>> = result
        .imported
        .iter()
        .map(|f| f.images.iter().map(|i| i.name.clone()).collect())
        .collect();
    let want: Vec<Vec<String>> = images.iter().map(|i| vec![i.name.clone()]).collect();
    assert_eq!(names, want, "{stderr}");
    assert!(result.failed.is_empty(), "{stderr}");
    for l in ["s1", "s2", "up"] {
        assert!(
            stderr.contains(&format!(
                "skipped {}: a symbolic link to a directory (not followed)",
                s(&dir.join(l))
            )),
            "{stderr}"
        );
    }
    for image in &images {
        assert!(listed(&node, image), "{} not listed", image.name);
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

#[test]
fn watch_of_a_directory_with_symlink_loops_stays_flat_and_stops_on_sigterm() {
    let node = Node::start();
    let (dir, images) = looping_directory(&node);
    let mut w = Watcher::start(&node, &dir, &[]);
    for image in &images {
        wait_listed(&node, &w, image, Duration::from_secs(30));
    }
    w.wait_line("skipped", Duration::from_secs(10));
    let pid = w.child.id();
    let settled = rss_kib(pid);
    // Every change makes the watcher scan the directory again.
    let mut peak = settled;
    for i in 0..20 {
        fs::write(dir.join(format!("note{i}.md")), b"not an archive").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        peak = peak.max(rss_kib(pid));
    }
    // Let the last scan run.
    std::thread::sleep(Duration::from_secs(3));
    peak = peak.max(rss_kib(pid));
    while let Ok(l) = w.lines.recv_timeout(Duration::from_millis(200)) {
        w.seen.push(l);
    }
    assert!(
        peak < settled + 16 * 1024,
        "RSS grew from {settled} KiB to {peak} KiB while scanning; it said:\n{}",
        w.said()
    );
    let said = w.said();
    assert_eq!(
        said.matches("imported 1 image(s)").count(),
        3,
        "each archive imported once:\n{said}"
    );
    assert_eq!(
        said.matches("a symbolic link to a directory (not followed)")
            .count(),
        3,
        "each link warned about once:\n{said}"
    );
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let Some(status) = crate::support::sys::wait_bounded(&mut w.child, Duration::from_secs(5))
    else {
        panic!(
            "the watcher did not stop within 5 s of SIGTERM: {}",
            w.said()
        );
    };
    assert_eq!(status.code(), Some(0), "{}", w.said());
}

/// What one scan finds is imported two archives at a time, records in name order: of two
/// archives with the same tag the later keeps it, though the earlier one finished last.
#[test]
fn watch_imports_a_scans_archives_at_once_in_name_order() {
    let node = Node::start();
    let (dir, _) = watched(&node);
    let tag = "docker.io/library/watch-at-once:1";
    let base = archives::noise_layer(21, 8, "base");
    let big = archives::noise_layer(22, 192, "big");
    let small = archives::noise_layer(23, 1, "small");
    let part = node.dir().join("parts");
    fs::create_dir_all(&part).unwrap();
    let a_id = archives::write_layered_oci(&part.join("a.tar"), tag, "/a", &[&base, &big]);
    let b_id = archives::write_layered_oci(&part.join("b.tar"), tag, "/b", &[&base, &small]);
    assert_ne!(a_id, b_id);
    for f in ["a.tar", "b.tar"] {
        fs::rename(part.join(f), dir.join(f)).unwrap();
    }
    let mut w = Watcher::start(&node, &dir, &[]);
    let (a, b) = (dir.join("a.tar"), dir.join("b.tar"));
    w.wait_line(
        &format!("imported 1 image(s) from {}", b.display()),
        Duration::from_secs(60),
    );
    let said = w.stop();
    let at = |what: String| {
        said.find(&what)
            .unwrap_or_else(|| panic!("no {what:?} in {said}"))
    };
    let done = |p: &Path| at(format!("{}: written and unpacked after", p.display()));
    assert!(done(&b) < done(&a), "b.tar was not done first: {said}");
    let imported = |p: &Path| at(format!("imported 1 image(s) from {}", p.display()));
    assert!(imported(&a) < imported(&b), "{said}");
    let status = node.cri_image_status(tag).expect("the tag is listed");
    assert_eq!(status.id, b_id, "the later archive keeps the tag: {said}");
}
