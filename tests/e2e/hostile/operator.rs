//! What an operator can hand crimg: a strict umask (the archive's mode, no temp file
//! left) and extreme numbers and durations for every option (a clear answer, never a
//! panic).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::s;
use crate::run::crimg;
use crate::support::{FixtureImage, Node};

/// `node.crimg()` run under `umask 077`, through sh (the crate forbids unsafe code).
fn crimg_umask_077(node: &Node) -> std::process::Command {
    crimg_umask(node, "077")
}

/// `node.crimg()` run under `umask <mask>`.
fn crimg_umask(node: &Node, mask: &str) -> std::process::Command {
    let c = node.crimg();
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &format!("umask {mask}; exec \"$@\""), "sh"])
        .arg(c.get_program())
        .args(c.get_args())
        .stdin(std::process::Stdio::null());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

/// The archive's mode (0644) under a strict umask, and when --force replaces a 0600 file.
#[test]
fn export_mode_under_a_strict_umask() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/exp-mode:1");
    node.import(&img);
    let dir = node.dir().join("exports");
    fs::create_dir_all(&dir).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let fresh = dir.join("fresh.tar");
    crimg(
        crimg_umask_077(&node),
        &["export", "-O", s(&fresh), &img.name],
    )
    .expect_code(0);
    assert_eq!(
        mode(&fresh),
        0o600,
        "a new archive under umask 077: 0666 less the umask"
    );

    // 0666 less the umask, not a fixed mode.
    let group = dir.join("group.tar");
    crimg(
        crimg_umask(&node, "002"),
        &["export", "-O", s(&group), &img.name],
    )
    .expect_code(0);
    assert_eq!(mode(&group), 0o664, "a new archive under umask 002");
    fs::remove_file(&group).unwrap();

    let old = dir.join("old.tar");
    fs::write(&old, "old").unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o600)).unwrap();
    crimg(
        crimg_umask_077(&node),
        &["export", "--force", "-O", s(&old), &img.name],
    )
    .expect_code(0);
    assert_eq!(mode(&old), 0o600, "a replaced file gets a new one's mode");

    let names: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["fresh.tar", "old.tar"].map(String::from)),
        "no temp file left"
    );
}

/// Every subcommand with extreme values of every numeric and duration option, from the
/// command line and from crictl's config file: a clear answer each time, never a panic.
#[test]
fn extreme_numbers_and_durations_never_panic() {
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/extreme:1");
    node.import(&img);
    let dir = node.dir().join("extreme");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.tar");
    let missing = dir.join("missing.tar");
    let commands: Vec<Vec<&str>> = vec![
        vec!["list"],
        vec!["pin", "extreme:1"],
        vec!["unpin", "extreme:1"],
        vec!["prune", "--dry-run"],
        vec!["import", s(&missing)],
        vec!["export", "--force", "-O", s(&out), "extreme:1"],
        vec!["completions", "bash"],
    ];
    let values = [
        "0",
        "0s",
        "-1",
        "-1s",
        "1ns",
        "9999999999999",
        "9999999999999s",
        "18446744073709551616",
        "99999999999999999999999999y",
        "1e400",
        "NaN",
        "",
    ];
    let mut runs = Vec::new();
    for cmd in &commands {
        for v in values {
            let flag = format!("--timeout={v}");
            let mut args = vec![flag.as_str()];
            args.extend(cmd.iter().copied());
            runs.push((args.join(" "), crimg(node.crimg(), &args)));

            let config = dir.join("crictl.yaml");
            fs::write(&config, format!("timeout: {v}\n")).unwrap();
            let mut args = vec!["--config", s(&config)];
            args.extend(cmd.iter().copied());
            runs.push((
                format!("config timeout {v:?}: {}", cmd.join(" ")),
                crimg(node.crimg(), &args),
            ));
        }
    }
    for opt in [
        "--older-than",
        "--keep-last",
        "--parallel",
        "--target-usage",
    ] {
        for v in values
            .iter()
            .chain(&["100", "101", "100%", "1e-300", "inf"])
        {
            let flag = format!("{opt}={v}");
            let args = ["prune", "--dry-run", flag.as_str()];
            runs.push((args.join(" "), crimg(node.crimg(), &args)));
        }
    }
    assert!(runs.len() > 200, "{} runs", runs.len());
    let mut failures = Vec::new();
    for (what, run) in &runs {
        if run.code == 101 || run.code < 0 || run.stderr.contains("panicked") {
            failures.push(format!("{what}: exit {}\n{}", run.code, run.stderr));
        }
        if run.code == 2 && !run.stderr.contains("error") {
            failures.push(format!("{what}: exit 2 without saying why\n{}", run.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The ones the range checks answer, with what they say.
    let cases: &[(&[&str], &str)] = &[
        (&["--timeout", "0s", "list"], "too short"),
        (&["--timeout", "9999999999999s", "list"], "too long"),
        (
            &["prune", "--older-than", "9999999999999s"],
            "longer than 100 years",
        ),
    ];
    for (args, says) in cases {
        let run = crimg(node.crimg(), args).expect_code(2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    let config = dir.join("crictl.yaml");
    fs::write(&config, "timeout: 9999999999999\n").unwrap();
    let run = crimg(node.crimg(), &["--config", s(&config), "list"]).expect_code(2);
    assert!(
        run.stderr.contains(s(&config)) && run.stderr.contains("too long"),
        "{}",
        run.stderr
    );
}
