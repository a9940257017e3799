//! The first-run tour that `scripts/try.sh` shows a newcomer: a throwaway containerd with a
//! pod, an archive of generated images imported, then `crimg list` and `crimg prune
//! --dry-run` with their real reasons. It runs in `.ci/run` like every test, asserting what
//! the tour shows; with `CRIMG_TOUR=1` it also prints each command and its output.

use std::fs;

use crate::json::PruneResult;
use crate::run::{Run, crimg};
use crate::support::archives::{self, Compress};
use crate::support::{FixtureImage, Node};

const PAUSE: &str = "registry.k8s.io/pause:3.9";
const WEB: &str = "docker.io/library/web:1.1";
const WEB_OLD: &str = "docker.io/library/web:1.0";
const TOOLS: &str = "docker.io/library/tools:2.1";
const CACHE: &str = "docker.io/library/cache:7";

/// Runs `crimg ARGS` on the node; with `CRIMG_TOUR` set, shows it as a shell would.
fn step(node: &Node, args: &[&str]) -> Run {
    let run = crimg(node.crimg(), args);
    if std::env::var_os("CRIMG_TOUR").is_some() {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(['*', '?', '[', ' ']) {
                    format!("'{a}'")
                } else {
                    a.to_string()
                }
            })
            .collect();
        // A blank line first: the test harness's own line may precede the first step.
        println!("\n$ crimg {}", shown.join(" "));
        print!("{}", run.stdout);
        eprint!("{}", run.stderr);
    }
    run
}

#[test]
fn first_run_tour_shows_real_reasons() {
    let node = Node::start();
    let dir = node.dir().join("tour");
    fs::create_dir_all(&dir).unwrap();
    let images: Vec<FixtureImage> = [WEB, WEB_OLD, TOOLS, CACHE]
        .into_iter()
        .map(FixtureImage::new)
        .collect();
    let refs: Vec<&FixtureImage> = images.iter().collect();
    let archive = dir.join("images.tar.zst");
    archives::write(
        &archive,
        &archives::compress(
            Compress::Zstd,
            &archives::tar(&archives::oci_layout(&refs, true)),
        ),
    );
    let archive = archive.to_str().expect("utf-8 path");
    step(&node, &["import", archive]).expect_code(0);
    step(&node, &["pin", TOOLS]).expect_code(0);
    let pod = node.run_pod("web");
    node.run_container(&pod, "web", WEB);
    step(&node, &["list"]).expect_code(0);
    let exclude = "docker.io/library/cache:*";
    step(&node, &["prune", "--dry-run", "--exclude", exclude]).expect_code(0);
    step(&node, &["prune", "--why", PAUSE]).expect_code(0);

    // What the tour shows is what crimg decides.
    let plan: PruneResult = crimg(
        node.crimg(),
        &["prune", "--dry-run", "--exclude", exclude, "-o", "json"],
    )
    .expect_code(0)
    .json();
    assert_eq!(plan.removed_tags(), [WEB_OLD], "{plan:#?}");
    let starts = |tag: &str, prefixes: &[&str]| {
        let reasons = plan.reasons_of(tag);
        for p in prefixes {
            assert!(
                reasons.iter().any(|r| r.starts_with(p)),
                "{tag}: no reason {p}… in {reasons:?}"
            );
        }
    };
    starts(WEB, &["in-use:container:"]);
    starts(TOOLS, &["pinned:user"]);
    starts(CACHE, &["excluded:cli"]);
    starts(PAUSE, &["in-use:sandbox:"]);
}

/// `scripts/try.sh` runs this test by name.
#[test]
fn try_sh_runs_the_tour() {
    let script = include_str!("../../scripts/try.sh");
    assert!(
        script.contains("tour::first_run_tour_shows_real_reasons"),
        "scripts/try.sh does not name the tour test"
    );
}
