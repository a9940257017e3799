//! Image arguments mean the same to every command: globs, ID prefixes, `--from-file`,
//! and a name that matches nothing says what it was read as and what is near.

use std::process::Stdio;

use crate::json::{ImageList, PinResult};
use crate::run::{Run, crimg};
use crate::support::{FixtureImage, Node};

const CRI_LABEL: &str = "io.cri-containerd.pinned";

fn bare_id(image: &FixtureImage) -> String {
    image
        .config_digest()
        .trim_start_matches("sha256:")
        .to_string()
}

#[test]
fn list_and_pin_take_the_same_globs_id_prefixes_and_suggest_near_names() {
    let node = Node::start();
    let pause = FixtureImage::new("registry.k8s.io/pause:3.9");
    let app = FixtureImage::new("reg.local:5000/team/app:v1");
    let web = FixtureImage::new("docker.io/library/web:1.0");
    for i in [&pause, &app, &web] {
        node.import(i);
    }

    // `list` takes a bare ID prefix as `pin` does.
    let prefix = &bare_id(&app)[..8];
    let listed: ImageList = crimg(node.crimg(), &["list", "-o", "json", prefix])
        .expect_code(0)
        .json();
    let tags: Vec<&str> = listed
        .images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(String::as_str))
        .collect();
    assert_eq!(tags, [app.name.as_str()]);

    // A short name that matches nothing: its normalised form and the nearest name.
    let run = crimg(node.crimg(), &["list", "pause"]).expect_code(0);
    assert!(
        run.stderr.contains("\"pause\" (docker.io/library/pause)")
            && run
                .stderr
                .contains("did you mean registry.k8s.io/pause:3.9?"),
        "{}",
        run.stderr
    );
    let run = crimg(node.crimg(), &["prune", "--why", "pause:3.9"]).expect_code(1);
    assert!(
        run.stderr
            .contains("(docker.io/library/pause:3.9) not found")
            && run
                .stderr
                .contains("did you mean registry.k8s.io/pause:3.9?"),
        "{}",
        run.stderr
    );

    // pin takes a glob that crosses path components; each image it selects is named.
    let res: PinResult = crimg(node.crimg(), &["pin", "-o", "json", "reg.local:5000/**"])
        .expect_code(0)
        .json();
    assert_eq!(res.changed, [app.name.as_str()]);
    assert_eq!(
        node.image_labels(&app.name)
            .get(CRI_LABEL)
            .map(String::as_str),
        Some("pinned")
    );
    assert!(!node.image_labels(&web.name).contains_key(CRI_LABEL));

    // A glob that matches nothing is a not-found (4); a malformed one a usage error (2),
    // and nothing is changed.
    let run = crimg(node.crimg(), &["pin", "nothing/**"]).expect_code(4);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    let run = crimg(node.crimg(), &["pin", "web:1.0", "web:["]).expect_code(2);
    assert!(run.stderr.contains("web:["), "{}", run.stderr);
    assert!(!node.image_labels(&web.name).contains_key(CRI_LABEL));

    // prune --why takes a glob too and explains each image it selects.
    let run = crimg(
        node.crimg(),
        &["prune", "--why", "**/pause", "--no-builtin-allowlist"],
    )
    .expect_code(0);
    assert!(
        run.stdout.contains("registry.k8s.io/pause:3.9") && !run.stdout.contains("web"),
        "{}",
        run.stdout
    );

    // unpin --from-file - reads names from stdin, comments skipped.
    let mut cmd = node.crimg();
    cmd.args(["unpin", "-o", "json", "--from-file", "-"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crimg");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "# images to release\n{prefix}  # app\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait crimg");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
    .expect_code(0);
    let res: PinResult = run.json();
    assert_eq!(res.changed, [prefix]);
    assert!(!node.image_labels(&app.name).contains_key(CRI_LABEL));

    // An empty file names no image: a usage error.
    let empty = node.dir().join("empty.txt");
    std::fs::write(&empty, "# nothing\n").expect("write");
    let run = crimg(
        node.crimg(),
        &["pin", "--from-file", empty.to_str().expect("utf-8")],
    )
    .expect_code(2);
    assert!(run.stderr.contains("names no image"), "{}", run.stderr);
}

#[test]
fn export_compresses_as_the_file_name_says_and_takes_globs() {
    let node = Node::start();
    let one = FixtureImage::new("reg.local/team/one:1");
    let two = FixtureImage::new("reg.local/team/two:1");
    for i in [&one, &two] {
        node.import(i);
    }
    let dir = node.dir();
    for (name, magic) in [
        ("a.tar.gz", &[0x1f, 0x8b][..]),
        ("b.tgz", &[0x1f, 0x8b][..]),
        ("c.tar.zst", &[0x28, 0xb5, 0x2f, 0xfd][..]),
    ] {
        let path = dir.join(name);
        crimg(
            node.crimg(),
            &[
                "export",
                "-O",
                path.to_str().expect("utf-8"),
                "reg.local/team/*:1",
            ],
        )
        .expect_code(0);
        let bytes = std::fs::read(&path).expect("read archive");
        assert!(bytes.starts_with(magic), "{name}: {:02x?}", &bytes[..8]);
        let listing = std::process::Command::new("tar")
            .arg("-taf")
            .arg(&path)
            .output()
            .expect("tar");
        assert!(listing.status.success(), "{name}");
        let index = String::from_utf8_lossy(&listing.stdout);
        assert!(index.contains("index.json"), "{name}: {index}");
        std::fs::remove_file(&path).expect("remove");
    }
    // Both images the glob selected are in the archive.
    let path = dir.join("both.tar");
    crimg(
        node.crimg(),
        &[
            "export",
            "-o",
            "json",
            "-O",
            path.to_str().expect("utf-8"),
            "reg.local/team/**",
        ],
    )
    .expect_code(0);
    let manifest = std::process::Command::new("tar")
        .args(["-xOf"])
        .arg(&path)
        .arg("manifest.json")
        .output()
        .expect("tar");
    let text = String::from_utf8_lossy(&manifest.stdout);
    assert!(
        text.contains(&one.name) && text.contains(&two.name),
        "{text}"
    );
    std::fs::remove_file(&path).expect("remove");

    // A name and --compress that disagree: usage error, nothing written.
    let path = dir.join("d.tar.gz");
    let run = crimg(
        node.crimg(),
        &[
            "export",
            "--compress",
            "zstd",
            "-O",
            path.to_str().expect("utf-8"),
            &one.name,
        ],
    )
    .expect_code(2);
    assert!(run.stderr.contains("disagrees"), "{}", run.stderr);
    assert!(!path.exists());
}

/// Text after `sha256:` that is no image ID or ID prefix can name nothing: a usage error in
/// every command that takes an image argument, as it is in a pattern.
#[test]
fn a_bad_id_is_a_usage_error_in_every_command() {
    let node = Node::start();
    let web = FixtureImage::new("docker.io/library/web:1.0");
    node.import(&web);
    let out = node.dir().join("out.tar");
    let out = out.to_str().expect("utf-8 path");
    for bad in ["sha256:zz", "sha256:", "sha256:0123-x"] {
        let commands: [Vec<&str>; 7] = [
            vec!["list", bad],
            vec!["pin", bad],
            vec!["unpin", bad],
            vec!["check", bad],
            vec!["export", "-O", out, bad],
            vec!["prune", "--why", bad],
            vec!["prune", "--dry-run", "--exclude", bad],
        ];
        for args in commands {
            let run = crimg(node.crimg(), &args).expect_code(2);
            assert!(run.stderr.contains(bad), "{args:?}: {}", run.stderr);
        }
    }
    assert!(!std::path::Path::new(out).exists());
}
