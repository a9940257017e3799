//! `crimg list` on a node with a running pod, exited containers, pins and plain images.

use crate::json::ImageList;
use crate::run::crimg;
use crate::support::terminal::Terminal;
use crate::support::{FixtureImage, Node, runtime};

const PAUSE: &str = "registry.k8s.io/pause:3.9";
const RUNNING: &str = "docker.io/library/app-running:1.0";
const EXITED: &str = "docker.io/library/app-exited:1.0";
const USER_PINNED: &str = "docker.io/library/app-pinned:1.0";
const K3S_PINNED: &str = "docker.io/rancher/app-k3s:1.0";
const PLAIN: &str = "docker.io/library/app-plain:1.0";
const PLAIN_OTHER_TAG: &str = "docker.io/library/app-plain:latest";

/// Imports the scenario's images and runs one pod with a running and an exited container.
/// Returns (sandbox id, running container id, exited container id).
fn scenario(node: &Node) -> (String, String, String) {
    for name in [RUNNING, EXITED, USER_PINNED, K3S_PINNED, PLAIN] {
        node.import(&FixtureImage::new(name));
    }
    // A second tag of the plain image: one row, two tags.
    node.import(&FixtureImage::with_seed(PLAIN_OTHER_TAG, PLAIN));
    node.set_label(USER_PINNED, "io.cri-containerd.pinned", Some("pinned"));
    node.set_label(K3S_PINNED, "io.cri-containerd.pinned", Some("pinned"));
    node.set_label(K3S_PINNED, "io.cattle.k3s.pinned", Some("pinned"));
    let pod = node.run_pod("web");
    let running = node.run_container(&pod, "web", RUNNING);
    let exited = node.run_exited_container(&pod, "web", EXITED);
    (pod, running, exited)
}

#[test]
fn list_json_joins_users_pins_and_protections() {
    let node = Node::start();
    let (pod, running, exited) = scenario(&node);

    let run = crimg(node.crimg(), &["list", "-o", "json"]).expect_code(0);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    crate::schema::check("list", &run.stdout);
    let list: ImageList = run.json();
    assert_eq!(list.schema, 1);
    let firsts: Vec<&str> = list
        .images
        .iter()
        .map(|i| i.repo_tags[0].as_str())
        .collect();
    let mut sorted = firsts.clone();
    sorted.sort_unstable();
    assert_eq!(firsts, sorted, "images in name order");

    let pause = list.by_tag(PAUSE);
    assert_eq!(
        pause.in_use.sandboxes,
        [pod.as_str()],
        "the sandbox keeps its pause image"
    );
    assert!(pause.in_use.containers.is_empty());
    let mut want = runtime::containerd().sandbox_image_reasons(&pod);
    want.push("allowlist:builtin:**/pause".into());
    assert_eq!(pause.protected, want);

    let r = list.by_tag(RUNNING);
    assert_eq!(r.in_use.containers, [running.as_str()]);
    assert_eq!(r.protected, [format!("in-use:container:{running}")]);
    assert_eq!(r.id, FixtureImage::new(RUNNING).config_digest());

    let e = list.by_tag(EXITED);
    assert_eq!(
        e.in_use.containers,
        [exited.as_str()],
        "an exited container still uses its image"
    );

    let u = list.by_tag(USER_PINNED);
    assert!(u.pinned);
    assert_eq!(u.pinned_by, ["user"]);
    assert_eq!(u.protected, ["pinned:user"]);

    let k = list.by_tag(K3S_PINNED);
    assert!(k.pinned);
    assert_eq!(k.pinned_by, ["k3s"]);
    assert_eq!(k.protected, ["pinned:k3s"]);

    let p = list.by_tag(PLAIN);
    assert!(!p.pinned && p.pinned_by.is_empty());
    assert!(p.protected.is_empty());
    assert!(p.in_use.containers.is_empty() && p.in_use.sandboxes.is_empty());
    let mut tags = p.repo_tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        [PLAIN, PLAIN_OTHER_TAG],
        "one row per image, all its tags"
    );
    assert!(p.size > 0);
    let created = p
        .created_at
        .as_deref()
        .expect("created_at from the containerd record");
    assert!(
        created.ends_with('Z') && created.contains('T'),
        "RFC 3339: {created}"
    );
    // One entry per image, every tag under its image.
    let mut tags: Vec<Vec<&str>> = list
        .images
        .iter()
        .map(|i| {
            let mut t: Vec<&str> = i.repo_tags.iter().map(String::as_str).collect();
            t.sort();
            t
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            vec![EXITED],
            vec![USER_PINNED],
            vec![PLAIN, PLAIN_OTHER_TAG],
            vec![RUNNING],
            vec![K3S_PINNED],
            vec![PAUSE],
        ]
    );

    // A stopped pod still holds its pause image: sandboxes count in any state.
    node.stop_pod(&pod);
    let list: ImageList = crimg(node.crimg(), &["list", "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(list.by_tag(PAUSE).in_use.sandboxes, [pod]);
}

#[test]
fn list_filters_patterns_and_formats() {
    let node = Node::start();
    let (pod, running, _) = scenario(&node);

    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["list", "-o", "name"];
        all.extend_from_slice(args);
        let run = crimg(node.crimg(), &all).expect_code(0);
        run.stdout.lines().map(str::to_owned).collect()
    };
    // -o name: every tag of the image, one per line, in name order.
    let plain = |lines: Vec<String>| {
        assert_eq!(lines, [PLAIN, PLAIN_OTHER_TAG], "every tag");
    };
    plain(names(&["--unused", "--unprotected"]));
    assert_eq!(names(&["--in-use"]), [EXITED, RUNNING, PAUSE]);
    if runtime::containerd().pins_sandbox_image() {
        assert_eq!(names(&["--pinned"]), [USER_PINNED, K3S_PINNED, PAUSE]);
    } else {
        assert_eq!(names(&["--pinned"]), [USER_PINNED, K3S_PINNED]);
    }
    plain(names(&["--unpinned", "--unused"]));
    assert_eq!(
        names(&["--protected"]),
        [EXITED, USER_PINNED, RUNNING, K3S_PINNED, PAUSE]
    );
    assert_eq!(names(&["app-running:*"]), [RUNNING]);
    assert_eq!(names(&["docker.io/rancher/**"]), [K3S_PINNED]);
    plain(names(&["app-plain"]));
    plain(names(&["app-plain:latest"]));
    let id = FixtureImage::new(RUNNING).config_digest();
    assert_eq!(names(&[&id[..19]]), [RUNNING], "ID prefix pattern");

    // The table: header, one row per image, short IDs and reasons.
    let table = crimg(node.crimg(), &["list"]).expect_code(0).stdout;
    let header = table.lines().next().unwrap();
    for col in [
        "IMAGE",
        "TAG",
        "IMAGE ID",
        "SIZE",
        "PINNED",
        "IN USE",
        "PROTECTED",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains(&id[7..19]), "12-hex image ID in:\n{table}");
    assert!(
        table.contains(&format!("in-use:container:{}", &running[..12])),
        "{table}"
    );
    assert!(
        table.contains(&format!("in-use:sandbox:{}", &pod[..12])),
        "{table}"
    );
    // Piped: one whole line per tag, so the first field is the repository of every row.
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 7, "one line per tag:\n{table}");
    let repos: Vec<&str> = rows
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(
        repos,
        [
            "docker.io/library/app-exited",
            "docker.io/library/app-pinned",
            "docker.io/library/app-plain",
            "docker.io/library/app-plain",
            "docker.io/library/app-running",
            "docker.io/rancher/app-k3s",
            "registry.k8s.io/pause",
        ],
        "{table}"
    );
    let pause = rows[6];
    assert!(
        pause.contains(
            &runtime::containerd()
                .sandbox_image_reasons(&pod[..12])
                .join(", ")
        ),
        "every reason on the line: {pause}"
    );
    let wide = crimg(node.crimg(), &["list", "-o", "wide"])
        .expect_code(0)
        .stdout;
    assert!(wide.lines().next().unwrap().contains("CREATED"), "{wide}");
    // -o wide names the pod, the container and its state.
    assert!(
        wide.contains(&format!("in-use:sandbox:{pod} (pod crimg-e2e/web, ready)")),
        "{wide}"
    );
    assert!(
        wide.contains(&format!(
            "in-use:container:{running} (pod crimg-e2e/web, container "
        )) && wide.contains(", running)"),
        "{wide}"
    );
    let quiet = crimg(node.crimg(), &["list", "-q"]).expect_code(0);
    assert_eq!((quiet.stdout.as_str(), quiet.stderr.as_str()), ("", ""));

    // A bad pattern is a usage error before anything is asked.
    let bad = crimg(node.crimg(), &["list", "sha256:xyz"]).expect_code(2);
    assert!(bad.stderr.contains("sha256:xyz"), "{}", bad.stderr);
}

/// Prints `crimg list` (table and JSON) on a node with a running pod, for documentation:
/// `cargo test --test e2e -- --ignored --nocapture show_list`.
#[test]
#[ignore = "prints example output; run by hand"]
fn show_list_on_a_node_with_a_running_pod() {
    let node = Node::start();
    let (pod, running, exited) = scenario(&node);
    println!("pod sandbox {pod}\nrunning container {running}\nexited container {exited}\n");
    for args in [
        &["list"][..],
        &["list", "-o", "wide"],
        &["list", "-o", "json"],
    ] {
        let run = crimg(node.crimg(), args).expect_code(0);
        println!("$ crimg {}\n{}", args.join(" "), run.stdout);
    }
}

/// `crimg list` in a real terminal of `width` columns (tmux, its own server): the lines
/// the terminal shows.
fn list_in_a_terminal(node: &Node, width: u16) -> Vec<String> {
    let script = format!(
        "NO_COLOR=1 CRIMG_STATE_DIR={} {} --runtime-endpoint {} list; echo '==done=='; sleep 60",
        node.dir().join("crimg-state").display(),
        env!("CARGO_BIN_EXE_crimg"),
        node.endpoint(),
    );
    let tmux = || {
        let mut cmd = std::process::Command::new("tmux");
        cmd.env_remove("TMUX");
        cmd
    };
    let terminal = Terminal::start(tmux, width, 50, &[&script]);
    let screen = terminal.wait_for("crimg list's output", |s| s.contains("==done=="));
    screen
        .lines()
        .take_while(|l| !l.starts_with("==done=="))
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn list_fits_a_real_terminal_at_80_120_and_200_columns() {
    let node = Node::start();
    let (pod, _, _) = scenario(&node);
    for width in [80u16, 120, 200] {
        let lines = list_in_a_terminal(&node, width);
        let shown = lines.join("\n");
        // Header + one line per tag: nothing wrapped onto a second screen line.
        assert_eq!(lines.len(), 8, "at {width} columns:\n{shown}");
        assert!(lines[0].starts_with("IMAGE "), "{shown}");
        for line in &lines {
            assert!(
                line.chars().count() <= usize::from(width),
                "line as wide as the terminal (wrapped) at {width}:\n{shown}"
            );
        }
        for tag in [
            PAUSE,
            RUNNING,
            EXITED,
            USER_PINNED,
            K3S_PINNED,
            PLAIN,
            PLAIN_OTHER_TAG,
        ] {
            let (repo, t) = tag.rsplit_once(':').unwrap();
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("{repo} ")) && l.contains(&format!(" {t} "))),
                "{tag} whole on one line at {width}:\n{shown}"
            );
        }
        let pause = lines
            .iter()
            .find(|l| l.starts_with("registry.k8s.io/pause "))
            .unwrap();
        if width >= 200 {
            assert!(
                pause.contains(
                    &runtime::containerd()
                        .sandbox_image_reasons(&pod[..12])
                        .join(", ")
                ),
                "in full at {width}: {pause}"
            );
        } else {
            assert!(pause.contains("in-use"), "summarised at {width}: {pause}");
        }
    }
}
