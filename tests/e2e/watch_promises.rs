//! What `docs/importing.md` promises of `import --watch` beyond importing new files: a
//! file is read only once it has held still for 2 s, a touched file with the same bytes is
//! skipped by digest, and a failed archive is retried only when it changes.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::archives;
use crate::support::{FixtureImage, Node};

/// How long a file must hold still before the watcher reads it (`docs/importing.md`'s 2 s).
const SETTLE: Duration = Duration::from_secs(2);

/// A `crimg import --watch -v DIR` child whose stderr lines are collected with the time
/// each arrived.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Watch {
    fn start(node: &Node, dir: &Path) -> Watch {
        Watch::start_with(node, dir, &[])
    }

    fn start_with(node: &Node, dir: &Path, extra: &[&str]) -> Watch {
        let mut child = node
            .crimg()
            .args(["import", "--watch", "-v"])
            .args(extra)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crimg import --watch");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send((Instant::now(), line));
            }
        });
        let mut w = Watch {
            child,
            lines,
            seen: Vec::new(),
        };
        w.wait_line("watching", Duration::from_secs(10));
        w
    }

    /// Collects what arrived by now.
    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// Waits (bounded) for a line containing `text` after the first `from` lines; the
    /// time it arrived.
    fn wait_line_after(&mut self, from: usize, text: &str, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((t, _)) = self.seen[from.min(self.seen.len())..]
                .iter()
                .find(|(_, l)| l.contains(text))
            {
                return *t;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no {text:?} from the watcher within {timeout:?}; it said:\n{}",
                    self.said()
                );
            }
            if let Ok(l) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                self.seen.push(l);
            }
        }
    }

    fn wait_line(&mut self, text: &str, timeout: Duration) -> Instant {
        self.wait_line_after(0, text, timeout)
    }

    /// Lines containing `text` so far.
    fn count(&mut self, text: &str) -> usize {
        self.drain();
        self.seen.iter().filter(|(_, l)| l.contains(text)).count()
    }

    fn said(&self) -> String {
        self.seen
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM; the exit code must be 0 (a watcher's normal stop).
    fn stop(mut self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let status = crate::support::sys::wait_bounded(&mut self.child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("the watcher did not stop: {}", self.said()));
        self.drain();
        assert_eq!(status.code(), Some(0), "{}", self.said());
    }
}

fn archive_bytes(image: &FixtureImage) -> Vec<u8> {
    archives::tar(&archives::oci_layout(&[image], false))
}

fn tagged(node: &Node, name: &str) -> bool {
    node.cri_images()
        .iter()
        .any(|i| i.repo_tags.iter().any(|t| t == name))
}

/// A file written straight into the watched directory in five chunks over about 3 s
/// (each pause shorter than the settle time): read only once it has held still for 2 s,
/// so it is imported whole, once, with no error about a half-written archive.
#[test]
fn watch_waits_for_a_file_being_written_to_hold_still() {
    let node = Node::start();
    let dir = node.dir().join("watched");
    fs::create_dir_all(&dir).unwrap();
    let image = FixtureImage::new("docker.io/library/slow-copy:1");
    let bytes = archive_bytes(&image);
    let mut w = Watch::start(&node, &dir);

    let path = dir.join("slow.tar");
    let mut file = fs::File::create(&path).unwrap();
    let chunk = bytes.len().div_ceil(5);
    let mut last_write = Instant::now();
    for (i, part) in bytes.chunks(chunk).enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(700));
        }
        file.write_all(part).unwrap();
        file.flush().unwrap();
        last_write = Instant::now();
    }
    drop(file);
    let imported = w.wait_line("imported 1 image(s) from", Duration::from_secs(20));
    assert!(
        imported >= last_write + SETTLE - Duration::from_millis(100),
        "imported {:?} after the last write, before the file held still for {SETTLE:?}",
        imported - last_write
    );
    assert!(tagged(&node, &image.name));
    // Give a second read the time it would need to show.
    std::thread::sleep(SETTLE + Duration::from_millis(500));
    assert_eq!(w.count("imported 1 image(s) from"), 1, "{}", w.said());
    assert_eq!(w.count("error"), 0, "{}", w.said());
    w.stop();
}

/// A file touched after its import (new mtime, same bytes) is skipped by digest, not
/// imported again, and the state file takes its new mtime. A failed archive is not
/// retried while unchanged, and is retried once it changes.
#[test]
fn watch_skips_touched_files_by_digest_and_retries_changed_failures() {
    let node = Node::start();
    let dir = node.dir().join("watched");
    fs::create_dir_all(&dir).unwrap();
    let good = FixtureImage::new("docker.io/library/touched:1");
    let fixed = FixtureImage::new("docker.io/library/fixed-later:1");
    // Written complete elsewhere and moved in, so each is read once it has settled.
    let put = |name: &str, bytes: &[u8]| {
        let tmp = node.dir().join(format!("{name}.part"));
        archives::write(&tmp, bytes);
        fs::rename(&tmp, dir.join(name)).unwrap();
    };
    let mut w = Watch::start(&node, &dir);

    put("a.tar", &archive_bytes(&good));
    w.wait_line("imported 1 image(s) from", Duration::from_secs(20));
    let a = dir.join("a.tar");
    let key = a.display().to_string();
    let mtime = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
    let before = mtime(&a);
    let from = w.seen.len();
    let touched = filetime_now(&a);
    assert_ne!(touched, before, "touch did not change the mtime");
    w.wait_line_after(
        from,
        &format!("skipped {key}: same content as imported before"),
        Duration::from_secs(20),
    );
    assert_eq!(w.count("imported 1 image(s) from"), 1, "{}", w.said());
    let state = fs::read_to_string(node.dir().join("crimg-state/import-watch.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let files = state["files"].as_object().expect("files by path");
    assert_eq!(files.keys().collect::<Vec<_>>(), [&key], "{state}");

    // A broken archive: one error, and no retry while it stays as it is.
    let b = dir.join("b.tar");
    let b_key = b.display().to_string();
    put("b.tar", b"not an archive at all");
    let error = format!("crimg: error: {b_key}: ");
    w.wait_line(&error, Duration::from_secs(20));
    std::thread::sleep(SETTLE * 2 + Duration::from_millis(500));
    assert_eq!(w.count(&error), 1, "retried unchanged: {}", w.said());
    // Changed (rewritten whole): retried, and imported.
    let from = w.seen.len();
    put("b.tar", &archive_bytes(&fixed));
    w.wait_line_after(
        from,
        &format!("imported 1 image(s) from {b_key}"),
        Duration::from_secs(20),
    );
    assert!(tagged(&node, &fixed.name));
    assert_eq!(w.count(&error), 1, "{}", w.said());
    w.stop();
}

/// `touch FILE`: a new mtime, the bytes as they were. Returns the new mtime.
fn filetime_now(path: &Path) -> std::time::SystemTime {
    // A second later than now, so the change shows on filesystems with coarse times.
    let later = std::time::SystemTime::now() + Duration::from_secs(1);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    fs::metadata(path).unwrap().modified().unwrap()
}

/// The inotify descriptors process `pid` holds.
fn inotify_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| fs::read_link(e.unwrap().path()).ok())
        .filter(|target| target == Path::new("anon_inode:inotify"))
        .count()
}

/// CPU time (user and system, in clock ticks) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which ends at the last ')': utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after it.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `--poll`: the watcher holds no inotify descriptor (a default one does), sleeps between
/// rescans instead of spinning, and a file dropped into the directory is still imported
/// within a poll period (5 s) plus the settle time.
#[test]
fn watch_with_poll_imports_a_dropped_file_without_inotify() {
    let node = Node::start();
    let dir = node.dir().join("watched");
    fs::create_dir_all(&dir).unwrap();
    let other = node.dir().join("other");
    fs::create_dir_all(&other).unwrap();
    let other_state = node.dir().join("other-watch.json");
    let inotify = Watch::start_with(
        &node,
        &other,
        &["--state-file", other_state.to_str().unwrap()],
    );
    assert!(
        inotify_fds(inotify.child.id()) > 0,
        "a default watcher uses inotify"
    );
    inotify.stop();

    let mut w = Watch::start_with(&node, &dir, &["--poll"]);
    w.wait_line("polling every 5s (--poll)", Duration::from_secs(1));
    let pid = w.child.id();
    assert_eq!(inotify_fds(pid), 0, "--poll holds an inotify descriptor");
    // Idle between rescans: well under a tenth of a core over 3 s.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "{used} clock ticks of CPU in 3 s of polling an empty directory"
    );

    let image = FixtureImage::new("docker.io/library/polled:1");
    let tmp = node.dir().join("polled.part");
    archives::write(&tmp, &archive_bytes(&image));
    let dropped = Instant::now();
    fs::rename(&tmp, dir.join("polled.tar")).unwrap();
    let imported = w.wait_line("imported 1 image(s) from", Duration::from_secs(20));
    assert!(
        imported - dropped < Duration::from_secs(5) + SETTLE + Duration::from_secs(8),
        "imported {:?} after the drop",
        imported - dropped
    );
    assert!(tagged(&node, &image.name));
    assert_eq!(w.count("error"), 0, "{}", w.said());
    w.stop();
}
