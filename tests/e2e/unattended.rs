//! `crimg prune --every` until SIGTERM, the watermarks, and `--metrics-file` on prune and
//! `import --watch`, read back after real runs.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::json::{ImageList, PruneResult};
use crate::run::crimg;
use crate::support::archives::{self, Compress};
use crate::support::{FixtureImage, Node, runtime};

const PAUSE: &str = "registry.k8s.io/pause:3.9";
const USED: &str = "docker.io/library/web:1.0";
const EXCLUDED: &str = "reg.local:5000/team/tool:2.1";
const UNUSED: [&str; 2] = ["docker.io/library/old-a:1", "quay.io/someone/old-c:7"];

/// The `-o json` summary line of one run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunLine {
    run: u64,
    result: String,
    dry_run: bool,
    removed: u64,
    reclaimed_bytes: u64,
    kept: u64,
    failed: u64,
    duration_seconds: f64,
    image_fs_used_bytes: Option<u64>,
    image_fs_size_bytes: Option<u64>,
    error: Option<String>,
    next_run_seconds: Option<f64>,
}

struct Scene {
    node: Node,
    exclude_dir: std::path::PathBuf,
}

fn scene() -> Scene {
    let node = Node::start();
    for name in [USED, EXCLUDED].into_iter().chain(UNUSED) {
        node.import(&FixtureImage::new(name));
    }
    let pod = node.run_pod("web");
    node.run_container(&pod, "web", USED);
    let exclude_dir = node.dir().join("exclude.d");
    fs::create_dir_all(&exclude_dir).unwrap();
    fs::write(exclude_dir.join("team.conf"), "reg.local:5000/team/**\n").unwrap();
    Scene { node, exclude_dir }
}

impl Scene {
    fn tags(&self) -> Vec<String> {
        let list: ImageList = crimg(self.node.crimg(), &["list", "-o", "json"])
            .expect_code(0)
            .json();
        let mut tags: Vec<String> = list.images.into_iter().flat_map(|i| i.repo_tags).collect();
        tags.sort();
        tags
    }

    fn sizes(&self) -> BTreeMap<String, u64> {
        let list: ImageList = crimg(self.node.crimg(), &["list", "-o", "json"])
            .expect_code(0)
            .json();
        list.images
            .into_iter()
            .flat_map(|i| i.repo_tags.into_iter().map(move |t| (t, i.size)))
            .collect()
    }

    fn kept_tags(&self) -> Vec<String> {
        let mut v: Vec<String> = [PAUSE, USED, EXCLUDED].map(String::from).to_vec();
        v.sort();
        v
    }
}

/// Size of the filesystem the node's containerd keeps its snapshots on.
fn fs_size(dir: &Path) -> u64 {
    let st = rustix::fs::statvfs(dir).expect("statvfs of the node dir");
    st.f_blocks * st.f_frsize
}

/// `name{labels} value` lines of a metrics file; comment lines must be HELP or TYPE.
fn samples(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP crimg_") || rest.starts_with("TYPE crimg_"),
                "unexpected comment line {line:?}"
            );
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("sample line");
        assert!(name.starts_with("crimg_"), "{line:?}");
        assert!(
            out.insert(name.to_string(), value.to_string()).is_none(),
            "{name} twice"
        );
    }
    out
}

fn number(samples: &BTreeMap<String, String>, name: &str) -> f64 {
    samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {samples:#?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn prune_metrics_file_holds_what_the_run_did() {
    let s = scene();
    let sizes = s.sizes();
    let metrics = s.node.dir().join("textfile/crimg_prune.prom");
    fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let before = now();
    let out: PruneResult = crimg(
        s.node.crimg(),
        &[
            "prune",
            "-o",
            "json",
            "--exclude-dir",
            s.exclude_dir.to_str().unwrap(),
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    )
    .expect_code(0)
    .json();
    let after = now();
    let mut want_removed: Vec<String> = UNUSED.map(String::from).to_vec();
    want_removed.sort();
    assert_eq!(out.removed_tags(), want_removed);
    assert_eq!(s.tags(), s.kept_tags());

    let text = fs::read_to_string(&metrics).unwrap();
    let m = samples(&text);
    let reclaimed: u64 = UNUSED.iter().map(|t| sizes[*t]).sum();
    let exact = [
        ("crimg_prune_images_removed", "2".to_string()),
        ("crimg_prune_reclaimed_bytes", reclaimed.to_string()),
        ("crimg_prune_images_failed", "0".into()),
        ("crimg_prune_last_run_success", "1".into()),
        ("crimg_prune_consecutive_failures", "0".into()),
        ("crimg_prune_last_run_below_high_usage", "0".into()),
        // pause: sandbox in use and allowlisted; web: in use; the team tool: excluded.
        ("crimg_prune_images_kept{reason=\"in-use\"}", "2".into()),
        ("crimg_prune_images_kept{reason=\"allowlist\"}", "1".into()),
        ("crimg_prune_images_kept{reason=\"excluded\"}", "1".into()),
        // containerd 1.7 and 2.x pin the sandbox image themselves.
        (
            "crimg_prune_images_kept{reason=\"pinned\"}",
            u8::from(runtime::containerd().pins_sandbox_image()).to_string(),
        ),
        ("crimg_prune_images_kept{reason=\"high-usage\"}", "0".into()),
        (
            "crimg_image_fs_size_bytes",
            fs_size(s.node.dir()).to_string(),
        ),
    ];
    for (name, value) in &exact {
        assert_eq!(m.get(*name), Some(value), "{name} in\n{text}");
    }
    assert_eq!(reclaimed, out.reclaimed_bytes);
    let started = number(&m, "crimg_prune_last_run_timestamp_seconds");
    assert!(
        before <= started && started <= after,
        "{started} not in {before}..{after}"
    );
    assert_eq!(
        number(&m, "crimg_prune_last_success_timestamp_seconds"),
        started
    );
    let took = number(&m, "crimg_prune_last_run_duration_seconds");
    assert!(took > 0.0 && took <= after - before, "{took}");
    let used = number(&m, "crimg_image_fs_used_bytes");
    assert!(used > 0.0 && used <= number(&m, "crimg_image_fs_size_bytes"));
    // Only the file: no temp file left beside it.
    assert_eq!(fs::read_dir(metrics.parent().unwrap()).unwrap().count(), 1);

    // Below the high mark nothing goes, and the metrics say why.
    s.node.import(&FixtureImage::new(UNUSED[0]));
    let out: PruneResult = crimg(
        s.node.crimg(),
        &[
            "prune",
            "-o",
            "json",
            "--exclude-dir",
            s.exclude_dir.to_str().unwrap(),
            "--high-usage",
            "100",
            "--target-usage",
            "99",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    )
    .expect_code(0)
    .json();
    assert!(out.removed.is_empty());
    assert_eq!(out.reasons_of(UNUSED[0]), vec!["high-usage:100%"]);
    let m = samples(&fs::read_to_string(&metrics).unwrap());
    assert_eq!(m["crimg_prune_last_run_below_high_usage"], "1");
    assert_eq!(m["crimg_prune_images_removed"], "0");
    assert_eq!(m["crimg_prune_images_kept{reason=\"high-usage\"}"], "1");
    assert_eq!(m["crimg_prune_high_usage_percent"], "100.0");
    assert_eq!(m["crimg_prune_target_usage_percent"], "99.0");

    // The same marks in the other order are a usage error, and the file stays.
    let r = crimg(
        s.node.crimg(),
        &["prune", "--high-usage", "50", "--target-usage", "60"],
    )
    .expect_code(2);
    assert!(
        r.stderr
            .contains("--high-usage 50% must be above --target-usage (--low-usage) 60%"),
        "{}",
        r.stderr
    );
}

/// A background crimg whose stderr lines are collected.
struct Background {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    fn start(mut cmd: std::process::Command) -> Background {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn crimg");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Background {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Waits (bounded) until `n` lines satisfy `pred`.
    fn wait_lines(&mut self, n: usize, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while self.seen.iter().filter(|l| pred(l)).count() < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} matching lines within {timeout:?}:\n{}",
                self.seen.join("\n")
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line);
            }
        }
    }

    /// SIGTERM, then the exit code and everything said (bounded).
    fn stop(mut self, within: Duration) -> (i32, Vec<String>, String) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let Some(status) = crate::support::sys::wait_bounded(&mut self.child, within) else {
            panic!("crimg did not stop on SIGTERM: {}", self.seen.join("\n"));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut stdout).unwrap();
        (status.code().unwrap_or(-1), self.seen, stdout)
    }
}

#[test]
fn prune_every_runs_until_sigterm_and_says_one_line_per_run() {
    let s = scene();
    let metrics = s.node.dir().join("crimg.prom");
    let mut cmd = s.node.crimg();
    cmd.args([
        "prune",
        "--every",
        "1s",
        "-o",
        "json",
        "--exclude-dir",
        s.exclude_dir.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]);
    let mut bg = Background::start(cmd);
    let is_run = |l: &str| l.starts_with("{\"run\":");
    bg.wait_lines(3, Duration::from_secs(60), is_run);
    // An image that arrives between runs goes at a later run.
    s.node.import(&FixtureImage::new(UNUSED[1]));
    let seen_before = bg.seen.iter().filter(|l| is_run(l)).count();
    bg.wait_lines(seen_before + 2, Duration::from_secs(60), is_run);
    let (code, said, stdout) = bg.stop(Duration::from_secs(10));
    assert_eq!(code, 0, "{}", said.join("\n"));
    assert_eq!(stdout, "", "the loop prints its summaries on stderr only");
    let runs: Vec<RunLine> = said
        .iter()
        .filter(|l| is_run(l))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(runs.len() >= 5, "{}", said.join("\n"));
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.run, i as u64 + 1, "{r:?}");
        assert_eq!(r.result, "done", "{r:?}");
        assert!(!r.dry_run && r.failed == 0 && r.error.is_none(), "{r:?}");
        assert!(r.duration_seconds > 0.0, "{r:?}");
        assert!(r.image_fs_size_bytes.is_some() && r.image_fs_used_bytes.is_some());
        // 1s plus at most 10%, minus what the run took; null once stopping.
        if let Some(next) = r.next_run_seconds {
            assert!(next <= 1.1, "{r:?}");
        }
    }
    assert_eq!(runs[0].removed, 2, "{:?}", runs[0]);
    assert_eq!(runs[0].kept, 3, "{:?}", runs[0]);
    assert!(runs[0].reclaimed_bytes > 0);
    assert_eq!(runs[1].removed, 0, "{:?}", runs[1]);
    let total: u64 = runs.iter().map(|r| r.removed).sum();
    assert_eq!(total, 3, "the late image went in a later run: {runs:#?}");
    assert_eq!(s.tags(), s.kept_tags());
    assert!(
        said.iter().any(|l| l == "crimg: stopping"),
        "{}",
        said.join("\n")
    );
    // The metrics file describes the last run.
    let m = samples(&fs::read_to_string(&metrics).unwrap());
    assert_eq!(m["crimg_prune_interval_seconds"], "1.0");
    assert_eq!(m["crimg_prune_last_run_success"], "1");
    assert_eq!(
        m["crimg_prune_images_removed"],
        runs.last().unwrap().removed.to_string()
    );
}

#[test]
fn prune_every_stops_on_sigterm_while_waiting() {
    let node = Node::start();
    let mut cmd = node.crimg();
    cmd.args(["prune", "--every", "1h"]);
    let mut bg = Background::start(cmd);
    // The first run starts at once; then it waits an hour, and SIGTERM ends the wait.
    bg.wait_lines(1, Duration::from_secs(30), |l| {
        l.starts_with("crimg: prune run 1: ")
    });
    let start = Instant::now();
    let (code, said, _) = bg.stop(Duration::from_secs(10));
    assert_eq!(code, 0, "{}", said.join("\n"));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        said.iter()
            .any(|l| l.starts_with("crimg: prune run 1: ") && l.contains("; next in 1h")),
        "{}",
        said.join("\n")
    );
    assert!(
        !said.iter().any(|l| l.contains("prune run 2")),
        "{}",
        said.join("\n")
    );
    assert_eq!(said.last().map(String::as_str), Some("crimg: stopping"));
}

#[test]
fn import_watch_metrics_count_imports_and_failures() {
    let node = Node::start();
    let dir = node.dir().join("watched");
    fs::create_dir_all(&dir).unwrap();
    let metrics = node.dir().join("import.prom");
    let mut cmd = node.crimg();
    cmd.args([
        "import",
        "--watch",
        dir.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]);
    let mut bg = Background::start(cmd);
    bg.wait_lines(1, Duration::from_secs(10), |l| l.contains("watching"));
    let m = samples(&fs::read_to_string(&metrics).unwrap());
    assert_eq!(m["crimg_import_archives_imported"], "0");
    assert!(!m.contains_key("crimg_import_last_success_timestamp_seconds"));

    let a = FixtureImage::new("docker.io/library/one:1");
    let b = FixtureImage::new("docker.io/library/two:1");
    let tmp = node.dir().join("two.tar.tmp");
    archives::write(
        &tmp,
        &archives::compress(
            Compress::Gzip,
            &archives::tar(&archives::oci_layout(&[&a, &b], false)),
        ),
    );
    let before = now();
    fs::rename(&tmp, dir.join("two.tar.gz")).unwrap();
    bg.wait_lines(1, Duration::from_secs(30), |l| {
        l.contains("imported 2 image(s)")
    });
    fs::write(node.dir().join("bad.tmp"), b"this is no archive at all").unwrap();
    fs::rename(node.dir().join("bad.tmp"), dir.join("bad.tar")).unwrap();
    bg.wait_lines(1, Duration::from_secs(30), |l| l.contains("bad.tar"));
    let (code, said, _) = bg.stop(Duration::from_secs(10));
    assert_eq!(code, 0, "{}", said.join("\n"));
    let m = samples(&fs::read_to_string(&metrics).unwrap());
    assert_eq!(m["crimg_import_archives_imported"], "1", "{m:#?}");
    assert_eq!(m["crimg_import_archives_failed"], "1", "{m:#?}");
    assert_eq!(m["crimg_import_images_imported"], "2", "{m:#?}");
    let t = number(&m, "crimg_import_last_success_timestamp_seconds");
    assert!(before <= t && t <= now(), "{t}");
}

/// A metrics file on a read-only filesystem is a warning naming it, at the watcher's
/// start as at every later write; the watcher runs and imports.
#[test]
fn import_watch_with_an_unwritable_metrics_file_warns_and_imports() {
    let node = Node::start();
    let dir = node.dir().join("watched");
    fs::create_dir_all(&dir).unwrap();
    let ro = node.dir().join("ro");
    fs::create_dir_all(&ro).unwrap();
    // Unmounted by the node's teardown with everything else under its dir.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a read-only tmpfs");
    let metrics = ro.join("import.prom");
    let mut cmd = node.crimg();
    cmd.args([
        "import",
        "--watch",
        dir.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]);
    let mut bg = Background::start(cmd);
    bg.wait_lines(1, Duration::from_secs(10), |l| l.contains("watching"));
    let a = FixtureImage::new("docker.io/library/one:1");
    let tmp = node.dir().join("one.tar.tmp");
    a.write_oci_tar(&tmp);
    fs::rename(&tmp, dir.join("one.tar")).unwrap();
    bg.wait_lines(1, Duration::from_secs(30), |l| {
        l.contains("imported 1 image(s)")
    });
    let (code, said, _) = bg.stop(Duration::from_secs(10));
    assert_eq!(code, 0, "{}", said.join("\n"));
    let warned = said
        .iter()
        .filter(|l| l.contains("warning") && l.contains(metrics.to_str().unwrap()))
        .count();
    assert!(
        warned >= 2,
        "a warning at the start and at the import: {said:#?}"
    );
    assert!(node.cri_image_status(&a.name).is_some());
}

/// The watched directory removed and made again: the watcher says so both times, watches
/// the new directory, and imports what is dropped into it, with inotify and polling.
#[test]
fn import_watch_follows_its_directory_removed_and_made_again() {
    let node = Node::start();
    for (i, poll) in [false, true].into_iter().enumerate() {
        let dir = node.dir().join(format!("watched-{i}"));
        fs::create_dir_all(&dir).unwrap();
        let mut cmd = node.crimg();
        cmd.args(["import", "--watch", dir.to_str().unwrap()]);
        if poll {
            cmd.arg("--poll");
        }
        let mut bg = Background::start(cmd);
        bg.wait_lines(1, Duration::from_secs(10), |l| l.contains("watching"));
        fs::remove_dir_all(&dir).unwrap();
        bg.wait_lines(1, Duration::from_secs(30), |l| l.contains("is gone"));
        fs::create_dir_all(&dir).unwrap();
        bg.wait_lines(1, Duration::from_secs(30), |l| l.contains("is there again"));
        let image = FixtureImage::new(&format!("docker.io/library/again-{i}:1"));
        let tmp = node.dir().join(format!("again-{i}.tmp"));
        image.write_oci_tar(&tmp);
        fs::rename(&tmp, dir.join("again.tar")).unwrap();
        bg.wait_lines(1, Duration::from_secs(30), |l| {
            l.contains(&format!("imported 1 image(s) from {}", dir.display()))
        });
        let (code, said, _) = bg.stop(Duration::from_secs(10));
        assert_eq!(code, 0, "{}", said.join("\n"));
        assert!(node.cri_image_status(&image.name).is_some(), "poll={poll}");
    }
}
