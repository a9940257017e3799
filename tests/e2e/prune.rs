//! `crimg prune` on a node with every kind of protected image and some plain ones.

use std::path::PathBuf;

use crate::json::{ImageList, PruneResult, PruneWhy};
use crate::run::{Run, crimg};
use crate::support::{FixtureImage, Node, NodeOptions, archives, runtime};

const PAUSE: &str = "registry.k8s.io/pause:3.9";
const RUNNING: &str = "docker.io/library/web:1.0";
const EXITED: &str = "docker.io/library/job:1.0";
const USER_PINNED: &str = "docker.io/library/pinned:1.0";
const K3S_PINNED: &str = "docker.io/rancher/airgap:1.0";
const SYSTEM: &str = "registry.k8s.io/kube-proxy:v1.30.0";
const BY_FILE: &str = "reg.local:5000/team/tool:2.1";
const BY_FLAG: &str = "docker.io/library/keepme:3";
const PLAIN: [&str; 3] = [
    "docker.io/library/old-a:1",
    "docker.io/library/old-b:1",
    "quay.io/someone/old-c:7",
];

struct Scenario {
    node: Node,
    pod: String,
    running: String,
    exited: String,
    exclude_dir: PathBuf,
}

fn scenario() -> Scenario {
    let node = Node::start();
    for name in [
        RUNNING,
        EXITED,
        USER_PINNED,
        K3S_PINNED,
        SYSTEM,
        BY_FILE,
        BY_FLAG,
    ]
    .into_iter()
    .chain(PLAIN)
    {
        node.import(&FixtureImage::new(name));
    }
    node.set_label(USER_PINNED, "io.cri-containerd.pinned", Some("pinned"));
    node.set_label(K3S_PINNED, "io.cri-containerd.pinned", Some("pinned"));
    node.set_label(K3S_PINNED, "io.cattle.k3s.pinned", Some("pinned"));
    let pod = node.run_pod("web");
    let running = node.run_container(&pod, "web", RUNNING);
    let exited = node.run_exited_container(&pod, "web", EXITED);
    let exclude_dir = node.dir().join("exclude.d");
    std::fs::create_dir_all(&exclude_dir).unwrap();
    std::fs::write(
        exclude_dir.join("team.conf"),
        "# team tools stay\n\nreg.local:5000/team/**\n",
    )
    .unwrap();
    Scenario {
        node,
        pod,
        running,
        exited,
        exclude_dir,
    }
}

impl Scenario {
    fn prune(&self, extra: &[&str]) -> Run {
        let dir = self.exclude_dir.to_str().unwrap();
        let mut args = vec!["prune", "--exclude-dir", dir, "--exclude", "keepme"];
        args.extend_from_slice(extra);
        crimg(self.node.crimg(), &args)
    }

    /// Why the running pod's pause image stays, in order: one spelling for every output.
    fn pause_reasons(&self) -> Vec<String> {
        let mut reasons = runtime::containerd().sandbox_image_reasons(&self.pod);
        reasons.push("allowlist:builtin:**/pause".into());
        reasons
    }

    fn listed_tags(&self) -> Vec<String> {
        let list: ImageList = crimg(self.node.crimg(), &["list", "-o", "json"])
            .expect_code(0)
            .json();
        let mut tags: Vec<String> = list
            .images
            .iter()
            .flat_map(|i| i.repo_tags.clone())
            .collect();
        tags.sort();
        tags
    }
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn dry_run_then_prune_removes_exactly_the_plain_images() {
    let s = scenario();
    let before = s.listed_tags();
    assert_eq!(before.len(), 11, "{before:?}");

    let dry: PruneResult = s.prune(&["--dry-run", "-o", "json"]).expect_code(0).json();
    assert!(dry.dry_run);
    assert_eq!(dry.removed_tags(), sorted(&PLAIN));
    assert!(dry.failed.is_empty());
    assert_eq!(
        dry.reclaimed_bytes,
        dry.removed.iter().map(|r| r.size).sum::<u64>()
    );
    assert!(dry.reclaimed_bytes > 0);
    assert_eq!(s.listed_tags(), before, "a dry run removes nothing");

    assert_eq!(dry.reasons_of(PAUSE), s.pause_reasons());
    assert_eq!(
        dry.reasons_of(RUNNING),
        [format!("in-use:container:{}", s.running)]
    );
    assert_eq!(
        dry.reasons_of(EXITED),
        [format!("in-use:container:{}", s.exited)]
    );
    assert_eq!(dry.reasons_of(USER_PINNED), ["pinned:user"]);
    assert_eq!(dry.reasons_of(K3S_PINNED), ["pinned:k3s"]);
    assert_eq!(dry.reasons_of(SYSTEM), ["allowlist:builtin:**/kube-proxy"]);
    let team = s.exclude_dir.join("team.conf");
    assert_eq!(
        dry.reasons_of(BY_FILE),
        [format!("excluded:{}:3", team.display())]
    );
    assert_eq!(dry.reasons_of(BY_FLAG), ["excluded:cli"]);

    // The table says the same, one whole line per image; the summary goes to stderr.
    let run = s.prune(&["--dry-run"]).expect_code(0);
    let table = &run.stdout;
    for p in PLAIN {
        let row = table
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("{p}:\n{table}"));
        assert!(row.contains("remove"), "{row}");
    }
    let pause_row = table
        .lines()
        .find(|l| l.starts_with(PAUSE))
        .unwrap_or_else(|| panic!("{PAUSE}:\n{table}"));
    assert!(
        pause_row.contains("allowlist:builtin:**/pause"),
        "piped, every reason on the image's one line: {table}"
    );
    assert!(!table.contains("would remove"), "{table}");
    let summary: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("would remove"))
        .collect();
    assert_eq!(summary.len(), 1, "{}", run.stderr);
    assert!(
        summary[0].starts_with("crimg: would remove 3 image(s), ")
            && summary[0].contains("(dry run); kept "),
        "{}",
        run.stderr
    );

    // Scripts: -q prints nothing on stdout; -o name every name of every removal, sorted;
    // -o json the same bytes run after run.
    let quiet = s.prune(&["--dry-run", "-q"]).expect_code(0);
    assert_eq!(quiet.stdout, "", "-q prints nothing on stdout");
    assert_eq!(quiet.stderr, "", "-q prints no summary");
    let names = s.prune(&["--dry-run", "-o", "name"]).expect_code(0).stdout;
    assert_eq!(names.lines().collect::<Vec<_>>(), PLAIN, "{names}");
    let first = s.prune(&["--dry-run", "-o", "json"]).expect_code(0).stdout;
    crate::schema::check("prune", &first);
    for _ in 0..2 {
        let again = s.prune(&["--dry-run", "-o", "json"]).expect_code(0).stdout;
        assert_eq!(again, first, "prune -o json is stable");
    }
    let kept: Vec<String> = dry
        .kept
        .iter()
        .map(|k| k.repo_tags.first().cloned().unwrap_or_else(|| k.id.clone()))
        .collect();
    let mut sorted = kept.clone();
    sorted.sort();
    assert_eq!(kept, sorted, "kept in name order");

    // The real run removes exactly what the dry run said.
    let real: PruneResult = s.prune(&["-o", "json"]).expect_code(0).json();
    assert!(!real.dry_run);
    assert_eq!(real.removed_tags(), dry.removed_tags());
    assert_eq!(real.reclaimed_bytes, dry.reclaimed_bytes);
    let after = s.listed_tags();
    let mut want: Vec<String> = before
        .into_iter()
        .filter(|t| !PLAIN.contains(&t.as_str()))
        .collect();
    want.sort();
    assert_eq!(after, want);
    for p in PLAIN {
        assert!(
            !s.node.image_names().iter().any(|n| n == p),
            "containerd record {p} left"
        );
    }

    // Nothing left to do: a second run removes nothing.
    let again: PruneResult = s.prune(&["-o", "json"]).expect_code(0).json();
    assert!(again.removed.is_empty());
}

#[test]
fn malformed_exclusion_file_removes_nothing() {
    let s = scenario();
    let before = s.listed_tags();
    let bad = s.exclude_dir.join("zz-bad.conf");
    std::fs::write(&bad, "nginx:*\nthis line has spaces\n").unwrap();
    let run = s.prune(&[]).expect_code(2);
    assert!(
        run.stderr.contains(&format!("{}, line 2", bad.display())),
        "names file and line: {}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was removed"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert_eq!(s.listed_tags(), before);

    // An unreadable named file too.
    std::fs::remove_file(&bad).unwrap();
    let run = s
        .prune(&["--exclude-file", "/nonexistent/x.conf"])
        .expect_code(2);
    assert!(run.stderr.contains("/nonexistent/x.conf"), "{}", run.stderr);
    assert_eq!(s.listed_tags(), before);
}

/// An exclusion that cannot match any reference (what `pin` refuses as a reference) is a
/// usage error, on the command line and in a file, naming the option or the file and
/// line; nothing is removed. Before, each of these matched nothing and the image it meant
/// to keep was removed.
#[test]
fn exclusions_that_cannot_match_are_usage_errors() {
    let s = scenario();
    let before = s.listed_tags();
    let malformed = [
        "KEEPME",
        "KEEPME:1",
        "docker.io/Library/keepme",
        "keepme,plain:1",
        "keepme!",
        "keepme:",
        "keepme@",
        "keepme@sha256:abc",
        "keepme//x",
        "/keepme",
        "keepme:1:2",
    ];
    let file = s.node.dir().join("bad-exclusions.conf");
    for pattern in malformed {
        let run = s.prune(&["--exclude", pattern]).expect_code(2);
        assert!(
            run.stderr.contains("--exclude") && run.stderr.contains(&format!("{pattern:?}")),
            "{pattern}: {}",
            run.stderr
        );
        std::fs::write(&file, format!("# kept\nnginx:*\n{pattern}\n")).unwrap();
        let run = s
            .prune(&["--exclude-file", file.to_str().unwrap()])
            .expect_code(2);
        assert!(
            run.stderr.contains(&format!("{}, line 3", file.display())),
            "{pattern}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{pattern}: {}", run.stdout);
    }
    assert_eq!(s.listed_tags(), before);
}

/// Every duration needs its unit: a bare number is a usage error for each option that
/// takes one, never seconds by default.
#[test]
fn durations_without_a_unit_are_usage_errors() {
    let s = scenario();
    let before = s.listed_tags();
    for args in [
        &["prune", "--dry-run", "--older-than", "30"][..],
        &["prune", "--dry-run", "--every", "30"],
        &["--timeout", "30", "list"],
        &[
            "import",
            "--watch",
            "--recheck-interval",
            "30",
            "/nonexistent",
        ],
    ] {
        let run = crimg(s.node.crimg(), args).expect_code(2);
        assert!(
            run.stderr
                .contains("\"30\" has no unit: write 30s, 30m, 30h or 30d"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(s.listed_tags(), before);
}

#[test]
fn why_policy_options_eraser_json_and_state() {
    let s = scenario();
    let before = s.listed_tags();

    // --why: the decision and every reason, nothing removed.
    let why: PruneWhy = s
        .prune(&["--why", PAUSE, "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(why.action, "keep");
    assert_eq!(why.reasons, s.pause_reasons());
    assert_eq!(why.schema, 1);
    assert_eq!(why.users.len(), 1, "{why:?}");
    let user = &why.users[0];
    assert_eq!(
        (user.kind.as_str(), user.id.as_str(), user.pod.as_deref()),
        ("sandbox", s.pod.as_str(), Some("crimg-e2e/web"))
    );
    assert_eq!(user.container, None);
    assert_eq!(user.state.as_deref(), Some("ready"));
    let why: PruneWhy = s
        .prune(&["--why", EXITED, "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(why.users.len(), 1, "{why:?}");
    let user = &why.users[0];
    assert_eq!(
        (user.kind.as_str(), user.id.as_str(), user.pod.as_deref()),
        ("container", s.exited.as_str(), Some("crimg-e2e/web"))
    );
    assert!(
        user.container.as_deref().is_some_and(|c| !c.is_empty()),
        "{why:?}"
    );
    assert_eq!(user.state.as_deref(), Some("exited"));
    // In people's terms in the text too.
    crate::schema::check(
        "prune-why",
        &s.prune(&["--why", EXITED, "-o", "json"])
            .expect_code(0)
            .stdout,
    );
    let text = s.prune(&["--why", EXITED]).expect_code(0).stdout;
    assert!(
        text.contains(&format!(
            "in-use:container:{} (pod crimg-e2e/web, container ",
            s.exited
        )) && text.contains(", exited)"),
        "{text}"
    );
    let why: PruneWhy = s
        .prune(&["--why", "old-a:1", "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(why.action, "remove");
    assert!(why.reasons.is_empty(), "{why:?}");
    let text = s.prune(&["--why", USER_PINNED]).expect_code(0).stdout;
    assert!(
        text.contains("keep") && text.contains("pinned:user"),
        "{text}"
    );
    let run = s.prune(&["--why", "no-such:image"]).expect_code(1);
    assert!(run.stderr.contains("no-such:image"), "{}", run.stderr);
    assert_eq!(s.listed_tags(), before);

    let dry = |extra: &[&str]| -> PruneResult {
        let mut args = vec!["--dry-run", "-o", "json"];
        args.extend_from_slice(extra);
        s.prune(&args).expect_code(0).json()
    };
    // Without the built-in list, kube-proxy goes; the runtime's sandbox image never does.
    let r = dry(&["--no-builtin-allowlist"]);
    assert!(r.removed_tags().contains(&SYSTEM.to_string()));
    assert_eq!(
        r.reasons_of(PAUSE),
        runtime::containerd().sandbox_image_reasons(&s.pod)
    );
    // Everything here was created seconds ago.
    let r = dry(&["--older-than", "1h"]);
    assert!(r.removed.is_empty());
    assert_eq!(r.reasons_of(PLAIN[0]), ["newer-than:1h"]);
    // One image per repository: --keep-last 1 keeps them all.
    let r = dry(&["--keep-last", "1"]);
    assert!(r.removed.is_empty());
    assert_eq!(r.reasons_of(PLAIN[2]), ["keep-last"]);
    // The image filesystem is below 100% of its size already; at 0% every candidate goes.
    let r = dry(&["--target-usage", "100"]);
    assert!(r.removed.is_empty());
    assert_eq!(r.reasons_of(PLAIN[1]), ["target-usage:100%"]);
    assert_eq!(
        dry(&["--target-usage", "0%"]).removed_tags(),
        sorted(&PLAIN)
    );

    // Eraser's JSON form, then a real run.
    let eraser = s.exclude_dir.join("eraser.conf");
    std::fs::write(
        &eraser,
        "{\n  \"excluded\": [\n    \"docker.io/library/old-a:*\"\n  ]\n}\n",
    )
    .unwrap();
    let r: PruneResult = s.prune(&["-o", "json"]).expect_code(0).json();
    assert_eq!(r.removed_tags(), sorted(&PLAIN[1..]));
    assert_eq!(
        r.reasons_of(PLAIN[0]),
        [format!("excluded:{}:3", eraser.display())]
    );

    // The real run remembered what it saw in use.
    let state =
        std::fs::read_to_string(s.node.dir().join("crimg-state/state.json")).expect("state file");
    assert!(
        state.contains(&FixtureImage::new(RUNNING).config_digest()),
        "{state}"
    );
}

/// `--keep-last` and `--older-than` removing images, not only keeping them, by the age
/// of their records; and a dry run that leaves the state file unwritten.
#[test]
fn keep_last_and_older_than_remove_images() {
    let node = Node::start();
    const OLD: [&str; 4] = [
        "docker.io/library/app:1",
        "docker.io/library/app:2",
        "docker.io/library/app:3",
        "docker.io/library/other:1",
    ];
    const FRESH: &str = "docker.io/library/fresh:1";
    for name in OLD {
        node.import(&FixtureImage::new(name));
        // Distinct creation times, in this order.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(2500));
    node.import(&FixtureImage::new(FRESH));
    let state = node.dir().join("crimg-state/state.json");
    let prune = |args: &[&str]| -> PruneResult {
        let mut all = vec!["prune", "-o", "json"];
        all.extend_from_slice(args);
        crimg(node.crimg(), &all).expect_code(0).json()
    };

    // A dry run changes nothing, the state file included.
    let r = prune(&["--dry-run", "--keep-last", "2"]);
    assert!(r.dry_run);
    assert_eq!(r.removed_tags(), [OLD[0]]);
    assert!(!state.exists(), "a dry run wrote {}", state.display());

    // The newest two of each repository stay.
    let r = prune(&["--keep-last", "2"]);
    assert_eq!(r.removed_tags(), [OLD[0]]);
    for kept in [OLD[1], OLD[2], OLD[3], FRESH] {
        assert_eq!(r.reasons_of(kept), ["keep-last"], "{kept}");
    }
    assert!(state.exists(), "a real run writes {}", state.display());

    // Older than 2 s: all but the fresh one.
    let r = prune(&["--older-than", "2s"]);
    assert_eq!(r.removed_tags(), sorted(&OLD[1..]));
    assert_eq!(r.reasons_of(FRESH), ["newer-than:2s"]);
    let listed: ImageList = crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json();
    let tags: Vec<&str> = listed
        .images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(String::as_str))
        .collect();
    assert_eq!(tags, [FRESH]);
}

/// Used bytes and size of the filesystem holding `path`, as crimg reads them.
fn fs_usage(path: &std::path::Path) -> (u64, u64) {
    let st = rustix::fs::statvfs(path).expect("statvfs");
    let capacity = st.f_blocks * st.f_frsize;
    (capacity - st.f_bfree * st.f_frsize, capacity)
}

/// `--target-usage` on a node whose containerd root is its own 64 MiB tmpfs, so CRI's
/// `ImageFsInfo` mount point is that filesystem: the unused images go least recently used
/// first (the times seeded in crimg's state.json, not names or creation order) and the
/// removals stop once the planned ones bring the filesystem under the target.
#[test]
fn target_usage_removes_least_recently_used_first_and_stops_at_the_target() {
    let node = Node::start_with(NodeOptions {
        root_tmpfs: Some("64m".to_owned()),
        ..NodeOptions::default()
    });
    let root = node.dir().join("root");
    // Last seen in use, oldest first: c, a, d, b.
    let last_used = [
        ("c", "2020-01-01T00:00:00Z"),
        ("a", "2021-01-01T00:00:00Z"),
        ("d", "2022-01-01T00:00:00Z"),
        ("b", "2023-01-01T00:00:00Z"),
    ];
    let name = |n: &str| format!("docker.io/library/lru-{n}:1");
    let fixtures = node.dir().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    for (seed, n) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let layer = archives::noise_layer(seed as u64 + 1, 4, "data");
        let tar = fixtures.join(format!("lru-{n}.tar"));
        archives::write_layered_oci(&tar, &name(n), "/pause", &[&layer]);
        node.ctr_ok(&["images", "import", tar.to_str().unwrap()]);
    }
    node.wait_for("CRI to list the four images", || {
        node.cri_images().len() == 4
    });
    let listed: ImageList = crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json();
    let image = |n: &str| listed.by_tag(&name(n)).clone();
    let state = node.dir().join("crimg-state/state.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let seeded: std::collections::BTreeMap<String, &str> =
        last_used.iter().map(|(n, t)| (image(n).id, *t)).collect();
    std::fs::write(
        &state,
        serde_json::json!({ "last_used": seeded }).to_string(),
    )
    .unwrap();

    // A target between "the oldest gone" and "the two oldest gone", half the second's
    // size away from each, in the image filesystem's own numbers.
    let (used, capacity) = fs_usage(&root);
    let (first, second) = (image("c").size, image("a").size);
    assert!(first > 4 << 20 && second > 4 << 20, "{first} {second}");
    let target = used - first - second / 2;
    let percent: f64 = format!("{:.4}", target as f64 * 100.0 / capacity as f64)
        .parse()
        .unwrap();
    let r = crimg(
        node.crimg(),
        &[
            "prune",
            "--target-usage",
            &percent.to_string(),
            "-o",
            "json",
        ],
    )
    .expect_code(0);
    let out: PruneResult = r.json();
    let removed: Vec<(String, Vec<String>)> = out
        .removed
        .iter()
        .map(|i| (i.id.clone(), i.repo_tags.clone()))
        .collect();
    assert_eq!(
        removed,
        [
            (image("a").id, vec![name("a")]),
            (image("c").id, vec![name("c")])
        ],
        "used {used} of {capacity}, target {percent}%: {}",
        r.stdout
    );
    let kept: Vec<(String, Vec<String>)> = out
        .kept
        .iter()
        .map(|k| (k.repo_tags.concat(), k.reasons.clone()))
        .collect();
    let reason = vec![format!("target-usage:{percent}%")];
    assert_eq!(
        kept,
        [(name("b"), reason.clone()), (name("d"), reason.clone())]
    );
    assert!(out.failed.is_empty(), "{:#?}", out.failed);

    // The filesystem really is under the target now, and the kept images are still there.
    let (after, _) = fs_usage(&root);
    assert!(after <= target, "{after} bytes used, target {target}");
    let mut tags: Vec<String> = node
        .cri_images()
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .collect();
    tags.sort();
    assert_eq!(tags, [name("b"), name("d")]);
    // Nothing was in use: the kept images' last-use times are the seeded ones.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    for n in ["b", "d"] {
        assert_eq!(
            saved["last_used"][image(n).id.as_str()],
            seeded[&image(n).id]
        );
    }
}

/// Patterns written the ways users write one image (`docker.io/x`, `index.docker.io/…`)
/// keep it, in exclusion files, Eraser's JSON, `--exclude` and `list` alike.
#[test]
fn exclusions_normalise_like_references() {
    let node = Node::start();
    let keep = "docker.io/library/keepme:1";
    let hub = "docker.io/team/hubapp:1";
    let drop = "docker.io/library/dropme:1";
    for name in [keep, hub, drop] {
        node.import(&FixtureImage::new(name));
    }
    let empty = node.dir().join("empty.d");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.to_str().unwrap();

    let dry: PruneResult = crimg(
        node.crimg(),
        &[
            "prune",
            "--dry-run",
            "--exclude-dir",
            empty,
            "--exclude",
            "docker.io/keepme:*",
            "--exclude",
            "index.docker.io/team/hubapp",
            "-o",
            "json",
        ],
    )
    .expect_code(0)
    .json();
    assert_eq!(dry.removed_tags(), [drop]);
    assert_eq!(dry.reasons_of(keep), ["excluded:cli"]);
    assert_eq!(dry.reasons_of(hub), ["excluded:cli"]);

    let listed: ImageList = crimg(node.crimg(), &["list", "-o", "json", "docker.io/keepme"])
        .expect_code(0)
        .json();
    let tags: Vec<&str> = listed
        .images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(String::as_str))
        .collect();
    assert_eq!(tags, [keep]);

    let dir = node.dir().join("exclude.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("k.conf"), "docker.io/keepme\n").unwrap();
    std::fs::write(
        dir.join("eraser.conf"),
        "{\"excluded\": [\"index.docker.io/team/hubapp:1\"]}\n",
    )
    .unwrap();
    let k = dir.join("k.conf");
    let eraser = dir.join("eraser.conf");
    let done: PruneResult = crimg(
        node.crimg(),
        &[
            "prune",
            "--exclude-dir",
            dir.to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .expect_code(0)
    .json();
    assert_eq!(done.removed_tags(), [drop]);
    assert_eq!(
        done.reasons_of(keep),
        [format!("excluded:{}:1", k.display())]
    );
    assert_eq!(
        done.reasons_of(hub),
        [format!("excluded:{}:1", eraser.display())]
    );
    let left: ImageList = crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json();
    let mut left: Vec<String> = left
        .images
        .iter()
        .flat_map(|i| i.repo_tags.clone())
        .collect();
    left.sort();
    assert_eq!(left, sorted(&[hub, keep]));
}

/// A named exclusion directory or file that is missing is a usage error naming it, and
/// nothing is removed; so is a FIFO among the directory's `*.conf` files (its exclusions
/// cannot be known), at once rather than hanging prune.
#[test]
fn named_exclusion_paths_must_exist_and_fifos_are_refused() {
    let node = Node::start();
    let keep = "docker.io/library/keepme:1";
    node.import(&FixtureImage::new(keep));
    let absent = node.dir().join("no-such-dir");
    let run = crimg(
        node.crimg(),
        &["prune", "--exclude-dir", absent.to_str().unwrap()],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains(absent.to_str().unwrap()) && run.stderr.contains("nothing was removed"),
        "{}",
        run.stderr
    );
    let absent_file = node.dir().join("no-such.conf");
    let run = crimg(
        node.crimg(),
        &["prune", "--exclude-file", absent_file.to_str().unwrap()],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains(absent_file.to_str().unwrap()),
        "{}",
        run.stderr
    );

    let dir = node.dir().join("exclude.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.conf"), "keepme\n").unwrap();
    let fifo = dir.join("pipe.conf");
    crate::support::sys::mkfifo(&fifo);
    let run = crimg(
        node.crimg(),
        &["prune", "--exclude-dir", dir.to_str().unwrap()],
    )
    .expect_code(2);
    assert!(
        run.stderr.contains("pipe.conf: a FIFO, not a regular file")
            && run.stderr.contains("nothing was removed"),
        "{}",
        run.stderr
    );
    assert!(node.cri_image_status(keep).is_some());
    std::fs::remove_file(&fifo).unwrap();
    let done: PruneResult = crimg(
        node.crimg(),
        &[
            "prune",
            "--exclude-dir",
            dir.to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .expect_code(0)
    .json();
    assert!(done.removed.is_empty());
    assert_eq!(done.reasons_of(keep).len(), 1);
    crate::support::sys::mkfifo(&fifo);
    let run = crimg(
        node.crimg(),
        &["prune", "--exclude-file", fifo.to_str().unwrap()],
    )
    .expect_code(2);
    assert!(run.stderr.contains("a FIFO"), "{}", run.stderr);
}

/// A running pod's sandbox keeps the image it was made from when the pause tag moves to
/// another build (an import of a newer `pause:3.9`): the sandbox is matched by the image
/// its root filesystem was made from, not by the name it was made with. The old build,
/// now untagged, stays in the dry run and in a real prune; the new build is the
/// configured sandbox image and stays too.
#[test]
fn a_moved_pause_tag_keeps_the_image_the_sandbox_runs() {
    let node = Node::start();
    node.ensure_pause_image();
    let old_id = FixtureImage::new(PAUSE).config_digest();
    let pod = node.run_pod("p");
    let rebuilt = FixtureImage::with_seed(PAUSE, "registry.k8s.io/pause:3.9 rebuilt");
    assert_ne!(rebuilt.config_digest(), old_id);
    node.import(&rebuilt);
    let old = node
        .cri_images()
        .into_iter()
        .find(|i| i.id == old_id)
        .expect("the old build is still listed");
    assert!(old.repo_tags.is_empty(), "the tag moved: {old:?}");

    for args in [
        &["prune", "--dry-run", "-o", "json"][..],
        &["prune", "-o", "json"],
    ] {
        let r: PruneResult = crimg(node.crimg(), args).expect_code(0).json();
        assert!(r.removed.is_empty(), "{args:?}: {r:#?}");
        let kept = r
            .kept
            .iter()
            .find(|k| k.id == old_id)
            .unwrap_or_else(|| panic!("{old_id} not kept: {r:#?}"));
        // 1.7 and 2.x labelled the old build as their sandbox image; no longer named so,
        // that pin reads as anyone's.
        let mut want = vec![format!("in-use:sandbox:{pod}")];
        if runtime::containerd().pins_sandbox_image() {
            want.push("pinned:user".into());
        }
        assert_eq!(kept.reasons, want, "{args:?}");
    }
    assert!(node.cri_image_ids().contains(&old_id));
    assert_eq!(node.list_pods()[0].id, pod);

    // The table names the untagged build by its short ID, as `list` does, so its rows fit;
    // `-o wide` by its full ID.
    let short = format!("sha256:{}", &old_id["sha256:".len()..][..12]);
    let table = crimg(node.crimg(), &["prune", "--dry-run"])
        .expect_code(0)
        .stdout;
    assert!(
        table.lines().any(|l| l.starts_with(&format!("{short} "))),
        "{table}"
    );
    assert!(!table.contains(&old_id), "{table}");
    let wide = crimg(node.crimg(), &["prune", "--dry-run", "-o", "wide"])
        .expect_code(0)
        .stdout;
    assert!(wide.contains(&old_id), "{wide}");
}
